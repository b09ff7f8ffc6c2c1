//! The Rust peers of shm, measured in the same run as shm's own benches (see
//! `comparisons/peers.json`). Built only with `--features peers`, which
//! `cargo xtask bench` turns on and CI does not (the peers are large, and iceoryx2 needs
//! a newer rustc than the workspace's minimum).
//!
//! IDs (one iteration is one message received, one full round trip, or one operation):
//! - `peers/iceoryx2_64b_throughput`: a child process publishes `[u8; 64]` samples
//!   (`send_copy`, blocking when the subscriber's 1024-sample buffer is full), this
//!   process receives them by polling `receive()`;
//! - `peers/iceoryx2_roundtrip`: a 64-byte sample there and back through two services,
//!   both sides polling (spinning);
//! - `peers/ipc_channel_64b_throughput`, `peers/ipc_channel_roundtrip`: the same through
//!   ipc-channel's byte channels (a Unix socket, the receiver blocks in the kernel);
//! - `peers/raw_sync_mutex_lock_unlock`, `peers/raw_sync_rwlock_read_unlock`: raw_sync's
//!   process-shared (not robust) pthread mutex and rwlock in a shared segment;
//! - `peers/shared_hashmap_{get,insert}_u64_1e3`: the `shared_hashmap` crate (one
//!   raw_sync mutex over a bincode-encoded, linearly searched bucket list, so only 10^3
//!   entries: at 10^5 a get walks the whole segment).
//!
//! The robust process-shared pthread mutex and `parking_lot::RwLock` are measured in
//! `benches/sync.rs` (`sync/pthread_robust_mutex_lock_unlock`,
//! `sync/parking_lot_rwlock_read_unlock`), beside shm's locks.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;
use ipc_channel::ipc::{self as ipcc, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer};
use raw_sync::locks::{LockInit, Mutex as RawSyncMutex, RwLock as RawSyncRwLock};
use shm_core::Segment;

const ROLE: &str = "SHM_PEERS_BENCH_ROLE";
/// What the child opens: a service name prefix, a server name or a segment name.
const NAME_A: &str = "SHM_PEERS_BENCH_A";
/// The segment holding the stop flag the parent raises before it waits for the child.
const NAME_STOP: &str = "SHM_PEERS_BENCH_STOP";

/// A 64-byte message; the first 8 bytes carry a sequence number in the round trips.
type Msg = [u8; 64];

/// A child process running a role of this binary. Drop raises the stop flag, waits up
/// to a second for the child to leave (iceoryx2 removes its shared resources when its
/// node is dropped, which a kill would skip), then kills it.
struct Kid {
    child: Child,
    stop: Segment,
}

