//! The one waiting layer of the workspace: shared futex wait and wake, the deadline of a
//! call that may wait ([`Deadline`]) and the spin policy before sleeping ([`Spin`],
//! [`spin_until`]). The lock algorithms (`raw/`) and shm-collections' queue ring decide
//! *when* to wait; this module is *how*.
//!
//! The futex calls are the shared (never `PRIVATE`) operations: the words live in
//! mappings shared between processes. Under `cfg(loom)` they, the clock and the spin
//! hint come from the model (`loom_model`, `atomic`) instead, with the same signatures.

use std::time::Duration;

#[cfg(not(loom))]
use rustix::io::Errno;
#[cfg(not(loom))]
use rustix::thread::futex;

use crate::atomic::{AtomicU32, Instant};
#[cfg(loom)]
pub(crate) use crate::loom_model::{futex_wait, futex_wake};

/// Outcome of a futex wait.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// use shm_sync::wait::{Wake, futex_wait};
/// let w = AtomicU32::new(1);
/// // The word no longer holds 0: the wait returns at once.
/// assert_eq!(futex_wait(&w, 0, Some(Duration::from_secs(5))), Wake::Woken);
/// assert_eq!(futex_wait(&w, 1, Some(Duration::from_millis(1))), Wake::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, interrupted, or the word no longer held the expected value: the caller
    /// re-checks its condition.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

/// `FUTEX_WAIT` (shared) on `word` while it holds `expected`, for at most `timeout`
/// (`None`: until woken).
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// let w = AtomicU32::new(0);
/// let r = shm_sync::wait::futex_wait(&w, 0, Some(Duration::from_millis(1)));
/// assert_eq!(r, shm_sync::wait::Wake::TimedOut);
/// ```
#[cfg(not(loom))]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(Errno::TIMEDOUT) => Wake::TimedOut,
        // Ok, EAGAIN (value changed), EINTR: the caller re-checks its condition.
        _ => Wake::Woken,
    }
}

/// `FUTEX_WAKE` (shared): wakes up to `n` waiters of `word`, in every process that maps
/// it.
///
/// ```
/// let w = std::sync::atomic::AtomicU32::new(0);
/// shm_sync::wait::futex_wake(&w, 1); // nobody waits: nothing happens
/// ```
#[cfg(not(loom))]
#[inline]
pub fn futex_wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// Wakes every waiter of `word`.
///
/// ```
/// let w = std::sync::atomic::AtomicU32::new(0);
/// shm_sync::wait::futex_wake_all(&w);
/// ```
#[inline]
pub fn futex_wake_all(word: &AtomicU32) {
    futex_wake(word, i32::MAX as u32);
}

/// How long a call that may wait waits.
///
/// ```
/// use std::time::Duration;
/// use shm_sync::wait::Deadline;
/// assert_eq!(Deadline::timeout(Duration::MAX), Deadline::Forever); // no overflow
/// let d = Deadline::timeout(Duration::from_secs(60));
/// assert!(d.remaining().unwrap() <= Duration::from_secs(60));
/// assert_eq!(d.waited(), Duration::from_secs(60));
/// assert_eq!(Deadline::Try.sleep_for(Duration::from_millis(5)), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Do not wait.
    Try,
    /// As long as it takes.
    Forever,
    /// Until this instant; the timeout asked for beside it (what an error reports).
    Until(Instant, Duration),
}

impl Deadline {
    /// At most `d` from now; a `d` too large for an [`Instant`] is [`Forever`](Self::Forever).
    ///
    /// ```
    /// use shm_sync::wait::Deadline;
    /// assert!(matches!(Deadline::timeout(std::time::Duration::ZERO), Deadline::Until(..)));
    /// ```
    #[inline]
    pub fn timeout(d: Duration) -> Deadline {
        match Instant::now().checked_add(d) {
            Some(t) => Deadline::Until(t, d),
            None => Deadline::Forever,
        }
    }

    /// Time left, `None` for forever; `Some(ZERO)` once expired (or for `Try`).
    ///
    /// ```
    /// use shm_sync::wait::Deadline;
    /// assert_eq!(Deadline::Forever.remaining(), None);
    /// assert_eq!(Deadline::Try.remaining(), Some(std::time::Duration::ZERO));
    /// ```
    #[inline]
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Deadline::Try => Some(Duration::ZERO),
            Deadline::Forever => None,
            Deadline::Until(t, _) => Some(t.saturating_duration_since(Instant::now())),
        }
    }

    /// The next sleep: `slice`, cut to the time left. `None` when the time is up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_sync::wait::Deadline;
    /// let slice = Duration::from_millis(20);
    /// assert_eq!(Deadline::Forever.sleep_for(slice), Some(slice));
    /// assert_eq!(Deadline::timeout(Duration::ZERO).sleep_for(slice), None);
    /// ```
    #[inline]
    pub fn sleep_for(self, slice: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(slice),
            Some(left) if left.is_zero() => None,
            Some(left) => Some(left.min(slice)),
        }
    }

    /// Whether a timed call's instant has passed (never for `Try` or `Forever`).
    ///
    /// ```
    /// use shm_sync::wait::Deadline;
    /// assert!(Deadline::timeout(std::time::Duration::ZERO).is_past());
    /// assert!(!Deadline::Try.is_past());
    /// ```
    #[inline]
    pub fn is_past(self) -> bool {
        match self {
            Deadline::Until(t, _) => t.saturating_duration_since(Instant::now()).is_zero(),
            _ => false,
        }
    }

    /// The timeout a timed call was given; zero for `Try` and `Forever`.
    ///
    /// ```
    /// assert_eq!(shm_sync::wait::Deadline::Try.waited(), std::time::Duration::ZERO);
    /// ```
    #[inline]
    pub fn waited(self) -> Duration {
        match self {
            Deadline::Until(_, d) => d,
            _ => Duration::ZERO,
        }
    }

    /// The error for running out of time: `WouldBlock` for `Try`, `Timeout` otherwise.
    pub(crate) fn expired(self) -> crate::RawError {
        match self {
            Deadline::Try => crate::RawError::WouldBlock,
            _ => crate::RawError::Timeout,
        }
    }
}

