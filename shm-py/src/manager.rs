//! `shm.SharedMemoryManager()`: CPython's `SharedMemoryManager` and `Manager()` in one,
//! without a server process, over [`shm_manager::SharedMemoryManager`]. As a context
//! manager it owns what it makes and removes it all at `shutdown()` (or when the owner
//! dies, even by `kill -9`: the tracker process of shm-manager).
//!
//! `m.dict()`, `m.list()`, `m.Namespace()`, `m.Queue()` make a `ShareableDict`,
//! `ShareableVec`, `Namespace`, `Queue` registered under a fresh key; `m.dict("scores")`
//! gets (or creates) the one registered under `"scores"`, the same object a Rust process
//! gets with `m.dict::<Dynamic, Dynamic>("scores")`. `m.SharedMemory(size)` and
//! `m.ShareableList(seq)` make `shm.SharedMemory` / `shm.ShareableList` objects named
//! under the manager's prefix (removed with it), and so is `m.Lock()`; `m.RLock()`, `m.Event()`,
//! `m.Value(...)` and `m.Array(...)` make the package's objects and unlink them at
//! shutdown. The manager pickles to its name: a child process gets an attacher that
//! finds objects by key and removes nothing.
//!
//! At a Redis address (`SharedMemoryManager(address="redis://[user:password@]host:port/ns")`,
//! `rediss://` with TLS, or the address as the name) the same methods return the Redis
//! objects of [`crate::remote`] (`RemoteDict`, `RemoteList`, `RemoteQueue`, `RemoteLock`...)
//! built on `shm_remote`; `SharedMemory`, `ShareableList` and `Array` (raw bytes mapped on
//! this machine) raise `NotImplementedError`. Redis objects outlive their clients:
//! `shutdown()` removes nothing there, `clear_namespace()` removes the namespace.
//!
//! ```
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let m = pyo3::types::PyModule::new(py, "t").unwrap();
//!     _shm::manager::register(&m).unwrap();
//!     assert!(m.getattr("SharedMemoryManager").is_ok());
//! });
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use shm_collections::Dynamic;
use shm_manager::SharedMemoryManager;

use crate::dict::{PyNamespace, PyShareableDict, PyShareableVec};
pub use crate::errmap::manager_err;
use crate::errors;
use crate::queue::{PyQueue, size_for};
use crate::remote::{self, Remote};

/// Registers `SharedMemoryManager`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySharedMemoryManager>()?;
    m.add_function(wrap_pyfunction!(manager, m)?)?;
    m.add_function(wrap_pyfunction!(creator, m)?)?;
    Ok(())
}

/// ``_creator(name)``: ``(pid, alive)`` of the process that created the object named
/// ``name`` (from its header), or None for a segment without one. For tests and tools
/// that tell their own leftovers from other processes' objects.
#[pyfunction(name = "_creator")]
fn creator(name: &str) -> Option<(u32, bool)> {
    let info = shm_core::Object::inspect(name).ok()?;
    let alive = !matches!(info.creator.liveness(), shm_core::identity::Liveness::Dead);
    Some((info.creator.id, alive))
}

/// ``multiprocessing.Manager()``: a started ``SharedMemoryManager`` (``dict()``,
/// ``list()``, ``Namespace()``, ``Queue()``, ``Lock()``, ``Value()``... and
/// ``shutdown()``; ``with Manager() as m:`` too).
#[pyfunction(name = "Manager", signature = (*, address=None))]
fn manager(py: Python<'_>, address: Option<&Bound<'_, PyAny>>) -> PyResult<PySharedMemoryManager> {
    let m = PySharedMemoryManager::new(None, address, None)?;
    m.start(py)?;
    Ok(m)
}

