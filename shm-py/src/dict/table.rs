//! The typed dict table: the fixed instantiations of `ShareableDict<K, V>` a Python
//! `ShareableDict` can be, behind one object-safe trait ([`DictOps`]).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shm_collections::{DictKey, Dynamic, ShareableDict};

use crate::codec::PyCodec;
use crate::errmap::region_err;
use crate::errors;

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
pub(super) trait DictOps: Send + Sync {
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
pub(super) enum How<'a> {
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
pub(super) fn dispatch(k: &str, v: &str, how: &How<'_>) -> Option<PyResult<Box<dyn DictOps>>> {
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

pub(super) const KEY_TYPES: [&str; 5] = ["str", "i64", "u64", "bytes", "object"];
pub(super) const VALUE_TYPES: [&str; 7] = ["i64", "u64", "f64", "bool", "str", "bytes", "object"];

fn build<K: PyKey, V: PyCodec>(how: &How<'_>) -> PyResult<Box<dyn DictOps>> {
    let d = match how {
        How::Create { name: None } => ShareableDict::<K, V>::create(),
        How::Create { name: Some(n) } => ShareableDict::<K, V>::create_named(n),
        How::Open { name } => ShareableDict::<K, V>::open(name),
        How::Manager { m, key } => {
            return Ok(Box::new(Typed {
                d: m.dict::<K, V>(key).map_err(crate::errmap::manager_err)?,
            }));
        }
    }
    .map_err(region_err)?;
    Ok(Box::new(Typed { d }))
}

/// The table entry whose header type tag is `tag`.
pub(super) fn entry_of_tag(tag: u64) -> Option<(&'static str, &'static str)> {
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

pub(super) fn open_dict(name: &str) -> PyResult<Box<dyn DictOps>> {
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
pub(super) fn pairs_of<'py>(
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
