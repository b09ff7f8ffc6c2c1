//! `shm.ShareableDict` (a `collections.abc.MutableMapping`), `shm.ShareableVec` (a
//! `MutableSequence`) and `shm.Namespace` (attribute access): shm-collections' growable
//! collections from Python, without a manager process.
//!
//! A `ShareableDict()` stores [`Dynamic`] keys and values (see [`codec`](crate::codec));
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

use pyo3::exceptions::{PyAttributeError, PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice, PyTuple};
use shm_collections::{DictKey, Dynamic, Namespace, RegionError, ShareableDict, ShareableVec};

use crate::codec::{PyCodec, to_dynamic, to_py, type_name_of};
use crate::errors;

/// Registers `ShareableDict`, `ShareableVec` and `Namespace`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShareableDict>()?;
    m.add_class::<PyShareableVec>()?;
    m.add_class::<PyNamespace>()?;
    Ok(())
}

/// Maps a growable collection's error onto the exception Python users expect.
pub fn region_err(e: RegionError) -> PyErr {
    let msg = e.to_string();
    match e {
        RegionError::Shm(e) => errors::core_err(e),
        RegionError::KeyTooLarge { .. } | RegionError::ValueTooLarge { .. } => {
            PyValueError::new_err(msg)
        }
        RegionError::Encode { .. } | RegionError::Decode { .. } => PyValueError::new_err(msg),
        RegionError::IndexOutOfRange { .. } => PyIndexError::new_err(msg),
        RegionError::TypeMismatch { .. } => PyTypeError::new_err(msg),
        RegionError::Lock { ref source, .. } if matches!(source, shm_sync::RawError::Timeout) => {
            pyo3::exceptions::PyTimeoutError::new_err(msg)
        }
        RegionError::Lock { ref source, .. }
            if matches!(source, shm_sync::RawError::WouldDeadlock) =>
        {
            pyo3::exceptions::PyRuntimeError::new_err(msg)
        }
        _ => errors::other_err(msg),
    }
}

fn closed_err(what: &str) -> PyErr {
    PyValueError::new_err(format!("{what} is closed"))
}

/// A key type of the table: a codec whose values order (for iteration).
pub trait PyKey: PyCodec + DictKey + Ord + Clone {
    /// The order iteration and `repr` show keys in.
    fn display_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp(other)
    }
}
impl PyKey for String {}
impl PyKey for i64 {}
impl PyKey for u64 {}
impl PyKey for Vec<u8> {}

/// Python's order where Python has one: numbers (bool, int, float) by value, then
/// strings, bytes, tuples, lists, dicts, pickled objects, each among themselves; `None`
/// first. (The `Ord` of `Dynamic` orders by variant first: it must agree with equality.)
impl PyKey for Dynamic {
    fn display_cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering as O;
        fn class(d: &Dynamic) -> u8 {
            match d {
                Dynamic::None => 0,
                Dynamic::Bool(_) | Dynamic::Int(_) | Dynamic::Float(_) => 1,
                Dynamic::Str(_) => 2,
                Dynamic::Bytes(_) => 3,
                Dynamic::Tuple(_) => 4,
                Dynamic::List(_) => 5,
                Dynamic::Dict(_) => 6,
                Dynamic::Pickled(_) => 7,
            }
        }
        fn num(d: &Dynamic) -> f64 {
            match d {
                Dynamic::Bool(b) => f64::from(u8::from(*b)),
                Dynamic::Int(i) => *i as f64,
                Dynamic::Float(f) => *f,
                _ => 0.0,
            }
        }
        match class(self).cmp(&class(other)) {
            O::Equal if class(self) == 1 => {
                let by_value = match (self, other) {
                    (Dynamic::Int(a), Dynamic::Int(b)) => a.cmp(b),
                    _ => num(self).total_cmp(&num(other)),
                };
                by_value.then_with(|| self.cmp(other))
            }
            O::Equal => self.cmp(other),
            o => o,
        }
    }
}

