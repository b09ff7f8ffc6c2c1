//! The on-memory layout: the `#[repr(C)]` payload headers of the control object and
//! of a data segment, the index's slot words, and a mapped data segment whose
//! geometry was checked once ([`Mapped`]).
//!
//! A data segment's payload is a [`DataHeader`] (128 bytes), then `slots` index words,
//! then the record area of `cap` bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use shm_core::{Object, ObjectSpec};
use shm_sync::RawMutex;

use super::LAYOUT_VERSION;
use super::error::{RegionError, RegionResult};
use crate::kinds;

/// The control object's payload.
#[repr(C)]
pub(crate) struct CtrlHeader {
    /// The writer lock.
    pub(super) lock: RawMutex,
    /// [`Limits::max_key`](super::Limits::max_key), widened.
    pub(super) max_key: AtomicU64,
    /// [`Limits::max_value`](super::Limits::max_value), widened.
    pub(super) max_value: AtomicU64,
    /// The incarnation id: 64 random bits drawn at create, never 0.
    pub(super) incarnation: AtomicU64,
    _reserved: [AtomicU64; 3],
}

/// Payload bytes of a control object.
pub(crate) const CTRL_LEN: usize = 64;
const _: () = assert!(size_of::<CtrlHeader>() == CTRL_LEN);
const _: () = assert!(align_of::<CtrlHeader>() == 8);

/// The header at the start of a data segment's payload: `u64` words, then reserved
/// words up to 128 bytes.
#[repr(C)]
pub(super) struct DataHeader {
    /// The generation this segment was made for.
    pub(super) generation: AtomicU64,
    /// Index slots (a power of two).
    pub(super) slots: AtomicU64,
    /// Bytes of the record area.
    pub(super) cap: AtomicU64,
    /// Bytes of the record area reserved so far (from [`FIRST_REC`]).
    pub(super) used: AtomicU64,
    /// Live entries (a list's length).
    pub(super) live: AtomicU64,
    /// Bytes of records no longer reachable.
    pub(super) garbage: AtomicU64,
    /// Tombstones in a hash index.
    pub(super) dead: AtomicU64,
    /// The write sequence: odd while a writer changes slots (a seqlock for snapshots).
    pub(super) seq: AtomicU64,
    /// The incarnation id of the object that made this segment.
    pub(super) incarnation: AtomicU64,
    _reserved: [AtomicU64; 7],
}

/// The data header: the words above and reserved words up to 128 bytes.
pub(super) const DATA_HDR: usize = 128;
const _: () = assert!(size_of::<DataHeader>() == DATA_HDR);
const _: () = assert!(align_of::<DataHeader>() == 8);

/// An empty slot.
pub(super) const EMPTY: u64 = 0;
/// A removed entry's slot (a tombstone).
pub(super) const TOMB: u64 = 1;
/// The record offset in a slot (the top 16 bits are the key's hash tag).
pub(super) const OFF_MASK: u64 = (1 << 48) - 1;
/// The record area's first 8 bytes are never used: offset 0 means "empty".
pub(super) const FIRST_REC: u64 = 8;
pub(super) const MIN_SLOTS: usize = 16;
pub(super) const MIN_CAP: usize = 4096;
/// Largest index a data header may claim (2^36 slots = 512 GiB of index).
pub(super) const MAX_SLOTS: u64 = 1 << 36;
/// Record offsets fit in 48 bits.
pub(super) const MAX_CAP: u64 = OFF_MASK;

/// One mapped data segment, with its geometry read and checked once.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(super) generation: u64,
    pub(super) obj: Object,
    /// Index slots (a power of two).
    pub(super) slots: usize,
    /// Bytes of the record area (a multiple of 8).
    pub(super) cap: u64,
}

impl Mapped {
    /// The data header.
    #[inline]
    pub(super) fn hdr(&self) -> &DataHeader {
        debug_assert!(self.obj.payload_len() >= DATA_HDR);
        // SAFETY: `check` made sure the payload holds the 128-byte data header; the
        // payload is 64-byte aligned (DataHeader needs 8); its fields are atomics,
        // valid for any bits and for concurrent access from other processes.
        unsafe { &*self.obj.payload_ptr().cast::<DataHeader>() }
    }

