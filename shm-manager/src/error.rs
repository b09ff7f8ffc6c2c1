//! [`ManagerError`]: what can go wrong with a manager, its registry and its arenas.

use shm_collections::RegionError;

/// What went wrong, naming the manager or key and what was expected and found.
///
/// ```
/// use shm_manager::{ManagerError, SharedMemoryManager};
/// let err = SharedMemoryManager::connect("no-such-manager-doc").unwrap_err();
/// assert!(matches!(err, ManagerError::NotFound { .. }));
/// assert!(err.to_string().contains("no-such-manager-doc"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A manager name breaks the naming rule (1..=64 characters of `[A-Za-z0-9_-]`).
    #[error("invalid manager name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No manager of this name exists (its root segment is missing).
    #[error("no manager named {name:?} (expected its root segment {root:?} in /dev/shm)")]
    NotFound {
        /// The manager's name.
        name: String,
        /// The root segment looked for.
        root: String,
    },
    /// A live manager of this name exists already.
    #[error(
        "a manager named {name:?} exists already and its owner (pid {pid}) is not provably dead"
    )]
    AlreadyExists {
        /// The manager's name.
        name: String,
        /// The owner's pid (in its PID namespace).
        pid: u32,
    },
    /// The manager's owner is provably dead: its objects are (being) removed.
    #[error("the owner of manager {name:?} (pid {pid}) is dead: expected a live owner")]
    OwnerDead {
        /// The manager's name.
        name: String,
        /// The dead owner's pid (in its PID namespace).
        pid: u32,
    },
    /// The key names an object of another kind, both given in plain words:
    /// `expected Queue<String>, found Dict<String, u64>`.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.dict::<String, u64>("jobs")?;
    /// let err = m.queue::<String>("jobs", 8, 1024).unwrap_err();
    /// assert!(err.to_string().ends_with("expected Queue<String>, found Dict<String, u64>"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("key {key:?} of manager {manager:?}: expected {expected}, found {found}")]
    WrongKind {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
        /// What was asked for (`Queue<String>`).
        expected: String,
        /// What is registered (`Dict<String, u64>`).
        found: String,
    },
    /// The key names an object of the right kind but another element type (or layout
    /// version). Both are given in plain words: `expected Value<u64>, found Value<i32>`.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.value("done", 0)?; // an i32
    /// let err = m.value("done", 0u64).unwrap_err();
    /// assert!(err.to_string().ends_with("expected Value<u64>, found Value<i32>"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("key {key:?} of manager {manager:?}: expected {expected}, found {found}")]
    WrongType {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
        /// The type asked for (`Value<u64>`).
        expected: String,
        /// The type registered (`Value<i32>`).
        found: String,
    },
    /// The key names an object of the right kind and type but another size (a queue's
    /// messages and bytes, an array's length, a barrier's parties): opening by key
    /// needs no sizes (see
    /// [`SharedMemoryManager::open_queue`](crate::SharedMemoryManager::open_queue)).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.queue::<String>("jobs", 16, 4096)?;
    /// let err = m.queue::<String>("jobs", 64, 4096).unwrap_err();
    /// assert!(matches!(err, shm_manager::ManagerError::WrongSize { .. }), "{err}");
    /// assert!(err.to_string().contains("64 messages") && err.to_string().contains("16 messages"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("key {key:?} of manager {manager:?}: expected {expected}, found {found}")]
    WrongSize {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
        /// The size asked for.
        expected: String,
        /// The size of the registered object.
        found: String,
    },
    /// Nothing is registered under the key (for the open-only accessors).
    #[error("key {key:?} of manager {manager:?}: expected a registered object, found none")]
    NoSuchKey {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
    },
    /// A registry entry or an arena breaks its invariants (a hostile or corrupted
    /// segment).
    #[error("manager {manager:?} is corrupted: {what}")]
    Corrupted {
        /// The manager's name.
        manager: String,
        /// What is wrong.
        what: String,
    },
    /// The options cannot be honoured for this object type.
    #[error("key {key:?} of manager {manager:?}: {what}")]
    Unsupported {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
        /// What was asked.
        what: &'static str,
    },
    /// The manager was shut down: it creates and opens nothing more.
    #[error("manager {name:?} is shut down")]
    ShutDown {
        /// The manager's name.
        name: String,
    },
    /// The crash-cleanup tracker process could not be started.
    #[error("manager {name:?}: starting the tracker process failed: {source}")]
    Tracker {
        /// The manager's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Creating or opening the object of a key failed in its own type.
    #[error("key {key:?} of manager {manager:?}: {source}")]
    Object {
        /// The manager's name.
        manager: String,
        /// The key.
        key: String,
        /// The object type's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The registry (a shared dict) failed.
    #[error(transparent)]
    Registry(#[from] RegionError),
    /// A segment operation failed.
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
}

/// `Result` with [`ManagerError`].
///
/// ```
/// fn open_jobs(name: &str) -> shm_manager::Result<shm_manager::SharedMemoryManager> {
///     shm_manager::SharedMemoryManager::connect(name)
/// }
/// assert!(open_jobs("doc-result-none").is_err());
/// ```
pub type Result<T, E = ManagerError> = std::result::Result<T, E>;
