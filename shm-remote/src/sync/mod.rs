//! [`Lock`], [`RLock`], [`Event`], [`Semaphore`] and [`Barrier`] on a Redis server:
//! `shm_sync`'s primitives for processes on several machines, with the same method
//! names, timeouts and error kinds (traits in [`crate::api`]).
//!
//! # Semantics, per operation
//!
//! Every state change is one Lua script (fixed strings of this crate), atomic on the
//! server. Times in scripts are the server's clock (`TIME`), so clients need no
//! synchronised clocks. Waits poll (1 ms, doubling to 20 ms, never past the deadline
//! nor past the end of a lease they wait for), except [`Event::wait`], which
//! subscribes.
//!
//! **Lock** (`SET NX PX` with a token): the holder is the token stored at the lock's
//! key with a *lease* as its expiry (10 s by default, [`Lock::set_lease`]). While a
//! guard lives, a keeper thread of the handle renews the lease every third of it.
//! Release is a script that deletes the key only if it still holds the holder's
//! token. Each acquisition increments a *fencing token* ([`LockGuard::fencing_token`]):
//! hand it to what the lock protects so that it can refuse a holder whose lease ran
//! out (a frozen process that wakes up after its lease). A holder that dies (or is cut
//! off from the server for longer than its lease) loses the lock when the lease runs
//! out, and the next locker gets [`LockError::OwnerDied`]
//! with the guard, as with a dead local holder; the lock stays *inconsistent*
//! ([`LockError::Inconsistent`]) until a holder
//! calls [`LockGuard::mark_consistent`]. The calling thread locking again is
//! `WouldDeadlock`. What survives: a server restart with append-only persistence keeps
//! the holder and the counter; without it, the lock is free and the fencing counter
//! starts again from 0.
//!
//! **RLock**: the same with a per-thread token and a depth: the thread that holds it
//! may lock again (through any handle) and must release as often.
//!
//! **Event**: a flag key (`0`/`1`). `set` writes it and publishes on the event's
//! channel in one script; `wait` *subscribes first, then reads the flag*, so a `set`
//! between the two is seen in the flag and one after it arrives as a message: no lost
//! wake-up. The waiter also re-reads the flag every 200 ms (a message lost with a
//! connection is late, not lost).
//!
//! **Semaphore**: a hash with the free `count` (and `max` for a bounded one) and a
//! sorted set of the permits held, each with a lease renewed by the keeper of the
//! handle that took it. Acquire first gives back the permits whose lease ran out (a
//! dead holder's), never above `max`, and tells the acquirer how many came back. A
//! release by a handle that holds none adds a permit (a semaphore used as a signal),
//! refused past a bounded semaphore's `max`.
//!
//! **Barrier**: a hash (`parties`, round number, arrived count, broken flag, the
//! outcome of recent rounds) and a sorted set of registered parties with leases. A
//! party registers at its first `wait` and leaves when its handle drops; its keeper
//! renews its lease between rounds and its polls while waiting. A registered party
//! whose lease runs out (dead) breaks the barrier for the waiting parties, like a dead
//! local party; a timeout breaks it too (that party gets [`Error::Timeout`], the others
//! a broken barrier); `reset` makes it usable again.
//!
//! **Faults**: a call while the server is down returns [`Error::Disconnected`] (or
//! [`Error::Timeout`] when the server does not answer), and the next call reconnects.
//! A state change whose reply was lost is not sent again (it may have been applied:
//! a lock taken that way is released by its lease). No call waits past its timeout
//! by more than one call's patience.

mod common;
pub(crate) mod scripts;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::{Script, Value};

pub use common::{DEFAULT_LEASE, MIN_LEASE};
pub(crate) use common::{Keeper, Obj, array, deadline, handle_id, int, lock, ms, pause, text};

use crate::api::{
    BarrierWait, HeldLock, LockError, LockResult, SharedBarrier, SharedEvent, SharedLock,
    SharedSemaphore, broken_barrier,
};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};

static LOCK_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_ACQUIRE));
static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_RELEASE));
static LOCK_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_RENEW));
static LOCK_MARK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_MARK_CONSISTENT));
static EVENT_SET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::EVENT_SET));
static SEM_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SEM_ACQUIRE));
static SEM_RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SEM_RELEASE));
static ZSET_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ZSET_RENEW));
static BARRIER_ARRIVE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_ARRIVE));
static BARRIER_POLL: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_POLL));
static BARRIER_BREAK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_BREAK));
static BARRIER_RESET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_RESET));

/// How a call waits.
#[derive(Clone, Copy)]
enum Wait {
    Try,
    /// Until the deadline (`None`: as long as it takes).
    Until(Option<Instant>),
}

impl Wait {
    fn timeout(t: Duration) -> Wait {
        Wait::Until(deadline(t))
    }
    /// The deadline of the wait (`Try` does not wait: its one call has the handle's
    /// patience).
    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Try => None,
            Wait::Until(d) => d,
        }
    }
}

