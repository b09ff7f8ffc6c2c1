//! The named [`Condition`]: Python's `multiprocessing.Condition`, one object that owns
//! its lock (and, here, optionally the data the lock protects).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use shm_core::ObjectSpec;

use crate::common::{data_offset, kinds, sync_object};
use crate::inplace::{InPlace, Shared};
use crate::raw::{Acquired, RawCondvar, RawMutex};
use crate::{Error, LockError, LockResult, MutexGuard, RawError, Wait, WaitTimeoutResult};

/// Layout version of a `Condition` object.
const VERSION: u32 = 1;

/// The start of a `Condition`'s payload: its lock, then its condition variable; the
/// data follows.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ConditionWords {
    mutex: RawMutex,
    condvar: RawCondvar,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<ConditionWords>() == 24 && align_of::<ConditionWords>() == 8);

// SAFETY: `#[repr(C)]` and made only of `RawMutex` and `RawCondvar`, which are
// themselves `#[repr(C)]` groups of atomics (`InPlace`): valid for any bit pattern and
// for concurrent access from any process.
unsafe impl InPlace for ConditionWords {}

/// A process-shared condition (Python's `multiprocessing.Condition`): one named
/// segment holding a robust lock, a condition variable and a `T` (none by default), so
/// one name is all another process needs.
///
/// Python's `with cond:` is [`lock`](Self::lock) (the guard dereferences to the data);
/// `cond.wait()`, `cond.wait(timeout)` and `cond.wait_for(predicate, timeout)` are
/// [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout) and
/// [`wait_for`](Self::wait_for), which take the guard and hand it back locked;
/// `notify()`, `notify(n)` and `notify_all()` are [`notify`](Self::notify),
/// [`notify_n`](Self::notify_n) and [`notify_all`](Self::notify_all). Unlike Python,
/// notifying does not require holding the lock.
///
/// A holder that dies (even by `kill -9`) is reported to the next locker, and to a
/// waiter re-locking after its wait, as [`LockError::OwnerDied`], as for
/// [`Mutex`](crate::Mutex). Opening checks the kind and `T` (size, alignment, name).
///
/// ```
/// use shm_sync::Condition;
/// let cond = Condition::create(0u32)?;
/// let peer = Condition::<u32>::open(cond.name().unwrap())?;     // as another process would
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *peer.lock().unwrap() = 7;
///         peer.notify_all();
///     });
///     let (g, ok) = cond.wait_for(cond.lock().unwrap(), |v| *v != 0, None).unwrap();
///     assert!(ok);
///     assert_eq!(*g, 7);
/// });
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Condition<T: Pod = ()> {
    shared: Shared<ConditionWords>,
    _data: PhantomData<T>,
}

sync_object!(
    Condition<T>, ConditionWords,
    make: "shm_sync::Condition::create(0u32)", path: "shm_sync::Condition::<u32>",
    create(value: T) => value, args: ", 0u32",
    init: T, spec: ObjectSpec::new(kinds::CONDITION, VERSION).with_type::<T>(std::any::type_name::<T>()), payload: Self::PAYLOAD,
    write: |o, value| {
        let () = Self::ALIGN_OK;
        Ok(o.write_at(Self::DATA, bytemuck::bytes_of(&value))?)
    },
    check: |_s| { let () = Self::ALIGN_OK; Ok::<(), Error>(()) },
    extra: _data = PhantomData
);

