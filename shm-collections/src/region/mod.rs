//! The growth region: the one place where growable collections
//! ([`ShareableDict`](crate::ShareableDict), [`ShareableVec`](crate::ShareableVec),
//! [`Namespace`](crate::Namespace)) keep their data, grow, compact and recover.
//!
//! # Layout
//!
//! A small fixed **control object** (a checked [`Object`](shm_core::Object), kind of the collection) holds
//! a robust [`RawMutex`](shm_sync::RawMutex) for writers, the configured size limits and the object's
//! **incarnation id** (64 random bits drawn at create); its header's generation counter
//! names the current **data segment** (see "Names" below). A data segment is an object
//! of kind [`kinds::GROWTH_DATA`](crate::kinds::GROWTH_DATA) with the same type record as its control object; its
//! payload is a 128-byte header of `u64` words (generation, slot count, record capacity,
//! bytes used, live entries, garbage bytes, tombstones, write sequence, incarnation id,
//! then reserved words), an index of `u64` slots, and an append-only record area.
//!
//! # Names
//!
//! Data segment `g` of the incarnation `i` of the collection named `X` is
//! `X.g<g in hex>.<i as 16 hex digits>` ([`data_segment_name`],
//! [`parse_data_segment_name`], which delegate to `shm_core::name`, the one place the
//! grammar lives). Derived names belong
//! to one incarnation of one object: a new collection under a reused name `X` draws a
//! new incarnation id and never meets the old one's data segments, and the old one's
//! handles never meet the new one's.
//!
//! Derived names and user names: names are not refused for looking like derived ones
//! (any process can create any name in `/dev/shm` anyway). Instead a derived name
//! carries 64 random bits no one else knows in advance, every data segment is created
//! under its name only once it is complete (an `O_TMPFILE` file linked to the name,
//! which never replaces an existing name; `O_EXCL` where the system has no
//! `O_TMPFILE`), and nothing here ever unlinks a segment unless its header says this
//! incarnation made it (kind, type, incarnation id and generation checked) or it is
//! the very file this handle mapped and checked (same device and inode). A name
//! that is taken by anything else is skipped (the generation moves on, up to 8 names)
//! and then [`RegionError::NameTaken`]: an object that happens to have a derived-looking
//! name is never harmed, and the worst a squatter can do is make growth fail.
//!
//! Length: a data segment name adds at most 35 bytes to the control name, and segment
//! names end at 253 bytes ([`shm_core::MAX_NAME_LEN`]), so a growable collection's name
//! may be at most [`MAX_CONTROL_NAME_LEN`] (218) bytes: longer names are refused at
//! create with `InvalidName`, never later at some growth.
//!
//! A slot holds `tag << 48 | offset` of a record (offsets into the record area, never
//! pointers; 0 is an empty slot, 1 a tombstone; the tag is 16 bits of the key's hash so
//! probes rarely read a record that does not match). A record is `u32` key length,
//! `u32` value length, a `u64` checksum over the lengths and the body, then the body
//! (key bytes then value bytes), padded to 8. A dict's index is open-addressed (linear probing); a vec's index is the
//! list itself, slot `i` holding element `i`, and the live-entries word is its length.
//!
//! # Writes (under the robust lock)
//!
//! A writer reserves room past `used` (stored first, so a record is never written
//! twice), writes the record, then publishes it with **one Release store** of its
//! offset into a slot; an overwritten or removed record becomes garbage. A writer
//! killed before that store leaves only unreachable bytes; killed after it, the entry is
//! fully there. The counters after it may then be stale, and are rebuilt (below).
//!
//! # Growth and compaction
//!
//! When a record or a new key does not fit, the writer builds a new data segment of
//! generation `g + 1` (complete before it gets its name, see "Names", sized for the live data: twice it,
//! rounded up to whole pages, or four times when the old segment was mostly garbage,
//! so that overwrite-heavy use compacts less often; never `ftruncate`d while mapped),
//! copies the live records into it (dropping garbage and tombstones), publishes it
//! with one Release store of `g + 1` into the control header, and unlinks segment `g`
//! (mappings of it stay valid until dropped). So growth compacts, and a dict that is
//! mostly garbage shrinks back. A growth that fails (a broken record found while
//! copying, no room in `/dev/shm`) removes the segment it made and changes nothing;
//! reads keep working, and `salvage` ([`SalvageReport`]) copies every intact record
//! into a fresh generation when a broken record stops every growth.
//!
//! # Lifetime of the data segments
//!
//! Every handle holds a shared `flock` on the control object's file (its own open
//! file description: the kernel counts handles in every process and drops the lock
//! of a process that dies). When a handle drops and the control object is unlinked
//! (`st_nlink == 0`), it releases its lock and tries an exclusive one without
//! waiting: success means no other handle exists anywhere, so it removes the data
//! segments (the current one and this incarnation's leftovers near it), which no one
//! can reach any more. So writing after the creator dropped the object leaks nothing.
//! (The cost: each handle keeps one file descriptor open. A process killed while it
//! holds the last handle leaves the segments, as any killed owner does, for the
//! tracker or `shm gc`.)
//!
//! # Waiting
//!
//! Writers wait for the writer lock while another writer holds it; each handle has a
//! patience (`set_patience`, default: no limit) after which the write fails with
//! [`RegionError::Lock`] and [`RawError::Timeout`](shm_sync::RawError::Timeout). Reads take no lock; only a read
//! that saw the generation change 10^4 times, and a snapshot (`iter`, `keys`, ...)
//! that saw writers change the slots 64 times, falls back to the writer lock, and
//! then waits as writers do.
//!
//! # Reads (no lock)
//!
//! A reader loads the generation, maps that segment if its handle has an older one
//! (the mapping a read runs on comes from a small per-thread cache, `ReadCache`, so a
//! read takes no lock and writes no shared word, not even one of its own process),
//! loads a slot with Acquire and copies the record out with racing copies, checking
//! its offset and lengths against the segment and its checksum. Records are never
//! changed once published and an old segment is never written once published over, so
//! a reader never sees a torn record; if the generation moved during the read, it
//! retries on the new segment. Snapshots ([`iter`](crate::ShareableDict::iter)) also
//! check the write sequence (a seqlock: odd while a writer changes slots) and, after
//! 64 failed attempts, take the writer lock so they always finish.
//!
//! # Crash recovery
//!
//! A writer that finds the lock's previous holder dead ([`Acquired::OwnerDied`](shm_sync::Acquired::OwnerDied)):
//! removes this incarnation's data segments of generations after `g` (an unpublished
//! growth) and before it (a published growth whose old segment was not yet unlinked),
//! each only if its header proves it, then rebuilds the
//! current data into a fresh segment `g + 1`, which recomputes every counter from the
//! slots and drops what was half done, and marks the lock consistent. Every committed
//! entry survives; the interrupted one is there exactly if its slot store happened.
//!
//! # Where each part lives
//!
//! - `layout`: the `#[repr(C)]` control and data headers, the index's slot words and a
//!   mapped data segment's checked geometry (`Mapped`);
//! - `record`: the record codec (lengths, checksum, racing copies in and out);
//! - `names`: the derived-name grammar; `segments`: making, proving and removing data
//!   segments (and creating a collection crash-atomically);
//! - `cache`: the per-thread mapping cache of the read path;
//! - `handle`: one handle (`Region`), its lifetime and clean-up; `index`: probing and
//!   listing the index; `reader`: the lock-free reads; `writer`: the writer lock,
//!   writes, growth, compaction, repair and salvage;
//! - `macros`: the lifecycle every growable collection shares.

