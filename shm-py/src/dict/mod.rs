//! `shm.ShareableDict` (a `collections.abc.MutableMapping`), `shm.ShareableVec` (a
//! `MutableSequence`) and `shm.Namespace` (attribute access): shm-collections' growable
//! collections from Python, without a manager process.
//!
//! A `ShareableDict()` stores [`Dynamic`](shm_collections::Dynamic) keys and values (see [`codec`](crate::codec));
//! `ShareableDict(types=(str, int))` is a `ShareableDict<String, i64>` that a Rust
//! process opens with those types. Opening by name reads the header's type tag and picks
//! the matching instantiation of the fixed table (keys `str`/`i64`/`u64`/`bytes`/`object`,
//! values `i64`/`u64`/`f64`/`bool`/`str`/`bytes`/`object`).
//!
//! Semantics Python users should know (the docstrings say them too):
//! - keys compare by their encoding: `1`, `1.0` and `True` are three keys;
//! - iteration, `keys()`, `items()` and `repr` come in key order (ints and floats
//!   numerically, strings lexicographically; mixed types by type), not insertion order;
//! - reads take no lock and never see a torn value; writes take a robust lock (the GIL
//!   is released while waiting for it); `update_item`, `increment` and `setdefault` are
//!   atomic across processes.
//!
//! ```
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let m = pyo3::types::PyModule::new(py, "t").unwrap();
//!     _shm::dict::register(&m).unwrap();
//!     assert!(m.getattr("ShareableDict").is_ok());
//! });
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::codec::type_name_of;

mod namespace;
mod table;
mod vec;

use crate::errmap::closed_err;
pub use crate::errmap::region_err;
pub use namespace::PyNamespace;
pub use table::PyKey;
use table::{DictOps, How, KEY_TYPES, VALUE_TYPES, dispatch, entry_of_tag, open_dict, pairs_of};
pub use vec::PyShareableVec;

/// Registers `ShareableDict`, `ShareableVec` and `Namespace`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShareableDict>()?;
    m.add_class::<PyShareableVec>()?;
    m.add_class::<PyNamespace>()?;
    Ok(())
}

/// A dict in shared memory that processes (Python or Rust) share by name; no manager
/// process, nothing lost when one is killed.
///
/// ``ShareableDict(data=None, *, name=None, create=None, types=None, track=True)``:
/// without ``name`` it creates a dict under a fresh name with ``data``'s items; with
/// ``name`` alone it opens (attaches to) that dict, whatever its types; ``name`` with
/// ``data`` or ``create=True`` creates under that name (``FileExistsError`` if taken).
/// ``types=(str, int)`` makes a typed dict (a Rust ``ShareableDict<String, i64>``); the
/// default stores any value (pickling what is not None/bool/int/float/str/bytes/tuple/
/// list/dict). The creator removes the name when the object is garbage collected
/// (``track=False``: never; ``unlink()``: now).
///
/// Keys compare by value *and type* (``1``, ``1.0`` and ``True`` are three keys).
/// Iteration and ``repr`` are in key order. ``update_item(key, fn, default)``,
/// ``increment(key, delta)`` and ``setdefault`` are atomic across processes.
#[pyclass(module = "shm", name = "ShareableDict", frozen, mapping)]
pub struct PyShareableDict {
    inner: Box<dyn DictOps>,
    closed: AtomicBool,
}

impl PyShareableDict {
    fn ops(&self) -> PyResult<&dyn DictOps> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(closed_err("ShareableDict"));
        }
        Ok(&*self.inner)
    }

    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.ops()?.items(py)? {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
}

