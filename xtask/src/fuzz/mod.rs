//! The hostile-memory fuzz harness: for every object kind, a real object's bytes are
//! damaged (header fields, lengths, offsets, format bytes, lock words, truncation, random
//! bytes) and the result is opened and used through the public API with bounded waits.
//!
//! Every outcome must be `Ok` or a typed error: a panic, a hang (a case taking longer
//! than [`HANG`]), a crash or an allocation proportional to a forged length is a failure.
//! `cargo test` runs a few thousand seeded cases (`bounded_run` below); `cargo xtask
//! fuzz` runs 10^6 in release and prints the tally.

mod cell_kinds;
mod damage;
mod growth_kinds;
mod manager_kinds;
mod queue_kinds;
mod sync_kinds;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shm_core::{Segment, SharedObject};

use damage::{Rng, damage};

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
    /// there when there are any, see [`forge_word`](damage::forge_word).
    hot: Vec<usize>,
    exercise: fn(Segment) -> Outcome,
}

impl Target {
    /// A target with these pristine bytes and no hot words.
    fn new(kind: &'static str, pristine: Vec<u8>, exercise: fn(Segment) -> Outcome) -> Target {
        Target {
            kind,
            pristine,
            hot: Vec::new(),
            exercise,
        }
    }

    /// A target whose pristine bytes are those of a fresh anonymous `O` made from
    /// `init`, with no hot words.
    fn fresh<O: SharedObject>(
        kind: &'static str,
        init: O::Init,
        exercise: fn(Segment) -> Outcome,
    ) -> Target
    where
        O::Error: std::fmt::Debug,
    {
        Target::new(kind, snapshot(&O::anonymous(init).unwrap()), exercise)
    }
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

/// Every kind, by family. The order is part of a case's number (case `n` damages
/// target `n % len`, so that a reported case reproduces): keep it.
fn targets() -> Vec<Target> {
    [
        sync_kinds::targets(),
        cell_kinds::cells(),
        queue_kinds::targets(),
        manager_kinds::targets(),
        growth_kinds::targets(),
        cell_kinds::list(),
    ]
    .into_iter()
    .flatten()
    .collect()
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
    use super::damage::mutate;
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