impl<T: Pod> Condition<T> {
    const DATA: usize = data_offset(size_of::<ConditionWords>(), align_of::<T>());
    const PAYLOAD: usize = Self::DATA + size_of::<T>();
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= 64,
        "T must not need more than 64-byte alignment"
    );

    #[inline]
    fn mutex(&self) -> &RawMutex {
        &self.shared.raw().mutex
    }

    #[inline]
    fn condvar(&self) -> &RawCondvar {
        &self.shared.raw().condvar
    }

    /// Locks, waiting as long as a live thread holds the lock (Python's `acquire()` or
    /// `with cond:`); the guard unlocks on drop and dereferences to the data.
    ///
    /// Errors: [`LockError::OwnerDied`] / [`LockError::Inconsistent`] (with the guard)
    /// after a holder died, [`LockError::WouldDeadlock`] if this thread holds it.
    ///
    /// ```
    /// let c = shm_sync::Condition::create(0u32)?;
    /// *c.lock().unwrap() += 2;
    /// assert_eq!(*c.lock().unwrap(), 2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<ConditionGuard<'_, T>> {
        self.lock_with(Wait::Forever)
    }

    /// Locks if no live thread holds the lock (Python's `acquire(False)`);
    /// [`LockError::WouldBlock`] otherwise.
    ///
    /// ```
    /// let c = shm_sync::Condition::create(())?;
    /// let g = c.try_lock().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(c.try_lock().is_err())); });
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> LockResult<ConditionGuard<'_, T>> {
        self.lock_with(Wait::Try)
    }

    /// Locks, waiting at most `timeout` (Python's `acquire(timeout=t)`);
    /// [`LockError::Timeout`] after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = shm_sync::Condition::create(())?;
    /// let _g = c.lock().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(matches!(c.lock_timeout(Duration::from_millis(5)),
    ///                                 Err(shm_sync::LockError::Timeout { .. }))));
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ConditionGuard<'_, T>> {
        self.lock_with(Wait::Timeout(timeout))
    }

    /// Whether some thread (in any process) holds the lock: a snapshot.
    ///
    /// ```
    /// let c = shm_sync::Condition::create(())?;
    /// let g = c.lock().unwrap();
    /// assert!(c.is_locked());
    /// drop(g);
    /// assert!(!c.is_locked());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.mutex().is_locked()
    }

    /// Whether no holder died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::Condition::create(())?.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.mutex().is_consistent()
    }

    /// The guard must come from this handle: its lock is the one `wait` releases.
    #[inline]
    fn lock_with(&self, wait: Wait) -> LockResult<ConditionGuard<'_, T>> {
        // SAFETY: the data lies in the payload after the lock words (offset DATA, length
        // checked at create/open), aligned for T (64-byte aligned payload, DATA a
        // multiple of align_of::<T>()); T: Pod is valid for any bytes; every process
        // reaches it only through this lock.
        unsafe {
            MutexGuard::lock_raw(
                self.mutex(),
                self.shared.data_ptr(Self::DATA).cast::<T>(),
                wait,
                self.shared.label(),
            )
        }
    }

    fn check_guard(&self, guard: &ConditionGuard<'_, T>) {
        assert!(
            std::ptr::eq(guard.raw(), self.mutex()),
            "a guard of another Condition handle passed to {}",
            self.shared.label()
        );
    }

    /// Unlocks, waits for a notification, locks again and hands the guard back
    /// (Python's `wait()`). Wake-ups may be spurious: re-check the condition in a loop,
    /// or use [`wait_for`](Self::wait_for). A holder that died while this thread waited
    /// is reported as by [`lock`](Self::lock).
    ///
    /// # Panics
    /// If `guard` comes from another `Condition` handle (as std's `Condvar` does when
    /// used with two mutexes).
    ///
    /// ```
    /// let c = shm_sync::Condition::create(0u32)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         *c.lock().unwrap() = 42;
    ///         c.notify();
    ///     });
    ///     let mut g = c.lock().unwrap();
    ///     while *g == 0 {
    ///         g = c.wait(g).unwrap();
    ///     }
    ///     assert_eq!(*g, 42);
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait<'a>(&self, guard: ConditionGuard<'a, T>) -> LockResult<ConditionGuard<'a, T>> {
        self.check_guard(&guard);
        let r = self.condvar().wait(self.mutex());
        self.relocked(guard, r.map(|a| (a, false)))
            .map(|(g, _)| g)
            .map_err(|e| e.map(|(g, _)| g))
    }

    /// [`wait`](Self::wait) for at most `timeout` (Python's `wait(timeout)`); the lock
    /// is held again either way and [`WaitTimeoutResult`] says whether the time ran out.
    ///
    /// # Panics
    /// If `guard` comes from another `Condition` handle.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let c = shm_sync::Condition::create(())?;
    /// let t = Instant::now();
    /// let (g, r) = c.wait_timeout(c.lock().unwrap(), Duration::from_millis(20)).unwrap();
    /// assert!(r.timed_out() && t.elapsed() >= Duration::from_millis(20));
    /// assert!(c.is_locked());
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_timeout<'a>(
        &self,
        guard: ConditionGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(ConditionGuard<'a, T>, WaitTimeoutResult)> {
        self.check_guard(&guard);
        let r = self.condvar().wait_timeout(self.mutex(), timeout);
        self.relocked(guard, r)
            .map(|(g, t)| (g, WaitTimeoutResult(t)))
            .map_err(|e| e.map(|(g, t)| (g, WaitTimeoutResult(t))))
    }

    /// Waits until `predicate` holds for the data (Python's
    /// `wait_for(predicate, timeout)`): checks it first, then waits and re-checks after
    /// every wake-up, for at most `timeout` (`None`: as long as it takes). Returns the
    /// guard and, as Python does, the predicate's last value: `false` only when the
    /// time ran out first.
    ///
    /// If a holder died while this thread waited, the loop stops at once with
    /// [`LockError::OwnerDied`] / [`LockError::Inconsistent`], carrying the guard and the
    /// predicate's value on the (possibly half-updated) data.
    ///
    /// # Panics
    /// If `guard` comes from another `Condition` handle.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = shm_sync::Condition::create(0u32)?;
    /// // Nobody changes the data: false after the timeout, lock held again.
    /// let (g, ok) = c.wait_for(c.lock().unwrap(), |v| *v > 0, Some(Duration::from_millis(10))).unwrap();
    /// assert!(!ok);
    /// drop(g);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         for _ in 0..3 {
    ///             *c.lock().unwrap() += 1;
    ///             c.notify_all();
    ///         }
    ///     });
    ///     let (g, ok) = c.wait_for(c.lock().unwrap(), |v| *v == 3, None).unwrap();
    ///     assert!(ok && *g == 3);
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_for<'a>(
        &self,
        guard: ConditionGuard<'a, T>,
        mut predicate: impl FnMut(&T) -> bool,
        timeout: Option<Duration>,
    ) -> LockResult<(ConditionGuard<'a, T>, bool)> {
        self.check_guard(&guard);
        // A deadline too far to represent is no deadline.
        let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
        loop {
            if predicate(&guard) {
                return Ok((guard, true));
            }
            let r = match (timeout, deadline) {
                (Some(_), Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok((guard, false));
                    }
                    self.condvar().wait_timeout(self.mutex(), left)
                }
                _ => self.condvar().wait(self.mutex()).map(|a| (a, false)),
            };
            match r {
                Ok((Acquired::Clean, _)) => {}
                Ok((Acquired::OwnerDied, _)) => {
                    let holds = predicate(&guard);
                    return Err(LockError::OwnerDied((guard, holds)));
                }
                Ok((Acquired::Inconsistent, _)) => {
                    let holds = predicate(&guard);
                    return Err(LockError::Inconsistent((guard, holds)));
                }
                Err(e) => return Err(LockError::from_raw(e, self.shared.label(), Duration::ZERO)),
            }
        }
    }

    fn relocked<'a>(
        &self,
        guard: ConditionGuard<'a, T>,
        r: Result<(Acquired, bool), RawError>,
    ) -> LockResult<(ConditionGuard<'a, T>, bool)> {
        match r {
            Ok((Acquired::Clean, t)) => Ok((guard, t)),
            Ok((Acquired::OwnerDied, t)) => Err(LockError::OwnerDied((guard, t))),
            Ok((Acquired::Inconsistent, t)) => Err(LockError::Inconsistent((guard, t))),
            // The lock may not be held any more: dropping the guard then fails to unlock
            // (not the owner), which changes nothing.
            Err(e) => Err(LockError::from_raw(e, self.shared.label(), Duration::ZERO)),
        }
    }

    /// Wakes one waiter, if any (Python's `notify()`).
    ///
    /// ```
    /// let c = shm_sync::Condition::create(0u8)?;
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| *c.wait_for(c.lock().unwrap(), |ready| *ready == 1, None).unwrap().0);
    ///     *c.lock().unwrap() = 1;
    ///     c.notify();
    ///     assert_eq!(waiter.join().unwrap(), 1);
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notify(&self) {
        self.condvar().notify_one();
    }

    /// Wakes up to `n` waiters (Python's `notify(n)`).
    ///
    /// ```
    /// let c = shm_sync::Condition::create(0u8)?;
    /// std::thread::scope(|s| {
    ///     let ws: Vec<_> = (0..2)
    ///         .map(|_| s.spawn(|| *c.wait_for(c.lock().unwrap(), |v| *v == 1, None).unwrap().0))
    ///         .collect();
    ///     *c.lock().unwrap() = 1;
    ///     c.notify_n(2);
    ///     for w in ws {
    ///         assert_eq!(w.join().unwrap(), 1);
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notify_n(&self, n: u32) {
        self.condvar().notify(n);
    }

    /// Wakes every waiter (Python's `notify_all()`).
    ///
    /// ```
    /// let c = shm_sync::Condition::create(0u8)?;
    /// std::thread::scope(|s| {
    ///     let ws: Vec<_> = (0..3)
    ///         .map(|_| s.spawn(|| c.wait_for(c.lock().unwrap(), |v| *v != 0, None).unwrap().1))
    ///         .collect();
    ///     *c.lock().unwrap() = 9;
    ///     c.notify_all();
    ///     assert!(ws.into_iter().all(|w| w.join().unwrap()));
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notify_all(&self) {
        self.condvar().notify_all();
    }
}

/// The guard of a [`Condition`]'s lock: the workspace's one [`MutexGuard`], dereferencing
/// to the Condition's data.
///
/// ```
/// let c = shm_sync::Condition::create(5u32)?;
/// let g: shm_sync::ConditionGuard<'_, u32> = c.lock().unwrap();
/// assert_eq!(*g, 5);
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub type ConditionGuard<'a, T> = MutexGuard<'a, T>;
