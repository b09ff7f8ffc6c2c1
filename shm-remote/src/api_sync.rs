//! The lock, event, semaphore and barrier traits: one API over `shm_sync`'s
//! shared-memory types and this crate's Redis types ([`crate::sync`]).
//!
//! Method names and timeouts are the shared-memory types'; results use this crate's
//! [`Error`] (a lock's result keeps its guard in [`LockError::OwnerDied`], as
//! `shm_sync::LockError` does). Calls that the shared-memory type cannot fail
//! (`Event::set`) return `Ok` there; on Redis every call can meet a server that is
//! down ([`Error::Disconnected`]) or slow ([`Error::Timeout`]).
//!
//! Kinds of errors both backends give the same way:
//!
//! | situation | error |
//! |---|---|
//! | the previous holder died (a dead process; an expired Redis lease) | [`LockError::OwnerDied`] with the guard, then [`LockError::Inconsistent`] until `mark_consistent` |
//! | `try_` found it taken | [`LockError::WouldBlock`] / [`Error::Timeout`] with `waited` zero |
//! | a timed wait ran out | [`LockError::Timeout`] / [`Error::Timeout`] |
//! | the calling thread holds the (non-re-entrant) lock | [`LockError::WouldDeadlock`] |
//! | a broken barrier | [`Error::Local`] holding `shm_sync::Error::BrokenBarrier` ([`is_broken_barrier`]) |
//! | a release past a bounded semaphore's bound | [`Error::Local`] holding `shm_sync::Error::OverRelease` |

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// Why a lock call did not simply return a guard: `shm_sync::LockError`'s shape, with
/// this crate's [`Error`] for the rest.
///
/// ```
/// use shm_remote::api::LockError;
/// let e: LockError<u8> = LockError::OwnerDied(7);
/// assert!(e.is_owner_died());
/// assert_eq!(e.into_guard(), Some(7));
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous holder died holding the lock (a dead process, or a Redis holder
    /// whose lease ran out without a release). The caller holds the lock now (the
    /// guard); it stays inconsistent until the guard's `mark_consistent`.
    #[error(
        "the previous holder died while holding the lock; the protected data may be inconsistent"
    )]
    OwnerDied(G),
    /// An earlier holder died and nobody marked the lock consistent since. The caller
    /// holds the lock (the guard).
    #[error("the lock is inconsistent: an earlier holder died and nobody marked it consistent")]
    Inconsistent(G),
    /// A timed lock ran out of time.
    #[error("timed out after {waited:?} waiting for {name}")]
    Timeout {
        /// The object.
        name: String,
        /// The timeout.
        waited: Duration,
    },
    /// `try_lock` found the lock held.
    #[error("{name} is held by another thread")]
    WouldBlock {
        /// The object.
        name: String,
    },
    /// The calling thread already holds the (non-re-entrant) lock.
    #[error("{name} is already held by the calling thread: waiting would deadlock")]
    WouldDeadlock {
        /// The object.
        name: String,
    },
    /// Another error (server down, corrupted state...).
    #[error(transparent)]
    Other(Error),
}

impl<G> std::fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Inconsistent(_) => f.write_str("Inconsistent(..)"),
            LockError::Timeout { name, waited } => write!(f, "Timeout({name}, {waited:?})"),
            LockError::WouldBlock { name } => write!(f, "WouldBlock({name})"),
            LockError::WouldDeadlock { name } => write!(f, "WouldDeadlock({name})"),
            LockError::Other(e) => write!(f, "Other({e:?})"),
        }
    }
}

