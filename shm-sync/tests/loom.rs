//! Loom model check of the lock algorithms: every interleaving (up to a preemption
//! bound) of small models, with loom's atomics, the futex emulated faithfully (a lost
//! wake-up is a deadlock loom reports) and holders that die. See
//! `shm_sync::loom_model` (src/loom_model.rs) for what the emulation can and cannot
//! detect. Only under `cfg(loom)`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shm-sync --release --test loom
//! ```
#![cfg(loom)]

use std::time::Duration;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shm_sync::loom_model::{self, Timeouts};
use shm_sync::{
    Acquired, RawBarrier, RawCondvar, RawError, RawEvent, RawMutex, RawRLock, RawRwLock,
    RawSemaphore,
};

/// Runs `f` in every interleaving with at most `bound` preemptions (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise), and checks that there were several.
fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    // Waits that time out at once (`Timeouts::Expire`) spin: allow long executions.
    b.max_branches = b.max_branches.max(20_000);
    let runs = loom_model::check(b, f);
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    eprintln!("{name}: {runs} interleavings");
    assert!(runs > 1, "loom explored a single interleaving");
}

/// Shorter than any sleep slice, so one timed-out (or `Late`) wait uses it all up.
const SHORT: Duration = Duration::from_millis(1);

/// Data that only the holder of the lock next to it may touch; loom reports any access
/// that is not ordered after the previous one (a broken lock) as a data race.
struct Guarded<T>(UnsafeCell<T>);

impl<T> Guarded<T> {
    fn new(v: T) -> Self {
        Guarded(UnsafeCell::new(v))
    }

    /// Must be called with the lock held (loom checks it).
    fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: callers hold the lock that guards the cell, so no other access is
        // concurrent; loom's `UnsafeCell` panics if one is.
        self.0.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Must be called with the lock held, shared or exclusive (loom checks it).
    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: callers hold the lock (at least shared), so no write is concurrent;
        // loom's `UnsafeCell` panics if one is.
        self.0.with(|p| f(unsafe { &*p }))
    }
}

// ---- RawMutex ----

#[test]
fn mutex_excludes_and_never_loses_a_wakeup() {
    check(3, || {
        let s = Arc::new((RawMutex::new(), Guarded::new(0u32)));
        let bump = |s: &(RawMutex, Guarded<u32>)| {
            assert_eq!(s.0.lock(), Ok(Acquired::Clean));
            s.1.with_mut(|n| *n += 1);
            s.0.unlock().unwrap();
        };
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || bump(&s))
            })
            .collect();
        bump(&s);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.0.lock(), Ok(Acquired::Clean));
        assert_eq!(s.1.with_mut(|n| *n), 3);
        s.0.unlock().unwrap();
        assert!(!s.0.is_locked());
    });
}

#[test]
fn mutex_try_lock_races_lock_and_unlock() {
    check(3, || {
        let s = Arc::new((RawMutex::new(), Guarded::new(0u32)));
        let t = {
            let s = s.clone();
            thread::spawn(move || match s.0.try_lock() {
                Ok(a) => {
                    assert_eq!(a, Acquired::Clean);
                    s.1.with_mut(|n| *n += 1);
                    s.0.unlock().unwrap();
                    1
                }
                Err(e) => {
                    assert_eq!(e, RawError::WouldBlock);
                    0
                }
            })
        };
        s.0.lock().unwrap();
        s.1.with_mut(|n| *n += 1);
        s.0.unlock().unwrap();
        let got = t.join().unwrap();
        s.0.lock().unwrap();
        assert_eq!(s.1.with_mut(|n| *n), 1 + got);
        s.0.unlock().unwrap();
    });
}

#[test]
fn mutex_timed_out_waiter_leaves_the_wakeup_to_others() {
    check(2, || {
        let m = Arc::new(RawMutex::new());
        m.lock().unwrap();
        let timed = {
            let m = m.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                match m.lock_timeout(SHORT) {
                    Ok(a) => {
                        assert_eq!(a, Acquired::Clean);
                        m.unlock().unwrap();
                    }
                    Err(e) => assert_eq!(e, RawError::Timeout),
                }
            })
        };
        let patient = {
            let m = m.clone();
            // Never times out: if the unlock's wake-up were lost, loom reports a deadlock.
            thread::spawn(move || {
                assert_eq!(m.lock(), Ok(Acquired::Clean));
                m.unlock().unwrap();
            })
        };
        m.unlock().unwrap();
        timed.join().unwrap();
        patient.join().unwrap();
        assert!(!m.is_locked());
    });
}

