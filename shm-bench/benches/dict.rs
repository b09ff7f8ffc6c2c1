//! Benchmarks of ShareableDict and ShareableVec against a `HashMap` (`Vec`) behind a
//! `std::sync::Mutex` in one process (the floor), CPython's shared dicts
//! (`python/dict.py`: `Manager().dict()`, UltraDict, shared-memory-dict) and the
//! `shared_hashmap` crate (`benches/peers.rs`); see `comparisons/collections.json`.
//!
//! Keys are `u64` or 8-character `String`s (`k0000042`, as in `dict.py`), values `u64`.
//! Insert overwrites an existing key, so the size stays put and garbage is compacted as
//! it would be in use; the stride walk (`+ 7919 mod n`) visits every key in an order the
//! hardware cannot predict as easily as `k + 1`. Each size is built once, in bulk.
//!
//! IDs (`<kind>` is `u64` or `str`, `<n>` is `1e3`, `1e5` or `1e6`):
//! - `collections/dict_{get,insert,update,remove}_<kind>_<n>` and
//!   `collections/std_hashmap_{get,insert,update,remove}_<kind>_<n>` (remove times only
//!   the removes; the keys are put back untimed between batches);
//! - `collections/dict_iter_<kind>_<n>`, `collections/std_hashmap_iter_<kind>_<n>`: one
//!   iteration is a whole pass over the entries;
//! - `collections/dict_insert_new_u64_amortised`,
//!   `collections/std_hashmap_insert_new_u64_amortised`: inserts of new keys into a map
//!   that starts empty, so growth is amortised over them;
//! - `collections/dict_get_u64_1e5_{1,2}_readers`: one iteration is one get by a reader
//!   process; with 2 readers the gets are split between two processes running at once,
//!   so the figure is the aggregate time per get (1 reader / 2 readers = the scaling);
//! - `collections/vec_push_u64`, `collections/vec_get_u64_1e5` and
//!   `collections/std_vec_{push,get}_u64{,_1e5}`: ShareableVec against a `Vec` behind a
//!   `Mutex`.
//!
//! The memory used per entry (records and index, from `stats()`) is printed to stderr
//! once per size.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use rustix::thread::futex;
use shm_collections::{ShareableDict, ShareableVec};
use shm_core::Segment;

const ROLE: &str = "SHM_DICT_BENCH_ROLE";
const DICT_VAR: &str = "SHM_DICT_BENCH_DICT";
const CTRL_VAR: &str = "SHM_DICT_BENCH_CTRL";
const INDEX_VAR: &str = "SHM_DICT_BENCH_INDEX";
const COUNT_VAR: &str = "SHM_DICT_BENCH_READERS";

const SIZES: [(u64, &str); 3] = [(1_000, "1e3"), (100_000, "1e5"), (1_000_000, "1e6")];

/// The stride walk over `0..n`.
fn walker(n: u64) -> impl FnMut() -> u64 {
    let mut k = 0u64;
    move || {
        k = (k + 7919) % n;
        k
    }
}

fn str_key(i: u64) -> String {
    format!("k{i:07}")
}

/// Prints the bytes per entry of a dict: live (records + 8-byte index slots) and mapped.
fn report_memory<K: shm_collections::DictKey, V: shm_collections::DictValue>(
    what: &str,
    d: &ShareableDict<K, V>,
) {
    let s = d.stats().expect("stats");
    let n = s.entries.max(1) as f64;
    let live = (s.bytes_used - s.garbage + s.slots * 8) as f64 / n;
    let mapped = (s.capacity + s.slots * 8) as f64 / n;
    eprintln!(
        "memory: {what}: {} entries, {live:.1} B/entry live (records + index), \
         {mapped:.1} B/entry mapped ({} slots, {} B of records, {} B garbage)",
        s.entries, s.slots, s.bytes_used, s.garbage
    );
}

