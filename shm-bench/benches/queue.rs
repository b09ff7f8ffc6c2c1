//! Benchmarks of shm-collections' queues and pipes between two processes, beside
//! crossbeam-channel between two threads (the in-process floor), the one-cache-line
//! round trip (the hardware floor, measured again here so that it is of the same
//! launch) and CPython's `multiprocessing` figures from `python/queues.py` (not `queue.py`: that would shadow the standard library module) (see
//! `comparisons/queue.json`).
//!
//! IDs (one iteration is one message received, or one full round trip):
//! - `queue/bytes_64b_throughput`, `queue/bytes_4k_throughput`: a child process puts
//!   64-byte (4 KiB) messages into a `ByteQueue` (1 MiB: 1024 slots of 1 KiB, or 256
//!   of 4 KiB), this process gets them one by one;
//! - `queue/bytes_64b_throughput_spin`: the same, both sides spinning up to
//!   `1 << 16` times before they sleep (`set_spin`);
//! - `queue/bytes_64b_batched_throughput`: the same with `put_many` / `get_many_with`
//!   (up to 64 per lock acquisition);
//! - `queue/typed_64b_throughput`: `Queue<Vec<u8>>` (bincode) with 64-byte vectors;
//! - `queue/roundtrip_spin`, `queue/roundtrip_sleep`: a 64-byte message there and
//!   back through two `ByteQueue`s, both sides spinning (`set_spin(u32::MAX)`) or
//!   sleeping at once on the futex (`set_spin(0)`);
//! - `queue/pipe_roundtrip_spin`: the same through a duplex `Pipe` (`send_bytes` /
//!   `recv_bytes_into`);
//! - `queue/crossbeam_64b_throughput`, `queue/crossbeam_roundtrip_spin`:
//!   crossbeam-channel `bounded(1024)` between two threads of this process;
//! - `queue/cacheline_roundtrip`: one cache line bounced between the two processes;
//! - `queue/slot_spsc_roundtrip`: a 64-byte message there and back through two minimal
//!   single-producer single-consumer slot rings ([`SlotRing`]: a sequence word and the
//!   message in a 128-byte slot, no claim, no crash safety, no sleeping): the floor of
//!   any queue that passes a 64-byte message with a header through shared slots;
//! - `queue/futex_roundtrip`: a bare futex wake and wait there and back between the two
//!   processes (each side sleeps at once): the floor of `roundtrip_sleep`;
//! - `queue/bytes_64b_same_thread`: `put` then `get` of 64 bytes in one thread: the
//!   fixed cost of the two calls, without any cache line crossing cores;
//! - `queue/memcpy_4k`: one 4 KiB `memcpy` through a 1 MiB buffer (the bandwidth
//!   anchor of `bytes_4k_throughput`, which copies every message in and out);
//! - `queue/slot_spsc_4k_throughput`: a child streams 4 KiB messages through a minimal
//!   [`SlotRing`] (256 slots, the queue's racing copies, nothing else): the floor of
//!   moving 4 KiB between the two cores through a slot ring;
//! - `queue/bytes_4k_in_1k_slots_throughput`: `bytes_4k_throughput` through the
//!   64-byte bench's queue (1024 slots of 1 KiB), so every message spans 4 slots.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use rustix::thread::futex;
use shm_bench::{Kid, NAME_A, NAME_B};
use shm_collections::{ByteQueue, Pipe, PipeEnd, Queue};
use shm_core::Segment;

const PIPE_VAR: &str = "SHM_QUEUE_BENCH_PIPE";

/// Spins of `bytes_64b_throughput_spin` (both sides): about 100 us before sleeping.
const SPIN: u32 = 1 << 16;

/// Ring sizes of the throughput queues.
const MESSAGES: usize = 1024;
const BYTES: usize = 1 << 20;

