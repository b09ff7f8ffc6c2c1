//! `RemoteQueue` and `RemoteJoinableQueue`: `shm_remote::queue`'s streams with the
//! methods and exceptions of `multiprocessing.Queue` (`queue.Full`, `queue.Empty`,
//! `ValueError` after `close()`), plus `put_many`/`get_many`. Items are `Dynamic`: a
//! Rust process opens the same queue as `shm_remote::queue::Queue<Dynamic>`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};
use shm_collections::Dynamic;
use shm_remote::queue::{JoinableQueue, Queue, QueueOptions};

use super::{PerProcess, Remote, open, open_nogil, patience, repr, wait};
use crate::codec::{to_dynamic, to_py};
use crate::errmap::{queue_exc, remote_err};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRemoteQueue>()?;
    m.add_class::<PyRemoteJoinableQueue>()?;
    Ok(())
}

type Reduced<'py> = (Bound<'py, PyType>, Bound<'py, PyTuple>);

/// Outcomes of one attempt that mean "not yet".
fn not_yet(e: &shm_remote::Error) -> bool {
    matches!(
        e,
        shm_remote::Error::Timeout { .. }
            | shm_remote::Error::Full { .. }
            | shm_remote::Error::Empty { .. }
    )
}

fn closed(key: &str) -> PyErr {
    PyValueError::new_err(format!("Queue {key:?} is closed"))
}

fn queue_error(e: shm_remote::Error, key: &str) -> PyErr {
    match e {
        shm_remote::Error::Closed { .. } => closed(key),
        e => remote_err(e),
    }
}

