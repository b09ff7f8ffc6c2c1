//! The registry: a [`ShareableDict<String, Entry>`](shm_collections::ShareableDict)
//! at the manager's root segment, one [`Entry`] per key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shm_core::{Layout, SharedObject};

/// The registry's layout: how an [`Entry`] is stored. It is part of the registry's
/// type record: the root dict's type fingerprint hashes the full path of `Entry`,
/// which names the layout (`shm_manager::registry::layout2::Entry`), so a process or
/// tool built for another layout that opens the root gets a typed
/// [`TypeMismatch`](shm_core::Error::TypeMismatch) error naming both types instead of
/// misreading entries. Layout 2 stores entries compactly (issue 18 item 4).
///
/// ```
/// assert_eq!(shm_manager::REGISTRY_LAYOUT, 2);
/// assert!(std::any::type_name::<shm_manager::Entry>().ends_with("layout2::Entry"));
/// ```
pub const REGISTRY_LAYOUT: u32 = 2;

/// The module's name carries the layout into the registry's type fingerprint (see
/// [`REGISTRY_LAYOUT`]): rename it when the stored form of `Entry` changes.
mod layout2 {
    /// What the registry records about the object of a key: its kind and element type
    /// (checked by every process that opens it by key) and where it lives.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let _v = m.value("hits", 0u32)?;
    /// let e = m.entry("hits")?.expect("registered");
    /// assert_eq!(e.kind_name, "Value");
    /// assert!(e.in_arena() && e.location.contains(".a0@"));
    /// # Ok::<(), shm_manager::ManagerError>(())
    /// ```
    ///
    /// Stored compactly (32 bytes for a `Value<u64>` in an arena, about 80 before
    /// registry layout 2): the location as its parts (manager name, arena index and
    /// offset, or object id), a known kind's name as its number alone, and the type name
    /// without the kind's name it repeats; see [`REGISTRY_LAYOUT`](crate::REGISTRY_LAYOUT).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Entry {
        /// The kind number from the object header (0 for a foreign layout such as
        /// CPython's `ShareableList`).
        pub kind: u32,
        /// The kind's name.
        pub kind_name: String,
        /// The kind's layout version.
        pub version: u32,
        /// Fingerprint of the element type (the header's type tag).
        pub type_tag: u64,
        /// The element type's name, for messages.
        pub type_name: String,
        /// Where it lives: `segment@offset` inside an arena, or a segment name.
        pub location: String,
        /// Kept past the manager (`track = false`): named `shm-rs.k.NAME.*`.
        pub keep: bool,
    }
}

pub use layout2::Entry;

impl Entry {
    /// Whether the object lives in an arena (`segment@offset`).
    ///
    /// ```
    /// # let m = shm_manager::SharedMemoryManager::new()?;
    /// let _d = m.dict::<String, u64>("scores")?;
    /// assert!(!m.entry("scores")?.unwrap().in_arena()); // growables get their own segment
    /// # Ok::<(), shm_manager::ManagerError>(())
    /// ```
    pub fn in_arena(&self) -> bool {
        self.location.contains(shm_core::OFFSET_SEPARATOR)
    }

    /// `kind (type)` for messages.
    ///
    /// ```
    /// # let m = shm_manager::SharedMemoryManager::new()?;
    /// let _l = m.lock("db")?;
    /// assert!(m.entry("db")?.unwrap().describe().starts_with("Mutex"));
    /// # Ok::<(), shm_manager::ManagerError>(())
    /// ```
    pub fn describe(&self) -> String {
        describe(&self.kind_name, self.kind, &self.type_name)
    }
}

/// Every kind this workspace defines: their names are not stored in entries.
const KNOWN_KINDS: &[shm_core::Kind] = crate::kinds::ALL;

fn known_kind_name(kind: u32) -> Option<&'static str> {
    KNOWN_KINDS
        .iter()
        .find(|k| k.id() == kind)
        .map(|k| k.name())
}

/// A manager's name in a location: 16 lowercase hex digits (an anonymous manager)
/// as their 64 bits, any other name as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum WireName {
    Hex([u8; 8]),
    Text(String),
}

impl WireName {
    fn of(name: &str) -> WireName {
        let hex = name.len() == 16
            && name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match u64::from_str_radix(name, 16) {
            Ok(n) if hex => WireName::Hex(n.to_be_bytes()),
            _ => WireName::Text(name.to_owned()),
        }
    }

    fn text(&self) -> String {
        match self {
            WireName::Hex(b) => format!("{:016x}", u64::from_be_bytes(*b)),
            WireName::Text(t) => t.clone(),
        }
    }
}

/// Where an object lives, as its parts (the prefixes are not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum WireLocation {
    /// `shm-rs.m.NAME.a<index>@<64 * line>`.
    Arena {
        name: WireName,
        index: u32,
        line: u32,
    },
    /// `shm-rs.m.NAME.o<16 hex>` (`kept`: `shm-rs.k.NAME.o<16 hex>`).
    Own {
        kept: bool,
        name: WireName,
        id: [u8; 8],
    },
    /// Anything else, verbatim.
    Other(String),
}

