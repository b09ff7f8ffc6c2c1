//! Errors: [`RawError`] for the in-place raw primitives, [`Error`] for the named
//! objects, and [`LockError`], which carries the guard when a lock was acquired from a
//! holder that died.

use std::sync::Arc;
use std::time::Duration;

/// Why an operation on a raw, in-place primitive did not complete.
///
/// ```
/// use shm_sync::{RawError, RawMutex};
/// let m = RawMutex::new();
/// m.lock().unwrap();
/// assert_eq!(m.lock(), Err(RawError::WouldDeadlock));
/// m.unlock().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// A `try_` operation found the primitive unavailable.
    #[error("not available without waiting")]
    WouldBlock,
    /// A timed operation ran out of time.
    #[error("timed out")]
    Timeout,
    /// The calling thread already holds the lock; waiting would never end.
    #[error("the calling thread already holds the lock")]
    WouldDeadlock,
    /// Released by a thread that does not hold it.
    #[error("released by a thread that does not hold it")]
    NotOwner,
    /// A bounded semaphore released more often than acquired.
    #[error("released beyond its bound")]
    OverRelease,
    /// A counter (readers, recursion, permits) would overflow.
    #[error("counter overflow")]
    Overflow,
    /// The shared state breaks the primitive's invariants (written by a faulty or
    /// hostile process).
    #[error("corrupted shared state: {0}")]
    Corrupted(&'static str),
    /// The barrier is broken (aborted, reset while waiting, or a party timed out):
    /// Python's `BrokenBarrierError`.
    #[error("the barrier is broken (aborted, reset, a party timed out or died)")]
    BrokenBarrier,
    /// Every slot of the participant table (readers of a `RawRwLock`, processes
    /// holding permits of a `RawSemaphore`, parties of a `RawBarrier`) names a live
    /// participant: one more cannot be tracked.
    #[error("the participant table is full (every slot names a live participant)")]
    TooManyParticipants,
}

/// What went wrong with a named synchronisation object; every variant names it.
///
/// ```
/// use shm_sync::{Error, Event};
/// let ev = Event::create()?;
/// let err = ev.wait_timeout(std::time::Duration::from_millis(1)).unwrap_err();
/// assert!(matches!(err, Error::Timeout { .. }));
/// assert!(err.to_string().contains("Event"));
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating or opening the segment failed (not found, wrong kind, wrong type...).
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
    /// A timed wait ran out of time.
    #[error("timed out after {waited:?} waiting on {object}")]
    Timeout {
        /// The object, e.g. `Event "psm_1a2b..."`.
        object: Arc<str>,
        /// The timeout that elapsed.
        waited: Duration,
    },
    /// A `try_` operation found the object unavailable.
    #[error("{object} is not available without waiting")]
    WouldBlock {
        /// The object.
        object: Arc<str>,
    },
    /// The calling thread already holds the lock.
    #[error("{object} is already held by the calling thread: waiting would deadlock")]
    WouldDeadlock {
        /// The object.
        object: Arc<str>,
    },
    /// Released by a thread that does not hold it.
    #[error("{object} released by a thread that does not hold it")]
    NotOwner {
        /// The object.
        object: Arc<str>,
    },
    /// A bounded semaphore released beyond its initial value (Python's `ValueError`).
    #[error("{object} released too many times (bound {max})")]
    OverRelease {
        /// The object.
        object: Arc<str>,
        /// The bound.
        max: u32,
    },
    /// A counter would overflow.
    #[error("{object}: counter overflow")]
    Overflow {
        /// The object.
        object: Arc<str>,
    },
    /// The shared state breaks the object's invariants.
    #[error("{object} is corrupted: {what}")]
    Corrupted {
        /// The object.
        object: Arc<str>,
        /// What is wrong.
        what: &'static str,
    },
    /// The barrier is broken: aborted, reset while this party waited, or a party timed
    /// out (Python's `BrokenBarrierError`); `reset` makes it usable again.
    #[error(
        "{object} is broken (aborted, reset, a party timed out or died); reset it to use it again"
    )]
    BrokenBarrier {
        /// The object.
        object: Arc<str>,
    },
    /// The object's participant table is full: every one of its `slots` names a live
    /// reader (RwLock), permit-holding process (Semaphore) or registered party
    /// (Barrier). Create it with more slots (`create_with_slots`).
    #[error(
        "{object}: all {slots} participant slots name live participants (expected a free slot); create it with more slots"
    )]
    TooManyParticipants {
        /// The object.
        object: Arc<str>,
        /// Its number of slots.
        slots: u32,
    },
}

