//! `RemoteLock`, `RemoteRLock`, `RemoteEvent`, `RemoteSemaphore` and `RemoteBarrier`:
//! `shm_remote::sync`'s leases and scripts with the stdlib's methods. Waits run in
//! GIL-released slices with signal checks between (Ctrl-C interrupts them), except a
//! barrier's wait (a slice that timed out would break the barrier): it runs whole.
//!
//! A lock held from Python is a guard of `shm_remote` kept in a per-thread table until
//! `release()`: release it from the thread that acquired it (an `RLock` is per thread
//! anyway; a `Lock` released by another thread raises `RuntimeError`). A lock whose
//! holder's lease ran out (the holder died) is acquired as the local locks are: True,
//! `shm.OwnerDiedWarning`, `recovered` set until the release; it is marked consistent
//! at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use shm_remote::api::LockError;
use shm_remote::sync::{Barrier, Event, Lock, LockGuard, RLock, Semaphore};

use super::{PerProcess, Remote, open, open_nogil, patience, repr, wait};
use crate::errmap::remote_err;
use crate::errors::OwnerDiedWarning;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRemoteLock>()?;
    m.add_class::<PyRemoteRLock>()?;
    m.add_class::<PyRemoteEvent>()?;
    m.add_class::<PyRemoteSemaphore>()?;
    m.add_class::<PyRemoteBarrier>()?;
    Ok(())
}

type Reduced<'py> = (Bound<'py, PyType>, Bound<'py, PyTuple>);

/// Either Redis lock, behind one `Arc` so a held guard can keep it alive.
enum AnyLock {
    Plain(Lock),
    Re(RLock),
}

impl AnyLock {
    fn lock_timeout(&self, t: Duration) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        match (self, t.is_zero()) {
            (AnyLock::Plain(l), true) => l.try_lock(),
            (AnyLock::Plain(l), false) => l.lock_timeout(t),
            (AnyLock::Re(l), true) => l.try_lock(),
            (AnyLock::Re(l), false) => l.lock_timeout(t),
        }
    }
    fn is_locked(&self) -> shm_remote::Result<bool> {
        match self {
            AnyLock::Plain(l) => l.is_locked(),
            AnyLock::Re(l) => l.is_locked(),
        }
    }
}

/// A guard held from Python, with the lock it borrows from. Field order matters: the
/// guard drops (releases) before the `Arc` that keeps its lock alive.
struct Held {
    guard: LockGuard<'static>,
    _lock: Arc<AnyLock>,
}

thread_local! {
    /// The guards this thread holds, per lock object (its `Arc`'s address), innermost last.
    static HELD: RefCell<HashMap<usize, Vec<Held>>> = RefCell::new(HashMap::new());
}

/// A value that stays on the thread that made it, passed out of `py.detach` (which
/// runs its closure on the calling thread: it only releases the GIL).
struct SameThread<T>(T);
// SAFETY: only used to return a guard from `py.detach`, whose closure runs on the
// calling thread; the value is never used from another thread.
unsafe impl<T> Send for SameThread<T> {}

