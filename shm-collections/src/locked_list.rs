//! [`LockedShareableList`]: a `ShareableList` paired with a robust process-shared lock,
//! for lists that several processes write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shm_core::SegmentOptions;
use shm_sync::{LockError, Mutex, MutexGuard};

use crate::shareable_list::{Item, ListError, ShareableList};

/// Suffix of the companion lock's segment name.
pub const LOCK_SUFFIX: &str = ".lock";

/// Why a [`LockedShareableList`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockedListError {
    /// The list itself (index, slot size, corruption...). Nothing was written.
    #[error(transparent)]
    List(#[from] ListError),
    /// Creating or opening the companion lock failed.
    #[error("companion lock of ShareableList {list:?}: {source}")]
    Lock {
        /// The list's name.
        list: String,
        /// What the lock reported.
        #[source]
        source: shm_sync::Error,
    },
    /// A process died holding the lock and nobody has marked the list consistent since:
    /// an item may be half-written. Repair it through [`LockedShareableList::lock`].
    #[error(
        "ShareableList {list:?}: a process died while holding its lock; repair it through lock() and mark_consistent()"
    )]
    Inconsistent {
        /// The list's name.
        list: String,
    },
    /// A timed or `try_` lock did not get the lock (the reason says which: a
    /// [patience](LockedShareableList::set_patience) that ran out, would block, would
    /// deadlock...).
    #[error("ShareableList {list:?}: the lock was not available: {reason}")]
    NotAcquired {
        /// The list's name.
        list: String,
        /// Timeout, would block, would deadlock...
        reason: String,
    },
}

/// A [`ShareableList`] whose every access from Rust goes through a robust,
/// process-shared lock, so that a reader never sees a half-written item and a
/// read-modify-write from several processes loses nothing.
///
/// The list's segment is an ordinary CPython-compatible `ShareableList`; the lock
/// lives in a companion segment named after it with [`LOCK_SUFFIX`]. CPython processes
/// can read the list but do not see this lock: have them coordinate with a
/// `multiprocessing.Lock`, or only read.
///
/// Every call but [`len`](Self::len), [`is_empty`](Self::is_empty) and
/// [`name`](Self::name) waits for the lock while another thread or process holds it:
/// [`lock`](Self::lock) for as long as that takes (a holder that dies is detected; a
/// holder in another PID namespace counts as alive, so there it can be forever),
/// [`lock_timeout`](Self::lock_timeout) and [`try_lock`](Self::try_lock) within their
/// bound, and [`get`](Self::get), [`set`](Self::set), [`to_vec`](Self::to_vec) within
/// the handle's [patience](Self::set_patience) (none by default: as long as `lock`).
///
/// ```
/// use shm_collections::{Item, LockedShareableList};
/// let mut list = LockedShareableList::create([Item::Int(0), Item::from("idle")])?;
/// let mut peer = LockedShareableList::open(list.name().unwrap())?; // another process
/// {
///     let mut g = peer.lock().unwrap();
///     let n = g.get(0)?.as_int().unwrap();
///     g.set(0, n + 1)?;                      // nobody else can interleave here
///     g.set(1, "busy")?;
/// }
/// assert_eq!(list.get(0)?, Item::Int(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LockedShareableList {
    list: ShareableList,
    /// Counts completed locked sections (a version stamp readers may compare).
    lock: Mutex<u64>,
    /// The list's name, for messages.
    label: String,
    /// [`patience`](Self::patience) in nanoseconds; `u64::MAX` = none.
    patience: AtomicU64,
}

impl std::fmt::Debug for LockedShareableList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedShareableList")
            .field("name", &self.label)
            .finish_non_exhaustive()
    }
}