/// A child process running a role of this binary; killed on drop.
/// The minimal slot rings of `slot_spsc_roundtrip` and `slot_spsc_4k_throughput`:
/// `slots` slots of `stride` bytes, each a sequence word (`2p` free for position `p`,
/// `2p + 1` published), 8 unused bytes and the message from byte 16, copied with the
/// same racing copies as the queue; one producer and one consumer, each keeping its
/// own position. No claim, no crash safety, no sleeping.
struct SlotRing<'a> {
    seg: &'a Segment,
    base: usize,
    slots: u64,
    stride: usize,
    pos: u64,
}

impl<'a> SlotRing<'a> {
    /// The ring at byte `base` of `seg`; `init` writes the free sequence words (once,
    /// before the other side starts).
    fn new(seg: &'a Segment, base: usize, slots: u64, stride: usize, init: bool) -> Self {
        assert!(base % 64 == 0 && stride % 64 == 0 && stride > 16);
        assert!(base + slots as usize * stride <= seg.len());
        let r = SlotRing {
            seg,
            base,
            slots,
            stride,
            pos: 0,
        };
        if init {
            for p in 0..slots {
                r.seq(p).store(2 * p, Ordering::Relaxed);
            }
        }
        r
    }

    fn at(&self, p: u64) -> usize {
        self.base + (p % self.slots) as usize * self.stride
    }

    fn seq(&self, p: u64) -> &AtomicU64 {
        // SAFETY: the slot lies in the mapping (asserted in `new`) and is 8-byte aligned
        // (the mapping is page aligned, base and stride multiples of 64); both processes
        // use this word only atomically.
        unsafe { &*self.seg.as_ptr().add(self.at(p)).cast::<AtomicU64>() }
    }

    fn put(&mut self, msg: &[u8]) {
        assert!(16 + msg.len() <= self.stride);
        let p = self.pos;
        while self.seq(p).load(Ordering::Acquire) != 2 * p {
            std::hint::spin_loop();
        }
        // SAFETY: the message area of the slot lies in the mapping (asserted above and
        // in `new`); the consumer reads it only after the publish below.
        unsafe { shm_core::copy_to_shared(msg, self.seg.as_ptr().add(self.at(p) + 16)) };
        self.seq(p).store(2 * p + 1, Ordering::Release);
        self.pos += 1;
    }

    /// Takes the next message into `out` (its length is the message's); `None` if
    /// nothing came within ~1 s (the other side left).
    fn get(&mut self, out: &mut [u8]) -> Option<()> {
        assert!(16 + out.len() <= self.stride);
        let p = self.pos;
        let mut spins = 0u64;
        while self.seq(p).load(Ordering::Acquire) != 2 * p + 1 {
            spins += 1;
            if spins > 1 << 26 {
                return None;
            }
            std::hint::spin_loop();
        }
        // SAFETY: as in `put`; the producer writes the slot again only after the release.
        unsafe { shm_core::copy_from_shared(self.seg.as_ptr().add(self.at(p) + 16), out) };
        self.seq(p).store(2 * (p + self.slots), Ordering::Release);
        self.pos += 1;
        Some(())
    }
}

