//! `RawBarrier`: generation and arrival count packed in one word, so arriving and
//! withdrawing are single CASes.

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
/// parties, which reports [`RawError::Corrupted`]: call [`init`](Self::init) first.
///
/// A timed-out waiter withdraws its arrival (when its round has not completed), so the
/// barrier stays usable; Python would break the barrier instead. A party that dies
/// while waiting stays counted for that round.
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
    /// `generation << 32 | arrived`.
    state: AtomicU64,
    /// Bumped by each round's leader; waiters sleep on it.
    seq: AtomicU32,
    parties: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawBarrier>() == 16);

impl RawBarrier {
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

    /// Parties waiting in the current round (Python's `n_waiting`).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(5).n_waiting(), 0);
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.state.load(Ordering::Relaxed) as u32
    }

    /// Arrives and waits for the other parties.
    ///
    /// ```
    /// assert!(shm_sync::RawBarrier::new(1).wait().is_ok());
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::forever())
    }

    /// Arrives and waits at most `timeout`; on timeout the arrival is withdrawn and
    /// [`RawError::Timeout`] returned.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(2);
    /// assert_eq!(b.wait_timeout(std::time::Duration::from_millis(2)), Err(shm_sync::RawError::Timeout));
    /// assert_eq!(b.n_waiting(), 0);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::timeout(timeout))
    }

    /// Arrives only if that completes the round (the caller is the last party):
    /// [`RawError::WouldBlock`] otherwise, without arriving.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(2);
    /// assert!(b.try_wait().is_err());
    /// ```
    pub fn try_wait(&self) -> Result<BarrierWaitResult, RawError> {
        self.wait_mode(Mode::Try)
    }

    fn wait_mode(&self, mode: Mode) -> Result<BarrierWaitResult, RawError> {
        let parties = self.parties.load(Ordering::Acquire);
        if parties == 0 {
            return Err(RawError::Corrupted(
                "barrier has 0 parties (not initialised)",
            ));
        }
        let (generation, index) = loop {
            let s = self.state.load(Ordering::Relaxed);
            let (generation, arrived) = ((s >> 32) as u32, s as u32);
            if arrived >= parties {
                return Err(RawError::Corrupted(
                    "barrier count is not below its parties",
                ));
            }
            if arrived + 1 == parties {
                let next = u64::from(generation.wrapping_add(1)) << 32;
                if self
                    .state
                    .compare_exchange(s, next, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.seq.fetch_add(1, Ordering::Release);
                    sys::futex_wake_all(&self.seq);
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
                .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                break (generation, arrived);
            }
        };
        let released = BarrierWaitResult {
            index,
            leader: false,
            generation,
        };
        if spin_until(mode, || {
            (self.state.load(Ordering::Acquire) >> 32) as u32 != generation
        }) {
            return Ok(released);
        }
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            let s = self.state.load(Ordering::Acquire);
            if (s >> 32) as u32 != generation {
                return Ok(released);
            }
            let Some(sleep) = mode.sleep_for(Duration::from_secs(1)) else {
                return self.withdraw(generation, released);
            };
            sys::futex_wait(&self.seq, seq, Some(sleep));
        }
    }

    fn withdraw(
        &self,
        generation: u32,
        released: BarrierWaitResult,
    ) -> Result<BarrierWaitResult, RawError> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if (s >> 32) as u32 != generation {
                return Ok(released);
            }
            if s as u32 == 0 {
                return Err(RawError::Timeout);
            }
            match self
                .state
                .compare_exchange(s, s - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Err(RawError::Timeout),
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
    }
}