impl Kid {
    fn spawn(role: &str, a: &str) -> Kid {
        let stop = Segment::create(4096).expect("create stop segment");
        let child = Command::new(std::env::current_exe().expect("bench binary path"))
            .env(ROLE, role)
            .env(NAME_A, a)
            .env(NAME_STOP, stop.name().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn bench child");
        Kid { child, stop }
    }

    fn stop_flag(seg: &Segment) -> &AtomicU32 {
        // SAFETY: the mapping is page aligned, at least 4096 bytes, lives as long as
        // `seg`, and both processes touch these 4 bytes only atomically.
        unsafe { &*seg.as_ptr().cast::<AtomicU32>() }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        Self::stop_flag(&self.stop).store(1, Ordering::Release);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service_name(prefix: &str, which: &str) -> ServiceName {
    format!("{prefix}/{which}")
        .as_str()
        .try_into()
        .expect("service name")
}

fn iceoryx2(c: &mut Criterion) {
    set_log_level(LogLevel::Error);
    let mut g = c.benchmark_group("peers");
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .expect("iceoryx2 node");
    let prefix = format!("shm-bench-{}", std::process::id());
    {
        let service = node
            .service_builder(&service_name(&prefix, "throughput"))
            .publish_subscribe::<Msg>()
            .subscriber_max_buffer_size(1024)
            .enable_safe_overflow(false)
            .create()
            .expect("create service");
        let sub = service
            .subscriber_builder()
            .buffer_size(1024)
            .create()
            .expect("subscriber");
        let _kid = Kid::spawn("iox_publish", &prefix);
        let t = Instant::now();
        while sub.receive().expect("receive").is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "publisher did not start"
            );
            std::thread::yield_now();
        }
        g.bench_function("iceoryx2_64b_throughput", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                let mut got = 0;
                while got < iters {
                    if let Some(s) = sub.receive().unwrap() {
                        black_box(&*s);
                        got += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
                t.elapsed()
            })
        });
    }
    {
        let ping = node
            .service_builder(&service_name(&prefix, "ping"))
            .publish_subscribe::<Msg>()
            .create()
            .expect("create ping");
        let pong = node
            .service_builder(&service_name(&prefix, "pong"))
            .publish_subscribe::<Msg>()
            .create()
            .expect("create pong");
        let publisher = ping.publisher_builder().create().expect("publisher");
        let sub = pong.subscriber_builder().create().expect("subscriber");
        let _kid = Kid::spawn("iox_echo", &prefix);
        let mut seq = 0u64;
        // A sample sent before the child's subscriber connected reaches nobody: resend
        // until the first echo comes back; stale echoes are told apart by their number.
        let round = |seq: u64, patience: Option<Duration>| -> bool {
            let mut msg = [5u8; 64];
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            publisher.send_copy(msg).unwrap();
            let t = Instant::now();
            loop {
                if let Some(s) = sub.receive().unwrap() {
                    if s[..8] == msg[..8] {
                        return true;
                    }
                } else if patience.is_some_and(|p| t.elapsed() > p) {
                    return false;
                } else {
                    std::hint::spin_loop();
                }
            }
        };
        let t = Instant::now();
        while !round(seq, Some(Duration::from_millis(10))) {
            assert!(t.elapsed() < Duration::from_secs(10), "echo did not start");
        }
        g.bench_function("iceoryx2_roundtrip", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    seq += 1;
                    round(seq, None);
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

/// The parent's ends of a child's two byte channels: (to the child, from the child).
type Boot = (IpcBytesSender, IpcBytesReceiver);

fn ipc_channel_pair(role: &str) -> (IpcBytesSender, IpcBytesReceiver, Kid) {
    let (server, name) = IpcOneShotServer::<Boot>::new().expect("one-shot server");
    let kid = Kid::spawn(role, &name);
    let (_, (tx, rx)) = server.accept().expect("child connects");
    (tx, rx, kid)
}

fn ipc_channel(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers");
    {
        let (tx, rx, kid) = ipc_channel_pair("ipc_send");
        assert_eq!(rx.recv().unwrap().len(), 64);
        g.bench_function("ipc_channel_64b_throughput", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(rx.recv().unwrap());
                }
                t.elapsed()
            })
        });
        // The child's send fails once our receiver is gone.
        drop((tx, rx));
        drop(kid);
    }
    {
        let (tx, rx, kid) = ipc_channel_pair("ipc_echo");
        let msg = [5u8; 64];
        g.bench_function("ipc_channel_roundtrip", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    tx.send(&msg).unwrap();
                    black_box(rx.recv().unwrap());
                }
                t.elapsed()
            })
        });
        drop((tx, rx));
        drop(kid);
    }
    g.finish();
}

fn raw_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers");
    let seg = Segment::create(4096).expect("create segment");
    let base = seg.as_ptr();
    // SAFETY: the segment is page aligned and 4096 bytes, far more than a
    // pthread_mutex_t plus the 8 data bytes after the first 512; it outlives `m`.
    let (m, _) = unsafe { RawSyncMutex::new(base, base.add(512)) }.expect("raw_sync mutex");
    g.bench_function("raw_sync_mutex_lock_unlock", |b| {
        b.iter(|| drop(black_box(m.lock().unwrap())))
    });
    // SAFETY: as above, in the second half of the segment.
    let (rw, _) =
        unsafe { RawSyncRwLock::new(base.add(2048), base.add(2560)) }.expect("raw_sync rwlock");
    g.bench_function("raw_sync_rwlock_read_unlock", |b| {
        b.iter(|| drop(black_box(rw.rlock().unwrap())))
    });
    drop((m, rw));
    g.finish();
}

