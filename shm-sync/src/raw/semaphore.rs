//! `RawSemaphore`: a permit count and a table of the processes holding permits, so
//! that a dead process's permits are given back.
//!
//! The count and the table must agree at every instruction, also when a process dies
//! between two of them. The state word carries, beside the count, a *marker*: which
//! slot the last change of the count was for, what it does to that slot (one permit
//! more, one less, or all given back), a 16-bit sequence number and an `APPLYING` bit.
//! The change is committed by the one CAS on the state word; the slot's `held` word,
//! which carries the slot's own sequence number, is brought up to date later
//! (`apply`): a change to a slot with sequence `s` is applied exactly when the slot's
//! sequence is `s - 1`, so whoever applies it, it is applied once.
//!
//! Markers are applied lazily, which makes the common case one CAS per operation:
//! - whoever replaces a marker in the state word first sets `APPLYING` on it (a CAS),
//!   then applies it, then commits its own change from that word, so a replaced marker
//!   is always applied, and a process killed anywhere in between leaves a marker the
//!   next one finishes;
//! - a process whose own marker is still in the state word, unapplied and not
//!   `APPLYING`, may *cancel* it with the opposite operation (a release after its
//!   acquire, or the other way round): one CAS sets the new count and clears the
//!   marker; the slot never sees either change, and the pair costs two CASes in all;
//! - a release by a process holding no permit (a semaphore used as a signal) changes
//!   only the count and keeps the marker.
//!
//! A permit taken by a process is counted in its slot (or in its pending marker).
//! A waiter whose sleep slice ends (and `try_acquire` on an empty semaphore) checks
//! the owners of slots with permits as the mutex checks its holder ([`sys::is_alive`]):
//! a dead one's permits go back to the count (never above the bound) in one committed
//! change, its slot is freed, and the next acquirer is told how many were reclaimed.

use std::time::Duration;

use super::table::{probe, probe_start, slot_alive};
use super::{Deadline, FIRST_SLICE, SLICE, spin_until};
use crate::RawError;
use crate::atomic::{AtomicU32, AtomicU64, Instant, Ordering};
use crate::sys;

/// Most permits a semaphore holds.
pub(crate) const MAX_PERMITS: u32 = i32::MAX as u32;

/// Marker (high half of the state word): slot + 1 in bits 0..13 (0: none).
const MARK_SLOT: u32 = (1 << 13) - 1;
/// Marker bit 13: somebody is applying the marker; it may no longer be cancelled.
const APPLYING: u64 = 1 << (32 + 13);
const OP_SHIFT: u32 = 14;
/// One permit more for the slot.
const OP_TAKE: u32 = 1;
/// One permit less.
const OP_GIVE: u32 = 2;
/// All of the slot's permits given back (its owner died).
const OP_RECLAIM: u32 = 3;
const SEQ_SHIFT: u32 = 16;

fn count_of(s: u64) -> u32 {
    s as u32
}

fn with_marker(count: u32, slot: usize, op: u32, seq: u16) -> u64 {
    let m = (slot as u32 + 1) | (op << OP_SHIFT) | (u32::from(seq) << SEQ_SHIFT);
    u64::from(m) << 32 | u64::from(count)
}

/// A slot of the permit table: the owning process's identity word and its permits.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SemSlot {
    owner: AtomicU64,
    /// Permits held (low 32 bits) and the sequence number of the last change applied
    /// (bits 32..48).
    held: AtomicU64,
}

fn held_of(h: u64) -> u32 {
    h as u32
}

fn seq_of(h: u64) -> u16 {
    (h >> 32) as u16
}

/// The fixed part of a semaphore (24 bytes); the permit table follows it.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SemHead {
    /// Free permits (low 32 bits) and the marker of the last change (high 32).
    state: AtomicU64,
    waiters: AtomicU32,
    /// 0: unbounded (up to `i32::MAX` permits); otherwise the most permits it holds.
    max: AtomicU32,
    /// Bumped by a release that finds waiters; they sleep on it.
    wake: AtomicU32,
    /// Permits given back from dead processes and not yet reported to an acquirer.
    reclaimed: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<SemHead>() == 24);

