//! Chaos: a child loops lock / update / unlock on a shared mutex (or the write side of
//! a shared RwLock) and is SIGKILLed at a random moment; the parent must then get the
//! lock within a bound, told `OwnerDied` exactly when the data may be torn.
//!
//! Trials: `SHM_CHAOS_TRIALS` (default 20). `cargo xtask chaos` runs 1000 in release.

mod common;

use std::time::{Duration, Instant};

use common::{Kid, Rng, child_role, env, say};
use shm_sync::{LockError, Mutex, RwLock};

/// Longest the parent may wait for the lock after the kill.
const BOUND: Duration = Duration::from_secs(5);

/// The protected data: `[a, b]` with the invariant `b == 2 * a` when unlocked; the child
/// breaks it for a moment inside every critical section.
type Data = [u64; 2];

fn update(d: &mut Data) {
    d[0] += 1;
    std::hint::black_box(&mut *d);
    d[1] = d[0] * 2;
}

#[test]
fn chaos_kill_lockers_at_random() {
    if let Some(role) = child_role() {
        let name = env("SHM_NAME");
        let mut announced = false;
        match role.as_str() {
            "mutex" => {
                let m = Mutex::<Data>::open(&name).unwrap();
                loop {
                    let mut g = m.lock().unwrap_or_else(|e| repair(e.into_guard().unwrap()));
                    update(&mut g);
                    drop(g);
                    if !announced {
                        say("READY");
                        announced = true;
                    }
                }
            }
            "rwlock" => {
                let l = RwLock::<Data>::open(&name).unwrap();
                loop {
                    let mut g = l.write().unwrap_or_else(|e| {
                        let g = e.into_guard().unwrap();
                        g.mark_consistent();
                        g
                    });
                    update(&mut g);
                    drop(g);
                    if !announced {
                        say("READY");
                        announced = true;
                    }
                }
            }
            other => panic!("unknown role {other}"),
        }
    }

    let trials: u32 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng::new();
    let m = Mutex::create([0u64; 2]).unwrap();
    let l = RwLock::create([0u64; 2]).unwrap();
    let (mut died, mut clean, mut failures) = (0u32, 0u32, Vec::new());
    let mut slowest = Duration::ZERO;
    for trial in 0..trials {
        let use_rwlock = trial % 4 == 3;
        let (role, name) = if use_rwlock {
            ("rwlock", l.name().unwrap())
        } else {
            ("mutex", m.name().unwrap())
        };
        let mut kid = Kid::spawn("chaos_kill_lockers_at_random", role, &[("SHM_NAME", name)]);
        kid.wait_line("READY", Duration::from_secs(30));
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        kid.kill();
        if rng.below(2) == 0 {
            let _ = kid.child.wait();
        }
        let t = Instant::now();
        let outcome = if use_rwlock {
            check(l.write_timeout(BOUND).map(|g| *g).map_err(|e| {
                e.map(|g| {
                    let before = *g;
                    let mut g = g;
                    *g = fixed(before);
                    g.mark_consistent();
                    before
                })
            }))
        } else {
            check(m.lock_timeout(BOUND).map(|g| *g).map_err(|e| {
                e.map(|g| {
                    let before = *g;
                    drop(repair(g));
                    before
                })
            }))
        };
        slowest = slowest.max(t.elapsed());
        match outcome {
            Ok(true) => died += 1,
            Ok(false) => clean += 1,
            Err(why) => failures.push(format!("trial {trial} ({role}): {why}")),
        }
        drop(kid);
    }
    println!(
        "chaos: {trials} trials, {} recovered ({died} owner-died, {clean} clean), {} failures; slowest recovery {slowest:?}",
        died + clean,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Repairs a guard's data after an owner death and marks the lock consistent.
fn repair(mut g: shm_sync::MutexGuard<'_, Data>) -> shm_sync::MutexGuard<'_, Data> {
    *g = fixed(*g);
    g.mark_consistent();
    g
}

fn fixed(d: Data) -> Data {
    [d[0], d[0] * 2]
}

/// `Ok(owner_died)` if the outcome is acceptable: a clean lock must find the invariant
/// intact; an owner-died lock may find it torn (and repaired it).
fn check(r: Result<Data, LockError<Data>>) -> Result<bool, String> {
    match r {
        Ok(d) if d[1] == d[0] * 2 => Ok(false),
        Ok(d) => Err(format!("clean lock but torn data {d:?}")),
        Err(LockError::OwnerDied(d)) => {
            if d[1] != d[0] * 2 && d[1] != (d[0] - 1) * 2 {
                return Err(format!("data beyond one torn update: {d:?}"));
            }
            Ok(true)
        }
        Err(e) => Err(format!("{e}")),
    }
}
