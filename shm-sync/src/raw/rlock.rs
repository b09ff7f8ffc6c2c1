//! `RawRLock`: a re-entrant [`RawMutex`] with a recursion count only its holder touches.

use std::time::Duration;

use super::{Acquired, Deadline, RawMutex};
use crate::RawError;
use crate::atomic::{AtomicU32, Ordering};

/// A re-entrant, robust, process-shared lock (Python's `RLock`): 24 bytes,
/// `#[repr(C)]`, all-zero is unlocked.
///
/// The holding thread may acquire it again; it is free once released as often as
/// acquired. Release by any other thread is [`RawError::NotOwner`]. A holder's death is
/// reported to the next acquirer as [`Acquired::OwnerDied`], as for [`RawMutex`].
///
/// ```
/// let l = shm_sync::RawRLock::new();
/// l.acquire().unwrap();
/// l.acquire().unwrap();
/// assert_eq!(l.depth(), 2);
/// l.release().unwrap();
/// l.release().unwrap();
/// assert_eq!(l.release(), Err(shm_sync::RawError::NotOwner));
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawRLock {
    mutex: RawMutex,
    count: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawRLock>() == 24);

impl RawRLock {
    crate::atomic::const_fn_unless_loom! {
        /// An unlocked lock.
        ///
        /// ```
        /// static L: shm_sync::RawRLock = shm_sync::RawRLock::new();
        /// L.acquire().unwrap();
        /// L.release().unwrap();
        /// ```
        pub const fn new() -> RawRLock {
            RawRLock {
                mutex: RawMutex::new(),
                count: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
            }
        }
    }

    /// Acquires (again, if the calling thread holds it), waiting as long as it takes.
    ///
    /// ```
    /// let l = shm_sync::RawRLock::new();
    /// assert_eq!(l.acquire(), Ok(shm_sync::Acquired::Clean));
    /// l.release().unwrap();
    /// ```
    pub fn acquire(&self) -> Result<Acquired, RawError> {
        self.acquire_mode(Deadline::Forever)
    }

    /// Acquires if that needs no waiting.
    ///
    /// ```
    /// let l = shm_sync::RawRLock::new();
    /// l.try_acquire().unwrap();
    /// l.try_acquire().unwrap(); // re-entrant
    /// l.release().unwrap();
    /// l.release().unwrap();
    /// ```
    pub fn try_acquire(&self) -> Result<Acquired, RawError> {
        self.acquire_mode(Deadline::Try)
    }

    /// Acquires, waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RawRLock::new();
    /// l.acquire_timeout(std::time::Duration::from_millis(1)).unwrap();
    /// l.release().unwrap();
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.acquire_mode(Deadline::timeout(timeout))
    }

    #[inline]
    pub(crate) fn acquire_mode(&self, mode: Deadline) -> Result<Acquired, RawError> {
        if self.mutex.is_held_by_current_thread() {
            let c = self.count.load(Ordering::Relaxed);
            let next = c.checked_add(1).ok_or(RawError::Overflow)?;
            self.count.store(next.max(2), Ordering::Relaxed);
            return Ok(if self.mutex.is_consistent() {
                Acquired::Clean
            } else {
                Acquired::Inconsistent
            });
        }
        let a = self.mutex.lock_mode(mode)?;
        self.count.store(1, Ordering::Relaxed);
        Ok(a)
    }

    /// Releases once; [`RawError::NotOwner`] unless the calling thread holds it.
    ///
    /// ```
    /// assert!(shm_sync::RawRLock::new().release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), RawError> {
        if !self.mutex.is_held_by_current_thread() {
            return Err(RawError::NotOwner);
        }
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
            Ok(())
        } else {
            // 1, or a scribbled 0: the last release.
            self.count.store(0, Ordering::Relaxed);
            self.mutex.unlock()
        }
    }

    /// Marks the lock consistent after [`Acquired::OwnerDied`]; only the holder may.
    ///
    /// ```
    /// let l = shm_sync::RawRLock::new();
    /// l.acquire().unwrap();
    /// l.mark_consistent().unwrap();
    /// l.release().unwrap();
    /// ```
    pub fn mark_consistent(&self) -> Result<(), RawError> {
        self.mutex.mark_consistent()
    }

    /// How many times the calling thread holds the lock (0 if it does not).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawRLock::new().depth(), 0);
    /// ```
    pub fn depth(&self) -> u32 {
        if self.mutex.is_held_by_current_thread() {
            self.count.load(Ordering::Relaxed).max(1)
        } else {
            0
        }
    }

    /// Whether the calling thread holds the lock.
    ///
    /// ```
    /// assert!(!shm_sync::RawRLock::new().is_held_by_current_thread());
    /// ```
    pub fn is_held_by_current_thread(&self) -> bool {
        self.mutex.is_held_by_current_thread()
    }
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;

    #[test]
    fn reentrant_and_owner_checked_across_threads() {
        let l = RawRLock::new();
        l.acquire().unwrap();
        l.acquire().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(l.release(), Err(RawError::NotOwner));
                assert_eq!(l.try_acquire(), Err(RawError::WouldBlock));
            });
        });
        l.release().unwrap();
        l.release().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                l.acquire().unwrap();
                l.acquire().unwrap();
            });
        });
        assert_eq!(l.acquire(), Ok(Acquired::OwnerDied));
        assert_eq!(l.depth(), 1);
        l.release().unwrap();
    }
}