/// A lifetime manager for shared objects (``multiprocessing.managers.SharedMemoryManager``
/// plus ``Manager()``'s ``dict``/``list``/``Namespace``/``Queue``, with no server
/// process): ``SharedMemoryManager(name=None)``; ``start()`` or ``with`` makes it the
/// owner, ``shutdown()`` removes everything it made. ``SharedMemoryManager.connect(name)``
/// attaches to another process's manager (finds objects by key, removes nothing).
/// Objects are made by key: ``m.dict("scores")`` is the same dict in every process.
#[pyclass(module = "shm", name = "SharedMemoryManager", frozen)]
pub struct PySharedMemoryManager {
    m: Mutex<Option<SharedMemoryManager>>,
    /// The name to create (owner) or connect to (attacher) at `start`.
    want: Option<String>,
    attach: bool,
    started_once: std::sync::atomic::AtomicBool,
    /// A Redis manager after `shutdown()`.
    shut: std::sync::atomic::AtomicBool,
    counter: AtomicU64,
    /// Objects of other families made through this manager, unlinked at shutdown.
    extra: Mutex<Vec<Py<PyAny>>>,
    /// A Redis address (`redis://...`, `rediss://...`): the objects live there.
    redis: Option<String>,
}

/// What the Redis backend cannot offer: objects that are raw bytes mapped in shared memory.
fn unsupported(what: &str, r: &Remote) -> PyErr {
    pyo3::exceptions::PyNotImplementedError::new_err(format!(
        "{what} is raw shared memory of this machine: a manager at a Redis address ({}) cannot offer it; \
         use a local SharedMemoryManager for it (m.list() and m.dict() work on both)",
        r.shown
    ))
}

/// `key=` on a local manager's lock/event/value: they are found by pickling, not by key.
fn no_key(what: &str, key: &Option<String>) -> PyResult<()> {
    match key {
        Some(_) => Err(PyValueError::new_err(format!(
            "{what}(key=...): keys name locks, events and values on a Redis address only; \
             a local manager's {what} passes to other processes by pickling"
        ))),
        None => Ok(()),
    }
}

impl PySharedMemoryManager {
    /// The Redis namespace, when the manager was opened at a Redis address (started
    /// on first use, as a local one is).
    fn remote(&self, py: Python<'_>) -> PyResult<Option<Remote>> {
        let Some(addr) = &self.redis else {
            return Ok(None);
        };
        if !self.started_once.load(Ordering::Acquire) {
            self.start(py)?;
        }
        if self.shut.load(Ordering::Acquire) {
            return Err(PyValueError::new_err(
                "the SharedMemoryManager was shut down",
            ));
        }
        remote::open(py, addr).map(Some)
    }

