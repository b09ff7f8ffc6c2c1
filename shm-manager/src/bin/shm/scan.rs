//! What is in `/dev/shm`: one [`Entry`] per name, classified without ever failing the
//! whole listing (an unreadable entry carries its error).

use serde::Serialize;
use shm_collections::ShareableList;
use shm_core::identity::{Identity, Liveness};
use shm_core::{Flags, ObjectInfo};

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";
/// Prefix of a manager's segments (see [`shm_core::name`]).
pub const MANAGER_PREFIX: &str = shm_core::name::MANAGED_PREFIX;
/// Prefix of objects kept past their manager (`Flags::KEEP`).
pub const KEEP_PREFIX: &str = shm_core::name::KEPT_PREFIX;
/// Prefix of the PID-namespace registry of shm-core.
pub const PIDNS_PREFIX: &str = shm_core::name::PIDNS_PREFIX;
/// Kind number of a growable collection's data segment (shm-collections).
pub const GROWTH_DATA: u32 = shm_collections::kinds::GROWTH_DATA.id();

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// An object of this workspace (checked header).
    Object,
    /// A CPython-format `ShareableList` (made by CPython or by shm-collections).
    ShareableList,
    /// A `psm_*` segment without our header that is no `ShareableList`.
    Cpython,
    /// A segment without header under a manager's prefix (`m.segment()`): the manager's.
    Raw,
    /// A growable collection's data segment being made: named after a listed control
    /// object, its header not written yet (`data_of` names the collection).
    Pending,
    /// The PID-namespace registry of shm-core.
    PidnsRegistry,
    /// Anything else.
    Foreign,
    /// The entry could not be read (see `error`).
    Error,
}

/// Creator of an object and whether it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Creator {
    /// Process id in the creator's own PID namespace.
    pub pid: u32,
    /// Start-time token.
    pub token: u32,
    /// PID namespace inode (0 = unknown).
    pub pidns: u32,
    /// `alive`, `dead` or `unknown`.
    pub alive: &'static str,
}

impl Creator {
    /// The creator recorded in a header, with its liveness now.
    pub fn of(id: Identity) -> Creator {
        Creator {
            pid: id.id,
            token: id.token,
            pidns: id.pidns,
            alive: liveness_word(id.liveness()),
        }
    }
}

/// `alive`, `dead` or `unknown`.
pub fn liveness_word(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Dead => "dead",
        Liveness::Unknown => "unknown",
    }
}

/// The names of the flags set.
pub fn flag_names(f: Flags) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (flag, name) in [
        (Flags::TRACKED, "tracked"),
        (Flags::KEEP, "keep"),
        (Flags::IN_ARENA, "in_arena"),
    ] {
        if f.contains(flag) {
            v.push(name);
        }
    }
    v
}

/// One entry of `/dev/shm` (the `shm ls --json` row; field names are stable).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The segment's name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it is.
    pub class: Class,
    /// Kind name from the header (objects), or a description.
    pub kind: String,
    /// Kind number (objects).
    pub kind_id: Option<u32>,
    /// Element type name from the header (objects).
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Layout version (objects).
    pub version: Option<u32>,
    /// Whether the creator published the object (objects).
    pub initialised: Option<bool>,
    /// Who created it (objects).
    pub creator: Option<Creator>,
    /// Header flags: `tracked`, `keep`, `in_arena`.
    pub flags: Vec<&'static str>,
    /// Generation of a growable object.
    pub generation: Option<u64>,
    /// Creation time, seconds since the Unix epoch (objects).
    pub created: Option<u64>,
    /// The manager NAME for `shm-rs.m.NAME[...]` and `shm-rs.k.NAME.*` names.
    pub manager: Option<String>,
    /// For a growable's data segment `X.g<hex>.<16 hex>`: its control object `X`.
    pub data_of: Option<String>,
    /// Items of a `ShareableList`.
    pub items: Option<usize>,
    /// The registry key this object is registered under (from its manager's root).
    pub key: Option<String>,
    /// A manager root: how many keys its registry holds.
    pub keys: Option<usize>,
    /// Segments under a manager's prefix (`shm-rs.m.NAME*`): the manager's owner (the
    /// root's creator), by whose liveness `shm gc` judges them.
    pub owner: Option<Creator>,
    /// An object inside an arena (`ARENA@OFFSET` rows): its arena segment.
    pub arena: Option<String>,
    /// An object inside an arena: its offset in the arena segment.
    pub offset: Option<u64>,
    /// Why the entry could not be read.
    pub error: Option<String>,
}

