//! One program, two places for its objects: worker processes count words into a dict
//! and log into a list, through a manager opened by address. Only the address differs.
//!
//! ```text
//! cargo run -p shm-remote --example same_worker                               # shared memory
//! cargo run -p shm-remote --example same_worker -- redis://127.0.0.1:6379/demo  # a Redis server
//! ```
//!
//! `shm-remote/tests/readme.rs` runs it on both and checks that the root README shows
//! this code.

use shm_remote::Manager;
use shm_remote::prelude::*;

const WORDS: &[&str] = &["apple", "pear", "apple", "fig", "pear", "apple"];

/// The worker: the same code whatever the address.
pub fn worker(address: &str, id: usize) -> shm_remote::Result<()> {
    let m = Manager::connect(address)?;
    let counts = m.dict::<String, u64>("counts")?;
    for word in WORDS.iter().skip(id % 2) {
        counts.update(word.to_string(), |n| n.unwrap_or(0) + 1)?; // no lost update
    }
    m.list::<String>("log")?.push(format!("worker {id} done"))?;
    Ok(())
}

/// Starts `workers` processes on the manager at `address` and returns the counts.
pub fn run(
    address: &str,
    workers: usize,
    spawn: &dyn Fn(&str, usize) -> std::io::Result<std::process::Child>,
) -> Result<Vec<(String, u64)>, Box<dyn std::error::Error>> {
    let m = Manager::create(address)?; // local: owns the segments; Redis: a namespace
    m.dict::<String, u64>("counts")?.clear()?;
    m.list::<String>("log")?.clear()?;
    let children: Vec<_> = (0..workers)
        .map(|id| spawn(&m.address(), id))
        .collect::<Result<_, _>>()?;
    for mut c in children {
        assert!(c.wait()?.success());
    }
    assert_eq!(m.list::<String>("log")?.len()?, workers);
    let mut counts: Vec<(String, u64)> = m.dict::<String, u64>("counts")?.iter()?.collect();
    counts.sort();
    Ok(counts)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A worker process: this binary again, told its address and number.
    if let (Ok(address), Ok(id)) = (std::env::var("WORKER_ADDRESS"), std::env::var("WORKER_ID")) {
        return Ok(worker(&address, id.parse()?)?);
    }
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("same-worker-{}", std::process::id()));
    let counts = run(&address, 4, &|address, id| {
        std::process::Command::new(std::env::current_exe()?)
            .env("WORKER_ADDRESS", address)
            .env("WORKER_ID", id.to_string())
            .spawn()
    })?;
    println!("{counts:?}"); // [("apple", 10), ("fig", 4), ("pear", 8)] on either backend
    Ok(())
}
