//! The lock-free, crash-safe ring under every queue and pipe: a bounded multi-producer
//! multi-consumer queue of fixed-size slots (Dmitry Vyukov's bounded MPMC queue), with
//! a participant table that lets the survivors finish what a killed process left
//! half-done.
//!
//! Layout of one ring (at a 64-byte aligned offset of a payload): a [`RingCtl`] of
//! [`CTL_LEN`] bytes (the tail and the head on cache lines of their own), a table of
//! [`ENTRIES`] participant entries of 64 bytes, then `slots` slots of `stride` bytes (a
//! multiple of 64). A slot is a sequence word, the position of the message it belongs
//! to, `len | k << 32` (payload length and slots taken by the message) and
//! `stride - 24` payload bytes. A message longer than one slot takes `k` consecutive
//! slots, claimed together.
//!
//! Positions grow for ever (`u64`); position `p` lives in slot `p % slots`. The sequence
//! word of that slot says, for lap `p`: `2p` free (a producer may claim it), `2p + 1`
//! published, `(2p + 1) | TOMB` a tombstone (skipped by consumers), `2(p + slots)`
//! released (free for the next lap). A producer claims `k` free slots with one CAS on the tail,
//! writes them, publishes the continuation slots and then the first; a consumer claims
//! a published message with one CAS on the head, copies it out, releases its slots.
//!
//! Crash safety without a lock: before its CAS, every producer (consumer) writes the
//! positions it claims, its *intent*, into its own entry of the participant table
//! (identity = the thread's id and start-time token), and clears it once its slots are
//! published (released). A survivor that waits on a slot (a consumer on an unpublished
//! slot below the tail, a producer on a slot a consumer claimed and did not release)
//! looks at the entries whose intent covers that position: while one of their owners
//! may live it waits; once all are provably dead, it tombstones the slot (for a dead
//! producer: the half-written message is never delivered) or frees it (for a dead
//! consumer: the message it was copying out is counted in `lost`). Both are a CAS from
//! the state the dead participant left, so a live participant that finished in the
//! meantime wins and nothing is done twice.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use shm_core::Object;
use shm_core::identity::{Identity, Liveness};

use super::futex;
use super::{QueueError, QueueResult, QueueStats};

/// Bytes of a ring's control block.
pub(crate) const CTL_LEN: usize = 256;
/// Participant entries per ring: threads that may use it at once (an entry of a dead
/// thread is taken over).
pub(crate) const ENTRIES: usize = 64;
const ENTRY_LEN: usize = 64;
const TABLE_LEN: usize = ENTRIES * ENTRY_LEN;
/// Bytes of a slot's header: sequence, message position, `len | k << 32`.
const SLOT_HEADER: u64 = 24;
/// Sequence-word flag of a tombstone.
const TOMB: u64 = 1 << 63;
/// An intent position meaning "none".
const NONE: u64 = u64::MAX;
/// Largest ring (slots times stride).
const MAX_RING_BYTES: u64 = 1 << 40;
/// Longest sleep between two checks of the state: a producer killed between publishing
/// and waking delays a sleeping consumer by at most this, and a dead participant is
/// looked for at least this often.
const SLICE: Duration = Duration::from_millis(50);
/// Spin steps between two `sched_yield`s of a spinning call.
const YIELD_EVERY: u32 = 64;
/// Spins a `_nowait` call gives a message a live producer is writing right now.
const INFLIGHT_SPIN: u32 = 256;

/// The control block. Atomics only: every process maps it.
#[repr(C)]
pub(crate) struct RingCtl {
    // Producers' line.
    tail: AtomicU64,
    _p0: [AtomicU64; 7],
    // Consumers' line.
    head: AtomicU64,
    _p1: [AtomicU64; 7],
    // Read on every call, written rarely.
    slots: AtomicU64,
    stride: AtomicU64,
    closed: AtomicU32,
    get_waiters: AtomicU32,
    put_waiters: AtomicU32,
    join_waiters: AtomicU32,
    high_water: AtomicU32,
    /// A waker already woke the sleepers on `not_empty` / `not_full` since one of them
    /// last went to sleep: later wakers skip the syscall.
    get_wake_pending: AtomicU32,
    put_wake_pending: AtomicU32,
    _p2: AtomicU32,
    _p3: [AtomicU64; 2],
    // Rare.
    not_empty: AtomicU32,
    not_full: AtomicU32,
    all_done: AtomicU32,
    _p4: AtomicU32,
    unfinished: AtomicU64,
    retired_puts: AtomicU64,
    retired_gets: AtomicU64,
    recovered: AtomicU64,
    lost: AtomicU64,
    _p5: AtomicU64,
}

const _: () = assert!(size_of::<RingCtl>() == CTL_LEN);

/// One participant (a thread) of a ring. Only its owner writes it, except that a
/// survivor takes over the entry of a dead owner whose intents are settled.
#[repr(C)]
struct Entry {
    /// `id | token << 32` of the owner thread; 0 = free.
    owner: AtomicU64,
    pidns: AtomicU32,
    _pad: AtomicU32,
    /// First position and slot count the owner claims as a producer (`NONE`: none).
    prod_pos: AtomicU64,
    prod_k: AtomicU64,
    /// The same as a consumer.
    cons_pos: AtomicU64,
    cons_k: AtomicU64,
    /// Messages this owner published / took.
    puts: AtomicU64,
    gets: AtomicU64,
}

const _: () = assert!(size_of::<Entry>() == ENTRY_LEN);

impl Entry {
    fn identity(&self) -> Identity {
        let o = self.owner.load(Ordering::Acquire);
        Identity {
            id: o as u32,
            token: (o >> 32) as u32,
            pidns: self.pidns.load(Ordering::Acquire),
        }
    }

    /// Whether the owner may still run (dead only when provably dead).
    fn may_live(&self) -> bool {
        self.identity().liveness() != Liveness::Dead
    }

    /// Bumps one of the owner's counters (only the owner writes them: no RMW needed).
    #[inline]
    fn bump(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// Whether the intent `(pos, k)` covers position `q`.
#[inline]
fn covers(pos: u64, k: u64, q: u64) -> bool {
    pos != NONE && q.wrapping_sub(pos) < k
}

/// The sequence word of a slot free for position `p` (two states per position, so
/// that "published for `p`" and "free for `p + slots`" differ even with one slot).
#[inline]
fn free(p: u64) -> u64 {
    p.wrapping_mul(2) & !TOMB
}

/// The sequence word of a slot published for position `p`.
#[inline]
fn published(p: u64) -> u64 {
    free(p) | 1
}

/// One step of a spin-wait: a `pause`, and every [`YIELD_EVERY`] steps a
/// `sched_yield`, so that a peer that shares this core (a busy machine) gets to run
/// instead of waiting for our time slice to end.
#[inline]
fn pause(left: u32) {
    if left % YIELD_EVERY == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// `a < b` for positions (which never get 2^63 apart unless forged).
#[inline]
fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Not at all: `Full` / `Empty`.
    Try,
    /// Until this instant (the timeout asked for beside it): `Full` / `Empty` after,
    /// with `waited` set to that timeout.
    Until(Instant, Duration),
    /// As long as it takes.
    Forever,
}

impl Mode {
    pub(crate) fn timeout(d: Duration) -> Mode {
        match Instant::now().checked_add(d) {
            Some(t) => Mode::Until(t, d),
            None => Mode::Forever,
        }
    }
}

/// Slot count and slot stride of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Slots (at least 1).
    pub slots: u64,
    /// Bytes per slot (a multiple of 64, at least 64).
    pub stride: u64,
}

impl Dims {
    /// Dims for `messages` messages and `bytes` payload bytes: one slot per message,
    /// each with room for `bytes / messages` bytes (rounded up) or more.
    pub(crate) fn new(messages: usize, bytes: usize) -> QueueResult<Dims> {
        let bad = || QueueError::InvalidSize {
            what: format!(
                "expected at least 1 message, 16 bytes and at most 2^40 bytes in all, found {messages} messages and {bytes} bytes"
            ),
        };
        if messages == 0 || bytes < 16 {
            return Err(bad());
        }
        let per = (bytes as u64).div_ceil(messages as u64).next_multiple_of(8);
        let stride = (SLOT_HEADER + per).next_multiple_of(64);
        match (messages as u64).checked_mul(stride) {
            Some(total) if total <= MAX_RING_BYTES => Ok(Dims {
                slots: messages as u64,
                stride,
            }),
            _ => Err(bad()),
        }
    }

