//! `RemoteDict`, `RemoteList` (cores the Python package subclasses as
//! `MutableMapping` / `MutableSequence`), `RemoteNamespace` and `RemoteValue`: Redis
//! hashes, lists and strings holding `Dynamic` values (typed for `RemoteValue`).

use pyo3::exceptions::{PyAttributeError, PyIndexError, PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};
use shm_collections::Dynamic;
use shm_remote::{Namespace, ShareableDict, ShareableVec, Value};

use super::{PerProcess, Remote, open, open_nogil, repr};
use crate::codec::{to_dynamic, to_py};
use crate::errmap::remote_err;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRemoteDict>()?;
    m.add_class::<PyRemoteList>()?;
    m.add_class::<PyRemoteNamespace>()?;
    m.add_class::<PyRemoteValue>()?;
    Ok(())
}

type Reduced<'py> = (Bound<'py, PyType>, Bound<'py, PyTuple>);

/// A Python key as `Dynamic`; unhashable objects (a list) are refused as `dict`
/// refuses them.
fn key_of(key: &Bound<'_, PyAny>) -> PyResult<Dynamic> {
    if !key.is_exact_instance_of::<pyo3::types::PyInt>()
        && !key.is_exact_instance_of::<pyo3::types::PyString>()
    {
        key.hash()?;
    }
    to_dynamic(key)
}

fn key_error(key: &Bound<'_, PyAny>) -> PyErr {
    PyKeyError::new_err(key.clone().unbind())
}

/// The core of ``shm.RemoteDict`` (a ``MutableMapping`` over a Redis hash):
/// ``RemoteDict(address, key)`` opens (or creates) the dict ``key`` of the namespace at
/// ``address``. Keys and values as ``ShareableDict``'s (a Rust process opens it as
/// ``shm_remote::ShareableDict<Dynamic, Dynamic>``); every call is one round trip;
/// ``setdefault`` and ``update_item`` are atomic across clients (``update_item``'s
/// function may run again when another client wrote the key meanwhile).
#[pyclass(module = "shm", name = "_RemoteDictCore", subclass, frozen)]
pub struct PyRemoteDict {
    d: PerProcess<ShareableDict<Dynamic, Dynamic>>,
    r: Remote,
    key: String,
}

impl PyRemoteDict {
    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<(Dynamic, Dynamic)>> {
        let mut v: Vec<_> = py
            .detach(|| self.d.get()?.iter())
            .map_err(remote_err)?
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }
}

