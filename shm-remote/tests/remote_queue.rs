//! Queues: the conformance suite of the `api` queue traits on both backends, then
//! what only Redis has: redelivery of a killed consumer's message (delivery count 2),
//! producers and consumers in several processes, a server restart with append-only
//! persistence (nothing acknowledged lost), hostile entries and keys.

mod kids;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kids::{
    Kid, after_restart, aof_server, child_role, conn, conn_to, env, raw, say, server, unique_name,
};
use shm_remote::Error;
use shm_remote::api::{SharedJoinableQueue, SharedQueue, is_task_done_too_many};
use shm_remote::queue::{JoinableQueue, Queue, QueueOptions};

const LONG: Duration = Duration::from_secs(30);

/// Every operation of an unbounded queue (`q` and `peer`: two handles).
fn queue_suite<Q: SharedQueue<String> + Sync>(q: &Q, peer: &Q) {
    assert!(q.empty().unwrap());
    assert!(matches!(q.get_nowait(), Err(Error::Empty { .. })));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(Error::Empty { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(matches!(
        q.get_many_timeout(3, Duration::from_millis(50)),
        Err(Error::Empty { .. })
    ));
    q.put(&"a".to_string()).unwrap();
    q.put_nowait(&"b".to_string()).unwrap();
    q.put_timeout(&"c".to_string(), LONG).unwrap();
    assert_eq!(q.qsize().unwrap(), 3);
    assert_eq!(peer.get().unwrap(), "a");
    assert_eq!(peer.get_nowait().unwrap(), "b");
    assert_eq!(peer.get_timeout(LONG).unwrap(), "c");
    let many: Vec<String> = (0..2500).map(|i| format!("m{i}")).collect();
    q.put_many(&many).unwrap();
    assert_eq!(peer.qsize().unwrap(), 2500);
    let mut got = peer.get_many(2000).unwrap();
    assert_eq!(got.len(), 2000);
    got.extend(peer.get_many_timeout(1000, LONG).unwrap());
    assert_eq!(got, many);
    // A blocked get is woken by a put from another thread.
    std::thread::scope(|s| {
        let h = s.spawn(|| peer.get_timeout(LONG));
        std::thread::sleep(Duration::from_millis(50));
        q.put(&"late".to_string()).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), "late");
    });
    q.put(&"last".to_string()).unwrap();
    q.close().unwrap();
    assert!(peer.is_closed().unwrap());
    assert!(matches!(
        q.put(&"no".to_string()),
        Err(Error::Closed { .. })
    ));
    assert_eq!(peer.get().unwrap(), "last", "gets drain a closed queue");
    assert!(matches!(peer.get(), Err(Error::Closed { .. })));
}

/// A queue bounded to 2 messages.
fn bounded_suite<Q: SharedQueue<u64> + Sync>(q: &Q) {
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    assert!(matches!(q.put_nowait(&3), Err(Error::Full { .. })));
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(&3, Duration::from_millis(100)),
        Err(Error::Full { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    std::thread::scope(|s| {
        let h = s.spawn(|| q.put_timeout(&3, LONG));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.get().unwrap(), 1);
        h.join().unwrap().unwrap();
    });
    // put_many waits for room as it goes, in order.
    std::thread::scope(|s| {
        let h = s.spawn(|| q.put_many(&[4, 5, 6]));
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(q.get_timeout(LONG).unwrap());
        }
        h.join().unwrap().unwrap();
        assert_eq!(got, [2, 3, 4, 5, 6]);
    });
}

fn joinable_suite<Q: SharedJoinableQueue<u32> + Sync>(q: &Q, peer: &Q) {
    q.join_timeout(Duration::from_millis(10)).unwrap();
    assert!(is_task_done_too_many(&peer.task_done().unwrap_err()));
    q.put_many(&[1, 2]).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(peer.get().unwrap(), 1);
    assert_eq!(peer.get().unwrap(), 2);
    assert_eq!(q.unfinished_tasks().unwrap(), 2, "taken, not done");
    assert_eq!(q.qsize().unwrap(), 0);
    std::thread::scope(|s| {
        let h = s.spawn(|| q.join_timeout(LONG));
        std::thread::sleep(Duration::from_millis(50));
        peer.task_done().unwrap();
        peer.task_done().unwrap();
        h.join().unwrap().unwrap();
    });
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    q.join().unwrap();
    assert!(is_task_done_too_many(&peer.task_done().unwrap_err()));
}

