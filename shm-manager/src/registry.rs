//! The registry: a [`ShareableDict<String, Entry>`](shm_collections::ShareableDict)
//! at the manager's root segment, one [`Entry`] per key.

use serde::{Deserialize, Serialize};
use shm_core::{Layout, SharedObject};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    use super::plain;
    use shm_core::short_type_name;

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
