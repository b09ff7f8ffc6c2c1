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
    Shm(#[from] shm_core::Error),

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

    /// An integer outside the signed 64-bit range of CPython's `q` format was given
    /// to [`set`](super::ShareableList::set) or [`create`](super::ShareableList::create)
    /// (CPython raises `struct.error`); nothing was written.
    #[error(transparent)]
    IntOutOfRange(#[from] IntOutOfRange),

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

impl From<std::convert::Infallible> for ListError {
    /// Lets conversions that cannot fail (`From<T> for Item`) pass through the same
    /// `TryInto` bound as those that can.
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// An integer that does not fit a ShareableList `int` item: CPython stores ints with
/// the `struct` format `q`, a signed 64-bit integer, and refuses others
/// (`struct.error`: "argument out of range" up to 3.11, "'q' format requires
/// -9223372036854775808 <= number <= 9223372036854775807" from 3.12).
///
/// Returned by the `TryFrom` conversions of `u64`, `usize`, `isize`, `i128` and `u128`
/// into [`Item`](super::Item).
///
/// ```
/// use shm_collections::{IntOutOfRange, Item};
/// let err: IntOutOfRange = Item::try_from(u64::MAX).unwrap_err();
/// assert_eq!(err.value(), "18446744073709551615");
/// assert_eq!(err.type_name(), "u64");
/// assert_eq!(
///     err.to_string(),
///     "u64 value 18446744073709551615 is out of range for a ShareableList int: \
///      CPython's format 'q' holds -9223372036854775808..=9223372036854775807 \
///      (CPython: struct.error)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{type_name} value {value} is out of range for a ShareableList int: CPython's format 'q' \
     holds {min}..={max} (CPython: struct.error)",
    min = i64::MIN,
    max = i64::MAX
)]
pub struct IntOutOfRange {
    value: String,
    type_name: &'static str,
}

impl IntOutOfRange {
    /// The smallest int an item holds.
    ///
    /// ```
    /// assert_eq!(shm_collections::IntOutOfRange::MIN, i64::MIN);
    /// ```
    pub const MIN: i64 = i64::MIN;
    /// The largest int an item holds.
    ///
    /// ```
    /// assert_eq!(shm_collections::IntOutOfRange::MAX, i64::MAX);
    /// ```
    pub const MAX: i64 = i64::MAX;

    pub(crate) fn new(value: impl std::fmt::Display, type_name: &'static str) -> Self {
        Self {
            value: value.to_string(),
            type_name,
        }
    }

    /// The refused value, in decimal.
    ///
    /// ```
    /// let err = shm_collections::Item::try_from(i128::MIN).unwrap_err();
    /// assert_eq!(err.value(), i128::MIN.to_string());
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The Rust type the value had: `"u64"`, `"usize"`, `"isize"`, `"i128"` or `"u128"`.
    ///
    /// ```
    /// let err = shm_collections::Item::try_from(u128::MAX).unwrap_err();
    /// assert_eq!(err.type_name(), "u128");
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// An [`Item`](super::Item) converted into a Rust type it does not hold (the
/// `TryFrom<Item>` conversions into `i64`, `f64`, `bool`, `String`, `Vec<u8>`, ...).
/// Conversions are strict, as types are in Python's `struct`: a `bool` item is not
/// an `i64`, an `int` item is not an `f64`.
///
/// ```
/// use shm_collections::{Item, ItemTypeError};
/// let err = i64::try_from(Item::from("42")).unwrap_err();
/// assert_eq!(err, ItemTypeError { expected: "int", found: "str" });
/// assert_eq!(err.to_string(), "expected a ShareableList item of type int, found str");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a ShareableList item of type {expected}, found {found}")]
pub struct ItemTypeError {
    /// The Python type the conversion needs: `int`, `float`, `bool`, `str` or `bytes`.
    pub expected: &'static str,
    /// The Python type of the item: `int`, `float`, `bool`, `str`, `bytes` or
    /// `NoneType`.
    pub found: &'static str,
}

/// `Result` with [`ListError`].
pub type Result<T, E = ListError> = std::result::Result<T, E>;
