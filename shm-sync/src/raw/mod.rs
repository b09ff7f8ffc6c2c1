//! The raw primitives: `#[repr(C)]` words in shared memory, all-zero = initial state,
//! safe to place anywhere in a mapping (see `from_ptr` on each type).

use std::time::Duration;

use crate::atomic::Instant;

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
/// Spins before sleeping.
#[cfg(not(loom))]
pub(crate) const SPINS: u32 = 100;
/// Under the model one spin (a loom yield) explores the spinning branch; more would
/// only multiply the interleavings.
#[cfg(loom)]
pub(crate) const SPINS: u32 = 1;

/// How long Event, Semaphore and Barrier waiters spin before sleeping: a wake-up
/// through the futex costs tens of microseconds on a VM, a spin a few.
#[cfg(not(loom))]
pub(crate) const SPIN_WAIT: Duration = Duration::from_micros(20);

/// Spins until `ready()` holds or [`SPIN_WAIT`] (cut to the time left) has passed;
/// returns whether it holds.
#[cfg(not(loom))]
pub(crate) fn spin_until(mode: Mode, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    let limit = match mode.remaining() {
        Some(left) => left.min(SPIN_WAIT),
        None => SPIN_WAIT,
    };
    if limit.is_zero() {
        return false;
    }
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            crate::atomic::spin_loop();
            if ready() {
                return true;
            }
        }
        if start.elapsed() >= limit {
            return false;
        }
    }
}

/// Under the model, where time moves only when a wait times out: one look, no spin
/// (spinning is only a shortcut before the futex wait, which the model explores).
#[cfg(loom)]
pub(crate) fn spin_until(_mode: Mode, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

/// How long a waiting operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Do not wait.
    Try,
    /// Wait until the instant (or forever for `None`).
    Until(Option<Instant>),
}

impl Mode {
    pub(crate) fn forever() -> Mode {
        Mode::Until(None)
    }

    pub(crate) fn timeout(d: Duration) -> Mode {
        Mode::Until(Instant::now().checked_add(d))
    }

    /// Time left, `None` for forever; `Some(ZERO)` once expired (or for `Try`).
    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Mode::Try => Some(Duration::ZERO),
            Mode::Until(None) => None,
            Mode::Until(Some(t)) => Some(t.saturating_duration_since(Instant::now())),
        }
    }

    /// The next sleep: `slice`, cut to the time left. `None` when the time is up.
    pub(crate) fn sleep_for(self, slice: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(slice),
            Some(left) if left.is_zero() => None,
            Some(left) => Some(left.min(slice)),
        }
    }

    /// The error for running out of time in this mode.
    pub(crate) fn expired(self) -> crate::RawError {
        match self {
            Mode::Try => crate::RawError::WouldBlock,
            Mode::Until(_) => crate::RawError::Timeout,
        }
    }
}
