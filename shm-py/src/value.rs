//! `shm.Value(typecode, v, lock=True)` and `shm.Array(typecode, size_or_init, lock=True)`:
//! multiprocessing's synchronized cells. One segment each: a robust re-entrant lock
//! (`get_lock()`, an RLock as in multiprocessing), a small checked header, the items.
//! `numpy.asarray(arr)` / `arr.to_numpy()` is a zero-copy view (via the buffer protocol
//! of an exporter that keeps the mapping alive); numpy is optional.
//!
//! Layout (little header, not the workspace's object header: these cells are Python's):
//! `0: RawRLock (24 B) | 32: magic "SHMPYCEL" | 40: typecode u8, itemsize u8 | 48: len u64 | 64: items`.
//!
//! ```python
//! import shm
//! v = shm.Value("i", 0)
//! with v.get_lock():
//!     v.value += 1
//! ```
//!
//! ```
//! assert_eq!(_shm::value::DATA_OFFSET, 64);
//! ```

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyAttributeError, PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice, PyTuple};
use shm_core::Segment;
use shm_sync::{Acquired, RawError, RawRLock};

use crate::buffer::{self, Format};
use crate::errors::{OwnerDiedWarning, ShmError, core_err};
use crate::wait::{deadline, wait_until};

/// Where the items start.
pub const DATA_OFFSET: usize = 64;
const MAGIC: &[u8; 8] = b"SHMPYCEL";

type Reduced<'py> = PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)>;

/// The typecodes of `array`/`ctypes` that cells hold.
fn format_of(code: char) -> Option<Format> {
    let (c, n): (&'static std::ffi::CStr, usize) = match code {
        'b' => (c"b", 1),
        'B' => (c"B", 1),
        'c' => (c"c", 1),
        '?' => (c"?", 1),
        'h' => (c"h", 2),
        'H' => (c"H", 2),
        'i' => (c"i", 4),
        'I' => (c"I", 4),
        'l' => (c"l", 8),
        'L' => (c"L", 8),
        'q' => (c"q", 8),
        'Q' => (c"Q", 8),
        'f' => (c"f", 4),
        'd' => (c"d", 8),
        _ => return None,
    };
    Some(Format {
        code: c,
        itemsize: n,
    })
}

/// A typecode string or a ctypes type (its `_type_`).
fn typecode_of(t: &Bound<'_, PyAny>) -> PyResult<char> {
    let s: String = if let Ok(s) = t.extract::<String>() {
        s
    } else if let Ok(s) = t.getattr("_type_").and_then(|c| c.extract::<String>()) {
        s
    } else {
        return Err(PyTypeError::new_err(format!(
            "typecode: expected a str such as 'i' or 'd' or a ctypes type, found {}",
            t.repr()?
        )));
    };
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if format_of(c).is_some() => Ok(c),
        _ => Err(PyTypeError::new_err(format!(
            "typecode: expected one of 'bBc?hHiIlLqQfd', found {s:?}"
        ))),
    }
}

/// The mapped cell: segment, lock, typecode, length.
struct Cell {
    seg: Arc<Segment>,
    code: char,
    format: Format,
    len: usize,
}