#[test]
fn conformance_queue_local() {
    let q = shm_collections::Queue::<String>::create(4096, 1 << 20).unwrap();
    let p = shm_collections::Queue::<String>::open(q.name().unwrap()).unwrap();
    queue_suite(&q, &p);
    let _ = q.unlink();
    let b = shm_collections::Queue::<u64>::create(2, 1024).unwrap();
    bounded_suite(&b);
    let _ = b.unlink();
}

#[test]
fn conformance_queue_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    queue_suite(
        &Queue::<String>::open(&c, "q").unwrap(),
        &Queue::<String>::open(&c, "q").unwrap(),
    );
    let opts = QueueOptions {
        maxsize: 2,
        ..Default::default()
    };
    bounded_suite(&Queue::<u64>::open_with(&c, "b", opts).unwrap());
}

#[test]
fn conformance_joinable_local() {
    let q = shm_collections::JoinableQueue::<u32>::create(64, 4096).unwrap();
    let p = shm_collections::JoinableQueue::<u32>::open(q.name().unwrap()).unwrap();
    joinable_suite(&q, &p);
    let _ = q.unlink();
}

#[test]
fn conformance_joinable_redis() {
    let srv = server();
    let (c, _) = conn(&srv);
    joinable_suite(
        &JoinableQueue::<u32>::open(&c, "j").unwrap(),
        &JoinableQueue::<u32>::open(&c, "j").unwrap(),
    );
    // The joinable queue is a queue too.
    queue_suite(
        &JoinableQueue::<String>::open(&c, "jq").unwrap(),
        &JoinableQueue::<String>::open(&c, "jq").unwrap(),
    );
}

