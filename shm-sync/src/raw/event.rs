//! `RawEvent`: one word, a flag and a waiters bit.

use std::time::Duration;

use super::{Deadline, SLICE, spin_until};
use crate::RawError;
use crate::atomic::{AtomicU32, Ordering};
use crate::sys;

const SET: u32 = 1;
const WAITERS: u32 = 2;

/// A process-shared event (Python's `multiprocessing.Event`): 8 bytes, `#[repr(C)]`,
/// all-zero is "not set".
///
/// `set` wakes every waiter and leaves the flag set until `clear`.
///
/// ```
/// let ev = shm_sync::RawEvent::new();
/// std::thread::scope(|s| {
///     s.spawn(|| ev.wait());
///     ev.set();
/// });
/// assert!(ev.is_set());
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawEvent {
    word: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawEvent>() == 8);

impl RawEvent {
    crate::atomic::const_fn_unless_loom! {
        /// An event that is not set.
        ///
        /// ```
        /// assert!(!shm_sync::RawEvent::new().is_set());
        /// ```
        pub const fn new() -> RawEvent {
            RawEvent {
                word: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
            }
        }
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// ```
    /// let ev = shm_sync::RawEvent::new();
    /// ev.set();
    /// assert!(ev.is_set());
    /// ```
    pub fn set(&self) {
        if self.word.load(Ordering::Acquire) == SET {
            return;
        }
        let old = self.word.swap(SET, Ordering::Release);
        if old & WAITERS != 0 {
            sys::futex_wake_all(&self.word);
        }
    }

    /// Clears the flag.
    ///
    /// ```
    /// let ev = shm_sync::RawEvent::new();
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// ```
    pub fn clear(&self) {
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// assert!(!shm_sync::RawEvent::new().is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Waits until the flag is set.
    ///
    /// ```
    /// let ev = shm_sync::RawEvent::new();
    /// ev.set();
    /// ev.wait();
    /// ```
    pub fn wait(&self) {
        let _ = self.wait_mode(Deadline::Forever);
    }

    /// Waits at most `timeout` for the flag: [`RawError::Timeout`] if still unset.
    ///
    /// ```
    /// let ev = shm_sync::RawEvent::new();
    /// assert!(ev.wait_timeout(std::time::Duration::from_millis(2)).is_err());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), RawError> {
        self.wait_mode(Deadline::timeout(timeout))
    }

    /// `Ok` if the flag is set, [`RawError::WouldBlock`] otherwise.
    ///
    /// ```
    /// assert!(shm_sync::RawEvent::new().try_wait().is_err());
    /// ```
    pub fn try_wait(&self) -> Result<(), RawError> {
        self.wait_mode(Deadline::Try)
    }

    fn wait_mode(&self, mode: Deadline) -> Result<(), RawError> {
        if spin_until(mode, || self.is_set()) {
            return Ok(());
        }
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v & SET != 0 {
                return Ok(());
            }
            // In slices: a setter that stored SET and died before its futex wake (or a
            // scribbled word) must not leave us asleep; a slice that ends re-reads.
            let Some(sleep) = mode.sleep_for(SLICE) else {
                return Err(mode.expired());
            };
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            sys::futex_wait(&self.word, v | WAITERS, Some(sleep));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod dead_setter_tests {
    use super::*;

    #[test]
    fn a_setter_that_died_before_waking_does_not_strand_waiters() {
        use shm_core::testing::{BlockedIn, Task, current_tid, wait_until_blocked};
        let ev = &RawEvent::new();
        std::thread::scope(|s| {
            let (tx, tid) = std::sync::mpsc::channel();
            let waiter = s.spawn(move || {
                tx.send(current_tid()).unwrap();
                ev.wait();
                std::time::Instant::now()
            });
            // Asleep in the futex, not merely registered: the store below must not be
            // seen on the way in.
            wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
            assert_ne!(ev.word.load(Ordering::Relaxed) & WAITERS, 0);
            // What a setter killed between its store and its futex wake leaves behind.
            ev.word.fetch_or(SET, Ordering::Release);
            let set = std::time::Instant::now();
            let waited = waiter.join().unwrap().saturating_duration_since(set);
            // Seconds, not the slice: machines running tests are busy.
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        });
    }
}
