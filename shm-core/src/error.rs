//! The one error type of shm-core.

use std::io;
use std::time::Duration;

/// What went wrong, with the segment's name and what was expected and found.
///
/// Every variant names the segment it is about (anonymous segments show as
/// `<anonymous>`), so an error printed far from its cause still says where it came from.
///
/// ```
/// use shm_core::{Error, Segment};
/// let err = Segment::open("shm-doc-no-such-segment").unwrap_err();
/// assert!(matches!(err, Error::NotFound { .. }));
/// assert!(err.to_string().contains("shm-doc-no-such-segment"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name breaks a rule of POSIX shared-memory names.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No segment has this name.
    #[error("no shared-memory segment named {name:?}")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// A segment with this name exists already (create never overwrites).
    #[error("a shared-memory segment named {name:?} exists already")]
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// A length that a segment cannot have.
    #[error("invalid size for segment {name:?}: {len} bytes ({reason})")]
    InvalidSize {
        /// The segment.
        name: String,
        /// The size asked for.
        len: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The segment exists but has length 0: its creator has not sized it (yet).
    #[error("segment {name:?} has length 0: its creator has not sized it")]
    Empty {
        /// The segment.
        name: String,
    },
    /// The shared-memory file system has no room for the pages to reserve.
    #[error(
        "no space for segment {name:?}: {requested} bytes requested, {available} bytes free in /dev/shm"
    )]
    NoSpace {
        /// The segment.
        name: String,
        /// Bytes asked for.
        requested: u64,
        /// Bytes free in the shared-memory file system when the request failed.
        available: u64,
    },
    /// A read or write past the end of the segment.
    #[error(
        "out of bounds in segment {name:?}: {len} bytes at offset {offset}, segment holds {segment_len}"
    )]
    OutOfBounds {
        /// The segment.
        name: String,
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Length of the segment.
        segment_len: usize,
    },
    /// The segment does not start with this workspace's object header.
    #[error(
        "segment {name:?} is not a shm object: expected magic {expected:#018x}, found {found:#018x}"
    )]
    WrongMagic {
        /// The segment.
        name: String,
        /// The magic number this workspace writes.
        expected: u64,
        /// What the segment holds there.
        found: u64,
    },
    /// The object is of another kind (a `Mutex` opened as an `Event`, say).
    #[error("segment {name:?} holds a {found}, expected a {expected}")]
    WrongKind {
        /// The segment.
        name: String,
        /// The kind asked for.
        expected: String,
        /// The kind stored.
        found: String,
    },
    /// The object's layout version is not one this build reads.
    #[error(
        "segment {name:?} holds a {kind} of layout version {found}, this build reads version {expected}"
    )]
    UnsupportedVersion {
        /// The segment.
        name: String,
        /// The object kind.
        kind: String,
        /// The version this build reads.
        expected: u32,
        /// The version stored.
        found: u32,
    },
    /// The object's element type differs from the one asked for.
    #[error(
        "segment {name:?} holds elements of type {}, expected {}",
        crate::short_type_name(found),
        crate::short_type_name(expected)
    )]
    TypeMismatch {
        /// The segment.
        name: String,
        /// The type asked for.
        expected: String,
        /// The type stored.
        found: String,
    },
    /// The segment is shorter than its header or layout says it must be.
    #[error(
        "segment {name:?} is truncated or corrupted: {what}: expected {expected}, found {found}"
    )]
    Truncated {
        /// The segment.
        name: String,
        /// Which quantity disagrees.
        what: &'static str,
        /// What it should be (at least).
        expected: u64,
        /// What was found.
        found: u64,
    },
    /// Data read from the segment breaks the object's invariants.
    #[error("segment {name:?} is corrupted: {what}")]
    Corrupted {
        /// The segment.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// The creator did not finish initialising the object within the wait.
    #[error("segment {name:?} was not initialised within {waited:?}")]
    NotInitialised {
        /// The segment.
        name: String,
        /// How long the open waited.
        waited: Duration,
    },
    /// The object's header was never published and its creator is provably dead (see
    /// [`Liveness::Dead`](crate::identity::Liveness::Dead)): it never will be, so
    /// opening does not wait for it.
    #[error("segment {name:?} was never initialised: its creator (pid {pid}) died first")]
    Abandoned {
        /// The segment.
        name: String,
        /// The dead creator's pid, in its PID namespace.
        pid: u32,
    },
    /// The range already holds an object header: initialising it would overwrite a
    /// (possibly live) object.
    #[error("segment {name:?} already holds an object header; refusing to overwrite it")]
    AlreadyInitialised {
        /// The segment.
        name: String,
    },
    /// The operation does not apply to this object.
    #[error("{name:?}: not supported: {what}")]
    Unsupported {
        /// The object.
        name: String,
        /// What was asked.
        what: &'static str,
    },
    /// The name refers to something that is not a shared-memory segment (a regular
    /// file): a symlink, FIFO, directory, socket or device someone put there.
    #[error("{name:?} is not a shared-memory segment: expected a regular file, found a {found}")]
    NotASegment {
        /// The segment name (or `<anonymous>` for a descriptor).
        name: String,
        /// What it is: `"symlink"`, `"FIFO"`, `"directory"`, `"socket"`,
        /// `"character device"`, `"block device"` or `"file of unknown type"`.
        found: &'static str,
    },
    /// The segment belongs to another user than this process's effective user.
    #[error(
        "segment {name:?} is owned by uid {owner}, expected uid {expected} (this process's effective uid)"
    )]
    ForeignOwner {
        /// The segment.
        name: String,
        /// The uid that owns it.
        owner: u32,
        /// This process's effective uid.
        expected: u32,
    },
    /// An operating-system call failed.
    #[error("{op} failed for segment {name:?}: {source}")]
    Os {
        /// The call (`shm_open`, `mmap`, ...).
        op: &'static str,
        /// The segment.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The OS error behind an [`Error::Os`], with its operation; used by `?` chains
    /// that map `rustix` errors.
    pub(crate) fn os(op: &'static str, name: &str, err: impl Into<io::Error>) -> Self {
        Error::Os {
            op,
            name: name.to_owned(),
            source: err.into(),
        }
    }
}
