//! The one typed-guard layer: [`MutexGuard`] over a robust [`RawMutex`] and a pointer to
//! the data it protects (lock_api's shape, plus owner death). [`Mutex<T>`](crate::Mutex),
//! shm-collections' `Value`, `Array`, `LockedShareableList` (and every locked thing
//! that comes later) hand out this guard.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use crate::raw::{Acquired, Deadline, RawMutex};
use crate::{LockError, LockResult};

/// How long a lock call may wait.
///
/// ```
/// use shm_sync::Wait;
/// assert_eq!(Wait::Timeout(std::time::Duration::ZERO), Wait::Timeout(Default::default()));
/// assert_ne!(Wait::Forever, Wait::Try);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// As long as a live thread holds the lock.
    Forever,
    /// Not at all: `WouldBlock` if held.
    Try,
    /// At most this long: `Timeout` after that.
    Timeout(Duration),
}

impl Wait {
    /// Inlined: every guard's lock call goes through here, in the caller's crate.
    #[inline]
    pub(crate) fn mode(self) -> Deadline {
        match self {
            Wait::Forever => Deadline::Forever,
            Wait::Try => Deadline::Try,
            Wait::Timeout(d) => Deadline::timeout(d),
        }
    }

    #[inline]
    fn waited(self) -> Duration {
        match self {
            Wait::Timeout(d) => d,
            _ => Duration::ZERO,
        }
    }
}

/// Holds a robust lock; dereferences to the data it protects (`T`, or `[T]` for an
/// array); unlocks on drop.
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
#[must_use = "if unused the lock is released at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    raw: &'a RawMutex,
    data: NonNull<T>,
    /// Borrows the data mutably for `'a`; not `Send` (the lock belongs to this thread).
    _marker: PhantomData<(&'a mut T, *const ())>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Locks `raw` as `wait` says and returns a guard for `data`. Owner death is reported
    /// as [`LockError::OwnerDied`] / [`LockError::Inconsistent`] carrying the guard;
    /// `label` names the object in errors.
    ///
    /// # Safety
    /// - `data` is non-null, aligned, and valid for reads and writes of a `T` for all of
    ///   `'a` (the mapping stays mapped that long);
    /// - every bit pattern is a valid `T` (plain data: `bytemuck::Pod`, or a slice of it),
    ///   since another process may have written anything there;
    /// - every thread of every process accesses `data` only while holding `raw`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use shm_sync::{MutexGuard, RawMutex, Wait};
    /// let raw = RawMutex::new();
    /// let mut cell = 5u64;
    /// let label: Arc<str> = "doc lock".into();
    /// // SAFETY: `cell` outlives the guard and is only touched through it.
    /// let mut g = unsafe { MutexGuard::lock_raw(&raw, &mut cell, Wait::Forever, &label) }.unwrap();
    /// *g += 1;
    /// drop(g);
    /// assert_eq!(cell, 6);
    /// ```
    #[inline]
    pub unsafe fn lock_raw(
        raw: &'a RawMutex,
        data: *mut T,
        wait: Wait,
        label: &'a Arc<str>,
    ) -> LockResult<Self> {
        let r = raw.lock_mode(wait.mode());
        // SAFETY: `data` is non-null (this function's contract).
        let data = unsafe { NonNull::new_unchecked(data) };
        let guard = || MutexGuard {
            raw,
            data,
            _marker: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(guard()),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(guard())),
            Ok(Acquired::Inconsistent) => Err(LockError::Inconsistent(guard())),
            Err(e) => Err(LockError::from_raw(e, label, wait.waited())),
        }
    }

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
        let _ = self.raw.mark_consistent();
    }

    /// Narrows the guard to a part of the data (lock_api's `MutexGuard::map`).
    ///
    /// ```
    /// let m = shm_sync::Mutex::create([1u32, 2, 3])?;
    /// let mut last = shm_sync::MutexGuard::map(m.lock().unwrap(), |a| &mut a[2]);
    /// *last = 9;
    /// drop(last);
    /// assert_eq!(*m.lock().unwrap(), [1, 2, 9]);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn map<U: ?Sized>(mut this: Self, f: impl FnOnce(&mut T) -> &mut U) -> MutexGuard<'a, U> {
        let data = NonNull::from(f(&mut *this));
        let raw = this.raw;
        std::mem::forget(this);
        MutexGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    pub(crate) fn raw(&self) -> &'a RawMutex {
        self.raw
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock that every accessor honours (contract of
        // `lock_raw`); the pointer is valid and aligned for 'a, any bytes are a valid T.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the lock makes this guard the only accessor.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Fails only if another process overwrote the word meanwhile: nothing to undo.
        let _ = self.raw.unlock();
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MutexGuard").field(&&**self).finish()
    }
}
