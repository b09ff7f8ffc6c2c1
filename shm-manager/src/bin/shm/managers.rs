//! What a manager's registry says about its segments, added to a listing: the key of
//! every registered object (also those inside arenas) and the owner of every segment
//! under the manager's prefix. A registry that cannot be read becomes an error in its
//! row, never a failed listing.

use std::collections::HashMap;

use shm_core::ObjectName;

use crate::registry::read_registry;
use crate::scan::{self, Class, Creator, Entry};

/// The arena segment and offset of an arena location `root.a<N>@OFFSET`; `None` for
/// any other location (a separate segment, or a corrupted entry).
pub fn arena_location(root: &str, location: &str) -> Option<(String, usize)> {
    let parsed = ObjectName::parse(location).ok()?;
    let offset = parsed.offset?;
    let (arena_root, _index) = shm_core::name::parse_arena_segment(&parsed.segment)?;
    (arena_root == root).then_some((parsed.segment, offset))
}

/// Whether a registry location belongs to manager `name` (root `root`): under the
/// root's prefix or a kept object's `shm-rs.k.NAME.*`.
pub fn owned_location(root: &str, name: &str, location: &str) -> bool {
    ObjectName::parse(location).is_ok_and(|p| shm_core::name::is_owned_by(&p.segment, root, name))
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