impl LockedShareableList {
    /// Creates the list under a random name and its lock beside it; both are unlinked
    /// when this handle drops.
    ///
    /// ```
    /// use shm_collections::{Item, LOCK_SUFFIX, LockedShareableList};
    /// let mut l = LockedShareableList::create([Item::Int(1), Item::from("a")])?;
    /// assert_eq!(l.get(1)?, Item::from("a"));
    /// assert!(shm_core::Segment::open(&format!("{}{LOCK_SUFFIX}", l.name().unwrap())).is_ok());
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn create<I>(items: I) -> Result<Self, LockedListError>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        Self::create_with(&SegmentOptions::new(), items)
    }

    /// Creates the list under `name` (and the lock under `name` + [`LOCK_SUFFIX`]).
    ///
    /// ```
    /// let name = format!("doc-locked-{}", std::process::id());
    /// let l = shm_collections::LockedShareableList::create_named(&name, [1, 2])?;
    /// assert_eq!(l.name(), Some(name.as_str()));
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn create_named<I>(name: &str, items: I) -> Result<Self, LockedListError>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        Self::create_with(&SegmentOptions::new().name(name), items)
    }

    /// Creates the list with the given segment options (name, page reservation,
    /// unlink on drop); the lock gets the list's name plus [`LOCK_SUFFIX`] and the same
    /// unlink-on-drop choice.
    ///
    /// ```
    /// use shm_collections::LockedShareableList;
    /// let opts = shm_core::SegmentOptions::new().unlink_on_drop(false);
    /// let l = LockedShareableList::create_with(&opts, [1, 2])?;
    /// let name = l.name().unwrap().to_owned();
    /// drop(l);
    /// let again = LockedShareableList::open(&name)?; // both segments are still there
    /// again.unlink()?;
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn create_with<I>(options: &SegmentOptions, items: I) -> Result<Self, LockedListError>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        let list = ShareableList::create_with(options, items)?;
        let unlink = list.segment().unlinks_on_drop();
        let mut this = Self::pair(list)?;
        this.lock.set_unlink_on_drop(unlink);
        Ok(this)
    }

    fn pair(list: ShareableList) -> Result<Self, LockedListError> {
        // The lock is found by the list's name: an anonymous list cannot have one.
        let Some(name) = list.name().map(str::to_owned) else {
            return Err(LockedListError::Lock {
                list: list.segment().display_name().to_owned(),
                source: shm_core::Error::Unsupported {
                    name: list.segment().display_name().to_owned(),
                    what: "a companion lock for an anonymous list (it is found by name)",
                }
                .into(),
            });
        };
        let lock = match Mutex::create_with(
            &SegmentOptions::new().name(format!("{name}{LOCK_SUFFIX}")),
            0u64,
        ) {
            Ok(lock) => lock,
            Err(source) => {
                // The list was just made for this pair: without its lock it must not
                // stay behind (it would whatever its unlink-on-drop choice says).
                let _ = list.unlink();
                return Err(LockedListError::Lock { list: name, source });
            }
        };
        Ok(Self {
            list,
            lock,
            label: name,
            patience: AtomicU64::new(u64::MAX),
        })
    }

    /// Opens a list and its lock made by [`create`](Self::create) in another process.
    ///
    /// ```
    /// use shm_collections::{Item, LockedShareableList};
    /// let l = LockedShareableList::create([1, 2])?;
    /// let mut peer = LockedShareableList::open(l.name().unwrap())?;
    /// assert_eq!(peer.to_vec()?, [Item::Int(1), Item::Int(2)]);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, LockedListError> {
        let list = ShareableList::open(name)?;
        let name = list.name().unwrap_or(name).to_owned();
        let lock = Mutex::open(&format!("{name}{LOCK_SUFFIX}")).map_err(|source| {
            LockedListError::Lock {
                list: name.clone(),
                source,
            }
        })?;
        Ok(Self {
            list,
            lock,
            label: name,
            patience: AtomicU64::new(u64::MAX),
        })
    }

    /// The list's name (without the lock's suffix), as CPython's `ShareableList(name=...)` takes it.
    ///
    /// ```
    /// let l = shm_collections::LockedShareableList::create([0])?;
    /// assert!(l.name().unwrap().starts_with("psm_"));
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.list.name()
    }

    /// Whether dropping this handle removes the names of the list and of its lock:
    /// `true` for the creator by default, `false` for handles from `open`.
    ///
    /// ```
    /// let mut l = shm_collections::LockedShareableList::create([0])?;
    /// l.set_unlink_on_drop(false);
    /// let name = l.name().unwrap().to_owned();
    /// drop(l);
    /// shm_collections::LockedShareableList::open(&name)?.unlink()?; // still there
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.list.set_unlink_on_drop(yes);
        self.lock.set_unlink_on_drop(yes);
    }

    /// Number of items (fixed at creation).
    ///
    /// ```
    /// assert_eq!(shm_collections::LockedShareableList::create([1, 2, 3])?.len(), 3);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the list has no items.
    ///
    /// ```
    /// assert!(!shm_collections::LockedShareableList::create([0])?.is_empty());
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Takes the lock: the guard gives the list for any number of gets and sets.
    /// A holder that died is reported as [`LockError::OwnerDied`] with the guard inside.
    /// Waits as long as the holder keeps the lock (forever for a holder in another PID
    /// namespace that never lets go): see [`lock_timeout`](Self::lock_timeout).
    ///
    /// ```
    /// use shm_collections::{Item, LockedShareableList};
    /// let mut l = LockedShareableList::create([10])?;
    /// let mut g = l.lock().unwrap();
    /// g.set(0, 11)?; // gets and sets on the guard are one locked section
    /// assert_eq!(g.get(0)?, Item::Int(11));
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn lock(&self) -> Result<ListGuard<'_>, LockError<ListGuard<'_>>> {
        let list = &self.list;
        match self.lock.lock() {
            Ok(guard) => Ok(ListGuard { list, guard }),
            Err(e) => Err(e.map(|guard| ListGuard { list, guard })),
        }
    }

    /// Takes the lock if it is free now: [`LockError::WouldBlock`] otherwise (a dead
    /// holder is recovered as in [`lock`](Self::lock)).
    ///
    /// ```
    /// use shm_collections::LockedShareableList;
    /// let l = LockedShareableList::create([0])?;
    /// let g = l.try_lock().unwrap();
    /// let name = l.name().unwrap().to_owned();
    /// std::thread::spawn(move || {
    ///     let peer = LockedShareableList::open(&name).unwrap();
    ///     assert!(matches!(peer.try_lock(), Err(shm_sync::LockError::WouldBlock { .. })));
    /// })
    /// .join()
    /// .unwrap();
    /// drop(g);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn try_lock(&self) -> Result<ListGuard<'_>, LockError<ListGuard<'_>>> {
        let list = &self.list;
        match self.lock.try_lock() {
            Ok(guard) => Ok(ListGuard { list, guard }),
            Err(e) => Err(e.map(|guard| ListGuard { list, guard })),
        }
    }

    /// Takes the lock, waiting at most `timeout` ([`LockError::Timeout`] then; a huge
    /// timeout such as `Duration::MAX` means no deadline).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_collections::LockedShareableList;
    /// let l = LockedShareableList::create([0])?;
    /// let g = l.lock_timeout(Duration::from_secs(1)).unwrap();
    /// let name = l.name().unwrap().to_owned();
    /// std::thread::spawn(move || {
    ///     let peer = LockedShareableList::open(&name).unwrap();
    ///     let r = peer.lock_timeout(Duration::from_millis(10));
    ///     assert!(matches!(r, Err(shm_sync::LockError::Timeout { .. })));
    /// })
    /// .join()
    /// .unwrap();
    /// drop(g);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ListGuard<'_>, LockError<ListGuard<'_>>> {
        let list = &self.list;
        match self.lock.lock_timeout(timeout) {
            Ok(guard) => Ok(ListGuard { list, guard }),
            Err(e) => Err(e.map(|guard| ListGuard { list, guard })),
        }
    }

    /// Sets how long [`get`](Self::get), [`set`](Self::set) and
    /// [`to_vec`](Self::to_vec) of this handle wait for the lock:
    /// [`LockedListError::NotAcquired`] after that. `None` (the default) waits as long
    /// as [`lock`](Self::lock) does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_collections::{LockedListError, LockedShareableList};
    /// let l = LockedShareableList::create([0])?;
    /// let peer = LockedShareableList::open(l.name().unwrap())?;
    /// peer.set_patience(Some(Duration::from_millis(10)));
    /// let g = l.lock().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(matches!(peer.get(0), Err(LockedListError::NotAcquired { .. }))));
    /// });
    /// drop(g);
    /// assert_eq!(peer.get(0)?.as_int(), Some(0));
    /// # Ok::<(), LockedListError>(())
    /// ```
    pub fn set_patience(&self, patience: Option<Duration>) {
        let nanos = patience.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
        });
        self.patience.store(nanos, Ordering::Relaxed);
    }

    /// This handle's patience (see [`set_patience`](Self::set_patience)).
    ///
    /// ```
    /// assert_eq!(shm_collections::LockedShareableList::create([0])?.patience(), None);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn patience(&self) -> Option<Duration> {
        match self.patience.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn locked<R>(
        &self,
        f: impl FnOnce(&ShareableList) -> Result<R, ListError>,
    ) -> Result<R, LockedListError> {
        let list = self.label.clone();
        let taken = match self.patience() {
            None => self.lock(),
            Some(d) => self.lock_timeout(d),
        };
        let g = taken.map_err(|e| match e {
            LockError::OwnerDied(_) | LockError::Inconsistent(_) => {
                LockedListError::Inconsistent { list }
            }
            other => LockedListError::NotAcquired {
                list,
                reason: other.to_string(),
            },
        })?;
        Ok(f(&g)?)
    }

    /// Item `index`, read under the lock (waits for it at most the
    /// [patience](Self::set_patience)).
    ///
    /// ```
    /// let mut l = shm_collections::LockedShareableList::create([1.5])?;
    /// assert_eq!(l.get(0)?.as_float(), Some(1.5));
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn get(&self, index: usize) -> Result<Item, LockedListError> {
        self.locked(|l| l.get(index))
    }

    /// Sets item `index` under the lock (slot rules as [`ShareableList::set`]; waits for
    /// the lock at most the [patience](Self::set_patience)).
    ///
    /// ```
    /// let mut l = shm_collections::LockedShareableList::create(["abc"])?;
    /// l.set(0, "xyz")?;
    /// assert!(l.set(0, "far too long for an 8-byte slot").is_err());
    /// assert_eq!(l.get(0)?.as_str(), Some("xyz"));
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn set<V>(&self, index: usize, value: V) -> Result<(), LockedListError>
    where
        V: TryInto<Item>,
        ListError: From<V::Error>,
    {
        let value = value.try_into().map_err(ListError::from)?;
        self.locked(|l| l.set::<Item>(index, value))
    }

    /// All items, read under the lock in one consistent snapshot (waits for the lock at
    /// most the [patience](Self::set_patience)).
    ///
    /// ```
    /// use shm_collections::{Item, LockedShareableList};
    /// let mut l = LockedShareableList::create([Item::Int(1), Item::None])?;
    /// assert_eq!(l.to_vec()?, [Item::Int(1), Item::None]);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Item>, LockedListError> {
        self.locked(|l| l.to_vec())
    }

    /// Unlinks the list's and the lock's names (CPython's `shm.unlink()`).
    ///
    /// ```
    /// use shm_collections::{LOCK_SUFFIX, LockedShareableList};
    /// let l = LockedShareableList::create([1])?;
    /// l.unlink()?;
    /// assert!(LockedShareableList::open(l.name().unwrap()).is_err());
    /// assert!(shm_core::Segment::open(&format!("{}{LOCK_SUFFIX}", l.name().unwrap())).is_err());
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn unlink(&self) -> Result<(), LockedListError> {
        self.list.unlink()?;
        self.lock.unlink().map_err(|source| LockedListError::Lock {
            list: self.label.clone(),
            source,
        })
    }
}

