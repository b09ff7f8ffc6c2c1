//! [`SharedMemoryManager`]: the scoped owner, its registry accessors and its shutdown.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_collections::Limits;
use shm_core::identity::Liveness;
use shm_core::{
    COMPACT_HEADER_LEN, DEFAULT_OPEN_WAIT, Flags, Kind, Layout, Object, ObjectName, Segment,
    SegmentOptions, SharedObject,
};

use crate::arena::{ArenaStats, Arenas, SMALL_OBJECT_MAX};
use crate::error::{ManagerError, Result};
use crate::names::{
    KEPT_PREFIX, random_hex, random_u64, remove_tracked, root_exists, root_name, tracked_segments,
};
use crate::registry::{Entry, Expected, Registry};
use crate::tracker::Tracker;

/// Where a new object goes.
///
/// ```
/// use shm_manager::{ObjectOptions, Placement};
/// assert_eq!(ObjectOptions::new().placement, Placement::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Small objects of the kinds known to live at an offset (every shm-sync kind,
    /// `Value`, small `Array`s) go into an arena; everything else gets its own segment.
    #[default]
    Auto,
    /// Into an arena if it fits ([`SMALL_OBJECT_MAX`] bytes): for small user types
    /// whose code does not derive other segment names from its own name.
    Arena,
    /// Its own segment `shm-rs.m.NAME.o<hex>`.
    Segment,
}

/// How [`SharedMemoryManager::get_or_create_with`] creates an object it does not find.
///
/// ```
/// use shm_manager::ObjectOptions;
/// let o = ObjectOptions::new().keep(true);
/// assert!(o.keep);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectOptions {
    /// Keep the object past the manager (CPython's `track=False`): named
    /// `shm-rs.k.NAME.o<hex>`, flagged [`Flags::KEEP`], never in an arena, removed by
    /// nobody but you.
    pub keep: bool,
    /// Arena or own segment.
    pub placement: Placement,
}

impl ObjectOptions {
    /// Tracked, placed automatically.
    ///
    /// ```
    /// assert!(!shm_manager::ObjectOptions::new().keep);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the object past the manager (or not).
    ///
    /// ```
    /// assert!(shm_manager::ObjectOptions::new().keep(true).keep);
    /// ```
    pub fn keep(mut self, yes: bool) -> Self {
        self.keep = yes;
        self
    }

    /// Chooses the placement.
    ///
    /// ```
    /// use shm_manager::{ObjectOptions, Placement};
    /// assert_eq!(ObjectOptions::new().placement(Placement::Segment).placement, Placement::Segment);
    /// ```
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
}

/// How to create a manager: [`SharedMemoryManager::new`] and
/// [`named`](SharedMemoryManager::named) use the defaults.
///
/// ```
/// use shm_manager::ManagerOptions;
/// let m = ManagerOptions::new().tracker(false).create()?;
/// assert!(m.is_owner());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerOptions {
    name: Option<String>,
    tracker: bool,
    patience: Option<Duration>,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            name: None,
            tracker: true,
            patience: None,
        }
    }
}

impl ManagerOptions {
    /// An anonymous manager with a tracker.
    ///
    /// ```
    /// let m = shm_manager::ManagerOptions::new().create()?;
    /// assert_eq!(m.name().len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The manager's name (1..=64 characters of `[A-Za-z0-9_-]`).
    ///
    /// ```
    /// let name = format!("doc-opt-{}", std::process::id());
    /// let m = shm_manager::ManagerOptions::new().name(&name).create()?;
    /// assert_eq!(m.name(), name);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether to start the crash-cleanup tracker (default `true`). Without it a
    /// killed owner leaves its segments behind (for `shm gc`).
    ///
    /// ```
    /// let m = shm_manager::ManagerOptions::new().tracker(false).create()?;
    /// assert!(!m.has_tracker());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tracker(mut self, yes: bool) -> Self {
        self.tracker = yes;
        self
    }

    /// The new manager's patience (see [`SharedMemoryManager::set_patience`]); it
    /// also bounds the wait for a stale root that another process is still
    /// initialising when the name is taken.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = shm_manager::ManagerOptions::new().patience(Some(Duration::from_secs(2))).create()?;
    /// assert_eq!(m.patience(), Some(Duration::from_secs(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn patience(mut self, patience: Option<Duration>) -> Self {
        self.patience = patience;
        self
    }

    /// Creates the manager (see [`SharedMemoryManager::named`]).
    ///
    /// ```
    /// let m = shm_manager::ManagerOptions::new().create()?;
    /// assert!(m.keys()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self) -> Result<SharedMemoryManager> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => random_hex()?,
        };
        SharedMemoryManager::create(name, self.tracker, self.patience)
    }
}

