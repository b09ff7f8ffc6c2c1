//! Benchmarks of ShareableDict (u64 keys and values, 10^3 and 10^5 entries): get,
//! insert (overwriting an existing key, so the size stays put and garbage is compacted
//! as it would be in use) and update, against a `HashMap` behind a `std::sync::Mutex`
//! in one process (the floor) and CPython's `Manager().dict()` (`python/collections.py`,
//! see `comparisons/collections.json`).
//!
//! IDs: `collections/dict_{get,insert,update}_u64_{1e3,1e5}` and
//! `collections/std_hashmap_{get,insert,update}_u64_{1e3,1e5}`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, criterion_group, criterion_main};
use shm_collections::ShareableDict;

fn dict(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    for (n, tag) in [(1_000u64, "1e3"), (100_000, "1e5")] {
        let d = ShareableDict::<u64, u64>::create().expect("create a dict");
        d.extend((0..n).map(|i| (i, i))).expect("fill");
        let mut k = 0u64;
        // A fixed odd stride walks every key, in an order the hardware cannot predict
        // as easily as k + 1.
        let mut next = move || {
            k = (k + 7919) % n;
            k
        };
        group.bench_function(format!("dict_get_u64_{tag}"), |b| {
            b.iter(|| black_box(d.get(&next()).unwrap()))
        });
        group.bench_function(format!("dict_insert_u64_{tag}"), |b| {
            b.iter(|| black_box(d.insert(next(), 5).unwrap()))
        });
        group.bench_function(format!("dict_update_u64_{tag}"), |b| {
            b.iter(|| black_box(d.update(next(), |v| v.unwrap_or(0) + 1).unwrap()))
        });

        let m = Mutex::new((0..n).map(|i| (i, i)).collect::<HashMap<u64, u64>>());
        group.bench_function(format!("std_hashmap_get_u64_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().get(&next()).copied()))
        });
        group.bench_function(format!("std_hashmap_insert_u64_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().insert(next(), 5)))
        });
        group.bench_function(format!("std_hashmap_update_u64_{tag}"), |b| {
            b.iter(|| {
                let mut g = m.lock().unwrap();
                let e = g.entry(next()).or_insert(0);
                *e += 1;
                black_box(*e)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dict);
criterion_main!(benches);
