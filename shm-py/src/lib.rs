//! `shm._shm`: the native part of the Python package `shm` (PyO3, abi3-py39).
//!
//! The Python package (`python/shm/__init__.py`) re-exports what this module defines and
//! adds the pure-Python glue (pickling's `_rebuild`, `collections.abc` registration). One
//! file per family of objects, each with a `register(m)` that this module's init calls.
//!
//! From Python:
//!
//! ```python
//! import shm
//! seg = shm.SharedMemory(create=True, size=16)
//! seg.buf[0] = 7
//! seg.close(); seg.unlink()
//! ```
//!
//! The Rust items are the glue PyO3 needs; the one Rust-side entry point is the module
//! init (the `_shm` symbol maturin exports), e.g. in a test:
//!
//! ```
//! assert_eq!(_shm::MODULE_NAME, "shm._shm");
//! ```

use pyo3::prelude::*;

pub mod buffer;
pub mod codec;
pub mod dict;
pub mod errmap;
pub mod errors;
pub mod handle;
pub mod list;
pub mod manager;
pub mod pipe;
pub mod queue;
pub mod remote;
pub mod segment;
pub mod sync;
pub mod value;
pub mod wait;

/// The module's dotted name in the Python package (pyproject's `module-name`).
pub const MODULE_NAME: &str = "shm._shm";

/// The module init: one `register` call per family file.
#[pymodule]
fn _shm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    handle::register(m)?;
    wait::register(m)?;
    segment::register(m)?;
    sync::register(m)?;
    value::register(m)?;
    list::register(m)?;
    pipe::register(m)?;
    dict::register(m)?;
    queue::register(m)?;
    manager::register(m)?;
    remote::register(m)?;
    Ok(())
}
