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
//! `manager/footprint` is no criterion benchmark but one measurement, printed and
//! written to `target/shm-bench/manager_footprint.json` (`cargo xtask bench` shows it):
//! 10^5 `Value<u64>` counters made through one manager, the bytes of the manager's
//! segments in `/dev/shm` per counter (and the RSS they add), and the time of one
//! `shm ls` over them (the `shm` binary next to this bench, which `cargo xtask bench`
//! builds, or the path in `SHM_BENCH_SHM_BIN`).
//!
//! `manager/footprint` on the 2-core VM (loaded): 332 bytes of /dev/shm per counter
//! (33.2 MB in 21 segments, of which the registry 13.2 MB; 556 bytes and a 35.7 MB
//! registry before registry layout 2), RSS +505 bytes per counter, `shm ls` over the
//! 10^5 arena objects 1.11 to 2.32 s from run to run.
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

/// How many counters `manager/footprint` makes.
const FOOTPRINT_OBJECTS: usize = 100_000;

/// Whether the criterion filter on the command line (the first argument that is no
/// option; `a|b` alternatives) selects `id`; no filter selects everything.
fn selected(id: &str) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    filter.is_none_or(|f| f.split('|').any(|part| id.contains(part)))
}

/// The resident set size of this process in bytes (`VmRSS`), 0 when unknown.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The `shm` binary: `SHM_BENCH_SHM_BIN`, or `shm` in the profile directory of this
/// bench (`target/release/deps/manager-*` -> `target/release/shm`).
fn shm_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SHM_BENCH_SHM_BIN") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("shm");
    bin.is_file().then_some(bin)
}

/// `manager/footprint`: bytes per small object and the time of `shm ls` over them.
fn footprint() {
    let rss_before = rss_bytes();
    let m = SharedMemoryManager::new().expect("manager");
    let root = m.root_name().to_owned();
    let counters: Vec<Value<u64>> = (0..FOOTPRINT_OBJECTS)
        .map(|i| m.value(&format!("c{i}"), i as u64).expect("create a Value"))
        .collect();
    let rss = rss_bytes().saturating_sub(rss_before);
    let (mut shm_bytes, mut registry_bytes, mut segments) = (0u64, 0u64, 0usize);
    for e in std::fs::read_dir("/dev/shm").expect("/dev/shm").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !shm_manager::is_tracked_by(&name, &root) {
            continue;
        }
        let len = e.metadata().map_or(0, |m| m.len());
        shm_bytes += len;
        segments += 1;
        // The root and its data segments (`ROOT.g<gen>.<id>`) hold the registry.
        let registry = name == root
            || shm_collections::region::parse_data_segment_name(&name)
                .is_some_and(|p| p.control == root);
        if registry {
            registry_bytes += len;
        }
    }
    let n = FOOTPRINT_OBJECTS as f64;
    let per_object = shm_bytes as f64 / n;
    println!(
        "manager/footprint: {FOOTPRINT_OBJECTS} Value<u64> through one manager: {per_object:.0} bytes of /dev/shm each ({:.1} MB in {segments} segments, registry {:.1} MB), RSS +{:.0} bytes each",
        shm_bytes as f64 / 1e6,
        registry_bytes as f64 / 1e6,
        rss as f64 / n
    );
    let ls_seconds = match shm_binary() {
        Some(bin) => {
            let start = Instant::now();
            let out = std::process::Command::new(&bin)
                .args(["ls", &root])
                .output()
                .expect("run shm ls");
            let t = start.elapsed().as_secs_f64();
            assert!(out.status.success(), "shm ls failed: {out:?}");
            let rows = out.stdout.split(|b| *b == b'\n').count();
            println!(
                "manager/shm_ls: `shm ls` over {FOOTPRINT_OBJECTS} arena objects: {t:.2} s ({rows} lines)"
            );
            Some(t)
        }
        None => {
            println!(
                "manager/shm_ls: skipped: no shm binary (cargo build --release -p shm-manager --bin shm, or set SHM_BENCH_SHM_BIN)"
            );
            None
        }
    };
    let json = format!(
        "{{\"objects\": {FOOTPRINT_OBJECTS}, \"shm_bytes\": {shm_bytes}, \"registry_bytes\": {registry_bytes}, \"segments\": {segments}, \"bytes_per_object\": {per_object:.1}, \"rss_bytes_per_object\": {:.1}, \"shm_ls_seconds\": {}}}\n",
        rss as f64 / n,
        ls_seconds.map_or("null".to_owned(), |t| format!("{t:.3}"))
    );
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.parent()?.join("shm-bench")))
    {
        let _ = std::fs::create_dir_all(&target);
        let _ = std::fs::write(target.join("manager_footprint.json"), json);
    }
    drop(counters);
    m.shutdown().expect("shutdown");
}

fn manager(c: &mut Criterion) {
    if selected("manager/footprint") {
        footprint();
    }
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
