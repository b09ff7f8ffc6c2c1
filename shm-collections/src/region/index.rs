//! The index: probing a hash index for a key, listing every live record, and
//! indexing the records of a segment being filled.

use std::sync::atomic::Ordering;

use super::IndexKind;
use super::error::{RegionError, RegionResult, unbox};
use super::layout::{EMPTY, Mapped, OFF_MASK, TOMB};
use super::record::{Rec, key_eq, key_hash, rec_len};

/// Where a key is, or where it would go, in a hash index.
pub(super) enum Probe {
    /// Slot, record offset, record length.
    Found(usize, u64, u64),
    Vacant(usize),
    Full,
}

impl Mapped {
    /// Looks `key` up in a hash index (the records compared are copied onto the stack).
    pub(super) fn probe(&self, key: &[u8], hash: u64, label: &str) -> RegionResult<Probe> {
        let m = self;
        let mask = m.slots - 1;
        let tag = hash >> 48;
        let mut i = hash as usize & mask;
        let mut tomb = None;
        for _ in 0..m.slots {
            let v = m.slot(i).load(Ordering::Acquire);
            if v == EMPTY {
                return Ok(Probe::Vacant(tomb.unwrap_or(i)));
            }
            if v == TOMB {
                tomb.get_or_insert(i);
            } else if v >> 48 == tag {
                let off = v & OFF_MASK;
                let hit = m
                    .with_record(off, label, |body, klen| {
                        key_eq(&body[..klen], key).then_some(body.len())
                    })
                    .map_err(unbox)?;
                if let Some(body) = hit {
                    return Ok(Probe::Found(i, off, rec_len(body)));
                }
            }
            i = (i + 1) & mask;
        }
        match tomb {
            Some(t) => Ok(Probe::Vacant(t)),
            None => Ok(Probe::Full),
        }
    }

    /// Every live record of the index (a hash index: in slot order; a list: in index
    /// order), each copied out and checked.
    pub(super) fn collect(&self, kind: IndexKind, label: &str) -> RegionResult<Vec<Rec>> {
        let m = self;
        let corrupted = |what: String| RegionError::Corrupted {
            name: label.to_owned(),
            what,
        };
        let n = match kind {
            IndexKind::Hash => m.slots,
            IndexKind::List => {
                let len = m.hdr().live.load(Ordering::Acquire);
                if len > m.slots as u64 {
                    return Err(corrupted(format!("length {len} over {} slots", m.slots)));
                }
                len as usize
            }
        };
        let mut out = Vec::new();
        for i in 0..n {
            let v = m.slot(i).load(Ordering::Acquire);
            match Mapped::slot_off(v) {
                Some(off) => out.push(m.read(off, label)?),
                None if kind == IndexKind::List => {
                    return Err(corrupted(format!("element {i} has an empty slot")));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Indexes the record at `off` of a segment being filled (nobody reads it yet):
    /// as element `idx` of a list, or in the first empty slot of `key`'s probe
    /// sequence in a hash index.
    pub(super) fn index_new(&self, kind: IndexKind, idx: usize, key: &[u8], off: u64) {
        match kind {
            IndexKind::Hash => {
                let mask = self.slots - 1;
                let h = key_hash(key);
                let mut i = h as usize & mask;
                while self.slot(i).load(Ordering::Relaxed) != EMPTY {
                    i = (i + 1) & mask;
                }
                self.slot(i).store((h >> 48) << 48 | off, Ordering::Relaxed);
            }
            IndexKind::List => self.slot(idx).store(off, Ordering::Relaxed),
        }
    }
}
