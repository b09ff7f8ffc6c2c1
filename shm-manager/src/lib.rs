//! # shm-manager
//!
//! Lifetimes of shared objects: a scoped [`SharedMemoryManager`] that removes
//! everything it created when it shuts down, is dropped or its process dies (even by
//! `kill -9`); arenas that pack many small objects into one segment; and a registry in
//! which processes find objects by key with their kind and element type checked:
//! CPython's `SharedMemoryManager` and `Manager()` without a server process.
//!
//! ```
//! use shm_manager::SharedMemoryManager;
//! let m = SharedMemoryManager::new()?;               // owner: starts the tracker
//! let jobs = m.queue::<String>("jobs", 64, 1 << 16)?;
//! let done = m.value("done", 0u64)?;                  // lives in an arena
//! jobs.put(&"resize a.png".to_string())?;
//!
//! // In a worker process (given the name `m.name()`):
//! let w = SharedMemoryManager::connect(m.name())?;
//! let job = w.open_queue::<String>("jobs")?.get()?;   // opened by key: no sizes
//! w.value("done", 0u64)?.update(|n| *n += 1)?;
//! assert_eq!((job.as_str(), done.get()?), ("resize a.png", 1));
//! drop(w);                                            // attachers remove nothing
//!
//! let root = m.root_name().to_owned();
//! m.shutdown()?;                                      // the owner removes everything
//! assert!(shm_core::Segment::open(&root).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Names
//!
//! A manager has a name: 1..=64 characters of `[A-Za-z0-9_-]`, or 16 random hex
//! digits ([`SharedMemoryManager::new`]). It owns every segment named
//! `shm-rs.m.NAME` (the root, a [`ShareableDict<String, Entry>`](Registry)) or
//! `shm-rs.m.NAME.<suffix>`: arenas `.a<N>`, objects in their own segment
//! `.o<16 hex>`, and their growth segments `.g<hex>.<16 hex incarnation>` appended by shm-collections.
//! Objects kept past the manager are `shm-rs.k.NAME.o<16 hex>` and carry
//! [`Flags::KEEP`](shm_core::Flags::KEEP). The root header's creator is the owner;
//! tools judge every segment under the prefix by the owner's liveness. A creator word
//! that names no possible process (outside `1..pid_max`, see
//! [`is_valid_pid`](shm_core::identity::is_valid_pid)) is a damaged header, not a dead
//! owner: its liveness is unknown, so neither [`SharedMemoryManager::named`] nor
//! `shm gc` removes that manager (`shm rm` does, on request).
//!
//! ## Lifetimes
//!
//! - **Owner** ([`new`](SharedMemoryManager::new), [`named`](SharedMemoryManager::named)):
//!   on [`shutdown`](SharedMemoryManager::shutdown) or drop it unlinks every segment
//!   under its prefix, found by scanning `/dev/shm` (so also what other processes
//!   created through the registry, and the growth segments of dicts). Processes that
//!   have objects open keep using them (a mapping outlives its name); nobody can open
//!   them any more.
//! - **Attacher** ([`connect`](SharedMemoryManager::connect)): finds and creates
//!   objects by key, and never unlinks anything on drop (CPython's resource tracker
//!   unlinked what a process merely attached to, gh-82300). Connecting to a manager
//!   whose owner is provably dead is [`ManagerError::OwnerDead`]; liveness uses the
//!   root header's creator identity with its start-time token, never a bare pid.
//! - **Kept objects** ([`ObjectOptions::keep`], CPython's `track=False`): outside the
//!   prefix, so neither the owner, the tracker nor `shm gc` removes them; unlink them
//!   yourself.
//!
//! ## The tracker (crash cleanup without changing `main`)
//!
//! Creating an owning manager forks a tracker process (a double fork, so it is
//! reparented to init or a subreaper and the owner reaps the intermediate child: no
//! zombie). The tracker calls `setsid` (Ctrl-C and signals to the owner's process
//! group do not reach it), closes every descriptor but two, and blocks in `read` on a
//! pipe whose write end (`O_CLOEXEC`) only the owner holds. When the owner exits for
//! any reason, `kill -9` included, the kernel closes that end; `read` returns 0 and the
//! tracker unlinks every `/dev/shm` entry named `shm-rs.m.NAME.*`, then the root
//! `shm-rs.m.NAME`, then `shm-rs.m.NAME.*` once more (all again 100 ms later, for a
//! segment a dying writer created behind the first sweep), then exits. Measured: a killed owner's segments are gone within a few milliseconds
//! (the slowest of 100 trials: 15 to 26 ms from run to run). Creating an owner costs
//! the fork and the reaping of the intermediate child: 0.3 to 18 ms on a loaded 2-core
//! VM (0.1 ms without a tracker). The tracker unmaps every shared mapping it
//! inherited, so it never keeps a segment's memory alive. The owner's own shutdown
//! unlinks first and then closes the pipe, so the tracker finds nothing left. Between `fork` and `_exit` the child makes only raw
//! async-signal-safe syscalls on memory prepared before the fork (the owner may be
//! multi-threaded).
//!
//! Limits:
//! - a `kill -9` of the tracker itself, or a kill of its session or cgroup (a
//!   container or systemd unit stopped with everything in it, the OOM killer taking
//!   the whole cgroup), leaves the segments: `shm gc` removes them, judging the root's
//!   owner dead;
//! - a process the owner forks *without* `exec` inherits the pipe's write end, so the
//!   tracker waits for it too (an `exec` closes it: spawned commands are fine); its
//!   copy of the manager removes nothing when dropped (only the creating pid sweeps);
//! - the owner killed while it creates its root, before the tracker is forked (the
//!   first 0.3 to 3 ms of [`new`](SharedMemoryManager::new) /
//!   [`named`](SharedMemoryManager::named), mostly the fork itself) leaves no
//!   tracker: the root is built complete in an unnamed `O_TMPFILE` file and linked to
//!   its name (`linkat`, which never replaces a name) only then, so the name never
//!   shows a half-made root; a root linked before the kill names its dead creator, so
//!   `shm gc` and the next [`named`](SharedMemoryManager::named) remove it, and a
//!   registry data segment made before the link is an orphan (its root never
//!   appeared) that both remove too;
//! - sweeps remove the root last (a sweep killed half way leaves the root, whose dead
//!   owner makes `shm gc` remove the rest), then pass over the children once more; an
//!   attacher that created an object checks afterwards that the root still exists (if
//!   not, it removes the manager's leftovers and reports [`ManagerError::ShutDown`]),
//!   so what it made before that check is found by the pass after the root. A dict an
//!   attacher keeps growing after the owner died can add a data segment after the
//!   tracker's last sweep (100 ms after the first): `shm gc` removes segments under
//!   `shm-rs.m.NAME.` whose root is gone (orphans);
//! - the tracker shares the owner's private memory as it was at the fork
//!   (copy-on-write): pages the owner rewrites later are duplicated and the tracker
//!   keeps the originals. Create managers early, while the heap is small.
//!
//! [`ManagerOptions::tracker`] turns the tracker off.
//!
//! ## Arenas: many small objects, cheaply
//!
//! Small objects of the kinds that can live at an offset (every shm-sync kind:
//! locks, mutexes, events, semaphores, conditions, barriers, rwlocks; `Value`s and
//! arrays of at most [`SMALL_OBJECT_MAX`] bytes) are packed into arena segments
//! `shm-rs.m.NAME.a<N>` of [`ARENA_LEN`] bytes, with
//! [`SharedObject::create_at`](shm_core::SharedObject::create_at). An object takes the
//! 64-byte compact header of shm-core ([`COMPACT_HEADER_LEN`](shm_core::COMPACT_HEADER_LEN):
//! kind, version, lengths, type fingerprint, flags, creator; the names are in the
//! registry) plus its payload, rounded up to 64 bytes so that no two objects share a
//! cache line: a `Mutex<u64>`, `Lock` or `Event` 128 bytes, a `Value<u64>` 192 (its lock
//! has a cache line of its own), instead of a 4 KiB page, a mapping and a descriptor
//! each; a process maps each arena once. Measured (`tests/footprint.rs`, which asserts
//! it stays under 420): 10^5 `Value<u64>` counters take 332 bytes of `/dev/shm` each,
//! 33.2 MB in 21 segments: 199 bytes each in 19 arenas and 132 in the registry (an
//! entry is stored in 32 bytes, its record with the key in 56, and the registry's
//! dict keeps room to grow). Allocation is a compare-and-swap on
//! the arena's bump offset, so processes allocate concurrently; a full arena makes the
//! next one be created with `O_EXCL` (the loser of that race opens it). Arenas never
//! free: an object created by a process that then lost the race for its key stays
//! allocated (a documented small leak), and so does one whose creator died before
//! registering it. Growable collections (dict, vec, namespace), queues and
//! `ShareableList`s get their own segment `shm-rs.m.NAME.o<hex>`.
//!
//! ## The registry
//!
//! [`get_or_create`](SharedMemoryManager::get_or_create) looks the key up; if it is
//! absent it creates and initialises the object first, then registers it with
//! [`ShareableDict::get_or_insert_with`](shm_collections::ShareableDict::get_or_insert_with)
//! (atomic under the dict's robust lock). If another process registered the key first,
//! ours is discarded (unlinked, or left in its arena) and theirs opened. So a
//! registered key always names an initialised object, and every process asking for a
//! key gets the same one. The [`Entry`] records kind, layout version, type fingerprint
//! and location; a mismatch is [`ManagerError::WrongKind`] or
//! [`ManagerError::WrongType`], naming the key, what was expected and what was found.
//!
//! Because a key is registered only once its object (and its arena) is published,
//! opening a key never waits for initialisation: an uninitialised header there is
//! damage, reported at once ([`ManagerError::Corrupted`] for an arena,
//! [`ManagerError::Object`] for an object in its own segment).
//!
//! ## Waiting
//!
//! A manager handle waits for other processes in two places: for an arena that a
//! racing process is still creating (at most the handle's
//! [patience](SharedMemoryManager::set_patience), [`DEFAULT_OPEN_WAIT`](shm_core::DEFAULT_OPEN_WAIT)
//! by default), and for the registry's writer lock while another process writes the
//! registry (creating or registering a key). A holder of that lock in another PID
//! namespace counts as alive, so that wait is as long as the holder takes; see
//! [`SharedMemoryManager::set_patience`] for the list of calls. The objects it hands
//! out have their own timed forms (`lock_timeout`, `get_timeout`, ...).