impl WireLocation {
    fn parse(loc: &str) -> Option<WireLocation> {
        use shm_core::name::{MANAGED_PREFIX, parse_arena_object, parse_own_object};
        if loc.starts_with(MANAGED_PREFIX) && loc.contains(shm_core::OFFSET_SEPARATOR) {
            let (name, index, offset) = parse_arena_object(loc)?;
            return Some(WireLocation::Arena {
                name: WireName::of(name),
                index,
                line: u32::try_from(offset / 64)
                    .ok()
                    .filter(|_| offset % 64 == 0)?,
            });
        }
        let (kept, name, id) = parse_own_object(loc)?;
        Some(WireLocation::Own {
            kept,
            name: WireName::of(name),
            id: id.to_be_bytes(),
        })
    }

    fn text(&self) -> String {
        use shm_core::name::{arena_segment_name, manager_root, own_object_name};
        match self {
            WireLocation::Arena { name, index, line } => shm_core::ObjectName {
                segment: arena_segment_name(&manager_root(&name.text()), *index),
                offset: Some(*line as usize * 64),
            }
            .to_string(),
            WireLocation::Own { kept, name, id } => {
                own_object_name(&manager_root(&name.text()), *kept, u64::from_be_bytes(*id))
            }
            WireLocation::Other(s) => s.clone(),
        }
    }

    /// The compact form when it gives `loc` back exactly, else `loc` verbatim.
    fn of(loc: &str) -> WireLocation {
        match WireLocation::parse(loc) {
            Some(w) if w.text() == loc => w,
            _ => WireLocation::Other(loc.to_owned()),
        }
    }
}

/// The type name: after `KIND<` when it starts so (`Value<u64>` is stored `u64>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum WireType {
    AfterKind(String),
    Full(String),
}

/// An [`Entry`] as stored (registry layout 2).
#[derive(Serialize, Deserialize)]
struct Wire {
    kind: u32,
    version: u32,
    type_tag: [u8; 8],
    /// `None`: the name of a kind of this workspace ([`KNOWN_KINDS`]).
    kind_name: Option<String>,
    type_name: WireType,
    location: WireLocation,
    keep: bool,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let known = known_kind_name(self.kind) == Some(self.kind_name.as_str());
        let after = self
            .type_name
            .strip_prefix(self.kind_name.as_str())
            .and_then(|r| r.strip_prefix('<'))
            .filter(|_| !self.kind_name.is_empty());
        Wire {
            kind: self.kind,
            version: self.version,
            type_tag: self.type_tag.to_le_bytes(),
            kind_name: (!known).then(|| self.kind_name.clone()),
            type_name: match after {
                Some(r) => WireType::AfterKind(r.to_owned()),
                None => WireType::Full(self.type_name.clone()),
            },
            location: WireLocation::of(&self.location),
            keep: self.keep,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let kind_name = match w.kind_name {
            Some(n) => n,
            None => known_kind_name(w.kind)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a kind name or a kind of this workspace, found kind {:#x} \
                         without a name",
                        w.kind
                    ))
                })?
                .to_owned(),
        };
        let type_name = match w.type_name {
            WireType::AfterKind(r) => format!("{kind_name}<{r}"),
            WireType::Full(t) => t,
        };
        Ok(Entry {
            kind: w.kind,
            kind_name,
            version: w.version,
            type_tag: u64::from_le_bytes(w.type_tag),
            type_name,
            location: w.location.text(),
            keep: w.keep,
        })
    }
}

fn describe(kind_name: &str, kind: u32, type_name: &str) -> String {
    if type_name.is_empty() {
        format!("{kind_name} (kind {kind:#x})")
    } else {
        format!("{kind_name} (kind {kind:#x}) of {type_name}")
    }
}

/// What a type expects to find in an entry.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub(crate) kind: u32,
    pub(crate) kind_name: String,
    pub(crate) version: u32,
    pub(crate) type_tag: u64,
    pub(crate) type_name: String,
}

impl Expected {
    pub(crate) fn of<O: SharedObject>() -> Expected {
        match O::layout() {
            Layout::Header(spec) => Expected {
                kind: spec.kind.id(),
                kind_name: spec.kind.name().to_owned(),
                version: spec.version,
                type_tag: spec.type_tag,
                type_name: spec.type_name,
            },
            Layout::Foreign(name) => Expected {
                kind: 0,
                kind_name: name.to_owned(),
                version: 0,
                type_tag: shm_core::fnv1a(name.as_bytes()),
                type_name: String::new(),
            },
        }
    }

    pub(crate) fn entry(&self, location: String, keep: bool) -> Entry {
        Entry {
            kind: self.kind,
            kind_name: self.kind_name.clone(),
            version: self.version,
            type_tag: self.type_tag,
            type_name: self.type_name.clone(),
            location,
            keep,
        }
    }

    /// What a key should hold, in plain words: `Value<u64>`, `Dict<String, u64>`.
    pub(crate) fn plain(&self) -> String {
        plain(&self.kind_name, &self.type_name)
    }
}

