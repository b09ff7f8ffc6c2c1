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
const FLAG_BITS: u64 = shm_core::identity::OwnerWord::FLAG_MASK;

/// Whether the participant a slot names may still be alive: `false` for a provably
/// dead one and for a word no participant writes (flag bits set, TID 0, token 0, an
/// unknown namespace index), so that garbage is reclaimed like a dead participant.
pub(crate) fn slot_alive(word: u64) -> bool {
    word & FLAG_BITS == 0 && sys::is_alive(word)
}

/// Where a participant's probe starts: its TID (or PID), hashed and scaled to the table
/// size, so the uncontended case claims its slot at the first try. A multiply and a
/// shift rather than `%`: the division cost more than the rest of a semaphore's fast
/// path. Only the calling process relies on it (to find its slot again), so it may
/// differ between builds. `n > 0`.
#[inline]
pub(crate) fn probe_start(id: u64, n: usize) -> usize {
    let h = ((id & sys::TID_MASK).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
    // (h * n) >> 32 < n for any h < 2^32 (Lemire's multiply-shift range reduction).
    ((u64::from(h) * n as u64) >> 32) as usize
}

/// The `k`-th slot of a probe from `start` in a table of `n`.
#[inline]
pub(crate) fn probe(start: usize, k: usize, n: usize) -> usize {
    let i = start + k;
    if i >= n { i - n } else { i }
}
