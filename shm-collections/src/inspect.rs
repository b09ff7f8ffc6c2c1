//! Read-only views of collections whose element types the reader does not know, for
//! tools (the `shm` command of shm-manager): a growable collection's storage figures and
//! raw records, and a `Value`'s or `Array`'s raw bytes.
//!
//! Records come out as the encoded bytes the collection stores (bincode, see
//! [`codec`](crate::codec)); decoding them is up to the tool, which knows the type only
//! by the name in the header. Nothing here writes to a mapping, except that a snapshot
//! that keeps racing with writers falls back to the writer lock, as every reader does.
//! This is a tool API: its shape follows what a listing needs, not the layouts, which
//! may change without notice.
//!
//! ```
//! use shm_collections::{ShareableDict, codec, inspect};
//! use shm_core::{Object, SharedObject};
//! let d = ShareableDict::<String, u64>::create()?;
//! d.insert("a".to_string(), 1)?;
//! let spec = inspect::header_spec(d.object()).unwrap();   // whatever K and V are
//! let view = inspect::region_contents(Object::open(d.name().unwrap(), &spec)?, 10)?;
//! assert_eq!(view.stats.entries, 1);
//! assert_eq!(codec::decode::<u64>(&view.entries[0].value)?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use shm_core::{Kind, Object, ObjectSpec};

use crate::cell::{CellError, CellResult, DATA_OFFSET, LEN_OFFSET, LOCK_OFFSET};
use crate::kinds;
use crate::region::{IndexKind, LAYOUT_VERSION, Region, RegionError, RegionResult, RegionStats};

/// One record of a growable collection: the encoded key (empty for a vec's element)
/// and the encoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The key's bytes as stored (bincode); empty for a `ShareableVec` element.
    pub key: Vec<u8>,
    /// The value's bytes as stored (bincode).
    pub value: Vec<u8>,
}

/// What [`region_contents`] sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionView {
    /// Storage figures, as the collection's `stats` reports them.
    pub stats: RegionStats,
    /// The first records of one snapshot (dict and namespace: in slot order; vec: by index).
    pub entries: Vec<RawEntry>,
    /// How many records the snapshot held in all.
    pub total: usize,
}

/// Storage figures and the first `max_entries` records of the `ShareableDict`,
/// `ShareableVec` or `Namespace` whose control object is `object` (opened with its
/// header checked), whatever its key and value types.
///
/// Errors: [`shm_core::Error::WrongKind`] for another kind,
/// [`shm_core::Error::UnsupportedVersion`] for a layout this build does not read, and
/// whatever the region reports about corrupted or missing data segments.
///
/// ```
/// use shm_collections::{ShareableVec, inspect};
/// use shm_core::SharedObject;
/// let v = ShareableVec::<u32>::create()?;
/// v.extend([1, 2, 3])?;
/// let view = inspect::region_contents(shm_core::Object::open(v.name().unwrap(),
///     &inspect::header_spec(v.object()).unwrap())?, 2)?;
/// assert_eq!((view.total, view.entries.len()), (3, 2));
/// assert!(view.entries[0].key.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn region_contents(object: Object, max_entries: usize) -> RegionResult<RegionView> {
    let spec = header_spec(&object).ok_or_else(|| RegionError::Corrupted {
        name: object.label(),
        what: "a foreign-format object has no header".into(),
    })?;
    let index = match spec.kind.id() {
        id if id == kinds::DICT.id() || id == kinds::NAMESPACE.id() => IndexKind::Hash,
        id if id == kinds::VEC.id() => IndexKind::List,
        _ => {
            return Err(shm_core::Error::WrongKind {
                name: object.label(),
                expected: "Dict, Vec or Namespace".into(),
                found: spec.type_name.clone(),
            }
            .into());
        }
    };
    if spec.version != LAYOUT_VERSION {
        return Err(shm_core::Error::UnsupportedVersion {
            name: object.label(),
            kind: "growable collection".into(),
            expected: LAYOUT_VERSION,
            found: spec.version,
        }
        .into());
    }
    let region = Region::attach(object, &spec, index)?;
    let stats = region.stats()?;
    let recs = region.snapshot()?;
    let total = recs.len();
    let entries = recs
        .into_iter()
        .take(max_entries)
        .map(|r| RawEntry {
            key: r.key().to_vec(),
            value: r.value().to_vec(),
        })
        .collect();
    Ok(RegionView {
        stats,
        entries,
        total,
    })
}

