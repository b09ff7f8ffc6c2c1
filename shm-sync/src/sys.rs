//! Every operating-system call of shm-sync: shared futex wait/wake (never `PRIVATE`:
//! the words live in mappings shared between processes), the calling thread's identity
//! word (TID, PID-namespace index and start-time token from `shm_core::identity`,
//! cached per thread) and the liveness check of a holder named by such a word. A port
//! to another OS replaces this module.
//!
//! Under `cfg(loom)` the futex, the identity and the liveness check come from the model
//! in `loom_model` instead (same signatures).

#[cfg(not(loom))]
use std::cell::Cell;
#[cfg(not(loom))]
use std::sync::Once;
#[cfg(not(loom))]
use std::time::Duration;

#[cfg(not(loom))]
use rustix::io::Errno;
#[cfg(not(loom))]
use rustix::thread::futex;
#[cfg(not(loom))]
use shm_core::identity::{
    Identity, IndexEntry, Liveness, current_pidns, index_entry, is_valid_pid, pidns_index,
};

use crate::atomic::AtomicU32;
/// Under the model every thread is a process of its own.
#[cfg(loom)]
pub(crate) use crate::loom_model::me as me_process;
#[cfg(loom)]
pub(crate) use crate::loom_model::{futex_wait, futex_wake, is_alive, me};

/// Low 30 bits of an identity word, the holder field: the PID-namespace index (bits
/// 22..30) and the Linux TID (bits 0..22; pid_max is at most 2^22). 0 = no holder.
pub(crate) const TID_BITS: u64 = (1 << 30) - 1;
/// The TID within the holder field.
pub(crate) const TID_MASK: u64 = (1 << NS_SHIFT) - 1;
/// Position of the 8-bit PID-namespace index in the holder field.
pub(crate) const NS_SHIFT: u32 = 22;

/// Outcome of a futex wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

#[cfg(not(loom))]
/// `FUTEX_WAIT` (shared) on `word` while it holds `expected`, for at most `timeout`.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(Errno::TIMEDOUT) => Wake::TimedOut,
        // Ok, EAGAIN (value changed), EINTR: the caller re-checks its condition.
        _ => Wake::Woken,
    }
}

#[cfg(not(loom))]
/// `FUTEX_WAKE` (shared): wakes up to `n` waiters of `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// Wakes every waiter of `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    futex_wake(word, i32::MAX as u32);
}

#[cfg(not(loom))]
thread_local! {
    /// The calling thread's identity word (see [`me`]); 0 until first computed.
    static ME: Cell<u64> = const { Cell::new(0) };
}

#[cfg(not(loom))]
/// The calling thread's identity word: `token << 32 | ns_index << 22 | tid`, never 0.
///
/// From [`Identity::current_thread`] (TID and start-time token, never 0: when `/proc`
/// is unreadable the token is [`shm_core::identity::TOKEN_UNKNOWN`], which checkers
/// never compare with a start time) and [`pidns_index`] (the PID namespace's index in
/// the registry, 0 = unknown). Computed once per thread.
#[inline]
pub(crate) fn me() -> u64 {
    let v = ME.get();
    if v != 0 { v } else { compute_me() }
}

#[cfg(not(loom))]
#[cold]
fn compute_me() -> u64 {
    register_atfork();
    let me = Identity::current_thread();
    let tid = u64::from(me.id);
    assert!(tid <= TID_MASK, "Linux TIDs fit in 22 bits, got {tid}");
    let id = (u64::from(me.token) << 32) | (u64::from(pidns_index()) << NS_SHIFT) | tid;
    ME.set(id);
    id
}

#[cfg(not(loom))]
/// The calling process's identity word (see [`me_process`]); 0 until first computed.
static PROCESS_ME: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(not(loom))]
/// The calling process's identity word, in the format of [`me`] but naming the process
/// (its PID and start time): what semaphore permits and barrier registrations belong
/// to. Never 0; computed once per process (reset in a forked child).
#[inline]
pub(crate) fn me_process() -> u64 {
    let v = PROCESS_ME.load(std::sync::atomic::Ordering::Relaxed);
    if v != 0 { v } else { compute_me_process() }
}

#[cfg(not(loom))]
#[cold]
fn compute_me_process() -> u64 {
    register_atfork();
    let me = Identity::current_process();
    let pid = u64::from(me.id);
    assert!(pid <= TID_MASK, "Linux PIDs fit in 22 bits, got {pid}");
    let id = (u64::from(me.token) << 32) | (u64::from(pidns_index()) << NS_SHIFT) | pid;
    PROCESS_ME.store(id, std::sync::atomic::Ordering::Relaxed);
    id
}

#[cfg(not(loom))]
extern "C" fn reset_identity_in_child() {
    // The forked child's only thread has a new TID: forget the parent thread's.
    ME.set(0);
    PROCESS_ME.store(0, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(not(loom))]
fn register_atfork() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no captured state; it only
        // stores into a const-initialised thread-local `Cell<u64>` (no destructor, no
        // allocation), which is safe in the child between fork and the child's return.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(reset_identity_in_child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
}

#[cfg(not(loom))]
/// Whether the holder recorded in identity word `word` (the holder field and token; the
/// flag bits are ignored) may still be alive: `false` only when provably dead.
///
/// Words that no real holder writes are dead: TID 0, token 0, a namespace index
/// that the registry never handed out, or (in our own namespace) a TID that
/// [`shm_core::identity::is_valid_pid`] refuses. Otherwise the holder is checked through
/// `/proc` only when it lives in our own PID namespace ([`Identity::liveness`]); a
/// holder of another or an unknown namespace counts as alive (waiters keep waiting
/// until their timeout).
pub(crate) fn is_alive(word: u64) -> bool {
    word_liveness(word) != Liveness::Dead
}

#[cfg(not(loom))]
/// The liveness of the holder that identity word `word` records (see [`is_alive`]).
pub(crate) fn word_liveness(word: u64) -> Liveness {
    let tid = (word & TID_MASK) as u32;
    let index = ((word & TID_BITS) >> NS_SHIFT) as u8;
    let token = (word >> 32) as u32;
    if tid == 0 || token == 0 {
        return Liveness::Dead;
    }
    let pidns = match index_entry(index) {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
