//! [`Manager`]: objects by key, opened by address. A local name is a
//! [`SharedMemoryManager`] on this machine; `redis://[user:password@]host:port/namespace`
//! (or `rediss://`) is a namespace on a Redis server ([`RedisManager`]). The accessors
//! (`dict`, `list`, `namespace`, `value`, ...) return handles (`AnyDict`, ...) that
//! implement the traits of [`api`](crate::api) over either backend.

use std::sync::Arc;
use std::time::Duration;

use shm_manager::SharedMemoryManager;

use crate::address::{Address, RedisAddress};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::object::RemoteObject;

/// A namespace on a Redis server: the connection pool and the key prefix.
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::manager::RedisManager::open(&server.url("doc").parse()?, None)?;
/// assert_eq!(m.namespace(), "doc");
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisManager {
    conn: Arc<Conn>,
    namespace: String,
}

impl std::str::FromStr for RedisAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RedisAddress::parse(s)
    }
}

impl RedisManager {
    /// Connects to the server of `address` (one `PING` to check it answers);
    /// `timeout` is every call's default (`None`: [`crate::conn::DEFAULT_TIMEOUT`]).
    pub fn open(address: &RedisAddress, timeout: Option<Duration>) -> Result<Self> {
        Ok(RedisManager {
            conn: Conn::open(address, timeout)?,
            namespace: address.namespace.clone(),
        })
    }

    /// The connection pool.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Opens the object `name` (see [`RemoteObject::open`]).
    pub fn object(
        &self,
        name: &str,
        kind: &str,
        type_name: &str,
        redis_type: &str,
    ) -> Result<RemoteObject> {
        RemoteObject::open(
            self.conn.clone(),
            &self.namespace,
            name,
            kind,
            type_name,
            redis_type,
        )
    }

    /// The names of the objects of this namespace (by their type tags; `SCAN`, so
    /// the server is not blocked on large databases).
    pub fn keys(&self) -> Result<Vec<String>> {
        let prefix = crate::object::key(&self.namespace, "m", "");
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.conn.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000),
                self.conn.timeout(),
                Retry::Idempotent,
            )?;
            out.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deletes every key of the namespace (`SCAN` + `UNLINK`); how many. Objects on
    /// Redis outlive their clients: this is how a namespace is removed.
    pub fn clear_namespace(&self) -> Result<usize> {
        let pattern = format!("{}:*", glob_escape(&self.namespace));
        let mut removed = 0usize;
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.conn.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000),
                self.conn.timeout(),
                Retry::Idempotent,
            )?;
            if !batch.is_empty() {
                let n: usize = self.conn.query(
                    redis::cmd("UNLINK").arg(&batch),
                    self.conn.timeout(),
                    Retry::Idempotent,
                )?;
                removed += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(removed)
    }
}

/// Escapes the glob characters of `SCAN MATCH` (`*?[]\`).
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Objects by key, on shared memory or on Redis depending on the address.
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// for address in [format!("doc-mgr-{}", std::process::id()), server.url("doc")] {
///     let m = shm_remote::Manager::create(&address)?;
///     assert_eq!(m.is_local(), !address.starts_with("redis"));
/// }
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub enum Manager {
    /// Shared memory on this machine.
    Local(Box<SharedMemoryManager>),
    /// A namespace on a Redis server.
    Redis(RedisManager),
}

impl Manager {
    /// Creates the manager at `address`: a local name starts a new
    /// [`SharedMemoryManager`] (its owner: dropping it removes its objects); a Redis
    /// address connects to the namespace (Redis objects outlive their clients: see
    /// [`RedisManager::clear_namespace`]).
    pub fn create(address: &str) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => {
                Ok(Manager::Local(Box::new(SharedMemoryManager::named(&name)?)))
            }
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, None)?)),
        }
    }

    /// Connects to the manager at `address` that another process created (a local
    /// name must exist: [`Error::NotFound`] otherwise).
    pub fn connect(address: &str) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => Ok(Manager::Local(Box::new(SharedMemoryManager::connect(
                &name,
            )?))),
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, None)?)),
        }
    }

    /// Connects to the manager at `address`, waiting up to `wait` for a local one to
    /// be created; `wait` is also the Redis manager's default call timeout.
    pub fn connect_timeout(address: &str, wait: Duration) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => Ok(Manager::Local(Box::new(
                SharedMemoryManager::connect_timeout(&name, wait)?,
            ))),
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, Some(wait))?)),
        }
    }

    /// Whether the objects live in shared memory on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Manager::Local(_))
    }

    /// The shared-memory manager, if local.
    pub fn local(&self) -> Option<&SharedMemoryManager> {
        match self {
            Manager::Local(m) => Some(m),
            Manager::Redis(_) => None,
        }
    }

    /// The Redis manager, if remote.
    pub fn redis(&self) -> Option<&RedisManager> {
        match self {
            Manager::Local(_) => None,
            Manager::Redis(m) => Some(m),
        }
    }

    /// The address to hand to other processes: the local manager's name, or the
    /// Redis URL (its password included: it is what a peer needs; never log it).
    pub fn address(&self) -> String {
        match self {
            Manager::Local(m) => m.name().to_owned(),
            Manager::Redis(m) => {
                let a = m.conn.address();
                let scheme = if a.tls { "rediss" } else { "redis" };
                let auth = match (&a.username, &a.password) {
                    (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
                    (Some(u), None) => format!("{}@", enc(u)),
                    (None, Some(p)) => format!(":{}@", enc(p)),
                    (None, None) => String::new(),
                };
                let frag = if a.insecure { "#insecure" } else { "" };
                format!("{scheme}://{auth}{}/{}{frag}", a.server(), a.namespace)
            }
        }
    }

    /// The keys of the objects.
    pub fn keys(&self) -> Result<Vec<String>> {
        match self {
            Manager::Local(m) => Ok(m.keys()?),
            Manager::Redis(m) => m.keys(),
        }
    }
}

/// Percent-encodes the characters of a user info that the URL syntax reserves.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
