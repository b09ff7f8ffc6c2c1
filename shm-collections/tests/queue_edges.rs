//! Edges of the queue ring and the pipe (issue 17): a closed ring whose head slot is
//! claimed and never published (hostile bytes, and a producer killed mid-put), forged
//! ring positions and sequence words, huge timeouts, forged pipe owners, the timed and
//! untimed forms' errors, the default-sized queue.
//!
//! The ring's words are written through the object's payload: the control block is at
//! payload offset 0 of a queue (tail at 0, head at 64, slots at 128), the participant
//! table of 64 entries of 64 bytes at 256, the slots at 256 + 4096 (a sequence word
//! first).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shm_collections::{ByteQueue, Pipe, Queue, QueueError, QueueSize, SimpleQueue};
use shm_core::identity::Identity;
use shm_core::testing::{child_command, child_role};
use shm_core::{Object, SharedObject};

const TAIL: usize = 0;
const HEAD: usize = 64;
const TABLE: usize = 256;
const SLOTS: usize = TABLE + 64 * 64;

fn read_u64(o: &Object, at: usize) -> u64 {
    let mut b = [0u8; 8];
    o.read_at(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn write_u64(o: &Object, at: usize, v: u64) {
    o.write_at(at, &v.to_le_bytes()).unwrap();
}

/// Offset of the sequence word of the slot of position `pos`.
fn seq_at(o: &Object, pos: u64) -> usize {
    let slots = read_u64(o, 128);
    let stride = read_u64(o, 136);
    SLOTS + ((pos % slots) * stride) as usize
}

/// Runs `f` on a thread and fails (instead of hanging the suite) if it has not returned
/// within `limit`: the defects here were endless loops.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the call did not return within {limit:?}"))
}

fn corrupted<T: std::fmt::Debug>(r: &Result<T, QueueError>) -> bool {
    matches!(r, Err(QueueError::Corrupted { .. }))
}

// ---- item 7: livelock after close ----

#[test]
fn closed_ring_with_an_unpublished_head_ends_timed_gets() {
    let q = <ByteQueue as SharedObject>::anonymous(QueueSize {
        messages: 4,
        bytes: 256,
    })
    .unwrap();
    q.put(b"one").unwrap();
    // Slot 0 back to "free for lap 0": claimed (tail 1) and never published.
    let o = q.object();
    write_u64(o, seq_at(o, 0), 0);
    q.close();
    let r = within(Duration::from_secs(20), move || {
        let t = Instant::now();
        let r = q.get_timeout(Duration::from_millis(10));
        (r, t.elapsed())
    });
    // No live producer covers the slot: it is buried and the drained, closed ring
    // says so (a timeout would do as well; spinning for ever would not).
    assert!(
        matches!(
            r.0,
            Err(QueueError::Closed { .. } | QueueError::Empty { .. })
        ),
        "{r:?}"
    );
    assert!(r.1 < Duration::from_secs(10), "{r:?}");
}

#[test]
fn closed_ring_with_a_killed_producers_claim_ends_timed_gets() {
    if let Some(role) = child_role() {
        assert_eq!(role, "claim_and_hang");
        // A producer that claims the tail the way `put` does (intent first, then the
        // tail) and stops before publishing: killed there by the parent.
        let q = ByteQueue::open(&std::env::var("SHM_Q").unwrap()).unwrap();
        q.put(b"registers this thread").unwrap();
        let o = q.object();
        let me = Identity::current_thread();
        let entry = (0..64)
            .map(|i| TABLE + i * 64)
            .find(|&e| read_u64(o, e) as u32 == me.id)
            .expect("the put registered this thread");
        let t = read_u64(o, TAIL);
        write_u64(o, entry + 24, 1); // prod_k
        write_u64(o, entry + 16, t); // prod_pos
        write_u64(o, TAIL, t + 1);
        // Not println!: the harness captures that; the parent reads the real stdout.
        let mut out = std::io::stdout();
        std::io::Write::write_all(&mut out, b"claimed\n").unwrap();
        std::io::Write::flush(&mut out).unwrap();
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let q = ByteQueue::create(4, 256).unwrap();
    let mut cmd = child_command(
        "closed_ring_with_a_killed_producers_claim_ends_timed_gets",
        "claim_and_hang",
    );
    cmd.env("SHM_Q", q.name().unwrap())
        .stdout(std::process::Stdio::piped());
    let mut kid = Kid(cmd.spawn().unwrap());
    let kid = &mut kid.0;
    // The child's harness prints its own lines first: read up to ours.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(kid.stdout.take().unwrap()));
    let claimed = lines.any(|l| l.is_ok_and(|l| l.contains("claimed")));
    assert!(claimed, "the child did not claim");
    assert_eq!(q.get().unwrap(), b"registers this thread");
    q.close();
    // The claim's owner lives: a timed get waits for it, and ends on time.
    let name = q.name().unwrap().to_owned();
    let r = within(Duration::from_secs(20), move || {
        let q = ByteQueue::open(&name).unwrap();
        let t = Instant::now();
        (q.get_timeout(Duration::from_millis(100)), t.elapsed())
    });
    assert!(matches!(r.0, Err(QueueError::Empty { .. })), "{r:?}");
    assert!(r.1 >= Duration::from_millis(100), "{r:?}");
    kid.kill().unwrap();
    kid.wait().unwrap();
    // Dead: its claim is buried and the closed, drained queue says `Closed`.
    let name = q.name().unwrap().to_owned();
    let r = within(Duration::from_secs(20), move || {
        ByteQueue::open(&name)
            .unwrap()
            .get_timeout(Duration::from_secs(5))
    });
    assert!(matches!(r, Err(QueueError::Closed { .. })), "{r:?}");
    assert_eq!(q.stats().recovered, 1);
}

/// A child killed when the test ends, passed or failed (it sleeps long).
struct Kid(std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- item 8: forged positions and sequence words ----

fn small_queue() -> Queue<u64> {
    <Queue<u64> as SharedObject>::anonymous(QueueSize {
        messages: 4,
        bytes: 256,
    })
    .unwrap()
}

#[test]
fn a_tail_forged_to_the_end_is_corrupted_not_full() {
    let q = small_queue();
    write_u64(q.object(), TAIL, u64::MAX);
    assert_eq!(q.qsize(), 0);
    assert!(corrupted(&q.put_nowait(&1)), "{:?}", q.put_nowait(&1));
    assert!(corrupted(&q.put_timeout(&1, Duration::from_secs(5))));
    assert!(corrupted(&q.get_nowait()));
}

#[test]
fn a_forged_simple_queue_tail_does_not_block_put() {
    let q = <SimpleQueue<u64> as SharedObject>::anonymous(QueueSize {
        messages: 4,
        bytes: 256,
    })
    .unwrap();
    write_u64(q.object(), TAIL, u64::MAX);
    let r = within(Duration::from_secs(20), move || q.put(&1));
    assert!(corrupted(&r), "{r:?}");
}

#[test]
fn a_head_forged_to_the_end_is_corrupted_for_consumers() {
    let q = small_queue();
    write_u64(q.object(), HEAD, u64::MAX);
    // The put path reads no head (it would cost every put the consumers' line); the
    // message is not lost silently: every get says the ring is corrupted.
    let _ = q.put_nowait(&1);
    assert!(corrupted(&q.get_nowait()), "{:?}", q.get_nowait());
    assert!(corrupted(&q.get_timeout(Duration::from_secs(5))));
    let r = within(Duration::from_secs(20), move || q.get());
    assert!(corrupted(&r), "{r:?}");
}

#[test]
fn a_tail_behind_the_head_is_corrupted() {
    let q = small_queue();
    for i in 0..6 {
        q.put(&i).unwrap();
        q.get().unwrap();
    }
    write_u64(q.object(), TAIL, 3);
    assert!(corrupted(&q.get_nowait()), "{:?}", q.get_nowait());
    assert!(corrupted(&q.get_timeout(Duration::from_secs(5))));
}

#[test]
fn a_tail_more_than_a_lap_ahead_is_corrupted() {
    let q = small_queue();
    // Head 0, tail 5 on 4 slots: the sequence words look like the previous lap.
    write_u64(q.object(), TAIL, 5);
    assert!(corrupted(&q.put_nowait(&1)), "{:?}", q.put_nowait(&1));
    assert!(corrupted(&q.put_timeout(&1, Duration::from_secs(5))));
    assert!(corrupted(&q.get_nowait()), "{:?}", q.get_nowait());
}

#[test]
fn sequence_words_two_laps_old_are_corrupted() {
    let q = small_queue();
    for i in 0..8 {
        q.put(&i).unwrap();
        q.get().unwrap();
    }
    // Head = tail = 8: slot 0 should read "free for lap 8"; forge "free for lap 0".
    let o = q.object();
    write_u64(o, seq_at(o, 8), 0);
    assert!(corrupted(&q.get_nowait()), "{:?}", q.get_nowait());
    assert!(corrupted(&q.put_nowait(&1)), "{:?}", q.put_nowait(&1));
    assert!(corrupted(&q.get_timeout(Duration::from_secs(5))));
}

#[test]
fn an_intact_ring_after_many_laps_is_not_corrupted() {
    // The checks read only what a live ring can hold: no false alarm, full or empty.
    let q = small_queue();
    for lap in 0..50u64 {
        for i in 0..4 {
            q.put_nowait(&(lap * 4 + i)).unwrap();
        }
        assert!(matches!(q.put_nowait(&0), Err(QueueError::Full { .. })));
        for i in 0..4 {
            assert_eq!(q.get_nowait().unwrap(), lap * 4 + i);
        }
        assert!(matches!(q.get_nowait(), Err(QueueError::Empty { .. })));
    }
}

// ---- item 10: huge timeouts mean no deadline ----

#[test]
fn huge_timeouts_wait_without_a_deadline() {
    let (a, b) = Pipe::new().unwrap();
    a.send(&1u8).unwrap();
    assert!(b.poll(Duration::MAX).unwrap());
    assert_eq!(b.recv_timeout::<u8>(Duration::MAX).unwrap(), 1);
    // poll(MAX) with nothing there waits until the peer closes.
    let r = within(Duration::from_secs(20), move || {
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                a.close();
            });
            b.poll(Duration::MAX)
        })
    });
    assert!(r.unwrap());
    let q = small_queue();
    q.put_timeout(&5, Duration::MAX).unwrap();
    assert_eq!(q.get_timeout(Duration::MAX).unwrap(), 5);
}

