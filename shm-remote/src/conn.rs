//! [`Conn`]: the connections of one manager to one Redis server, with a timeout on
//! every call, reconnection after the server comes back, and the client's errors
//! mapped into [`Error`].
//!
//! Connections are pooled: a call takes an idle connection (or opens one), runs, and
//! puts it back, so threads sharing a manager do not wait for each other's round
//! trips. A connection whose call failed on the socket (timed out, reset, closed) is
//! never put back: a late reply would otherwise answer the next call. A broken
//! connection also empties the pool (its peers are as stale after a server restart).
//!
//! Retries: a call marked [`Retry::Idempotent`] that fails on a *reused* connection
//! with a broken socket is run once more on a fresh connection, within the same
//! deadline (the common case: the first call after a server restart). Other calls
//! report [`Error::Disconnected`]: the command may or may not have run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline};

use crate::address::RedisAddress;
use crate::error::{Error, Result};

/// The default timeout of one call (connect included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most idle connections kept per manager.
const MAX_IDLE: usize = 16;

/// The granularity of socket timeouts.
const TIMEOUT_STEP_NS: u128 = 10_000_000;

/// `d` rounded up to a multiple of [`TIMEOUT_STEP_NS`] (never zero: a zero socket
/// timeout is an error).
fn round_up(d: Duration) -> Duration {
    let n = d.as_nanos().div_ceil(TIMEOUT_STEP_NS).max(1) * TIMEOUT_STEP_NS;
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Whether a call may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Running it twice has the effect of running it once (reads, `SET`, `HSET`,
    /// `DEL`): retried once on a fresh connection after a broken one.
    Idempotent,
    /// Never sent twice (`RPUSH`, `INCR`, `EXEC`).
    Once,
}

/// A point in time a call must finish by (`None`: no deadline).
///
/// ```
/// use std::time::Duration;
/// let d = shm_remote::conn::Deadline::after(Some(Duration::from_secs(1)));
/// assert!(d.remaining().unwrap().unwrap() <= Duration::from_secs(1));
/// let huge = shm_remote::conn::Deadline::after(Some(Duration::MAX)); // no overflow
/// assert_eq!(huge.remaining().unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
    timeout: Option<Duration>,
}

impl Deadline {
    /// `timeout` from now; `None` (or a timeout too large for an `Instant`) means none.
    pub fn after(timeout: Option<Duration>) -> Self {
        let at = timeout.and_then(|d| Instant::now().checked_add(d));
        Deadline {
            at,
            timeout: timeout.filter(|_| at.is_some()),
        }
    }

    /// The time left: `Ok(None)` without a deadline, [`Error::Timeout`] once passed.
    pub fn remaining(&self) -> Result<Option<Duration>> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(Error::Timeout {
                    what: "call".into(),
                    waited: self.timeout.unwrap_or_default(),
                }),
            },
        }
    }

    /// The timeout this deadline was made from.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.remaining().is_err()
    }
}

/// One pooled connection and the socket timeout last set on it (set again only when
/// it changes: a system call saved per call).
pub struct Pooled {
    con: redis::Connection,
    timeout: Option<Duration>,
    fresh: bool,
}

impl Pooled {
    /// Sets the socket timeouts to `t` (both directions) unless already set.
    fn arm(&mut self, t: Option<Duration>) -> redis::RedisResult<()> {
        if self.timeout != t {
            self.con.set_read_timeout(t)?;
            self.con.set_write_timeout(t)?;
            self.timeout = t;
        }
        Ok(())
    }
}

/// One connection held for several commands (a `WATCH`/`MULTI`/`EXEC` transaction):
/// every command gets the time left until the session's deadline.
pub struct Session<'a> {
    conn: &'a Conn,
    pooled: Option<Pooled>,
    deadline: Deadline,
    /// A `WATCH` is pending (no `EXEC`/`UNWATCH` since): the connection is not put back
    /// into the pool if the session ends so (an error or a panic in between).
    watching: bool,
}

