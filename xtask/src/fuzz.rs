//! The hostile-memory fuzz harness: for every object kind, a real object's bytes are
//! damaged (header fields, lengths, offsets, format bytes, lock words, truncation, random
//! bytes) and the result is opened and used through the public API with bounded waits.
//!
//! Every outcome must be `Ok` or a typed error: a panic, a hang (a case taking longer
//! than [`HANG`]), a crash or an allocation proportional to a forged length is a failure.
//! `cargo test` runs a few thousand seeded cases (`bounded_run` below); `cargo xtask
//! fuzz` runs 10^6 in release and prints the tally.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shm_collections::{
    Array, AtomicValue, ByteQueue, Item, Queue, QueueSize, RawArray, RawValue, ShareableList, Value,
};
use shm_core::{Segment, SharedObject};
use shm_sync::{
    Barrier, BoundedSemaphore, Condition, Condvar, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};

/// A case that takes longer than this is reported as a hang.
pub const HANG: Duration = Duration::from_secs(5);

/// Largest single allocation a case may make: far below any forged length (2^40...).
pub const MAX_ALLOCATION: usize = 64 << 20;

/// Counts the largest allocation request, so that allocations proportional to a forged
/// length are caught even when they would succeed.
pub struct CountingAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract; forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                + (new_size - layout.size());
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A small, seedable generator (SplitMix64): reproducible cases from a seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A value an attacker would try for a length, count, offset or word.
    fn adversarial(&mut self, len: usize) -> u64 {
        let len = len as u64;
        match self.below(16) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => i64::MAX as u64,
            4 => i64::MIN as u64,
            5 => u64::from(u32::MAX),
            6 => len,
            7 => len + 1,
            8 => len.saturating_sub(1),
            9 => 1 << 40,
            10 => 1 << 62,
            11 => u64::from(u32::MAX) + 1,
            12 => self.next() & 0xffff,
            13 => (self.next() & 0x3fff_ffff) | (self.next() << 32),
            _ => self.next(),
        }
    }
}

/// What the harness tallies.
#[derive(Debug, Default)]
pub struct Tally {
    /// Cases run.
    pub cases: u64,
    /// Cases whose object opened (and was then used).
    pub opened: u64,
    /// Open or use errors, by `kind: first words of the error`.
    pub errors: BTreeMap<String, u64>,
    /// Panics, with the first messages.
    pub panics: Vec<String>,
    /// Hangs (cases over [`HANG`]).
    pub hangs: u64,
    /// Largest single allocation seen.
    pub largest_allocation: usize,
    /// Peak of live heap bytes.
    pub peak_heap: usize,
    /// Slowest case.
    pub slowest: Duration,
}

impl Tally {
    /// Whether nothing went wrong.
    pub fn clean(&self) -> bool {
        self.panics.is_empty() && self.hangs == 0 && self.largest_allocation <= MAX_ALLOCATION
    }

    fn error(&mut self, kind: &str, err: &dyn std::fmt::Display) {
        let text = err.to_string();
        // Group by the error's shape, not its numbers or names.
        let shape: String = text
            .split_whitespace()
            .filter(|w| !w.chars().any(|c| c.is_ascii_digit() || c == '"'))
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        *self.errors.entry(format!("{kind}: {shape}")).or_default() += 1;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors: u64 = self.errors.values().sum();
        writeln!(
            f,
            "fuzz: {} cases, {} opened and used, {} typed errors, {} panics, {} hangs; largest allocation {} bytes (limit {}), peak heap {} bytes, slowest case {:?}",
            self.cases,
            self.opened,
            errors,
            self.panics.len(),
            self.hangs,
            self.largest_allocation,
            MAX_ALLOCATION,
            self.peak_heap,
            self.slowest
        )?;
        let mut top: Vec<_> = self.errors.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        for (shape, n) in top.iter().take(25) {
            writeln!(f, "  {n:>9}  {shape}")?;
        }
        for p in self.panics.iter().take(10) {
            writeln!(f, "  PANIC: {p}")?;
        }
        Ok(())
    }
}

type Outcome = Result<(), String>;

/// One object kind: how to make a pristine object, and how to use a damaged one.
struct Target {
    kind: &'static str,
    pristine: Vec<u8>,
    /// Offsets (in the segment) of 8-byte words worth forging with values near their
    /// own (a ring's head, tail, sequence words and intents): half of the damage goes
    /// there when there are any, see [`forge_word`].
    hot: Vec<usize>,
    exercise: fn(Segment) -> Outcome,
}

/// The ring words of a queue whose ring starts at payload offset 0: tail, head, the
/// first entry's intents (producer and consumer position and count) and every slot's
/// sequence word (slots from the control block, which these pristine objects own).
fn ring_words<T: SharedObject>(obj: &T, slots: usize, stride: usize) -> Vec<usize> {
    let o = obj.object();
    let base = o.payload_ptr() as usize - o.segment().as_ptr() as usize;
    let (table, slot0) = (base + 256, base + 256 + 64 * 64);
    let mut hot = vec![
        base,
        base + 64,
        table + 16,
        table + 24,
        table + 32,
        table + 40,
    ];
    hot.extend((0..slots).map(|i| slot0 + i * stride));
    hot
}

