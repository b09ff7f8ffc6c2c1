//! Queue, JoinableQueue, SimpleQueue, ByteQueue: a VecDeque model (proptest), several
//! producer and consumer processes, timeouts, close, join across processes, peers
//! killed while blocked.

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shm_collections::{ByteQueue, JoinableQueue, Queue, QueueError, SimpleQueue};
use shm_core::testing::{
    BlockedIn, Task, UnlinkGuard, child_command, child_role, current_tid, env, unique_name,
    wait_line, wait_until_blocked,
};

// ---------- one process: the model ----------

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    PutMany(Vec<Vec<u8>>),
    Get,
    GetMany(usize),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly one slot (40 bytes), sometimes several, now and then too large (> 240).
    let msg = || {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..60),
            1 => proptest::collection::vec(any::<u8>(), 0..260),
        ]
    };
    prop_oneof![
        3 => msg().prop_map(Op::Put),
        1 => proptest::collection::vec(msg(), 0..5).prop_map(Op::PutMany),
        3 => Just(Op::Get),
        1 => (0usize..5).prop_map(Op::GetMany),
    ]
}

const MAX_MSGS: usize = 6;
const BYTES: usize = 200;
/// Payload bytes per slot of that queue: 200 / 6 rounded up to 8 is 40, plus the 24-byte
/// slot header makes a 64-byte slot.
const PER_SLOT: usize = 40;

/// Slots a message takes.
fn slots(len: usize) -> usize {
    len.div_ceil(PER_SLOT).max(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn byte_queue_matches_a_bounded_vecdeque(ops in proptest::collection::vec(op(), 1..80)) {
        let q = ByteQueue::create(MAX_MSGS, BYTES).unwrap();
        prop_assert_eq!(q.max_message_len(), MAX_MSGS * PER_SLOT);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let used = |m: &VecDeque<Vec<u8>>| m.iter().map(|x| slots(x.len())).sum::<usize>();
        let fits = |m: &VecDeque<Vec<u8>>, len: usize| used(m) + slots(len) <= MAX_MSGS;
        for op in ops {
            match op {
                Op::Put(msg) => {
                    let r = q.put_nowait(&msg);
                    if msg.len() > MAX_MSGS * PER_SLOT {
                        prop_assert!(matches!(r, Err(QueueError::TooLarge { .. })), "{r:?}");
                    } else if fits(&model, msg.len()) {
                        prop_assert!(r.is_ok(), "{r:?}");
                        model.push_back(msg);
                    } else {
                        prop_assert!(matches!(r, Err(QueueError::Full { .. })), "{r:?}");
                    }
                }
                Op::PutMany(msgs) => {
                    // Only when everything fits (put_many waits otherwise).
                    let mut m2 = model.clone();
                    let all_fit = msgs.iter().all(|x| {
                        let ok = fits(&m2, x.len());
                        m2.push_back(x.clone());
                        ok
                    });
                    if all_fit {
                        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                        q.put_many(&refs).unwrap();
                        model = m2;
                    }
                }
                Op::Get => match q.get_nowait() {
                    Ok(m) => prop_assert_eq!(Some(m), model.pop_front()),
                    Err(QueueError::Empty { .. }) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                },
                Op::GetMany(k) => {
                    if !model.is_empty() {
                        let mut got = Vec::new();
                        let n = q.get_many_with(k, |m| got.push(m.to_vec())).unwrap();
                        let want: Vec<_> = (0..k.max(1)).map_while(|_| model.pop_front()).collect();
                        prop_assert_eq!(n, want.len());
                        prop_assert_eq!(got, want);
                    }
                }
            }
            prop_assert_eq!(q.qsize(), model.len());
            let s = q.stats();
            prop_assert_eq!(s.bytes_used as usize, used(&model) * PER_SLOT);
        }
    }

    #[test]
    fn typed_queue_round_trips_values(values in proptest::collection::vec((any::<u32>(), ".{0,20}", proptest::option::of(any::<f64>())), 0..30)) {
        let q: Queue<(u32, String, Option<f64>)> = Queue::create(64, 64 * 1024).unwrap();
        q.put_many(&values).unwrap();
        let mut back = q.drain().unwrap();
        back.extend(q.drain().unwrap());
        prop_assert_eq!(back.len(), values.len());
        for (a, b) in back.iter().zip(&values) {
            prop_assert_eq!(a.0, b.0);
            prop_assert_eq!(&a.1, &b.1);
            prop_assert_eq!(a.2.map(f64::to_bits), b.2.map(f64::to_bits));
        }
    }
}

#[test]
fn wrong_type_and_wrong_variant_are_refused() {
    let q: Queue<u64> = Queue::create(4, 256).unwrap();
    let name = q.name().unwrap();
    assert!(Queue::<String>::open(name).is_err());
    assert!(JoinableQueue::<u64>::open(name).is_err());
    assert!(SimpleQueue::<u64>::open(name).is_err());
    assert!(ByteQueue::open(name).is_err());
    assert!(Queue::<u64>::open(name).is_ok());
}

#[test]
fn invalid_sizes_are_refused() {
    assert!(matches!(
        ByteQueue::create(0, 1024),
        Err(QueueError::InvalidSize { .. })
    ));
    assert!(matches!(
        ByteQueue::create(4, 8),
        Err(QueueError::InvalidSize { .. })
    ));
}

#[test]
fn timeouts_end_on_time() {
    let q: Queue<u8> = Queue::create(1, 64).unwrap();
    let t = Instant::now();
    let r = q.get_timeout(Duration::from_millis(30));
    assert!(matches!(r, Err(QueueError::Empty { .. })), "{r:?}");
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(30) && e < Duration::from_secs(2),
        "{e:?}"
    );
    q.put(&1).unwrap();
    let t = Instant::now();
    let r = q.put_timeout(&2, Duration::from_millis(30));
    assert!(matches!(r, Err(QueueError::Full { .. })), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get_timeout(Duration::from_millis(30)).unwrap(), 1);
}

