//! `shm inspect NAME`: an object's header and contents by kind.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value as Json;
use shm_collections::{JoinableQueue, Queue, Value, inspect as coll};
use shm_core::{Layout, Object, ObjectInfo, ObjectName, Segment, SharedObject};
use shm_sync::{Barrier, Event, Mutex, RLock, Semaphore, inspect as sync};

use crate::decode::{decode_bincode, decode_pod, generic_args, hex, show};
use crate::managers::{self, KeyView};
use crate::scan::{self, Class, Creator, PIDNS_PREFIX};

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
    kind: String,
    kind_id: u32,
    version: u32,
    #[serde(rename = "type")]
    type_name: String,
    type_tag: String,
    elem_size: u32,
    elem_align: u32,
    total_len: u64,
    flags: Vec<&'static str>,
    generation: u64,
    initialised: bool,
    created: u64,
    creator: Creator,
    manager: Option<String>,
    data_of: Option<String>,
}

/// Holder of a lock.
#[derive(Debug, Serialize)]
pub struct HolderView {
    tid: u32,
    /// The holder thread's process, when it lives in our PID namespace.
    pid: Option<u32>,
    alive: &'static str,
}

/// A lock's state.
#[derive(Debug, Serialize)]
pub struct LockView {
    locked: bool,
    owner_died: bool,
    waiters: bool,
    holder: Option<HolderView>,
}

/// One record of a dict, vec or namespace.
#[derive(Debug, Serialize)]
pub struct RecordView {
    /// Decoded key (`null` when its type is not known, or for a vec element).
    key: Option<Json>,
    key_hex: String,
    /// Decoded value (`null` when its type is not known).
    value: Option<Json>,
    value_hex: String,
    /// A namespace attribute's stored type name.
    value_type: Option<String>,
}

/// One item of a ShareableList.
#[derive(Debug, Serialize)]
pub struct ItemView {
    /// Python type name: int, float, bool, str, bytes, NoneType.
    #[serde(rename = "type")]
    type_name: &'static str,
    /// The value (bytes as hex, non-finite floats as strings).
    value: Json,
    /// Python `repr`.
    repr: String,
}