fn shared_hashmap(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers");
    let n = 1_000u64;
    let mut map =
        shared_hashmap::SharedMemoryHashMap::<u64, u64>::new(1 << 20).expect("shared_hashmap");
    for i in 0..n {
        map.try_insert(i, i).expect("fill shared_hashmap");
    }
    assert_eq!(map.len(), n as usize);
    let mut k = 0u64;
    let mut next = move || {
        k = (k + 7919) % n;
        k
    };
    g.bench_function("shared_hashmap_get_u64_1e3", |b| {
        b.iter(|| black_box(map.get(&next())))
    });
    g.bench_function("shared_hashmap_insert_u64_1e3", |b| {
        b.iter(|| black_box(map.insert(next(), 5)))
    });
    assert_eq!(map.len(), n as usize);
    g.finish();
}

/// The child's side. Leaves when the parent raises the stop flag, closes its end, or
/// goes away.
fn child(role: &str) {
    let a = std::env::var(NAME_A).unwrap_or_default();
    let stop_seg = Segment::open(&std::env::var(NAME_STOP).expect("stop segment name"))
        .expect("open stop segment");
    // The backpressure handler must be 'static; the process leaves soon anyway.
    let stop_seg: &'static Segment = Box::leak(Box::new(stop_seg));
    let stop = Kid::stop_flag(stop_seg);
    let parent = std::os::unix::process::parent_id();
    let done =
        move || stop.load(Ordering::Acquire) != 0 || std::os::unix::process::parent_id() != parent;
    match role {
        "iox_publish" | "iox_echo" => {
            set_log_level(LogLevel::Error);
            let node = NodeBuilder::new()
                .create::<ipc::Service>()
                .expect("iceoryx2 node");
            if role == "iox_publish" {
                let service = node
                    .service_builder(&service_name(&a, "throughput"))
                    .publish_subscribe::<Msg>()
                    .open()
                    .expect("open service");
                let publisher = service
                    .publisher_builder()
                    .set_backpressure_handler(move |_: &BackpressureInfo| {
                        if done() {
                            BackpressureAction::DiscardData
                        } else {
                            BackpressureAction::Retry
                        }
                    })
                    .create()
                    .expect("publisher");
                let mut i = 0u32;
                while i % 1024 != 0 || !done() {
                    publisher.send_copy([7u8; 64]).unwrap();
                    i = i.wrapping_add(1);
                }
            } else {
                let ping = node
                    .service_builder(&service_name(&a, "ping"))
                    .publish_subscribe::<Msg>()
                    .open()
                    .expect("open ping");
                let pong = node
                    .service_builder(&service_name(&a, "pong"))
                    .publish_subscribe::<Msg>()
                    .open()
                    .expect("open pong");
                let sub = ping.subscriber_builder().create().expect("subscriber");
                let publisher = pong.publisher_builder().create().expect("publisher");
                let mut idle = 0u32;
                loop {
                    if let Some(s) = sub.receive().unwrap() {
                        publisher.send_copy(*s).unwrap();
                        idle = 0;
                    } else {
                        idle = idle.wrapping_add(1);
                        if idle % (1 << 16) == 0 && done() {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            }
        }
        "ipc_send" | "ipc_echo" => {
            let boot = ipcc::IpcSender::<Boot>::connect(a).expect("connect to the parent");
            let (to_child, from_parent) = ipcc::bytes_channel().expect("channel");
            let (to_parent, from_child) = ipcc::bytes_channel().expect("channel");
            boot.send((to_child, from_child)).expect("send the ends");
            if role == "ipc_send" {
                let msg = [7u8; 64];
                while to_parent.send(&msg).is_ok() {}
            } else {
                while let Ok(m) = from_parent.recv() {
                    if to_parent.send(&m).is_err() {
                        break;
                    }
                }
            }
        }
        other => panic!("unknown bench role {other}"),
    }
}

/// The iceoryx2 files in /dev/shm.
fn iox2_files() -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("iox2_"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let mut c = shm_bench::criterion();
    // iceoryx2 leaves its node-management file in /dev/shm on purpose; remove the ones
    // this run created (never one that another iceoryx2 program may be using).
    let before = iox2_files();
    iceoryx2(&mut c);
    for f in iox2_files().difference(&before) {
        let _ = std::fs::remove_file(f);
    }
    ipc_channel(&mut c);
    raw_sync(&mut c);
    shared_hashmap(&mut c);
    c.final_summary();
}