/// Nanoseconds of a lease in an atomic.
fn lease_of(a: &AtomicU64) -> Duration {
    Duration::from_millis(a.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------- Lock / RLock

struct LockCore {
    obj: Obj,
    /// The state hash (`fence`, `holder`, `depth`, `inconsistent`).
    state: String,
    lease_ms: AtomicU64,
    reentrant: bool,
    keeper: Keeper,
}

impl LockCore {
    fn open(conn: &Arc<Conn>, name: &str, reentrant: bool) -> Result<LockCore> {
        let kind = if reentrant { "RLock" } else { "Lock" };
        let obj = Obj::open(conn, name, kind, kind, "string")?;
        Ok(LockCore {
            state: obj.key("ls"),
            obj,
            lease_ms: AtomicU64::new(DEFAULT_LEASE.as_millis() as u64),
            reentrant,
            keeper: Keeper::new(DEFAULT_LEASE),
        })
    }

    fn set_lease(&self, lease: Duration) -> Result<()> {
        let lease = common::check_lease(&self.obj, lease)?;
        self.lease_ms
            .store(lease.as_millis() as u64, Ordering::Relaxed);
        self.keeper.set_lease(lease);
        Ok(())
    }

    fn lease(&self) -> Duration {
        lease_of(&self.lease_ms)
    }

    fn acquire(&self, wait: Wait, waited: Duration) -> LockResult<LockGuard<'_>> {
        let token = if self.reentrant {
            common::thread_prefix()
        } else {
            common::fresh_token()
        };
        let prefix = common::thread_prefix();
        let lease = self.lease();
        let lease_ms = ms(lease);
        let re: &[u8] = if self.reentrant { b"1" } else { b"0" };
        let dl = wait.deadline();
        let mut round = 0;
        loop {
            let reply = self
                .obj
                .run(
                    &LOCK_ACQUIRE,
                    &[self.obj.data(), &self.state],
                    &[token.as_bytes(), &lease_ms, prefix.as_bytes(), re],
                    self.obj.call_timeout(dl),
                )
                .and_then(|v| array(&self.obj, v))
                .map_err(LockError::Other)?;
            let code = int(&self.obj, reply.first()).map_err(LockError::Other)?;
            match code {
                1 | 2 => {
                    let fence = int(&self.obj, reply.get(1)).map_err(LockError::Other)?;
                    let guard = self.guard(token, fence as u64, lease);
                    if code == 2 {
                        return Ok(guard);
                    }
                    let died = int(&self.obj, reply.get(2)).map_err(LockError::Other)?;
                    let inconsistent = int(&self.obj, reply.get(3)).map_err(LockError::Other)?;
                    return match (died, inconsistent) {
                        (1, _) => Err(LockError::OwnerDied(guard)),
                        (_, 1) => Err(LockError::Inconsistent(guard)),
                        _ => Ok(guard),
                    };
                }
                3 => {
                    return Err(LockError::WouldDeadlock {
                        name: self.obj.label.clone(),
                    });
                }
                4 => {
                    return Err(LockError::Other(self.obj.corrupted(
                        "the lock's key holds a value without a lease (expected a token with an expiry)",
                    )));
                }
                0 => {
                    let pttl = int(&self.obj, reply.get(1)).map_err(LockError::Other)?;
                    if let Wait::Try = wait {
                        return Err(LockError::WouldBlock {
                            name: self.obj.label.clone(),
                        });
                    }
                    let hint = Duration::from_millis(pttl.max(1) as u64);
                    if !pause(&mut round, dl, Some(hint)) {
                        return Err(LockError::Timeout {
                            name: self.obj.label.clone(),
                            waited,
                        });
                    }
                }
                other => {
                    return Err(LockError::Other(
                        self.obj
                            .corrupted(format!("unexpected lock script status {other}")),
                    ));
                }
            }
        }
    }

    fn guard(&self, token: String, fence: u64, lease: Duration) -> LockGuard<'_> {
        let obj = self.obj.clone();
        let key = self.obj.data().to_owned();
        let tok = token.clone();
        let lease_ms = ms(lease);
        let keeper_id = self.keeper.add(Arc::new(move || {
            obj.run(
                &LOCK_RENEW,
                &[&key],
                &[tok.as_bytes(), &lease_ms],
                obj.call_timeout(None),
            )
            .map(drop)
        }));
        LockGuard {
            core: self,
            token,
            fence,
            keeper_id,
            released: false,
            _not_send: PhantomData,
        }
    }

    fn release(&self, token: &str) -> Result<i64> {
        let re: &[u8] = if self.reentrant { b"1" } else { b"0" };
        let v = self.obj.call(
            &LOCK_RELEASE,
            &[self.obj.data(), &self.state],
            &[token.as_bytes(), re],
        )?;
        int(&self.obj, Some(&v))
    }

    fn is_locked(&self) -> Result<bool> {
        let n: i64 = self
            .obj
            .conn
            .query(
                redis::cmd("EXISTS").arg(self.obj.data()),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))?;
        Ok(n == 1)
    }
}

