//! Benchmarks of shm-collections, compared with CPython's figures from
//! `python/collections.py` (see `comparisons/collections.json`).
//!
//! IDs: `collections/shareable_list_get_int`, `collections/shareable_list_set_int`,
//! `collections/shareable_list_get_str`, `collections/shareable_list_set_str`;
//! `collections/value_locked_increment` (against `collections/std_mutex_increment`),
//! `collections/atomic_value_increment`, `collections/array_copy_in_64m` and
//! `collections/raw_array_copy_in_64m` (against `core/memcpy_64m`).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shm_collections::{Array, AtomicValue, Item, RawArray, ShareableList, Value};

/// ShareableList: get and set of an `int` and of a short `str` (5 characters), in a
/// list shaped like CPython's documentation example.
fn shareable_list(c: &mut Criterion) {
    let sl = ShareableList::create([
        Item::from("howdy"),
        b"HoWdY".into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
    ])
    .expect("create a ShareableList");
    let mut group = c.benchmark_group("collections");
    // The int is taken out of the `Item`, as a caller would: `black_box` of a whole
    // `Item` (an enum with padding) costs a byte-wise copy the caller never pays.
    group.bench_function("shareable_list_get_int", |b| {
        b.iter(|| black_box(sl.get(black_box(3)).unwrap().as_int()))
    });
    let mut n = 0i64;
    group.bench_function("shareable_list_set_int", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            sl.set(black_box(3), black_box(n)).unwrap()
        })
    });
    group.bench_function("shareable_list_get_str", |b| {
        b.iter(|| black_box(sl.get(black_box(0)).unwrap()))
    });
    let words = ["howdy", "hello", "salut"];
    let mut i = 0;
    group.bench_function("shareable_list_set_str", |b| {
        b.iter(|| {
            i = (i + 1) % words.len();
            sl.set_str(black_box(0), black_box(words[i])).unwrap()
        })
    });
    group.finish();
}

/// Value: an increment under the lock (CPython: `with v.get_lock(): v.value += 1`),
/// the lock-free `fetch_add`, and the same under a `std::sync::Mutex` for scale.
fn value(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    let v = Value::create(0u64).expect("create a Value");
    group.bench_function("value_locked_increment", |b| {
        b.iter(|| v.update(|x| *x += 1).unwrap())
    });
    let a = AtomicValue::create(0u64).expect("create an AtomicValue");
    group.bench_function("atomic_value_increment", |b| {
        b.iter(|| black_box(a.fetch_add(1)))
    });
    let m = std::sync::Mutex::new(0u64);
    group.bench_function("std_mutex_increment", |b| {
        b.iter(|| *m.lock().unwrap() += 1)
    });
    group.finish();
}

/// Array: 64 MiB copied in under the lock, and without one (RawArray).
fn array(c: &mut Criterion) {
    const LEN: usize = (64 << 20) / 8;
    let mut group = c.benchmark_group("collections");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    group.throughput(criterion::Throughput::Bytes((LEN * 8) as u64));
    let src = vec![7u64; LEN];
    let locked = Array::<u64>::create(LEN).expect("create an Array");
    group.bench_function("array_copy_in_64m", |b| {
        b.iter(|| locked.copy_from(0, black_box(&src)).unwrap())
    });
    let raw = RawArray::<u64>::create(LEN).expect("create a RawArray");
    group.bench_function("raw_array_copy_in_64m", |b| {
        b.iter(|| raw.copy_from(0, black_box(&src)).unwrap())
    });
    group.finish();
}

criterion_group!(group, shareable_list, value, array);
criterion_main!(group);