/// Slots and stride of the 4 KiB stream of `slot_spsc_4k_throughput` (1 MiB).
const STREAM_SLOTS: u64 = 256;
const STREAM_STRIDE: usize = 4096 + 64;

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    for (id, role, len, messages) in [
        ("bytes_64b_throughput", "put", 64usize, MESSAGES),
        ("bytes_64b_throughput_spin", "put_spin", 64usize, MESSAGES),
        ("bytes_4k_throughput", "put", 4096, 256),
        ("bytes_4k_in_1k_slots_throughput", "put", 4096, MESSAGES),
        ("bytes_64b_batched_throughput", "put_many", 64, MESSAGES),
    ] {
        let mut q = ByteQueue::create(messages, BYTES).expect("create ByteQueue");
        if role == "put_spin" {
            q.set_spin(SPIN);
        }
        let _kid = Kid::spawn(role, q.name().unwrap(), &len.to_string());
        let mut buf = Vec::with_capacity(len);
        q.get_into(&mut buf).expect("first message");
        assert_eq!(buf.len(), len);
        let batched = role == "put_many";
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                let mut got = 0;
                while got < iters {
                    if batched {
                        got += q
                            .get_many_with(64, |m| {
                                std::hint::black_box(m);
                            })
                            .unwrap() as u64;
                    } else {
                        q.get_into(&mut buf).unwrap();
                        got += 1;
                    }
                }
                t.elapsed()
            })
        });
        q.close();
    }
    {
        let q: Queue<Vec<u8>> = Queue::create(MESSAGES, BYTES).expect("create Queue");
        let _kid = Kid::spawn("typed_put", q.name().unwrap(), "64");
        assert_eq!(q.get().unwrap().len(), 64);
        g.bench_function("typed_64b_throughput", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(q.get().unwrap());
                }
                t.elapsed()
            })
        });
        q.close();
    }
    {
        let q = ByteQueue::create(MESSAGES, BYTES).expect("create ByteQueue");
        let msg = [7u8; 64];
        let mut buf = Vec::with_capacity(64);
        g.bench_function("bytes_64b_same_thread", |b| {
            b.iter(|| {
                q.put(std::hint::black_box(&msg)).unwrap();
                q.get_into(&mut buf).unwrap();
            })
        });
    }
    {
        let src = vec![7u8; BYTES];
        let mut dst = vec![0u8; BYTES];
        let mut at = 0;
        g.bench_function("memcpy_4k", |b| {
            b.iter(|| {
                dst[at..at + 4096].copy_from_slice(std::hint::black_box(&src[at..at + 4096]));
                at = (at + 4096) % BYTES;
                std::hint::black_box(&dst[at]);
            })
        });
    }
    {
        let seg = Segment::create(STREAM_SLOTS as usize * STREAM_STRIDE).expect("create segment");
        let mut ring = SlotRing::new(&seg, 0, STREAM_SLOTS, STREAM_STRIDE, true);
        let _kid = Kid::spawn("stream_put", seg.name().unwrap(), "");
        let mut out = vec![0u8; 4096];
        g.bench_function("slot_spsc_4k_throughput", |b| {
            b.iter(|| {
                ring.get(&mut out).expect("the producer child streams");
                std::hint::black_box(&out);
            })
        });
    }
    {
        let (tx, rx) = crossbeam_channel::bounded::<[u8; 64]>(1024);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let producer = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if tx
                    .send_timeout([7u8; 64], Duration::from_millis(100))
                    .is_err()
                    && stop2.load(Ordering::Relaxed)
                {
                    return;
                }
            }
        });
        g.bench_function("crossbeam_64b_throughput", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(rx.recv().unwrap());
                }
                t.elapsed()
            })
        });
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        producer.join().unwrap();
    }
    g.finish();
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    {
        let seg = Segment::create(4096).expect("create segment");
        // SAFETY: page aligned, outlives `line`, accessed only atomically by both sides.
        let line = unsafe { &*seg.as_ptr().cast::<AtomicU64>() };
        let _kid = Kid::spawn("cacheline", seg.name().unwrap(), "");
        line.store(1, Ordering::Release);
        let t = Instant::now();
        while line.load(Ordering::Acquire) != 2 {
            assert!(t.elapsed() < Duration::from_secs(10), "child did not start");
            std::thread::yield_now();
        }
        let mut v = 2u64;
        g.bench_function("cacheline_roundtrip", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    line.store(v + 1, Ordering::Release);
                    while line.load(Ordering::Acquire) != v + 2 {
                        std::hint::spin_loop();
                    }
                    v += 2;
                }
                t.elapsed()
            })
        });
    }
    {
        let seg = Segment::create(4096).expect("create segment");
        let mut ping = SlotRing::new(&seg, 0, 16, 128, true);
        let mut pong = SlotRing::new(&seg, 2048, 16, 128, true);
        let _kid = Kid::spawn("slot_echo", seg.name().unwrap(), "");
        let msg = [5u8; 64];
        let mut out = [0u8; 64];
        g.bench_function("slot_spsc_roundtrip", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    ping.put(&msg);
                    pong.get(&mut out).expect("the echo child answers");
                }
                t.elapsed()
            })
        });
    }
    {
        let seg = Segment::create(4096).expect("create segment");
        // SAFETY: page aligned, outlives the words, accessed only atomically by both sides.
        let (ping, pong) = unsafe {
            let p = seg.as_ptr().cast::<AtomicU32>();
            (&*p, &*p.add(16))
        };
        let _kid = Kid::spawn("futex_echo", seg.name().unwrap(), "");
        g.bench_function("futex_roundtrip", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    let v = pong.load(Ordering::Acquire);
                    ping.fetch_add(1, Ordering::Release);
                    futex::wake(ping, futex::Flags::empty(), 1).ok();
                    while pong.load(Ordering::Acquire) == v {
                        let _ = futex::wait(pong, futex::Flags::empty(), v, None);
                    }
                }
                t.elapsed()
            })
        });
        ping.store(u32::MAX, Ordering::Release);
        futex::wake(ping, futex::Flags::empty(), 1).ok();
    }
    for (id, spin) in [("roundtrip_spin", u32::MAX), ("roundtrip_sleep", 0)] {
        let mut ping = ByteQueue::create(16, 4096).expect("create");
        let mut pong = ByteQueue::create(16, 4096).expect("create");
        ping.set_spin(spin);
        pong.set_spin(spin);
        let role = if spin == 0 { "echo_sleep" } else { "echo_spin" };
        let _kid = Kid::spawn(role, ping.name().unwrap(), pong.name().unwrap());
        let msg = [5u8; 64];
        let mut buf = Vec::with_capacity(64);
        ping.put(&msg).unwrap();
        pong.get_into(&mut buf).unwrap();
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    ping.put(&msg).unwrap();
                    pong.get_into(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        ping.close();
    }
    {
        let (mut mine, theirs) = Pipe::new().expect("create Pipe");
        mine.set_spin(u32::MAX);
        let mut cmd = Kid::command("pipe_echo", "", "");
        theirs.share(&mut cmd, PIPE_VAR).unwrap();
        let _kid = Kid(cmd.spawn().expect("spawn"));
        drop(theirs);
        let msg = [5u8; 64];
        let mut buf = Vec::with_capacity(64);
        mine.send_bytes(&msg).unwrap();
        mine.recv_bytes_into(&mut buf).unwrap();
        g.bench_function("pipe_roundtrip_spin", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    mine.send_bytes(&msg).unwrap();
                    mine.recv_bytes_into(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        mine.close();
    }
    {
        let (tx1, rx1) = crossbeam_channel::bounded::<[u8; 64]>(1024);
        let (tx2, rx2) = crossbeam_channel::bounded::<[u8; 64]>(1024);
        let echo = std::thread::spawn(move || {
            while let Ok(m) = rx1.recv() {
                if tx2.send(m).is_err() {
                    return;
                }
            }
        });
        g.bench_function("crossbeam_roundtrip_spin", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    tx1.send([5u8; 64]).unwrap();
                    std::hint::black_box(rx2.recv().unwrap());
                }
                t.elapsed()
            })
        });
        drop(tx1);
        echo.join().unwrap();
    }
    g.finish();
}