/// A held [`Lock`] or [`RLock`] (one level of it): released when dropped (or by
/// [`unlock`](Self::unlock), which reports a lost lease). Not `Send`: the lock belongs
/// to the thread, as with `shm_sync`.
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let lock = shm_remote::sync::Lock::open(&conn, "jobs")?;
/// let g = lock.lock().unwrap();
/// println!("fencing token {}", g.fencing_token());
/// g.unlock()?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[must_use = "if unused the lock is released at once"]
pub struct LockGuard<'a> {
    core: &'a LockCore,
    token: String,
    fence: u64,
    keeper_id: u64,
    released: bool,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.core.obj.label)
            .field("fence", &self.fence)
            .finish()
    }
}

impl LockGuard<'_> {
    /// This acquisition's fencing token: larger than every earlier acquisition's of
    /// this lock (re-entering an [`RLock`] keeps the number of the outer level).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let l = shm_remote::sync::Lock::open(&conn, "l")?;
    /// let a = l.lock().unwrap().fencing_token();
    /// let b = l.lock().unwrap().fencing_token();
    /// assert!(b > a);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.fence
    }

    /// Marks the lock consistent after a holder's death: later lockers get no
    /// `Inconsistent`. [`Error::Timeout`] (`waited` = the lease) if the lease had run
    /// out and another holder has the lock.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let l = shm_remote::sync::Lock::open(&conn, "l")?;
    /// let g = match l.lock() { Ok(g) => g, Err(e) => e.into_guard().unwrap() };
    /// g.mark_consistent()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn mark_consistent(&self) -> Result<()> {
        let v = self.core.obj.call(
            &LOCK_MARK,
            &[self.core.obj.data(), &self.core.state],
            &[self.token.as_bytes()],
        )?;
        match int(&self.core.obj, Some(&v))? {
            1 => Ok(()),
            _ => Err(self.lease_lost()),
        }
    }

    fn lease_lost(&self) -> Error {
        Error::Timeout {
            what: format!("{} (the lease ran out while held)", self.core.obj.label),
            waited: self.core.lease(),
        }
    }

    /// Releases the lock (one level of an [`RLock`]). [`Error::Timeout`] (`waited` =
    /// the lease) if the lease had run out before: someone else may have held the
    /// lock meanwhile.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let l = shm_remote::sync::Lock::open(&conn, "l")?;
    /// l.lock().unwrap().unlock()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn unlock(mut self) -> Result<()> {
        self.released = true;
        self.core.keeper.remove(self.keeper_id);
        match self.core.release(&self.token)? {
            0 => Err(self.lease_lost()),
            _ => Ok(()),
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.core.keeper.remove(self.keeper_id);
            // A failed release (server down) leaves the lock to its lease.
            let _ = self.core.release(&self.token);
        }
    }
}

impl HeldLock for LockGuard<'_> {
    fn mark_consistent(&self) -> Result<()> {
        LockGuard::mark_consistent(self)
    }
    fn fencing_token(&self) -> Option<u64> {
        Some(self.fence)
    }
}

/// A lock on a Redis server (Python's `multiprocessing.Lock` across machines): a token
/// with a lease, renewed while held, released by a script that checks the token; a
/// fencing token per acquisition; a holder whose lease ran out is reported to the
/// next locker as [`LockError::OwnerDied`]. See the
/// [module docs](self) for the semantics.
///
/// ```
/// use shm_remote::api::LockError;
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let lock = shm_remote::sync::Lock::open(&conn, "jobs")?;
/// let guard = match lock.lock_timeout(std::time::Duration::from_secs(30)) {
///     Ok(g) => g,
///     Err(LockError::OwnerDied(g)) => { /* repair */ g.mark_consistent()?; g }
///     Err(e) => return Err(e.into_error("jobs")),
/// };
/// drop(guard);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Lock {
    core: LockCore,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lock({})", self.core.obj.label)
    }
}

/// A re-entrant lock on a Redis server (Python's `RLock`): the thread holding it may
/// lock it again, through any handle of its process; each level is a guard.
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let l = shm_remote::sync::RLock::open(&conn, "r")?;
/// let outer = l.lock().unwrap();
/// let inner = l.lock().unwrap(); // the same thread: fine
/// drop(inner);
/// drop(outer);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct RLock {
    core: LockCore,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RLock({})", self.core.obj.label)
    }
}