/// What one attempt got.
enum Got<'a> {
    Clean(LockGuard<'a>),
    Recovered(LockGuard<'a>),
}

/// Shared by `RemoteLock` and `RemoteRLock`.
struct LockBase {
    lock: PerProcess<AnyLock>,
    r: Remote,
    key: String,
    kind: &'static str,
    recovered: AtomicBool,
}

impl LockBase {
    /// This process's lock.
    fn lock(&self) -> PyResult<Arc<AnyLock>> {
        self.lock.get().map_err(remote_err)
    }

    fn id(&self) -> PyResult<usize> {
        Ok(Arc::as_ptr(&self.lock()?) as usize)
    }

    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let lock = self.lock()?;
        let mine = lock.clone();
        let got = wait(py, patience(block, timeout)?, move |slice| {
            let g = match lock.lock_timeout(slice) {
                Ok(g) => Got::Clean(g),
                Err(LockError::OwnerDied(g)) | Err(LockError::Inconsistent(g)) => {
                    // The previous holder died: take the lock and repair it at once
                    // (later lockers get no warning); this caller is told.
                    let _ = g.mark_consistent();
                    Got::Recovered(g)
                }
                Err(LockError::Timeout { .. }) | Err(LockError::WouldBlock { .. }) => {
                    return Ok(None);
                }
                Err(e @ LockError::WouldDeadlock { .. }) => {
                    if slice.is_zero() {
                        return Ok(None);
                    }
                    return Err(e.into_error("lock"));
                }
                Err(e) => return Err(e.into_error("lock")),
            };
            // SAFETY: the guard borrows the `AnyLock` inside `lock`'s heap allocation.
            // It is stored in `Held` beside a clone of that `Arc` and dropped before it
            // (field order), so the borrow never outlives the lock; `'static` only
            // erases that pairing from the type.
            let g = unsafe { std::mem::transmute::<Got<'_>, Got<'static>>(g) };
            Ok(Some(SameThread(g)))
        });
        let got = match got {
            Ok(g) => g,
            Err(e) if e.to_string().contains("waiting would deadlock") => {
                return Err(PyRuntimeError::new_err(format!(
                    "{} {:?} is already held by this thread: waiting would deadlock",
                    self.kind, self.key
                )));
            }
            Err(e) => return Err(e),
        };
        let Some(SameThread(got)) = got else {
            return Ok(false);
        };
        let (guard, recovered) = match got {
            Got::Clean(g) => (g, false),
            Got::Recovered(g) => (g, true),
        };
        let id = Arc::as_ptr(&mine) as usize;
        HELD.with(|h| {
            h.borrow_mut()
                .entry(id)
                .or_default()
                .push(Held { guard, _lock: mine })
        });
        if recovered {
            self.recovered.store(true, Ordering::Relaxed);
            let msg = std::ffi::CString::new(format!(
                "{} {:?}: its previous holder died holding it (its lease ran out); acquired anyway (the data it guarded may be half-updated)",
                self.kind, self.key
            ))
            .unwrap_or_default();
            PyErr::warn(py, &py.get_type::<OwnerDiedWarning>(), &msg, 1)?;
        }
        Ok(true)
    }

    fn release(&self) -> PyResult<()> {
        let id = self.id()?;
        let held = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let v = h.get_mut(&id)?;
            let g = v.pop();
            if v.is_empty() {
                h.remove(&id);
            }
            g
        });
        let Some(held) = held else {
            return Err(PyRuntimeError::new_err(format!(
                "release of {} {:?}: not held by this thread",
                self.kind, self.key
            )));
        };
        self.recovered.store(false, Ordering::Relaxed);
        let Held { guard, _lock } = held;
        // Released without the GIL? One round trip; a failure means the lease ran out
        // (someone else may have held it meanwhile): tell the caller.
        guard.unlock().map_err(remote_err)
    }

    fn depth(&self) -> usize {
        let Ok(id) = self.id() else { return 0 };
        HELD.with(|h| h.borrow().get(&id).map_or(0, Vec::len))
    }
}