impl Entry {
    /// What the key holds, in plain words: `Value<i32>`, `Mutex<u8>`.
    pub(crate) fn plain(&self) -> String {
        plain(&self.kind_name, &self.type_name)
    }
}

/// `Kind<Type>` with short type names; type names of the collections already read
/// `Kind<..>` (`Value<u64>`), those of the sync kinds are the bare `T` (`u8`).
fn plain(kind_name: &str, type_name: &str) -> String {
    let short = shm_core::short_type_name(type_name);
    if short.is_empty() {
        kind_name.to_owned()
    } else if short
        .strip_prefix(kind_name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('<'))
    {
        short
    } else {
        format!("{kind_name}<{short}>")
    }
}

/// A type name without module paths: `alloc::string::String` -> `String`,
/// `Dict<alloc::string::String,u64>` -> `Dict<String, u64>`.
///
/// The registry type: the root segment holds a dict of this type (tools such as the
/// `shm` command open it by the root's name).
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// m.lock("db")?;
/// let reg = shm_manager::Registry::open(m.root_name())?;
/// assert_eq!(reg.keys()?, ["db"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Registry = shm_collections::ShareableDict<String, Entry>;

#[cfg(test)]
mod tests {
    use super::{Entry, plain};
    use shm_core::short_type_name;

    fn entry(kind_name: &str, kind: u32, type_name: &str, location: &str) -> Entry {
        Entry {
            kind,
            kind_name: kind_name.into(),
            version: 1,
            type_tag: 0xdead_beef_0123_4567,
            type_name: type_name.into(),
            location: location.into(),
            keep: false,
        }
    }

    #[test]
    fn entries_round_trip_and_are_compact() {
        let value = shm_collections::kinds::VALUE;
        let small = entry(
            value.name(),
            value.id(),
            "Value<u64>",
            "shm-rs.m.0123456789abcdef.a3@4096",
        );
        let cases = [
            small.clone(),
            entry(
                "Mutex",
                shm_sync::kinds::MUTEX.id(),
                "()",
                "shm-rs.m.jobs.a0@192",
            ),
            entry(
                "Dict",
                shm_collections::kinds::DICT.id(),
                "Dict<String,u64>",
                "shm-rs.m.jobs.o0123456789abcdef",
            ),
            entry(
                "Queue",
                shm_collections::kinds::QUEUE.id(),
                "Queue<u8>",
                "shm-rs.k.jobs.o0123456789abcdef",
            ),
            entry(
                "CPython ShareableList",
                0,
                "",
                "shm-rs.m.x.oABCDEF0123456789",
            ),
            entry("Mine", 0x1_0042, "Mine<u8>", "shm-rs.m.x.a1@65"),
            entry("Value", 0x1_0042, "Value<u8>", "psm_elsewhere@64"),
            entry(
                "",
                value.id(),
                "Value<u64>",
                "shm-rs.m.00000000000000001.a0@64",
            ),
            entry("Value", value.id(), "Value<u64>", "shm-rs.m.x.a01@64"),
        ];
        for e in cases {
            let mut b = Vec::new();
            shm_collections::codec::encode(&e, &mut b).unwrap();
            let back: Entry = shm_collections::codec::decode(&b).unwrap();
            assert_eq!(back, e);
        }
        let mut b = Vec::new();
        shm_collections::codec::encode(&small, &mut b).unwrap();
        assert!(b.len() <= 40, "{} bytes", b.len());
        println!("a Value<u64> entry in an arena: {} bytes", b.len());
    }

    #[test]
    fn hostile_entries_are_errors() {
        // An unnamed kind that is not one of ours.
        let mut b = Vec::new();
        let e = entry("Mine", 0x1_0042, "", "x");
        shm_collections::codec::encode(&e, &mut b).unwrap();
        for cut in 0..b.len() {
            assert!(shm_collections::codec::decode::<Entry>(&b[..cut]).is_err());
        }
        // kind 0x10042, version 1, tag, kind name None: an error, not a panic.
        let forged = [0xfb, 0x42, 0x00, 0x01, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        let r = shm_collections::codec::decode::<Entry>(&forged);
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn type_names_are_short_and_plain() {
        assert_eq!(short_type_name("alloc::string::String"), "String");
        assert_eq!(
            short_type_name("Dict<alloc::string::String,u64>"),
            "Dict<String, u64>"
        );
        assert_eq!(
            short_type_name("core::option::Option<(u8, alloc::vec::Vec<i32>)>"),
            "Option<(u8, Vec<i32>)>"
        );
        assert_eq!(plain("Value", "Value<i32>"), "Value<i32>");
        assert_eq!(plain("Mutex", "u8"), "Mutex<u8>");
        assert_eq!(plain("Namespace", "Namespace"), "Namespace");
        assert_eq!(plain("CPython ShareableList", ""), "CPython ShareableList");
        assert_eq!(plain("Vec", "Vector"), "Vec<Vector>");
    }
}
