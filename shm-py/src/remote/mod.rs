//! The Redis backend of the Python package: `SharedMemoryManager(address="redis://...")`
//! hands out these objects, built on the crate `shm_remote` (one Redis namespace per
//! address). Values use the codec of the shared-memory types: a Python dict over Redis
//! is a `shm_remote::ShareableDict<Dynamic, Dynamic>`, which a Rust process opens by
//! the same address and key.
//!
//! The classes are separate from the local ones (`RemoteDict`, `RemoteList`,
//! `RemoteNamespace`, `RemoteValue`, `RemoteQueue`, `RemoteJoinableQueue`, `RemoteLock`,
//! `RemoteRLock`, `RemoteEvent`, `RemoteSemaphore`, `RemoteBoundedSemaphore`,
//! `RemoteBarrier`) with the same Python methods and exceptions; the package's Python
//! part subclasses the dict and list cores as `collections.abc.MutableMapping` /
//! `MutableSequence`. Every object is opened by `(address, key, ...)`, which is also what
//! it pickles to. Connections are shared per address within a process.
//!
//! ```
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let m = pyo3::types::PyModule::new(py, "t").unwrap();
//!     _shm::remote::register(&m).unwrap();
//!     assert!(m.getattr("RemoteLock").is_ok());
//! });
//! ```

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use shm_remote::RedisManager;
use shm_remote::address::RedisAddress;

use crate::errmap::remote_err;

mod collections;
mod queue;
mod sync;

pub use collections::{PyRemoteDict, PyRemoteList, PyRemoteNamespace, PyRemoteValue};
pub use queue::{PyRemoteJoinableQueue, PyRemoteQueue};
pub use sync::{PyRemoteBarrier, PyRemoteEvent, PyRemoteLock, PyRemoteRLock, PyRemoteSemaphore};

/// Registers the Redis-backed classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    collections::register(m)?;
    queue::register(m)?;
    sync::register(m)?;
    Ok(())
}

/// Whether `address` names a Redis server (`redis://` or `rediss://`) rather than a
/// local manager.
///
/// ```
/// assert!(_shm::remote::is_redis_address("redis://127.0.0.1:6379/jobs"));
/// assert!(_shm::remote::is_redis_address("rediss://h:6380/jobs"));
/// assert!(!_shm::remote::is_redis_address("jobs"));
/// ```
pub fn is_redis_address(address: &str) -> bool {
    let a = address.trim_start();
    a.starts_with("redis://") || a.starts_with("rediss://")
}

/// An open Redis namespace: the manager (its connection pool) and its address, full
/// (for pickles: a peer needs the password) and shown (password as `***`).
#[derive(Clone)]
pub struct Remote {
    /// The manager of the namespace.
    pub manager: RedisManager,
    /// The address as given (with the password, if any): never shown.
    pub address: String,
    /// The address with the password replaced by `***`: for repr and messages.
    pub shown: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.shown)
    }
}

/// Open namespaces by address, with the process that opened them: the objects of one
/// address in a process share one connection pool (unpickling a hundred handles opens
/// one pool, not a hundred). A child made by `fork` must not use its parent's sockets
/// (the replies would interleave): it opens its own.
static OPEN: LazyLock<Mutex<HashMap<String, (u32, Remote)>>> = LazyLock::new(Default::default);

/// Checks the syntax of a Redis address: `ValueError` naming what is wrong (the
/// password redacted).
pub fn parse(address: &str) -> PyResult<RedisAddress> {
    RedisAddress::parse(address).map_err(remote_err)
}

/// [`open`] without Python: this process's namespace of `address`, connecting when new.
pub(crate) fn open_nogil(address: &str) -> shm_remote::Result<Remote> {
    let pid = std::process::id();
    if let Some((p, r)) = OPEN.lock().ok().and_then(|m| m.get(address).cloned())
        && p == pid
    {
        return Ok(r);
    }
    let parsed = RedisAddress::parse(address)?;
    let shown = parsed.to_string();
    let manager = RedisManager::open(&parsed, None)?;
    let r = Remote {
        manager,
        address: address.to_owned(),
        shown,
    };
    if let Ok(mut m) = OPEN.lock()
        && let Some((p, stale)) = m.insert(address.to_owned(), (pid, r.clone()))
        && p != pid
    {
        // The parent's pool (inherited by fork): never touch its sockets, not even to
        // close them politely.
        std::mem::forget(stale);
    }
    Ok(r)
}

