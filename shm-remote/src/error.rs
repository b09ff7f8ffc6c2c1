//! [`Error`]: the one error type of both backends. The shared-memory types' errors
//! ([`RegionError`], [`CellError`], [`LockError`], [`ManagerError`]) and the Redis
//! client's are mapped into the same variants, so that code written against the
//! traits of [`api`](crate::api) matches on one set of kinds whatever the address.

use std::time::Duration;

use shm_collections::{CellError, RegionError};
use shm_manager::ManagerError;
use shm_sync::LockError;

/// Result of every operation of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, on either backend. Messages name the object and what was expected
/// and found.
///
/// ```
/// let err = shm_remote::address::Address::parse("redis://h:notaport/ns").unwrap_err();
/// assert!(matches!(err, shm_remote::Error::InvalidAddress { .. }));
/// assert!(err.to_string().contains("notaport"), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is neither a local manager name nor a well-formed
    /// `redis://[user:password@]host:port/namespace` (or `rediss://`) URL.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address (password replaced by `***`).
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The call did not finish within its timeout (the handle's patience, or the
    /// timeout passed to it). On Redis the outcome of a write is then unknown: the
    /// server may have applied it.
    #[error("{what}: no answer within {waited:?}")]
    Timeout {
        /// The object or server waited for.
        what: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The server cannot be reached, or the connection broke during the call (the
    /// next call reconnects). A write whose reply was lost may have been applied.
    #[error("{address}: disconnected: {reason}")]
    Disconnected {
        /// The server (without credentials).
        address: String,
        /// The client's message.
        reason: String,
    },
    /// The server refused the credentials.
    #[error("{address}: authentication failed: {reason}")]
    Auth {
        /// The server (without credentials).
        address: String,
        /// The server's message.
        reason: String,
    },
    /// The previous holder died holding the lock (a dead local process, or a Redis
    /// lease that expired). The protected data may be half-updated.
    #[error("{name}: the previous holder died while holding it")]
    OwnerDied {
        /// The object.
        name: String,
    },
    /// A bounded container is full.
    #[error("{name} is full")]
    Full {
        /// The object.
        name: String,
    },
    /// Nothing to take.
    #[error("{name} is empty")]
    Empty {
        /// The object.
        name: String,
    },
    /// The object was closed (or removed) by another handle.
    #[error("{name} is closed")]
    Closed {
        /// The object.
        name: String,
    },
    /// The name holds an object of another kind or element type, or (Redis) a key of
    /// another Redis type than the object uses.
    #[error("{name}: expected {expected}, found {found}")]
    WrongType {
        /// The object (key).
        name: String,
        /// What was asked for (`Dict<String, u64>`, or a Redis type `hash`).
        expected: String,
        /// What is there.
        found: String,
    },
    /// Stored bytes are not a valid encoding of the expected type, or the object's
    /// bookkeeping is inconsistent (written by something else).
    #[error("{name} is corrupted: {what}")]
    Corrupted {
        /// The object.
        name: String,
        /// What was found.
        what: String,
    },
    /// A key or value that cannot be encoded.
    #[error("{name}: cannot encode the {what}: {reason}")]
    Encode {
        /// The object.
        name: String,
        /// "key" or "value".
        what: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// An encoded key or value over the limit of the object (or of the server's reply
    /// limit).
    #[error("{name}: the {what} is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// The object.
        name: String,
        /// "key", "value" or "reply".
        what: &'static str,
        /// The size found.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An index past the end of a vec.
    #[error("index {index} out of range for {name} of length {len}")]
    IndexOutOfRange {
        /// The object.
        name: String,
        /// The index asked for.
        index: usize,
        /// The length.
        len: usize,
    },
    /// A Namespace attribute holds another type.
    #[error("{name}: attribute {attr:?} holds a {found}, not a {expected}")]
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
    /// The object (or manager) does not exist.
    #[error("{name}: not found")]
    NotFound {
        /// What was looked for.
        name: String,
    },
    /// An error reply of the server that none of the variants above covers.
    #[error("{address}: server error: {message}")]
    Server {
        /// The server (without credentials).
        address: String,
        /// The server's reply.
        message: String,
    },
    /// A shared-memory error that none of the variants above covers (a segment that
    /// cannot be created, a name rule, ...), kept whole.
    #[error(transparent)]
    Local(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Whether retrying later may succeed: [`Timeout`](Error::Timeout) and
    /// [`Disconnected`](Error::Disconnected).
    ///
    /// ```
    /// let e = shm_remote::Error::Disconnected { address: "h:1".into(), reason: "refused".into() };
    /// assert!(e.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Disconnected { .. })
    }
}

impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        match e {
            RegionError::KeyTooLarge { name, len, limit } => Error::TooLarge {
                name,
                what: "key",
                len,
                limit,
            },
            RegionError::ValueTooLarge { name, len, limit } => Error::TooLarge {
                name,
                what: "value",
                len,
                limit,
            },
            RegionError::Encode { name, what, source } => Error::Encode {
                name,
                what,
                reason: source.to_string(),
            },
            RegionError::Decode {
                name,
                what,
                expected,
                source,
            } => Error::Corrupted {
                name,
                what: format!("stored {what} does not decode as {expected}: {source}"),
            },
            RegionError::Corrupted { name, what } => Error::Corrupted { name, what },
            RegionError::IndexOutOfRange { name, index, len } => {
                Error::IndexOutOfRange { name, index, len }
            }
            RegionError::TypeMismatch {
                name,
                attr,
                expected,
                found,
            } => Error::TypeMismatch {
                name,
                attr,
                expected: shm_core::short_type_name(&expected),
                found: shm_core::short_type_name(&found),
            },
            RegionError::Lock { name, source } => match source {
                shm_sync::RawError::Timeout => Error::Timeout {
                    what: name,
                    // The patience is not carried by the error; the message says "within".
                    waited: Duration::ZERO,
                },
                other => Error::Local(Box::new(RegionError::Lock {
                    name,
                    source: other,
                })),
            },
            other => Error::Local(Box::new(other)),
        }
    }
}

/// Maps a lock error of a shared-memory object named `name`; the guard an
/// `OwnerDied` carries is dropped (the lock stays inconsistent for the next locker, as
/// a Redis lease that expired stays "owner died" for the next one).
///
/// ```
/// let m = shm_sync::Mutex::create(0u32).unwrap();
/// let _held = m.lock().unwrap();
/// let e = shm_remote::error::from_lock_error(m.try_lock().unwrap_err(), "m");
/// assert!(matches!(e, shm_remote::Error::Local(_) | shm_remote::Error::Timeout { .. }));
/// ```
pub fn from_lock_error<G>(e: LockError<G>, name: &str) -> Error {
    match e {
        LockError::OwnerDied(_) | LockError::Inconsistent(_) => Error::OwnerDied {
            name: name.to_owned(),
        },
        LockError::Timeout { object, waited } => Error::Timeout {
            what: object.to_string(),
            waited,
        },
        LockError::WouldBlock { object } => Error::Timeout {
            what: object.to_string(),
            waited: Duration::ZERO,
        },
        LockError::WouldDeadlock { object } => Error::Local(
            format!("{object} is already held by the calling thread: waiting would deadlock")
                .into(),
        ),
        LockError::Other(e) => Error::Local(Box::new(e)),
        _ => Error::Local(format!("{name}: lock error").into()),
    }
}

impl From<CellError> for Error {
    fn from(e: CellError) -> Self {
        match e {
            CellError::Inconsistent { name } => Error::OwnerDied { name },
            CellError::Lock {
                name,
                source: shm_sync::RawError::Timeout | shm_sync::RawError::WouldBlock,
            } => Error::Timeout {
                what: name,
                waited: Duration::ZERO,
            },
            CellError::IndexOutOfRange { name, index, len } => {
                Error::IndexOutOfRange { name, index, len }
            }
            CellError::Corrupted { name, what } => Error::Corrupted { name, what },
            other => Error::Local(Box::new(other)),
        }
    }
}

impl From<ManagerError> for Error {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::WrongKind {
                key,
                expected,
                found,
                ..
            }
            | ManagerError::WrongType {
                key,
                expected,
                found,
                ..
            } => Error::WrongType {
                name: key,
                expected,
                found,
            },
            ManagerError::NotFound { name, .. } => Error::NotFound { name },
            ManagerError::Registry(r) => r.into(),
            other => Error::Local(Box::new(other)),
        }
    }
}