/// The child's side. Exits when the parent closes the queue or goes away.
fn child(role: &str) {
    let a = std::env::var(NAME_A).unwrap_or_default();
    let b = std::env::var(NAME_B).unwrap_or_default();
    let parent = std::os::unix::process::parent_id();
    let orphaned = || std::os::unix::process::parent_id() != parent;
    let patient = Duration::from_millis(500);
    match role {
        "put" | "put_spin" | "put_many" => {
            let mut q = ByteQueue::open(&a).expect("open ByteQueue");
            if role == "put_spin" {
                q.set_spin(SPIN);
            }
            let msg = vec![7u8; b.parse().expect("length")];
            let batch: Vec<&[u8]> = vec![&msg; 64];
            loop {
                let r = if role != "put_many" {
                    q.put_timeout(&msg, patient)
                } else {
                    q.put_many(&batch)
                };
                match r {
                    Err(shm_collections::QueueError::Closed { .. }) => return,
                    Err(_) if orphaned() => return,
                    _ => {}
                }
            }
        }
        "typed_put" => {
            let q: Queue<Vec<u8>> = Queue::open(&a).expect("open Queue");
            let msg = vec![7u8; b.parse().expect("length")];
            loop {
                match q.put_timeout(&msg, patient) {
                    Err(shm_collections::QueueError::Closed { .. }) => return,
                    Err(_) if orphaned() => return,
                    _ => {}
                }
            }
        }
        "echo_spin" | "echo_sleep" => {
            let mut ping = ByteQueue::open(&a).expect("open");
            let mut pong = ByteQueue::open(&b).expect("open");
            let spin = if role == "echo_spin" { u32::MAX } else { 0 };
            ping.set_spin(spin);
            pong.set_spin(spin);
            let mut buf = Vec::new();
            loop {
                match ping.get_into(&mut buf) {
                    Ok(()) => pong.put(&buf).unwrap(),
                    Err(_) => return,
                }
            }
        }
        "pipe_echo" => {
            let mut end = PipeEnd::from_env(PIPE_VAR).expect("pipe end");
            end.set_spin(u32::MAX);
            let mut buf = Vec::new();
            while end.recv_bytes_into(&mut buf).is_ok() {
                if end.send_bytes(&buf).is_err() {
                    return;
                }
            }
        }
        "futex_echo" => {
            let seg = Segment::open(&a).expect("open segment");
            // SAFETY: page aligned, mapped while `seg` lives, accessed only atomically.
            let (ping, pong) = unsafe {
                let p = seg.as_ptr().cast::<AtomicU32>();
                (&*p, &*p.add(16))
            };
            let mut seen = 0;
            let slice = futex::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            loop {
                let v = ping.load(Ordering::Acquire);
                if v == u32::MAX {
                    return;
                }
                if v == seen {
                    let _ = futex::wait(ping, futex::Flags::empty(), v, Some(&slice));
                    if orphaned() {
                        return;
                    }
                    continue;
                }
                seen = v;
                pong.fetch_add(1, Ordering::Release);
                futex::wake(pong, futex::Flags::empty(), 1).ok();
            }
        }
        "stream_put" => {
            let seg = Segment::open(&a).expect("open segment");
            let mut ring = SlotRing::new(&seg, 0, STREAM_SLOTS, STREAM_STRIDE, false);
            let msg = vec![7u8; 4096];
            loop {
                // A full ring for ~1 s: the parent is done with this bench (or gone).
                let p = ring.pos;
                let mut spins = 0u64;
                while ring.seq(p).load(Ordering::Acquire) != 2 * p {
                    spins += 1;
                    if spins > 1 << 26 {
                        if orphaned() {
                            return;
                        }
                        spins = 0;
                    }
                    std::hint::spin_loop();
                }
                ring.put(&msg);
            }
        }
        "slot_echo" => {
            let seg = Segment::open(&a).expect("open segment");
            let mut ping = SlotRing::new(&seg, 0, 16, 128, false);
            let mut pong = SlotRing::new(&seg, 2048, 16, 128, false);
            let mut m = [0u8; 64];
            loop {
                if ping.get(&mut m).is_none() {
                    if orphaned() {
                        return;
                    }
                    continue;
                }
                pong.put(&m);
            }
        }
        "cacheline" => shm_bench::echo_cacheline(&a, orphaned),
        other => panic!("unknown bench role {other}"),
    }
}

fn main() {
    shm_bench::main(child, &[throughput, round_trips]);
}
