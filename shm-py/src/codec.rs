//! Python objects to [`Dynamic`] values and back, with direct type checks (no serde
//! through Python: that measured 4 us per small dict), plus the typed codecs of the
//! fixed table that `ShareableDict(types=(str, int))` picks from.
//!
//! Exact types only: `None`, `bool`, `int` within 64 bits, `float`, `str`, `bytes`,
//! `tuple`, `list`, `dict` become the matching variant; anything else (a subclass such
//! as a namedtuple or an IntEnum, a `bytearray`, an int beyond 64 bits, a set, an
//! instance of a class...) is pickled into [`Dynamic::Pickled`], so it comes back as
//! itself in Python and Rust processes can only carry it. Containers nested deeper than
//! the codec's depth limit (and containers that hold themselves) are pickled whole.
//!
//! ```
//! use pyo3::prelude::*;
//! use shm_collections::Dynamic;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let obj = py.eval(c"(1, 'a', [2.5, None])", None, None).unwrap();
//!     let d = _shm::codec::to_dynamic(&obj).unwrap();
//!     assert_eq!(d.to_string(), "(1, 'a', [2.5, None])");
//!     let back = _shm::codec::to_py(py, &d).unwrap();
//!     assert!(back.eq(&obj).unwrap());
//! });
//! ```

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::Dynamic;
use shm_collections::dynamic::MAX_DEPTH;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pickle_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    Ok(cell
        .get_or_try_init(py, || py.import("pickle")?.getattr(name).map(Bound::unbind))?
        .bind(py))
}

/// `pickle.dumps(obj, protocol=5)`.
fn pickle(obj: &Bound<'_, PyAny>) -> PyResult<Dynamic> {
    let dumps = pickle_fn(obj.py(), &DUMPS, "dumps")?;
    let b = dumps.call1((obj, 5))?;
    Ok(Dynamic::Pickled(b.cast::<PyBytes>()?.as_bytes().to_vec()))
}

/// The `Dynamic` of a Python object (see the module docs for which objects are pickled).
pub fn to_dynamic(obj: &Bound<'_, PyAny>) -> PyResult<Dynamic> {
    match convert(obj, 0) {
        Ok(d) => Ok(d),
        // Too deep, or a container that holds itself: the whole object is pickled (pickle
        // keeps shared and cyclic references, which a partial conversion would not).
        Err(e) if e.is_instance_of::<TooDeep>(obj.py()) => pickle(obj),
        Err(e) => Err(e),
    }
}

pyo3::create_exception!(
    shm,
    TooDeep,
    pyo3::exceptions::PyException,
    "internal: nesting over the limit"
);

fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Dynamic> {
    // The common scalars first, by exact type (a pointer compare each).
    if obj.is_exact_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(Dynamic::Int(i)),
            Err(_) => pickle(obj), // beyond 64 bits
        };
    }
    if obj.is_exact_instance_of::<PyString>() {
        // (`to_str` needs abi3-py310; `to_cow` copies through a UTF-8 bytes object.)
        return Ok(Dynamic::Str(obj.cast::<PyString>()?.to_cow()?.into_owned()));
    }
    if obj.is_none() {
        return Ok(Dynamic::None);
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Dynamic::Float(obj.cast::<PyFloat>()?.value()));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Dynamic::Bool(obj.is_truthy()?));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        return Ok(Dynamic::Bytes(obj.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    let container = obj.is_exact_instance_of::<PyTuple>()
        || obj.is_exact_instance_of::<PyList>()
        || obj.is_exact_instance_of::<PyDict>();
    if !container {
        return pickle(obj);
    }
    if depth >= MAX_DEPTH {
        return Err(TooDeep::new_err(()));
    }
    let d = depth + 1;
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let mut v = Vec::with_capacity(t.len());
        for x in t.iter() {
            v.push(convert(&x, d)?);
        }
        return Ok(Dynamic::Tuple(v));
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        let mut v = Vec::with_capacity(l.len());
        for x in l.iter() {
            v.push(convert(&x, d)?);
        }
        return Ok(Dynamic::List(v));
    }
    let m = obj.cast_exact::<PyDict>()?;
    let mut v = Vec::with_capacity(m.len());
    for (k, x) in m.iter() {
        v.push((convert(&k, d)?, convert(&x, d)?));
    }
    Ok(Dynamic::Dict(v))
}

