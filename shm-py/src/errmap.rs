//! Error mapping shared by the collection, manager and Redis families: the errors of
//! `shm_collections` regions, of `shm_manager` and of `shm_remote` onto the exceptions
//! Python users expect. Its own module so that `dict` and `manager` (and `remote`) use
//! it without importing each other.
//!
//! ```
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     let e = shm_remote::Error::Timeout { what: "d".into(), waited: std::time::Duration::ZERO };
//!     let err = _shm::errmap::remote_err(e);
//!     assert!(err.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py));
//! });
//! ```

use pyo3::exceptions::{
    PyConnectionError, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyKeyError,
    PyPermissionError, PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use shm_collections::RegionError;
use shm_manager::ManagerError;

use crate::errors;

/// Maps a growable collection's error onto the exception Python users expect.
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let e = shm_collections::RegionError::IndexOutOfRange { name: "v".into(), index: 3, len: 1 };
///     assert!(_shm::errmap::region_err(e).is_instance_of::<pyo3::exceptions::PyIndexError>(py));
/// });
/// ```
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
            PyTimeoutError::new_err(msg)
        }
        RegionError::Lock { ref source, .. }
            if matches!(source, shm_sync::RawError::WouldDeadlock) =>
        {
            PyRuntimeError::new_err(msg)
        }
        _ => errors::other_err(msg),
    }
}

/// `ValueError: <what> is closed` (a handle used after `close()`).
pub(crate) fn closed_err(what: &str) -> PyErr {
    PyValueError::new_err(format!("{what} is closed"))
}

/// Maps a manager's error onto the exception Python users expect.
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let e = shm_manager::ManagerError::NoSuchKey { manager: "m".into(), key: "k".into() };
///     assert!(_shm::errmap::manager_err(e).is_instance_of::<pyo3::exceptions::PyKeyError>(py));
/// });
/// ```
pub fn manager_err(e: ManagerError) -> PyErr {
    let msg = e.to_string();
    match e {
        ManagerError::InvalidName { .. } | ManagerError::ShutDown { .. } => {
            PyValueError::new_err(msg)
        }
        ManagerError::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        ManagerError::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        ManagerError::WrongKind { .. }
        | ManagerError::WrongType { .. }
        | ManagerError::WrongSize { .. } => PyTypeError::new_err(msg),
        ManagerError::NoSuchKey { .. } => PyKeyError::new_err(msg),
        ManagerError::Registry(e) => region_err(e),
        ManagerError::Shm(e) => errors::core_err(e),
        _ => errors::other_err(msg),
    }
}

/// `queue.Full` / `queue.Empty` with `msg` (the stdlib's classes, so `except
/// queue.Empty` catches them).
pub(crate) fn queue_exc(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match py.import("queue").and_then(|m| m.getattr(class)) {
        Ok(t) => PyErr::from_type(t.cast_into().expect("queue.Full/Empty is a type"), msg),
        Err(e) => e,
    }
}

/// Maps an error of the Redis backend (`shm_remote`) onto the exception Python users
/// expect: `TimeoutError`, `ConnectionError` (server down), `PermissionError` (refused
/// credentials), `ValueError` (a bad address, a closed queue, a value too large),
/// `queue.Full`/`queue.Empty`, `TypeError` (another kind or type under that key),
/// `IndexError`, `FileNotFoundError`; `shm.ShmError` for the rest. Messages never
/// carry the password (shm-remote redacts it).
pub fn remote_err(e: shm_remote::Error) -> PyErr {
    use shm_remote::Error as E;
    let msg = e.to_string();
    match e {
        E::InvalidAddress { .. } | E::Closed { .. } | E::Encode { .. } | E::TooLarge { .. } => {
            PyValueError::new_err(msg)
        }
        E::Timeout { .. } => PyTimeoutError::new_err(msg),
        E::Disconnected { .. } => PyConnectionError::new_err(msg),
        E::Auth { .. } => PyPermissionError::new_err(msg),
        E::Full { .. } => Python::attach(|py| queue_exc(py, "Full", msg)),
        E::Empty { .. } => Python::attach(|py| queue_exc(py, "Empty", msg)),
        E::WrongType { .. } | E::TypeMismatch { .. } => PyTypeError::new_err(msg),
        E::IndexOutOfRange { .. } => PyIndexError::new_err(msg),
        E::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        // A shared-memory-family error kept whole (an over-released bounded
        // semaphore, ...): the mapping of its own family.
        E::Local(b) => match b.downcast::<shm_sync::Error>() {
            Ok(e) => errors::sync_err(*e),
            Err(_) => errors::other_err(msg),
        },
        _ => errors::other_err(msg),
    }
}
