//! `shm.Queue(maxsize=0)`, `shm.JoinableQueue` and `shm.SimpleQueue`: multiprocessing's
//! queues on shm-collections' crash-safe ring, with its methods and exceptions
//! (`queue.Full`, `queue.Empty`, `ValueError` after `close()`), plus `put_many` and
//! `get_many`. Values are [`Dynamic`]s (see [`codec`](crate::codec)): a Rust process
//! opens the same queue as `shm_collections::Queue<Dynamic>` (or `JoinableQueue`).
//!
//! Bounded by construction: `Queue(maxsize=N)` holds N messages; `Queue()` (maxsize 0,
//! unbounded in CPython) holds 4096 messages and 4 MiB (a ring in shared memory cannot
//! grow under the processes that map it), where a `put` past that waits for room.
//! Blocked calls release the GIL and wake every 50 ms to run signal handlers, so Ctrl-C
//! interrupts them. `close()` is per object, as in CPython: this object can no longer
//! put or get; other processes go on.
//!
//! ```
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let m = pyo3::types::PyModule::new(py, "t").unwrap();
//!     _shm::queue::register(&m).unwrap();
//!     assert!(m.getattr("JoinableQueue").is_ok());
//! });
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple, PyType};
use shm_collections::{Dynamic, JoinableQueue, Queue, QueueError, QueueSize};

use crate::codec::{decode_py, encode_py, to_dynamic, to_py};
use crate::errors;
use crate::wait;

/// Registers `Queue`, `JoinableQueue` and `SimpleQueue`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyQueue>()?;
    m.add_class::<PyJoinableQueue>()?;
    m.add_class::<PySimpleQueue>()?;
    fast::install::<PyQueue>(m.py())?;
    fast::install::<PySimpleQueue>(m.py())?;
    Ok(())
}

static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn queue_exc(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    msg: String,
) -> PyErr {
    match cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        Ok(py
            .import("queue")?
            .getattr(name)?
            .cast_into::<PyType>()?
            .unbind())
    }) {
        Ok(t) => PyErr::from_type(t.bind(py).clone(), msg),
        Err(e) => e,
    }
}

/// A queue error carried out of a GIL-released wait, mapped onto Python's exceptions.
pub struct QErr(pub QueueError);

impl From<QErr> for PyErr {
    fn from(QErr(e): QErr) -> PyErr {
        let msg = e.to_string();
        Python::attach(|py| match e {
            QueueError::Full { .. } => queue_exc(py, &FULL, "Full", msg),
            QueueError::Empty { .. } => queue_exc(py, &EMPTY, "Empty", msg),
            QueueError::Closed { .. } => PyValueError::new_err(msg),
            QueueError::Timeout { .. } => PyTimeoutError::new_err(msg),
            QueueError::TooLarge { .. } | QueueError::TaskDoneTooManyTimes { .. } => {
                PyValueError::new_err(msg)
            }
            QueueError::Shm(e) => errors::core_err(e),
            _ => errors::other_err(msg),
        })
    }
}

fn full(py: Python<'_>, name: &str) -> PyErr {
    queue_exc(py, &FULL, "Full", format!("{name} is full"))
}

fn empty(py: Python<'_>, name: &str) -> PyErr {
    queue_exc(py, &EMPTY, "Empty", format!("{name} is empty"))
}