    /// `shm.<class>(address, key, *rest)`.
    fn make_remote<'py>(
        &self,
        py: Python<'py>,
        r: &Remote,
        class: &str,
        key: &str,
        rest: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut args: Vec<Bound<'py, PyAny>> = vec![
            PyString::new(py, &r.address).into_any(),
            PyString::new(py, key).into_any(),
        ];
        args.extend(rest);
        py.import("shm")?
            .getattr(class)?
            .call1(PyTuple::new(py, args)?)
    }

    fn semaphore_of<'py>(
        &self,
        py: Python<'py>,
        value: i64,
        key: Option<String>,
        bounded: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = value.into_pyobject(py)?.into_any();
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("sem"));
            let b = pyo3::types::PyBool::new(py, bounded).to_owned().into_any();
            return self.make_remote(py, &r, "RemoteSemaphore", &key, vec![v, b]);
        }
        no_key("Semaphore", &key)?;
        let class = if bounded {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        self.make_tracked(py, class, &PyTuple::new(py, [v])?, None)
    }

    fn with_m<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SharedMemoryManager) -> PyResult<R>,
    ) -> PyResult<R> {
        self.ensure_started(py)?;
        let g = self
            .m
            .lock()
            .map_err(|_| errors::other_err("manager lock poisoned"))?;
        match g.as_ref() {
            Some(m) => f(m),
            None => Err(PyValueError::new_err(
                "the SharedMemoryManager was shut down",
            )),
        }
    }

    fn ensure_started(&self, py: Python<'_>) -> PyResult<()> {
        if self.started_once.load(Ordering::Acquire) {
            return Ok(());
        }
        self.start(py)
    }

    /// A key nobody else uses: kind, pid, a per-manager counter and random bits.
    fn fresh_key(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut r = [0u8; 4];
        let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
        format!(
            "py.{kind}.{}.{n}.{:08x}",
            std::process::id(),
            u32::from_ne_bytes(r)
        )
    }

    /// `("key", data)` from the first positional argument: a str is a key, anything
    /// else initial data.
    fn key_and_data<'py>(
        &self,
        kind: &str,
        arg: Option<Bound<'py, PyAny>>,
        key: Option<String>,
    ) -> PyResult<(String, Option<Bound<'py, PyAny>>)> {
        match (arg, key) {
            (Some(a), None) if a.is_instance_of::<PyString>() => Ok((a.extract()?, None)),
            (a, Some(k)) => Ok((k, a)),
            (a, None) => Ok((self.fresh_key(kind), a)),
        }
    }

    /// A segment name under this manager's prefix (removed with the manager).
    fn segment_name(&self, py: Python<'_>) -> PyResult<String> {
        let mut r = [0u8; 8];
        rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| errors::other_err(format!("getrandom: {e}")))?;
        let root = self.with_m(py, |m| Ok(m.root_name().to_owned()))?;
        Ok(shm_core::name::own_object_name(
            &root,
            false,
            u64::from_ne_bytes(r),
        ))
    }

    /// Calls `shm.<class>(*args, **kwargs)` and remembers the object for shutdown.
    fn make_tracked<'py>(
        &self,
        py: Python<'py>,
        class: &str,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.ensure_started(py)?;
        let obj = py.import("shm")?.getattr(class)?.call(args, kwargs)?;
        if let Ok(mut extra) = self.extra.lock() {
            extra.push(obj.clone().unbind());
        }
        Ok(obj)
    }
}

#[pymethods]
impl PySharedMemoryManager {
    #[new]
    #[pyo3(signature = (name=None, *, address=None, authkey=None))]
    fn new(
        name: Option<String>,
        address: Option<&Bound<'_, PyAny>>,
        authkey: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // A Redis address (as `address=` or as the name) puts the objects on that
        // server; CPython's `(host, port)` address and authkey name its server process,
        // and there is none here: they are ignored.
        let _ = authkey;
        let addr = match address {
            Some(a) if a.is_instance_of::<PyString>() => Some(a.extract::<String>()?),
            _ => None,
        };
        let (name, redis) = match (name, addr) {
            (Some(n), _) if remote::is_redis_address(&n) => (None, Some(n)),
            (n, Some(a)) if remote::is_redis_address(&a) => (n, Some(a)),
            (n, _) => (n, None),
        };
        if let Some(r) = &redis {
            // A malformed address is a ValueError now; an unreachable server is seen
            // at start().
            remote::parse(r)?;
        }
        Ok(PySharedMemoryManager {
            m: Mutex::new(None),
            want: name,
            attach: false,
            started_once: Default::default(),
            counter: AtomicU64::new(0),
            extra: Mutex::new(Vec::new()),
            redis,
            shut: Default::default(),
        })
    }

    /// The Redis address the objects live at (with its password: what a peer needs,
    /// never log it), or the local manager's name.
    #[getter]
    fn address(&self, py: Python<'_>) -> PyResult<String> {
        match &self.redis {
            Some(a) => Ok(a.clone()),
            None => self.name(py),
        }
    }

    /// Removes every object of the Redis namespace (objects on Redis outlive their
    /// clients and the manager's shutdown); how many keys went. ``ValueError`` on a
    /// local manager.
    fn clear_namespace(&self, py: Python<'_>) -> PyResult<usize> {
        match self.remote(py)? {
            Some(r) => py
                .detach(|| r.manager.clear_namespace())
                .map_err(crate::errmap::remote_err),
            None => Err(PyValueError::new_err(
                "clear_namespace(): only a manager at a Redis address has a namespace",
            )),
        }
    }

