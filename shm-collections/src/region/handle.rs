//! One handle of a growable collection (`Region`): attaching, the current mapping, the
//! limits and patience, and removing the data segments when the last handle goes.

use std::mem::offset_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use shm_core::{Object, ObjectSpec};

use super::cache::{NEXT_HANDLE, READ_CACHE};
use super::error::{RegionError, RegionResult};
use super::layout::{CTRL_LEN, CtrlHeader, MIN_CAP, MIN_SLOTS, Mapped, ctrl_header, data_spec};
use super::names::{MAX_CONTROL_NAME_LEN, ctrl_name, data_segment_name};
use super::segments::{SKIP_GENERATIONS, create_data, map_current, new_incarnation, unlink_own};
use super::{IndexKind, Limits};

/// The handle's view of a growable object: its control object and a cached mapping of
/// the current data segment.
pub(crate) struct Region {
    pub(super) ctrl: Object,
    pub(super) label: Arc<str>,
    pub(super) data_spec: ObjectSpec,
    pub(super) kind: IndexKind,
    /// Names this handle in the per-thread [`ReadCache`].
    pub(super) id: u64,
    pub(super) map: RwLock<Arc<Mapped>>,
    /// The writer lock holder's mapping: only the thread holding the (cross-process)
    /// writer lock reads or replaces it, so the lock is what synchronises it.
    pub(super) held: std::cell::UnsafeCell<Option<Arc<Mapped>>>,
    pub(super) limits: Limits,
    /// The incarnation id (read once at attach: the names this handle derives).
    pub(super) inc: u64,
    /// The control object's file, with a shared `flock` on it while this handle lives:
    /// the kernel counts the handles of every process (and drops a dead process's
    /// lock), so the last handle of an unlinked object can tell that it is the last.
    /// `None` when the name was replaced before we could open it.
    pub(super) last_lock: Option<std::os::fd::OwnedFd>,
    /// How long writers wait for the writer lock, in nanoseconds; `u64::MAX` for no
    /// limit. Read only when the lock is taken already.
    pub(super) patience: AtomicU64,
}

