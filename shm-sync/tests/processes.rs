//! Real processes: counters, kill -9 of holders, wake-ups and barriers across processes.

mod common;

use std::time::{Duration, Instant};

use common::{
    BlockedIn, Kid, Task, child_role, current_tid, env, run_child, say, wait_until_blocked,
};
use shm_sync::{Barrier, Condvar, Event, LockError, Mutex, RLock, RwLock, Semaphore};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn counter_exact_total_across_processes() {
    const KIDS: usize = 4;
    const PER_KID: u64 = 5_000;
    if let Some(role) = child_role() {
        if role == "increment" {
            let m = Mutex::<[u64; 2]>::open(&env("SHM_NAME")).unwrap();
            for _ in 0..PER_KID {
                let mut g = m.lock().unwrap();
                // Two dependent plain writes: a lost update or a torn section shows.
                g[0] += 1;
                g[1] = g[0] * 3;
            }
        }
        return;
    }
    let m = Mutex::create([0u64; 2]).unwrap();
    let kids: Vec<_> = (0..KIDS)
        .map(|_| {
            Kid::spawn(
                "counter_exact_total_across_processes",
                "increment",
                &[("SHM_NAME", m.name().unwrap())],
            )
        })
        .collect();
    for _ in 0..PER_KID {
        let mut g = m.lock().unwrap();
        g[0] += 1;
        g[1] = g[0] * 3;
    }
    for k in kids {
        k.join_ok(LONG);
    }
    let g = m.lock().unwrap();
    assert_eq!(g[0], PER_KID * (KIDS as u64 + 1));
    assert_eq!(g[1], g[0] * 3);
}

/// The child's part of the kill trials: take the lock named by the role, announce it,
/// sleep until killed.
fn hold(role: &str) {
    let name = env("SHM_NAME");
    match role {
        "mutex" => {
            let m = Mutex::<u64>::open(&name).unwrap();
            let mut g = m.lock().unwrap_or_else(|e| e.into_guard().unwrap());
            *g += 1;
            say("HOLDING");
            std::thread::sleep(Duration::from_secs(60));
        }
        "rwlock" => {
            let l = RwLock::<u64>::open(&name).unwrap();
            let mut g = l.write().unwrap_or_else(|e| e.into_guard().unwrap());
            *g += 1;
            say("HOLDING");
            std::thread::sleep(Duration::from_secs(60));
        }
        "rlock" => {
            let l = RLock::open(&name).unwrap();
            l.acquire().unwrap();
            l.acquire().unwrap();
            say("HOLDING");
            std::thread::sleep(Duration::from_secs(60));
        }
        "exit" => {
            let m = Mutex::<u64>::open(&name).unwrap();
            let g = m.lock().unwrap_or_else(|e| e.into_guard().unwrap());
            std::mem::forget(g);
            std::process::exit(0);
        }
        "abort" => {
            let m = Mutex::<u64>::open(&name).unwrap();
            let g = m.lock().unwrap_or_else(|e| e.into_guard().unwrap());
            std::mem::forget(g);
            std::process::abort();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn killed_mutex_holder_gives_owner_died_repeatedly() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let m = Mutex::create(0u64).unwrap();
    const TRIALS: u64 = 30;
    for trial in 0..TRIALS {
        let mut kid = Kid::spawn(
            "killed_mutex_holder_gives_owner_died_repeatedly",
            "mutex",
            &[("SHM_NAME", m.name().unwrap())],
        );
        kid.wait_line("HOLDING", LONG);
        kid.kill();
        if trial % 2 == 0 {
            // Reaped first: the holder's /proc entry is gone.
            let _ = kid.child.wait();
        } // else: still a zombie (or dying) while we lock.
        let t = Instant::now();
        let g = match m.lock_timeout(Duration::from_secs(10)) {
            Err(LockError::OwnerDied(g)) => g,
            other => panic!(
                "trial {trial}: expected OwnerDied, got {:?}",
                other.map(|_| ())
            ),
        };
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(*g, trial + 1, "the dead holder's increment is visible");
        g.mark_consistent();
        drop(g);
        drop(kid);
        assert!(m.is_consistent());
    }
    assert!(m.lock().is_ok());
}

#[test]
fn inconsistent_until_marked() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let m = Mutex::create(0u64).unwrap();
    let mut kid = Kid::spawn(
        "inconsistent_until_marked",
        "mutex",
        &[("SHM_NAME", m.name().unwrap())],
    );
    kid.wait_line("HOLDING", LONG);
    kid.kill();
    assert!(matches!(m.lock(), Err(LockError::OwnerDied(_))));
    // Dropped without mark_consistent: everyone later hears about it.
    for _ in 0..3 {
        assert!(matches!(m.lock(), Err(LockError::Inconsistent(_))));
    }
    let peer = Mutex::<u64>::open(m.name().unwrap()).unwrap();
    let g = peer.lock().unwrap_err().into_guard().unwrap();
    g.mark_consistent();
    drop(g);
    assert!(m.lock().is_ok());
}

#[test]
fn holder_exiting_or_aborting_gives_owner_died() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    for role in ["exit", "abort"] {
        let m = Mutex::create(0u64).unwrap();
        let mut kid = Kid::spawn(
            "holder_exiting_or_aborting_gives_owner_died",
            role,
            &[("SHM_NAME", m.name().unwrap())],
        );
        let _ = kid.child.wait();
        assert!(
            matches!(
                m.lock_timeout(Duration::from_secs(10)),
                Err(LockError::OwnerDied(_))
            ),
            "{role}"
        );
    }
}

