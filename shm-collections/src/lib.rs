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
//!   guard derefs to `&mut [T]`, bulk copies are racing-safe
//!   word copies (`shm_core::copy_from_shared`) or plain copies under the lock.
//!
//! - [`Queue`], [`JoinableQueue`], [`SimpleQueue`], [`ByteQueue`]: CPython's queues
//!   (`put`/`get`/`put_nowait`/`get_nowait`/`qsize`, `task_done`/`join`) on a lock-free
//!   ring of slots that any number of processes put into and take from; a producer or
//!   consumer killed mid-call loses nothing and blocks nobody (module [`queue`]).
//! - [`Pipe`]: CPython's `Pipe()`, two [`PipeEnd`]s (duplex or one-way) with
//!   `send`/`recv`/`poll`/`close`.
//! - [`ShareableDict`], [`ShareableVec`], [`Namespace`]: what `Manager().dict()`,
//!   `Manager().list()` and `Manager().Namespace()` are used for, without a server
//!   process: serde keys and values, lock-free reads, writes under a robust lock, and
//!   growth without limit while other processes read (module [`region`]).
//! - [`Dynamic`]: one value of the types Python and Rust share (None, bool, int, float,
//!   str, bytes, tuple, list, dict), the element of the collections the Python package
//!   `shm` makes (module [`dynamic`]).
//! - With the `ndarray` feature, module `nd`: numpy-style `ArrayView`s of any shape
//!   over an [`Array`]'s lock guard, and copies in and out of a [`RawArray`].
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
mod pipe;
pub mod queue;
mod shareable_list;
mod value;
#[macro_use]
pub mod region;
pub mod codec;
mod dict;
pub mod dynamic;
pub mod inspect;
mod namespace;
#[cfg(feature = "ndarray")]
pub mod nd;
mod vec;

/// The object kinds of shm-collections (numbers in [`shm_core::Kind::COLLECTIONS`]).
///
/// The variants of one kind share its layout; the header's element type record names
/// the variant (`Value<u64>`, `RawValue<u64>`...), so none opens as another.
///
/// ```
/// use shm_collections::kinds;
/// assert!(shm_core::Kind::COLLECTIONS.contains(&kinds::VALUE.id()));
/// let v = shm_collections::Value::create(1u8)?;
/// assert_eq!(v.object().info().unwrap().kind, kinds::VALUE.id());
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub mod kinds {
    use shm_core::Kind;
    /// [`Value`](crate::Value), [`RawValue`](crate::RawValue) and
    /// [`AtomicValue`](crate::AtomicValue).
    pub const VALUE: Kind = Kind::new(0x2001, "Value");
    /// [`Array`](crate::Array) and [`RawArray`](crate::RawArray).
    pub const ARRAY: Kind = Kind::new(0x2002, "Array");
    /// [`Queue`](crate::Queue), [`JoinableQueue`](crate::JoinableQueue),
    /// [`SimpleQueue`](crate::SimpleQueue) and [`ByteQueue`](crate::ByteQueue).
    pub const QUEUE: Kind = Kind::new(0x2010, "Queue");
    /// The shared object under a [`Pipe`](crate::Pipe)'s two [`PipeEnd`](crate::PipeEnd)s.
    pub const PIPE: Kind = Kind::new(0x2011, "Pipe");
    /// [`ShareableDict`](crate::ShareableDict)'s control object.
    pub const DICT: Kind = Kind::new(0x2020, "Dict");
    /// [`ShareableVec`](crate::ShareableVec)'s control object.
    pub const VEC: Kind = Kind::new(0x2021, "Vec");
    /// [`Namespace`](crate::Namespace)'s control object.
    pub const NAMESPACE: Kind = Kind::new(0x2022, "Namespace");
    /// A data segment of a growable collection (see [`region`](crate::region)).
    pub const GROWTH_DATA: Kind = Kind::new(0x2023, "GrowthData");
}

pub use array::{Array, RawArray};
pub use cell::{AtomicInt, CellError, CellResult};
pub use dict::{DictKey, DictValue, ShareableDict};
pub use dynamic::Dynamic;
pub use locked_list::{LOCK_SUFFIX, ListGuard, LockedListError, LockedShareableList};
pub use namespace::Namespace;
pub use pipe::{Pipe, PipeEnd, PipeOptions};
pub use queue::{
    ByteQueue, DEFAULT_SPIN, JoinableQueue, Message, Queue, QueueError, QueueResult, QueueSize,
    QueueStats, SimpleQueue,
};
pub use region::{Limits, RegionError, RegionResult, RegionStats, SalvageReport};
pub use shareable_list::{IntOutOfRange, Item, ItemTypeError, Iter, ListError, ShareableList};
pub use value::{AtomicValue, RawValue, Value};
pub use vec::{ShareableVec, VecItem};