thread_local! {
    /// The buffer a put encodes into and a get copies a message into, reused.
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer (cleared), or a fresh one when it is in use (a put
/// or get re-entered from Python code that pickling or unpickling runs).
fn with_buf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new(); // do not keep a huge buffer alive for ever
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// The sizes of `Queue(maxsize)`: the default for 0, else `maxsize` slots sharing at
/// least 4 MiB (at most 64 MiB) so that large messages still fit.
pub(crate) fn size_for(maxsize: isize, max_bytes: Option<usize>) -> PyResult<QueueSize> {
    if maxsize <= 0 {
        return Ok(QueueSize {
            messages: QueueSize::DEFAULT_MESSAGES,
            bytes: max_bytes.unwrap_or(QueueSize::DEFAULT_BYTES),
        });
    }
    let n = maxsize as usize;
    let bytes = max_bytes.unwrap_or_else(|| n.saturating_mul(1024).clamp(4 << 20, 64 << 20));
    Ok(QueueSize { messages: n, bytes })
}

/// Python's `block`/`timeout` pair as the wait to do: `Some(None)` forever,
/// `Some(Some(d))` at most `d`, `None` not at all.
fn wait_of(block: bool, timeout: Option<f64>) -> PyResult<Option<Option<Duration>>> {
    if !block {
        return Ok(None);
    }
    match timeout {
        None => Ok(Some(None)),
        Some(t) if t < 0.0 || t.is_nan() => Err(PyValueError::new_err(format!(
            "'timeout' must be a non-negative number, found {t}"
        ))),
        Some(t) => Ok(Some(Duration::try_from_secs_f64(t).ok())),
    }
}

/// The deadline of a wait of at most `d` (`None`: none; no `Instant` overflow).
fn deadline_of(d: Option<Duration>) -> Option<std::time::Instant> {
    d.and_then(|d| std::time::Instant::now().checked_add(d))
}

/// The one put/get pattern: `attempt(None)` once now with the GIL held, then, if
/// `block`, `attempt(Some(slice))` (waiting at most the slice) with the GIL released
/// until `timeout` (Ctrl-C interrupts between slices). `None` when every attempt found
/// the queue full (empty); other errors are raised.
fn now_or_wait<T: Send>(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    mut attempt: impl FnMut(Option<Duration>) -> Result<T, QueueError> + Send,
) -> PyResult<Option<T>> {
    let retry = |r: Result<T, QueueError>| match r {
        Ok(v) => Ok(Some(v)),
        Err(QueueError::Full { .. } | QueueError::Empty { .. }) => Ok(None),
        Err(e) => Err(QErr(e)),
    };
    if let Some(v) = retry(attempt(None))? {
        return Ok(Some(v));
    }
    let Some(wait) = wait_of(block, timeout)? else {
        return Ok(None);
    };
    wait::wait_released(py, deadline_of(wait), |slice| {
        retry(attempt(Some(slice.max(Duration::from_micros(1)))))
    })
}

/// The Rust object under a Python queue.
enum Ring {
    Plain(Queue<Dynamic>),
    Joinable(JoinableQueue<Dynamic>),
}

impl Ring {
    fn queue(&self) -> &Queue<Dynamic> {
        match self {
            Ring::Plain(q) => q,
            Ring::Joinable(j) => j,
        }
    }

    fn unlink(&self) -> PyResult<()> {
        match self {
            Ring::Plain(q) => q.unlink(),
            Ring::Joinable(j) => j.unlink(),
        }
        .map_err(|e| QErr(e).into())
    }
}

/// What `Queue`, `JoinableQueue` and `SimpleQueue` share: the ring and the close flag.
struct Core {
    ring: Ring,
    maxsize: isize,
    closed: AtomicBool,
    label: &'static str,
}

impl Core {
    fn q(&self) -> PyResult<&Queue<Dynamic>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err(format!(
                "{} {:?} is closed",
                self.label,
                self.ring.queue().name().unwrap_or("")
            )));
        }
        Ok(self.ring.queue())
    }

    fn name(&self) -> String {
        self.ring.queue().name().unwrap_or("").to_owned()
    }

    /// Puts `obj`: encoded straight into this thread's reused buffer (the wire bytes of
    /// its `Dynamic`, see [`encode_py`]), tried once with the GIL held, and only if the
    /// queue is full a wait with the GIL released.
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let q = self.q()?;
        with_buf(|buf| {
            encode_py(obj, buf)?;
            let msg: &[u8] = buf;
            now_or_wait(py, block, timeout, |w| match w {
                None => q.put_encoded_nowait(msg),
                Some(slice) => q.put_encoded_timeout(msg, slice),
            })?
            .ok_or_else(|| full(py, &self.name()))
        })
    }

    fn get_dynamic(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Dynamic> {
        let q = self.q()?;
        now_or_wait(py, block, timeout, |w| match w {
            None => q.get_nowait(),
            Some(slice) => q.get_timeout(slice),
        })?
        .ok_or_else(|| empty(py, &self.name()))
    }

    /// Takes the oldest item: its bytes into this thread's reused buffer (tried once with
    /// the GIL held; released only to wait), decoded straight to Python objects
    /// ([`decode_py`]).
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = self.q()?;
        with_buf(|buf| {
            let got = now_or_wait(py, block, timeout, |w| match w {
                None => q.get_encoded_nowait(buf),
                Some(slice) => q.get_encoded_timeout(buf, slice),
            })?;
            match got {
                Some(()) => decode_py(py, buf),
                None => Err(empty(py, &self.name())),
            }
        })
    }

    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let q = self.q()?;
        let values = items
            .try_iter()?
            .map(|x| to_dynamic(&x?))
            .collect::<PyResult<Vec<_>>>()?;
        // All at once when there is room for them now (one claim of the ring), else one
        // by one with interruptible waits.
        let room = q.max_messages().saturating_sub(q.qsize());
        if values.len() <= room && values.len() > 1 {
            match py.detach(|| q.put_many(&values)) {
                Ok(()) => return Ok(()),
                Err(e) => return Err(QErr(e).into()),
            }
        }
        let deadline = match wait_of(block, timeout)? {
            None => Some(std::time::Instant::now()),
            Some(None) => None,
            Some(Some(d)) => std::time::Instant::now().checked_add(d),
        };
        for v in &values {
            if q.put_nowait(v).is_ok() {
                continue;
            }
            let done = wait::wait_until(py, deadline, |slice| {
                match q.put_timeout(v, slice.max(Duration::from_micros(1))) {
                    Ok(()) => Ok(Some(())),
                    Err(QueueError::Full { .. }) => Ok(None),
                    Err(e) => Err(QErr(e)),
                }
            })?;
            if done.is_none() {
                return Err(full(py, &self.name()));
            }
        }
        Ok(())
    }

    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let q = self.q()?;
        let max = max.max(1);
        let first = self.get_dynamic(py, block, timeout)?;
        let mut all = vec![first];
        if max > 1 {
            match q.get_many_timeout(max - 1, Duration::ZERO) {
                Ok(more) => all.extend(more),
                Err(QueueError::Empty { .. }) => {}
                Err(e) => return Err(QErr(e).into()),
            }
        }
        let items = all
            .iter()
            .map(|d| to_py(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn repr(&self, kind: &str) -> String {
        format!(
            "<shm.{kind} name='{}' maxsize={}>",
            self.name(),
            self.maxsize
        )
    }
}

/// The ring of `Queue(...)`, `JoinableQueue(...)` or `SimpleQueue(...)`: created (sized by
/// `maxsize`/`max_bytes`, named `name` if given, left in place at drop unless `track`)
/// when `create` (default: no `name` given), else opened by `name`.
fn ring_of<Q>(
    maxsize: isize,
    name: Option<&str>,
    create: Option<bool>,
    max_bytes: Option<usize>,
    track: bool,
) -> PyResult<Q>
where
    Q: shm_core::SharedObject<Error = QueueError, Init = QueueSize>,
{
    if !create.unwrap_or(name.is_none()) {
        return open_ring(name.unwrap_or_default());
    }
    let size = size_for(maxsize, max_bytes)?;
    let mut q = match name {
        None => Q::create(size),
        Some(n) => Q::create_named(n, size),
    }
    .map_err(|e| PyErr::from(QErr(e)))?;
    if !track {
        q.set_unlink_on_drop(false);
    }
    Ok(q)
}

/// The ring a pickled handle names.
fn open_ring<Q>(name: &str) -> PyResult<Q>
where
    Q: shm_core::SharedObject<Error = QueueError, Init = QueueSize>,
{
    Q::open(name).map_err(|e| QErr(e).into())
}

/// A process-shared FIFO queue (``multiprocessing.Queue``) on a crash-safe ring in shared
/// memory: ``Queue(maxsize=0, *, name=None, max_bytes=None, track=True)``. With ``name``
/// alone it opens an existing queue. Puts and gets from any number of processes, Python
/// or Rust; a process killed mid-call loses nothing and blocks nobody.
#[pyclass(module = "shm", name = "Queue", subclass, frozen)]
pub struct PyQueue {
    core: Core,
}

#[pymethods]
impl PyQueue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, name=None, create=None, max_bytes=None, track=true))]
    fn new(
        maxsize: isize,
        name: Option<&str>,
        create: Option<bool>,
        max_bytes: Option<usize>,
        track: bool,
    ) -> PyResult<Self> {
        let q = ring_of(maxsize, name, create, max_bytes, track)?;
        Ok(PyQueue::from_ring(Ring::Plain(q), maxsize, "Queue"))
    }

    /// Opens the queue a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str, maxsize: isize) -> PyResult<Self> {
        Ok(PyQueue::from_ring(
            Ring::Plain(open_ring(name)?),
            maxsize,
            "Queue",
        ))
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, self.core.label, (self.core.name(), self.core.maxsize))
    }

    fn __repr__(&self) -> String {
        self.core.repr(self.core.label)
    }

    /// The name other processes open the queue by.
    #[getter]
    fn name(&self) -> String {
        self.core.name()
    }

    /// The ``maxsize`` the queue was made with (0: the default size).
    #[getter]
    fn maxsize(&self) -> isize {
        self.core.maxsize
    }

    /// ``put(obj, block=True, timeout=None)``: waits for room if ``block`` (at most
    /// ``timeout`` seconds), else raises ``queue.Full``. ``put`` itself is a raw method
    /// (see [`fast`]) that comes here unless called as ``put(obj)``.
    #[pyo3(name = "_put", signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.core.put(py, obj, block, timeout)
    }

    /// ``put(obj, False)``.
    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.put(py, obj, false, None)
    }

    /// ``get(block=True, timeout=None)``: takes the oldest item; waits if ``block`` (at
    /// most ``timeout`` seconds), else raises ``queue.Empty``. ``get`` itself is a raw
    /// method (see [`fast`]) that comes here unless called as ``get()``.
    #[pyo3(name = "_get", signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, block, timeout)
    }

    /// ``get(False)``.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, false, None)
    }

    /// Puts every item of ``items`` (in one claim of the ring when they fit now).
    #[pyo3(signature = (items, block=true, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.core.put_many(py, items, block, timeout)
    }

    /// Takes up to ``max`` items as a list: waits for the first as ``get`` does, then
    /// takes those that are there.
    #[pyo3(signature = (max=64, block=true, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.core.get_many(py, max, block, timeout)
    }

    /// Items in the queue now.
    fn qsize(&self) -> PyResult<usize> {
        Ok(self.core.q()?.qsize())
    }

    /// Whether the queue is empty now.
    fn empty(&self) -> PyResult<bool> {
        Ok(self.core.q()?.empty())
    }

    /// Whether the queue is full now.
    fn full(&self) -> PyResult<bool> {
        Ok(self.core.q()?.full())
    }

    /// This object puts and gets no more (ValueError after); other processes go on.
    fn close(&self) {
        self.core.closed.store(true, Ordering::Relaxed);
    }

    /// Nothing to wait for: puts are in shared memory when ``put`` returns.
    fn join_thread(&self) {}

    /// Nothing to cancel (no feeder thread).
    fn cancel_join_thread(&self) {}

    /// Removes the queue's name now; processes that have it open keep using it.
    fn unlink(&self) -> PyResult<()> {
        self.core.ring.unlink()
    }
}