#[test]
fn close_wakes_blocked_threads() {
    let q: Queue<u8> = Queue::create(1, 64).unwrap();
    let full: Queue<u8> = Queue::create(1, 64).unwrap();
    full.put(&0).unwrap();
    let (q, full) = (&q, &full);
    std::thread::scope(|s| {
        let (tx, tids) = std::sync::mpsc::channel();
        let getter = s.spawn({
            let tx = tx.clone();
            move || {
                tx.send(current_tid()).unwrap();
                q.get()
            }
        });
        let putter = s.spawn(move || {
            tx.send(current_tid()).unwrap();
            full.put(&1)
        });
        // Both asleep in the queue before the close, so that close must wake them.
        for tid in tids.iter().take(2) {
            wait_until_blocked(Task::Thread(tid), BlockedIn::SharedFutex);
        }
        q.close();
        full.close();
        let r = getter.join().unwrap();
        assert!(matches!(r, Err(QueueError::Closed { .. })), "{r:?}");
        let r = putter.join().unwrap();
        assert!(matches!(r, Err(QueueError::Closed { .. })), "{r:?}");
    });
    // Drains what is left, then Closed.
    assert_eq!(full.get().unwrap(), 0);
    assert!(matches!(full.get(), Err(QueueError::Closed { .. })));
}

#[test]
fn blocked_get_is_woken_by_a_put_from_another_thread() {
    let q: Queue<u32> = Queue::create(4, 256).unwrap();
    let mut q2: Queue<u32> = Queue::open(q.name().unwrap()).unwrap();
    q2.set_spin(0);
    let q2 = &q2;
    std::thread::scope(|s| {
        let (tx, tid) = std::sync::mpsc::channel();
        let h = s.spawn(move || {
            tx.send(current_tid()).unwrap();
            (q2.get().unwrap(), Instant::now())
        });
        // Asleep first: the put must wake a sleeper, not meet a getter still on its way.
        wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
        let put = Instant::now();
        q.put(&42).unwrap();
        let (v, got) = h.join().unwrap();
        assert_eq!(v, 42);
        let waited = got.saturating_duration_since(put);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    });
}

#[test]
fn simple_queue_basics() {
    let q = SimpleQueue::<Vec<String>>::create(8, 1024).unwrap();
    assert!(q.empty());
    q.put(&vec!["a".into(), "b".into()]).unwrap();
    assert!(!q.empty());
    assert_eq!(q.get().unwrap(), ["a", "b"]);
}

// ---------- several processes ----------

const PER_PRODUCER: u32 = 3000;

