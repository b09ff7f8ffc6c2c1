//! The named, typed [`Mutex`] and its guard.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;
use shm_core::{ObjectKind, ObjectSpec, SegmentOptions};

use crate::common::{data_offset, named_common};
use crate::inplace::Shared;
use crate::raw::{Acquired, Mode, RawMutex};
use crate::{Error, LockError, RawError};

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
/// let peer = Mutex::<u64>::open(m.name())?;         // as another process would
/// *m.lock().unwrap() += 1;
/// assert_eq!(*peer.lock().unwrap(), 1);
/// assert!(Mutex::<u32>::open(m.name()).is_err());     // wrong type
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    pub(crate) shared: Shared<RawMutex>,
    _data: PhantomData<T>,
}

named_common!(Mutex<T>, "Mutex::create(0u32)", "Mutex::<u32>::open");

impl<T: Pod> Mutex<T> {
    const DATA: usize = data_offset(size_of::<RawMutex>(), align_of::<T>());
    const PAYLOAD: usize = Self::DATA + size_of::<T>();
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= 64,
        "T must not need more than 64-byte alignment"
    );

    fn spec() -> ObjectSpec {
        ObjectSpec::new(ObjectKind::Mutex, VERSION).with_type::<T>(std::any::type_name::<T>())
    }

    /// Creates an unlocked mutex holding `value`, under a fresh random name. The name is
    /// removed when this handle drops (see [`set_unlink_on_drop`](Self::set_unlink_on_drop)).
    ///
    /// ```
    /// let m = shm_sync::Mutex::create([0u8; 32])?;
    /// assert_eq!(m.lock().unwrap()[0], 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create(value: T) -> Result<Self, Error> {
        Self::create_with(&SegmentOptions::new(), value)
    }

    /// Creates an unlocked mutex holding `value` under `name`
    /// ([`shm_core::Error::AlreadyExists`] if taken).
    ///
    /// ```
    /// let name = format!("shm-doc-mutex-{}", std::process::id());
    /// let m = shm_sync::Mutex::create_named(&name, 7i32)?;
    /// assert_eq!(m.name(), name);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_named(name: &str, value: T) -> Result<Self, Error> {
        Self::create_with(&SegmentOptions::new().name(name), value)
    }

    /// Creates the mutex with chosen segment options (name, page reservation, unlink on
    /// drop).
    ///
    /// ```
    /// let opts = shm_core::SegmentOptions::new().reserve(false);
    /// let m = shm_sync::Mutex::create_with(&opts, 1u16)?;
    /// assert_eq!(*m.lock().unwrap(), 1);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, value: T) -> Result<Self, Error> {
        let () = Self::ALIGN_OK;
        let shared = Shared::create(
            options,
            &Self::spec(),
            Self::PAYLOAD,
            |_: &RawMutex| {},
            (Self::DATA, bytemuck::bytes_of(&value)),
        )?;
        Ok(Mutex {
            shared,
            _data: PhantomData,
        })
    }

    /// Opens the mutex another process created, checking kind, version and `T`.
    ///
    /// ```
    /// let m = shm_sync::Mutex::create(5u8)?;
    /// let again = shm_sync::Mutex::<u8>::open(m.name())?;
    /// assert_eq!(*again.lock().unwrap(), 5);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        let () = Self::ALIGN_OK;
        let shared = Shared::open(name, &Self::spec(), Self::PAYLOAD)?;
        Ok(Mutex {
            shared,
            _data: PhantomData,
        })
    }

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
        let r = self.raw().lock();
        self.guard(r, Duration::ZERO)
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
        let r = self.raw().try_lock();
        self.guard(r, Duration::ZERO)
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
        let r = self.raw().lock_mode(Mode::timeout(timeout));
        self.guard(r, timeout)
    }

    #[inline]
    fn guard(
        &self,
        r: Result<Acquired, RawError>,
        waited: Duration,
    ) -> LockResult<MutexGuard<'_, T>> {
        let guard = || MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(guard()),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
            Ok(Acquired::Inconsistent) => Err(LockError::Inconsistent(guard())),
            Err(e) => Err(LockError::from_raw(e, self.shared.label(), waited)),
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

/// Holds a [`Mutex`] locked; unlocks on drop. Dereferences to the data.
///
/// ```
/// let m = shm_sync::Mutex::create([1u32, 2])?;
/// let mut g = m.lock().unwrap();
/// g[0] += g[1];
/// assert_eq!(*g, [3, 2]);
/// # Ok::<(), shm_sync::Error>(())
/// ```
///
/// The lock belongs to the thread that took it, so the guard cannot move to another:
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let m = shm_sync::Mutex::create(0u8).unwrap();
/// needs_send(m.lock().unwrap());
/// ```
#[must_use = "if unused the Mutex unlocks at once"]
pub struct MutexGuard<'a, T: Pod> {
    pub(crate) mutex: &'a Mutex<T>,
    /// The lock belongs to this thread: the guard must not move to another.
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> MutexGuard<'_, T> {
    /// Marks the lock consistent after [`LockError::OwnerDied`] or
    /// [`LockError::Inconsistent`], once the data is repaired. Without it, every later
    /// locker is told [`LockError::Inconsistent`].
    ///
    /// ```
    /// let m = shm_sync::Mutex::create(0u8)?;
    /// let g = m.lock().unwrap();
    /// g.mark_consistent();
    /// assert!(m.is_consistent());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn mark_consistent(&self) {
        let _ = self.mutex.raw().mark_consistent();
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Fails only if another process overwrote the word meanwhile: nothing to undo.
        let _ = self.mutex.raw().unlock();
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MutexGuard").field(&**self).finish()
    }
}