impl Error {
    pub(crate) fn from_raw(err: RawError, object: &Arc<str>, waited: Duration) -> Error {
        let object = object.clone();
        match err {
            RawError::WouldBlock => Error::WouldBlock { object },
            RawError::Timeout => Error::Timeout { object, waited },
            RawError::WouldDeadlock => Error::WouldDeadlock { object },
            RawError::NotOwner => Error::NotOwner { object },
            RawError::OverRelease => Error::OverRelease { object, max: 0 },
            RawError::Overflow => Error::Overflow { object },
            RawError::Corrupted(what) => Error::Corrupted { object, what },
            RawError::BrokenBarrier => Error::BrokenBarrier { object },
            RawError::TooManyParticipants => Error::TooManyParticipants { object, slots: 0 },
        }
    }

    /// [`from_raw`](Self::from_raw) for an object with a participant table of `slots`.
    pub(crate) fn from_raw_slots(
        err: RawError,
        object: &Arc<str>,
        waited: Duration,
        slots: u32,
    ) -> Error {
        match Error::from_raw(err, object, waited) {
            Error::TooManyParticipants { object, .. } => {
                Error::TooManyParticipants { object, slots }
            }
            e => e,
        }
    }
}

/// Why a lock call did not simply return a guard.
///
/// Like std's `PoisonError`, the owner-death variants still hold the lock: take the
/// guard with [`into_guard`](Self::into_guard), repair the data, call the guard's
/// `mark_consistent`. A guard dropped without that leaves the lock inconsistent, and
/// every later locker gets [`Inconsistent`](Self::Inconsistent).
///
/// ```
/// use shm_sync::{LockError, Mutex};
/// let m = Mutex::create(0u32)?;
/// let held = m.lock().unwrap();
/// // The same thread again: refused instead of deadlocking.
/// assert!(matches!(m.try_lock(), Err(LockError::WouldDeadlock { .. })));
/// drop(held);
/// let guard = match m.lock() {
///     Ok(g) => g,
///     Err(e) if e.is_owner_died() => e.into_guard().unwrap(), // repair, then mark_consistent
///     Err(e) => panic!("{e}"),
/// };
/// assert_eq!(*guard, 0);
/// # Ok::<(), shm_sync::Error>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous holder died holding the lock. The lock is now held by the caller
    /// (the guard), marked inconsistent until the guard's `mark_consistent` is called.
    #[error(
        "the previous holder died while holding the lock; the protected data may be inconsistent"
    )]
    OwnerDied(G),
    /// An earlier holder died and nobody marked the lock consistent since. The lock is
    /// held by the caller (the guard).
    #[error("the lock is inconsistent: an earlier holder died and nobody marked it consistent")]
    Inconsistent(G),
    /// A timed lock ran out of time.
    #[error("timed out after {waited:?} waiting on {object}")]
    Timeout {
        /// The object.
        object: Arc<str>,
        /// The timeout that elapsed.
        waited: Duration,
    },
    /// `try_lock` found the lock held.
    #[error("{object} is held by another thread")]
    WouldBlock {
        /// The object.
        object: Arc<str>,
    },
    /// The calling thread already holds the lock.
    #[error("{object} is already held by the calling thread: waiting would deadlock")]
    WouldDeadlock {
        /// The object.
        object: Arc<str>,
    },
    /// Another error (corrupted state, too many readers).
    #[error(transparent)]
    Other(Error),
}

