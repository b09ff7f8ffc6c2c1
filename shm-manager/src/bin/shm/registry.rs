//! Reading a manager's registry (through the library's own [`Registry`] type), counted
//! so that a listing can show it reads each registry once.

use std::sync::atomic::{AtomicUsize, Ordering};

use shm_core::SharedObject;
use shm_manager::Registry;

/// How many times a registry was read by this process (see [`read_registry`]): a
/// listing reads each manager's registry once, whatever the number of its objects.
pub static REGISTRY_READS: AtomicUsize = AtomicUsize::new(0);

/// The registry of the root `root`: `(key, entry)` pairs sorted by key.
pub fn read_registry(root: &str) -> Result<Vec<(String, shm_manager::Entry)>, String> {
    REGISTRY_READS.fetch_add(1, Ordering::Relaxed);
    let reg = <Registry as SharedObject>::open(root)
        .map_err(|e| format!("not a readable manager registry: {e}"))?;
    let mut pairs: Vec<_> = reg
        .iter()
        .map_err(|e| format!("registry unreadable: {e}"))?
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}
