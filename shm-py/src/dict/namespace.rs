//! `shm.Namespace`: attribute access over `shm_collections::Namespace`.

use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use shm_collections::{Dynamic, Namespace};

use crate::codec::{to_dynamic, to_py};
use crate::errmap::region_err;

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