#[macro_use]
mod macros;

mod cache;
mod error;
mod handle;
mod index;
mod layout;
mod names;
mod reader;
mod record;
mod segments;
mod writer;

pub use error::{RegionError, RegionResult, RegionStats, SalvageReport};
pub(crate) use error::{Slim, unbox};
pub(crate) use handle::Region;
pub(crate) use layout::CTRL_LEN;
pub(crate) use macros::region_object;
pub use names::{
    DataSegmentName, MAX_CONTROL_NAME_LEN, data_segment_name, parse_data_segment_name,
};
pub(crate) use record::Rec;
pub use segments::{create_collection_linked, current_data_segment};

/// Layout version of the growable collections (control and data segments).
///
/// 3: the control payload and every data segment carry the object's incarnation id,
/// which data segment names include (`<control>.g<generation>.<incarnation>`).
pub(crate) const LAYOUT_VERSION: u32 = 3;

/// Size limits of one collection, fixed at creation and stored in its control object
/// (every process enforces the creator's limits).
///
/// ```
/// use shm_collections::{Limits, RegionError, ShareableDict};
/// use shm_core::SharedObject;
/// let d = <ShareableDict<String, String> as SharedObject>::create(Limits { max_key: 8, max_value: 16 })?;
/// assert!(matches!(d.insert("far too long a key".into(), "v".into()), Err(RegionError::KeyTooLarge { .. })));
/// assert_eq!(d.len()?, 0);
/// # Ok::<(), RegionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded key, in bytes.
    pub max_key: u32,
    /// Largest encoded value, in bytes.
    pub max_value: u32,
}

impl Default for Limits {
    /// Keys up to 64 KiB, values up to 64 MiB (encoded).
    fn default() -> Self {
        Limits {
            max_key: 64 << 10,
            max_value: 64 << 20,
        }
    }
}

/// How the index is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// Open addressing by key hash.
    Hash,
    /// Slot `i` is element `i`; the live word is the length.
    List,
}
