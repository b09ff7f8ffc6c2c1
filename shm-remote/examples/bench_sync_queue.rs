//! Bench rows of the Redis locks and queues (for `cargo xtask bench remote`):
//! lock acquire + release, queue put + get one at a time, and batched
//! `put_many`/`get_many` throughput, against the server at the URL given as the
//! first argument (or a throwaway `redis-server` of its own).
//!
//! ```text
//! cargo run --release -p shm-remote --example bench_sync_queue -- redis://127.0.0.1:6379/bench
//! ```
//!
//! Output: one line per row, tab-separated: `row`, name, value, unit.

use std::time::{Duration, Instant};

use shm_remote::address::RedisAddress;
use shm_remote::conn::Conn;
use shm_remote::queue::Queue;
use shm_remote::sync::Lock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = None;
    let url = match std::env::args().nth(1) {
        Some(u) => u,
        None => {
            let s = shm_remote::testing::RedisServer::start()?;
            let u = s.url("bench");
            server = Some(s);
            u
        }
    };
    let mut addr = RedisAddress::parse(&url)?;
    // The floor, measured in the same run (the machine's load moves it): redis-benchmark
    // pipelined 16 deep from 50 clients, SET and GET.
    let floor = redis_benchmark(&addr);
    if let Some(f) = floor {
        row(
            "redis-benchmark SET+GET pipelined (-c 50 -P 16)",
            f,
            "req/s",
        );
    }
    let ns = format!("bench-r2-{}", std::process::id());
    addr.namespace = ns;
    let conn = Conn::open(&addr, Some(Duration::from_secs(10)))?;

    // Lock acquire + release (two round trips: the acquire script, the release script).
    let lock = Lock::open(&conn, "bench-lock")?;
    for _ in 0..200 {
        drop(lock.lock().map_err(|e| e.into_error("bench-lock"))?);
    }
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        drop(lock.lock().map_err(|e| e.into_error("bench-lock"))?);
    }
    row(
        "remote/lock acquire+release",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );

    // Queue put + get, one message at a time (one round trip each).
    let q = Queue::<u64>::open(&conn, "bench-single")?;
    let t = Instant::now();
    for i in 0..n {
        q.put(&i)?;
        let _ = q.get()?;
    }
    row(
        "remote/queue put+get single",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );

    // Batched: put_many of 1000 values (one script per 1000, chunks pipelined), then
    // get_many of 1000 (one script each). Throughput counts puts and gets as requests,
    // as redis-benchmark counts SETs and GETs.
    let q = Queue::<u64>::open(&conn, "bench-batch")?;
    let batch: Vec<u64> = (0..1000).collect();
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        q.put_many(&batch)?;
    }
    let put = t.elapsed();
    let t = Instant::now();
    let mut got = 0;
    while got < rounds * batch.len() {
        got += q.get_many(1000)?.len();
    }
    let get = t.elapsed();
    let msgs = (rounds * batch.len()) as f64;
    row(
        "remote/queue put_many (1000)",
        msgs / put.as_secs_f64(),
        "msg/s",
    );
    row(
        "remote/queue get_many (1000)",
        msgs / get.as_secs_f64(),
        "msg/s",
    );
    row(
        "remote/queue put_many+get_many",
        2.0 * msgs / (put + get).as_secs_f64(),
        "req/s",
    );
    // 64 KiB of puts in one call: chunks pipelined in one round trip.
    let big: Vec<u64> = (0..20_000).collect();
    let t = Instant::now();
    q.put_many(&big)?;
    let put = t.elapsed();
    let t = Instant::now();
    let mut got = 0;
    while got < big.len() {
        got += q.get_many(big.len())?.len();
    }
    let get = t.elapsed();
    row(
        "remote/queue put_many+get_many (20000, pipelined chunks)",
        2.0 * big.len() as f64 / (put + get).as_secs_f64(),
        "req/s",
    );
    let batched = 2.0 * big.len() as f64 / (put + get).as_secs_f64();
    if let Some(f) = floor {
        row(
            "remote/queue batched vs redis-benchmark pipelined",
            100.0 * batched / f,
            "%",
        );
    }
    drop(server);
    Ok(())
}

/// `redis-benchmark`'s pipelined SET and GET throughput (their mean), if installed.
fn redis_benchmark(addr: &RedisAddress) -> Option<f64> {
    let bin = shm_remote::testing::find_in_path("redis-benchmark")?;
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-h", &addr.host, "-p", &addr.port.to_string()])
        .args([
            "-c", "50", "-P", "16", "-n", "200000", "-t", "set,get", "--csv",
        ]);
    if let Some(p) = &addr.password {
        cmd.args(["-a", p]);
    }
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...: one line per test.
    let rps: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\""))
        .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse().ok())
        .collect();
    (!rps.is_empty()).then(|| rps.iter().sum::<f64>() / rps.len() as f64)
}

fn row(name: &str, value: f64, unit: &str) {
    println!("row\t{name}\t{value:.2}\t{unit}");
}
