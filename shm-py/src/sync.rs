//! `shm.Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier` (and the raw
//! parts of the pure-Python `Condition`): the stdlib's methods over shm-sync's robust,
//! process-shared primitives. Waits release the GIL and wake every 50 ms for signals.
//!
//! A lock whose holder died is acquired, never a hang: `acquire()` returns True, warns
//! `shm.OwnerDiedWarning` and sets the lock's `recovered` attribute until `release()`.
//!
//! ```python
//! import shm
//! lock = shm.Lock()
//! with lock:
//!     pass
//! ```
//!
//! ```
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let l = _shm::sync::Lock::new_for_test().unwrap();
//!     assert!(l.acquire_for_test(py).unwrap());
//! });
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shm_core::SharedObject;
use shm_sync::{Acquired, RawError, RawMutex};

use crate::errors::{OwnerDiedWarning, core_err, sync_err};
use crate::wait::{deadline, wait_until};

type Reduced<'py> = PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)>;

fn name_of<T: SharedObject>(o: &T) -> String {
    o.object().name().unwrap_or_default().to_owned()
}

/// The name of an object this process just created: unlinked when its handle drops, or
/// at exit if it is still alive then (objects held by globals or daemon threads).
fn created<T: SharedObject>(o: &T) -> String {
    let name = name_of(o);
    crate::segment::track(&name);
    name
}

/// Warns that a dead holder's lock was recovered.
fn warn_owner_died(py: Python<'_>, what: &str, name: &str) -> PyResult<()> {
    let msg = std::ffi::CString::new(format!(
        "{what} {name:?}: its previous holder died holding it; acquired anyway (the data it guarded may be half-updated)"
    ))
    .unwrap_or_default();
    PyErr::warn(py, &py.get_type::<OwnerDiedWarning>(), &msg, 1)
}