    /// Attaches to the manager named ``name`` (another process owns it).
    #[staticmethod]
    fn connect(py: Python<'_>, name: String) -> PyResult<Self> {
        let redis = remote::is_redis_address(&name).then(|| name.clone());
        let me = PySharedMemoryManager {
            m: Mutex::new(None),
            want: (redis.is_none()).then_some(name),
            attach: true,
            started_once: Default::default(),
            counter: AtomicU64::new(0),
            extra: Mutex::new(Vec::new()),
            redis,
            shut: Default::default(),
        };
        me.start(py)?;
        Ok(me)
    }

    /// Opens the manager a pickled handle names: an attacher (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(py: Python<'_>, name: String) -> PyResult<Self> {
        Self::connect(py, name)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let name = self.address(py)?;
        crate::handle::reduce(py, "SharedMemoryManager", (name,))
    }

    /// Makes the manager (the owner, with its tracker process); called by ``with``.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(addr) = &self.redis {
            if self.shut.load(Ordering::Acquire) {
                return Err(PyValueError::new_err(
                    "the SharedMemoryManager was shut down",
                ));
            }
            // Connects (or reuses this process's connection to) the server: a typed
            // error when it cannot be reached.
            remote::open(py, addr)?;
            self.started_once.store(true, Ordering::Release);
            return Ok(());
        }
        let mut g = self
            .m
            .lock()
            .map_err(|_| errors::other_err("manager lock poisoned"))?;
        if g.is_some() {
            return Ok(());
        }
        if self.started_once.load(Ordering::Acquire) {
            return Err(PyValueError::new_err(
                "the SharedMemoryManager was shut down",
            ));
        }
        let (want, attach) = (self.want.clone(), self.attach);
        let m = py
            .detach(|| match (want, attach) {
                (Some(n), true) => SharedMemoryManager::connect(&n),
                (Some(n), false) => SharedMemoryManager::named(&n),
                (None, _) => SharedMemoryManager::new(),
            })
            .map_err(manager_err)?;
        *g = Some(m);
        self.started_once.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes everything this manager made (owner) or lets go (attacher).
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        if self.redis.is_some() {
            // Objects on Redis outlive their clients: nothing is removed
            // (`clear_namespace()` does); this manager makes no more objects.
            self.started_once.store(true, Ordering::Release);
            self.shut.store(true, Ordering::Release);
            return Ok(());
        }
        let extra: Vec<Py<PyAny>> = self
            .extra
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        let taken = self.m.lock().ok().and_then(|mut g| g.take());
        if let Some(m) = &taken
            && m.is_owner()
        {
            for obj in extra {
                let obj = obj.bind(py);
                // Best effort: an object another process already removed is fine.
                let _ = obj.call_method0("unlink");
            }
        }
        self.started_once.store(true, Ordering::Release);
        if let Some(m) = taken
            && m.is_owner()
        {
            py.detach(|| m.shutdown()).map_err(manager_err)?;
        }
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.shutdown(py)
    }

    /// The manager's name (what ``connect`` takes).
    #[getter]
    fn name(&self, py: Python<'_>) -> PyResult<String> {
        if let Some(a) = &self.redis {
            return Ok(a.clone());
        }
        self.with_m(py, |m| Ok(m.name().to_owned()))
    }

    /// Whether this process owns the manager (made it, removes its objects).
    #[getter]
    fn is_owner(&self, py: Python<'_>) -> PyResult<bool> {
        if self.redis.is_some() {
            return Ok(!self.attach);
        }
        self.with_m(py, |m| Ok(m.is_owner()))
    }

    /// The registered keys.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        if let Some(r) = self.remote(py)? {
            return py
                .detach(|| r.manager.keys())
                .map_err(crate::errmap::remote_err);
        }
        self.with_m(py, |m| {
            let mut k = m.keys().map_err(manager_err)?;
            k.sort();
            Ok(k)
        })
    }

    /// A ``ShareableDict``: ``m.dict()`` new and empty, ``m.dict(mapping)`` filled,
    /// ``m.dict("key")`` the one registered under that key (made if absent),
    /// ``types=(str, int)`` typed. At a Redis address: a ``RemoteDict``.
    #[pyo3(signature = (arg=None, /, *, key=None, types=None))]
    fn dict<'py>(
        &self,
        py: Python<'py>,
        arg: Option<Bound<'py, PyAny>>,
        key: Option<String>,
        types: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (key, data) = self.key_and_data("dict", arg, key)?;
        if let Some(r) = self.remote(py)? {
            if types.is_some() {
                return Err(PyTypeError::new_err(format!(
                    "dict(types=...): a dict at a Redis address ({}) holds any values; typed dicts are local",
                    r.shown
                )));
            }
            let d = self.make_remote(py, &r, "RemoteDict", &key, vec![])?;
            if let Some(data) = data {
                d.call_method1("update", (data,))?;
            }
            return Ok(d);
        }
        let d = self.with_m(py, |m| {
            PyShareableDict::from_manager(m, &key, types.as_ref())
        })?;
        if let Some(data) = data {
            d.fill(&data)?;
        }
        Ok(Py::new(py, d)?.into_bound(py).into_any())
    }

    /// A ``ShareableVec``: ``m.list()`` new, ``m.list(iterable)`` filled, ``m.list("key")``
    /// by key. At a Redis address: a ``RemoteList``.
    #[pyo3(signature = (arg=None, /, *, key=None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        arg: Option<Bound<'py, PyAny>>,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (key, data) = self.key_and_data("list", arg, key)?;
        let v = if let Some(r) = self.remote(py)? {
            self.make_remote(py, &r, "RemoteList", &key, vec![])?
        } else {
            let v = self.with_m(py, |m| m.list::<Dynamic>(&key).map_err(manager_err))?;
            Py::new(py, PyShareableVec::from_vec(v))?
                .into_bound(py)
                .into_any()
        };
        if let Some(data) = data {
            v.call_method1("extend", (data,))?;
        }
        Ok(v)
    }

    /// A ``Namespace``: ``m.Namespace()`` new, ``m.Namespace("key")`` by key; keyword
    /// arguments set attributes. At a Redis address: a ``RemoteNamespace``.
    #[pyo3(name = "Namespace", signature = (key=None, /, **attrs))]
    fn namespace<'py>(
        &self,
        py: Python<'py>,
        key: Option<String>,
        attrs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key.unwrap_or_else(|| self.fresh_key("ns"));
        let ns = if let Some(r) = self.remote(py)? {
            self.make_remote(py, &r, "RemoteNamespace", &key, vec![])?
        } else {
            let ns = self.with_m(py, |m| m.namespace(&key).map_err(manager_err))?;
            Py::new(py, PyNamespace::from_ns(ns))?
                .into_bound(py)
                .into_any()
        };
        if let Some(attrs) = attrs {
            for (k, v) in attrs.iter() {
                ns.setattr(k.extract::<String>()?, v)?;
            }
        }
        Ok(ns)
    }

    /// A ``Queue(maxsize)``: new, or by ``key`` (an existing queue is opened whatever
    /// its size). At a Redis address: a ``RemoteQueue``.
    #[pyo3(name = "Queue", signature = (maxsize=0, *, key=None))]
    fn queue<'py>(
        &self,
        py: Python<'py>,
        maxsize: isize,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key.unwrap_or_else(|| self.fresh_key("queue"));
        if let Some(r) = self.remote(py)? {
            let n = maxsize.into_pyobject(py)?.into_any();
            return self.make_remote(py, &r, "RemoteQueue", &key, vec![n]);
        }
        let size = size_for(maxsize, None)?;
        let q = self.with_m(py, |m| {
            let exists = m.entry(&key).map_err(manager_err)?.is_some();
            if exists {
                m.open_queue::<Dynamic>(&key).map_err(manager_err)
            } else {
                m.queue::<Dynamic>(&key, size.messages, size.bytes)
                    .map_err(manager_err)
            }
        })?;
        Ok(Py::new(py, PyQueue::from_queue(q, maxsize))?
            .into_bound(py)
            .into_any())
    }

    /// ``shm.SharedMemory(create=True, size=size)`` named under this manager's prefix:
    /// removed with the manager. Not at a Redis address (``NotImplementedError``).
    #[pyo3(name = "SharedMemory")]
    fn shared_memory<'py>(&self, py: Python<'py>, size: usize) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            return Err(unsupported("SharedMemory", &r));
        }
        let name = self.segment_name(py)?;
        let kw = PyDict::new(py);
        kw.set_item("name", &name)?;
        kw.set_item("create", true)?;
        kw.set_item("size", size)?;
        py.import("shm")?
            .getattr("SharedMemory")?
            .call((), Some(&kw))
    }

    /// ``shm.ShareableList(sequence)`` named under this manager's prefix: removed with
    /// the manager. Not at a Redis address (``NotImplementedError``).
    #[pyo3(name = "ShareableList", signature = (sequence=None))]
    fn shareable_list<'py>(
        &self,
        py: Python<'py>,
        sequence: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            return Err(unsupported("ShareableList", &r));
        }
        let name = self.segment_name(py)?;
        let kw = PyDict::new(py);
        kw.set_item("name", &name)?;
        py.import("shm")?
            .getattr("ShareableList")?
            .call((sequence,), Some(&kw))
    }

    /// ``shm.Lock()`` named under this manager's prefix: removed with the manager (even
    /// when the owner is killed). At a Redis address: a ``RemoteLock`` (``key``: a
    /// name other clients open it by).
    #[pyo3(name = "Lock", signature = (*, key=None))]
    fn lock<'py>(&self, py: Python<'py>, key: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("lock"));
            return self.make_remote(py, &r, "RemoteLock", &key, vec![]);
        }
        no_key("Lock", &key)?;
        let name = self.segment_name(py)?;
        let kw = PyDict::new(py);
        kw.set_item("name", &name)?;
        py.import("shm")?.getattr("Lock")?.call((), Some(&kw))
    }

    /// ``shm.RLock()``, unlinked at shutdown; a ``RemoteRLock`` at a Redis address.
    #[pyo3(name = "RLock", signature = (*, key=None))]
    fn rlock<'py>(&self, py: Python<'py>, key: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("rlock"));
            return self.make_remote(py, &r, "RemoteRLock", &key, vec![]);
        }
        no_key("RLock", &key)?;
        self.make_tracked(py, "RLock", &PyTuple::empty(py), None)
    }

    /// ``shm.Event()``, unlinked at shutdown; a ``RemoteEvent`` at a Redis address.
    #[pyo3(name = "Event", signature = (*, key=None))]
    fn event<'py>(&self, py: Python<'py>, key: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("event"));
            return self.make_remote(py, &r, "RemoteEvent", &key, vec![]);
        }
        no_key("Event", &key)?;
        self.make_tracked(py, "Event", &PyTuple::empty(py), None)
    }

    /// ``shm.Semaphore(value)``, unlinked at shutdown; a ``RemoteSemaphore`` at a Redis
    /// address.
    #[pyo3(name = "Semaphore", signature = (value=1, *, key=None))]
    fn semaphore<'py>(
        &self,
        py: Python<'py>,
        value: i64,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.semaphore_of(py, value, key, false)
    }

    /// ``shm.BoundedSemaphore(value)``; a bounded ``RemoteSemaphore`` at a Redis address.
    #[pyo3(name = "BoundedSemaphore", signature = (value=1, *, key=None))]
    fn bounded_semaphore<'py>(
        &self,
        py: Python<'py>,
        value: i64,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.semaphore_of(py, value, key, true)
    }

    /// ``shm.Barrier(parties, action=None, timeout=None)``; a ``RemoteBarrier`` at a
    /// Redis address.
    #[pyo3(name = "Barrier", signature = (parties, action=None, timeout=None, *, key=None))]
    fn barrier<'py>(
        &self,
        py: Python<'py>,
        parties: i64,
        action: Option<Bound<'py, PyAny>>,
        timeout: Option<f64>,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let action = action.unwrap_or_else(|| py.None().into_bound(py));
        let timeout = timeout.into_pyobject(py)?.into_any();
        let parties = parties.into_pyobject(py)?.into_any();
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("barrier"));
            return self.make_remote(
                py,
                &r,
                "RemoteBarrier",
                &key,
                vec![parties, action, timeout],
            );
        }
        no_key("Barrier", &key)?;
        self.make_tracked(
            py,
            "Barrier",
            &PyTuple::new(py, [parties, action, timeout])?,
            None,
        )
    }

    /// ``shm.Value(typecode, value, ...)``, unlinked at shutdown; a ``RemoteValue`` at a
    /// Redis address (``key=``: a name other clients open it by).
    #[pyo3(name = "Value", signature = (*args, **kwargs))]
    fn value<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key: Option<String> = match kwargs {
            Some(kw) => match kw.get_item("key")? {
                Some(k) => {
                    kw.del_item("key")?;
                    Some(k.extract()?)
                }
                None => None,
            },
            None => None,
        };
        if let Some(r) = self.remote(py)? {
            let key = key.unwrap_or_else(|| self.fresh_key("value"));
            let mut rest: Vec<Bound<'py, PyAny>> = args.iter().take(2).collect();
            if rest.len() < 2
                && let Some(v) = kwargs.and_then(|k| k.get_item("value").ok().flatten())
            {
                rest.push(v);
            }
            return self.make_remote(py, &r, "RemoteValue", &key, rest);
        }
        no_key("Value", &key)?;
        self.make_tracked(py, "Value", args, kwargs)
    }

    /// ``shm.Array(typecode, size_or_init, ...)``, unlinked at shutdown. Not at a Redis
    /// address (``NotImplementedError``).
    #[pyo3(name = "Array", signature = (*args, **kwargs))]
    fn array<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            return Err(unsupported("Array", &r));
        }
        self.make_tracked(py, "Array", args, kwargs)
    }

    /// ``shm.JoinableQueue(maxsize)``, unlinked at shutdown; a ``RemoteJoinableQueue``
    /// at a Redis address (``key=``: by key).
    #[pyo3(name = "JoinableQueue", signature = (*args, **kwargs))]
    fn joinable_queue<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote(py)? {
            let get = |name: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
                match kwargs {
                    Some(k) => k.get_item(name),
                    None => Ok(None),
                }
            };
            let key = match get("key")? {
                Some(k) => k.extract::<String>()?,
                None => self.fresh_key("jqueue"),
            };
            let maxsize = match (args.len(), get("maxsize")?) {
                (0, Some(m)) => m,
                (0, None) => 0i64.into_pyobject(py)?.into_any(),
                _ => args.get_item(0)?,
            };
            return self.make_remote(py, &r, "RemoteJoinableQueue", &key, vec![maxsize]);
        }
        self.make_tracked(py, "JoinableQueue", args, kwargs)
    }

    fn __repr__(&self) -> String {
        if let Some(a) = &self.redis {
            let shown = remote::parse(a).map(|p| p.to_string()).unwrap_or_default();
            return format!("<shm.SharedMemoryManager address='{shown}'>");
        }
        let g = self.m.lock();
        match g.as_ref().ok().and_then(|g| g.as_ref()) {
            Some(m) => format!("<shm.SharedMemoryManager name='{}'>", m.name()),
            None => "<shm.SharedMemoryManager (not running)>".into(),
        }
    }
}
