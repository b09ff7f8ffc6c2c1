//! Many-thread stress of the lock algorithms in one process, with real futexes and
//! `/proc` (the loom model check is `tests/loom.rs`): mixed lock / try_lock /
//! lock_timeout, racing recoveries from dead holders (exactly one winner), and the
//! counting primitives under contention.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use shm_sync::{
    Acquired, RawBarrier, RawError, RawEvent, RawMutex, RawRLock, RawRwLock, RawSemaphore,
};

const THREADS: u64 = 8;

#[test]
fn mixed_lock_calls_keep_mutual_exclusion() {
    let m = RawMutex::new();
    let inside = AtomicU32::new(0);
    let total = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (m, inside, total) = (&m, &inside, &total);
            s.spawn(move || {
                let mut done = 0;
                let mut i = 0u64;
                while done < 5_000 {
                    i += 1;
                    let got = match (i + t) % 3 {
                        0 => m.lock().is_ok(),
                        1 => m.try_lock().is_ok(),
                        _ => m.lock_timeout(Duration::from_micros(50)).is_ok(),
                    };
                    if !got {
                        continue;
                    }
                    assert_eq!(
                        inside.fetch_add(1, Ordering::Relaxed),
                        0,
                        "two holders at once"
                    );
                    total.fetch_add(1, Ordering::Relaxed);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    m.unlock().unwrap();
                    done += 1;
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), THREADS * 5_000);
    assert!(!m.is_locked());
}

#[test]
fn exactly_one_waiter_recovers_a_dead_holder() {
    for _ in 0..30 {
        let m = RawMutex::new();
        let died = AtomicU32::new(0);
        std::thread::scope(|s| {
            // The holder: a thread that ends holding the lock.
            s.spawn(|| m.lock().unwrap()).join().unwrap();
            for _ in 0..THREADS {
                s.spawn(|| {
                    match m.lock_timeout(Duration::from_secs(10)) {
                        Ok(Acquired::OwnerDied) => {
                            died.fetch_add(1, Ordering::Relaxed);
                            m.mark_consistent().unwrap();
                        }
                        Ok(Acquired::Clean) => {}
                        other => panic!("{other:?}"),
                    }
                    m.unlock().unwrap();
                });
            }
        });
        assert_eq!(died.load(Ordering::Relaxed), 1);
        assert!(m.is_consistent());
    }
}

#[test]
fn waiters_racing_holder_deaths_in_a_chain() {
    // Each thread takes the lock and ends without unlocking: the next one must recover
    // it, and every thread gets it exactly once.
    let m = RawMutex::new();
    let got = AtomicU32::new(0);
    std::thread::scope(|s| {
        // Seed: a first holder that dies, so nobody gets the lock cleanly.
        s.spawn(|| m.lock().unwrap()).join().unwrap();
        for _ in 0..THREADS {
            s.spawn(|| {
                let r = m.lock_timeout(Duration::from_secs(20)).unwrap();
                assert_eq!(
                    r,
                    Acquired::OwnerDied,
                    "every holder died before its successor came"
                );
                got.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    assert_eq!(got.load(Ordering::Relaxed), THREADS as u32);
}

#[test]
fn rwlock_mixed_stress() {
    let l = RawRwLock::new();
    let writers_inside = AtomicU32::new(0);
    let readers_inside = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (l, w, r) = (&l, &writers_inside, &readers_inside);
            s.spawn(move || {
                for i in 0..3_000u64 {
                    if (i + t) % 4 == 0 {
                        if l.write_timeout(Duration::from_millis(100)).is_ok() {
                            assert_eq!(w.fetch_add(1, Ordering::Relaxed), 0);
                            assert_eq!(r.load(Ordering::Relaxed), 0);
                            w.fetch_sub(1, Ordering::Relaxed);
                            l.write_unlock().unwrap();
                        }
                    } else if l.read().is_ok() {
                        r.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(w.load(Ordering::Relaxed), 0);
                        r.fetch_sub(1, Ordering::Relaxed);
                        l.read_unlock().unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(l.readers(), 0);
}

#[test]
fn rlock_nesting_stress() {
    let l = RawRLock::new();
    let inside = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..2_000 {
                    l.acquire().unwrap();
                    l.acquire().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    l.release().unwrap();
                    l.release().unwrap();
                    assert_eq!(l.release(), Err(RawError::NotOwner));
                }
            });
        }
    });
}

#[test]
fn semaphore_never_exceeds_its_permits() {
    let sem = RawSemaphore::new(3, 3);
    let inside = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (sem, inside) = (&sem, &inside);
            s.spawn(move || {
                for i in 0..3_000u64 {
                    let ok = if (i + t) % 2 == 0 {
                        sem.acquire().unwrap();
                        true
                    } else {
                        sem.acquire_timeout(Duration::from_micros(100)).is_ok()
                    };
                    if ok {
                        assert!(inside.fetch_add(1, Ordering::Relaxed) < 3);
                        inside.fetch_sub(1, Ordering::Relaxed);
                        sem.release().unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(sem.value(), 3);
}

#[test]
fn event_and_barrier_stress() {
    let b = RawBarrier::new(THREADS as u32);
    let ev = RawEvent::new();
    let round = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for r in 0..300 {
                    let res = b.wait().unwrap();
                    if res.is_leader() {
                        round.store(r + 1, Ordering::Relaxed);
                        ev.set();
                    }
                    ev.wait();
                    assert!(round.load(Ordering::Relaxed) > r);
                    // Everyone has seen the event before it is cleared for the next round.
                    if b.wait().unwrap().is_leader() {
                        ev.clear();
                    }
                    b.wait().unwrap();
                }
            });
        }
    });
}
