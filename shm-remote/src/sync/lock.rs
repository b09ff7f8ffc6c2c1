//! [`Lock`] and [`RLock`]: a token with a lease at the lock's key, a state hash
//! (fencing counter, holder, depth, inconsistent flag), the keeper renewing the lease
//! while a guard lives. Semantics: the [module docs](super).

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::{Wait, scripts};
use crate::api::{HeldLock, LockError, LockResult, SharedLock};
use crate::common::{self, Obj, array, int, pause};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::keeper::Lease;
use crate::keeper::ms;

static LOCK_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_ACQUIRE));
static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_RELEASE));
static LOCK_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_RENEW));
static LOCK_MARK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCK_MARK_CONSISTENT));

// ---------------------------------------------------------------- Lock / RLock

struct LockCore {
    obj: Obj,
    /// The state hash (`fence`, `holder`, `depth`, `inconsistent`).
    state: String,
    reentrant: bool,
    lease: Lease,
}

impl LockCore {
    fn open(conn: &Arc<Conn>, name: &str, reentrant: bool) -> Result<LockCore> {
        let kind = if reentrant { "RLock" } else { "Lock" };
        let obj = Obj::open(conn, name, kind, kind, "string")?;
        Ok(LockCore {
            state: obj.key("ls"),
            obj,
            reentrant,
            lease: Lease::new(),
        })
    }

    fn set_lease(&self, lease: Duration) -> Result<()> {
        self.lease.set(&self.obj, lease)
    }

    fn lease(&self) -> Duration {
        self.lease.get()
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
        let keeper_id = self.lease.keeper.add(Arc::new(move || {
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
        self.core.lease.keeper.remove(self.keeper_id);
        match self.core.release(&self.token)? {
            0 => Err(self.lease_lost()),
            _ => Ok(()),
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.core.lease.keeper.remove(self.keeper_id);
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
/// [module docs](crate::sync) for the semantics.
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
            /// at least [`MIN_LEASE`](crate::sync::MIN_LEASE)): how long after a holder's death the lock is
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
