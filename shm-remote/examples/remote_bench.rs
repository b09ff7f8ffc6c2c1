//! The measuring side of `cargo xtask bench remote`: times this crate's calls against
//! the server at the address given, one client, and prints `name p50_ns mean_ns` lines
//! (the median is what the table compares: a loaded machine's tail moves the mean).
//!
//! ```text
//! cargo run --release -p shm-remote --example remote_bench -- redis://127.0.0.1:6379/bench 20000
//! ```

use std::time::Instant;

use shm_remote::Manager;
use shm_remote::conn::Retry;
use shm_remote::prelude::*;

fn time(name: &str, n: u32, mut f: impl FnMut(u32)) {
    // Warm-up: connections opened, scripts loaded.
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
    let address = args.next().ok_or("usage: remote_bench ADDRESS [N]")?;
    let n: u32 = args.next().map_or(Ok(20_000), |s| s.parse())?;
    let m = Manager::connect(&address)?;
    if let Some(r) = m.redis() {
        // Every run starts from an empty namespace: `cargo xtask bench remote` runs
        // this several times against one server, and a list left by the previous run
        // (22 000 more elements each) would make `list.get`'s LINDEX walk longer in
        // each later run than in the first.
        r.clear_namespace()?;
        // Our own client's bare round trip, for reference.
        time("ping", n, |_| {
            let _: String = r
                .conn()
                .query(&redis::cmd("PING"), r.conn().timeout(), Retry::Idempotent)
                .unwrap();
        });
    }
    let d = m.dict::<String, u64>("bench")?;
    d.insert("k".into(), 1)?;
    time("dict.get", n, |_| {
        d.get("k").unwrap();
    });
    time("dict.insert", n, |i| {
        d.insert("k".into(), u64::from(i)).unwrap();
    });
    time("dict.update", n, |_| {
        d.update("k".into(), |v| v.unwrap_or(0) + 1).unwrap();
    });
    let v = m.value("bench-v", 0u64)?;
    time("value.get", n, |_| {
        v.get().unwrap();
    });
    time("value.set", n, |i| {
        v.set(u64::from(i)).unwrap();
    });
    let l = m.list::<u64>("bench-l")?;
    time("list.push", n, |i| {
        l.push(u64::from(i)).unwrap();
    });
    time("list.get", n, |i| {
        l.get(i as usize).unwrap();
    });
    Ok(())
}
