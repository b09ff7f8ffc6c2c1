//! Shared (never `PRIVATE`) futex wait and wake on words of the mapping: the queue's
//! sequence counters that producers, consumers and joiners sleep on.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::thread::futex;

/// Sleeps while `word == expected`, at most `timeout`. Returns on a wake-up, a changed
/// value, a signal or the timeout alike: the caller re-checks its condition.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = futex::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every waiter of `word` (in every process that maps it).
pub(crate) fn wake_all(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}
