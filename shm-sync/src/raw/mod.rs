//! The raw primitives: `#[repr(C)]` words in shared memory, all-zero = initial state,
//! safe to place anywhere in a mapping (see `from_ptr` on each type).

use std::time::Duration;

pub(crate) use crate::wait::{Deadline, spin_until};

mod barrier;
mod condvar;
mod event;
pub(crate) mod mutex;
mod rlock;
mod rwlock;
mod semaphore;
mod table;

pub(crate) use barrier::{BarrierCore, BarrierNamedHead};
pub use barrier::{BarrierWaitResult, RawBarrier};
pub use condvar::RawCondvar;
pub use event::RawEvent;
pub use mutex::RawMutex;
pub use rlock::RawRLock;
pub use rwlock::RawRwLock;
pub(crate) use rwlock::{RwHead, RwNamedHead};
pub(crate) use semaphore::MAX_PERMITS;
pub use semaphore::{PermitAcquired, RawSemaphore};
pub(crate) use semaphore::{SemHead, SemNamedHead, SemSlot};
pub use table::{DEFAULT_SLOTS, MAX_SLOTS};

/// How a lock was acquired.
///
/// ```
/// use shm_sync::{Acquired, RawMutex};
/// let m = RawMutex::new();
/// assert_eq!(m.lock(), Ok(Acquired::Clean));
/// m.unlock().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acquired {
    /// The normal case.
    Clean,
    /// The previous holder died holding the lock; the caller holds it now and it is
    /// marked inconsistent until `mark_consistent` is called.
    OwnerDied,
    /// An earlier holder died and nobody has marked the lock consistent since.
    Inconsistent,
}

/// First futex sleep of a lock waiter before it checks the holder's liveness.
pub(crate) const FIRST_SLICE: Duration = Duration::from_millis(2);
/// Later sleeps: a dead holder is noticed within this (plus a `/proc` read).
pub(crate) const SLICE: Duration = Duration::from_millis(20);
/// Spins (`wait::Spin::new`) before sleeping.
#[cfg(not(loom))]
pub(crate) const SPINS: u32 = 100;
/// Under the model one spin (a loom yield) explores the spinning branch; more would
/// only multiply the interleavings.
#[cfg(loom)]
pub(crate) const SPINS: u32 = 1;
