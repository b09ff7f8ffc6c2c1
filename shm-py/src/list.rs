//! `shm.ShareableList`: CPython's `ShareableList`, byte-compatible (shm_collections's),
//! so CPython opens ours and we open CPython's. `.shm` is the block as a
//! `shm.SharedMemory`; `.name` is its name (the porting material uses it).
//!
//! ```python
//! import shm
//! a = shm.ShareableList(["howdy", b"HoWdY", -273.154, 100, None, True, 42])
//! b = shm.ShareableList(name=a.shm.name)
//! b[3] = 7
//! assert a[3] == 7
//! a.shm.close(); a.shm.unlink()
//! ```
//!
//! ```
//! assert!(std::any::type_name::<_shm::list::ShareableList>().ends_with("ShareableList"));
//! ```

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};
use shm_collections::{Item, ListError};
use shm_core::Segment;

use crate::errors::{ShmError, core_err};
use crate::segment::SharedMemory;

type Reduced<'py> = PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)>;

fn list_err(e: ListError) -> PyErr {
    match e {
        ListError::Shm(e) => core_err(e),
        ListError::IndexOutOfRange { .. } => PyIndexError::new_err(e.to_string()),
        ListError::SlotTooSmall { .. } => PyValueError::new_err(format!(
            "exceeds available storage for existing str or bytes: {e}"
        )),
        ListError::TrailingNul { .. } | ListError::ItemTooLarge { .. } => {
            PyValueError::new_err(e.to_string())
        }
        e => ShmError::new_err(e.to_string()),
    }
}

fn to_item(v: &Bound<'_, PyAny>) -> PyResult<Item> {
    if v.is_none() {
        Ok(Item::None)
    } else if v.is_instance_of::<PyBool>() {
        Ok(Item::Bool(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        Ok(Item::Int(v.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "ShareableList int: expected a 64-bit int, found {v}"
            ))
        })?))
    } else if v.is_instance_of::<PyFloat>() {
        Ok(Item::Float(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(Item::Str(v.extract()?))
    } else if v.is_instance_of::<PyBytes>() {
        Ok(Item::Bytes(v.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "ShareableList item: expected int, float, bool, str, bytes or None, found {}",
            v.get_type().name()?
        )))
    }
}

fn from_item(py: Python<'_>, it: Item) -> PyResult<Bound<'_, PyAny>> {
    Ok(match it {
        Item::Int(i) => i.into_pyobject(py)?.into_any(),
        Item::Float(f) => f.into_pyobject(py)?.into_any(),
        Item::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Item::Str(s) => s.into_pyobject(py)?.into_any(),
        Item::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Item::None => py.None().into_bound(py),
    })
}

/// CPython's `ShareableList(sequence=None, *, name=None)`.
#[pyclass(module = "shm", name = "ShareableList", frozen, sequence)]
pub struct ShareableList {
    list: shm_collections::ShareableList,
    shm: Py<SharedMemory>,
    name: String,
}

impl ShareableList {
    fn wrap(
        py: Python<'_>,
        mut list: shm_collections::ShareableList,
        created: bool,
    ) -> PyResult<Self> {
        let name = list.name().unwrap_or_default().to_owned();
        let seg = Segment::open(&name).map_err(core_err)?;
        if created {
            // CPython's lifetime: the name stays until `.shm.unlink()` (or exit: tracked).
            list.set_unlink_on_drop(false);
            crate::segment::track(&name);
        }
        let shm = Py::new(py, SharedMemory::from_segment(Arc::new(seg)))?;
        Ok(Self { list, shm, name })
    }

    fn index_of(&self, i: isize) -> PyResult<usize> {
        let n = self.list.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err("index out of range"));
        }
        Ok(j as usize)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let v = self.list.to_vec().map_err(list_err)?;
        v.into_iter().map(|i| from_item(py, i)).collect()
    }
}

#[pymethods]
impl ShareableList {
    #[new]
    #[pyo3(signature = (sequence=None, *, name=None))]
    fn new(
        py: Python<'_>,
        sequence: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
    ) -> PyResult<Self> {
        match sequence {
            Some(seq) => {
                let items: Vec<Item> = seq
                    .try_iter()?
                    .map(|v| to_item(&v?))
                    .collect::<PyResult<_>>()?;
                let list = match name {
                    Some(n) => shm_collections::ShareableList::create_named(n, items),
                    None => shm_collections::ShareableList::create(items),
                }
                .map_err(list_err)?;
                Self::wrap(py, list, true)
            }
            None => {
                let n = name.ok_or_else(|| {
                    PyValueError::new_err(
                        "ShareableList: expected a sequence or a name, found neither",
                    )
                })?;
                let list = shm_collections::ShareableList::open(n).map_err(list_err)?;
                Self::wrap(py, list, false)
            }
        }
    }

    #[staticmethod]
    fn _from_handle(py: Python<'_>, name: &str) -> PyResult<Self> {
        let list = shm_collections::ShareableList::open(name).map_err(list_err)?;
        Self::wrap(py, list, false)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> Reduced<'py> {
        crate::handle::reduce(py, "ShareableList", (self.name.as_str(),))
    }

    /// The block (`.shm.name`, `.shm.close()`, `.shm.unlink()` as in CPython).
    #[getter]
    fn shm(&self, py: Python<'_>) -> Py<SharedMemory> {
        self.shm.clone_ref(py)
    }

    /// The block's name (not in CPython, where it is `.shm.name`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// CPython's `format`: the struct format of the items.
    fn __len__(&self) -> usize {
        self.list.len()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Bound<'py, PyAny>> {
        let i = self.index_of(i)?;
        from_item(py, self.list.get(i).map_err(list_err)?)
    }

    fn __setitem__(&self, i: isize, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.index_of(i)?;
        let item = to_item(v)?;
        self.list.set(i, item).map_err(list_err)
    }

    fn count(&self, v: &Bound<'_, PyAny>) -> PyResult<usize> {
        let Ok(item) = to_item(v) else { return Ok(0) };
        self.list.count(item).map_err(list_err)
    }

    fn index(&self, v: &Bound<'_, PyAny>) -> PyResult<usize> {
        let item =
            to_item(v).map_err(|_| PyValueError::new_err(format!("{v} not in this container")))?;
        self.list.index(item).map_err(|e| match e {
            ListError::Shm(e) => core_err(e),
            _ => PyValueError::new_err(format!("{v} not in this container")),
        })
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(PyList::new(py, self.items(py)?)?.repr()?.to_string())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ShareableList({}, name='{}')",
            self.__str__(py)?,
            self.name
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mine = PyList::new(py, self.items(py)?)?;
        let theirs = match other.cast::<ShareableList>() {
            Ok(o) => PyList::new(py, o.get().items(py)?)?.into_any(),
            Err(_) => other.clone(),
        };
        mine.as_any().eq(theirs)
    }
}

/// Adds ShareableList to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ShareableList>()
}