/// The Python-facing operations of one `ShareableDict<K, V>` instantiation.
trait DictOps: Send + Sync {
    fn types(&self) -> (&'static str, &'static str);
    fn name(&self) -> Option<String>;
    fn unlink(&self) -> PyResult<()>;
    fn set_track(&mut self, yes: bool);
    fn get<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>>;
    fn set(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()>;
    fn discard(&self, key: &Bound<'_, PyAny>) -> PyResult<bool>;
    fn pop<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>>;
    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool>;
    fn len(&self) -> PyResult<usize>;
    /// Every pair, in key order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>>;
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>>;
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>>;
    fn extend(&self, pairs: &[(Bound<'_, PyAny>, Bound<'_, PyAny>)]) -> PyResult<()>;
    fn clear(&self, py: Python<'_>) -> PyResult<()>;
    /// `setdefault`: the stored value, `default` inserted first if absent.
    fn setdefault<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>>;
    /// One optimistic round of a read-modify-write: `f(old or default)` computed
    /// without the lock, stored if the value is still `old`; `None` on a conflict.
    fn update_round<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
        f: &mut dyn FnMut(Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>>;
}

struct Typed<K: PyKey, V: PyCodec> {
    d: ShareableDict<K, V>,
}

/// A Python key as `K`: a `KeyError`-free conversion, but unhashable Python objects
/// (a list) are refused as `dict` refuses them.
fn key_of<K: PyKey>(key: &Bound<'_, PyAny>) -> PyResult<K> {
    let k = K::from_py(key)?;
    if std::any::TypeId::of::<K>() == std::any::TypeId::of::<Dynamic>()
        && !key.is_exact_instance_of::<pyo3::types::PyInt>()
        && !key.is_exact_instance_of::<pyo3::types::PyString>()
    {
        key.hash()?;
    }
    Ok(k)
}

impl<K: PyKey, V: PyCodec> DictOps for Typed<K, V> {
    fn types(&self) -> (&'static str, &'static str) {
        (K::NAME, V::NAME)
    }
    fn name(&self) -> Option<String> {
        self.d.name().map(str::to_owned)
    }
    fn unlink(&self) -> PyResult<()> {
        self.d.unlink().map_err(region_err)
    }
    fn set_track(&mut self, yes: bool) {
        self.d.set_unlink_on_drop(yes);
    }
    fn get<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let k = key_of::<K>(key)?;
        match self.d.get(&k).map_err(region_err)? {
            Some(v) => Ok(Some(v.to_py(key.py())?)),
            None => Ok(None),
        }
    }
    fn set(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_of::<K>(key)?;
        let v = V::from_py(value)?;
        let d = &self.d;
        // Uncontended (the common case): no GIL release. Else wait without the GIL, so
        // that a thread of ours holding the writer lock can finish.
        if d.try_set(&k, &v).map_err(region_err)?.is_none() {
            key.py().detach(|| d.set(&k, &v)).map_err(region_err)?;
        }
        Ok(())
    }
    fn discard(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_of::<K>(key)?;
        let d = &self.d;
        key.py().detach(|| d.discard(&k)).map_err(region_err)
    }
    fn pop<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let k = key_of::<K>(key)?;
        let d = &self.d;
        match key.py().detach(|| d.remove(&k)).map_err(region_err)? {
            Some(v) => Ok(Some(v.to_py(key.py())?)),
            None => Ok(None),
        }
    }
    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_of::<K>(key)?;
        self.d.contains_key(&k).map_err(region_err)
    }
    fn len(&self) -> PyResult<usize> {
        self.d.len().map_err(region_err)
    }
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let d = &self.d;
        let mut pairs: Vec<(K, V)> = py.detach(|| d.iter()).map_err(region_err)?.collect();
        pairs.sort_by(|a, b| a.0.display_cmp(&b.0));
        pairs
            .iter()
            .map(|(k, v)| Ok((k.to_py(py)?, v.to_py(py)?)))
            .collect()
    }
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let d = &self.d;
        let mut keys = py.detach(|| d.keys()).map_err(region_err)?;
        keys.sort_by(K::display_cmp);
        keys.iter().map(|k| k.to_py(py)).collect()
    }
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        Ok(self.items(py)?.into_iter().map(|(_, v)| v).collect())
    }
    fn extend(&self, pairs: &[(Bound<'_, PyAny>, Bound<'_, PyAny>)]) -> PyResult<()> {
        let Some((first, _)) = pairs.first() else {
            return Ok(());
        };
        let conv = pairs
            .iter()
            .map(|(k, v)| Ok((key_of::<K>(k)?, V::from_py(v)?)))
            .collect::<PyResult<Vec<(K, V)>>>()?;
        let d = &self.d;
        first.py().detach(|| d.extend(conv)).map_err(region_err)
    }
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let d = &self.d;
        py.detach(|| d.clear()).map_err(region_err)
    }
    fn setdefault<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = key_of::<K>(key)?;
        if let Some(v) = self.d.get(&k).map_err(region_err)? {
            return v.to_py(key.py());
        }
        let v = V::from_py(default)?;
        let d = &self.d;
        let stored = key
            .py()
            .detach(|| d.get_or_insert_with(k, || v))
            .map_err(region_err)?;
        stored.to_py(key.py())
    }
    fn update_round<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
        f: &mut dyn FnMut(Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = key.py();
        let k = key_of::<K>(key)?;
        let old = self.d.get(&k).map_err(region_err)?;
        let old_py = match &old {
            Some(v) => v.to_py(py)?,
            None => default.clone(),
        };
        let new_py = f(old_py)?;
        let new = V::from_py(&new_py)?;
        let d = &self.d;
        let done = py
            .detach(|| d.compare_and_set(&k, old.as_ref(), Some(&new)))
            .map_err(region_err)?;
        Ok(done.then_some(new_py))
    }
}