fn child(role: &str) {
    let c = conn_to(&env("R2_URL"));
    match role {
        "consumer" => {
            let q = JoinableQueue::<String>::open_with(
                &c,
                "tasks",
                QueueOptions {
                    lease: Duration::from_secs(2),
                    ..Default::default()
                },
            )
            .unwrap();
            let d = q.get_timeout_delivery(LONG).unwrap();
            say(&format!("got {} {}", d.value, d.deliveries));
            std::thread::sleep(Duration::from_secs(600)); // killed mid-task
        }
        "producer" => {
            let q = Queue::<u64>::open(&c, "mp").unwrap();
            let base: u64 = env("R2_BASE").parse().unwrap();
            for chunk in (base..base + 1000).collect::<Vec<_>>().chunks(100) {
                q.put_many(chunk).unwrap();
            }
            q.put(&u64::MAX).unwrap(); // one end marker per producer
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn kill_9_of_a_consumer_mid_task_redelivers_once_with_count_2() {
    if let Some(role) = child_role() {
        return child(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let q = JoinableQueue::<String>::open_with(
        &c,
        "tasks",
        QueueOptions {
            lease: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();
    q.put(&"job-1".to_string()).unwrap();
    let mut kid = Kid::spawn(
        "kill_9_of_a_consumer_mid_task_redelivers_once_with_count_2",
        "consumer",
        &[("R2_URL", &url)],
    );
    assert_eq!(kid.wait_line("got ", LONG), "job-1 1");
    // While the consumer lives (its keeper renews), nobody else gets the message.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(3000)),
        Err(Error::Empty { .. })
    ));
    kid.kill();
    let t = Instant::now();
    let d = q.get_timeout_delivery(LONG).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!((d.value.as_str(), d.deliveries), ("job-1", 2));
    assert!(d.is_redelivery());
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    q.task_done().unwrap();
    q.join_timeout(LONG).unwrap();
    // Redelivered once: nothing more to take.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(1200)),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn producers_in_several_processes_lose_and_duplicate_nothing() {
    if let Some(role) = child_role() {
        return child(&role);
    }
    let srv = server();
    let (c, url) = conn(&srv);
    let q = Queue::<u64>::open(&c, "mp").unwrap();
    let kids: Vec<Kid> = (0..3u64)
        .map(|i| {
            Kid::spawn(
                "producers_in_several_processes_lose_and_duplicate_nothing",
                "producer",
                &[("R2_URL", &url), ("R2_BASE", &(i * 10_000).to_string())],
            )
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut ends = 0;
    while ends < 3 {
        for v in q.get_many_timeout(500, LONG).unwrap() {
            if v == u64::MAX {
                ends += 1;
            } else {
                assert!(seen.insert(v), "duplicate {v}");
            }
        }
    }
    for k in kids {
        k.join_ok(LONG);
    }
    let want: BTreeSet<u64> = (0..3u64)
        .flat_map(|i| i * 10_000..i * 10_000 + 1000)
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn a_server_restart_with_aof_loses_nothing_acknowledged() {
    let mut srv = aof_server();
    let (c, _) = conn(&srv);
    let q = JoinableQueue::<u64>::open(&c, "durable").unwrap();
    q.put_many(&(0..500).collect::<Vec<_>>()).unwrap();
    assert_eq!(q.get().unwrap(), 0);
    q.task_done().unwrap();
    srv.kill();
    let t = Instant::now();
    for r in [
        q.put(&1000),
        q.get_timeout(Duration::from_secs(1)).map(drop),
        q.join_timeout(Duration::from_secs(1)),
    ] {
        assert!(
            matches!(r, Err(Error::Disconnected { .. } | Error::Timeout { .. })),
            "{r:?}"
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "no hang: {:?}",
        t.elapsed()
    );
    srv.start_again().unwrap();
    // Every acknowledged put is back; the acknowledged task stays done.
    assert_eq!(after_restart(|| q.unfinished_tasks()), 499);
    let mut got = Vec::new();
    while got.len() < 499 {
        got.extend(q.get_many_timeout(1000, LONG).unwrap());
    }
    assert_eq!(got, (1..500).collect::<Vec<_>>());
}

#[test]
fn hostile_entries_and_keys_give_typed_errors() {
    let srv = server();
    let (c, _) = conn(&srv);
    let ns = c.address().namespace.clone();
    let q = Queue::<String>::open(&c, "h").unwrap();
    let key = format!("{ns}:d:h");
    // An entry without our field: dropped and counted.
    let _: String = raw(&c, redis::cmd("XADD").arg(&key).arg("*").arg("x").arg("1"));
    q.put(&"ok".to_string()).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), "ok");
    assert_eq!(q.lost().unwrap(), 1);
    // Bytes that are no String.
    let _: String = raw(
        &c,
        redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("d")
            .arg(&[0xff_u8, 0xff, 0xff][..]),
    );
    assert!(matches!(q.get_timeout(LONG), Err(Error::Corrupted { .. })));
    assert!(
        q.empty().unwrap(),
        "the bad message is dropped, the queue goes on"
    );
    // A stream that is no stream.
    let q2 = Queue::<u8>::open(&c, "w").unwrap();
    let _: i64 = raw(&c, redis::cmd("DEL").arg(format!("{ns}:d:w")));
    let () = raw(&c, redis::cmd("SET").arg(format!("{ns}:d:w")).arg("x"));
    for r in [q2.put(&1), q2.get_nowait().map(drop), q2.qsize().map(drop)] {
        assert!(
            matches!(r, Err(Error::WrongType { .. } | Error::Corrupted { .. })),
            "{r:?}"
        );
    }
    // At open, too.
    assert!(matches!(
        Queue::<u8>::open(&c, "w"),
        Err(Error::WrongType { .. })
    ));
    // Another element type.
    assert!(matches!(
        Queue::<u64>::open(&c, "h"),
        Err(Error::WrongType { .. })
    ));
    // A config that is no number.
    let _q3 = Queue::<u8>::open(&c, "cfg").unwrap();
    let _: i64 = raw(
        &c,
        redis::cmd("HSET")
            .arg(format!("{ns}:qc:cfg"))
            .arg("maxsize")
            .arg("lots"),
    );
    assert!(matches!(
        Queue::<u8>::open(&c, "cfg"),
        Err(Error::Corrupted { .. })
    ));
    let _ = unique_name("unused");
}