/// Python's `(block=True, timeout=None|-1)` as a deadline; `None` when non-blocking.
fn acquire_deadline(
    block: bool,
    timeout: Option<f64>,
) -> PyResult<Option<Option<std::time::Instant>>> {
    if !block {
        if timeout.is_some_and(|t| t >= 0.0) {
            return Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        return Ok(None);
    }
    Ok(Some(deadline(timeout)?))
}

/// What the first, non-waiting attempt of an `acquire` found.
enum First<A> {
    /// Acquired.
    Got(A),
    /// Held by someone else: wait if asked to.
    Busy,
    /// Held by the calling thread, which a non-recursive lock cannot take again.
    Mine,
}

/// The one `acquire(block, timeout)` of `Lock` and `RLock` after their first attempt:
/// `Some` once acquired (`Acquired` says whether from a dead holder), `None` for False.
/// `wait_for` is [`acquire_deadline`], checked before the first attempt.
/// `wait(slice)` waits at most `slice` with the GIL released (see [`wait_until`]).
fn acquire_rest<A: Send>(
    py: Python<'_>,
    what: &str,
    name: &str,
    wait_for: Option<Option<std::time::Instant>>,
    first: First<A>,
    wait: impl FnMut(Duration) -> PyResult<Option<A>> + Send,
) -> PyResult<Option<A>> {
    let Some(deadline) = wait_for else {
        return match first {
            First::Got(a) => Ok(Some(a)),
            First::Busy | First::Mine => Ok(None),
        };
    };
    match first {
        First::Got(a) => Ok(Some(a)),
        First::Busy => wait_until(py, deadline, wait),
        First::Mine => {
            // threading.Lock would wait forever; waiting a timeout out is honest.
            if deadline.is_none() {
                return Err(PyRuntimeError::new_err(format!(
                    "{what} {name:?} is already held by this thread: acquire() would wait forever"
                )));
            }
            wait_until(py, deadline, |s| {
                std::thread::sleep(s);
                Ok::<_, PyErr>(None::<A>)
            })
        }
    }
}

/// After an acquire: a dead holder's lock is marked consistent (`mark`), flagged in
/// `recovered` and warned about; True either way.
fn acquired(
    py: Python<'_>,
    a: Option<Acquired>,
    recovered: &AtomicBool,
    what: &str,
    name: &str,
    mark: impl FnOnce(),
) -> PyResult<bool> {
    match a {
        None => Ok(false),
        Some(Acquired::Clean) => Ok(true),
        Some(_) => {
            mark();
            recovered.store(true, Ordering::Relaxed);
            warn_owner_died(py, what, name)?;
            Ok(true)
        }
    }
}

/// `wrap(lock, made_here)` for the lock classes: the handle with its name (tracked for
/// unlinking when this process made it) and a clear `recovered` flag.
macro_rules! wrap {
    ($ty:ident, $rust:ty) => {
        impl $ty {
            fn wrap(lock: $rust, made_here: bool) -> Self {
                let name = if made_here {
                    created(&lock)
                } else {
                    name_of(&lock)
                };
                Self {
                    name,
                    lock,
                    recovered: AtomicBool::new(false),
                }
            }
        }
    };
}
wrap!(Lock, shm_sync::Lock);
wrap!(RLock, shm_sync::RLock);

/// `shm.Lock()`: a non-recursive lock (threading's and multiprocessing's `Lock`), on
/// disk a `shm_sync::Lock` (a Rust process opens it by name). It belongs to the thread
/// that acquired it: only that thread releases it.
#[pyclass(module = "shm", name = "Lock", frozen)]
pub struct Lock {
    lock: shm_sync::Lock,
    name: String,
    recovered: AtomicBool,
}

impl Lock {
    fn raw(&self) -> &RawMutex {
        // SAFETY: a shm_sync::Lock's payload starts with its RawMutex (a `Mutex<()>`),
        // 64-byte aligned and mapped as long as `self.lock`; it is only accessed
        // atomically, by every process.
        unsafe { RawMutex::from_ptr(self.lock.object().payload_ptr()) }
    }

    /// A new lock (for Rust-side tests).
    pub fn new_for_test() -> PyResult<Self> {
        Self::new(None)
    }

    /// `acquire()` (for Rust-side tests).
    pub fn acquire_for_test(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }
}

#[pymethods]
impl Lock {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<&str>) -> PyResult<Self> {
        let lock = match name {
            Some(n) => shm_sync::Lock::create_named(n),
            None => shm_sync::Lock::create(),
        }
        .map_err(sync_err)?;
        Ok(Self::wrap(lock, true))
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(Self::wrap(
            shm_sync::Lock::open(name).map_err(sync_err)?,
            false,
        ))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        crate::handle::reduce(py, "Lock", (self.name.as_str(),))
    }

    /// The segment's name (a Rust process opens it with `shm_sync::Lock::open`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// True from an acquire that recovered a dead holder's lock until the release.
    #[getter]
    fn recovered(&self) -> bool {
        self.recovered.load(Ordering::Relaxed)
    }

    /// The full `acquire(block=True, timeout=None)`; `acquire` itself is a raw method
    /// (see [`fast`]) that takes an uncontended lock without PyO3's per-call work and
    /// comes here otherwise.
    #[pyo3(name = "_acquire", signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait_for = acquire_deadline(block, timeout)?;
        let (raw, name) = (self.raw(), &self.name);
        let err = |e: RawError| PyRuntimeError::new_err(format!("Lock {name:?}: {e}"));
        let first = match raw.try_lock() {
            Ok(a) => First::Got(a),
            Err(RawError::WouldBlock) => First::Busy,
            Err(RawError::WouldDeadlock) => First::Mine,
            Err(e) => return Err(err(e)),
        };
        let got = acquire_rest(py, "Lock", name, wait_for, first, |slice| {
            match raw.lock_timeout(slice) {
                Ok(a) => Ok(Some(a)),
                Err(RawError::Timeout | RawError::WouldBlock) => Ok(None),
                Err(e) => Err(err(e)),
            }
        })?;
        acquired(py, got, &self.recovered, "Lock", name, || {
            let _ = raw.mark_consistent();
        })
    }

    #[pyo3(name = "_release")]
    fn release(&self) -> PyResult<()> {
        match self.raw().unlock() {
            Ok(()) => {
                self.recovered.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(RawError::NotOwner) => Err(PyRuntimeError::new_err(format!(
                "release of Lock {:?}: expected it held by this thread, found it {}",
                self.name,
                if self.raw().is_locked() {
                    "held by another thread"
                } else {
                    "unlocked"
                }
            ))),
            Err(e) => Err(PyRuntimeError::new_err(format!(
                "Lock {:?}: {e}",
                self.name
            ))),
        }
    }

    /// Whether any thread of any process holds it.
    fn locked(&self) -> bool {
        self.raw().is_locked()
    }

    fn _is_mine(&self) -> bool {
        self.raw().is_held_by_current_thread()
    }

    fn _count(&self) -> u32 {
        u32::from(self.raw().is_held_by_current_thread())
    }

    fn __repr__(&self) -> String {
        format!(
            "<shm.Lock(name='{}', locked={})>",
            self.name,
            self.raw().is_locked()
        )
    }
}