#[test]
fn mutex_waiter_woken_too_late_passes_the_wakeup_on() {
    check(2, || {
        let m = Arc::new(RawMutex::new());
        m.lock().unwrap();
        let late = {
            let m = m.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Late);
                match m.lock_timeout(SHORT) {
                    Ok(a) => {
                        assert_eq!(a, Acquired::Clean);
                        m.unlock().unwrap();
                    }
                    Err(e) => assert_eq!(e, RawError::Timeout),
                }
            })
        };
        let patient = {
            let m = m.clone();
            thread::spawn(move || {
                assert_eq!(m.lock(), Ok(Acquired::Clean));
                m.unlock().unwrap();
            })
        };
        m.unlock().unwrap();
        // Barging back in: the late waiter, woken by the unlock above, may find the
        // lock held again and its time up; the patient one must still be woken.
        m.lock().unwrap();
        m.unlock().unwrap();
        late.join().unwrap();
        patient.join().unwrap();
        assert!(!m.is_locked());
    });
}

/// The acquisitions in lock order are `Clean*, OwnerDied, Inconsistent*`: exactly one
/// locker takes over the dead holder's lock, and it stays inconsistent afterwards.
fn assert_one_takeover(log: &[Acquired]) {
    let died = log.iter().filter(|a| **a == Acquired::OwnerDied).count();
    assert_eq!(died, 1, "{log:?}");
    let at = log.iter().position(|a| *a == Acquired::OwnerDied).unwrap();
    assert!(log[..at].iter().all(|a| *a == Acquired::Clean), "{log:?}");
    assert!(
        log[at + 1..].iter().all(|a| *a == Acquired::Inconsistent),
        "{log:?}"
    );
}

#[test]
fn mutex_dead_holder_is_taken_over_exactly_once() {
    check(2, || {
        let s = Arc::new((RawMutex::new(), Guarded::new(Vec::new())));
        let holder = {
            let s = s.clone();
            thread::spawn(move || {
                let a = s.0.lock().unwrap();
                s.1.with_mut(|log| log.push(a));
                loom_model::die(); // ... holding the lock
            })
        };
        let waiter = {
            let s = s.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                let a = s.0.lock().unwrap();
                s.1.with_mut(|log| log.push(a));
                s.0.unlock().unwrap();
            })
        };
        loom_model::set_timeouts(Timeouts::Expire);
        let a = s.0.lock().unwrap();
        s.1.with_mut(|log| log.push(a));
        s.0.unlock().unwrap();
        holder.join().unwrap();
        waiter.join().unwrap();

        // Whoever came last after the death still finds it inconsistent.
        let a = s.0.lock().unwrap();
        s.1.with_mut(|log| log.push(a));
        s.1.with_mut(|log| assert_one_takeover(log));
        assert!(!s.0.is_consistent());
        s.0.mark_consistent().unwrap();
        s.0.unlock().unwrap();
        assert_eq!(s.0.lock(), Ok(Acquired::Clean));
        s.0.unlock().unwrap();
    });
}

#[test]
fn mutex_try_lock_takes_over_dead_holder_exactly_once() {
    check(3, || {
        let m = Arc::new(RawMutex::new());
        {
            let m = m.clone();
            thread::spawn(move || {
                m.lock().unwrap();
                loom_model::die();
            })
            .join()
            .unwrap();
        }
        let t = {
            let m = m.clone();
            thread::spawn(move || {
                let r = m.try_lock();
                if r.is_ok() {
                    m.unlock().unwrap();
                }
                r
            })
        };
        let mine = m.try_lock();
        if mine.is_ok() {
            m.unlock().unwrap();
        }
        let theirs = t.join().unwrap();
        let died = [mine, theirs]
            .iter()
            .filter(|r| **r == Ok(Acquired::OwnerDied))
            .count();
        assert_eq!(died, 1, "{mine:?} {theirs:?}");
        for r in [mine, theirs] {
            assert!(
                matches!(
                    r,
                    Ok(Acquired::OwnerDied | Acquired::Inconsistent) | Err(RawError::WouldBlock)
                ),
                "{r:?}"
            );
        }
        assert_eq!(m.lock(), Ok(Acquired::Inconsistent));
        m.unlock().unwrap();
    });
}