/// The head of a named semaphore's payload: the semaphore words and the slot count,
/// which the permit table follows (32 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SemNamedHead {
    pub(crate) head: SemHead,
    /// Number of slots (untrusted when opened: checked against the length).
    pub(crate) slots: AtomicU32,
    _pad: AtomicU32,
}
#[cfg(not(loom))]
const _: () = assert!(size_of::<SemSlot>() == 16);

/// How a permit was acquired.
///
/// ```
/// let sem = shm_sync::RawSemaphore::new(1, 1);
/// let a = sem.acquire().unwrap();
/// assert_eq!(a.reclaimed(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermitAcquired {
    reclaimed: u32,
}

impl PermitAcquired {
    /// Permits taken back from dead processes since the last acquirer was told (0
    /// normally): this acquirer is the first to learn of them.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(1, 0).acquire().unwrap().reclaimed(), 0);
    /// ```
    pub fn reclaimed(&self) -> u32 {
        self.reclaimed
    }
}

/// A process-shared counting semaphore (Python's `Semaphore`, and `BoundedSemaphore`
/// when it has a bound) with a table of `SLOTS` permit-holding processes:
/// `24 + 16 * SLOTS` bytes, `#[repr(C)]`. All-zero is an unbounded semaphore with no
/// permits. `RawSemaphore` has 64 slots.
///
/// Permits belong to processes: those a process holds when it dies are given back
/// (noticed within about 20 ms by a waiter, or by `try_acquire`), never beyond the
/// bound, and the next acquirer learns how many ([`PermitAcquired::reclaimed`]). A
/// release by a process that holds no permit (a semaphore used as a signal) adds one
/// without touching the table. More than `SLOTS` live processes holding permits at
/// once is [`RawError::TooManyParticipants`]. `RawSemaphore::<0>` keeps no table: its
/// permits are not reclaimed (for semaphores that count events rather than guard
/// resources: there, a permit taken is consumed, not held).
///
/// ```
/// let sem = shm_sync::RawSemaphore::new(2, 2);
/// sem.acquire().unwrap();
/// sem.acquire().unwrap();
/// assert!(sem.try_acquire().is_err());
/// sem.release().unwrap();
/// sem.release().unwrap();
/// assert_eq!(sem.release(), Err(shm_sync::RawError::OverRelease));
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore<const SLOTS: usize = 64> {
    head: SemHead,
    slots: [SemSlot; SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawSemaphore>() == 24 + 64 * 16);

impl RawSemaphore {
    crate::atomic::const_fn_unless_loom! {
        /// A semaphore with `value` permits and bound `max` (0 = unbounded), 64 slots.
        ///
        /// ```
        /// let sem = shm_sync::RawSemaphore::new(1, 0);
        /// assert_eq!(sem.value(), 1);
        /// ```
        pub const fn new(value: u32, max: u32) -> RawSemaphore {
            RawSemaphore::with_slots(value, max)
        }
    }
}

impl<const SLOTS: usize> RawSemaphore<SLOTS> {
    /// A semaphore with `value` permits, bound `max` (0 = unbounded) and `SLOTS` slots.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::<0>::with_slots(1, 0); // no table
    /// sem.acquire().unwrap();
    /// assert_eq!(sem.value(), 0);
    /// ```
    #[cfg(not(loom))]
    pub const fn with_slots(value: u32, max: u32) -> RawSemaphore<SLOTS> {
        RawSemaphore {
            head: SemHead::new(value, max),
            slots: [const {
                SemSlot {
                    owner: AtomicU64::new(0),
                    held: AtomicU64::new(0),
                }
            }; SLOTS],
        }
    }

    /// A semaphore with `value` permits, bound `max` (0 = unbounded) and `SLOTS` slots.
    #[cfg(loom)]
    pub fn with_slots(value: u32, max: u32) -> RawSemaphore<SLOTS> {
        RawSemaphore {
            head: SemHead::new(value, max),
            slots: std::array::from_fn(|_| SemSlot::default()),
        }
    }

    /// Views the bytes at `ptr` as a `RawSemaphore<SLOTS>` living in shared memory.
    ///
    /// Bytes that are all zero are an unbounded semaphore with no permits. Any other
    /// bit pattern, including garbage written by a faulty process, is memory-safe: it
    /// is recovered from or reported as an error, never undefined behaviour.
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
    /// // SAFETY: the mapping is page aligned, 4096 bytes (more than 1048), lives as
    /// // long as `seg`, and nothing else touches these bytes.
    /// let raw: &shm_sync::RawSemaphore = unsafe { shm_sync::RawSemaphore::from_ptr(seg.as_ptr()) };
    /// raw.release().unwrap();
    /// assert_eq!(raw.value(), 1);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub unsafe fn from_ptr<'a>(ptr: *const u8) -> &'a RawSemaphore<SLOTS> {
        debug_assert!(ptr.cast::<Self>().is_aligned(), "misaligned RawSemaphore");
        // SAFETY: the caller guarantees alignment, validity for 'a and atomic-only
        // access; the type is all atomics, valid for any bit pattern.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// (Re)initialises in place: `value` permits, bound `max` (0 = unbounded), an
    /// empty table. Only while no process uses the semaphore.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 0);
    /// sem.init(3, 3);
    /// assert_eq!((sem.value(), sem.max()), (3, Some(3)));
    /// ```
    pub fn init(&self, value: u32, max: u32) {
        self.head.init(&self.slots, value, max);
    }

    /// Takes a permit, waiting as long as it takes. `Err` only for
    /// [`RawError::TooManyParticipants`].
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(1, 0);
    /// sem.acquire().unwrap();
    /// assert_eq!(sem.value(), 0);
    /// ```
    pub fn acquire(&self) -> Result<PermitAcquired, RawError> {
        self.head.acquire_mode(&self.slots, Deadline::Forever)
    }

    /// Takes a permit if one is free (after giving back dead processes' permits):
    /// [`RawError::WouldBlock`] otherwise.
    ///
    /// ```
    /// assert!(shm_sync::RawSemaphore::new(0, 0).try_acquire().is_err());
    /// ```
    pub fn try_acquire(&self) -> Result<PermitAcquired, RawError> {
        self.head.acquire_mode(&self.slots, Deadline::Try)
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 0);
    /// assert_eq!(sem.acquire_timeout(std::time::Duration::from_millis(2)), Err(shm_sync::RawError::Timeout));
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PermitAcquired, RawError> {
        self.head
            .acquire_mode(&self.slots, Deadline::timeout(timeout))
    }

    /// Gives a permit back (one of the calling process's, if it holds any).
    /// [`RawError::OverRelease`] beyond the bound (nothing changes),
    /// [`RawError::Overflow`] beyond `i32::MAX` permits.
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(0, 1);
    /// sem.release().unwrap();
    /// assert!(sem.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), RawError> {
        self.head.release(&self.slots)
    }

    /// Free permits (a snapshot; Python's `get_value`).
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(4, 0).value(), 4);
    /// ```
    pub fn value(&self) -> u32 {
        self.head.value()
    }

    /// The bound, `None` for an unbounded semaphore.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(4, 0).max(), None);
    /// ```
    pub fn max(&self) -> Option<u32> {
        self.head.max()
    }

    /// Permits the calling process holds (a snapshot).
    ///
    /// ```
    /// let sem = shm_sync::RawSemaphore::new(3, 3);
    /// sem.acquire().unwrap();
    /// sem.acquire().unwrap();
    /// assert_eq!(sem.held_by_me(), 2);
    /// ```
    pub fn held_by_me(&self) -> u32 {
        self.head.held_by_me(&self.slots)
    }

    /// Gives back the permits of dead processes now (waiters do it on their own);
    /// returns how many were given back.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawSemaphore::new(1, 1).reclaim_dead(), 0);
    /// ```
    pub fn reclaim_dead(&self) -> u32 {
        self.head.reclaim_dead(&self.slots)
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn table(&self) -> &[SemSlot] {
        &self.slots
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn set_state(&self, v: u64) {
        self.head.state.store(v, Ordering::Relaxed);
    }
}

impl SemHead {
    crate::atomic::const_fn_unless_loom! {
        pub(crate) const fn new(value: u32, max: u32) -> SemHead {
            SemHead {
                state: AtomicU64::new(value as u64),
                waiters: AtomicU32::new(0),
                max: AtomicU32::new(max),
                wake: AtomicU32::new(0),
                reclaimed: AtomicU32::new(0),
            }
        }
    }

    pub(crate) fn init(&self, slots: &[SemSlot], value: u32, max: u32) {
        for s in slots {
            s.owner.store(0, Ordering::Relaxed);
            s.held.store(0, Ordering::Relaxed);
        }
        self.state.store(u64::from(value), Ordering::Relaxed);
        self.waiters.store(0, Ordering::Relaxed);
        self.reclaimed.store(0, Ordering::Relaxed);
        self.max.store(max, Ordering::Release);
    }

    pub(crate) fn value(&self) -> u32 {
        count_of(self.state.load(Ordering::Relaxed))
    }

    pub(crate) fn max(&self) -> Option<u32> {
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m != 0)
    }

    /// The most permits the count may reach.
    fn limit(&self) -> u32 {
        match self.max.load(Ordering::Relaxed) {
            0 => MAX_PERMITS,
            m => m.min(MAX_PERMITS),
        }
    }

    /// Applies the change `op` with sequence `seq` to `slot` unless it is applied
    /// already (the slot's sequence is not `seq - 1`).
    fn apply(slot: &SemSlot, op: u32, seq: u16) {
        let mut h = slot.held.load(Ordering::Acquire);
        while seq_of(h) == seq.wrapping_sub(1) {
            let held = match op {
                OP_TAKE => held_of(h).wrapping_add(1),
                OP_GIVE => held_of(h).saturating_sub(1),
                _ => 0,
            };
            let new = u64::from(seq) << 32 | u64::from(held);
            match slot
                .held
                .compare_exchange(h, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(v) => h = v,
            }
        }
    }

    /// The marker of the state word `s`, if it names a slot of the table: the slot,
    /// the operation, the sequence number and whether it is being applied. A marker
    /// naming no slot of the table (garbage) names nothing.
    #[inline]
    fn marker(slots: &[SemSlot], s: u64) -> Option<(usize, u32, u16, bool)> {
        let m = (s >> 32) as u32;
        let slot = (m & MARK_SLOT) as usize;
        if slot == 0 || slot > slots.len() {
            return None;
        }
        Some((
            slot - 1,
            (m >> OP_SHIFT) & 3,
            (m >> SEQ_SHIFT) as u16,
            s & APPLYING != 0,
        ))
    }

    /// Whether the change with sequence `seq` is not yet applied to `slot`.
    #[inline]
    fn pending(slot: &SemSlot, seq: u16) -> bool {
        seq_of(slot.held.load(Ordering::Acquire)) == seq.wrapping_sub(1)
    }

    /// The marker of `s` if it is ours (slot `mine`), unapplied and not being applied:
    /// its operation, which we may cancel.
    #[inline]
    fn own_pending(slots: &[SemSlot], s: u64, mine: usize) -> Option<u32> {
        match Self::marker(slots, s) {
            Some((i, op, seq, false)) if i == mine && Self::pending(&slots[i], seq) => Some(op),
            _ => None,
        }
    }

    /// Makes sure the change the state word `s` names is applied, so that `s` may be
    /// replaced: `Ok` with the word to replace (`s`, or `s` with `APPLYING` set), `Err`
    /// with the new state word if it changed meanwhile.
    #[inline]
    fn settle(&self, slots: &[SemSlot], s: u64) -> Result<u64, u64> {
        match Self::marker(slots, s) {
            Some((i, op, seq, applying)) if Self::pending(&slots[i], seq) => {
                self.settle_pending(&slots[i], s, op, seq, applying)
            }
            _ => Ok(s),
        }
    }

    #[cold]
    fn settle_pending(
        &self,
        slot: &SemSlot,
        s: u64,
        op: u32,
        seq: u16,
        applying: bool,
    ) -> Result<u64, u64> {
        let s = if applying {
            s
        } else {
            // From here on the owner can no longer cancel it.
            self.state
                .compare_exchange(s, s | APPLYING, Ordering::SeqCst, Ordering::Acquire)?;
            s | APPLYING
        };
        Self::apply(slot, op, seq);
        Ok(s)
    }

    /// The calling process's slot, if it has one.
    #[inline]
    fn my_slot(slots: &[SemSlot], me: u64) -> Option<usize> {
        let n = slots.len();
        if n == 0 {
            return None;
        }
        let start = probe_start(me, n);
        if slots[start].owner.load(Ordering::Relaxed) == me {
            return Some(start);
        }
        (1..n)
            .map(|k| probe(start, k, n))
            .find(|&i| slots[i].owner.load(Ordering::Relaxed) == me)
    }

    /// The calling process's slot, claimed if it has none (after giving back dead
    /// processes' slots when the table is full). `None` for a semaphore without a
    /// table.
    #[inline]
    fn claim(&self, slots: &[SemSlot], me: u64) -> Result<Option<usize>, RawError> {
        if slots.is_empty() {
            return Ok(None);
        }
        if let Some(i) = Self::my_slot(slots, me) {
            return Ok(Some(i));
        }
        self.claim_new(slots, me).map(Some)
    }

    #[cold]
    fn claim_new(&self, slots: &[SemSlot], me: u64) -> Result<usize, RawError> {
        let n = slots.len();
        let start = probe_start(me, n);
        for round in 0..2 {
            for k in 0..n {
                let i = probe(start, k, n);
                if slots[i]
                    .owner
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(i);
                }
            }
            if round == 0 {
                self.reclaim_dead(slots);
            }
        }
        Err(RawError::TooManyParticipants)
    }

    /// One attempt to take a permit: `true` taken, `false` none free.
    #[inline]
    fn try_take(&self, slots: &[SemSlot], mine: Option<usize>) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let v = count_of(s);
            if v == 0 {
                return false;
            }
            let new = match mine {
                // Without a table only the count changes; a marker stays as it is.
                None => s & !u64::from(u32::MAX) | u64::from(v - 1),
                // Our own unapplied release: the two cancel out.
                Some(i) if Self::own_pending(slots, s, i) == Some(OP_GIVE) => u64::from(v - 1),
                Some(i) => match self.settle(slots, s) {
                    Ok(from) => {
                        s = from;
                        let seq = seq_of(slots[i].held.load(Ordering::Acquire)).wrapping_add(1);
                        with_marker(v - 1, i, OP_TAKE, seq)
                    }
                    Err(now) => {
                        s = now;
                        continue;
                    }
                },
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    fn taken(&self) -> PermitAcquired {
        let reclaimed = if self.reclaimed.load(Ordering::Relaxed) != 0 {
            self.reclaimed.swap(0, Ordering::Relaxed)
        } else {
            0
        };
        PermitAcquired { reclaimed }
    }

    #[inline]
    pub(crate) fn acquire_mode(
        &self,
        slots: &[SemSlot],
        mode: Deadline,
    ) -> Result<PermitAcquired, RawError> {
        let mine = self.claim(slots, sys::me_process())?;
        if self.try_take(slots, mine) {
            return Ok(self.taken());
        }
        self.acquire_slow(slots, mine, mode)
    }

    #[cold]
    fn acquire_slow(
        &self,
        slots: &[SemSlot],
        mine: Option<usize>,
        mode: Deadline,
    ) -> Result<PermitAcquired, RawError> {
        if mode == Deadline::Try {
            return if self.reclaim_dead(slots) != 0 && self.try_take(slots, mine) {
                Ok(self.taken())
            } else {
                Err(RawError::WouldBlock)
            };
        }
        if spin_until(mode, || self.try_take(slots, mine)) {
            return Ok(self.taken());
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        let mut slice = FIRST_SLICE;
        let mut next_check = Instant::now() + FIRST_SLICE;
        let result = loop {
            let w = self.wake.load(Ordering::SeqCst);
            if self.try_take(slots, mine) {
                break Ok(self.taken());
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                if self.reclaim_dead(slots) != 0 && self.try_take(slots, mine) {
                    break Ok(self.taken());
                }
                break Err(mode.expired());
            };
            sys::futex_wait(&self.wake, w, Some(sleep));
            let now = Instant::now();
            if now >= next_check {
                next_check = now + SLICE;
                slice = SLICE;
                self.reclaim_dead(slots);
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        if result.is_err() && self.value() != 0 && self.waiters.load(Ordering::SeqCst) != 0 {
            // We may have swallowed a wake meant for a permit we no longer take: pass it on.
            self.wake_one();
        }
        result
    }

    #[cold]
    fn wake_one(&self) {
        self.wake.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&self.wake, 1);
    }

    #[inline]
    pub(crate) fn release(&self, slots: &[SemSlot]) -> Result<(), RawError> {
        let mine = Self::my_slot(slots, sys::me_process());
        let s = self.state.load(Ordering::Acquire);
        // The common case: giving back the permit we just took, whose change is still
        // pending in the state word.
        if let Some(i) = mine {
            let v = count_of(s);
            let max = self.max.load(Ordering::Relaxed);
            if (max == 0 || v < max)
                && v < MAX_PERMITS
                && Self::own_pending(slots, s, i) == Some(OP_TAKE)
                && self
                    .state
                    .compare_exchange(s, u64::from(v + 1), Ordering::SeqCst, Ordering::Acquire)
                    .is_ok()
            {
                crate::atomic::seqcst_for_model();
                if self.waiters.load(Ordering::SeqCst) != 0 {
                    self.wake_one();
                }
                return Ok(());
            }
        }
        self.release_slow(slots, mine)
    }

    #[cold]
    fn release_slow(&self, slots: &[SemSlot], mine: Option<usize>) -> Result<(), RawError> {
        let max = self.max.load(Ordering::Relaxed);
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let v = count_of(s);
            if max != 0 && v >= max {
                return Err(RawError::OverRelease);
            }
            if v >= MAX_PERMITS {
                return Err(RawError::Overflow);
            }
            // A release that only counts: we hold no permit. The marker stays.
            let signal = s & !u64::from(u32::MAX) | u64::from(v + 1);
            let new = match mine {
                None => signal,
                // Our own unapplied acquire: the two cancel out.
                Some(i) if Self::own_pending(slots, s, i) == Some(OP_TAKE) => u64::from(v + 1),
                Some(i) => {
                    if Self::held_in(slots, s, i) == 0 {
                        signal
                    } else {
                        match self.settle(slots, s) {
                            Ok(from) => {
                                s = from;
                                let h = slots[i].held.load(Ordering::Acquire);
                                if held_of(h) == 0 {
                                    // Gone meanwhile (reclaimed as if we were dead).
                                    from & !u64::from(u32::MAX) | u64::from(v + 1)
                                } else {
                                    with_marker(v + 1, i, OP_GIVE, seq_of(h).wrapping_add(1))
                                }
                            }
                            Err(now) => {
                                s = now;
                                continue;
                            }
                        }
                    }
                }
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        crate::atomic::seqcst_for_model();
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake_one();
        }
        Ok(())
    }

    /// Permits slot `i` holds, counting the change the state word `s` names if it is
    /// for that slot and not yet applied.
    fn held_in(slots: &[SemSlot], s: u64, i: usize) -> u32 {
        // One load: the count and the sequence must be of the same moment.
        let h = slots[i].held.load(Ordering::Acquire);
        let held = held_of(h);
        match Self::marker(slots, s) {
            Some((j, op, seq, _)) if j == i && seq_of(h) == seq.wrapping_sub(1) => match op {
                OP_TAKE => held.wrapping_add(1),
                OP_GIVE => held.saturating_sub(1),
                _ => 0,
            },
            _ => held,
        }
    }

    pub(crate) fn held_by_me(&self, slots: &[SemSlot]) -> u32 {
        Self::my_slot(slots, sys::me_process()).map_or(0, |i| {
            Self::held_in(slots, self.state.load(Ordering::Acquire), i)
        })
    }

    /// Gives back the permits of every dead owner and frees their slots; returns the
    /// permits given back.
    pub(crate) fn reclaim_dead(&self, slots: &[SemSlot]) -> u32 {
        let me = sys::me_process();
        let mut total = 0;
        for (i, slot) in slots.iter().enumerate() {
            let w = slot.owner.load(Ordering::Acquire);
            if w == 0 || w == me || slot_alive(w) {
                continue;
            }
            total += self.reclaim_slot(slots, i, w);
        }
        if total != 0 {
            self.wake.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake_all(&self.wake);
        }
        total
    }

    /// Gives back the permits of slot `i`, whose owner `w` is dead, in one committed
    /// change, then frees the slot. Safe against other reclaimers (one commit wins;
    /// the others then find 0 permits) and against dying anywhere (the next reclaimer
    /// finishes the change, or finds it done).
    fn reclaim_slot(&self, slots: &[SemSlot], i: usize, w: u64) -> u32 {
        let slot = &slots[i];
        let mut s = self.state.load(Ordering::Acquire);
        let given = loop {
            // The change in the state word may be the dead owner's last (unapplied).
            s = match self.settle(slots, s) {
                Ok(from) => from,
                Err(now) => {
                    s = now;
                    continue;
                }
            };
            let h = slot.held.load(Ordering::Acquire);
            let held = held_of(h);
            if held == 0 {
                break 0;
            }
            let v = count_of(s);
            // Never above the bound: permits released by others meanwhile count too.
            let back = held.min(self.limit().saturating_sub(v));
            let seq = seq_of(h).wrapping_add(1);
            // Told before the commit: a reclaimer dying in between makes the report
            // early, never missing.
            self.reclaimed.fetch_add(back, Ordering::Relaxed);
            match self.state.compare_exchange(
                s,
                with_marker(v + back, i, OP_RECLAIM, seq),
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Applied at once without `APPLYING`: that bit only guards a
                    // cancel, and a reclaim is never cancelled (its owner is dead).
                    Self::apply(slot, OP_RECLAIM, seq);
                    break back;
                }
                Err(x) => {
                    self.reclaimed.fetch_sub(back, Ordering::Relaxed);
                    s = x;
                }
            }
        };
        let _ = slot
            .owner
            .compare_exchange(w, 0, Ordering::AcqRel, Ordering::Relaxed);
        given
    }
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_in_the_process_slot() {
        let sem = RawSemaphore::new(3, 3);
        sem.acquire().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| sem.acquire().unwrap());
        });
        assert_eq!(sem.held_by_me(), 2, "threads of one process share its slot");
        assert_eq!(sem.value(), 1);
        // A thread that ended does not make the process dead: nothing is reclaimed.
        assert_eq!(sem.reclaim_dead(), 0);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!((sem.value(), sem.held_by_me()), (3, 0));
        assert_eq!(sem.release(), Err(RawError::OverRelease));
    }

    #[test]
    fn signal_release_does_not_touch_the_table() {
        let sem = RawSemaphore::new(0, 0);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!((sem.value(), sem.held_by_me()), (2, 0));
        sem.acquire().unwrap();
        assert_eq!(sem.held_by_me(), 1);
    }

    /// A word naming a dead process: our own identity with another start time.
    fn dead_word() -> u64 {
        let me = sys::me_process();
        let w = me ^ (2 << 32);
        assert!(!sys::is_alive(w) || crate::raw::table::slot_alive(w));
        w
    }

    #[test]
    fn dead_owner_permits_come_back_once_and_are_reported() {
        if shm_core::identity::pidns_index() == 0 {
            return; // deaths are unprovable without the registry
        }
        let sem = RawSemaphore::<4>::with_slots(1, 4);
        // A dead process holding three permits, in slot 2.
        let slot = &sem.table()[2];
        slot.owner.store(dead_word(), Ordering::Relaxed);
        slot.held.store(3 | 7 << 32, Ordering::Relaxed);
        sem.acquire().unwrap();
        let t = std::time::Instant::now();
        let a = sem.acquire_timeout(Duration::from_secs(30)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(a.reclaimed(), 3);
        assert_eq!(sem.value(), 2);
        assert_eq!(slot.owner.load(Ordering::Relaxed), 0);
        assert_eq!(sem.reclaim_dead(), 0, "never twice");
        assert_eq!(sem.acquire().unwrap().reclaimed(), 0);
    }

    #[test]
    fn reclaim_never_exceeds_the_bound() {
        if shm_core::identity::pidns_index() == 0 {
            return;
        }
        let sem = RawSemaphore::<4>::with_slots(2, 3);
        sem.table()[1].owner.store(dead_word(), Ordering::Relaxed);
        sem.table()[1].held.store(3, Ordering::Relaxed);
        assert_eq!(sem.reclaim_dead(), 1);
        assert_eq!(sem.value(), 3);
    }

    #[test]
    fn unfinished_change_is_finished_by_the_next_one() {
        // A process that died after its commit: the marker names its slot with the
        // next sequence. Whoever replaces the marker applies it first, exactly once.
        let sem = RawSemaphore::<4>::with_slots(0, 0);
        let slot = &sem.table()[3];
        slot.owner.store(dead_word(), Ordering::Relaxed);
        slot.held.store(1 | 9 << 32, Ordering::Relaxed);
        sem.set_state(with_marker(5, 3, OP_TAKE, 10));
        sem.release().unwrap(); // a signal (we hold none): only the count changes
        assert_eq!(slot.held.load(Ordering::Relaxed), 1 | 9 << 32);
        sem.acquire().unwrap(); // our marker replaces theirs: theirs is applied
        assert_eq!(slot.held.load(Ordering::Relaxed), 2 | 10 << 32);
        sem.release().unwrap();
        assert_eq!(slot.held.load(Ordering::Relaxed), 2 | 10 << 32);
        assert_eq!((sem.value(), sem.held_by_me()), (6, 0));
    }

    #[test]
    fn acquire_release_pairs_cancel_without_touching_the_slot() {
        let sem = RawSemaphore::<4>::with_slots(2, 2);
        sem.acquire().unwrap();
        let i = SemHead::my_slot(sem.table(), sys::me_process()).expect("our slot");
        let before = sem.table()[i].held.load(Ordering::Relaxed);
        assert_eq!(sem.held_by_me(), 1, "the pending change counts");
        sem.release().unwrap();
        sem.acquire().unwrap();
        sem.release().unwrap();
        assert_eq!(sem.table()[i].held.load(Ordering::Relaxed), before);
        assert_eq!((sem.value(), sem.held_by_me()), (2, 0));
        // Two in a row: the first is applied when the second replaces it.
        sem.acquire().unwrap();
        sem.acquire().unwrap();
        assert_eq!(held_of(sem.table()[i].held.load(Ordering::Relaxed)), 1);
        assert_eq!(sem.held_by_me(), 2);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!((sem.value(), sem.held_by_me()), (2, 0));
        assert_eq!(sem.release(), Err(RawError::OverRelease));
    }

    #[test]
    fn a_dead_owners_unapplied_acquire_is_reclaimed() {
        if shm_core::identity::pidns_index() == 0 {
            return;
        }
        // The dead process took a permit (committed, lazily never applied) and died.
        let sem = RawSemaphore::<4>::with_slots(0, 1);
        let slot = &sem.table()[1];
        slot.owner.store(dead_word(), Ordering::Relaxed);
        slot.held.store(4 << 32, Ordering::Relaxed);
        sem.set_state(with_marker(0, 1, OP_TAKE, 5));
        assert_eq!(sem.reclaim_dead(), 1);
        assert_eq!(sem.value(), 1);
        assert_eq!(sem.acquire().unwrap().reclaimed(), 1);
        assert_eq!(sem.reclaim_dead(), 0, "never twice");
    }

    #[test]
    fn full_table_is_an_error() {
        let sem = RawSemaphore::<1>::with_slots(2, 0);
        // Slot 0 taken by a live process that is not us (our parent or init).
        let other = sys::me_process() & !sys::TID_MASK | 1;
        sem.table()[0].owner.store(other, Ordering::Relaxed);
        if sys::is_alive(other) {
            assert_eq!(sem.try_acquire(), Err(RawError::TooManyParticipants));
        }
        // Without a table nothing is tracked and nothing is full.
        let untracked = RawSemaphore::<0>::with_slots(1, 1);
        untracked.acquire().unwrap();
        assert_eq!(untracked.held_by_me(), 0);
        untracked.release().unwrap();
    }

    #[test]
    fn hostile_words_never_hang_or_exceed_the_bound() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let sem = RawSemaphore::<3>::with_slots(1, 2);
            sem.set_state(x & 0xFFFF_FFFF_0000_0003);
            for (k, slot) in sem.table().iter().enumerate() {
                slot.owner
                    .store(x.rotate_left(k as u32 * 7), Ordering::Relaxed);
                slot.held
                    .store(x.rotate_right(k as u32 * 11), Ordering::Relaxed);
            }
            let _ = sem.acquire_timeout(Duration::from_millis(1));
            let _ = sem.release();
            let _ = sem.reclaim_dead();
            let _ = sem.try_acquire();
            assert!(sem.value() <= 3.max(count_of(x)), "{x:#x}");
        }
    }
}