/// Contents by kind (`"view"` tells which).
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum Contents {
    /// Mutex / Lock.
    Lock(LockView),
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
            report.header = Some(header(&parsed.segment, &info));
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

fn header(segment: &str, info: &ObjectInfo) -> Header {
    Header {
        kind: info.kind_name.clone(),
        kind_id: info.kind,
        version: info.version,
        type_name: info.type_name.clone(),
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
    let open = || Object::open(name, &spec_of(info)).map_err(|e| e.to_string());
    let k = info.kind;
    Ok(if k == sk::MUTEX.id() {
        check_version::<Mutex<()>>(info)?;
        Contents::Lock(lock_view(&open()?, 0)?)
    } else if k == sk::RLOCK.id() {
        // An RLock starts with its mutex (the recursion count is not shown).
        let _: RLock = attach(open()?, info)?;
        Contents::Lock(lock_view(&open()?, 0)?)
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
        let entries = managers::key_views(&root, |_| true)?;
        return Ok(Some(Contents::Registry {
            manager: manager.to_owned(),
            owner: Creator::of(info.creator),
            keys: entries.len(),
            entries,
        }));
    }
    if info.kind == shm_manager::kinds::ARENA.id() && !name.contains(shm_core::OFFSET_SEPARATOR) {
        let (used, capacity) = managers::arena_usage(name, &spec_of(info))?;
        let mut objects = match crate::kinds::inspect(&root) {
            Ok(_) => managers::key_views(&root, |e| {
                managers::arena_location(&root, &e.location).is_some_and(|(a, _)| a == name)
            })?,
            // The root is gone (a manager half removed): the arena's objects have no keys.
            Err(shm_core::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(format!("its manager root {root}: {e}")),
        };
        objects.sort_by_key(|k| managers::arena_location(&root, &k.location).map(|(_, o)| o));
        return Ok(Some(Contents::Arena {
            used,
            capacity,
            objects,
        }));
    }
    Ok(None)
}

/// One line of state of the object at `location` (`segment` or `segment@offset`).
pub fn state_line(location: &str) -> Result<String, String> {
    let info = crate::kinds::inspect(location).map_err(|e| e.to_string())?;
    let c = contents(location, &info, 3)?;
    Ok(one_line(&c))
}

/// A one-line summary of contents (for the keys of a registry).
fn one_line(c: &Contents) -> String {
    match c {
        Contents::Lock(l) => lock_line(l),
        Contents::Event { set } => if *set { "set" } else { "clear" }.into(),
        Contents::Semaphore { value, max } => match max {
            Some(m) => format!("value {value} (bound {m})"),
            None => format!("value {value}"),
        },
        Contents::Barrier {
            parties,
            waiting,
            broken,
        } => format!(
            "{waiting} of {parties} waiting{}",
            if *broken { ", broken" } else { "" }
        ),
        Contents::Queue {
            depth,
            capacity,
            closed,
            ..
        } => format!(
            "{depth} of {capacity} messages{}",
            if *closed { ", closed" } else { "" }
        ),
        Contents::Collection { entries, .. } => format!("{entries} entries"),
        Contents::Cell {
            len,
            values,
            data_hex,
            lock,
            ..
        } => {
            let v = match values {
                Some(v) if *len == 1 => v.first().map_or_else(String::new, show),
                Some(v) => {
                    let shown: Vec<String> = v.iter().map(show).collect();
                    let more = if (v.len() as u64) < *len { ", ..." } else { "" };
                    format!("[{}{more}] ({len} elements)", shown.join(", "))
                }
                None => format!("0x{data_hex}"),
            };
            match lock {
                Some(l) => format!("{v}, lock {}", lock_line(l)),
                None => v,
            }
        }
        Contents::ShareableList { items } => format!("{} items", items.len()),
        Contents::Data { .. } => "data segment".into(),
        Contents::Registry { keys, .. } => format!("{keys} keys"),
        Contents::Arena { used, capacity, .. } => format!("{used} of {capacity} bytes used"),
        Contents::None { reason } => reason.clone(),
    }
}

fn key_line(k: &KeyView) -> String {
    let state = match (&k.state, &k.error) {
        (_, Some(e)) => format!("error: {e}"),
        (Some(s), None) => s.clone(),
        (None, None) => String::new(),
    };
    let ty = if k.type_name.is_empty() {
        String::new()
    } else {
        format!(" {}", k.type_name)
    };
    let keep = if k.keep { " (keep)" } else { "" };
    format!(
        "  {:?}: {}{ty} at {}{keep}: {state}",
        k.key, k.kind, k.location
    )
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
                    Ok((_, ty, bytes)) => (decode_bincode(Some(&ty), &bytes), Some(ty)),
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

/// The report for people.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    kv("name", r.name.clone());
    kv("size", format!("{} bytes", r.size));
    match &r.header {
        Some(h) => {
            kv(
                "kind",
                format!(
                    "{} ({:#x}), layout version {}",
                    h.kind, h.kind_id, h.version
                ),
            );
            kv(
                "type",
                format!(
                    "{} (size {}, align {}, tag {})",
                    h.type_name, h.elem_size, h.elem_align, h.type_tag
                ),
            );
            kv(
                "length",
                format!("{} bytes (header and payload)", h.total_len),
            );
            kv(
                "creator",
                format!(
                    "pid {} ({}), token {:#x}, pidns {}",
                    h.creator.pid, h.creator.alive, h.creator.token, h.creator.pidns
                ),
            );
            kv("created", format!("{} (Unix time)", h.created));
            kv(
                "flags",
                if h.flags.is_empty() {
                    "-".into()
                } else {
                    h.flags.join(",")
                },
            );
            kv("generation", h.generation.to_string());
            kv("initialised", h.initialised.to_string());
            if let Some(m) = &h.manager {
                kv("manager", m.clone());
            }
            if let Some(d) = &h.data_of {
                kv("data of", d.clone());
            }
        }
        None => kv("kind", r.kind.clone()),
    }
    if let Some(c) = &r.contents {
        render_contents(&mut o, c);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "error:        {e}");
    }
    o
}

fn lock_line(l: &LockView) -> String {
    let mut s = if l.locked {
        "locked".to_owned()
    } else {
        "unlocked".to_owned()
    };
    if let Some(h) = &l.holder {
        let pid = h.pid.map_or(String::new(), |p| format!(" of pid {p}"));
        let _ = write!(s, " by tid {}{pid} ({})", h.tid, h.alive);
    }
    if l.owner_died {
        s.push_str(", owner died (inconsistent)");
    }
    if l.waiters {
        s.push_str(", waiters");
    }
    s
}

fn render_contents(o: &mut String, c: &Contents) {
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    match c {
        Contents::Lock(l) => kv("state", lock_line(l)),
        Contents::Event { set } => kv("state", if *set { "set".into() } else { "clear".into() }),
        Contents::Semaphore { value, max } => kv(
            "value",
            match max {
                Some(m) => format!("{value} (bound {m})"),
                None => value.to_string(),
            },
        ),
        Contents::Barrier {
            parties,
            waiting,
            broken,
        } => kv(
            "parties",
            format!(
                "{parties}, {waiting} waiting{}",
                if *broken { ", broken" } else { "" }
            ),
        ),
        Contents::Queue {
            depth,
            capacity,
            max_message_len,
            closed,
            bytes_used,
            puts,
            gets,
            recovered,
            lost,
            unfinished_tasks,
        } => {
            kv(
                "depth",
                format!("{depth} of {capacity} messages ({bytes_used} ring bytes used)"),
            );
            kv("max message", format!("{max_message_len} bytes"));
            kv("closed", closed.to_string());
            kv(
                "stats",
                format!("{puts} puts, {gets} gets, {recovered} recovered, {lost} lost"),
            );
            if let Some(n) = unfinished_tasks {
                kv("unfinished", n.to_string());
            }
        }
        Contents::Collection {
            entries,
            bytes_used,
            capacity,
            slots,
            generation,
            garbage,
            shown,
        } => {
            kv("entries", entries.to_string());
            kv(
                "storage",
                format!(
                    "{bytes_used} of {capacity} bytes used, {garbage} garbage, {slots} slots, generation {generation}"
                ),
            );
            for (i, r) in shown.iter().enumerate() {
                let v = r
                    .value
                    .as_ref()
                    .map_or_else(|| format!("0x{}", r.value_hex), show);
                let v = match &r.value_type {
                    Some(t) => format!("{v}: {t}"),
                    None => v,
                };
                let line = if r.key_hex.is_empty() && r.key.is_none() {
                    format!("  [{i}] {v}")
                } else {
                    let k = r
                        .key
                        .as_ref()
                        .map_or_else(|| format!("0x{}", r.key_hex), show);
                    format!("  {k} => {v}")
                };
                let _ = writeln!(o, "{line}");
            }
            if (shown.len() as u64) < *entries {
                let _ = writeln!(o, "  ... ({} more)", entries - shown.len() as u64);
            }
        }
        Contents::Cell {
            len,
            elem_size,
            values,
            data_hex,
            lock,
        } => {
            kv("elements", format!("{len} of {elem_size} bytes"));
            match values {
                Some(v) => kv("value", v.iter().map(show).collect::<Vec<_>>().join(", ")),
                None => kv("bytes", format!("0x{data_hex}")),
            }
            if let Some(l) = lock {
                kv("lock", lock_line(l));
            }
        }
        Contents::ShareableList { items } => {
            kv("items", items.len().to_string());
            for (i, it) in items.iter().enumerate() {
                let _ = writeln!(o, "  [{i}] {} ({})", it.repr, it.type_name);
            }
        }
        Contents::Data { control } => kv(
            "data of",
            control
                .clone()
                .unwrap_or_else(|| "(name does not follow X.g<hex>.<16 hex>)".into()),
        ),
        Contents::Registry {
            owner,
            keys,
            entries,
            ..
        } => {
            // The header's lines already name the manager.
            kv("owner", format!("pid {} ({})", owner.pid, owner.alive));
            kv("keys", keys.to_string());
            for k in entries {
                let _ = writeln!(o, "{}", key_line(k));
            }
        }
        Contents::Arena {
            used,
            capacity,
            objects,
        } => {
            kv("used", format!("{used} of {capacity} bytes"));
            kv("objects", format!("{} registered", objects.len()));
            for k in objects {
                let _ = writeln!(o, "{}", key_line(k));
            }
        }
        Contents::None { reason } => kv("contents", reason.clone()),
    }
}
