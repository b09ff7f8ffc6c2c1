//! Arenas: segments `shm-rs.m.NAME.a<N>` that pack many small objects, so that 10^5
//! counters cost ~200 bytes each here (~330 with their registry entries: see the
//! crate docs) and one mapping per arena instead of a page, a
//! mapping and a descriptor each.
//!
//! An arena is an object of kind [`ARENA`](crate::kinds::ARENA): after its 128-byte
//! header, its payload starts with one 64-byte line whose first word is the bump
//! offset (the segment offset of the next free byte, a multiple of 64). A process
//! allocates with a compare-and-swap on that word, so each range is handed out once
//! across processes; objects follow from offset [`FIRST_OFFSET`]. An arena never frees:
//! when it is full the next index is created with `O_EXCL` (a process that loses that
//! race opens the winner's).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shm_core::{Flags, HEADER_LEN, OBJECT_ALIGN, Object, ObjectSpec, Segment, SegmentOptions};

use crate::error::{ManagerError, Result};
use crate::kinds;

/// Bytes of one arena segment (header included).
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// m.lock("l")?;
/// let arena = shm_core::Segment::open(&format!("{}.a0", m.root_name()))?;
/// assert_eq!(arena.len(), shm_manager::ARENA_LEN);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const ARENA_LEN: usize = 1 << 20;

/// Segment offset of the first object in an arena (after the header and the bump line).
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// m.event("first")?;
/// let loc = m.entry("first")?.unwrap().location;
/// assert!(loc.ends_with(&format!("@{}", shm_manager::FIRST_OFFSET)));
/// # Ok::<(), shm_manager::ManagerError>(())
/// ```
pub const FIRST_OFFSET: usize = HEADER_LEN + OBJECT_ALIGN;

/// Objects of at most this many bytes (header included) go into arenas.
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// m.array::<u8>("small", 1000)?;
/// m.array::<u8>("large", shm_manager::SMALL_OBJECT_MAX)?;
/// assert!(m.entry("small")?.unwrap().in_arena());
/// assert!(!m.entry("large")?.unwrap().in_arena());
/// # Ok::<(), shm_manager::ManagerError>(())
/// ```
pub const SMALL_OBJECT_MAX: usize = 4096;

/// Most arenas one manager may have (1 GiB of arenas).
const MAX_ARENAS: u32 = 1024;

/// Layout version of arenas.
const ARENA_VERSION: u32 = 1;

/// Most compare-and-swap attempts before a bump word that keeps changing is reported.
const MAX_CAS_TRIES: u32 = 1_000_000;

pub(crate) fn spec() -> ObjectSpec {
    ObjectSpec::new(kinds::ARENA, ARENA_VERSION)
}

/// Bytes used and available in a manager's arenas.
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// let _c = m.value("c", 0u64)?;
/// let s = m.arena_stats()?;
/// assert_eq!(s.arenas, 1);
/// assert!(s.used_bytes > 0 && s.used_bytes <= 256);
/// # Ok::<(), shm_manager::ManagerError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArenaStats {
    /// Number of arena segments.
    pub arenas: usize,
    /// Bytes handed out to objects (header and padding included).
    pub used_bytes: u64,
    /// Bytes the arenas could hand out in all.
    pub capacity_bytes: u64,
}

/// One mapped arena.
#[derive(Debug)]
pub(crate) struct Arena {
    obj: Object,
}

impl Arena {
    fn attach(obj: Object, manager: &str) -> Result<Arena> {
        if obj.offset() != 0 || obj.payload_len() < OBJECT_ALIGN {
            return Err(ManagerError::Corrupted {
                manager: manager.to_owned(),
                what: format!("arena {} is too short for its bump line", obj.label()),
            });
        }
        Ok(Arena { obj })
    }

    /// The bump word.
    fn next(&self) -> &AtomicU64 {
        // SAFETY: the payload is 64-byte aligned and at least 64 bytes long (checked in
        // `attach`); the mapping lives as long as `self.obj`; an AtomicU64 is valid for
        // any bit pattern and for concurrent access from other processes.
        unsafe { &*self.obj.payload_ptr().cast::<AtomicU64>() }
    }

    /// The segment, to place objects in (one mapping shared by all of them).
    pub(crate) fn segment(&self) -> Arc<Segment> {
        self.obj.segment().clone()
    }

    fn corrupted(&self, manager: &str, found: u64) -> ManagerError {
        ManagerError::Corrupted {
            manager: manager.to_owned(),
            what: format!(
                "arena {}: bump offset {found} is not a multiple of 64 in {FIRST_OFFSET}..={}",
                self.obj.label(),
                self.obj.segment().len()
            ),
        }
    }

    fn checked_next(&self, manager: &str, v: u64) -> Result<usize> {
        let len = self.obj.segment().len() as u64;
        if v % OBJECT_ALIGN as u64 != 0 || v < FIRST_OFFSET as u64 || v > len {
            return Err(self.corrupted(manager, v));
        }
        Ok(v as usize)
    }

    /// Bytes handed out so far.
    fn used(&self, manager: &str) -> Result<usize> {
        let next = self.checked_next(manager, self.next().load(Ordering::Acquire))?;
        Ok(next - FIRST_OFFSET)
    }