impl PyQueue {
    /// Wraps a queue made in Rust (by a manager).
    pub fn from_queue(q: Queue<Dynamic>, maxsize: isize) -> Self {
        Self::from_ring(Ring::Plain(q), maxsize, "Queue")
    }

    fn from_ring(ring: Ring, maxsize: isize, label: &'static str) -> Self {
        PyQueue {
            core: Core {
                ring,
                maxsize,
                closed: AtomicBool::new(false),
                label,
            },
        }
    }
}

/// ``multiprocessing.JoinableQueue``: a ``Queue`` whose puts count tasks that
/// ``task_done()`` marks done and ``join()`` waits for.
#[pyclass(module = "shm", name = "JoinableQueue", extends = PyQueue, frozen)]
pub struct PyJoinableQueue {}

#[pymethods]
impl PyJoinableQueue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, name=None, create=None, max_bytes=None, track=true))]
    fn new(
        maxsize: isize,
        name: Option<&str>,
        create: Option<bool>,
        max_bytes: Option<usize>,
        track: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let jq = ring_of(maxsize, name, create, max_bytes, track)?;
        Self::init(jq, maxsize)
    }

    /// Opens the queue a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(py: Python<'_>, name: &str, maxsize: isize) -> PyResult<Py<Self>> {
        Py::new(py, Self::init(open_ring(name)?, maxsize)?)
    }

    /// Marks one task done (ValueError if called more often than items were put).
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::jq(slf)?.task_done().map_err(|e| QErr(e).into())
    }

    /// Waits until every item put has been marked done (at most ``timeout`` seconds,
    /// then TimeoutError; CPython's has no timeout).
    #[pyo3(signature = (timeout=None))]
    fn join(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<()> {
        let py = slf.py();
        let jq = Self::jq(slf)?;
        let deadline = wait::deadline(timeout)?;
        let done = wait::wait_until(py, deadline, |slice| {
            match jq.join_timeout(slice.max(Duration::from_micros(1))) {
                Ok(()) => Ok(Some(())),
                Err(QueueError::Timeout { .. }) => Ok(None),
                Err(e) => Err(QErr(e)),
            }
        })?;
        done.ok_or_else(|| {
            PyTimeoutError::new_err("JoinableQueue.join() timed out with unfinished tasks")
        })
    }
}

