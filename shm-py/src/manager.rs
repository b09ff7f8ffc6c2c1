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

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use shm_collections::Dynamic;
use shm_manager::{ManagerError, SharedMemoryManager};

use crate::dict::{PyNamespace, PyShareableDict, PyShareableVec, region_err};
use crate::errors;
use crate::queue::{PyQueue, size_for};

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
#[pyfunction(name = "Manager")]
fn manager(py: Python<'_>) -> PyResult<PySharedMemoryManager> {
    let m = PySharedMemoryManager::new(None, None, None);
    m.start(py)?;
    Ok(m)
}

/// Maps a manager's error onto the exception Python users expect.
pub fn manager_err(e: ManagerError) -> PyErr {
    let msg = e.to_string();
    match e {
        ManagerError::InvalidName { .. } | ManagerError::ShutDown { .. } => {
            PyValueError::new_err(msg)
        }
        ManagerError::NotFound { .. } => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
        ManagerError::AlreadyExists { .. } => pyo3::exceptions::PyFileExistsError::new_err(msg),
        ManagerError::WrongKind { .. }
        | ManagerError::WrongType { .. }
        | ManagerError::WrongSize { .. } => PyTypeError::new_err(msg),
        ManagerError::NoSuchKey { .. } => PyKeyError::new_err(msg),
        ManagerError::Registry(e) => region_err(e),
        ManagerError::Shm(e) => errors::core_err(e),
        _ => errors::other_err(msg),
    }
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
    counter: AtomicU64,
    /// Objects of other families made through this manager, unlinked at shutdown.
    extra: Mutex<Vec<Py<PyAny>>>,
}

