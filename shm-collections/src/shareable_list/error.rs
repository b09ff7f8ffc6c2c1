//! [`ListError`]: everything a [`ShareableList`](super::ShareableList) operation can
//! report.

/// What went wrong with a [`ShareableList`](super::ShareableList) operation.
///
/// Variants about a list name its segment (`name`), and variants about the layout say
/// what was expected and what was found, so an error printed far from its cause still
/// says where it came from.
///
/// ```
/// use shm_collections::{ListError, ShareableList};
/// let mut sl = ShareableList::create(["abc"])?;           // an 8-byte slot
/// let err = sl.set(0, "a string longer than eight bytes").unwrap_err();
/// assert!(matches!(err, ListError::SlotTooSmall { index: 0, capacity: 8, needed: 32, .. }));
/// assert_eq!(sl.get(0)?.as_str(), Some("abc"));             // nothing was written
/// # Ok::<(), ListError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The segment itself failed: not found, invalid name, out of space, an OS error...
    #[error(transparent)]
    Segment(#[from] shm_core::Error),

    /// The index is not that of an item (negative indices count from the end).
    #[error("index {index} out of range for ShareableList {name:?} of {len} items")]
    IndexOutOfRange {
        /// The list's segment.
        name: String,
        /// The index asked for (negative: counted from the end).
        index: isize,
        /// The number of items.
        len: usize,
    },

    /// A str or bytes value does not fit the slot it is assigned to (slots keep the
    /// size they were created with); nothing was written.
    #[error(
        "item {index} of ShareableList {name:?} holds at most {capacity} bytes, the value needs {needed}"
    )]
    SlotTooSmall {
        /// The list's segment.
        name: String,
        /// The item's index.
        index: usize,
        /// Bytes the slot can hold.
        capacity: usize,
        /// Bytes the (UTF-8 encoded) value needs.
        needed: usize,
    },

    /// A str or bytes value ends in a NUL byte. CPython's format strips trailing NULs
    /// when it reads an item back, so storing the value would silently shorten it.
    #[error(
        "item {index} ({kind}) ends in a NUL byte, which the ShareableList format would strip on reading"
    )]
    TrailingNul {
        /// The item's index.
        index: usize,
        /// `"str"` or `"bytes"`.
        kind: &'static str,
    },

    /// A str or bytes value longer than the format allows (its `<n>s` format must fit
    /// 8 characters, so n <= 9,999,992).
    #[error("item {index} is {len} bytes long, a ShareableList item holds at most {max}")]
    ItemTooLarge {
        /// The item's index.
        index: usize,
        /// The value's length in bytes.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },

    /// The bytes in the segment break the ShareableList layout (another process wrote
    /// garbage, or the segment is not a ShareableList).
    #[error("ShareableList {name:?} is corrupted: {what}: expected {expected}, found {found}")]
    Corrupted {
        /// The list's segment.
        name: String,
        /// Which part of the layout.
        what: String,
        /// What the layout requires.
        expected: String,
        /// What the segment holds.
        found: String,
    },

    /// A str item's bytes are not valid UTF-8.
    #[error("item {index} of ShareableList {name:?} is a str but not valid UTF-8")]
    InvalidUtf8 {
        /// The list's segment.
        name: String,
        /// The item's index.
        index: usize,
    },

    /// The item is of another type than the one asked for (see
    /// [`get_str_into`](super::ShareableList::get_str_into)).
    #[error("item {index} of ShareableList {name:?} is {found}, expected {expected}")]
    TypeMismatch {
        /// The list's segment.
        name: String,
        /// The item's index.
        index: usize,
        /// The type asked for.
        expected: &'static str,
        /// The type stored.
        found: &'static str,
    },

    /// [`index`](super::ShareableList::index) found no item equal to the value
    /// (Python's `ValueError: ... not in list`).
    #[error("{value} is not in ShareableList {name:?}")]
    ValueNotFound {
        /// The list's segment.
        name: String,
        /// The value looked for, in Python's repr.
        value: String,
    },
}

/// `Result` with [`ListError`].
pub type Result<T, E = ListError> = std::result::Result<T, E>;