/// Sets the word at `at` to a value an attacker would pick for a ring position or a
/// sequence word: the ends of the range, or its own value moved by a little, a lap or
/// two laps (`tail < head`, `tail > head + slots`, sequence words of other laps), or
/// with the tombstone bit flipped.
fn forge_word(rng: &mut Rng, bytes: &mut [u8], at: usize) {
    if at + 8 > bytes.len() {
        return;
    }
    let v = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let lap = 8 + rng.below(3) as u64 * 8; // the pristine rings have 8 slots
    let forged = match rng.below(12) {
        0 => u64::MAX,
        1 => 0,
        2 => v.wrapping_sub(1),
        3 => v.wrapping_add(1),
        4 => v.wrapping_add(lap + 1),
        5 => v.wrapping_sub(lap),
        6 => v.wrapping_add(2 * lap),
        7 => v.wrapping_sub(2 * lap),
        8 => v ^ (1 << 63),
        9 => i64::MAX as u64,
        10 => u64::MAX - rng.below(16) as u64,
        _ => v.wrapping_mul(2),
    };
    bytes[at..at + 8].copy_from_slice(&forged.to_le_bytes());
}

fn snapshot<T: SharedObject>(obj: &T) -> Vec<u8> {
    let o = obj.object();
    let seg = o.segment();
    let mut bytes = vec![0u8; seg.len()];
    seg.read_at(0, &mut bytes).expect("a fresh object reads");
    bytes
}

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Puts `bytes` in the named segment `name` (of a fixture the damaged bytes go into),
/// recreating it when the length differs.
fn put(name: &str, bytes: &[u8]) -> Result<(), String> {
    let seg = match Segment::open(name) {
        Ok(s) if s.len() == bytes.len() => s,
        _ => {
            let _ = shm_core::unlink(name);
            let mut s = Segment::create_named(name, bytes.len()).map_err(e)?;
            s.set_unlink_on_drop(false);
            s
        }
    };
    seg.write_at(0, bytes).map_err(e)
}

/// The damaged bytes a case hands over (in an anonymous segment).
fn damaged(s: &Segment) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; s.len()];
    s.read_at(0, &mut bytes).map_err(e)?;
    Ok(bytes)
}

const T: Duration = Duration::from_millis(1);