impl Cell {
    fn create(code: char, len: usize) -> PyResult<Self> {
        let format = format_of(code).ok_or_else(|| PyTypeError::new_err("typecode"))?;
        let bytes = len
            .checked_mul(format.itemsize)
            .and_then(|b| b.checked_add(DATA_OFFSET))
            .ok_or_else(|| {
                PyValueError::new_err(format!("{len} items do not fit the address space"))
            })?;
        let seg = Segment::create(bytes).map_err(core_err)?;
        let mut head = [0u8; 32];
        head[..8].copy_from_slice(MAGIC);
        head[8] = code as u8;
        head[9] = format.itemsize as u8;
        head[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        seg.write_at(32, &head).map_err(core_err)?;
        crate::segment::track(seg.name().unwrap_or_default());
        Ok(Self {
            seg: Arc::new(seg),
            code,
            format,
            len,
        })
    }

    fn open(name: &str) -> PyResult<Self> {
        let seg = Segment::open(name).map_err(core_err)?;
        let mut head = [0u8; 32];
        seg.read_at(32, &mut head).map_err(core_err)?;
        let bad = |what: String| ShmError::new_err(format!("shm cell {name:?}: {what}"));
        if &head[..8] != MAGIC {
            return Err(bad(format!(
                "expected magic {MAGIC:?}, found {:?}",
                &head[..8]
            )));
        }
        let code = head[8] as char;
        let format = format_of(code)
            .ok_or_else(|| bad(format!("expected a typecode, found byte {}", head[8])))?;
        if usize::from(head[9]) != format.itemsize {
            return Err(bad(format!(
                "expected item size {}, found {}",
                format.itemsize, head[9]
            )));
        }
        let len = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
        let fits = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(format.itemsize))
            .and_then(|b| b.checked_add(DATA_OFFSET))
            .is_some_and(|b| b <= seg.len());
        if !fits {
            return Err(bad(format!(
                "{len} items do not fit its {} bytes",
                seg.len()
            )));
        }
        Ok(Self {
            seg: Arc::new(seg),
            code,
            format,
            len: len as usize,
        })
    }

    fn name(&self) -> &str {
        self.seg.name().unwrap_or_default()
    }

    fn lock(&self) -> &RawRLock {
        // SAFETY: offset 0 of a page-aligned mapping of >= 64 bytes that lives as long as
        // `self.seg`; every process accesses these 24 bytes only through RawRLock.
        unsafe { RawRLock::from_ptr(self.seg.as_ptr()) }
    }

    fn item_ptr(&self, i: usize) -> *mut u8 {
        self.seg
            .as_ptr()
            .wrapping_add(DATA_OFFSET + i * self.format.itemsize)
    }

    fn read<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let mut b = [0u8; 8];
        let n = self.format.itemsize;
        // SAFETY: i < len (callers check), so `n` bytes at item_ptr(i) are mapped; racing
        // writers yield wrong bytes, never UB (the racing copy).
        unsafe { shm_core::copy_from_shared(self.item_ptr(i), &mut b[..n]) };
        Ok(match self.code {
            'b' => (b[0] as i8).into_pyobject(py)?.into_any(),
            'B' => b[0].into_pyobject(py)?.into_any(),
            'c' => PyBytes::new(py, &b[..1]).into_any(),
            '?' => (b[0] != 0).into_pyobject(py)?.to_owned().into_any(),
            'h' => i16::from_ne_bytes([b[0], b[1]])
                .into_pyobject(py)?
                .into_any(),
            'H' => u16::from_ne_bytes([b[0], b[1]])
                .into_pyobject(py)?
                .into_any(),
            'i' => i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                .into_pyobject(py)?
                .into_any(),
            'I' => u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                .into_pyobject(py)?
                .into_any(),
            'l' | 'q' => i64::from_ne_bytes(b).into_pyobject(py)?.into_any(),
            'L' | 'Q' => u64::from_ne_bytes(b).into_pyobject(py)?.into_any(),
            'f' => f32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                .into_pyobject(py)?
                .into_any(),
            _ => f64::from_ne_bytes(b).into_pyobject(py)?.into_any(),
        })
    }

    fn encode(&self, v: &Bound<'_, PyAny>) -> PyResult<[u8; 8]> {
        let mut b = [0u8; 8];
        let over = |e: PyErr| {
            if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) {
                PyErr::from_type(
                    e.get_type(v.py()),
                    format!("{} out of range for typecode {:?}", v, self.code),
                )
            } else {
                PyTypeError::new_err(format!(
                    "typecode {:?}: expected a number, found {}",
                    self.code,
                    v.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            }
        };
        match self.code {
            'b' => b[0] = v.extract::<i8>().map_err(over)? as u8,
            'B' => b[0] = v.extract::<u8>().map_err(over)?,
            'c' if v.is_instance_of::<pyo3::types::PyInt>() => {
                b[0] = v.extract::<u8>().map_err(over)?
            }
            'c' => {
                let s: Vec<u8> = v
                    .extract::<Vec<u8>>()
                    .ok()
                    .filter(|s| s.len() == 1)
                    .ok_or_else(|| {
                        PyTypeError::new_err(format!(
                            "typecode 'c': expected one byte (bytes of length 1), found {v}"
                        ))
                    })?;
                b[0] = s[0];
            }
            '?' => b[0] = u8::from(v.is_truthy()?),
            'h' => b[..2].copy_from_slice(&v.extract::<i16>().map_err(over)?.to_ne_bytes()),
            'H' => b[..2].copy_from_slice(&v.extract::<u16>().map_err(over)?.to_ne_bytes()),
            'i' => b[..4].copy_from_slice(&v.extract::<i32>().map_err(over)?.to_ne_bytes()),
            'I' => b[..4].copy_from_slice(&v.extract::<u32>().map_err(over)?.to_ne_bytes()),
            'l' | 'q' => b = v.extract::<i64>().map_err(over)?.to_ne_bytes(),
            'L' | 'Q' => b = v.extract::<u64>().map_err(over)?.to_ne_bytes(),
            'f' => b[..4].copy_from_slice(&v.extract::<f32>().map_err(over)?.to_ne_bytes()),
            _ => b = v.extract::<f64>().map_err(over)?.to_ne_bytes(),
        }
        Ok(b)
    }

    fn write(&self, i: usize, b: &[u8; 8]) {
        // SAFETY: i < len (callers check): `itemsize` mapped bytes; a racing copy.
        unsafe { shm_core::copy_to_shared(&b[..self.format.itemsize], self.item_ptr(i)) };
    }
}

