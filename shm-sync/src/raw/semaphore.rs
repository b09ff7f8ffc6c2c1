//! `RawSemaphore`: a permit count, a waiter count and an optional bound.

use std::time::Duration;

use super::{Mode, spin_until};
use crate::RawError;
use crate::atomic::{AtomicU32, Ordering};
use crate::sys;

/// Most permits a semaphore holds.
pub(crate) const MAX_PERMITS: u32 = i32::MAX as u32;

/// A process-shared counting semaphore (Python's `Semaphore`, and `BoundedSemaphore`
/// when it has a bound): 16 bytes, `#[repr(C)]`. All-zero is an unbounded semaphore
/// with no permits.
///
/// A process that dies holding permits does not give them back (permits have no owner).
///
/// ```
/// let sem = shm_sync::RawSemaphore::new(2, 2);
/// sem.acquire();
/// sem.acquire();
/// assert!(sem.try_acquire().is_err());
/// sem.release().unwrap();
/// sem.release().unwrap();
/// assert_eq!(sem.release(), Err(shm_sync::RawError::OverRelease));
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawSemaphore {
    count: AtomicU32,
    waiters: AtomicU32,
    /// 0: unbounded (up to `i32::MAX` permits); otherwise the most permits it holds.
    max: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawSemaphore>() == 16);

impl RawSemaphore {
    crate::atomic::const_fn_unless_loom! {
        /// A semaphore with `value` permits and bound `max` (0 = unbounded).
        ///
        /// ```
        /// let sem = shm_sync::RawSemaphore::new(1, 0);
        /// assert_eq!(sem.value(), 1);
        /// ```
        pub const fn new(value: u32, max: u32) -> RawSemaphore {
            RawSemaphore {
                count: AtomicU32::new(value),
                waiters: AtomicU32::new(0),
                max: AtomicU32::new(max),
                _pad: AtomicU32::new(0),
            }
        }
    }

    /// (Re)initialises in place: `value` permits, bound `max` (0 = unbounded). Only
    /// while no process uses the semaphore.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 0);
    /// sem.init(3, 3);
    /// assert_eq!((sem.value(), sem.max()), (3, Some(3)));
    /// ```
    pub fn init(&self, value: u32, max: u32) {
        self.count.store(value, Ordering::Relaxed);
        self.waiters.store(0, Ordering::Relaxed);
        self.max.store(max, Ordering::Release);
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(1, 0);
    /// sem.acquire();
    /// assert_eq!(sem.value(), 0);
    /// ```
    pub fn acquire(&self) {
        let _ = self.acquire_mode(Mode::forever());
    }

    /// Takes a permit if one is free: [`RawError::WouldBlock`] otherwise.
    ///
    /// ```
    /// assert!(shm_sync::RawSemaphore::new(0, 0).try_acquire().is_err());
    /// ```
    pub fn try_acquire(&self) -> Result<(), RawError> {
        self.acquire_mode(Mode::Try)
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 0);
    /// assert_eq!(sem.acquire_timeout(std::time::Duration::from_millis(2)), Err(shm_sync::RawError::Timeout));
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), RawError> {
        self.acquire_mode(Mode::timeout(timeout))
    }

    fn try_take(&self) -> bool {
        let mut v = self.count.load(Ordering::Relaxed);
        while v != 0 {
            match self
                .count
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => v = x,
            }
        }
        false
    }

    fn acquire_mode(&self, mode: Mode) -> Result<(), RawError> {
        if self.try_take() {
            return Ok(());
        }
        if mode == Mode::Try {
            return Err(RawError::WouldBlock);
        }
        if spin_until(mode, || self.try_take()) {
            return Ok(());
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        let result = loop {
            if self.try_take() {
                break Ok(());
            }
            let Some(sleep) = mode.sleep_for(Duration::from_secs(1)) else {
                break Err(mode.expired());
            };
            if self.count.load(Ordering::SeqCst) == 0 {
                sys::futex_wait(&self.count, 0, Some(sleep));
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        if result.is_err()
            && self.count.load(Ordering::SeqCst) != 0
            && self.waiters.load(Ordering::SeqCst) != 0
        {
            // We may have swallowed a wake meant for a permit we no longer take: pass it on.
            sys::futex_wake(&self.count, 1);
        }
        result
    }

    /// Gives a permit back. [`RawError::OverRelease`] beyond the bound (nothing
    /// changes), [`RawError::Overflow`] beyond `i32::MAX` permits.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 1);
    /// sem.release().unwrap();
    /// assert!(sem.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), RawError> {
        let max = self.max.load(Ordering::Relaxed);
        let mut v = self.count.load(Ordering::Relaxed);
        loop {
            if max != 0 && v >= max {
                return Err(RawError::OverRelease);
            }
            if v >= MAX_PERMITS {
                return Err(RawError::Overflow);
            }
            match self
                .count
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        crate::atomic::seqcst_for_model();
        if self.waiters.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&self.count, 1);
        }
        Ok(())
    }

    /// Free permits (a snapshot; Python's `get_value`).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(4, 0).value(), 4);
    /// ```
    pub fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bound, `None` for an unbounded semaphore.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(4, 0).max(), None);
    /// ```
    pub fn max(&self) -> Option<u32> {
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m != 0)
    }
}