    #[inline]
    pub(super) fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.slots, "slot index checked by every caller");
        self.slot_wrapped(i)
    }

    /// Slot `i` modulo the slot count (a probe's position: no bounds check to fail).
    #[inline]
    pub(super) fn slot_wrapped(&self, i: usize) -> &AtomicU64 {
        let i = i & (self.slots - 1);
        // SAFETY: `check` made sure `slots` is a power of two (so at least 1) and that
        // DATA_HDR + slots * 8 bytes lie in the payload; i & (slots - 1) < slots;
        // 8-aligned; atomics are valid for any bits and for concurrent access.
        unsafe {
            &*self
                .obj
                .payload_ptr()
                .add(DATA_HDR + i * 8)
                .cast::<AtomicU64>()
        }
    }

    pub(super) fn rec_base(&self) -> usize {
        DATA_HDR + self.slots * 8
    }

    /// Removes this segment's name if it still names the file mapped here (whose
    /// header was checked when it was mapped or made: this incarnation's); never a
    /// segment made since under the same name.
    pub(super) fn unlink_name(&self) -> bool {
        self.obj.segment().unlink_if_still_named().unwrap_or(false)
    }

    /// Checks an opened data segment's geometry against its payload.
    pub(super) fn check(
        obj: Object,
        generation: u64,
        inc: u64,
        label: &str,
    ) -> RegionResult<Mapped> {
        let bad = |what: String| RegionError::Corrupted {
            name: label.to_owned(),
            what,
        };
        let len = obj.payload_len() as u64;
        if len < DATA_HDR as u64 {
            return Err(bad(format!("data segment payload of {len} bytes")));
        }
        let m = Mapped {
            generation,
            obj,
            slots: 0,
            cap: 0,
        };
        let h = m.hdr();
        let (g, slots, cap) = (
            h.generation.load(Ordering::Relaxed),
            h.slots.load(Ordering::Relaxed),
            h.cap.load(Ordering::Relaxed),
        );
        if g != generation {
            return Err(bad(format!(
                "data segment says generation {g}, expected {generation}"
            )));
        }
        let found = h.incarnation.load(Ordering::Relaxed);
        if found != inc {
            return Err(bad(format!(
                "data segment of incarnation {found:016x}, expected {inc:016x}"
            )));
        }
        if !slots.is_power_of_two() || slots > MAX_SLOTS {
            return Err(bad(format!("index of {slots} slots (not a power of two)")));
        }
        let need = (DATA_HDR as u64)
            .checked_add(slots * 8)
            .and_then(|n| n.checked_add(cap));
        if cap > MAX_CAP || need != Some(len) {
            return Err(bad(format!(
                "{slots} slots and {cap} record bytes do not fill a payload of {len}"
            )));
        }
        // Records are read and written in whole aligned words up to `cap`.
        if cap % 8 != 0 {
            return Err(bad(format!(
                "a record area of {cap} bytes (not a multiple of 8)"
            )));
        }
        Ok(Mapped {
            slots: slots as usize,
            cap,
            ..m
        })
    }

    /// The slot's record offset, `None` for empty or tombstone.
    pub(super) fn slot_off(v: u64) -> Option<u64> {
        (v > TOMB).then_some(v & OFF_MASK)
    }
}

/// The control object's header. The payload's length is checked at attach (and made
/// so at create) before this is called.
pub(super) fn ctrl_header(ctrl: &Object) -> &CtrlHeader {
    debug_assert!(ctrl.payload_len() >= CTRL_LEN);
    // SAFETY: the control payload is CTRL_LEN bytes (checked at attach, written at
    // create), 64-byte aligned (CtrlHeader needs 8); its fields are a RawMutex (16
    // bytes of atomics) and atomics, valid for any bits and for concurrent access by
    // other processes.
    unsafe { &*ctrl.payload_ptr().cast::<CtrlHeader>() }
}

/// The data segment's spec: the control object's type record under the data kind.
pub(super) fn data_spec(ctrl_spec: &ObjectSpec) -> ObjectSpec {
    let mut s = ObjectSpec::new(kinds::GROWTH_DATA, LAYOUT_VERSION);
    s.type_tag = ctrl_spec.type_tag;
    s.elem_size = ctrl_spec.elem_size;
    s.elem_align = ctrl_spec.elem_align;
    s.type_name = ctrl_spec.type_name.clone();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_core::SegmentOptions;
    use std::mem::offset_of;

    /// The headers keep the bytes of layout version 3 exactly: each field at the
    /// offset its word had when the layout was written as byte offsets.
    #[test]
    fn headers_keep_the_byte_offsets_of_layout_3() {
        let data = [
            ("D_GEN", offset_of!(DataHeader, generation), 0),
            ("D_SLOTS", offset_of!(DataHeader, slots), 8),
            ("D_CAP", offset_of!(DataHeader, cap), 16),
            ("D_USED", offset_of!(DataHeader, used), 24),
            ("D_LIVE", offset_of!(DataHeader, live), 32),
            ("D_GARBAGE", offset_of!(DataHeader, garbage), 40),
            ("D_DEAD", offset_of!(DataHeader, dead), 48),
            ("D_SEQ", offset_of!(DataHeader, seq), 56),
            ("D_INC", offset_of!(DataHeader, incarnation), 64),
            ("DATA_HDR", size_of::<DataHeader>(), 128),
        ];
        let ctrl = [
            ("CTRL_LOCK", offset_of!(CtrlHeader, lock), 0),
            ("CTRL_MAX_KEY", offset_of!(CtrlHeader, max_key), 16),
            ("CTRL_MAX_VALUE", offset_of!(CtrlHeader, max_value), 24),
            ("CTRL_INC", offset_of!(CtrlHeader, incarnation), 32),
            ("CTRL_LEN", size_of::<CtrlHeader>(), 64),
        ];
        for (old, now, was) in data.into_iter().chain(ctrl) {
            assert_eq!(now, was, "{old} moved");
        }
        assert_eq!(size_of::<RawMutex>(), 16);
    }

    /// A data segment whose record area is not a whole number of words (a forged
    /// segment: ours are powers of two) is refused, so word-wise record copies can
    /// never run past it.
    #[test]
    fn data_segment_with_a_ragged_record_area_is_refused() {
        let spec = ObjectSpec::new(kinds::GROWTH_DATA, LAYOUT_VERSION);
        let (slots, cap) = (16u64, 4099u64);
        let payload = DATA_HDR + slots as usize * 8 + cap as usize;
        let obj = Object::create(&SegmentOptions::new(), &spec, payload, |o| {
            o.write_at(offset_of!(DataHeader, generation), &0u64.to_ne_bytes())?;
            o.write_at(offset_of!(DataHeader, slots), &slots.to_ne_bytes())?;
            o.write_at(offset_of!(DataHeader, cap), &cap.to_ne_bytes())
        })
        .unwrap();
        let err = Mapped::check(obj, 0, 0, "forged").unwrap_err();
        assert!(
            matches!(&err, RegionError::Corrupted { what, .. } if what.contains("multiple of 8")),
            "{err}"
        );
    }
}