/// The lock of a cell, as `get_lock()` returns it: an RLock living in the cell's segment.
#[pyclass(module = "shm", name = "CellLock", frozen)]
pub struct CellLock {
    cell: Arc<CellShared>,
}

/// What a cell and its lock object share.
struct CellShared {
    cell: Cell,
}

impl CellShared {
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let lock = self.cell.lock();
        let a = match lock.try_acquire() {
            Ok(a) => Some(a),
            Err(RawError::WouldBlock) => None,
            Err(e) => {
                return Err(PyRuntimeError::new_err(format!(
                    "lock of {:?}: {e}",
                    self.cell.name()
                )));
            }
        };
        let a = match a {
            Some(a) => a,
            None => {
                if !block {
                    return Ok(false);
                }
                let d = deadline(timeout)?;
                let got = wait_until(py, d, |slice: Duration| match lock.acquire_timeout(slice) {
                    Ok(a) => Ok(Some(a)),
                    Err(RawError::Timeout | RawError::WouldBlock) => Ok(None),
                    Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
                })?;
                match got {
                    Some(a) => a,
                    None => return Ok(false),
                }
            }
        };
        if a != Acquired::Clean {
            let _ = lock.mark_consistent();
            let msg = std::ffi::CString::new(format!(
                "the lock of {:?}: its previous holder died holding it; acquired anyway",
                self.cell.name()
            ))
            .unwrap_or_default();
            PyErr::warn(py, &py.get_type::<OwnerDiedWarning>(), &msg, 1)?;
        }
        Ok(true)
    }

    fn release(&self) -> PyResult<()> {
        self.cell.lock().release().map_err(|e| match e {
            RawError::NotOwner => PyRuntimeError::new_err(format!(
                "cannot release un-acquired lock of {:?} (not held by this thread)",
                self.cell.name()
            )),
            e => PyRuntimeError::new_err(e.to_string()),
        })
    }

    /// Runs `f` under the lock (the RLock: also when the caller holds it already).
    #[inline]
    fn locked<R>(&self, py: Python<'_>, f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
        self.acquire(py, true, None)?;
        let r = f();
        let rel = self.release();
        let r = r?;
        rel?;
        Ok(r)
    }
}