/// How a table entry is reached.
enum How<'a> {
    Create {
        name: Option<&'a str>,
    },
    Open {
        name: &'a str,
    },
    /// Get or create under a key of a manager.
    Manager {
        m: &'a shm_manager::SharedMemoryManager,
        key: &'a str,
    },
}

/// Calls `build::<K, V>` for the table entry named `(k, v)`; `None` if there is none.
fn dispatch(k: &str, v: &str, how: &How<'_>) -> Option<PyResult<Box<dyn DictOps>>> {
    fn values<K: PyKey>(v: &str, how: &How<'_>) -> Option<PyResult<Box<dyn DictOps>>> {
        Some(match v {
            "i64" => build::<K, i64>(how),
            "u64" => build::<K, u64>(how),
            "f64" => build::<K, f64>(how),
            "bool" => build::<K, bool>(how),
            "str" => build::<K, String>(how),
            "bytes" => build::<K, Vec<u8>>(how),
            "object" => build::<K, Dynamic>(how),
            _ => return None,
        })
    }
    match k {
        "str" => values::<String>(v, how),
        "i64" => values::<i64>(v, how),
        "u64" => values::<u64>(v, how),
        "bytes" => values::<Vec<u8>>(v, how),
        "object" => values::<Dynamic>(v, how),
        _ => None,
    }
}

const KEY_TYPES: [&str; 5] = ["str", "i64", "u64", "bytes", "object"];
const VALUE_TYPES: [&str; 7] = ["i64", "u64", "f64", "bool", "str", "bytes", "object"];

fn build<K: PyKey, V: PyCodec>(how: &How<'_>) -> PyResult<Box<dyn DictOps>> {
    let d = match how {
        How::Create { name: None } => ShareableDict::<K, V>::create(),
        How::Create { name: Some(n) } => ShareableDict::<K, V>::create_named(n),
        How::Open { name } => ShareableDict::<K, V>::open(name),
        How::Manager { m, key } => {
            return Ok(Box::new(Typed {
                d: m.dict::<K, V>(key).map_err(crate::manager::manager_err)?,
            }));
        }
    }
    .map_err(region_err)?;
    Ok(Box::new(Typed { d }))
}

/// The table entry whose header type tag is `tag`.
fn entry_of_tag(tag: u64) -> Option<(&'static str, &'static str)> {
    fn tag_of<K: PyKey, V: PyCodec>() -> u64 {
        ShareableDict::<K, V>::header_type_tag()
    }
    fn values<K: PyKey>(v: &str) -> u64 {
        match v {
            "i64" => tag_of::<K, i64>(),
            "u64" => tag_of::<K, u64>(),
            "f64" => tag_of::<K, f64>(),
            "bool" => tag_of::<K, bool>(),
            "str" => tag_of::<K, String>(),
            "bytes" => tag_of::<K, Vec<u8>>(),
            _ => tag_of::<K, Dynamic>(),
        }
    }
    for k in KEY_TYPES {
        for v in VALUE_TYPES {
            let t = match k {
                "str" => values::<String>(v),
                "i64" => values::<i64>(v),
                "u64" => values::<u64>(v),
                "bytes" => values::<Vec<u8>>(v),
                _ => values::<Dynamic>(v),
            };
            if t == tag {
                return Some((k, v));
            }
        }
    }
    None
}