// ---- RawCondvar ----

#[test]
fn condvar_notify_is_not_lost() {
    check(3, || {
        let s = Arc::new((RawMutex::new(), RawCondvar::new(), Guarded::new(false)));
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                s.0.lock().unwrap();
                s.2.with_mut(|ready| *ready = true);
                s.1.notify_one();
                s.0.unlock().unwrap();
            })
        };
        s.0.lock().unwrap();
        while !s.2.with(|ready| *ready) {
            assert_eq!(s.1.wait(&s.0), Ok(Acquired::Clean));
        }
        s.0.unlock().unwrap();
        t.join().unwrap();
    });
}

// ---- RawEvent ----

#[test]
fn event_set_wakes_every_waiter() {
    check(3, || {
        let ev = Arc::new(RawEvent::new());
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let ev = ev.clone();
                thread::spawn(move || {
                    ev.wait();
                    assert!(ev.is_set());
                })
            })
            .collect();
        ev.set();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn event_clear_racing_set_keeps_the_waiters_bit() {
    check(3, || {
        let ev = Arc::new(RawEvent::new());
        let waiter = {
            let ev = ev.clone();
            thread::spawn(move || ev.wait())
        };
        ev.set();
        ev.clear();
        ev.set();
        waiter.join().unwrap();
        assert!(ev.is_set());
        ev.clear();
        assert_eq!(ev.try_wait(), Err(RawError::WouldBlock));
    });
}

#[test]
fn event_wait_timeout_or_set() {
    check(3, || {
        let ev = Arc::new(RawEvent::new());
        let waiter = {
            let ev = ev.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                ev.wait_timeout(SHORT)
            })
        };
        ev.set();
        match waiter.join().unwrap() {
            Ok(()) | Err(RawError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(ev.is_set());
    });
}

// ---- RawSemaphore ----

#[test]
fn semaphore_one_permit_excludes() {
    check(3, || {
        let s = Arc::new((RawSemaphore::<2>::with_slots(1, 1), Guarded::new(0u32)));
        let bump = |s: &(RawSemaphore<2>, Guarded<u32>)| {
            s.0.acquire().unwrap();
            s.1.with_mut(|n| *n += 1);
            s.0.release().unwrap();
        };
        let t = {
            let s = s.clone();
            thread::spawn(move || bump(&s))
        };
        bump(&s);
        t.join().unwrap();
        assert_eq!(s.0.value(), 1);
        s.0.acquire().unwrap();
        assert_eq!(s.1.with_mut(|n| *n), 2);
    });
}

#[test]
fn semaphore_releases_wake_every_sleeper() {
    check(3, || {
        // No permit table: the wake-up protocol does not touch it, and the table's
        // atomics would multiply the interleavings (the table has its own models).
        let sem = Arc::new(RawSemaphore::<0>::with_slots(0, 2));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || sem.acquire().unwrap())
            })
            .collect();
        sem.release().unwrap();
        sem.release().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sem.value(), 0);
    });
}

#[test]
fn semaphore_timed_out_acquirer_passes_the_wakeup_on() {
    check(2, || {
        let sem = Arc::new(RawSemaphore::<0>::with_slots(0, 0));
        let timed = {
            let sem = sem.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                sem.acquire_timeout(SHORT)
            })
        };
        let patient = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap())
        };
        sem.release().unwrap();
        match timed.join().unwrap() {
            Ok(_) => sem.release().unwrap(), // the patient one needs another permit
            Err(e) => assert_eq!(e, RawError::Timeout),
        }
        patient.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

#[test]
fn semaphore_acquirer_woken_too_late_passes_the_wakeup_on() {
    check(2, || {
        let sem = Arc::new(RawSemaphore::<0>::with_slots(0, 0));
        let late = {
            let sem = sem.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Late);
                sem.acquire_timeout(SHORT).is_ok()
            })
        };
        let patient = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().unwrap())
        };
        sem.release().unwrap();
        // Barging: take the permit back if it is still there, then give it again. The
        // late acquirer, woken by the release above, may find it gone and its time up.
        if sem.try_acquire().is_ok() {
            sem.release().unwrap();
        }
        // A permit for each acquirer (a `Late` wait needs a wake-up to end).
        sem.release().unwrap();
        let late_got_one = late.join().unwrap();
        patient.join().unwrap();
        assert_eq!(sem.value(), if late_got_one { 0 } else { 1 });
    });
}