impl PyShareableDict {
    /// The dict registered under `key` in `m` (created empty with `types` if absent).
    pub fn from_manager(
        m: &shm_manager::SharedMemoryManager,
        key: &str,
        types: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // Without types, an existing dict is taken with whatever types it has.
        let existing = match types {
            None => m
                .entry(key)
                .map_err(crate::errmap::manager_err)?
                .filter(|e| e.kind == shm_collections::kinds::DICT.id())
                .and_then(|e| entry_of_tag(e.type_tag)),
            Some(_) => None,
        };
        let (k, v) = match existing {
            Some(kv) => kv,
            None => types_of(types)?,
        };
        let inner = dispatch(k, v, &How::Manager { m, key }).ok_or_else(|| bad_types(k, v))??;
        Ok(PyShareableDict {
            inner,
            closed: AtomicBool::new(false),
        })
    }

    /// Sets every pair of `data` (a mapping or pairs).
    pub fn fill(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.ops()?.extend(&pairs_of(data)?)
    }
}

fn types_of(types: Option<&Bound<'_, PyAny>>) -> PyResult<(&'static str, &'static str)> {
    match types {
        None => Ok(("object", "object")),
        Some(t) => {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = t.extract().map_err(|_| {
                PyTypeError::new_err("types: expected a (key type, value type) pair")
            })?;
            Ok((type_name_of(&k)?, type_name_of(&v)?))
        }
    }
}

fn bad_types(k: &str, v: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "types: a ShareableDict has keys of {KEY_TYPES:?} and values of {VALUE_TYPES:?}, found ({k}, {v})"
    ))
}

#[pymethods]
impl PyShareableDict {
    #[new]
    #[pyo3(signature = (data=None, *, name=None, create=None, types=None, track=true))]
    fn new(
        data: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
        create: Option<bool>,
        types: Option<&Bound<'_, PyAny>>,
        track: bool,
    ) -> PyResult<Self> {
        let creating = create.unwrap_or(name.is_none() || data.is_some());
        let mut inner = if creating {
            let (k, v) = types_of(types)?;
            let made = dispatch(k, v, &How::Create { name }).ok_or_else(|| bad_types(k, v))??;
            if let Some(data) = data {
                made.extend(&pairs_of(data)?)?;
            }
            made
        } else {
            let name = name.ok_or_else(|| PyValueError::new_err("create=False needs a name"))?;
            let opened = open_dict(name)?;
            if types.is_some() {
                let want = types_of(types)?;
                if want != opened.types() {
                    return Err(PyTypeError::new_err(format!(
                        "ShareableDict {name:?}: expected types {want:?}, found {:?}",
                        opened.types()
                    )));
                }
            }
            opened
        };
        if creating && !track {
            inner.set_track(false);
        }
        Ok(PyShareableDict {
            inner,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens the dict a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(PyShareableDict {
            inner: open_dict(name)?,
            closed: AtomicBool::new(false),
        })
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let name = self.name()?;
        crate::handle::reduce(py, "ShareableDict", (name,))
    }

    /// The name other processes open the dict by.
    #[getter]
    fn name(&self) -> PyResult<String> {
        self.ops()?
            .name()
            .ok_or_else(|| PyValueError::new_err("this ShareableDict has no name"))
    }

    /// ``(key type, value type)`` as the table names them (``("object", "object")`` for a
    /// dict of any values).
    #[getter]
    fn types(&self) -> PyResult<(&'static str, &'static str)> {
        Ok(self.ops()?.types())
    }

    /// The object itself, so that ``d.shm.close()`` and ``d.shm.unlink()`` read as for a
    /// ``ShareableList``.
    #[getter]
    fn shm(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Stops using the dict from this object (later calls raise ValueError).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Removes the dict's names now; processes that have it open keep using it.
    fn unlink(&self) -> PyResult<()> {
        self.inner.unlink()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) {
        self.close();
    }

    fn __getitem__<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.ops()?.get(key)? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.ops()?.set(key, value)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.ops()?.discard(key)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self.ops()?.contains(key) {
            Err(e) if e.is_instance_of::<PyTypeError>(key.py()) => Ok(false),
            r => r,
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        self.ops()?.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.ops()?.keys(py)?)?
            .try_iter()
            .map(Bound::into_any)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.as_dict(py)?.repr()?.to_string())
    }

    fn __eq__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mine = self.as_dict(py)?;
        if let Ok(o) = other.cast::<PyShareableDict>() {
            return Ok(mine
                .eq(o.get().as_dict(py)?)?
                .into_pyobject(py)?
                .to_owned()
                .into_any());
        }
        if other.is_instance_of::<PyDict>() || other.hasattr("keys")? {
            let theirs = PyDict::new(py);
            for (k, v) in pairs_of(other)? {
                theirs.set_item(k, v)?;
            }
            return Ok(mine.eq(theirs)?.into_pyobject(py)?.to_owned().into_any());
        }
        Ok(py.NotImplemented().into_bound(py))
    }

