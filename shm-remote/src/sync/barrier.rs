//! [`Barrier`]: a state hash and the registered parties in a sorted set with leases.
//! Semantics: the [module docs](super).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::Script;

use super::{renew_members, scripts};
use crate::api::{BarrierWait, SharedBarrier, broken_barrier};
use crate::common::{Obj, array, deadline, handle_id, int, pause};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::keeper::{DROP_PATIENCE, Lease};

static BARRIER_ARRIVE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_ARRIVE));
static BARRIER_POLL: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_POLL));
static BARRIER_BREAK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_BREAK));
static BARRIER_RESET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::BARRIER_RESET));

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
    lease: Lease,
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
                Some(DROP_PATIENCE),
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
        obj.init_fields(&[
            ("parties", parties.max(1)),
            ("gen", 0),
            ("count", 0),
            ("broken", 0),
        ])?;
        Ok(Barrier {
            members: obj.key("bm"),
            obj,
            id: handle_id(),
            lease: Lease::new(),
            registered: AtomicBool::new(false),
        })
    }

    /// Sets this party's lease (10 s by default, at least [`MIN_LEASE`](crate::sync::MIN_LEASE)): how long
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
        self.lease.set(&self.obj, lease)
    }

    fn register(&self) {
        if self.registered.swap(true, Ordering::AcqRel) {
            return;
        }
        let id = self.id.clone();
        renew_members(&self.lease, &self.obj, &self.members, move || {
            vec![id.clone()]
        });
    }

    fn wait_mode(&self, dl: Option<Instant>, waited: Duration) -> Result<BarrierWait> {
        let lease = self.lease.arg();
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
        self.obj
            .int_field(f)?
            .ok_or_else(|| self.obj.corrupted(format!("the barrier has no {f} field")))
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
