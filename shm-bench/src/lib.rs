//! # shm-bench
//!
//! Benchmarks of the shm workspace and the anchors they are compared with. Not a
//! library to depend on: run `cargo xtask bench`, which runs, in one command, the
//! criterion benches in `benches/` (ids `core/...`, `sync/...`, `collections/...`),
//! the same operations in CPython (`python/*.py`, ids `py/...`), and prints a table of
//! ns/op and the ratios listed in `comparisons/*.json` (ratio = anchor / rust, so above
//! 1 means the Rust side is faster). It writes `target/shm-bench/report.json` and
//! `report.svg`.
//!
//! Two-core figures move between launches: compare only figures of the same run.

use std::time::Duration;

/// The criterion configuration of every bench binary here: half a second of warm-up
/// and two seconds of measurement per bench (enough on two cores, and the whole
/// `cargo xtask bench` stays within minutes), then the command line's options.
///
/// ```no_run
/// let mut c = shm_bench::criterion();
/// c.bench_function("add", |b| b.iter(|| std::hint::black_box(1) + 1));
/// c.final_summary();
/// ```
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}