macro_rules! lock_methods {
    ($ty:ident, $re:expr, $kind:literal) => {
        impl $ty {
            #[doc = concat!("Opens the ", $kind, " `name` of the connection's namespace, creating it when new.")]
            /// [`Error::WrongType`] if the name holds another kind of object.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn open(conn: &Arc<Conn>, name: &str) -> Result<$ty> {
                Ok($ty {
                    core: LockCore::open(conn, name, $re)?,
                })
            }

            /// Sets the lease of this handle's later acquisitions (10 s by default,
            /// at least [`MIN_LEASE`]): how long after a holder's death the lock is
            /// free again. The keeper renews it every third of it.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// l.set_lease(std::time::Duration::from_secs(2))?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn set_lease(&self, lease: Duration) -> Result<()> {
                self.core.set_lease(lease)
            }

            /// The lease of this handle's acquisitions.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// assert_eq!(l.lease(), shm_remote::sync::DEFAULT_LEASE);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn lease(&self) -> Duration {
                self.core.lease()
            }

            /// Locks, waiting as long as it takes (polling; a dead holder's lease runs
            /// out and then this returns `OwnerDied`).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// let _g = l.lock().unwrap();
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn lock(&self) -> LockResult<LockGuard<'_>> {
                self.core.acquire(Wait::Until(None), Duration::MAX)
            }

            /// Locks if free now: `WouldBlock` otherwise (one round trip).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// let _g = l.try_lock().unwrap();
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn try_lock(&self) -> LockResult<LockGuard<'_>> {
                self.core.acquire(Wait::Try, Duration::ZERO)
            }

            /// Locks, waiting at most `timeout` (`Duration::MAX`: no deadline):
            /// `Timeout` after.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// let _g = l.lock_timeout(std::time::Duration::from_secs(1)).unwrap();
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
                self.core.acquire(Wait::timeout(timeout), timeout)
            }

            /// Whether some thread (anywhere) holds it: a snapshot.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// assert!(!l.is_locked()?);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn is_locked(&self) -> Result<bool> {
                self.core.is_locked()
            }

            /// Sets how long each call waits for the server (`None`: no limit).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let l = shm_remote::sync::", stringify!($ty), "::open(&conn, \"name\")?;")]
            /// l.set_patience(Some(std::time::Duration::from_secs(1)));
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn set_patience(&self, patience: Option<Duration>) {
                self.core.obj.ro.set_patience(patience)
            }
        }

        impl SharedLock for $ty {
            type Guard<'a> = LockGuard<'a>;
            fn lock(&self) -> LockResult<LockGuard<'_>> {
                $ty::lock(self)
            }
            fn try_lock(&self) -> LockResult<LockGuard<'_>> {
                $ty::try_lock(self)
            }
            fn lock_timeout(&self, timeout: Duration) -> LockResult<LockGuard<'_>> {
                $ty::lock_timeout(self, timeout)
            }
            fn is_locked(&self) -> Result<bool> {
                $ty::is_locked(self)
            }
        }
    };
}

lock_methods!(Lock, false, "lock");
lock_methods!(RLock, true, "re-entrant lock");

// ---------------------------------------------------------------- Event

/// An event on a Redis server (Python's `Event`): `set` wakes every waiter on every
/// machine; the flag stays set until `clear`. `wait` subscribes to the event's
/// channel before it reads the flag: no lost wake-up.
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let ev = shm_remote::sync::Event::open(&conn, "ready")?;
/// ev.set()?;
/// ev.wait_timeout(std::time::Duration::from_secs(1))?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Event {
    obj: Obj,
    channel: String,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({})", self.obj.label)
    }
}

/// How often a subscribed waiter re-reads the flag anyway.
const EVENT_RECHECK: Duration = Duration::from_millis(200);