/// The lock of a [`LockedShareableList`] while held: derefs to the list. Each guard
/// that ends also bumps the version stamp ([`version`](Self::version)).
pub struct ListGuard<'a> {
    list: &'a ShareableList,
    guard: MutexGuard<'a, u64>,
}

impl ListGuard<'_> {
    /// How many locked sections completed before this one (over all processes).
    ///
    /// ```
    /// let mut l = shm_collections::LockedShareableList::create([0])?;
    /// assert_eq!(l.lock().unwrap().version(), 0);
    /// l.set(0, 1)?; // one more locked section
    /// assert_eq!(l.lock().unwrap().version(), 2);
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn version(&self) -> u64 {
        *self.guard
    }

    /// Declares the list repaired after a holder died.
    ///
    /// ```
    /// use shm_collections::LockedShareableList;
    /// let mut l = LockedShareableList::create([0])?;
    /// let name = l.name().unwrap().to_owned();
    /// std::thread::spawn(move || {
    ///     let mut peer = LockedShareableList::open(&name).unwrap();
    ///     std::mem::forget(peer.lock().unwrap()); // this thread ends holding the lock
    /// })
    /// .join()
    /// .unwrap();
    /// let Err(shm_sync::LockError::OwnerDied(g)) = l.lock() else {
    ///     panic!("expected OwnerDied");
    /// };
    /// g.mark_consistent();
    /// drop(g);
    /// assert_eq!(l.get(0)?.as_int(), Some(0)); // without mark_consistent: Inconsistent
    /// # Ok::<(), shm_collections::LockedListError>(())
    /// ```
    pub fn mark_consistent(&self) {
        self.guard.mark_consistent();
    }
}

impl std::ops::Deref for ListGuard<'_> {
    type Target = ShareableList;
    fn deref(&self) -> &ShareableList {
        self.list
    }
}

impl Drop for ListGuard<'_> {
    fn drop(&mut self) {
        *self.guard = self.guard.wrapping_add(1);
    }
}
