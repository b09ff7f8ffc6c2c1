//! The named [`RLock`].

use std::marker::PhantomData;
use std::time::Duration;

use shm_core::ObjectSpec;

use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::{Acquired, Deadline, RawRLock};
use crate::{Error, LockError, LockResult, RawError};

const VERSION: u32 = 1;

/// A re-entrant, robust, process-shared lock (Python's `multiprocessing.RLock`) in its
/// own named segment.
///
/// Two styles: guards ([`lock`](Self::lock), released on drop), or Python's
/// [`acquire`](Self::acquire) / [`release`](Self::release), where release by a thread
/// that does not hold the lock is [`Error::NotOwner`]. A holder's death is reported to
/// the next acquirer, as for [`Mutex`](crate::Mutex).
///
/// ```
/// let l = shm_sync::RLock::create()?;
/// let outer = l.lock().unwrap();
/// let inner = l.lock().unwrap();   // same thread: fine
/// assert_eq!(l.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(l.release().is_err());   // not held
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct RLock {
    shared: Shared<RawRLock>,
}

sync_object!(
    RLock, RawRLock,
    make: "shm_sync::RLock::create()", path: "shm_sync::RLock",
    create() => (), args: "",
    init: (), spec: ObjectSpec::new(kinds::RLOCK, VERSION), payload: size_of::<RawRLock>(),
    write: |o, v| Ok(())
);

impl RLock {
    fn guard(&self, r: Result<Acquired, RawError>, waited: Duration) -> LockResult<RLockGuard<'_>> {
        let guard = || RLockGuard {
            lock: self,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(guard()),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
            Ok(Acquired::Inconsistent) => Err(LockError::Inconsistent(guard())),
            Err(e) => Err(LockError::from_raw(e, self.shared.label(), waited)),
        }
    }

    /// Acquires (once more, if this thread holds it) and returns a guard that releases
    /// once on drop.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// let _g = l.lock().unwrap();
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        self.guard(self.shared.raw().acquire(), Duration::ZERO)
    }

    /// [`lock`](Self::lock) without waiting: [`LockError::WouldBlock`] if another
    /// live thread holds it.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// let _g = l.try_lock().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(l.try_lock().is_err())); });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_lock(&self) -> LockResult<RLockGuard<'_>> {
        self.guard(self.shared.raw().try_acquire(), Duration::ZERO)
    }

    /// [`lock`](Self::lock), waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// let _g = l.lock_timeout(std::time::Duration::from_millis(1)).unwrap();
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<RLockGuard<'_>> {
        self.guard(
            self.shared.raw().acquire_mode(Deadline::timeout(timeout)),
            timeout,
        )
    }

    /// Python-style acquire without a guard: pair it with [`release`](Self::release).
    /// A holder's death is `Ok(Acquired::OwnerDied)` here.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// assert_eq!(l.acquire()?, shm_sync::Acquired::Clean);
    /// l.release()?;
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<Acquired, Error> {
        self.shared
            .raw()
            .acquire()
            .map_err(|e| Error::from_raw(e, self.shared.label(), Duration::ZERO))
    }

    /// Python-style acquire waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// l.acquire_timeout(std::time::Duration::from_millis(1))?;
    /// l.release()?;
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Acquired, Error> {
        self.shared
            .raw()
            .acquire_timeout(timeout)
            .map_err(|e| Error::from_raw(e, self.shared.label(), timeout))
    }

    /// Releases once; [`Error::NotOwner`] unless the calling thread holds the lock.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// assert!(matches!(l.release(), Err(shm_sync::Error::NotOwner { .. })));
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn release(&self) -> Result<(), Error> {
        self.shared
            .raw()
            .release()
            .map_err(|e| Error::from_raw(e, self.shared.label(), Duration::ZERO))
    }

    /// Marks the lock consistent after a holder's death; only the holder may.
    ///
    /// ```
    /// let l = shm_sync::RLock::create()?;
    /// l.acquire()?;
    /// l.mark_consistent()?;
    /// l.release()?;
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn mark_consistent(&self) -> Result<(), Error> {
        self.shared
            .raw()
            .mark_consistent()
            .map_err(|e| Error::from_raw(e, self.shared.label(), Duration::ZERO))
    }

    /// How many times the calling thread holds the lock.
    ///
    /// ```
    /// assert_eq!(shm_sync::RLock::create()?.depth(), 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn depth(&self) -> u32 {
        self.shared.raw().depth()
    }
}

/// One level of an [`RLock`] held by this thread; released on drop.
///
/// ```
/// let l = shm_sync::RLock::create()?;
/// let g = l.lock().unwrap();
/// g.mark_consistent();
/// # Ok::<(), shm_sync::Error>(())
/// ```
///
/// Not `Send`:
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let l = shm_sync::RLock::create().unwrap();
/// needs_send(l.lock().unwrap());
/// ```
#[derive(Debug)]
#[must_use = "if unused the RLock is released at once"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Marks the lock consistent after a holder's death.
    ///
    /// ```
    /// use shm_sync::{LockError, RLock};
    /// let l = RLock::create()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| std::mem::forget(l.lock().unwrap())); // this thread ends holding it
    /// });
    /// let Err(LockError::OwnerDied(g)) = l.lock() else {
    ///     panic!("expected OwnerDied");
    /// };
    /// g.mark_consistent();
    /// drop(g);
    /// assert!(l.lock().is_ok()); // without mark_consistent: LockError::Inconsistent
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn mark_consistent(&self) {
        let _ = self.lock.shared.raw().mark_consistent();
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.shared.raw().release();
    }
}