// SAFETY: every field but `held` is Sync; `held` is only accessed by the thread that
// holds the writer lock (`lock` and the `Writer` it returns, which is not Send), and
// that robust lock excludes every other thread of every process.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// Writes the limits and creates data segment 0 (before the control object is
    /// published).
    pub(crate) fn init(ctrl: &Object, spec: &ObjectSpec, limits: Limits) -> RegionResult<()> {
        let name = ctrl_name(ctrl)?;
        // Refuse now what could not grow later (see the module docs, "Names").
        if name.len() > MAX_CONTROL_NAME_LEN {
            return Err(shm_core::Error::InvalidName {
                name: name.to_owned(),
                reason: "a growable collection's name may be at most 218 bytes: its data \
                         segment names add up to 35 bytes and segment names end at 253",
            }
            .into());
        }
        let inc = new_incarnation(name)?;
        ctrl_header(ctrl)
            .max_key
            .store(u64::from(limits.max_key), Ordering::Relaxed);
        ctrl_header(ctrl)
            .max_value
            .store(u64::from(limits.max_value), Ordering::Relaxed);
        ctrl_header(ctrl).incarnation.store(inc, Ordering::Relaxed);
        let m = create_data(ctrl, inc, &data_spec(spec), None, MIN_SLOTS, MIN_CAP as u64)?;
        ctrl.generation()
            .expect("a control object always has a header")
            .store(m.generation, Ordering::Release);
        Ok(())
    }

    /// Wraps a checked control object and maps its current data segment.
    pub(crate) fn attach(ctrl: Object, spec: &ObjectSpec, kind: IndexKind) -> RegionResult<Region> {
        ctrl_name(&ctrl)?;
        if ctrl.payload_len() < CTRL_LEN {
            return Err(RegionError::Corrupted {
                name: ctrl.label(),
                what: format!(
                    "control payload of {} bytes, expected {CTRL_LEN}",
                    ctrl.payload_len()
                ),
            });
        }
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let limits = Limits {
            max_key: clamp(ctrl_header(&ctrl).max_key.load(Ordering::Relaxed)),
            max_value: clamp(ctrl_header(&ctrl).max_value.load(Ordering::Relaxed)),
        };
        let label: Arc<str> = ctrl.label().into();
        let data_spec = data_spec(spec);
        let inc = ctrl_header(&ctrl).incarnation.load(Ordering::Relaxed);
        if inc == 0 {
            return Err(RegionError::Corrupted {
                name: label.to_string(),
                what: "incarnation id 0 in the control object".into(),
            });
        }
        let first = map_current(&ctrl, inc, &data_spec, &label)?;
        let last_lock = Self::hold_control(&ctrl, inc);
        Ok(Region {
            ctrl,
            label,
            data_spec,
            kind,
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            map: RwLock::new(Arc::new(first)),
            held: std::cell::UnsafeCell::new(None),
            limits,
            inc,
            last_lock,
            patience: AtomicU64::new(u64::MAX),
        })
    }

    /// Opens the control object's file again by name and takes a shared `flock` on
    /// it, if the name still names this incarnation (its control payload says `inc`).
    fn hold_control(ctrl: &Object, inc: u64) -> Option<std::os::fd::OwnedFd> {
        use rustix::fs::{FlockOperation, flock};
        let name = ctrl_name(ctrl).ok()?;
        // As shm-core opens: never follow a symlink, never block on a FIFO.
        let careful = rustix::shm::OFlags::from_bits_retain(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits(),
        );
        let fd = rustix::shm::open(
            format!("/{name}").as_str(),
            rustix::shm::OFlags::RDONLY | careful,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        if !rustix::fs::fstat(&fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        }) {
            return None;
        }
        // The payload's place in the file: the mapping starts at file offset 0.
        let at = (ctrl.payload_ptr() as usize).checked_sub(ctrl.segment().as_ptr() as usize)?;
        let mut b = [0u8; 8];
        let n = rustix::io::pread(
            &fd,
            &mut b,
            (at + offset_of!(CtrlHeader, incarnation)) as u64,
        )
        .ok()?;
        if n != 8 || u64::from_ne_bytes(b) != inc {
            return None;
        }
        // Non-blocking: an exclusive holder is the last handle of an unlinked object
        // cleaning up, and a name that opened cannot be that object's.
        flock(&fd, FlockOperation::NonBlockingLockShared).ok()?;
        Some(fd)
    }

    pub(crate) fn object(&self) -> &Object {
        &self.ctrl
    }

    pub(crate) fn object_mut(&mut self) -> &mut Object {
        &mut self.ctrl
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    #[inline]
    pub(super) fn gen_word(&self) -> &AtomicU64 {
        // Every control object has a header (attach came through a checked spec).
        self.ctrl
            .generation()
            .expect("a control object always has a header")
    }

    /// The mapping of the current generation (remapping if another process grew it).
    pub(super) fn current(&self) -> RegionResult<Arc<Mapped>> {
        let generation = self.gen_word().load(Ordering::Acquire);
        {
            let m = self.map.read().unwrap_or_else(|p| p.into_inner());
            if m.generation == generation {
                return Ok(m.clone());
            }
        }
        let fresh = Arc::new(map_current(
            &self.ctrl,
            self.inc,
            &self.data_spec,
            &self.label,
        )?);
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    pub(super) fn corrupted(&self, what: String) -> RegionError {
        RegionError::Corrupted {
            name: self.label.to_string(),
            what,
        }
    }

    /// Checks encoded sizes against the limits (two compares inline; the errors are
    /// built out of line).
    #[inline]
    pub(crate) fn check_sizes(&self, key: usize, value: usize) -> RegionResult<()> {
        if key > self.limits.max_key as usize || value > self.limits.max_value as usize {
            return Err(self.too_large(key, value));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, key: usize, value: usize) -> RegionError {
        if key > self.limits.max_key as usize {
            RegionError::KeyTooLarge {
                name: self.label.to_string(),
                len: key,
                limit: self.limits.max_key as usize,
            }
        } else {
            RegionError::ValueTooLarge {
                name: self.label.to_string(),
                len: value,
                limit: self.limits.max_value as usize,
            }
        }
    }

    /// How long writers of this handle wait for the writer lock (`None`: no limit).
    pub(crate) fn set_patience(&self, patience: Option<std::time::Duration>) {
        let nanos = patience.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        self.patience.store(nanos, Ordering::Relaxed);
    }

    pub(crate) fn patience(&self) -> Option<std::time::Duration> {
        match self.patience.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(std::time::Duration::from_nanos(n)),
        }
    }

    /// Removes the current data segment's name (with the control object's), if it
    /// is provably this incarnation's.
    pub(crate) fn unlink_data(&self) -> RegionResult<()> {
        let generation = self.gen_word().load(Ordering::Acquire);
        // The mapping we hold (checked when mapped) names the file even when its
        // header has been damaged since; else the header must prove it.
        if let Ok(m) = self.current() {
            if m.generation == generation && m.unlink_name() {
                return Ok(());
            }
        }
        let name = data_segment_name(ctrl_name(&self.ctrl)?, self.inc, generation);
        unlink_own(&name, &self.data_spec, self.inc, |g| g == generation);
        Ok(())
    }

    /// Removes every data segment of this incarnation near the current generation:
    /// the current one, unpublished leftovers after it and published-over ones
    /// before it (each only if its header says this incarnation made it).
    pub(super) fn unlink_all_data(&self) {
        let Ok(base) = ctrl_name(&self.ctrl) else {
            return;
        };
        let current = self.gen_word().load(Ordering::Acquire);
        let _ = self.unlink_data();
        let lo = current.saturating_sub(SKIP_GENERATIONS);
        let hi = current.saturating_add(SKIP_GENERATIONS);
        for g in lo..=hi {
            let name = data_segment_name(base, self.inc, g);
            unlink_own(&name, &self.data_spec, self.inc, |h| h == g);
        }
    }

    /// On drop: if the control object is unlinked and no handle of any process is
    /// left (ours was the last shared `flock`), removes the data segments, which
    /// nobody can reach any more.
    fn clean_up_if_last(&mut self) {
        use rustix::fs::{FlockOperation, flock, fstat};
        let Some(fd) = self.last_lock.take() else {
            return;
        };
        if !fstat(&fd).is_ok_and(|st| st.st_nlink == 0) {
            return;
        }
        // Unlock, then try exclusive: of handles dropping at once, at least one
        // succeeds (a failed attempt holds nothing), so the last one cleans up.
        let _ = flock(&fd, FlockOperation::Unlock);
        if flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            self.unlink_all_data();
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // This thread's cached mapping goes with the handle (other threads' entries go
        // when they read through other handles or exit: see `ReadCache`).
        let _ = READ_CACHE.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.forget(self.id);
            }
        });
        if self.ctrl.unlinks_on_drop() {
            let _ = self.unlink_data();
        }
        self.clean_up_if_last();
    }
}