fn targets() -> Vec<Target> {
    let list_items = [
        Item::from("howdy"),
        Item::Int(-7),
        Item::Float(2.5),
        Item::Bool(true),
        Item::None,
        Item::Bytes(b"\x00\x01".to_vec()),
    ];
    let list = <ShareableList as SharedObject>::anonymous(list_items.to_vec()).unwrap();
    vec![
        Target {
            kind: "Mutex<u64>",
            pristine: snapshot(&<Mutex<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let m = Mutex::<u64>::from_segment(s).map_err(e)?;
                if let Ok(mut g) = m.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                    *g = g.wrapping_add(1);
                }
                let _ = m.try_lock();
                Ok(())
            },
        },
        Target {
            kind: "RwLock<u64>",
            pristine: snapshot(&<RwLock<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = RwLock::<u64>::from_segment(s).map_err(e)?;
                if let Ok(g) = l.read_timeout(T) {
                    let _ = *g;
                }
                drop(l.write_timeout(T));
                Ok(())
            },
        },
        Target {
            kind: "Event",
            pristine: snapshot(&<Event as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let ev = Event::from_segment(s).map_err(e)?;
                let _ = ev.is_set();
                let _ = ev.wait_timeout(T);
                ev.set();
                ev.clear();
                Ok(())
            },
        },
        Target {
            kind: "Semaphore",
            pristine: snapshot(&<Semaphore as SharedObject>::anonymous(3).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let sem = Semaphore::from_segment(s).map_err(e)?;
                if sem.acquire_timeout(T).is_ok() {
                    let _ = sem.release();
                }
                let _ = sem.value();
                Ok(())
            },
        },
        Target {
            kind: "BoundedSemaphore",
            pristine: snapshot(&<BoundedSemaphore as SharedObject>::anonymous(3).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let sem = BoundedSemaphore::from_segment(s).map_err(e)?;
                if sem.try_acquire().is_ok() {
                    let _ = sem.release();
                }
                let _ = sem.release();
                Ok(())
            },
        },
        Target {
            kind: "Barrier",
            pristine: snapshot(&<Barrier as SharedObject>::anonymous(2).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let b = Barrier::from_segment(s).map_err(e)?;
                let _ = b.wait_timeout(T);
                let _ = (b.broken(), b.parties(), b.n_waiting());
                b.reset();
                Ok(())
            },
        },
        Target {
            kind: "Condvar",
            pristine: snapshot(&<Condvar as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let cv = Condvar::from_segment(s).map_err(e)?;
                cv.notify_one();
                cv.notify_all();
                Ok(())
            },
        },
        Target {
            kind: "Condition<u32>",
            pristine: snapshot(&<Condition<u32> as SharedObject>::anonymous(1).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let c = Condition::<u32>::from_segment(s).map_err(e)?;
                if let Ok(g) = c.lock_timeout(T) {
                    let _ = c.wait_timeout(g, T);
                }
                c.notify_all();
                Ok(())
            },
        },
        Target {
            kind: "RLock",
            pristine: snapshot(&<RLock as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = RLock::from_segment(s).map_err(e)?;
                drop(l.lock_timeout(T));
                Ok(())
            },
        },
        Target {
            kind: "Lock",
            pristine: snapshot(&<Lock as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = Lock::from_segment(s).map_err(e)?;
                drop(l.lock_timeout(T));
                Ok(())
            },
        },
        Target {
            kind: "Value<u64>",
            pristine: snapshot(&<Value<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                // Only timed waits: a forged word can name a live holder (or one in
                // another PID namespace, which counts as live), and untimed calls such as
                // `get` then wait as long as that holder seems to live.
                let v = Value::<u64>::from_segment(s).map_err(e)?;
                if let Ok(mut g) = v.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                    *g = g.wrapping_add(1);
                }
                Ok(())
            },
        },
        Target {
            kind: "RawValue<u64>",
            pristine: snapshot(&<RawValue<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let v = RawValue::<u64>::from_segment(s).map_err(e)?;
                v.set(v.get().wrapping_add(1));
                Ok(())
            },
        },
        Target {
            kind: "AtomicValue<u64>",
            pristine: snapshot(&<AtomicValue<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let v = AtomicValue::<u64>::from_segment(s).map_err(e)?;
                v.fetch_add(1);
                Ok(())
            },
        },
        Target {
            kind: "Array<u32>",
            pristine: snapshot(&<Array<u32> as SharedObject>::anonymous(5).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let a = Array::<u32>::from_segment(s).map_err(e)?;
                if let Ok(g) = a.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                    let n = g.len();
                    let _ = g.get(n.saturating_sub(1));
                    let _ = g.to_vec();
                }
                Ok(())
            },
        },
        Target {
            kind: "RawArray<u32>",
            pristine: snapshot(&<RawArray<u32> as SharedObject>::anonymous(5).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let a = RawArray::<u32>::from_segment(s).map_err(e)?;
                let n = a.len();
                let _ = a.get(n.saturating_sub(1));
                let _ = a.set(n, 1);
                let _ = a.to_vec();
                Ok(())
            },
        },
        Target {
            kind: "Queue<u64>",
            pristine: {
                let size = QueueSize {
                    messages: 8,
                    bytes: 256,
                };
                let q = <Queue<u64> as SharedObject>::anonymous(size).unwrap();
                for i in 0..5u64 {
                    q.put(&i).unwrap();
                }
                let _ = q.get();
                snapshot(&q)
            },
            hot: Vec::new(),
            exercise: |s| {
                let q = Queue::<u64>::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats(), q.empty(), q.full());
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.put_timeout(&7, T);
                let _ = q.get_nowait();
                let _ = q.put_nowait(&8);
                let _ = q.get_many_timeout(4, T);
                Ok(())
            },
        },
        Target {
            // Messages of one and of three slots (40 payload bytes each), a wrapped ring
            // (positions past the slot count), so that sequence words, frame headers and
            // continuation slots are all in the bytes being damaged.
            kind: "ByteQueue",
            pristine: {
                let size = QueueSize {
                    messages: 8,
                    bytes: 256,
                };
                let q = <ByteQueue as SharedObject>::anonymous(size).unwrap();
                for _ in 0..6 {
                    q.put(b"wrap").unwrap();
                    q.get().unwrap();
                }
                q.put(b"hello").unwrap();
                q.put(&[7u8; 100]).unwrap();
                snapshot(&q)
            },
            hot: Vec::new(),
            exercise: |s| {
                // Timed calls only: a blocking get on a damaged, effectively empty
                // queue rightly waits for a put.
                let q = ByteQueue::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats());
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.put_timeout(b"again", T);
                let _ = q.put_timeout(&[1u8; 90], T);
                let _ = q.get_nowait();
                let _ = q.get_nowait();
                Ok(())
            },
        },
        Target {
            // The ByteQueue above with its ring words forged (positions and sequence
            // words out of range, see `forge_word`), blocking puts included: a forged
            // ring must say `Corrupted` (or time out), never block for ever.
            kind: "ByteQueue ring words",
            pristine: snapshot(&ring_queue()),
            hot: ring_words(&ring_queue(), 8, 64),
            exercise: |s| {
                let q = ByteQueue::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats());
                let _ = q.get_timeout(T);
                let _ = q.get_nowait();
                let _ = q.put_nowait(b"x");
                let _ = q.put_timeout(&[1u8; 90], T);
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.get_nowait();
                Ok(())
            },
        },
        Target {
            // A typed queue, drained and wrapped, forged the same way.
            kind: "Queue<u64> ring words",
            pristine: snapshot(&ring_typed_queue()),
            hot: ring_words(&ring_typed_queue(), 8, 64),
            exercise: |s| {
                let q = Queue::<u64>::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.empty(), q.full());
                let _ = q.put_timeout(&7, T);
                let _ = q.put_nowait(&8);
                let _ = q.get_nowait();
                let _ = q.get_many_timeout(4, T);
                let _ = q.drain();
                Ok(())
            },
        },
        Target {
            kind: "Registry data",
            pristine: manager_kinds::pristine(manager_kinds::Part::RegistryData),
            hot: Vec::new(),
            exercise: manager_kinds::registry_data,
        },
        Target {
            kind: "Registry entry",
            pristine: manager_kinds::pristine(manager_kinds::Part::Entry),
            hot: Vec::new(),
            exercise: manager_kinds::registry_entry,
        },
        Target {
            kind: "Arena",
            pristine: manager_kinds::pristine(manager_kinds::Part::Arena),
            hot: Vec::new(),
            exercise: manager_kinds::arena,
        },
        Target {
            kind: "Growable control",
            pristine: growth_kinds::pristine(growth_kinds::Part::Control),
            hot: Vec::new(),
            exercise: growth_kinds::control,
        },
        Target {
            kind: "Growable data",
            pristine: growth_kinds::pristine(growth_kinds::Part::Data),
            hot: Vec::new(),
            exercise: growth_kinds::data,
        },
        Target {
            kind: "Growth names",
            pristine: growth_kinds::pristine(growth_kinds::Part::Control),
            hot: Vec::new(),
            exercise: growth_kinds::names,
        },
        Target {
            kind: "ShareableList",
            pristine: snapshot(&list),
            hot: Vec::new(),
            exercise: |s| {
                let l = ShareableList::from_segment(s).map_err(e)?;
                for i in 0..l.len().min(64) {
                    let _ = l.get(i);
                }
                let _ = l.format();
                let _ = l.to_vec();
                Ok(())
            },
        },
    ]
}

