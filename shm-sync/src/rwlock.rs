//! The named, typed [`RwLock`] and its guards.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use shm_core::{Object, ObjectSpec, SegmentOptions};

use crate::atomic::{AtomicU64, Ordering};
use crate::common::{data_offset, kinds};
use crate::inplace::{Shared, raw_in};
use crate::raw::{Acquired, DEFAULT_SLOTS, Deadline, MAX_SLOTS, RwHead, RwNamedHead};
use crate::{Error, LockError, LockResult, RawError};

/// Layout version: 2 since the readers are a table of slots naming them (the slot
/// count follows the lock words, the table follows the count).
const VERSION: u32 = 2;

/// Where the reader table starts in the payload.
const TABLE: usize = size_of::<RwNamedHead>();

/// A process-shared reader-writer lock protecting a `T`, in its own named segment.
///
/// Writers and readers are robust. A dead writer is reported to the next reader or
/// writer as [`LockError::OwnerDied`]. Every read share is a slot of a table naming
/// its thread ([`DEFAULT_SLOTS`](crate::DEFAULT_SLOTS) slots unless
/// [`create_with_slots`](Self::create_with_slots) chose otherwise), so a reader that
/// dies holding the lock is noticed by a waiting writer (within about 20 ms), its share
/// is taken back, and that writer gets [`LockError::OwnerDied`] (the lock is not marked
/// inconsistent: readers change nothing). More simultaneous read shares than slots is
/// [`Error::TooManyParticipants`] (as [`LockError::Other`]). Writers are preferred, so
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
    pub(crate) shared: Shared<RwNamedHead>,
    /// Reader slots, read once from the mapping and checked against its length.
    slots: usize,
    /// Offset of the data in the payload.
    data: usize,
    _data: PhantomData<T>,
}

fn spec<T: Pod>() -> ObjectSpec {
    ObjectSpec::new(kinds::RWLOCK, VERSION).with_type::<T>(std::any::type_name::<T>())
}