#[test]
fn producers_and_consumers_in_processes_deliver_the_exact_multiset() {
    if let Some(role) = child_role() {
        let q: Queue<(u32, u32)> = Queue::open(&env("SHM_Q")).unwrap();
        match role.as_str() {
            "producer" => {
                let id: u32 = env("SHM_ID").parse().unwrap();
                for seq in 0..PER_PRODUCER {
                    if seq % 7 == 0 {
                        let batch: Vec<_> = (seq..(seq + 3).min(PER_PRODUCER))
                            .map(|s| (id, s))
                            .collect();
                        q.put_many(&batch).unwrap();
                    } else if seq % 7 < 3 {
                        continue; // sent in the batch
                    } else {
                        q.put(&(id, seq)).unwrap();
                    }
                }
            }
            "consumer" => {
                let mut last: HashMap<u32, u32> = HashMap::new();
                let mut out = String::new();
                loop {
                    let batch = match q.get_many(5) {
                        Ok(b) => b,
                        Err(QueueError::Closed { .. }) => break,
                        Err(e) => panic!("{e}"),
                    };
                    for (p, s) in batch {
                        // FIFO per producer, as seen by each consumer.
                        if let Some(prev) = last.insert(p, s) {
                            assert!(s > prev, "producer {p}: {s} after {prev}");
                        }
                        out.push_str(&format!("{p} {s}\n"));
                    }
                }
                print!("{out}");
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    for (producers, consumers) in [(1u32, 1u32), (2, 3), (4, 4), (3, 1), (1, 4)] {
        let q: Queue<(u32, u32)> = Queue::create(64, 4096).unwrap();
        let name = q.name().unwrap().to_owned();
        let spawn = |role: &str, id: u32| -> Child {
            let mut cmd = child_command(
                "producers_and_consumers_in_processes_deliver_the_exact_multiset",
                role,
            );
            cmd.env("SHM_Q", &name).env("SHM_ID", id.to_string());
            cmd.stdout(Stdio::piped());
            cmd.spawn().unwrap()
        };
        let cons: Vec<Child> = (0..consumers).map(|i| spawn("consumer", i)).collect();
        let prods: Vec<Child> = (0..producers).map(|i| spawn("producer", i)).collect();
        for p in prods {
            assert!(p.wait_with_output().unwrap().status.success());
        }
        q.close();
        let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
        for c in cons {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                // The child harness's own lines are discarded (-q), only ours remain.
                let Some((p, s)) = line.split_once(' ') else {
                    continue;
                };
                let (Ok(p), Ok(s)) = (p.parse::<u32>(), s.parse::<u32>()) else {
                    continue;
                };
                *seen.entry((p, s)).or_default() += 1;
            }
        }
        assert_eq!(
            seen.len() as u32,
            producers * PER_PRODUCER,
            "{producers}x{consumers}: every message delivered"
        );
        assert!(
            seen.values().all(|n| *n == 1),
            "{producers}x{consumers}: no message delivered twice"
        );
        let st = q.stats();
        assert_eq!(st.puts, u64::from(producers * PER_PRODUCER));
        assert_eq!(st.gets, st.puts);
        assert_eq!(st.lost, 0);
    }
}

#[test]
fn joinable_queue_join_across_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "worker");
        let q: JoinableQueue<u64> = JoinableQueue::open(&env("SHM_Q")).unwrap();
        let results: Queue<u64> = Queue::open(&env("SHM_R")).unwrap();
        loop {
            match q.get() {
                Ok(v) => {
                    results.put(&(v * v)).unwrap();
                    q.task_done().unwrap();
                }
                Err(QueueError::Closed { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        return;
    }
    let q: JoinableQueue<u64> = JoinableQueue::create(16, 4096).unwrap();
    let results: Queue<u64> = Queue::create(256, 16384).unwrap();
    let kids: Vec<Child> = (0..2)
        .map(|_| {
            let mut cmd = child_command("joinable_queue_join_across_processes", "worker");
            cmd.env("SHM_Q", q.name().unwrap())
                .env("SHM_R", results.name().unwrap());
            cmd.spawn().unwrap()
        })
        .collect();
    for v in 0..100u64 {
        q.put(&v).unwrap();
    }
    q.join_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    // Every task was done, so every result is in.
    let mut got = results.drain().unwrap();
    got.sort();
    assert_eq!(got, (0..100u64).map(|v| v * v).collect::<Vec<_>>());
    q.close();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    assert!(matches!(
        q.task_done(),
        Err(QueueError::TaskDoneTooManyTimes { .. })
    ));
}

#[test]
fn close_reaches_a_process_blocked_in_get() {
    if let Some(role) = child_role() {
        assert_eq!(role, "blocked");
        let q: Queue<u8> = Queue::open(&env("SHM_Q")).unwrap();
        println!("BLOCKING");
        let r = q.get();
        assert!(matches!(r, Err(QueueError::Closed { .. })), "{r:?}");
        return;
    }
    let name = unique_name("q-close");
    let _g = UnlinkGuard::new(&name);
    let q: Queue<u8> = Queue::create_named(&name, 4, 256).unwrap();
    let mut cmd = child_command("close_reaches_a_process_blocked_in_get", "blocked");
    cmd.env("SHM_Q", &name).stdout(Stdio::piped());
    let mut kid = cmd.spawn().unwrap();
    wait_line(&mut kid, "BLOCKING");
    wait_until_blocked(Task::Process(kid.id()), BlockedIn::SharedFutex);
    let t = Instant::now();
    q.close();
    assert!(kid.wait().unwrap().success());
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn peers_killed_while_blocked_leave_the_queue_usable() {
    if let Some(role) = child_role() {
        let q: Queue<u32> = Queue::open(&env("SHM_Q")).unwrap();
        println!("BLOCKING");
        match role.as_str() {
            "getter" => {
                let _ = q.get();
            }
            "putter" => {
                let _ = q.put(&99);
            }
            other => panic!("unknown role {other}"),
        }
        panic!("{role} was not expected to return");
    }
    let q: Queue<u32> = Queue::create(2, 256).unwrap();
    let name = q.name().unwrap().to_owned();
    let spawn = |role| {
        let mut cmd = child_command("peers_killed_while_blocked_leave_the_queue_usable", role);
        cmd.env("SHM_Q", &name).stdout(Stdio::piped());
        let mut kid = cmd.spawn().unwrap();
        wait_line(&mut kid, "BLOCKING");
        wait_until_blocked(Task::Process(kid.id()), BlockedIn::SharedFutex);
        kid
    };
    // A consumer killed while blocked in get: the queue goes on; another consumer (a
    // thread here) blocked at the same time still gets the next message.
    let mut getter = spawn("getter");
    std::thread::scope(|s| {
        let (tx, tid) = std::sync::mpsc::channel();
        let q = &q;
        let waiting = s.spawn(move || {
            tx.send(current_tid()).unwrap();
            q.get_timeout(Duration::from_secs(30))
        });
        wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
        getter.kill().unwrap();
        getter.wait().unwrap();
        let other: Queue<u32> = Queue::open(&name).unwrap();
        other.put(&1).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), 1);
    });
    // A producer killed while blocked in put on a full queue: its message never
    // appears, and the room it waited for is there for the others.
    q.put(&10).unwrap();
    q.put(&11).unwrap();
    let mut putter = spawn("putter");
    putter.kill().unwrap();
    putter.wait().unwrap();
    assert_eq!(q.get().unwrap(), 10);
    assert_eq!(q.get().unwrap(), 11);
    assert!(matches!(q.get_nowait(), Err(QueueError::Empty { .. })));
    q.put(&12).unwrap();
    assert_eq!(q.get().unwrap(), 12);
}

#[test]
fn anonymous_queue_handed_to_a_child_by_descriptor() {
    if let Some(role) = child_role() {
        assert_eq!(role, "echo");
        let q: Queue<String> = Queue::from_env("SHM_QUEUE").unwrap();
        let v = q.get().unwrap();
        q.put(&format!("{v}!")).unwrap();
        return;
    }
    let q: Queue<String> = shm_core::SharedObject::anonymous(shm_collections::QueueSize {
        messages: 4,
        bytes: 256,
    })
    .unwrap();
    assert_eq!(q.name(), None);
    q.put(&"hi".into()).unwrap();
    let mut cmd = child_command("anonymous_queue_handed_to_a_child_by_descriptor", "echo");
    q.share(&mut cmd, "SHM_QUEUE").unwrap();
    assert!(cmd.status().unwrap().success());
    assert_eq!(q.get().unwrap(), "hi!");
}