/// The open namespace of `address`, connecting (one `PING`, GIL released) when it is
/// not open yet in this process: `ValueError` for a malformed address,
/// `ConnectionError` when the server cannot be reached, `TimeoutError` when it does not
/// answer, `PermissionError` for refused credentials.
pub fn open(py: Python<'_>, address: &str) -> PyResult<Remote> {
    py.detach(|| open_nogil(address)).map_err(remote_err)
}

/// A Redis handle of this process: after a `fork`, the child's first call reopens it
/// on the child's own connections (the inherited handle shares the parent's sockets; it
/// is leaked, never used nor dropped in the child).
pub(crate) struct PerProcess<T> {
    cell: Mutex<(u32, Option<Arc<T>>)>,
    reopen: Box<dyn Fn() -> shm_remote::Result<T> + Send + Sync>,
}

impl<T> PerProcess<T> {
    /// `v` opened in this process; `reopen` opens it again in a forked child.
    pub(crate) fn new(
        v: T,
        reopen: impl Fn() -> shm_remote::Result<T> + Send + Sync + 'static,
    ) -> Self {
        PerProcess {
            cell: Mutex::new((std::process::id(), Some(Arc::new(v)))),
            reopen: Box::new(reopen),
        }
    }

    /// This process's handle.
    pub(crate) fn get(&self) -> shm_remote::Result<Arc<T>> {
        let pid = std::process::id();
        {
            let g = self.cell.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 == pid
                && let Some(v) = &g.1
            {
                return Ok(v.clone());
            }
        }
        let fresh = Arc::new((self.reopen)()?);
        let mut g = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != pid || g.1.is_none() {
            if let Some(stale) = g.1.replace(fresh) {
                std::mem::forget(stale);
            }
            g.0 = pid;
        }
        Ok(g.1.clone().unwrap_or_else(|| unreachable!("set above")))
    }
}

impl<T> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let g = self.cell.get_mut().unwrap_or_else(|e| e.into_inner());
        if g.0 != std::process::id()
            && let Some(stale) = g.1.take()
        {
            // Inherited from the parent: dropping it could talk on the parent's sockets.
            std::mem::forget(stale);
        }
    }
}

/// How long one GIL-released wait on the server lasts before signals are checked
/// (longer than the local [`crate::wait::SLICE`]: each slice of an event wait subscribes
/// again).
pub const SLICE: Duration = Duration::from_millis(200);

/// Python's `(block, timeout)` as the time to wait: `Some(ZERO)` for a non-blocking
/// call, `None` for no deadline.
pub(crate) fn patience(block: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    if !block {
        return Ok(Some(Duration::ZERO));
    }
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout: expected a number of seconds, found NaN",
        )),
        Some(t) if t <= 0.0 => Ok(Some(Duration::ZERO)),
        Some(t) => Ok(Duration::try_from_secs_f64(t).ok()),
    }
}

/// Runs `attempt(slice)` with the GIL released until it gives `Some`, the wait
/// (`None`: none) runs out (`Ok(None)`), or a signal handler raises (Ctrl-C). Every
/// attempt, the first included, runs without the GIL (each is a network round trip).
/// `attempt` waits at most the slice it is given; zero means try once.
pub(crate) fn wait<T: Send>(
    py: Python<'_>,
    wait: Option<Duration>,
    mut attempt: impl FnMut(Duration) -> shm_remote::Result<Option<T>> + Send,
) -> PyResult<Option<T>> {
    let deadline = wait.map(|d| Instant::now().checked_add(d));
    let mut first = true;
    loop {
        let slice = match deadline {
            None | Some(None) => SLICE,
            Some(Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() && !first {
                    return Ok(None);
                }
                left.min(SLICE)
            }
        };
        first = false;
        if let Some(v) = py.detach(|| attempt(slice)).map_err(remote_err)? {
            return Ok(Some(v));
        }
        if slice.is_zero() {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// The `repr` of an object: `<shm.Kind key='k' at redis://host:port/ns>` (no password).
pub(crate) fn repr(kind: &str, key: &str, r: &Remote) -> String {
    format!("<shm.{kind} key={key:?} at {}>", r.shown)
}