impl Entry {
    /// A row with only a name, size, class and kind description.
    pub fn bare(name: &str, size: u64, class: Class, kind: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            size,
            class,
            kind: kind.to_owned(),
            kind_id: None,
            type_name: None,
            version: None,
            initialised: None,
            creator: None,
            flags: Vec::new(),
            generation: None,
            created: None,
            manager: manager_of(name).map(str::to_owned),
            data_of: None,
            items: None,
            key: None,
            keys: None,
            owner: None,
            arena: None,
            offset: None,
            error: None,
        }
    }

    /// Whether the header carries `Flags::KEEP` or the name is a kept object's.
    pub fn is_keep(&self) -> bool {
        self.flags.contains(&"keep") || self.name.starts_with(KEEP_PREFIX)
    }
}

pub use shm_core::name::{manager_of, manager_root};

/// `X` for a name `X.g<hex>.<incarnation>` (a growable collection's data segment
/// name; see [`shm_core::name::parse_data_segment_name`]).
pub fn data_control(name: &str) -> Option<&str> {
    shm_core::name::parse_data_segment_name(name).map(|p| p.control)
}

/// An object's kind with its short element type `ty` for people: `Dict<String, u64>`,
/// `Mutex<u32>`, `Lock` for a `Mutex<()>`, `Event`; `…` marks a type name cut short.
pub fn kind_with_type(kind: &str, ty: &str) -> String {
    let ty = shm_core::short_type_name(ty);
    let mut shown = if ty.is_empty() || ty == "()" {
        if kind == "Mutex" && ty == "()" {
            "Lock".to_owned()
        } else {
            kind.to_owned()
        }
    } else if ty.contains('<') && ty.starts_with(|c: char| c.is_ascii_uppercase()) {
        // The type record names the whole object (`Value<u64>`, `Dict<K,V>`).
        ty
    } else {
        format!("{kind}<{ty}>")
    };
    // A type name cut short by its header's field (unbalanced brackets).
    if shown.matches('<').count() > shown.matches('>').count() {
        shown.push('…');
    }
    shown
}

/// Every entry of `/dev/shm`, sorted by name. A segment removed between the directory
/// read and its opening (a growable collection's old data segment, say) is left out:
/// it no longer exists.
pub fn scan() -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for dirent in std::fs::read_dir(SHM_DIR)? {
        // An entry that vanished or cannot be read mid-listing has no name to show.
        let Ok(dirent) = dirent else { continue };
        let name = dirent.file_name().to_string_lossy().into_owned();
        // DirEntry::metadata does not follow a symlink planted in /dev/shm.
        let Ok(meta) = dirent.metadata() else {
            continue;
        };
        let entry = classify(&name, meta.len());
        if entry.error.as_deref() == Some(GONE) {
            continue;
        }
        out.push(entry);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    mark_pending(&mut out);
    Ok(out)
}

/// The error of an entry that no longer exists (see [`classify`]).
pub const GONE: &str = "removed while being listed";

/// A growable collection's data segment that has no header yet (being made while the
/// listing ran) is the collection's, not a foreign segment: marks the headerless
/// segments named `X.g<hex>.<16 hex>` whose control object `X` is listed.
fn mark_pending(entries: &mut [Entry]) {
    let growable = [
        shm_collections::kinds::DICT.id(),
        shm_collections::kinds::VEC.id(),
        shm_collections::kinds::NAMESPACE.id(),
    ];
    let controls: std::collections::HashSet<String> = entries
        .iter()
        .filter(|e| e.kind_id.is_some_and(|k| growable.contains(&k)))
        .map(|e| e.name.clone())
        .collect();
    for e in entries.iter_mut() {
        let headerless = matches!(e.class, Class::Foreign | Class::Cpython | Class::Raw);
        let Some(control) = data_control(&e.name).filter(|c| headerless && controls.contains(*c))
        else {
            continue;
        };
        let mut pending = Entry::bare(&e.name, e.size, Class::Pending, "growth data (being made)");
        pending.data_of = Some(control.to_owned());
        *e = pending;
    }
}