// ---- item 11: a forged pipe owner never reaches a syscall ----

/// The pipe's control block in its memfd: found by its two owner words (this
/// process's pid, both ends) after the `duplex` word 1.
fn pipe_ctl(seg: &shm_core::Segment) -> usize {
    let mut bytes = vec![0u8; seg.len().min(1 << 16)];
    seg.read_at(0, &mut bytes).unwrap();
    let pid = u64::from(std::process::id());
    (0..bytes.len() - 24)
        .step_by(8)
        .find(|&at| {
            let w = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
            w(at) & 0xffff_ffff == 1
                && w(at + 8) & 0xffff_ffff == pid
                && w(at + 16) & 0xffff_ffff == pid
        })
        .expect("the pipe's control block")
}

#[test]
fn a_forged_pipe_owner_is_corrupted_not_probed() {
    for forged in [
        1u64 << 31,
        u64::from(u32::MAX),
        0,
        5_000_000_000 & 0xffff_ffff,
    ] {
        let (a, b) = Pipe::new().unwrap();
        // The pipe's memfd, through the descriptor `share` hands a child.
        let mut cmd = std::process::Command::new("true");
        b.share(&mut cmd, "SHM_EDGE_PIPE").unwrap();
        let fd: i32 = cmd
            .get_envs()
            .find(|(k, _)| *k == "SHM_EDGE_PIPE")
            .and_then(|(_, v)| v?.to_str()?.parse().ok())
            .unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
            .unwrap();
        let seg = shm_core::Segment::from_fd(file.into()).unwrap();
        let ctl = pipe_ctl(&seg);
        // End 1's owner: the pid half forged, the token kept.
        let mut w = [0u8; 8];
        seg.read_at(ctl + 16, &mut w).unwrap();
        let v = (u64::from_le_bytes(w) & !0xffff_ffff) | forged;
        seg.write_at(ctl + 16, &v.to_le_bytes()).unwrap();
        // a's recv looks at end 1's holder once its first slice passes.
        let r = a.recv_timeout::<u8>(Duration::from_millis(300));
        if forged == 0 || forged > i32::MAX as u64 {
            assert!(
                matches!(r, Err(QueueError::Corrupted { .. })),
                "{forged}: {r:?}"
            );
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(&forged.to_string()), "{msg}");
        }
        drop(b);
    }
}