macro_rules! lock_class {
    ($ty:ident, $pyname:literal, $variant:ident, $open:ty, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "shm", name = $pyname, frozen)]
        pub struct $ty {
            base: LockBase,
        }

        impl $ty {
            /// Opens the lock `key` of the namespace at `address`.
            pub(crate) fn open(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
                let r = open(py, address)?;
                let conn = r.manager.conn().clone();
                let l = py
                    .detach(|| <$open>::open(&conn, key))
                    .map_err(remote_err)?;
                let (a, k) = (address.to_owned(), key.to_owned());
                let lock = PerProcess::new(AnyLock::$variant(l), move || {
                    Ok(AnyLock::$variant(<$open>::open(
                        open_nogil(&a)?.manager.conn(),
                        &k,
                    )?))
                });
                Ok($ty {
                    base: LockBase {
                        lock,
                        r,
                        key: key.to_owned(),
                        kind: $pyname,
                        recovered: AtomicBool::new(false),
                    },
                })
            }

            /// `acquire` for Rust callers in this crate.
            #[allow(dead_code)]
            pub(crate) fn acquire(
                &self,
                py: Python<'_>,
                block: bool,
                timeout: Option<f64>,
            ) -> PyResult<bool> {
                self.base.acquire(py, block, timeout)
            }

            /// `release` for Rust callers in this crate.
            #[allow(dead_code)]
            pub(crate) fn release(&self) -> PyResult<()> {
                self.base.release()
            }
        }

        #[pymethods]
        impl $ty {
            #[new]
            fn new(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
                Self::open(py, address, key)
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
                let b = &slf.get().base;
                let args = PyTuple::new(slf.py(), [b.r.address.as_str(), b.key.as_str()])?;
                Ok((slf.get_type(), args))
            }

            /// The key.
            #[getter]
            fn name(&self) -> &str {
                &self.base.key
            }

            /// True from an acquire that took the lock of a dead holder until the release.
            #[getter]
            fn recovered(&self) -> bool {
                self.base.recovered.load(Ordering::Relaxed)
            }

            /// ``acquire(block=True, timeout=None)``: True when acquired, False when not
            /// within the timeout (or at once when ``block`` is False).
            #[pyo3(name = "acquire", signature = (block=true, timeout=None))]
            fn py_acquire(
                &self,
                py: Python<'_>,
                block: bool,
                timeout: Option<f64>,
            ) -> PyResult<bool> {
                self.base.acquire(py, block, timeout)
            }

            /// Releases one acquisition of this thread.
            #[pyo3(name = "release")]
            fn py_release(&self) -> PyResult<()> {
                self.base.release()
            }

            /// Whether some holder (anywhere) has it now.
            fn locked(&self, py: Python<'_>) -> PyResult<bool> {
                let l = self.base.lock()?;
                py.detach(|| l.is_locked()).map_err(remote_err)
            }

            fn _is_mine(&self) -> bool {
                self.base.depth() > 0
            }

            fn _count(&self) -> usize {
                self.base.depth()
            }

            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.base.acquire(py, true, None)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
                self.base.release()
            }

            fn __repr__(&self) -> String {
                repr($pyname, &self.base.key, &self.base.r)
            }
        }
    };
}

lock_class!(
    PyRemoteLock,
    "RemoteLock",
    Plain,
    Lock,
    "``shm.RemoteLock(address, key)``: ``multiprocessing.Lock`` on a Redis server (a token with a lease, renewed while held; a dead holder's lease runs out and the next acquire recovers it)."
);
lock_class!(
    PyRemoteRLock,
    "RemoteRLock",
    Re,
    RLock,
    "``shm.RemoteRLock(address, key)``: ``multiprocessing.RLock`` on a Redis server (re-entrant per thread)."
);

/// ``shm.RemoteEvent(address, key)``: ``multiprocessing.Event`` on a Redis server.
#[pyclass(module = "shm", name = "RemoteEvent", frozen)]
pub struct PyRemoteEvent {
    ev: PerProcess<Event>,
    r: Remote,
    key: String,
}