impl<G> LockError<G> {
    /// The guard, when the lock was acquired despite the error.
    ///
    /// ```
    /// let e: shm_remote::api::LockError<u8> = shm_remote::api::LockError::Inconsistent(1);
    /// assert_eq!(e.into_guard(), Some(1));
    /// ```
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) | LockError::Inconsistent(g) => Some(g),
            _ => None,
        }
    }

    /// Whether the lock was acquired from a dead holder (now or earlier, not repaired).
    ///
    /// ```
    /// let e: shm_remote::api::LockError<()> = shm_remote::api::LockError::WouldBlock { name: "l".into() };
    /// assert!(!e.is_owner_died());
    /// ```
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_) | LockError::Inconsistent(_))
    }

    /// Converts the guard inside (if any).
    ///
    /// ```
    /// let e = shm_remote::api::LockError::OwnerDied(2u8).map(|g| g * 2);
    /// assert_eq!(e.into_guard(), Some(4));
    /// ```
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Inconsistent(g) => LockError::Inconsistent(f(g)),
            LockError::Timeout { name, waited } => LockError::Timeout { name, waited },
            LockError::WouldBlock { name } => LockError::WouldBlock { name },
            LockError::WouldDeadlock { name } => LockError::WouldDeadlock { name },
            LockError::Other(e) => LockError::Other(e),
        }
    }

    /// The error as this crate's [`Error`] (a guard inside is dropped: the lock is
    /// released and stays inconsistent): owner death is [`Error::OwnerDied`], running
    /// out of time or `try_lock` on a held lock [`Error::Timeout`].
    ///
    /// ```
    /// let e = shm_remote::api::LockError::OwnerDied(()).into_error("l");
    /// assert!(matches!(e, shm_remote::Error::OwnerDied { .. }));
    /// ```
    pub fn into_error(self, name: &str) -> Error {
        match self {
            LockError::OwnerDied(_) | LockError::Inconsistent(_) => Error::OwnerDied {
                name: name.to_owned(),
            },
            LockError::Timeout { name, waited } => Error::Timeout { what: name, waited },
            LockError::WouldBlock { name } => Error::Timeout {
                what: name,
                waited: Duration::ZERO,
            },
            LockError::WouldDeadlock { name } => Error::Local(
                format!("{name} is already held by the calling thread: waiting would deadlock")
                    .into(),
            ),
            LockError::Other(e) => e,
        }
    }

    /// From `shm_sync`'s lock error, with the guard converted by `f`.
    pub(crate) fn from_local<H>(e: shm_sync::LockError<H>, f: impl FnOnce(H) -> G) -> Self {
        match e {
            shm_sync::LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            shm_sync::LockError::Inconsistent(g) => LockError::Inconsistent(f(g)),
            shm_sync::LockError::Timeout { object, waited } => LockError::Timeout {
                name: object.to_string(),
                waited,
            },
            shm_sync::LockError::WouldBlock { object } => LockError::WouldBlock {
                name: object.to_string(),
            },
            shm_sync::LockError::WouldDeadlock { object } => LockError::WouldDeadlock {
                name: object.to_string(),
            },
            shm_sync::LockError::Other(e) => LockError::Other(from_sync_error(e)),
            other => LockError::Other(Error::Local(other.to_string().into())),
        }
    }
}

/// Result of a lock call.
pub type LockResult<G> = std::result::Result<G, LockError<G>>;

/// `shm_sync::Error` mapped into [`Error`]: timeouts and `try_` refusals to
/// [`Error::Timeout`], corruption to [`Error::Corrupted`], the rest (a broken barrier,
/// an over-release...) kept whole in [`Error::Local`].
///
/// ```
/// let b = shm_sync::Barrier::create(2).unwrap();
/// let _ = b.wait_timeout(std::time::Duration::from_millis(1));
/// let e = shm_remote::api::from_sync_error(b.wait().unwrap_err());
/// assert!(shm_remote::api::is_broken_barrier(&e));
/// ```
pub fn from_sync_error(e: shm_sync::Error) -> Error {
    match e {
        shm_sync::Error::Timeout { object, waited } => Error::Timeout {
            what: object.to_string(),
            waited,
        },
        shm_sync::Error::WouldBlock { object } => Error::Timeout {
            what: object.to_string(),
            waited: Duration::ZERO,
        },
        shm_sync::Error::Corrupted { object, what } => Error::Corrupted {
            name: object.to_string(),
            what: what.to_string(),
        },
        other => Error::Local(Box::new(other)),
    }
}

/// Whether `e` is a broken barrier (either backend).
///
/// ```
/// let e = shm_remote::Error::Local(Box::new(shm_sync::Error::BrokenBarrier { object: "b".into() }));
/// assert!(shm_remote::api::is_broken_barrier(&e));
/// ```
pub fn is_broken_barrier(e: &Error) -> bool {
    matches!(e, Error::Local(b) if matches!(b.downcast_ref::<shm_sync::Error>(), Some(shm_sync::Error::BrokenBarrier { .. })))
}

/// The broken-barrier error of both backends.
pub(crate) fn broken_barrier(name: &str) -> Error {
    Error::Local(Box::new(shm_sync::Error::BrokenBarrier {
        object: Arc::from(name),
    }))
}

/// A held lock: what both backends' guards offer. Dropping it releases the lock.
pub trait HeldLock {
    /// Marks the lock consistent after a holder's death (only the holder may).
    fn mark_consistent(&self) -> Result<()>;
    /// The fencing token of this acquisition: a number that grows with every
    /// acquisition of the lock (Redis); pass it to the resources the lock protects so
    /// that they refuse a holder whose lease ran out. `None` on shared memory, where a
    /// live holder never loses the lock.
    fn fencing_token(&self) -> Option<u64>;
}

