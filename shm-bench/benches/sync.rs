//! Benchmarks of shm-sync, beside the locks a user would pick instead (std,
//! parking_lot, a robust process-shared pthread mutex: the design's alternative) and
//! CPython's figures from `python/sync.py` (see `comparisons/sync.json`).
//!
//! One-process IDs: `sync/shm_mutex_lock_unlock`, `sync/shm_raw_mutex_lock_unlock`,
//! `sync/std_mutex_lock_unlock`, `sync/parking_lot_mutex_lock_unlock`,
//! `sync/pthread_robust_mutex_lock_unlock`, `sync/rlock_acquire_release`,
//! `sync/rwlock_read_unlock`, `sync/rwlock_write_unlock`,
//! `sync/std_rwlock_read_unlock`, `sync/parking_lot_rwlock_read_unlock`,
//! `sync/rwlock_read_unlock_before`, `sync/semaphore_acquire_release`,
//! `sync/semaphore_acquire_release_before`, `sync/barrier_round`,
//! `sync/barrier_round_before`, `sync/event_set_clear`, `sync/locked_increment`,
//! `sync/atomic_increment`, `sync/futex_wake_no_waiter`.
//!
//! Two-process IDs (a child process re-runs this binary with `SHM_BENCH_ROLE`
//! set; one iteration is a full round trip, there and back):
//! `sync/two_process_lock_handoff`, `sync/two_process_event_pingpong`,
//! `sync/cacheline_roundtrip` (the floor: one cache line bounced between the processes
//! by spinning on an atomic).

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use shm_bench::{Kid, NAME_A, NAME_B};
use shm_core::Segment;
use shm_sync::{Barrier, Event, Mutex, RLock, RawMutex, RwLock, Semaphore};

fn one_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");

    let m = Mutex::create(0u64).expect("create Mutex");
    g.bench_function("shm_mutex_lock_unlock", |b| {
        b.iter(|| drop(black_box(m.lock().unwrap())))
    });

    let seg = Segment::create(4096).expect("create segment");
    // SAFETY: the mapping is page aligned, 4096 bytes, outlives `raw`, and only this
    // benchmark touches it, through `RawMutex`.
    let raw = unsafe { RawMutex::from_ptr(seg.as_ptr()) };
    g.bench_function("shm_raw_mutex_lock_unlock", |b| {
        b.iter(|| {
            black_box(raw.lock().unwrap());
            raw.unlock().unwrap();
        })
    });

    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std_mutex_lock_unlock", |b| {
        b.iter(|| drop(black_box(std_m.lock().unwrap())))
    });

    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot_mutex_lock_unlock", |b| {
        b.iter(|| drop(black_box(pl.lock())))
    });

    let robust = RobustPthreadMutex::new();
    g.bench_function("pthread_robust_mutex_lock_unlock", |b| {
        b.iter(|| {
            robust.lock();
            robust.unlock();
        })
    });

    let rl = RLock::create().expect("create RLock");
    g.bench_function("rlock_acquire_release", |b| {
        b.iter(|| drop(black_box(rl.lock().unwrap())))
    });

    let rw = RwLock::create(0u64).expect("create RwLock");
    g.bench_function("rwlock_read_unlock", |b| {
        b.iter(|| drop(black_box(rw.read().unwrap())))
    });
    g.bench_function("rwlock_write_unlock", |b| {
        b.iter(|| drop(black_box(rw.write().unwrap())))
    });
    let std_rw = std::sync::RwLock::new(0u64);
    g.bench_function("std_rwlock_read_unlock", |b| {
        b.iter(|| drop(black_box(std_rw.read().unwrap())))
    });
    let pl_rw = parking_lot::RwLock::new(0u64);
    g.bench_function("parking_lot_rwlock_read_unlock", |b| {
        b.iter(|| drop(black_box(pl_rw.read())))
    });
    let old = before::Mapped::new();
    g.bench_function("rwlock_read_unlock_before", |b| {
        b.iter(|| {
            black_box(old.words().read());
            old.words().read_unlock();
        })
    });

    let sem = Semaphore::create(1).expect("create Semaphore");
    g.bench_function("semaphore_acquire_release", |b| {
        b.iter(|| {
            black_box(sem.acquire().unwrap());
            sem.release().unwrap();
        })
    });
    let old = before::Mapped::new();
    old.words().count.store(1, Ordering::Relaxed);
    g.bench_function("semaphore_acquire_release_before", |b| {
        b.iter(|| {
            black_box(old.words().try_take());
            old.words().sem_release();
        })
    });

    let bar = Barrier::create(1).expect("create Barrier");
    g.bench_function("barrier_round", |b| {
        b.iter(|| black_box(bar.wait().unwrap()))
    });
    let old = before::Mapped::new();
    g.bench_function("barrier_round_before", |b| {
        b.iter(|| black_box(old.words().round()))
    });

    let ev = Event::create().expect("create Event");
    g.bench_function("event_set_clear", |b| {
        b.iter(|| {
            ev.set();
            ev.clear();
        })
    });

    g.bench_function("locked_increment", |b| b.iter(|| *m.lock().unwrap() += 1));

    let aseg = Segment::create(4096).expect("create segment");
    // SAFETY: page aligned, 4096 bytes, outlives `counter`, accessed only atomically.
    let counter = unsafe { &*aseg.as_ptr().cast::<AtomicU64>() };
    g.bench_function("atomic_increment", |b| {
        b.iter(|| black_box(counter.fetch_add(1, Ordering::AcqRel)))
    });

    // SAFETY: as above; a separate word, used only as a futex.
    let word = unsafe { &*aseg.as_ptr().add(64).cast::<AtomicU32>() };
    g.bench_function("futex_wake_no_waiter", |b| {
        b.iter(|| {
            black_box(rustix::thread::futex::wake(
                word,
                rustix::thread::futex::Flags::empty(),
                1,
            ))
        })
    });
    g.finish();
}