impl Event {
    /// Opens the event `name`, creating it (clear) when new.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let ev = shm_remote::sync::Event::open(&conn, "ready")?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open(conn: &Arc<Conn>, name: &str) -> Result<Event> {
        let obj = Obj::open(conn, name, "Event", "Event", "string")?;
        Ok(Event {
            channel: obj.key("ec"),
            obj,
        })
    }

    /// Sets the flag and wakes every waiter (one script: write, then publish).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let ev = shm_remote::sync::Event::open(&conn, "ready")?;
    /// ev.set()?;
    /// assert!(ev.is_set()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn set(&self) -> Result<()> {
        self.obj
            .run_with(
                &EVENT_SET,
                &[self.obj.data()],
                &[self.channel.as_bytes()],
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map(drop)
    }

    /// Clears the flag.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let ev = shm_remote::sync::Event::open(&conn, "ready")?;
    /// ev.clear()?;
    /// assert!(!ev.is_set()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.obj
            .conn
            .query::<()>(
                redis::cmd("SET").arg(self.obj.data()).arg("0"),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))
    }

    /// Whether the flag is set. [`Error::Corrupted`] if the key holds something else
    /// than `0` or `1`.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let ev = shm_remote::sync::Event::open(&conn, "ready")?;
    /// let _ = ev.is_set()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn is_set(&self) -> Result<bool> {
        self.is_set_within(self.obj.ro.patience())
    }

    fn is_set_within(&self, timeout: Option<Duration>) -> Result<bool> {
        let v: Value = self
            .obj
            .conn
            .query(
                redis::cmd("GET").arg(self.obj.data()),
                timeout,
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))?;
        match &v {
            Value::Nil => Ok(false),
            Value::BulkString(b) if b == b"0" => Ok(false),
            Value::BulkString(b) if b == b"1" => Ok(true),
            other => Err(self.obj.corrupted(format!(
                "expected the flag 0 or 1, found {:?}",
                crate::object::clip(text(other).as_bytes())
            ))),
        }
    }

    /// Waits until the flag is set, as long as it takes.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let ev = shm_remote::sync::Event::open(&conn, "ready")?;
    /// ev.set()?;
    /// ev.wait()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, Duration::MAX)
    }

    /// Waits at most `timeout` for the flag: [`Error::Timeout`] if it stays clear.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let ev = shm_remote::sync::Event::open(&conn, "never")?;
    /// assert!(ev.wait_timeout(std::time::Duration::from_millis(10)).is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(deadline(timeout), timeout)
    }

    fn timeout(&self, waited: Duration) -> Error {
        Error::Timeout {
            what: self.obj.label.clone(),
            waited,
        }
    }

    fn wait_until(&self, dl: Option<Instant>, waited: Duration) -> Result<()> {
        if self.is_set_within(self.obj.call_timeout(dl))? {
            return Ok(());
        }
        if dl.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timeout(waited));
        }
        // Subscribe first, then read the flag: a set after the read is a message.
        let mut con = common::dedicated(&self.obj, self.obj.call_timeout(dl))?;
        let mut ps = con.as_pubsub();
        ps.subscribe(&self.channel).map_err(|e| {
            self.obj.err(
                self.obj
                    .conn
                    .map_err(e, &crate::conn::Deadline::after(None)),
            )
        })?;
        loop {
            if self.is_set_within(self.obj.call_timeout(dl))? {
                return Ok(());
            }
            let mut slice = EVENT_RECHECK;
            if let Some(d) = dl {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(self.timeout(waited));
                }
                slice = slice.min(left);
            }
            ps.set_read_timeout(Some(slice)).map_err(|e| {
                self.obj.err(
                    self.obj
                        .conn
                        .map_err(e, &crate::conn::Deadline::after(None)),
                )
            })?;
            match ps.get_message() {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    return Err(self.obj.err(
                        self.obj
                            .conn
                            .map_err(e, &crate::conn::Deadline::after(None)),
                    ));
                }
            }
        }
    }
}

impl SharedEvent for Event {
    fn set(&self) -> Result<()> {
        Event::set(self)
    }
    fn clear(&self) -> Result<()> {
        Event::clear(self)
    }
    fn is_set(&self) -> Result<bool> {
        Event::is_set(self)
    }
    fn wait(&self) -> Result<()> {
        Event::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        Event::wait_timeout(self, timeout)
    }
}

// ---------------------------------------------------------------- Semaphore

/// A counting semaphore on a Redis server (Python's `Semaphore`, and
/// `BoundedSemaphore` when created with [`open_bounded`](Self::open_bounded)).
/// Each permit taken is leased to the handle that took it and renewed by its keeper:
/// a dead holder's permits come back when their leases run out, and the next
/// acquirer is told how many.
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
/// s.acquire()?;
/// s.release()?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Semaphore {
    obj: Obj,
    holders: String,
    id: String,
    next: AtomicU64,
    held: Arc<Mutex<Vec<String>>>,
    lease_ms: AtomicU64,
    keeper: Keeper,
    renewing: AtomicBool,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Semaphore({})", self.obj.label)
    }
}