#[test]
fn blocked_waiter_notices_killed_holder_quickly() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let m = Mutex::create(0u64).unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let mut kid = Kid::spawn(
            "blocked_waiter_notices_killed_holder_quickly",
            "mutex",
            &[("SHM_NAME", m.name().unwrap())],
        );
        kid.wait_line("HOLDING", LONG);
        let latency = std::thread::scope(|s| {
            let (tx, tid) = std::sync::mpsc::channel();
            let m = &m;
            let waiter = s.spawn(move || {
                tx.send(current_tid()).unwrap();
                let r = m.lock_timeout(Duration::from_secs(30));
                let at = Instant::now();
                match r {
                    Err(LockError::OwnerDied(g)) => g.mark_consistent(),
                    other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
                }
                at
            });
            // The waiter asleep on the lock first: the death must reach a sleeper.
            wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
            let killed = Instant::now();
            kid.kill();
            let _ = kid.child.wait();
            waiter.join().unwrap().saturating_duration_since(killed)
        });
        worst = worst.max(latency);
    }
    println!(
        "blocked waiter: dead holder noticed after at most {worst:?} (5 trials, target 100 ms)"
    );
    // Seconds, for busy machines; the figure against the target is `cargo xtask chaos`'s.
    assert!(worst < Duration::from_secs(5), "{worst:?}");
}

#[test]
fn killed_rwlock_writer_gives_owner_died() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let l = RwLock::create(0u64).unwrap();
    for trial in 0..20u64 {
        let mut kid = Kid::spawn(
            "killed_rwlock_writer_gives_owner_died",
            "rwlock",
            &[("SHM_NAME", l.name().unwrap())],
        );
        kid.wait_line("HOLDING", LONG);
        kid.kill();
        if trial % 2 == 0 {
            let g = match l.write_timeout(Duration::from_secs(10)) {
                Err(LockError::OwnerDied(g)) => g,
                other => panic!(
                    "trial {trial}: expected OwnerDied, got {:?}",
                    other.map(|_| ())
                ),
            };
            assert_eq!(*g, trial + 1);
            g.mark_consistent();
        } else {
            // A reader finds the dead writer too.
            match l.read_timeout(Duration::from_secs(10)) {
                Err(LockError::OwnerDied(g)) => assert_eq!(*g, trial + 1),
                other => panic!(
                    "trial {trial}: expected OwnerDied, got {:?}",
                    other.map(|_| ())
                ),
            }
            // Repair through the write side.
            let g = l.write().unwrap_err().into_guard().unwrap();
            g.mark_consistent();
        }
        drop(kid);
        assert!(l.is_consistent());
    }
}

#[test]
fn killed_rlock_holder_gives_owner_died() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let l = RLock::create().unwrap();
    for _ in 0..10 {
        let mut kid = Kid::spawn(
            "killed_rlock_holder_gives_owner_died",
            "rlock",
            &[("SHM_NAME", l.name().unwrap())],
        );
        kid.wait_line("HOLDING", LONG);
        kid.kill();
        assert_eq!(
            l.acquire_timeout(Duration::from_secs(10)).unwrap(),
            shm_sync::Acquired::OwnerDied
        );
        assert_eq!(l.depth(), 1);
        l.mark_consistent().unwrap();
        l.release().unwrap();
        assert!(l.release().is_err());
    }
}