/// Times `iters` removes in batches of at most `n / 2` keys, putting each batch back
/// (untimed) before the next.
fn timed_removes(
    iters: u64,
    n: u64,
    mut remove: impl FnMut(u64),
    mut put_back: impl FnMut(u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut next = walker(n);
    let mut left = iters;
    let mut batch = Vec::new();
    while left > 0 {
        let m = left.min(n / 2);
        batch.clear();
        batch.extend((0..m).map(|_| next()));
        let t = Instant::now();
        for &k in &batch {
            remove(k);
        }
        total += t.elapsed();
        for &k in &batch {
            put_back(k);
        }
        left -= m;
    }
    total
}

fn u64_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    for (n, tag) in SIZES {
        let d = ShareableDict::<u64, u64>::create().expect("create a dict");
        d.extend((0..n).map(|i| (i, i))).expect("fill");
        report_memory(&format!("ShareableDict<u64, u64> {tag}"), &d);
        let mut next = walker(n);
        group.bench_function(format!("dict_get_u64_{tag}"), |b| {
            b.iter(|| black_box(d.get(&next()).unwrap()))
        });
        group.bench_function(format!("dict_insert_u64_{tag}"), |b| {
            b.iter(|| black_box(d.insert(next(), 5).unwrap()))
        });
        group.bench_function(format!("dict_update_u64_{tag}"), |b| {
            b.iter(|| black_box(d.update(next(), |v| v.unwrap_or(0) + 1).unwrap()))
        });
        group.bench_function(format!("dict_remove_u64_{tag}"), |b| {
            b.iter_custom(|iters| {
                timed_removes(
                    iters,
                    n,
                    |k| {
                        black_box(d.remove(&k).unwrap());
                    },
                    |k| {
                        d.insert(k, k).unwrap();
                    },
                )
            })
        });
        // A pass over 10^6 entries takes a good part of a second: fewer samples.
        group.sample_size(if n >= 1_000_000 { 10 } else { 100 });
        group.bench_function(format!("dict_iter_u64_{tag}"), |b| {
            b.iter(|| black_box(d.iter().unwrap().fold(0u64, |a, (k, v)| a ^ k ^ v)))
        });
        report_memory(
            &format!("ShareableDict<u64, u64> {tag} after the writes"),
            &d,
        );
        drop(d);

        let m = Mutex::new((0..n).map(|i| (i, i)).collect::<HashMap<u64, u64>>());
        group.sample_size(100);
        group.bench_function(format!("std_hashmap_get_u64_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().get(&next()).copied()))
        });
        group.bench_function(format!("std_hashmap_insert_u64_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().insert(next(), 5)))
        });
        group.bench_function(format!("std_hashmap_update_u64_{tag}"), |b| {
            b.iter(|| {
                let mut g = m.lock().unwrap();
                let e = g.entry(next()).or_insert(0);
                *e += 1;
                black_box(*e)
            })
        });
        group.bench_function(format!("std_hashmap_remove_u64_{tag}"), |b| {
            b.iter_custom(|iters| {
                timed_removes(
                    iters,
                    n,
                    |k| {
                        black_box(m.lock().unwrap().remove(&k));
                    },
                    |k| {
                        m.lock().unwrap().insert(k, k);
                    },
                )
            })
        });
        group.sample_size(if n >= 1_000_000 { 10 } else { 100 });
        group.bench_function(format!("std_hashmap_iter_u64_{tag}"), |b| {
            b.iter(|| {
                let g = m.lock().unwrap();
                black_box(g.iter().fold(0u64, |a, (k, v)| a ^ k ^ v))
            })
        });
        group.sample_size(100);
    }
    group.finish();
}