/// `shm.RLock()`: a re-entrant lock (`shm_sync::RLock` on disk).
#[pyclass(module = "shm", name = "RLock", frozen)]
pub struct RLock {
    lock: shm_sync::RLock,
    name: String,
    recovered: AtomicBool,
}

#[pymethods]
impl RLock {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self::wrap(
            shm_sync::RLock::create().map_err(sync_err)?,
            true,
        ))
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(Self::wrap(
            shm_sync::RLock::open(name).map_err(sync_err)?,
            false,
        ))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        crate::handle::reduce(py, "RLock", (self.name.as_str(),))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn recovered(&self) -> bool {
        self.recovered.load(Ordering::Relaxed)
    }

    /// The full `acquire` (the raw `acquire` comes here unless uncontended).
    #[pyo3(name = "_acquire", signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait_for = acquire_deadline(block, timeout)?;
        let lock = &self.lock;
        let attempt = |slice| match lock.acquire_timeout(slice) {
            Ok(a) => Ok(Some(a)),
            Err(shm_sync::Error::Timeout { .. } | shm_sync::Error::WouldBlock { .. }) => Ok(None),
            Err(e) => Err(sync_err(e)),
        };
        let first = match attempt(Duration::ZERO)? {
            Some(a) => First::Got(a),
            None => First::Busy,
        };
        let got = acquire_rest(py, "RLock", &self.name, wait_for, first, attempt)?;
        acquired(py, got, &self.recovered, "RLock", &self.name, || {
            let _ = lock.mark_consistent();
        })
    }

    #[pyo3(name = "_release")]
    fn release(&self) -> PyResult<()> {
        self.lock.release().map_err(|e| match e {
            shm_sync::Error::NotOwner { .. } => PyRuntimeError::new_err(format!(
                "cannot release un-acquired lock: RLock {:?} is not held by this thread",
                self.name
            )),
            e => sync_err(e),
        })?;
        if self.lock.depth() == 0 {
            self.recovered.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    fn _is_mine(&self) -> bool {
        self.lock.depth() > 0
    }

    fn _count(&self) -> u32 {
        self.lock.depth()
    }

    fn __repr__(&self) -> String {
        format!(
            "<shm.RLock(name='{}', depth={})>",
            self.name,
            self.lock.depth()
        )
    }
}

macro_rules! semaphore {
    ($ty:ident, $pyname:literal, $rust:ty) => {
        #[doc = concat!("`shm.", $pyname, "(value=1)`: threading's and multiprocessing's `", $pyname, "` (`", stringify!($rust), "` on disk).")]
        #[pyclass(module = "shm", name = $pyname, frozen)]
        pub struct $ty {
            sem: $rust,
            name: String,
        }

        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = (value=1))]
            fn new(value: i64) -> PyResult<Self> {
                let v = u32::try_from(value).map_err(|_| {
                    PyValueError::new_err(format!(
                        "semaphore initial value: expected 0..={}, found {value}",
                        u32::MAX
                    ))
                })?;
                let sem = <$rust>::create(v).map_err(sync_err)?;
                Ok(Self { name: created(&sem), sem })
            }

            #[staticmethod]
            fn _from_handle(name: &str) -> PyResult<Self> {
                let sem = <$rust>::open(name).map_err(sync_err)?;
                Ok(Self { name: name_of(&sem), sem })
            }

            fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
                crate::handle::reduce(py, $pyname, (self.name.as_str(),))
            }

            #[getter]
            fn name(&self) -> &str {
                &self.name
            }

            #[pyo3(signature = (block=true, timeout=None))]
            fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
                let sem = &self.sem;
                match sem.try_acquire() {
                    Ok(_) => return Ok(true),
                    Err(shm_sync::Error::WouldBlock { .. } | shm_sync::Error::Timeout { .. }) => {}
                    Err(e) => return Err(sync_err(e)),
                }
                let Some(d) = acquire_deadline(block, timeout)? else {
                    return Ok(false);
                };
                let got = wait_until(py, d, |slice| match sem.acquire_timeout(slice) {
                    Ok(_) => Ok(Some(())),
                    Err(shm_sync::Error::Timeout { .. } | shm_sync::Error::WouldBlock { .. }) => Ok(None),
                    Err(e) => Err(sync_err(e)),
                })?;
                Ok(got.is_some())
            }

            #[pyo3(signature = (n=1))]
            fn release(&self, n: u32) -> PyResult<()> {
                for _ in 0..n {
                    self.sem.release().map_err(|e| match e {
                        shm_sync::Error::OverRelease { .. } => PyValueError::new_err(format!(
                            "{} {:?} released too many times",
                            $pyname, self.name
                        )),
                        e => sync_err(e),
                    })?;
                }
                Ok(())
            }

            /// Free permits now (multiprocessing's `get_value`).
            fn get_value(&self) -> u32 {
                self.sem.value()
            }

            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.acquire(py, true, None)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
                self.release(1)
            }

            fn __repr__(&self) -> String {
                format!("<shm.{}(name='{}', value={})>", $pyname, self.name, self.sem.value())
            }
        }
    };
}

