//! [`OwnerWord`]: an [`Identity`] packed in one 64-bit word of shared memory, the one
//! place where its shifts and masks are written (shm-sync's lock words and participant
//! tables, the queue ring's participant entries, the pipe's end holders).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    Identity, IndexEntry, Liveness, current_pidns, index_entry, is_valid_pid, pidns_index,
};

/// A task's identity in one 64-bit word: the start-time token in the high 32 bits, and
/// in the low 32 bits either
///
/// - a plain id (pid or tid, 32 bits; [`from_id`](Self::from_id)): the PID namespace
///   travels beside the word as an inode (ring entries, pipe ends); or
/// - a *holder field* (bits 0..30; [`holder`](Self::holder)): the TID in bits 0..22
///   (Linux's `pid_max` is at most 2^22) and the namespace's registry index in bits
///   22..30 (see the [module docs](super)), leaving bits 30 and 31 to the word's user
///   (shm-sync's lock flags).
///
/// `0` is "nobody" ([`OwnerWord::NONE`]): no real task has token 0.
///
/// ```
/// use shm_core::identity::OwnerWord;
/// let w = OwnerWord::holder(4242, 3, 0x8001).unwrap();
/// assert_eq!(w.raw(), 0x8001 << 32 | 3 << 22 | 4242);
/// assert_eq!((w.tid(), w.ns_index(), w.token()), (4242, 3, 0x8001));
/// let p = OwnerWord::from_id(7, 9);
/// assert_eq!((p.raw(), p.id(), p.token()), (9 << 32 | 7, 7, 9));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct OwnerWord(u64);

impl OwnerWord {
    /// No owner.
    pub const NONE: OwnerWord = OwnerWord(0);
    /// Position of the 8-bit namespace index in the holder field.
    pub const NS_SHIFT: u32 = 22;
    /// The TID within the holder field (bits 0..22).
    pub const TID_MASK: u64 = (1 << Self::NS_SHIFT) - 1;
    /// The holder field: namespace index and TID (bits 0..30). 0 = no holder.
    pub const HOLDER_MASK: u64 = (1 << 30) - 1;
    /// Bits 30 and 31: never set by [`holder`](Self::holder), free for flags.
    pub const FLAG_MASK: u64 = (1 << 30) | (1 << 31);

    /// The word as stored.
    ///
    /// ```
    /// use shm_core::identity::OwnerWord;
    /// assert_eq!(OwnerWord::from_raw(5).raw(), 5);
    /// ```
    #[inline]
    pub const fn from_raw(word: u64) -> OwnerWord {
        OwnerWord(word)
    }