impl PyJoinableQueue {
    fn init(jq: JoinableQueue<Dynamic>, maxsize: isize) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(PyQueue::from_ring(
            Ring::Joinable(jq),
            maxsize,
            "JoinableQueue",
        ))
        .add_subclass(PyJoinableQueue {}))
    }

    fn jq<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a JoinableQueue<Dynamic>> {
        let base: &'a PyQueue = slf.as_super().get();
        base.core.q()?;
        match &base.core.ring {
            Ring::Joinable(j) => Ok(j),
            Ring::Plain(_) => Err(errors::other_err("a JoinableQueue without a joinable ring")),
        }
    }
}

/// ``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty``, ``close``; unbounded in
/// CPython, here the default size of ``Queue()``.
#[pyclass(module = "shm", name = "SimpleQueue", frozen)]
pub struct PySimpleQueue {
    core: Core,
}

#[pymethods]
impl PySimpleQueue {
    #[new]
    #[pyo3(signature = (*, name=None, create=None, track=true))]
    fn new(name: Option<&str>, create: Option<bool>, track: bool) -> PyResult<Self> {
        Ok(Self::from_queue(ring_of(0, name, create, None, track)?))
    }

    /// Opens the queue a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(Self::from_queue(open_ring(name)?))
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, "SimpleQueue", (self.core.name(),))
    }

    fn __repr__(&self) -> String {
        format!("<shm.SimpleQueue name='{}'>", self.core.name())
    }

    /// The name other processes open the queue by.
    #[getter]
    fn name(&self) -> String {
        self.core.name()
    }

    /// ``put(obj)``: puts ``obj``, waiting for room if the queue is full (``put`` is the
    /// raw method of [`fast`], which comes here for a call with other arguments).
    #[pyo3(name = "_put")]
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.put(py, obj, true, None)
    }

    /// ``get()``: takes the oldest item, waiting as long as it takes (Ctrl-C
    /// interrupts); as ``put``, a raw method comes here for other arguments.
    #[pyo3(name = "_get")]
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, true, None)
    }

    /// Whether the queue is empty now.
    fn empty(&self) -> PyResult<bool> {
        Ok(self.core.q()?.empty())
    }

    /// This object puts and gets no more (ValueError after).
    fn close(&self) {
        self.core.closed.store(true, Ordering::Relaxed);
    }

    /// Removes the queue's name now.
    fn unlink(&self) -> PyResult<()> {
        self.core.ring.unlink()
    }
}

