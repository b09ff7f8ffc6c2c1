//! `RawBarrier`: generation, broken flag, arrival count and the outcome of recent
//! rounds packed in one word, so arriving, breaking and resetting are single CASes.

use std::time::Duration;

use super::table::{probe, probe_start, slot_alive};
use super::{Deadline, FIRST_SLICE, SLICE, spin_until};
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

/// The barrier's words (16 bytes); the registration table follows them.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BarrierCore {
    /// `generation << 32 | history << 24 | BROKEN | arrived`: see the constants.
    state: AtomicU64,
    /// Bumped by every transition that releases waiters; waiters sleep on it. Its top
    /// bit ([`SLEEPING`]) says that a waiter may sleep on the futex: only then does a
    /// release make the wake-up system call (a round nobody sleeps through costs none).
    seq: AtomicU32,
    parties: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<BarrierCore>() == 16);

/// Top bit of `seq`: a waiter announced that it sleeps on the futex.
const SLEEPING: u32 = 1 << 31;

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

impl BarrierCore {
    crate::atomic::const_fn_unless_loom! {
        pub(crate) const fn new(parties: u32) -> BarrierCore {
            BarrierCore {
                state: AtomicU64::new(0),
                seq: AtomicU32::new(0),
                parties: AtomicU32::new(parties),
            }
        }
    }

    pub(crate) fn init(&self, parties: u32) {
        self.state.store(0, Ordering::Relaxed);
        self.parties.store(parties, Ordering::Release);
    }

    pub(crate) fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    pub(crate) fn n_waiting(&self) -> u32 {
        let s = self.state.load(Ordering::Relaxed);
        if s & BROKEN != 0 { 0 } else { arrived(s) }
    }

    pub(crate) fn broken(&self) -> bool {
        self.state.load(Ordering::Acquire) & BROKEN != 0
    }

