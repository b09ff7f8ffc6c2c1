//! Chaos: two producer and two consumer processes share a small queue; one or two of
//! them are SIGKILLed at random moments while the rest go on. Every message must be
//! accounted for: delivered exactly once, except at most one per killed consumer (a
//! message it had claimed, either half-read and counted in `stats().lost`, or taken
//! before it recorded it: delivered to a process that died, see the `queue` module
//! docs); a
//! killed producer's messages are delivered up to the last one its `put` returned for,
//! plus possibly the one it was putting.
//!
//! Trials: `SHM_CHAOS_TRIALS` (default 24). `cargo xtask chaos` can run 1000 in release.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shm_collections::{Queue, QueueError};
use shm_core::Segment;
use shm_core::testing::{Rng, child_command, child_role, env};

const PRODUCERS: u32 = 2;
const CONSUMERS: u32 = 2;
const PER_PRODUCER: u32 = 20_000;
/// Receipt counters (one per message) then one "sent" counter per producer.
const SLOTS: usize = (PRODUCERS * PER_PRODUCER + PRODUCERS) as usize;

fn slot(seg: &Segment, i: usize) -> &AtomicU32 {
    assert!(i < SLOTS && (i + 1) * 4 <= seg.len());
    // SAFETY: in bounds (checked), 4-byte aligned (mappings are page aligned); an
    // AtomicU32 is valid for any bits and for concurrent access by other processes.
    unsafe { &*seg.as_ptr().add(i * 4).cast::<AtomicU32>() }
}

#[test]
fn chaos_kill_producers_and_consumers_at_random() {
    if let Some(role) = child_role() {
        let q: Queue<(u32, u32)> = Queue::open(&env("SHM_Q")).unwrap();
        let seg = Segment::open(&env("SHM_RECEIPTS")).unwrap();
        let id: u32 = env("SHM_ID").parse().unwrap();
        match role.as_str() {
            "producer" => {
                for seq in 0..PER_PRODUCER {
                    q.put(&(id, seq)).unwrap();
                    slot(&seg, (PRODUCERS * PER_PRODUCER + id) as usize)
                        .store(seq + 1, Ordering::SeqCst);
                }
            }
            "consumer" => loop {
                match q.get() {
                    Ok((p, s)) => {
                        slot(&seg, (p * PER_PRODUCER + s) as usize).fetch_add(1, Ordering::SeqCst);
                    }
                    Err(QueueError::Closed { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            },
            other => panic!("unknown role {other}"),
        }
        return;
    }

    let trials: u32 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut rng = Rng::seeded((std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut failures = Vec::new();
    let (mut killed_p, mut killed_c, mut recovered) = (0u32, 0u32, 0u64);
    for trial in 0..trials {
        let q: Queue<(u32, u32)> = Queue::create(32, 1024).unwrap();
        let seg = Segment::create(SLOTS * 4).unwrap();
        let spawn = |role: &str, id: u32| -> Child {
            let mut cmd = child_command("chaos_kill_producers_and_consumers_at_random", role);
            cmd.env("SHM_Q", q.name().unwrap())
                .env("SHM_RECEIPTS", seg.name().unwrap())
                .env("SHM_ID", id.to_string());
            cmd.spawn().unwrap()
        };
        // kids[0..PRODUCERS] are producers, the rest consumers.
        let mut kids: Vec<(Child, bool)> = (0..PRODUCERS)
            .map(|i| (spawn("producer", i), false))
            .chain((0..CONSUMERS).map(|i| (spawn("consumer", i), false)))
            .collect();
        let victims = 1 + rng.below(2) as usize;
        for _ in 0..victims {
            std::thread::sleep(Duration::from_micros(5_000 + rng.below(40_000)));
            let v = rng.below(kids.len() as u64) as usize;
            if !kids[v].1 {
                let _ = kids[v].0.kill();
                let _ = kids[v].0.wait();
                kids[v].1 = true;
            }
        }
        let dead_consumers = kids[PRODUCERS as usize..].iter().filter(|k| k.1).count() as u32;
        let dead_producers: Vec<bool> = kids[..PRODUCERS as usize].iter().map(|k| k.1).collect();
        killed_c += dead_consumers;
        killed_p += dead_producers.iter().filter(|d| **d).count() as u32;
        // Surviving producers finish; then close, and surviving consumers drain.
        let t = Instant::now();
        for (k, dead) in kids[..PRODUCERS as usize].iter_mut() {
            if !*dead {
                if dead_consumers == CONSUMERS {
                    // Nobody consumes: the parent must, or the producers block for ever.
                    while k.try_wait().unwrap().is_none() {
                        for (p, s) in q.drain().unwrap() {
                            slot(&seg, (p * PER_PRODUCER + s) as usize)
                                .fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                assert!(
                    k.wait().unwrap().success(),
                    "trial {trial}: a producer failed"
                );
            }
        }
        q.close();
        for (k, dead) in kids[PRODUCERS as usize..].iter_mut() {
            if !*dead {
                assert!(
                    k.wait().unwrap().success(),
                    "trial {trial}: a consumer failed"
                );
            }
        }
        for (p, s) in q.drain().unwrap() {
            slot(&seg, (p * PER_PRODUCER + s) as usize).fetch_add(1, Ordering::SeqCst);
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "trial {trial}: too slow"
        );

        // Account.
        let mut holes = 0u32;
        for p in 0..PRODUCERS {
            let sent = slot(&seg, (PRODUCERS * PER_PRODUCER + p) as usize).load(Ordering::SeqCst);
            for s in 0..PER_PRODUCER {
                let n = slot(&seg, (p * PER_PRODUCER + s) as usize).load(Ordering::SeqCst);
                if n > 1 {
                    failures.push(format!("trial {trial}: ({p}, {s}) delivered {n} times"));
                }
                let must = !dead_producers[p as usize] || s < sent;
                let may = must || s == sent; // the put a dead producer was in
                if n == 0 && must {
                    holes += 1;
                }
                if n > 0 && !may {
                    failures.push(format!(
                        "trial {trial}: ({p}, {s}) delivered but its producer never put it (sent {sent})"
                    ));
                }
            }
        }
        if holes > dead_consumers {
            failures.push(format!(
                "trial {trial}: {holes} messages missing with {dead_consumers} consumers killed"
            ));
        }
        let st = q.stats();
        recovered += st.recovered;
        // A consumer killed between claiming a message and releasing its slot leaves it
        // to the producers, which count it as lost: at most one per killed consumer.
        if st.lost > u64::from(dead_consumers) {
            failures.push(format!(
                "trial {trial}: stats().lost = {} with {dead_consumers} consumers killed",
                st.lost
            ));
        }
        // The survivors emptied it: nothing wedged.
        assert_eq!(q.qsize(), 0, "trial {trial}");
    }
    println!(
        "queue chaos: {trials} trials, {killed_p} producers and {killed_c} consumers killed, {recovered} repairs, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
