//! Locks, events, semaphores and barriers: the conformance suite of the `api` traits
//! on both backends (shared memory and Redis), then what only Redis has: leases
//! (kill -9 of a holder -> `OwnerDied` with a larger fencing token), hostile values in
//! the server, and a server that goes away and comes back.

mod kids;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kids::{Kid, child_role, conn, conn_to, env, raw, say, server};
use shm_remote::Error;
use shm_remote::api::{
    HeldLock, LockError, SharedBarrier, SharedEvent, SharedLock, SharedSemaphore, is_broken_barrier,
};
use shm_remote::sync::{Barrier, Event, Lock, RLock, Semaphore};

const LONG: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ conformance

/// Every lock operation, with `a` and `b` two handles of one lock.
fn lock_suite<L: SharedLock + Sync>(a: &L, b: &L, reentrant: bool) {
    assert!(!a.is_locked().unwrap());
    let g = a.lock().unwrap();
    assert!(a.is_locked().unwrap() && b.is_locked().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(b.try_lock(), Err(LockError::WouldBlock { .. })));
            let t = Instant::now();
            let r = b.lock_timeout(Duration::from_millis(150));
            assert!(matches!(r, Err(LockError::Timeout { .. })), "{:?}", r.err());
            let took = t.elapsed();
            assert!(took >= Duration::from_millis(150), "{took:?}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        });
    });
    if reentrant {
        let inner = a.lock().unwrap();
        drop(inner);
        assert!(a.is_locked().unwrap(), "the outer level still holds it");
    } else {
        assert!(matches!(a.try_lock(), Err(LockError::WouldDeadlock { .. })));
    }
    let f1 = g.fencing_token();
    drop(g);
    assert!(!a.is_locked().unwrap());
    // Another thread gets it now, through the other handle, and a waiter is released.
    let g = a.lock().unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let g2 = b.lock_timeout(LONG).unwrap();
            g2.fencing_token()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(g);
        let f3 = h.join().unwrap();
        if let (Some(f1), Some(f3)) = (f1, f3) {
            assert!(f3 > f1, "fencing tokens grow: {f1} then {f3}");
        }
    });
    let g = b.try_lock().unwrap();
    g.mark_consistent().unwrap();
}

fn event_suite<E: SharedEvent + Sync>(a: &E, b: &E) {
    assert!(!a.is_set().unwrap());
    let t = Instant::now();
    assert!(matches!(
        a.wait_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    std::thread::scope(|s| {
        let h = s.spawn(|| b.wait_timeout(LONG));
        std::thread::sleep(Duration::from_millis(50));
        a.set().unwrap();
        h.join().unwrap().unwrap();
    });
    assert!(b.is_set().unwrap());
    b.wait().unwrap();
    a.clear().unwrap();
    assert!(!b.is_set().unwrap());
}

fn semaphore_suite<S: SharedSemaphore + Sync>(a: &S, b: &S) {
    assert_eq!(a.value().unwrap(), 2);
    assert_eq!(a.acquire().unwrap(), 0);
    assert_eq!(b.try_acquire().unwrap(), 0);
    assert_eq!(a.value().unwrap(), 0);
    assert!(matches!(a.try_acquire(), Err(Error::Timeout { waited, .. }) if waited.is_zero()));
    let t = Instant::now();
    assert!(matches!(
        b.acquire_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    std::thread::scope(|s| {
        let h = s.spawn(|| b.acquire_timeout(LONG));
        std::thread::sleep(Duration::from_millis(50));
        a.release().unwrap();
        h.join().unwrap().unwrap();
    });
    a.release().unwrap();
    b.release().unwrap();
    assert_eq!(a.value().unwrap(), 2);
}

fn barrier_suite<B: SharedBarrier + Sync>(a: &B, b: &B) {
    assert_eq!(a.parties().unwrap(), 2);
    for _ in 0..3 {
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| b.wait_timeout(LONG).unwrap());
            let ra = a.wait_timeout(LONG).unwrap();
            (ra, h.join().unwrap())
        });
        assert_ne!(ra.leader, rb.leader);
        assert_eq!(ra.index + rb.index, 1);
    }
    // A timeout breaks it for everybody until reset.
    assert!(matches!(
        a.wait_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert!(a.broken().unwrap());
    assert!(is_broken_barrier(&b.wait().unwrap_err()));
    a.reset().unwrap();
    assert!(!a.broken().unwrap());
    // Abort breaks a waiting party.
    std::thread::scope(|s| {
        let h = s.spawn(|| b.wait_timeout(LONG));
        std::thread::sleep(Duration::from_millis(100));
        a.abort().unwrap();
        assert!(is_broken_barrier(&h.join().unwrap().unwrap_err()));
    });
    a.reset().unwrap();
    let (ra, rb) = std::thread::scope(|s| {
        let h = s.spawn(|| b.wait_timeout(LONG).unwrap());
        (a.wait_timeout(LONG).unwrap(), h.join().unwrap())
    });
    assert!(ra.leader || rb.leader);
}

#[test]
fn conformance_lock_local() {
    let a = shm_sync::Lock::create().unwrap();
    let b = shm_sync::Lock::open(a.name().unwrap()).unwrap();
    lock_suite(&a, &b, false);
    let _ = a.unlink();
}

#[test]
fn conformance_lock_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    lock_suite(
        &Lock::open(&c, "l").unwrap(),
        &Lock::open(&c, "l").unwrap(),
        false,
    );
}

#[test]
fn conformance_rlock_local() {
    let a = shm_sync::RLock::create().unwrap();
    let b = shm_sync::RLock::open(a.name().unwrap()).unwrap();
    lock_suite(&a, &b, true);
    let _ = a.unlink();
}

#[test]
fn conformance_rlock_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    lock_suite(
        &RLock::open(&c, "r").unwrap(),
        &RLock::open(&c, "r").unwrap(),
        true,
    );
}

#[test]
fn conformance_event_local() {
    let a = shm_sync::Event::create().unwrap();
    let b = shm_sync::Event::open(a.name().unwrap()).unwrap();
    event_suite(&a, &b);
    let _ = a.unlink();
}

#[test]
fn conformance_event_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    event_suite(
        &Event::open(&c, "e").unwrap(),
        &Event::open(&c, "e").unwrap(),
    );
}

