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
//! within about 20 ms.
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
//! is checked by TID alone), and a namespace index the registry never handed out (255,
//! or a free entry). A word naming the calling thread itself is
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
//! ### What is and is not covered
//!
//! Covered: a dead holder of a [`Mutex`] / [`Lock`], an [`RLock`], the write side of a
//! [`RwLock`] (noticed by waiting writers and readers), and the mutex a [`Condvar`]
//! waiter re-locks, when holder and waiter share a PID namespace (also a non-root one,
//! inside a container). Also a holder *thread* that ended while its process lives on.
//! Processes in different PID namespaces sharing `/dev/shm` exclude each other
//! correctly: a live holder elsewhere is never taken for dead.
//!
//! Not covered:
//! - a **reader** of a [`RwLock`] that dies holding it: readers are counted, not named,
//!   so writers wait until their timeout ([`LockError::Timeout`]); an untimed `write`
//!   waits for ever;
//! - **permits** of a [`Semaphore`] held by a dead process are not returned, and a dead
//!   [`Barrier`] party leaves its round incomplete (use the timeout forms);
//! - a dead holder in **another PID namespace** (or with namespace index 0, when the
//!   registry is unusable or full) is never recovered: it cannot be proved dead from
//!   here, so waiters wait until their timeout (an untimed `lock` waits for ever);
//!   live holders in other namespaces are respected, which is the point. The next step
//!   is a kernel-held liveness token that every namespace sees: each process holding
//!   an OFD lock (`F_OFD_SETLK`) on its own byte of a shared liveness file in
//!   `/dev/shm`, which the kernel drops when the process dies; a waiter probing that
//!   byte (`F_OFD_GETLK`) learns of the death from any namespace. It identifies
//!   processes, not threads, so it would complement the per-thread `/proc` check;
//! - a `/proc` hidden with `hidepid` *and* a holder we may not signal (then the holder
//!   counts as alive), and a `/proc` of another PID namespace mounted in ours (then
//!   every holder counts as alive);
//! - a process that `fork`s keeps working (the cached identity is reset in the child),
//!   but a raw `clone` without `pthread_atfork` handlers would not.
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
//! acquire / release / timeouts (permits conserved); [`RawRwLock`] readers and writers,
//! the last reader waking the writer, a dead writer recovered by a reader;
//! [`RawRLock`] re-entry; [`RawBarrier`] rounds, reuse, abort, reset and a timeout
//! breaking the round.
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

pub use barrier::Barrier;
pub use common::kinds;
pub use condition::{Condition, ConditionGuard};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use error::{Error, LockError, RawError};
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
