//! `RawCondvar`: a sequence number to wait on, used with a [`RawMutex`].

use std::time::Duration;

use super::{Acquired, Deadline, RawMutex, SLICE};
use crate::RawError;
use crate::atomic::{AtomicU32, Ordering};
use crate::sys;

/// A process-shared condition variable: 8 bytes, `#[repr(C)]`, all-zero is initial.
///
/// `wait` reads the sequence, unlocks the mutex, sleeps until the sequence moves (or the
/// timeout), and locks the mutex again (reporting a dead holder met on the way back, as
/// `lock` does). Spurious wake-ups happen: wait in a loop that checks the condition.
///
/// ```
/// use shm_sync::{RawCondvar, RawMutex};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let (m, cv, ready) = (RawMutex::new(), RawCondvar::new(), AtomicBool::new(false));
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         m.lock().unwrap();
///         ready.store(true, Ordering::Relaxed);
///         cv.notify_all();
///         m.unlock().unwrap();
///     });
///     m.lock().unwrap();
///     while !ready.load(Ordering::Relaxed) {
///         cv.wait(&m).unwrap();
///     }
///     m.unlock().unwrap();
/// });
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawCondvar {
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawCondvar>() == 8);

impl RawCondvar {
    crate::atomic::const_fn_unless_loom! {
        /// A condition variable nobody waits on.
        ///
        /// ```
        /// static CV: shm_sync::RawCondvar = shm_sync::RawCondvar::new();
        /// CV.notify_one();
        /// ```
        pub const fn new() -> RawCondvar {
            RawCondvar {
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            }
        }
    }

    /// Unlocks `mutex` (which the caller must hold: [`RawError::NotOwner`] otherwise),
    /// waits for a notification and locks it again.
    ///
    /// ```
    /// use shm_sync::{Acquired, RawCondvar, RawError, RawMutex};
    /// let (m, cv) = (RawMutex::new(), RawCondvar::new());
    /// assert_eq!(cv.wait(&m), Err(RawError::NotOwner)); // the caller must hold the mutex
    /// m.lock().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         m.lock().unwrap();
    ///         cv.notify_one();
    ///         m.unlock().unwrap();
    ///     });
    ///     assert_eq!(cv.wait(&m), Ok(Acquired::Clean));
    ///     assert!(m.is_held_by_current_thread()); // locked again on return
    ///     m.unlock().unwrap();
    /// });
    /// ```
    pub fn wait(&self, mutex: &RawMutex) -> Result<Acquired, RawError> {
        self.wait_mode(mutex, None).map(|(a, _)| a)
    }

    /// [`wait`](Self::wait) for at most `timeout`; the `bool` says whether it timed out.
    /// The mutex is locked again in either case.
    ///
    /// ```
    /// let (m, cv) = (shm_sync::RawMutex::new(), shm_sync::RawCondvar::new());
    /// m.lock().unwrap();
    /// let (_, timed_out) = cv.wait_timeout(&m, std::time::Duration::from_millis(5)).unwrap();
    /// assert!(timed_out);
    /// assert!(m.is_held_by_current_thread());
    /// m.unlock().unwrap();
    /// ```
    pub fn wait_timeout(
        &self,
        mutex: &RawMutex,
        timeout: Duration,
    ) -> Result<(Acquired, bool), RawError> {
        self.wait_mode(mutex, Some(timeout))
    }

    fn wait_mode(
        &self,
        mutex: &RawMutex,
        timeout: Option<Duration>,
    ) -> Result<(Acquired, bool), RawError> {
        if !mutex.is_held_by_current_thread() {
            return Err(RawError::NotOwner);
        }
        let mode = timeout.map_or(Deadline::Forever, Deadline::timeout);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        let seq = self.seq.load(Ordering::SeqCst);
        mutex.unlock()?;
        // In slices: a notifier that bumped `seq` and died before its futex wake must
        // not leave us asleep, so a slice that ends re-reads `seq` (a changed one is a
        // notification; condition variables may wake spuriously anyway).
        let woken = loop {
            let Some(sleep) = mode.sleep_for(SLICE) else {
                break sys::Wake::TimedOut;
            };
            if sys::futex_wait(&self.seq, seq, Some(sleep)) == sys::Wake::Woken
                || self.seq.load(Ordering::SeqCst) != seq
            {
                break sys::Wake::Woken;
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        let timed_out = woken == sys::Wake::TimedOut && self.seq.load(Ordering::Relaxed) == seq;
        let acquired = mutex.lock()?;
        Ok((acquired, timed_out))
    }

    /// Wakes one waiter (if any).
    ///
    /// ```
    /// shm_sync::RawCondvar::new().notify_one();
    /// ```
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes every waiter.
    ///
    /// ```
    /// shm_sync::RawCondvar::new().notify_all();
    /// ```
    pub fn notify_all(&self) {
        self.notify(i32::MAX as u32);
    }

    /// Wakes up to `n` waiters (Python's `Condition.notify(n)`).
    ///
    /// ```
    /// shm_sync::RawCondvar::new().notify(3);
    /// ```
    pub fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        // A dead waiter leaves the count high: that costs a futex call, never a lost wake.
        if self.waiters.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&self.seq, n);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod dead_notifier_tests {
    use super::*;

    #[test]
    fn a_notifier_that_died_before_waking_does_not_strand_waiters() {
        use shm_core::testing::{BlockedIn, Task, current_tid, wait_until_blocked};
        let (m, cv) = (&RawMutex::new(), &RawCondvar::new());
        std::thread::scope(|s| {
            let (tx, tid) = std::sync::mpsc::channel();
            let waiter = s.spawn(move || {
                tx.send(current_tid()).unwrap();
                m.lock().unwrap();
                cv.wait(m).unwrap();
                m.unlock().unwrap();
                std::time::Instant::now()
            });
            // Asleep in the futex, not merely registered: the bump below must not be
            // seen on the way in.
            wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
            assert_ne!(cv.waiters.load(Ordering::Relaxed), 0);
            // What a notifier killed between its `seq` bump and its futex wake leaves.
            cv.seq.fetch_add(1, Ordering::SeqCst);
            let bumped = std::time::Instant::now();
            let waited = waiter.join().unwrap().saturating_duration_since(bumped);
            // Seconds, not the slice: machines running tests are busy.
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        });
    }
}
