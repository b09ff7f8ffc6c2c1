//! The calling thread's and process's identity words and the liveness check of a holder
//! named by such a word, as the lock algorithms use them: plain `u64`s in the holder
//! form of [`OwnerWord`] (TID, PID-namespace index and start-time token, packed and
//! cached by `shm_core::identity`). The futex calls are in [`crate::wait`].
//!
//! Under `cfg(loom)` the identity and the liveness check come from the model in
//! `loom_model` instead (same signatures).

#[cfg(not(loom))]
use shm_core::identity::Liveness;
use shm_core::identity::OwnerWord;

/// Under the model every thread is a process of its own.
#[cfg(loom)]
pub(crate) use crate::loom_model::me as me_process;
#[cfg(loom)]
pub(crate) use crate::loom_model::{is_alive, me};
pub(crate) use crate::wait::{Wake, futex_wait, futex_wake, futex_wake_all};

/// Low 30 bits of an identity word, the holder field: the PID-namespace index (bits
/// 22..30) and the Linux TID (bits 0..22). 0 = no holder.
pub(crate) const TID_BITS: u64 = OwnerWord::HOLDER_MASK;
/// The TID within the holder field.
pub(crate) const TID_MASK: u64 = OwnerWord::TID_MASK;
/// Position of the 8-bit PID-namespace index in the holder field.
#[cfg(test)]
pub(crate) const NS_SHIFT: u32 = OwnerWord::NS_SHIFT;

/// The calling thread's identity word, [`OwnerWord::current_thread`]: never 0,
/// computed once per thread.
#[cfg(not(loom))]
#[inline]
pub(crate) fn me() -> u64 {
    OwnerWord::current_thread().raw()
}

/// The calling process's identity word, [`OwnerWord::current_process`]: what semaphore
/// permits and barrier registrations belong to. Never 0; computed once per process.
#[cfg(not(loom))]
#[inline]
pub(crate) fn me_process() -> u64 {
    OwnerWord::current_process().raw()
}

/// Whether the holder recorded in identity word `word` (the holder field and token; the
/// flag bits are ignored) may still be alive: `false` only when provably dead (see
/// [`OwnerWord::holder_liveness`]).
#[cfg(not(loom))]
pub(crate) fn is_alive(word: u64) -> bool {
    word_liveness(word) != Liveness::Dead
}

/// The liveness of the holder that identity word `word` records (see [`is_alive`]).
#[cfg(not(loom))]
pub(crate) fn word_liveness(word: u64) -> Liveness {
    OwnerWord::from_raw(word).holder_liveness()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use shm_core::identity::pidns_index;

    fn parts(id: u64) -> (u64, u64, u32) {
        (
            id & TID_MASK,
            (id & TID_BITS) >> NS_SHIFT,
            (id >> 32) as u32,
        )
    }

    #[test]
    fn own_thread_is_alive_and_identity_is_stable() {
        let id = me();
        assert_eq!(id, me());
        let (tid, index, token) = parts(id);
        assert_eq!(
            tid,
            u64::from(rustix::thread::gettid().as_raw_nonzero().get() as u32)
        );
        assert_eq!(index, u64::from(pidns_index()));
        assert_ne!(token, 0);
        assert!(is_alive(id));
        if index != 0 {
            assert!(
                !is_alive(id ^ (2 << 32)),
                "a wrong start time means a reused TID"
            );
        }
        assert!(!is_alive(0));
        assert!(!is_alive(id & TID_BITS), "token 0: no holder writes it");
        assert!(!is_alive(id & !TID_MASK), "TID 0: no holder writes it");
        assert!(
            !is_alive(id | (0xff << NS_SHIFT)),
            "index 255 is never handed out"
        );
    }

    #[test]
    fn exited_thread_is_dead() {
        let id = std::thread::spawn(me).join().unwrap();
        // The thread is gone once joined (provable only in our registered namespace).
        assert_eq!(is_alive(id), pidns_index() == 0);
    }

    #[test]
    fn process_identity_names_the_process() {
        let p = me_process();
        assert_eq!(p, std::thread::spawn(me_process).join().unwrap());
        assert_eq!(p & TID_MASK, u64::from(std::process::id()));
        assert!(is_alive(p));
    }

    #[test]
    fn threads_have_distinct_identities() {
        let a = me();
        let b = std::thread::spawn(me).join().unwrap();
        assert_ne!(a, b);
    }
}