#[pymethods]
impl PyRemoteDict {
    #[new]
    fn new(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
        let r = open(py, address)?;
        let d = py
            .detach(|| ShareableDict::open(&r.manager, key))
            .map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        let d = PerProcess::new(d, move || ShareableDict::open(&open_nogil(&a)?.manager, &k));
        Ok(PyRemoteDict {
            d,
            r,
            key: key.to_owned(),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let args = PyTuple::new(slf.py(), [me.r.address.as_str(), me.key.as_str()])?;
        Ok((slf.get_type(), args))
    }

    /// The key of the dict in its namespace.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    /// The manager's address (with its password, if any: what a peer needs).
    #[getter]
    fn address(&self) -> &str {
        &self.r.address
    }

    fn __getitem__<'py>(&self, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let k = key_of(key)?;
        match key
            .py()
            .detach(|| self.d.get()?.get(&k))
            .map_err(remote_err)?
        {
            Some(v) => to_py(key.py(), &v),
            None => Err(key_error(key)),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (k, v) = (key_of(key)?, to_dynamic(value)?);
        key.py()
            .detach(|| self.d.get()?.insert(k, v))
            .map_err(remote_err)?;
        Ok(())
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_of(key)?;
        match key
            .py()
            .detach(|| self.d.get()?.remove(&k))
            .map_err(remote_err)?
        {
            Some(_) => Ok(()),
            None => Err(key_error(key)),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(k) = key_of(key) else {
            return Ok(false);
        };
        key.py()
            .detach(|| self.d.get()?.contains_key(&k))
            .map_err(remote_err)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.d.get()?.len()).map_err(remote_err)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.into_any().try_iter()?.into_any())
    }

    /// A snapshot of the keys (a list, in key order).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut keys = py.detach(|| self.d.get()?.keys()).map_err(remote_err)?;
        keys.sort();
        let items = keys
            .iter()
            .map(|k| to_py(py, k))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A snapshot of the values (a list, in key order).
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .snapshot(py)?
            .iter()
            .map(|(_, v)| to_py(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A snapshot of the ``(key, value)`` pairs (a list, in key order).
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .snapshot(py)?
            .iter()
            .map(|(k, v)| PyTuple::new(py, [to_py(py, k)?, to_py(py, v)?]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// ``d.get(key, default=None)``.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let k = key_of(key)?;
        match py.detach(|| self.d.get()?.get(&k)).map_err(remote_err)? {
            Some(v) => to_py(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// ``d.pop(key[, default])``: removes atomically and returns the value.
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let k = key_of(key)?;
        match py.detach(|| self.d.get()?.remove(&k)).map_err(remote_err)? {
            Some(v) => to_py(py, &v),
            None if !default.is_empty() => default.get_item(0),
            None => Err(key_error(key)),
        }
    }

    /// ``d.setdefault(key, default=None)``: atomic (one value wins across clients).
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let k = key_of(key)?;
        let dv = match default {
            Some(d) => to_dynamic(&d)?,
            None => Dynamic::None,
        };
        let v = py
            .detach(|| self.d.get()?.get_or_insert_with(k, || dv))
            .map_err(remote_err)?;
        to_py(py, &v)
    }

    /// Removes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.d.get()?.clear()).map_err(remote_err)
    }

    /// Inserts every ``(key, value)`` pair of the list in one atomic write.
    fn _extend(&self, pairs: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut conv = Vec::new();
        for p in pairs.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = p?.extract()?;
            conv.push((key_of(&k)?, to_dynamic(&v)?));
        }
        pairs
            .py()
            .detach(|| self.d.get()?.extend(conv))
            .map_err(remote_err)
    }

    /// A plain ``dict`` snapshot.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let out = pyo3::types::PyDict::new(py);
        for (k, v) in self.snapshot(py)? {
            out.set_item(to_py(py, &k)?, to_py(py, &v)?)?;
        }
        Ok(out)
    }

    /// ``d.update_item(key, fn, default=None)``: atomically replaces the value of
    /// ``key`` by ``fn(old)`` (``fn(default)`` when absent) and returns it. ``fn`` may
    /// run more than once (again when another client wrote the key in between); if it
    /// raises on a retry, the value stays as the other client left it.
    #[pyo3(signature = (key, func, default=None))]
    fn update_item<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        func: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let k = key_of(key)?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        // The first round in Python, outside the transaction: an exception there
        // changes nothing.
        let old = py.detach(|| self.d.get()?.get(&k)).map_err(remote_err)?;
        let arg = match &old {
            Some(v) => to_py(py, v)?,
            None => default.clone(),
        };
        let first = to_dynamic(&func.call1((arg,))?)?;
        let (func, default) = (func.clone().unbind(), default.unbind());
        let mut failed: Option<PyErr> = None;
        let new = py
            .detach(|| {
                self.d.get()?.update(k, |cur| {
                    if cur == old {
                        return first.clone();
                    }
                    // Another client wrote the key: run `func` again on its value.
                    Python::attach(|py| {
                        let arg = match &cur {
                            Some(v) => to_py(py, v),
                            None => Ok(default.bind(py).clone()),
                        };
                        match arg
                            .and_then(|a| func.bind(py).call1((a,)))
                            .and_then(|r| to_dynamic(&r))
                        {
                            Ok(v) => v,
                            Err(e) => {
                                failed = Some(e);
                                cur.clone().unwrap_or(Dynamic::None)
                            }
                        }
                    })
                })
            })
            .map_err(remote_err)?;
        if let Some(e) = failed {
            return Err(e);
        }
        to_py(py, &new)
    }

    fn __repr__(&self) -> String {
        repr("RemoteDict", &self.key, &self.r)
    }
}

/// The core of ``shm.RemoteList`` (a ``MutableSequence`` over a Redis list):
/// ``RemoteList(address, key)``. ``append``/``pop()``/``extend``/``clear`` and
/// single-item reads, writes, inserts and deletes are atomic; ``sort``, ``reverse``
/// and slice assignment are read-modify-write from the client (not atomic).
#[pyclass(module = "shm", name = "_RemoteListCore", subclass, frozen)]
pub struct PyRemoteList {
    v: PerProcess<ShareableVec<Dynamic>>,
    r: Remote,
    key: String,
}

impl PyRemoteList {
    /// A Python index (negative from the end) as a position `< len`.
    fn index(&self, py: Python<'_>, i: isize) -> PyResult<usize> {
        let j = if i < 0 {
            let len = py.detach(|| self.v.get()?.len()).map_err(remote_err)?;
            i + len as isize
        } else {
            i
        };
        usize::try_from(j)
            .map_err(|_| PyIndexError::new_err(format!("RemoteList index {i} out of range")))
    }
}

#[pymethods]
impl PyRemoteList {
    #[new]
    fn new(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
        let r = open(py, address)?;
        let v = py
            .detach(|| ShareableVec::open(&r.manager, key))
            .map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        let v = PerProcess::new(v, move || ShareableVec::open(&open_nogil(&a)?.manager, &k));
        Ok(PyRemoteList {
            v,
            r,
            key: key.to_owned(),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let args = PyTuple::new(slf.py(), [me.r.address.as_str(), me.key.as_str()])?;
        Ok((slf.get_type(), args))
    }

    /// The key of the list in its namespace.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    /// The manager's address (with its password, if any).
    #[getter]
    fn address(&self) -> &str {
        &self.r.address
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.v.get()?.len()).map_err(remote_err)
    }

    /// The item at ``i`` (negative from the end): ``IndexError`` past the end.
    fn _get<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Bound<'py, PyAny>> {
        let j = self.index(py, i)?;
        match py.detach(|| self.v.get()?.get(j)).map_err(remote_err)? {
            Some(v) => to_py(py, &v),
            None => Err(PyIndexError::new_err(format!(
                "RemoteList index {i} out of range"
            ))),
        }
    }