#[test]
fn semaphore_dead_holders_permit_comes_back_once() {
    check(2, || {
        let sem = Arc::new(RawSemaphore::<2>::with_slots(1, 1));
        let holder = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.acquire().unwrap();
                loom_model::die();
            })
        };
        let waiter = {
            let sem = sem.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                let a = sem.acquire().unwrap();
                sem.release().unwrap();
                a.reclaimed()
            })
        };
        holder.join().unwrap();
        let told = waiter.join().unwrap();
        // The waiter came first (then nobody needed the dead permit yet) or got it
        // back; either way it comes back exactly once, and the bound holds.
        let later = sem.reclaim_dead();
        assert_eq!(told + later, 1, "{told} {later}");
        assert_eq!(sem.value(), 1);
        assert_eq!(sem.reclaim_dead(), 0);
    });
}

#[test]
fn semaphore_concurrent_reclaimers_give_back_once() {
    check(3, || {
        let sem = Arc::new(RawSemaphore::<2>::with_slots(2, 2));
        let holder = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.acquire().unwrap();
                sem.acquire().unwrap();
                loom_model::die();
            })
        };
        holder.join().unwrap();
        let other = {
            let sem = sem.clone();
            thread::spawn(move || sem.reclaim_dead())
        };
        let mine = sem.reclaim_dead();
        let theirs = other.join().unwrap();
        assert_eq!(mine + theirs, 2);
        assert_eq!(sem.value(), 2);
        assert_eq!(sem.release(), Err(RawError::OverRelease));
    });
}

#[test]
fn semaphore_cancelled_pairs_race_an_evicting_process() {
    check(3, || {
        // Each process's release cancels its own pending acquire unless the other
        // evicted (applied) it first: either way the table ends empty and the count whole.
        let sem = Arc::new(RawSemaphore::<2>::with_slots(2, 2));
        let other = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.acquire().unwrap();
                sem.release().unwrap();
                sem.held_by_me()
            })
        };
        sem.acquire().unwrap();
        sem.release().unwrap();
        assert_eq!(other.join().unwrap(), 0);
        assert_eq!(sem.held_by_me(), 0);
        assert_eq!(sem.value(), 2);
        assert_eq!(sem.reclaim_dead(), 0);
        assert_eq!(sem.release(), Err(RawError::OverRelease));
    });
}

#[test]
fn semaphore_dead_holders_pending_acquire_races_an_acquirer() {
    check(3, || {
        // The holder dies with its acquire committed but not applied to its slot (the
        // lazy fast path); another process replaces that marker concurrently.
        let sem = Arc::new(RawSemaphore::<2>::with_slots(2, 2));
        let holder = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.acquire().unwrap();
                loom_model::die();
            })
        };
        let other = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.acquire().unwrap();
                sem.release().unwrap();
            })
        };
        holder.join().unwrap();
        other.join().unwrap();
        assert_eq!(sem.reclaim_dead(), 1, "the dead permit comes back once");
        assert_eq!(sem.value(), 2);
        assert_eq!(sem.reclaim_dead(), 0);
    });
}

// ---- RawRwLock ----

#[test]
fn rwlock_writers_exclude_readers_and_writers() {
    check(2, || {
        let s = Arc::new((RawRwLock::<2>::with_slots(), Guarded::new(0u32)));
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                assert_eq!(s.0.write(), Ok(Acquired::Clean));
                s.1.with_mut(|n| *n += 1);
                s.0.write_unlock().unwrap();
            })
        };
        let reader = {
            let s = s.clone();
            thread::spawn(move || {
                assert_eq!(s.0.read(), Ok(Acquired::Clean));
                let n = s.1.with(|n| *n);
                s.0.read_unlock().unwrap();
                n
            })
        };
        assert_eq!(s.0.write(), Ok(Acquired::Clean));
        s.1.with_mut(|n| *n += 1);
        s.0.write_unlock().unwrap();
        writer.join().unwrap();
        assert!(reader.join().unwrap() <= 2);
        assert_eq!(s.0.readers(), 0);
        s.0.write().unwrap();
        assert_eq!(s.1.with(|n| *n), 2);
        s.0.write_unlock().unwrap();
    });
}

