//! `cargo xtask bench remote`: the Redis backend against its floor and against
//! Python's manager, on loopback, one client:
//!
//! - the floor: `redis-benchmark` (GET and SET, one client; and pipelined, 16 deep)
//!   against a throwaway server ([`shm_remote::testing::RedisServer`]);
//! - Python's `multiprocessing.managers.SyncManager` dict over TCP (`python3`);
//! - this workspace's calls (`shm-remote`'s example `remote_bench`, release build).
//!
//! Medians (p50) are compared: on a loaded machine the mean follows the tail. Targets:
//! a dict get or set within 1.3x one bare round trip; every single-call row at least
//! 1.5x faster than the Python manager.

use std::collections::BTreeMap;
use std::process::Command;

use crate::{Result, cargo, target_dir};

/// Python's manager dict over TCP: prints `get p50_ns mean_ns` and `set ...`.
const PY_MANAGER: &str = r#"
import sys, time
from multiprocessing.managers import SyncManager
def timed(n, f):
    for i in range(n // 10 + 1):
        f(i)
    each = []
    t = time.perf_counter_ns()
    for i in range(n):
        t0 = time.perf_counter_ns()
        f(i)
        each.append(time.perf_counter_ns() - t0)
    mean = (time.perf_counter_ns() - t) / n
    each.sort()
    return each[len(each) // 2], mean
if __name__ == "__main__":
    n = int(sys.argv[1])
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench")
    m.start()
    d = m.dict()
    d["k"] = 1
    def get(i):
        d["k"]
    def put(i):
        d["k"] = i
    for name, f in (("get", get), ("set", put)):
        p50, mean = timed(n, f)
        print(name, p50, int(mean))
    m.shutdown()
"#;

/// p50 and mean, in nanoseconds.
type Row = (f64, f64);

fn redis_benchmark(port: u16, pipeline: u32, n: u32) -> Result<BTreeMap<String, Row>> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "1"])
        .args(["-n", &n.to_string(), "-P", &pipeline.to_string()])
        .args(["-t", "get,set", "--csv"])
        .output()
        .map_err(|e| format!("redis-benchmark (package redis-tools/redis-server): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    let mut rows = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        if f.len() < 5 {
            continue;
        }
        let rps: f64 = f[1].parse()?;
        let p50_ms: f64 = f[4].parse()?;
        // Pipelined: the time per request is 1/throughput; a reply's latency covers
        // the whole batch.
        let per_op = 1e9 / rps;
        let p50 = if pipeline > 1 { per_op } else { p50_ms * 1e6 };
        rows.insert(f[0].to_owned(), (p50, per_op));
    }
    Ok(rows)
}

fn parse_rows(text: &str) -> Result<BTreeMap<String, Row>> {
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [name, p50, mean] = f.as_slice() {
            rows.insert((*name).to_owned(), (p50.parse()?, mean.parse()?));
        }
    }
    Ok(rows)
}

pub fn run() -> Result {
    let n: u32 = std::env::var("SHM_REMOTE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    cargo(
        &[
            "build",
            "--release",
            "-p",
            "shm-remote",
            "--example",
            "remote_bench",
        ],
        &[],
    )?;
    let server = shm_remote::testing::RedisServer::start()?;
    let port = server.port();
    eprintln!("redis-server on 127.0.0.1:{port}; {n} calls per row");
    let floor = redis_benchmark(port, 1, n)?;
    let piped = redis_benchmark(port, 16, n * 10)?;
    let ours = {
        let exe = target_dir().join("release/examples/remote_bench");
        let out = Command::new(exe)
            .arg(server.url("bench"))
            .arg(n.to_string())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "remote_bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        parse_rows(&String::from_utf8_lossy(&out.stdout))?
    };
    let python = {
        let out = Command::new("python3")
            .arg("-c")
            .arg(PY_MANAGER)
            .arg((n / 4).max(1000).to_string())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "python3 manager bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        parse_rows(&String::from_utf8_lossy(&out.stdout))?
    };
    drop(server);

    let get = |m: &BTreeMap<String, Row>, k: &str| -> Result<Row> {
        m.get(k)
            .copied()
            .ok_or_else(|| format!("no row {k}").into())
    };
    let rtt = get(&floor, "GET")?.0;
    let py_get = get(&python, "get")?.0;
    let py_set = get(&python, "set")?.0;
    println!();
    println!("shm-remote bench (loopback, one client; p50 per call, mean in brackets)");
    println!(
        "{:<34} {:>10} {:>10} {:>9} {:>9}",
        "row", "p50 us", "mean us", "x RTT", "Py/this"
    );
    let us = |ns: f64| ns / 1000.0;
    let line = |name: &str, (p50, mean): Row, py: Option<f64>| {
        let vs_py = py.map_or("-".to_string(), |p| format!("{:.2}", p / p50));
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>9.2} {:>9}",
            name,
            us(p50),
            us(mean),
            p50 / rtt,
            vs_py
        );
    };
    line("redis-benchmark GET (floor)", get(&floor, "GET")?, None);
    line("redis-benchmark SET", get(&floor, "SET")?, None);
    line(
        "redis-benchmark GET -P 16 (per req)",
        get(&piped, "GET")?,
        None,
    );
    line(
        "redis-benchmark SET -P 16 (per req)",
        get(&piped, "SET")?,
        None,
    );
    line("python SyncManager dict get", get(&python, "get")?, None);
    line("python SyncManager dict set", get(&python, "set")?, None);
    let mut targets = Vec::new();
    for (row, label, py) in [
        ("ping", "shm-remote PING (own client)", None),
        ("dict.get", "shm-remote dict.get", Some(py_get)),
        ("dict.insert", "shm-remote dict.insert (set)", Some(py_set)),
        (
            "dict.update",
            "shm-remote dict.update (2 RTT)",
            Some(py_get + py_set),
        ),
        ("value.get", "shm-remote value.get", Some(py_get)),
        ("value.set", "shm-remote value.set", Some(py_set)),
        ("list.push", "shm-remote list.push", Some(py_set)),
        ("list.get", "shm-remote list.get", Some(py_get)),
    ] {
        let r = get(&ours, row)?;
        line(label, r, py);
        if let Some(p) = py {
            targets.push((
                format!("{label}: >= 1.5x faster than Python"),
                p / r.0 >= 1.5,
            ));
        }
        if matches!(row, "dict.get" | "dict.insert") {
            targets.push((
                format!("{label}: within 1.3x of one round trip"),
                r.0 / rtt <= 1.3,
            ));
        }
    }
    println!();
    for (t, ok) in &targets {
        println!("{} {t}", if *ok { "PASS" } else { "MISS" });
    }
    Ok(())
}