/// A glibc robust, process-shared `pthread_mutex_t` in a shared segment.
struct RobustPthreadMutex {
    seg: Segment,
}

impl RobustPthreadMutex {
    fn new() -> Self {
        let seg = Segment::create(4096).expect("create segment");
        // SAFETY: the segment is page aligned and large enough for a pthread_mutex_t and
        // its attribute object lives on our stack; the calls follow pthread's
        // init protocol (attr init, set, mutex init, attr destroy) before any use.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                0
            );
            assert_eq!(libc::pthread_mutex_init(seg.as_ptr().cast(), &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        RobustPthreadMutex { seg }
    }

    fn lock(&self) {
        // SAFETY: initialised in `new`, mapped while `self.seg` lives.
        let rc = unsafe { libc::pthread_mutex_lock(self.seg.as_ptr().cast()) };
        debug_assert!(rc == 0 || rc == libc::EOWNERDEAD);
    }

    fn unlock(&self) {
        // SAFETY: as above; the calling thread holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.seg.as_ptr().cast()) };
    }
}

/// Waits until `ready` holds `want`, for at most 10 s (the child starts up).
fn await_value(ready: &AtomicU64, want: u64) {
    let t = Instant::now();
    while ready.load(Ordering::Acquire) != want {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "bench child did not start"
        );
        std::thread::yield_now();
    }
}

