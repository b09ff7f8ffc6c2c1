//! The named, typed [`Mutex`] and its guard.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use shm_core::ObjectSpec;

use crate::common::{data_offset, kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::RawMutex;
use crate::{Error, LockError, MutexGuard, Wait};

/// Layout version of a standalone `Mutex` object.
const VERSION: u32 = 1;

/// What the lock calls return: a guard, or why not (see [`LockError`]).
pub type LockResult<G> = Result<G, LockError<G>>;

/// A robust, process-shared mutex protecting a `T` (Python's `Lock`, with data), in
/// its own named segment.
///
/// Create it in one process, [`open`](Self::open) it by name in others. Opening checks
/// the object header, including `T` (size, alignment and type name): opening as
/// another type is [`shm_core::Error::TypeMismatch`].
///
/// When a holder dies (even by `kill -9`), the next locker gets the lock with
/// [`LockError::OwnerDied`]; see the crate docs for how it is detected and what is
/// covered.
///
/// The guard is not `Send`: the lock belongs to the thread that took it.
///
/// ```
/// use shm_sync::Mutex;
/// let m = Mutex::create(0u64)?;
/// let peer = Mutex::<u64>::open(m.name().unwrap())?;         // as another process would
/// *m.lock().unwrap() += 1;
/// assert_eq!(*peer.lock().unwrap(), 1);
/// assert!(Mutex::<u32>::open(m.name().unwrap()).is_err());     // wrong type
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    pub(crate) shared: Shared<RawMutex>,
    _data: PhantomData<T>,
}

sync_object!(
    Mutex<T>, RawMutex,
    make: "shm_sync::Mutex::create(0u32)", path: "shm_sync::Mutex::<u32>",
    create(value: T) => value, args: ", 0u32",
    init: T, spec: ObjectSpec::new(kinds::MUTEX, VERSION).with_type::<T>(std::any::type_name::<T>()), payload: Self::PAYLOAD,
    write: |o, value| {
        let () = Self::ALIGN_OK;
        Ok(o.write_at(Self::DATA, bytemuck::bytes_of(&value))?)
    },
    check: |_s| { let () = Self::ALIGN_OK; Ok::<(), Error>(()) },
    extra: _data = PhantomData
);

impl<T: Pod> Mutex<T> {
    const DATA: usize = data_offset(size_of::<RawMutex>(), align_of::<T>());
    const PAYLOAD: usize = Self::DATA + size_of::<T>();
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= 64,
        "T must not need more than 64-byte alignment"
    );

    #[inline]
    pub(crate) fn raw(&self) -> &RawMutex {
        self.shared.raw()
    }

    #[inline]
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.shared.data_ptr(Self::DATA)
    }

    /// Locks, waiting as long as a live thread holds the lock.
    ///
    /// Errors: [`LockError::OwnerDied`] / [`LockError::Inconsistent`] (with the guard)
    /// after a holder died, [`LockError::WouldDeadlock`] if this thread holds it.
    ///
    /// ```
    /// let m = shm_sync::Mutex::create(0u32)?;
    /// {
    ///     let mut g = m.lock().unwrap();
    ///     *g += 2;
    /// }
    /// assert_eq!(*m.lock().unwrap(), 2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.lock_with(Wait::Forever)
    }

    /// Locks if no live thread holds the lock; [`LockError::WouldBlock`] otherwise.
    ///
    /// ```
    /// let m = shm_sync::Mutex::create(0u32)?;
    /// let g = m.try_lock().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(m.try_lock().is_err())); });
    /// drop(g);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.lock_with(Wait::Try)
    }

    /// Locks, waiting at most `timeout`: [`LockError::Timeout`] after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = shm_sync::Mutex::create(0u32)?;
    /// let _g = m.lock().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(matches!(m.lock_timeout(Duration::from_millis(5)),
    ///                                 Err(shm_sync::LockError::Timeout { .. }))));
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        self.lock_with(Wait::Timeout(timeout))
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> LockResult<MutexGuard<'_, T>> {
        // SAFETY: the data lies in the payload after the lock (offset DATA, checked at
        // create/open), aligned for T (64-byte aligned payload, DATA a multiple of
        // align_of::<T>()); T: Pod is valid for any bytes; every process reaches it only
        // through this lock.
        unsafe {
            MutexGuard::lock_raw(
                self.raw(),
                self.data_ptr().cast::<T>(),
                wait,
                self.shared.label(),
            )
        }
    }

    /// Whether some thread (in any process) holds the lock: a snapshot.
    ///
    /// ```
    /// let m = shm_sync::Mutex::create(0u8)?;
    /// let g = m.lock().unwrap();
    /// assert!(m.is_locked());
    /// drop(g);
    /// assert!(!m.is_locked());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Whether no holder died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::Mutex::create(0u8)?.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.raw().is_consistent()
    }
}
