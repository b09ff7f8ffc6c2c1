//! What a manager's registry says about its segments: the key of every registered
//! object (also those inside arenas), the owner of every segment under the manager's
//! prefix, and the figures of arenas. Read through the library's own [`Registry`]
//! type; a registry that cannot be read becomes an error in its row, never a failed
//! listing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use shm_core::{Object, ObjectName, SharedObject};
use shm_manager::{FIRST_OFFSET, Registry, is_tracked_by};

use crate::scan::{self, Class, Creator, Entry};

/// One registered key, as `shm inspect` of a manager root or an arena shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The registry key.
    pub key: String,
    /// Kind name recorded in the registry.
    pub kind: String,
    /// Kind number recorded in the registry.
    pub kind_id: u32,
    /// Element type name recorded in the registry.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `segment` or `segment@offset`.
    pub location: String,
    /// Kept past the manager (`track = false`).
    pub keep: bool,
    /// Whether it lives in an arena.
    pub in_arena: bool,
    /// One line of state (value, lock state, depth...), when it could be read.
    pub state: Option<String>,
    /// Why the object could not be read.
    pub error: Option<String>,
}

/// How many times a registry was read by this process (see [`read_registry`]): a
/// listing reads each manager's registry once, whatever the number of its objects.
pub static REGISTRY_READS: AtomicUsize = AtomicUsize::new(0);

/// The registry of the root `root`: `(key, entry)` pairs sorted by key.
pub fn read_registry(root: &str) -> Result<Vec<(String, shm_manager::Entry)>, String> {
    REGISTRY_READS.fetch_add(1, Ordering::Relaxed);
    let reg = <Registry as SharedObject>::open(root)
        .map_err(|e| format!("not a readable manager registry: {e}"))?;
    let mut pairs: Vec<_> = reg
        .iter()
        .map_err(|e| format!("registry unreadable: {e}"))?
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}

/// The arena segment and offset of an arena location `root.a<N>@OFFSET`; `None` for
/// any other location (a separate segment, or a corrupted entry).
pub fn arena_location(root: &str, location: &str) -> Option<(String, usize)> {
    let parsed = ObjectName::parse(location).ok()?;
    let offset = parsed.offset?;
    let index = parsed.segment.strip_prefix(root)?.strip_prefix(".a")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .then_some((parsed.segment, offset))
}

/// Whether a registry location belongs to manager `name` (root `root`): under the
/// root's prefix or a kept object's `shm-rs.k.NAME.*`.
fn owned_location(root: &str, name: &str, location: &str) -> bool {
    ObjectName::parse(location).is_ok_and(|p| {
        (p.segment != root && is_tracked_by(&p.segment, root))
            || p.segment
                .strip_prefix(shm_manager::KEPT_PREFIX)
                .and_then(|r| r.strip_prefix(name))
                .is_some_and(|r| r.starts_with('.'))
    })
}

/// Adds to a listing what the registries say: `key` on every registered segment, one
/// row `arena@OFFSET` per registered arena object (right after its arena), `keys` on
/// each root and `owner` on every segment under a manager's prefix.
pub fn enrich(entries: &mut Vec<Entry>) {
    let roots: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            let m = scan::manager_of(&e.name)?;
            (scan::manager_root(m) == e.name).then(|| (m.to_owned(), e.name.clone()))
        })
        .collect();
    let mut owners: HashMap<String, Creator> = HashMap::new();
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut added = Vec::new();
    for (manager, root) in roots {
        let idx = entries
            .iter()
            .position(|e| e.name == root)
            .expect("a root found in this listing");
        if entries[idx].class != Class::Object {
            continue;
        }
        let owner = entries[idx].creator;
        if let Some(c) = owner {
            owners.insert(manager.clone(), c);
        }
        match read_registry(&root) {
            Ok(pairs) => {
                entries[idx].keys = Some(pairs.len());
                let mut foreign = Vec::new();
                for (key, entry) in pairs {
                    if !owned_location(&root, &manager, &entry.location) {
                        foreign.push(key);
                        continue;
                    }
                    match arena_location(&root, &entry.location) {
                        Some((arena, offset)) => {
                            added.push(arena_row(&entry, &arena, offset, key, owner));
                        }
                        None => {
                            keys.insert(entry.location, key);
                        }
                    }
                }
                if !foreign.is_empty() {
                    entries[idx].error = Some(format!(
                        "registry keys {foreign:?} name locations outside the manager (corrupted entries)"
                    ));
                }
            }
            Err(e) => entries[idx].error = Some(e),
        }
    }
    for e in entries.iter_mut() {
        if let Some(k) = keys.remove(&e.name) {
            e.key = Some(k);
        }
    }
    entries.extend(added);
    for e in entries.iter_mut() {
        if e.name.starts_with(scan::MANAGER_PREFIX) {
            if let Some(m) = scan::manager_of(&e.name) {
                e.owner = owners.get(m).copied();
            }
        }
    }
    // A manager's segments together right after its root ("shm-rs.m.x-y" would sort
    // between "shm-rs.m.x" and "shm-rs.m.x.a0"), an arena's objects right after it, by
    // offset ("a1@64" would sort after "a10").
    fn key(e: &Entry) -> (&str, &str, Option<u64>) {
        let name = e.arena.as_deref().unwrap_or(&e.name);
        let group = scan::manager_of(name)
            .filter(|_| name.starts_with(scan::MANAGER_PREFIX))
            .map_or(name, |m| &name[..scan::MANAGER_PREFIX.len() + m.len()]);
        (group, &name[group.len()..], e.offset)
    }
    entries.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// The row of the object of registry entry `entry` inside an arena (never fails:
/// errors go into the row). Its creator is the manager's owner (`owner`, the root's
/// creator): an arena object's compact header records no creator to judge.
fn arena_row(
    entry: &shm_manager::Entry,
    arena: &str,
    offset: usize,
    key: String,
    owner: Option<Creator>,
) -> Entry {
    let location = entry.location.as_str();
    let mut row = match crate::kinds::inspect_with(location, Some(entry)) {
        Ok(info) => {
            let size = info.total_len;
            let mut row = scan::from_info(location, size, info);
            if owner.is_some() {
                row.creator = owner;
            }
            row
        }
        Err(e) => {
            let mut row = Entry::bare(location, 0, Class::Error, "unreadable");
            row.error = Some(e.to_string());
            row
        }
    };
    row.key = Some(key);
    row.arena = Some(arena.to_owned());
    row.offset = Some(offset as u64);
    row
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
                match crate::inspect::state_line(&e.location, Some(&e)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_locations() {
        let r = "shm-rs.m.x";
        assert_eq!(
            arena_location(r, "shm-rs.m.x.a0@256"),
            Some(("shm-rs.m.x.a0".into(), 256))
        );
        assert_eq!(arena_location(r, "shm-rs.m.x.a0"), None);
        assert_eq!(arena_location(r, "shm-rs.m.x.o1@256"), None);
        assert_eq!(arena_location(r, "shm-rs.m.y.a0@256"), None);
        assert_eq!(arena_location(r, "shm-rs.m.x.a@256"), None);
        assert!(owned_location(r, "x", "shm-rs.m.x.o12"));
        assert!(owned_location(r, "x", "shm-rs.k.x.o12"));
        assert!(!owned_location(r, "x", "shm-rs.m.x"));
        assert!(!owned_location(r, "x", "shm-rs.m.xy.o1"));
        assert!(!owned_location(r, "x", "psm_1"));
    }
}