    /// Payload bytes a ring of these dims takes (a multiple of 64).
    pub(crate) fn ring_len(&self) -> usize {
        CTL_LEN + TABLE_LEN + (self.slots * self.stride) as usize
    }
}

/// Where a ring lies in its object, and its dims (read once, at attach: later writes of
/// these words by another process are ignored).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Offset of the control block in the payload (a multiple of 64).
    pub offset: usize,
    pub dims: Dims,
}

impl Geometry {
    /// Writes a fresh ring into the zeroed object (before it is published).
    pub(crate) fn init(obj: &Object, offset: usize, dims: Dims) {
        // SAFETY: the caller sized the payload for the ring at `offset`.
        let ctl = unsafe { ctl_at(obj, offset) };
        ctl.slots.store(dims.slots, Ordering::Relaxed);
        ctl.stride.store(dims.stride, Ordering::Relaxed);
        let geo = Geometry { offset, dims };
        let ring = Ring::new(obj, geo, "");
        for i in 0..dims.slots {
            ring.seq(i).store(free(i), Ordering::Relaxed);
        }
        for e in ring.entries() {
            e.prod_pos.store(NONE, Ordering::Relaxed);
            e.cons_pos.store(NONE, Ordering::Relaxed);
        }
    }

    /// Reads and checks the dims of the ring at `offset` of an opened object.
    pub(crate) fn attach(obj: &Object, offset: usize, label: &str) -> QueueResult<Geometry> {
        let corrupted = |what: String| QueueError::Corrupted {
            name: label.to_owned(),
            what,
        };
        let len = obj.payload_len();
        if offset % 64 != 0
            || offset
                .checked_add(CTL_LEN + TABLE_LEN)
                .is_none_or(|e| e > len)
        {
            return Err(corrupted(format!(
                "expected a ring control block at offset {offset}, found a payload of {len} bytes"
            )));
        }
        // SAFETY: just checked that the control block lies in the payload.
        let ctl = unsafe { ctl_at(obj, offset) };
        let slots = ctl.slots.load(Ordering::Relaxed);
        let stride = ctl.stride.load(Ordering::Relaxed);
        let room = (len - offset - CTL_LEN - TABLE_LEN) as u64;
        if slots == 0
            || stride < 64
            || stride % 64 != 0
            || slots.checked_mul(stride).is_none_or(|b| b > room)
        {
            return Err(corrupted(format!(
                "expected 1 or more slots of a multiple of 64 bytes in {room} bytes, found {slots} slots of {stride} bytes"
            )));
        }
        Ok(Geometry {
            offset,
            dims: Dims { slots, stride },
        })
    }
}

/// # Safety
/// `offset + CTL_LEN <= obj.payload_len()` and `offset` is a multiple of 64.
unsafe fn ctl_at(obj: &Object, offset: usize) -> &RingCtl {
    // SAFETY: in bounds (the caller), aligned (64-byte aligned payload); RingCtl is only
    // atomics, valid for any bits and for concurrent access.
    unsafe { &*obj.payload_ptr().add(offset).cast::<RingCtl>() }
}

thread_local! {
    /// This thread's entries in the last rings it used: (control block address, entry
    /// index, owner word). Checked against the entry on every use, so a stale one (a
    /// ring unmapped and another mapped there, a forked child) is only a cache miss.
    static MINE: [Cell<(usize, u32, u64)>; 4] = const {
        [const { Cell::new((0, 0, 0)) }; 4]
    };
}

#[cfg(test)]
thread_local! {
    /// Runs once between a consumer's failed look at the head and its spin loop: lets a
    /// test publish a message in exactly that window.
    static AFTER_NOT_READY: Cell<Option<fn(&Ring<'_>)>> = const { Cell::new(None) };
}

/// The two kinds of sleepers of a ring: consumers waiting for a message (`not_empty`)
/// and producers waiting for room (`not_full`).
#[derive(Clone, Copy)]
enum Sleepers {
    Getters,
    Putters,
}

/// What a producer finds at a slot it wants to claim.
enum TailSlot {
    /// Free for this lap.
    Free,
    /// The slot's previous lap is not released yet: no room.
    NotReleased,
    /// Claimed by another producer: the tail read is stale, read it again.
    Stale,
}

/// What a consumer found at the head.
enum Took {
    /// A message, copied into the buffer.
    Message,
    /// Nothing published at this head position (yet): the position and the sequence
    /// word seen there.
    NotReady(u64, u64),
}

/// What a consumer claims at the head.
enum Claim {
    /// Length and slots.
    Message(usize, u64),
    /// A tombstone or a continuation slot of a message whose first slot was tombstoned.
    Skip,
    /// A frame header that cannot be right.
    Bad(u64, u64),
}

/// A ring of an attached object.
pub(crate) struct Ring<'a> {
    ctl: &'a RingCtl,
    table: *const Entry,
    slot_base: *mut u8,
    slots: u64,
    /// `slots - 1` when `slots` is a power of two, else 0.
    mask: u64,
    stride: u64,
    label: &'a str,
    /// Whether puts count tasks (`JoinableQueue`).
    tasks: bool,
}