/// Classifies one name of `/dev/shm` (never fails: errors go into the entry).
pub fn classify(name: &str, size: u64) -> Entry {
    if name.starts_with(PIDNS_PREFIX) {
        return Entry::bare(name, size, Class::PidnsRegistry, "pidns registry");
    }
    match crate::kinds::inspect(name) {
        Ok(info) => from_info(name, size, info),
        Err(shm_core::Error::NotFound { .. }) => {
            let mut en = Entry::bare(name, size, Class::Error, "gone");
            en.error = Some(GONE.into());
            en
        }
        Err(shm_core::Error::WrongMagic { .. } | shm_core::Error::Truncated { .. }) => {
            not_ours(name, size)
        }
        Err(e) => {
            let mut en = Entry::bare(name, size, Class::Error, "unreadable");
            en.error = Some(e.to_string());
            en
        }
    }
}

/// The row of an object whose header was read.
pub fn from_info(name: &str, size: u64, info: ObjectInfo) -> Entry {
    let mut e = Entry::bare(name, size, Class::Object, &info.kind_name);
    if e.kind.is_empty() {
        e.kind = format!("kind {:#x}", info.kind);
    }
    e.kind_id = Some(info.kind);
    e.type_name = Some(shm_core::short_type_name(&info.type_name));
    e.version = Some(info.version);
    e.initialised = Some(info.initialised);
    e.creator = Some(Creator::of(info.creator));
    e.flags = flag_names(info.flags);
    e.generation = Some(info.generation);
    e.created = Some(info.created);
    if info.kind == GROWTH_DATA {
        e.data_of = data_control(name).map(str::to_owned);
    }
    e
}

fn not_ours(name: &str, size: u64) -> Entry {
    match open_list(name) {
        Ok(list) => {
            let mut e = Entry::bare(name, size, Class::ShareableList, "");
            e.items = Some(list.len());
            e.kind = format!("ShareableList (CPython), {} items", list.len());
            e
        }
        Err(_) if manager_of(name).is_some() && name.starts_with(MANAGER_PREFIX) => {
            Entry::bare(name, size, Class::Raw, "raw segment")
        }
        Err(_) if name.starts_with(shm_core::RANDOM_NAME_PREFIX) => {
            Entry::bare(name, size, Class::Cpython, "cpython segment")
        }
        Err(_) => Entry::bare(name, size, Class::Foreign, "foreign"),
    }
}

/// Length of an empty CPython-format ShareableList: its item count and the one offset
/// word (CPython and shm-collections make it exactly this long).
pub const EMPTY_LIST_LEN: u64 = 16;

/// Opens `name` as a CPython-format ShareableList. Zero bytes parse as an empty list,
/// too weak a sign to call any segment a list: an empty one only when the segment has
/// exactly an empty list's length ([`EMPTY_LIST_LEN`]).
pub fn open_list(name: &str) -> Result<ShareableList, String> {
    let list = ShareableList::open(name).map_err(|e| e.to_string())?;
    if list.is_empty() {
        let len = shm_core::Segment::open(name)
            .map_err(|e| e.to_string())?
            .len() as u64;
        if len != EMPTY_LIST_LEN {
            return Err(format!(
                "no items in {len} bytes: an empty list has exactly {EMPTY_LIST_LEN} (an all-zero segment reads as an empty list)"
            ));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(manager_of("shm-rs.m.abc"), Some("abc"));
        assert_eq!(manager_of("shm-rs.m.abc.a0.g1f"), Some("abc"));
        assert_eq!(manager_of("shm-rs.k.x-y.o12"), Some("x-y"));
        assert_eq!(manager_of("shm-rs.m."), None);
        assert_eq!(manager_of("shm-rs.m.a b"), None);
        assert_eq!(manager_of("psm_12"), None);
        assert_eq!(data_control("d.g1a.00000000000000ff"), Some("d"));
        assert_eq!(
            data_control("shm-rs.m.x.g0.0123456789abcdef"),
            Some("shm-rs.m.x")
        );
        assert_eq!(data_control("d.g1a"), None);
        assert_eq!(data_control("d.gx.0123456789abcdef"), None);
        assert_eq!(data_control("d.g.0123456789abcdef"), None);
        assert_eq!(data_control(".g0.0123456789abcdef"), None);
    }
}
