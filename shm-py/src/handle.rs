//! Pickling: every object pickles to its handle, `(shm._rebuild, (kind, name, extra...))`,
//! and unpickling opens the object by name (fork, spawn and forkserver alike).
//!
//! ```
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let args = _shm::handle::handle_args(py, "Lock", ("psm_x",)).unwrap();
//!     assert_eq!(args.len(), 2);
//! });
//! ```

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Nothing to add to the module: `_rebuild` is pure Python (`shm/__init__.py`).
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let m = pyo3::types::PyModule::new(py, "m").unwrap();
///     _shm::handle::register(&m).unwrap();
/// });
/// ```
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}

/// The arguments of `shm._rebuild`: the kind (the class's name in `shm`), then `rest`.
pub fn handle_args<'py>(
    py: Python<'py>,
    kind: &str,
    rest: impl IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let rest = rest.into_pyobject(py).map_err(Into::into)?;
    let mut items: Vec<Bound<'py, PyAny>> = vec![kind.into_pyobject(py)?.into_any()];
    items.extend(rest.iter());
    PyTuple::new(py, items)
}

/// What `__reduce__` returns: `(shm._rebuild, (kind, rest...))` (needs the package
/// `shm` importable: from Python, `pickle.dumps(shm.Lock())` calls it).
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     // Outside the installed package `shm` cannot be imported: an ImportError.
///     assert!(_shm::handle::reduce(py, "Lock", ("psm_x",)).is_err() || py.import("shm").is_ok());
/// });
/// ```
pub fn reduce<'py>(
    py: Python<'py>,
    kind: &str,
    rest: impl IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    let rebuild = py.import("shm")?.getattr("_rebuild")?;
    Ok((rebuild, handle_args(py, kind, rest)?))
}
