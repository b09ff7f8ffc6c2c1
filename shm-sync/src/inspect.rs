//! Read-only views of lock state for tools (the `shm` command of shm-manager): who
//! holds a [`RawMutex`] that lives in an object, and whether that
//! holder is alive.
//!
//! Nothing here writes to the mapping or takes a lock; every value is a snapshot that
//! may be stale by the time it is printed. This is a tool API: its shape follows what a
//! listing needs, not the lock's internals, which may change without notice.
//!
//! ```
//! use shm_sync::{Lock, SharedObject};
//! let lock = Lock::create()?;
//! let guard = lock.lock().unwrap();
//! let state = shm_sync::inspect::mutex_state(lock.object(), 0)?;
//! assert!(state.locked && !state.owner_died);
//! assert_eq!(state.holder.unwrap().liveness, shm_core::identity::Liveness::Alive);
//! drop(guard);
//! assert!(shm_sync::inspect::mutex_state(lock.object(), 0)?.holder.is_none());
//! # Ok::<(), shm_sync::Error>(())
//! ```

use shm_core::Object;
use shm_core::identity::{Liveness, OwnerWord};

use crate::Error;
use crate::RawMutex;
use crate::raw::mutex::{INCONSISTENT as INCONSISTENT_BIT, WAITERS as WAITERS_BIT};
use crate::sys::word_liveness;
#[cfg(test)]
use crate::sys::{NS_SHIFT, TID_BITS};

/// Who holds a lock, as its owner word records it.
///
/// ```
/// use shm_sync::{Mutex, SharedObject};
/// let m = Mutex::create(0u32)?;
/// let _g = m.lock().unwrap();
/// let h = shm_sync::inspect::mutex_state(m.object(), 0)?.holder.unwrap();
/// assert_ne!(h.tid, 0);
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The holding thread's TID, in its own PID namespace.
    pub tid: u32,
    /// The low 32 bits of that thread's start time (bit 0 set).
    pub token: u32,
    /// The holder's PID-namespace index in the namespace registry (0 = unknown).
    pub pidns_index: u8,
    /// Whether that thread still lives ([`Liveness::Dead`] only when provable).
    pub liveness: Liveness,
}

/// A snapshot of a robust mutex.
///
/// ```
/// use shm_sync::{Lock, SharedObject};
/// let l = Lock::create()?;
/// let s = shm_sync::inspect::mutex_state(l.object(), 0)?;
/// assert_eq!((s.locked, s.owner_died, s.holder), (false, false, None));
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexState {
    /// Whether some thread holds the lock.
    pub locked: bool,
    /// A holder died and nobody marked the lock consistent since (`EOWNERDEAD`).
    pub owner_died: bool,
    /// Whether a thread may be sleeping on the lock.
    pub waiters: bool,
    /// The holder, when locked.
    pub holder: Option<Holder>,
}

/// Reads the [`RawMutex`] at `offset` in `object`'s payload (0 for a `Mutex`, a `Lock`
/// and the lock of a `Value` of shm-collections).
///
/// The caller knows from the object's kind that a mutex lives there; bytes that are
/// not one give a meaningless state, never undefined behaviour (the words are read as
/// atomics). Errors: [`shm_core::Error::OutOfBounds`] when 16 bytes at `offset` do not
/// fit in the payload or `offset` is not 8-byte aligned.
///
/// ```
/// let seg = shm_core::Object::foreign(shm_core::Segment::create(8)?);
/// assert!(shm_sync::inspect::mutex_state(&seg, 0).is_err()); // too short for a mutex
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn mutex_state(object: &Object, offset: usize) -> Result<MutexState, Error> {
    let size = size_of::<RawMutex>();
    let fits = offset
        .checked_add(size)
        .is_some_and(|end| end <= object.payload_len());
    if !fits || offset % align_of::<RawMutex>() != 0 {
        return Err(shm_core::Error::OutOfBounds {
            name: object.label(),
            offset,
            len: size,
            segment_len: object.payload_len(),
        }
        .into());
    }
    // SAFETY: `offset..offset + 16` lies in the payload (checked above), which is
    // 64-byte aligned, so the 8-aligned offset is aligned for RawMutex; the mapping lives
    // as long as `object`; RawMutex is all atomics, valid for any bits, and is only read.
    let raw = unsafe { RawMutex::from_ptr(object.payload_ptr().add(offset)) };
    Ok(decode(raw.owner_word()))
}

/// Splits an owner word (see `RawMutex`) into a state.
fn decode(word: u64) -> MutexState {
    let w = OwnerWord::from_raw(word);
    let locked = w.holder_bits() != 0;
    let holder = locked.then(|| Holder {
        tid: w.tid(),
        token: w.token(),
        pidns_index: w.ns_index(),
        liveness: word_liveness(word),
    });
    MutexState {
        locked,
        owner_died: word & INCONSISTENT_BIT != 0,
        waiters: word & WAITERS_BIT != 0,
        holder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_threads_lock_reads_as_held_by_a_dead_holder() {
        let l = crate::Lock::create().unwrap();
        let name = shm_core::SharedObject::name(&l).unwrap().to_owned();
        std::thread::scope(|s| {
            s.spawn(|| {
                let peer = crate::Lock::open(&name).unwrap();
                std::mem::forget(peer.lock().unwrap());
            });
        });
        // A joined thread's task may linger in /proc for a moment: poll.
        let start = std::time::Instant::now();
        let s = loop {
            let s = mutex_state(shm_core::SharedObject::object(&l), 0).unwrap();
            let h = s.holder.unwrap();
            if h.pidns_index == 0 || h.liveness == Liveness::Dead {
                break s;
            }
            assert!(
                start.elapsed().as_secs() < 5,
                "holder never read as dead: {h:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(s.locked);
        assert!(!s.owner_died, "nobody has taken it over yet");
    }

    #[test]
    fn a_taken_over_lock_reads_as_owner_died() {
        let l = crate::Lock::create().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(l.lock().unwrap()));
        });
        if shm_core::identity::pidns_index() == 0 {
            return; // no namespace registry here: the holder cannot be proven dead
        }
        let guard = match l.lock() {
            Err(crate::LockError::OwnerDied(g)) => g,
            _ => panic!("expected OwnerDied"),
        };
        let s = mutex_state(shm_core::SharedObject::object(&l), 0).unwrap();
        assert!(s.locked && s.owner_died);
        assert_eq!(s.holder.unwrap().liveness, Liveness::Alive);
        drop(guard);
        let s = mutex_state(shm_core::SharedObject::object(&l), 0).unwrap();
        assert!(!s.locked && s.owner_died, "unlocked but still inconsistent");
    }

    #[test]
    fn garbage_words_decode_without_panicking() {
        for w in [0u64, u64::MAX, 1 << 31, (1 << 32) | 5, 0xff << NS_SHIFT] {
            let s = decode(w);
            assert_eq!(s.locked, w & TID_BITS != 0);
        }
    }
}