fn str_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    for (n, tag) in SIZES {
        let keys: Vec<String> = (0..n).map(str_key).collect();
        let d = ShareableDict::<String, u64>::create().expect("create a dict");
        d.extend(keys.iter().cloned().zip(0..)).expect("fill");
        report_memory(&format!("ShareableDict<String, u64> {tag}"), &d);
        let mut next = walker(n);
        let mut key = move || next() as usize;
        group.bench_function(format!("dict_get_str_{tag}"), |b| {
            b.iter(|| black_box(d.get(keys[key()].as_str()).unwrap()))
        });
        group.bench_function(format!("dict_insert_str_{tag}"), |b| {
            b.iter(|| black_box(d.insert(keys[key()].clone(), 5).unwrap()))
        });
        group.bench_function(format!("dict_update_str_{tag}"), |b| {
            b.iter(|| {
                black_box(
                    d.update(keys[key()].clone(), |v| v.unwrap_or(0) + 1)
                        .unwrap(),
                )
            })
        });
        group.bench_function(format!("dict_remove_str_{tag}"), |b| {
            b.iter_custom(|iters| {
                timed_removes(
                    iters,
                    n,
                    |k| {
                        black_box(d.remove(keys[k as usize].as_str()).unwrap());
                    },
                    |k| {
                        d.insert(keys[k as usize].clone(), k).unwrap();
                    },
                )
            })
        });
        // A pass over 10^6 entries takes a good part of a second: fewer samples.
        group.sample_size(if n >= 1_000_000 { 10 } else { 100 });
        group.bench_function(format!("dict_iter_str_{tag}"), |b| {
            b.iter(|| {
                black_box(
                    d.iter()
                        .unwrap()
                        .fold(0u64, |a, (k, v)| a ^ k.len() as u64 ^ v),
                )
            })
        });
        drop(d);

        let m = Mutex::new(
            keys.iter()
                .cloned()
                .zip(0..)
                .collect::<HashMap<String, u64>>(),
        );
        group.sample_size(100);
        group.bench_function(format!("std_hashmap_get_str_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().get(&keys[key()]).copied()))
        });
        group.bench_function(format!("std_hashmap_insert_str_{tag}"), |b| {
            b.iter(|| black_box(m.lock().unwrap().insert(keys[key()].clone(), 5)))
        });
        group.bench_function(format!("std_hashmap_update_str_{tag}"), |b| {
            b.iter(|| {
                let mut g = m.lock().unwrap();
                let e = g.entry(keys[key()].clone()).or_insert(0);
                *e += 1;
                black_box(*e)
            })
        });
        group.bench_function(format!("std_hashmap_remove_str_{tag}"), |b| {
            b.iter_custom(|iters| {
                timed_removes(
                    iters,
                    n,
                    |k| {
                        black_box(m.lock().unwrap().remove(&keys[k as usize]));
                    },
                    |k| {
                        m.lock().unwrap().insert(keys[k as usize].clone(), k);
                    },
                )
            })
        });
        group.sample_size(if n >= 1_000_000 { 10 } else { 100 });
        group.bench_function(format!("std_hashmap_iter_str_{tag}"), |b| {
            b.iter(|| {
                let g = m.lock().unwrap();
                black_box(g.iter().fold(0u64, |a, (k, v)| a ^ k.len() as u64 ^ v))
            })
        });
        group.sample_size(100);
    }
    group.finish();
}

fn growth(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    group.bench_function("dict_insert_new_u64_amortised", |b| {
        b.iter_custom(|iters| {
            let d = ShareableDict::<u64, u64>::create().expect("create a dict");
            let t = Instant::now();
            for i in 0..iters {
                d.insert(i, i).unwrap();
            }
            t.elapsed()
        })
    });
    group.bench_function("std_hashmap_insert_new_u64_amortised", |b| {
        b.iter_custom(|iters| {
            let m = Mutex::new(HashMap::new());
            let t = Instant::now();
            for i in 0..iters {
                m.lock().unwrap().insert(i, i);
            }
            t.elapsed()
        })
    });
    group.finish();
}