/// A lock (`Lock`, `RLock`): `shm_sync::Lock` / `RLock` and [`crate::sync::Lock`] /
/// [`crate::sync::RLock`].
///
/// ```
/// use shm_remote::api::{SharedLock, HeldLock};
/// fn critical(l: &impl SharedLock) -> shm_remote::Result<()> {
///     let g = l.lock_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.into_error("l"))?;
///     let _fence = g.fencing_token();
///     Ok(())
/// }
/// critical(&shm_sync::Lock::create().unwrap())?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedLock {
    /// The guard: the lock is held until it drops.
    type Guard<'a>: HeldLock
    where
        Self: 'a;
    /// Locks, waiting as long as it takes.
    fn lock(&self) -> LockResult<Self::Guard<'_>>;
    /// Locks if free now: [`LockError::WouldBlock`] otherwise.
    fn try_lock(&self) -> LockResult<Self::Guard<'_>>;
    /// Locks, waiting at most `timeout`: [`LockError::Timeout`] after.
    fn lock_timeout(&self, timeout: Duration) -> LockResult<Self::Guard<'_>>;
    /// Whether some thread (anywhere) holds it: a snapshot.
    fn is_locked(&self) -> Result<bool>;
}

/// An event (Python's `Event`): `shm_sync::Event` and [`crate::sync::Event`].
///
/// ```
/// use shm_remote::api::SharedEvent;
/// let e = shm_sync::Event::create().unwrap();
/// SharedEvent::set(&e)?;
/// SharedEvent::wait_timeout(&e, std::time::Duration::from_secs(1))?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedEvent {
    /// Sets the flag and wakes every waiter.
    fn set(&self) -> Result<()>;
    /// Clears the flag.
    fn clear(&self) -> Result<()>;
    /// Whether the flag is set.
    fn is_set(&self) -> Result<bool>;
    /// Waits until the flag is set.
    fn wait(&self) -> Result<()>;
    /// Waits at most `timeout`: [`Error::Timeout`] if the flag stays clear.
    fn wait_timeout(&self, timeout: Duration) -> Result<()>;
}

/// A counting semaphore: `shm_sync::Semaphore` / `BoundedSemaphore` and
/// [`crate::sync::Semaphore`].
///
/// ```
/// use shm_remote::api::SharedSemaphore;
/// let s = shm_sync::Semaphore::create(1).unwrap();
/// assert_eq!(SharedSemaphore::try_acquire(&s)?, 0); // no permit of a dead holder came back
/// SharedSemaphore::release(&s)?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedSemaphore {
    /// Takes a permit, waiting as long as it takes; the number of permits of dead
    /// holders given back since the last acquirer was told.
    fn acquire(&self) -> Result<u32>;
    /// Takes a permit if one is free: [`Error::Timeout`] (waited zero) otherwise.
    fn try_acquire(&self) -> Result<u32>;
    /// Takes a permit waiting at most `timeout`.
    fn acquire_timeout(&self, timeout: Duration) -> Result<u32>;
    /// Gives a permit back (one this handle/process holds, if any).
    fn release(&self) -> Result<()>;
    /// Free permits now (a snapshot).
    fn value(&self) -> Result<u32>;
}

/// What a barrier wait returns on both backends.
///
/// ```
/// let r = shm_remote::api::BarrierWait { index: 0, leader: true };
/// assert!(r.leader);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWait {
    /// Arrival order in the round, `0..parties`.
    pub index: u32,
    /// Whether this party arrived last and released the round (one per round).
    pub leader: bool,
}

/// A reusable barrier (Python's `Barrier`): `shm_sync::Barrier` and
/// [`crate::sync::Barrier`].
///
/// ```
/// use shm_remote::api::SharedBarrier;
/// let b = shm_sync::Barrier::create(1).unwrap();
/// assert!(SharedBarrier::wait(&b)?.leader);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedBarrier {
    /// Arrives and waits for the other parties; broken barrier: [`is_broken_barrier`].
    fn wait(&self) -> Result<BarrierWait>;
    /// Arrives and waits at most `timeout`; running out breaks the barrier (this party
    /// gets [`Error::Timeout`], the others a broken barrier).
    fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait>;
    /// Breaks the barrier for everybody (Python's `abort`).
    fn abort(&self) -> Result<()>;
    /// Makes a broken barrier usable again; parties waiting get a broken barrier.
    fn reset(&self) -> Result<()>;
    /// Whether it is broken.
    fn broken(&self) -> Result<bool>;
    /// The number of parties.
    fn parties(&self) -> Result<u32>;
}

// ---- the shared-memory backend ----

/// A local guard seen through [`HeldLock`].
impl HeldLock for shm_sync::LockGuard<'_> {
    fn mark_consistent(&self) -> Result<()> {
        shm_sync::MutexGuard::mark_consistent(self);
        Ok(())
    }
    fn fencing_token(&self) -> Option<u64> {
        None
    }
}

