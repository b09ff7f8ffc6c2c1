//! What one lock round and one queue round cost on the server, counted through the
//! server's `INFO commandstats`: the commands the scripts run decide the latency of
//! the bench rows (each `redis.call` costs ~1-3 us inside a script).

#[allow(unused_imports)]
mod kids;

use std::collections::HashMap;

use kids::{conn, raw, server};
use shm_remote::conn::Conn;
use shm_remote::queue::Queue;
use shm_remote::sync::Lock;

/// Calls per command since the last `CONFIG RESETSTAT`.
fn calls(conn: &Conn) -> HashMap<String, u64> {
    let text: String = raw(conn, redis::cmd("INFO").arg("commandstats"));
    let mut out = HashMap::new();
    for line in text.lines() {
        // cmdstat_get:calls=12,usec=...
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let n = rest
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), n);
    }
    out
}

fn reset(conn: &Conn) {
    let () = raw(conn, redis::cmd("CONFIG").arg("RESETSTAT"));
}

const ROUNDS: u64 = 50;

#[test]
fn a_lock_round_is_two_scripts_of_seven_commands() {
    let server = server();
    let (conn, _) = conn(&server);
    let lock = Lock::open(&conn, "counted").unwrap();
    drop(lock.lock().unwrap()); // scripts loaded
    reset(&conn);
    for _ in 0..ROUNDS {
        drop(lock.lock().unwrap());
    }
    let c = calls(&conn);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    // Two round trips: the acquire and the release script, nothing else (no PING,
    // no pooled-connection check, no subscription).
    let renewals = get("pexpire"); // a keeper tick during the test: one more script
    assert_eq!(get("evalsha"), 2 * ROUNDS + renewals, "{c:?}");
    let inner: u64 = ["get", "hget", "hmget", "set", "hset", "hincrby", "del"]
        .iter()
        .map(|k| get(k))
        .sum();
    // Acquire: SET NX, HMGET, HINCRBY, HSET; release: GET, DEL, HSET (it was 9: a GET
    // before the SET and two HGETs).
    assert!(
        inner <= 7 * ROUNDS + renewals,
        "{inner} commands in {ROUNDS} lock rounds (expected at most 7 each): {c:?}"
    );
}

#[test]
fn a_plain_queue_round_acknowledges_nothing_and_trims_whole_nodes() {
    let server = server();
    let (conn, _) = conn(&server);
    let q = Queue::<u64>::open(&conn, "counted").unwrap();
    q.put(&0).unwrap();
    q.get().unwrap();
    reset(&conn);
    for i in 0..10 * ROUNDS {
        q.put(&i).unwrap();
        assert_eq!(q.get().unwrap(), i);
    }
    let c = calls(&conn);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    assert_eq!(get("evalsha"), 20 * ROUNDS, "{c:?}");
    // NOACK: a plain queue's entries never enter the pending list.
    assert_eq!(get("xack"), 0, "{c:?}");
    assert_eq!(get("xreadgroup"), 10 * ROUNDS, "{c:?}");
    // Trimming by whole nodes still bounds the stream (100 entries per node).
    let len: u64 = raw(
        &conn,
        redis::cmd("XLEN").arg(format!("{}:d:counted", conn.address().namespace)),
    );
    assert!(len <= 200, "{len} entries left in the stream");
    // Nothing pending, nothing queued.
    assert_eq!(q.qsize().unwrap(), 0);
}