impl<'a> Ring<'a> {
    /// The ring `geo` (from [`Geometry::attach`] on this very object, or from
    /// [`Geometry::init`]) of `obj`.
    pub(crate) fn new(obj: &'a Object, geo: Geometry, label: &'a str) -> Ring<'a> {
        // SAFETY: `Geometry::attach` (or the creator's sizing) checked that control block,
        // table and slots lie in the payload.
        let ctl = unsafe { ctl_at(obj, geo.offset) };
        let base = obj.payload_ptr().wrapping_add(geo.offset + CTL_LEN);
        let slots = geo.dims.slots;
        Ring {
            ctl,
            table: base.cast::<Entry>(),
            slot_base: base.wrapping_add(TABLE_LEN),
            slots,
            mask: if slots.is_power_of_two() {
                slots - 1
            } else {
                0
            },
            stride: geo.dims.stride,
            label,
            tasks: false,
        }
    }

    /// Makes puts count tasks (for `JoinableQueue`).
    pub(crate) fn counting_tasks(mut self, yes: bool) -> Self {
        self.tasks = yes;
        self
    }

    fn corrupted(&self, what: String) -> QueueError {
        QueueError::Corrupted {
            name: self.label.to_owned(),
            what,
        }
    }

    fn closed(&self) -> QueueError {
        QueueError::Closed {
            name: self.label.to_owned(),
        }
    }

    // ---- memory ----

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        // SAFETY: the table of ENTRIES entries lies in the payload (attach), 64-aligned;
        // entries are atomics only.
        (0..ENTRIES).map(|i| unsafe { &*self.table.add(i) })
    }

    fn entry(&self, i: usize) -> &Entry {
        debug_assert!(i < ENTRIES);
        // SAFETY: as in `entries`, i < ENTRIES (callers take it modulo or bounded).
        unsafe { &*self.table.add(i % ENTRIES) }
    }

    /// Entries that were ever claimed (a forged high-water mark only costs a longer scan).
    fn used_entries(&self) -> impl Iterator<Item = &Entry> {
        let hw = (self.ctl.high_water.load(Ordering::Acquire) as usize).min(ENTRIES);
        self.entries().take(hw)
    }

    #[inline]
    fn slot(&self, pos: u64) -> *mut u8 {
        let i = if self.mask != 0 || self.slots == 1 {
            pos & self.mask
        } else {
            pos % self.slots
        };
        // i < slots: inside the slot area checked at attach.
        self.slot_base.wrapping_add((i * self.stride) as usize)
    }

    #[inline]
    fn word(&self, pos: u64, n: usize) -> &AtomicU64 {
        // SAFETY: the slot of `pos` lies in the payload (attach) and is 64-aligned; words
        // 0..3 are its header, accessed only atomically.
        unsafe { &*self.slot(pos).cast::<AtomicU64>().add(n) }
    }

    #[inline]
    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.word(pos, 0)
    }

    /// Payload bytes per slot.
    #[inline]
    fn per_slot(&self) -> u64 {
        self.stride - SLOT_HEADER
    }

    /// Slots a message of `len` bytes takes.
    #[inline]
    fn slots_for(&self, len: usize) -> u64 {
        let per = self.per_slot();
        if len as u64 <= per {
            1 // the common case, without a division
        } else {
            (len as u64).div_ceil(per)
        }
    }

    /// Largest message (payload bytes) that fits at all.
    pub(crate) fn max_message_len(&self) -> usize {
        (self.slots * self.per_slot()).min(u64::from(u32::MAX)) as usize
    }

    // ---- the calling thread's entry ----

    fn me(&self) -> QueueResult<&Entry> {
        let word = Identity::current_thread_word();
        let key = self.ctl as *const RingCtl as usize;
        let hit = MINE.with(|cache| {
            cache.iter().find_map(|c| {
                let (k, i, w) = c.get();
                (k == key && w == word).then_some(i as usize)
            })
        });
        if let Some(i) = hit {
            let e = self.entry(i);
            if e.owner.load(Ordering::Relaxed) == word {
                return Ok(e);
            }
        }
        let i = self.register(Identity::current_thread(), word)?;
        MINE.with(|cache| {
            for j in (1..cache.len()).rev() {
                cache[j].set(cache[j - 1].get());
            }
            cache[0].set((key, i as u32, word));
        });
        Ok(self.entry(i))
    }

    fn register(&self, id: Identity, word: u64) -> QueueResult<usize> {
        for (i, e) in self.used_entries().enumerate() {
            if e.owner.load(Ordering::Acquire) == word {
                return Ok(i);
            }
        }
        let claim = |i: usize, e: &Entry, old: u64| -> bool {
            if e.owner
                .compare_exchange(old, word, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            e.pidns.store(id.pidns, Ordering::Release);
            // A dead owner's counts live on in the totals.
            let c = self.ctl;
            c.retired_puts
                .fetch_add(e.puts.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            c.retired_gets
                .fetch_add(e.gets.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            e.prod_pos.store(NONE, Ordering::Release);
            e.cons_pos.store(NONE, Ordering::Release);
            c.high_water.fetch_max(i as u32 + 1, Ordering::AcqRel);
            true
        };
        for (i, e) in self.entries().enumerate() {
            if e.owner.load(Ordering::Relaxed) == 0 && claim(i, e, 0) {
                return Ok(i);
            }
        }
        // Take over an entry whose owner is dead and whose intents are settled.
        for (i, e) in self.entries().enumerate() {
            let old = e.owner.load(Ordering::Acquire);
            if self.settled(e) && !e.may_live() && claim(i, e, old) {
                return Ok(i);
            }
        }
        Err(QueueError::TooManyParticipants {
            name: self.label.to_owned(),
            max: ENTRIES,
        })
    }

    /// Whether a (dead) entry's intents need nobody any more: its producer claim was
    /// never made or is consumed, its consumer claim never made or released.
    fn settled(&self, e: &Entry) -> bool {
        let (p, pk) = (
            e.prod_pos.load(Ordering::Acquire),
            e.prod_k.load(Ordering::Relaxed),
        );
        let prod_ok = p == NONE
            || pk == 0
            || !before(p, self.ctl.tail.load(Ordering::Acquire))
            || !before(self.ctl.head.load(Ordering::Acquire), p.wrapping_add(pk));
        let (q, ck) = (
            e.cons_pos.load(Ordering::Acquire),
            e.cons_k.load(Ordering::Relaxed),
        );
        let cons_ok = q == NONE
            || ck == 0
            || !before(q, self.ctl.head.load(Ordering::Acquire))
            || (0..ck.min(self.slots)).all(|j| {
                let pos = q.wrapping_add(j);
                self.seq(pos).load(Ordering::Acquire) & !TOMB != published(pos)
            });
        prod_ok && cons_ok
    }

    // ---- views ----

    /// Messages in the ring (a snapshot): the published first slots between head and
    /// tail, found by a walk of at most `slots` steps (messages being written are not
    /// counted yet).
    pub(crate) fn len(&self) -> u64 {
        let head = self.ctl.head.load(Ordering::Acquire);
        let used = self.used_slots();
        (0..used)
            .filter(|&j| {
                let pos = head.wrapping_add(j);
                self.seq(pos).load(Ordering::Acquire) == published(pos)
                    && self.word(pos, 1).load(Ordering::Relaxed) == pos
            })
            .count() as u64
    }

    fn totals(&self) -> (u64, u64) {
        let c = self.ctl;
        let (mut puts, mut gets) = (
            c.retired_puts.load(Ordering::Relaxed),
            c.retired_gets.load(Ordering::Relaxed),
        );
        for e in self.used_entries() {
            puts = puts.wrapping_add(e.puts.load(Ordering::Relaxed));
            gets = gets.wrapping_add(e.gets.load(Ordering::Relaxed));
        }
        (puts, gets)
    }

    /// Slots between head and tail (a snapshot, at most `slots`).
    fn used_slots(&self) -> u64 {
        let head = self.ctl.head.load(Ordering::Acquire);
        let tail = self.ctl.tail.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.slots)
    }

    /// Whether a message may be there (a snapshot).
    pub(crate) fn maybe_ready(&self) -> bool {
        let head = self.ctl.head.load(Ordering::Acquire);
        self.ctl.tail.load(Ordering::Acquire) != head
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ctl.closed.load(Ordering::Acquire) != 0
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let (puts, gets) = self.totals();
        QueueStats {
            messages: self.len(),
            bytes_used: self.used_slots() * self.per_slot(),
            puts,
            gets,
            recovered: self.ctl.recovered.load(Ordering::Relaxed),
            lost: self.ctl.lost.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.ctl.unfinished.load(Ordering::Acquire)
    }

    /// Whether `put` of a `len`-byte message would find room now (a snapshot).
    pub(crate) fn would_fit(&self, len: usize) -> bool {
        self.used_slots() + self.slots_for(len) <= self.slots
    }

    // ---- producing ----

    /// One attempt to put `msg`: `Ok(false)` if there is no room now.
    fn try_put(&self, me: &Entry, msg: &[u8]) -> QueueResult<bool> {
        let k = self.slots_for(msg.len());
        if k == 1 {
            return self.try_put_one(me, msg);
        }
        let c = self.ctl;
        'claim: loop {
            let t = c.tail.load(Ordering::Relaxed);
            for j in 0..k {
                match self.tail_slot(t, t.wrapping_add(j))? {
                    TailSlot::Free => {}
                    TailSlot::NotReleased => return Ok(false),
                    TailSlot::Stale => continue 'claim,
                }
            }
            me.prod_k.store(k, Ordering::Relaxed);
            me.prod_pos.store(t, Ordering::Release);
            if c.tail
                .compare_exchange_weak(t, t.wrapping_add(k), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.tasks {
                c.unfinished.fetch_add(1, Ordering::AcqRel);
            }
            let per = self.per_slot() as usize;
            let header = msg.len() as u64 | k << 32;
            let mut off = 0;
            for j in 0..k {
                let pos = t.wrapping_add(j);
                let end = (off + per).min(msg.len());
                self.word(pos, 1).store(t, Ordering::Relaxed);
                self.word(pos, 2).store(header, Ordering::Relaxed);
                // SAFETY: the payload area of a slot is `per` bytes right after its header,
                // inside the ring (attach); end - off <= per. The slot is ours (claimed);
                // others only read it with racing-safe copies.
                unsafe {
                    shm_core::copy_to_shared(
                        &msg[off..end],
                        self.slot(pos).add(SLOT_HEADER as usize),
                    )
                };
                off = end;
            }
            // Continuations first: a published first slot means a whole message.
            for j in (0..k).rev() {
                let pos = t.wrapping_add(j);
                self.seq(pos).store(published(pos), Ordering::Release);
            }
            me.prod_pos.store(NONE, Ordering::Release);
            Entry::bump(&me.puts);
            return Ok(true);
        }
    }

    /// `try_put` of a message that fits one slot (the common case), without the loops
    /// over slots: the same steps for `k = 1`.
    #[inline]
    fn try_put_one(&self, me: &Entry, msg: &[u8]) -> QueueResult<bool> {
        let c = self.ctl;
        loop {
            let t = c.tail.load(Ordering::Relaxed);
            match self.tail_slot(t, t)? {
                TailSlot::Free => {}
                TailSlot::NotReleased => return Ok(false),
                TailSlot::Stale => continue,
            }
            me.prod_k.store(1, Ordering::Relaxed);
            me.prod_pos.store(t, Ordering::Release);
            if c.tail
                .compare_exchange_weak(t, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.tasks {
                c.unfinished.fetch_add(1, Ordering::AcqRel);
            }
            self.word(t, 1).store(t, Ordering::Relaxed);
            self.word(t, 2)
                .store(msg.len() as u64 | 1 << 32, Ordering::Relaxed);
            // SAFETY: as in `try_put`: the slot's payload area (`per_slot` bytes after
            // its header) lies in the ring and holds `msg` (k = 1); the slot is ours.
            unsafe { shm_core::copy_to_shared(msg, self.slot(t).add(SLOT_HEADER as usize)) };
            self.seq(t).store(published(t), Ordering::Release);
            me.prod_pos.store(NONE, Ordering::Release);
            Entry::bump(&me.puts);
            return Ok(true);
        }
    }

    /// What a producer that read tail `t` finds at the slot of position `pos` (`t` or a
    /// continuation after it).
    #[inline]
    fn tail_slot(&self, t: u64, pos: u64) -> QueueResult<TailSlot> {
        let s = self.seq(pos).load(Ordering::Acquire) & !TOMB;
        let d = s.wrapping_sub(free(pos)) as i64;
        if d < 0 {
            // Not released: the slot can only still be in the previous lap (claimed or
            // published for `pos - slots`); anything older is forged. Two compares on
            // the word just loaded, off the fast path.
            let q = pos.wrapping_sub(self.slots);
            if s != free(q) && s != published(q) && self.ctl.tail.load(Ordering::Relaxed) == t {
                return Err(self.tail_not_free(pos, s));
            }
            return Ok(TailSlot::NotReleased);
        }
        if d > 0 {
            // Someone claimed it: our tail is stale, or the ring is forged.
            if self.ctl.tail.load(Ordering::Relaxed) == t {
                return Err(self.tail_not_free(pos, s));
            }
            return Ok(TailSlot::Stale);
        }
        Ok(TailSlot::Free)
    }

    #[cold]
    fn tail_not_free(&self, pos: u64, s: u64) -> QueueError {
        self.corrupted(format!(
            "expected the slot of position {pos} (at the tail) to be free or in the previous lap, found sequence {s:#x}"
        ))
    }

    /// Checks `head <= tail <= head + slots` on a snapshot in which the tail did not move
    /// (read tail, head, tail): producers claim only released slots and consumers only
    /// published ones, so any other state was forged. Called on slow paths only (a put
    /// that finds no room).
    fn check_positions(&self) -> QueueResult<()> {
        let c = self.ctl;
        let t = c.tail.load(Ordering::Acquire);
        let h = c.head.load(Ordering::Acquire);
        if (h > t || t - h > self.slots) && c.tail.load(Ordering::Acquire) == t {
            return Err(self.bad_positions(h, t));
        }
        Ok(())
    }

    #[cold]
    fn bad_positions(&self, h: u64, t: u64) -> QueueError {
        self.corrupted(format!(
            "expected head <= tail <= head + {}, found head {h} and tail {t}",
            self.slots
        ))
    }

    /// What a call that ran out of time returns: `Full` for a producer, `Empty` for a
    /// consumer (Python's `queue.Full` / `queue.Empty` for the timed and untimed forms
    /// alike), with the time it was given.
    #[cold]
    fn gave_up(&self, side: Sleepers, waited: Duration) -> QueueError {
        let name = self.label.to_owned();
        match side {
            Sleepers::Putters => QueueError::Full { name, waited },
            Sleepers::Getters => QueueError::Empty { name, waited },
        }
    }

    /// Appends one message; waits for room as `mode` says, spinning `spin` times first.
    pub(crate) fn put(&self, msg: &[u8], mode: Mode, spin: u32) -> QueueResult<()> {
        // The common case first: a one-slot message and room at the tail.
        if msg.len() as u64 <= self.per_slot() && !self.is_closed() {
            let me = self.me()?;
            if self.try_put_one(me, msg)? {
                self.signal(Sleepers::Getters);
                return Ok(());
            }
        }
        self.put_many(&[msg], mode, spin).map(|_| ())
    }

    /// Appends messages in order; returns how many went in. Waits (as `mode` says) only
    /// while none fits.
    pub(crate) fn put_many(&self, msgs: &[&[u8]], mode: Mode, spin: u32) -> QueueResult<usize> {
        let max = self.max_message_len();
        if let Some(m) = msgs.iter().find(|m| m.len() > max) {
            return Err(QueueError::TooLarge {
                name: self.label.to_owned(),
                len: m.len(),
                max,
            });
        }
        if msgs.is_empty() {
            return Ok(0);
        }
        let me = self.me()?;
        let mut spins = spin;
        let mut n = 0;
        let k = self.slots_for(msgs[0].len());
        loop {
            if self.is_closed() {
                return Err(self.closed());
            }
            while n < msgs.len() && self.try_put(me, msgs[n])? {
                n += 1;
            }
            if n > 0 {
                self.signal(Sleepers::Getters);
                return Ok(n);
            }
            if spins > 0 {
                spins -= 1;
                pause(spins);
                continue;
            }
            // No room: a forged tail or head is `Corrupted`, not "full for ever".
            self.check_positions()?;
            if matches!(mode, Mode::Try) {
                // One look for a dead consumer's slots, one more try, then `Full`.
                if self.free_dead_consumers(k) && self.try_put(me, msgs[0])? {
                    self.signal(Sleepers::Getters);
                    return Ok(1);
                }
                return Err(self.gave_up(Sleepers::Putters, Duration::ZERO));
            }
            // Register as a sleeper, then look again (the consumer side checks the
            // sleeper count after releasing, so one of us sees the other).
            self.check_deadline(mode, Sleepers::Putters)?;
            self.registered(Sleepers::Putters, |word, seq| {
                if self.room_at_tail(k) || self.free_dead_consumers(k) || self.is_closed() {
                    return Ok(());
                }
                self.sleep(word, seq, mode, Sleepers::Putters)
            })?;
        }
    }

    /// Whether the `k` slots at the tail are free now (the test `try_put` makes).
    fn room_at_tail(&self, k: u64) -> bool {
        let t = self.ctl.tail.load(Ordering::Acquire);
        (0..k).all(|j| {
            let pos = t.wrapping_add(j);
            (self.seq(pos).load(Ordering::Acquire) & !TOMB).wrapping_sub(free(pos)) as i64 >= 0
        })
    }

    /// A producer finds no room: frees the slots the tail needs that a dead consumer
    /// had claimed and not released (counting its message as lost). Returns whether it
    /// freed any.
    fn free_dead_consumers(&self, k: u64) -> bool {
        let c = self.ctl;
        let t = c.tail.load(Ordering::Relaxed);
        let mut freed = false;
        for j in 0..k {
            let pos = t.wrapping_add(j);
            let s = self.seq(pos).load(Ordering::Acquire);
            let q = pos.wrapping_sub(self.slots);
            // Published (or a tombstone) for the previous lap, and taken by a consumer?
            if s & !TOMB != published(q) || !before(q, c.head.load(Ordering::Acquire)) {
                continue;
            }
            if self.used_entries().any(|e| {
                covers(
                    e.cons_pos.load(Ordering::Acquire),
                    e.cons_k.load(Ordering::Relaxed),
                    q,
                ) && e.may_live()
            }) {
                continue;
            }
            let real = s & TOMB == 0 && self.word(q, 1).load(Ordering::Relaxed) == q;
            if self
                .seq(pos)
                .compare_exchange(s, free(pos), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                c.recovered.fetch_add(1, Ordering::Relaxed);
                if real {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                }
                freed = true;
            }
        }
        if freed {
            self.wake_everyone();
        }
        freed
    }

    // ---- consuming ----

    /// One attempt to take the message at the head into `out` (skipping tombstones).
    fn try_get(&self, me: &Entry, out: &mut Vec<u8>) -> QueueResult<Took> {
        let c = self.ctl;
        loop {
            let h = c.head.load(Ordering::Relaxed);
            let s = self.seq(h).load(Ordering::Acquire);
            let d = (s & !TOMB).wrapping_sub(published(h)) as i64;
            if d < 0 {
                // Not published: free for lap `h` (empty, or being written), or still
                // in the previous lap (its consumer releasing it); anything older is
                // forged. Compares on the word just loaded.
                if s != free(h)
                    && s & !TOMB != published(h.wrapping_sub(self.slots))
                    && c.head.load(Ordering::Relaxed) == h
                {
                    return Err(self.corrupted(format!(
                        "expected the slot of position {h} (the head) to be free for lap {h} or in the previous lap, found sequence {s:#x}"
                    )));
                }
                // The caller tells "empty" from "being written" only when it must
                // (`in_flight`), so that a spinning consumer reads no line but this
                // slot's.
                return Ok(Took::NotReady(h, s));
            }
            if d > 0 {
                if c.head.load(Ordering::Relaxed) == h {
                    return Err(self.corrupted(format!(
                        "expected the slot of position {h} (the head) to hold lap {h}, found sequence {s:#x}"
                    )));
                }
                continue;
            }
            let claim = if s & TOMB != 0 || self.word(h, 1).load(Ordering::Relaxed) != h {
                Claim::Skip
            } else {
                let lk = self.word(h, 2).load(Ordering::Relaxed);
                let (len, k) = (lk & 0xffff_ffff, lk >> 32);
                // k is exactly the slots len needs (no division on this path).
                if k == 0
                    || k > self.slots
                    || len > k * self.per_slot()
                    || (k > 1 && len <= (k - 1) * self.per_slot())
                {
                    Claim::Bad(h, lk)
                } else {
                    Claim::Message(len as usize, k)
                }
            };
            let k = match claim {
                Claim::Message(_, k) => k,
                _ => 1,
            };
            me.cons_k.store(k, Ordering::Relaxed);
            me.cons_pos.store(h, Ordering::Release);
            if c.head
                .compare_exchange_weak(h, h.wrapping_add(k), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if let Claim::Message(len, _) = claim {
                Entry::bump(&me.gets);
                out.resize(len, 0);
                if k == 1 {
                    // SAFETY: the payload area of the slot (`per_slot` bytes after its
                    // header) lies in the ring and len <= per_slot (k = 1); `out` is
                    // local memory. The slot is ours until released; a forged writer
                    // yields wrong bytes only.
                    unsafe {
                        shm_core::copy_from_shared(self.slot(h).add(SLOT_HEADER as usize), out)
                    };
                } else {
                    let per = self.per_slot() as usize;
                    let mut off = 0;
                    for j in 0..k {
                        let end = (off + per).min(len);
                        // SAFETY: as above, for slot j of the message: end - off <= per.
                        unsafe {
                            shm_core::copy_from_shared(
                                self.slot(h.wrapping_add(j)).add(SLOT_HEADER as usize),
                                &mut out[off..end],
                            )
                        };
                        off = end;
                    }
                }
            }
            // Release (the first slot last, so a producer freeing a dead consumer's slots
            // counts its message as lost only if it had not finished).
            if k == 1 {
                self.seq(h)
                    .store(free(h.wrapping_add(self.slots)), Ordering::Release);
            } else {
                for j in (0..k).rev() {
                    let pos = h.wrapping_add(j);
                    self.seq(pos)
                        .store(free(pos.wrapping_add(self.slots)), Ordering::Release);
                }
            }
            me.cons_pos.store(NONE, Ordering::Release);
            self.signal(Sleepers::Putters);
            match claim {
                Claim::Message(..) => return Ok(Took::Message),
                Claim::Skip => continue,
                Claim::Bad(pos, lk) => {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                    return Err(self.corrupted(format!(
                        "expected a frame (length <= {} in 1 to {} slots) at position {pos}, found {lk:#018x}; dropped it",
                        self.max_message_len(),
                        self.slots
                    )));
                }
            }
        }
    }

    /// A consumer waits on position `h`, claimed by a producer that has not published it:
    /// if every producer that may have claimed it is dead, tombstones it. Returns
    /// whether it did.
    fn bury_dead_producer(&self, h: u64) -> bool {
        let c = self.ctl;
        if self.seq(h).load(Ordering::Acquire) != free(h)
            || !before(h, c.tail.load(Ordering::Acquire))
        {
            return false;
        }
        if self.used_entries().any(|e| {
            covers(
                e.prod_pos.load(Ordering::Acquire),
                e.prod_k.load(Ordering::Relaxed),
                h,
            ) && e.may_live()
        }) {
            return false;
        }
        // A live producer that finished meanwhile published: then this CAS fails.
        if self
            .seq(h)
            .compare_exchange(
                free(h),
                published(h) | TOMB,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            c.recovered.fetch_add(1, Ordering::Relaxed);
            self.wake_everyone();
            return true;
        }
        false
    }

    /// Whether position `h`, not published, is claimed by a producer (below the tail).
    fn in_flight(&self, h: u64) -> QueueResult<bool> {
        let c = self.ctl;
        let tail = c.tail.load(Ordering::Acquire);
        // `h` was the head before this read of the tail, and the tail never falls behind
        // the head; producers claim only free slots, so the tail is never more than a
        // lap on. Plain comparisons: positions never wrap (2^64 messages), so a wrapped
        // difference is forged.
        if tail < h || (tail - h > self.slots && c.head.load(Ordering::Acquire) == h) {
            return Err(self.bad_positions(h, tail));
        }
        Ok(tail != h)
    }

    /// Takes the oldest message into `out` (resized to it).
    pub(crate) fn get(&self, out: &mut Vec<u8>, mode: Mode, spin: u32) -> QueueResult<()> {
        let me = self.me()?;
        let mut spins = spin;
        let mut inflight_spins = 0;
        loop {
            let (h, seen) = match self.try_get(me, out)? {
                Took::Message => return Ok(()),
                Took::NotReady(h, s) => (h, s),
            };
            #[cfg(test)]
            if let Some(hook) = AFTER_NOT_READY.take() {
                hook(self);
            }
            if self.is_closed() && !self.in_flight(h)? {
                // Drained and closed (a put racing with close may still land: look again).
                if let Took::Message = self.try_get(me, out)? {
                    return Ok(());
                }
                return Err(self.closed());
            }
            if spins > 0 {
                if self.is_closed() {
                    // Closed with the head claimed and unpublished: nothing to spin for
                    // (the spin loop below would end at once, for ever). The slow path
                    // waits for the producer or buries it, and keeps the deadline.
                    spins = 0;
                    continue;
                }
                // Spin on the head slot's sequence word alone: reading the tail here
                // would pull the producers' line away from them on every put. Compare
                // with the word `try_get` saw, not a fresh load: a publish between the
                // two would otherwise go unnoticed until the spins run out.
                while spins > 0
                    && self.seq(h).load(Ordering::Relaxed) == seen
                    && self.ctl.head.load(Ordering::Relaxed) == h
                    && !self.is_closed()
                {
                    spins -= 1;
                    pause(spins);
                }
                // At least one step per round, whatever ended the loop: the spins always
                // run out.
                spins = spins.saturating_sub(1);
                continue;
            }
            let inflight = self.in_flight(h)?;
            if inflight && inflight_spins < INFLIGHT_SPIN {
                // A live producer is writing it: give it a moment before the slow path.
                inflight_spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if matches!(mode, Mode::Try) {
                // One look for a dead producer, one more try, then `Empty`.
                if inflight && self.bury_dead_producer(h) {
                    if let Took::Message = self.try_get(me, out)? {
                        return Ok(());
                    }
                }
                return Err(self.gave_up(Sleepers::Getters, Duration::ZERO));
            }
            self.check_deadline(mode, Sleepers::Getters)?;
            self.registered(Sleepers::Getters, |word, seq| {
                if (inflight && self.bury_dead_producer(h)) || self.moved_on(h, inflight) {
                    return Ok(());
                }
                self.sleep(word, seq, mode, Sleepers::Getters)
            })?;
        }
    }

    /// Whether the state a consumer saw at head `h` (nothing, or a message being
    /// written) changed: the head moved, `h` got published, a producer claimed it, or
    /// the ring was closed.
    fn moved_on(&self, h: u64, inflight: bool) -> bool {
        let c = self.ctl;
        c.head.load(Ordering::Acquire) != h
            || (self.seq(h).load(Ordering::Acquire) & !TOMB) == published(h)
            || (!inflight && (before(h, c.tail.load(Ordering::Acquire)) || self.is_closed()))
    }

    /// Takes up to `max` messages (at least one, waiting as `mode` says), handing each to
    /// `each`. Returns how many.
    pub(crate) fn get_many(
        &self,
        max: usize,
        mode: Mode,
        spin: u32,
        each: &mut dyn FnMut(&[u8]),
    ) -> QueueResult<usize> {
        let mut buf = Vec::new();
        self.get(&mut buf, mode, spin)?;
        each(&buf);
        let me = self.me()?;
        let mut n = 1;
        while n < max {
            match self.try_get(me, &mut buf) {
                Ok(Took::Message) => {
                    each(&buf);
                    n += 1;
                }
                // Hand out what was good; the next call reports a bad frame.
                _ => break,
            }
        }
        Ok(n)
    }

    // ---- tasks ----

    /// One finished task (`JoinableQueue::task_done`).
    pub(crate) fn task_done(&self) -> QueueResult<()> {
        let c = self.ctl;
        let r = c
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
        match r {
            Err(_) => Err(QueueError::TaskDoneTooManyTimes {
                name: self.label.to_owned(),
            }),
            Ok(1) => {
                c.all_done.fetch_add(1, Ordering::SeqCst);
                if c.join_waiters.load(Ordering::SeqCst) > 0 {
                    futex::wake_all(&c.all_done);
                }
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    /// Waits until every message put has been marked done.
    pub(crate) fn join(&self, mode: Mode) -> QueueResult<()> {
        let c = self.ctl;
        loop {
            let seq = c.all_done.load(Ordering::SeqCst);
            c.join_waiters.fetch_add(1, Ordering::SeqCst);
            let r = if self.unfinished() == 0 {
                c.join_waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            } else {
                self.sleep_on(&c.all_done, seq, mode)
                    .map_err(|waited| QueueError::Timeout {
                        name: self.label.to_owned(),
                        waited,
                    })
            };
            c.join_waiters.fetch_sub(1, Ordering::SeqCst);
            r?;
        }
    }

    // ---- blocking ----

    /// Sleeps until a message may be there (or the ring is closed), at most `timeout`;
    /// takes nothing.
    pub(crate) fn wait_not_empty(&self, timeout: Duration) {
        self.registered(Sleepers::Getters, |word, seq| {
            if !self.maybe_ready() && !self.is_closed() {
                futex::wait(word, seq, timeout);
            }
        });
    }

    /// Marks the ring closed and wakes every sleeper.
    pub(crate) fn close(&self) {
        self.ctl.closed.store(1, Ordering::SeqCst);
        self.wake_everyone();
    }

    fn wake_everyone(&self) {
        for w in [&self.ctl.not_empty, &self.ctl.not_full, &self.ctl.all_done] {
            w.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(w);
        }
    }

    /// The futex word, sleeper count and "woken already" flag of one side.
    fn sleepers(&self, side: Sleepers) -> (&AtomicU32, &AtomicU32, &AtomicU32) {
        let c = self.ctl;
        match side {
            Sleepers::Getters => (&c.not_empty, &c.get_waiters, &c.get_wake_pending),
            Sleepers::Putters => (&c.not_full, &c.put_waiters, &c.put_wake_pending),
        }
    }

    /// Runs `f` (a last look, then maybe a sleep on the futex word while it still reads
    /// the value handed over) registered as a sleeper of `side`. The word is read before
    /// registering, so a wake `f` could miss bumped it since, and its wait returns at
    /// once; the other side checks the sleeper count after every change (`signal`), so
    /// either it sees us or our last look sees its change.
    fn registered<R>(&self, side: Sleepers, f: impl FnOnce(&AtomicU32, u32) -> R) -> R {
        let (word, waiters, pending) = self.sleepers(side);
        let seq = word.load(Ordering::SeqCst);
        waiters.fetch_add(1, Ordering::SeqCst);
        pending.store(0, Ordering::SeqCst);
        let r = f(word, seq);
        waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// After a change `side` may sleep for: wake it if it sleeps. The fence pairs
    /// with the sleeper's SeqCst increment of its count (`registered`): either it sees
    /// our change when it looks again, or we see it registered. Only the first waker
    /// since a sleeper registered (and cleared `pending`) makes the syscall.
    #[inline]
    fn signal(&self, side: Sleepers) {
        let (word, waiters, pending) = self.sleepers(side);
        fence(Ordering::SeqCst);
        if waiters.load(Ordering::Relaxed) > 0 && pending.swap(1, Ordering::SeqCst) == 0 {
            word.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(word);
        }
    }

    /// `Full` / `Empty` (for `side`) once a timed call's deadline has passed, even while
    /// the state keeps changing (a forged ring can make every look "progress").
    fn check_deadline(&self, mode: Mode, side: Sleepers) -> QueueResult<()> {
        match mode {
            Mode::Until(t, d) if Instant::now() >= t => Err(self.gave_up(side, d)),
            _ => Ok(()),
        }
    }

    /// Sleeps on `word` while it still reads `seq`, for at most one slice or until the
    /// deadline; `Try` or a passed deadline give up at once (`Full` / `Empty` for
    /// `side`).
    fn sleep(&self, word: &AtomicU32, seq: u32, mode: Mode, side: Sleepers) -> QueueResult<()> {
        self.sleep_on(word, seq, mode)
            .map_err(|waited| self.gave_up(side, waited))
    }

    /// [`sleep`](Self::sleep) without the error: `Err(timeout)` when there is no time
    /// left (`Duration::ZERO` for `Try`).
    fn sleep_on(&self, word: &AtomicU32, seq: u32, mode: Mode) -> Result<(), Duration> {
        let slice = match mode {
            Mode::Try => return Err(Duration::ZERO),
            Mode::Forever => SLICE,
            Mode::Until(t, d) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(d);
                }
                left.min(SLICE)
            }
        };
        futex::wait(word, seq, slice);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_core::{Kind, ObjectSpec, SegmentOptions};

    fn ring_object(messages: usize, bytes: usize) -> (Object, Geometry) {
        let spec = ObjectSpec::new(Kind::new(Kind::USER.start + 77, "RingTest"), 1);
        let dims = Dims::new(messages, bytes).unwrap();
        let obj = Object::create(&SegmentOptions::new(), &spec, dims.ring_len(), |o| {
            Geometry::init(o, 0, dims);
            Ok::<_, shm_core::Error>(())
        })
        .unwrap();
        let geo = Geometry::attach(&obj, 0, "t").unwrap();
        (obj, geo)
    }

    fn is_empty(r: &QueueResult<()>) -> bool {
        matches!(r, Err(QueueError::Empty { .. }))
    }

    #[test]
    fn a_spinner_sees_a_publish_made_right_after_its_look() {
        let (obj, geo) = ring_object(4, 256);
        let r = Ring::new(&obj, geo, "t");
        AFTER_NOT_READY.set(Some(|r: &Ring<'_>| r.put(b"late", Mode::Try, 0).unwrap()));
        // Without a message the spinner would spin ~forever: a watchdog closes the ring
        // after 5 s, so a missed publish fails as `Closed` instead of hanging.
        let mut out = Vec::new();
        let o = &obj;
        let got = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            s.spawn(move || {
                if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                    Ring::new(o, geo, "t").close();
                }
            });
            let got = r.get(&mut out, Mode::Forever, u32::MAX);
            tx.send(()).unwrap();
            got
        });
        assert!(got.is_ok(), "the spinner missed the publish: {got:?}");
        assert_eq!(out, b"late");
    }

    #[test]
    fn wraps_and_keeps_order_across_slots() {
        // 5 slots (not a power of two) of 40 bytes.
        let (obj, geo) = ring_object(5, 200);
        let r = Ring::new(&obj, geo, "t");
        assert_eq!(r.max_message_len(), 200);
        let mut out = Vec::new();
        for i in 0..60u8 {
            let a = vec![i; (i as usize * 7) % 130];
            let b = vec![!i; 3];
            r.put(&a, Mode::Try, 0).unwrap();
            r.put(&b, Mode::Try, 0).unwrap();
            assert_eq!(r.len(), 2);
            r.get(&mut out, Mode::Try, 0).unwrap();
            assert_eq!(out, a);
            r.get(&mut out, Mode::Try, 0).unwrap();
            assert_eq!(out, b);
        }
        assert!(matches!(
            r.put(&[0; 201], Mode::Try, 0),
            Err(QueueError::TooLarge {
                len: 201,
                max: 200,
                ..
            })
        ));
        r.put(&[1; 200], Mode::Try, 0).unwrap();
        assert!(matches!(
            r.put(b"", Mode::Try, 0),
            Err(QueueError::Full { .. })
        ));
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, [1; 200]);
        assert_eq!(r.stats().puts, 121);
        assert_eq!(r.stats().gets, 121);
    }

    #[test]
    fn one_slot_ring_alternates() {
        let (obj, geo) = ring_object(1, 16);
        let r = Ring::new(&obj, geo, "t");
        let mut out = Vec::new();
        for i in 0..10u8 {
            r.put(&[i], Mode::Try, 0).unwrap();
            assert!(matches!(
                r.put(&[i], Mode::Try, 0),
                Err(QueueError::Full { .. })
            ));
            r.get(&mut out, Mode::Try, 0).unwrap();
            assert_eq!(out, [i]);
            assert!(is_empty(&r.get(&mut out, Mode::Try, 0)));
        }
    }

    #[test]
    fn threads_deliver_the_exact_multiset() {
        // 3 producers and 3 consumers, messages of 1 to 3 slots through 7 slots.
        let (obj, geo) = ring_object(7, 7 * 40);
        const PER: u32 = 3000;
        let seen = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for p in 0..3u32 {
                let obj = &obj;
                s.spawn(move || {
                    let r = Ring::new(obj, geo, "t");
                    for i in 0..PER {
                        let mut m = vec![0u8; 8 + (i as usize * 13) % 100];
                        m[..4].copy_from_slice(&p.to_le_bytes());
                        m[4..8].copy_from_slice(&i.to_le_bytes());
                        r.put(&m, Mode::Forever, 50).unwrap();
                    }
                });
            }
            for _ in 0..3 {
                let (obj, seen) = (&obj, &seen);
                s.spawn(move || {
                    let r = Ring::new(obj, geo, "t");
                    let mut out = Vec::new();
                    let mut mine = Vec::new();
                    loop {
                        match r.get(&mut out, Mode::timeout(Duration::from_millis(500)), 50) {
                            Ok(()) => {
                                let p = u32::from_le_bytes(out[..4].try_into().unwrap());
                                let i = u32::from_le_bytes(out[4..8].try_into().unwrap());
                                assert_eq!(out.len(), 8 + (i as usize * 13) % 100);
                                mine.push((p, i));
                            }
                            Err(QueueError::Empty { .. }) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    // FIFO per producer within one consumer.
                    for p in 0..3 {
                        let v: Vec<u32> = mine.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                        assert!(v.windows(2).all(|w| w[0] < w[1]));
                    }
                    seen.lock().unwrap().extend(mine);
                });
            }
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        let want: Vec<(u32, u32)> = (0..3).flat_map(|p| (0..PER).map(move |i| (p, i))).collect();
        assert_eq!(seen, want);
        let r = Ring::new(&obj, geo, "t");
        assert_eq!(
            (r.stats().puts, r.stats().gets, r.stats().lost),
            (9000, 9000, 0)
        );
    }

    /// A thread claims `k` slots at the tail as a producer, writes a header in each,
    /// publishes the continuations if `continuations`, and ends (dies) without
    /// publishing the first. Returns the position.
    fn die_mid_put(obj: &Object, geo: Geometry, k: u64, continuations: bool) -> u64 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = Ring::new(obj, geo, "t");
                let me = r.me().unwrap();
                let t = r.ctl.tail.load(Ordering::Relaxed);
                me.prod_k.store(k, Ordering::Relaxed);
                me.prod_pos.store(t, Ordering::Release);
                r.ctl.tail.store(t + k, Ordering::Release);
                for j in 0..k {
                    r.word(t + j, 1).store(t, Ordering::Relaxed);
                    r.word(t + j, 2)
                        .store((40 * k) | (k << 32), Ordering::Relaxed);
                }
                if continuations {
                    for j in 1..k {
                        r.seq(t + j).store(published(t + j), Ordering::Release);
                    }
                }
                t
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn a_dead_producers_half_written_message_is_never_delivered() {
        let (obj, geo) = ring_object(8, 8 * 40);
        let r = Ring::new(&obj, geo, "t");
        r.put(b"before", Mode::Try, 0).unwrap();
        die_mid_put(&obj, geo, 3, true);
        die_mid_put(&obj, geo, 2, false);
        r.put(b"after", Mode::Try, 0).unwrap();
        let mut out = Vec::new();
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"before");
        // The dead producers' slots are tombstoned (or skipped as orphans), never read.
        r.get(&mut out, Mode::timeout(Duration::from_secs(5)), 0)
            .unwrap();
        assert_eq!(out, b"after");
        assert!(is_empty(&r.get(&mut out, Mode::Try, 0)));
        // Its first slot and the unpublished continuation were buried (3), the published
        // continuations skipped; every slot is usable again.
        assert_eq!(r.stats().recovered, 3);
        assert_eq!(r.stats().lost, 0);
        for i in 0..8u8 {
            r.put(&[i], Mode::Try, 0).unwrap();
        }
        for i in 0..8u8 {
            r.get(&mut out, Mode::Try, 0).unwrap();
            assert_eq!(out, [i]);
        }
    }

    #[test]
    fn a_live_producers_claim_is_waited_for_not_buried() {
        let (obj, geo) = ring_object(4, 4 * 40);
        let obj = &obj;
        let (claimed_tx, claimed_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let r = Ring::new(obj, geo, "t");
                let me = r.me().unwrap();
                me.prod_k.store(1, Ordering::Relaxed);
                me.prod_pos.store(0, Ordering::Release);
                r.ctl.tail.store(1, Ordering::Release);
                claimed_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                r.word(0, 1).store(0, Ordering::Relaxed);
                r.word(0, 2).store(1 | 1 << 32, Ordering::Relaxed);
                // SAFETY: the payload of slot 0 lies in the ring.
                unsafe { shm_core::copy_to_shared(b"x", r.slot(0).add(24)) };
                r.seq(0).store(published(0), Ordering::Release);
                me.prod_pos.store(NONE, Ordering::Release);
            });
            claimed_rx.recv().unwrap();
            let r = Ring::new(obj, geo, "t");
            let mut out = Vec::new();
            let got = r.get(&mut out, Mode::timeout(Duration::from_millis(120)), 0);
            assert!(matches!(got, Err(QueueError::Empty { .. })), "{got:?}");
            assert_eq!(r.stats().recovered, 0);
            go_tx.send(()).unwrap();
            r.get(&mut out, Mode::timeout(Duration::from_secs(5)), 0)
                .unwrap();
            assert_eq!(out, b"x");
        });
    }

    #[test]
    fn a_dead_consumers_claimed_message_is_freed_and_counted_lost() {
        let (obj, geo) = ring_object(2, 80);
        let r = Ring::new(&obj, geo, "t");
        r.put(b"a", Mode::Try, 0).unwrap();
        r.put(b"b", Mode::Try, 0).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = Ring::new(&obj, geo, "t");
                let me = r.me().unwrap();
                me.cons_k.store(1, Ordering::Relaxed);
                me.cons_pos.store(0, Ordering::Release);
                r.ctl.head.store(1, Ordering::Release);
            })
            // join, not just the end of the scope: the OS thread must be gone.
            .join()
            .unwrap();
        });
        let mut out = Vec::new();
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"b");
        // Position 2 needs slot 0, which the dead consumer never released.
        r.put(b"c", Mode::Try, 0).unwrap();
        r.put(b"d", Mode::Try, 0).unwrap();
        assert_eq!(r.stats().lost, 1);
        assert_eq!(r.stats().recovered, 1);
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"c");
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"d");
    }

    #[test]
    fn a_full_table_of_live_threads_is_a_typed_error_and_dead_entries_are_reused() {
        let (obj, geo) = ring_object(2, 80);
        let r = Ring::new(&obj, geo, "t");
        let p = Identity::current_process();
        for e in r.entries() {
            e.owner.store(
                u64::from(p.id) | u64::from(p.token) << 32,
                Ordering::Relaxed,
            );
            e.pidns.store(p.pidns, Ordering::Relaxed);
        }
        r.ctl.high_water.store(ENTRIES as u32, Ordering::Relaxed);
        let res = std::thread::scope(|s| {
            s.spawn(|| Ring::new(&obj, geo, "t").put(b"x", Mode::Try, 0))
                .join()
                .unwrap()
        });
        assert!(
            matches!(
                res,
                Err(QueueError::TooManyParticipants { max: ENTRIES, .. })
            ),
            "{res:?}"
        );
        // An entry of a dead thread (id 0 names nobody) is taken over.
        r.entry(5).owner.store(1 << 32, Ordering::Relaxed);
        r.entry(5).puts.store(7, Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| Ring::new(&obj, geo, "t").put(b"x", Mode::Try, 0))
                .join()
                .unwrap()
        })
        .unwrap();
        assert_eq!(r.stats().puts, 8, "the dead owner's count is kept");
    }

    #[test]
    fn hostile_state_gives_errors_not_hangs() {
        let (obj, geo) = ring_object(4, 160);
        let r = Ring::new(&obj, geo, "t");
        let mut out = Vec::new();
        // A frame header that cannot be right: dropped with an error, the ring goes on.
        r.put(b"abc", Mode::Try, 0).unwrap();
        r.put(b"def", Mode::Try, 0).unwrap();
        r.word(0, 2).store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(
            r.get(&mut out, Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
        assert_eq!(r.stats().lost, 1);
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"def");
        // A sequence word ahead of the head and of the tail.
        let h = r.ctl.head.load(Ordering::Relaxed);
        r.seq(h).store(published(h + 40), Ordering::Relaxed);
        assert!(matches!(
            r.get(&mut out, Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
        assert!(matches!(
            r.put(b"x", Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
        // A tail far ahead of the head with nothing written: timed calls time out.
        r.seq(h).store(free(h), Ordering::Relaxed);
        r.ctl.tail.store(h + 3, Ordering::Relaxed);
        let t = Instant::now();
        let got = r.get(&mut out, Mode::timeout(Duration::from_millis(60)), 10);
        assert!(!matches!(got, Ok(())), "{got:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        // A forged high-water mark only bounds the scan.
        r.ctl.high_water.store(u32::MAX, Ordering::Relaxed);
        let _ = r.stats();
        let _ = r.len();
        // Dims that do not fit the payload are refused at attach.
        r.ctl.slots.store(1 << 40, Ordering::Relaxed);
        assert!(matches!(
            Geometry::attach(&obj, 0, "t"),
            Err(QueueError::Corrupted { .. })
        ));
    }
}