impl PySimpleQueue {
    fn from_queue(q: Queue<Dynamic>) -> Self {
        PySimpleQueue {
            core: Core {
                ring: Ring::Plain(q),
                maxsize: 0,
                closed: AtomicBool::new(false),
                label: "SimpleQueue",
            },
        }
    }
}

/// `put(obj)` and `get()` as raw METH_FASTCALL methods: the call as a benchmark or a
/// worker loop writes it goes straight to [`Core::put`]/[`Core::get`], without PyO3's
/// argument tuple and extraction (abi3-py39 methods are METH_VARARGS); any other call
/// (``block``, ``timeout``, keywords) goes to the full PyO3 method ``_put``/``_get``.
mod fast {
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::{Borrowed, PyClass, PyTypeInfo};

    use super::{Core, PyQueue, PySimpleQueue};
    use crate::sync::fast::{METH_FASTCALL, def, dispatch, fastcall, put_methods, raw_method};

    /// A queue class: where its [`Core`] is.
    pub(super) trait HasCore:
        PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + PyTypeInfo + Sync
    {
        fn core(&self) -> &Core;
    }

    impl HasCore for PyQueue {
        fn core(&self) -> &Core {
            &self.core
        }
    }

    impl HasCore for PySimpleQueue {
        fn core(&self) -> &Core {
            &self.core
        }
    }

