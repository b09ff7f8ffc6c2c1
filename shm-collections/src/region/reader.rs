//! The lock-free read path: runs on this thread's cached mapping of the current data
//! segment and retries when the generation moves (see the module docs, "Reads").

use std::sync::atomic::{Ordering, fence};

use super::cache::READ_CACHE;
use super::error::{RegionResult, RegionStats, Slim, unbox};
use super::handle::Region;
use super::layout::{EMPTY, Mapped, OFF_MASK, TOMB};
use super::record::{Rec, key_eq, key_hash};

/// Snapshot attempts without the lock before taking it.
const SNAPSHOT_TRIES: usize = 64;
/// Generation changes a single read follows before it gives up.
const READ_TRIES: usize = 10_000;

impl Region {
    /// Runs `f` on the current mapping until the generation stayed the same across it.
    #[inline]
    fn read_stable<R>(&self, mut f: impl FnMut(&Mapped) -> Slim<R>) -> Slim<R> {
        let generation = self.gen_word().load(Ordering::Acquire);
        // The common case: this thread's cached mapping is current.
        let fast = READ_CACHE.try_with(|c| {
            let c = c.try_borrow().ok()?;
            let m = c.find(self.id).filter(|m| m.generation == generation)?;
            let r = f(m);
            (self.gen_word().load(Ordering::Acquire) == generation).then_some(r)
        });
        if let Ok(Some(r)) = fast {
            return r;
        }
        self.read_stable_slow(f)
    }

    /// `read_stable` after a cache miss or a generation change: maps the current
    /// segment, caches it for this thread and retries.
    #[inline(never)]
    fn read_stable_slow<R>(&self, mut f: impl FnMut(&Mapped) -> Slim<R>) -> Slim<R> {
        for _ in 0..READ_TRIES {
            let m = self.current().map_err(Box::new)?;
            // Replacing the entry drops the old mapping (unless another thread or the
            // handle still has it): never one a read of this thread is using, since
            // a borrowed cell refuses the replacement.
            let _ = READ_CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.put(self.id, m.clone());
                }
            });
            let r = f(&m);
            if self.gen_word().load(Ordering::Acquire) == m.generation {
                return r;
            }
        }
        // Writers grew the object 10^4 times during one read: read under the lock.
        let w = self.lock().map_err(Box::new)?;
        f(w.m())
    }

    /// A dict lookup without the lock, handing the value bytes to `f` (copied onto the
    /// stack when small: no allocation).
    #[inline]
    pub(crate) fn get_with<R>(&self, key: &[u8], mut f: impl FnMut(&[u8]) -> R) -> Slim<Option<R>> {
        let hash = key_hash(key);
        let tag = hash >> 48;
        self.read_stable(|m| {
            let mut i = hash as usize;
            for _ in 0..m.slots {
                let v = m.slot_wrapped(i).load(Ordering::Acquire);
                if v == EMPTY {
                    return Ok(None);
                }
                if v != TOMB && v >> 48 == tag {
                    let hit = m.with_record(v & OFF_MASK, &self.label, |body, klen| {
                        key_eq(&body[..klen], key).then(|| f(&body[klen..]))
                    })?;
                    if hit.is_some() {
                        return Ok(hit);
                    }
                }
                i = i.wrapping_add(1);
            }
            Ok(None)
        })
    }

    /// Live entries (a vec's length), checked against the index: a forged count is
    /// `Corrupted`, as every other call says.
    pub(crate) fn len(&self) -> RegionResult<u64> {
        self.read_stable(|m| {
            let live = m.hdr().live.load(Ordering::Acquire);
            if live > m.slots as u64 {
                return Err(Box::new(self.corrupted(format!(
                    "{live} entries in an index of {} slots",
                    m.slots
                ))));
            }
            Ok(live)
        })
        .map_err(unbox)
    }

    /// Element `i` of a list handed to `f` (copied onto the stack when small), or the
    /// length seen when `i` is past the end.
    #[inline]
    pub(crate) fn list_get_with<R>(
        &self,
        i: usize,
        mut f: impl FnMut(&[u8]) -> R,
    ) -> Slim<Result<R, usize>> {
        self.read_stable(|m| {
            let len = m.hdr().live.load(Ordering::Acquire);
            if i as u64 >= len {
                return Ok(Err(len as usize));
            }
            if len > m.slots as u64 {
                return Err(Box::new(
                    self.corrupted(format!("length {len} over {} slots", m.slots)),
                ));
            }
            let v = m.slot(i).load(Ordering::Acquire);
            let off = Mapped::slot_off(v).ok_or_else(|| {
                Box::new(self.corrupted(format!("element {i} has an empty slot")))
            })?;
            m.with_record(off, &self.label, |body, klen| Ok(f(&body[klen..])))
        })
    }

    /// Every live record (dict: in slot order; list: in index order) as of one moment.
    pub(crate) fn snapshot(&self) -> RegionResult<Vec<Rec>> {
        for _ in 0..SNAPSHOT_TRIES {
            let m = self.current()?;
            let s1 = m.hdr().seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let r = m.collect(self.kind, &self.label);
            fence(Ordering::Acquire);
            let s2 = m.hdr().seq.load(Ordering::Relaxed);
            if s1 == s2 && self.gen_word().load(Ordering::Acquire) == m.generation {
                return r;
            }
        }
        let w = self.lock()?;
        w.m().collect(self.kind, &self.label)
    }

    pub(crate) fn stats(&self) -> RegionResult<RegionStats> {
        self.read_stable(|m| {
            Ok(RegionStats {
                entries: m.hdr().live.load(Ordering::Relaxed),
                bytes_used: m.hdr().used.load(Ordering::Relaxed),
                capacity: m.cap,
                slots: m.slots as u64,
                generation: m.generation,
                garbage: m.hdr().garbage.load(Ordering::Relaxed),
            })
        })
        .map_err(unbox)
    }
}