    /// Replaces the item at ``i``.
    fn _set(&self, i: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let j = self.index(py, i)?;
        let d = to_dynamic(value)?;
        py.detach(|| self.v.get()?.set(j, d)).map_err(remote_err)?;
        Ok(())
    }

    /// Removes the item at ``i`` and returns it.
    #[pyo3(signature = (index=-1))]
    fn pop<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let v = if index == -1 {
            py.detach(|| self.v.get()?.pop())
                .map_err(remote_err)?
                .ok_or_else(|| PyIndexError::new_err("pop from empty RemoteList"))?
        } else {
            let j = self.index(py, index)?;
            py.detach(|| self.v.get()?.remove(j)).map_err(remote_err)?
        };
        to_py(py, &v)
    }

    /// Inserts ``value`` before ``index`` (clamped as ``list.insert`` does).
    fn insert(&self, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let d = to_dynamic(value)?;
        py.detach(|| {
            let len = self.v.get()?.len()?;
            let j = if index < 0 {
                (len as isize + index).max(0) as usize
            } else {
                (index as usize).min(len)
            };
            self.v.get()?.insert(j, d)
        })
        .map_err(remote_err)
    }

    /// Appends ``value``.
    fn append(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        value
            .py()
            .detach(|| self.v.get()?.push(d))
            .map_err(remote_err)
    }

    /// Appends every value (one atomic write).
    fn extend(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = values
            .try_iter()?
            .map(|x| to_dynamic(&x?))
            .collect::<PyResult<Vec<_>>>()?;
        values
            .py()
            .detach(|| self.v.get()?.extend(items))
            .map_err(remote_err)
    }

    /// Removes every item.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.v.get()?.clear()).map_err(remote_err)
    }

    /// A plain ``list`` snapshot.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Dynamic> = py
            .detach(|| self.v.get()?.iter())
            .map_err(remote_err)?
            .collect();
        let items = items
            .iter()
            .map(|d| to_py(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.copy(py)?.into_any().try_iter()?.into_any())
    }

    fn __repr__(&self) -> String {
        repr("RemoteList", &self.key, &self.r)
    }
}