#[test]
fn rwlock_dead_writer_recovered_exactly_once() {
    check(2, || {
        let l = Arc::new(RawRwLock::<2>::with_slots());
        let holder = {
            let l = l.clone();
            thread::spawn(move || {
                l.write().unwrap();
                loom_model::die();
            })
        };
        let reader = {
            let l = l.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                let a = l.read().unwrap();
                l.read_unlock().unwrap();
                a
            })
        };
        holder.join().unwrap();
        loom_model::set_timeouts(Timeouts::Expire);
        let r = reader.join().unwrap();
        let w = l.write().unwrap();
        let log = match r {
            // The reader came in before the writer died.
            Acquired::Clean => vec![w],
            _ => vec![r, w],
        };
        assert_one_takeover(&log);
        l.mark_consistent().unwrap();
        l.write_unlock().unwrap();
        assert_eq!(l.read(), Ok(Acquired::Clean));
        l.read_unlock().unwrap();
    });
}

#[test]
fn rwlock_last_reader_out_lets_the_writer_in() {
    check(2, || {
        let s = Arc::new((RawRwLock::<2>::with_slots(), Guarded::new(0u32)));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    assert_eq!(s.0.read(), Ok(Acquired::Clean));
                    let n = s.1.with(|n| *n);
                    s.0.read_unlock().unwrap();
                    n
                })
            })
            .collect();
        assert_eq!(s.0.write(), Ok(Acquired::Clean));
        s.1.with_mut(|n| *n += 1);
        s.0.write_unlock().unwrap();
        for r in readers {
            assert!(r.join().unwrap() <= 1);
        }
        assert_eq!(s.0.readers(), 0);
    });
}

#[test]
fn rwlock_dead_reader_taken_back_exactly_once() {
    check(2, || {
        let l = Arc::new(RawRwLock::<2>::with_slots());
        let reader = {
            let l = l.clone();
            thread::spawn(move || {
                assert_eq!(l.read(), Ok(Acquired::Clean));
                loom_model::die();
            })
        };
        loom_model::set_timeouts(Timeouts::Expire);
        let first = l.write().unwrap();
        l.write_unlock().unwrap();
        reader.join().unwrap();
        let second = l.write().unwrap();
        l.write_unlock().unwrap();
        // Whether the reader came in before or after the first writer, its share is
        // taken back once, and reported once; a dead reader leaves the lock consistent.
        let died = [first, second]
            .iter()
            .filter(|a| **a == Acquired::OwnerDied)
            .count();
        assert_eq!(died, 1, "{first:?} {second:?}");
        assert_eq!(l.readers(), 0);
        assert!(l.is_consistent());
    });
}

// ---- RawRLock ----

#[test]
fn rlock_is_reentrant_and_exclusive() {
    check(3, || {
        let s = Arc::new((RawRLock::new(), Guarded::new(0u32)));
        let twice = |s: &(RawRLock, Guarded<u32>)| {
            assert_eq!(s.0.acquire(), Ok(Acquired::Clean));
            assert_eq!(s.0.acquire(), Ok(Acquired::Clean));
            s.1.with_mut(|n| *n += 1);
            s.0.release().unwrap();
            s.1.with_mut(|n| *n += 1);
            s.0.release().unwrap();
        };
        let t = {
            let s = s.clone();
            thread::spawn(move || twice(&s))
        };
        twice(&s);
        t.join().unwrap();
        assert_eq!(s.0.depth(), 0);
        s.0.acquire().unwrap();
        assert_eq!(s.1.with(|n| *n), 4);
        s.0.release().unwrap();
    });
}

// ---- RawBarrier ----

#[test]
fn barrier_dead_party_breaks_the_waiter() {
    check(2, || {
        let b = Arc::new(RawBarrier::<2>::with_slots(3));
        let dying = {
            let b = b.clone();
            thread::spawn(move || {
                // Registers (a try_wait of the first party does not arrive), then dies
                // between rounds.
                assert_eq!(b.try_wait(), Err(RawError::WouldBlock));
                loom_model::die();
            })
        };
        loom_model::set_timeouts(Timeouts::Expire);
        // The round can never complete: the waiter learns it instead of waiting for ever
        // (whether it arrived before the other registered or after it died).
        assert_eq!(b.wait(), Err(RawError::BrokenBarrier));
        dying.join().unwrap();
        assert!(b.broken());
        b.reset();
        assert!(!b.broken());
        assert_eq!(b.registered(), 1);
    });
}