impl Session<'_> {
    fn pooled(&mut self) -> Result<&mut Pooled> {
        let left = self
            .deadline
            .remaining()
            .map_err(|e| self.conn.named_timeout(e))?;
        let p = self
            .pooled
            .as_mut()
            .expect("a session holds its connection until dropped");
        // Rounded up to 10 ms: successive calls of one patience then ask for the same
        // socket timeout, set once instead of two system calls per call; a call may
        // overrun its deadline by less than that step.
        p.arm(left.map(round_up))
            .map_err(|e| self.conn.map_err(e, &self.deadline))?;
        Ok(p)
    }

    fn fail(&mut self, e: redis::RedisError) -> Error {
        let err = self.conn.map_err(e, &self.deadline);
        if err.is_transient() {
            // The socket is in an unknown state: never reused.
            self.pooled = None;
            self.conn.clear_idle();
        }
        err
    }

    /// Runs one command on the session's connection.
    pub fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T> {
        let p = self.pooled()?;
        match cmd.query::<T>(&mut p.con) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs a pipeline (or `MULTI`/`EXEC` block with [`Pipeline::atomic`]).
    pub fn pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> Result<T> {
        let p = self.pooled()?;
        match pipe.query::<T>(&mut p.con) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs a fixed script (`EVALSHA`, loading it on `NOSCRIPT`).
    pub fn invoke<T: FromRedisValue>(&mut self, inv: &redis::ScriptInvocation<'_>) -> Result<T> {
        let p = self.pooled()?;
        match inv.invoke::<T>(&mut p.con) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `WATCH`es `keys`: a later [`exec`](Self::exec) aborts if another client
    /// changed any of them in between.
    pub fn watch(&mut self, keys: &[&str]) -> Result<()> {
        self.watching = true;
        let () = self.query(redis::cmd("WATCH").arg(keys))?;
        Ok(())
    }

    /// `WATCH`es `keys` and runs the reads of `reads` in the same round trip (the watch
    /// takes effect before them); the reads' results.
    pub fn watch_read<T: FromRedisValue>(&mut self, keys: &[&str], reads: &Pipeline) -> Result<T> {
        self.watching = true;
        let mut pipe = redis::pipe();
        pipe.cmd("WATCH").arg(keys).ignore();
        for cmd in reads.cmd_iter() {
            pipe.add_command(cmd.clone());
        }
        self.pipeline(&pipe)
    }

    /// Runs `pipe` as `MULTI`/`EXEC`; `None` if a watched key changed (nothing ran).
    pub fn exec(&mut self, pipe: &mut Pipeline) -> Result<Option<redis::Value>> {
        let v: redis::Value = self.pipeline(pipe.atomic())?;
        self.watching = false;
        Ok(match v {
            redis::Value::Nil => None,
            v => Some(v),
        })
    }

    /// The deadline of the session.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// Whether the connection was opened for this session (a failure on it is not a
    /// stale connection).
    fn fresh(&self) -> bool {
        self.pooled.as_ref().is_some_and(|p| p.fresh)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(mut p) = self.pooled.take() {
            if self.watching {
                return;
            }
            p.fresh = false;
            self.conn.put_back(p);
        }
    }
}

/// The connections of one manager to one server.
///
/// ```no_run
/// use shm_remote::{address::RedisAddress, conn::{Conn, Retry}};
/// let conn = Conn::open(&RedisAddress::parse("redis://127.0.0.1:6379/doc")?, None)?;
/// let pong: String = conn.query(&redis::cmd("PING"), conn.timeout(), Retry::Idempotent)?;
/// assert_eq!(pong, "PONG");
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Conn {
    address: RedisAddress,
    server: String,
    client: redis::Client,
    idle: Mutex<Vec<Pooled>>,
    timeout: Mutex<Option<Duration>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("address", &self.address)
            .finish()
    }
}

impl Conn {
    /// Opens (and checks with one round trip) a connection to `address`'s server;
    /// `timeout` bounds every call of this manager (`None`: [`DEFAULT_TIMEOUT`]).
    /// [`Error::Disconnected`] if the server cannot be reached,
    /// [`Error::Auth`] if it refuses the credentials.
    pub fn open(address: &RedisAddress, timeout: Option<Duration>) -> Result<Arc<Conn>> {
        let addr = if address.tls {
            ConnectionAddr::TcpTls {
                host: address.host.clone(),
                port: address.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(address.host.clone(), address.port)
        };
        let server = address.server();
        let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(u) = &address.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &address.password {
            settings = settings.set_password(p);
        }
        let info: ConnectionInfo = addr
            .into_connection_info()
            .map_err(|e| Error::InvalidAddress {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| Error::InvalidAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let conn = Arc::new(Conn {
            address: address.clone(),
            server,
            client,
            idle: Mutex::new(Vec::new()),
            timeout: Mutex::new(Some(timeout.unwrap_or(DEFAULT_TIMEOUT))),
        });
        let _: String = conn.query(&redis::cmd("PING"), conn.timeout(), Retry::Idempotent)?;
        Ok(conn)
    }

    /// The address (its Display hides the password).
    pub fn address(&self) -> &RedisAddress {
        &self.address
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The default timeout of this manager's calls.
    pub fn timeout(&self) -> Option<Duration> {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the default timeout of calls made from now on (`None`: wait as long as it
    /// takes).
    pub fn set_timeout(&self, t: Option<Duration>) {
        *self.timeout.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    fn clear_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn put_back(&self, p: Pooled) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(p);
        }
    }

    fn named_timeout(&self, e: Error) -> Error {
        match e {
            Error::Timeout { waited, .. } => Error::Timeout {
                what: self.server.clone(),
                waited,
            },
            other => other,
        }
    }

    /// Takes an idle connection or opens one within the deadline.
    fn take(&self, deadline: &Deadline) -> Result<Pooled> {
        if let Some(p) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(p);
        }
        let left = deadline.remaining().map_err(|e| self.named_timeout(e))?;
        // A connect needs some bound even without a deadline (a black-holed SYN).
        let connect_timeout = left.unwrap_or(DEFAULT_TIMEOUT);
        let con = self
            .client
            .get_connection_with_timeout(connect_timeout)
            .map_err(|e| self.map_err(e, deadline))?;
        Ok(Pooled {
            con,
            timeout: None,
            fresh: true,
        })
    }

    /// A connection of its own, outside the pool (a subscriber's): the same address,
    /// credentials and TLS as the pool's.
    pub(crate) fn dedicated(&self, timeout: Option<Duration>) -> Result<redis::Connection> {
        let deadline = Deadline::after(timeout);
        self.client
            .get_connection_with_timeout(timeout.unwrap_or(DEFAULT_TIMEOUT))
            .map_err(|e| self.map_err(e, &deadline))
    }

    /// Holds one connection for several commands until the session is dropped.
    pub fn session(&self, timeout: Option<Duration>) -> Result<Session<'_>> {
        let deadline = Deadline::after(timeout);
        let p = self.take(&deadline)?;
        Ok(Session {
            conn: self,
            pooled: Some(p),
            deadline,
            watching: false,
        })
    }

    /// Runs `f` in a session, once more on a fresh connection if `retry` allows and
    /// the first attempt broke on a reused connection.
    pub fn run<R>(
        &self,
        timeout: Option<Duration>,
        retry: Retry,
        mut f: impl FnMut(&mut Session<'_>) -> Result<R>,
    ) -> Result<R> {
        let deadline = Deadline::after(timeout);
        let mut s = Session {
            conn: self,
            pooled: Some(self.take(&deadline)?),
            deadline,
            watching: false,
        };
        let fresh = s.fresh();
        match f(&mut s) {
            Err(Error::Disconnected { .. }) if retry == Retry::Idempotent && !fresh => {
                drop(s);
                let mut s = Session {
                    conn: self,
                    pooled: Some(self.take(&deadline)?),
                    deadline,
                    watching: false,
                };
                f(&mut s)
            }
            other => other,
        }
    }

    /// Runs one command.
    pub fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        timeout: Option<Duration>,
        retry: Retry,
    ) -> Result<T> {
        self.run(timeout, retry, |s| s.query(cmd))
    }

    /// Runs a pipeline in one round trip.
    pub fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        timeout: Option<Duration>,
        retry: Retry,
    ) -> Result<T> {
        self.run(timeout, retry, |s| s.pipeline(pipe))
    }

    /// Maps a client error: socket timeouts to [`Error::Timeout`], broken or refused
    /// connections to [`Error::Disconnected`], `WRONGTYPE` replies to
    /// [`Error::WrongType`], refused credentials to [`Error::Auth`], other error
    /// replies to [`Error::Server`].
    pub fn map_err(&self, e: redis::RedisError, deadline: &Deadline) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                what: self.server.clone(),
                waited: deadline.timeout().unwrap_or_default(),
            };
        }
        match e.kind() {
            redis::ErrorKind::AuthenticationFailed => {
                return Error::Auth {
                    address: self.server.clone(),
                    reason: e.to_string(),
                };
            }
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
                return Error::Corrupted {
                    name: self.server.clone(),
                    what: format!("unexpected reply: {e}"),
                };
            }
            _ => {}
        }
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.kind() == redis::ErrorKind::Io
        {
            return Error::Disconnected {
                address: self.server.clone(),
                reason: e.to_string(),
            };
        }
        // A pipeline's (or an aborted transaction's: EXECABORT) error carries the failed
        // commands' codes: the first of those decides, else the error's own.
        let code = e
            .clone()
            .into_server_errors()
            .and_then(|errs| errs.first().map(|(_, se)| se.code().to_owned()))
            .or_else(|| e.code().map(str::to_owned));
        match code.as_deref() {
            Some("WRONGTYPE") => Error::WrongType {
                name: self.server.clone(),
                expected: "the Redis type of the object".into(),
                found: "a key of another Redis type".into(),
            },
            Some("NOAUTH") | Some("WRONGPASS") | Some("NOPERM") => Error::Auth {
                address: self.server.clone(),
                reason: e.to_string(),
            },
            Some("LOADING") => Error::Disconnected {
                address: self.server.clone(),
                reason: e.to_string(),
            },
            _ => Error::Server {
                address: self.server.clone(),
                message: e.to_string(),
            },
        }
    }
}