fn open_dict(name: &str) -> PyResult<Box<dyn DictOps>> {
    let info = shm_core::Object::inspect(name).map_err(errors::core_err)?;
    if info.kind != shm_collections::kinds::DICT.id() {
        return Err(PyTypeError::new_err(format!(
            "{name:?}: expected a ShareableDict, found a {}",
            info.kind_name
        )));
    }
    let (k, v) = entry_of_tag(info.type_tag).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "ShareableDict {name:?} holds {}, which is not one of the key types {KEY_TYPES:?} \
             with one of the value types {VALUE_TYPES:?} that Python opens",
            info.type_name
        ))
    })?;
    dispatch(k, v, &How::Open { name }).expect("a table entry")
}

/// Key/value pairs of `data`: a mapping (anything with `keys()`) or an iterable of pairs.
fn pairs_of<'py>(
    data: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(d) = data.cast_exact::<PyDict>() {
        return Ok(d.iter().collect());
    }
    let mut out = Vec::new();
    if data.hasattr("keys")? {
        for k in data.call_method0("keys")?.try_iter()? {
            let k = k?;
            let v = data.get_item(&k)?;
            out.push((k, v));
        }
    } else {
        for p in data.try_iter()? {
            let p = p?;
            let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = p.extract().map_err(|_| {
                PyTypeError::new_err("expected a mapping or an iterable of (key, value) pairs")
            })?;
            out.push((k, v));
        }
    }
    Ok(out)
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
                .map_err(crate::manager::manager_err)?
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

/// A list in shared memory (a ``collections.abc.MutableSequence``) that processes share
/// by name: ``ShareableVec(data=None, *, name=None, create=None, track=True)``, opened and
/// created like ``ShareableDict``. Elements are any values (see ``ShareableDict``).
/// Single-element operations and ``reverse``/slice assignment are atomic; ``sort`` reads,
/// sorts in Python and writes the result back in one atomic edit.
#[pyclass(module = "shm", name = "ShareableVec", frozen, sequence)]
pub struct PyShareableVec {
    v: ShareableVec<Dynamic>,
    closed: AtomicBool,
}

impl PyShareableVec {
    fn vec(&self) -> PyResult<&ShareableVec<Dynamic>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(closed_err("ShareableVec"));
        }
        Ok(&self.v)
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<Dynamic>> {
        let v = self.vec()?;
        Ok(py.detach(|| v.iter()).map_err(region_err)?.collect())
    }

    fn as_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .snapshot(py)?
            .iter()
            .map(|d| to_py(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A Python index (negative from the end) as a position `< len`.
    fn index(&self, i: isize, len: usize) -> PyResult<usize> {
        let j = if i < 0 { i + len as isize } else { i };
        if j < 0 || j as usize >= len {
            return Err(PyIndexError::new_err(format!(
                "ShareableVec index {i} out of range for length {len}"
            )));
        }
        Ok(j as usize)
    }

    fn edit<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Vec<Dynamic>) -> R + Send,
    ) -> PyResult<R> {
        let v = self.vec()?;
        py.detach(|| v.edit(f)).map_err(region_err)
    }
}

impl PyShareableVec {
    /// Wraps a vec made in Rust (by a manager).
    pub fn from_vec(v: ShareableVec<Dynamic>) -> Self {
        PyShareableVec {
            v,
            closed: AtomicBool::new(false),
        }
    }
}

fn convert_all(items: &Bound<'_, PyAny>) -> PyResult<Vec<Dynamic>> {
    items
        .try_iter()?
        .map(|x| to_dynamic(&x?))
        .collect::<PyResult<Vec<_>>>()
}