semaphore!(Semaphore, "Semaphore", shm_sync::Semaphore);
semaphore!(
    BoundedSemaphore,
    "BoundedSemaphore",
    shm_sync::BoundedSemaphore
);

/// `shm.Event()`: threading's and multiprocessing's `Event`.
#[pyclass(module = "shm", name = "Event", frozen)]
pub struct Event {
    ev: shm_sync::Event,
    name: String,
}

#[pymethods]
impl Event {
    #[new]
    fn new() -> PyResult<Self> {
        let ev = shm_sync::Event::create().map_err(sync_err)?;
        Ok(Self {
            name: created(&ev),
            ev,
        })
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        let ev = shm_sync::Event::open(name).map_err(sync_err)?;
        Ok(Self {
            name: name_of(&ev),
            ev,
        })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        crate::handle::reduce(py, "Event", (self.name.as_str(),))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn is_set(&self) -> bool {
        self.ev.is_set()
    }

    fn set(&self) {
        self.ev.set()
    }

    fn clear(&self) {
        self.ev.clear()
    }

    /// Waits until set or `timeout` seconds pass; returns whether it is set.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.ev.is_set() {
            return Ok(true);
        }
        let ev = &self.ev;
        let d = deadline(timeout.map(|t| t.max(0.0)))?;
        let got = wait_until(py, d, |slice| {
            if slice.is_zero() {
                return Ok::<_, PyErr>(ev.is_set().then_some(()));
            }
            Ok(ev.wait_timeout(slice).ok())
        })?;
        Ok(got.is_some() || self.ev.is_set())
    }

    fn __repr__(&self) -> String {
        format!(
            "<shm.Event(name='{}', set={})>",
            self.name,
            self.ev.is_set()
        )
    }
}

/// `shm.Barrier(parties, action=None, timeout=None)`: threading's and
/// multiprocessing's `Barrier` (`shm_sync::Barrier` on disk). A party that dies while
/// waiting breaks it. One party runs `action` after the round completes. A wait
/// releases the GIL for its whole length (a timed-out wait breaks a barrier, so it is not
/// cut into slices): Ctrl-C is seen when it returns.
#[pyclass(module = "shm", name = "Barrier", frozen)]
pub struct Barrier {
    b: shm_sync::Barrier,
    name: String,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
}