// ---- item 16: a queue without sizes ----

#[test]
fn queues_without_sizes_take_the_documented_default() {
    let q: Queue<String> = Queue::new().unwrap();
    assert_eq!(q.max_messages(), QueueSize::DEFAULT.messages);
    assert!(q.max_message_len() >= QueueSize::DEFAULT.bytes);
    for i in 0..4096 {
        q.put_nowait(&i.to_string()).unwrap();
    }
    assert!(matches!(
        q.put_nowait(&"x".into()),
        Err(QueueError::Full { .. })
    ));
    assert_eq!(q.get().unwrap(), "0");
    // A 4 MiB message takes every slot: not now, with 4095 queued, once drained yes.
    let big = "y".repeat(4 << 20);
    assert!(matches!(q.put_nowait(&big), Err(QueueError::Full { .. })));
    assert_eq!(q.drain().unwrap().len(), 4095);
    q.put_nowait(&big).unwrap();
    assert_eq!(q.get().unwrap().len(), 4 << 20);
    assert_eq!(ByteQueue::new().unwrap().max_messages(), 4096);
    let s = shm_collections::SimpleQueue::<u8>::new().unwrap();
    s.put(&1).unwrap();
    assert_eq!(s.get().unwrap(), 1);
    let j = shm_collections::JoinableQueue::<u8>::new().unwrap();
    assert_eq!(j.max_messages(), 4096);
}

