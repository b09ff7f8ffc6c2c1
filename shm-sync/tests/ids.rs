//! Lock words whose TID no task can have (issue 17 item 11): judged by
//! `shm_core::identity::is_valid_pid` before any syscall, recovered as a dead holder's
//! in our own PID namespace, never a panic.

use std::time::{Duration, Instant};

use shm_core::HEADER_LEN;
use shm_core::identity::{pid_max, pidns_index};
use shm_sync::{LockError, Mutex};

/// A lock word: token, PID-namespace index, TID (see the crate docs).
fn word(token: u32, index: u8, tid: u32) -> u64 {
    u64::from(token) << 32 | u64::from(index) << 22 | u64::from(tid)
}

fn forge(m: &Mutex<u64>, w: u64) {
    let seg = shm_core::Segment::open(m.name().unwrap()).unwrap();
    seg.write_at(HEADER_LEN, &w.to_ne_bytes()).unwrap();
}

#[test]
fn a_tid_at_or_above_pid_max_in_our_namespace_is_recovered() {
    let index = pidns_index();
    let max = pid_max();
    if index == 0 || max >= 1 << 22 {
        // No registry here, or every 22-bit TID is a possible one.
        return;
    }
    let m = Mutex::create(0u64).unwrap();
    for tid in [max, (1 << 22) - 1] {
        forge(&m, word(0x1235, index, tid));
        let t = Instant::now();
        match m.lock_timeout(Duration::from_secs(20)) {
            Err(LockError::OwnerDied(g)) => g.mark_consistent(),
            other => panic!("tid {tid}: expected OwnerDied, got {:?}", other.map(|_| ())),
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }
}

#[test]
fn a_tid_of_an_unknown_namespace_is_waited_for() {
    let m = Mutex::create(0u64).unwrap();
    // Index 0: namespace unknown, so even an impossible-looking TID cannot be judged.
    forge(&m, word(0x1235, 0, pid_max().min((1 << 22) - 1)));
    match m.lock_timeout(Duration::from_millis(50)) {
        Err(LockError::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {:?}", other.map(|_| ())),
    }
    forge(&m, 0);
    assert!(m.try_lock().is_ok());
}