    /// The value of ``key``, or ``default``.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.ops()?.get(key)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// Keys in key order (a list: a snapshot).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.ops()?.keys(py)?)
    }

    /// Values in key order (a list: a snapshot).
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.ops()?.values(py)?)
    }

    /// ``(key, value)`` pairs in key order (a list: one consistent snapshot).
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .ops()?
            .items(py)?
            .into_iter()
            .map(|(k, v)| PyTuple::new(py, [k, v]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A plain ``dict`` copy.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.as_dict(py)
    }

    /// Removes ``key`` and returns its value; ``default`` (or KeyError) if absent.
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.ops()?.pop(key)? {
            Some(v) => Ok(v),
            None if !default.is_empty() => default.get_item(0),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes and returns the pair with the largest key (KeyError when empty).
    fn popitem<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        loop {
            let keys = self.ops()?.keys(py)?;
            let Some(k) = keys.last() else {
                return Err(PyKeyError::new_err("popitem(): dictionary is empty"));
            };
            if let Some(v) = self.ops()?.pop(k)? {
                return PyTuple::new(py, [k.clone(), v]);
            }
        }
    }

    /// Sets every pair of ``other`` (a mapping or pairs) and ``kwargs`` under one lock.
    #[pyo3(signature = (other=None, **kwargs))]
    fn update(
        &self,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let mut pairs = match other {
            Some(o) => pairs_of(o)?,
            None => Vec::new(),
        };
        if let Some(kw) = kwargs {
            pairs.extend(kw.iter());
        }
        self.ops()?.extend(&pairs)
    }

    /// Removes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.ops()?.clear(py)
    }

    /// The value of ``key``; if absent, ``default`` is inserted first (atomically).
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        self.ops()?.setdefault(key, &default)
    }

    /// Atomically replaces the value of ``key`` by ``fn(old)`` (``old`` is ``default``
    /// when the key is absent) and returns the new value. ``fn`` runs without any lock
    /// and may run again if another process changed the value meanwhile (keep it free of
    /// side effects); no update is ever lost.
    #[pyo3(signature = (key, r#fn, default=None))]
    fn update_item<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        r#fn: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let ops = self.ops()?;
        loop {
            if let Some(v) = ops.update_round(key, &default, &mut |old| r#fn.call1((old,)))? {
                return Ok(v);
            }
            py.check_signals()?;
        }
    }

    /// Atomically adds ``delta`` to the value of ``key`` (``default`` when absent) and
    /// returns the sum: a counter several processes increment without losing a count.
    #[pyo3(signature = (key, delta=None, default=None))]
    fn increment<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        delta: Option<Bound<'py, PyAny>>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let delta = match delta {
            Some(d) => d,
            None => 1i64.into_pyobject(py)?.into_any(),
        };
        let default = match default {
            Some(d) => d,
            None => 0i64.into_pyobject(py)?.into_any(),
        };
        let ops = self.ops()?;
        loop {
            if let Some(v) = ops.update_round(key, &default, &mut |old| old.add(&delta))? {
                return Ok(v);
            }
            py.check_signals()?;
        }
    }
}
