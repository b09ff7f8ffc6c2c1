//! The manager's kinds: a registry root and an arena are named segments of a real
//! manager, so the damaged bytes (handed over in the usual anonymous segment) are
//! written into a live fixture manager's segment before each case, which is restored
//! to its pristine state first (a case may have grown the registry or made arenas).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use shm_collections::ShareableDict;
use shm_core::Segment;
use shm_manager::{Entry, ManagerOptions, SharedMemoryManager};
use shm_sync::{Event, Lock};

use super::{Outcome, T, Target, damaged, e, put};
use shm_collections::Value;

/// Bytes of the arena that are damaged (its header, bump line and objects).
const ARENA_PART: usize = 4096;

/// Which part of the fixture a target damages.
#[derive(Clone, Copy)]
pub(super) enum Part {
    /// The registry dict's data segment `shm-rs.m.NAME.g0.<incarnation>`.
    RegistryData,
    /// One encoded registry `Entry` (inserted under a key, then opened).
    Entry,
    /// The first bytes of the arena `shm-rs.m.NAME.a0`.
    Arena,
}

/// A manager owned by the harness (no tracker: nothing forks) and its pristine
/// segments.
struct Fixture {
    manager: SharedMemoryManager,
    /// Every segment the pristine manager has, with its bytes (the arena: only
    /// [`ARENA_PART`]).
    pristine: Vec<(String, Vec<u8>)>,
    entry: Vec<u8>,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn read_all(name: &str, max: usize) -> Vec<u8> {
    let seg = Segment::open(name).expect("a fixture segment opens");
    let mut bytes = vec![0u8; seg.len().min(max)];
    seg.read_at(0, &mut bytes).expect("a fixture segment reads");
    bytes
}

fn fixture() -> Fixture {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let m = ManagerOptions::new()
        .name(name)
        .tracker(false)
        .create()
        .expect("the fuzz fixture manager");
    m.value("counter", 7u64).unwrap();
    m.lock("db").unwrap();
    m.event("go").unwrap().set();
    m.dict::<String, u64>("scores")
        .unwrap()
        .insert("ann".into(), 3)
        .unwrap();
    let mut entry = Vec::new();
    shm_collections::codec::encode(&m.entry("counter").unwrap().unwrap(), &mut entry).unwrap();
    let root = m.root_name().to_owned();
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| shm_manager::is_tracked_by(n, &root))
        .collect();
    names.sort();
    let pristine = names
        .into_iter()
        .map(|n| {
            let max = if n.ends_with(".a0") {
                ARENA_PART
            } else {
                usize::MAX
            };
            let b = read_all(&n, max);
            (n, b)
        })
        .collect();
    Fixture {
        manager: m,
        pristine,
        entry,
    }
}

/// Runs `f` on this thread's fixture, made on first use.
fn with<R>(f: impl FnOnce(&Fixture) -> R) -> R {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        f(slot.get_or_insert_with(fixture))
    })
}

/// Removes this thread's fixture manager and every segment it has.
pub(super) fn teardown() {
    FIXTURE.with(|cell| {
        if let Some(f) = cell.borrow_mut().take() {
            let _ = f.manager.shutdown();
        }
    });
}

/// The bytes a target damages.
pub(super) fn pristine(part: Part) -> Vec<u8> {
    with(|f| match part {
        Part::Entry => f.entry.clone(),
        Part::RegistryData => segment_bytes(f, &registry_data_name(f)),
        Part::Arena => segment_bytes(f, &format!("{}.a0", f.manager.root_name())),
    })
}

/// The registry dict's data segment (`<root>.g0.<incarnation>`) as the fixture
/// made it.
fn registry_data_name(f: &Fixture) -> String {
    let root = f.manager.root_name();
    f.pristine
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| {
            shm_collections::region::parse_data_segment_name(n).is_some_and(|p| p.control == root)
        })
        .expect("the fixture has the registry's data segment")
        .to_owned()
}

fn segment_bytes(f: &Fixture, name: &str) -> Vec<u8> {
    f.pristine
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.clone())
        .expect("the fixture has the segment")
}

/// Restores the fixture: pristine bytes back, segments made by earlier cases gone.
fn reset(f: &Fixture) -> Result<(), String> {
    let root = f.manager.root_name();
    for n in std::fs::read_dir("/dev/shm").map_err(e)?.filter_map(|d| {
        let n = d.ok()?.file_name().into_string().ok()?;
        shm_manager::is_tracked_by(&n, root).then_some(n)
    }) {
        if !f.pristine.iter().any(|(p, _)| *p == n) {
            let _ = shm_core::unlink(&n);
        }
    }
    for (n, b) in &f.pristine {
        if n.ends_with(".a0") {
            Segment::open(n).map_err(e)?.write_at(0, b).map_err(e)?;
        } else {
            put(n, b)?;
        }
    }
    Ok(())
}

