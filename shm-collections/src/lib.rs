//! # shm-collections
//!
//! Collections in shared memory, for processes that cooperate like Python's
//! `multiprocessing` workers.
//!
//! - [`ShareableList`]: CPython's `multiprocessing.shared_memory.ShareableList`, byte
//!   for byte: a list of `int`, `float`, `bool`, `str`, `bytes` and `None` items
//!   ([`Item`]) that Rust and Python processes share by name.
//! - [`LockedShareableList`]: the same list plus a robust process-shared lock in a
//!   companion segment, for lists that several Rust processes write.
//! - [`Value`], [`RawValue`], [`AtomicValue`]: one `T: Pod` in shared memory, with a
//!   robust process-shared lock (CPython's `Value`), without (`RawValue`), or updated
//!   with atomic instructions (integers: `fetch_add`, `compare_exchange`...).
//! - [`Array`], [`RawArray`]: a fixed-length `[T]` with or without a lock; the lock's
//!   guard derefs to `&mut [T]`, bulk copies are `memcpy`s.
//!
//! Every object is opened by name with its element type checked: a `Value<u64>`
//! opened as a `Value<f32>` is an error, not a reinterpretation. A process killed while
//! holding a `Value`'s or `Array`'s lock is reported to the next locker
//! ([`shm_sync::LockError::OwnerDied`]) instead of blocking it.
//!
//! ```
//! use shm_collections::{Item, ShareableList};
//! let mut sl = ShareableList::create([Item::from("howdy"), 42.into(), Item::None])?;
//! sl.set(1, 43)?;
//! let peer = ShareableList::open(sl.name().unwrap())?; // in another process, by name
//! assert_eq!(peer.get(1)?, Item::Int(43));
//! # Ok::<(), shm_collections::ListError>(())
//! ```

mod array;
mod cell;
mod locked_list;
mod shareable_list;
mod value;

pub use array::{Array, RawArray};
pub use cell::{AtomicInt, CellError, CellGuard, CellResult};
pub use locked_list::{LOCK_SUFFIX, ListGuard, LockedListError, LockedShareableList};
pub use shareable_list::{IntOutOfRange, Item, ItemTypeError, Iter, ListError, ShareableList};
pub use value::{AtomicValue, RawValue, Value};
