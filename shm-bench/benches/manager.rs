//! Benchmarks of shm-manager: creating and opening many small `Value`s through a
//! manager (packed in arenas, found by key) against one segment per object (what
//! `Value::create` does), and CPython's `multiprocessing.Value` from
//! `python/manager.py` (see `comparisons/manager.json`).
//!
//! IDs: `manager/value_create` (create a `Value<u64>` under a new key),
//! `manager/value_open` (open one by key from a connected manager, among 10^5),
//! `manager/segment_value_create_open` (a `Value<u64>` in its own segment: create,
//! open by name, drop and unlink), `manager/create_and_shutdown` (a manager with its
//! tracker process, then its shutdown).
//!
//! One run on the 2-core VM (loaded by other builds): value_create 3.96 us, value_open
//! 3.28 us, segment_value_create_open 68 us, create_and_shutdown 12.2 ms (the fork and
//! reaping of the tracker's intermediate child: 0.3-18 ms from run to run); CPython's
//! `multiprocessing.Value('Q', 0)` 76 us.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use shm_collections::Value;
use shm_manager::SharedMemoryManager;

/// How many Values `value_open` picks from.
const OPEN_POOL: usize = 100_000;

fn manager(c: &mut Criterion) {
    let mut group = c.benchmark_group("manager");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("value_create", |b| {
        b.iter_custom(|iters| {
            let m = SharedMemoryManager::new().expect("manager");
            let mut keep = Vec::with_capacity(iters as usize);
            let start = Instant::now();
            for i in 0..iters {
                keep.push(m.value(&format!("v{i}"), i).expect("create a Value"));
            }
            let t = start.elapsed();
            drop(keep);
            t
        })
    });

    let m = SharedMemoryManager::new().expect("manager");
    for i in 0..OPEN_POOL {
        m.value(&format!("v{i}"), i as u64).expect("create a Value");
    }
    let peer = SharedMemoryManager::connect(m.name()).expect("connect");
    let keys: Vec<String> = (0..OPEN_POOL).map(|i| format!("v{i}")).collect();
    let mut i = 0;
    group.bench_function("value_open", |b| {
        b.iter(|| {
            i = (i + 7919) % OPEN_POOL;
            black_box(peer.value(black_box(&keys[i]), 0u64).expect("open a Value"))
        })
    });
    drop(peer);
    drop(m);

    group.bench_function("segment_value_create_open", |b| {
        b.iter(|| {
            let v = Value::create(1u64).expect("create a Value");
            let o = Value::<u64>::open(v.name().expect("named")).expect("open a Value");
            black_box((v, o))
        })
    });

    group.sample_size(10);
    group.bench_function("create_and_shutdown", |b| {
        b.iter(|| {
            SharedMemoryManager::new()
                .expect("manager")
                .shutdown()
                .expect("shutdown")
        })
    });
    group.finish();
}

criterion_group!(benches, manager);
criterion_main!(benches);