#[pymethods]
impl PyShareableVec {
    #[new]
    #[pyo3(signature = (data=None, *, name=None, create=None, track=true))]
    fn new(
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
        create: Option<bool>,
        track: bool,
    ) -> PyResult<Self> {
        let creating = create.unwrap_or(name.is_none() || data.is_some());
        let v = if creating {
            let mut v = match name {
                None => ShareableVec::<Dynamic>::create(),
                Some(n) => ShareableVec::<Dynamic>::create_named(n),
            }
            .map_err(region_err)?;
            if !track {
                v.set_unlink_on_drop(false);
            }
            if let Some(data) = data {
                let items = convert_all(data)?;
                py.detach(|| v.extend(items)).map_err(region_err)?;
            }
            v
        } else {
            let name = name.ok_or_else(|| PyValueError::new_err("create=False needs a name"))?;
            ShareableVec::<Dynamic>::open(name).map_err(region_err)?
        };
        Ok(PyShareableVec {
            v,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens the vec a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(PyShareableVec {
            v: ShareableVec::<Dynamic>::open(name).map_err(region_err)?,
            closed: AtomicBool::new(false),
        })
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, "ShareableVec", (self.name()?,))
    }

    /// The name other processes open the vec by.
    #[getter]
    fn name(&self) -> PyResult<String> {
        self.vec()?
            .name()
            .map(str::to_owned)
            .ok_or_else(|| PyValueError::new_err("this ShareableVec has no name"))
    }

    /// The object itself (``v.shm.close()``, ``v.shm.unlink()``).
    #[getter]
    fn shm(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Stops using the vec from this object (later calls raise ValueError).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Removes the vec's names now; processes that have it open keep using it.
    fn unlink(&self) -> PyResult<()> {
        self.v.unlink().map_err(region_err)
    }

    fn __len__(&self) -> PyResult<usize> {
        self.vec()?.len().map_err(region_err)
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(s) = index.cast::<PySlice>() {
            return self.as_list(py)?.as_any().get_item(s);
        }
        let i: isize = index.extract()?;
        let v = self.vec()?;
        let len = v.len().map_err(region_err)?;
        let j = self.index(i, len)?;
        match v.get(j).map_err(region_err)? {
            Some(d) => to_py(py, &d),
            None => Err(PyIndexError::new_err(format!(
                "ShareableVec index {i} out of range"
            ))),
        }
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(s) = index.cast::<PySlice>() {
            // Slice assignment with Python's rules on a list copy, written back in one edit
            // if nobody changed the vec meanwhile.
            let new = convert_all(value)?;
            return self.splice(py, s, Some(new));
        }
        let i: isize = index.extract()?;
        let d = to_dynamic(value)?;
        let r = self.edit(py, move |items| {
            let len = items.len() as isize;
            let j = if i < 0 { i + len } else { i };
            if j < 0 || j >= len {
                return Err(len);
            }
            items[j as usize] = d;
            Ok(())
        })?;
        r.map_err(|len| {
            PyIndexError::new_err(format!(
                "ShareableVec assignment index {i} out of range for length {len}"
            ))
        })
    }

    fn __delitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = index.cast::<PySlice>() {
            return self.splice(py, s, None);
        }
        let i: isize = index.extract()?;
        self.pop(py, i).map(drop)
    }

    fn __contains__(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.as_list(py)?.contains(value)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_list(py)?.try_iter().map(Bound::into_any)
    }

    fn __reversed__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.as_list(py)?;
        l.reverse()?;
        l.try_iter().map(Bound::into_any)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.as_list(py)?.repr()?.to_string())
    }

    fn __eq__<'py>(&self, py: Python<'py>, other: &Bound<'py, PyAny>) -> PyResult<bool> {
        let mine = self.as_list(py)?;
        if let Ok(o) = other.cast::<PyShareableVec>() {
            return mine.eq(o.get().as_list(py)?);
        }
        if other.is_instance_of::<PyList>() || other.is_instance_of::<PyTuple>() {
            return mine.eq(PyList::new(
                py,
                other.try_iter()?.collect::<PyResult<Vec<_>>>()?,
            )?);
        }
        Ok(false)
    }

    fn __iadd__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.extend(py, other)
    }

    /// Appends ``value``.
    fn append(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        let v = self.vec()?;
        py.detach(|| v.push(d)).map_err(region_err)
    }

    /// Appends every item of ``values`` under one lock.
    fn extend(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = convert_all(values)?;
        let v = self.vec()?;
        py.detach(|| v.extend(items)).map_err(region_err)
    }

    /// Inserts ``value`` before ``index`` (clamped as ``list.insert`` does).
    fn insert(&self, py: Python<'_>, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        self.edit(py, move |items| {
            let len = items.len() as isize;
            let j = if index < 0 {
                (index + len).max(0)
            } else {
                index.min(len)
            };
            items.insert(j as usize, d);
        })
    }

    /// Removes and returns the item at ``index`` (the last by default).
    #[pyo3(signature = (index=-1))]
    fn pop<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let v = self.vec()?;
        let r = if index == -1 {
            py.detach(|| v.pop()).map_err(region_err)?.ok_or(0)
        } else {
            self.edit(py, move |items| {
                let len = items.len() as isize;
                let j = if index < 0 { index + len } else { index };
                if j < 0 || j >= len {
                    return Err(len);
                }
                Ok(items.remove(j as usize))
            })?
            .map_err(|l| l as usize)
        };
        match r {
            Ok(d) => to_py(py, &d),
            Err(0) => Err(PyIndexError::new_err("pop from empty ShareableVec")),
            Err(len) => Err(PyIndexError::new_err(format!(
                "ShareableVec pop index {index} out of range for length {len}"
            ))),
        }
    }

    /// Removes the first item equal to ``value`` (ValueError if none).
    fn remove(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.index_of(py, value)?;
        let d = to_dynamic(value)?;
        // Remove by value inside the edit: right even if the vec moved meanwhile.
        let found = self.edit(py, move |items| match items.iter().position(|x| *x == d) {
            Some(j) => {
                items.remove(j);
                true
            }
            None => false,
        })?;
        if found {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "ShareableVec.remove(x): x not in list (was at {i})"
            )))
        }
    }

    /// The position of the first item equal to ``value`` (ValueError if none).
    #[pyo3(name = "index")]
    fn index_of(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.as_list(py)?.index(value)
    }

    /// How many items equal ``value``.
    fn count(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        let l = self.as_list(py)?;
        let mut n = 0;
        for x in l.iter() {
            if x.eq(value)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Reverses the items in place (one atomic edit).
    fn reverse(&self, py: Python<'_>) -> PyResult<()> {
        self.edit(py, |items| items.reverse())
    }

    /// Sorts in Python (``key``, ``reverse`` as ``list.sort``) and writes the result back
    /// atomically if no other process changed the vec meanwhile (else sorts again).
    #[pyo3(signature = (*, key=None, reverse=false))]
    fn sort(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>, reverse: bool) -> PyResult<()> {
        loop {
            let before = self.snapshot(py)?;
            let l = PyList::new(
                py,
                before
                    .iter()
                    .map(|d| to_py(py, d))
                    .collect::<PyResult<Vec<_>>>()?,
            )?;
            let kw = PyDict::new(py);
            kw.set_item("key", key)?;
            kw.set_item("reverse", reverse)?;
            l.call_method("sort", (), Some(&kw))?;
            let sorted = convert_all(&l)?;
            let done = self.edit(py, move |items| {
                if *items == before {
                    *items = sorted;
                    true
                } else {
                    false
                }
            })?;
            if done {
                return Ok(());
            }
            py.check_signals()?;
        }
    }

    /// Removes every item.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let v = self.vec()?;
        py.detach(|| v.clear()).map_err(region_err)
    }

    /// A plain ``list`` copy.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.as_list(py)
    }
}

