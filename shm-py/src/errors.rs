//! Exception types of `shm` and the mapping of the workspace's Rust errors onto the
//! exceptions Python users expect (FileNotFoundError, FileExistsError, TimeoutError,
//! TypeError, ValueError, ...), with `shm.ShmError` for the rest.
//!
//! ```
//! let e = shm_core::Error::NotFound { name: "psm_x".into() };
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let err = _shm::errors::core_err(e);
//!     assert!(err.is_instance_of::<pyo3::exceptions::PyFileNotFoundError>(py));
//! });
//! ```

use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyMemoryError, PyOSError,
    PyRuntimeWarning, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;

create_exception!(
    shm,
    ShmError,
    PyException,
    "Base of shm's own errors (a corrupted or foreign segment, a full participant table, ...)."
);
create_exception!(
    shm,
    OwnerDiedWarning,
    PyRuntimeWarning,
    "Warned by an acquire that recovered a lock whose holder died while holding it."
);

use pyo3::exceptions::PyRuntimeError;

/// Adds the exception types to the module.
///
/// ```
/// use pyo3::prelude::*;
/// pyo3::Python::initialize();
/// Python::attach(|py| {
///     let m = pyo3::types::PyModule::new(py, "m").unwrap();
///     _shm::errors::register(&m).unwrap();
///     assert!(m.getattr("OwnerDiedWarning").is_ok());
/// });
/// ```
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ShmError", py.get_type::<ShmError>())?;
    m.add("OwnerDiedWarning", py.get_type::<OwnerDiedWarning>())?;
    Ok(())
}

/// Maps a shm-core error onto the Python exception a user expects.
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let e = _shm::errors::core_err(shm_core::Error::AlreadyExists { name: "psm_x".into() });
///     assert!(e.is_instance_of::<pyo3::exceptions::PyFileExistsError>(py));
/// });
/// ```
pub fn core_err(e: shm_core::Error) -> PyErr {
    use shm_core::Error as E;
    let msg = e.to_string();
    match e {
        E::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        E::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        E::InvalidName { .. } | E::InvalidSize { .. } | E::Empty { .. } => {
            PyValueError::new_err(msg)
        }
        E::NoSpace { .. } => PyMemoryError::new_err(msg),
        E::OutOfBounds { .. } => PyIndexError::new_err(msg),
        E::WrongKind { .. } | E::TypeMismatch { .. } => PyTypeError::new_err(msg),
        E::Os { .. } => PyOSError::new_err(msg),
        _ => ShmError::new_err(msg),
    }
}

/// Maps a shm-sync error onto the Python exception a user expects.
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let e = shm_sync::Event::open("psm_no_such_event_here").unwrap_err();
///     assert!(_shm::errors::sync_err(e).is_instance_of::<pyo3::exceptions::PyFileNotFoundError>(py));
/// });
/// ```
pub fn sync_err(e: shm_sync::Error) -> PyErr {
    use shm_sync::Error as E;
    match e {
        E::Shm(e) => core_err(e),
        E::Timeout { .. } => PyTimeoutError::new_err(e.to_string()),
        E::NotOwner { .. } => PyRuntimeError::new_err(e.to_string()),
        E::WouldDeadlock { .. } => PyRuntimeError::new_err(e.to_string()),
        E::OverRelease { .. } => PyValueError::new_err(e.to_string()),
        _ => ShmError::new_err(e.to_string()),
    }
}

/// Any other error: `shm.ShmError` with its message.
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let e = _shm::errors::other_err("odd");
///     assert!(e.is_instance_of::<_shm::errors::ShmError>(py));
/// });
/// ```
pub fn other_err(e: impl std::fmt::Display) -> PyErr {
    ShmError::new_err(e.to_string())
}
