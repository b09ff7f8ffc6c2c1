//! The operating system as the loom model sees it (only under `cfg(loom)`; see the
//! crate docs' "Testing" section and `tests/loom.rs`).
//!
//! `wait` takes its futex and `sys` its thread identity and liveness check from here, and
//! `atomic` its clock:
//!
//! - **futex**: a faithful emulation, not a spin. One modelled [`Mutex`] plays the
//!   kernel's hash-bucket lock and guards a queue of sleepers keyed by the word's
//!   address; `futex_wait` compares the word under that lock and, if it still holds the
//!   expected value, queues itself and blocks on a modelled [`Condvar`] until a
//!   `futex_wake` on the same word removes it from the queue. So a wake-up sent before
//!   the waiter queued is seen as a changed word, and a wake-up nobody sends leaves the
//!   waiter blocked: with every thread blocked loom reports a deadlock. That is how the
//!   model finds a lost wake-up. The emulation never wakes spuriously (the algorithms
//!   absorb those anyway), and the bucket lock orders memory between a waker and the
//!   waiter it wakes, as the real syscalls (full barriers in the kernel) do.
//! - **timeouts**: per thread, [`set_timeouts`]. With [`Timeouts::Never`] (the
//!   default) a timed wait behaves as an untimed one, so the slices of the algorithms
//!   cannot hide a lost wake-up. With [`Timeouts::Expire`] a timed wait whose word
//!   still holds the expected value times out at once: it yields to the other threads,
//!   moves the virtual clock on by the timeout, and returns `TimedOut`. That explores the
//!   liveness checks of dead holders, the timeout errors and the clean-up on the way
//!   out (but such a thread never sleeps, so it cannot swallow a wake-up). With
//!   [`Timeouts::Late`] a timed wait sleeps until woken, and the clock moves on by the
//!   timeout while it sleeps: the waiter wakes to find its time up, having taken a
//!   wake-up meant for another thread, which it must pass on.
//! - **clock**: [`Instant`] is a virtual clock shared by the model's threads, which
//!   moves only when an `Expire` or `Late` wait ends.
//! - **identity**: the first `me()` of each model thread hands out the next small TID
//!   (1, 2, ...) with a token derived from it (never 0) and namespace index 0: one
//!   namespace, whose holders are all checkable. Words with token 0, TID 0 or another
//!   index name dead holders, as the real check's "nobody writes this" rule says.
//! - **liveness**: a modelled bit set of dead identities; [`die`] adds the calling
//!   thread, `is_alive` reads it (so loom also explores a waiter checking just before
//!   or just after the holder dies). Both are `SeqCst`, so a waiter that sees the death
//!   also sees what the holder wrote before it, as the kernel's exit and the `/proc`
//!   read order them for real.

use std::cell::Cell;
use std::ops::Add;
use std::sync::atomic::AtomicU64 as PlainU64;
use std::time::Duration;

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Condvar, Mutex};

use crate::wait::Wake;

/// How the calling model thread's timed futex waits end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeouts {
    /// Never: a timed wait sleeps until woken, as an untimed one does. The default.
    Never,
    /// At once, whenever the wait would sleep (after a yield; the clock moves on by the
    /// timeout).
    Expire,
    /// Late: the wait sleeps until woken, but the wake-up comes only after the timeout
    /// has passed (the clock moves on by the timeout). A waiter leaving on timeout has
    /// then taken a wake-up meant for someone, and must pass it on.
    Late,
}

/// Sets how the calling model thread's timed futex waits end.
pub fn set_timeouts(t: Timeouts) {
    TIMEOUTS.with(|c| c.set(t));
}

/// The calling model thread dies: from now on `is_alive` says so for its identity. It
/// must not touch the primitives again (it returns at once, as if killed).
pub fn die() {
    let n = me() & u64::from(u32::MAX);
    world().dead.fetch_or(1 << n, Ordering::SeqCst);
}

/// Runs `f` under `builder` (each execution starts a fresh model world); returns how
/// many executions (interleavings) loom explored.
pub fn check<F>(builder: loom::model::Builder, f: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = std::sync::Arc::new(PlainU64::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Create the world before any thread is spawned, so that creating it orders
        // nothing between the threads under test.
        let _ = world();
        f();
    });
    runs.load(std::sync::atomic::Ordering::Relaxed) as usize
}