fn vec(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    group.bench_function("vec_push_u64", |b| {
        b.iter_custom(|iters| {
            let v = ShareableVec::<u64>::create().expect("create a vec");
            let t = Instant::now();
            for i in 0..iters {
                v.push(i).unwrap();
            }
            t.elapsed()
        })
    });
    group.bench_function("std_vec_push_u64", |b| {
        b.iter_custom(|iters| {
            let v = Mutex::new(Vec::new());
            let t = Instant::now();
            for i in 0..iters {
                v.lock().unwrap().push(i);
            }
            t.elapsed()
        })
    });
    let n = 100_000u64;
    let v = ShareableVec::<u64>::create().expect("create a vec");
    v.extend(0..n).expect("fill");
    let s = v.stats().expect("stats");
    eprintln!(
        "memory: ShareableVec<u64> 1e5: {:.1} B/element live (records + index), {:.1} B/element mapped",
        (s.bytes_used - s.garbage + s.slots * 8) as f64 / n as f64,
        (s.capacity + s.slots * 8) as f64 / n as f64
    );
    let mut next = walker(n);
    group.bench_function("vec_get_u64_1e5", |b| {
        b.iter(|| black_box(v.get(next() as usize).unwrap()))
    });
    let m = Mutex::new((0..n).collect::<Vec<u64>>());
    group.bench_function("std_vec_get_u64_1e5", |b| {
        b.iter(|| black_box(m.lock().unwrap().get(next() as usize).copied()))
    });
    group.finish();
}

/// Reader processes sharing the gets of each batch: words 1 and 2 are the gets of
/// reader 0 and 1, word 4 the stop flag; the `u32` at byte 64 (its own cache line)
/// counts the readers done, the one at byte 128 is the batch number. Both are futexes:
/// the parent sleeps until the last reader is done and readers sleep until the next
/// batch, so that nothing polls (a poller takes cycles from the two cores the two
/// readers need; the time to wake is the same for every batch, which criterion's slope
/// over batch sizes leaves out).
struct Readers {
    ctrl: Segment,
    kids: Vec<Child>,
}

impl Readers {
    fn word(seg: &Segment, i: usize) -> &AtomicU64 {
        assert!(i < 8);
        // SAFETY: the mapping is page aligned, at least 4096 bytes and lives as long as
        // `seg`; both processes touch its first 8 words only atomically.
        unsafe { &*seg.as_ptr().cast::<AtomicU64>().add(i) }
    }

    /// The done counter (a futex word).
    fn done(seg: &Segment) -> &AtomicU32 {
        // SAFETY: byte 64 of a page-aligned mapping of at least 4096 bytes, 4-aligned,
        // living as long as `seg`; both processes touch it only atomically.
        unsafe { &*seg.as_ptr().add(64).cast::<AtomicU32>() }
    }

    /// The batch number (a futex word).
    fn batch(seg: &Segment) -> &AtomicU32 {
        // SAFETY: as `done`, at byte 128.
        unsafe { &*seg.as_ptr().add(128).cast::<AtomicU32>() }
    }

