//! What `Value` and `Array` share: the layout offsets, the error type, and the integer
//! types with atomic fast paths. Their locks hand out [`shm_sync::MutexGuard`], the one
//! guard layer of the workspace.

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize, Ordering,
};

use shm_sync::{LockError, RawError};

/// Layout version of `Value`, `RawValue`, `AtomicValue`, `Array` and `RawArray`.
pub(crate) const CELL_LAYOUT_VERSION: u32 = 1;

/// Payload offset of the lock (unused by the raw variants, which keep the same layout).
pub(crate) const LOCK_OFFSET: usize = 0;
/// Payload offset of an array's length (u64).
pub(crate) const LEN_OFFSET: usize = 16;
/// Payload offset of the data: 64, so any element alignment up to 64 is satisfied
/// (payloads are 64-byte aligned).
pub(crate) const DATA_OFFSET: usize = 64;
/// Largest element alignment these layouts support.
pub(crate) const MAX_ALIGN: usize = 64;

/// What went wrong with a [`Value`](crate::Value) or [`Array`](crate::Array) (and their
/// raw and atomic variants). Variants name the object's segment.
///
/// ```
/// use shm_collections::{Array, CellError};
/// let a = Array::<u32>::create(4)?;
/// let err = a.get(9).unwrap_err();
/// assert!(matches!(err, CellError::IndexOutOfRange { index: 9, len: 4, .. }));
/// # Ok::<(), CellError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    /// Creating or opening the segment failed (not found, wrong kind or element type,
    /// wrong layout version, truncated...).
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
    /// An index past the end.
    #[error("index {index} out of range for {name} of length {len}")]
    IndexOutOfRange {
        /// The object.
        name: String,
        /// The index asked for.
        index: usize,
        /// The length.
        len: usize,
    },
    /// A range of elements past the end.
    #[error("elements {start}..{start}+{count} out of range for {name} of length {len}")]
    RangeOutOfBounds {
        /// The object.
        name: String,
        /// First element of the range.
        start: usize,
        /// Number of elements.
        count: usize,
        /// The length.
        len: usize,
    },
    /// A holder of the lock died (now or earlier) and nobody has marked the data
    /// consistent since: the value may be half-written. Take the lock with `lock()`,
    /// repair, and call the guard's `mark_consistent`.
    #[error(
        "{name}: a process died while holding its lock; repair it through lock() and mark_consistent()"
    )]
    Inconsistent {
        /// The object.
        name: String,
    },
    /// The lock was not available in time (timed and `try_` operations).
    #[error("{name}: {source}")]
    Lock {
        /// The object.
        name: String,
        /// Timeout, would block, would deadlock, or corrupted lock state.
        #[source]
        source: RawError,
    },
    /// An element type these layouts cannot hold.
    #[error(
        "element type {} has alignment {align}, at most {MAX_ALIGN} is supported",
        shm_core::short_type_name(type_name)
    )]
    UnsupportedType {
        /// The type.
        type_name: &'static str,
        /// Its alignment.
        align: usize,
    },
    /// The segment's own length field disagrees with its size.
    #[error("{name} is corrupted: {what}")]
    Corrupted {
        /// The object.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// Result with [`CellError`].
pub type CellResult<T> = std::result::Result<T, CellError>;

pub(crate) fn check_align<T>() -> CellResult<()> {
    if align_of::<T>() > MAX_ALIGN {
        return Err(CellError::UnsupportedType {
            type_name: std::any::type_name::<T>(),
            align: align_of::<T>(),
        });
    }
    Ok(())
}

/// Lock failures of the convenience methods (`get`, `set`...), which take the lock
/// and release it again.
#[cold]
pub(crate) fn convenience_error<G>(err: LockError<G>, name: &str) -> CellError {
    let name = name.to_owned();
    match err {
        LockError::OwnerDied(_) | LockError::Inconsistent(_) => CellError::Inconsistent { name },
        LockError::Timeout { .. } => CellError::Lock {
            name,
            source: RawError::Timeout,
        },
        LockError::WouldBlock { .. } => CellError::Lock {
            name,
            source: RawError::WouldBlock,
        },
        LockError::WouldDeadlock { .. } => CellError::Lock {
            name,
            source: RawError::WouldDeadlock,
        },
        other => CellError::Corrupted {
            name,
            what: other.to_string(),
        },
    }
}

/// Integer types whose `Value`s offer lock-free atomic operations (see
/// [`AtomicValue`](crate::AtomicValue)). Sealed: implemented for the primitive integers.
pub trait AtomicInt: bytemuck::Pod + sealed::Sealed {
    /// The matching `std::sync::atomic` type.
    type Atomic: Sync;
    #[doc(hidden)]
    fn load(a: &Self::Atomic) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self);
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_add(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn compare_exchange(a: &Self::Atomic, current: Self, new: Self) -> Result<Self, Self>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! atomic_int {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicInt for $t {
            type Atomic = $a;
            fn load(a: &$a) -> $t { a.load(Ordering::SeqCst) }
            fn store(a: &$a, v: $t) { a.store(v, Ordering::SeqCst) }
            fn swap(a: &$a, v: $t) -> $t { a.swap(v, Ordering::SeqCst) }
            fn fetch_add(a: &$a, v: $t) -> $t { a.fetch_add(v, Ordering::SeqCst) }
            fn fetch_sub(a: &$a, v: $t) -> $t { a.fetch_sub(v, Ordering::SeqCst) }
            fn compare_exchange(a: &$a, current: $t, new: $t) -> Result<$t, $t> {
                a.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
            }
        }
        const _: () = assert!(size_of::<$t>() == size_of::<$a>() && align_of::<$t>() == align_of::<$a>());
    )*};
}

atomic_int! {
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize,
}