impl Semaphore {
    /// Opens the semaphore `name`, creating it with `value` free permits (unbounded)
    /// when new.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open(conn: &Arc<Conn>, name: &str, value: u32) -> Result<Semaphore> {
        Self::open_with(conn, name, value, 0, "Semaphore")
    }

    /// Opens the bounded semaphore `name` (Python's `BoundedSemaphore`), creating it
    /// with `value` free permits and a bound of `value` when new: a release past
    /// the bound is refused (`shm_sync::Error::OverRelease` in [`Error::Local`]).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let s = shm_remote::sync::Semaphore::open_bounded(&conn, "b", 1)?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open_bounded(conn: &Arc<Conn>, name: &str, value: u32) -> Result<Semaphore> {
        Self::open_with(conn, name, value, value.max(1), "BoundedSemaphore")
    }

    fn open_with(
        conn: &Arc<Conn>,
        name: &str,
        value: u32,
        max: u32,
        kind: &str,
    ) -> Result<Semaphore> {
        let obj = Obj::open(conn, name, kind, kind, "hash")?;
        let mut cmd = redis::pipe();
        cmd.cmd("HSETNX")
            .arg(obj.data())
            .arg("count")
            .arg(value)
            .ignore();
        cmd.cmd("HSETNX")
            .arg(obj.data())
            .arg("max")
            .arg(max)
            .ignore();
        obj.conn
            .pipeline::<()>(&cmd, obj.ro.patience(), Retry::Idempotent)
            .map_err(|e| obj.err(e))?;
        Ok(Semaphore {
            holders: obj.key("sh"),
            obj,
            id: handle_id(),
            next: AtomicU64::new(0),
            held: Arc::new(Mutex::new(Vec::new())),
            lease_ms: AtomicU64::new(DEFAULT_LEASE.as_millis() as u64),
            keeper: Keeper::new(DEFAULT_LEASE),
            renewing: AtomicBool::new(false),
        })
    }

    /// Sets the lease of the permits this handle takes from now on (10 s by
    /// default, at least [`MIN_LEASE`]).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// s.set_lease(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn set_lease(&self, lease: Duration) -> Result<()> {
        let lease = common::check_lease(&self.obj, lease)?;
        self.lease_ms
            .store(lease.as_millis() as u64, Ordering::Relaxed);
        self.keeper.set_lease(lease);
        Ok(())
    }

    fn start_keeper(&self) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let obj = self.obj.clone();
        let key = self.holders.clone();
        let held = self.held.clone();
        let lease = self.lease_ms.load(Ordering::Relaxed);
        self.keeper.add(Arc::new(move || {
            let members: Vec<String> = lock(&held).clone();
            if members.is_empty() {
                return Ok(());
            }
            let lease = lease.to_string();
            let mut args: Vec<&[u8]> = vec![lease.as_bytes()];
            args.extend(members.iter().map(|m| m.as_bytes()));
            obj.run(&ZSET_RENEW, &[&key], &args, obj.call_timeout(None))
                .map(drop)
        }));
    }

    fn acquire_mode(&self, wait: Wait, waited: Duration) -> Result<u32> {
        let member = format!("{}.{}", self.id, self.next.fetch_add(1, Ordering::Relaxed));
        let lease = ms(lease_of(&self.lease_ms));
        let dl = wait.deadline();
        let mut round = 0;
        loop {
            let reply = array(
                &self.obj,
                self.obj.run(
                    &SEM_ACQUIRE,
                    &[self.obj.data(), &self.holders],
                    &[member.as_bytes(), &lease],
                    self.obj.call_timeout(dl),
                )?,
            )?;
            match int(&self.obj, reply.first())? {
                1 => {
                    let told = int(&self.obj, reply.get(1))?;
                    lock(&self.held).push(member);
                    self.start_keeper();
                    return Ok(u32::try_from(told.max(0)).unwrap_or(u32::MAX));
                }
                0 => {
                    if !matches!(wait, Wait::Try) && pause(&mut round, dl, None) {
                        continue;
                    }
                    return Err(Error::Timeout {
                        what: self.obj.label.clone(),
                        waited: if matches!(wait, Wait::Try) {
                            Duration::ZERO
                        } else {
                            waited
                        },
                    });
                }
                other => {
                    return Err(self
                        .obj
                        .corrupted(format!("unexpected semaphore script status {other}")));
                }
            }
        }
    }

    /// Takes a permit, waiting as long as it takes; the number of dead holders'
    /// permits given back since the last acquirer was told.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// let reclaimed = s.acquire()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<u32> {
        self.acquire_mode(Wait::Until(None), Duration::MAX)
    }

    /// Takes a permit if one is free now: [`Error::Timeout`] (waited zero) otherwise.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "none", 0)?;
    /// assert!(s.try_acquire().is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<u32> {
        self.acquire_mode(Wait::Try, Duration::ZERO)
    }

    /// Takes a permit, waiting at most `timeout`: [`Error::Timeout`] after.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// s.acquire_timeout(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<u32> {
        self.acquire_mode(Wait::timeout(timeout), timeout)
    }

    /// Gives back a permit this handle holds (or adds one if it holds none). A permit
    /// whose lease ran out (this handle was cut off from the server longer than the
    /// lease) was given back already: releasing it changes nothing.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// s.acquire()?;
    /// s.release()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        let member = lock(&self.held).pop().unwrap_or_default();
        let v = self.obj.call(
            &SEM_RELEASE,
            &[self.obj.data(), &self.holders],
            &[member.as_bytes()],
        );
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                if !member.is_empty() {
                    lock(&self.held).push(member);
                }
                return Err(e);
            }
        };
        match int(&self.obj, Some(&v))? {
            // 2: the permit's lease had run out and it went back to the count already.
            1 | 2 => Ok(()),
            _ => Err(Error::Local(Box::new(shm_sync::Error::OverRelease {
                object: Arc::from(self.obj.label.as_str()),
                max: self.max()?.unwrap_or(0),
            }))),
        }
    }

    /// Free permits now (a snapshot).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// let _free = s.value()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn value(&self) -> Result<u32> {
        self.field("count").map(|v| v.unwrap_or(0))
    }

    /// The bound of a bounded semaphore.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let s = shm_remote::sync::Semaphore::open_bounded(&conn, "b2", 3)?;
    /// assert_eq!(s.max()?, Some(3));
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn max(&self) -> Result<Option<u32>> {
        self.field("max").map(|v| v.filter(|m| *m > 0))
    }

    /// Permits this handle holds.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// assert_eq!(s.held_by_me(), 0);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn held_by_me(&self) -> u32 {
        lock(&self.held).len() as u32
    }

    fn field(&self, f: &str) -> Result<Option<u32>> {
        let v: Value = self
            .obj
            .conn
            .query(
                redis::cmd("HGET").arg(self.obj.data()).arg(f),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))?;
        match v {
            Value::Nil => Ok(None),
            other => {
                let n = int(&self.obj, Some(&other))?;
                u32::try_from(n).map(Some).map_err(|_| {
                    self.obj
                        .corrupted(format!("expected {f} in 0..2^32, found {n}"))
                })
            }
        }
    }
}