// ---- item 17: one error per side, timed or not ----

#[test]
fn timed_and_untimed_forms_give_the_same_error() {
    let q: Queue<u8> = small_queue_u8();
    let nowait = q.get_nowait().unwrap_err();
    let timed = q.get_timeout(Duration::from_millis(20)).unwrap_err();
    match (&nowait, &timed) {
        (QueueError::Empty { waited: w0, .. }, QueueError::Empty { waited: w1, .. }) => {
            assert_eq!((*w0, *w1), (Duration::ZERO, Duration::from_millis(20)));
        }
        other => panic!("{other:?}"),
    }
    assert!(timed.to_string().contains("after waiting 20ms"), "{timed}");
    assert!(!nowait.to_string().contains("waiting"), "{nowait}");
    assert!(matches!(
        q.get_many_timeout(3, Duration::from_millis(5)),
        Err(QueueError::Empty { .. })
    ));
    for i in 0..4 {
        q.put(&i).unwrap();
    }
    let nowait = q.put_nowait(&9).unwrap_err();
    let timed = q.put_timeout(&9, Duration::from_millis(20)).unwrap_err();
    match (&nowait, &timed) {
        (QueueError::Full { waited: w0, .. }, QueueError::Full { waited: w1, .. }) => {
            assert_eq!((*w0, *w1), (Duration::ZERO, Duration::from_millis(20)));
        }
        other => panic!("{other:?}"),
    }
    let (_a, b) = Pipe::new().unwrap();
    assert!(matches!(
        b.recv_timeout::<u8>(Duration::from_millis(20)),
        Err(QueueError::Empty { .. })
    ));
}

fn small_queue_u8() -> Queue<u8> {
    <Queue<u8> as SharedObject>::anonymous(QueueSize {
        messages: 4,
        bytes: 256,
    })
    .unwrap()
}