/// Most identities one execution hands out (bits of the dead set).
const MAX_IDS: u64 = 63;

struct Sleeper {
    addr: usize,
    ticket: u64,
}

struct Queue {
    sleepers: Vec<Sleeper>,
    next_ticket: u64,
}

struct World {
    /// The hash-bucket lock and its sleepers.
    queue: Mutex<Queue>,
    /// Signalled when sleepers are removed from the queue.
    woken: Condvar,
    /// Bit `n`: identity `n` died.
    dead: AtomicU64,
    /// Identities handed out (bookkeeping, not modelled).
    issued: PlainU64,
    /// The virtual clock, in nanoseconds (not modelled: only `Expire` and `Late` waits
    /// move it).
    clock_ns: PlainU64,
}

loom::lazy_static! {
    static ref WORLD: World = World {
        queue: Mutex::new(Queue { sleepers: Vec::new(), next_ticket: 0 }),
        woken: Condvar::new(),
        dead: AtomicU64::new(0),
        issued: PlainU64::new(0),
        clock_ns: PlainU64::new(0),
    };
}

loom::thread_local! {
    static ME: Cell<u64> = Cell::new(0);
    static TIMEOUTS: Cell<Timeouts> = Cell::new(Timeouts::Never);
}

fn world() -> &'static World {
    &WORLD
}

fn token_of(n: u64) -> u64 {
    2 * n + 1
}

/// The calling model thread's identity, `token << 32 | tid`.
pub(crate) fn me() -> u64 {
    ME.with(|c| {
        if c.get() == 0 {
            let n = world()
                .issued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            assert!(n <= MAX_IDS, "too many model threads");
            let w = shm_core::identity::OwnerWord::holder(n as u32, 0, token_of(n) as u32);
            c.set(w.expect("a small model TID").raw());
        }
        c.get()
    })
}

/// Whether the holder named by identity word `word` (flag bits cleared) was handed
/// out and has not died. As for real, a word no holder writes (TID 0, token 0, a
/// namespace index: the model has one namespace, index 0) names a dead holder.
pub(crate) fn is_alive(word: u64) -> bool {
    let w = shm_core::identity::OwnerWord::from_raw(word);
    let n = u64::from(w.tid());
    let index = w.ns_index();
    let token = u64::from(w.token());
    let issued = world().issued.load(std::sync::atomic::Ordering::Relaxed);
    if n == 0 || n > issued || index != 0 || token != token_of(n) {
        return false;
    }
    world().dead.load(Ordering::SeqCst) & (1 << n) == 0
}

fn addr(word: &AtomicU32) -> usize {
    word as *const AtomicU32 as usize
}

/// `FUTEX_WAIT`: see the module docs.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let w = world();
    let mut q = w.queue.lock().unwrap();
    if word.load(Ordering::Relaxed) != expected {
        return Wake::Woken;
    }
    if let Some(d) = timeout {
        if TIMEOUTS.with(Cell::get) == Timeouts::Expire {
            drop(q);
            advance(d);
            loom::thread::yield_now();
            return Wake::TimedOut;
        }
    }
    let ticket = q.next_ticket;
    q.next_ticket += 1;
    q.sleepers.push(Sleeper {
        addr: addr(word),
        ticket,
    });
    while q.sleepers.iter().any(|s| s.ticket == ticket) {
        q = w.woken.wait(q).unwrap();
    }
    if let Some(d) = timeout {
        if TIMEOUTS.with(Cell::get) == Timeouts::Late {
            advance(d);
        }
    }
    Wake::Woken
}

/// Moves the virtual clock on by `d`.
fn advance(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    world()
        .clock_ns
        .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
}

/// `FUTEX_WAKE`: removes up to `n` sleepers of `word` (oldest first) from the queue.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let w = world();
    let a = addr(word);
    let mut q = w.queue.lock().unwrap();
    let mut left = n;
    q.sleepers.retain(|s| {
        if left > 0 && s.addr == a {
            left -= 1;
            false
        } else {
            true
        }
    });
    if left != n {
        w.woken.notify_all();
    }
}

/// The model's clock (see the module docs); only what the algorithms use. Public
/// because [`Deadline`](crate::wait::Deadline) holds one under the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Duration);

impl Instant {
    pub(crate) fn now() -> Instant {
        Instant(Duration::from_nanos(
            world().clock_ns.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    pub(crate) fn checked_add(self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }

    pub(crate) fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}
