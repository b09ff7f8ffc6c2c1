//! What `shm inspect` reports, its schema: the `--json` form (field names are stable)
//! and what the text form is rendered from ([`super::render()`]). Filled by
//! [`super::probe`].

use serde::Serialize;
use serde_json::Value as Json;

use crate::scan::{Class, Creator};

/// What `shm inspect --json` prints (field names are stable).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The name asked for.
    pub name: String,
    /// What it is (as in `shm ls`).
    pub class: Class,
    /// Kind name, or a description for segments without our header.
    pub kind: String,
    /// Size of the segment in bytes.
    pub size: u64,
    /// The header (objects only).
    pub header: Option<Header>,
    /// The contents, by kind.
    pub contents: Option<Contents>,
    /// Why the contents could not be read (the command then exits with 1).
    pub error: Option<String>,
}

/// An object header, as `shm inspect --json` prints it.
#[derive(Debug, Serialize)]
pub struct Header {
    pub kind: String,
    pub kind_id: u32,
    pub version: u32,
    #[serde(rename = "type")]
    pub type_name: String,
    pub type_tag: String,
    pub elem_size: u32,
    pub elem_align: u32,
    pub total_len: u64,
    pub flags: Vec<&'static str>,
    pub generation: u64,
    pub initialised: bool,
    pub created: u64,
    pub creator: Creator,
    pub manager: Option<String>,
    pub data_of: Option<String>,
}

/// Holder of a lock.
#[derive(Debug, Serialize)]
pub struct HolderView {
    pub tid: u32,
    /// The holder thread's process, when it lives in our PID namespace.
    pub pid: Option<u32>,
    pub alive: &'static str,
}

/// A lock's state.
#[derive(Debug, Serialize)]
pub struct LockView {
    pub locked: bool,
    pub owner_died: bool,
    pub waiters: bool,
    pub holder: Option<HolderView>,
}

/// One record of a dict, vec or namespace.
#[derive(Debug, Serialize)]
pub struct RecordView {
    /// Decoded key (`null` when its type is not known, or for a vec element).
    pub key: Option<Json>,
    pub key_hex: String,
    /// Decoded value (`null` when its type is not known).
    pub value: Option<Json>,
    pub value_hex: String,
    /// A namespace attribute's stored type name.
    pub value_type: Option<String>,
}

/// One item of a ShareableList.
#[derive(Debug, Serialize)]
pub struct ItemView {
    /// Python type name: int, float, bool, str, bytes, NoneType.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// The value (bytes as hex, non-finite floats as strings).
    pub value: Json,
    /// Python `repr`.
    pub repr: String,
}

/// Contents by kind (`"view"` tells which).
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum Contents {
    /// Mutex / Lock.
    Lock(LockView),
    /// Condition: its lock, how many wait on it, and the data it guards.
    Condition {
        lock: LockView,
        /// Threads waiting for a notification (a snapshot).
        waiters: u32,
        /// The data, decoded when its type is a primitive.
        value: Option<Json>,
        data_hex: String,
    },
    /// RwLock: the writers' lock, the read shares held, and the data it guards.
    RwLock {
        writer: LockView,
        /// Read shares held now (a snapshot).
        readers: u32,
        /// Reader slots: the most read shares at once.
        slots: u32,
        /// The data, decoded when its type is a primitive.
        value: Option<Json>,
        data_hex: String,
    },
    /// Event.
    Event { set: bool },
    /// Semaphore / BoundedSemaphore.
    Semaphore { value: u32, max: Option<u32> },
    /// Barrier.
    Barrier {
        parties: u32,
        waiting: u32,
        broken: bool,
    },
    /// Queue, JoinableQueue, SimpleQueue, ByteQueue.
    Queue {
        depth: u64,
        capacity: u64,
        max_message_len: u64,
        closed: bool,
        bytes_used: u64,
        puts: u64,
        gets: u64,
        recovered: u64,
        lost: u64,
        unfinished_tasks: Option<u64>,
    },
    /// ShareableDict, ShareableVec, Namespace.
    Collection {
        entries: u64,
        bytes_used: u64,
        capacity: u64,
        slots: u64,
        generation: u64,
        garbage: u64,
        shown: Vec<RecordView>,
    },
    /// Value, RawValue, AtomicValue, Array, RawArray.
    Cell {
        len: u64,
        elem_size: usize,
        /// Decoded elements (`null` when the type is not a primitive).
        values: Option<Vec<Json>>,
        data_hex: String,
        lock: Option<LockView>,
    },
    /// A CPython-format ShareableList.
    ShareableList { items: Vec<ItemView> },
    /// A growable collection's data segment.
    Data { control: Option<String> },
    /// A manager's root: its owner and registered keys.
    Registry {
        /// The manager NAME.
        manager: String,
        /// The owner (the root's creator) and whether it lives.
        owner: Creator,
        /// Number of keys.
        keys: usize,
        /// Every key with its kind, type, location and state.
        entries: Vec<KeyView>,
    },
    /// A manager's arena: bytes handed out and the registered objects in it.
    Arena {
        /// Bytes handed out to objects (headers and padding included).
        used: u64,
        /// Bytes the arena can hand out in all.
        capacity: u64,
        /// The registered objects in this arena, by offset.
        objects: Vec<KeyView>,
    },
    /// Nothing more to show.
    None { reason: String },
}

/// One registered key, as `shm inspect` of a manager root or an arena shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The registry key.
    pub key: String,
    /// Kind name recorded in the registry.
    pub kind: String,
    /// Kind number recorded in the registry.
    pub kind_id: u32,
    /// Element type name recorded in the registry.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `segment` or `segment@offset`.
    pub location: String,
    /// Kept past the manager (`track = false`).
    pub keep: bool,
    /// Whether it lives in an arena.
    pub in_arena: bool,
    /// One line of state (value, lock state, depth...), when it could be read.
    pub state: Option<String>,
    /// Why the object could not be read.
    pub error: Option<String>,
}