fn broken(py: Python<'_>, msg: String) -> PyErr {
    match py
        .import("threading")
        .and_then(|t| t.getattr("BrokenBarrierError"))
    {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("an exception type"), msg),
        Err(e) => e,
    }
}

#[pymethods]
impl Barrier {
    #[new]
    #[pyo3(signature = (parties, action=None, timeout=None))]
    fn new(parties: i64, action: Option<Py<PyAny>>, timeout: Option<f64>) -> PyResult<Self> {
        let p = u32::try_from(parties)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "parties: expected a positive count, found {parties}"
                ))
            })?;
        let b = shm_sync::Barrier::create(p).map_err(sync_err)?;
        Ok(Self {
            name: created(&b),
            b,
            action,
            timeout,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (name, action=None, timeout=None))]
    fn _from_handle(name: &str, action: Option<Py<PyAny>>, timeout: Option<f64>) -> PyResult<Self> {
        let b = shm_sync::Barrier::open(name).map_err(sync_err)?;
        Ok(Self {
            name: name_of(&b),
            b,
            action,
            timeout,
        })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        let action = self.action.as_ref().map(|a| a.clone_ref(py));
        crate::handle::reduce(py, "Barrier", (self.name.as_str(), action, self.timeout))
    }

    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let t = timeout.or(self.timeout);
        let d = t.map(|t| Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX));
        let b = &self.b;
        let r = py.detach(|| match d {
            None => b.wait(),
            Some(d) => b.wait_timeout(d),
        });
        match r {
            Ok(w) => {
                if w.is_leader()
                    && let Some(a) = &self.action
                    && let Err(e) = a.call0(py)
                {
                    self.b.abort();
                    return Err(e);
                }
                Ok(w.index())
            }
            Err(e @ (shm_sync::Error::BrokenBarrier { .. } | shm_sync::Error::Timeout { .. })) => {
                Err(broken(py, e.to_string()))
            }
            Err(e) => Err(sync_err(e)),
        }
    }

    fn reset(&self) {
        self.b.reset()
    }

    fn abort(&self) {
        self.b.abort()
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.b.parties()
    }

    #[getter]
    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.b.broken()
    }
}

/// Adds the sync classes to the module (Condition is pure Python, in `shm/__init__.py`).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Lock>()?;
    fast::install::<Lock>(m.py())?;
    fast::install::<RLock>(m.py())?;
    m.add_class::<RLock>()?;
    m.add_class::<Semaphore>()?;
    m.add_class::<BoundedSemaphore>()?;
    m.add_class::<Event>()?;
    m.add_class::<Barrier>()?;
    let _ = core_err;
    Ok(())
}

/// `acquire`, `release`, `__enter__` and `__exit__` of `Lock` and `RLock` as raw C
/// methods: the uncontended case (no arguments, lock free; release by the holder) skips
/// PyO3's trampoline and argument parsing, which under abi3-py39 (no vectorcall in the
/// limited API of 3.9) cost more than the lock itself. Anything else calls the full PyO3
/// methods `_acquire` / `_release` with the same arguments.
pub(crate) mod fast {
    use std::ffi::{CStr, c_int};
    use std::sync::atomic::{AtomicPtr, Ordering};

    use pyo3::Borrowed;
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::type_object::PyTypeInfo;
    use pyo3::types::PyBool;
    use pyo3::types::PyType;
    use shm_sync::{Acquired, RawRLock};

    use super::{Lock, RLock};

    /// A lock class with an uncontended fast path.
    pub(super) trait Fast:
        pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + PyTypeInfo + Sync
    {
        /// Takes the lock if it is free (a clean acquire), without waiting.
        fn try_fast(&self) -> bool;
        /// Releases once if the calling thread holds it.
        fn release_fast(&self) -> bool;
        /// The type object, cached at install (PyO3's lazy lookup costs a few ns a call).
        fn type_cell() -> &'static AtomicPtr<ffi::PyTypeObject>;
    }

    static LOCK_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
    static RLOCK_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