fn two_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");

    // Floor: one cache line there and back. Parent writes odd values, child answers +1.
    {
        let seg = Segment::create(4096).expect("create segment");
        // SAFETY: page aligned, outlives `line`, accessed only atomically by both sides.
        let line = unsafe { &*seg.as_ptr().cast::<AtomicU64>() };
        let _kid = Kid::spawn("cacheline", seg.name().unwrap(), "");
        line.store(1, Ordering::Release);
        await_value(line, 2);
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

    // Lock hand-off: a turn counter under the mutex; each side takes its turn.
    {
        let m = Mutex::create(0u64).expect("create Mutex");
        let _kid = Kid::spawn("handoff", m.name().unwrap(), "");
        let mut turn = 0u64;
        g.bench_function("two_process_lock_handoff", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    // Our turn when even: take it, then wait for the child's.
                    loop {
                        let mut g = m.lock().unwrap();
                        if *g == turn {
                            *g += 1;
                            break;
                        }
                    }
                    turn += 2;
                    while *m.lock().unwrap() != turn {
                        std::hint::spin_loop();
                    }
                }
                t.elapsed()
            })
        });
    }

    // Event ping-pong: set ping, wait for pong (the child clears ping first).
    {
        let ping = Event::create().expect("create Event");
        let pong = Event::create().expect("create Event");
        let _kid = Kid::spawn("pingpong", ping.name().unwrap(), pong.name().unwrap());
        g.bench_function("two_process_event_pingpong", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    ping.set();
                    pong.wait_timeout(Duration::from_secs(10))
                        .expect("child answers");
                    pong.clear();
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

/// The child's side of the two-process benchmarks. Exits when the parent goes away.
fn child(role: &str) {
    let a = std::env::var(NAME_A).expect("name A");
    let b = std::env::var(NAME_B).unwrap_or_default();
    let parent = std::os::unix::process::parent_id();
    let orphaned = || std::os::unix::process::parent_id() != parent;
    match role {
        "cacheline" => shm_bench::echo_cacheline(&a, orphaned),
        "handoff" => {
            let m = Mutex::<u64>::open(&a).expect("open Mutex");
            let mut spins = 0u32;
            loop {
                let mut g = m.lock().unwrap();
                if *g % 2 == 1 {
                    *g += 1;
                    spins = 0;
                } else {
                    spins = spins.wrapping_add(1);
                    if spins % (1 << 16) == 0 && orphaned() {
                        return;
                    }
                }
            }
        }
        "pingpong" => {
            let ping = Event::open(&a).expect("open Event");
            let pong = Event::open(&b).expect("open Event");
            loop {
                if ping.wait_timeout(Duration::from_millis(500)).is_ok() {
                    ping.clear();
                    pong.set();
                } else if orphaned() {
                    return;
                }
            }
        }
        other => panic!("unknown bench role {other}"),
    }
}

fn main() {
    shm_bench::main(child, &[one_process, two_process]);
}

/// The uncontended fast paths of `RawRwLock::read` / `read_unlock`,
/// `RawSemaphore::acquire` / `release` and a one-party `RawBarrier::wait` as they were
/// before the participant tables, replicated instruction for instruction (same
/// atomics, same orderings) so that one run measures before and after. Only the
/// uncontended paths: the benchmark never reaches the slow ones. The words live in a
/// shared mapping reached through a handle, as the named objects' words did (and do):
/// the same indirection on both sides of the comparison.
mod before {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// The old named object's handle: a mapping and the words in it.
    pub struct Mapped {
        segment: shm_core::Segment,
    }

    impl Mapped {
        pub fn new() -> Mapped {
            Mapped {
                segment: shm_core::Segment::anonymous(4096).expect("anonymous segment"),
            }
        }

        #[inline]
        pub fn words(&self) -> &Words {
            // SAFETY: the mapping is page aligned, 4096 bytes (more than `Words`), lives
            // as long as `self`, and is only accessed through `Words` (atomics, valid for
            // any bit pattern; a fresh mapping is zero, i.e. `Words::default()`).
            unsafe { &*self.segment.as_ptr().cast::<Words>() }
        }
    }

    const WRITER: u32 = 1 << 31;
    const COUNT: u32 = (1 << 30) - 1;
    const INCONSISTENT: u64 = 1 << 31;

    #[derive(Default)]
    pub struct Words {
        /// The writers' mutex word (RwLock) / the barrier state.
        owner: AtomicU64,
        /// The reader count (RwLock) / the permit count (Semaphore).
        pub count: AtomicU32,
        waiters: AtomicU32,
        max: AtomicU32,
        /// The barrier's wake sequence.
        seq: AtomicU32,
    }

    impl Words {
        #[inline]
        pub fn read(&self) -> bool {
            let s = self.count.load(Ordering::Relaxed);
            assert!(
                s & (WRITER | COUNT) < COUNT
                    && self
                        .count
                        .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok(),
                "uncontended"
            );
            self.owner.load(Ordering::Relaxed) & INCONSISTENT != 0
        }

        #[inline]
        pub fn read_unlock(&self) {
            let mut s = self.count.load(Ordering::Relaxed);
            loop {
                assert!(s & COUNT != 0);
                match self.count.compare_exchange_weak(
                    s,
                    s - 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(v) => s = v,
                }
            }
            assert!(!(s & COUNT == 1 && s & WRITER != 0), "uncontended");
        }

        #[inline]
        pub fn try_take(&self) -> bool {
            let mut v = self.count.load(Ordering::Relaxed);
            while v != 0 {
                match self.count.compare_exchange_weak(
                    v,
                    v - 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(x) => v = x,
                }
            }
            false
        }

        #[inline]
        pub fn sem_release(&self) {
            let max = self.max.load(Ordering::Relaxed);
            let mut v = self.count.load(Ordering::Relaxed);
            loop {
                assert!(max == 0 || v < max);
                match self.count.compare_exchange_weak(
                    v,
                    v + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(x) => v = x,
                }
            }
            assert_eq!(self.waiters.load(Ordering::SeqCst), 0, "uncontended");
        }

        /// A round of a one-party barrier: the leader's CAS, then waking (a futex
        /// wake, as the real one does, with nobody to wake).
        #[inline]
        pub fn round(&self) -> u64 {
            std::hint::black_box(self.max.load(Ordering::Acquire)); // the parties
            let s = self.owner.load(Ordering::Acquire);
            let next = ((s >> 32) + 1) << 32;
            self.owner
                .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
                .expect("uncontended");
            self.seq.fetch_add(1, Ordering::Release);
            let _ = rustix::thread::futex::wake(
                &self.seq,
                rustix::thread::futex::Flags::empty(),
                i32::MAX as u32,
            );
            next
        }
    }
}
