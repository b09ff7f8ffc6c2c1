//! Benchmarks of shm-collections, compared with CPython's figures from
//! `python/collections.py` (see `comparisons/collections.json`).
//!
//! IDs: `collections/shareable_list_get_int`, `collections/shareable_list_set_int`,
//! `collections/shareable_list_get_str`, `collections/shareable_list_set_str`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shm_collections::{Item, ShareableList};

/// ShareableList: get and set of an `int` and of a short `str` (5 characters), in a
/// list shaped like CPython's documentation example.
fn shareable_list(c: &mut Criterion) {
    let mut sl = ShareableList::create([
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

criterion_group!(group, shareable_list);
criterion_main!(group);
