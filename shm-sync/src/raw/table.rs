//! Participant tables: a bounded number of slots, each naming a participant by its
//! identity word (see `sys`), so that what a participant holds can be given back when
//! it is provably dead. Used by [`RawRwLock`](super::RawRwLock) (read shares),
//! [`RawSemaphore`](super::RawSemaphore) (permits) and [`RawBarrier`](super::RawBarrier)
//! (registered parties).

use crate::sys;

/// Slots of a named object created without choosing.
pub const DEFAULT_SLOTS: u32 = 64;
/// Most slots an object may have (also what an opened object's slot count is checked
/// against).
pub const MAX_SLOTS: u32 = 4096;

/// Bits 30 and 31 of an identity word: flags in a lock word, never set in a slot.
const FLAG_BITS: u64 = (1 << 30) | (1 << 31);

/// Whether the participant a slot names may still be alive: `false` for a provably
/// dead one and for a word no participant writes (flag bits set, TID 0, token 0, an
/// unknown namespace index), so that garbage is reclaimed like a dead participant.
pub(crate) fn slot_alive(word: u64) -> bool {
    word & FLAG_BITS == 0 && sys::is_alive(word)
}

/// Where a participant's probe starts: its TID (or PID) modulo the table size, so the
/// uncontended case claims its slot at the first try. `n > 0`.
#[inline]
pub(crate) fn probe_start(id: u64, n: usize) -> usize {
    (id & sys::TID_MASK) as usize % n
}

/// The `k`-th slot of a probe from `start` in a table of `n`.
#[inline]
pub(crate) fn probe(start: usize, k: usize, n: usize) -> usize {
    let i = start + k;
    if i >= n { i - n } else { i }
}