#[pymethods]
impl CellLock {
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.cell.acquire(py, block, timeout)
    }

    fn release(&self) -> PyResult<()> {
        self.cell.release()
    }

    fn _is_mine(&self) -> bool {
        self.cell.cell.lock().is_held_by_current_thread()
    }

    fn _count(&self) -> u32 {
        self.cell.cell.lock().depth()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.cell.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.cell.release()
    }

    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(Self {
            cell: Arc::new(CellShared {
                cell: Cell::open(name)?,
            }),
        })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        crate::handle::reduce(py, "CellLock", (self.cell.cell.name(),))
    }
}

/// How a cell is locked: its own RLock, none (`lock=False`), or a lock object given.
enum Locking {
    Own,
    Raw,
    Given(Py<PyAny>),
}

impl Locking {
    /// `lock=` of `Value(...)` and `Array(...)`: the cell's own lock unless told.
    fn of(lock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        lock.map_or(Ok(Locking::Own), Self::from_arg)
    }

    fn from_arg(lock: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(b) = lock.extract::<bool>() {
            return Ok(if b { Locking::Own } else { Locking::Raw });
        }
        if lock.hasattr("acquire")? && lock.hasattr("release")? {
            return Ok(Locking::Given(lock.clone().unbind()));
        }
        Err(PyTypeError::new_err(format!(
            "lock: expected True, False or a lock object, found {}",
            lock.repr()?
        )))
    }

    fn handle(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            Locking::Own => true
                .into_pyobject(py)
                .expect("bool")
                .to_owned()
                .into_any()
                .unbind(),
            Locking::Raw => false
                .into_pyobject(py)
                .expect("bool")
                .to_owned()
                .into_any()
                .unbind(),
            Locking::Given(l) => l.clone_ref(py),
        }
    }
}

fn with_lock<R>(
    shared: &CellShared,
    locking: &Locking,
    py: Python<'_>,
    f: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    match locking {
        Locking::Own => shared.locked(py, f),
        Locking::Raw => f(),
        Locking::Given(l) => {
            l.call_method0(py, "acquire")?;
            let r = f();
            l.call_method0(py, "release")?;
            r
        }
    }
}

fn get_lock(shared: &Arc<CellShared>, locking: &Locking, py: Python<'_>) -> PyResult<Py<PyAny>> {
    match locking {
        Locking::Own => Ok(Py::new(
            py,
            CellLock {
                cell: shared.clone(),
            },
        )?
        .into_any()),
        Locking::Given(l) => Ok(l.clone_ref(py)),
        Locking::Raw => Err(PyAttributeError::new_err(
            "a cell made with lock=False has no lock (multiprocessing's RawValue/RawArray)",
        )),
    }
}

/// The cell and locking of a `Value`/`Array` opened from its pickled handle.
fn opened(name: &str, lock: &Bound<'_, PyAny>) -> PyResult<(Arc<CellShared>, Locking)> {
    let cell = Cell::open(name)?;
    Ok((Arc::new(CellShared { cell }), Locking::from_arg(lock)?))
}

/// `__reduce__` of a `Value`/`Array`: its kind, name and lock argument.
fn reduce_cell<'py>(
    py: Python<'py>,
    kind: &str,
    shared: &CellShared,
    locking: &Locking,
) -> Reduced<'py> {
    crate::handle::reduce(py, kind, (shared.cell.name(), locking.handle(py)))
}

/// `with value:`: acquires what `get_lock()` returns.
fn enter(shared: &Arc<CellShared>, locking: &Locking, py: Python<'_>) -> PyResult<bool> {
    let l = get_lock(shared, locking, py)?;
    l.call_method0(py, "acquire")?.extract(py)
}

