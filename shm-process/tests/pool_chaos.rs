//! `Pool` under `kill -9` of its workers: results complete and in order, each either
//! its value or [`Error::WorkerDied`] (without retry), all values with retry and one kill.
//!
//! Trials: `SHM_CHAOS_TRIALS` (default 12). `cargo xtask chaos` runs more in release.

use std::time::{Duration, Instant};

use shm_core::testing::Tally;
use shm_process::{Error, Pool};

fn work(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(300 + (x * 37) % 700));
    x * x
}

/// A cheap deterministic generator (no `rand` dependency): xorshift64*.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn pool_results_are_complete_and_in_order_under_kill_9() {
    shm_process::main!(work);
    let trials: u64 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(12);
    const N: u64 = 200;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut tally = Tally::new("pool map of 200 tasks with kill -9", Duration::from_secs(2));
    let mut died_total = 0;
    for trial in 0..trials {
        let retry = trial % 2 == 1;
        // With retry one kill (a chunk retried once cannot die twice); without, two.
        let kills = if retry { 1 } else { 2 };
        let chunksize = 1 + (next(&mut seed) % 4) as usize;
        let mut kill_at: Vec<u64> = (0..kills).map(|_| 5 + next(&mut seed) % (N - 40)).collect();
        kill_at.sort();
        let mut pool = Pool::builder()
            .workers(2)
            .retry_killed(retry)
            .build()
            .unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        let mut it = pool.imap(work, 0..N, chunksize).unwrap();
        let mut killed = 0;
        while let Some(r) = it.next_timeout(Duration::from_secs(60)) {
            if matches!(r, Err(Error::Timeout { .. })) {
                panic!("trial {trial}: no result within 60 s (a hang)");
            }
            got.push(r);
            if kill_at.get(killed) == Some(&(got.len() as u64)) {
                let pids = pool.pids();
                let victim = pids[(next(&mut seed) % pids.len() as u64) as usize];
                // SAFETY: kill takes a pid and a signal number.
                assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
                killed += 1;
            }
        }
        drop(it);
        tally.record(start.elapsed());
        assert_eq!(got.len() as u64, N, "trial {trial}: results complete");
        let mut died = 0;
        for (i, r) in got.into_iter().enumerate() {
            let i = i as u64;
            match r {
                Ok(v) => assert_eq!(v, i * i, "trial {trial}: result {i} in its place"),
                Err(Error::WorkerDied { exitcode, .. }) if !retry => {
                    assert_eq!(exitcode, -libc::SIGKILL);
                    died += 1;
                }
                Err(e) => panic!("trial {trial} (retry {retry}): item {i}: {e}"),
            }
        }
        // A killed worker holds at most 16 chunks (the pool's bound on what a worker
        // has been handed and not answered).
        assert!(died <= kills * 16 * chunksize, "trial {trial}: {died} died");
        died_total += died;
        // The pool still works after the kills.
        assert_eq!(pool.map(work, [3u64, 4]).unwrap(), [9, 16]);
        pool.terminate().unwrap();
    }
    println!(
        "{} ({died_total} tasks failed with WorkerDied)",
        tally.line()
    );
}