    /// The word to store.
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::NONE.raw(), 0);
    /// ```
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The holder form `token << 32 | ns_index << 22 | tid`; `None` when `tid` does
    /// not fit in 22 bits.
    ///
    /// ```
    /// use shm_core::identity::OwnerWord;
    /// assert_eq!(OwnerWord::holder(1, 0, 1).unwrap().raw(), 1 << 32 | 1);
    /// assert_eq!(OwnerWord::holder(1 << 22, 0, 1), None);
    /// ```
    #[inline]
    pub const fn holder(tid: u32, ns_index: u8, token: u32) -> Option<OwnerWord> {
        if tid as u64 > Self::TID_MASK {
            return None;
        }
        Some(OwnerWord(
            (token as u64) << 32 | (ns_index as u64) << Self::NS_SHIFT | tid as u64,
        ))
    }

    /// The plain form `token << 32 | id`.
    ///
    /// ```
    /// use shm_core::identity::{Identity, OwnerWord};
    /// let me = Identity::current_process();
    /// assert_eq!(OwnerWord::from_id(me.id, me.token).identity(me.pidns), me);
    /// ```
    #[inline]
    pub const fn from_id(id: u32, token: u32) -> OwnerWord {
        OwnerWord((token as u64) << 32 | id as u64)
    }

    /// The start-time token (high 32 bits).
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::from_raw(7 << 32 | 1).token(), 7);
    /// ```
    #[inline]
    pub const fn token(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The plain id (low 32 bits).
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::from_raw(7 << 32 | 1).id(), 1);
    /// ```
    #[inline]
    pub const fn id(self) -> u32 {
        self.0 as u32
    }

    /// The TID of the holder form (bits 0..22).
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::from_raw(u64::MAX).tid(), (1 << 22) - 1);
    /// ```
    #[inline]
    pub const fn tid(self) -> u32 {
        (self.0 & Self::TID_MASK) as u32
    }

    /// The namespace index of the holder form (bits 22..30).
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::from_raw(u64::MAX).ns_index(), 255);
    /// ```
    #[inline]
    pub const fn ns_index(self) -> u8 {
        ((self.0 & Self::HOLDER_MASK) >> Self::NS_SHIFT) as u8
    }

    /// The holder field (bits 0..30): 0 when the word names no holder.
    ///
    /// ```
    /// assert_eq!(shm_core::identity::OwnerWord::from_raw(3 << 30 | 5).holder_bits(), 5);
    /// ```
    #[inline]
    pub const fn holder_bits(self) -> u64 {
        self.0 & Self::HOLDER_MASK
    }

    /// The plain form as an [`Identity`] of namespace `pidns`.
    ///
    /// ```
    /// use shm_core::identity::{Identity, OwnerWord};
    /// let i = OwnerWord::from_raw(9 << 32 | 7).identity(4);
    /// assert_eq!(i, Identity { id: 7, token: 9, pidns: 4 });
    /// ```
    #[inline]
    pub const fn identity(self, pidns: u32) -> Identity {
        Identity {
            id: self.id(),
            token: self.token(),
            pidns,
        }
    }

    /// The calling thread in the holder form: its TID, the registry index of its PID
    /// namespace (0 = unknown) and its start-time token ([`TOKEN_UNKNOWN`] when `/proc`
    /// is unreadable). Never [`NONE`](Self::NONE); computed once per thread (reset in
    /// a forked child).
    ///
    /// [`TOKEN_UNKNOWN`]: super::TOKEN_UNKNOWN
    ///
    /// ```
    /// use shm_core::identity::{Identity, OwnerWord, pidns_index};
    /// let w = OwnerWord::current_thread();
    /// let t = Identity::current_thread();
    /// assert_eq!((w.tid(), w.token(), w.ns_index()), (t.id, t.token, pidns_index()));
    /// ```
    #[inline]
    pub fn current_thread() -> OwnerWord {
        let v = THREAD_OWNER.get();
        if v != 0 {
            OwnerWord(v)
        } else {
            compute_thread()
        }
    }

    /// The calling process in the holder form (its PID instead of a TID): what a
    /// semaphore permit or a barrier registration belongs to. Never
    /// [`NONE`](Self::NONE); computed once per process (reset in a forked child).
    ///
    /// ```
    /// use shm_core::identity::OwnerWord;
    /// let p = OwnerWord::current_process();
    /// assert_eq!(p.tid(), std::process::id());
    /// assert_eq!(p, std::thread::spawn(OwnerWord::current_process).join().unwrap());
    /// ```
    #[inline]
    pub fn current_process() -> OwnerWord {
        let v = PROCESS_OWNER.load(Ordering::Relaxed);
        if v != 0 {
            OwnerWord(v)
        } else {
            compute_process()
        }
    }

    /// The liveness of the holder named by the holder form (flag bits ignored):
    /// [`Liveness::Dead`] only when provably dead.
    ///
    /// Words that no real holder writes are dead: TID 0, token 0, a namespace index
    /// that the registry never handed out, or (in our own namespace) a TID that
    /// [`is_valid_pid`] refuses. Otherwise the holder is checked through `/proc` only
    /// when it lives in our own PID namespace ([`Identity::liveness`]); a holder of
    /// another or an unknown namespace is [`Liveness::Unknown`].
    ///
    /// ```
    /// use shm_core::identity::{Liveness, OwnerWord};
    /// assert_eq!(OwnerWord::current_thread().holder_liveness(), Liveness::Alive);
    /// assert_eq!(OwnerWord::NONE.holder_liveness(), Liveness::Dead);
    /// ```
    pub fn holder_liveness(self) -> Liveness {
        let tid = self.tid();
        let token = self.token();
        if tid == 0 || token == 0 {
            return Liveness::Dead;
        }
        let pidns = match index_entry(self.ns_index()) {
            IndexEntry::Unused => return Liveness::Dead,
            IndexEntry::Unknown => 0,
            IndexEntry::Namespace(ns) => ns,
        };
        // The one id check of shm-core, before any syscall: a TID at or above our pid_max
        // is a value no holder of our namespace writes, recovered like TID 0. Another
        // namespace's pid_max may differ (Linux 6.14+), so there we cannot tell.
        if !is_valid_pid(tid) {
            return if pidns != 0 && pidns == current_pidns() {
                Liveness::Dead
            } else {
                Liveness::Unknown
            };
        }
        Identity {
            id: tid,
            token,
            pidns,
        }
        .liveness()
    }
}