/// A scoped owner of shared objects and a registry that finds them by key: CPython's
/// `SharedMemoryManager` and `Manager()` without a server process.
///
/// The process that creates a manager owns it: on [`shutdown`](Self::shutdown) or
/// drop, and if it dies (even by `kill -9`, through the tracker process), every segment
/// named `shm-rs.m.NAME` or `shm-rs.m.NAME.*` is removed. Processes that
/// [`connect`](Self::connect) find objects by key and never remove anything. See the
/// [crate docs](crate) for lifetimes, the tracker and the limits.
///
/// ```
/// use shm_manager::SharedMemoryManager;
/// let m = SharedMemoryManager::new()?;
/// let hits = m.value("hits", 0u64)?;
/// hits.update(|n| *n += 1)?;
/// let peer = SharedMemoryManager::connect(m.name())?; // from any process
/// assert_eq!(peer.value("hits", 0u64)?.get()?, 1);
/// assert!(peer.value("hits", 0u32).is_err()); // another element type
/// drop(peer); // attachers remove nothing
/// assert_eq!(hits.get()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SharedMemoryManager {
    name: String,
    root_name: String,
    root: Registry,
    arenas: Mutex<Arenas>,
    owner: bool,
    /// The owner's pid: a child forked without `exec` that drops its copy of the
    /// manager must not sweep the parent's segments.
    pid: u32,
    tracker: Option<Tracker>,
    shut_down: bool,
    /// [`patience`](Self::patience) in nanoseconds; `u64::MAX` = `None`.
    patience: AtomicU64,
}

/// Nanoseconds of a patience (`u64::MAX`: none).
fn patience_nanos(p: Option<Duration>) -> u64 {
    p.map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
    })
}

