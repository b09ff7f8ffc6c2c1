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

    fn got(&self, py: Python<'_>, a: Acquired) -> PyResult<bool> {
        if a != Acquired::Clean {
            let _ = self.raw().mark_consistent();
            self.recovered.store(true, Ordering::Relaxed);
            warn_owner_died(py, "Lock", &self.name)?;
        }
        Ok(true)
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
        Ok(Self {
            name: created(&lock),
            lock,
            recovered: AtomicBool::new(false),
        })
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        let lock = shm_sync::Lock::open(name).map_err(sync_err)?;
        Ok(Self {
            name: name_of(&lock),
            lock,
            recovered: AtomicBool::new(false),
        })
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
        let wait = acquire_deadline(block, timeout)?;
        match self.raw().try_lock() {
            Ok(a) => return self.got(py, a),
            Err(RawError::WouldBlock) => {}
            Err(RawError::WouldDeadlock) => {
                // threading.Lock would wait forever; waiting a timeout out is honest.
                let Some(d) = wait else {
                    return Ok(false);
                };
                if d.is_none() {
                    return Err(PyRuntimeError::new_err(format!(
                        "Lock {:?} is already held by this thread: acquire() would wait forever",
                        self.name
                    )));
                }
                wait_until(py, d, |s| {
                    std::thread::sleep(s);
                    Ok::<_, PyErr>(None::<()>)
                })?;
                return Ok(false);
            }
            Err(e) => {
                return Err(PyRuntimeError::new_err(format!(
                    "Lock {:?}: {e}",
                    self.name
                )));
            }
        }
        let Some(d) = acquire_deadline(block, timeout)? else {
            return Ok(false);
        };
        let raw = self.raw();
        let name = &self.name;
        let got = wait_until(py, d, |slice| match raw.lock_timeout(slice) {
            Ok(a) => Ok(Some(a)),
            Err(RawError::Timeout) | Err(RawError::WouldBlock) => Ok(None),
            Err(e) => Err(PyRuntimeError::new_err(format!("Lock {name:?}: {e}"))),
        })?;
        match got {
            Some(a) => self.got(py, a),
            None => Ok(false),
        }
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

impl RLock {
    fn got(&self, py: Python<'_>, a: Acquired) -> PyResult<bool> {
        if a != Acquired::Clean {
            let _ = self.lock.mark_consistent();
            self.recovered.store(true, Ordering::Relaxed);
            warn_owner_died(py, "RLock", &self.name)?;
        }
        Ok(true)
    }
}

#[pymethods]
impl RLock {
    #[new]
    fn new() -> PyResult<Self> {
        let lock = shm_sync::RLock::create().map_err(sync_err)?;
        Ok(Self {
            name: created(&lock),
            lock,
            recovered: AtomicBool::new(false),
        })
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        let lock = shm_sync::RLock::open(name).map_err(sync_err)?;
        Ok(Self {
            name: name_of(&lock),
            lock,
            recovered: AtomicBool::new(false),
        })
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
        let lock = &self.lock;
        let first = match lock.acquire_timeout(Duration::ZERO) {
            Ok(a) => Some(a),
            Err(shm_sync::Error::Timeout { .. } | shm_sync::Error::WouldBlock { .. }) => None,
            Err(e) => return Err(sync_err(e)),
        };
        if let Some(a) = first {
            return self.got(py, a);
        }
        let Some(d) = acquire_deadline(block, timeout)? else {
            return Ok(false);
        };
        let got = wait_until(py, d, |slice| match lock.acquire_timeout(slice) {
            Ok(a) => Ok(Some(a)),
            Err(shm_sync::Error::Timeout { .. } | shm_sync::Error::WouldBlock { .. }) => Ok(None),
            Err(e) => Err(sync_err(e)),
        })?;
        match got {
            Some(a) => self.got(py, a),
            None => Ok(false),
        }
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
mod fast {
    use std::ffi::{CStr, c_int};
    use std::sync::atomic::{AtomicPtr, Ordering};

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::type_object::PyTypeInfo;
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
    /// the slow path).
    ///
    /// # Safety
    /// The GIL is held and `slf` is a live object that outlives `'a`.
    #[inline]
    unsafe fn this<'a, T: Fast>(py: Python<'a>, slf: *mut ffi::PyObject) -> Option<&'a T> {
        // SAFETY: as the caller guarantees; a frozen pyclass's data lives as long as the
        // object, and an object of exactly type T has T's layout.
        unsafe {
            let tp = T::type_cell().load(Ordering::Relaxed);
            if tp.is_null() || ffi::Py_TYPE(slf) != tp {
                return None;
            }
            let bound = Bound::from_borrowed_ptr(py, slf);
            let t: *const T = bound.cast_unchecked::<T>().get();
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

    unsafe extern "C" fn acquire<T: Fast>(
        slf: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls a method with the GIL held, a live `slf`, `args` a tuple
        // (or null) and `kwargs` a dict or null.
        unsafe {
            let py = Python::assume_attached();
            let plain = kwargs.is_null() && (args.is_null() || ffi::PyTuple_Size(args) == 0);
            if plain
                && let Some(l) = this::<T>(py, slf)
                && l.try_fast()
            {
                let t = ffi::Py_True();
                ffi::Py_INCREF(t);
                return t;
            }
            slow(c"_acquire", slf, args, kwargs)
        }
    }

    unsafe extern "C" fn release<T: Fast>(
        slf: *mut ffi::PyObject,
        _args: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: as in `acquire`.
        unsafe {
            let py = Python::assume_attached();
            if let Some(l) = this::<T>(py, slf)
                && l.release_fast()
            {
                let n = ffi::Py_None();
                ffi::Py_INCREF(n);
                return n;
            }
            slow(c"_release", slf, std::ptr::null_mut(), std::ptr::null_mut())
        }
    }

    fn def(
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
        let acq = ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: acquire::<T>,
        };
        let rel = ffi::PyMethodDefPointer {
            PyCFunction: release::<T>,
        };
        let methods = [
            def(
                c"acquire",
                acq,
                ffi::METH_VARARGS | ffi::METH_KEYWORDS,
                c"acquire(block=True, timeout=None) -> bool",
            ),
            def(
                c"__enter__",
                acq,
                ffi::METH_VARARGS | ffi::METH_KEYWORDS,
                c"acquire()",
            ),
            def(c"release", rel, ffi::METH_NOARGS, c"release()"),
            def(c"__exit__", rel, ffi::METH_VARARGS, c"release()"),
        ];
        for m in methods {
            let name = m.ml_name;
            // SAFETY: a leaked ('static) method def and our heap type; the descriptor is a
            // new reference (or null with an exception), handed to setattr, then dropped.
            unsafe {
                let d = ffi::PyDescr_NewMethod(tp.as_ptr().cast(), m);
                let d = Bound::from_owned_ptr_or_err(py, d)?;
                if ffi::PyObject_SetAttrString(tp.as_ptr(), name, d.as_ptr()) != 0 {
                    return Err(PyErr::fetch(py));
                }
            }
        }
        Ok(())
    }
}
