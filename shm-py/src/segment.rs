//! `shm.SharedMemory`: CPython's `multiprocessing.shared_memory.SharedMemory` over
//! `shm_core::Segment`. Names, sizes and bytes are CPython's, so each opens the other's
//! segments. `.buf` is a writable `memoryview` that keeps the mapping alive while any
//! view (a slice, a numpy array) exists, even after `close()`.
//!
//! ```python
//! import shm
//! a = shm.SharedMemory(create=True, size=10)
//! b = shm.SharedMemory(a.name)
//! b.buf[:5] = b"howdy"
//! assert bytes(a.buf[:5]) == b"howdy"
//! b.close(); a.close(); a.unlink()
//! ```
//!
//! ```
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let seg = _shm::segment::SharedMemory::create(py, 16).unwrap();
//!     assert_eq!(seg.size(), 16);
//!     seg.unlink_now().unwrap();
//! });
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shm_core::Segment;

use crate::buffer::{self, Format};
use crate::errors::core_err;

/// Segments created with `track=True` by this process: unlinked at interpreter exit
/// (`shm._shm._cleanup`, registered with `atexit`) unless unlinked before. Keyed by name,
/// valued by the creating PID (a forked child inherits the table but not the duty).
static TRACKED: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

pub(crate) fn track(name: &str) {
    if let Ok(mut t) = TRACKED.lock() {
        t.insert(name.to_owned(), std::process::id());
    }
}

fn untrack(name: &str) {
    if let Ok(mut t) = TRACKED.lock() {
        t.remove(name);
    }
}

/// Unlinks what this process created with `track=True` and did not unlink (atexit).
#[pyfunction]
fn _cleanup() {
    let me = std::process::id();
    let names: Vec<String> = match TRACKED.lock() {
        Ok(mut t) => std::mem::take(&mut *t)
            .into_iter()
            .filter(|(_, pid)| *pid == me)
            .map(|(n, _)| n)
            .collect(),
        Err(_) => return,
    };
    for n in names {
        let _ = shm_core::unlink(&n);
    }
}

/// A named shared memory block (CPython's `SharedMemory`).
#[pyclass(module = "shm", name = "SharedMemory", weakref)]
pub struct SharedMemory {
    seg: Option<Arc<Segment>>,
    buf: Option<Py<PyAny>>,
    name: String,
    size: usize,
}

impl SharedMemory {
    /// Creates a block of `size` bytes under a fresh `psm_` name (tracked).
    pub fn create(py: Python<'_>, size: usize) -> PyResult<Self> {
        let _ = py;
        Self::make(None, true, size, true)
    }

    /// Opens an existing block by name (never tracked: attachers do not unlink).
    pub(crate) fn open(name: &str) -> PyResult<Self> {
        Self::make(Some(name), false, 0, false)
    }

    fn make(name: Option<&str>, create: bool, size: usize, tracked: bool) -> PyResult<Self> {
        let seg = if create {
            if size == 0 {
                return Err(PyValueError::new_err(
                    "'size' must be a positive number different from zero",
                ));
            }
            // CPython's lifetime: the name stays until unlink() (or, tracked, exit).
            let options = shm_core::SegmentOptions::new().unlink_on_drop(false);
            match name {
                Some(n) => options.name(n).create(size),
                None => options.create(size),
            }
        } else {
            let Some(n) = name else {
                return Err(PyValueError::new_err(
                    "'name' can only be None if create=True",
                ));
            };
            Segment::open(n)
        }
        .map_err(core_err)?;
        let name = seg.name().unwrap_or_default().to_owned();
        if create && tracked {
            track(&name);
        }
        Ok(Self {
            size: seg.len(),
            seg: Some(Arc::new(seg)),
            buf: None,
            name,
        })
    }

    /// The block's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Unlinks the name (what `unlink()` does), for Rust callers.
    pub fn unlink_now(&self) -> PyResult<()> {
        untrack(&self.name);
        shm_core::unlink(&self.name).map_err(core_err)
    }

    /// Wraps an already open segment (ShareableList's `.shm`).
    pub(crate) fn from_segment(seg: Arc<Segment>) -> Self {
        Self {
            size: seg.len(),
            name: seg.name().unwrap_or_default().to_owned(),
            seg: Some(seg),
            buf: None,
        }
    }
}

#[pymethods]
impl SharedMemory {
    #[new]
    #[pyo3(signature = (name=None, create=false, size=0, *, track=true))]
    fn new(name: Option<&str>, create: bool, size: isize, track: bool) -> PyResult<Self> {
        if size < 0 {
            return Err(PyValueError::new_err(format!(
                "'size' must be a positive integer, found {size}"
            )));
        }
        Self::make(name, create, size as usize, track)
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Self::open(name)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, "SharedMemory", (self.name.as_str(),))
    }

    /// The block's name, without a leading slash (as CPython shows it).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    #[getter(size)]
    fn py_size(&self) -> usize {
        self.size
    }

    /// A writable memoryview of the block (None after `close()`); it, and any slice or
    /// numpy array made from it, keeps the mapping alive.
    #[getter]
    fn buf(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if let Some(b) = &self.buf {
            return Ok(Some(b.clone_ref(py)));
        }
        let Some(seg) = &self.seg else {
            return Ok(None);
        };
        // SAFETY: the segment maps `len` writable bytes at `as_ptr` until it drops, and
        // the view owns an Arc of it; bytes only (itemsize 1).
        let view = unsafe {
            buffer::memoryview(
                py,
                seg.clone(),
                seg.as_ptr(),
                seg.len(),
                Format::BYTES,
                false,
            )
        }?
        .unbind();
        self.buf = Some(view.clone_ref(py));
        Ok(Some(view))
    }

    /// Lets go of this instance's access; views made before stay valid (they keep the
    /// mapping alive). Idempotent.
    fn close(&mut self) {
        self.buf = None;
        self.seg = None;
    }

    /// Removes the name (once, by any process); the memory lives until the last
    /// mapping goes.
    fn unlink(&self) -> PyResult<()> {
        self.unlink_now()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(&mut self, _a: &Bound<'_, PyAny>, _b: &Bound<'_, PyAny>, _c: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        format!("SharedMemory('{}', size={})", self.name, self.size)
    }
}

/// Adds `SharedMemory` and `_cleanup` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SharedMemory>()?;
    m.add_function(wrap_pyfunction!(_cleanup, m)?)?;
    Ok(())
}