/// The end of `with value:`.
fn exit(shared: &Arc<CellShared>, locking: &Locking, py: Python<'_>) -> PyResult<()> {
    let l = get_lock(shared, locking, py)?;
    l.call_method0(py, "release")?;
    Ok(())
}

/// `shm.Value(typecode, v=0, lock=True)`.
#[pyclass(module = "shm", name = "Value", frozen)]
pub struct Value {
    shared: Arc<CellShared>,
    locking: Locking,
}

#[pymethods]
impl Value {
    #[new]
    #[pyo3(signature = (typecode_or_type, *args, lock=None))]
    fn new(
        typecode_or_type: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let code = typecode_of(typecode_or_type)?;
        let cell = Cell::create(code, 1)?;
        if let Some(v) = args.iter().next() {
            cell.write(0, &cell.encode(&v)?);
        }
        let locking = Locking::of(lock)?;
        Ok(Self {
            shared: Arc::new(CellShared { cell }),
            locking,
        })
    }

    #[staticmethod]
    fn _from_handle(name: &str, lock: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (shared, locking) = opened(name, lock)?;
        Ok(Self { shared, locking })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        reduce_cell(py, "Value", &self.shared, &self.locking)
    }

    /// The value, read under the lock (`.value` is a raw getter, see [`fast`], that
    /// comes here for anything but an uncontended read under the cell's own lock).
    #[getter(_value)]
    fn get_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_lock(&self.shared, &self.locking, py, || {
            self.shared.cell.read(py, 0)
        })
    }

    #[setter(_value)]
    fn set_value(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = self.shared.cell.encode(v)?;
        with_lock(&self.shared, &self.locking, py, || {
            self.shared.cell.write(0, &b);
            Ok(())
        })
    }

    fn get_lock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        get_lock(&self.shared, &self.locking, py)
    }

    fn get_obj(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[getter]
    fn name(&self) -> &str {
        self.shared.cell.name()
    }

    #[getter]
    fn typecode(&self) -> String {
        self.shared.cell.code.to_string()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        enter(&self.shared, &self.locking, py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        exit(&self.shared, &self.locking, py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.get_value(py)?;
        Ok(format!(
            "<shm.Value('{}', {})>",
            self.shared.cell.code,
            v.repr()?
        ))
    }
}

/// `shm.Array(typecode, size_or_initializer, lock=True)`.
#[pyclass(module = "shm", name = "Array", frozen, sequence)]
pub struct Array {
    shared: Arc<CellShared>,
    locking: Locking,
}

impl Array {
    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.shared.cell.len as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!(
                "index {i} out of range for an Array of {n} items"
            )));
        }
        Ok(j as usize)
    }

    fn indices(&self, s: &Bound<'_, PySlice>) -> PyResult<Vec<usize>> {
        let ind = s.indices(self.shared.cell.len as isize)?;
        let mut out = Vec::with_capacity(ind.slicelength);
        let mut i = ind.start;
        for _ in 0..ind.slicelength {
            out.push(i as usize);
            i += ind.step;
        }
        Ok(out)
    }
}

