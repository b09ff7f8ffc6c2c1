//! Every operating-system call of shm-sync: shared futex wait/wake (never `PRIVATE`:
//! the words live in mappings shared between processes), the calling thread's identity
//! (TID + start time, cached per thread) and the liveness check of another thread
//! through `/proc`. A port to another OS replaces this module.
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

use crate::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use crate::loom_model::{futex_wait, futex_wake, is_alive, me};

/// Low 30 bits of an identity: the Linux TID (pid_max is at most 2^22).
pub(crate) const TID_BITS: u64 = (1 << 30) - 1;

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
    /// The calling thread's identity, `token << 32 | tid`; 0 until first computed.
    static ME: Cell<u64> = const { Cell::new(0) };
}

#[cfg(not(loom))]
/// The calling thread's identity: `token << 32 | tid`, never 0.
///
/// `token` is the low 32 bits of the thread's start time (clock ticks since boot, field
/// 22 of `/proc/<tid>/stat`) with bit 0 forced on, or 0 when `/proc` could not be read
/// (then only the TID is checked). Computed once per thread.
#[inline]
pub(crate) fn me() -> u64 {
    let v = ME.get();
    if v != 0 { v } else { compute_me() }
}

#[cfg(not(loom))]
#[cold]
fn compute_me() -> u64 {
    register_atfork();
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u64;
    assert!(tid <= TID_BITS, "Linux TIDs fit in 22 bits, got {tid}");
    let token = read_stat(tid as u32).map_or(0, |st| token_of(st.start));
    let id = (u64::from(token) << 32) | tid;
    ME.set(id);
    id
}

#[cfg(not(loom))]
/// The liveness token of a thread that started at `start` (clock ticks since boot).
fn token_of(start: u64) -> u32 {
    (start as u32) | 1
}

#[cfg(not(loom))]
extern "C" fn reset_identity_in_child() {
    // The forked child's only thread has a new TID: forget the parent thread's.
    ME.set(0);
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
/// `PF_EXITING` in the `flags` field: the task is in `do_exit` and will never run user
/// code (and so never unlock) again.
const PF_EXITING: u64 = 0x4;

#[cfg(not(loom))]
/// What `/proc/<tid>/stat` says about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub(crate) state: u8,
    /// Field 9: kernel `PF_*` flags.
    pub(crate) flags: u64,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start: u64,
}

#[cfg(not(loom))]
/// The `stat` line of task `tid`.
fn read_stat(tid: u32) -> Option<Stat> {
    let bytes = std::fs::read(format!("/proc/{tid}/stat")).ok()?;
    parse_stat(&bytes)
}

#[cfg(not(loom))]
/// Parses state, flags and start time from a `stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the LAST `)`.
pub(crate) fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let close = bytes.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 was the state; field 9 is 6 further on, field 22 another 13.
    let flags = fields.nth(5)?.parse().ok()?;
    let start = fields.nth(12)?.parse().ok()?;
    Some(Stat {
        state,
        flags,
        start,
    })
}

#[cfg(not(loom))]
/// Whether the thread that recorded identity (`tid`, `token`) may still be alive.
///
/// Dead when `/proc/<tid>/stat` shows a zombie, dead or exiting task, or a start time
/// that does not match the token (the TID was reused), or when `/proc/<tid>` is missing
/// and `kill(tid, 0)` says `ESRCH`. Anything we cannot decide counts as alive.
pub(crate) fn is_alive(tid: u32, token: u32) -> bool {
    if tid == 0 {
        return false;
    }
    match read_stat(tid) {
        Some(st) => {
            if matches!(st.state, b'Z' | b'X' | b'x') || st.flags & PF_EXITING != 0 {
                return false;
            }
            token == 0 || token_of(st.start) == token
        }
        None => {
            let Some(pid) = rustix::process::Pid::from_raw(tid as i32) else {
                return false;
            };
            // /proc may be hidden (hidepid) or unmounted: ask the kernel directly.
            !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_hostile_comm() {
        let line =
            b"1234 (a) b (c) d) S 1 2 3 4 5 4194560 7 8 9 10 11 12 13 14 15 16 17 18 98765 20 21\n";
        let st = Stat {
            state: b'S',
            flags: 4194560,
            start: 98765,
        };
        assert_eq!(parse_stat(line), Some(st));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) R 1 2"), None);
    }

    #[test]
    fn own_thread_is_alive_and_identity_is_stable() {
        let id = me();
        assert_eq!(id, me());
        let tid = (id & TID_BITS) as u32;
        let token = (id >> 32) as u32;
        assert_ne!(token, 0, "/proc is readable here");
        assert!(is_alive(tid, token));
        assert!(
            !is_alive(tid, token ^ 2),
            "a wrong start time means a reused TID"
        );
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn exited_thread_is_dead() {
        let id = std::thread::spawn(me).join().unwrap();
        // The thread is gone once joined.
        assert!(!is_alive((id & TID_BITS) as u32, (id >> 32) as u32));
    }

    #[test]
    fn threads_have_distinct_identities() {
        let a = me();
        let b = std::thread::spawn(me).join().unwrap();
        assert_ne!(a, b);
    }
}