/// The manager's kinds: a registry root and an arena are named segments of a real
/// manager, so the damaged bytes (handed over in the usual anonymous segment) are
/// written into a live fixture manager's segment before each case, which is restored
/// to its pristine state first (a case may have grown the registry or made arenas).
mod manager_kinds {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU32, Ordering};

    use shm_collections::ShareableDict;
    use shm_core::Segment;
    use shm_manager::{Entry, ManagerOptions, SharedMemoryManager};
    use shm_sync::{Event, Lock};

    use super::{Outcome, T, damaged, e, put};
    use shm_collections::Value;

    /// Bytes of the arena that are damaged (its header, bump line and objects).
    const ARENA_PART: usize = 4096;

    /// Which part of the fixture a target damages.
    #[derive(Clone, Copy)]
    pub(super) enum Part {
        /// The registry dict's data segment `shm-rs.m.NAME.g0.<incarnation>`.
        RegistryData,
        /// One encoded registry `Entry` (inserted under a key, then opened).
        Entry,
        /// The first bytes of the arena `shm-rs.m.NAME.a0`.
        Arena,
    }

    /// A manager owned by the harness (no tracker: nothing forks) and its pristine
    /// segments.
    struct Fixture {
        manager: SharedMemoryManager,
        /// Every segment the pristine manager has, with its bytes (the arena: only
        /// [`ARENA_PART`]).
        pristine: Vec<(String, Vec<u8>)>,
        entry: Vec<u8>,
    }

    thread_local! {
        static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
    }

    fn read_all(name: &str, max: usize) -> Vec<u8> {
        let seg = Segment::open(name).expect("a fixture segment opens");
        let mut bytes = vec![0u8; seg.len().min(max)];
        seg.read_at(0, &mut bytes).expect("a fixture segment reads");
        bytes
    }

    fn fixture() -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let m = ManagerOptions::new()
            .name(name)
            .tracker(false)
            .create()
            .expect("the fuzz fixture manager");
        m.value("counter", 7u64).unwrap();
        m.lock("db").unwrap();
        m.event("go").unwrap().set();
        m.dict::<String, u64>("scores")
            .unwrap()
            .insert("ann".into(), 3)
            .unwrap();
        let mut entry = Vec::new();
        shm_collections::codec::encode(&m.entry("counter").unwrap().unwrap(), &mut entry).unwrap();
        let root = m.root_name().to_owned();
        let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|d| d.ok()?.file_name().into_string().ok())
            .filter(|n| shm_manager::is_tracked_by(n, &root))
            .collect();
        names.sort();
        let pristine = names
            .into_iter()
            .map(|n| {
                let max = if n.ends_with(".a0") {
                    ARENA_PART
                } else {
                    usize::MAX
                };
                let b = read_all(&n, max);
                (n, b)
            })
            .collect();
        Fixture {
            manager: m,
            pristine,
            entry,
        }
    }

    /// Runs `f` on this thread's fixture, made on first use.
    fn with<R>(f: impl FnOnce(&Fixture) -> R) -> R {
        FIXTURE.with(|cell| {
            let mut slot = cell.borrow_mut();
            f(slot.get_or_insert_with(fixture))
        })
    }

    /// Removes this thread's fixture manager and every segment it has.
    pub(super) fn teardown() {
        FIXTURE.with(|cell| {
            if let Some(f) = cell.borrow_mut().take() {
                let _ = f.manager.shutdown();
            }
        });
    }

    /// The bytes a target damages.
    pub(super) fn pristine(part: Part) -> Vec<u8> {
        with(|f| match part {
            Part::Entry => f.entry.clone(),
            Part::RegistryData => segment_bytes(f, &registry_data_name(f)),
            Part::Arena => segment_bytes(f, &format!("{}.a0", f.manager.root_name())),
        })
    }

    /// The registry dict's data segment (`<root>.g0.<incarnation>`) as the fixture
    /// made it.
    fn registry_data_name(f: &Fixture) -> String {
        let root = f.manager.root_name();
        f.pristine
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| {
                shm_collections::region::parse_data_segment_name(n)
                    .is_some_and(|p| p.control == root)
            })
            .expect("the fixture has the registry's data segment")
            .to_owned()
    }

    fn segment_bytes(f: &Fixture, name: &str) -> Vec<u8> {
        f.pristine
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .expect("the fixture has the segment")
    }

    /// Restores the fixture: pristine bytes back, segments made by earlier cases gone.
    fn reset(f: &Fixture) -> Result<(), String> {
        let root = f.manager.root_name();
        for n in std::fs::read_dir("/dev/shm").map_err(e)?.filter_map(|d| {
            let n = d.ok()?.file_name().into_string().ok()?;
            shm_manager::is_tracked_by(&n, root).then_some(n)
        }) {
            if !f.pristine.iter().any(|(p, _)| *p == n) {
                let _ = shm_core::unlink(&n);
            }
        }
        for (n, b) in &f.pristine {
            if n.ends_with(".a0") {
                Segment::open(n).map_err(e)?.write_at(0, b).map_err(e)?;
            } else {
                put(n, b)?;
            }
        }
        Ok(())
    }

    /// A header made unpublished is waited for ([`shm_core::DEFAULT_OPEN_WAIT`], a
    /// bounded wait for its creator, not a parse of hostile bytes): reported at once
    /// so that the 1 s waits do not dominate the run.
    fn unpublished(name: &str) -> Outcome {
        match shm_core::Object::inspect(name) {
            Ok(info) if !info.initialised => Err(format!(
                "{name} is not initialised (opening waits {:?} for its creator)",
                shm_core::DEFAULT_OPEN_WAIT
            )),
            _ => Ok(()),
        }
    }

    /// Connects to the fixture and uses the registry: keys, entries, and opening every
    /// key as several types (a damaged entry must be a typed error, whatever it names).
    fn use_registry(name: &str) -> Outcome {
        let w = SharedMemoryManager::connect(name).map_err(e)?;
        let keys = w.keys().map_err(e)?;
        let _ = w.entries().map_err(e)?;
        for k in keys.iter().take(16) {
            if let Ok(v) = w.open::<Value<u64>>(k) {
                if let Ok(mut g) = v.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                    *g = g.wrapping_add(1);
                }
            }
            if let Ok(l) = w.open::<Lock>(k) {
                drop(l.lock_timeout(T));
            }
            if let Ok(ev) = w.open::<Event>(k) {
                let _ = ev.is_set();
            }
            if let Ok(d) = w.open::<ShareableDict<String, u64>>(k) {
                let _ = d.len();
                let _ = d.get("ann");
            }
        }
        let _ = w.arena_stats();
        Ok(())
    }

    /// Random bytes in the registry dict's data segment.
    pub(super) fn registry_data(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            let data = registry_data_name(f);
            put(&data, &bytes)?;
            unpublished(&data)?;
            use_registry(f.manager.name())
        })
    }

    /// A damaged `Entry` record: decoded when it still decodes, otherwise forged from
    /// the damaged bytes (an offset, an arena index and a kind), then registered under a
    /// key and opened.
    pub(super) fn registry_entry(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            let entry = match shm_collections::codec::decode::<Entry>(&bytes) {
                Ok(entry) => entry,
                Err(_) => {
                    let word = |i: usize| {
                        let mut w = [0u8; 8];
                        for (j, b) in w.iter_mut().enumerate() {
                            *b = bytes.get(i * 8 + j).copied().unwrap_or(0);
                        }
                        u64::from_le_bytes(w)
                    };
                    let mut entry: Entry = shm_collections::codec::decode(&f.entry).map_err(e)?;
                    // Mostly the existing arena, at any 64-byte offset in it or just
                    // past it; sometimes a missing arena or a far offset.
                    let lines = (shm_manager::ARENA_LEN / 64) as u64;
                    let (index, offset) = match word(0) % 8 {
                        0 => (1 + word(0) % 2, word(1) % (1 << 21)),
                        1 => (0, word(1) % (1 << 21)),
                        _ => (0, word(1) % (lines + 4)),
                    };
                    entry.location = format!("{}.a{index}@{}", f.manager.root_name(), offset * 64);
                    if word(2) % 4 == 0 {
                        entry.kind = word(3) as u32;
                    }
                    entry
                }
            };
            let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
            w.registry().insert("forged".into(), entry).map_err(e)?;
            drop(w);
            use_registry(f.manager.name())?;
            // The forged key itself, as the type it was made for: its typed error (if
            // any) is this case's outcome.
            let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
            let v = w.open::<Value<u64>>("forged").map_err(e)?;
            let _ = v.lock_timeout(T);
            Ok(())
        })
    }

    /// Random bump word and object headers in the arena: opening its objects
    /// (`open_at`) and allocating a new one.
    pub(super) fn arena(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            let name = format!("{}.a0", f.manager.root_name());
            let seg = Segment::open(&name).map_err(e)?;
            let n = bytes.len().min(seg.len());
            seg.write_at(0, &bytes[..n]).map_err(e)?;
            unpublished(&name)?;
            let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
            // Maps the arena once (an unpublished header is waited for, 1 s, once).
            let _ = w.arena_stats().map_err(e)?;
            for k in ["counter", "db", "go"] {
                if let Ok(v) = w.open::<Value<u64>>(k) {
                    let _ = v.lock_timeout(T);
                }
                if let Ok(l) = w.open::<Lock>(k) {
                    drop(l.lock_timeout(T));
                }
                if let Ok(ev) = w.open::<Event>(k) {
                    let _ = ev.is_set();
                }
            }
            let v = w.value("fresh", 1u64).map_err(e)?;
            let _ = v.lock_timeout(T);
            Ok(())
        })
    }
}

