//! `Condition` across real processes: a producer process and a waiting consumer,
//! one-at-a-time notifications, timeouts, and a holder killed with SIGKILL.

mod common;

use std::time::{Duration, Instant};

use common::{BlockedIn, Kid, Task, child_role, current_tid, env, say, wait_until_blocked};
use shm_sync::{Condition, LockError, Mutex};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn consumer_wait_for_sees_data_set_by_a_producer_process() {
    if let Some(role) = child_role() {
        if role == "producer" {
            let c = Condition::<[u64; 2]>::open(&env("SHM_NAME")).unwrap();
            // The consumer (a thread of the parent) asleep first: the notification must
            // reach a sleeper.
            let consumer = env("SHM_CONSUMER").parse().unwrap();
            wait_until_blocked(Task::Thread(consumer), BlockedIn::SharedFutex);
            let mut g = c.lock().unwrap();
            g[0] = 42;
            g[1] = 43;
            drop(g);
            c.notify();
        }
        return;
    }
    let c = Condition::create([0u64; 2]).unwrap();
    let kid = Kid::spawn(
        "consumer_wait_for_sees_data_set_by_a_producer_process",
        "producer",
        &[
            ("SHM_NAME", c.name().unwrap()),
            ("SHM_CONSUMER", &current_tid().to_string()),
        ],
    );
    let (g, ok) = c
        .wait_for(c.lock().unwrap(), |d| d[0] != 0, Some(LONG))
        .unwrap();
    assert!(ok, "predicate never held");
    assert_eq!(*g, [42, 43], "both writes made under the lock are seen");
    drop(g);
    kid.join_ok(LONG);
}