macro_rules! queue_class {
    ($ty:ident, $pyname:literal, $q:ident, $doc:literal, { $($extra:tt)* }) => {
        #[doc = $doc]
        #[pyclass(module = "shm", name = $pyname, frozen)]
        pub struct $ty {
            q: PerProcess<$q<Dynamic>>,
            r: Remote,
            key: String,
            maxsize: usize,
            closed: std::sync::atomic::AtomicBool,
        }

        impl $ty {
            fn q(&self) -> PyResult<Arc<$q<Dynamic>>> {
                if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(closed(&self.key));
                }
                self.q.get().map_err(remote_err)
            }

            fn put_one(&self, py: Python<'_>, d: Dynamic, block: bool, timeout: Option<f64>) -> PyResult<()> {
                let q = self.q()?;
                let got = wait(py, patience(block, timeout)?, move |slice| {
                    let r = if slice.is_zero() { q.put_nowait(&d) } else { q.put_timeout(&d, slice) };
                    match r {
                        Ok(()) => Ok(Some(())),
                        Err(e) if not_yet(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .map_err(|e| self.fix(py, e))?;
                got.ok_or_else(|| queue_exc(py, "Full", format!("Queue {:?} is full", self.key)))
            }

            /// A closed queue's error from the server as `ValueError`.
            fn fix(&self, py: Python<'_>, e: PyErr) -> PyErr {
                if e.is_instance_of::<PyValueError>(py) && e.to_string().contains("closed") {
                    closed(&self.key)
                } else {
                    e
                }
            }
        }

        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = (address, key, maxsize=0))]
            fn new(py: Python<'_>, address: &str, key: &str, maxsize: isize) -> PyResult<Self> {
                let r = open(py, address)?;
                let conn = r.manager.conn().clone();
                let opts = QueueOptions {
                    maxsize: usize::try_from(maxsize).unwrap_or(0),
                    ..Default::default()
                };
                let q = py
                    .detach(|| $q::<Dynamic>::open_with(&conn, key, opts))
                    .map_err(remote_err)?;
                let maxsize = q.maxsize();
                let (a, k) = (address.to_owned(), key.to_owned());
                let q = PerProcess::new(q, move || {
                    $q::<Dynamic>::open_with(open_nogil(&a)?.manager.conn(), &k, opts)
                });
                Ok($ty {
                    q,
                    r,
                    key: key.to_owned(),
                    maxsize,
                    closed: Default::default(),
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
                        me.maxsize.into_pyobject(py)?.into_any(),
                    ],
                )?;
                Ok((slf.get_type(), args))
            }

            /// The key.
            #[getter]
            fn name(&self) -> &str {
                &self.key
            }

            /// The bound on messages waiting (0: none).
            #[getter]
            fn maxsize(&self) -> usize {
                self.maxsize
            }

            /// ``put(obj, block=True, timeout=None)``: ``queue.Full`` when no room in time.
            #[pyo3(signature = (obj, block=true, timeout=None))]
            fn put(&self, obj: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
                self.put_one(obj.py(), to_dynamic(obj)?, block, timeout)
            }

            fn put_nowait(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
                self.put_one(obj.py(), to_dynamic(obj)?, false, None)
            }

            /// ``get(block=True, timeout=None)``: ``queue.Empty`` when nothing in time.
            #[pyo3(signature = (block=true, timeout=None))]
            fn get<'py>(&self, py: Python<'py>, block: bool, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
                let q = self.q()?;
                let got = wait(py, patience(block, timeout)?, move |slice| {
                    let r = if slice.is_zero() { q.get_nowait() } else { q.get_timeout(slice) };
                    match r {
                        Ok(v) => Ok(Some(v)),
                        Err(e) if not_yet(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .map_err(|e| self.fix(py, e))?;
                match got {
                    Some(v) => to_py(py, &v),
                    None => Err(queue_exc(py, "Empty", format!("Queue {:?} is empty", self.key))),
                }
            }

            fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.get(py, false, None)
            }

            /// Puts every item (pipelined in one round trip on an unbounded queue).
            #[pyo3(signature = (items, block=true, timeout=None))]
            fn put_many(&self, items: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
                let py = items.py();
                let values = items
                    .try_iter()?
                    .map(|x| to_dynamic(&x?))
                    .collect::<PyResult<Vec<_>>>()?;
                if self.maxsize == 0 {
                    let q = self.q()?;
                    return py.detach(|| q.put_many(&values)).map_err(|e| queue_error(e, &self.key));
                }
                for d in values {
                    self.put_one(py, d, block, timeout)?;
                }
                Ok(())
            }

            /// ``get_many(max=64, block=True, timeout=None)``: 1 to ``max`` items
            /// (``queue.Empty`` when none came in time).
            #[pyo3(signature = (max=64, block=true, timeout=None))]
            fn get_many<'py>(&self, py: Python<'py>, max: usize, block: bool, timeout: Option<f64>) -> PyResult<Bound<'py, PyList>> {
                let q = self.q()?;
                let max = max.max(1);
                let got = wait(py, patience(block, timeout)?, move |slice| {
                    match q.get_many_timeout(max, slice) {
                        Ok(v) if v.is_empty() => Ok(None),
                        Ok(v) => Ok(Some(v)),
                        Err(e) if not_yet(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .map_err(|e| self.fix(py, e))?;
                match got {
                    Some(v) => PyList::new(py, v.iter().map(|d| to_py(py, d)).collect::<PyResult<Vec<_>>>()?),
                    None => Err(queue_exc(py, "Empty", format!("Queue {:?} is empty", self.key))),
                }
            }

            /// Messages waiting (a snapshot).
            fn qsize(&self, py: Python<'_>) -> PyResult<usize> {
                let q = self.q()?;
                py.detach(|| q.qsize()).map_err(remote_err)
            }

            fn empty(&self, py: Python<'_>) -> PyResult<bool> {
                let q = self.q()?;
                py.detach(|| q.empty()).map_err(remote_err)
            }

            fn full(&self, py: Python<'_>) -> PyResult<bool> {
                Ok(self.maxsize > 0 && self.qsize(py)? >= self.maxsize)
            }

            /// This handle puts and gets no more (``ValueError`` after), as
            /// ``multiprocessing.Queue.close``; other handles go on.
            fn close(&self) {
                self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
            }

            fn join_thread(&self) {}

            fn cancel_join_thread(&self) {}

            fn __repr__(&self) -> String {
                repr($pyname, &self.key, &self.r)
            }

            $($extra)*
        }
    };
}

queue_class!(
    PyRemoteQueue,
    "RemoteQueue",
    Queue,
    "``shm.RemoteQueue(address, key, maxsize=0)``: ``multiprocessing.Queue`` on a Redis stream (at most once, like the local queue).",
    {}
);

queue_class!(
    PyRemoteJoinableQueue,
    "RemoteJoinableQueue",
    JoinableQueue,
    "``shm.RemoteJoinableQueue(address, key, maxsize=0)``: ``JoinableQueue`` on a Redis stream: a message stays pending until ``task_done`` (called on the handle that got it); a consumer that dies mid-task has its message delivered again (at least once).",
    {
        /// Acknowledges the oldest message this handle got.
        fn task_done(&self, py: Python<'_>) -> PyResult<()> {
            let q = self.q()?;
            py.detach(|| q.task_done()).map_err(|e| {
                if shm_remote::queue::is_task_done_too_many(&e) {
                    PyValueError::new_err("task_done() called too many times")
                } else {
                    remote_err(e)
                }
            })
        }

        /// Waits until every message put was acknowledged (``timeout``: ``TimeoutError``
        /// after it; an extension of the stdlib's).
        #[pyo3(signature = (timeout=None))]
        fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
            let q = self.q()?;
            let got = wait(py, patience(true, timeout)?, move |slice| {
                let r = if slice.is_zero() {
                    q.unfinished_tasks()
                        .map(|n| if n == 0 { Ok(()) } else { Err(()) })
                } else {
                    match q.join_timeout(slice) {
                        Ok(()) => Ok(Ok(())),
                        Err(shm_remote::Error::Timeout { .. }) => Ok(Err(())),
                        Err(e) => Err(e),
                    }
                };
                r.map(|x| x.ok())
            })?;
            got.ok_or_else(|| {
                pyo3::exceptions::PyTimeoutError::new_err(format!(
                    "JoinableQueue {:?}: unfinished tasks after {:?} s",
                    self.key, timeout
                ))
            })
        }
    }
);