impl PyShareableVec {
    /// Slice assignment (`new`) or deletion (`None`) with Python's rules, in one edit.
    fn splice(
        &self,
        py: Python<'_>,
        s: &Bound<'_, PySlice>,
        new: Option<Vec<Dynamic>>,
    ) -> PyResult<()> {
        loop {
            let before = self.snapshot(py)?;
            let len = before.len();
            let ind = s.indices(len as isize)?;
            let (start, stop, step) = (ind.start, ind.stop, ind.step);
            let picked: Vec<usize> = if step > 0 {
                (start..stop.max(start))
                    .step_by(step as usize)
                    .map(|i| i as usize)
                    .collect()
            } else {
                let mut v = Vec::new();
                let mut i = start;
                while i > stop {
                    v.push(i as usize);
                    i += step;
                }
                v
            };
            let mut after = before.clone();
            match &new {
                None => {
                    let mut sorted = picked.clone();
                    sorted.sort_unstable();
                    for i in sorted.into_iter().rev() {
                        after.remove(i);
                    }
                }
                Some(items) if step == 1 => {
                    let hi = (stop.max(start)) as usize;
                    after.splice(start as usize..hi, items.iter().cloned());
                }
                Some(items) => {
                    if items.len() != picked.len() {
                        return Err(PyValueError::new_err(format!(
                            "attempt to assign sequence of size {} to extended slice of size {}",
                            items.len(),
                            picked.len()
                        )));
                    }
                    for (i, x) in picked.iter().zip(items) {
                        after[*i] = x.clone();
                    }
                }
            }
            let done = self.edit(py, move |items| {
                if *items == before {
                    *items = after;
                    true
                } else {
                    false
                }
            })?;
            if done {
                return Ok(());
            }
            py.check_signals()?;
        }
    }
}