impl SharedSemaphore for Semaphore {
    fn acquire(&self) -> Result<u32> {
        Semaphore::acquire(self)
    }
    fn try_acquire(&self) -> Result<u32> {
        Semaphore::try_acquire(self)
    }
    fn acquire_timeout(&self, timeout: Duration) -> Result<u32> {
        Semaphore::acquire_timeout(self, timeout)
    }
    fn release(&self) -> Result<()> {
        Semaphore::release(self)
    }
    fn value(&self) -> Result<u32> {
        Semaphore::value(self)
    }
}

// ---------------------------------------------------------------- Barrier

/// A reusable barrier on a Redis server (Python's `Barrier`) for `parties` handles
/// (processes, threads with a handle each, on any machine). A party registers at its
/// first `wait` with a lease that its keeper renews; a registered party that dies
/// breaks the barrier once its lease runs out, like a dead local party.
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let b = shm_remote::sync::Barrier::open(&conn, "round", 1)?;
/// assert!(b.wait()?.leader);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Barrier {
    obj: Obj,
    members: String,
    id: String,
    lease_ms: AtomicU64,
    keeper: Keeper,
    registered: AtomicBool,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Barrier({})", self.obj.label)
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        if *self.registered.get_mut() {
            let _ = self.obj.conn.query::<()>(
                redis::cmd("ZREM").arg(&self.members).arg(&self.id),
                Some(crate::queue::DROP_PATIENCE),
                Retry::Idempotent,
            );
        }
    }
}