impl<T: Pod> RwLock<T> {
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= 64,
        "T must not need more than 64-byte alignment"
    );

    /// Offset of the data after a table of `slots`.
    fn data_at(slots: usize) -> usize {
        data_offset(TABLE + 8 * slots, align_of::<T>())
    }

    fn init(o: &Object, value: T, slots: u32) -> Result<(), Error> {
        let () = Self::ALIGN_OK;
        raw_in::<RwNamedHead>(o)?
            .slots
            .store(slots, Ordering::Relaxed);
        Ok(o.write_at(Self::data_at(slots as usize), bytemuck::bytes_of(&value))?)
    }

    fn check_slots(name: impl FnOnce() -> String, slots: u32) -> Result<usize, Error> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(shm_core::Error::InvalidSize {
                name: name(),
                len: u64::from(slots),
                reason: "a RwLock needs 1 to 4096 reader slots",
            }
            .into());
        }
        Ok(slots as usize)
    }

    /// Creates it with chosen segment options and `slots` reader slots (1 to
    /// [`MAX_SLOTS`](crate::MAX_SLOTS)): at most that many read shares at once.
    ///
    /// ```
    /// use shm_sync::{Error, LockError, RwLock};
    /// let l = RwLock::create_with_slots(&shm_core::SegmentOptions::new(), 0u8, 1)?;
    /// let r = l.read().unwrap();
    /// assert!(matches!(l.try_read(),
    ///     Err(LockError::Other(Error::TooManyParticipants { slots: 1, .. }))));
    /// drop(r);
    /// assert!(RwLock::create_with_slots(&shm_core::SegmentOptions::new(), 0u8, 0).is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with_slots(
        options: &SegmentOptions,
        value: T,
        slots: u32,
    ) -> Result<Self, Error> {
        let n = Self::check_slots(|| "RwLock (new)".into(), slots)?;
        let object = Object::create(
            options,
            &spec::<T>(),
            Self::data_at(n) + size_of::<T>(),
            |o| Self::init(o, value, slots),
        )?;
        <Self as shm_core::SharedObject>::attach(object)
    }

    /// Number of reader slots: the most read shares at once.
    ///
    /// ```
    /// assert_eq!(shm_sync::RwLock::create(0u8)?.slots(), 64);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn slots(&self) -> u32 {
        self.slots as u32
    }

    /// Number of read shares held now (a snapshot).
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(0u8)?;
    /// let _r = l.read().unwrap();
    /// assert_eq!(l.readers(), 1);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn readers(&self) -> u32 {
        RwHead::readers_in(self.table())
    }

    #[inline]
    fn head(&self) -> &RwHead {
        &self.shared.raw().head
    }

    #[inline]
    fn table(&self) -> &[AtomicU64] {
        self.shared.table(TABLE, self.slots)
    }

    #[inline]
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.shared.data_ptr(self.data)
    }

    /// Takes a read lock, waiting while a live writer holds or waits for the lock.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// assert_eq!(*l.read().unwrap(), 1);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(
            self.head().read_mode(self.table(), Deadline::Forever),
            Duration::ZERO,
        )
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
        self.read_guard(
            self.head().read_mode(self.table(), Deadline::Try),
            Duration::ZERO,
        )
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// assert!(l.read_timeout(std::time::Duration::from_millis(5)).is_ok());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(
            self.head()
                .read_mode(self.table(), Deadline::timeout(timeout)),
            timeout,
        )
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
        self.write_guard(
            self.head().write_mode(self.table(), Deadline::Forever),
            Duration::ZERO,
        )
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
        self.write_guard(
            self.head().write_mode(self.table(), Deadline::Try),
            Duration::ZERO,
        )
    }

    /// Takes the write lock, waiting at most `timeout` in all.
    ///
    /// ```
    /// use shm_sync::LockError;
    /// let l = shm_sync::RwLock::create(1u8)?;
    /// let r = l.read().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(matches!(l.write_timeout(std::time::Duration::from_millis(5)),
    ///                                 Err(LockError::Timeout { .. }))));
    /// });
    /// // The reader itself would wait for its own share: refused.
    /// assert!(matches!(l.write_timeout(std::time::Duration::from_millis(5)),
    ///                  Err(LockError::WouldDeadlock { .. })));
    /// drop(r);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn write_timeout(&self, timeout: Duration) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(
            self.head()
                .write_mode(self.table(), Deadline::timeout(timeout)),
            timeout,
        )
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
            Err(e) => Err(self.lock_error(e, waited)),
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
            Err(e) => Err(self.lock_error(e, waited)),
        }
    }

    fn lock_error<G>(&self, e: RawError, waited: Duration) -> LockError<G> {
        match e {
            RawError::TooManyParticipants => LockError::Other(Error::TooManyParticipants {
                object: self.shared.label().clone(),
                slots: self.slots(),
            }),
            e => LockError::from_raw(e, self.shared.label(), waited),
        }
    }

    /// Whether no writer died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::RwLock::create(0u8)?.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.head().is_consistent()
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
        let _ = self.lock.head().read_unlock(self.lock.table());
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
        let _ = self.lock.head().mark_consistent();
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.lock.head().write_unlock();
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

impl<T: Pod> shm_core::SharedObject for RwLock<T> {
    type Error = Error;
    type Init = T;

    fn layout() -> shm_core::Layout {
        shm_core::Layout::Header(spec::<T>())
    }

    fn payload_len(_: &T) -> Result<usize, Error> {
        Ok(Self::data_at(DEFAULT_SLOTS as usize) + size_of::<T>())
    }

    fn init_payload(o: &Object, value: T) -> Result<(), Error> {
        Self::init(o, value, DEFAULT_SLOTS)
    }

    fn attach(object: Object) -> Result<Self, Error> {
        let () = Self::ALIGN_OK;
        // The slot count is untrusted: checked, then the payload length must match it.
        let slots = Self::check_slots(
            || object.label(),
            raw_in::<RwNamedHead>(&object)?
                .slots
                .load(Ordering::Relaxed),
        )?;
        let data = Self::data_at(slots);
        let shared = Shared::<RwNamedHead>::attach(object, data + size_of::<T>())?;
        Ok(RwLock {
            shared,
            slots,
            data,
            _data: PhantomData,
        })
    }

    fn object(&self) -> &Object {
        self.shared.object()
    }

    fn object_mut(&mut self) -> &mut Object {
        self.shared.object_mut()
    }
}

shm_core::object_methods!(
    RwLock<T: bytemuck::Pod>,
    Error,
    "shm_sync::RwLock::create(0u32)",
    "shm_sync::RwLock::<u32>",
    create(value: T) => value, args: ", 0u32"
);
