//! The ring's layout: the control block ([`RingCtl`]), the participant table's
//! [`Entry`]s, the states of a slot's sequence word, and where a ring lies in its
//! object ([`Dims`], [`Geometry`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shm_core::Object;

use super::Ring;
use crate::queue::{QueueError, QueueResult};

/// Bytes of a ring's control block.
pub(crate) const CTL_LEN: usize = 256;
/// Participant entries per ring: threads that may use it at once (an entry of a dead
/// thread is taken over).
pub(crate) const ENTRIES: usize = 64;
pub(super) const ENTRY_LEN: usize = 64;
pub(super) const TABLE_LEN: usize = ENTRIES * ENTRY_LEN;
/// Bytes of a slot's header: sequence, message position, `len | k << 32`.
pub(super) const SLOT_HEADER: u64 = 24;
/// Sequence-word flag of a tombstone.
pub(super) const TOMB: u64 = 1 << 63;
/// An intent position meaning "none".
pub(super) const NONE: u64 = u64::MAX;
/// Largest ring (slots times stride).
pub(super) const MAX_RING_BYTES: u64 = 1 << 40;

/// The control block. Atomics only: every process maps it.
#[repr(C)]
pub(crate) struct RingCtl {
    // Producers' line.
    pub(super) tail: AtomicU64,
    _p0: [AtomicU64; 7],
    // Consumers' line.
    pub(super) head: AtomicU64,
    _p1: [AtomicU64; 7],
    // Read on every call, written rarely.
    pub(super) slots: AtomicU64,
    pub(super) stride: AtomicU64,
    pub(super) closed: AtomicU32,
    pub(super) get_waiters: AtomicU32,
    pub(super) put_waiters: AtomicU32,
    pub(super) join_waiters: AtomicU32,
    pub(super) high_water: AtomicU32,
    /// A waker already woke the sleepers on `not_empty` / `not_full` since one of them
    /// last went to sleep: later wakers skip the syscall.
    pub(super) get_wake_pending: AtomicU32,
    pub(super) put_wake_pending: AtomicU32,
    _p2: AtomicU32,
    _p3: [AtomicU64; 2],
    // Rare.
    pub(super) not_empty: AtomicU32,
    pub(super) not_full: AtomicU32,
    pub(super) all_done: AtomicU32,
    _p4: AtomicU32,
    pub(super) unfinished: AtomicU64,
    pub(super) retired_puts: AtomicU64,
    pub(super) retired_gets: AtomicU64,
    pub(super) recovered: AtomicU64,
    pub(super) lost: AtomicU64,
    _p5: AtomicU64,
}

const _: () = assert!(size_of::<RingCtl>() == CTL_LEN);
// The offsets every process (and older builds) read: pinned. The padding keeps the
// producers' and consumers' words on lines of their own, in the mapping itself.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(RingCtl, head) == 64);
    assert!(offset_of!(RingCtl, slots) == 128);
    assert!(offset_of!(RingCtl, closed) == 144);
    assert!(offset_of!(RingCtl, get_wake_pending) == 164);
    assert!(offset_of!(RingCtl, not_empty) == 192);
    assert!(offset_of!(RingCtl, unfinished) == 208);
    assert!(offset_of!(RingCtl, lost) == 240);
    assert!(offset_of!(Entry, pidns) == 8);
    assert!(offset_of!(Entry, prod_pos) == 16);
    assert!(offset_of!(Entry, gets) == 56);
};

/// One participant (a thread) of a ring. Only its owner writes it, except that a
/// survivor takes over the entry of a dead owner whose intents are settled.
#[repr(C)]
pub(super) struct Entry {
    /// The owner thread, an `OwnerWord` in the plain form (`id | token << 32`); 0 = free.
    pub(super) owner: AtomicU64,
    pub(super) pidns: AtomicU32,
    _pad: AtomicU32,
    /// First position and slot count the owner claims as a producer (`NONE`: none).
    pub(super) prod_pos: AtomicU64,
    pub(super) prod_k: AtomicU64,
    /// The same as a consumer.
    pub(super) cons_pos: AtomicU64,
    pub(super) cons_k: AtomicU64,
    /// Messages this owner published / took.
    pub(super) puts: AtomicU64,
    pub(super) gets: AtomicU64,
}

const _: () = assert!(size_of::<Entry>() == ENTRY_LEN);

/// Whether the intent `(pos, k)` covers position `q`.
#[inline]
pub(super) fn covers(pos: u64, k: u64, q: u64) -> bool {
    pos != NONE && q.wrapping_sub(pos) < k
}

/// The sequence word of a slot free for position `p` (two states per position, so
/// that "published for `p`" and "free for `p + slots`" differ even with one slot).
#[inline]
pub(super) fn free(p: u64) -> u64 {
    p.wrapping_mul(2) & !TOMB
}

/// The sequence word of a slot published for position `p`.
#[inline]
pub(super) fn published(p: u64) -> u64 {
    free(p) | 1
}

/// `a < b` for positions (which never get 2^63 apart unless forged).
#[inline]
pub(super) fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
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
pub(super) unsafe fn ctl_at(obj: &Object, offset: usize) -> &RingCtl {
    // SAFETY: in bounds (the caller), aligned (64-byte aligned payload); RingCtl is only
    // atomics, valid for any bits and for concurrent access.
    unsafe { &*obj.payload_ptr().add(offset).cast::<RingCtl>() }
}
