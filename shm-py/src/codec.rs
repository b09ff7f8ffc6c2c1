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

// ---------------------------------------------------------------------------------------
// Python objects straight to the wire bytes of `Dynamic` and back (the queue's hot path).
//
// The bytes are exactly `shm_collections::codec::encode(&to_dynamic(obj))` (bincode 2,
// standard configuration: varints, zigzag for signed, little-endian floats), so Rust
// processes read them as `Dynamic` or typed serde values; but no `Dynamic` tree, no
// `String`/`Vec` per item in between. Decoding takes any frame the `Dynamic` decoder
// accepts; whatever this decoder does not take (hostile or unusual bytes) goes through
// `decode::<Dynamic>` + `to_py`, which gives the same objects or the same error.

use pyo3::ffi;

unsafe extern "C" {
    // In CPython's C API since 3.3, in the limited API only from 3.10: called through
    // its exported symbol, which every CPython 3.9+ has (abi3-py39 wheel).
    fn PyUnicode_AsUTF8AndSize(o: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const u8;
}

const V_NONE: u8 = 0;
const V_BOOL: u8 = 1;
const V_INT: u8 = 2;
const V_FLOAT: u8 = 3;
const V_STR: u8 = 4;
const V_BYTES: u8 = 5;
const V_TUPLE: u8 = 6;
const V_LIST: u8 = 7;
const V_DICT: u8 = 8;
const V_PICKLED: u8 = 9;

#[inline]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends the wire bytes of `to_dynamic(obj)` to `out`: the same bytes as
/// `shm_collections::codec::encode(&to_dynamic(obj)?)`, without building the `Dynamic`.
///
/// ```
/// use pyo3::prelude::*;
/// use shm_collections::{Dynamic, codec};
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let obj = py.eval(c"(1, 2.5, 'x', [None, b'y'], {'k': True})", None, None).unwrap();
///     let mut fast = Vec::new();
///     _shm::codec::encode_py(&obj, &mut fast).unwrap();
///     let mut slow = Vec::new();
///     codec::encode(&_shm::codec::to_dynamic(&obj).unwrap(), &mut slow).unwrap();
///     assert_eq!(fast, slow);
/// });
/// ```
pub fn encode_py(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let start = out.len();
    match encode_at(obj, 0, out) {
        Ok(()) => Ok(()),
        // As `to_dynamic`: too deep or cyclic, the whole object is pickled.
        Err(e) if e.is_instance_of::<TooDeep>(obj.py()) => {
            out.truncate(start);
            let Dynamic::Pickled(b) = pickle(obj)? else {
                unreachable!("pickle gives Pickled")
            };
            put_bytes(out, V_PICKLED, &b);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn encode_at(obj: &Bound<'_, PyAny>, depth: usize, out: &mut Vec<u8>) -> PyResult<()> {
    if obj.is_exact_instance_of::<PyInt>() {
        match obj.extract::<i64>() {
            Ok(i) => {
                out.push(V_INT);
                put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
            }
            Err(_) => pickle_into(obj, out)?,
        }
        return Ok(());
    }
    if obj.is_exact_instance_of::<PyString>() {
        let mut n: ffi::Py_ssize_t = 0;
        // SAFETY: `obj` is a live str (exact type checked) and the GIL is held; the
        // UTF-8 buffer belongs to the str object, which outlives this borrow.
        let p = unsafe { PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut n) };
        if p.is_null() {
            // Lone surrogates: as `to_dynamic` (which raises the same error).
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: CPython returned a buffer of `n` bytes (n >= 0) that lives as long as `obj`.
        let s = unsafe { std::slice::from_raw_parts(p, n as usize) };
        put_bytes(out, V_STR, s);
        return Ok(());
    }
    if obj.is_none() {
        out.push(V_NONE);
        return Ok(());
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        out.push(V_FLOAT);
        out.extend_from_slice(&obj.cast::<PyFloat>()?.value().to_le_bytes());
        return Ok(());
    }
    if obj.is_exact_instance_of::<PyBool>() {
        out.push(V_BOOL);
        out.push(u8::from(obj.is_truthy()?));
        return Ok(());
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        put_bytes(out, V_BYTES, obj.cast::<PyBytes>()?.as_bytes());
        return Ok(());
    }
    let container = obj.is_exact_instance_of::<PyTuple>()
        || obj.is_exact_instance_of::<PyList>()
        || obj.is_exact_instance_of::<PyDict>();
    if !container {
        return pickle_into(obj, out);
    }
    if depth >= MAX_DEPTH {
        return Err(TooDeep::new_err(()));
    }
    let d = depth + 1;
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        out.push(V_TUPLE);
        put_varint(out, t.len() as u64);
        for x in t.iter() {
            encode_at(&x, d, out)?;
        }
        return Ok(());
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        // A list may change under a callback (pickling an item): count what is written.
        let items: Vec<_> = l.iter().collect();
        out.push(V_LIST);
        put_varint(out, items.len() as u64);
        for x in &items {
            encode_at(x, d, out)?;
        }
        return Ok(());
    }
    let m = obj.cast_exact::<PyDict>()?;
    let pairs: Vec<_> = m.iter().collect();
    out.push(V_DICT);
    put_varint(out, pairs.len() as u64);
    for (k, v) in &pairs {
        encode_at(k, d, out)?;
        encode_at(v, d, out)?;
    }
    Ok(())
}

fn pickle_into(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let dumps = pickle_fn(obj.py(), &DUMPS, "dumps")?;
    let b = dumps.call1((obj, 5))?;
    put_bytes(out, V_PICKLED, b.cast::<PyBytes>()?.as_bytes());
    Ok(())
}

/// The Python object of the wire bytes of a `Dynamic` (what [`encode_py`] or a Rust
/// process's `Queue<Dynamic>` wrote): as `to_py(py, &codec::decode::<Dynamic>(bytes)?)`,
/// without the `Dynamic` in between; the same error for bytes that are not a `Dynamic`.
///
/// ```
/// use pyo3::prelude::*;
/// use shm_collections::{Dynamic, codec};
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let mut buf = Vec::new();
///     codec::encode(&Dynamic::Tuple(vec![Dynamic::Int(-3), Dynamic::Str("é".into())]), &mut buf).unwrap();
///     let obj = _shm::codec::decode_py(py, &buf).unwrap();
///     assert_eq!(obj.extract::<(i64, String)>().unwrap(), (-3, "é".to_string()));
///     assert!(_shm::codec::decode_py(py, &[0xff]).is_err());
/// });
/// ```
pub fn decode_py<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader { b: bytes, at: 0 };
    match r.value(py, 0) {
        Ok(Some(obj)) if r.at == bytes.len() => Ok(obj),
        Err(e) => Err(e),
        // Not taken here (or trailing bytes): the `Dynamic` decoder decides.
        _ => {
            let d: Dynamic = shm_collections::codec::decode(bytes).map_err(|e| {
                crate::errors::other_err(format!("a queue message: expected a value, {e}"))
            })?;
            to_py(py, &d)
        }
    }
}

/// A cursor over wire bytes; every method returns `None` for bytes it does not take.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    /// A canonical varint (the shortest form, as the encoder writes it).
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        match self.byte()? {
            v @ 0..=250 => Some(u64::from(v)),
            251 => {
                let v = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
                (v >= 251).then_some(u64::from(v))
            }
            252 => {
                let v = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
                (v > u32::from(u16::MAX)).then_some(u64::from(v))
            }
            253 => {
                let v = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
                (v > u64::from(u32::MAX)).then_some(v)
            }
            _ => None,
        }
    }

    /// A length that the rest of the bytes can hold (each item takes a byte at least).
    #[inline]
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n <= self.b.len() - self.at).then_some(n)
    }

    fn value<'py>(&mut self, py: Python<'py>, depth: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(tag) = self.byte() else {
            return Ok(None);
        };
        // The constructors below return a new reference or null with an exception set.
        let new = |p: *mut ffi::PyObject| {
            // SAFETY: `p` is such a result of a CPython constructor, the GIL is held.
            unsafe { Bound::from_owned_ptr_or_err(py, p) }
        };
        Ok(Some(match tag {
            V_NONE => py.None().into_bound(py),
            V_BOOL => match self.byte() {
                Some(0) => PyBool::new(py, false).to_owned().into_any(),
                Some(1) => PyBool::new(py, true).to_owned().into_any(),
                _ => return Ok(None),
            },
            V_INT => {
                let Some(z) = self.varint() else {
                    return Ok(None);
                };
                let i = ((z >> 1) as i64) ^ -((z & 1) as i64);
                // SAFETY: a constructor called with the GIL held.
                new(unsafe { ffi::PyLong_FromLongLong(i) })?
            }
            V_FLOAT => {
                let Some(b) = self.take(8) else {
                    return Ok(None);
                };
                let f = f64::from_le_bytes(b.try_into().unwrap_or_default());
                // SAFETY: a constructor called with the GIL held.
                new(unsafe { ffi::PyFloat_FromDouble(f) })?
            }
            V_STR | V_BYTES | V_PICKLED => {
                let Some(n) = self.len() else {
                    return Ok(None);
                };
                let Some(s) = self.take(n) else {
                    return Ok(None);
                };
                match tag {
                    V_STR => {
                        let Ok(t) = std::str::from_utf8(s) else {
                            return Ok(None);
                        };
                        PyString::new(py, t).into_any()
                    }
                    V_BYTES => PyBytes::new(py, s).into_any(),
                    _ => {
                        let loads = pickle_fn(py, &LOADS, "loads")?;
                        loads.call1((PyBytes::new(py, s),))?
                    }
                }
            }
            V_TUPLE | V_LIST => {
                if depth >= MAX_DEPTH {
                    return Ok(None);
                }
                let Some(n) = self.len() else {
                    return Ok(None);
                };
                let n_py = n as ffi::Py_ssize_t;
                // SAFETY: constructors called with the GIL held; their slots are all
                // set below before the object is handed out (or it is dropped unfilled,
                // which CPython allows for a new tuple/list).
                let seq = new(unsafe {
                    if tag == V_TUPLE {
                        ffi::PyTuple_New(n_py)
                    } else {
                        ffi::PyList_New(n_py)
                    }
                })?;
                for i in 0..n_py {
                    let Some(item) = self.value(py, depth + 1)? else {
                        return Ok(None);
                    };
                    // SAFETY: `seq` is a new tuple/list of length n, slot i is empty;
                    // SetItem steals the item's reference (hence `into_ptr`).
                    unsafe {
                        if tag == V_TUPLE {
                            ffi::PyTuple_SetItem(seq.as_ptr(), i, item.into_ptr());
                        } else {
                            ffi::PyList_SetItem(seq.as_ptr(), i, item.into_ptr());
                        }
                    }
                }
                seq
            }
            V_DICT => {
                if depth >= MAX_DEPTH {
                    return Ok(None);
                }
                let Some(n) = self.len() else {
                    return Ok(None);
                };
                let m = PyDict::new(py);
                for _ in 0..n {
                    let Some(k) = self.value(py, depth + 1)? else {
                        return Ok(None);
                    };
                    let Some(v) = self.value(py, depth + 1)? else {
                        return Ok(None);
                    };
                    m.set_item(k, v)?;
                }
                m.into_any()
            }
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_collections::codec;

    /// Python expressions of every value kind, edges of every varint width included.
    const VALUES: &[&std::ffi::CStr] = &[
        c"None",
        c"True",
        c"False",
        c"0",
        c"-1",
        c"124",
        c"125",
        c"-126",
        c"32767",
        c"-32768",
        c"32768",
        c"2**31",
        c"-2**31 - 1",
        c"2**63 - 1",
        c"-2**63",
        c"2**63",
        c"-2**64",
        c"0.0",
        c"-0.0",
        c"float('inf')",
        c"1.5e300",
        c"''",
        c"'x'",
        c"'é' * 300",
        c"'a' * 70000",
        c"b''",
        c"b'\\x00\\xff' * 200",
        c"()",
        c"(1, 2.5, 'x')",
        c"[None, [True, b'y'], ()]",
        c"{}",
        c"{'k': 1, 2: (3,), (4, 'five'): [6.0], None: {}}",
        c"[1] * 300",
        c"bytearray(b'ab')",
        c"{1, 2}",
        c"__import__('collections').OrderedDict(a=1)",
        c"__import__('fractions').Fraction(1, 3)",
    ];

    fn eval<'py>(py: Python<'py>, e: &std::ffi::CStr) -> Bound<'py, PyAny> {
        py.eval(e, None, None)
            .unwrap_or_else(|err| panic!("{e:?}: {err}"))
    }

    fn slow_bytes(obj: &Bound<'_, PyAny>) -> Vec<u8> {
        let mut b = Vec::new();
        codec::encode(&to_dynamic(obj).unwrap(), &mut b).unwrap();
        b
    }

    #[test]
    fn encode_py_writes_the_bytes_of_the_dynamic_encoder() {
        Python::initialize();
        Python::attach(|py| {
            for e in VALUES {
                let obj = eval(py, e);
                let mut fast = Vec::new();
                encode_py(&obj, &mut fast).unwrap();
                // (Pickles of the same object are the same bytes.)
                assert_eq!(fast, slow_bytes(&obj), "{e:?}");
                // And back, both ways, to an equal object.
                let back = decode_py(py, &fast).unwrap();
                assert!(back.eq(&obj).unwrap(), "{e:?}: {back:?}");
                let d: Dynamic = codec::decode(&fast).unwrap();
                assert!(to_py(py, &d).unwrap().eq(&obj).unwrap(), "{e:?}");
            }
        });
    }

    #[test]
    fn decode_py_reads_what_rust_writes() {
        Python::initialize();
        Python::attach(|py| {
            let values = [
                Dynamic::Int(i64::MIN),
                Dynamic::Int(i64::MAX),
                Dynamic::Float(f64::NAN),
                Dynamic::Str("ü".repeat(100)),
                Dynamic::Bytes(vec![7; 300]),
                Dynamic::Tuple(vec![Dynamic::None, Dynamic::Bool(true)]),
                Dynamic::List(vec![Dynamic::List(vec![]); 3]),
                Dynamic::Dict(vec![(Dynamic::Int(1), Dynamic::Str("one".into()))]),
            ];
            for d in values {
                let mut b = Vec::new();
                codec::encode(&d, &mut b).unwrap();
                let fast = decode_py(py, &b).unwrap();
                let slow = to_py(py, &d).unwrap();
                assert_eq!(
                    fast.repr().unwrap().to_string(),
                    slow.repr().unwrap().to_string()
                );
                // Python writes the same bytes again.
                let mut again = Vec::new();
                encode_py(&fast, &mut again).unwrap();
                assert_eq!(again, b, "{d}");
            }
        });
    }

    #[test]
    fn too_deep_and_cyclic_are_pickled_as_to_dynamic_does() {
        Python::initialize();
        Python::attach(|py| {
            let deep = eval(
                py,
                c"__import__('functools').reduce(lambda a, _: [a], range(200), 0)",
            );
            let cyc = eval(py, c"(lambda l: (l.append(l), l)[1])([])");
            for obj in [deep, cyc] {
                let mut fast = Vec::new();
                encode_py(&obj, &mut fast).unwrap();
                assert_eq!(fast[0], V_PICKLED);
                assert!(matches!(to_dynamic(&obj).unwrap(), Dynamic::Pickled(_)));
                decode_py(py, &fast).unwrap();
            }
        });
    }

    #[test]
    fn hostile_bytes_are_decoded_as_the_dynamic_decoder_does() {
        Python::initialize();
        Python::attach(|py| {
            let mut frames: Vec<Vec<u8>> = vec![
                vec![],
                vec![V_BOOL, 2],
                vec![V_INT, 251, 1, 0], // non-canonical varint
                vec![V_STR, 2, 0xff, 0xfe],
                vec![V_TUPLE, 200],
                vec![V_LIST, 1, V_NONE, V_NONE], // trailing byte
                vec![10],
                vec![V_DICT, 1, V_NONE],
            ];
            let mut deep = [V_TUPLE, 1].repeat(MAX_DEPTH + 1);
            deep.push(V_NONE);
            frames.push(deep);
            // A deterministic spray of short frames.
            let mut x: u32 = 12345;
            for _ in 0..3000 {
                let n = (x % 9) as usize;
                let mut f = Vec::with_capacity(n);
                for _ in 0..n {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    f.push((x >> 16) as u8 % 9); // tags and small numbers; no pickles
                }
                frames.push(f);
            }
            for f in frames {
                let slow = codec::decode::<Dynamic>(&f);
                let fast = decode_py(py, &f);
                match (slow, fast) {
                    (Ok(d), Ok(o)) => {
                        let want = to_py(py, &d).unwrap();
                        assert_eq!(
                            o.repr().unwrap().to_string(),
                            want.repr().unwrap().to_string(),
                            "{f:?}"
                        );
                    }
                    (Err(_), Err(_)) => {}
                    (s, o) => panic!("{f:?}: Dynamic decoder {s:?}, decode_py {o:?}"),
                }
            }
        });
    }
}