thread_local! {
    /// [`OwnerWord::current_thread`]; 0 until computed (reset after fork, see
    /// `reset_in_child`).
    pub(super) static THREAD_OWNER: Cell<u64> = const { Cell::new(0) };
}
/// [`OwnerWord::current_process`]; 0 until computed (reset after fork).
pub(super) static PROCESS_OWNER: AtomicU64 = AtomicU64::new(0);

#[cold]
fn compute_thread() -> OwnerWord {
    // `current_thread` registers the fork handler that resets the cache.
    let me = Identity::current_thread();
    let w = OwnerWord::holder(me.id, pidns_index(), me.token)
        .unwrap_or_else(|| panic!("Linux TIDs fit in 22 bits, got {}", me.id));
    THREAD_OWNER.set(w.raw());
    w
}

#[cold]
fn compute_process() -> OwnerWord {
    let me = Identity::current_process();
    let w = OwnerWord::holder(me.id, pidns_index(), me.token)
        .unwrap_or_else(|| panic!("Linux PIDs fit in 22 bits, got {}", me.id));
    PROCESS_OWNER.store(w.raw(), Ordering::Relaxed);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formulas written by hand before `OwnerWord` (shm-sync's `sys.rs`, the
    /// ring's `participants.rs`, the pipe's `claim`/`holder`), against the type.
    #[test]
    fn bit_layout_is_the_old_one() {
        const TID_BITS: u64 = (1 << 30) - 1;
        const TID_MASK: u64 = (1 << 22) - 1;
        const NS_SHIFT: u32 = 22;
        let cases: [(u32, u8, u32); 6] = [
            (1, 0, 1),
            (4242, 3, 0x8001),
            ((1 << 22) - 1, 255, u32::MAX),
            (0, 0, 0),
            (123_456, 254, 0xdead_beef),
            (2, 1, 0x7fff_ffff),
        ];
        for (tid, ns, token) in cases {
            let old = (u64::from(token) << 32) | (u64::from(ns) << NS_SHIFT) | u64::from(tid);
            let w = OwnerWord::holder(tid, ns, token).unwrap();
            assert_eq!(w.raw(), old);
            assert_eq!(u64::from(w.tid()), old & TID_MASK);
            assert_eq!(u64::from(w.ns_index()), (old & TID_BITS) >> NS_SHIFT);
            assert_eq!(w.token(), (old >> 32) as u32);
            assert_eq!(w.holder_bits(), old & TID_BITS);
            // With the lock flags set the fields read the same.
            let flagged = OwnerWord::from_raw(old | OwnerWord::FLAG_MASK);
            assert_eq!(
                (flagged.tid(), flagged.ns_index(), flagged.token()),
                (tid, ns, token)
            );
            assert_eq!(flagged.holder_bits(), old & TID_BITS);
        }
        assert_eq!(OwnerWord::HOLDER_MASK, TID_BITS);
        assert_eq!(OwnerWord::TID_MASK, TID_MASK);
        assert_eq!(OwnerWord::NS_SHIFT, NS_SHIFT);
        assert_eq!(OwnerWord::FLAG_MASK, (1 << 30) | (1 << 31));
        assert_eq!(OwnerWord::holder(1 << 22, 0, 1), None);
        for (id, token) in [(0u32, 0u32), (1, 1), (u32::MAX, 7), (99, u32::MAX)] {
            let old = u64::from(token) << 32 | u64::from(id);
            let w = OwnerWord::from_id(id, token);
            assert_eq!(w.raw(), old);
            assert_eq!((w.id(), w.token()), (old as u32, (old >> 32) as u32));
            assert_eq!(
                w.identity(5),
                Identity {
                    id,
                    token,
                    pidns: 5
                }
            );
        }
    }

    #[test]
    fn current_words_match_the_identities() {
        let t = Identity::current_thread();
        let w = OwnerWord::current_thread();
        assert_eq!(w, OwnerWord::holder(t.id, pidns_index(), t.token).unwrap());
        assert_eq!(
            Identity::current_thread_word(),
            OwnerWord::from_id(t.id, t.token).raw()
        );
        let p = Identity::current_process();
        let pw = OwnerWord::current_process();
        assert_eq!(pw, OwnerWord::holder(p.id, pidns_index(), p.token).unwrap());
        let other = std::thread::spawn(OwnerWord::current_thread)
            .join()
            .unwrap();
        assert_ne!(w, other);
        assert_eq!(w.holder_liveness(), Liveness::Alive);
    }
}