#[pymethods]
impl Array {
    #[new]
    #[pyo3(signature = (typecode_or_type, size_or_initializer, *, lock=None))]
    fn new(
        typecode_or_type: &Bound<'_, PyAny>,
        size_or_initializer: &Bound<'_, PyAny>,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let code = typecode_of(typecode_or_type)?;
        let locking = Locking::of(lock)?;
        let cell = if let Ok(n) = size_or_initializer.extract::<i64>() {
            let n = usize::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("Array size: expected a count >= 0, found {n}"))
            })?;
            Cell::create(code, n)?
        } else {
            let items: Vec<Bound<'_, PyAny>> =
                size_or_initializer.try_iter()?.collect::<PyResult<_>>()?;
            let cell = Cell::create(code, items.len())?;
            for (i, v) in items.iter().enumerate() {
                cell.write(i, &cell.encode(v)?);
            }
            cell
        };
        Ok(Self {
            shared: Arc::new(CellShared { cell }),
            locking,
        })
    }

    #[staticmethod]
    fn _from_handle(name: &str, lock: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (shared, locking) = opened(name, lock)?;
        Ok(Self { shared, locking })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        reduce_cell(py, "Array", &self.shared, &self.locking)
    }

    fn __len__(&self) -> usize {
        self.shared.cell.len
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cell = &self.shared.cell;
        if let Ok(s) = key.cast::<PySlice>() {
            let idx = self.indices(s)?;
            let items = with_lock(&self.shared, &self.locking, py, || {
                idx.iter()
                    .map(|&i| cell.read(py, i))
                    .collect::<PyResult<Vec<_>>>()
            })?;
            if cell.code == 'c' {
                let bytes: Vec<u8> = items
                    .iter()
                    .map(|b| b.extract::<Vec<u8>>().map(|v| v[0]))
                    .collect::<PyResult<_>>()?;
                return Ok(PyBytes::new(py, &bytes).into_any());
            }
            return Ok(PyList::new(py, items)?.into_any());
        }
        let i = self.index(key.extract::<isize>()?)?;
        with_lock(&self.shared, &self.locking, py, || cell.read(py, i))
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let cell = &self.shared.cell;
        if let Ok(s) = key.cast::<PySlice>() {
            let idx = self.indices(s)?;
            let vals: Vec<[u8; 8]> = if cell.code == 'c' {
                let b: Vec<u8> = v.extract()?;
                b.iter().map(|x| [*x, 0, 0, 0, 0, 0, 0, 0]).collect()
            } else {
                v.try_iter()?
                    .map(|x| cell.encode(&x?))
                    .collect::<PyResult<_>>()?
            };
            if vals.len() != idx.len() {
                return Err(PyValueError::new_err(format!(
                    "Can only assign sequence of same size: expected {} items, found {}",
                    idx.len(),
                    vals.len()
                )));
            }
            return with_lock(&self.shared, &self.locking, py, || {
                for (i, b) in idx.iter().zip(&vals) {
                    cell.write(*i, b);
                }
                Ok(())
            });
        }
        let i = self.index(key.extract::<isize>()?)?;
        let b = cell.encode(v)?;
        with_lock(&self.shared, &self.locking, py, || {
            cell.write(i, &b);
            Ok(())
        })
    }

    /// For `'c'` arrays: the bytes up to the first NUL (multiprocessing's `.value`).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.shared.cell.code != 'c' {
            return Err(PyAttributeError::new_err(
                "only an Array('c', ...) has .value",
            ));
        }
        let all = self.__getitem__(py, PySlice::full(py).as_any())?;
        let b: Vec<u8> = all.extract()?;
        let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
        Ok(PyBytes::new(py, &b[..end]).into_any())
    }

    fn get_lock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        get_lock(&self.shared, &self.locking, py)
    }

    fn get_obj(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[getter]
    fn name(&self) -> &str {
        self.shared.cell.name()
    }

    #[getter]
    fn typecode(&self) -> String {
        self.shared.cell.code.to_string()
    }

    /// A zero-copy, writable buffer over the items (a memoryview of format `typecode`);
    /// it keeps the mapping alive. Writes through it do not take the lock.
    #[getter]
    fn buf<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cell = &self.shared.cell;
        // SAFETY: `len * itemsize` bytes from DATA_OFFSET are mapped (checked at
        // create/open) for as long as the Arc'd segment that the view owns.
        unsafe {
            buffer::memoryview(
                py,
                cell.seg.clone(),
                cell.item_ptr(0),
                cell.len * cell.format.itemsize,
                cell.format,
                false,
            )
        }
    }

    /// A zero-copy numpy view (numpy needed at call time only).
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let np = py.import("numpy")?;
        let dtype = if self.shared.cell.code == 'c' {
            "S1".to_owned()
        } else {
            self.shared.cell.code.to_string()
        };
        np.call_method1("frombuffer", (self.buf(py)?, dtype))
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut a = self.to_numpy(py)?;
        if let Some(d) = dtype {
            a = a.call_method1("astype", (d,))?;
        } else if copy == Some(true) {
            a = a.call_method0("copy")?;
        }
        Ok(a)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        enter(&self.shared, &self.locking, py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        exit(&self.shared, &self.locking, py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let all = self.__getitem__(py, PySlice::full(py).as_any())?;
        Ok(format!(
            "<shm.Array('{}', {})>",
            self.shared.cell.code,
            all.repr()?
        ))
    }
}

