//! Loom model check of the queue ring's algorithm (shm-collections, `queue/ring/`):
//! claim and publish (one CAS on the tail, then the slot's sequence word), take and
//! release (one CAS on the head), close, and the sleepers of both sides (register,
//! look again, sleep on the futex word; a waker looks for sleepers after its change).
//!
//! This is a model of the algorithm, not the ring's code: the ring lives in a shared
//! mapping and reads its words through raw pointers, which loom cannot track. Each
//! function below names the ring function it mirrors, step for step and ordering for
//! ordering, for messages of one slot. Not modelled: messages of several slots, the
//! participant table and dead participants, timed waits (the ring sleeps in slices of
//! 50 ms; here a wait lasts until woken, so a lost wake-up is a deadlock loom reports).
//! The futex is emulated as in `shm_sync::loom_model`: a modelled lock plays the
//! kernel's bucket lock, the wait compares the word under it, a wake removes sleepers.
//!
//! Where the ring's correctness rests on the hardware rather than on the C++ memory
//! model, the model says so (see [`registered`]). Only under `cfg(loom)`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shm-sync --release --test loom_ring
//! ```
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Sequence-word flag of a tombstone (`ring/layout.rs`).
const TOMB: u64 = 1 << 63;

/// The sequence word of a slot free for position `p` (`ring/layout.rs`, `free`).
fn free(p: u64) -> u64 {
    p.wrapping_mul(2) & !TOMB
}

/// The sequence word of a slot published for position `p` (`published`).
fn published(p: u64) -> u64 {
    free(p) | 1
}

/// `a < b` for positions (`before`).
fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// One futex word and the emulated kernel queue of its sleepers.
struct Futex {
    word: AtomicU32,
    /// The bucket lock: tickets of the sleepers, and the next ticket.
    queue: Mutex<(Vec<u64>, u64)>,
    woken: Condvar,
}

impl Futex {
    fn new() -> Futex {
        Futex {
            word: AtomicU32::new(0),
            queue: Mutex::new((Vec::new(), 0)),
            woken: Condvar::new(),
        }
    }

    /// `FUTEX_WAIT`: sleeps while the word still reads `expected`, until woken.
    fn wait(&self, expected: u32) {
        let mut q = self.queue.lock().unwrap();
        if self.word.load(Ordering::Relaxed) != expected {
            return;
        }
        let ticket = q.1;
        q.1 += 1;
        q.0.push(ticket);
        while q.0.contains(&ticket) {
            q = self.woken.wait(q).unwrap();
        }
    }

    /// `FUTEX_WAKE` of every sleeper.
    fn wake_all(&self) {
        let mut q = self.queue.lock().unwrap();
        if !q.0.is_empty() {
            q.0.clear();
            self.woken.notify_all();
        }
    }
}

/// One side's sleepers (`ring/waiting.rs`, `Sleepers`): the futex word, the count of
/// sleepers and the "woken already" flag.
struct Side {
    futex: Futex,
    waiters: AtomicU32,
    pending: AtomicU32,
}

impl Side {
    fn new() -> Side {
        Side {
            futex: Futex::new(),
            waiters: AtomicU32::new(0),
            pending: AtomicU32::new(0),
        }
    }
}

/// A ring of `slots` one-slot messages, a `u64` each.
struct Ring {
    tail: AtomicU64,
    head: AtomicU64,
    seq: Vec<AtomicU64>,
    /// The payload: written and read with relaxed accesses, as the ring's racing
    /// copies are; only the sequence word orders it.
    data: Vec<AtomicU64>,
    closed: AtomicU32,
    getters: Side,
    putters: Side,
}

impl Ring {
    /// `Geometry::init`: every slot free for its first lap.
    fn new(slots: u64) -> Ring {
        Ring {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            seq: (0..slots).map(|i| AtomicU64::new(free(i))).collect(),
            data: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            closed: AtomicU32::new(0),
            getters: Side::new(),
            putters: Side::new(),
        }
    }

    fn slots(&self) -> u64 {
        self.seq.len() as u64
    }

    fn seq(&self, pos: u64) -> &AtomicU64 {
        &self.seq[(pos % self.slots()) as usize]
    }

