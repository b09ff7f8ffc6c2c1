//! The named [`Lock`]: Python's `multiprocessing.Lock`, a [`Mutex`] with no data.

use std::time::Duration;

use crate::{Error, LockResult, Mutex, MutexGuard};

/// What [`Lock::lock`] holds: a [`MutexGuard`] over no data; the lock is released when
/// it drops.
///
/// ```
/// let l = shm_sync::Lock::create()?;
/// let g: shm_sync::LockGuard<'_> = l.lock().unwrap();
/// assert!(l.is_locked());
/// drop(g);
/// assert!(!l.is_locked());
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub type LockGuard<'a> = MutexGuard<'a, ()>;

/// A robust, process-shared lock with no data (Python's `multiprocessing.Lock`) in its
/// own named segment.
///
/// Python's `acquire()` / `release()` are [`lock`](Self::lock) and dropping the
/// guard; `acquire(block=False)` is [`try_lock`](Self::try_lock) and
/// `acquire(timeout=t)` is [`lock_timeout`](Self::lock_timeout). A holder that dies is
/// reported to the next locker as [`LockError::OwnerDied`](crate::LockError::OwnerDied),
/// as for [`Mutex`].
///
/// On disk it is a `Mutex<()>`: `Mutex::<()>::open` opens a `Lock` and the other way
/// round.
///
/// ```
/// use shm_sync::Lock;
/// let lock = Lock::create()?;
/// let peer = Lock::open(lock.name().unwrap())?;            // as another process would
/// let g = lock.lock().unwrap();
/// std::thread::scope(|s| { s.spawn(|| assert!(peer.try_lock().is_err())); });
/// drop(g);
/// assert!(peer.try_lock().is_ok());
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Lock {
    mutex: Mutex<()>,
}

impl Lock {
    /// Locks, waiting as long as a live thread holds the lock (Python's `acquire()`);
    /// dropping the guard releases it.
    ///
    /// Errors: [`LockError::OwnerDied`](crate::LockError::OwnerDied) /
    /// [`Inconsistent`](crate::LockError::Inconsistent) (with the guard) after a holder
    /// died, [`WouldDeadlock`](crate::LockError::WouldDeadlock) if this thread holds it.
    ///
    /// ```
    /// let l = shm_sync::Lock::create()?;
    /// let g = l.lock().unwrap();
    /// assert!(matches!(l.lock(), Err(shm_sync::LockError::WouldDeadlock { .. })));
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.mutex.lock()
    }

    /// Locks if no live thread holds the lock (Python's `acquire(block=False)`);
    /// [`LockError::WouldBlock`](crate::LockError::WouldBlock) otherwise.
    ///
    /// ```
    /// let l = shm_sync::Lock::create()?;
    /// let g = l.try_lock().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(l.try_lock().is_err())); });
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> LockResult<LockGuard<'_>> {
        self.mutex.try_lock()
    }

    /// Locks, waiting at most `timeout` (Python's `acquire(timeout=t)`);
    /// [`LockError::Timeout`](crate::LockError::Timeout) after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = shm_sync::Lock::create()?;
    /// let _g = l.lock().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(matches!(l.lock_timeout(Duration::from_millis(5)),
    ///                                 Err(shm_sync::LockError::Timeout { .. }))));
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
        self.mutex.lock_timeout(timeout)
    }

    /// Whether some thread (in any process) holds the lock: a snapshot.
    ///
    /// ```
    /// let l = shm_sync::Lock::create()?;
    /// let g = l.lock().unwrap();
    /// assert!(l.is_locked());
    /// drop(g);
    /// assert!(!l.is_locked());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }

    /// Whether no holder died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::Lock::create()?.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.mutex.is_consistent()
    }
}

impl shm_core::SharedObject for Lock {
    type Error = Error;
    type Init = ();

    /// On memory a `Lock` is a `Mutex<()>`: each opens the other.
    fn layout() -> shm_core::Layout {
        <Mutex<()> as shm_core::SharedObject>::layout()
    }

    fn payload_len(init: &()) -> Result<usize, Error> {
        <Mutex<()> as shm_core::SharedObject>::payload_len(init)
    }

    fn init_payload(object: &shm_core::Object, init: ()) -> Result<(), Error> {
        <Mutex<()> as shm_core::SharedObject>::init_payload(object, init)
    }

    fn attach(object: shm_core::Object) -> Result<Self, Error> {
        Ok(Lock {
            mutex: <Mutex<()> as shm_core::SharedObject>::attach(object)?,
        })
    }

    fn object(&self) -> &shm_core::Object {
        self.mutex.object()
    }

    fn object_mut(&mut self) -> &mut shm_core::Object {
        shm_core::SharedObject::object_mut(&mut self.mutex)
    }
}

shm_core::object_methods!(
    Lock, Error, "shm_sync::Lock::create()", "shm_sync::Lock",
    create() => (), args: ""
);
