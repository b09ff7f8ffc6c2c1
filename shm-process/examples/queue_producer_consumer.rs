//! Port of 002 §3.2: a Queue(maxsize=5), a producer then a consumer, named processes.
use shm_collections::Queue;
use shm_process::{Builder, Shared};

fn producer(args: (Vec<u64>, Shared<Queue<u64>>)) {
    let (numbers, q) = args;
    for x in numbers.into_iter().filter(|x| x % 2 == 0) {
        if q.full() {
            println!("queue is full");
            break;
        }
        q.put(&x).expect("put");
        println!("put {x} in queue by producer");
    }
}

fn consumer(q: Shared<Queue<u64>>) {
    while !q.empty() {
        println!("take data {} from queue by consumer", q.get().expect("get"));
    }
}

/// Ten numbers in 1..=100 (Python's `random.randint`), from std's random hash keys.
fn randints() -> Vec<u64> {
    use std::hash::{BuildHasher, RandomState};
    (0..10)
        .map(|i| RandomState::new().hash_one(i) % 100 + 1)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(producer, consumer);
    let qu = Queue::<u64>::create(5, 4096)?; // at most 5 messages
    let mut p5 = Builder::new()
        .name("producer-1")
        .spawn(producer, (randints(), Shared::of(&qu)?))?;
    p5.join()?;
    let mut p6 = Builder::new()
        .name("consumer-1")
        .spawn(consumer, Shared::of(&qu)?)?;
    p6.join()?;
    println!("{}", qu.qsize());
    Ok(())
}
