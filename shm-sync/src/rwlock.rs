//! The named, typed [`RwLock`] and its guards.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use shm_core::ObjectSpec;

use crate::common::{data_offset, kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::{Acquired, Mode, RawRwLock};
use crate::{Error, LockError, LockResult, RawError};

const VERSION: u32 = 1;

/// A process-shared reader-writer lock protecting a `T`, in its own named segment.
///
/// Writers are robust (a dead writer is reported to the next reader or writer as
/// [`LockError::OwnerDied`]); readers are not: a reader that dies holding the lock
/// keeps writers out until their timeout (see [`RawRwLock`]). Writers are preferred, so
/// a thread must not take the read lock twice.
///
/// ```
/// let l = shm_sync::RwLock::create([0u32; 4])?;
/// l.write().unwrap()[0] = 9;
/// let (a, b) = (l.read().unwrap(), l.read().unwrap());
/// assert_eq!(a[0] + b[0], 18);
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct RwLock<T: Pod> {
    pub(crate) shared: Shared<RawRwLock>,
    _data: PhantomData<T>,
}

sync_object!(
    RwLock<T>, RawRwLock,
    make: "shm_sync::RwLock::create(0u32)", path: "shm_sync::RwLock::<u32>",
    create(value: T) => value, args: ", 0u32",
    init: T, spec: ObjectSpec::new(kinds::RWLOCK, VERSION).with_type::<T>(std::any::type_name::<T>()), payload: Self::PAYLOAD,
    write: |o, value| {
        let () = Self::ALIGN_OK;
        Ok(o.write_at(Self::DATA, bytemuck::bytes_of(&value))?)
    },
    check: |_s| { let () = Self::ALIGN_OK; Ok::<(), Error>(()) },
    extra: _data = PhantomData
);

impl<T: Pod> RwLock<T> {
    const DATA: usize = data_offset(size_of::<RawRwLock>(), align_of::<T>());
    const PAYLOAD: usize = Self::DATA + size_of::<T>();
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= 64,
        "T must not need more than 64-byte alignment"
    );

    #[inline]
    fn raw(&self) -> &RawRwLock {
        self.shared.raw()
    }

    #[inline]
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.shared.data_ptr(Self::DATA)
    }

    /// Takes a read lock, waiting while a live writer holds or waits for the lock.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// assert_eq!(*l.read().unwrap(), 1);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw().read(), Duration::ZERO)
    }

    /// Takes a read lock if no writer holds or waits for it.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// let w = l.write().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(l.try_read().is_err())); });
    /// drop(w);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw().try_read(), Duration::ZERO)
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// assert!(l.read_timeout(std::time::Duration::from_millis(5)).is_ok());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw().read_mode(Mode::timeout(timeout)), timeout)
    }

    /// Takes the write lock, waiting as long as it takes.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// *l.write().unwrap() = 2;
    /// assert_eq!(*l.read().unwrap(), 2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw().write(), Duration::ZERO)
    }

    /// Takes the write lock if nobody holds the lock.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// let r = l.read().unwrap();
    /// assert!(l.try_write().is_err());
    /// drop(r);
    /// assert!(l.try_write().is_ok());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw().try_write(), Duration::ZERO)
    }

    /// Takes the write lock, waiting at most `timeout` in all.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// let _r = l.read().unwrap();
    /// assert!(matches!(l.write_timeout(std::time::Duration::from_millis(5)),
    ///                  Err(shm_sync::LockError::Timeout { .. })));
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn write_timeout(&self, timeout: Duration) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw().write_mode(Mode::timeout(timeout)), timeout)
    }

    fn read_guard(
        &self,
        r: Result<Acquired, RawError>,
        waited: Duration,
    ) -> LockResult<RwLockReadGuard<'_, T>> {
        let guard = || RwLockReadGuard {
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

    fn write_guard(
        &self,
        r: Result<Acquired, RawError>,
        waited: Duration,
    ) -> LockResult<RwLockWriteGuard<'_, T>> {
        let guard = || RwLockWriteGuard {
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

    /// Whether no writer died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::RwLock::create(0u8)?.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.raw().is_consistent()
    }
}

/// A read lock on a [`RwLock`]; dereferences to the data, unlocks on drop.
///
/// ```
/// let l = shm_sync::RwLock::create(4u8)?;
/// let g = l.read().unwrap();
/// assert_eq!(*g, 4);
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[must_use = "if unused the RwLock unlocks at once"]
pub struct RwLockReadGuard<'a, T: Pod> {
    pub(crate) lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.lock.raw().read_unlock();
    }
}

/// The write lock on a [`RwLock`]; dereferences (mutably) to the data, unlocks on drop.
///
/// ```
/// let l = shm_sync::RwLock::create(4u8)?;
/// *l.write().unwrap() += 1;
/// assert_eq!(*l.read().unwrap(), 5);
/// # Ok::<(), shm_sync::Error>(())
/// ```
///
/// Not `Send` (the write lock belongs to a thread):
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let l = shm_sync::RwLock::create(0u8).unwrap();
/// needs_send(l.write().unwrap());
/// ```
#[must_use = "if unused the RwLock unlocks at once"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    pub(crate) lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> RwLockWriteGuard<'_, T> {
    /// Marks the lock consistent after a writer's death, once the data is repaired.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(0u8)?;
    /// l.write().unwrap().mark_consistent();
    /// assert!(l.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn mark_consistent(&self) {
        let _ = self.lock.raw().mark_consistent();
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.lock.raw().write_unlock();
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RwLockReadGuard").field(&**self).finish()
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RwLockWriteGuard").field(&**self).finish()
    }
}
