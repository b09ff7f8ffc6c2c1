//! # shm-sync
//!
//! Python's `multiprocessing` synchronisation primitives for processes that share
//! memory, on Linux futexes: [`Lock`], [`Mutex`] (a lock with data), [`RLock`],
//! [`RwLock`], [`Condition`] (Python's `Condition`: one object with its own lock and
//! optional data), [`Condvar`] (a condition variable used with a separate [`Mutex`]),
//! [`Event`], [`Semaphore`], [`BoundedSemaphore`] and [`Barrier`] (with Python's
//! `abort`, `reset` and broken state).
//!
//! Each comes twice:
//!
//! - a **named object** in its own segment, created in one process and opened by name
//!   in others (the object header is checked: kind, layout version and, for
//!   `Mutex<T>` / `RwLock<T>`, the type `T`);
//! - a **raw primitive** ([`RawMutex`], [`RawRwLock`], [`RawCondvar`], [`RawEvent`],
//!   [`RawSemaphore`], [`RawBarrier`], [`RawRLock`]): a `#[repr(C)]` group of atomics
//!   whose all-zero bytes are its initial state, to embed in layouts of your own (this
//!   is what `shm-collections` does) through `unsafe fn from_ptr`.
//!
//! ```
//! use shm_sync::{Event, Mutex};
//! // Process A
//! let counter = Mutex::create(0u64)?;
//! let done = Event::create()?;
//! // Process B would do: Mutex::<u64>::open(name), Event::open(name)
//! let (c, d) = (Mutex::<u64>::open(counter.name().unwrap())?, Event::open(done.name().unwrap())?);
//! *c.lock().unwrap() += 1;
//! d.set();
//! done.wait();
//! assert_eq!(*counter.lock().unwrap(), 1);
//! # Ok::<(), shm_sync::Error>(())
//! ```
//!
//! Every wait has a `try_` form and a timeout form; running out of time is a typed
//! error ([`Error::Timeout`], [`LockError::Timeout`]), never a hang. Spurious futex
//! wake-ups are absorbed inside.
//!
//! ## A lock whose holder died is never held for ever
//!
//! When the holder of a [`Mutex`], [`RLock`] or the write side of a [`RwLock`] dies
//! (`kill -9`, abort, exit, or a thread that ends holding it), the next locker gets the
//! lock together with [`LockError::OwnerDied`] (the `EOWNERDEAD` model of robust
//! pthread mutexes): it can repair the data and call `mark_consistent` on the guard.
//! If it does not, the lock stays *inconsistent* and every later locker is told so with
//! [`LockError::Inconsistent`]. A waiter that is already blocked notices the death
//! within about 20 ms. A dead *reader* of a [`RwLock`], the permits of a dead process
//! and a dead [`Barrier`] party are handled too, through participant tables (below):
//! no primitive waits for ever for a dead process.
//!
//! ### How it works, and why this way
//!
//! The lock word is 64 bits: the holder's Linux TID (22 bits; `pid_max` is at most
//! 2^22), the 8-bit *index of its PID namespace*, a WAITERS bit, an INCONSISTENT bit
//! and, in the high 32 bits, a *liveness token*: the low 32 bits of the holding
//! thread's start time (field 22 of `/proc/<tid>/stat`, clock ticks since boot, bit 0
//! forced on). The identity comes from [`shm_core::identity`], which the object
//! header and the tracker use too. Each thread computes its word once and caches it,
//! so locking is one CAS `0 -> me` and unlocking one CAS `me -> 0`; the futex syscall
//! (shared, never `FUTEX_PRIVATE`) happens only when someone waits.
//!
//! A waiter sleeps in slices (2 ms, then 20 ms). When a slice ends with the word
//! unchanged, it checks the holder, and takes the lock over only if the holder is
//! *provably* dead. That needs the holder in the waiter's own PID namespace (same
//! index) and a `/proc` that belongs to that namespace: then the holder is dead if
//! `/proc/<tid>/stat` is gone (confirmed with `kill(tid, 0) == ESRCH`), shows a zombie
//! or a task in `do_exit` (`PF_EXITING`: it will never run user code again), or shows
//! a different start time. A holder in another PID namespace (containers sharing
//! `/dev/shm`, `docker --ipc=host`) names a TID the waiter's `/proc` cannot show, so it
//! counts as alive: the waiter keeps waiting, and a timed wait ends with
//! [`LockError::Timeout`], never a false [`LockError::OwnerDied`]. The dead holder's
//! value is replaced by the waiter's own with one CAS, so exactly one waiter wins.
//! `try_lock` on a held lock does the same check (a `/proc` read, some microseconds).
//!
//! Namespace indexes are exact, not hashes: a registry file,
//! `/dev/shm/shm-rs-pidns-<euid>` (4096 bytes, mode 0600), maps index 1..=254 to a PID
//! namespace inode and a time namespace inode (`/proc` shifts start times by the
//! reader's boot-time offset, so only tasks sharing both can compare them), claimed
//! with a CAS on first use. It intentionally persists (it is
//! tiny; deleting it while processes hold locks makes those processes treat every
//! holder as "cannot tell"). It is opened with `O_NOFOLLOW` and used only if it is a
//! regular file of the effective user with the right size and magic; otherwise, and
//! once 254 namespaces have registered, a process gets index 0, "namespace unknown",
//! and its dead holders can no longer be recovered (waiters time out instead).
//!
//! Values that no holder can produce are recovered as a dead holder's: bits without a
//! TID, TID 0, token 0 (a real token has bit 0 set; a thread that cannot read its
//! start time writes the reserved token [`shm_core::identity::TOKEN_UNKNOWN`], which
//! is checked by TID alone), a namespace index the registry never handed out (255,
//! or a free entry), and a TID of our own namespace at or above `pid_max` (checked by
//! [`shm_core::identity::is_valid_pid`] before any syscall). A word naming the calling thread itself is
//! [`LockError::WouldDeadlock`]. Garbage written into any word gives an error or a
//! recovery, never undefined behaviour or an endless loop.
//!
//! Why not the alternatives:
//! - **The kernel's robust futex list** (what glibc's robust `pthread_mutex_t` uses)
//!   reports a death instantly, but the list belongs to glibc, one per thread, and is a
//!   linked list of *pointers* threaded through the locks: it would put pointers into
//!   shared memory (mapped at different addresses in each process) and fight glibc for
//!   the list head. It also costs a few nanoseconds more per lock.
//! - **A bare PID** is not an identity: PIDs are reused (`pid_max` is 32768 here), so a
//!   dead holder's PID may name a live, unrelated process. The start time makes the
//!   identity unique: reusing a TID within the same clock tick (10 ms) would need the
//!   kernel to cycle through all `pid_max` PIDs in that time.
//!
//! ### Read shares, permits and barrier parties: participant tables
//!
//! A [`RwLock`], a [`Semaphore`] / [`BoundedSemaphore`] and a [`Barrier`] carry a
//! *participant table*: a bounded number of slots ([`DEFAULT_SLOTS`], or as many as
//! `create_with_slots` chooses, up to [`MAX_SLOTS`]; the raw types have a const
//! generic `SLOTS`, 64 by default), each naming a participant by the same identity word
//! the locks use. Whoever waits checks the named participants at the end of each sleep
//! slice, with the same provable-death check as the mutex (so a participant of another
//! PID namespace counts as alive), and gives back what a dead one held:
//!
//! - **RwLock readers** (per thread: read guards are not `Send`): each read share is one
//!   slot holding the reader's word, claimed with one CAS `0 -> me` and given back with
//!   one CAS `me -> 0`; a writer raises `WRITER` and waits for the table to drain. A
//!   slot is a single word, so a reader killed at any instruction leaves either a share
//!   that names it or nothing. A waiting writer takes a dead reader's share back and
//!   gets [`LockError::OwnerDied`] (the lock is not marked inconsistent: readers change
//!   nothing). A thread reading twice holds two slots.
//! - **Semaphore permits** (per process: a permit is often released by another thread
//!   of the process that took it): a slot counts the permits its process holds. The
//!   count and the slots are kept consistent at every instruction by a marker in the
//!   state word naming the last change of the count and the slot it is for, which the
//!   next operation finishes if its author died before updating the slot (a slot
//!   sequence number makes that exactly once). A dead process's permits go back to the
//!   count in one committed change, never above a [`BoundedSemaphore`]'s bound, and the
//!   next acquirer learns how many ([`PermitAcquired::reclaimed`]). A release by a
//!   process holding none (a semaphore used as a signal) only adds to the count;
//!   a semaphore that counts events should have 0 slots (then nothing is reclaimed).
//! - **Barrier parties** (per process): a process registers at its first `wait` and
//!   leaves when its handle drops ([`RawBarrier::leave`] for the raw type). A
//!   registered process that dies, waiting or between rounds, breaks the barrier for
//!   the parties waiting ([`Error::BrokenBarrier`], within a slice); `reset` forgets
//!   the dead.
//!
//! A full table (every slot naming a live participant) is [`Error::TooManyParticipants`]
//! ([`RawError::TooManyParticipants`]); dead participants' slots are reclaimed before
//! that is reported. Table words read from the mapping are untrusted: garbage is
//! reclaimed like a dead participant or waited out like a live one, never UB or a hang.
//!
//! [`Condvar`], [`Condition`] and [`Event`] waiters never depend on another process to
//! be woken: they sleep in 20 ms slices and re-read the word, so a notifier or setter
//! killed between its store and its futex wake delays them by at most a slice.
//!
//! ### What is and is not covered
//!
//! Covered: a dead holder of a [`Mutex`] / [`Lock`], an [`RLock`], either side of a
//! [`RwLock`] (a dead writer noticed by waiting writers and readers, a dead reader by
//! waiting writers), the mutex a [`Condvar`] waiter re-locks, permits of a
//! [`Semaphore`] / [`BoundedSemaphore`] held by a dead process, a dead registered
//! [`Barrier`] party, and a notifier of a [`Condvar`] / [`Condition`] or setter of an
//! [`Event`] killed mid-call; when the dead and the waiter share a PID namespace (also a
//! non-root one, inside a container). Also a holder or reader *thread* that ended while
//! its process lives on. Processes in different PID namespaces sharing `/dev/shm`
//! exclude each other correctly: a live holder elsewhere is never taken for dead.
//!
//! What remains cannot be done from here, and why:
//! - a dead holder or participant in **another PID namespace** (or with namespace index
//!   0, when the registry is unusable or full) is never recovered: it cannot be proved
//!   dead from here, so waiters wait until their timeout (an untimed call waits for
//!   ever); live holders in other namespaces are respected, which is the point. The
//!   next step is a kernel-held liveness token that every namespace sees: each process
//!   holding an OFD lock (`F_OFD_SETLK`) on its own byte of a shared liveness file in
//!   `/dev/shm`, which the kernel drops when the process dies; a waiter probing that
//!   byte (`F_OFD_GETLK`) learns of the death from any namespace. It identifies
//!   processes, not threads, so it would complement the per-thread `/proc` check;
//! - a `/proc` hidden with `hidepid` *and* a holder we may not signal (then the holder
//!   counts as alive), and a `/proc` of another PID namespace mounted in ours (then
//!   every holder counts as alive): liveness cannot be observed;
//! - *semantic* limits, not detection gaps: a process that dies before its first `wait`
//!   on a [`Barrier`] was never known to be a party (nothing distinguishes it from one
//!   that has not started yet: the others' timeouts are the only remedy), and a process
//!   that ends normally without dropping its `Barrier` handle (e.g.
//!   `std::process::exit`) counts as dead; an event-counting [`Semaphore`] created with
//!   0 slots does not reclaim (its permits are consumed, not held);
//! - a process that `fork`s keeps working (the cached identities are reset in the
//!   child), but a raw `clone` without `pthread_atfork` handlers would not.
//!
//! The locks belong to threads: guards are not `Send`, and unlocking from another
//! thread is [`RawError::NotOwner`].
//!
//! ### Why not `lock_api`
//!
//! `lock_api::RawMutex::lock` returns `()`: it has no way to say "you have the lock,
//! but its previous holder died". The guards here are written by hand, in the shape of
//! std's poisoning (`Result<Guard, LockError<Guard>>`).
//!
//! ## Testing
//!
//! The lock algorithms are tested with threads in one process (stress tests with many
//! threads) and across real processes: exact counter totals, `kill -9` of holders (many
//! trials, and a chaos test whose trial count comes from `SHM_CHAOS_TRIALS`), wake-ups
//! across processes, timeouts and corrupted words.
//!
//! Participant tables are tested with seeded hostile words in every slot, and by chaos
//! trials that `kill -9` readers, permit holders and barrier parties at random moments
//! (the others must proceed within 100 ms: `tests/chaos.rs`, `cargo xtask chaos`).
//!
//! They are also **model checked with [loom](https://docs.rs/loom)** (`tests/loom.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shm-sync --release --test loom
//! ```
//!
//! Under `cfg(loom)` the algorithms' atomics, spin hint and clock come from loom and a
//! virtual clock (one internal module re-exports them; normally they are `std`'s own,
//! so the compiled fast path is unchanged), and the operating system (futex, thread
//! identity, liveness) is a model in which a test can make a holder die. Small models
//! (2-3 threads, preemption bound 2-3) explore every interleaving of: [`RawMutex`]
//! lock / `try_lock` / `lock_timeout` / unlock (mutual exclusion through a loom
//! `UnsafeCell`, which also checks the acquire/release orderings; the `WAITERS` bit
//! and `wake_seq` protocol; a waiter that times out, or that is woken too late, passes
//! its wake-up on), a dead holder taken over by blocked waiters and by `try_lock`
//! (exactly one `OwnerDied`, then `Inconsistent` until `mark_consistent`);
//! [`RawCondvar`] notify; [`RawEvent`] set / clear / wait / timeout; [`RawSemaphore`]
//! acquire / release / timeouts (permits conserved), a dead holder's permit coming back
//! exactly once, concurrent reclaimers giving back once; [`RawRwLock`] readers and
//! writers (reader tables of 2 slots, so probes collide), the last reader waking the
//! writer, a dead writer recovered by a reader, a dead reader's share taken back and
//! reported exactly once; [`RawRLock`] re-entry; [`RawBarrier`] rounds, reuse, abort,
//! reset, a timeout breaking the round and a dead registered party breaking it.
//!
//! The futex is emulated faithfully, not as a spin: `futex_wait` compares the word
//! under a modelled lock standing for the kernel's hash bucket and blocks until a
//! `futex_wake` of that word picks it; so a lost wake-up leaves a thread blocked for
//! ever and loom reports the deadlock. Timed waits never expire by default (the
//! algorithms' sleep slices would otherwise hide a lost wake-up); a test chooses per
//! thread that they expire at once (to explore the dead-holder checks and timeouts) or
//! that the wake-up arrives only after the timeout (a waiter that must pass its
//! wake-up on). What the model cannot see: wake-ups lost only when a timeout fires
//! while the thread is running (a timeout fires only where the test says), the real
//! `/proc` check and identities (modelled), `SeqCst` accesses, which loom treats as
//! `AcqRel` (the model adds a `SeqCst` fence where an algorithm relies on them, see
//! the CHANGELOG), loom's known gaps (load buffering), and anything beyond the
//! interleavings the preemption bound admits. The model found one bug (a lost
//! wake-up in `RawMutex` when a waiter leaving on timeout raced the holder's unlock;
//! see the CHANGELOG).

mod atomic;
mod barrier;
mod common;
mod condition;
mod condvar;
mod error;
mod event;
mod guard;
mod inplace;
#[cfg(not(loom))]
pub mod inspect;
mod lock;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model;
mod mutex;
mod raw;
mod rlock;
mod rwlock;
mod semaphore;
mod sys;
pub mod wait;

pub use barrier::Barrier;
pub use common::kinds;
pub use condition::{Condition, ConditionGuard};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use error::{Error, LockError, LockResultExt, RawError};
pub use event::Event;
pub use guard::{MutexGuard, Wait};
pub use lock::{Lock, LockGuard};
pub use mutex::{LockResult, Mutex};
pub use raw::{
    Acquired, BarrierWaitResult, DEFAULT_SLOTS, MAX_SLOTS, PermitAcquired, RawBarrier, RawCondvar,
    RawEvent, RawMutex, RawRLock, RawRwLock, RawSemaphore,
};
pub use rlock::{RLock, RLockGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use shm_core::SharedObject;
