//! [`Event`]: a flag key and a channel; `wait` subscribes before it reads the flag.
//! Semantics: the [module docs](super).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::{Script, Value};

use super::scripts;
use crate::api::SharedEvent;
use crate::common::{self, Obj, deadline, text};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};

static EVENT_SET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::EVENT_SET));

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