/// ``shm.RemoteNamespace(address, key)``: attributes in a Redis hash
/// (``Manager().Namespace()`` across machines): ``ns.count = 5`` in one process,
/// ``ns.count`` in another.
#[pyclass(module = "shm", name = "RemoteNamespace", frozen)]
pub struct PyRemoteNamespace {
    ns: PerProcess<Namespace>,
    r: Remote,
    key: String,
}

const NS_OWN: [&str; 2] = ["_name", "_address"];

#[pymethods]
impl PyRemoteNamespace {
    #[new]
    fn new(py: Python<'_>, address: &str, key: &str) -> PyResult<Self> {
        let r = open(py, address)?;
        let ns = py
            .detach(|| Namespace::open(&r.manager, key))
            .map_err(remote_err)?;
        let (a, k) = (address.to_owned(), key.to_owned());
        let ns = PerProcess::new(ns, move || Namespace::open(&open_nogil(&a)?.manager, &k));
        Ok(PyRemoteNamespace {
            ns,
            r,
            key: key.to_owned(),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let args = PyTuple::new(slf.py(), [me.r.address.as_str(), me.key.as_str()])?;
        Ok((slf.get_type(), args))
    }

    /// The key of the namespace object.
    #[getter]
    fn _name(&self) -> &str {
        &self.key
    }

    /// The manager's address.
    #[getter]
    fn _address(&self) -> &str {
        &self.r.address
    }

    fn __getattr__<'py>(&self, py: Python<'py>, attr: &str) -> PyResult<Bound<'py, PyAny>> {
        if attr.starts_with("__") {
            return Err(PyAttributeError::new_err(attr.to_owned()));
        }
        match py
            .detach(|| self.ns.get()?.get::<Dynamic>(attr))
            .map_err(remote_err)?
        {
            Some(v) => to_py(py, &v),
            None => Err(PyAttributeError::new_err(format!(
                "'RemoteNamespace' object has no attribute '{attr}'"
            ))),
        }
    }

    fn __setattr__(&self, attr: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if NS_OWN.contains(&attr) {
            return Err(PyAttributeError::new_err(format!("{attr} is read-only")));
        }
        let d = to_dynamic(value)?;
        value
            .py()
            .detach(|| self.ns.get()?.set(attr, &d))
            .map_err(remote_err)
    }

    fn __delattr__(&self, py: Python<'_>, attr: &str) -> PyResult<()> {
        if py
            .detach(|| self.ns.get()?.remove(attr))
            .map_err(remote_err)?
        {
            Ok(())
        } else {
            Err(PyAttributeError::new_err(attr.to_owned()))
        }
    }

    fn __dir__(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.ns.get()?.attrs()).map_err(remote_err)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut attrs = py.detach(|| self.ns.get()?.attrs()).map_err(remote_err)?;
        attrs.sort();
        let mut parts = Vec::new();
        for a in attrs {
            if let Some(v) = py
                .detach(|| self.ns.get()?.get::<Dynamic>(&a))
                .map_err(remote_err)?
            {
                parts.push(format!("{a}={}", to_py(py, &v)?.repr()?));
            }
        }
        Ok(format!("RemoteNamespace({})", parts.join(", ")))
    }
}

/// The value types of `RemoteValue`, by ctypes typecode.
macro_rules! value_kinds {
    ($($code:literal => $v:ident($t:ty)),* $(,)?) => {
        enum AnyValue { $($v(Value<$t>)),* }

        impl AnyValue {
            fn open(r: &Remote, key: &str, code: &str, init: &Bound<'_, PyAny>) -> PyResult<AnyValue> {
                let py = init.py();
                match code {
                    $($code => {
                        let v: $t = if init.is_none() { Default::default() } else { init.extract()? };
                        Ok(AnyValue::$v(py.detach(|| Value::open(&r.manager, key, v)).map_err(remote_err)?))
                    })*
                    _ => Err(PyTypeError::new_err(format!(
                        "RemoteValue: expected a typecode of {:?}, found {code:?}",
                        [$($code),*]
                    ))),
                }
            }

            /// Opens it again (a forked child): it exists, so `init` is not used.
            fn reopen(r: &Remote, key: &str, code: &str) -> shm_remote::Result<AnyValue> {
                match code {
                    $($code => Ok(AnyValue::$v(Value::open(&r.manager, key, <$t>::default())?)),)*
                    _ => Err(shm_remote::Error::NotFound { name: format!("typecode {code:?}") }),
                }
            }

            fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                match self {
                    $(AnyValue::$v(v) => Ok(py.detach(|| v.get()).map_err(remote_err)?.into_pyobject(py)?.to_owned().into_any()),)*
                }
            }

            fn set(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
                let py = x.py();
                match self {
                    $(AnyValue::$v(v) => {
                        let x: $t = x.extract()?;
                        py.detach(|| v.set(x)).map_err(remote_err)
                    })*
                }
            }
        }
    };
}