/// One-liners for lock results in code whose errors are `Box<dyn Error>` (or
/// `anyhow::Error`): a [`LockError`] that holds a guard borrows the lock, so `?` cannot
/// turn it into a `'static` error; these give the guard back or drop it first.
///
/// - [`recover`](Self::recover): take the lock even from a dead holder (the data is
///   used as it is; the lock stays *inconsistent* for the next locker until a guard's
///   `mark_consistent`). Python's locks behave this way: they know no owner death.
/// - [`detach`](Self::detach): owner death is an error like any other; its guard is
///   dropped (the lock stays inconsistent), so the error is `'static`.
///
/// ```
/// use shm_sync::{LockResultExt, Mutex};
/// fn bump(m: &Mutex<u64>) -> Result<u64, Box<dyn std::error::Error>> {
///     *m.lock().recover()? += 1;
///     let n = *m.lock().detach()?;
///     Ok(n)
/// }
/// let m = Mutex::create(41u64)?;
/// assert_eq!(bump(&m).unwrap(), 42);
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub trait LockResultExt<G> {
    /// The guard, also when the previous holder died ([`LockError::OwnerDied`] or
    /// [`LockError::Inconsistent`]); every other error without a guard.
    ///
    /// ```
    /// use shm_sync::{LockError, LockResultExt};
    /// let died: Result<u8, LockError<u8>> = Err(LockError::OwnerDied(7));
    /// assert_eq!(died.recover().unwrap(), 7);
    /// ```
    fn recover(self) -> Result<G, LockError<()>>;

    /// The guard, or the error without its guard (an owner-death guard is dropped:
    /// the lock is released and stays inconsistent).
    ///
    /// ```
    /// use shm_sync::{LockError, LockResultExt};
    /// let died: Result<u8, LockError<u8>> = Err(LockError::OwnerDied(7));
    /// assert!(matches!(died.detach(), Err(LockError::OwnerDied(()))));
    /// ```
    fn detach(self) -> Result<G, LockError<()>>;
}

impl<G> LockResultExt<G> for Result<G, LockError<G>> {
    fn recover(self) -> Result<G, LockError<()>> {
        match self {
            Ok(g) | Err(LockError::OwnerDied(g)) | Err(LockError::Inconsistent(g)) => Ok(g),
            Err(e) => Err(e.map(drop)),
        }
    }

    fn detach(self) -> Result<G, LockError<()>> {
        self.map_err(|e| e.map(drop))
    }
}

impl<G> std::fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Inconsistent(_) => f.write_str("Inconsistent(..)"),
            LockError::Timeout { object, waited } => f
                .debug_struct("Timeout")
                .field("object", object)
                .field("waited", waited)
                .finish(),
            LockError::WouldBlock { object } => f
                .debug_struct("WouldBlock")
                .field("object", object)
                .finish(),
            LockError::WouldDeadlock { object } => f
                .debug_struct("WouldDeadlock")
                .field("object", object)
                .finish(),
            LockError::Other(e) => f.debug_tuple("Other").field(e).finish(),
        }
    }
}

impl<G> LockError<G> {
    /// The guard, when the lock was acquired despite the error (owner died or
    /// inconsistent).
    ///
    /// ```
    /// use shm_sync::{LockError, Mutex};
    /// let m = Mutex::create(1u8)?;
    /// let _held = m.lock().unwrap();
    /// assert!(m.try_lock().unwrap_err().into_guard().is_none());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) | LockError::Inconsistent(g) => Some(g),
            _ => None,
        }
    }

    /// Whether the lock was acquired from a dead holder (this time or earlier, not yet
    /// repaired): [`OwnerDied`](Self::OwnerDied) or [`Inconsistent`](Self::Inconsistent).
    ///
    /// ```
    /// use shm_sync::Mutex;
    /// let m = Mutex::create(0u64)?;
    /// let _g = m.lock().unwrap();
    /// assert!(!m.try_lock().unwrap_err().is_owner_died());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_) | LockError::Inconsistent(_))
    }

    /// Converts the guard inside (if any) with `f`.
    ///
    /// ```
    /// use shm_sync::LockError;
    /// let e: LockError<u8> = LockError::OwnerDied(7);
    /// assert!(matches!(e.map(|g| g * 2), LockError::OwnerDied(14)));
    /// ```
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Inconsistent(g) => LockError::Inconsistent(f(g)),
            LockError::Timeout { object, waited } => LockError::Timeout { object, waited },
            LockError::WouldBlock { object } => LockError::WouldBlock { object },
            LockError::WouldDeadlock { object } => LockError::WouldDeadlock { object },
            LockError::Other(e) => LockError::Other(e),
        }
    }

    pub(crate) fn from_raw(err: RawError, object: &Arc<str>, waited: Duration) -> Self {
        let object = object.clone();
        match err {
            RawError::WouldBlock => LockError::WouldBlock { object },
            RawError::Timeout => LockError::Timeout { object, waited },
            RawError::WouldDeadlock => LockError::WouldDeadlock { object },
            other => LockError::Other(Error::from_raw(other, &object, waited)),
        }
    }
}