#[test]
fn barrier_releases_everyone_with_one_leader() {
    check(3, || {
        // No table: the round protocol does not touch it (registration has its model).
        let b = Arc::new(RawBarrier::<0>::with_slots(3));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.wait().unwrap())
            })
            .collect();
        let mut rs = vec![b.wait().unwrap()];
        rs.extend(hs.into_iter().map(|h| h.join().unwrap()));
        assert_eq!(rs.iter().filter(|r| r.is_leader()).count(), 1);
        let mut idx: Vec<_> = rs.iter().map(|r| r.index()).collect();
        idx.sort_unstable();
        assert_eq!(idx, [0, 1, 2]);
        // The last to arrive leads (Python's index `parties - 1` releases the others).
        assert_eq!(rs.iter().find(|r| r.is_leader()).unwrap().index(), 2);
        assert!(rs.iter().all(|r| r.generation() == 0));
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn barrier_reused_for_a_second_round() {
    check(3, || {
        let b = Arc::new(RawBarrier::<2>::with_slots(2));
        let t = {
            let b = b.clone();
            thread::spawn(move || [b.wait().unwrap(), b.wait().unwrap()])
        };
        let mine = [b.wait().unwrap(), b.wait().unwrap()];
        let theirs = t.join().unwrap();
        for round in 0..2 {
            assert_eq!(mine[round].generation(), round as u32);
            assert_eq!(theirs[round].generation(), round as u32);
            assert!(mine[round].is_leader() != theirs[round].is_leader());
        }
    });
}

#[test]
fn barrier_timeout_breaks_or_completes() {
    check(3, || {
        let b = Arc::new(RawBarrier::<2>::with_slots(2));
        let t = {
            let b = b.clone();
            thread::spawn(move || {
                loom_model::set_timeouts(Timeouts::Expire);
                b.wait_timeout(SHORT)
            })
        };
        loom_model::set_timeouts(Timeouts::Expire);
        let mine = b.wait_timeout(SHORT);
        let theirs = t.join().unwrap();
        match (mine, theirs) {
            (Ok(a), Ok(b)) => assert!(a.is_leader() != b.is_leader()),
            // The one that ran out of time broke the barrier for the other.
            (Err(RawError::Timeout), Err(RawError::BrokenBarrier))
            | (Err(RawError::BrokenBarrier), Err(RawError::Timeout)) => assert!(b.broken()),
            other => panic!("{other:?}"),
        }
        b.reset();
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn barrier_abort_wakes_a_waiter_and_stays_broken_until_reset() {
    check(3, || {
        let b = Arc::new(RawBarrier::<2>::with_slots(2));
        let t = {
            let b = b.clone();
            // Untimed: a lost wake-up after the abort is a deadlock loom reports.
            thread::spawn(move || b.wait())
        };
        b.abort();
        assert_eq!(t.join().unwrap(), Err(RawError::BrokenBarrier));
        assert_eq!(b.try_wait(), Err(RawError::BrokenBarrier));
        b.reset();
        assert!(!b.broken());
        assert_eq!(b.try_wait(), Err(RawError::WouldBlock));
    });
}

#[test]
fn barrier_reset_breaks_the_waiting_round_and_starts_a_fresh_one() {
    check(3, || {
        let b = Arc::new(RawBarrier::<2>::with_slots(2));
        let t = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        b.reset();
        // Only this thread's timeout can end the wait of one that arrived after the reset
        // alone; it breaks the barrier, which releases the other thread too.
        loom_model::set_timeouts(Timeouts::Expire);
        let mine = b.wait_timeout(SHORT);
        let theirs = t.join().unwrap();
        match (mine, theirs) {
            // The other arrived after the reset: a normal round with this thread.
            (Ok(a), Ok(b)) => {
                assert!(a.is_leader() != b.is_leader());
                assert_eq!(a.generation(), b.generation());
            }
            // The other arrived before the reset (broken by it), or after it and this
            // thread ran out of time first.
            (Err(RawError::Timeout), Err(RawError::BrokenBarrier)) => assert!(b.broken()),
            other => panic!("{other:?}"),
        }
    });
}