/// Adds Value, Array and CellLock to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Value>()?;
    fast::install(m.py())?;
    m.add_class::<Array>()?;
    m.add_class::<CellLock>()?;
    Ok(())
}

/// `Value.value` as a raw get/set descriptor: an uncontended read under the cell's own
/// lock skips PyO3's getter trampoline (under abi3-py39 about as costly as the read);
/// everything else goes through the PyO3 property `_value`.
mod fast {
    use std::ffi::c_void;

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyType;
    use shm_sync::Acquired;

    use super::{Locking, Value};

    unsafe extern "C" fn get(slf: *mut ffi::PyObject, _closure: *mut c_void) -> *mut ffi::PyObject {
        // SAFETY: CPython calls a getter with the GIL held and a live `slf`; the borrowed
        // Bound lives for this call only; every new reference is returned or released.
        unsafe {
            let py = Python::assume_attached();
            let bound = Bound::from_borrowed_ptr(py, slf);
            // Exactly a Value (a subclass takes the slow path): no subtype walk.
            if ffi::Py_TYPE(slf) == <Value as pyo3::type_object::PyTypeInfo>::type_object_raw(py) {
                let v = bound.cast_unchecked::<Value>().get();
                if matches!(v.locking, Locking::Own) {
                    let lock = v.shared.cell.lock();
                    if lock.try_acquire() == Ok(Acquired::Clean) {
                        let r = v.shared.cell.read(py, 0);
                        let rel = lock.release();
                        if let (Ok(obj), Ok(())) = (&r, rel) {
                            return obj.clone().into_ptr();
                        }
                        if let Err(e) = r {
                            e.restore(py);
                            return std::ptr::null_mut();
                        }
                    }
                }
            }
            ffi::PyObject_GetAttrString(slf, c"_value".as_ptr())
        }
    }

    unsafe extern "C" fn set(
        slf: *mut ffi::PyObject,
        value: *mut ffi::PyObject,
        _closure: *mut c_void,
    ) -> std::ffi::c_int {
        // SAFETY: as in `get`; `value` is null for `del`, which the slow path refuses.
        unsafe {
            if value.is_null() {
                ffi::PyErr_SetString(
                    ffi::PyExc_AttributeError,
                    c"can't delete attribute 'value'".as_ptr(),
                );
                return -1;
            }
            ffi::PyObject_SetAttrString(slf, c"_value".as_ptr(), value)
        }
    }

    /// Puts the raw `value` descriptor on the `Value` type (once, at module init).
    pub(super) fn install(py: Python<'_>) -> PyResult<()> {
        let tp: Bound<'_, PyType> = py.get_type::<Value>();
        let def = Box::leak(Box::new(ffi::PyGetSetDef {
            name: c"value".as_ptr(),
            get: Some(get),
            set: Some(set),
            doc: c"The value, read and written under the cell's lock.".as_ptr(),
            closure: std::ptr::null_mut(),
        }));
        // SAFETY: a leaked ('static) getset def and our heap type; the descriptor is a new
        // reference (or null with an exception), handed to setattr, then dropped.
        unsafe {
            let d = ffi::PyDescr_NewGetSet(tp.as_ptr().cast(), def);
            let d = Bound::from_owned_ptr_or_err(py, d)?;
            if ffi::PyObject_SetAttrString(tp.as_ptr(), c"value".as_ptr(), d.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(())
    }
}