value_kinds!(
    "b" => I8(i8), "B" => U8(u8), "h" => I16(i16), "H" => U16(u16), "i" => I32(i32),
    "I" => U32(u32), "l" => I64(i64), "L" => U64(u64), "q" => Q64(i64), "Q" => UQ64(u64),
    "f" => F32(f32), "d" => F64(f64), "?" => Bool(bool),
);

/// ``shm.RemoteValue(address, key, typecode, value=None)``: one number in a Redis
/// string (``Value(typecode, v)`` across machines), a Rust ``shm_remote::Value<T>`` of
/// the typecode's type (``'q'``: ``i64``). ``.value`` reads and writes; for a
/// read-modify-write, hold ``get_lock()`` (an ``RemoteRLock`` keyed ``<key>.lock``) or
/// use ``with v:``, as with ``multiprocessing.Value``.
#[pyclass(module = "shm", name = "RemoteValue", frozen)]
pub struct PyRemoteValue {
    v: PerProcess<AnyValue>,
    r: Remote,
    key: String,
    code: String,
    lock: Py<super::sync::PyRemoteRLock>,
}

/// The typecode of a ctypes type or a typecode string.
fn typecode(t: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = t.extract::<String>() {
        return Ok(s);
    }
    t.getattr("_type_")
        .and_then(|c| c.extract::<String>())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "RemoteValue: expected a typecode or a ctypes type, found {}",
                t.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })
}

#[pymethods]
impl PyRemoteValue {
    #[new]
    #[pyo3(signature = (address, key, typecode_or_type, value=None))]
    fn new(
        py: Python<'_>,
        address: &str,
        key: &str,
        typecode_or_type: &Bound<'_, PyAny>,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let r = open(py, address)?;
        let code = typecode(typecode_or_type)?;
        let init = value.unwrap_or_else(|| py.None().into_bound(py));
        let v = AnyValue::open(&r, key, &code, &init)?;
        let (a, k, c) = (address.to_owned(), key.to_owned(), code.clone());
        let v = PerProcess::new(v, move || AnyValue::reopen(&open_nogil(&a)?, &k, &c));
        let lock = Py::new(
            py,
            super::sync::PyRemoteRLock::open(py, address, &format!("{key}.lock"))?,
        )?;
        Ok(PyRemoteValue {
            v,
            r,
            key: key.to_owned(),
            code,
            lock,
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let me = slf.get();
        let args = PyTuple::new(
            slf.py(),
            [me.r.address.as_str(), me.key.as_str(), me.code.as_str()],
        )?;
        Ok((slf.get_type(), args))
    }

    /// The value (one round trip).
    #[getter]
    fn get_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.v.get().map_err(remote_err)?.get(py)
    }

    #[setter]
    fn set_value(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.v.get().map_err(remote_err)?.set(x)
    }

    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.key
    }

    /// The typecode.
    #[getter]
    fn typecode(&self) -> &str {
        &self.code
    }

    /// The lock guarding read-modify-writes (``with v.get_lock(): v.value += 1``).
    fn get_lock(&self, py: Python<'_>) -> Py<super::sync::PyRemoteRLock> {
        self.lock.clone_ref(py)
    }

    /// The value itself (``multiprocessing``'s synchronized wrapper has one).
    fn get_obj(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.lock.bind(py).get().acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.lock.bind(py).get().release()
    }

    fn __repr__(&self) -> String {
        repr("RemoteValue", &self.key, &self.r)
    }
}