    /// The core behind `slf` if it is a `T` (or a subclass: the same layout first).
    ///
    /// # Safety
    /// The GIL is held and `slf` is a live object that outlives `'a`.
    #[inline]
    unsafe fn core_of<'a, T: HasCore>(slf: *mut ffi::PyObject) -> Option<&'a Core> {
        // SAFETY: as the caller guarantees; a checked cast, then a frozen pyclass's data,
        // which lives as long as the object.
        unsafe {
            let py = Python::assume_attached();
            let b = Borrowed::from_ptr(py, slf);
            let t: *const T = b.cast::<T>().ok()?.get();
            Some((*t).core())
        }
    }

    raw_method! {
        /// `put(obj)` straight to [`Core::put`]; other calls to the PyO3 `_put`.
        fn put<T: HasCore>(slf, args, nargs, kwnames) {
            // SAFETY: CPython's call of a raw method (see `raw_method!`).
            unsafe {
                dispatch(slf, args, nargs, kwnames, (1, c"_put"), |py, a| {
                    let core = core_of::<T>(slf)?;
                    let obj = Borrowed::from_ptr(py, a[0]);
                    Some(core.put(py, &obj, true, None).map(|()| py.None().into_bound(py)))
                })
            }
        }
    }

    raw_method! {
        /// `get()` straight to [`Core::get`]; other calls to the PyO3 `_get`.
        fn get<T: HasCore>(slf, args, nargs, kwnames) {
            // SAFETY: CPython's call of a raw method (see `raw_method!`).
            unsafe {
                dispatch(slf, args, nargs, kwnames, (0, c"_get"), |py, _| {
                    Some(core_of::<T>(slf)?.get(py, true, None))
                })
            }
        }
    }

    /// Puts the raw `put` and `get` on `T`'s type (once, at module init).
    pub(super) fn install<T: HasCore>(py: Python<'_>) -> PyResult<()> {
        let fast_kw = METH_FASTCALL | ffi::METH_KEYWORDS;
        put_methods(
            &py.get_type::<T>(),
            [
                def(
                    c"put",
                    fastcall(put::<T>),
                    fast_kw,
                    c"put(obj, block=True, timeout=None)",
                ),
                def(
                    c"get",
                    fastcall(get::<T>),
                    fast_kw,
                    c"get(block=True, timeout=None)",
                ),
            ],
        )
    }
}