/// The growable collections' kinds: a dict's control object and data segment are
/// named segments, so the damaged bytes are written into a fixture dict's segments
/// (restored to their pristine state first, segments made by earlier cases removed),
/// and the dict is opened by name and used, growth included: the fixture dict is one
/// insert short of its first growth.
mod growth_kinds {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU32, Ordering};

    use shm_collections::region::{current_data_segment, data_segment_name};
    use shm_collections::{ShareableDict, Value};
    use shm_core::{HEADER_LEN, Segment};

    use super::{Outcome, T, damaged, e, put};

    type D = ShareableDict<u64, u64>;

    /// Where the control payload keeps the incarnation id (region.rs, `CTRL_INC`).
    const CTRL_INC: usize = 32;
    /// Where the data header keeps it (region.rs, `D_INC`).
    const D_INC: usize = 64;

    /// Which segment of the fixture dict a target damages.
    #[derive(Clone, Copy)]
    pub(super) enum Part {
        /// The control object (lock, limits, incarnation id, generation word).
        Control,
        /// The current data segment (data header, counters, index, records).
        Data,
    }

    struct Fixture {
        name: String,
        data: String,
        control_bytes: Vec<u8>,
        data_bytes: Vec<u8>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            remove_made(&self.name, &[]);
            let _ = shm_core::unlink(&self.name);
        }
    }

    thread_local! {
        static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
    }

    fn read_all(name: &str) -> Vec<u8> {
        let seg = Segment::open(name).expect("a fixture segment opens");
        let mut bytes = vec![0u8; seg.len()];
        seg.read_at(0, &mut bytes).expect("a fixture segment reads");
        bytes
    }

    fn fixture() -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fuzz-g-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut d = D::create_named(&name).expect("the fuzz fixture dict");
        d.set_unlink_on_drop(false);
        // 11 entries in 16 slots: the 12th needs a growth.
        for k in 0..11 {
            d.insert(k, k * 3).unwrap();
        }
        drop(d);
        let data = current_data_segment(&name).unwrap();
        Fixture {
            control_bytes: read_all(&name),
            data_bytes: read_all(&data),
            name,
            data,
        }
    }

    fn with<R>(f: impl FnOnce(&Fixture) -> R) -> R {
        FIXTURE.with(|cell| {
            let mut slot = cell.borrow_mut();
            f(slot.get_or_insert_with(fixture))
        })
    }

    /// Removes this thread's fixture dict and every segment the cases made.
    pub(super) fn teardown() {
        FIXTURE.with(|cell| drop(cell.borrow_mut().take()));
    }

    pub(super) fn pristine(part: Part) -> Vec<u8> {
        with(|f| match part {
            Part::Control => f.control_bytes.clone(),
            Part::Data => f.data_bytes.clone(),
        })
    }

    /// Unlinks every `<name>.*` segment but `keep`.
    fn remove_made(name: &str, keep: &[&str]) {
        let prefix = format!("{name}.");
        let Ok(dir) = std::fs::read_dir("/dev/shm") else {
            return;
        };
        for n in dir.filter_map(|d| d.ok()?.file_name().into_string().ok()) {
            if n.starts_with(&prefix) && !keep.contains(&n.as_str()) {
                let _ = shm_core::unlink(&n);
            }
        }
    }

    fn reset(f: &Fixture) -> Result<(), String> {
        remove_made(&f.name, &[&f.data]);
        put(&f.name, &f.control_bytes)?;
        put(&f.data, &f.data_bytes)
    }

    /// Opens the dict and uses it with bounded waits (a forged lock word can name a
    /// live holder): reads, growing writes, removal, a snapshot and a salvage.
    fn use_dict(name: &str) -> Outcome {
        // No wait for an unpublished header (a bounded wait for its creator, not a
        // parse of hostile bytes): reported at once so that 1 s waits do not dominate.
        let d = D::open_timeout(name, std::time::Duration::ZERO).map_err(e)?;
        d.set_patience(Some(T));
        let _ = (d.len(), d.stats(), d.iter());
        for k in 0..4 {
            let _ = d.get(&k);
        }
        for k in 100..104 {
            let _ = d.insert(k, k);
        }
        let _ = d.remove(&1);
        let _ = d.salvage();
        let _ = d.insert(200, 1);
        let _ = (d.len(), d.keys());
        Ok(())
    }

    /// Random bytes in the control object (lock, limits, incarnation id, generation).
    pub(super) fn control(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            put(&f.name, &bytes)?;
            use_dict(&f.name)
        })
    }

    /// Random bytes in the current data segment (data header, counters, index,
    /// records).
    pub(super) fn data(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            put(&f.data, &bytes)?;
            use_dict(&f.name)
        })
    }

    /// A damaged control object, with the names its growth would use taken by others:
    /// a `Value` under the next data segment's name, a data segment of another
    /// incarnation under the one after, and a user object under the old-style name
    /// `<name>.g1`. Growth must skip them or fail with a typed error; removing one is a
    /// failure (a panic here).
    pub(super) fn names(s: Segment) -> Outcome {
        let bytes = damaged(&s)?;
        with(|f| {
            reset(f)?;
            put(&f.name, &bytes)?;
            let word = |at: usize| {
                let mut w = [0u8; 8];
                for (j, b) in w.iter_mut().enumerate() {
                    *b = bytes.get(at + j).copied().unwrap_or(0);
                }
                u64::from_ne_bytes(w)
            };
            let inc = word(HEADER_LEN + CTRL_INC);
            // The generation word of the object header (shm-core: at offset 64).
            let generation = word(64);
            let squat_value = data_segment_name(&f.name, inc, generation.wrapping_add(1));
            let squat_data = data_segment_name(&f.name, inc, generation.wrapping_add(2));
            let old_style = format!("{}.g1", f.name);
            let mut made = Vec::new();
            for n in [&squat_value, &old_style] {
                if let Ok(mut v) = Value::create_named(n, 5u64) {
                    v.set_unlink_on_drop(false);
                    made.push(n.clone());
                }
            }
            // Another incarnation's data segment: the pristine one, incarnation changed.
            let mut other = f.data_bytes.clone();
            let at = HEADER_LEN + D_INC;
            let forged = (word(HEADER_LEN + CTRL_INC) ^ 1).to_ne_bytes();
            other[at..at + 8].copy_from_slice(&forged);
            if squat_data != squat_value && put(&squat_data, &other).is_ok() {
                made.push(squat_data.clone());
            }
            let outcome = use_dict(&f.name);
            for n in &made {
                assert!(
                    Segment::open(n).is_ok(),
                    "growth removed {n}, a segment it did not make"
                );
            }
            outcome
        })
    }
}