#[pymethods]
impl PyRemoteEvent {
    #[new]
    fn new(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
        let r = open(py, address)?;
        let conn = r.manager.conn().clone();
        let ev = py.detach(|| Event::open(&conn, key)).map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        Ok(PyRemoteEvent {
            ev: PerProcess::new(ev, move || Event::open(open_nogil(&a)?.manager.conn(), &k)),
            r,
            key: key.to_owned(),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let args = PyTuple::new(slf.py(), [me.r.address.as_str(), me.key.as_str()])?;
        Ok((slf.get_type(), args))
    }

    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    fn is_set(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.ev.get()?.is_set()).map_err(remote_err)
    }

    fn set(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.ev.get()?.set()).map_err(remote_err)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.ev.get()?.clear()).map_err(remote_err)
    }

    /// ``wait(timeout=None)``: True once set, False after the timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let ev = self.ev.get().map_err(remote_err)?;
        let got = wait(py, patience(true, timeout)?, move |slice| {
            if slice.is_zero() {
                return ev.is_set().map(|s| s.then_some(()));
            }
            match ev.wait_timeout(slice) {
                Ok(()) => Ok(Some(())),
                Err(shm_remote::Error::Timeout { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        Ok(got.is_some())
    }

    fn __repr__(&self) -> String {
        repr("RemoteEvent", &self.key, &self.r)
    }
}

/// ``shm.RemoteSemaphore(address, key, value=1, bounded=False)``: ``Semaphore`` /
/// ``BoundedSemaphore`` on a Redis server; permits held by a process that dies come
/// back when their lease runs out.
#[pyclass(module = "shm", name = "RemoteSemaphore", frozen)]
pub struct PyRemoteSemaphore {
    s: PerProcess<Semaphore>,
    r: Remote,
    key: String,
    value: u32,
    bounded: bool,
}

#[pymethods]
impl PyRemoteSemaphore {
    #[new]
    #[pyo3(signature = (address, key, value=1, bounded=false))]
    fn new(py: Python<'_>, address: &str, key: &str, value: i64, bounded: bool) -> PyResult<Self> {
        let value = u32::try_from(value).map_err(|_| {
            PyValueError::new_err(format!(
                "semaphore initial value must be >= 0 and < 2**32, found {value}"
            ))
        })?;
        let r = open(py, address)?;
        let conn = r.manager.conn().clone();
        let s = py
            .detach(|| {
                if bounded {
                    Semaphore::open_bounded(&conn, key, value)
                } else {
                    Semaphore::open(&conn, key, value)
                }
            })
            .map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        let s = PerProcess::new(s, move || {
            let r = open_nogil(&a)?;
            if bounded {
                Semaphore::open_bounded(r.manager.conn(), &k, value)
            } else {
                Semaphore::open(r.manager.conn(), &k, value)
            }
        });
        Ok(PyRemoteSemaphore {
            s,
            r,
            key: key.to_owned(),
            value,
            bounded,
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let py = slf.py();
        let args = PyTuple::new(
            py,
            [
                me.r.address.clone().into_pyobject(py)?.into_any(),
                me.key.clone().into_pyobject(py)?.into_any(),
                me.value.into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, me.bounded)
                    .to_owned()
                    .into_any(),
            ],
        )?;
        Ok((slf.get_type(), args))
    }

    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    /// ``acquire(block=True, timeout=None)``: True when a permit was taken.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let s = self.s.get().map_err(remote_err)?;
        let got = wait(py, patience(block, timeout)?, move |slice| {
            let r = if slice.is_zero() {
                s.try_acquire()
            } else {
                s.acquire_timeout(slice)
            };
            match r {
                Ok(_) => Ok(Some(())),
                Err(shm_remote::Error::Timeout { .. }) | Err(shm_remote::Error::Empty { .. }) => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })?;
        Ok(got.is_some())
    }

    /// ``release(n=1)``: ``ValueError`` past a bounded semaphore's bound.
    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        py.detach(|| {
            let s = self.s.get()?;
            (0..n).try_for_each(|_| s.release())
        })
        .map_err(|e| match e {
            shm_remote::Error::Full { .. } => {
                PyValueError::new_err(format!("Semaphore {:?} released too many times", self.key))
            }
            e => remote_err(e),
        })
    }

    /// The free permits now.
    fn get_value(&self, py: Python<'_>) -> PyResult<u32> {
        py.detach(|| self.s.get()?.value()).map_err(remote_err)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(py, 1)
    }

    fn __repr__(&self) -> String {
        repr("RemoteSemaphore", &self.key, &self.r)
    }
}

/// ``shm.RemoteBarrier(address, key, parties, action=None, timeout=None)``:
/// ``multiprocessing.Barrier`` on a Redis server. A party that dies breaks the barrier
/// once its lease runs out. ``wait`` runs whole without the GIL (a slice that timed out
/// would break the barrier): give it a timeout if Ctrl-C must end it.
#[pyclass(module = "shm", name = "RemoteBarrier", frozen)]
pub struct PyRemoteBarrier {
    b: PerProcess<Barrier>,
    r: Remote,
    key: String,
    parties: u32,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
}

fn broken(py: Python<'_>, msg: String) -> PyErr {
    match py
        .import("threading")
        .and_then(|t| t.getattr("BrokenBarrierError"))
        .and_then(|c| c.cast_into::<PyType>().map_err(Into::into))
    {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

fn barrier_err(py: Python<'_>, e: shm_remote::Error) -> PyErr {
    match e {
        shm_remote::Error::Local(ref b)
            if matches!(
                b.downcast_ref::<shm_sync::Error>(),
                Some(shm_sync::Error::BrokenBarrier { .. })
            ) =>
        {
            broken(py, e.to_string())
        }
        shm_remote::Error::Timeout { .. } => broken(py, e.to_string()),
        e => remote_err(e),
    }
}

#[pymethods]
impl PyRemoteBarrier {
    #[new]
    #[pyo3(signature = (address, key, parties, action=None, timeout=None))]
    fn new(
        py: Python<'_>,
        address: &str,
        key: &str,
        parties: i64,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!("parties must be > 0, found {parties}"))
            })?;
        let r = open(py, address)?;
        let conn = r.manager.conn().clone();
        let b = py
            .detach(|| Barrier::open(&conn, key, parties))
            .map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        let b = PerProcess::new(b, move || {
            Barrier::open(open_nogil(&a)?.manager.conn(), &k, parties)
        });
        Ok(PyRemoteBarrier {
            b,
            r,
            key: key.to_owned(),
            parties,
            action,
            timeout,
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let py = slf.py();
        let args = PyTuple::new(
            py,
            [
                me.r.address.clone().into_pyobject(py)?.into_any(),
                me.key.clone().into_pyobject(py)?.into_any(),
                me.parties.into_pyobject(py)?.into_any(),
                me.action
                    .as_ref()
                    .map_or_else(|| py.None().into_bound(py), |a| a.bind(py).clone()),
                me.timeout.into_pyobject(py)?.into_any(),
            ],
        )?;
        Ok((slf.get_type(), args))
    }

    /// ``wait(timeout=None)``: the arrival index (``0..parties``);
    /// ``threading.BrokenBarrierError`` when broken or timed out.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let t = patience(true, timeout.or(self.timeout))?;
        let b = self.b.get().map_err(remote_err)?;
        let w = py
            .detach(|| match t {
                None => b.wait(),
                Some(t) => b.wait_timeout(t),
            })
            .map_err(|e| barrier_err(py, e))?;
        if w.leader
            && let Some(a) = &self.action
            && let Err(e) = a.call0(py)
        {
            let _ = py.detach(|| self.b.get()?.abort());
            return Err(e);
        }
        Ok(w.index)
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.b.get()?.reset()).map_err(remote_err)
    }

    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.b.get()?.abort()).map_err(remote_err)
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.parties
    }

    #[getter]
    fn n_waiting(&self, py: Python<'_>) -> PyResult<u32> {
        py.detach(|| self.b.get()?.n_waiting()).map_err(remote_err)
    }

    #[getter]
    fn broken(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.b.get()?.broken()).map_err(remote_err)
    }

    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    fn __repr__(&self) -> String {
        repr("RemoteBarrier", &self.key, &self.r)
    }
}
