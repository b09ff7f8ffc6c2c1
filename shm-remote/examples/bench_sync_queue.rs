//! Bench rows of the Redis locks and queues, in the format of `remote_bench` (the
//! measuring side of `cargo xtask bench remote`): `name p50_ns mean_ns` per call for
//! lock acquire + release and queue put + get, and the batched `put_many`/`get_many`
//! throughput of one producer and one consumer thread (`queue.batched` per request),
//! compared with `redis-benchmark` pipelined (50 clients, 16 deep) on the same server
//! in the same run.
//!
//! ```text
//! cargo run --release -p shm-remote --example bench_sync_queue -- redis://127.0.0.1:6379/bench 5000
//! ```
//!
//! Without an address it starts a throwaway `redis-server` of its own.

use std::time::{Duration, Instant};

use shm_remote::address::RedisAddress;
use shm_remote::conn::Conn;
use shm_remote::queue::Queue;
use shm_remote::sync::Lock;

fn time(name: &str, n: u32, mut f: impl FnMut(u32)) {
    for i in 0..n / 10 + 1 {
        f(i);
    }
    let mut each = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        f(i);
        each.push(t0.elapsed().as_nanos() as u64);
    }
    let mean = t.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    each.sort_unstable();
    let p50 = each.get(each.len() / 2).copied().unwrap_or(0);
    println!("{name} {p50} {mean:.0}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut server = None;
    let url = match args.next() {
        Some(u) => u,
        None => {
            let s = shm_remote::testing::RedisServer::start()?;
            let u = s.url("bench");
            server = Some(s);
            u
        }
    };
    let n: u32 = args.next().map_or(Ok(5_000), |s| s.parse())?;
    let mut addr = RedisAddress::parse(&url)?;
    addr.namespace = format!("bench-r2-{}", std::process::id());
    let conn = Conn::open(&addr, Some(Duration::from_secs(10)))?;

    // Two round trips: the acquire script and the release script.
    let lock = Lock::open(&conn, "bench-lock")?;
    time("lock.acquire_release", n, |_| {
        drop(lock.lock().unwrap());
    });

    // One round trip each.
    let q = Queue::<u64>::open(&conn, "bench-single")?;
    time("queue.put_get", n, |i| {
        q.put(&u64::from(i)).unwrap();
        q.get().unwrap();
    });

    // Batched: a producer thread puts 5 x 20 000 values with put_many (1000 per
    // script, the chunks pipelined in one round trip) while a consumer thread takes
    // them with get_many (1000 per script), as a queue is used. Puts and gets count as
    // requests, as redis-benchmark counts SETs and GETs.
    let producer = Queue::<u64>::open(&conn, "bench-batch")?;
    let consumer = Queue::<u64>::open(&conn, "bench-batch")?;
    let batch: Vec<u64> = (0..20_000).collect();
    producer.put_many(&batch[..1000])?;
    consumer.get_many(1000)?;
    let rounds = 5;
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..rounds {
                producer.put_many(&batch).unwrap();
            }
        });
        let mut got = 0;
        while got < rounds * batch.len() {
            got += consumer.get_many(batch.len()).unwrap().len();
        }
    });
    let per_req = t.elapsed().as_nanos() as f64 / (2 * rounds * batch.len()) as f64;
    println!("queue.batched {per_req:.0} {per_req:.0}");
    let ours = 1e9 / per_req;
    println!("# queue put_many+get_many batched: {ours:.0} req/s");
    if let Some(floor) = redis_benchmark(&addr) {
        println!("# redis-benchmark SET+GET -c 50 -P 16: {floor:.0} req/s");
        println!(
            "# batched queue at {:.0}% of redis-benchmark pipelined (target >= 50%)",
            100.0 * ours / floor
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
    // `"SET","123456.00",...`: one line per test.
    let rps: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\""))
        .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse().ok())
        .collect();
    (!rps.is_empty()).then(|| rps.iter().sum::<f64>() / rps.len() as f64)
}