/// The ByteQueue of the ring-word target: 8 slots of 40 bytes, wrapped (head and tail
/// at 13), with a one-slot and a three-slot message queued.
fn ring_queue() -> ByteQueue {
    let size = QueueSize {
        messages: 8,
        bytes: 256,
    };
    let q = <ByteQueue as SharedObject>::anonymous(size).expect("a fresh queue");
    for _ in 0..13 {
        q.put(b"wrap").expect("room");
        q.get().expect("a message");
    }
    q.put(b"hello").expect("room");
    q.put(&[7u8; 100]).expect("room");
    q
}

/// The typed queue of the ring-word target: wrapped, two values queued.
fn ring_typed_queue() -> Queue<u64> {
    let size = QueueSize {
        messages: 8,
        bytes: 256,
    };
    let q = <Queue<u64> as SharedObject>::anonymous(size).expect("a fresh queue");
    for i in 0..21u64 {
        q.put(&i).expect("room");
        q.get().expect("a value");
    }
    q.put(&1).expect("room");
    q.put(&2).expect("room");
    q
}

/// Damages `bytes`: forges one to three of `hot`'s words (half of the cases, when
/// there are any), or damages them in one to four ways.
fn damage(rng: &mut Rng, pristine: &[u8], hot: &[usize]) -> Vec<u8> {
    if !hot.is_empty() && rng.below(2) == 0 {
        let mut bytes = pristine.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = hot[rng.below(hot.len())];
            forge_word(rng, &mut bytes, at);
        }
        return bytes;
    }
    mutate(rng, pristine)
}