    impl Fast for Lock {
        fn type_cell() -> &'static AtomicPtr<ffi::PyTypeObject> {
            &LOCK_TYPE
        }

        #[inline]
        fn try_fast(&self) -> bool {
            self.raw().try_lock() == Ok(Acquired::Clean)
        }

        #[inline]
        fn release_fast(&self) -> bool {
            let ok = self.raw().unlock().is_ok();
            if ok {
                self.recovered.store(false, Ordering::Relaxed);
            }
            ok
        }
    }

    impl RLock {
        fn raw(&self) -> &RawRLock {
            // SAFETY: a shm_sync::RLock's payload starts with its RawRLock, 64-byte aligned
            // and mapped as long as `self.lock`; every process accesses it atomically.
            unsafe { RawRLock::from_ptr(self.lock.object().payload_ptr()) }
        }
    }

    impl Fast for RLock {
        fn type_cell() -> &'static AtomicPtr<ffi::PyTypeObject> {
            &RLOCK_TYPE
        }

        #[inline]
        fn try_fast(&self) -> bool {
            self.raw().try_acquire() == Ok(Acquired::Clean)
        }

        #[inline]
        fn release_fast(&self) -> bool {
            let raw = self.raw();
            let ok = raw.release().is_ok();
            if ok && raw.depth() == 0 {
                self.recovered.store(false, Ordering::Relaxed);
            }
            ok
        }
    }

    /// The object behind `slf` if it is exactly a `T` (the common case; a subclass takes
    /// the slow path). Borrowed: no reference count traffic on the fast path.
    ///
    /// # Safety
    /// The GIL is held and `slf` is a live object that outlives `'a`.
    #[inline]
    unsafe fn this<'a, T: Fast>(slf: *mut ffi::PyObject) -> Option<&'a T> {
        // SAFETY: as the caller guarantees; a frozen pyclass's data lives as long as the
        // object, and an object of exactly type T has T's layout.
        unsafe {
            let tp = T::type_cell().load(Ordering::Relaxed);
            if tp.is_null() || ffi::Py_TYPE(slf) != tp {
                return None;
            }
            let py = Python::assume_attached();
            let b = Borrowed::from_ptr(py, slf).cast_unchecked::<T>();
            let t: *const T = b.get();
            Some(&*t)
        }
    }

    /// Calls `slf.<name>(*args, **kwargs)` (the full PyO3 method).
    ///
    /// # Safety
    /// GIL held; `slf` live; `args` null or a tuple; `kwargs` null or a dict.
    unsafe fn slow(
        name: &CStr,
        slf: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: as the caller guarantees; every new reference is released once.
        unsafe {
            let meth = ffi::PyObject_GetAttrString(slf, name.as_ptr());
            if meth.is_null() {
                return meth;
            }
            let args = if args.is_null() {
                ffi::PyTuple_New(0)
            } else {
                ffi::Py_INCREF(args);
                args
            };
            let r = if args.is_null() {
                args
            } else {
                ffi::PyObject_Call(meth, args, kwargs)
            };
            ffi::Py_XDECREF(args);
            ffi::Py_DECREF(meth);
            r
        }
    }

    /// `METH_FASTCALL | METH_KEYWORDS` (vectorcall, PEP 590): in CPython since 3.7 with
    /// this value and signature, though only named in the limited API from 3.10 on
    /// (hence the local constant). `METH_VARARGS` made every call build an argument
    /// tuple through the generic call path; this is the convention `mp.Lock` uses.
    pub(crate) const METH_FASTCALL: c_int = 0x0080;

    /// The vectorcall signature of a `METH_FASTCALL | METH_KEYWORDS` method.
    pub(crate) type FastWithKeywords = unsafe extern "C" fn(
        *mut ffi::PyObject,
        *const *mut ffi::PyObject,
        ffi::Py_ssize_t,
        *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;

    /// Calls `slf.<name>(*args, **kwargs)` from vectorcall arguments.
    ///
    /// # Safety
    /// GIL held; `slf` live; `args` holds `nargs` positional values then one value per
    /// name of `kwnames` (null or a tuple of str).
    pub(crate) unsafe fn slow_fast(
        name: &CStr,
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: as the caller guarantees; the tuple and dict are new references released
        // here, and PyTuple_SetItem steals the reference it is given (hence the INCREF).
        unsafe {
            let tuple = ffi::PyTuple_New(nargs);
            if tuple.is_null() {
                return tuple;
            }
            for i in 0..nargs {
                let a = *args.offset(i);
                ffi::Py_INCREF(a);
                ffi::PyTuple_SetItem(tuple, i, a);
            }
            let mut kwargs = std::ptr::null_mut();
            if !kwnames.is_null() {
                kwargs = ffi::PyDict_New();
                if kwargs.is_null() {
                    ffi::Py_DECREF(tuple);
                    return kwargs;
                }
                for j in 0..ffi::PyTuple_Size(kwnames) {
                    let k = ffi::PyTuple_GetItem(kwnames, j);
                    if ffi::PyDict_SetItem(kwargs, k, *args.offset(nargs + j)) != 0 {
                        ffi::Py_DECREF(tuple);
                        ffi::Py_DECREF(kwargs);
                        return std::ptr::null_mut();
                    }
                }
            }
            let r = slow(name, slf, tuple, kwargs);
            ffi::Py_DECREF(tuple);
            ffi::Py_XDECREF(kwargs);
            r
        }
    }

    /// Declares a raw METH_FASTCALL|METH_KEYWORDS method
    /// `unsafe extern "C" fn name<T: Bound>(slf, args, nargs, kwnames)`, which CPython
    /// calls with the GIL held, a live `slf`, `nargs` positional values in `args` then
    /// one value per name of `kwnames` (null or a tuple).
    macro_rules! raw_method {
        ($(#[$m:meta])* fn $name:ident<T: $bound:path>($slf:ident, $args:ident, $nargs:ident, $kw:ident) $body:block) => {
            $(#[$m])*
            unsafe extern "C" fn $name<T: $bound>(
                $slf: *mut pyo3::ffi::PyObject,
                $args: *const *mut pyo3::ffi::PyObject,
                $nargs: pyo3::ffi::Py_ssize_t,
                $kw: *mut pyo3::ffi::PyObject,
            ) -> *mut pyo3::ffi::PyObject $body
        };
    }
    pub(crate) use raw_method;

    /// The body of a raw method (see [`raw_method!`]): `fast(py, args)` when called with
    /// exactly `n` positional arguments and no keywords, if it gives a result; else the
    /// full PyO3 method `slow_name` with the same arguments.
    ///
    /// # Safety
    /// As CPython calls a raw method (see [`raw_method!`]).
    #[inline]
    pub(crate) unsafe fn dispatch(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
        (n, slow_name): (ffi::Py_ssize_t, &CStr),
        fast: impl for<'py> FnOnce(
            Python<'py>,
            &[*mut ffi::PyObject],
        ) -> Option<PyResult<Bound<'py, PyAny>>>,
    ) -> *mut ffi::PyObject {
        // SAFETY: as the caller guarantees; `args` holds `nargs` values (maybe null when
        // there are none, hence the empty slice).
        unsafe {
            if nargs == n && kwnames.is_null() {
                let py = Python::assume_attached();
                let a: &[*mut ffi::PyObject] = match usize::try_from(n) {
                    Ok(len) if len > 0 => std::slice::from_raw_parts(args, len),
                    _ => &[],
                };
                match fast(py, a) {
                    Some(Ok(v)) => return v.into_ptr(),
                    Some(Err(e)) => {
                        e.restore(py);
                        return std::ptr::null_mut();
                    }
                    None => {}
                }
            }
            slow_fast(slow_name, slf, args, nargs, kwnames)
        }
    }

    raw_method! {
        /// `acquire(block=True, timeout=None)` and `__enter__()`: an uncontended acquire
        /// without arguments is a type check and one compare-and-swap.
        fn acquire<T: Fast>(slf, args, nargs, kwnames) {
            // SAFETY: CPython's call of a raw method (see `raw_method!`).
            unsafe {
                dispatch(slf, args, nargs, kwnames, (0, c"_acquire"), |py, _| {
                    let l = this::<T>(slf)?;
                    l.try_fast().then(|| Ok(PyBool::new(py, true).to_owned().into_any()))
                })
            }
        }
    }

    /// `release()` (METH_NOARGS).
    unsafe extern "C" fn release<T: Fast>(
        slf: *mut ffi::PyObject,
        _args: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: as in `acquire`.
        unsafe { release_any::<T>(slf) }
    }

    raw_method! {
        /// `__exit__(*exc_info)` (no argument tuple to build; the exception is not ours
        /// to look at).
        fn exit<T: Fast>(slf, _args, _nargs, _kwnames) {
            // SAFETY: CPython's call of a raw method (see `raw_method!`).
            unsafe { release_any::<T>(slf) }
        }
    }

    /// Releases once: the fast path, else the full `_release` (its errors).
    ///
    /// # Safety
    /// GIL held; `slf` live.
    #[inline]
    unsafe fn release_any<T: Fast>(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: as the caller guarantees.
        unsafe {
            if let Some(l) = this::<T>(slf)
                && l.release_fast()
            {
                let n = ffi::Py_None();
                ffi::Py_INCREF(n);
                return n;
            }
            slow(c"_release", slf, std::ptr::null_mut(), std::ptr::null_mut())
        }
    }

    pub(crate) fn def(
        name: &'static CStr,
        meth: ffi::PyMethodDefPointer,
        flags: c_int,
        doc: &'static CStr,
    ) -> &'static mut ffi::PyMethodDef {
        Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: meth,
            ml_flags: flags,
            ml_doc: doc.as_ptr(),
        }))
    }

    /// Puts the raw methods on `T`'s type (once, at module init).
    pub(super) fn install<T: Fast>(py: Python<'_>) -> PyResult<()> {
        let tp: Bound<'_, PyType> = py.get_type::<T>();
        // The type lives as long as the module (PyO3 keeps it): a plain pointer is enough.
        T::type_cell().store(tp.as_ptr().cast(), Ordering::Relaxed);
        let acq = fastcall(acquire::<T>);
        let ext = fastcall(exit::<T>);
        let rel = ffi::PyMethodDefPointer {
            PyCFunction: release::<T>,
        };
        let fast_kw = METH_FASTCALL | ffi::METH_KEYWORDS;
        let methods = [
            def(
                c"acquire",
                acq,
                fast_kw,
                c"acquire(block=True, timeout=None) -> bool",
            ),
            def(c"__enter__", acq, fast_kw, c"acquire()"),
            def(c"release", rel, ffi::METH_NOARGS, c"release()"),
            def(c"__exit__", ext, fast_kw, c"release()"),
        ];
        put_methods(&tp, methods)
    }

    /// A METH_FASTCALL function in a method def's pointer union.
    pub(crate) fn fastcall(f: FastWithKeywords) -> ffi::PyMethodDefPointer {
        ffi::PyMethodDefPointer {
            // SAFETY: CPython calls a METH_FASTCALL method through the vectorcall
            // signature `FastWithKeywords` (the def's flags say which one it is); the
            // union field only carries the pointer.
            PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(f) },
        }
    }

    /// Sets the methods (leaked defs) as descriptors on the type `tp` (at module init).
    pub(crate) fn put_methods(
        tp: &Bound<'_, PyType>,
        methods: impl IntoIterator<Item = &'static mut ffi::PyMethodDef>,
    ) -> PyResult<()> {
        for m in methods {
            let name = m.ml_name;
            // SAFETY: a leaked ('static) method def and our heap type; the descriptor is a
            // new reference (or null with an exception), handed to setattr, then dropped.
            unsafe {
                let d = ffi::PyDescr_NewMethod(tp.as_ptr().cast(), m);
                let d = Bound::from_owned_ptr_or_err(tp.py(), d)?;
                if ffi::PyObject_SetAttrString(tp.as_ptr(), name, d.as_ptr()) != 0 {
                    return Err(PyErr::fetch(tp.py()));
                }
            }
        }
        Ok(())
    }
}
