//! `RawBarrier`: generation, broken flag, arrival count and the outcome of recent
//! rounds packed in one word, so arriving, breaking and resetting are single CASes.

use std::time::Duration;

use super::{Mode, spin_until};
use crate::RawError;
use crate::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sys;

/// What [`RawBarrier::wait`] (and `Barrier::wait`) returns.
///
/// ```
/// let b = shm_sync::RawBarrier::new(1);
/// let r = b.wait().unwrap();
/// assert!(r.is_leader());
/// assert_eq!(r.index(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: u32,
    leader: bool,
    generation: u32,
}

impl BarrierWaitResult {
    /// Whether this party arrived last and released the others (exactly one per round).
    ///
    /// ```
    /// assert!(shm_sync::RawBarrier::new(1).wait().unwrap().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Arrival order in the round, `0..parties` (Python's `Barrier.wait()` value).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(1).wait().unwrap().index(), 0);
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The round this wait belonged to (wraps at `u32::MAX`).
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(1);
    /// assert_eq!(b.wait().unwrap().generation() + 1, b.wait().unwrap().generation());
    /// ```
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// A reusable, process-shared barrier for `parties` participants (Python's
/// `multiprocessing.Barrier`): 16 bytes, `#[repr(C)]`. All-zero is a barrier with no
/// parties, which reports [`RawError::Corrupted`]: call [`init`](Self::init) first
/// (the state word's all-zero is the initial state: round 0, nobody waiting, not broken).
///
/// As in Python, the barrier can be *broken*: by [`abort`](Self::abort), by
/// [`reset`](Self::reset) while parties wait, or by a [`wait_timeout`](Self::wait_timeout)
/// that runs out of time. Every party waiting in a broken round, and every later
/// `wait`, returns [`RawError::BrokenBarrier`] until `reset` (the party that timed out
/// gets [`RawError::Timeout`]). A party that dies while waiting stays counted for that
/// round: the others' timeouts break the barrier, which `reset` repairs.
///
/// ```
/// let b = shm_sync::RawBarrier::new(3);
/// std::thread::scope(|s| {
///     let handles: Vec<_> = (0..3).map(|_| s.spawn(|| b.wait().unwrap())).collect();
///     let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
///     let leaders = results.iter().filter(|r| r.is_leader()).count();
///     assert_eq!(leaders, 1);
/// });
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawBarrier {
    /// `generation << 32 | history << 24 | BROKEN | arrived`: see the constants.
    state: AtomicU64,
    /// Bumped by every transition that releases waiters; waiters sleep on it.
    seq: AtomicU32,
    parties: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawBarrier>() == 16);

/// Parties arrived in the current round: bits 0..23.
const ARRIVED: u64 = (1 << 23) - 1;
/// The current round is broken (abort or timeout); cleared only by `reset`.
const BROKEN: u64 = 1 << 23;
/// Bits 24..32: how the last [`HISTORY`] rounds ended, bit `g % HISTORY` for round `g`
/// (1 = broken by `reset`, 0 = completed). A waiter woken late reads its round's
/// outcome here, in the same word as the generation, so one load tells it exactly.
const HISTORY_SHIFT: u32 = 24;
const HISTORY: u32 = 8;

const MAX_PARTIES: u32 = ARRIVED as u32;

fn generation(s: u64) -> u32 {
    (s >> 32) as u32
}

fn arrived(s: u64) -> u32 {
    (s & ARRIVED) as u32
}

/// The state that starts the round after `s`'s, recording whether `s`'s round ended
/// broken.
fn next_round(s: u64, broken: bool) -> u64 {
    let g = generation(s);
    let bit = 1u64 << (HISTORY_SHIFT + g % HISTORY);
    let history = s & (u64::from(u8::MAX) << HISTORY_SHIFT) & !bit;
    let history = if broken { history | bit } else { history };
    u64::from(g.wrapping_add(1)) << 32 | history
}

impl RawBarrier {
    /// The most parties a barrier can have, 2^23 - 1 (the width of the arrival count
    /// in the state word); more is reported as [`RawError::Corrupted`].
    ///
    /// ```
    /// use shm_sync::{RawBarrier, RawError};
    /// let b = RawBarrier::new(RawBarrier::MAX_PARTIES + 1);
    /// assert!(matches!(b.wait(), Err(RawError::Corrupted(_))));
    /// ```
    pub const MAX_PARTIES: u32 = MAX_PARTIES;

