//! `RawRwLock`: writers serialise on a robust [`RawMutex`], then raise `WRITER` and
//! wait for the reader table to drain. Each read share is a slot of the table holding
//! the reader thread's identity word, so a dead reader's share can be taken back.
//!
//! The algorithm (per-reader indicators, as in Linux's per-CPU rwsems or BRAVO, with
//! identities instead of CPUs):
//!
//! - a reader claims a free slot with one CAS `0 -> me` (starting at its TID modulo
//!   the table size: uncontended, the first slot tried), then looks at `WRITER`
//!   (`SeqCst` both: a store-then-load pair against the writer's). No writer: it reads.
//!   A writer: it gives the slot back and waits for `WRITER` to clear;
//! - a writer takes the mutex, raises `WRITER | DRAINING` (`SeqCst`) and waits until
//!   every slot is 0; a reader leaving (or backing off) while `DRAINING` is up bumps
//!   `drain` and wakes it;
//! - a slot is one word, so every change is one atomic instruction: whoever dies, at
//!   any instruction, leaves either its identity in a slot (a share, taken back when it
//!   is provably dead) or nothing. Nothing is counted twice or lost;
//! - a writer whose wait slice ends, or a reader that finds the table full, checks the
//!   slots' owners as the mutex checks its holder ([`sys::is_alive`]) and clears the
//!   slots of dead ones (one CAS `dead -> 0` each, so one of several checkers wins),
//!   raising `READER_DIED` first: the next writer in reports [`Acquired::OwnerDied`].

use std::time::Duration;

use super::mutex::{ID_MASK, INCONSISTENT};
use super::table::{probe, probe_start, slot_alive};
use super::{Acquired, Deadline, FIRST_SLICE, RawMutex, SLICE, SPINS};
use crate::RawError;
use crate::atomic::{AtomicU32, AtomicU64, Instant, Ordering};
use crate::sys;
use crate::wait::Spin;

/// A writer holds (or is draining readers for) the lock.
const WRITER: u32 = 1 << 31;
/// Readers sleep on the state word, waiting for `WRITER` to clear.
const READERS_WAITING: u32 = 1 << 30;
/// A reader died holding a share, which was taken back; the next writer is told.
const READER_DIED: u32 = 1 << 29;
/// The writer waits for the table to drain (sleeping on `drain`).
const DRAINING: u32 = 1 << 28;

/// The fixed part of a reader-writer lock: the writers' mutex, the state word and the
/// drain sequence (24 bytes). The reader table follows it.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RwHead {
    writer: RawMutex,
    state: AtomicU32,
    /// Bumped when a reader leaves while a writer drains; the writer sleeps on it.
    drain: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RwHead>() == 24);

/// The head of a named `RwLock`'s payload: the lock words and the slot count, which
/// the reader table follows (32 bytes).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RwNamedHead {
    pub(crate) head: RwHead,
    /// Number of reader slots (untrusted when opened: checked against the length).
    pub(crate) slots: AtomicU32,
    _pad: AtomicU32,
}

