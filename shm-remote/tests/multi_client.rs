//! Several processes and threads updating the same objects at once: no lost update on
//! either backend; a client killed (kill -9) in the middle of its updates loses
//! nothing it had acknowledged.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use shm_remote::Manager;
use shm_remote::prelude::*;

const PROCS: usize = 4;
const ROUNDS: u64 = 150;

/// One worker: the same code whatever the address.
fn increment_all(m: &Manager, rounds: u64) {
    let d = m.dict::<String, u64>("counts").unwrap();
    let v = m.value("total", 0u64).unwrap();
    let ns = m.namespace("ns").unwrap();
    let l = m.list::<u64>("slots").unwrap();
    for _ in 0..rounds {
        d.update("hits".into(), |x| x.unwrap_or(0) + 1).unwrap();
        v.update(|x| *x += 1).unwrap();
        ns.update("n", |x: Option<u64>| x.unwrap_or(0) + 1).unwrap();
        l.update(0, |x| x + 1).unwrap();
    }
}

fn concurrent_increments(address: &str) {
    let m = Manager::create(address).unwrap();
    m.list::<u64>("slots").unwrap().push(0).unwrap();
    m.value("total", 0u64).unwrap();
    let mut children = Vec::new();
    for i in 0..PROCS {
        children.push(
            common::child(
                "concurrent_increments_child",
                "incr",
                &[
                    ("SHM_REMOTE_ADDR", m.address()),
                    ("SHM_REMOTE_I", i.to_string()),
                ],
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        );
    }
    // And two threads of this process, sharing the manager's connections.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| increment_all(&m, ROUNDS));
        }
    });
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let n = (PROCS as u64 + 2) * ROUNDS;
    assert_eq!(
        m.dict::<String, u64>("counts")
            .unwrap()
            .get("hits")
            .unwrap(),
        Some(n)
    );
    assert_eq!(m.value("total", 0u64).unwrap().get().unwrap(), n);
    assert_eq!(m.namespace("ns").unwrap().get::<u64>("n").unwrap(), Some(n));
    assert_eq!(m.list::<u64>("slots").unwrap().get(0).unwrap(), Some(n));
}

#[test]
fn concurrent_increments_child() {
    if common::role().as_deref() != Some("incr") {
        return;
    }
    let m = Manager::connect(&std::env::var("SHM_REMOTE_ADDR").unwrap()).unwrap();
    increment_all(&m, ROUNDS);
}

#[test]
fn no_lost_update_redis() {
    if common::role().is_some() {
        return;
    }
    let server = common::server();
    concurrent_increments(&server.url("multi"));
}

#[test]
fn no_lost_update_local() {
    if common::role().is_some() {
        return;
    }
    concurrent_increments(&common::local_name("multi"));
}

/// Child: increments forever, printing `ACK` after each acknowledged update.
#[test]
fn killed_client_child() {
    if common::role().as_deref() != Some("ack") {
        return;
    }
    let m = Manager::connect(&std::env::var("SHM_REMOTE_ADDR").unwrap()).unwrap();
    let d = m.dict::<String, u64>("acks").unwrap();
    let l = m.list::<u64>("log").unwrap();
    let me: u64 = std::env::var("SHM_REMOTE_I").unwrap().parse().unwrap();
    loop {
        d.update("n".into(), |x| x.unwrap_or(0) + 1).unwrap();
        l.push(me).unwrap();
        println!("ACK");
    }
}

#[test]
fn kill_9_of_a_client_loses_nothing_acknowledged() {
    if common::role().is_some() {
        return;
    }
    let server = common::server();
    let address = server.url("kill");
    let m = Manager::create(&address).unwrap();
    let mut acked = 0u64;
    for round in 0..6u64 {
        let mut c = common::child(
            "killed_client_child",
            "ack",
            &[
                ("SHM_REMOTE_ADDR", address.clone()),
                ("SHM_REMOTE_I", round.to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        // Kill after a varying number of acknowledgements: mid-update most times.
        let want = 20 + round * 7;
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while got < want && Instant::now() < deadline {
            match lines.next() {
                // The first ACK shares its line with libtest's "test ... " prefix.
                Some(Ok(l)) if l.ends_with("ACK") => got += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        // Acknowledgements still in the pipe count too.
        for l in lines.map_while(Result::ok) {
            if l.ends_with("ACK") {
                got += 1;
            }
        }
        assert!(got >= want, "child {round} acknowledged only {got}");
        acked += got;
    }
    let d = m.dict::<String, u64>("acks").unwrap();
    let n = d.get("n").unwrap().unwrap();
    let pushed = m.list::<u64>("log").unwrap().len().unwrap() as u64;
    // Each child's last update may have been applied without its ACK printed: at most
    // one more per child, never fewer.
    assert!(n >= acked && n <= acked + 6, "acked {acked}, stored {n}");
    assert!(
        pushed >= acked && pushed <= acked + 6,
        "acked {acked}, pushed {pushed}"
    );
}