/// Attributes in shared memory that processes share by name (``Manager().Namespace()``
/// without the manager): ``ns.count = 5`` in one process, ``ns.count`` in another.
/// ``Namespace(*, name=None, create=None, track=True, **attrs)``.
#[pyclass(module = "shm", name = "Namespace", frozen)]
pub struct PyNamespace {
    ns: Namespace,
}

const NS_OWN: [&str; 3] = ["_name", "_unlink", "_from_handle"];

#[pymethods]
impl PyNamespace {
    #[new]
    #[pyo3(signature = (*, name=None, create=None, track=true, **attrs))]
    fn new(
        name: Option<&str>,
        create: Option<bool>,
        track: bool,
        attrs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let creating = create.unwrap_or(name.is_none() || attrs.is_some_and(|a| !a.is_empty()));
        let ns = if creating {
            let mut ns = match name {
                None => Namespace::create(),
                Some(n) => Namespace::create_named(n),
            }
            .map_err(region_err)?;
            if !track {
                shm_core::SharedObject::set_unlink_on_drop(&mut ns, false);
            }
            ns
        } else {
            let name = name.ok_or_else(|| PyValueError::new_err("create=False needs a name"))?;
            Namespace::open(name).map_err(region_err)?
        };
        let me = PyNamespace { ns };
        if let Some(attrs) = attrs {
            for (k, v) in attrs.iter() {
                me.set(&k.extract::<String>()?, &v)?;
            }
        }
        Ok(me)
    }

    /// Opens the namespace a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(PyNamespace {
            ns: Namespace::open(name).map_err(region_err)?,
        })
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, "Namespace", (self._name()?,))
    }

    /// The name other processes open the namespace by (underscored: ``name`` is an
    /// attribute like any other).
    #[getter]
    fn _name(&self) -> PyResult<String> {
        self.ns
            .name()
            .map(str::to_owned)
            .ok_or_else(|| PyValueError::new_err("this Namespace has no name"))
    }

    /// Removes the namespace's names now; processes that have it open keep using it.
    fn _unlink(&self) -> PyResult<()> {
        self.ns.unlink().map_err(region_err)
    }

    fn __getattr__<'py>(&self, py: Python<'py>, attr: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.ns.get::<Dynamic>(attr).map_err(region_err)? {
            Some(d) => to_py(py, &d),
            None => Err(PyAttributeError::new_err(format!(
                "'Namespace' object has no attribute '{attr}'"
            ))),
        }
    }

    fn __setattr__(&self, attr: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if NS_OWN.contains(&attr) {
            return Err(PyAttributeError::new_err(format!(
                "'{attr}' is a method or property of Namespace, not an attribute it stores"
            )));
        }
        self.set(attr, value)
    }

    fn __delattr__(&self, py: Python<'_>, attr: &str) -> PyResult<()> {
        let ns = &self.ns;
        if py.detach(|| ns.remove(attr)).map_err(region_err)? {
            Ok(())
        } else {
            Err(PyAttributeError::new_err(format!(
                "'Namespace' object has no attribute '{attr}'"
            )))
        }
    }

    fn __dir__(&self) -> PyResult<Vec<String>> {
        let mut a = self.ns.attrs().map_err(region_err)?;
        a.sort();
        Ok(a)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut attrs = self.ns.attrs().map_err(region_err)?;
        attrs.sort();
        let mut parts = Vec::new();
        for a in attrs {
            if let Some(d) = self.ns.get::<Dynamic>(&a).map_err(region_err)? {
                parts.push(format!("{a}={}", to_py(py, &d)?.repr()?));
            }
        }
        Ok(format!("Namespace({})", parts.join(", ")))
    }
}

impl PyNamespace {
    /// Wraps a namespace made in Rust (by a manager).
    pub fn from_ns(ns: Namespace) -> Self {
        PyNamespace { ns }
    }

    fn set(&self, attr: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        let ns = &self.ns;
        value.py().detach(|| ns.set(attr, &d)).map_err(region_err)
    }
}