/// A process-shared reader-writer lock with a table of `SLOTS` reader slots:
/// `24 + 8 * SLOTS` bytes, `#[repr(C)]`, all-zero is unlocked. `RawRwLock` (64 slots,
/// 536 bytes) is the usual form; [`with_slots`](RawRwLock::with_slots) builds others.
///
/// Every read share is a slot naming its thread, so **a reader that dies holding the
/// lock does not keep writers out**: a waiting writer checks the readers' liveness as
/// [`RawMutex`] checks its holder (within about 20 ms), takes the dead reader's share
/// back and gets [`Acquired::OwnerDied`] once (a dead reader changed nothing, so the
/// lock is not marked inconsistent). Writers are robust like [`RawMutex`] (they hold
/// one): a dead writer is noticed by waiting writers and readers alike, and the next
/// one in gets [`Acquired::OwnerDied`].
///
/// At most `SLOTS` read shares exist at once; one more read is
/// [`RawError::TooManyParticipants`] (after taking back the shares of dead readers).
/// A thread that reads twice holds two slots.
///
/// Writers are preferred: once a writer waits, new readers wait too, so a thread must
/// not take the read lock twice (it could deadlock with a writer in between).
///
/// ```
/// let l = shm_sync::RawRwLock::new();
/// l.read().unwrap();
/// l.read().unwrap();                 // two readers (the same thread here, no writer waiting)
/// assert!(l.try_write().is_err());
/// l.read_unlock().unwrap();
/// l.read_unlock().unwrap();
/// l.write().unwrap();
/// l.write_unlock().unwrap();
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct RawRwLock<const SLOTS: usize = 64> {
    head: RwHead,
    slots: [AtomicU64; SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawRwLock>() == 24 + 64 * 8);
#[cfg(not(loom))]
const _: () = assert!(align_of::<RawRwLock>() == 8);

impl RawRwLock {
    crate::atomic::const_fn_unless_loom! {
        /// An unlocked lock with 64 reader slots.
        ///
        /// ```
        /// static L: shm_sync::RawRwLock = shm_sync::RawRwLock::new();
        /// L.write().unwrap();
        /// L.write_unlock().unwrap();
        /// ```
        pub const fn new() -> RawRwLock {
            RawRwLock::with_slots()
        }
    }
}

impl Default for RawRwLock {
    fn default() -> Self {
        RawRwLock::new()
    }
}

impl<const SLOTS: usize> RawRwLock<SLOTS> {
    /// An unlocked lock with `SLOTS` reader slots (at least 1).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::<2>::with_slots();
    /// l.read().unwrap();
    /// l.read().unwrap();
    /// assert_eq!(l.try_read(), Err(shm_sync::RawError::TooManyParticipants));
    /// ```
    #[cfg(not(loom))]
    pub const fn with_slots() -> RawRwLock<SLOTS> {
        assert!(SLOTS > 0, "a RawRwLock needs at least one reader slot");
        RawRwLock {
            head: RwHead::new(),
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// An unlocked lock with `SLOTS` reader slots (at least 1).
    #[cfg(loom)]
    pub fn with_slots() -> RawRwLock<SLOTS> {
        assert!(SLOTS > 0, "a RawRwLock needs at least one reader slot");
        RawRwLock {
            head: RwHead::new(),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Views the bytes at `ptr` as a `RawRwLock<SLOTS>` living in shared memory.
    ///
    /// Bytes that are all zero are the initial (unlocked) state, so a freshly created
    /// (zeroed) segment needs no initialisation. Any other bit pattern, including
    /// garbage written by a faulty process, is memory-safe: it is recovered from or
    /// reported as an error, never undefined behaviour.
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
    /// // SAFETY: the mapping is page aligned, 4096 bytes (more than 536), lives as long
    /// // as `seg`, and nothing else touches these bytes.
    /// let raw: &shm_sync::RawRwLock = unsafe { shm_sync::RawRwLock::from_ptr(seg.as_ptr()) };
    /// raw.read().unwrap();
    /// assert_eq!(raw.readers(), 1);
    /// raw.read_unlock().unwrap();
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub unsafe fn from_ptr<'a>(ptr: *const u8) -> &'a RawRwLock<SLOTS> {
        debug_assert!(ptr.cast::<Self>().is_aligned(), "misaligned RawRwLock");
        // SAFETY: the caller guarantees alignment, validity for 'a and atomic-only
        // access; the type is all atomics, valid for any bit pattern.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Takes a read lock, waiting as long as a live writer holds the lock.
    /// [`Acquired::OwnerDied`] when this reader found a dead writer and recovered the
    /// lock; [`Acquired::Inconsistent`] while no writer has marked it consistent since.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.read(), Ok(shm_sync::Acquired::Clean));
    /// l.read_unlock().unwrap();
    /// ```
    #[inline]
    pub fn read(&self) -> Result<Acquired, RawError> {
        self.head.read_mode(&self.slots, Deadline::Forever)
    }

    /// Takes a read lock if no writer holds or waits for it.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.write().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(l.try_read().is_err())); });
    /// l.write_unlock().unwrap();
    /// ```
    pub fn try_read(&self) -> Result<Acquired, RawError> {
        self.head.read_mode(&self.slots, Deadline::Try)
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read_timeout(std::time::Duration::from_millis(5)).unwrap();
    /// l.read_unlock().unwrap();
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.head.read_mode(&self.slots, Deadline::timeout(timeout))
    }

    /// Releases a read lock of the calling thread. [`RawError::NotOwner`] when it holds
    /// none.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.read_unlock(), Err(shm_sync::RawError::NotOwner));
    /// ```
    #[inline]
    pub fn read_unlock(&self) -> Result<(), RawError> {
        self.head.read_unlock(&self.slots)
    }

    /// Takes the write lock, waiting as long as it takes. [`Acquired::OwnerDied`] when
    /// the previous writer died, or a reader died holding a share (taken back).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.write(), Ok(shm_sync::Acquired::Clean));
    /// l.write_unlock().unwrap();
    /// ```
    pub fn write(&self) -> Result<Acquired, RawError> {
        self.head.write_mode(&self.slots, Deadline::Forever)
    }

    /// Takes the write lock if nobody (alive) holds the lock.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read().unwrap();
    /// assert!(l.try_write().is_err());
    /// l.read_unlock().unwrap();
    /// assert!(l.try_write().is_ok());
    /// l.write_unlock().unwrap();
    /// ```
    pub fn try_write(&self) -> Result<Acquired, RawError> {
        self.head.write_mode(&self.slots, Deadline::Try)
    }

    /// Takes the write lock, waiting at most `timeout` in all (for the writers' mutex
    /// and for readers to drain).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         l.read().unwrap();
    ///         assert_eq!(l.write_timeout(std::time::Duration::from_millis(5)),
    ///                    Err(shm_sync::RawError::WouldDeadlock)); // its own share
    ///         l.read_unlock().unwrap();
    ///     });
    /// });
    /// assert!(l.write_timeout(std::time::Duration::from_millis(5)).is_ok());
    /// l.write_unlock().unwrap();
    /// ```
    pub fn write_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.head
            .write_mode(&self.slots, Deadline::timeout(timeout))
    }

    /// Releases the write lock. [`RawError::NotOwner`] unless the calling thread holds it.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert!(l.write_unlock().is_err());
    /// ```
    pub fn write_unlock(&self) -> Result<(), RawError> {
        self.head.write_unlock()
    }

    /// Marks the lock consistent after [`Acquired::OwnerDied`]; only the writer may.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.write().unwrap();
    /// l.mark_consistent().unwrap();
    /// l.write_unlock().unwrap();
    /// ```
    pub fn mark_consistent(&self) -> Result<(), RawError> {
        self.head.mark_consistent()
    }

    /// Whether no writer died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::RawRwLock::new().is_consistent());
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.head.is_consistent()
    }

    /// Number of read shares held (a snapshot: the occupied slots).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read().unwrap();
    /// assert_eq!(l.readers(), 1);
    /// l.read_unlock().unwrap();
    /// ```
    pub fn readers(&self) -> u32 {
        RwHead::readers(&self.slots)
    }

    /// Number of reader slots, `SLOTS`.
    ///
    /// ```
    /// assert_eq!(shm_sync::RawRwLock::new().slots(), 64);
    /// ```
    pub fn slots(&self) -> usize {
        SLOTS
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn writer_mutex(&self) -> &RawMutex {
        &self.head.writer
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn set_state(&self, v: u32) {
        self.head.state.store(v, Ordering::Relaxed);
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn table(&self) -> &[AtomicU64] {
        &self.slots
    }
}

impl RwHead {
    crate::atomic::const_fn_unless_loom! {
        pub(crate) const fn new() -> RwHead {
            RwHead {
                writer: RawMutex::new(),
                state: AtomicU32::new(0),
                drain: AtomicU32::new(0),
            }
        }
    }

    /// Claims a free slot for `me` (one CAS in the uncontended case); when the table is
    /// full, takes back the slots of dead readers once and tries again.
    #[inline]
    fn claim(&self, slots: &[AtomicU64], me: u64) -> Result<usize, RawError> {
        let n = slots.len();
        let start = probe_start(me, n);
        if slots[start]
            .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(start);
        }
        self.claim_slow(slots, me, start)
    }

    #[cold]
    fn claim_slow(&self, slots: &[AtomicU64], me: u64, start: usize) -> Result<usize, RawError> {
        let n = slots.len();
        for round in 0..2 {
            for k in 0..n {
                let i = probe(start, k, n);
                if slots[i].load(Ordering::Relaxed) == 0
                    && slots[i]
                        .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(i);
                }
            }
            if round == 0 && !self.reclaim(slots, me) {
                break;
            }
        }
        Err(RawError::TooManyParticipants)
    }

    /// Gives back the share in slot `i` (which holds `me`) and, if a writer drains,
    /// tells it.
    #[inline]
    fn unclaim(&self, slots: &[AtomicU64], i: usize, me: u64) {
        let _ = slots[i].compare_exchange(me, 0, Ordering::SeqCst, Ordering::Relaxed);
        crate::atomic::seqcst_for_model();
        if self.state.load(Ordering::SeqCst) & DRAINING != 0 {
            self.wake_drainer();
        }
    }

    fn wake_drainer(&self) {
        self.drain.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&self.drain);
    }

    /// Takes back the shares of dead readers (and garbage words); whether any was.
    /// `READER_DIED` goes up before the slot is cleared, so a checker killed in between
    /// leaves at worst a flag for a share another checker clears.
    #[cold]
    fn reclaim(&self, slots: &[AtomicU64], me: u64) -> bool {
        let mut any = false;
        for slot in slots {
            let w = slot.load(Ordering::Acquire);
            if w == 0 || w == me || slot_alive(w) {
                continue;
            }
            self.state.fetch_or(READER_DIED, Ordering::SeqCst);
            if slot
                .compare_exchange(w, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                any = true;
            }
        }
        if any && self.state.load(Ordering::SeqCst) & DRAINING != 0 {
            self.wake_drainer();
        }
        any
    }

    fn readers(slots: &[AtomicU64]) -> u32 {
        slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count() as u32
    }

    #[inline]
    pub(crate) fn read_mode(
        &self,
        slots: &[AtomicU64],
        mode: Deadline,
    ) -> Result<Acquired, RawError> {
        let me = sys::me();
        let i = self.claim(slots, me)?;
        crate::atomic::seqcst_for_model();
        if self.state.load(Ordering::SeqCst) & WRITER == 0 {
            return Ok(self.reader_state());
        }
        self.unclaim(slots, i, me);
        self.read_slow(slots, me, mode)
    }

    fn reader_state(&self) -> Acquired {
        if self.writer.owner_word() & INCONSISTENT != 0 {
            Acquired::Inconsistent
        } else {
            Acquired::Clean
        }
    }

    #[cold]
    fn read_slow(
        &self,
        slots: &[AtomicU64],
        me: u64,
        mode: Deadline,
    ) -> Result<Acquired, RawError> {
        let mut spin = Spin::new(SPINS);
        let mut next_check = Instant::now() + FIRST_SLICE;
        let mut slice = FIRST_SLICE;
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & WRITER == 0 {
                let i = self.claim(slots, me)?;
                crate::atomic::seqcst_for_model();
                if self.state.load(Ordering::SeqCst) & WRITER == 0 {
                    return Ok(self.reader_state());
                }
                self.unclaim(slots, i, me);
                continue;
            }
            if self.writer.owner_word() & ID_MASK == me {
                return Err(RawError::WouldDeadlock);
            }
            if mode != Deadline::Try && spin.step() {
                continue;
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                if let Some(r) = self.recover_as_reader(slots, me)? {
                    return Ok(r);
                }
                return Err(mode.expired());
            };
            if s & READERS_WAITING == 0
                && self
                    .state
                    .compare_exchange(s, s | READERS_WAITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            sys::futex_wait(&self.state, s | READERS_WAITING, Some(sleep));
            let now = Instant::now();
            if now >= next_check {
                next_check = now + SLICE;
                slice = SLICE;
                if let Some(r) = self.recover_as_reader(slots, me)? {
                    return Ok(r);
                }
            }
        }
    }

    /// A reader that has waited a slice for a writer: `try_lock` on the writers' mutex
    /// takes it over if the writer is dead (or free while `WRITER` is stale). Holding
    /// it, no live writer is inside, so the reader clears `WRITER`, claims a slot and
    /// lets the mutex go (an inconsistent mark stays for the next writer).
    fn recover_as_reader(
        &self,
        slots: &[AtomicU64],
        me: u64,
    ) -> Result<Option<Acquired>, RawError> {
        let acquired = match self.writer.try_lock() {
            Ok(a) => a,
            Err(RawError::WouldBlock) => return Ok(None),
            Err(e) => return Err(e),
        };
        let old = self
            .state
            .fetch_and(!(WRITER | DRAINING | READERS_WAITING), Ordering::AcqRel);
        let result = self.claim(slots, me).map(|_| Some(acquired));
        let _ = self.writer.unlock();
        if old & READERS_WAITING != 0 {
            sys::futex_wake_all(&self.state);
        }
        result
    }

    #[inline]
    pub(crate) fn read_unlock(&self, slots: &[AtomicU64]) -> Result<(), RawError> {
        let me = sys::me();
        let n = slots.len();
        let start = probe_start(me, n);
        for k in 0..n {
            let i = probe(start, k, n);
            if slots[i].load(Ordering::Relaxed) == me {
                self.unclaim(slots, i, me);
                return Ok(());
            }
        }
        Err(RawError::NotOwner)
    }

    /// Whether every slot is free; [`RawError::WouldDeadlock`] if one is the caller's.
    fn drained(slots: &[AtomicU64], me: u64) -> Result<bool, RawError> {
        let mut clear = true;
        for s in slots {
            match s.load(Ordering::SeqCst) {
                0 => {}
                w if w == me => return Err(RawError::WouldDeadlock),
                _ => clear = false,
            }
        }
        Ok(clear)
    }

    pub(crate) fn write_mode(
        &self,
        slots: &[AtomicU64],
        mode: Deadline,
    ) -> Result<Acquired, RawError> {
        let mut acquired = self.writer.lock_mode(mode)?;
        let me = sys::me();
        // After a takeover from a dead writer WRITER may be set already: it is ours now.
        self.state.fetch_or(WRITER | DRAINING, Ordering::SeqCst);
        crate::atomic::seqcst_for_model();
        let mut slice = FIRST_SLICE;
        let mut next_check = Instant::now() + FIRST_SLICE;
        loop {
            let seq = self.drain.load(Ordering::Acquire);
            match Self::drained(slots, me) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    self.release_writer();
                    return Err(e);
                }
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                // Out of time (or `try_write`): dead readers are no reason to fail.
                if self.reclaim(slots, me) && Self::drained(slots, me) == Ok(true) {
                    break;
                }
                self.release_writer();
                return Err(mode.expired());
            };
            sys::futex_wait(&self.drain, seq, Some(sleep));
            let now = Instant::now();
            if now >= next_check {
                next_check = now + SLICE;
                slice = SLICE;
                self.reclaim(slots, me);
            }
        }
        let old = self
            .state
            .fetch_and(!(DRAINING | READER_DIED), Ordering::Acquire);
        if old & READER_DIED != 0 && acquired == Acquired::Clean {
            acquired = Acquired::OwnerDied;
        }
        Ok(acquired)
    }

    pub(crate) fn write_unlock(&self) -> Result<(), RawError> {
        if !self.writer.is_held_by_current_thread() {
            return Err(RawError::NotOwner);
        }
        self.release_writer();
        Ok(())
    }

    fn release_writer(&self) {
        let old = self
            .state
            .fetch_and(!(WRITER | DRAINING | READERS_WAITING), Ordering::Release);
        if old & READERS_WAITING != 0 {
            sys::futex_wake_all(&self.state);
        }
        let _ = self.writer.unlock();
    }

    pub(crate) fn mark_consistent(&self) -> Result<(), RawError> {
        self.writer.mark_consistent()
    }

    pub(crate) fn is_consistent(&self) -> bool {
        self.writer.is_consistent()
    }

    pub(crate) fn readers_in(slots: &[AtomicU64]) -> u32 {
        Self::readers(slots)
    }
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn readers_and_writers_keep_invariant() {
        let l = RawRwLock::new();
        let a = AtomicU64::new(0);
        let b = AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..6 {
                let (l, a, b) = (&l, &a, &b);
                s.spawn(move || {
                    for _ in 0..5_000 {
                        if i % 2 == 0 {
                            l.write().unwrap();
                            let v = a.load(Ordering::Relaxed);
                            a.store(v + 1, Ordering::Relaxed);
                            b.store(v + 1, Ordering::Relaxed);
                            l.write_unlock().unwrap();
                        } else {
                            l.read().unwrap();
                            assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
                            l.read_unlock().unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(a.load(Ordering::Relaxed), 15_000);
        assert_eq!(l.readers(), 0);
    }

    #[test]
    fn dead_writer_recovered_by_reader_and_writer() {
        let l = RawRwLock::new();
        std::thread::scope(|s| {
            s.spawn(|| l.write().unwrap());
        });
        assert_eq!(
            l.read_timeout(Duration::from_secs(2)),
            Ok(Acquired::OwnerDied)
        );
        l.read_unlock().unwrap();
        assert_eq!(l.read(), Ok(Acquired::Inconsistent));
        l.read_unlock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| l.write().unwrap());
        });
        assert_eq!(
            l.write_timeout(Duration::from_secs(2)),
            Ok(Acquired::OwnerDied)
        );
        l.mark_consistent().unwrap();
        l.write_unlock().unwrap();
        assert_eq!(l.read(), Ok(Acquired::Clean));
        l.read_unlock().unwrap();
    }

    #[test]
    fn dead_reader_is_taken_back_and_reported_once() {
        let l = RawRwLock::new();
        std::thread::scope(|s| {
            s.spawn(|| l.read().unwrap());
        });
        assert_eq!(l.readers(), 1);
        let t = std::time::Instant::now();
        // Untimed: must not wait for ever.
        assert_eq!(l.write(), Ok(Acquired::OwnerDied));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(l.readers(), 0);
        // Readers change nothing: the lock stays consistent.
        assert!(l.is_consistent());
        l.write_unlock().unwrap();
        assert_eq!(l.try_write(), Ok(Acquired::Clean));
        l.write_unlock().unwrap();
    }

    #[test]
    fn try_write_takes_back_dead_readers() {
        let l = std::sync::Arc::new(RawRwLock::<4>::with_slots());
        let l2 = l.clone();
        // `join` (not a scope, which returns before the thread has exited) makes the
        // thread provably dead.
        std::thread::spawn(move || {
            l2.read().unwrap();
            l2.read().unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(l.readers(), 2);
        assert_eq!(l.try_write(), Ok(Acquired::OwnerDied));
        l.write_unlock().unwrap();
    }

    #[test]
    fn full_table_is_an_error_until_a_share_is_free_or_dead() {
        let l = RawRwLock::<3>::with_slots();
        for _ in 0..3 {
            l.read().unwrap();
        }
        assert_eq!(l.try_read(), Err(RawError::TooManyParticipants));
        l.read_unlock().unwrap();
        l.read().unwrap();
        for _ in 0..3 {
            l.read_unlock().unwrap();
        }
        // Shares of a dead thread make room (`join`: the thread has exited).
        let l = std::sync::Arc::new(l);
        let l2 = l.clone();
        let tid = std::thread::spawn(move || {
            for _ in 0..3 {
                l2.read().unwrap();
            }
            shm_core::testing::current_tid()
        })
        .join()
        .unwrap();
        // `join` returns once the thread cleared its tid, which can be before the
        // kernel has reaped it: liveness reads /proc, so wait until the task is gone.
        let gone = std::time::Instant::now();
        while std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
            assert!(
                gone.elapsed() < Duration::from_secs(20),
                "thread {tid} never went"
            );
            std::thread::yield_now();
        }
        assert_eq!(l.read(), Ok(Acquired::Clean));
        l.read_unlock().unwrap();
        assert_eq!(l.readers(), 0);
        assert_eq!(l.write(), Ok(Acquired::OwnerDied));
        l.write_unlock().unwrap();
    }

    #[test]
    fn writer_with_own_share_would_deadlock() {
        let l = RawRwLock::new();
        l.read().unwrap();
        assert_eq!(l.write(), Err(RawError::WouldDeadlock));
        // The failed writer left readers free to enter.
        l.read().unwrap();
        l.read_unlock().unwrap();
        l.read_unlock().unwrap();
    }

    #[test]
    fn garbage_state_never_hangs() {
        for g in [
            u32::MAX,
            WRITER,
            WRITER | 5,
            READERS_WAITING,
            DRAINING,
            12345,
        ] {
            let l = RawRwLock::new();
            l.set_state(g);
            match l.read_timeout(Duration::from_millis(40)) {
                Ok(_) => l.read_unlock().unwrap(),
                Err(RawError::Timeout) => {}
                Err(e) => panic!("{g:#x}: {e}"),
            }
            let _ = l.write_timeout(Duration::from_millis(20));
            assert!(!l.writer_mutex().is_held_by_current_thread() || l.write_unlock().is_ok());
        }
    }

    #[test]
    fn hostile_slot_words_are_taken_back_or_waited_out() {
        // Seeded random words in the table: every word either names nobody alive (taken
        // back, writer in with OwnerDied) or a live thread (writer times out). Never a
        // hang, a panic or a share counted twice.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let me = sys::me();
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let l = RawRwLock::<4>::with_slots();
            let words = [
                x,
                x & 0xFFFF_FFFF,
                x | (1 << 31),
                me & !(3 << 30) ^ (x << 40),
            ];
            for (slot, w) in l.table().iter().zip(words) {
                slot.store(w, Ordering::Relaxed);
            }
            match l.write_timeout(Duration::from_millis(5)) {
                Ok(_) => {
                    assert_eq!(l.readers(), 0);
                    l.write_unlock().unwrap();
                }
                Err(RawError::Timeout | RawError::WouldDeadlock) => {}
                Err(e) => panic!("{x:#x}: {e}"),
            }
            match l.read_timeout(Duration::from_millis(5)) {
                Ok(_) => l.read_unlock().unwrap(),
                Err(RawError::TooManyParticipants | RawError::Timeout) => {}
                Err(e) => panic!("{x:#x}: {e}"),
            }
        }
    }
}
