//! Port of 002 §4.2: an Event gating one process on another, both putting to a Queue.
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use shm_collections::Queue;
use shm_process::{Process, Shared};
use shm_sync::Event;

type Args = (Shared<Queue<u64>>, Shared<Event>);

/// Python's `random.randint(lo, hi)`, from std's random hash keys.
fn randint(lo: u64, hi: u64) -> u64 {
    lo + RandomState::new().hash_one(0) % (hi - lo + 1)
}

fn joo_a((q, ev): Args) {
    println!("subprocess joo_a start");
    if !ev.is_set() {
        ev.wait();
    }
    q.put(&randint(1, 100)).expect("put");
    println!("subprocess joo_a ended");
}

fn joo_b((q, ev): Args) {
    println!("subprocess joo_b start");
    ev.clear();
    std::thread::sleep(Duration::from_secs(2));
    q.put(&randint(200, 300)).expect("put");
    ev.set();
    println!("subprocess joo_b ended");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(joo_a, joo_b);
    let qu = Queue::<u64>::create(16, 4096)?;
    let ev = Event::create()?;
    let mut sub_a = Process::spawn(joo_a, (Shared::of(&qu)?, Shared::of(&ev)?))?;
    let mut sub_b = Process::spawn(joo_b, (Shared::of(&qu)?, Shared::of(&ev)?))?;
    sub_a.join()?;
    sub_b.join()?;
    while !qu.empty() {
        println!("{}", qu.get()?);
    }
    Ok(())
}