impl HeldLock for shm_sync::RLockGuard<'_> {
    fn mark_consistent(&self) -> Result<()> {
        shm_sync::RLockGuard::mark_consistent(self);
        Ok(())
    }
    fn fencing_token(&self) -> Option<u64> {
        None
    }
}

impl SharedLock for shm_sync::Lock {
    type Guard<'a> = shm_sync::LockGuard<'a>;
    fn lock(&self) -> LockResult<Self::Guard<'_>> {
        shm_sync::Lock::lock(self).map_err(|e| LockError::from_local(e, |g| g))
    }
    fn try_lock(&self) -> LockResult<Self::Guard<'_>> {
        shm_sync::Lock::try_lock(self).map_err(|e| LockError::from_local(e, |g| g))
    }
    fn lock_timeout(&self, timeout: Duration) -> LockResult<Self::Guard<'_>> {
        shm_sync::Lock::lock_timeout(self, timeout).map_err(|e| LockError::from_local(e, |g| g))
    }
    fn is_locked(&self) -> Result<bool> {
        Ok(shm_sync::Lock::is_locked(self))
    }
}

impl SharedLock for shm_sync::RLock {
    type Guard<'a> = shm_sync::RLockGuard<'a>;
    fn lock(&self) -> LockResult<Self::Guard<'_>> {
        shm_sync::RLock::lock(self).map_err(|e| LockError::from_local(e, |g| g))
    }
    fn try_lock(&self) -> LockResult<Self::Guard<'_>> {
        shm_sync::RLock::try_lock(self).map_err(|e| LockError::from_local(e, |g| g))
    }
    fn lock_timeout(&self, timeout: Duration) -> LockResult<Self::Guard<'_>> {
        shm_sync::RLock::lock_timeout(self, timeout).map_err(|e| LockError::from_local(e, |g| g))
    }
    /// An RLock does not tell whether another thread holds it without taking it:
    /// a `try_lock` that is released at once (the calling thread's own hold counts).
    fn is_locked(&self) -> Result<bool> {
        if self.depth() > 0 {
            return Ok(true);
        }
        Ok(shm_sync::RLock::try_lock(self).is_err())
    }
}

impl SharedEvent for shm_sync::Event {
    fn set(&self) -> Result<()> {
        shm_sync::Event::set(self);
        Ok(())
    }
    fn clear(&self) -> Result<()> {
        shm_sync::Event::clear(self);
        Ok(())
    }
    fn is_set(&self) -> Result<bool> {
        Ok(shm_sync::Event::is_set(self))
    }
    fn wait(&self) -> Result<()> {
        shm_sync::Event::wait(self);
        Ok(())
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        shm_sync::Event::wait_timeout(self, timeout).map_err(from_sync_error)
    }
}

macro_rules! local_semaphore {
    ($ty:ty) => {
        impl SharedSemaphore for $ty {
            fn acquire(&self) -> Result<u32> {
                <$ty>::acquire(self)
                    .map(|p| p.reclaimed())
                    .map_err(from_sync_error)
            }
            fn try_acquire(&self) -> Result<u32> {
                <$ty>::try_acquire(self)
                    .map(|p| p.reclaimed())
                    .map_err(from_sync_error)
            }
            fn acquire_timeout(&self, timeout: Duration) -> Result<u32> {
                <$ty>::acquire_timeout(self, timeout)
                    .map(|p| p.reclaimed())
                    .map_err(from_sync_error)
            }
            fn release(&self) -> Result<()> {
                <$ty>::release(self).map_err(from_sync_error)
            }
            fn value(&self) -> Result<u32> {
                Ok(<$ty>::value(self))
            }
        }
    };
}
local_semaphore!(shm_sync::Semaphore);
local_semaphore!(shm_sync::BoundedSemaphore);

impl SharedBarrier for shm_sync::Barrier {
    fn wait(&self) -> Result<BarrierWait> {
        shm_sync::Barrier::wait(self)
            .map(|r| BarrierWait {
                index: r.index(),
                leader: r.is_leader(),
            })
            .map_err(from_sync_error)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait> {
        shm_sync::Barrier::wait_timeout(self, timeout)
            .map(|r| BarrierWait {
                index: r.index(),
                leader: r.is_leader(),
            })
            .map_err(from_sync_error)
    }
    fn abort(&self) -> Result<()> {
        shm_sync::Barrier::abort(self);
        Ok(())
    }
    fn reset(&self) -> Result<()> {
        shm_sync::Barrier::reset(self);
        Ok(())
    }
    fn broken(&self) -> Result<bool> {
        Ok(shm_sync::Barrier::broken(self))
    }
    fn parties(&self) -> Result<u32> {
        Ok(shm_sync::Barrier::parties(self))
    }
}