/// The Python object of a `Dynamic` (a `Pickled` one is unpickled).
pub fn to_py<'py>(py: Python<'py>, d: &Dynamic) -> PyResult<Bound<'py, PyAny>> {
    Ok(match d {
        Dynamic::None => py.None().into_bound(py),
        Dynamic::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Dynamic::Int(i) => i.into_pyobject(py)?.into_any(),
        Dynamic::Float(f) => PyFloat::new(py, *f).into_any(),
        Dynamic::Str(s) => PyString::new(py, s).into_any(),
        Dynamic::Bytes(b) => PyBytes::new(py, b).into_any(),
        Dynamic::Tuple(v) => {
            let items = v
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any()
        }
        Dynamic::List(v) => {
            let items = v
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Dynamic::Dict(p) => {
            let m = PyDict::new(py);
            for (k, v) in p {
                m.set_item(to_py(py, k)?, to_py(py, v)?)?;
            }
            m.into_any()
        }
        Dynamic::Pickled(b) => {
            let loads = pickle_fn(py, &LOADS, "loads")?;
            loads.call1((PyBytes::new(py, b),))?
        }
    })
}

/// A Rust type of the fixed table (`ShareableDict(types=...)`) with its conversions.
pub trait PyCodec: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    /// The name `types=` accepts (and error messages use): `str`, `i64`, ...
    const NAME: &'static str;
    /// Converts a Python object, or a `TypeError` naming what was expected and found.
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self>;
    /// The Python object.
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

fn wrong_type(expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let found = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("expected {expected}, found {found}"))
}

impl PyCodec for Dynamic {
    const NAME: &'static str = "object";
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        to_dynamic(obj)
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self)
    }
}

impl PyCodec for String {
    const NAME: &'static str = "str";
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        match obj.cast::<PyString>() {
            Ok(s) => Ok(s.to_cow()?.into_owned()),
            Err(_) => Err(wrong_type("str", obj)),
        }
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, self).into_any())
    }
}

impl PyCodec for Vec<u8> {
    const NAME: &'static str = "bytes";
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        match obj.cast::<PyBytes>() {
            Ok(b) => Ok(b.as_bytes().to_vec()),
            Err(_) => Err(wrong_type("bytes", obj)),
        }
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyBytes::new(py, self).into_any())
    }
}

macro_rules! int_codec {
    ($t:ty, $name:literal) => {
        impl PyCodec for $t {
            const NAME: &'static str = $name;
            fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
                if !obj.is_instance_of::<PyInt>() {
                    return Err(wrong_type(concat!("int (", $name, ")"), obj));
                }
                obj.extract::<$t>().map_err(|_| {
                    pyo3::exceptions::PyOverflowError::new_err(format!(
                        "expected an int in the range of {}, found {}",
                        $name,
                        obj.str().map(|s| s.to_string()).unwrap_or_default()
                    ))
                })
            }
            fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                Ok(self.into_pyobject(py)?.into_any())
            }
        }
    };
}
int_codec!(i64, "i64");
int_codec!(u64, "u64");

impl PyCodec for f64 {
    const NAME: &'static str = "f64";
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>() {
            obj.extract::<f64>()
        } else {
            Err(wrong_type("float", obj))
        }
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyFloat::new(py, *self).into_any())
    }
}

impl PyCodec for bool {
    const NAME: &'static str = "bool";
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        match obj.cast::<PyBool>() {
            Ok(b) => Ok(b.is_true()),
            Err(_) => Err(wrong_type("bool", obj)),
        }
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyBool::new(py, *self).to_owned().into_any())
    }
}

/// The table's name of a `types=` entry: a Python type (`str`, `int`, `float`, `bool`,
/// `bytes`, `object`) or one of the names `"str"`, `"i64"`, `"u64"`, `"f64"`, `"bool"`,
/// `"bytes"`, `"object"`.
pub fn type_name_of(spec: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    const NAMES: [&str; 7] = ["str", "i64", "u64", "f64", "bool", "bytes", "object"];
    if let Ok(s) = spec.extract::<String>() {
        let s = match s.as_str() {
            "int" => "i64",
            "float" => "f64",
            "dynamic" | "any" => "object",
            other => other,
        };
        return NAMES.iter().copied().find(|n| *n == s).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "types: expected one of {NAMES:?} or a Python type, found {s:?}"
            ))
        });
    }
    let py = spec.py();
    let t = |name: &str| -> PyResult<bool> { Ok(spec.is(py.import("builtins")?.getattr(name)?)) };
    for (py_name, name) in [
        ("str", "str"),
        ("int", "i64"),
        ("float", "f64"),
        ("bool", "bool"),
        ("bytes", "bytes"),
        ("object", "object"),
    ] {
        if t(py_name)? {
            return Ok(name);
        }
    }
    if spec.is_none() {
        return Ok("object");
    }
    Err(PyTypeError::new_err(format!(
        "types: expected str, int, float, bool, bytes, object or a name of {NAMES:?}, found {}",
        spec.repr().map(|r| r.to_string()).unwrap_or_default()
    )))
}