    fn data(&self, pos: u64) -> &AtomicU64 {
        &self.data[(pos % self.slots()) as usize]
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) != 0
    }

    /// `try_put_one` with `tail_slot`: `false` when the slot at the tail is not
    /// released yet. The ring's `Corrupted` paths (a state no honest participant makes)
    /// are asserted unreachable.
    fn try_put(&self, msg: u64) -> bool {
        loop {
            let t = self.tail.load(Ordering::Relaxed);
            let s = self.seq(t).load(Ordering::Acquire) & !TOMB;
            let d = s.wrapping_sub(free(t)) as i64;
            if d < 0 {
                let q = t.wrapping_sub(self.slots());
                assert!(
                    s == free(q) || s == published(q) || self.tail.load(Ordering::Relaxed) != t,
                    "the ring would say Corrupted: slot at the tail {t} holds {s:#x}"
                );
                return false;
            }
            if d > 0 {
                assert!(
                    self.tail.load(Ordering::Relaxed) != t,
                    "the ring would say Corrupted: slot at the tail {t} claimed, tail unmoved"
                );
                continue;
            }
            if self
                .tail
                .compare_exchange_weak(t, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            self.data(t).store(msg, Ordering::Relaxed);
            self.seq(t).store(published(t), Ordering::Release);
            return true;
        }
    }

    /// `try_get` for one-slot messages: `Ok(message)`, or `Err((head, sequence word))`
    /// when nothing is published at the head.
    fn try_get(&self) -> Result<u64, (u64, u64)> {
        loop {
            let h = self.head.load(Ordering::Relaxed);
            let s = self.seq(h).load(Ordering::Acquire);
            let d = (s & !TOMB).wrapping_sub(published(h)) as i64;
            if d < 0 {
                assert!(
                    s == free(h)
                        || s & !TOMB == published(h.wrapping_sub(self.slots()))
                        || self.head.load(Ordering::Relaxed) != h,
                    "the ring would say Corrupted: slot at the head {h} holds {s:#x}"
                );
                return Err((h, s));
            }
            if d > 0 {
                assert!(
                    self.head.load(Ordering::Relaxed) != h,
                    "the ring would say Corrupted: slot at the head {h} ahead, head unmoved"
                );
                continue;
            }
            if self
                .head
                .compare_exchange_weak(h, h.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let msg = self.data(h).load(Ordering::Relaxed);
            self.seq(h)
                .store(free(h.wrapping_add(self.slots())), Ordering::Release);
            signal(&self.putters);
            return Ok(msg);
        }
    }

    /// `in_flight`: whether position `h`, not published, is claimed by a producer.
    fn in_flight(&self, h: u64) -> bool {
        self.tail.load(Ordering::Acquire) != h
    }

    /// `moved_on`.
    fn moved_on(&self, h: u64, inflight: bool) -> bool {
        self.head.load(Ordering::Acquire) != h
            || (self.seq(h).load(Ordering::Acquire) & !TOMB) == published(h)
            || (!inflight && (before(h, self.tail.load(Ordering::Acquire)) || self.is_closed()))
    }

    /// `room_at_tail` for one slot.
    fn room_at_tail(&self) -> bool {
        let t = self.tail.load(Ordering::Acquire);
        (self.seq(t).load(Ordering::Acquire) & !TOMB).wrapping_sub(free(t)) as i64 >= 0
    }

    /// `put` / `put_many` with `Mode::Forever` and no spins: `false` when closed.
    fn put(&self, msg: u64) -> bool {
        if !self.is_closed() && self.try_put(msg) {
            signal(&self.getters);
            return true;
        }
        loop {
            if self.is_closed() {
                return false;
            }
            if self.try_put(msg) {
                signal(&self.getters);
                return true;
            }
            registered(&self.putters, |seq| {
                if self.room_at_tail() || self.is_closed() {
                    return;
                }
                self.putters.futex.wait(seq);
            });
        }
    }

    /// `get` with `Mode::Forever` and no spins: `None` when closed and drained.
    fn get(&self) -> Option<u64> {
        loop {
            let h = match self.try_get() {
                Ok(msg) => return Some(msg),
                Err((h, _)) => h,
            };
            if self.is_closed() && !self.in_flight(h) {
                return self.try_get().ok();
            }
            let inflight = self.in_flight(h);
            registered(&self.getters, |seq| {
                if self.moved_on(h, inflight) {
                    return;
                }
                self.getters.futex.wait(seq);
            });
        }
    }

    /// `close` and `wake_everyone`.
    fn close(&self) {
        self.closed.store(1, Ordering::SeqCst);
        for side in [&self.getters, &self.putters] {
            side.futex.word.fetch_add(1, Ordering::SeqCst);
            side.futex.wake_all();
        }
    }
}

/// `registered`: reads the futex word, counts itself as a sleeper, clears `pending`,
/// then runs `f` (a last look, then maybe the sleep).
///
/// The fence is not in the ring. Its last look is made of `Acquire` loads after these
/// `SeqCst` writes, and the waker's is a `Relaxed` load after a `SeqCst` fence: the C++
/// model allows both to read the old values (store buffering), and then nobody wakes
/// the sleeper. The hardware the ring runs on does not: a locked read-modify-write is
/// a full barrier on x86-64, and on AArch64 an acquire load is never performed before an
/// earlier release store. (Loom also models `SeqCst` accesses as `AcqRel`,
/// tokio-rs/loom#180.) The fence stands for that order; a lost wake-up would cost the
/// ring one sleep slice (50 ms), never a hang.
fn registered(side: &Side, f: impl FnOnce(u32)) {
    let seq = side.futex.word.load(Ordering::SeqCst);
    side.waiters.fetch_add(1, Ordering::SeqCst);
    side.pending.store(0, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    f(seq);
    side.waiters.fetch_sub(1, Ordering::SeqCst);
}

/// `signal`: after a change the other side may sleep for, wakes it if it sleeps; only
/// the first waker since a sleeper registered makes the (emulated) syscall.
fn signal(side: &Side) {
    fence(Ordering::SeqCst);
    if side.waiters.load(Ordering::Relaxed) > 0 && side.pending.swap(1, Ordering::SeqCst) == 0 {
        side.futex.word.fetch_add(1, Ordering::SeqCst);
        side.futex.wake_all();
    }
}

/// Runs `f` in every interleaving with at most `bound` preemptions (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise), and checks that there were several.
fn check(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    b.max_branches = b.max_branches.max(20_000);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    eprintln!("{name}: {runs} interleavings");
    assert!(runs > 1, "loom explored a single interleaving");
}

/// Two producers claim the two slots of a ring at once; a consumer takes both: each
/// message exactly once, and the ring ends empty with both slots released.
#[test]
fn two_producers_claim_and_publish_each_message_once() {
    check(3, || {
        let ring = Arc::new(Ring::new(2));
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|msg| {
                let r = ring.clone();
                thread::spawn(move || assert!(r.put(msg), "a free slot each"))
            })
            .collect();
        let mut got = [ring.get().unwrap(), ring.get().unwrap()];
        for p in producers {
            p.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(ring.try_get().is_err());
        assert_eq!(ring.seq(0).load(Ordering::Relaxed), free(2));
        assert_eq!(ring.seq(1).load(Ordering::Relaxed), free(3));
    });
}

/// A consumer that finds the ring empty goes to sleep; a put must wake it (a lost
/// wake-up is a deadlock loom reports).
#[test]
fn a_put_wakes_a_sleeping_consumer() {
    check(3, || {
        let ring = Arc::new(Ring::new(1));
        let r = ring.clone();
        let consumer = thread::spawn(move || r.get());
        assert!(ring.put(7));
        assert_eq!(consumer.join().unwrap(), Some(7));
    });
}

/// A producer that finds the ring full goes to sleep; the get that releases the slot
/// must wake it, and the messages come out in order.
#[test]
fn a_get_wakes_a_sleeping_producer() {
    check(3, || {
        let ring = Arc::new(Ring::new(1));
        assert!(ring.try_put(1));
        let r = ring.clone();
        let producer = thread::spawn(move || r.put(2));
        assert_eq!(ring.get(), Some(1));
        assert_eq!(ring.get(), Some(2));
        assert!(producer.join().unwrap());
    });
}

/// `close` wakes a consumer sleeping on an empty ring, which then reports the end
/// (`None`: the ring's `Closed`) instead of sleeping on.
#[test]
fn close_wakes_a_sleeping_consumer() {
    check(3, || {
        let ring = Arc::new(Ring::new(1));
        let r = ring.clone();
        let consumer = thread::spawn(move || r.get());
        ring.close();
        assert_eq!(consumer.join().unwrap(), None);
    });
}

/// A put racing with close either lands (and is delivered) or reports the close;
/// a consumer draining the ring sees every message that landed, then the end.
#[test]
fn a_put_racing_with_close_is_delivered_or_refused() {
    check(3, || {
        let ring = Arc::new(Ring::new(2));
        let r = ring.clone();
        let producer = thread::spawn(move || r.put(5));
        let r = ring.clone();
        let closer = thread::spawn(move || r.close());
        closer.join().unwrap();
        let landed = producer.join().unwrap();
        assert_eq!(ring.get(), landed.then_some(5));
        assert_eq!(ring.get(), None);
    });
}