/// Damages `bytes` in one to four ways.
fn mutate(rng: &mut Rng, pristine: &[u8]) -> Vec<u8> {
    let mut bytes = pristine.to_vec();
    // Weighted towards the payload (lengths, counts, offsets, lock words): a damaged
    // header is refused early, so most cases should get past it.
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        match rng.below(20) {
            // A header (3 in 20) or payload (7 in 20) word set to an adversarial value.
            0..=9 => {
                let at = if rng.below(10) < 3 {
                    rng.below(128.min(len) / 8) * 8
                } else {
                    rng.below(len / 8) * 8
                };
                let v = rng.adversarial(len).to_le_bytes();
                let end = (at + 8).min(len);
                bytes[at..end].copy_from_slice(&v[..end - at]);
            }
            // A 4-byte field.
            10..=12 => {
                let at = rng.below(len / 4) * 4;
                let v = (rng.adversarial(len) as u32).to_le_bytes();
                let end = (at + 4).min(len);
                bytes[at..end].copy_from_slice(&v[..end - at]);
            }
            // Random bytes over a random range.
            13..=15 => {
                let at = rng.below(len);
                let n = 1 + rng.below(32.min(len - at));
                for b in &mut bytes[at..at + n] {
                    *b = rng.next() as u8;
                }
            }
            // A single bit flipped.
            16 | 17 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            // Truncated (possibly below the header).
            18 => {
                let keep = 1 + rng.below(len.max(2) - 1);
                bytes.truncate(keep);
            }
            // Extended with garbage.
            _ => {
                let extra = 1 + rng.below(256);
                bytes.extend((0..extra).map(|_| rng.next() as u8));
            }
        }
        if bytes.is_empty() {
            bytes.push(0);
        }
    }
    bytes
}

