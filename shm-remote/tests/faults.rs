//! The server failing under the clients: killed and restarted mid-run (typed errors
//! while down, reconnect after, nothing acknowledged lost with append-only
//! persistence), and stopped (SIGSTOP: no call waits past its timeout).

mod common;

use std::time::{Duration, Instant};

use shm_remote::prelude::*;
use shm_remote::{Error, Manager};

/// Wall-clock margin for busy CI machines.
const MARGIN: Duration = Duration::from_secs(5);

#[test]
fn restart_mid_run_typed_errors_then_reconnect() {
    let mut server = common::aof_server();
    let m = Manager::create(&server.url("restart")).unwrap();
    let d = m.dict::<u64, u64>("d").unwrap();
    let l = m.list::<u64>("l").unwrap();
    let v = m.value("v", 0u64).unwrap();
    d.set_patience(Some(Duration::from_secs(2)));
    l.set_patience(Some(Duration::from_secs(2)));
    let mut acked = 0u64;
    for i in 0..200 {
        d.insert(i, i * 2).unwrap();
        l.push(i).unwrap();
        v.update(|x| *x += 1).unwrap();
        acked += 1;
    }
    server.kill();
    // While down: typed errors, quickly, on every kind of call.
    let t = Instant::now();
    for r in [
        d.get(&1).map(|_| ()),
        d.insert(1, 1).map(|_| ()),
        d.update(1, |x| x.unwrap_or(0)).map(|_| ()),
        l.push(1),
        l.len().map(|_| ()),
        v.get().map(|_| ()),
        Manager::connect(&server.url("restart")).map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert!(
            matches!(e, Error::Disconnected { .. } | Error::Timeout { .. }),
            "expected Disconnected or Timeout, found {e:?}"
        );
        assert!(e.is_transient());
    }
    assert!(
        t.elapsed() < Duration::from_secs(2) * 7 + MARGIN,
        "{:?}",
        t.elapsed()
    );
    server.start_again().unwrap();
    // Reconnects; everything acknowledged before the kill is there (AOF).
    // A loaded machine may answer the first call late: transient errors until it does,
    // never another kind.
    let until = Instant::now() + Duration::from_secs(30);
    let first = loop {
        match d.get(&0) {
            Err(e) if e.is_transient() && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => break other,
        }
    };
    assert_eq!(first.unwrap(), Some(0));
    assert_eq!(d.len().unwrap() as u64, acked);
    assert_eq!(d.get(&199).unwrap(), Some(398));
    assert_eq!(l.len().unwrap() as u64, acked);
    assert_eq!(v.get().unwrap(), acked);
    // Writes work again.
    l.push(7).unwrap();
    assert_eq!(
        v.update(|x| {
            *x += 1;
            *x
        })
        .unwrap(),
        acked + 1
    );
}

#[test]
fn restart_under_a_running_client() {
    // A thread writes while the server is killed and restarted twice: every write is
    // acknowledged or a typed error, and every acknowledged one is there after.
    let mut server = common::aof_server();
    let address = server.url("run");
    let m = Manager::create(&address).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, errors) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let d = m.dict::<u64, u64>("d").unwrap();
            d.set_patience(Some(Duration::from_secs(1)));
            let (mut acked, mut errors) = (Vec::new(), 0);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match d.insert(i, i) {
                    Ok(_) => acked.push(i),
                    Err(e) => {
                        assert!(e.is_transient(), "{e:?}");
                        errors += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                i += 1;
            }
            (acked, errors)
        });
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(300));
            server.kill();
            std::thread::sleep(Duration::from_millis(300));
            server.start_again().unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(
        errors > 0,
        "the server was down: some calls must have failed"
    );
    let d = m.dict::<u64, u64>("d").unwrap();
    for i in &acked {
        assert_eq!(d.get(i).unwrap(), Some(*i), "acknowledged insert {i} lost");
    }
}

#[test]
fn a_stopped_server_times_out_every_call() {
    let server = common::server();
    let m = Manager::create(&server.url("stop")).unwrap();
    let patience = Duration::from_millis(500);
    m.set_patience(Some(patience));
    let d = m.dict::<u64, u64>("d").unwrap();
    let v = m.value("v", 0u64).unwrap();
    let l = m.list::<u64>("l").unwrap();
    assert_eq!(d.patience(), Some(patience));
    d.insert(1, 1).unwrap();
    let pid = server.pid().unwrap() as libc::pid_t;
    // SAFETY: plain kill(2) on the server process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let calls: Vec<Box<dyn Fn() -> Result<(), Error> + '_>> = vec![
        Box::new(|| d.get(&1).map(|_| ())),
        Box::new(|| d.update(1, |x| x.unwrap_or(0) + 1).map(|_| ())),
        Box::new(|| v.update(|x| *x += 1)),
        Box::new(|| l.push(1)),
        Box::new(|| l.insert(0, 1)),
    ];
    for (i, call) in calls.iter().enumerate() {
        let t = Instant::now();
        let e = call().unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(e, Error::Timeout { .. }),
            "call {i}: expected Timeout, found {e:?}"
        );
        assert!(took < patience + MARGIN, "call {i} waited {took:?}");
        assert!(took >= patience / 2, "call {i} returned after {took:?}");
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // The connections that timed out were dropped (a late reply never answers another
    // call): the next calls see the right values.
    assert_eq!(d.get(&1).unwrap().map(|x| x >= 1), Some(true));
    assert!(v.get().unwrap() <= 1);
    d.insert(2, 20).unwrap();
    assert_eq!(d.get(&2).unwrap(), Some(20));
}

#[test]
fn an_unreachable_address_fails_fast() {
    // A port nobody listens on: Disconnected, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let e = Manager::connect(&format!("redis://127.0.0.1:{port}/x")).unwrap_err();
    assert!(matches!(e, Error::Disconnected { .. }), "{e:?}");
    assert!(t.elapsed() < MARGIN);
}