    pub(crate) fn abort(&self) {
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

    /// Python's `reset`; also forgets the registrations of dead processes, whose
    /// death broke the barrier.
    pub(crate) fn reset(&self, slots: &[AtomicU64]) {
        self.forget_dead(slots, false);
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

    fn release(&self) {
        // A read-modify-write of `seq` after the state change: a waiter that set
        // SLEEPING before it is woken; one that sets it after sees the new state (its
        // CAS on `seq` fails against this one and it looks again).
        let mut old = self.seq.load(Ordering::Relaxed);
        loop {
            let new = (old & !SLEEPING).wrapping_add(1) & !SLEEPING;
            match self
                .seq
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(v) => old = v,
            }
        }
        if old & SLEEPING != 0 {
            sys::futex_wake_all(&self.seq);
        }
    }

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

    /// The calling process's registration slot, claimed if it has none (after
    /// forgetting dead processes when the table is full). `None` without a table.
    fn register(&self, slots: &[AtomicU64], me: u64) -> Result<(), RawError> {
        let n = slots.len();
        if n == 0 {
            return Ok(());
        }
        let start = probe_start(me, n);
        if slots[start].load(Ordering::Relaxed) == me {
            return Ok(());
        }
        if (1..n).any(|k| slots[probe(start, k, n)].load(Ordering::Relaxed) == me) {
            return Ok(());
        }
        for round in 0..2 {
            for k in 0..n {
                let i = probe(start, k, n);
                if slots[i]
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if round == 0 && !self.forget_dead(slots, true) {
                break;
            }
        }
        Err(RawError::TooManyParticipants)
    }

    /// Frees the slots of dead registered processes (and garbage words); with
    /// `break_it`, breaks the barrier first (a dead party can never arrive, so the
    /// parties waiting would wait for ever). Breaking comes before freeing: a checker
    /// killed in between leaves the slot for the next one. Whether any slot was dead.
    pub(crate) fn forget_dead(&self, slots: &[AtomicU64], break_it: bool) -> bool {
        let me = sys::me_process();
        let mut any = false;
        for slot in slots {
            let w = slot.load(Ordering::Acquire);
            if w == 0 || w == me || slot_alive(w) {
                continue;
            }
            if break_it {
                self.abort();
            }
            any |= slot
                .compare_exchange(w, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        }
        any
    }

    /// Forgets the calling process's registration (it will not wait again).
    pub(crate) fn leave(&self, slots: &[AtomicU64]) {
        let me = sys::me_process();
        for slot in slots {
            let _ = slot.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    pub(crate) fn wait_mode(
        &self,
        slots: &[AtomicU64],
        mode: Deadline,
    ) -> Result<BarrierWaitResult, RawError> {
        self.register(slots, sys::me_process())?;
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
            if mode == Deadline::Try {
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
        let mut slice = FIRST_SLICE;
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            let s = self.state.load(Ordering::Acquire);
            if let Some(r) = Self::outcome(s, released) {
                return r;
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                return self.break_on_timeout(released);
            };
            if seq & SLEEPING == 0 {
                // Announce the sleep, then look at the state once more (a release in
                // between makes this CAS fail, and the loop sees its new state).
                let _ = self.seq.compare_exchange(
                    seq,
                    seq | SLEEPING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                continue;
            }
            if sys::futex_wait(&self.seq, seq, Some(sleep)) == sys::Wake::TimedOut {
                // A slice without news: is every registered party still alive?
                slice = SLICE;
                self.forget_dead(slots, true);
            }
        }
    }

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

/// A reusable, process-shared barrier for `parties` participants (Python's
/// `multiprocessing.Barrier`): 16 bytes, `#[repr(C)]
#[derive(Debug)]
pub struct RawBarrier<const SLOTS: usize = 64> {
    core: BarrierCore,
    slots: [AtomicU64; SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawBarrier>() == 16 + 64 * 8);

/// The head of a named barrier's payload: the barrier words and the slot count, which
/// the registration table follows (24 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BarrierNamedHead {
    pub(crate) core: BarrierCore,
    /// Number of slots (untrusted when opened: checked against the length).
    pub(crate) slots: AtomicU32,
    _pad: AtomicU32,
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
        /// A barrier for `parties` participants, 64 registration slots.
        ///
        /// ```
        /// let b = shm_sync::RawBarrier::new(2);
        /// assert_eq!(b.parties(), 2);
        /// ```
        pub const fn new(parties: u32) -> RawBarrier {
            RawBarrier::with_slots(parties)
        }
    }
}

impl<const SLOTS: usize> RawBarrier<SLOTS> {
    /// A barrier for `parties` participants with `SLOTS` registration slots (0: no
    /// table, dead parties are not noticed).
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::<4>::with_slots(1);
    /// assert!(b.wait().unwrap().is_leader());
    /// ```
    #[cfg(not(loom))]
    pub const fn with_slots(parties: u32) -> RawBarrier<SLOTS> {
        RawBarrier {
            core: BarrierCore::new(parties),
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// A barrier for `parties` participants with `SLOTS` registration slots.
    #[cfg(loom)]
    pub fn with_slots(parties: u32) -> RawBarrier<SLOTS> {
        RawBarrier {
            core: BarrierCore::new(parties),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Views the bytes at `ptr` as a `RawBarrier<SLOTS>` living in shared memory.
    ///
    /// All-zero bytes are a barrier with no parties (call [`init`](Self::init)). Any
    /// other bit pattern, including garbage written by a faulty process, is
    /// memory-safe: it is recovered from or reported as an error, never undefined
    /// behaviour.
    ///
    /// # Safety
    /// - `ptr` is non-null and aligned to 8;
    /// - `ptr` is valid for reads and writes of `size_of::<Self>()` bytes for all of
    ///   `'a` (the mapping stays mapped that long);
    /// - for all of `'a`, every process and thread accesses those bytes only through
    ///   this type (atomically): never through `&mut`, plain reads or writes, or `memcpy`.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(4096)?;
    /// // SAFETY: the mapping is page aligned, 4096 bytes (more than 528), lives as long
    /// // as `seg`, and nothing else touches these bytes.
    /// let raw: &shm_sync::RawBarrier = unsafe { shm_sync::RawBarrier::from_ptr(seg.as_ptr()) };
    /// raw.init(1);
    /// assert!(raw.wait().unwrap().is_leader());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub unsafe fn from_ptr<'a>(ptr: *const u8) -> &'a RawBarrier<SLOTS> {
        debug_assert!(ptr.cast::<Self>().is_aligned(), "misaligned RawBarrier");
        // SAFETY: the caller guarantees alignment, validity for 'a and atomic-only
        // access; the type is all atomics, valid for any bit pattern.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// (Re)initialises in place for `parties` participants, with an empty table; only
    /// while nobody waits.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(0);
    /// b.init(1);
    /// b.wait().unwrap();
    /// ```
    pub fn init(&self, parties: u32) {
        for s in &self.slots {
            s.store(0, Ordering::Relaxed);
        }
        self.core.init(parties);
    }

    /// Number of participants.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(5).parties(), 5);
    /// ```
    pub fn parties(&self) -> u32 {
        self.core.parties()
    }

    /// Parties waiting in the current round (Python's `n_waiting`); 0 while broken.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(5).n_waiting(), 0);
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.core.n_waiting()
    }

    /// Whether the barrier is broken (Python's `broken`): aborted, a party timed out
    /// or died, and not [`reset`](Self::reset) since.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(2);
    /// assert!(!b.broken());
    /// b.abort();
    /// assert!(b.broken());
    /// ```
    pub fn broken(&self) -> bool {
        self.core.broken()
    }

    /// Arrives and waits for the other parties. [`RawError::BrokenBarrier`] if the
    /// barrier is or becomes broken (also by a registered process's death) before the
    /// round completes.
    ///
    /// ```
    /// assert!(shm_sync::RawBarrier::new(1).wait().is_ok());
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, RawError> {
        self.core.wait_mode(&self.slots, Deadline::Forever)
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
        self.core.wait_mode(&self.slots, Deadline::timeout(timeout))
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
        self.core.wait_mode(&self.slots, Deadline::Try)
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
        self.core.abort();
    }

    /// Returns the barrier to its initial, empty, unbroken state (Python's `reset`):
    /// parties waiting at that moment get [`RawError::BrokenBarrier`]; later waits start
    /// a fresh round. Also forgets dead registered processes and repairs a garbage
    /// arrival count.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(1);
    /// b.abort();
    /// b.reset();
    /// assert!(!b.broken());
    /// assert!(b.wait().is_ok());
    /// ```
    pub fn reset(&self) {
        self.core.reset(&self.slots);
    }

    /// Forgets the calling process's registration: its death no longer breaks the
    /// barrier (until it waits again). Call it when a process is done with a barrier
    /// that others keep using.
    ///
    /// ```
    /// let b = shm_sync::RawBarrier::new(1);
    /// b.wait().unwrap();
    /// assert_eq!(b.registered(), 1);
    /// b.leave();
    /// assert_eq!(b.registered(), 0);
    /// ```
    pub fn leave(&self) {
        self.core.leave(&self.slots);
    }

    /// Number of registered processes (a snapshot).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawBarrier::new(2).registered(), 0);
    /// ```
    pub fn registered(&self) -> u32 {
        BarrierCore::registered(&self.slots)
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn table(&self) -> &[AtomicU64] {
        &self.slots
    }
}

impl BarrierCore {
    pub(crate) fn registered(slots: &[AtomicU64]) -> u32 {
        slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count() as u32
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
        b.core.state.store(7, Ordering::Relaxed);
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
                b.core.state.store(x, Ordering::Relaxed);
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
        assert_eq!(BarrierCore::outcome(start, me), None);
        assert_eq!(
            BarrierCore::outcome(start | BROKEN, me),
            Some(Err(RawError::BrokenBarrier))
        );
        assert_eq!(BarrierCore::outcome(completed, me), Some(Ok(me)));
        assert_eq!(
            BarrierCore::outcome(reset, me),
            Some(Err(RawError::BrokenBarrier))
        );
        // Later rounds (completed or reset) keep round 5's outcome for HISTORY rounds.
        let (mut c, mut r) = (completed, reset);
        for round in 1..HISTORY {
            c = next_round(c, round % 2 == 0);
            r = next_round(r, round % 2 == 1);
            assert_eq!(BarrierCore::outcome(c, me), Some(Ok(me)));
            assert_eq!(
                BarrierCore::outcome(r, me),
                Some(Err(RawError::BrokenBarrier))
            );
        }
        // Beyond that it cannot tell and says broken.
        assert_eq!(
            BarrierCore::outcome(next_round(c, false), me),
            Some(Err(RawError::BrokenBarrier))
        );
    }

    #[test]
    fn dead_registered_process_breaks_the_waiters_and_reset_forgets_it() {
        if shm_core::identity::pidns_index() == 0 {
            return; // deaths are unprovable without the registry
        }
        let b = RawBarrier::<4>::with_slots(2);
        // A registered process that died (our identity with another start time).
        b.table()[3].store(sys::me_process() ^ (2 << 32), Ordering::Relaxed);
        let t = std::time::Instant::now();
        assert_eq!(b.wait(), Err(RawError::BrokenBarrier));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(b.broken());
        assert_eq!(b.registered(), 1, "the dead one is forgotten, we stay");
        b.reset();
        std::thread::scope(|s| {
            s.spawn(|| b.wait().unwrap());
            b.wait().unwrap();
        });
        b.leave();
        assert_eq!(b.registered(), 0);
    }

    #[test]
    fn hostile_table_words_break_or_are_waited_out_never_hang() {
        let mut x = 0xD1B5_4A32_D192_ED03u64;
        let me = sys::me_process();
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = RawBarrier::<3>::with_slots(2);
            for (k, slot) in b.table().iter().enumerate() {
                slot.store(x.rotate_left(21 * k as u32), Ordering::Relaxed);
            }
            match b.wait_timeout(Duration::from_millis(3)) {
                Err(
                    RawError::BrokenBarrier | RawError::Timeout | RawError::TooManyParticipants,
                ) => {}
                r => panic!("{x:#x}: {r:?}"),
            }
            b.reset();
            assert!(!b.broken());
            // Dead words are forgotten by reset; what stays names someone alive (or us).
            for slot in b.table() {
                let w = slot.load(Ordering::Relaxed);
                assert!(
                    w == 0 || w == me || crate::raw::table::slot_alive(w),
                    "{w:#x}"
                );
            }
        }
    }

    #[test]
    fn timeout_breaks_and_wakes_the_other_waiters() {
        use shm_core::testing::{BlockedIn, Task, current_tid, wait_until_blocked};
        let b = &RawBarrier::new(3);
        std::thread::scope(|s| {
            let (tx, tid) = std::sync::mpsc::channel();
            let other = s.spawn(move || {
                tx.send(current_tid()).unwrap();
                b.wait()
            });
            // Asleep, not merely arrived: the break must wake a sleeper.
            wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
            assert_eq!(b.n_waiting(), 1);
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