/// The spec that an object's own header satisfies (kind, version and element type as
/// stored), to open an object of unknown type with [`Object::open`]; `None` for a
/// foreign object. The kind's display name is not kept (it is not checked).
///
/// ```
/// use shm_core::SharedObject;
/// let q = shm_collections::Queue::<String>::create(4, 256)?;
/// let spec = shm_collections::inspect::header_spec(q.object()).unwrap();
/// assert_eq!(spec.kind.id(), shm_collections::kinds::QUEUE.id());
/// assert!(shm_core::Object::open(q.name().unwrap(), &spec).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn header_spec(object: &Object) -> Option<ObjectSpec> {
    let info = object.info()?;
    let mut spec = ObjectSpec::new(Kind::new(info.kind, "object"), info.version);
    spec.type_tag = info.type_tag;
    spec.elem_size = info.elem_size;
    spec.elem_align = info.elem_align;
    spec.type_name = info.type_name;
    Some(spec)
}

/// The raw contents of a `Value`, `RawValue`, `AtomicValue`, `Array` or `RawArray`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellView {
    /// Payload offset of the cell's lock (a `shm_sync::RawMutex`; unused by the raw
    /// and atomic variants), for `shm_sync::inspect::mutex_state`.
    pub lock_offset: usize,
    /// Element count: 1 for a value, the length for an array.
    pub len: u64,
    /// Size of one element (from the header).
    pub elem_size: usize,
    /// The first elements' bytes, native endian.
    pub data: Vec<u8>,
}

/// Reads the first `max_elems` elements of the cell `object` (opened with its header
/// checked), whatever its element type.
///
/// Errors: [`CellError::Corrupted`] when the header's length, element size or the
/// array length do not fit the payload, [`shm_core::Error::WrongKind`] for another kind.
///
/// ```
/// use shm_collections::{Value, inspect};
/// use shm_core::SharedObject;
/// let v = Value::create(7u64)?;
/// let obj = shm_core::Object::open(v.name().unwrap(), &inspect::header_spec(v.object()).unwrap())?;
/// let cell = inspect::cell_contents(&obj, 1)?;
/// assert_eq!(cell.data, 7u64.to_ne_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cell_contents(object: &Object, max_elems: u64) -> CellResult<CellView> {
    let info = object.info().ok_or_else(|| CellError::Corrupted {
        name: object.label(),
        what: "a foreign-format object has no header".into(),
    })?;
    let is_array = info.kind == kinds::ARRAY.id();
    if info.kind != kinds::VALUE.id() && !is_array {
        return Err(shm_core::Error::WrongKind {
            name: object.label(),
            expected: "Value or Array".into(),
            found: info.kind_name,
        }
        .into());
    }
    let corrupted = |what: String| CellError::Corrupted {
        name: object.label(),
        what,
    };
    let elem_size = info.elem_size as usize;
    let len = if is_array {
        let mut b = [0u8; 8];
        object.read_at(LEN_OFFSET, &mut b)?;
        u64::from_ne_bytes(b)
    } else {
        1
    };
    let room = (object.payload_len().saturating_sub(DATA_OFFSET)) as u64;
    if elem_size != 0 && len > room / elem_size as u64 {
        return Err(corrupted(format!(
            "{len} elements of {elem_size} bytes do not fit in {room} payload bytes"
        )));
    }
    let n = len.min(max_elems) as usize;
    let mut data = vec![0u8; n * elem_size];
    object.read_at(DATA_OFFSET, &mut data)?;
    Ok(CellView {
        lock_offset: LOCK_OFFSET,
        len,
        elem_size,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Array, Namespace, ShareableDict};
    use shm_core::SharedObject;

    fn open(obj: &Object) -> Object {
        Object::open(obj.name().unwrap(), &header_spec(obj).unwrap()).unwrap()
    }

    #[test]
    fn dict_records_decode_as_their_types() {
        let d = ShareableDict::<String, i64>::create().unwrap();
        d.insert("k".into(), -5).unwrap();
        let view = region_contents(open(SharedObject::object(&d)), 10).unwrap();
        assert_eq!(view.total, 1);
        let k: String = crate::codec::decode(&view.entries[0].key).unwrap();
        let v: i64 = crate::codec::decode(&view.entries[0].value).unwrap();
        assert_eq!((k.as_str(), v), ("k", -5));
    }

    #[test]
    fn namespace_and_array_views() {
        let ns = Namespace::create().unwrap();
        ns.set("x", &3u8).unwrap();
        let view = region_contents(open(SharedObject::object(&ns)), 10).unwrap();
        assert_eq!(view.stats.entries, 1);
        let a = Array::<u16>::create(5).unwrap();
        let cell = cell_contents(&open(SharedObject::object(&a)), 3).unwrap();
        assert_eq!((cell.len, cell.elem_size, cell.data.len()), (5, 2, 6));
    }

    #[test]
    fn other_kinds_are_refused() {
        let a = Array::<u16>::create(5).unwrap();
        assert!(region_contents(open(SharedObject::object(&a)), 1).is_err());
        let d = ShareableDict::<u8, u8>::create().unwrap();
        assert!(cell_contents(&open(SharedObject::object(&d)), 1).is_err());
    }
}
