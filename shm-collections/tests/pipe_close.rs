//! A pipe end is closed when its last handle anywhere goes (issue 17, item 15): the
//! other end's `recv` gets `Closed` (Python's `EOFError`) after what was sent, in one
//! process, across processes, and when the last holder is killed with SIGKILL.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shm_collections::{Pipe, PipeEnd, QueueError};
use shm_core::testing::{child_command, child_role, say};

/// Runs `f` on a thread; fails instead of hanging when it has not returned in 20 s
/// (the old defect: a `recv` that blocks for ever).
fn within<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the call did not return within 20 s")
}

fn closed<T: std::fmt::Debug>(r: &Result<T, QueueError>) -> bool {
    matches!(r, Err(QueueError::Closed { .. }))
}

/// A child killed when the test ends, passed or failed (the children sleep long).
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child's line `line` (its harness prints lines of its own first).
fn hear(kid: &mut Child, line: &str) {
    let out = kid.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.trim() == line)),
        "the child never said {line:?}"
    );
}

#[test]
fn dropping_the_last_handle_in_one_process_closes_the_pipe() {
    let (a, b) = Pipe::new().unwrap();
    b.send(&1u8).unwrap();
    drop(b);
    let r = within(move || {
        let first = a.recv::<u8>();
        let poll = a.poll(Duration::ZERO);
        (first, a.recv::<u8>(), poll, a.send(&2u8))
    });
    assert_eq!(r.0.unwrap(), 1, "what was sent is read first");
    assert!(closed(&r.1), "{:?}", r.1);
    assert!(r.2.unwrap(), "poll says recv would return at once");
    assert!(closed(&r.3), "{:?}", r.3);
}

#[test]
fn a_blocked_recv_wakes_when_the_last_handle_is_dropped() {
    let (a, b) = Pipe::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let blocked = std::thread::spawn(move || {
        tx.send(()).unwrap();
        let t = Instant::now();
        (a.recv::<u8>(), t.elapsed())
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(b);
    let (r, waited) = within(move || blocked.join().unwrap());
    assert!(closed(&r), "{r:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn a_childs_copy_keeps_the_end_open_until_the_child_drops_it() {
    if let Some(role) = child_role() {
        assert_eq!(role, "drops_its_end");
        let end = PipeEnd::from_env("SHM_PIPE").unwrap();
        end.send(&"hello").unwrap();
        // Wait for the parent's go, then let go of the end while staying alive: the
        // close comes from the drop, not from a dead process.
        assert_eq!(end.recv::<String>().unwrap(), "go");
        drop(end);
        say("dropped");
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let (mine, theirs) = Pipe::new().unwrap();
    let mut cmd = child_command(
        "a_childs_copy_keeps_the_end_open_until_the_child_drops_it",
        "drops_its_end",
    );
    theirs.share(&mut cmd, "SHM_PIPE").unwrap();
    cmd.stdout(Stdio::piped());
    let mut kid = Kid(cmd.spawn().unwrap());
    let kid = &mut kid.0;
    // This process lets go of every handle of end 1: the child's copy holds it.
    drop(theirs);
    drop(cmd);
    assert_eq!(mine.recv::<String>().unwrap(), "hello");
    assert!(matches!(
        mine.recv_timeout::<String>(Duration::from_millis(300)),
        Err(QueueError::Empty { .. })
    ));
    mine.send(&"go").unwrap();
    hear(kid, "dropped");
    let r = within(move || mine.recv::<String>());
    kid.kill().unwrap();
    kid.wait().unwrap();
    assert!(closed(&r), "{r:?}");
}

#[test]
fn killing_the_last_holder_closes_the_pipe() {
    if let Some(role) = child_role() {
        // Holds end 1 only through the descriptor it inherited (it never takes the
        // end, so the end's recorded holder stays the parent, which lives): only the
        // kernel's lock tells that the end is gone once this process is killed.
        assert_eq!(role, "holds_and_sleeps");
        say("holding");
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let (mine, theirs) = Pipe::new().unwrap();
    let mut cmd = child_command(
        "killing_the_last_holder_closes_the_pipe",
        "holds_and_sleeps",
    );
    theirs.share(&mut cmd, "SHM_PIPE").unwrap();
    cmd.stdout(Stdio::piped());
    let mut kid = Kid(cmd.spawn().unwrap());
    let kid = &mut kid.0;
    theirs.send(&7u32).unwrap();
    drop(theirs);
    drop(cmd);
    hear(kid, "holding");
    // Held by the child alone: no close yet.
    assert_eq!(mine.recv::<u32>().unwrap(), 7);
    assert!(matches!(
        mine.recv_timeout::<u32>(Duration::from_millis(300)),
        Err(QueueError::Empty { .. })
    ));
    kid.kill().unwrap();
    kid.wait().unwrap();
    let r = within(move || {
        let t = Instant::now();
        (mine.recv::<u32>(), t.elapsed())
    });
    assert!(closed(&r.0), "{r:?}");
    assert!(r.1 < Duration::from_secs(10), "{r:?}");
}