    crate::atomic::const_fn_unless_loom! {
        /// A barrier for `parties` participants.
        ///
        /// ```
        /// let b = shm_sync::RawBarrier::new(2);
        /// assert_eq!(b.parties(), 2);
        /// ```
        pub const fn new(parties: u32) -> RawBarrier {
            RawBarrier {
                state: AtomicU64::new(0),
                seq: AtomicU32::new(0),
                parties: AtomicU32::new(parties),
            }
        }
    }

    /// (Re)initialises in place for `parties` participants; only while nobody waits.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(0);
    /// b.init(1);
    /// b.wait().unwrap();
    /// ```
    pub fn init(&self, parties: u32) {
        self.state.store(0, Ordering::Relaxed);
        self.parties.store(parties, Ordering::Release);
    }

    /// Number of participants.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(5).parties(), 5);
    /// ```
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current round (Python's `n_waiting`); 0 while broken.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(5).n_waiting(), 0);
    /// ```
    pub fn n_waiting(&self) -> u32 {
        let s = self.state.load(Ordering::Relaxed);
        if s & BROKEN != 0 { 0 } else { arrived(s) }
    }

    /// Whether the barrier is broken (Python's `broken`): aborted, or a party timed
    /// out, and not [`reset`](Self::reset) since.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(2);
    /// assert!(!b.broken());
    /// b.abort();
    /// assert!(b.broken());
    /// ```
    pub fn broken(&self) -> bool {
        self.state.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Arrives and waits for the other parties. [`RawError::BrokenBarrier`] if the
    /// barrier is or becomes broken before the round completes.
    ///
    /// ```
    /// assert!(shm_sync::RawBarrier::new(1).wait().is_ok());
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::forever())
    }

    /// Arrives and waits at most `timeout`. Running out of time breaks the barrier for
    /// every party (Python's semantics): this one gets [`RawError::Timeout`], the others
    /// [`RawError::BrokenBarrier`].
    ///
    /// ```
    /// use shm_sync::{RawBarrier, RawError};
    /// let b = RawBarrier::new(2);
    /// assert_eq!(b.wait_timeout(std::time::Duration::from_millis(2)), Err(RawError::Timeout));
    /// assert!(b.broken());
    /// assert_eq!(b.wait(), Err(RawError::BrokenBarrier));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::timeout(timeout))
    }