#[test]
fn conformance_semaphore_local() {
    let a = shm_sync::Semaphore::create(2).unwrap();
    let b = shm_sync::Semaphore::open(a.name().unwrap()).unwrap();
    semaphore_suite(&a, &b);
    let _ = a.unlink();
}

#[test]
fn conformance_semaphore_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    semaphore_suite(
        &Semaphore::open(&c, "s", 2).unwrap(),
        &Semaphore::open(&c, "s", 2).unwrap(),
    );
}

#[test]
fn conformance_barrier_local() {
    let a = shm_sync::Barrier::create(2).unwrap();
    let b = shm_sync::Barrier::open(a.name().unwrap()).unwrap();
    barrier_suite(&a, &b);
    let _ = a.unlink();
}

#[test]
fn conformance_barrier_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    barrier_suite(
        &Barrier::open(&c, "b", 2).unwrap(),
        &Barrier::open(&c, "b", 2).unwrap(),
    );
}

// ------------------------------------------------------------------ Redis only

#[test]
fn bounded_semaphore_refuses_over_release() {
    let srv = server();
    let (c, _) = conn(&srv);
    let s = Semaphore::open_bounded(&c, "bs", 1).unwrap();
    assert_eq!(s.max().unwrap(), Some(1));
    let e = s.release().unwrap_err();
    assert!(
        matches!(&e, Error::Local(b) if b.to_string().contains("bs")),
        "{e}"
    );
    s.acquire().unwrap();
    assert_eq!(s.held_by_me(), 1);
    s.release().unwrap();
    assert_eq!(s.value().unwrap(), 1);
}

#[test]
fn releasing_a_permit_whose_lease_ran_out_makes_no_permit_out_of_nothing() {
    let srv = server();
    let (c, _) = conn(&srv);
    let ns = c.address().namespace.clone();
    let s = Semaphore::open(&c, "lapsed", 1).unwrap();
    s.acquire().unwrap();
    // The lease runs out (as for a holder cut off from the server) and the permit is
    // given back by the next acquirer's reclaim.
    let _: i64 = raw(
        &c,
        redis::cmd("ZADD")
            .arg(format!("{ns}:sh:lapsed"))
            .arg("XX")
            .arg(1)
            .arg(s_member(&c, &ns)),
    );
    let other = Semaphore::open(&c, "lapsed", 1).unwrap();
    assert_eq!(
        other.try_acquire().unwrap(),
        1,
        "the lapsed permit came back"
    );
    other.release().unwrap();
    assert_eq!(s.value().unwrap(), 1);
    // The first holder's late release adds nothing.
    s.release().unwrap();
    assert_eq!(s.value().unwrap(), 1);
}