mod arena;
mod error;
mod manager;
mod names;
mod registry;
mod tracker;
mod typed;

pub use arena::{ARENA_LEN, ArenaStats, FIRST_OFFSET, SMALL_OBJECT_MAX};
pub use error::{ManagerError, Result};
pub use manager::{ManagerOptions, ObjectOptions, Placement, SharedMemoryManager};
pub use names::{
    KEPT_PREFIX, MANAGED_PREFIX, MAX_MANAGER_NAME, check_name, is_tracked_by, root_name,
};
pub use registry::{Entry, REGISTRY_LAYOUT, Registry};

/// The object kinds of shm-manager (numbers in [`Kind::MANAGER`](shm_core::Kind::MANAGER)).
///
/// ```
/// assert!(shm_core::Kind::MANAGER.contains(&shm_manager::kinds::ARENA.id()));
/// ```
pub mod kinds {
    use shm_core::Kind;
    /// The registry's entry type (used only as the root dict's value type).
    ///
    /// ```
    /// assert_eq!(shm_manager::kinds::REGISTRY_ENTRY.id(), 0x3001);
    /// ```
    pub const REGISTRY_ENTRY: Kind = Kind::new(0x3001, "RegistryEntry");
    /// An arena segment packing small objects.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.event("e")?;
    /// let info = shm_core::Object::inspect(&format!("{}.a0", m.root_name()))?;
    /// assert_eq!(info.kind, shm_manager::kinds::ARENA.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const ARENA: Kind = Kind::new(0x3002, "Arena");

    /// Every kind this workspace defines (shm-sync's, shm-collections' and these): what
    /// the registry leaves unnamed in its entries and what the `shm` command names.
    ///
    /// ```
    /// use shm_manager::kinds::ALL;
    /// assert!(ALL.contains(&shm_collections::kinds::DICT) && ALL.contains(&shm_manager::kinds::ARENA));
    /// ```
    pub const ALL: &[Kind] = &[
        shm_sync::kinds::MUTEX,
        shm_sync::kinds::RWLOCK,
        shm_sync::kinds::CONDVAR,
        shm_sync::kinds::EVENT,
        shm_sync::kinds::SEMAPHORE,
        shm_sync::kinds::BARRIER,
        shm_sync::kinds::RLOCK,
        shm_sync::kinds::CONDITION,
        shm_collections::kinds::VALUE,
        shm_collections::kinds::ARRAY,
        shm_collections::kinds::QUEUE,
        shm_collections::kinds::PIPE,
        shm_collections::kinds::DICT,
        shm_collections::kinds::VEC,
        shm_collections::kinds::NAMESPACE,
        shm_collections::kinds::GROWTH_DATA,
        REGISTRY_ENTRY,
        ARENA,
    ];
}