#[test]
fn event_set_wakes_waiters_in_other_processes() {
    if let Some(role) = child_role() {
        if role == "wait" {
            let ev = Event::open(&env("SHM_NAME")).unwrap();
            say("WAITING");
            ev.wait_timeout(Duration::from_secs(20)).unwrap();
        }
        return;
    }
    let ev = Event::create().unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            Kid::spawn(
                "event_set_wakes_waiters_in_other_processes",
                "wait",
                &[("SHM_NAME", ev.name().unwrap())],
            )
        })
        .collect();
    for k in &kids {
        k.wait_line("WAITING", LONG);
        // Asleep, not merely about to wait: `set` must wake sleepers.
        k.wait_blocked();
    }
    let t = Instant::now();
    ev.set();
    for k in kids {
        k.join_ok(LONG);
    }
    println!("event: 3 waiting processes released in {:?}", t.elapsed());
}

#[test]
fn barrier_releases_all_parties_every_round() {
    const KIDS: u32 = 3;
    const ROUNDS: u64 = 100;
    if shm_core::testing::child_runs("party", || party(&env("SHM_NAME"), &env("SHM_COUNTER"))) {
        return;
    }
    let b = Barrier::create(KIDS + 1).unwrap();
    let arrivals = Mutex::create([0u64; 2]).unwrap();
    let kids: Vec<_> = (0..KIDS)
        .map(|_| {
            Kid::spawn(
                "barrier_releases_all_parties_every_round",
                "party",
                &[
                    ("SHM_NAME", b.name().unwrap()),
                    ("SHM_COUNTER", arrivals.name().unwrap()),
                ],
            )
        })
        .collect();
    party(b.name().unwrap(), arrivals.name().unwrap());
    for k in kids {
        k.join_ok(LONG);
    }
    let g = arrivals.lock().unwrap();
    assert_eq!(g[0], ROUNDS * u64::from(KIDS + 1));
    assert_eq!(g[1], ROUNDS, "exactly one leader per round");

    fn party(barrier: &str, counter: &str) {
        let b = Barrier::open(barrier).unwrap();
        let c = Mutex::<[u64; 2]>::open(counter).unwrap();
        let parties = u64::from(b.parties());
        for round in 0..ROUNDS {
            c.lock().unwrap()[0] += 1;
            let r = b.wait_timeout(Duration::from_secs(20)).unwrap();
            // Released only once every party of this round has arrived.
            assert!(c.lock().unwrap()[0] >= (round + 1) * parties);
            if r.is_leader() {
                c.lock().unwrap()[1] += 1;
            }
            // A second barrier keeps rounds apart for the count check above.
            b.wait_timeout(Duration::from_secs(20)).unwrap();
        }
    }
}

#[test]
fn condvar_notify_all_and_one_across_processes() {
    if let Some(role) = child_role() {
        let m = Mutex::<[u32; 3]>::open(&env("SHM_NAME")).unwrap();
        let cv = Condvar::open(&env("SHM_CV")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut g = m.lock().unwrap();
        g[0] += 1; // registered
        say("WAITING");
        match role.as_str() {
            "all" => {
                while g[1] == 0 {
                    assert!(Instant::now() < deadline, "never notified");
                    g = cv.wait_timeout(g, Duration::from_millis(500)).unwrap().0;
                }
            }
            "one" => {
                while g[2] == 0 {
                    assert!(Instant::now() < deadline, "no token");
                    g = cv.wait_timeout(g, Duration::from_millis(500)).unwrap().0;
                }
                g[2] -= 1; // take one token
            }
            _ => {}
        }
        return;
    }
    let m = Mutex::create([0u32; 3]).unwrap();
    let cv = Condvar::create().unwrap();
    let envs = [
        ("SHM_NAME", m.name().unwrap()),
        ("SHM_CV", cv.name().unwrap()),
    ];
    // notify_all: three processes, one broadcast.
    let kids: Vec<_> = (0..3)
        .map(|_| Kid::spawn("condvar_notify_all_and_one_across_processes", "all", &envs))
        .collect();
    for k in &kids {
        k.wait_line("WAITING", LONG);
        k.wait_blocked();
    }
    m.lock().unwrap()[1] = 1;
    cv.notify_all();
    for k in kids {
        k.join_ok(LONG);
    }
    // notify_one: one token at a time, each taken by exactly one process.
    let kids: Vec<_> = (0..3)
        .map(|_| Kid::spawn("condvar_notify_all_and_one_across_processes", "one", &envs))
        .collect();
    for k in &kids {
        k.wait_line("WAITING", LONG);
        k.wait_blocked();
    }
    // One token at a time, each taken before the next is offered.
    for _ in 0..3 {
        m.lock().unwrap()[2] += 1;
        cv.notify_one();
        let deadline = Instant::now() + LONG;
        while m.lock().unwrap()[2] != 0 {
            assert!(Instant::now() < deadline, "a token was never taken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for k in kids {
        k.join_ok(LONG);
    }
    assert_eq!(m.lock().unwrap()[2], 0, "every token taken once");
}

#[test]
fn semaphore_across_processes() {
    if let Some(role) = child_role() {
        if role == "release" {
            let s = Semaphore::open(&env("SHM_NAME")).unwrap();
            for _ in 0..50 {
                s.release().unwrap();
            }
        }
        return;
    }
    let s = Semaphore::create(0).unwrap();
    let t = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            for _ in 0..100 {
                s.acquire_timeout(Duration::from_secs(20)).unwrap();
            }
        });
        run_child(
            "semaphore_across_processes",
            "release",
            &[("SHM_NAME", s.name().unwrap())],
        );
        run_child(
            "semaphore_across_processes",
            "release",
            &[("SHM_NAME", s.name().unwrap())],
        );
        h.join()
    });
    t.unwrap();
    assert_eq!(s.value(), 0);
}

