//! Probing by kind: opens what a name holds, reads its header and its contents by kind
//! into a [`Report`] (never changing them: views are snapshots).

use serde_json::Value as Json;
use shm_collections::{JoinableQueue, Queue, Value, inspect as coll};
use shm_core::{Layout, Object, ObjectInfo, ObjectName, Segment, SharedObject};
use shm_manager::FIRST_OFFSET;
use shm_sync::{Barrier, Event, Mutex, RLock, Semaphore, inspect as sync};

use super::render::one_line;
use super::report::{
    Contents, Header, HolderView, ItemView, KeyView, LockView, RecordView, Report,
};
use crate::decode::{decode_bincode, decode_pod, generic_args, hex};
use crate::managers::{arena_location, owned_location};
use crate::registry::read_registry;
use crate::scan::{self, Class, Creator, PIDNS_PREFIX};

/// Inspects `name` (`segment` or `segment@offset`). `Err` for names that do not exist
/// and foreign segments; a report with `error` set for corrupted objects.
pub fn inspect(name: &str, max: usize) -> Result<Report, String> {
    let parsed = ObjectName::parse(name).map_err(|e| e.to_string())?;
    let size = match Segment::open(&parsed.segment) {
        Ok(seg) => seg.len() as u64,
        Err(shm_core::Error::NotFound { .. }) => {
            return Err(format!("no segment named {:?} in /dev/shm", parsed.segment));
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut report = Report {
        name: name.to_owned(),
        class: Class::Object,
        kind: String::new(),
        size,
        header: None,
        contents: None,
        error: None,
    };
    if parsed.offset.is_none() && parsed.segment.starts_with(PIDNS_PREFIX) {
        report.class = Class::PidnsRegistry;
        report.kind = "pidns registry".into();
        report.contents = Some(Contents::None {
            reason: "the PID-namespace registry of shm-core (namespace indexes of lock words)"
                .into(),
        });
        return Ok(report);
    }
    match crate::kinds::inspect(name) {
        Ok(info) => {
            report.kind = info.kind_name.clone();
            let mut h = header(&parsed.segment, &info);
            // An arena object's compact header records no creator to judge: its
            // manager's owner (the root's creator) is who it lives by.
            if parsed.offset.is_some() {
                if let Some(owner) = arena_owner(&parsed.segment) {
                    h.creator = owner;
                }
            }
            report.header = Some(h);
            match contents(name, &info, max) {
                Ok(c) => report.contents = Some(c),
                Err(e) => report.error = Some(e),
            }
            Ok(report)
        }
        Err(magic @ (shm_core::Error::WrongMagic { .. } | shm_core::Error::Truncated { .. }))
            if parsed.offset.is_none() =>
        {
            match scan::open_list(name) {
                Ok(list) => {
                    report.class = Class::ShareableList;
                    report.kind = format!("ShareableList (CPython), {} items", list.len());
                    let items = list.to_vec().map_err(|e| e.to_string());
                    match items {
                        Ok(items) => {
                            report.contents = Some(Contents::ShareableList {
                                items: items.iter().map(item_view).collect(),
                            })
                        }
                        Err(e) => report.error = Some(e),
                    }
                    Ok(report)
                }
                Err(_)
                    if scan::manager_of(name).is_some()
                        && name.starts_with(scan::MANAGER_PREFIX) =>
                {
                    report.class = Class::Raw;
                    report.kind = "raw segment".into();
                    report.contents = Some(Contents::None {
                        reason: format!(
                            "a raw segment of manager {} (m.segment()): no header, bytes of its program's own format",
                            scan::manager_of(name).unwrap_or_default()
                        ),
                    });
                    Ok(report)
                }
                Err(list_err) if name.starts_with(shm_core::RANDOM_NAME_PREFIX) => {
                    report.class = Class::Cpython;
                    report.kind = "cpython segment".into();
                    report.contents = Some(Contents::None {
                        reason: format!(
                            "a raw SharedMemory segment: no shm-rs header and not a ShareableList ({list_err})"
                        ),
                    });
                    Ok(report)
                }
                Err(list_err) => Err(format!(
                    "{name}: foreign segment: not an shm-rs object ({magic}) and not a CPython ShareableList ({list_err})"
                )),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The owner of the manager whose arena is `segment` (its root's creator).
fn arena_owner(segment: &str) -> Option<Creator> {
    let manager =
        scan::manager_of(segment).filter(|_| segment.starts_with(scan::MANAGER_PREFIX))?;
    let info = crate::kinds::inspect(&scan::manager_root(manager)).ok()?;
    Some(Creator::of(info.creator))
}

fn header(segment: &str, info: &ObjectInfo) -> Header {
    Header {
        kind: info.kind_name.clone(),
        kind_id: info.kind,
        version: info.version,
        type_name: shm_core::short_type_name(&info.type_name),
        type_tag: format!("{:#018x}", info.type_tag),
        elem_size: info.elem_size,
        elem_align: info.elem_align,
        total_len: info.total_len,
        flags: scan::flag_names(info.flags),
        generation: info.generation,
        initialised: info.initialised,
        created: info.created,
        creator: Creator::of(info.creator),
        manager: scan::manager_of(segment).map(str::to_owned),
        data_of: (info.kind == scan::GROWTH_DATA)
            .then(|| scan::data_control(segment).map(str::to_owned))
            .flatten(),
    }
}

/// The header's own spec, so that an object of any element type opens.
fn spec_of(info: &ObjectInfo) -> shm_core::ObjectSpec {
    let mut spec =
        shm_core::ObjectSpec::new(shm_core::Kind::new(info.kind, "object"), info.version);
    spec.type_tag = info.type_tag;
    spec.elem_size = info.elem_size;
    spec.elem_align = info.elem_align;
    spec.type_name = info.type_name.clone();
    spec
}

/// Refuses a layout version that `T` of this build does not read.
fn check_version<T: SharedObject>(info: &ObjectInfo) -> Result<(), String> {
    if let Layout::Header(spec) = T::layout() {
        if spec.version != info.version {
            return Err(format!(
                "{} layout version {} is not supported by this shm (it reads version {})",
                info.kind_name, info.version, spec.version
            ));
        }
    }
    Ok(())
}

fn attach<T: SharedObject>(object: Object, info: &ObjectInfo) -> Result<T, String>
where
    T::Error: std::fmt::Display,
{
    check_version::<T>(info)?;
    T::attach(object).map_err(|e| e.to_string())
}

fn contents(name: &str, info: &ObjectInfo, max: usize) -> Result<Contents, String> {
    use shm_collections::kinds as ck;
    use shm_sync::kinds as sk;
    if !info.initialised {
        return Ok(Contents::None {
            reason: "not initialised: its creator has not published it (still creating, or died while creating)".into(),
        });
    }
    if info.kind == scan::GROWTH_DATA {
        return Ok(Contents::Data {
            control: scan::data_control(name).map(str::to_owned),
        });
    }
    if let Some(c) = manager_view(name, info)? {
        return Ok(c);
    }
    let open = || crate::kinds::open_object(name, &spec_of(info)).map_err(|e| e.to_string());
    let k = info.kind;
    Ok(if k == sk::MUTEX.id() {
        check_version::<Mutex<()>>(info)?;
        Contents::Lock(lock_view(&open()?, 0)?)
    } else if k == sk::RLOCK.id() {
        // An RLock starts with its mutex (the recursion count is not shown).
        let _: RLock = attach(open()?, info)?;
        Contents::Lock(lock_view(&open()?, 0)?)
    } else if k == sk::CONDITION.id() {
        condition_view(&open()?, info)?
    } else if k == sk::RWLOCK.id() {
        rwlock_view(&open()?, info)?
    } else if k == sk::EVENT.id() {
        let ev: Event = attach(open()?, info)?;
        Contents::Event { set: ev.is_set() }
    } else if k == sk::SEMAPHORE.id() {
        let s: Semaphore = attach(open()?, info)?;
        Contents::Semaphore {
            value: s.value(),
            max: s.max(),
        }
    } else if k == sk::BARRIER.id() {
        let b: Barrier = attach(open()?, info)?;
        Contents::Barrier {
            parties: b.parties(),
            waiting: b.n_waiting(),
            broken: b.broken(),
        }
    } else if k == ck::QUEUE.id() {
        queue_view(open()?, info)?
    } else if k == ck::DICT.id() || k == ck::VEC.id() || k == ck::NAMESPACE.id() {
        collection_view(open()?, info, max)?
    } else if k == ck::VALUE.id() || k == ck::ARRAY.id() {
        check_version::<Value<u8>>(info)?;
        cell_view(&open()?, info, max)?
    } else {
        Contents::None {
            reason: format!(
                "no contents view for kind {} ({:#x}): header only",
                info.kind_name, info.kind
            ),
        }
    })
}

/// A manager root's registry, or an arena's figures and objects; `None` for other
/// objects (and for a root that is no registry: it shows as a plain dict).
fn manager_view(name: &str, info: &ObjectInfo) -> Result<Option<Contents>, String> {
    let Some(manager) = scan::manager_of(name).filter(|_| name.starts_with(scan::MANAGER_PREFIX))
    else {
        return Ok(None);
    };
    let root = scan::manager_root(manager);
    if name == root && info.kind == shm_collections::kinds::DICT.id() {
        if <shm_manager::Registry as SharedObject>::open(&root).is_err_and(|e| {
            matches!(
                e,
                shm_collections::RegionError::Shm(
                    shm_core::Error::WrongKind { .. } | shm_core::Error::TypeMismatch { .. }
                )
            )
        }) {
            return Ok(None);
        }
        let entries = key_views(&root, |_| true)?;
        return Ok(Some(Contents::Registry {
            manager: manager.to_owned(),
            owner: Creator::of(info.creator),
            keys: entries.len(),
            entries,
        }));
    }
    if info.kind == shm_manager::kinds::ARENA.id() && !name.contains(shm_core::OFFSET_SEPARATOR) {
        let (used, capacity) = arena_usage(name, &spec_of(info))?;
        let mut objects = match crate::kinds::inspect(&root) {
            Ok(_) => key_views(&root, |e| {
                arena_location(&root, &e.location).is_some_and(|(a, _)| a == name)
            })?,
            // The root is gone (a manager half removed): the arena's objects have no keys.
            Err(shm_core::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(format!("its manager root {root}: {e}")),
        };
        objects.sort_by_key(|k| arena_location(&root, &k.location).map(|(_, o)| o));
        return Ok(Some(Contents::Arena {
            used,
            capacity,
            objects,
        }));
    }
    Ok(None)
}

/// One line of state of the object at `location` (`segment` or `segment@offset`),
/// whose registry entry is `entry` when the caller has it (then not read again).
pub fn state_line(location: &str, entry: Option<&shm_manager::Entry>) -> Result<String, String> {
    let info = match crate::kinds::inspect_with(location, entry) {
        Ok(info) => info,
        // No header: a CPython-format list (`m.list()`) is registered in its own segment.
        Err(e @ (shm_core::Error::WrongMagic { .. } | shm_core::Error::Truncated { .. }))
            if !location.contains(shm_core::OFFSET_SEPARATOR) =>
        {
            return match shm_collections::ShareableList::open(location) {
                Ok(list) => Ok(format!(
                    "{} items (ShareableList, CPython format)",
                    list.len()
                )),
                Err(list_err) => Err(format!(
                    "not an shm-rs object ({e}) and not a ShareableList ({list_err})"
                )),
            };
        }
        Err(e) => return Err(e.to_string()),
    };
    let c = contents(location, &info, 3)?;
    Ok(one_line(&c))
}

fn lock_view(object: &Object, offset: usize) -> Result<LockView, String> {
    let s = sync::mutex_state(object, offset).map_err(|e| e.to_string())?;
    Ok(LockView {
        locked: s.locked,
        owner_died: s.owner_died,
        waiters: s.waiters,
        holder: s.holder.map(|h| HolderView {
            tid: h.tid,
            pid: (h.liveness == shm_core::identity::Liveness::Alive)
                .then(|| pid_of_tid(h.tid))
                .flatten(),
            alive: scan::liveness_word(h.liveness),
        }),
    })
}

/// The process (thread group) of a thread of our PID namespace.
fn pid_of_tid(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The `elem_size` bytes of data at `offset` of a lock object's payload (its last
/// bytes: anything else is a layout this build does not know), decoded when the type is
/// a primitive.
fn guarded_data(
    object: &Object,
    info: &ObjectInfo,
    offset: usize,
) -> Result<(Option<Json>, String), String> {
    let size = info.elem_size as usize;
    if offset.checked_add(size) != Some(object.payload_len()) {
        return Err(format!(
            "{} payload of {} bytes does not end with its {size}-byte data at {offset} (corrupted, or another layout)",
            info.kind_name,
            object.payload_len()
        ));
    }
    let mut data = vec![0u8; size];
    object
        .read_at(offset, &mut data)
        .map_err(|e| e.to_string())?;
    let value = (size > 0)
        .then(|| decode_pod(&info.type_name, &data))
        .flatten();
    Ok((value, hex(&data)))
}

/// The offset of data of alignment `align` after `after` bytes (as shm-sync lays it).
fn aligned(after: usize, align: u32) -> usize {
    after.div_ceil(align.max(1) as usize) * align.max(1) as usize
}

fn condition_view(object: &Object, info: &ObjectInfo) -> Result<Contents, String> {
    check_version::<shm_sync::Condition<u8>>(info)?;
    // A Condition's payload: its RawMutex (16 bytes), its RawCondvar (sequence and
    // waiter count, 4 bytes each), then the data.
    const CONDVAR_WAITERS: usize = 20;
    const WORDS: usize = 24;
    let lock = lock_view(object, 0)?;
    let mut w = [0u8; 4];
    object
        .read_at(CONDVAR_WAITERS, &mut w)
        .map_err(|e| e.to_string())?;
    let (value, data_hex) = guarded_data(object, info, aligned(WORDS, info.elem_align))?;
    Ok(Contents::Condition {
        lock,
        waiters: u32::from_ne_bytes(w),
        value,
        data_hex,
    })
}

fn rwlock_view(object: &Object, info: &ObjectInfo) -> Result<Contents, String> {
    check_version::<shm_sync::RwLock<u8>>(info)?;
    // The payload: the writers' RawMutex, state and drain words (24 bytes), the slot
    // count (u32 at 24), padding to 32, a table of u64 reader slots (a share held is a
    // non-zero slot), then the data.
    const SLOT_COUNT: usize = 24;
    const HEAD: usize = 32;
    let writer = lock_view(object, 0)?;
    let mut w = [0u8; 4];
    object
        .read_at(SLOT_COUNT, &mut w)
        .map_err(|e| e.to_string())?;
    let slots = u32::from_ne_bytes(w);
    if !(1..=shm_sync::MAX_SLOTS).contains(&slots) {
        return Err(format!(
            "RwLock reader slots: expected 1 to {}, found {slots} (corrupted)",
            shm_sync::MAX_SLOTS
        ));
    }
    let table_end = HEAD + 8 * slots as usize;
    let (value, data_hex) = guarded_data(object, info, aligned(table_end, info.elem_align))?;
    let mut table = vec![0u8; 8 * slots as usize];
    object
        .read_at(HEAD, &mut table)
        .map_err(|e| e.to_string())?;
    let readers = table
        .chunks_exact(8)
        .filter(|s| s.iter().any(|b| *b != 0))
        .count() as u32;
    Ok(Contents::RwLock {
        writer,
        readers,
        slots,
        value,
        data_hex,
    })
}

fn queue_view(object: Object, info: &ObjectInfo) -> Result<Contents, String> {
    // The element type does not matter for the figures: attach checks the ring only.
    let joinable: JoinableQueue<Vec<u8>>;
    let plain: Queue<Vec<u8>>;
    let (q, unfinished_tasks): (&Queue<Vec<u8>>, Option<u64>) =
        if info.type_name.starts_with("JoinableQueue<") {
            joinable = attach(object, info)?;
            (&joinable, Some(joinable.unfinished_tasks()))
        } else {
            plain = attach(object, info)?;
            (&plain, None)
        };
    let s = q.stats();
    Ok(Contents::Queue {
        depth: q.qsize() as u64,
        capacity: q.max_messages() as u64,
        max_message_len: q.max_message_len() as u64,
        closed: q.is_closed(),
        bytes_used: s.bytes_used,
        puts: s.puts,
        gets: s.gets,
        recovered: s.recovered,
        lost: s.lost,
        unfinished_tasks,
    })
}

fn collection_view(object: Object, info: &ObjectInfo, max: usize) -> Result<Contents, String> {
    use shm_collections::kinds as ck;
    let view = coll::region_contents(object, max).map_err(|e| e.to_string())?;
    let args = generic_args(&info.type_name)
        .map(|(_, a)| a)
        .unwrap_or_default();
    let (key_ty, value_ty) = if info.kind == ck::DICT.id() {
        (
            args.first().copied().flatten(),
            args.get(1).copied().flatten(),
        )
    } else if info.kind == ck::VEC.id() {
        (None, args.first().copied().flatten())
    } else {
        (Some("alloc::string::String"), None)
    };
    let is_ns = info.kind == ck::NAMESPACE.id();
    let shown = view
        .entries
        .iter()
        .map(|r| {
            let (value, value_type) = if is_ns {
                // A namespace stores (type fingerprint, type name, encoded value).
                match shm_collections::codec::decode::<(u64, String, Vec<u8>)>(&r.value) {
                    Ok((_, ty, bytes)) => (
                        decode_bincode(Some(&ty), &bytes),
                        Some(shm_core::short_type_name(&ty)),
                    ),
                    Err(_) => (None, None),
                }
            } else {
                (decode_bincode(value_ty, &r.value), None)
            };
            RecordView {
                key: (info.kind != ck::VEC.id())
                    .then(|| decode_bincode(key_ty, &r.key))
                    .flatten(),
                key_hex: hex(&r.key),
                value,
                value_hex: hex(&r.value),
                value_type,
            }
        })
        .collect();
    let s = view.stats;
    Ok(Contents::Collection {
        entries: s.entries,
        bytes_used: s.bytes_used,
        capacity: s.capacity,
        slots: s.slots,
        generation: s.generation,
        garbage: s.garbage,
        shown,
    })
}

fn cell_view(object: &Object, info: &ObjectInfo, max: usize) -> Result<Contents, String> {
    let cell = coll::cell_contents(object, max as u64).map_err(|e| e.to_string())?;
    let (variant, elem) = match generic_args(&info.type_name) {
        Some((outer, args)) => (outer, args.first().copied().flatten()),
        None => ("", None),
    };
    let values = elem.and_then(|ty| {
        if cell.elem_size == 0 {
            return None;
        }
        cell.data
            .chunks_exact(cell.elem_size)
            .map(|c| decode_pod(ty, c))
            .collect::<Option<Vec<_>>>()
    });
    // Only Value and Array use their lock word; the raw and atomic variants do not.
    let lock = matches!(variant, "Value" | "Array")
        .then(|| lock_view(object, cell.lock_offset))
        .transpose()?;
    Ok(Contents::Cell {
        len: cell.len,
        elem_size: cell.elem_size,
        values,
        data_hex: hex(&cell.data),
        lock,
    })
}

fn item_view(item: &shm_collections::Item) -> ItemView {
    use shm_collections::Item;
    let value = match item {
        Item::Int(v) => Json::from(*v),
        Item::Float(v) => {
            serde_json::Number::from_f64(*v).map_or_else(|| Json::from(v.to_string()), Json::Number)
        }
        Item::Bool(v) => Json::from(*v),
        Item::Str(s) => Json::from(s.as_str()),
        Item::Bytes(b) => Json::from(hex(b)),
        Item::None => Json::Null,
    };
    ItemView {
        type_name: item.type_name(),
        value,
        repr: item.to_string(),
    }
}

/// Bytes used and available in arena `name` (`used`, `capacity`), from its bump word.
pub fn arena_usage(name: &str, spec: &shm_core::ObjectSpec) -> Result<(u64, u64), String> {
    let obj = Object::open(name, spec).map_err(|e| e.to_string())?;
    let mut word = [0u8; 8];
    obj.read_at(0, &mut word).map_err(|e| e.to_string())?;
    let next = u64::from_ne_bytes(word);
    let len = obj.segment().len() as u64;
    let first = FIRST_OFFSET as u64;
    if next % 64 != 0 || next < first || next > len {
        return Err(format!(
            "bump offset {next} is not a multiple of 64 in {first}..={len} (corrupted arena)"
        ));
    }
    Ok((next - first, len.saturating_sub(first)))
}

/// The registered keys of root `root`, with a one-line state each (`max` bounds
/// what is read of collections). Only keys whose location passes `filter`.
pub fn key_views(
    root: &str,
    filter: impl Fn(&shm_manager::Entry) -> bool,
) -> Result<Vec<KeyView>, String> {
    let manager = scan::manager_of(root).unwrap_or_default().to_owned();
    let pairs = read_registry(root)?;
    Ok(pairs
        .into_iter()
        .filter(|(_, e)| filter(e))
        .map(|(key, e)| {
            let (state, error) = if owned_location(root, &manager, &e.location) {
                match state_line(&e.location, Some(&e)) {
                    Ok(s) => (Some(s), None),
                    Err(err) => (None, Some(err)),
                }
            } else {
                (
                    None,
                    Some(format!(
                        "location {:?} is outside the manager (corrupted entry)",
                        e.location
                    )),
                )
            };
            KeyView {
                key,
                in_arena: e.in_arena(),
                kind: e.kind_name,
                kind_id: e.kind,
                type_name: shm_core::short_type_name(&e.type_name),
                location: e.location,
                keep: e.keep,
                state,
                error,
            }
        })
        .collect())
}