impl Barrier {
    /// Opens the barrier `name`, creating it for `parties` (at least 1) when new.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let b = shm_remote::sync::Barrier::open(&conn, "round", 2)?;
    /// assert_eq!(b.parties()?, 2);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open(conn: &Arc<Conn>, name: &str, parties: u32) -> Result<Barrier> {
        let obj = Obj::open(conn, name, "Barrier", "Barrier", "hash")?;
        let mut cmd = redis::pipe();
        for (f, v) in [
            ("parties", parties.max(1)),
            ("gen", 0),
            ("count", 0),
            ("broken", 0),
        ] {
            cmd.cmd("HSETNX").arg(obj.data()).arg(f).arg(v).ignore();
        }
        obj.conn
            .pipeline::<()>(&cmd, obj.ro.patience(), Retry::Idempotent)
            .map_err(|e| obj.err(e))?;
        Ok(Barrier {
            members: obj.key("bm"),
            obj,
            id: handle_id(),
            lease_ms: AtomicU64::new(DEFAULT_LEASE.as_millis() as u64),
            keeper: Keeper::new(DEFAULT_LEASE),
            registered: AtomicBool::new(false),
        })
    }

    /// Sets this party's lease (10 s by default, at least [`MIN_LEASE`]): how long
    /// after its death the others notice. Set it before the first `wait`.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let b = shm_remote::sync::Barrier::open(&conn, "round", 2)?;
    /// b.set_lease(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn set_lease(&self, lease: Duration) -> Result<()> {
        let lease = common::check_lease(&self.obj, lease)?;
        self.lease_ms
            .store(lease.as_millis() as u64, Ordering::Relaxed);
        self.keeper.set_lease(lease);
        Ok(())
    }

    fn register(&self) {
        if self.registered.swap(true, Ordering::AcqRel) {
            return;
        }
        let obj = self.obj.clone();
        let key = self.members.clone();
        let id = self.id.clone();
        let lease = self.lease_ms.load(Ordering::Relaxed).to_string();
        self.keeper.add(Arc::new(move || {
            obj.run(
                &ZSET_RENEW,
                &[&key],
                &[lease.as_bytes(), id.as_bytes()],
                obj.call_timeout(None),
            )
            .map(drop)
        }));
    }

    fn wait_mode(&self, dl: Option<Instant>, waited: Duration) -> Result<BarrierWait> {
        let lease = ms(lease_of(&self.lease_ms));
        let keys = [self.obj.data(), self.members.as_str()];
        let reply = array(
            &self.obj,
            self.obj.run(
                &BARRIER_ARRIVE,
                &keys,
                &[self.id.as_bytes(), &lease],
                self.obj.call_timeout(dl),
            )?,
        )?;
        self.register();
        let code = int(&self.obj, reply.first())?;
        if code == -1 {
            return Err(broken_barrier(&self.obj.label));
        }
        let index = u32::try_from(int(&self.obj, reply.get(1))?)
            .map_err(|_| self.obj.corrupted("negative arrival index"))?;
        let gen_ = int(&self.obj, reply.get(2))?.to_string();
        if code == 1 {
            return Ok(BarrierWait {
                index,
                leader: true,
            });
        }
        let mut round = 0;
        loop {
            if !pause(&mut round, dl, None) {
                let v = self.obj.run(
                    &BARRIER_BREAK,
                    &[self.obj.data()],
                    &[gen_.as_bytes()],
                    self.obj.ro.patience(),
                )?;
                if int(&self.obj, Some(&v))? == 1 {
                    return Ok(BarrierWait {
                        index,
                        leader: false,
                    });
                }
                return Err(Error::Timeout {
                    what: self.obj.label.clone(),
                    waited,
                });
            }
            let v = self.obj.run(
                &BARRIER_POLL,
                &keys,
                &[self.id.as_bytes(), &lease, gen_.as_bytes()],
                self.obj.call_timeout(dl),
            )?;
            match int(&self.obj, Some(&v))? {
                1 => {
                    return Ok(BarrierWait {
                        index,
                        leader: false,
                    });
                }
                -1 => return Err(broken_barrier(&self.obj.label)),
                _ => {}
            }
        }
    }

    /// Arrives and waits for the other parties, as long as it takes.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "solo", 1)?;
    /// assert_eq!(b.wait()?.index, 0);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWait> {
        self.wait_mode(None, Duration::MAX)
    }

    /// Arrives and waits at most `timeout`: running out breaks the barrier (this
    /// party gets [`Error::Timeout`], the others a broken barrier).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "pair", 2)?;
    /// assert!(b.wait_timeout(std::time::Duration::from_millis(10)).is_err());
    /// assert!(b.broken()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait> {
        self.wait_mode(deadline(timeout), timeout)
    }

    /// Breaks the barrier for everybody.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "pair", 2)?;
    /// b.abort()?;
    /// assert!(b.broken()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn abort(&self) -> Result<()> {
        self.obj
            .call(&BARRIER_BREAK, &[self.obj.data()], &[b""])
            .map(drop)
    }

    /// Makes the barrier usable again: waiting parties get a broken barrier, dead
    /// parties are forgotten.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "pair", 2)?;
    /// b.reset()?;
    /// assert!(!b.broken()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn reset(&self) -> Result<()> {
        self.obj
            .call(&BARRIER_RESET, &[self.obj.data(), &self.members], &[])
            .map(drop)
    }

    fn field(&self, f: &str) -> Result<i64> {
        let v: Value = self
            .obj
            .conn
            .query(
                redis::cmd("HGET").arg(self.obj.data()).arg(f),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))?;
        match v {
            Value::Nil => Err(self.obj.corrupted(format!("the barrier has no {f} field"))),
            other => int(&self.obj, Some(&other)),
        }
    }

    /// Whether the barrier is broken.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "fresh", 2)?;
    /// assert!(!b.broken()?);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn broken(&self) -> Result<bool> {
        Ok(self.field("broken")? == 1)
    }

    /// The number of parties.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "three", 3)?;
    /// assert_eq!(b.parties()?, 3);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn parties(&self) -> Result<u32> {
        let n = self.field("parties")?;
        u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            self.obj
                .corrupted(format!("expected parties >= 1, found {n}"))
        })
    }

    /// Parties waiting in the current round (a snapshot).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let b = shm_remote::sync::Barrier::open(&conn, "three", 3)?;
    /// assert_eq!(b.n_waiting()?, 0);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u32> {
        let n = self.field("count")?;
        u32::try_from(n).map_err(|_| {
            self.obj
                .corrupted(format!("expected count >= 0, found {n}"))
        })
    }
}

impl SharedBarrier for Barrier {
    fn wait(&self) -> Result<BarrierWait> {
        Barrier::wait(self)
    }
    fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait> {
        Barrier::wait_timeout(self, timeout)
    }
    fn abort(&self) -> Result<()> {
        Barrier::abort(self)
    }
    fn reset(&self) -> Result<()> {
        Barrier::reset(self)
    }
    fn broken(&self) -> Result<bool> {
        Barrier::broken(self)
    }
    fn parties(&self) -> Result<u32> {
        Barrier::parties(self)
    }
}