/// A header made unpublished is waited for ([`shm_core::DEFAULT_OPEN_WAIT`], a
/// bounded wait for its creator, not a parse of hostile bytes): reported at once
/// so that the 1 s waits do not dominate the run.
fn unpublished(name: &str) -> Outcome {
    match shm_core::Object::inspect(name) {
        Ok(info) if !info.initialised => Err(format!(
            "{name} is not initialised (opening waits {:?} for its creator)",
            shm_core::DEFAULT_OPEN_WAIT
        )),
        _ => Ok(()),
    }
}

/// Connects to the fixture and uses the registry: keys, entries, and opening every
/// key as several types (a damaged entry must be a typed error, whatever it names).
fn use_registry(name: &str) -> Outcome {
    let w = SharedMemoryManager::connect(name).map_err(e)?;
    let keys = w.keys().map_err(e)?;
    let _ = w.entries().map_err(e)?;
    for k in keys.iter().take(16) {
        if let Ok(v) = w.open::<Value<u64>>(k) {
            if let Ok(mut g) = v.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                *g = g.wrapping_add(1);
            }
        }
        if let Ok(l) = w.open::<Lock>(k) {
            drop(l.lock_timeout(T));
        }
        if let Ok(ev) = w.open::<Event>(k) {
            let _ = ev.is_set();
        }
        if let Ok(d) = w.open::<ShareableDict<String, u64>>(k) {
            let _ = d.len();
            let _ = d.get("ann");
        }
    }
    let _ = w.arena_stats();
    Ok(())
}

/// Random bytes in the registry dict's data segment.
pub(super) fn registry_data(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        let data = registry_data_name(f);
        put(&data, &bytes)?;
        unpublished(&data)?;
        use_registry(f.manager.name())
    })
}

/// A damaged `Entry` record: decoded when it still decodes, otherwise forged from
/// the damaged bytes (an offset, an arena index and a kind), then registered under a
/// key and opened.
pub(super) fn registry_entry(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        let entry = match shm_collections::codec::decode::<Entry>(&bytes) {
            Ok(entry) => entry,
            Err(_) => {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    for (j, b) in w.iter_mut().enumerate() {
                        *b = bytes.get(i * 8 + j).copied().unwrap_or(0);
                    }
                    u64::from_le_bytes(w)
                };
                let mut entry: Entry = shm_collections::codec::decode(&f.entry).map_err(e)?;
                // Mostly the existing arena, at any 64-byte offset in it or just
                // past it; sometimes a missing arena or a far offset.
                let lines = (shm_manager::ARENA_LEN / 64) as u64;
                let (index, offset) = match word(0) % 8 {
                    0 => (1 + word(0) % 2, word(1) % (1 << 21)),
                    1 => (0, word(1) % (1 << 21)),
                    _ => (0, word(1) % (lines + 4)),
                };
                entry.location = shm_core::ObjectName {
                    segment: shm_core::name::arena_segment_name(
                        f.manager.root_name(),
                        index as u32,
                    ),
                    offset: Some(offset as usize * 64),
                }
                .to_string();
                if word(2) % 4 == 0 {
                    entry.kind = word(3) as u32;
                }
                entry
            }
        };
        let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
        w.registry().insert("forged".into(), entry).map_err(e)?;
        drop(w);
        use_registry(f.manager.name())?;
        // The forged key itself, as the type it was made for: its typed error (if
        // any) is this case's outcome.
        let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
        let v = w.open::<Value<u64>>("forged").map_err(e)?;
        let _ = v.lock_timeout(T);
        Ok(())
    })
}

/// Random bump word and object headers in the arena: opening its objects
/// (`open_at`) and allocating a new one.
pub(super) fn arena(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        let name = format!("{}.a0", f.manager.root_name());
        let seg = Segment::open(&name).map_err(e)?;
        let n = bytes.len().min(seg.len());
        seg.write_at(0, &bytes[..n]).map_err(e)?;
        unpublished(&name)?;
        let w = SharedMemoryManager::connect(f.manager.name()).map_err(e)?;
        // Maps the arena once (an unpublished header is waited for, 1 s, once).
        let _ = w.arena_stats().map_err(e)?;
        for k in ["counter", "db", "go"] {
            if let Ok(v) = w.open::<Value<u64>>(k) {
                let _ = v.lock_timeout(T);
            }
            if let Ok(l) = w.open::<Lock>(k) {
                drop(l.lock_timeout(T));
            }
            if let Ok(ev) = w.open::<Event>(k) {
                let _ = ev.is_set();
            }
        }
        let v = w.value("fresh", 1u64).map_err(e)?;
        let _ = v.lock_timeout(T);
        Ok(())
    })
}

/// The registry's data segment, one registry entry, and the arena.
pub(super) fn targets() -> Vec<Target> {
    vec![
        Target::new("Registry data", pristine(Part::RegistryData), registry_data),
        Target::new("Registry entry", pristine(Part::Entry), registry_entry),
        Target::new("Arena", pristine(Part::Arena), arena),
    ]
}