/// The one member of the semaphore's holder set.
fn s_member(c: &shm_remote::conn::Conn, ns: &str) -> String {
    let m: Vec<String> = raw(
        c,
        redis::cmd("ZRANGE")
            .arg(format!("{ns}:sh:lapsed"))
            .arg(0)
            .arg(-1),
    );
    assert_eq!(m.len(), 1, "{m:?}");
    m[0].clone()
}

#[test]
fn fencing_tokens_grow_and_the_keeper_renews_the_lease() {
    let srv = server();
    let (c, _) = conn(&srv);
    let a = Lock::open(&c, "kept").unwrap();
    // Renewed every 667 ms: a loaded machine may delay a renewal by a second.
    a.set_lease(Duration::from_secs(2)).unwrap();
    let b = Lock::open(&c, "kept").unwrap();
    let g = a.lock().unwrap();
    let f = g.fencing_token();
    // Held for two and a half leases: the keeper renews it, nobody else gets it.
    let end = Instant::now() + Duration::from_secs(5);
    std::thread::scope(|s| {
        s.spawn(|| {
            while Instant::now() < end {
                let r = b.try_lock();
                assert!(matches!(r, Err(LockError::WouldBlock { .. })), "{r:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    });
    g.unlock().unwrap();
    let g = b.try_lock().unwrap();
    assert_eq!(g.fencing_token(), f + 1);
}

#[test]
fn a_release_after_the_lease_ran_out_is_reported() {
    let srv = server();
    let (c, _) = conn(&srv);
    let a = Lock::open(&c, "lost").unwrap();
    let g = a.lock().unwrap();
    // The lease "runs out" (as for a process frozen longer than its lease): the key goes.
    let _: i64 = raw(
        &c,
        redis::cmd("DEL").arg(format!("{}:d:lost", c.address().namespace)),
    );
    let b = Lock::open(&c, "lost").unwrap();
    let g2 = match b.try_lock() {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {other:?}"),
    };
    assert!(g2.fencing_token() > g.fencing_token());
    assert!(matches!(g.unlock(), Err(Error::Timeout { .. })));
    // The new holder is untouched by the old one's release.
    assert!(b.is_locked().unwrap());
    g2.mark_consistent().unwrap();
    drop(g2);
    drop(b.try_lock().unwrap());
}

/// The child's part: take the lock (or a permit, or a barrier place) and wait to be
/// killed.
fn child_holder(role: &str) {
    let c = conn_to(&env("R2_URL"));
    match role {
        "lock" => {
            let l = Lock::open(&c, "victim").unwrap();
            l.set_lease(Duration::from_millis(800)).unwrap();
            let g = l.lock().unwrap();
            say(&format!("fence {}", g.fencing_token()));
            std::thread::sleep(Duration::from_secs(600));
        }
        "permit" => {
            let s = Semaphore::open(&c, "sem", 1).unwrap();
            s.set_lease(Duration::from_millis(800)).unwrap();
            s.acquire().unwrap();
            say("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        "party" => {
            let b = Barrier::open(&c, "bar", 2).unwrap();
            b.set_lease(Duration::from_millis(800)).unwrap();
            say("waiting");
            let _ = b.wait();
            std::thread::sleep(Duration::from_secs(600));
        }
        "counter" => {
            let l = Lock::open(&c, "ctr").unwrap();
            let key = format!("{}:counter", c.address().namespace);
            for _ in 0..50 {
                let g = l.lock_timeout(LONG).unwrap();
                // A read-modify-write that only the lock makes safe.
                let v: Option<i64> = raw(&c, redis::cmd("GET").arg(&key));
                let () = raw(&c, redis::cmd("SET").arg(&key).arg(v.unwrap_or(0) + 1));
                drop(g);
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn kill_9_of_a_lock_holder_gives_owner_died_with_a_larger_fencing_token() {
    if let Some(role) = child_role() {
        return child_holder(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let mut kid = Kid::spawn(
        "kill_9_of_a_lock_holder_gives_owner_died_with_a_larger_fencing_token",
        "lock",
        &[("R2_URL", &url)],
    );
    let fence: u64 = kid.wait_line("fence ", LONG).parse().unwrap();
    let l = Lock::open(&c, "victim").unwrap();
    assert!(matches!(l.try_lock(), Err(LockError::WouldBlock { .. })));
    kid.kill();
    let t = Instant::now();
    let g = match l.lock_timeout(LONG) {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {other:?}"),
    };
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(g.fencing_token() > fence, "{} > {fence}", g.fencing_token());
    drop(g);
    // Not repaired: the next locker is told.
    let g = match l.lock_timeout(LONG) {
        Err(LockError::Inconsistent(g)) => g,
        other => panic!("expected Inconsistent, got {other:?}"),
    };
    g.mark_consistent().unwrap();
    drop(g);
    drop(l.lock_timeout(LONG).unwrap());
}

#[test]
fn a_dead_holders_permit_comes_back_after_its_lease() {
    if let Some(role) = child_role() {
        return child_holder(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let mut kid = Kid::spawn(
        "a_dead_holders_permit_comes_back_after_its_lease",
        "permit",
        &[("R2_URL", &url)],
    );
    kid.wait_line("holding", LONG);
    let s = Semaphore::open(&c, "sem", 1).unwrap();
    assert!(s.try_acquire().is_err());
    kid.kill();
    assert_eq!(s.acquire_timeout(LONG).unwrap(), 1, "one permit came back");
    s.release().unwrap();
    assert_eq!(s.acquire_timeout(LONG).unwrap(), 0, "told once");
}

#[test]
fn a_dead_party_breaks_the_barrier() {
    if let Some(role) = child_role() {
        return child_holder(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let b = Barrier::open(&c, "bar", 3).unwrap();
    let mut kid = Kid::spawn(
        "a_dead_party_breaks_the_barrier",
        "party",
        &[("R2_URL", &url)],
    );
    kid.wait_line("waiting", LONG);
    // The child is registered once its n_waiting shows.
    let end = Instant::now() + LONG;
    while b.n_waiting().unwrap() == 0 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    kid.kill();
    let t = Instant::now();
    let e = b.wait_timeout(LONG).unwrap_err();
    assert!(is_broken_barrier(&e), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
}

#[test]
fn processes_count_exactly_under_the_lock() {
    if let Some(role) = child_role() {
        return child_holder(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let kids: Vec<Kid> = (0..3)
        .map(|_| {
            Kid::spawn(
                "processes_count_exactly_under_the_lock",
                "counter",
                &[("R2_URL", &url)],
            )
        })
        .collect();
    for k in kids {
        k.join_ok(Duration::from_secs(120));
    }
    let v: i64 = raw(
        &c,
        redis::cmd("GET").arg(format!("{}:counter", c.address().namespace)),
    );
    assert_eq!(v, 150);
}

#[test]
fn hostile_values_give_typed_errors() {
    let srv = server();
    let (c, _) = conn(&srv);
    let ns = c.address().namespace.clone();
    // A lock key with no lease: a holder that would never go.
    let l = Lock::open(&c, "nolease").unwrap();
    let () = raw(
        &c,
        redis::cmd("SET").arg(format!("{ns}:d:nolease")).arg("junk"),
    );
    let e = l.try_lock().unwrap_err();
    assert!(
        matches!(e, LockError::Other(Error::Corrupted { .. })),
        "{e:?}"
    );
    // The lock's key of another Redis type.
    let l = Lock::open(&c, "wrongtype").unwrap();
    let _: i64 = raw(
        &c,
        redis::cmd("LPUSH")
            .arg(format!("{ns}:d:wrongtype"))
            .arg("x"),
    );
    let e = l.try_lock().unwrap_err();
    assert!(
        matches!(
            e,
            LockError::Other(Error::WrongType { .. } | Error::Corrupted { .. })
        ),
        "{e:?}"
    );
    // A fencing counter that is no integer.
    let l = Lock::open(&c, "badfence").unwrap();
    let _: i64 = raw(
        &c,
        redis::cmd("HSET")
            .arg(format!("{ns}:ls:badfence"))
            .arg("fence")
            .arg("zz"),
    );
    let e = l.try_lock().unwrap_err();
    assert!(
        matches!(e, LockError::Other(Error::Corrupted { .. })),
        "{e:?}"
    );
    // An event flag that is neither 0 nor 1.
    let ev = Event::open(&c, "ev").unwrap();
    let () = raw(
        &c,
        redis::cmd("SET")
            .arg(format!("{ns}:d:ev"))
            .arg("\u{0}garbage"),
    );
    assert!(matches!(ev.is_set(), Err(Error::Corrupted { .. })));
    assert!(matches!(
        ev.wait_timeout(Duration::from_millis(50)),
        Err(Error::Corrupted { .. })
    ));
    // A semaphore count that is no integer.
    let s = Semaphore::open(&c, "sem", 1).unwrap();
    let _: i64 = raw(
        &c,
        redis::cmd("HSET")
            .arg(format!("{ns}:d:sem"))
            .arg("count")
            .arg("many"),
    );
    assert!(matches!(s.try_acquire(), Err(Error::Corrupted { .. })));
    assert!(matches!(s.value(), Err(Error::Corrupted { .. })));
    // Barrier parties garbage.
    let b = Barrier::open(&c, "bar", 2).unwrap();
    let _: i64 = raw(
        &c,
        redis::cmd("HSET")
            .arg(format!("{ns}:d:bar"))
            .arg("parties")
            .arg("-3"),
    );
    assert!(matches!(
        b.wait_timeout(Duration::from_secs(1)),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(b.parties(), Err(Error::Corrupted { .. })));
    // A name holding another kind.
    assert!(matches!(
        Event::open(&c, "nolease"),
        Err(Error::WrongType { .. })
    ));
}

#[test]
fn server_down_gives_typed_errors_then_reconnects() {
    let mut srv = server();
    let (c, _) = conn(&srv);
    let l = Lock::open(&c, "l").unwrap();
    let ev = Event::open(&c, "e").unwrap();
    drop(l.lock().unwrap());
    srv.kill();
    let t = Instant::now();
    let e = l.lock_timeout(Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(
            e,
            LockError::Other(Error::Disconnected { .. } | Error::Timeout { .. })
        ),
        "{e:?}"
    );
    assert!(matches!(
        ev.wait_timeout(Duration::from_secs(1)),
        Err(Error::Disconnected { .. } | Error::Timeout { .. })
    ));
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "no hang: {:?}",
        t.elapsed()
    );
    srv.start_again().unwrap();
    kids::after_restart(|| ev.is_set());
    let g = l.lock_timeout(LONG).unwrap();
    drop(g);
    ev.set().unwrap();
    ev.wait_timeout(LONG).unwrap();
    let _ = Arc::strong_count(&c);
}

/// Worker code written against the traits only: the same on both backends.
fn worker(m: &shm_remote::Manager) -> shm_remote::Result<(u64, u32)> {
    use shm_remote::prelude::*;
    let tasks = m.joinable_queue::<u64>("tasks", 0)?;
    let done = m.event("done")?;
    let lock = m.lock("total-lock")?;
    let rlock = m.rlock("re")?;
    let slots = m.semaphore("slots", 2)?;
    let gate = m.barrier("gate", 1)?;
    tasks.put_many(&[1, 2, 3])?;
    let mut total = 0;
    while let Ok(v) = tasks.get_timeout(Duration::from_millis(200)) {
        slots.acquire_timeout(LONG)?;
        let g = lock
            .lock_timeout(LONG)
            .map_err(|e| e.into_error("total-lock"))?;
        let outer = rlock.lock().map_err(|e| e.into_error("re"))?;
        let inner = rlock.lock().map_err(|e| e.into_error("re"))?;
        total += v;
        drop((inner, outer, g));
        slots.release()?;
        tasks.task_done()?;
    }
    tasks.join_timeout(LONG)?;
    done.set()?;
    done.wait_timeout(LONG)?;
    let w = gate.wait_timeout(LONG)?;
    Ok((total, w.index))
}

#[test]
fn the_manager_runs_the_same_worker_on_both_backends() {
    let srv = server();
    let local = format!("r2-worker-{}", std::process::id());
    let (_, url) = conn(&srv);
    for address in [local, url] {
        let m = shm_remote::Manager::create(&address).unwrap();
        assert_eq!(worker(&m).unwrap(), (6, 0), "{address}");
    }
}