    /// Takes `total` bytes (rounded up to 64); `None` when the arena is full.
    fn alloc(&self, manager: &str, total: usize) -> Result<Option<usize>> {
        let size = total.div_ceil(OBJECT_ALIGN) * OBJECT_ALIGN;
        let len = self.obj.segment().len();
        let mut cur = self.next().load(Ordering::Acquire);
        for _ in 0..MAX_CAS_TRIES {
            let at = self.checked_next(manager, cur)?;
            if size > len - at {
                return Ok(None);
            }
            match self.next().compare_exchange_weak(
                cur,
                (at + size) as u64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Some(at)),
                Err(v) => cur = v,
            }
        }
        Err(ManagerError::Corrupted {
            manager: manager.to_owned(),
            what: format!(
                "arena {}: the bump offset changed {MAX_CAS_TRIES} times in a row",
                self.obj.label()
            ),
        })
    }
}

/// The arenas this process has mapped, by index, and where allocation goes on.
#[derive(Debug, Default)]
pub(crate) struct Arenas {
    mapped: BTreeMap<u32, Arc<Arena>>,
    current: u32,
}

impl Arenas {
    /// Arena `index` of the manager whose root is `root`: mapped already, opened, or
    /// (with `create`) created. `wait` bounds how long an arena that another process
    /// is still initialising is waited for (the patience; zero when the arena is known
    /// to be published).
    fn get(
        &mut self,
        manager: &str,
        root: &str,
        index: u32,
        create: bool,
        wait: Duration,
    ) -> Result<Arc<Arena>> {
        if let Some(a) = self.mapped.get(&index) {
            return Ok(a.clone());
        }
        let name = arena_name(root, index);
        let spec = spec();
        let obj = if create {
            let opts = SegmentOptions::new().name(&name).unlink_on_drop(false);
            let made = Object::create(&opts, &spec, ARENA_LEN - HEADER_LEN, |o| {
                o.set_flags(Flags::TRACKED, true);
                o.write_at(0, &(FIRST_OFFSET as u64).to_ne_bytes())
            });
            match made {
                // Another process won the O_EXCL race: it may still be initialising.
                Err(shm_core::Error::AlreadyExists { .. }) => {
                    Object::open_timeout(&name, &spec, wait)?
                }
                other => other?,
            }
        } else {
            // An arena that does not exist is not waited for (`stats` probes the index
            // after the last one): only one being initialised is, up to `wait`.
            if !crate::names::root_exists(&name) {
                return Err(shm_core::Error::NotFound { name }.into());
            }
            Object::open_timeout(&name, &spec, wait)?
        };
        let arena = Arc::new(Arena::attach(obj, manager)?);
        self.mapped.insert(index, arena.clone());
        Ok(arena)
    }

    /// Hands out `total` bytes in the first arena with room, creating arenas as needed.
    pub(crate) fn alloc(
        &mut self,
        manager: &str,
        root: &str,
        total: usize,
        wait: Duration,
    ) -> Result<(Arc<Arena>, usize)> {
        while self.current < MAX_ARENAS {
            let arena = self.get(manager, root, self.current, true, wait)?;
            if let Some(at) = arena.alloc(manager, total)? {
                return Ok((arena, at));
            }
            self.current += 1;
        }
        Err(ManagerError::Corrupted {
            manager: manager.to_owned(),
            what: format!("all {MAX_ARENAS} arenas are full"),
        })
    }

    /// The arena a registry entry names (`segment` without the offset), mapped once.
    ///
    /// Never waits: an object was placed in the arena, and registered, only after the
    /// arena was published, so a header that is not initialised now is damage
    /// ([`ManagerError::Corrupted`] at once), not a creator still at work. Waiting the
    /// patience for it would repeat on every open by key (the failed arena is not
    /// mapped).
    pub(crate) fn by_name(
        &mut self,
        manager: &str,
        root: &str,
        segment: &str,
    ) -> Result<Arc<Arena>> {
        let index = shm_core::name::parse_arena_segment(segment)
            .filter(|(r, i)| *r == root && *i < MAX_ARENAS)
            .map(|(_, i)| i)
            .ok_or_else(|| ManagerError::Corrupted {
                manager: manager.to_owned(),
                what: format!(
                    "expected an arena {root}.a<N> in a registry entry, found {segment:?}"
                ),
            })?;
        self.get(manager, root, index, false, Duration::ZERO)
            .map_err(|e| match e {
                ManagerError::Shm(shm_core::Error::NotInitialised { name, .. }) => {
                    ManagerError::Corrupted {
                        manager: manager.to_owned(),
                        what: format!(
                            "arena {name}: its header says it is not initialised, yet the \
                             registry places an object in it (a damaged header)"
                        ),
                    }
                }
                other => other,
            })
    }

    /// Totals over every arena that exists (opening those not yet mapped).
    pub(crate) fn stats(
        &mut self,
        manager: &str,
        root: &str,
        wait: Duration,
    ) -> Result<ArenaStats> {
        let mut s = ArenaStats::default();
        for index in 0..MAX_ARENAS {
            let arena = match self.get(manager, root, index, false, wait) {
                Ok(a) => a,
                Err(ManagerError::Shm(shm_core::Error::NotFound { .. })) => break,
                Err(e) => return Err(e),
            };
            s.arenas += 1;
            s.used_bytes += arena.used(manager)? as u64;
            s.capacity_bytes += (arena.obj.segment().len() - FIRST_OFFSET) as u64;
        }
        Ok(s)
    }
}

/// Name of arena `index` of the manager whose root is `root`.
pub(crate) fn arena_name(root: &str, index: u32) -> String {
    shm_core::name::arena_segment_name(root, index)
}
