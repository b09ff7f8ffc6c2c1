//! Benchmarks of shm-process, compared with CPython's figures from `python/process.py`
//! (see `comparisons/process.json`).
//!
//! IDs: `process/spawn_join_empty` (a child running an empty function, started with
//! `Process` and joined) against `process/command_spawn_wait_floor` (the same binary
//! re-executed with `Command` doing nothing: the floor) and
//! `process/command_pre_exec_floor` (the same with an empty `pre_exec` hook, as
//! `Process` sets one);
//! `process/fill_100mb_f64` (two children each fill their half of a 100 MB `RawArray<f64>`
//! through an ndarray view) and `process/fill_100mb_f64_locked` (the same through views
//! of an `Array<f64>`'s guard: the one lock serialises the two children).

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use shm_collections::nd::GuardViews;
use shm_collections::nd::ndarray::s;
use shm_collections::{Array, RawArray};
use shm_process::{Process, Shared};

/// Set in the floor's child: `main` returns at once.
const FLOOR_VAR: &str = "SHM_BENCH_PROCESS_FLOOR";

/// 100 MB of f64.
const FILL_LEN: usize = 100_000_000 / 8;

fn empty(_: ()) {}

/// Fills elements `start..end` of the raw array with `value`, through a view.
fn fill_raw_half(args: (Shared<RawArray<f64>>, usize, usize, f64)) {
    let (array, start, end, value) = args;
    // SAFETY: each child gets its own half; the parent reads only after both joined.
    let mut view =
        unsafe { array.view_mut_unchecked(start..end, [end - start]) }.expect("view of a half");
    view.fill(value);
}

/// Fills elements `start..end` of the locked array with `value`, through a view of
/// the guard.
fn fill_locked_half(args: (Shared<Array<f64>>, usize, usize, f64)) {
    let (array, start, end, value) = args;
    let mut guard = array.lock().expect("lock the array");
    let mut view = guard.view_mut([FILL_LEN]).expect("view of the array");
    view.slice_mut(s![start..end]).fill(value);
}

/// Start + join of a child running an empty function, and the floors: `Command`
/// spawn+wait as is (std's posix_spawn/vfork path, which `Process` takes too: it sends
/// the child's descriptors over a socket instead of clearing close-on-exec), and with a
/// `pre_exec` hook, which sends std down the slower fork+exec path.
fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("process");
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("spawn_join_empty", |b| {
        b.iter(|| {
            let mut p = Process::spawn(empty, ()).expect("spawn");
            assert_eq!(p.join().expect("join"), 0);
        })
    });
    let exe = std::env::current_exe().expect("current_exe");
    group.bench_function("command_spawn_wait_floor", |b| {
        b.iter(|| {
            let status = Command::new(&exe)
                .env(FLOOR_VAR, "1")
                .status()
                .expect("spawn the floor's child");
            assert!(black_box(status).success());
        })
    });
    group.bench_function("command_pre_exec_floor", |b| {
        b.iter(|| {
            let mut cmd = Command::new(&exe);
            cmd.env(FLOOR_VAR, "1");
            // SAFETY: the hook does nothing (no allocation, no lock) between fork and exec.
            unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, || Ok(())) };
            let status = cmd.status().expect("spawn the floor's child");
            assert!(black_box(status).success());
        })
    });
    group.finish();
}

/// 100 MB of f64 filled by two children, each its half.
fn fill(c: &mut Criterion) {
    let mut group = c.benchmark_group("process");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let half = FILL_LEN / 2;
    let raw = RawArray::<f64>::create(FILL_LEN).expect("create a RawArray");
    let mut value = 0.0;
    group.bench_function("fill_100mb_f64", |b| {
        b.iter(|| {
            value += 1.0;
            let mut children = [(0, half), (half, FILL_LEN)].map(|(start, end)| {
                let args = (Shared::of(&raw).expect("share"), start, end, value);
                Process::spawn(fill_raw_half, args).expect("spawn")
            });
            for p in &mut children {
                assert_eq!(p.join().expect("join"), 0);
            }
        })
    });
    assert_eq!(raw.get(FILL_LEN - 1).expect("last element"), value);
    drop(raw);
    let locked = Array::<f64>::create(FILL_LEN).expect("create an Array");
    group.bench_function("fill_100mb_f64_locked", |b| {
        b.iter(|| {
            value += 1.0;
            let mut children = [(0, half), (half, FILL_LEN)].map(|(start, end)| {
                let args = (Shared::of(&locked).expect("share"), start, end, value);
                Process::spawn(fill_locked_half, args).expect("spawn")
            });
            for p in &mut children {
                assert_eq!(p.join().expect("join"), 0);
            }
        })
    });
    assert_eq!(locked.get(0).expect("first element"), value);
    group.finish();
}

fn main() {
    shm_process::main!(empty, fill_raw_half, fill_locked_half);
    if std::env::var_os(FLOOR_VAR).is_some() {
        return;
    }
    let mut c = shm_bench::criterion();
    spawn_join(&mut c);
    fill(&mut c);
    c.final_summary();
}