impl SharedMemoryManager {
    /// Creates a manager with a fresh random name (16 hex digits) and starts its
    /// tracker.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert!(m.is_owner() && m.has_tracker());
    /// assert_eq!(m.root_name(), format!("shm-rs.m.{}", m.name()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<Self> {
        ManagerOptions::new().create()
    }

    /// Creates the manager `name` and starts its tracker. A root left behind by a
    /// provably dead owner is removed (with its segments) and replaced;
    /// [`ManagerError::AlreadyExists`] if the owner may be alive.
    ///
    /// ```
    /// let name = format!("doc-named-{}", std::process::id());
    /// let m = shm_manager::SharedMemoryManager::named(&name)?;
    /// assert!(shm_manager::SharedMemoryManager::named(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn named(name: &str) -> Result<Self> {
        ManagerOptions::new().name(name).create()
    }

    fn create(name: String, tracker: bool, patience: Option<Duration>) -> Result<Self> {
        let root_name = root_name(&name)?;
        let mut attempts = 0;
        let root = loop {
            // Segments under the prefix while the root is absent are orphans of an
            // earlier creator (one killed before its root was linked leaves its
            // registry's first data segment): removed once the name is ours.
            let before: Vec<String> = tracked_segments(&root_name)
                .into_iter()
                .filter(|n| *n != root_name)
                .collect();
            // Built complete in an unnamed file and linked to the root's name only
            // then (`linkat` never replaces a name): the name never shows a half-made
            // root, and the header names its creator from the first moment.
            let made = shm_collections::region::create_collection_linked::<Registry>(
                &root_name,
                Limits::default(),
                |o| o.set_flags(Flags::TRACKED, true),
            );
            match made {
                Ok(r) => {
                    for n in before {
                        let _ = shm_core::unlink(&n);
                    }
                    break r;
                }
                Err(shm_collections::RegionError::Shm(shm_core::Error::AlreadyExists {
                    ..
                })) if attempts < 3 => {
                    attempts += 1;
                    clear_stale_root(&name, &root_name, patience.unwrap_or(DEFAULT_OPEN_WAIT))?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        root.set_patience(patience);
        // The root is ours (O_EXCL) before a tracker that would sweep its name starts.
        let tracker = if tracker {
            match Tracker::spawn(&name, &root_name) {
                Ok(t) => Some(t),
                Err(e) => {
                    remove_tracked(&root_name);
                    return Err(e);
                }
            }
        } else {
            None
        };
        Ok(SharedMemoryManager {
            name,
            root_name,
            root,
            arenas: Mutex::default(),
            owner: true,
            pid: std::process::id(),
            tracker,
            shut_down: false,
            patience: AtomicU64::new(patience_nanos(patience)),
        })
    }

    /// Attaches to the manager `name` that another process (or this one) created. It
    /// starts no tracker and never unlinks anything. [`ManagerError::NotFound`] if
    /// there is no such manager, [`ManagerError::OwnerDead`] if its owner is provably
    /// dead. `name` is the manager's name or its root segment's (`shm-rs.m.NAME`, what
    /// `shm ls` shows).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let peer = shm_manager::SharedMemoryManager::connect(m.name())?;
    /// assert!(!peer.is_owner() && !peer.has_tracker());
    /// let listed = shm_manager::SharedMemoryManager::connect(m.root_name())?;
    /// assert_eq!(listed.name(), m.name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(name: &str) -> Result<Self> {
        Self::connect_inner(name, None)
    }

    /// As [`connect`](Self::connect), waiting up to `wait` for the manager to appear.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let r = shm_manager::SharedMemoryManager::connect_timeout("doc-never", Duration::from_millis(5));
    /// assert!(matches!(r, Err(shm_manager::ManagerError::NotFound { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_timeout(name: &str, wait: Duration) -> Result<Self> {
        Self::connect_inner(name, Some(wait))
    }

    fn connect_inner(name: &str, wait: Option<Duration>) -> Result<Self> {
        // `shm ls` shows the root segment's name: take it as well as the bare name.
        let name = name.strip_prefix('/').unwrap_or(name);
        let name = name.strip_prefix(crate::MANAGED_PREFIX).unwrap_or(name);
        let root_name = root_name(name)?;
        let opened = match wait {
            None => <Registry as SharedObject>::open(&root_name),
            Some(w) => <Registry as SharedObject>::open_timeout(&root_name, w),
        };
        let root = match opened {
            Ok(r) => r,
            Err(shm_collections::RegionError::Shm(shm_core::Error::NotFound { .. })) => {
                return Err(ManagerError::NotFound {
                    name: name.to_owned(),
                    root: root_name,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let m = SharedMemoryManager {
            name: name.to_owned(),
            root_name,
            root,
            arenas: Mutex::default(),
            owner: false,
            pid: std::process::id(),
            tracker: None,
            shut_down: false,
            patience: AtomicU64::new(patience_nanos(None)),
        };
        m.check_owner()?;
        Ok(m)
    }

    /// [`ManagerError::OwnerDead`] if the root's creator is provably dead.
    fn check_owner(&self) -> Result<()> {
        if let Some(info) = self.root.object().info() {
            if info.creator.liveness() == Liveness::Dead {
                return Err(ManagerError::OwnerDead {
                    name: self.name.clone(),
                    pid: info.creator.id,
                });
            }
        }
        Ok(())
    }

    /// The manager's name.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert!(m.name().bytes().all(|b| b.is_ascii_hexdigit()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root (registry) segment: `shm-rs.m.NAME`.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert!(m.root_name().starts_with("shm-rs.m."));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn root_name(&self) -> &str {
        &self.root_name
    }

    /// Whether this handle owns the manager (created it) rather than attached to it.
    ///
    /// ```
    /// assert!(shm_manager::SharedMemoryManager::new()?.is_owner());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// Whether a tracker process watches this owner.
    ///
    /// ```
    /// assert!(shm_manager::SharedMemoryManager::new()?.has_tracker());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_tracker(&self) -> bool {
        self.tracker.is_some()
    }

    /// The registry itself, a shared dict (for tools; prefer the typed accessors).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let _e = m.event("go")?;
    /// assert_eq!(m.registry().len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.root
    }

    /// Sets this handle's patience: the longest one wait of this handle may last when
    /// it waits for another process: for an arena that another process is still
    /// creating and initialising (the default, `None`, waits [`DEFAULT_OPEN_WAIT`]),
    /// and for the registry's writer lock (`None`: as long as the holder takes; with a
    /// patience, a longer wait fails with [`ManagerError::Registry`] and a lock
    /// timeout).
    ///
    /// Which calls can wait, and for what:
    /// - every accessor ([`get_or_create`](Self::get_or_create),
    ///   [`get_or_create_with`](Self::get_or_create_with), [`open`](Self::open), the
    ///   typed ones such as [`value`](Self::value)) and [`arena_stats`](Self::arena_stats):
    ///   for an arena that a racing process is creating (at most the patience);
    /// - the same accessors when they create or register a key: for the registry's
    ///   writer lock while another process writes the registry (at most the patience;
    ///   the registry is a [`ShareableDict`](shm_collections::ShareableDict): a holder
    ///   in another PID namespace counts as alive, so without a patience that wait
    ///   lasts as long as the holder);
    /// - [`connect`](Self::connect): for a root still being initialised
    ///   ([`DEFAULT_OPEN_WAIT`]; [`connect_timeout`](Self::connect_timeout) chooses).
    ///
    /// Opening a registered key never waits for initialisation: a key is registered
    /// only after its object (and its arena) were published, so an uninitialised
    /// header there is damage and an error at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert_eq!(m.patience(), None);
    /// m.set_patience(Some(Duration::from_millis(250)));
    /// assert_eq!(m.patience(), Some(Duration::from_millis(250)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.patience
            .store(patience_nanos(patience), Ordering::Relaxed);
        // The registry's writer lock waits as long (`None`: as long as the holder takes).
        self.root.set_patience(patience);
    }

    /// This handle's patience (see [`set_patience`](Self::set_patience)).
    ///
    /// ```
    /// assert_eq!(shm_manager::SharedMemoryManager::new()?.patience(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn patience(&self) -> Option<Duration> {
        match self.patience.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// How long to wait for something another process is still initialising.
    fn init_wait(&self) -> Duration {
        self.patience().unwrap_or(DEFAULT_OPEN_WAIT)
    }

    fn live(&self) -> Result<()> {
        if self.shut_down {
            return Err(ManagerError::ShutDown {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// The object registered under `key`, created with `init` if there is none: the
    /// one generic path behind every typed accessor. Two processes asking for the same
    /// key get the same object; a registered key always names an initialised object;
    /// a kind or element type other than `O`'s is [`ManagerError::WrongKind`] /
    /// [`ManagerError::WrongType`].
    ///
    /// ```
    /// use shm_manager::SharedMemoryManager;
    /// use shm_sync::Semaphore;
    /// let m = SharedMemoryManager::new()?;
    /// let s: Semaphore = m.get_or_create("slots", 2)?;
    /// let again: Semaphore = m.get_or_create("slots", 99)?; // exists: init unused
    /// assert_eq!((s.value(), again.value()), (2, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_create<O>(&self, key: &str, init: O::Init) -> Result<O>
    where
        O: SharedObject,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        self.get_or_create_with(key, init, ObjectOptions::new())
    }

    /// As [`get_or_create`](Self::get_or_create), with options for a new object
    /// (keep it past the manager, choose its placement). The options do not apply
    /// when the key exists.
    ///
    /// ```
    /// use shm_manager::{ObjectOptions, SharedMemoryManager};
    /// use shm_collections::Value;
    /// let m = SharedMemoryManager::new()?;
    /// let v: Value<u8> = m.get_or_create_with("kept", 1, ObjectOptions::new().keep(true))?;
    /// let name = shm_core::SharedObject::name(&v).unwrap().to_owned();
    /// assert!(name.starts_with("shm-rs.k."));
    /// m.shutdown()?;
    /// assert_eq!(Value::<u8>::open(&name)?.get()?, 1); // survived the manager
    /// shm_core::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_create_with<O>(
        &self,
        key: &str,
        init: O::Init,
        options: ObjectOptions,
    ) -> Result<O>
    where
        O: SharedObject,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        self.live()?;
        let expected = Expected::of::<O>();
        if let Some(entry) = self.root.get(key)? {
            return self.open_entry(key, &entry, &expected);
        }
        if !self.owner {
            // Creating under a dead owner's prefix would leak: its tracker has swept.
            self.check_owner()?;
        }
        let (ours, entry) = self
            .create_object::<O>(key, init, &expected, options)
            .map_err(|e| self.gone_or(e))?;
        let won = match self
            .root
            .get_or_insert_with(key.to_owned(), || entry.clone())
        {
            Ok(won) => won,
            Err(e) => {
                // Not registered: nobody will ever find ours.
                if !entry.in_arena() {
                    let _ = ours.unlink();
                }
                drop(ours);
                return Err(self.gone_or(e.into()));
            }
        };
        if won == entry {
            if !self.owner && !root_exists(&self.root_name) {
                // The owner shut down or died while we created: its sweep may have
                // missed what we just made, so we remove the leftovers ourselves.
                drop(ours);
                remove_tracked(&self.root_name);
                return Err(ManagerError::ShutDown {
                    name: self.name.clone(),
                });
            }
            return Ok(ours);
        }
        // Another process registered the key first: ours goes (an arena range stays
        // allocated, a documented small leak), theirs is opened.
        if !entry.in_arena() {
            let _ = ours.unlink();
        }
        drop(ours);
        self.open_entry(key, &won, &expected)
    }

    /// The object registered under `key`, or [`ManagerError::NoSuchKey`].
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert!(m.open::<shm_sync::Event>("go").is_err());
    /// let e = m.event("go")?;
    /// e.set();
    /// assert!(m.open::<shm_sync::Event>("go")?.is_set());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<O>(&self, key: &str) -> Result<O>
    where
        O: SharedObject,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        self.live()?;
        match self.root.get(key)? {
            Some(entry) => self.open_entry(key, &entry, &Expected::of::<O>()),
            None => Err(ManagerError::NoSuchKey {
                manager: self.name.clone(),
                key: key.to_owned(),
            }),
        }
    }

    /// `e`, or [`ManagerError::ShutDown`] when the root is gone: a creation that failed
    /// because the manager's sweep removed what it was building (an arena, a data
    /// segment). An attacher then removes the leftovers, as after a creation that
    /// succeeded too late (see `get_or_create_with`).
    fn gone_or(&self, e: ManagerError) -> ManagerError {
        if root_exists(&self.root_name) {
            return e;
        }
        if !self.owner {
            remove_tracked(&self.root_name);
        }
        ManagerError::ShutDown {
            name: self.name.clone(),
        }
    }

    pub(crate) fn object_err<E>(&self, key: &str) -> impl FnOnce(E) -> ManagerError + '_
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let key = key.to_owned();
        move |e| ManagerError::Object {
            manager: self.name.clone(),
            key,
            source: Box::new(e),
        }
    }

    fn arenas(&self) -> std::sync::MutexGuard<'_, Arenas> {
        // The map stays consistent even if a holder panicked.
        self.arenas.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create_object<O>(
        &self,
        key: &str,
        init: O::Init,
        expected: &Expected,
        options: ObjectOptions,
    ) -> Result<(O, Entry)>
    where
        O: SharedObject,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        let header = matches!(O::layout(), Layout::Header(_));
        let payload = O::payload_len(&init).map_err(self.object_err(key))?;
        // In an arena the header is the compact 64-byte one.
        let total = payload.saturating_add(COMPACT_HEADER_LEN);
        let small = header && total <= SMALL_OBJECT_MAX;
        let in_arena = !options.keep
            && match options.placement {
                Placement::Auto => small && arena_kind(expected.kind),
                Placement::Arena => {
                    if !small {
                        return Err(ManagerError::Unsupported {
                            manager: self.name.clone(),
                            key: key.to_owned(),
                            what: "an arena holds only objects with a header of at most 4096 bytes",
                        });
                    }
                    true
                }
                Placement::Segment => false,
            };
        let obj = if in_arena {
            let wait = self.init_wait();
            let (arena, offset) = self
                .arenas()
                .alloc(&self.name, &self.root_name, total, wait)?;
            // SAFETY: the arena's compare-and-swap bump allocator handed the `total`
            // bytes at `offset` to this call only, in every process; nothing else
            // initialises or uses them.
            let o = unsafe { O::create_at(arena.segment(), offset, init) }
                .map_err(self.object_err(key))?;
            o.object().set_flags(Flags::TRACKED, true);
            o
        } else {
            let name =
                shm_core::name::own_object_name(&self.root_name, options.keep, random_u64()?);
            let opts = SegmentOptions::new().name(&name).unlink_on_drop(false);
            let o = O::create_with(&opts, init).map_err(self.object_err(key))?;
            o.object().set_flags(
                if options.keep {
                    Flags::KEEP
                } else {
                    Flags::TRACKED
                },
                true,
            );
            o
        };
        let location = obj
            .object()
            .name()
            .ok_or_else(|| ManagerError::Corrupted {
                manager: self.name.clone(),
                what: format!("the object made for key {key:?} has no name"),
            })?
            .to_owned();
        Ok((obj, expected.entry(location, options.keep)))
    }

    fn open_entry<O>(&self, key: &str, entry: &Entry, expected: &Expected) -> Result<O>
    where
        O: SharedObject,
        O::Error: std::error::Error + Send + Sync + 'static,
    {
        if entry.kind != expected.kind || entry.kind_name != expected.kind_name {
            return Err(ManagerError::WrongKind {
                manager: self.name.clone(),
                key: key.to_owned(),
                expected: expected.plain(),
                found: entry.plain(),
            });
        }
        if entry.type_tag != expected.type_tag || entry.version != expected.version {
            let (mut want, mut found) = (expected.plain(), entry.plain());
            if entry.version != expected.version {
                want = format!("{want} (layout version {})", expected.version);
                found = format!("{found} (layout version {})", entry.version);
            } else if want == found {
                // Short names alike (`a::Foo`, `b::Foo`): the full names, then the
                // fingerprints, tell them apart.
                want = format!(
                    "{} (type tag {:#018x})",
                    expected.type_name, expected.type_tag
                );
                found = format!("{} (type tag {:#018x})", entry.type_name, entry.type_tag);
            }
            return Err(ManagerError::WrongType {
                manager: self.name.clone(),
                key: key.to_owned(),
                expected: want,
                found,
            });
        }
        let parsed = ObjectName::parse(&entry.location)?;
        let ours = shm_core::name::is_owned_by(&parsed.segment, &self.root_name, &self.name);
        if !ours {
            return Err(ManagerError::Corrupted {
                manager: self.name.clone(),
                what: format!(
                    "key {key:?}: expected a location under {}.* or {KEPT_PREFIX}{}.*, found {:?}",
                    self.root_name, self.name, entry.location
                ),
            });
        }
        let opened = match parsed.offset {
            Some(offset) => self
                .arenas()
                .by_name(&self.name, &self.root_name, &parsed.segment)
                .and_then(|arena| {
                    O::open_at(arena.segment(), offset).map_err(self.object_err(key))
                }),
            // Registered after it was published: nothing to wait for (see `set_patience`).
            None => O::open_timeout(&entry.location, Duration::ZERO).map_err(self.object_err(key)),
        };
        // A registered object that cannot be opened while the root is gone was removed
        // with the manager (our mapping of the root outlives its name): say so, not
        // which segment is missing. Kept objects outlive the manager: their errors stand.
        opened.map_err(|e| {
            if !entry.keep && !root_exists(&self.root_name) {
                ManagerError::ShutDown {
                    name: self.name.clone(),
                }
            } else {
                e
            }
        })
    }

    /// A raw segment of `len` bytes named `shm-rs.m.NAME.o<hex>`, removed with the
    /// manager (not registered under a key; hand its name to other processes).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let s = m.segment(4096)?;
    /// let name = s.name().unwrap().to_owned();
    /// assert!(name.starts_with(m.root_name()));
    /// drop(s); // the handle does not unlink it...
    /// assert!(shm_core::Segment::open(&name).is_ok());
    /// m.shutdown()?; // ...the manager does
    /// assert!(shm_core::Segment::open(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segment(&self, len: usize) -> Result<Segment> {
        self.live()?;
        let name = shm_core::name::own_object_name(&self.root_name, false, random_u64()?);
        Ok(SegmentOptions::new()
            .name(name)
            .unlink_on_drop(false)
            .create(len)?)
    }

    /// The registered keys.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.lock("a")?;
    /// m.event("b")?;
    /// let mut k = m.keys()?;
    /// k.sort();
    /// assert_eq!(k, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(self.root.keys()?)
    }

    /// Every key with its entry (kind, type, location).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.array::<f64>("xs", 4)?;
    /// let e = m.entries()?;
    /// assert_eq!((e[0].0.as_str(), e[0].1.kind_name.as_str()), ("xs", "Array"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entries(&self) -> Result<Vec<(String, Entry)>> {
        Ok(self.root.iter()?.collect())
    }

    /// The entry of `key`, if registered.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert!(m.entry("x")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entry(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.root.get(key)?)
    }

    /// Bytes used in the manager's arenas.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// assert_eq!(m.arena_stats()?.arenas, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn arena_stats(&self) -> Result<ArenaStats> {
        let wait = self.init_wait();
        self.arenas().stats(&self.name, &self.root_name, wait)
    }

    /// Ends the manager. For the owner: removes every segment named `shm-rs.m.NAME`
    /// or `shm-rs.m.NAME.*` (processes that have objects open keep using them; nobody
    /// can open them any more), then stops the tracker; returns how many segments it
    /// removed. For an attacher: removes nothing and returns 0. Dropping does the same.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let v = m.value("n", 5u32)?;
    /// let _q = m.queue::<String>("jobs", 8, 1024)?;
    /// assert!(m.shutdown()? >= 3); // root, arena, queue
    /// assert_eq!(v.get()?, 5); // the mapping lives on
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(mut self) -> Result<usize> {
        Ok(self.end())
    }

    fn end(&mut self) -> usize {
        if self.shut_down {
            return 0;
        }
        self.shut_down = true;
        if !self.owner || self.pid != std::process::id() {
            return 0;
        }
        let removed = remove_tracked(&self.root_name);
        // Unlinked first, then the pipe closes: the tracker finds nothing left.
        self.tracker = None;
        removed
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        self.end();
    }
}

/// Makes way for a new owner of `name` if the existing root's owner is provably dead
/// (removing its segments) or the root vanished; [`ManagerError::AlreadyExists`]
/// otherwise. A root still being initialised is waited for (up to `wait`, the
/// patience) before its owner is judged. A root whose creator word names no possible
/// process (`Liveness::Unknown`) is never removed.
fn clear_stale_root(name: &str, root: &str, wait: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let waited = start.elapsed() >= wait;
        match Object::inspect(root) {
            Err(shm_core::Error::NotFound { .. }) => return Ok(()),
            Ok(info) if info.initialised || waited => {
                if info.creator.liveness() == Liveness::Dead {
                    remove_tracked(root);
                    return Ok(());
                }
                return Err(ManagerError::AlreadyExists {
                    name: name.to_owned(),
                    pid: info.creator.id,
                });
            }
            // Not a root of ours (foreign or damaged): left to `shm rm`.
            Err(e) if waited => return Err(e.into()),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Kinds that live at an offset without naming other segments after themselves.
fn arena_kind(kind: u32) -> bool {
    Kind::SYNC.contains(&kind)
        || kind == shm_collections::kinds::VALUE.id()
        || kind == shm_collections::kinds::ARRAY.id()
}