#[test]
fn each_notify_wakes_a_waiting_process() {
    const KIDS: u64 = 3;
    if let Some(role) = child_role() {
        if role == "taker" {
            let c = Condition::<[u64; 2]>::open(&env("SHM_NAME")).unwrap();
            let mut g = c.lock().unwrap();
            g[0] += 1; // registered
            c.notify_all(); // the parent waits for every registration
            let (mut g, ok) = c.wait_for(g, |d| d[1] > 0, Some(LONG)).unwrap();
            assert!(ok, "no token within {LONG:?}");
            g[1] -= 1; // took one token
        }
        return;
    }
    // data: [registered waiters, tokens]
    let c = Condition::create([0u64; 2]).unwrap();
    let kids: Vec<_> = (0..KIDS)
        .map(|_| {
            Kid::spawn(
                "each_notify_wakes_a_waiting_process",
                "taker",
                &[("SHM_NAME", c.name().unwrap())],
            )
        })
        .collect();
    let registered = |n: u64| {
        c.wait_for(c.lock().unwrap(), |d| d[0] == n, Some(LONG))
            .unwrap()
            .1
    };
    assert!(registered(KIDS), "children never registered");
    // All asleep: each token below must be taken by a sleeper that a notify woke.
    for k in &kids {
        k.wait_blocked();
    }
    // One token and one `notify()` at a time: each must wake a sleeper (a lost wake-up
    // leaves the token untaken).
    for _ in 0..KIDS {
        c.lock().unwrap()[1] += 1;
        c.notify();
        let deadline = Instant::now() + LONG;
        while c.lock().unwrap()[1] != 0 {
            assert!(Instant::now() < deadline, "a notify woke nobody");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for k in kids {
        k.join_ok(LONG);
    }
}

#[test]
fn timeouts_across_processes() {
    if let Some(role) = child_role() {
        if role == "nudger" {
            // Notifies without ever making the predicate true.
            let c = Condition::<u32>::open(&env("SHM_NAME")).unwrap();
            for _ in 0..20 {
                *c.lock().unwrap() += 1;
                c.notify_all();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        return;
    }
    let c = Condition::create(0u32).unwrap();
    let kid = Kid::spawn(
        "timeouts_across_processes",
        "nudger",
        &[("SHM_NAME", c.name().unwrap())],
    );
    let wait = Duration::from_millis(60);
    let t = Instant::now();
    let (g, ok) = c
        .wait_for(c.lock().unwrap(), |v| *v == u32::MAX, Some(wait))
        .unwrap();
    let took = t.elapsed();
    assert!(!ok, "the predicate cannot hold");
    assert!(took >= wait, "returned early: {took:?}");
    assert!(
        took < wait + Duration::from_secs(5),
        "returned late: {took:?}"
    );
    let (g, r) = c.wait_timeout(g, Duration::from_millis(1)).unwrap();
    assert!(
        c.is_locked(),
        "the lock is held again after a timed-out wait"
    );
    drop((g, r));
    // A zero timeout checks the predicate once, without waiting.
    let (g, ok) = c
        .wait_for(c.lock().unwrap(), |_| true, Some(Duration::ZERO))
        .unwrap();
    assert!(ok);
    drop(g);
    kid.join_ok(LONG);
    let (_, r) = c
        .wait_timeout(c.lock().unwrap(), Duration::from_millis(20))
        .unwrap();
    assert!(r.timed_out(), "nobody notifies any more");
}

#[test]
fn lock_timeout_while_another_process_holds_it() {
    if let Some(role) = child_role() {
        if role == "holder" {
            let c = Condition::<()>::open(&env("SHM_NAME")).unwrap();
            let _g = c.lock().unwrap();
            say("HOLDING");
            std::thread::sleep(LONG);
        }
        return;
    }
    let c = Condition::create(()).unwrap();
    let kid = Kid::spawn(
        "lock_timeout_while_another_process_holds_it",
        "holder",
        &[("SHM_NAME", c.name().unwrap())],
    );
    kid.wait_line("HOLDING", LONG);
    assert!(matches!(
        c.lock_timeout(Duration::from_millis(30)),
        Err(LockError::Timeout { .. })
    ));
    assert!(matches!(c.try_lock(), Err(LockError::WouldBlock { .. })));
}

#[test]
fn waiter_gets_owner_died_when_the_holder_is_killed() {
    if let Some(role) = child_role() {
        if role == "holder" {
            let c = Condition::<[u32; 2]>::open(&env("SHM_NAME")).unwrap();
            let mut g = c.lock().unwrap();
            g[0] = 1; // half of an update that g[1] = 1 would complete
            c.notify_all();
            say("HOLDING");
            std::thread::sleep(LONG);
        }
        return;
    }
    let c = Condition::create([0u32; 2]).unwrap();
    // Locked before the child starts, so that it can take the lock only once the
    // waiter below has released it.
    let g = c.lock().unwrap();
    let mut kid = Kid::spawn(
        "waiter_gets_owner_died_when_the_holder_is_killed",
        "holder",
        &[("SHM_NAME", c.name().unwrap())],
    );
    let waiter = current_tid();
    std::thread::scope(|s| {
        // The waiter below releases the lock; the child takes it, notifies and hangs;
        // the waiter, woken, blocks re-locking until the child is killed.
        s.spawn(|| {
            kid.wait_line("HOLDING", LONG);
            // Killed while the waiter sleeps (re-locking, or not yet woken).
            wait_until_blocked(Task::Thread(waiter), BlockedIn::SharedFutex);
            kid.kill();
        });
        let r = c.wait_for(g, |d| d[1] == 1, Some(LONG));
        let Err(LockError::OwnerDied((g, holds))) = r else {
            panic!(
                "expected OwnerDied, got {:?}",
                r.map(|_| ()).map_err(|e| e.map(|_| ()))
            );
        };
        assert!(!holds, "the dead holder never completed the update");
        assert_eq!(*g, [1, 0], "the waiter sees the half-done update to repair");
        drop(g); // not marked consistent
    });
    // Not repaired: the next locker is told so, and repairs it.
    let Err(LockError::Inconsistent(mut g)) = c.lock() else {
        panic!("expected Inconsistent");
    };
    *g = [0, 0];
    g.mark_consistent();
    drop(g);
    assert!(c.lock().is_ok() && c.is_consistent());
}

#[test]
fn a_fresh_locker_gets_owner_died_after_a_kill() {
    if let Some(role) = child_role() {
        if role == "holder" {
            let c = Condition::<u64>::open(&env("SHM_NAME")).unwrap();
            let _g = c.lock().unwrap();
            say("HOLDING");
            std::thread::sleep(LONG);
        }
        return;
    }
    let c = Condition::create(5u64).unwrap();
    let mut kid = Kid::spawn(
        "a_fresh_locker_gets_owner_died_after_a_kill",
        "holder",
        &[("SHM_NAME", c.name().unwrap())],
    );
    kid.wait_line("HOLDING", LONG);
    kid.kill();
    let r = c.lock_timeout(LONG);
    let Err(LockError::OwnerDied(g)) = r else {
        panic!("expected OwnerDied");
    };
    assert_eq!(*g, 5);
    g.mark_consistent();
}

#[test]
fn open_checks_kind_and_type() {
    let c = Condition::create(1u64).unwrap();
    assert!(Condition::<u64>::open(c.name().unwrap()).is_ok());
    assert!(matches!(
        Condition::<u32>::open(c.name().unwrap()),
        Err(shm_sync::Error::Shm(shm_core::Error::TypeMismatch { .. }))
    ));
    let m = Mutex::create(1u64).unwrap();
    assert!(matches!(
        Condition::<u64>::open(m.name().unwrap()),
        Err(shm_sync::Error::Shm(shm_core::Error::WrongKind { .. }))
    ));
    // Messages name the Condition.
    let g = c.lock().unwrap();
    let err = std::thread::scope(|s| {
        s.spawn(|| c.try_lock().map(|_| ()).unwrap_err().to_string())
            .join()
            .unwrap()
    });
    assert!(err.contains("Condition"), "{err}");
    drop(g);
}