/// Spin steps between two `sched_yield`s of a [`Spin::yielding`] spinner.
pub const YIELD_EVERY: u32 = 64;

/// The spin policy before sleeping: a count of steps, each a `pause` (the CPU's spin
/// hint), and for a [yielding](Self::yielding) spinner a `sched_yield` every
/// [`YIELD_EVERY`] steps, so that a peer sharing this core (a busy machine) gets to run
/// instead of waiting for our time slice to end. A lock spins without yielding (its
/// holder runs a short critical section on another core); the queue ring yields (its
/// peer may be the only other runnable thread). Counted, so a spin always ends; the
/// caller then checks its deadline and sleeps. `YIELD_EVERY_N` is the yield cadence
/// (0: never), fixed by the constructor.
///
/// ```
/// use shm_sync::wait::Spin;
/// let mut s = Spin::yielding(3);
/// let mut steps = 0;
/// while s.step() {
///     steps += 1;
/// }
/// assert_eq!((steps, s.is_done()), (3, true));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Spin<const YIELD_EVERY_N: u32 = 0> {
    left: u32,
}

impl Spin {
    /// `steps` pauses, never yielding.
    ///
    /// ```
    /// assert!(!shm_sync::wait::Spin::new(1).is_done());
    /// ```
    #[inline]
    pub const fn new(steps: u32) -> Spin {
        Spin { left: steps }
    }

    /// `steps` pauses, every [`YIELD_EVERY`]-th (counted down, and the last) a
    /// `sched_yield` instead. The cadence is part of the type: no register holds it
    /// in the spinning caller.
    ///
    /// ```
    /// assert!(shm_sync::wait::Spin::yielding(0).is_done());
    /// ```
    #[inline]
    pub const fn yielding(steps: u32) -> Spin<YIELD_EVERY> {
        Spin { left: steps }
    }
}

impl<const YIELD_EVERY_N: u32> Spin<YIELD_EVERY_N> {
    /// Whether no step is left.
    ///
    /// ```
    /// let mut s = shm_sync::wait::Spin::new(1);
    /// s.stop();
    /// assert!(s.is_done());
    /// ```
    #[inline]
    pub const fn is_done(&self) -> bool {
        self.left == 0
    }

    /// One step: `false` (doing nothing) when none is left.
    ///
    /// ```
    /// let mut s = shm_sync::wait::Spin::new(1);
    /// assert!(s.step());
    /// assert!(!s.step());
    /// ```
    #[inline]
    pub fn step(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        if YIELD_EVERY_N != 0 && self.left % YIELD_EVERY_N == 0 {
            std::thread::yield_now();
        } else {
            crate::atomic::spin_loop();
        }
        true
    }

    /// Uses up one step without pausing (a spin round that ended for another reason
    /// still counts, so the spin always runs out).
    ///
    /// ```
    /// let mut s = shm_sync::wait::Spin::new(1);
    /// s.skip();
    /// assert!(s.is_done());
    /// ```
    #[inline]
    pub fn skip(&mut self) {
        self.left = self.left.saturating_sub(1);
    }

    /// Ends the spin: nothing is worth spinning for.
    ///
    /// ```
    /// let mut s = shm_sync::wait::Spin::yielding(100);
    /// s.stop();
    /// assert!(!s.step());
    /// ```
    #[inline]
    pub fn stop(&mut self) {
        self.left = 0;
    }
}

/// How long [`spin_until`] spins at most: a wake-up through the futex costs tens of
/// microseconds on a VM, a spin a few.
#[cfg(not(loom))]
pub const SPIN_WAIT: Duration = Duration::from_micros(20);

/// Spins until `ready()` holds or [`SPIN_WAIT`] (cut to the time `deadline` leaves) has
/// passed; returns whether it holds. What Event, Semaphore and Barrier waiters do before
/// sleeping (the time bound suits conditions that other processes make true at any
/// moment, not a holder's short critical section).
///
/// ```
/// use shm_sync::wait::{Deadline, spin_until};
/// assert!(spin_until(Deadline::Forever, || true));
/// assert!(!spin_until(Deadline::Try, || false));
/// ```
#[cfg(not(loom))]
pub fn spin_until(deadline: Deadline, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    let limit = match deadline.remaining() {
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
pub(crate) fn spin_until(_deadline: Deadline, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}