    /// Arrives only if that completes the round (the caller is the last party):
    /// [`RawError::WouldBlock`] otherwise, without arriving (and without breaking).
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(2);
    /// assert_eq!(b.try_wait(), Err(shm_sync::RawError::WouldBlock));
    /// assert!(!b.broken());
    /// ```
    pub fn try_wait(&self) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::Try)
    }

    /// Breaks the barrier (Python's `abort`): every party waiting now and every later
    /// `wait` gets [`RawError::BrokenBarrier`] until [`reset`](Self::reset).
    ///
    /// ```
    /// use shm_sync::{RawBarrier, RawError};
    /// let b = RawBarrier::new(2);
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| b.wait());
    ///     while b.n_waiting() == 0 && !waiter.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    ///     b.abort();
    ///     assert_eq!(waiter.join().unwrap(), Err(RawError::BrokenBarrier));
    /// });
    /// ```
    pub fn abort(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        while s & BROKEN == 0 {
            match self
                .state
                .compare_exchange(s, s | BROKEN, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return self.release(),
                Err(v) => s = v,
            }
        }
    }

    /// Returns the barrier to its initial, empty, unbroken state (Python's `reset`):
    /// parties waiting at that moment get [`RawError::BrokenBarrier`]; later waits start
    /// a fresh round. Also repairs a garbage arrival count.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(1);
    /// b.abort();
    /// b.reset();
    /// assert!(!b.broken());
    /// assert!(b.wait().is_ok());
    /// ```
    pub fn reset(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        // Already initial-like (nobody waiting, not broken): nothing to do, and not
        // starting a round keeps late waiters' history intact.
        while s & (BROKEN | ARRIVED) != 0 {
            match self.state.compare_exchange(
                s,
                next_round(s, true),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.release(),
                Err(v) => s = v,
            }
        }
    }

    /// Wakes every sleeper after a transition of `state`.
    fn release(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&self.seq);
    }

    /// How a wait in round `g` ended, as `s` tells: `None` while it goes on.
    fn outcome(s: u64, released: BarrierWaitResult) -> Option<Result<BarrierWaitResult, RawError>> {
        let g = released.generation;
        let gone = generation(s).wrapping_sub(g);
        if gone == 0 {
            return (s & BROKEN != 0).then_some(Err(RawError::BrokenBarrier));
        }
        // The history keeps HISTORY rounds: a waiter that slept through more cannot tell
        // a completion from a reset, and says broken (the others went on without it).
        if gone > HISTORY {
            return Some(Err(RawError::BrokenBarrier));
        }
        let reset = s >> (HISTORY_SHIFT + g % HISTORY) & 1 != 0;
        Some(if reset {
            Err(RawError::BrokenBarrier)
        } else {
            Ok(released)
        })
    }

    fn wait_mode(&self, mode: Mode) -> Result<BarrierWaitResult, RawError> {
        let parties = self.parties.load(Ordering::Acquire);
        if parties == 0 {
            return Err(RawError::Corrupted(
                "barrier has 0 parties (not initialised)",
            ));
        }
        if parties > MAX_PARTIES {
            return Err(RawError::Corrupted(
                "barrier has more parties than its arrival count can hold",
            ));
        }
        let released = loop {
            let s = self.state.load(Ordering::Acquire);
            if s & BROKEN != 0 {
                return Err(RawError::BrokenBarrier);
            }
            let (generation, arrived) = (generation(s), arrived(s));
            if arrived >= parties {
                return Err(RawError::Corrupted(
                    "barrier count is not below its parties",
                ));
            }
            if arrived + 1 == parties {
                if self
                    .state
                    .compare_exchange(s, next_round(s, false), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.release();
                    return Ok(BarrierWaitResult {
                        index: arrived,
                        leader: true,
                        generation,
                    });
                }
                continue;
            }
            if mode == Mode::Try {
                return Err(RawError::WouldBlock);
            }
            if self
                .state
                .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break BarrierWaitResult {
                    index: arrived,
                    leader: false,
                    generation,
                };
            }
        };
        spin_until(mode, || {
            Self::outcome(self.state.load(Ordering::Acquire), released).is_some()
        });
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            let s = self.state.load(Ordering::Acquire);
            if let Some(r) = Self::outcome(s, released) {
                return r;
            }
            let Some(sleep) = mode.sleep_for(Duration::from_secs(1)) else {
                return self.break_on_timeout(released);
            };
            sys::futex_wait(&self.seq, seq, Some(sleep));
        }
    }

    /// Out of time in the round of `released`: breaks it for everybody, unless it ended
    /// meanwhile.
    fn break_on_timeout(&self, released: BarrierWaitResult) -> Result<BarrierWaitResult, RawError> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if let Some(r) = Self::outcome(s, released) {
                return r;
            }
            match self
                .state
                .compare_exchange(s, s | BROKEN, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.release();
                    return Err(RawError::Timeout);
                }
                Err(v) => s = v,
            }
        }
    }
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;

    #[test]
    fn rounds_release_everyone_with_one_leader() {
        let b = RawBarrier::new(4);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..200)
                            .map(|_| b.wait().unwrap().is_leader() as u32)
                            .sum::<u32>()
                    })
                })
                .collect();
            let leaders: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(leaders, 200);
        });
    }

    #[test]
    fn garbage_state_is_an_error() {
        let b = RawBarrier::new(2);
        b.state.store(7, Ordering::Relaxed);
        assert!(matches!(b.wait(), Err(RawError::Corrupted(_))));
        assert!(matches!(
            RawBarrier::new(0).wait(),
            Err(RawError::Corrupted(_))
        ));
        assert!(matches!(
            RawBarrier::new(MAX_PARTIES + 1).wait(),
            Err(RawError::Corrupted(_))
        ));
        // `reset` repairs a garbage count.
        b.reset();
        assert_eq!((b.n_waiting(), b.broken()), (0, false));
        std::thread::scope(|s| {
            s.spawn(|| b.wait().unwrap());
            b.wait().unwrap();
        });
    }

    #[test]
    fn every_word_value_gives_an_answer_without_hanging() {
        // Waits that never block (one party; `try_wait`), abort and reset, over words
        // with bits set everywhere: each returns, and reset always repairs.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for parties in [1, 2, 3, MAX_PARTIES] {
                let b = RawBarrier::new(parties);
                b.state.store(x, Ordering::Relaxed);
                let _ = b.try_wait();
                let _ = b.wait_timeout(Duration::ZERO);
                b.abort();
                assert!(b.broken());
                assert_eq!(b.try_wait(), Err(RawError::BrokenBarrier));
                b.reset();
                assert!(!b.broken() && b.n_waiting() == 0);
                if parties == 1 {
                    assert!(b.wait().unwrap().is_leader());
                }
            }
        }
    }

    #[test]
    fn indices_are_distinct_and_the_last_is_the_leader() {
        let b = RawBarrier::new(3);
        std::thread::scope(|s| {
            for _ in 0..50 {
                let hs: Vec<_> = (0..2).map(|_| s.spawn(|| b.wait().unwrap())).collect();
                let mut rs = vec![b.wait().unwrap()];
                rs.extend(hs.into_iter().map(|h| h.join().unwrap()));
                let mut idx: Vec<_> = rs.iter().map(|r| r.index()).collect();
                idx.sort_unstable();
                assert_eq!(idx, [0, 1, 2]);
                let leader = rs.iter().find(|r| r.is_leader()).unwrap();
                assert_eq!(leader.index(), 2);
            }
        });
    }

    #[test]
    fn late_waiter_reads_its_rounds_outcome_from_the_history() {
        let me = BarrierWaitResult {
            index: 0,
            leader: false,
            generation: 5,
        };
        let start = 5u64 << 32 | 1;
        let completed = next_round(start, false);
        let reset = next_round(start, true);
        assert_eq!(RawBarrier::outcome(start, me), None);
        assert_eq!(
            RawBarrier::outcome(start | BROKEN, me),
            Some(Err(RawError::BrokenBarrier))
        );
        assert_eq!(RawBarrier::outcome(completed, me), Some(Ok(me)));
        assert_eq!(
            RawBarrier::outcome(reset, me),
            Some(Err(RawError::BrokenBarrier))
        );
        // Later rounds (completed or reset) keep round 5's outcome for HISTORY rounds.
        let (mut c, mut r) = (completed, reset);
        for round in 1..HISTORY {
            c = next_round(c, round % 2 == 0);
            r = next_round(r, round % 2 == 1);
            assert_eq!(RawBarrier::outcome(c, me), Some(Ok(me)));
            assert_eq!(
                RawBarrier::outcome(r, me),
                Some(Err(RawError::BrokenBarrier))
            );
        }
        // Beyond that it cannot tell and says broken.
        assert_eq!(
            RawBarrier::outcome(next_round(c, false), me),
            Some(Err(RawError::BrokenBarrier))
        );
    }

    #[test]
    fn timeout_breaks_and_wakes_the_other_waiters() {
        let b = RawBarrier::new(3);
        std::thread::scope(|s| {
            let other = s.spawn(|| b.wait());
            while b.n_waiting() == 0 {
                std::thread::yield_now();
            }
            assert_eq!(
                b.wait_timeout(Duration::from_millis(10)),
                Err(RawError::Timeout)
            );
            assert_eq!(other.join().unwrap(), Err(RawError::BrokenBarrier));
        });
        assert!(b.broken());
        b.reset();
        assert!(!b.broken());
    }
}
