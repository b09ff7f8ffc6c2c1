//! `shm_process::Pool::map` over 10^4 tiny tasks with 2 workers, per task, beside the
//! in-process floor (two scoped threads, no process, no queue: rayon is not a
//! dependency here) and CPython's `multiprocessing.Pool.map` of the same tasks
//! (`python/pool.py`, see `comparisons/pool.json`).
//!
//! IDs (one iteration is one task; a sample times whole maps of 10^4 tasks):
//! - `pool/map_10k_chunk1`: `Pool::map_chunksize(tiny, 0..10_000, 1)`: one message each
//!   way per task;
//! - `pool/map_10k_auto`: `Pool::map` (CPython's automatic chunk size: 10^4 / (4 * 2)
//!   = 1250 tasks per chunk);
//! - `pool/threads_10k_floor`: the same tasks split in two halves over
//!   `std::thread::scope` threads (thread start included, as a pool's map has none).
//!
//! The bench binary is its own worker: `shm_process::main!` is the first line of `main`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shm_process::Pool;

const TASKS: u64 = 10_000;

/// A tiny task: what `python/pool.py` runs too.
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5a
}

/// Times whole maps, enough of them to cover `iters` tasks, scaled to `iters` tasks.
fn per_task(iters: u64, mut one_map: impl FnMut()) -> Duration {
    let maps = iters.div_ceil(TASKS).max(1);
    let start = Instant::now();
    for _ in 0..maps {
        one_map();
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (maps * TASKS) as f64)
}

fn main() {
    shm_process::main!(tiny);
    let mut c = shm_bench::criterion();
    let mut g = c.benchmark_group("pool");
    // A sample is at least one map of 10^4 tasks: few samples, more time.
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    let mut pool = Pool::new(2).expect("start 2 workers");
    let want: Vec<u64> = (0..TASKS).map(tiny).collect();
    assert_eq!(pool.map_chunksize(tiny, 0..TASKS, 1).unwrap(), want);
    g.bench_function("map_10k_chunk1", |b| {
        b.iter_custom(|iters| {
            per_task(iters, || {
                black_box(pool.map_chunksize(tiny, 0..TASKS, 1).unwrap());
            })
        })
    });
    g.bench_function("map_10k_auto", |b| {
        b.iter_custom(|iters| {
            per_task(iters, || {
                black_box(pool.map(tiny, 0..TASKS).unwrap());
            })
        })
    });
    g.bench_function("threads_10k_floor", |b| {
        b.iter_custom(|iters| {
            per_task(iters, || {
                let halves: Vec<Vec<u64>> = std::thread::scope(|s| {
                    let hs: Vec<_> = [0..TASKS / 2, TASKS / 2..TASKS]
                        .into_iter()
                        .map(|r| s.spawn(move || r.map(|x| tiny(black_box(x))).collect()))
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                black_box(halves);
            })
        })
    });
    g.finish();
    pool.close().unwrap();
    pool.join().unwrap();
    c.final_summary();
}
