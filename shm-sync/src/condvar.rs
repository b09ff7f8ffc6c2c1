//! The named [`Condvar`], used with a separate [`Mutex`](crate::Mutex).

use std::time::Duration;

use shm_core::ObjectSpec;

use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::{Acquired, RawCondvar};
use crate::{LockError, LockResult, MutexGuard};

const VERSION: u32 = 1;

/// A process-shared condition variable in its own named segment, used with any
/// [`Mutex`](crate::Mutex) (the lock is passed to `wait` as its guard instead of being
/// bound at construction). For Python's `Condition`, one object that owns its lock
/// (and here, optionally, data), see [`Condition`](crate::Condition).
///
/// Spurious wake-ups happen: wait in a loop that re-checks the condition (or with a
/// deadline). There is no `try_wait`: a wait that does not wait is just a check of the
/// condition under the lock.
///
/// ```
/// use shm_sync::{Condvar, Mutex};
/// let (m, cv) = (Mutex::create(0u8)?, Condvar::create()?);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *m.lock().unwrap() = 1;
///         cv.notify_all();
///     });
///     let mut ready = m.lock().unwrap();
///     while *ready == 0 {
///         ready = cv.wait(ready).unwrap();
///     }
/// });
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Condvar {
    shared: Shared<RawCondvar>,
}

sync_object!(
    Condvar, RawCondvar,
    make: "shm_sync::Condvar::create()", path: "shm_sync::Condvar",
    create() => (), args: "",
    init: (), spec: ObjectSpec::new(kinds::CONDVAR, VERSION), payload: size_of::<RawCondvar>(),
    write: |o, v| Ok(())
);

/// Whether [`Condvar::wait_timeout`] returned because the time ran out.
///
/// ```
/// let (m, cv) = (shm_sync::Mutex::create(0u8)?, shm_sync::Condvar::create()?);
/// let (_g, r) = cv.wait_timeout(m.lock().unwrap(), std::time::Duration::from_millis(1)).unwrap();
/// assert!(r.timed_out());
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(pub(crate) bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because its time ran out.
    ///
    /// ```
    /// use shm_sync::{Condvar, Mutex};
    /// use std::time::Duration;
    /// let (m, cv) = (Mutex::create(0u8)?, Condvar::create()?);
    /// std::thread::scope(|s| {
    ///     let g = m.lock().unwrap();
    ///     s.spawn(|| {
    ///         drop(m.lock().unwrap()); // gets the lock once the waiter has released it
    ///         cv.notify_one();
    ///     });
    ///     let (_g, r) = cv.wait_timeout(g, Duration::from_secs(10)).unwrap();
    ///     assert!(!r.timed_out());
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Unlocks the guard's mutex, waits for a notification, locks it again and returns
    /// the guard. A holder that died meanwhile is reported as by `lock`.
    ///
    /// ```
    /// use shm_sync::{Condvar, Mutex};
    /// let (m, cv) = (Mutex::create(0u32)?, Condvar::create()?);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         *m.lock().unwrap() = 42;
    ///         cv.notify_one();
    ///     });
    ///     let mut g = m.lock().unwrap();
    ///     while *g == 0 {
    ///         g = cv.wait(g).unwrap(); // spurious wake-ups: re-check in a loop
    ///     }
    ///     assert_eq!(*g, 42);
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let r = self.shared.raw().wait(guard.raw());
        self.relocked(guard, r.map(|a| (a, false)))
            .map(|(g, _)| g)
            .map_err(|e| e.map(|(g, _)| g))
    }

    /// [`wait`](Self::wait) for at most `timeout`; the mutex is locked again either
    /// way and [`WaitTimeoutResult`] says whether the time ran out.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (m, cv) = (shm_sync::Mutex::create(0u8)?, shm_sync::Condvar::create()?);
    /// let t = Instant::now();
    /// let (g, r) = cv.wait_timeout(m.lock().unwrap(), Duration::from_millis(20)).unwrap();
    /// assert!(r.timed_out() && t.elapsed() >= Duration::from_millis(20));
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let r = self.shared.raw().wait_timeout(guard.raw(), timeout);
        self.relocked(guard, r)
            .map(|(g, t)| (g, WaitTimeoutResult(t)))
            .map_err(|e| e.map(|(g, t)| (g, WaitTimeoutResult(t))))
    }

    fn relocked<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        r: Result<(Acquired, bool), crate::RawError>,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        match r {
            Ok((Acquired::Clean, t)) => Ok((guard, t)),
            Ok((Acquired::OwnerDied, t)) => Err(LockError::OwnerDied((guard, t))),
            Ok((Acquired::Inconsistent, t)) => Err(LockError::Inconsistent((guard, t))),
            Err(e) => Err(LockError::from_raw(e, self.shared.label(), Duration::ZERO)),
        }
    }

    /// Wakes one waiter.
    ///
    /// ```
    /// shm_sync::Condvar::create()?.notify_one();
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn notify_one(&self) {
        self.shared.raw().notify_one();
    }

    /// Wakes every waiter.
    ///
    /// ```
    /// shm_sync::Condvar::create()?.notify_all();
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn notify_all(&self) {
        self.shared.raw().notify_all();
    }

    /// Wakes up to `n` waiters (Python's `Condition.notify(n)`).
    ///
    /// ```
    /// shm_sync::Condvar::create()?.notify(2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn notify(&self, n: u32) {
        self.shared.raw().notify(n);
    }
}