impl PySharedMemoryManager {
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
        Ok(format!("{root}.o{:016x}", u64::from_ne_bytes(r)))
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
    ) -> Self {
        // CPython's address and authkey name its server process; there is none here.
        let _ = (address, authkey);
        PySharedMemoryManager {
            m: Mutex::new(None),
            want: name,
            attach: false,
            started_once: Default::default(),
            counter: AtomicU64::new(0),
            extra: Mutex::new(Vec::new()),
        }
    }

    /// Attaches to the manager named ``name`` (another process owns it).
    #[staticmethod]
    fn connect(py: Python<'_>, name: String) -> PyResult<Self> {
        let me = PySharedMemoryManager {
            m: Mutex::new(None),
            want: Some(name),
            attach: true,
            started_once: Default::default(),
            counter: AtomicU64::new(0),
            extra: Mutex::new(Vec::new()),
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
        let name = self.name(py)?;
        crate::handle::reduce(py, "SharedMemoryManager", (name,))
    }

    /// Makes the manager (the owner, with its tracker process); called by ``with``.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
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
        let extra: Vec<Py<PyAny>> = self
            .extra
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        let taken = self.m.lock().ok().and_then(|mut g| g.take());
        if let Some(m) = &taken {
            if m.is_owner() {
                for obj in extra {
                    let obj = obj.bind(py);
                    // Best effort: an object another process already removed is fine.
                    let _ = obj.call_method0("unlink");
                }
            }
        }
        self.started_once.store(true, Ordering::Release);
        if let Some(m) = taken {
            if m.is_owner() {
                py.detach(|| m.shutdown()).map_err(manager_err)?;
            }
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
        self.with_m(py, |m| Ok(m.name().to_owned()))
    }

    /// Whether this process owns the manager (made it, removes its objects).
    #[getter]
    fn is_owner(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_m(py, |m| Ok(m.is_owner()))
    }

    /// The registered keys.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_m(py, |m| {
            let mut k = m.keys().map_err(manager_err)?;
            k.sort();
            Ok(k)
        })
    }

    /// A ``ShareableDict``: ``m.dict()`` new and empty, ``m.dict(mapping)`` filled,
    /// ``m.dict("key")`` the one registered under that key (made if absent),
    /// ``types=(str, int)`` typed.
    #[pyo3(signature = (arg=None, /, *, key=None, types=None))]
    fn dict(
        &self,
        py: Python<'_>,
        arg: Option<Bound<'_, PyAny>>,
        key: Option<String>,
        types: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyShareableDict> {
        let (key, data) = self.key_and_data("dict", arg, key)?;
        let d = self.with_m(py, |m| {
            PyShareableDict::from_manager(m, &key, types.as_ref())
        })?;
        if let Some(data) = data {
            d.fill(&data)?;
        }
        Ok(d)
    }

    /// A ``ShareableVec``: ``m.list()`` new, ``m.list(iterable)`` filled, ``m.list("key")``
    /// by key.
    #[pyo3(signature = (arg=None, /, *, key=None))]
    fn list(
        &self,
        py: Python<'_>,
        arg: Option<Bound<'_, PyAny>>,
        key: Option<String>,
    ) -> PyResult<Py<PyShareableVec>> {
        let (key, data) = self.key_and_data("list", arg, key)?;
        let v = self.with_m(py, |m| m.list::<Dynamic>(&key).map_err(manager_err))?;
        let v = Py::new(py, PyShareableVec::from_vec(v))?;
        if let Some(data) = data {
            v.bind(py).call_method1("extend", (data,))?;
        }
        Ok(v)
    }

    /// A ``Namespace``: ``m.Namespace()`` new, ``m.Namespace("key")`` by key; keyword
    /// arguments set attributes.
    #[pyo3(name = "Namespace", signature = (key=None, /, **attrs))]
    fn namespace(
        &self,
        py: Python<'_>,
        key: Option<String>,
        attrs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyNamespace>> {
        let key = key.unwrap_or_else(|| self.fresh_key("ns"));
        let ns = self.with_m(py, |m| m.namespace(&key).map_err(manager_err))?;
        let ns = Py::new(py, PyNamespace::from_ns(ns))?;
        if let Some(attrs) = attrs {
            for (k, v) in attrs.iter() {
                ns.bind(py).setattr(k.extract::<String>()?, v)?;
            }
        }
        Ok(ns)
    }

    /// A ``Queue(maxsize)``: new, or by ``key`` (an existing queue is opened whatever
    /// its size).
    #[pyo3(name = "Queue", signature = (maxsize=0, *, key=None))]
    fn queue(&self, py: Python<'_>, maxsize: isize, key: Option<String>) -> PyResult<PyQueue> {
        let key = key.unwrap_or_else(|| self.fresh_key("queue"));
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
        Ok(PyQueue::from_queue(q, maxsize))
    }

    /// ``shm.SharedMemory(create=True, size=size)`` named under this manager's prefix:
    /// removed with the manager.
    #[pyo3(name = "SharedMemory")]
    fn shared_memory<'py>(&self, py: Python<'py>, size: usize) -> PyResult<Bound<'py, PyAny>> {
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
    /// the manager.
    #[pyo3(name = "ShareableList", signature = (sequence=None))]
    fn shareable_list<'py>(
        &self,
        py: Python<'py>,
        sequence: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = self.segment_name(py)?;
        let kw = PyDict::new(py);
        kw.set_item("name", &name)?;
        py.import("shm")?
            .getattr("ShareableList")?
            .call((sequence,), Some(&kw))
    }

    /// ``shm.Lock()`` named under this manager's prefix: removed with the manager (even
    /// when the owner is killed).
    #[pyo3(name = "Lock")]
    fn lock<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let name = self.segment_name(py)?;
        let kw = PyDict::new(py);
        kw.set_item("name", &name)?;
        py.import("shm")?.getattr("Lock")?.call((), Some(&kw))
    }

    /// ``shm.RLock()``, unlinked at shutdown.
    #[pyo3(name = "RLock")]
    fn rlock<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.make_tracked(py, "RLock", &PyTuple::empty(py), None)
    }

    /// ``shm.Event()``, unlinked at shutdown.
    #[pyo3(name = "Event")]
    fn event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.make_tracked(py, "Event", &PyTuple::empty(py), None)
    }

    /// ``shm.Value(typecode, value, ...)``, unlinked at shutdown.
    #[pyo3(name = "Value", signature = (*args, **kwargs))]
    fn value<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.make_tracked(py, "Value", args, kwargs)
    }

    /// ``shm.Array(typecode, size_or_init, ...)``, unlinked at shutdown.
    #[pyo3(name = "Array", signature = (*args, **kwargs))]
    fn array<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.make_tracked(py, "Array", args, kwargs)
    }

    /// ``shm.JoinableQueue(maxsize)``, unlinked at shutdown.
    #[pyo3(name = "JoinableQueue", signature = (*args, **kwargs))]
    fn joinable_queue<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.make_tracked(py, "JoinableQueue", args, kwargs)
    }

    fn __repr__(&self) -> String {
        let g = self.m.lock();
        match g.as_ref().ok().and_then(|g| g.as_ref()) {
            Some(m) => format!("<shm.SharedMemoryManager name='{}'>", m.name()),
            None => "<shm.SharedMemoryManager (not running)>".into(),
        }
    }
}