    fn spawn(dict: &str, readers: usize) -> Readers {
        let ctrl = Segment::create(4096).expect("create control segment");
        let kids = (0..readers)
            .map(|i| {
                Command::new(std::env::current_exe().expect("bench binary path"))
                    .env(ROLE, "reader")
                    .env(DICT_VAR, dict)
                    .env(CTRL_VAR, ctrl.name().unwrap())
                    .env(INDEX_VAR, i.to_string())
                    .env(COUNT_VAR, readers.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn reader")
            })
            .collect();
        let r = Readers { ctrl, kids };
        r.run(1000); // every reader has opened the dict
        r
    }

    /// Splits `gets` between the readers and returns the time until all are done.
    fn run(&self, gets: u64) -> Duration {
        let k = self.kids.len() as u64;
        let w = |i| Self::word(&self.ctrl, i);
        for i in 0..k {
            w(1 + i as usize).store(gets / k + u64::from(i < gets % k), Ordering::Relaxed);
        }
        let done = Self::done(&self.ctrl);
        done.store(0, Ordering::Relaxed);
        let t = Instant::now();
        let batch = Self::batch(&self.ctrl);
        batch.fetch_add(1, Ordering::Release);
        // Every reader (the kernel reads the count as an `int`: `u32::MAX` would wake one).
        let _ = futex::wake(batch, futex::Flags::empty(), i32::MAX as u32);
        loop {
            let seen = done.load(Ordering::Acquire);
            if u64::from(seen) >= k {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "readers stalled");
            // Shared (not private) futex: the readers are other processes. Returns at
            // once if a reader counted itself done since the load.
            let second = futex::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let _ = futex::wait(done, futex::Flags::empty(), seen, Some(&second));
        }
        t.elapsed()
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        Self::word(&self.ctrl, 4).store(1, Ordering::Release);
        let batch = Self::batch(&self.ctrl);
        batch.fetch_add(1, Ordering::Release);
        let _ = futex::wake(batch, futex::Flags::empty(), i32::MAX as u32);
        for kid in &mut self.kids {
            let t = Instant::now();
            while !matches!(kid.try_wait(), Ok(Some(_))) {
                if t.elapsed() > Duration::from_secs(2) {
                    let _ = kid.kill();
                    let _ = kid.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn reader_processes(c: &mut Criterion) {
    let mut group = c.benchmark_group("collections");
    let n = 100_000u64;
    let d = ShareableDict::<u64, u64>::create().expect("create a dict");
    d.extend((0..n).map(|i| (i, i))).expect("fill");
    for readers in [1usize, 2] {
        let r = Readers::spawn(d.name().unwrap(), readers);
        group.bench_function(format!("dict_get_u64_1e5_{readers}_readers"), |b| {
            b.iter_custom(|iters| r.run(iters))
        });
    }
    group.finish();
}

/// A reader process: waits for a batch number, does its share of gets, counts itself
/// done. Leaves on the stop flag or when the parent goes away.
fn reader() {
    let d = ShareableDict::<u64, u64>::open(&std::env::var(DICT_VAR).expect("dict name"))
        .expect("open dict");
    let ctrl =
        Segment::open(&std::env::var(CTRL_VAR).expect("control name")).expect("open control");
    let me: usize = std::env::var(INDEX_VAR)
        .expect("index")
        .parse()
        .expect("index");
    let readers: u32 = std::env::var(COUNT_VAR)
        .expect("reader count")
        .parse()
        .expect("reader count");
    let w = |i| Readers::word(&ctrl, i);
    let parent = std::os::unix::process::parent_id();
    let n = 100_000;
    let mut next = walker(n);
    let batch_word = Readers::batch(&ctrl);
    let mut seen = 0u32;
    loop {
        let batch = batch_word.load(Ordering::Acquire);
        if w(4).load(Ordering::Acquire) != 0 || std::os::unix::process::parent_id() != parent {
            return;
        }
        if batch != seen {
            seen = batch;
            for _ in 0..w(1 + me).load(Ordering::Relaxed) {
                black_box(d.get(&next()).unwrap());
            }
            let done = Readers::done(&ctrl);
            if done.fetch_add(1, Ordering::Release) + 1 == readers {
                let _ = futex::wake(done, futex::Flags::empty(), 1);
            }
        } else {
            // Until the next batch (or, every 100 ms, to see whether the parent is
            // still there); returns at once if the batch moved since the load.
            let tick = futex::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            let _ = futex::wait(batch_word, futex::Flags::empty(), seen, Some(&tick));
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        assert_eq!(role, "reader", "unknown bench role");
        reader();
        return;
    }
    let mut c = shm_bench::criterion();
    u64_keys(&mut c);
    str_keys(&mut c);
    growth(&mut c);
    vec(&mut c);
    reader_processes(&mut c);
    c.final_summary();
}
