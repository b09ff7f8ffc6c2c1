//! [`Semaphore`] (and Python's `BoundedSemaphore`): a count, and the permits held in a
//! sorted set with leases. Semantics: the [module docs](super).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::Script;

use super::{Wait, renew_members, scripts};
use crate::api::SharedSemaphore;
use crate::common::{Obj, array, handle_id, int, lock, pause};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keeper::Lease;

static SEM_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SEM_ACQUIRE));
static SEM_RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SEM_RELEASE));

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
    lease: Lease,
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
        obj.init_fields(&[("count", value), ("max", max)])?;
        Ok(Semaphore {
            holders: obj.key("sh"),
            obj,
            id: handle_id(),
            next: AtomicU64::new(0),
            held: Arc::new(Mutex::new(Vec::new())),
            lease: Lease::new(),
            renewing: AtomicBool::new(false),
        })
    }

    /// Sets the lease of the permits this handle takes from now on (10 s by
    /// default, at least [`MIN_LEASE`](crate::sync::MIN_LEASE)).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// let s = shm_remote::sync::Semaphore::open(&conn, "slots", 2)?;
    /// s.set_lease(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn set_lease(&self, lease: Duration) -> Result<()> {
        self.lease.set(&self.obj, lease)
    }

    fn start_keeper(&self) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let held = self.held.clone();
        renew_members(&self.lease, &self.obj, &self.holders, move || {
            lock(&held).clone()
        });
    }

    fn acquire_mode(&self, wait: Wait, waited: Duration) -> Result<u32> {
        let member = format!("{}.{}", self.id, self.next.fetch_add(1, Ordering::Relaxed));
        let lease = self.lease.arg();
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
        match self.obj.int_field(f)? {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                self.obj
                    .corrupted(format!("expected {f} in 0..2^32, found {n}"))
            }),
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