/// Runs `cases` seeded cases, round-robin over every kind.
#[cfg(test)]
pub fn run(cases: u64, seed: u64, progress: bool) -> Tally {
    run_from(cases, seed, 0, false, progress)
}

/// Runs `cases` seeded cases, executing only those from `first` on (the earlier ones
/// are generated, so that a reported case number reproduces), printing each case's
/// bytes if `trace`.
pub fn run_from(cases: u64, seed: u64, first: u64, trace: bool, progress: bool) -> Tally {
    let targets = targets();
    let mut tally = Tally::default();
    let started = Instant::now();
    let current = AtomicU64::new(u64::MAX);
    let case_started = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let hung = AtomicBool::new(false);
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        // Watchdog: a case that runs past HANG is a hang; report it and stop.
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let at = case_started.load(Ordering::Relaxed);
                let now = started.elapsed().as_millis() as u64;
                if current.load(Ordering::Relaxed) != u64::MAX
                    && now.saturating_sub(at) > HANG.as_millis() as u64
                {
                    hung.store(true, Ordering::Relaxed);
                    // Not eprintln!: it panics when stderr is a closed pipe.
                    let _ = writeln!(
                        std::io::stderr(),
                        "fuzz: case {} (seed {seed}) hangs: over {HANG:?}",
                        current.load(Ordering::Relaxed)
                    );
                    std::process::exit(3);
                }
            }
        });
        let mut rng = Rng::new(seed);
        for case in 0..cases {
            let target = &targets[(case % targets.len() as u64) as usize];
            let bytes = damage(&mut rng, &target.pristine, &target.hot);
            if case < first {
                continue;
            }
            if trace {
                let _ = writeln!(
                    std::io::stderr(),
                    "fuzz: case {case} {}: {bytes:02x?}",
                    target.kind
                );
            }
            case_started.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            current.store(case, Ordering::Relaxed);
            let t = Instant::now();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let seg = Segment::anonymous(bytes.len()).map_err(e)?;
                seg.write_at(0, &bytes).map_err(e)?;
                (target.exercise)(seg)
            }));
            current.store(u64::MAX, Ordering::Relaxed);
            tally.slowest = tally.slowest.max(t.elapsed());
            tally.cases += 1;
            match outcome {
                Ok(Ok(())) => tally.opened += 1,
                Ok(Err(err)) => tally.error(target.kind, &err),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    tally
                        .panics
                        .push(format!("{} case {case} seed {seed}: {msg}", target.kind));
                }
            }
            if progress && case > 0 && case % 100_000 == 0 {
                eprintln!("fuzz: {case} cases in {:?}", started.elapsed());
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    std::panic::set_hook(prev_hook);
    manager_kinds::teardown();
    growth_kinds::teardown();
    tally.hangs = u64::from(hung.load(Ordering::Relaxed));
    tally.largest_allocation = LARGEST.load(Ordering::Relaxed);
    tally.peak_heap = PEAK.load(Ordering::Relaxed);
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounded run `cargo test` does: a few thousand seeded cases over every kind.
    #[test]
    fn bounded_run_has_no_panic_hang_or_huge_allocation() {
        let tally = run(10_000, 0x5eed, false);
        println!("{tally}");
        assert_eq!(tally.cases, 10_000);
        assert!(tally.clean(), "{tally}");
        // The mutations are not all fatal: some damaged objects still open and work.
        assert!(tally.opened > 0 && !tally.errors.is_empty(), "{tally}");
    }

    #[test]
    fn ring_words_are_forged_and_forged_rings_give_errors_not_hangs() {
        let targets = targets();
        let ring: Vec<&Target> = targets
            .iter()
            .filter(|t| t.kind.ends_with("ring words"))
            .collect();
        assert_eq!(ring.len(), 2);
        let mut rng = Rng::new(7);
        for t in &ring {
            // Tail, head, 4 intent words, 8 sequence words, all inside the bytes.
            assert_eq!(t.hot.len(), 14);
            assert!(t.hot.iter().all(|&at| at + 8 <= t.pristine.len()));
            let forged = (0..100)
                .filter(|_| damage(&mut rng, &t.pristine, &t.hot) != t.pristine)
                .count();
            assert!(forged > 80, "{forged}");
        }
        // The defects of issue 17 in particular: a tail at u64::MAX, a head at
        // u64::MAX, a tail behind the head, a tail over a lap ahead.
        for t in &ring {
            let (tail, head) = (t.hot[0], t.hot[1]);
            let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
            let h = word(&t.pristine, head);
            for (at, v) in [
                (tail, u64::MAX),
                (head, u64::MAX),
                (tail, h - 1),
                (tail, h + 9),
            ] {
                let mut bytes = t.pristine.clone();
                bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
                let seg = Segment::anonymous(bytes.len()).unwrap();
                seg.write_at(0, &bytes).unwrap();
                let started = Instant::now();
                (t.exercise)(seg).unwrap();
                assert!(started.elapsed() < HANG, "{} {at} {v}", t.kind);
            }
        }
    }

    #[test]
    fn mutations_change_the_bytes() {
        let mut rng = Rng::new(1);
        let pristine = vec![0u8; 256];
        let changed = (0..100)
            .filter(|_| mutate(&mut rng, &pristine) != pristine)
            .count();
        assert!(changed > 90, "{changed}");
    }
}
