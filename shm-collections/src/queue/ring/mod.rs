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
//!
//! Where each part lives: `layout` (the control block, the participant entries, slot
//! sequence words, dims and geometry), `participants` (this thread's entry, and the
//! recovery from dead participants' intents), `put` and `get` (the two sides of the
//! algorithm), `waiting` (spinning, sleeping on the futex words, waking, deadlines,
//! closing and the task count of `JoinableQueue`). A loom model of the algorithm
//! (claim, publish, take, close, sleepers of both sides) is in shm-sync's
//! `tests/loom_ring.rs`.

mod get;
mod layout;
mod participants;
mod put;
mod waiting;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use shm_core::Object;

pub(crate) use layout::{CTL_LEN, Dims, ENTRIES, Geometry, RingCtl};
pub(crate) use shm_sync::wait::Deadline;

use super::{QueueError, QueueResult, QueueStats};
use layout::{Entry, SLOT_HEADER, TABLE_LEN, ctl_at, published};

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
}
