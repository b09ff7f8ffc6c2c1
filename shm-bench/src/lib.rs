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
