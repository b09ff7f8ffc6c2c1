//! What the growable collections report: errors, salvage reports and statistics.

use shm_sync::RawError;

use crate::codec::CodecError;

/// Errors of the growable collections ([`ShareableDict`](crate::ShareableDict),
/// [`ShareableVec`](crate::ShareableVec), [`Namespace`](crate::Namespace)). Variants
/// name the object.
///
/// ```
/// use shm_collections::{RegionError, ShareableVec};
/// let v = ShareableVec::<u8>::create()?;
/// assert!(matches!(v.set(3, 1), Err(RegionError::IndexOutOfRange { index: 3, len: 0, .. })));
/// # Ok::<(), RegionError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// Creating, opening or mapping a segment failed (not found, wrong kind or type,
    /// no space in /dev/shm, ...).
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
    /// An encoded key over the collection's limit.
    #[error("{name}: the encoded key is {len} bytes, over the limit of {limit}")]
    KeyTooLarge {
        /// The object.
        name: String,
        /// Encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An encoded value over the collection's limit.
    #[error("{name}: the encoded value is {len} bytes, over the limit of {limit}")]
    ValueTooLarge {
        /// The object.
        name: String,
        /// Encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A key or value could not be encoded.
    #[error("{name}: cannot encode the {what}: {source}")]
    Encode {
        /// The object.
        name: String,
        /// "key" or "value".
        what: &'static str,
        /// The codec's message.
        #[source]
        source: CodecError,
    },
    /// Stored bytes did not decode as the expected type.
    #[error("{name}: stored {what} does not decode as {expected}: {source}")]
    Decode {
        /// The object.
        name: String,
        /// "key" or "value".
        what: &'static str,
        /// The Rust type expected.
        expected: &'static str,
        /// The codec's message.
        #[source]
        source: CodecError,
    },
    /// The shared bytes are inconsistent (overwritten by something else).
    #[error("{name} is corrupted: {what}")]
    Corrupted {
        /// The object.
        name: String,
        /// What was found.
        what: String,
    },
    /// The writer lock could not be taken: another writer held it longer than this
    /// handle's patience ([`RawError::Timeout`], see `set_patience`), it would
    /// deadlock (a closure passed to `update` used the same collection), or a
    /// corrupted lock word.
    #[error("{name}: cannot take the writer lock: {source}")]
    Lock {
        /// The object.
        name: String,
        /// Why.
        #[source]
        source: RawError,
    },
    /// An index past the end of a [`ShareableVec`](crate::ShareableVec).
    #[error("index {index} out of range for {name} of length {len}")]
    IndexOutOfRange {
        /// The object.
        name: String,
        /// The index asked for.
        index: usize,
        /// The length.
        len: usize,
    },
    /// A [`Namespace`](crate::Namespace) attribute holds another type.
    #[error(
        "{name}: attribute {attr:?} holds a {}, not a {}",
        shm_core::short_type_name(found),
        shm_core::short_type_name(expected)
    )]
    TypeMismatch {
        /// The object.
        name: String,
        /// The attribute.
        attr: String,
        /// The type asked for.
        expected: String,
        /// The type stored.
        found: String,
    },
    /// The operation needs a named control object (anonymous and arena objects cannot
    /// name their data segments).
    #[error("{name}: {what}")]
    Unsupported {
        /// The object.
        name: String,
        /// What is not supported.
        what: &'static str,
    },
    /// A growth found the names of its next data segments taken by segments that are
    /// not provably this object's (another object's, or a half-made one of a writer
    /// killed while creating it); nothing was removed. `shm ls` shows what they are.
    #[error(
        "{name}: cannot grow: the next data segment names are taken by segments this object did not provably make (left in place): {segments:?}"
    )]
    NameTaken {
        /// The object.
        name: String,
        /// The names tried.
        segments: Vec<String>,
    },
}

/// What [`salvage`](crate::ShareableDict::salvage) did: the intact records were copied
/// into a fresh data segment; these were not.
///
/// ```
/// let d = shm_collections::ShareableDict::<u64, u64>::create()?;
/// d.insert(1, 2)?;
/// let report = d.salvage()?;
/// assert_eq!((report.kept, report.dropped.len()), (1, 0));
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Records copied (entries of a dict or namespace, elements of a vec).
    pub kept: u64,
    /// The records dropped: the slot of a dict or namespace entry, the index of a vec
    /// element (in the old numbering: later elements move down), each with why.
    pub dropped: Vec<(u64, String)>,
    /// The generation the salvaged data was published as.
    pub generation: u64,
}

/// Result of the growable collections.
pub type RegionResult<T> = Result<T, RegionError>;

/// Result of the lock-free read path: the (large, rare) error boxed, so that results
/// handed back through the probe loop and `read_stable` stay a few words.
pub(crate) type Slim<T> = Result<T, Box<RegionError>>;

/// Unboxes a read-path error (for `map_err`, which hands over the box).
#[inline]
#[allow(clippy::boxed_local)]
pub(crate) fn unbox(e: Box<RegionError>) -> RegionError {
    *e
}

/// What [`stats`](crate::ShareableDict::stats) reports.
///
/// ```
/// let d = shm_collections::ShareableDict::<u64, u64>::create()?;
/// d.insert(1, 2)?;
/// d.insert(1, 3)?;
/// let s = d.stats()?;
/// assert_eq!((s.entries, s.generation), (1, 0));
/// assert!(s.garbage > 0 && s.bytes_used <= s.capacity);
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionStats {
    /// Live entries (elements of a vec).
    pub entries: u64,
    /// Bytes of the record area in use (live records and garbage).
    pub bytes_used: u64,
    /// Bytes of the record area.
    pub capacity: u64,
    /// Index slots.
    pub slots: u64,
    /// Data segments published so far (growths, compactions and repairs).
    pub generation: u64,
    /// Bytes of records no longer reachable (overwritten, removed).
    pub garbage: u64,
}
