//! Kind names for headers that do not store them: objects in an arena have the compact
//! 64-byte header (kind number, no name), so the names of this workspace's kinds are
//! looked up here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use shm_core::{Kind, Object, ObjectInfo, ObjectName, Segment};

thread_local! {
    /// Arena segments mapped so far: a listing of 10^5 arena objects maps each arena
    /// once, not once per object (the command is short-lived; mappings stay valid
    /// even if a segment is unlinked meanwhile).
    static ARENAS: RefCell<HashMap<String, Arc<Segment>>> = RefCell::new(HashMap::new());
}

/// The arena segment `name`, mapped once per command.
pub fn arena_segment(name: &str) -> shm_core::Result<Arc<Segment>> {
    if let Some(seg) = ARENAS.with(|a| a.borrow().get(name).cloned()) {
        return Ok(seg);
    }
    let seg = Arc::new(Segment::open(name)?);
    ARENAS.with(|a| a.borrow_mut().insert(name.to_owned(), seg.clone()));
    Ok(seg)
}

/// Opens the object `name` (`segment` or `segment@offset`, an arena's mapped once)
/// with the header's own spec.
pub fn open_object(name: &str, spec: &shm_core::ObjectSpec) -> shm_core::Result<Object> {
    match ObjectName::parse(name)? {
        ObjectName {
            segment,
            offset: Some(offset),
        } => Object::from_segment_at(arena_segment(&segment)?, offset, spec),
        _ => Object::open(name, spec),
    }
}

/// Every kind this workspace defines.
const KNOWN: &[Kind] = shm_manager::kinds::ALL;

/// [`Object::inspect`], with the kind's name filled in when the header has none, and
/// the element type's name from the manager's registry for an object in a manager's
/// arena (`shm-rs.m.NAME.aN@OFFSET`) that the registry names.
pub fn inspect(name: &str) -> shm_core::Result<ObjectInfo> {
    inspect_with(name, None)
}

/// [`inspect`] with the registry entry of `name` already at hand (`Some`): the
/// registry is then not read again (a listing reads each registry once, so that it
/// stays linear in the number of objects).
pub fn inspect_with(
    name: &str,
    known: Option<&shm_manager::Entry>,
) -> shm_core::Result<ObjectInfo> {
    let mut info = match ObjectName::parse(name)? {
        ObjectName {
            segment,
            offset: Some(offset),
        } => Object::inspect_at(arena_segment(&segment)?, offset)?,
        _ => Object::inspect(name)?,
    };
    if info.kind_name.is_empty() {
        if let Some(k) = KNOWN.iter().find(|k| k.id() == info.kind) {
            info.kind_name = k.name().to_owned();
        }
    }
    if info.type_name.is_empty() {
        let entry = match known {
            Some(e) => Some(e.clone()),
            None => registry_entry(name),
        };
        if let Some(entry) = entry {
            if entry.location == name && entry.kind == info.kind && entry.type_tag == info.type_tag
            {
                info.type_name = entry.type_name;
            }
        }
    }
    Ok(info)
}

/// The registry entry whose location is `name`, for an object in a manager's arena.
fn registry_entry(name: &str) -> Option<shm_manager::Entry> {
    let (manager, _arena, _offset) = shm_core::name::parse_arena_object(name)?;
    let root = shm_manager::root_name(manager).ok()?;
    crate::registry::read_registry(&root)
        .ok()?
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e.location == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_known_kind_has_its_own_number() {
        let mut ids: Vec<u32> = super::KNOWN.iter().map(|k| k.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), super::KNOWN.len());
    }
}
