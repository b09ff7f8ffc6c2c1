//! Pipe: both directions across processes, one-way pipes, close, poll, and a peer
//! killed while the other end is blocked in recv.

use std::time::{Duration, Instant};

use shm_collections::{Pipe, PipeEnd, PipeOptions, QueueError};
use shm_core::testing::{
    BlockedIn, Task, child_command, child_role, current_tid, wait_until_blocked,
};

#[test]
fn duplex_pipe_both_directions_across_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "echo");
        let end = PipeEnd::from_env("SHM_PIPE").unwrap();
        assert_eq!(end.end(), 1);
        loop {
            match end.recv::<(u32, String)>() {
                Ok((n, s)) => end.send(&(n * 2, s.to_uppercase())).unwrap(),
                Err(QueueError::Closed { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // Bytes too, in the child-to-parent direction only.
        end.send_bytes(b"bye")
            .unwrap_or_else(|e| assert!(matches!(e, QueueError::Closed { .. })));
        return;
    }
    let (mine, theirs) = Pipe::new().unwrap();
    let mut cmd = child_command("duplex_pipe_both_directions_across_processes", "echo");
    theirs.share(&mut cmd, "SHM_PIPE").unwrap();
    let mut kid = cmd.spawn().unwrap();
    drop(theirs);
    for n in 0..500u32 {
        mine.send(&(n, format!("m{n}"))).unwrap();
        let (m, s): (u32, String) = mine.recv().unwrap();
        assert_eq!((m, s), (n * 2, format!("M{n}")));
    }
    // Pipelined: many in flight in both directions.
    for n in 0..200u32 {
        mine.send(&(n, String::new())).unwrap();
    }
    for n in 0..200u32 {
        assert_eq!(mine.recv::<(u32, String)>().unwrap().0, n * 2);
    }
    mine.close();
    assert!(kid.wait().unwrap().success());
}

#[test]
fn one_way_pipe_across_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "sender");
        let end = PipeEnd::from_env("SHM_PIPE").unwrap();
        assert!(matches!(
            end.recv_bytes(),
            Err(QueueError::WrongDirection { .. })
        ));
        for n in 0..1000u64 {
            end.send_bytes(&n.to_le_bytes()).unwrap();
        }
        end.close();
        return;
    }
    let (rx, tx) = Pipe::with_options(&PipeOptions {
        duplex: false,
        bytes: 512,
        messages: 8,
    })
    .unwrap();
    assert!(matches!(
        rx.send_bytes(b"x"),
        Err(QueueError::WrongDirection { .. })
    ));
    let mut cmd = child_command("one_way_pipe_across_processes", "sender");
    tx.share(&mut cmd, "SHM_PIPE").unwrap();
    let mut kid = cmd.spawn().unwrap();
    let mut buf = Vec::new();
    for n in 0..1000u64 {
        rx.recv_bytes_into(&mut buf).unwrap();
        assert_eq!(buf, n.to_le_bytes());
    }
    assert!(matches!(rx.recv_bytes(), Err(QueueError::Closed { .. })));
    assert!(kid.wait().unwrap().success());
}

#[test]
fn recv_returns_when_the_peer_process_is_killed() {
    if let Some(role) = child_role() {
        assert_eq!(role, "sleeper");
        let end = PipeEnd::from_env("SHM_PIPE").unwrap();
        end.send(&"ready").unwrap();
        end.send(&"last words").unwrap();
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let (mine, theirs) = Pipe::new().unwrap();
    let mut cmd = child_command("recv_returns_when_the_peer_process_is_killed", "sleeper");
    theirs.share(&mut cmd, "SHM_PIPE").unwrap();
    let mut kid = cmd.spawn().unwrap();
    drop(theirs);
    assert_eq!(mine.recv::<String>().unwrap(), "ready");
    let mine = &mine;
    std::thread::scope(|s| {
        let (tx, tid) = std::sync::mpsc::channel();
        let blocked = s.spawn(move || {
            // Reads what the peer sent, then blocks until the peer dies.
            let first = mine.recv::<String>();
            tx.send(current_tid()).unwrap();
            (first, mine.recv::<String>(), Instant::now())
        });
        // Killed only once the reader sleeps in its second recv.
        wait_until_blocked(Task::Thread(tid.recv().unwrap()), BlockedIn::SharedFutex);
        let killed = Instant::now();
        kid.kill().unwrap();
        kid.wait().unwrap();
        let (first, second, woke) = blocked.join().unwrap();
        let waited = woke.saturating_duration_since(killed);
        assert_eq!(first.unwrap(), "last words");
        assert!(
            matches!(second, Err(QueueError::PeerDied { .. })),
            "{second:?}"
        );
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    });
}

#[test]
fn poll_waits_for_a_message_from_another_thread() {
    let (a, b) = Pipe::new().unwrap();
    assert!(!b.poll(Duration::ZERO).unwrap());
    let poller = current_tid();
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            // Sent only once the poll below sleeps: it must be woken, not find it there.
            wait_until_blocked(Task::Thread(poller), BlockedIn::SharedFutex);
            let sent = Instant::now();
            a.send(&1u8).unwrap();
            sent
        });
        assert!(b.poll(Duration::from_secs(60)).unwrap());
        let woke = Instant::now();
        let waited = woke.saturating_duration_since(sender.join().unwrap());
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    });
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    let t = Instant::now();
    assert!(!b.poll(Duration::from_millis(20)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(20));
}

#[test]
fn too_large_and_closed() {
    let (a, b) = Pipe::with_options(&PipeOptions {
        duplex: true,
        bytes: 64,
        messages: 4,
    })
    .unwrap();
    // 4 slots of 40 payload bytes (16 asked for each, rounded up to a 64-byte slot).
    assert_eq!(a.max_message_len(), 160);
    assert!(matches!(
        a.send_bytes(&[0; 161]),
        Err(QueueError::TooLarge {
            len: 161,
            max: 160,
            ..
        })
    ));
    a.send_bytes(&[1; 160]).unwrap();
    b.close();
    assert!(matches!(a.send(&1u8), Err(QueueError::Closed { .. })));
    assert_eq!(b.recv_bytes().unwrap(), [1; 160]);
    assert!(matches!(b.recv_bytes(), Err(QueueError::Closed { .. })));
}