/// The start-time token of process `pid` (as the lock word records it).
fn token_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let start: u64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    u64::from(start as u32 | 1)
}

#[test]
fn reused_pid_is_not_trusted() {
    if let Some(role) = child_role() {
        if role == "idle" {
            say("ALIVE");
            std::thread::sleep(Duration::from_secs(60));
        }
        return;
    }
    let kid = Kid::spawn("reused_pid_is_not_trusted", "idle", &[]);
    kid.wait_line("ALIVE", LONG);
    let pid = kid.child.id();
    let m = Mutex::create(0u64).unwrap();
    let seg = shm_core::Segment::open(m.name().unwrap()).unwrap();
    // The word a holder with this live PID but another start time would leave: what a
    // dead holder looks like once its PID has been reused. Only a holder of our own
    // (registered) PID namespace can be proved dead.
    let ns = u64::from(shm_core::identity::pidns_index()) << 22;
    assert_ne!(ns, 0, "the PID-namespace registry is usable here");
    let stale = (token_of(pid) ^ 0x10) << 32 | ns | u64::from(pid);
    seg.write_at(shm_core::HEADER_LEN, &stale.to_le_bytes())
        .unwrap();
    match m.lock_timeout(Duration::from_secs(5)) {
        Err(LockError::OwnerDied(g)) => g.mark_consistent(),
        other => panic!("a reused PID was trusted: {:?}", other.map(|_| ())),
    }
    // The same PID with its true start time is a live holder: respected.
    let live = token_of(pid) << 32 | ns | u64::from(pid);
    seg.write_at(shm_core::HEADER_LEN, &live.to_le_bytes())
        .unwrap();
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(60)),
        Err(LockError::Timeout { .. })
    ));
    assert!(matches!(m.try_lock(), Err(LockError::WouldBlock { .. })));
    seg.write_at(shm_core::HEADER_LEN, &0u64.to_le_bytes())
        .unwrap();
    assert!(m.try_lock().is_ok());
}

#[test]
fn blocked_reader_notices_killed_writer() {
    if let Some(role) = child_role() {
        return hold(&role);
    }
    let l = RwLock::create(0u64).unwrap();
    for _ in 0..3 {
        let mut kid = Kid::spawn(
            "blocked_reader_notices_killed_writer",
            "rwlock",
            &[("SHM_NAME", l.name().unwrap())],
        );
        kid.wait_line("HOLDING", LONG);
        let latency = std::thread::scope(|s| {
            let (tx, tid) = std::sync::mpsc::channel();
            let l = &l;
            let reader = s.spawn(move || {
                tx.send(current_tid()).unwrap();
                let r = l.read_timeout(Duration::from_secs(30));
                let at = Instant::now();
                assert!(
                    matches!(r, Err(LockError::OwnerDied(_))),
                    "{:?}",
                    r.map(|_| ())
                );
                at
            });
            wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
            let killed = Instant::now();
            kid.kill();
            reader.join().unwrap().saturating_duration_since(killed)
        });
        println!("blocked reader: dead writer noticed after {latency:?}");
        assert!(latency < Duration::from_secs(5), "{latency:?}");
        l.write()
            .unwrap_err()
            .into_guard()
            .unwrap()
            .mark_consistent();
    }
}
