//! `Barrier` across real processes: distinct indices every round, and Python's broken
//! state (abort, reset, a timeout) seen by waiters in other processes.

mod common;

use std::time::{Duration, Instant};

use common::{Kid, env};
use shm_sync::{Barrier, Error, Event, Mutex};

const LONG: Duration = Duration::from_secs(20);
const ROUNDS: usize = 20;

#[test]
fn indices_are_distinct_across_processes_every_round() {
    const PARTIES: u32 = 3;
    if shm_core::testing::child_runs("party", || party(&env("SHM_NAME"), &env("SHM_SEEN"))) {
        return;
    }
    let b = Barrier::create(PARTIES).unwrap();
    // Per round: a bit per index seen, and the index the leader had.
    let seen = Mutex::create([[0u32; 2]; ROUNDS]).unwrap();
    let kids: Vec<_> = (1..PARTIES)
        .map(|_| {
            Kid::spawn(
                "indices_are_distinct_across_processes_every_round",
                "party",
                &[
                    ("SHM_NAME", b.name().unwrap()),
                    ("SHM_SEEN", seen.name().unwrap()),
                ],
            )
        })
        .collect();
    party(b.name().unwrap(), seen.name().unwrap());
    for k in kids {
        k.join_ok(LONG);
    }
    let g = seen.lock().unwrap();
    for (round, [bits, leader]) in g.iter().enumerate() {
        assert_eq!(*bits, 0b111, "round {round}: indices 0, 1, 2 once each");
        assert_eq!(
            *leader,
            PARTIES - 1,
            "round {round}: the last to arrive leads"
        );
    }

    fn party(barrier: &str, seen: &str) {
        let b = Barrier::open(barrier).unwrap();
        let seen = Mutex::<[[u32; 2]; ROUNDS]>::open(seen).unwrap();
        for round in 0..ROUNDS {
            let r = b.wait().unwrap();
            assert!(r.index() < b.parties());
            let mut g = seen.lock().unwrap();
            // A bit already set means two parties got the same index.
            assert_eq!(g[round][0] & 1 << r.index(), 0, "index {} twice", r.index());
            g[round][0] |= 1 << r.index();
            if r.is_leader() {
                g[round][1] = r.index();
            }
        }
    }
}

/// A child that waits at the barrier, expects it to break (abort, reset or someone's
/// timeout), then waits for the parent's `SHM_GO` event and completes one round.
fn broken_then_one_round() {
    let b = Barrier::open(&env("SHM_NAME")).unwrap();
    let go = Event::open(&env("SHM_GO")).unwrap();
    let r = b.wait();
    assert!(
        matches!(r, Err(Error::BrokenBarrier { .. })),
        "expected BrokenBarrier, got {r:?}"
    );
    go.wait_timeout(LONG).unwrap();
    b.wait_timeout(LONG).unwrap();
}

/// Spawns `kids` children of `test` in the role above, and waits until they all wait.
fn waiting_kids(test: &str, b: &Barrier, go: &Event, kids: u32) -> Vec<Kid> {
    let kids: Vec<_> = (0..kids)
        .map(|_| {
            Kid::spawn(
                test,
                "broken",
                &[
                    ("SHM_NAME", b.name().unwrap()),
                    ("SHM_GO", go.name().unwrap()),
                ],
            )
        })
        .collect();
    let deadline = Instant::now() + LONG;
    while b.n_waiting() != kids.len() as u32 {
        assert!(Instant::now() < deadline, "children never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Arrived and asleep: what comes next must wake sleepers.
    for k in &kids {
        k.wait_blocked();
    }
    kids
}

#[test]
fn abort_wakes_waiters_in_other_processes_until_reset() {
    const TEST: &str = "abort_wakes_waiters_in_other_processes_until_reset";
    if shm_core::testing::child_runs("broken", broken_then_one_round) {
        return;
    }
    let b = Barrier::create(3).unwrap();
    let go = Event::create().unwrap();
    let kids = waiting_kids(TEST, &b, &go, 2);
    b.abort();
    assert!(b.broken());
    // Broken for later waiters too, until reset (the children wait for `go`).
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier { .. })));
    assert!(matches!(b.try_wait(), Err(Error::BrokenBarrier { .. })));
    b.reset();
    assert!(!b.broken());
    go.set();
    let r = b.wait_timeout(LONG).unwrap();
    assert!(r.index() < 3);
    for k in kids {
        k.join_ok(LONG);
    }
}

#[test]
fn reset_breaks_waiters_in_other_processes_and_is_usable_at_once() {
    const TEST: &str = "reset_breaks_waiters_in_other_processes_and_is_usable_at_once";
    if shm_core::testing::child_runs("broken", broken_then_one_round) {
        return;
    }
    let b = Barrier::create(3).unwrap();
    let go = Event::create().unwrap();
    let kids = waiting_kids(TEST, &b, &go, 2);
    b.reset();
    // Not left broken: the children's next round and ours complete together.
    assert!(!b.broken());
    go.set();
    b.wait_timeout(LONG).unwrap();
    for k in kids {
        k.join_ok(LONG);
    }
}

#[test]
fn a_timeout_breaks_the_barrier_for_other_processes() {
    const TEST: &str = "a_timeout_breaks_the_barrier_for_other_processes";
    if shm_core::testing::child_runs("broken", broken_then_one_round) {
        return;
    }
    let b = Barrier::create(3).unwrap();
    let go = Event::create().unwrap();
    let kids = waiting_kids(TEST, &b, &go, 1);
    let t = Instant::now();
    let r = b.wait_timeout(Duration::from_millis(30));
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(b.broken());
    assert_eq!(b.n_waiting(), 0);
    // The child saw BrokenBarrier; reset, and a full round of 3 works again.
    b.reset();
    go.set();
    let b2 = Barrier::open(b.name().unwrap()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| b2.wait_timeout(LONG).unwrap());
        b.wait_timeout(LONG).unwrap();
    });
    for k in kids {
        k.join_ok(LONG);
    }
}
