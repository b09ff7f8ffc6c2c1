//! The growth region: the one place where growable collections
//! ([`ShareableDict`](crate::ShareableDict), [`ShareableVec`](crate::ShareableVec),
//! [`Namespace`](crate::Namespace)) keep their data, grow, compact and recover.
//!
//! # Layout
//!
//! A small fixed **control object** (a checked [`Object`], kind of the collection) holds
//! a robust [`RawMutex`] for writers, the configured size limits and the object's
//! **incarnation id** (64 random bits drawn at create); its header's generation counter
//! names the current **data segment** (see "Names" below). A data segment is an object
//! of kind [`kinds::GROWTH_DATA`] with the same type record as its control object; its
//! payload is a 128-byte header of `u64` words (generation, slot count, record capacity,
//! bytes used, live entries, garbage bytes, tombstones, write sequence, incarnation id,
//! then reserved words), an index of `u64` slots, and an append-only record area.
//!
//! # Names
//!
//! Data segment `g` of the incarnation `i` of the collection named `X` is
//! `X.g<g in hex>.<i as 16 hex digits>` ([`data_segment_name`],
//! [`parse_data_segment_name`]: the one place the grammar lives). Derived names belong
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
//! [`RegionError::Lock`] and [`RawError::Timeout`]. Reads take no lock; only a read
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
//! A writer that finds the lock's previous holder dead ([`Acquired::OwnerDied`]):
//! removes this incarnation's data segments of generations after `g` (an unpublished
//! growth) and before it (a published growth whose old segment was not yet unlinked),
//! each only if its header proves it, then rebuilds the
//! current data into a fresh segment `g + 1`, which recomputes every counter from the
//! slots and drops what was half done, and marks the lock consistent. Every committed
//! entry survives; the interrupted one is there exactly if its slot store happened.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, RwLock};

use shm_core::{Object, ObjectSpec, Segment, SegmentOptions};
use shm_sync::{Acquired, RawError, RawMutex};

use crate::codec::{CodecError, hash64};
use crate::kinds;

/// Layout version of the growable collections (control and data segments).
///
/// 3: the control payload and every data segment carry the object's incarnation id,
/// which data segment names include (`<control>.g<generation>.<incarnation>`).
pub(crate) const LAYOUT_VERSION: u32 = 3;

const CTRL_LOCK: usize = 0;
const CTRL_MAX_KEY: usize = 16;
const CTRL_MAX_VALUE: usize = 24;
/// The incarnation id: 64 random bits drawn at create, never 0.
const CTRL_INC: usize = 32;
/// Payload bytes of a control object.
pub(crate) const CTRL_LEN: usize = 64;

const D_GEN: usize = 0;
const D_SLOTS: usize = 8;
const D_CAP: usize = 16;
const D_USED: usize = 24;
const D_LIVE: usize = 32;
const D_GARBAGE: usize = 40;
const D_DEAD: usize = 48;
const D_SEQ: usize = 56;
/// The incarnation id of the object that made this segment.
const D_INC: usize = 64;
/// The data header: the words above and reserved words up to 128 bytes.
const DATA_HDR: usize = 128;

const REC_HDR: usize = 16;
const EMPTY: u64 = 0;
const TOMB: u64 = 1;
const OFF_MASK: u64 = (1 << 48) - 1;
/// The record area's first 8 bytes are never used: offset 0 means "empty".
const FIRST_REC: u64 = 8;
const MIN_SLOTS: usize = 16;
const MIN_CAP: usize = 4096;
/// Largest index a data header may claim (2^36 slots = 512 GiB of index).
const MAX_SLOTS: u64 = 1 << 36;
/// Record offsets fit in 48 bits.
const MAX_CAP: u64 = OFF_MASK;
const HASH_SEED: u64 = 0x5348_4d2d_6469_6374;
const CHECK_SEED: u64 = 0x7265_636f_7264_2121;
/// Snapshot attempts without the lock before taking it.
const SNAPSHOT_TRIES: usize = 64;
/// Generation changes a single read follows before it gives up.
const READ_TRIES: usize = 10_000;

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

/// Errors of the growable collections ([`ShareableDict`](crate::ShareableDict),
/// [`ShareableVec`](crate::ShareableVec), [`Namespace`](crate::Namespace)). Variants
/// name the object.
///
/// ```
/// use shm_collections::{RegionError, ShareableVec};
/// let v = ShareableVec::<u8>::create()?;
/// assert!(matches!(v.set(3, 1), Err(RegionError::IndexOutOfRange { index: 3, len: 0, .. })));
/// # Ok::<(), RegionError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// Creating, opening or mapping a segment failed (not found, wrong kind or type,
    /// no space in /dev/shm, ...).
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
    /// An encoded key over the collection's limit.
    #[error("{name}: the encoded key is {len} bytes, over the limit of {limit}")]
    KeyTooLarge {
        /// The object.
        name: String,
        /// Encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An encoded value over the collection's limit.
    #[error("{name}: the encoded value is {len} bytes, over the limit of {limit}")]
    ValueTooLarge {
        /// The object.
        name: String,
        /// Encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A key or value could not be encoded.
    #[error("{name}: cannot encode the {what}: {source}")]
    Encode {
        /// The object.
        name: String,
        /// "key" or "value".
        what: &'static str,
        /// The codec's message.
        #[source]
        source: CodecError,
    },
    /// Stored bytes did not decode as the expected type.
    #[error("{name}: stored {what} does not decode as {expected}: {source}")]
    Decode {
        /// The object.
        name: String,
        /// "key" or "value".
        what: &'static str,
        /// The Rust type expected.
        expected: &'static str,
        /// The codec's message.
        #[source]
        source: CodecError,
    },
    /// The shared bytes are inconsistent (overwritten by something else).
    #[error("{name} is corrupted: {what}")]
    Corrupted {
        /// The object.
        name: String,
        /// What was found.
        what: String,
    },
    /// The writer lock could not be taken: another writer held it longer than this
    /// handle's patience ([`RawError::Timeout`], see `set_patience`), it would
    /// deadlock (a closure passed to `update` used the same collection), or a
    /// corrupted lock word.
    #[error("{name}: cannot take the writer lock: {source}")]
    Lock {
        /// The object.
        name: String,
        /// Why.
        #[source]
        source: RawError,
    },
    /// An index past the end of a [`ShareableVec`](crate::ShareableVec).
    #[error("index {index} out of range for {name} of length {len}")]
    IndexOutOfRange {
        /// The object.
        name: String,
        /// The index asked for.
        index: usize,
        /// The length.
        len: usize,
    },
    /// A [`Namespace`](crate::Namespace) attribute holds another type.
    #[error(
        "{name}: attribute {attr:?} holds a {}, not a {}",
        shm_core::short_type_name(found),
        shm_core::short_type_name(expected)
    )]
    TypeMismatch {
        /// The object.
        name: String,
        /// The attribute.
        attr: String,
        /// The type asked for.
        expected: String,
        /// The type stored.
        found: String,
    },
    /// The operation needs a named control object (anonymous and arena objects cannot
    /// name their data segments).
    #[error("{name}: {what}")]
    Unsupported {
        /// The object.
        name: String,
        /// What is not supported.
        what: &'static str,
    },
    /// A growth found the names of its next data segments taken by segments that are
    /// not provably this object's (another object's, or a half-made one of a writer
    /// killed while creating it); nothing was removed. `shm ls` shows what they are.
    #[error(
        "{name}: cannot grow: the next data segment names are taken by segments this object did not provably make (left in place): {segments:?}"
    )]
    NameTaken {
        /// The object.
        name: String,
        /// The names tried.
        segments: Vec<String>,
    },
}

/// What [`salvage`](crate::ShareableDict::salvage) did: the intact records were copied
/// into a fresh data segment; these were not.
///
/// ```
/// let d = shm_collections::ShareableDict::<u64, u64>::create()?;
/// d.insert(1, 2)?;
/// let report = d.salvage()?;
/// assert_eq!((report.kept, report.dropped.len()), (1, 0));
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Records copied (entries of a dict or namespace, elements of a vec).
    pub kept: u64,
    /// The records dropped: the slot of a dict or namespace entry, the index of a vec
    /// element (in the old numbering: later elements move down), each with why.
    pub dropped: Vec<(u64, String)>,
    /// The generation the salvaged data was published as.
    pub generation: u64,
}

/// Result of the growable collections.
pub type RegionResult<T> = Result<T, RegionError>;

/// Result of the lock-free read path: the (large, rare) error boxed, so that results
/// handed back through the probe loop and `read_stable` stay a few words.
pub(crate) type Slim<T> = Result<T, Box<RegionError>>;

/// Unboxes a read-path error (for `map_err`, which hands over the box).
#[inline]
#[allow(clippy::boxed_local)]
pub(crate) fn unbox(e: Box<RegionError>) -> RegionError {
    *e
}

/// What [`stats`](crate::ShareableDict::stats) reports.
///
/// ```
/// let d = shm_collections::ShareableDict::<u64, u64>::create()?;
/// d.insert(1, 2)?;
/// d.insert(1, 3)?;
/// let s = d.stats()?;
/// assert_eq!((s.entries, s.generation), (1, 0));
/// assert!(s.garbage > 0 && s.bytes_used <= s.capacity);
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionStats {
    /// Live entries (elements of a vec).
    pub entries: u64,
    /// Bytes of the record area in use (live records and garbage).
    pub bytes_used: u64,
    /// Bytes of the record area.
    pub capacity: u64,
    /// Index slots.
    pub slots: u64,
    /// Data segments published so far (growths, compactions and repairs).
    pub generation: u64,
    /// Bytes of records no longer reachable (overwritten, removed).
    pub garbage: u64,
}

/// How the index is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// Open addressing by key hash.
    Hash,
    /// Slot `i` is element `i`; the live word is the length.
    List,
}

/// A record copied out of the mapping: key bytes then value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) body: Vec<u8>,
    pub(crate) klen: usize,
}

impl Rec {
    pub(crate) fn key(&self) -> &[u8] {
        &self.body[..self.klen]
    }
    pub(crate) fn value(&self) -> &[u8] {
        &self.body[self.klen..]
    }
}

fn rec_len(body: usize) -> u64 {
    ((REC_HDR + body) as u64 + 7) & !7
}

#[inline]
fn key_hash(key: &[u8]) -> u64 {
    hash64(HASH_SEED, key)
}

/// `a == b`, inline for short keys (a u64 key encodes in at most 9 bytes): the slice
/// comparison calls `memcmp`, which costs more than the compare itself here.
#[inline]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Overlapping reads of both ends cover every byte, as in `hash64`.
    let w4 = |s: &[u8], i: usize| u32::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let w8 = |s: &[u8], i: usize| {
        u64::from_ne_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ])
    };
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=8 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        9..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// Over the lengths and the body (key then value, contiguous: one pass).
#[inline]
fn checksum(klen: u32, vlen: u32, body: &[u8]) -> u64 {
    hash64(CHECK_SEED ^ (u64::from(klen) << 32 | u64::from(vlen)), body)
}

/// The record header and up to 32 body bytes (a u64 key and value take at most 18):
/// a record this small is copied onto the stack word by word, no larger buffer.
const FIRST_READ: usize = REC_HDR + 32;
/// Larger bodies up to this size are copied into a stack buffer.
const SMALL_BODY: usize = 240;

/// One mapped data segment, with its geometry read and checked once.
#[derive(Debug)]
pub(crate) struct Mapped {
    generation: u64,
    obj: Object,
    slots: usize,
    cap: u64,
}

/// Handles met so far in this process: names a handle in the [`ReadCache`] (an
/// address could be reused by the next handle).
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// Handles per thread whose mapping the [`ReadCache`] keeps.
const CACHE_WAYS: usize = 4;

/// Each thread's most recently used data-segment mappings, by handle id: the lock-free
/// read path runs on one of these instead of taking the handle's `RwLock` and cloning
/// its `Arc` (two read-modify-writes per read on a line every reading thread of the
/// process shares).
///
/// Why this is sound: an entry holds an `Arc`, so the mapping it names lives while the
/// entry does, whatever the handle or other threads do; a read borrows the entry
/// (`RefCell`, this thread only) for the time it runs on it. An entry is used only
/// when its generation is the one the control object names (the same check as with
/// the handle's own mapping: id and generation name one segment). Replacing an entry
/// needs the cell mutably; a read that finds it borrowed (a decoder re-entering a
/// read on this thread) or the thread-local gone (thread exit) uses the handle's
/// mapping directly, as before.
///
/// The cost: a thread keeps the last mapping it read of up to [`CACHE_WAYS`] handles
/// alive until it reads through other handles or exits, even after the handle is
/// dropped (the dropping thread's own entry goes with the handle). The memory of an
/// unlinked, published-over segment is thus freed late, never leaked: each thread holds
/// at most `CACHE_WAYS` mappings.
struct ReadCache {
    ways: [Option<(u64, Arc<Mapped>)>; CACHE_WAYS],
    /// The way the next miss replaces (round robin).
    next: usize,
}

impl ReadCache {
    #[inline]
    fn find(&self, id: u64) -> Option<&Arc<Mapped>> {
        self.ways
            .iter()
            .flatten()
            .find(|(h, _)| *h == id)
            .map(|(_, m)| m)
    }

    fn put(&mut self, id: u64, m: Arc<Mapped>) {
        if let Some(way) = self.ways.iter_mut().flatten().find(|(h, _)| *h == id) {
            way.1 = m;
            return;
        }
        self.ways[self.next % CACHE_WAYS] = Some((id, m));
        self.next = self.next.wrapping_add(1);
    }

    fn forget(&mut self, id: u64) {
        for way in &mut self.ways {
            if way.as_ref().is_some_and(|(h, _)| *h == id) {
                *way = None;
            }
        }
    }
}

thread_local! {
    static READ_CACHE: RefCell<ReadCache> = const {
        RefCell::new(ReadCache {
            ways: [None, None, None, None],
            next: 0,
        })
    };
}

#[cold]
fn bad_offset(label: &str, off: u64, cap: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record offset {off} outside the record area of {cap} bytes"),
    }
}

#[cold]
fn bad_length(label: &str, off: u64, body: u64, cap: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record at {off} claims {body} bytes past the record area of {cap}"),
    }
}

#[cold]
fn bad_sum(label: &str, off: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record at {off} fails its checksum"),
    }
}

impl Mapped {
    fn word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at < DATA_HDR && at % 8 == 0);
        // SAFETY: `check` made sure the payload holds the 64-byte data header; the
        // payload is 64-byte aligned and `at` a multiple of 8 below 64; atomics are
        // valid for any bits and for concurrent access from other processes.
        unsafe { &*self.obj.payload_ptr().add(at).cast::<AtomicU64>() }
    }

    #[inline]
    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.slots, "slot index checked by every caller");
        self.slot_wrapped(i)
    }

    /// Slot `i` modulo the slot count (a probe's position: no bounds check to fail).
    #[inline]
    fn slot_wrapped(&self, i: usize) -> &AtomicU64 {
        let i = i & (self.slots - 1);
        // SAFETY: `check` made sure `slots` is a power of two (so at least 1) and that
        // DATA_HDR + slots * 8 bytes lie in the payload; i & (slots - 1) < slots;
        // 8-aligned; atomics are valid for any bits and for concurrent access.
        unsafe {
            &*self
                .obj
                .payload_ptr()
                .add(DATA_HDR + i * 8)
                .cast::<AtomicU64>()
        }
    }

    /// Copies the aligned words at payload position `at` of the record area into
    /// `out` (a multiple of 8 bytes) with one atomic load each: cheaper than a general
    /// racing copy for the small reads of the `get` path.
    #[inline]
    fn load_words(&self, at: usize, out: &mut [u8]) {
        assert!(
            at % 8 == 0
                && out.len() % 8 == 0
                && at >= self.rec_base()
                && at + out.len() <= self.rec_base() + self.cap as usize,
            "record words checked by every caller"
        );
        let base = self.obj.payload_ptr();
        for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
            // SAFETY: `check` made sure the record area (rec_base .. rec_base + cap)
            // lies in the payload; `at + 8j + 8 <= at + out.len()` is inside it
            // (asserted) and 8-aligned (the payload is 64-byte aligned); atomics are
            // valid for any bits and for concurrent access from other processes.
            let w = unsafe { &*base.add(at + j * 8).cast::<AtomicU64>() };
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
    }

    fn rec_base(&self) -> usize {
        DATA_HDR + self.slots * 8
    }

    /// Removes this segment's name if it still names the file mapped here (whose
    /// header was checked when it was mapped or made: this incarnation's); never a
    /// segment made since under the same name.
    fn unlink_name(&self) -> bool {
        self.obj.segment().unlink_if_still_named().unwrap_or(false)
    }

    fn load(&self, at: usize) -> u64 {
        self.word(at).load(Ordering::Relaxed)
    }

    fn store(&self, at: usize, v: u64) {
        self.word(at).store(v, Ordering::Relaxed)
    }

    /// Checks an opened data segment's geometry against its payload.
    fn check(obj: Object, generation: u64, inc: u64, label: &str) -> RegionResult<Mapped> {
        let bad = |what: String| RegionError::Corrupted {
            name: label.to_owned(),
            what,
        };
        let len = obj.payload_len() as u64;
        if len < DATA_HDR as u64 {
            return Err(bad(format!("data segment payload of {len} bytes")));
        }
        let m = Mapped {
            generation,
            obj,
            slots: 0,
            cap: 0,
        };
        let (g, slots, cap) = (m.load(D_GEN), m.load(D_SLOTS), m.load(D_CAP));
        if g != generation {
            return Err(bad(format!(
                "data segment says generation {g}, expected {generation}"
            )));
        }
        let found = m.load(D_INC);
        if found != inc {
            return Err(bad(format!(
                "data segment of incarnation {found:016x}, expected {inc:016x}"
            )));
        }
        if !slots.is_power_of_two() || slots > MAX_SLOTS {
            return Err(bad(format!("index of {slots} slots (not a power of two)")));
        }
        let need = (DATA_HDR as u64)
            .checked_add(slots * 8)
            .and_then(|n| n.checked_add(cap));
        if cap > MAX_CAP || need != Some(len) {
            return Err(bad(format!(
                "{slots} slots and {cap} record bytes do not fill a payload of {len}"
            )));
        }
        // Records are read and written in whole aligned words up to `cap`.
        if cap % 8 != 0 {
            return Err(bad(format!(
                "a record area of {cap} bytes (not a multiple of 8)"
            )));
        }
        Ok(Mapped {
            slots: slots as usize,
            cap,
            ..m
        })
    }

    /// Checks the record header at `off` against the record area; returns the
    /// record's payload position, key length, value length and checksum.
    #[inline]
    fn header(&self, off: u64, label: &str) -> RegionResult<(usize, u32, u32, u64)> {
        if off % 8 != 0
            || off < FIRST_REC
            || off.checked_add(REC_HDR as u64).is_none_or(|e| e > self.cap)
        {
            return Err(bad_offset(label, off, self.cap));
        }
        let at = self.rec_base() + off as usize;
        let mut hdr = [0u8; REC_HDR];
        self.obj.read_at(at, &mut hdr)?;
        let [k0, k1, k2, k3, v0, v1, v2, v3, s @ ..] = hdr;
        let klen = u32::from_ne_bytes([k0, k1, k2, k3]);
        let vlen = u32::from_ne_bytes([v0, v1, v2, v3]);
        let sum = u64::from_ne_bytes(s);
        let body = u64::from(klen) + u64::from(vlen);
        // off + REC_HDR <= cap (checked above), so this cannot overflow.
        if off + REC_HDR as u64 + body > self.cap {
            return Err(bad_length(label, off, body, self.cap));
        }
        Ok((at, klen, vlen, sum))
    }

    /// Copies the record at `off` out, checking bounds, lengths and checksum.
    fn read(&self, off: u64, label: &str) -> RegionResult<Rec> {
        self.with_record(off, label, |body, klen| Rec {
            body: body.to_vec(),
            klen,
        })
        .map_err(unbox)
    }

    /// Copies the whole record at `off` (header and body) into `buf`, checking bounds,
    /// lengths and checksum; returns the key length. For compaction: the copy keeps
    /// its checksum, which covers lengths and bytes but not the record's place.
    fn copy_raw(&self, off: u64, label: &str, buf: &mut Vec<u8>) -> RegionResult<usize> {
        let (at, klen, vlen, sum) = self.header(off, label)?;
        let body = klen as usize + vlen as usize;
        // The padded record ends inside the area: cap and off are multiples of 8.
        buf.clear();
        buf.resize(rec_len(body) as usize, 0);
        self.load_words(at, buf);
        // The header was read twice: the second copy is the one checked and kept.
        let (hdr, rest) = buf.split_at(REC_HDR);
        if hdr[0..4] != klen.to_ne_bytes()
            || hdr[4..8] != vlen.to_ne_bytes()
            || hdr[8..16] != sum.to_ne_bytes()
            || checksum(klen, vlen, &rest[..body]) != sum
        {
            return Err(bad_sum(label, off));
        }
        Ok(klen as usize)
    }

    /// Stores `bytes` (a padded record) at payload position `at` with one atomic store
    /// per word when aligned and inside the record area, else by a checked racing copy
    /// (which reports the bounds error).
    #[inline]
    fn store_words(&self, at: usize, bytes: &[u8]) -> RegionResult<()> {
        let fits = at % 8 == 0
            && bytes.len() % 8 == 0
            && at >= self.rec_base()
            && at
                .checked_add(bytes.len())
                .is_some_and(|e| e <= self.rec_base() + self.cap as usize);
        if !fits {
            self.obj.write_at(at, bytes)?;
            return Ok(());
        }
        let base = self.obj.payload_ptr();
        for (j, chunk) in bytes.chunks_exact(8).enumerate() {
            // SAFETY: as in `load_words`: `at + 8j + 8 <= at + bytes.len()` lies in the
            // record area inside the payload (checked above), 8-aligned; atomic.
            let w = unsafe { &*base.add(at + j * 8).cast::<AtomicU64>() };
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            w.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Lays a record out in `rec` (header, key, value, zero padding).
    fn fill(rec: &mut [u8], key: &[u8], value: &[u8]) {
        let (hdr, body) = rec.split_at_mut(REC_HDR);
        let (k, v) = body.split_at_mut(key.len());
        k.copy_from_slice(key);
        v[..value.len()].copy_from_slice(value);
        let (klen, vlen) = (key.len() as u32, value.len() as u32);
        let sum = checksum(klen, vlen, &body[..key.len() + value.len()]);
        hdr[0..4].copy_from_slice(&klen.to_ne_bytes());
        hdr[4..8].copy_from_slice(&vlen.to_ne_bytes());
        hdr[8..16].copy_from_slice(&sum.to_ne_bytes());
    }

    /// Writes a record at `off` (reserved by the caller, nobody reads it yet): laid out
    /// in one buffer (on the stack when small) and stored in once, padding included.
    #[inline]
    fn write(&self, off: u64, key: &[u8], value: &[u8]) -> RegionResult<()> {
        let len = rec_len(key.len() + value.len()) as usize;
        let at = self.rec_base() + off as usize;
        if len <= 64 {
            let mut small = [0u8; 64];
            Self::fill(&mut small[..len], key, value);
            self.store_words(at, &small[..len])
        } else {
            self.write_long(at, len, key, value)
        }
    }

    /// `write` of a larger record, out of line (its buffers stay off the short path).
    #[inline(never)]
    fn write_long(&self, at: usize, len: usize, key: &[u8], value: &[u8]) -> RegionResult<()> {
        let mut small = [0u8; REC_HDR + SMALL_BODY + 8];
        let mut large = Vec::new();
        let rec = if len <= small.len() {
            &mut small[..len]
        } else {
            large.resize(len, 0);
            &mut large[..]
        };
        Self::fill(rec, key, value);
        self.store_words(at, rec)
    }

    /// Checks the record at `off` and hands its body (key then value) and key length
    /// to `f`. The header and a small body come in one racing copy onto the stack; a
    /// larger body in a second (no allocation up to `SMALL_BODY` bytes).
    #[inline]
    fn with_record<R>(&self, off: u64, label: &str, f: impl FnOnce(&[u8], usize) -> R) -> Slim<R> {
        if off % 8 != 0
            || off < FIRST_REC
            || off.checked_add(REC_HDR as u64).is_none_or(|e| e > self.cap)
        {
            return Err(Box::new(bad_offset(label, off, self.cap)));
        }
        let at = self.rec_base() + off as usize;
        // The header first, then only the body words the record has (a u64 key and
        // value take one), each one aligned atomic load onto the stack.
        let mut hdr = [0u8; REC_HDR];
        self.load_words(at, &mut hdr);
        let [
            k0,
            k1,
            k2,
            k3,
            v0,
            v1,
            v2,
            v3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
        ] = hdr;
        let klen = u32::from_ne_bytes([k0, k1, k2, k3]);
        let vlen = u32::from_ne_bytes([v0, v1, v2, v3]);
        let sum = u64::from_ne_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
        let body = u64::from(klen) + u64::from(vlen);
        // off + REC_HDR <= cap (checked above), so this cannot overflow.
        if off + REC_HDR as u64 + body > self.cap {
            return Err(Box::new(bad_length(label, off, body, self.cap)));
        }
        let body = body as usize;
        if body > FIRST_READ - REC_HDR {
            return self.with_long_record(at, klen, vlen, sum, off, label, f);
        }
        let mut first = [0u8; FIRST_READ - REC_HDR];
        // The padded body ends inside the area too: cap, off and REC_HDR are multiples
        // of 8 and off + REC_HDR + body <= cap.
        self.load_words(at + REC_HDR, &mut first[..body.next_multiple_of(8)]);
        let buf = &first[..body];
        if checksum(klen, vlen, buf) != sum {
            return Err(Box::new(bad_sum(label, off)));
        }
        Ok(f(buf, klen as usize))
    }

    /// `with_record` for a body longer than the first read: copied again in full
    /// (onto the stack up to `SMALL_BODY` bytes). Out of line, so the short path
    /// does not zero these buffers.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn with_long_record<R>(
        &self,
        at: usize,
        klen: u32,
        vlen: u32,
        sum: u64,
        off: u64,
        label: &str,
        f: impl FnOnce(&[u8], usize) -> R,
    ) -> Slim<R> {
        let body = klen as usize + vlen as usize;
        let mut small = [0u8; SMALL_BODY];
        let mut large = Vec::new();
        let buf = if body <= SMALL_BODY {
            &mut small[..body]
        } else {
            large.resize(body, 0);
            &mut large[..]
        };
        self.obj
            .read_at(at + REC_HDR, buf)
            .map_err(|e| Box::new(e.into()))?;
        if checksum(klen, vlen, buf) != sum {
            return Err(Box::new(bad_sum(label, off)));
        }
        Ok(f(buf, klen as usize))
    }

    /// The slot's record offset, `None` for empty or tombstone.
    fn slot_off(v: u64) -> Option<u64> {
        (v > TOMB).then_some(v & OFF_MASK)
    }
}

/// The handle's view of a growable object: its control object and a cached mapping of
/// the current data segment.
pub(crate) struct Region {
    ctrl: Object,
    label: Arc<str>,
    data_spec: ObjectSpec,
    kind: IndexKind,
    /// Names this handle in the per-thread [`ReadCache`].
    id: u64,
    map: RwLock<Arc<Mapped>>,
    /// The writer lock holder's mapping: only the thread holding the (cross-process)
    /// writer lock reads or replaces it, so the lock is what synchronises it.
    held: std::cell::UnsafeCell<Option<Arc<Mapped>>>,
    limits: Limits,
    /// The incarnation id (read once at attach: the names this handle derives).
    inc: u64,
    /// The control object's file, with a shared `flock` on it while this handle lives:
    /// the kernel counts the handles of every process (and drops a dead process's
    /// lock), so the last handle of an unlinked object can tell that it is the last.
    /// `None` when the name was replaced before we could open it.
    last_lock: Option<std::os::fd::OwnedFd>,
    /// How long writers wait for the writer lock, in nanoseconds; `u64::MAX` for no
    /// limit. Read only when the lock is taken already.
    patience: AtomicU64,
}

// SAFETY: every field but `held` is Sync; `held` is only accessed by the thread that
// holds the writer lock (`lock` and the `Writer` it returns, which is not Send), and
// that robust lock excludes every other thread of every process.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The data segment's spec: the control object's type record under the data kind.
fn data_spec(ctrl_spec: &ObjectSpec) -> ObjectSpec {
    let mut s = ObjectSpec::new(kinds::GROWTH_DATA, LAYOUT_VERSION);
    s.type_tag = ctrl_spec.type_tag;
    s.elem_size = ctrl_spec.elem_size;
    s.elem_align = ctrl_spec.elem_align;
    s.type_name = ctrl_spec.type_name.clone();
    s
}

/// Longest suffix a data segment name adds to its control name:
/// `.g` + 16 hex digits of generation + `.` + 16 hex digits of incarnation.
const DATA_SUFFIX_MAX: usize = 2 + 16 + 1 + 16;

/// Longest control name of a growable collection: every data segment name it can ever
/// derive (generation up to `u64::MAX`) must fit [`shm_core::MAX_NAME_LEN`].
///
/// ```
/// use shm_collections::{ShareableDict, region::MAX_CONTROL_NAME_LEN};
/// let long = "d".repeat(MAX_CONTROL_NAME_LEN + 1);
/// assert!(ShareableDict::<u64, u64>::create_named(&long).is_err());
/// ```
pub const MAX_CONTROL_NAME_LEN: usize = shm_core::MAX_NAME_LEN - DATA_SUFFIX_MAX;

/// The name of data segment `generation` of the incarnation `incarnation` of the
/// growable collection named `control`: `<control>.g<generation hex>.<incarnation, 16
/// hex>`. The one place the grammar is written (see [`parse_data_segment_name`]).
///
/// ```
/// use shm_collections::region::{data_segment_name, parse_data_segment_name};
/// let n = data_segment_name("jobs", 0xab, 0x1a);
/// assert_eq!(n, "jobs.g1a.00000000000000ab");
/// let p = parse_data_segment_name(&n).unwrap();
/// assert_eq!((p.control, p.generation, p.incarnation), ("jobs", 0x1a, 0xab));
/// ```
pub fn data_segment_name(control: &str, incarnation: u64, generation: u64) -> String {
    format!("{control}.g{generation:x}.{incarnation:016x}")
}

/// The parts of a data segment name (see [`data_segment_name`]).
///
/// ```
/// let p = shm_collections::region::parse_data_segment_name("x.g0.0123456789abcdef").unwrap();
/// assert_eq!(p.control, "x");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSegmentName<'a> {
    /// The control object's name.
    pub control: &'a str,
    /// The generation.
    pub generation: u64,
    /// The incarnation id of the object that made it.
    pub incarnation: u64,
}

/// Parses a name made by [`data_segment_name`] (canonical form only: lower-case hex,
/// no leading zeros in the generation, 16 digits of incarnation); `None` otherwise.
///
/// ```
/// use shm_collections::region::parse_data_segment_name;
/// assert!(parse_data_segment_name("x.g1").is_none()); // no incarnation: a user name
/// assert!(parse_data_segment_name("x.g01.0123456789abcdef").is_none());
/// ```
pub fn parse_data_segment_name(name: &str) -> Option<DataSegmentName<'_>> {
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (rest, inc) = name.rsplit_once('.')?;
    let (control, generation) = rest.rsplit_once(".g")?;
    let ok = inc.len() == 16
        && lower_hex(inc)
        && (1..=16).contains(&generation.len())
        && lower_hex(generation)
        && (generation == "0" || !generation.starts_with('0'))
        && !control.is_empty();
    ok.then(|| DataSegmentName {
        control,
        generation: u64::from_str_radix(generation, 16).unwrap_or(0),
        incarnation: u64::from_str_radix(inc, 16).unwrap_or(0),
    })
}

/// The name of the current data segment of the growable collection whose control
/// object is named `control` (for tools and tests: it reads the control object's
/// incarnation and generation without checking its kind).
///
/// ```
/// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
/// let data = shm_collections::region::current_data_segment(d.name().unwrap())?;
/// assert!(shm_core::Segment::open(&data).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_data_segment(control: &str) -> RegionResult<String> {
    let seg = Segment::open(control)?;
    let mut w = [0u8; 8];
    seg.read_at(shm_core::HEADER_LEN + CTRL_INC, &mut w)?;
    let inc = u64::from_ne_bytes(w);
    let generation = Object::inspect(control)?.generation;
    Ok(data_segment_name(
        shm_core::normalize_name(control)?,
        inc,
        generation,
    ))
}

/// Generation numbers a growth may skip when the next one's name is taken by a
/// segment that is not provably this object's (a writer killed while creating it).
const SKIP_GENERATIONS: u64 = 8;

/// The control object's name, refusing anonymous and arena objects.
fn ctrl_name(ctrl: &Object) -> RegionResult<&str> {
    match ctrl.name() {
        Some(n) if !ctrl.in_arena() => Ok(n),
        _ => Err(RegionError::Unsupported {
            name: ctrl.label(),
            what: "a growable collection needs a named control object (not anonymous, not in an arena)",
        }),
    }
}

fn ctrl_lock(ctrl: &Object) -> &RawMutex {
    // SAFETY: the control payload is CTRL_LEN bytes (checked at attach, written at
    // create), 64-byte aligned; RawMutex is 16 bytes of atomics, valid for any bits and
    // for concurrent access by other processes.
    unsafe { &*ctrl.payload_ptr().add(CTRL_LOCK).cast::<RawMutex>() }
}

fn ctrl_word(ctrl: &Object, at: usize) -> &AtomicU64 {
    debug_assert!(at < CTRL_LEN && at % 8 == 0);
    // SAFETY: as `ctrl_lock`: inside the checked CTRL_LEN payload, 8-aligned, atomic.
    unsafe { &*ctrl.payload_ptr().add(at).cast::<AtomicU64>() }
}

/// A fresh incarnation id (never 0, which a zeroed control payload would say).
fn new_incarnation(label: &str) -> RegionResult<u64> {
    loop {
        let mut b = [0u8; 8];
        let mut filled = 0;
        while filled < 8 {
            match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(RegionError::Shm(shm_core::Error::Os {
                        op: "getrandom",
                        name: label.to_owned(),
                        source: e.into(),
                    }));
                }
            }
        }
        let v = u64::from_ne_bytes(b);
        if v != 0 {
            return Ok(v);
        }
    }
}

/// Whether the data segment `name` is provably this incarnation's: a checked object
/// of the data kind and type whose header names incarnation `inc` and a generation
/// that `which` accepts. Anything else (a user's object, another incarnation's
/// segment, garbage, a half-made segment) is not.
fn is_own(name: &str, spec: &ObjectSpec, inc: u64, which: impl Fn(u64) -> bool) -> bool {
    let Ok(obj) = Segment::open(name).and_then(|s| Object::from_segment(s, spec)) else {
        return false;
    };
    if obj.payload_len() < DATA_HDR {
        return false;
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        obj.read_at(at, &mut b).map(|()| u64::from_ne_bytes(b))
    };
    matches!((word(D_INC), word(D_GEN)), (Ok(i), Ok(g)) if i == inc && which(g))
}

/// Unlinks the data segment `name` if it is provably this incarnation's (see
/// [`is_own`]); nothing else is ever unlinked.
fn unlink_own(name: &str, spec: &ObjectSpec, inc: u64, which: impl Fn(u64) -> bool) -> bool {
    is_own(name, spec, inc, which) && shm_core::unlink(name).is_ok()
}

/// Creates the object fully (header published, `init` run) in an unnamed file in
/// `/dev/shm` (`O_TMPFILE`) and only then gives it `name` (`linkat`, which never
/// replaces a name: `AlreadyExists` if it is taken). So a writer killed at any point
/// leaves either nothing or a whole segment whose header proves whose it is.
/// `None` when the system cannot (no `O_TMPFILE` on `/dev/shm`, no `/proc`).
fn create_linked(
    name: &str,
    spec: &ObjectSpec,
    payload: usize,
    init: impl Fn(&Object) -> shm_core::Result<()>,
) -> Option<shm_core::Result<Object>> {
    use rustix::fs::{AtFlags, CWD, FallocateFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    let os = |op: &'static str, e: Errno| shm_core::Error::Os {
        op,
        name: name.to_owned(),
        source: e.into(),
    };
    let fd = rustix::fs::openat(
        CWD,
        "/dev/shm",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .ok()?;
    let Some(total) = shm_core::HEADER_LEN.checked_add(payload) else {
        return Some(Err(shm_core::Error::InvalidSize {
            name: name.to_owned(),
            len: payload as u64,
            reason: "payload too large",
        }));
    };
    if let Err(e) = rustix::fs::ftruncate(&fd, total as u64) {
        return Some(Err(os("ftruncate", e)));
    }
    // Pages reserved now: a full /dev/shm fails here, not with SIGBUS later.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, total as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
        Err(e) => return Some(Err(os("fallocate", e))),
    }
    let from = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let made = Segment::from_fd(fd).and_then(|seg| Object::init_in(seg, spec, |o| init(o)));
    let made = match made {
        Ok(o) => o,
        Err(e) => return Some(Err(e)),
    };
    match rustix::fs::linkat(
        CWD,
        from.as_str(),
        CWD,
        format!("/dev/shm/{name}").as_str(),
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            return Some(Err(shm_core::Error::AlreadyExists {
                name: name.to_owned(),
            }));
        }
        Err(_) => return None,
    }
    // Map it again by name (a handle keeps no descriptor per data segment); a name
    // replaced in between is caught by the caller's checks.
    drop(made);
    Some(Segment::open(name).and_then(|s| Object::from_segment(s, spec)))
}

/// Creates the growable collection `T` (a dict, vec or namespace) under `name`
/// crash-atomically: its control object is built complete in an unnamed file in
/// `/dev/shm` (`O_TMPFILE`), with its first data segment created (complete, linked)
/// under its derived name and `before_link` run on the published control object, and
/// only then linked to `name` (`linkat`, which never replaces a name:
/// `AlreadyExists` if it is taken, after removing the data segment it made). So
/// `name` only ever names a complete, initialised object whose header names its
/// creator; a creator killed before the link leaves at most a data segment whose
/// control object never appeared (an orphan: `shm gc` removes it). Where the system
/// has no `O_TMPFILE` (or no `/proc`) it creates in place, as `create_with` does.
/// The handle never unlinks on drop.
///
/// ```
/// use shm_collections::{Limits, ShareableDict, region::create_collection_linked};
/// let name = format!("shm-doc-linked-{}", std::process::id());
/// let d: ShareableDict<String, u32> = create_collection_linked(&name, Limits::default(), |_| {})?;
/// d.insert("a".into(), 1)?;
/// assert!(create_collection_linked::<ShareableDict<String, u32>>(&name, Limits::default(), |_| {}).is_err());
/// d.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_collection_linked<T>(
    name: &str,
    limits: Limits,
    before_link: impl FnOnce(&Object),
) -> RegionResult<T>
where
    T: shm_core::SharedObject<Init = Limits, Error = RegionError>,
{
    use rustix::fs::{AtFlags, CWD, FallocateFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    let in_place = |before_link: Box<dyn FnOnce(&Object) + '_>| -> RegionResult<T> {
        let opts = SegmentOptions::new().name(name).unlink_on_drop(false);
        let t = T::create_with(&opts, limits)?;
        before_link(t.object());
        Ok(t)
    };
    let shm_core::Layout::Header(spec) = T::layout() else {
        return in_place(Box::new(before_link));
    };
    let os = |op: &'static str, e: Errno| -> RegionError {
        shm_core::Error::Os {
            op,
            name: name.to_owned(),
            source: e.into(),
        }
        .into()
    };
    let Ok(fd) = rustix::fs::openat(
        CWD,
        "/dev/shm",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    ) else {
        return in_place(Box::new(before_link));
    };
    let total = shm_core::HEADER_LEN
        .checked_add(T::payload_len(&limits)?)
        .ok_or_else(|| shm_core::Error::InvalidSize {
            name: name.to_owned(),
            len: u64::MAX,
            reason: "payload too large",
        })?;
    rustix::fs::ftruncate(&fd, total as u64).map_err(|e| os("ftruncate", e))?;
    // Pages reserved now: a full /dev/shm fails here, not with SIGBUS later.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, total as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
        Err(e) => return Err(os("fallocate", e)),
    }
    let from = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if rustix::fs::access(from.as_str(), rustix::fs::Access::EXISTS).is_err() {
        return in_place(Box::new(before_link));
    }
    // The segment carries its future name, from which the data segments' names derive.
    let seg = Segment::from_fd_named(fd, name)?;
    let ctrl = Object::init_in(seg, &spec, |o| T::init_payload(o, limits))?;
    before_link(&ctrl);
    // What to remove if the name cannot be ours: the data segment made above.
    let inc = ctrl_word(&ctrl, CTRL_INC).load(Ordering::Relaxed);
    let generation = ctrl.generation().map_or(0, |g| g.load(Ordering::Acquire));
    let drop_data = || {
        let data = data_segment_name(name, inc, generation);
        unlink_own(&data, &data_spec(&spec), inc, |g| g == generation);
    };
    match rustix::fs::linkat(
        CWD,
        from.as_str(),
        CWD,
        format!("/dev/shm/{name}").as_str(),
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => T::attach(ctrl),
        Err(Errno::EXIST) => {
            drop_data();
            Err(shm_core::Error::AlreadyExists {
                name: name.to_owned(),
            }
            .into())
        }
        Err(e) => {
            drop_data();
            Err(os("linkat", e))
        }
    }
}

/// Creates a data segment with the given geometry for a generation after
/// `published` (the generation the control object names; `None` at create): the
/// first of `published + 1 ..` whose name is free. A name taken by this incarnation's
/// own unpublished leftover (a writer that died mid-growth) is reused; a name taken by
/// anything else is skipped, never removed, and after [`SKIP_GENERATIONS`] taken names
/// the growth fails with [`RegionError::NameTaken`].
fn create_data(
    ctrl: &Object,
    inc: u64,
    spec: &ObjectSpec,
    published: Option<u64>,
    slots: usize,
    cap: u64,
) -> RegionResult<Mapped> {
    let base = ctrl_name(ctrl)?;
    let payload = (DATA_HDR as u64)
        .checked_add(slots as u64 * 8)
        .and_then(|n| n.checked_add(cap))
        .filter(|_| cap <= MAX_CAP && (slots as u64) <= MAX_SLOTS)
        .ok_or_else(|| RegionError::Corrupted {
            name: ctrl.label(),
            what: format!("a data segment of {slots} slots and {cap} bytes is too large"),
        })?;
    let first = match published {
        None => 0,
        Some(g) => g.checked_add(1).ok_or_else(|| RegionError::Corrupted {
            name: ctrl.label(),
            what: format!("generation {g} cannot grow further"),
        })?,
    };
    let mut taken = Vec::new();
    for generation in (first..).take(SKIP_GENERATIONS as usize) {
        let name = data_segment_name(base, inc, generation);
        let init = |o: &Object| {
            let w = |at: usize, v: u64| o.write_at(at, &v.to_ne_bytes());
            w(D_GEN, generation)?;
            w(D_INC, inc)?;
            w(D_SLOTS, slots as u64)?;
            w(D_CAP, cap)?;
            w(D_USED, FIRST_REC)
        };
        let make = || match create_linked(&name, spec, payload as usize, init) {
            Some(made) => made,
            // No O_TMPFILE or no /proc: create in place (O_EXCL). A writer killed
            // during that create leaves a half-made segment that is not provably ours.
            None => {
                let opts = SegmentOptions::new().name(&name).unlink_on_drop(false);
                Object::create(&opts, spec, payload as usize, init)
            }
        };
        let obj = match make() {
            Err(shm_core::Error::AlreadyExists { .. }) => {
                // Ours and unpublished (a writer of this object died mid-growth): remove
                // and make it again. Anything else keeps its name.
                let leftover = |g: u64| g == generation && published.is_some_and(|p| g > p);
                if unlink_own(&name, spec, inc, leftover) {
                    make()?
                } else {
                    taken.push(name);
                    continue;
                }
            }
            other => other?,
        };
        return Mapped::check(obj, generation, inc, &ctrl.label());
    }
    Err(RegionError::NameTaken {
        name: ctrl.label(),
        segments: taken,
    })
}

/// Holds the writer lock; unlocks on drop. Not `Send`: the lock belongs to the thread.
pub(crate) struct Writer<'a> {
    region: &'a Region,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = ctrl_lock(&self.region.ctrl).unlock();
    }
}

impl Region {
    /// Writes the limits and creates data segment 0 (before the control object is
    /// published).
    pub(crate) fn init(ctrl: &Object, spec: &ObjectSpec, limits: Limits) -> RegionResult<()> {
        let name = ctrl_name(ctrl)?;
        // Refuse now what could not grow later (see the module docs, "Names").
        if name.len() > MAX_CONTROL_NAME_LEN {
            return Err(shm_core::Error::InvalidName {
                name: name.to_owned(),
                reason: "a growable collection's name may be at most 218 bytes: its data \
                         segment names add up to 35 bytes and segment names end at 253",
            }
            .into());
        }
        let inc = new_incarnation(name)?;
        ctrl_word(ctrl, CTRL_MAX_KEY).store(u64::from(limits.max_key), Ordering::Relaxed);
        ctrl_word(ctrl, CTRL_MAX_VALUE).store(u64::from(limits.max_value), Ordering::Relaxed);
        ctrl_word(ctrl, CTRL_INC).store(inc, Ordering::Relaxed);
        let m = create_data(ctrl, inc, &data_spec(spec), None, MIN_SLOTS, MIN_CAP as u64)?;
        ctrl.generation()
            .expect("a control object always has a header")
            .store(m.generation, Ordering::Release);
        Ok(())
    }

    /// Wraps a checked control object and maps its current data segment.
    pub(crate) fn attach(ctrl: Object, spec: &ObjectSpec, kind: IndexKind) -> RegionResult<Region> {
        ctrl_name(&ctrl)?;
        if ctrl.payload_len() < CTRL_LEN {
            return Err(RegionError::Corrupted {
                name: ctrl.label(),
                what: format!(
                    "control payload of {} bytes, expected {CTRL_LEN}",
                    ctrl.payload_len()
                ),
            });
        }
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let limits = Limits {
            max_key: clamp(ctrl_word(&ctrl, CTRL_MAX_KEY).load(Ordering::Relaxed)),
            max_value: clamp(ctrl_word(&ctrl, CTRL_MAX_VALUE).load(Ordering::Relaxed)),
        };
        let label: Arc<str> = ctrl.label().into();
        let data_spec = data_spec(spec);
        let inc = ctrl_word(&ctrl, CTRL_INC).load(Ordering::Relaxed);
        if inc == 0 {
            return Err(RegionError::Corrupted {
                name: label.to_string(),
                what: "incarnation id 0 in the control object".into(),
            });
        }
        let first = Self::map_current(&ctrl, inc, &data_spec, &label)?;
        let last_lock = Self::hold_control(&ctrl, inc);
        Ok(Region {
            ctrl,
            label,
            data_spec,
            kind,
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            map: RwLock::new(Arc::new(first)),
            held: std::cell::UnsafeCell::new(None),
            limits,
            inc,
            last_lock,
            patience: AtomicU64::new(u64::MAX),
        })
    }

    /// Opens the control object's file again by name and takes a shared `flock` on
    /// it, if the name still names this incarnation (its control payload says `inc`).
    fn hold_control(ctrl: &Object, inc: u64) -> Option<std::os::fd::OwnedFd> {
        use rustix::fs::{FlockOperation, flock};
        let name = ctrl_name(ctrl).ok()?;
        // As shm-core opens: never follow a symlink, never block on a FIFO.
        let careful = rustix::shm::OFlags::from_bits_retain(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits(),
        );
        let fd = rustix::shm::open(
            format!("/{name}").as_str(),
            rustix::shm::OFlags::RDONLY | careful,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        if !rustix::fs::fstat(&fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        }) {
            return None;
        }
        // The payload's place in the file: the mapping starts at file offset 0.
        let at = (ctrl.payload_ptr() as usize).checked_sub(ctrl.segment().as_ptr() as usize)?;
        let mut b = [0u8; 8];
        let n = rustix::io::pread(&fd, &mut b, (at + CTRL_INC) as u64).ok()?;
        if n != 8 || u64::from_ne_bytes(b) != inc {
            return None;
        }
        // Non-blocking: an exclusive holder is the last handle of an unlinked object
        // cleaning up, and a name that opened cannot be that object's.
        flock(&fd, FlockOperation::NonBlockingLockShared).ok()?;
        Some(fd)
    }

    pub(crate) fn object(&self) -> &Object {
        &self.ctrl
    }

    pub(crate) fn object_mut(&mut self) -> &mut Object {
        &mut self.ctrl
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    #[inline]
    fn gen_word(&self) -> &AtomicU64 {
        // Every control object has a header (attach came through a checked spec).
        self.ctrl
            .generation()
            .expect("a control object always has a header")
    }

    fn map_current(
        ctrl: &Object,
        inc: u64,
        spec: &ObjectSpec,
        label: &str,
    ) -> RegionResult<Mapped> {
        let gen_word = ctrl
            .generation()
            .expect("a control object always has a header");
        let mut last = None;
        for _ in 0..100 {
            let generation = gen_word.load(Ordering::Acquire);
            let name = data_segment_name(ctrl_name(ctrl)?, inc, generation);
            let opened = Segment::open(&name).and_then(|s| Object::from_segment(s, spec));
            match opened {
                Ok(obj) => return Mapped::check(obj, generation, inc, label),
                // Published over and unlinked between our load and open: load again.
                Err(e @ shm_core::Error::NotFound { .. })
                    if gen_word.load(Ordering::Acquire) != generation =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || RegionError::Corrupted {
                name: label.to_owned(),
                what: "the generation never settled".into(),
            },
            RegionError::from,
        ))
    }

    /// The mapping of the current generation (remapping if another process grew it).
    fn current(&self) -> RegionResult<Arc<Mapped>> {
        let generation = self.gen_word().load(Ordering::Acquire);
        {
            let m = self.map.read().unwrap_or_else(|p| p.into_inner());
            if m.generation == generation {
                return Ok(m.clone());
            }
        }
        let fresh = Arc::new(Self::map_current(
            &self.ctrl,
            self.inc,
            &self.data_spec,
            &self.label,
        )?);
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Runs `f` on the current mapping until the generation stayed the same across it.
    #[inline]
    fn read_stable<R>(&self, mut f: impl FnMut(&Mapped) -> Slim<R>) -> Slim<R> {
        let generation = self.gen_word().load(Ordering::Acquire);
        // The common case: this thread's cached mapping is current.
        let fast = READ_CACHE.try_with(|c| {
            let c = c.try_borrow().ok()?;
            let m = c.find(self.id).filter(|m| m.generation == generation)?;
            let r = f(m);
            (self.gen_word().load(Ordering::Acquire) == generation).then_some(r)
        });
        if let Ok(Some(r)) = fast {
            return r;
        }
        self.read_stable_slow(f)
    }

    /// `read_stable` after a cache miss or a generation change: maps the current
    /// segment, caches it for this thread and retries.
    #[inline(never)]
    fn read_stable_slow<R>(&self, mut f: impl FnMut(&Mapped) -> Slim<R>) -> Slim<R> {
        for _ in 0..READ_TRIES {
            let m = self.current().map_err(Box::new)?;
            // Replacing the entry drops the old mapping (unless another thread or the
            // handle still has it): never one a read of this thread is using, since
            // a borrowed cell refuses the replacement.
            let _ = READ_CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.put(self.id, m.clone());
                }
            });
            let r = f(&m);
            if self.gen_word().load(Ordering::Acquire) == m.generation {
                return r;
            }
        }
        // Writers grew the object 10^4 times during one read: read under the lock.
        let w = self.lock().map_err(Box::new)?;
        f(w.m())
    }

    fn corrupted(&self, what: String) -> RegionError {
        RegionError::Corrupted {
            name: self.label.to_string(),
            what,
        }
    }

    /// Checks encoded sizes against the limits (two compares inline; the errors are
    /// built out of line).
    #[inline]
    pub(crate) fn check_sizes(&self, key: usize, value: usize) -> RegionResult<()> {
        if key > self.limits.max_key as usize || value > self.limits.max_value as usize {
            return Err(self.too_large(key, value));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, key: usize, value: usize) -> RegionError {
        if key > self.limits.max_key as usize {
            RegionError::KeyTooLarge {
                name: self.label.to_string(),
                len: key,
                limit: self.limits.max_key as usize,
            }
        } else {
            RegionError::ValueTooLarge {
                name: self.label.to_string(),
                len: value,
                limit: self.limits.max_value as usize,
            }
        }
    }

    /// Looks `key` up in a hash index (the records compared are copied onto the stack).
    fn probe(&self, m: &Mapped, key: &[u8], hash: u64) -> RegionResult<Probe> {
        let mask = m.slots - 1;
        let tag = hash >> 48;
        let mut i = hash as usize & mask;
        let mut tomb = None;
        for _ in 0..m.slots {
            let v = m.slot(i).load(Ordering::Acquire);
            if v == EMPTY {
                return Ok(Probe::Vacant(tomb.unwrap_or(i)));
            }
            if v == TOMB {
                tomb.get_or_insert(i);
            } else if v >> 48 == tag {
                let off = v & OFF_MASK;
                let hit = m
                    .with_record(off, &self.label, |body, klen| {
                        key_eq(&body[..klen], key).then_some(body.len())
                    })
                    .map_err(unbox)?;
                if let Some(body) = hit {
                    return Ok(Probe::Found(i, off, rec_len(body)));
                }
            }
            i = (i + 1) & mask;
        }
        match tomb {
            Some(t) => Ok(Probe::Vacant(t)),
            None => Ok(Probe::Full),
        }
    }

    /// A dict lookup without the lock, handing the value bytes to `f` (copied onto the
    /// stack when small: no allocation).
    #[inline]
    pub(crate) fn get_with<R>(&self, key: &[u8], mut f: impl FnMut(&[u8]) -> R) -> Slim<Option<R>> {
        let hash = key_hash(key);
        let tag = hash >> 48;
        self.read_stable(|m| {
            let mut i = hash as usize;
            for _ in 0..m.slots {
                let v = m.slot_wrapped(i).load(Ordering::Acquire);
                if v == EMPTY {
                    return Ok(None);
                }
                if v != TOMB && v >> 48 == tag {
                    let hit = m.with_record(v & OFF_MASK, &self.label, |body, klen| {
                        key_eq(&body[..klen], key).then(|| f(&body[klen..]))
                    })?;
                    if hit.is_some() {
                        return Ok(hit);
                    }
                }
                i = i.wrapping_add(1);
            }
            Ok(None)
        })
    }

    /// Live entries (a vec's length), checked against the index: a forged count is
    /// `Corrupted`, as every other call says.
    pub(crate) fn len(&self) -> RegionResult<u64> {
        self.read_stable(|m| {
            let live = m.word(D_LIVE).load(Ordering::Acquire);
            if live > m.slots as u64 {
                return Err(Box::new(self.corrupted(format!(
                    "{live} entries in an index of {} slots",
                    m.slots
                ))));
            }
            Ok(live)
        })
        .map_err(unbox)
    }

    /// Element `i` of a list handed to `f` (copied onto the stack when small), or the
    /// length seen when `i` is past the end.
    #[inline]
    pub(crate) fn list_get_with<R>(
        &self,
        i: usize,
        mut f: impl FnMut(&[u8]) -> R,
    ) -> Slim<Result<R, usize>> {
        self.read_stable(|m| {
            let len = m.word(D_LIVE).load(Ordering::Acquire);
            if i as u64 >= len {
                return Ok(Err(len as usize));
            }
            if len > m.slots as u64 {
                return Err(Box::new(
                    self.corrupted(format!("length {len} over {} slots", m.slots)),
                ));
            }
            let v = m.slot(i).load(Ordering::Acquire);
            let off = Mapped::slot_off(v).ok_or_else(|| {
                Box::new(self.corrupted(format!("element {i} has an empty slot")))
            })?;
            m.with_record(off, &self.label, |body, klen| Ok(f(&body[klen..])))
        })
    }

    /// Every live record (dict: in slot order; list: in index order) as of one moment.
    pub(crate) fn snapshot(&self) -> RegionResult<Vec<Rec>> {
        for _ in 0..SNAPSHOT_TRIES {
            let m = self.current()?;
            let s1 = m.word(D_SEQ).load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let r = self.collect(&m);
            fence(Ordering::Acquire);
            let s2 = m.word(D_SEQ).load(Ordering::Relaxed);
            if s1 == s2 && self.gen_word().load(Ordering::Acquire) == m.generation {
                return r;
            }
        }
        let w = self.lock()?;
        self.collect(w.m())
    }

    fn collect(&self, m: &Mapped) -> RegionResult<Vec<Rec>> {
        let n = match self.kind {
            IndexKind::Hash => m.slots,
            IndexKind::List => {
                let len = m.word(D_LIVE).load(Ordering::Acquire);
                if len > m.slots as u64 {
                    return Err(self.corrupted(format!("length {len} over {} slots", m.slots)));
                }
                len as usize
            }
        };
        let mut out = Vec::new();
        for i in 0..n {
            let v = m.slot(i).load(Ordering::Acquire);
            match Mapped::slot_off(v) {
                Some(off) => out.push(m.read(off, &self.label)?),
                None if self.kind == IndexKind::List => {
                    return Err(self.corrupted(format!("element {i} has an empty slot")));
                }
                None => {}
            }
        }
        Ok(out)
    }

    pub(crate) fn stats(&self) -> RegionResult<RegionStats> {
        self.read_stable(|m| {
            Ok(RegionStats {
                entries: m.load(D_LIVE),
                bytes_used: m.load(D_USED),
                capacity: m.cap,
                slots: m.slots as u64,
                generation: m.generation,
                garbage: m.load(D_GARBAGE),
            })
        })
        .map_err(unbox)
    }

    /// How long writers of this handle wait for the writer lock (`None`: no limit).
    pub(crate) fn set_patience(&self, patience: Option<std::time::Duration>) {
        let nanos = patience.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        self.patience.store(nanos, Ordering::Relaxed);
    }

    pub(crate) fn patience(&self) -> Option<std::time::Duration> {
        match self.patience.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(std::time::Duration::from_nanos(n)),
        }
    }

    /// Takes the writer lock; after a dead holder, repairs first (see the module docs).
    /// Waits while another writer holds it, at most the handle's patience: then
    /// [`RegionError::Lock`] with [`RawError::Timeout`].
    pub(crate) fn lock(&self) -> RegionResult<Writer<'_>> {
        let (mut w, how) = self.lock_raw()?;
        if how != Acquired::Clean {
            w.repair()?;
            let _ = ctrl_lock(&self.ctrl).mark_consistent();
        }
        Ok(w)
    }

    /// Copies every intact record into a fresh data segment (see
    /// [`SalvageReport`]). Takes the writer lock (waiting as `lock` does); after a
    /// dead holder it salvages instead of repairing, so it works when the repair's
    /// compaction cannot (a broken record).
    pub(crate) fn salvage(&self) -> RegionResult<SalvageReport> {
        let (mut w, how) = self.lock_raw()?;
        if how != Acquired::Clean {
            w.remove_leftovers()?;
        }
        let report = w.salvage()?;
        if how != Acquired::Clean {
            let _ = ctrl_lock(&self.ctrl).mark_consistent();
        }
        Ok(report)
    }

    /// Takes the writer lock and maps the current segment for it; says how the lock
    /// was acquired (after a dead holder, the caller repairs).
    fn lock_raw(&self) -> RegionResult<(Writer<'_>, Acquired)> {
        let raw = ctrl_lock(&self.ctrl);
        // The uncontended path: one CAS, no clock read.
        let how = match raw.try_lock() {
            Err(RawError::WouldBlock) => match self.patience() {
                None => raw.lock(),
                Some(d) => raw.lock_timeout(d),
            },
            other => other,
        }
        .map_err(|source| RegionError::Lock {
            name: self.label.to_string(),
            source,
        })?;
        let generation = self.gen_word().load(Ordering::Acquire);
        // SAFETY: we hold the writer lock, so no other thread touches `held` (and no
        // Writer of ours exists yet to borrow from it).
        let held = unsafe { &mut *self.held.get() };
        // The segment the last write in this process used, unless another process has
        // grown it since: no reference-count or lock traffic on the write path.
        if held.as_ref().is_none_or(|m| m.generation != generation) {
            match self.current() {
                Ok(m) => *held = Some(m),
                Err(e) => {
                    let _ = raw.unlock();
                    return Err(e);
                }
            }
        }
        let w = Writer {
            region: self,
            _not_send: std::marker::PhantomData,
        };
        Ok((w, how))
    }

    /// Removes the current data segment's name (with the control object's), if it
    /// is provably this incarnation's.
    pub(crate) fn unlink_data(&self) -> RegionResult<()> {
        let generation = self.gen_word().load(Ordering::Acquire);
        // The mapping we hold (checked when mapped) names the file even when its
        // header has been damaged since; else the header must prove it.
        if let Ok(m) = self.current() {
            if m.generation == generation && m.unlink_name() {
                return Ok(());
            }
        }
        let name = data_segment_name(ctrl_name(&self.ctrl)?, self.inc, generation);
        unlink_own(&name, &self.data_spec, self.inc, |g| g == generation);
        Ok(())
    }

    /// Removes every data segment of this incarnation near the current generation:
    /// the current one, unpublished leftovers after it and published-over ones
    /// before it (each only if its header says this incarnation made it).
    fn unlink_all_data(&self) {
        let Ok(base) = ctrl_name(&self.ctrl) else {
            return;
        };
        let current = self.gen_word().load(Ordering::Acquire);
        let _ = self.unlink_data();
        let lo = current.saturating_sub(SKIP_GENERATIONS);
        let hi = current.saturating_add(SKIP_GENERATIONS);
        for g in lo..=hi {
            let name = data_segment_name(base, self.inc, g);
            unlink_own(&name, &self.data_spec, self.inc, |h| h == g);
        }
    }

    /// On drop: if the control object is unlinked and no handle of any process is
    /// left (ours was the last shared `flock`), removes the data segments, which
    /// nobody can reach any more.
    fn clean_up_if_last(&mut self) {
        use rustix::fs::{FlockOperation, flock, fstat};
        let Some(fd) = self.last_lock.take() else {
            return;
        };
        if !fstat(&fd).is_ok_and(|st| st.st_nlink == 0) {
            return;
        }
        // Unlock, then try exclusive: of handles dropping at once, at least one
        // succeeds (a failed attempt holds nothing), so the last one cleans up.
        let _ = flock(&fd, FlockOperation::Unlock);
        if flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            self.unlink_all_data();
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // This thread's cached mapping goes with the handle (other threads' entries go
        // when they read through other handles or exit: see `ReadCache`).
        let _ = READ_CACHE.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.forget(self.id);
            }
        });
        if self.ctrl.unlinks_on_drop() {
            let _ = self.unlink_data();
        }
        self.clean_up_if_last();
    }
}

enum Probe {
    /// Slot, record offset, record length.
    Found(usize, u64, u64),
    Vacant(usize),
    Full,
}

/// How much a write needs.
struct Need {
    bytes: u64,
    new_slot: bool,
}

impl Writer<'_> {
    /// The data segment this writer works on (current: the lock keeps it so).
    #[inline]
    fn m(&self) -> &Mapped {
        // SAFETY: only the thread holding the writer lock touches `held` (see
        // `Region::held`) and this Writer guards that lock; `lock` filled it and only
        // `publish` (taking `&mut self`, so no borrow from here is alive) replaces it.
        let held = unsafe { &*self.region.held.get() };
        held.as_deref().expect("`lock` maps the current segment")
    }

    fn label(&self) -> &str {
        &self.region.label
    }

    fn corrupted(&self, what: String) -> RegionError {
        self.region.corrupted(what)
    }

    fn seq_begin(&self) {
        let s = self.m().load(D_SEQ);
        self.m().store(D_SEQ, s | 1);
        fence(Ordering::Release);
    }

    fn seq_end(&self) {
        let s = self.m().load(D_SEQ);
        self.m()
            .word(D_SEQ)
            .store((s | 1).wrapping_add(1), Ordering::Release);
    }

    /// Whether the current segment has room for `need`; grows (compacting) if not.
    fn ensure(&mut self, need: Need) -> RegionResult<()> {
        let used = self.m().load(D_USED);
        if used < FIRST_REC || used % 8 != 0 || used > self.m().cap {
            return Err(self.corrupted(format!("{used} bytes used of {}", self.m().cap)));
        }
        let fits_bytes = used + need.bytes <= self.m().cap;
        let fits_slot = match self.region.kind {
            IndexKind::Hash => {
                let taken = self.m().load(D_LIVE).saturating_add(self.m().load(D_DEAD));
                !need.new_slot
                    || taken.saturating_add(1).saturating_mul(4) <= self.m().slots as u64 * 3
            }
            IndexKind::List => !need.new_slot || self.m().load(D_LIVE) < self.m().slots as u64,
        };
        if fits_bytes && fits_slot {
            return Ok(());
        }
        self.compact(need.bytes, u64::from(need.new_slot))
    }

    /// Copies the live records (after `edit`) into a fresh data segment of generation
    /// g + 1 with room for `extra_bytes` and `extra_entries` more, publishes it and
    /// unlinks segment g.
    fn rebuild(
        &mut self,
        extra_bytes: u64,
        extra_entries: u64,
        edit: impl FnOnce(&mut Vec<Rec>) -> RegionResult<()>,
    ) -> RegionResult<()> {
        let mut recs = self.region.collect(self.m())?;
        edit(&mut recs)?;
        self.rebuild_from(&recs, extra_bytes, extra_entries)
    }

    /// Writes `recs` into a fresh data segment with room for `extra_bytes` and
    /// `extra_entries` more and publishes it.
    fn rebuild_from(
        &mut self,
        recs: &[Rec],
        extra_bytes: u64,
        extra_entries: u64,
    ) -> RegionResult<()> {
        let live_bytes: u64 = recs.iter().map(|r| rec_len(r.body.len())).sum();
        let (slots, cap) = Self::geometry(
            live_bytes.saturating_add(extra_bytes),
            (recs.len() as u64).saturating_add(extra_entries),
            2,
        );
        let m = self.create_next(slots, cap)?;
        let filled = (|| {
            let mut used = FIRST_REC;
            let mask = m.slots - 1;
            for (idx, r) in recs.iter().enumerate() {
                m.write(used, r.key(), r.value())?;
                match self.region.kind {
                    IndexKind::Hash => {
                        let h = key_hash(r.key());
                        let mut i = h as usize & mask;
                        while m.slot(i).load(Ordering::Relaxed) != EMPTY {
                            i = (i + 1) & mask;
                        }
                        m.slot(i).store((h >> 48) << 48 | used, Ordering::Relaxed);
                    }
                    IndexKind::List => m.slot(idx).store(used, Ordering::Relaxed),
                }
                used += rec_len(r.body.len());
            }
            m.store(D_USED, used);
            m.store(D_LIVE, recs.len() as u64);
            Ok(())
        })();
        self.finish(m, filled)
    }

    /// Creates the next data segment (after the current generation) of this geometry.
    fn create_next(&self, slots: usize, cap: u64) -> RegionResult<Mapped> {
        create_data(
            &self.region.ctrl,
            self.region.inc,
            &self.region.data_spec,
            Some(self.m().generation),
            slots,
            cap,
        )
    }

    /// Publishes `m` if it was filled; else removes it again (this writer made it
    /// moments ago and nobody else knows it), so a failed growth leaves nothing.
    fn finish(&mut self, m: Mapped, filled: RegionResult<()>) -> RegionResult<()> {
        match filled {
            Ok(()) => {
                self.publish(m);
                Ok(())
            }
            Err(e) => {
                m.unlink_name();
                Err(e)
            }
        }
    }

    /// Sizes a data segment for `live_bytes` of records and `entries` entries.
    /// `room`: record area per live byte (before rounding up to whole pages). The
    /// record area is not rounded to a power of two (only the slots are, for the
    /// probe mask): that cost up to twice the memory at every size (10^5 manager
    /// registry entries: 16.8 MB of records where 11.2 MB do).
    fn geometry(live_bytes: u64, entries: u64, room: u64) -> (usize, u64) {
        const PAGE: u64 = 4096;
        let cap = live_bytes
            .saturating_mul(room)
            .max(MIN_CAP as u64)
            .checked_next_multiple_of(PAGE)
            .unwrap_or(u64::MAX - PAGE + 1);
        let slots = entries
            .saturating_mul(2)
            .max(MIN_SLOTS as u64)
            .next_power_of_two();
        (slots as usize, cap)
    }

    /// `rebuild` without an edit, streaming: the live records are copied straight
    /// from the current segment into segment g + 1 (one reused buffer, each record's
    /// checksum checked on the way), with room for `extra_bytes` and `extra_entries`.
    fn compact(&mut self, extra_bytes: u64, extra_entries: u64) -> RegionResult<()> {
        let n = match self.region.kind {
            IndexKind::Hash => self.m().slots,
            IndexKind::List => self.list_len()?,
        };
        // Pass 1: the live records' sizes (headers checked).
        let (mut live, mut count) = (0u64, 0u64);
        for i in 0..n {
            match Mapped::slot_off(self.m().slot(i).load(Ordering::Acquire)) {
                Some(off) => {
                    let (_, k, v, _) = self.m().header(off, self.label())?;
                    live += rec_len(k as usize + v as usize);
                    count += 1;
                }
                None if self.region.kind == IndexKind::List => {
                    return Err(self.corrupted(format!("element {i} has an empty slot")));
                }
                None => {}
            }
        }
        // A segment that filled up mostly with garbage (overwrites and removals, not
        // growth) gets twice the usual room: compactions (a new segment, every live
        // record copied) then come after at least 3x the live bytes of writes, not 1x.
        let room = if live.saturating_mul(2) <= self.m().load(D_USED) {
            4
        } else {
            2
        };
        let (slots, cap) = Self::geometry(
            live.saturating_add(extra_bytes),
            count.saturating_add(extra_entries),
            room,
        );
        let m = self.create_next(slots, cap)?;
        let filled = self.copy_into(&m, n);
        self.finish(m, filled)
    }

    /// Pass 2 of `compact`: copies the live records of the first `n` slots into `m`.
    fn copy_into(&self, m: &Mapped, n: usize) -> RegionResult<()> {
        // Records are immutable and we hold the lock, so only a foreign scribbler
        // could change them in between: every copy is checked again, and the new
        // segment's bounds are checked before each write.
        let mask = m.slots - 1;
        let mut used = FIRST_REC;
        let mut buf = Vec::new();
        let mut idx = 0;
        for i in 0..n {
            let Some(off) = Mapped::slot_off(self.m().slot(i).load(Ordering::Acquire)) else {
                if self.region.kind == IndexKind::List {
                    return Err(self.corrupted(format!("element {i} has an empty slot")));
                }
                continue;
            };
            let klen = self.m().copy_raw(off, self.label(), &mut buf)?;
            let len = buf.len() as u64;
            if used + len > m.cap || idx >= m.slots {
                return Err(self.corrupted("the records changed during compaction".into()));
            }
            m.store_words(m.rec_base() + used as usize, &buf)?;
            match self.region.kind {
                IndexKind::Hash => {
                    let h = key_hash(&buf[REC_HDR..REC_HDR + klen]);
                    let mut s = h as usize & mask;
                    while m.slot(s).load(Ordering::Relaxed) != EMPTY {
                        s = (s + 1) & mask;
                    }
                    m.slot(s).store((h >> 48) << 48 | used, Ordering::Relaxed);
                }
                IndexKind::List => m.slot(idx).store(used, Ordering::Relaxed),
            }
            used += len;
            idx += 1;
        }
        m.store(D_USED, used);
        m.store(D_LIVE, idx as u64);
        Ok(())
    }

    /// Copies every record that passes its checks into a fresh data segment and
    /// publishes it; reports the ones dropped (see [`SalvageReport`]).
    pub(crate) fn salvage(&mut self) -> RegionResult<SalvageReport> {
        let n = match self.region.kind {
            IndexKind::Hash => self.m().slots,
            // A forged length is bounded by the index.
            IndexKind::List => usize::try_from(self.m().load(D_LIVE))
                .map_or(self.m().slots, |l| l.min(self.m().slots)),
        };
        let mut recs = Vec::new();
        let mut report = SalvageReport::default();
        for i in 0..n {
            let v = self.m().slot(i).load(Ordering::Acquire);
            let Some(off) = Mapped::slot_off(v) else {
                if self.region.kind == IndexKind::List {
                    report.dropped.push((i as u64, "empty slot".into()));
                }
                continue;
            };
            match self.m().read(off, self.label()) {
                Ok(r) => recs.push(r),
                Err(e) => report.dropped.push((i as u64, e.to_string())),
            }
        }
        report.kept = recs.len() as u64;
        self.rebuild_from(&recs, 0, 0)?;
        report.generation = self.m().generation;
        Ok(report)
    }

    /// Publishes `m` as the next generation and unlinks the current segment (if its
    /// header says this incarnation made it).
    fn publish(&mut self, m: Mapped) {
        // Publish: everything above happens-before a reader's Acquire of the generation.
        self.region
            .gen_word()
            .store(m.generation, Ordering::Release);
        // The segment published over: the one this writer has mapped (checked when
        // mapped), if the name still names it.
        self.m().unlink_name();
        let m = Arc::new(m);
        *self.region.map.write().unwrap_or_else(|p| p.into_inner()) = m.clone();
        // SAFETY: this Writer guards the writer lock, so no other thread touches
        // `held`; `&mut self` keeps every `&Mapped` from `self.m()` out of scope.
        unsafe { *self.region.held.get() = Some(m) };
    }

    /// After a dead writer: removes its leftovers and rebuilds (see the module docs).
    fn repair(&mut self) -> RegionResult<()> {
        self.remove_leftovers()?;
        self.compact(0, 0)
    }

    /// Removes this incarnation's segments around the current generation that a
    /// dead writer left: unpublished ones after it, published-over ones before it
    /// (each only if its header says this incarnation made it).
    fn remove_leftovers(&self) -> RegionResult<()> {
        let name = ctrl_name(&self.region.ctrl)?;
        let (generation, inc) = (self.m().generation, self.region.inc);
        let lo = generation.saturating_sub(SKIP_GENERATIONS);
        let hi = generation.saturating_add(SKIP_GENERATIONS);
        for g in (lo..=hi).filter(|g| *g != generation) {
            let leftover = data_segment_name(name, inc, g);
            unlink_own(&leftover, &self.region.data_spec, inc, |h| h == g);
        }
        Ok(())
    }

    /// Reserves and writes a record; returns its offset.
    fn append(&self, key: &[u8], value: &[u8]) -> RegionResult<u64> {
        let used = self.m().load(D_USED);
        let len = rec_len(key.len() + value.len());
        if used.checked_add(len).is_none_or(|e| e > self.m().cap) {
            return Err(self.corrupted("no room after growth".into()));
        }
        // Reserve first: a writer killed past this point never reuses these bytes.
        self.m().store(D_USED, used + len);
        self.m().write(used, key, value)?;
        Ok(used)
    }

    fn add_garbage(&self, len: u64) {
        let g = self.m().load(D_GARBAGE);
        self.m().store(D_GARBAGE, g.saturating_add(len));
    }

    /// A dict lookup under the lock, handing the value bytes to `f`.
    pub(crate) fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        match self.region.probe(self.m(), key, key_hash(key))? {
            Probe::Found(_, off, _) => self
                .m()
                .with_record(off, self.label(), |body, klen| f(&body[klen..]))
                .map(Some)
                .map_err(unbox),
            _ => Ok(None),
        }
    }

    /// Inserts or replaces; whether a value was replaced.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> RegionResult<bool> {
        Ok(self.put_with(key, value, |_| ())?.is_some())
    }

    /// Inserts or replaces: one record append and one slot store (after a growth when
    /// it does not fit); hands the replaced value's bytes to `old`.
    pub(crate) fn put_with<R>(
        &mut self,
        key: &[u8],
        value: &[u8],
        old: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        let hash = key_hash(key);
        let bytes = rec_len(key.len() + value.len());
        let mut probe = self.region.probe(self.m(), key, hash)?;
        let before = self.m().generation;
        self.ensure(Need {
            bytes,
            new_slot: !matches!(probe, Probe::Found(..)),
        })?;
        if self.m().generation != before {
            // A new index: probe it.
            probe = self.region.probe(self.m(), key, hash)?;
        }
        self.seq_begin();
        let r = (|| {
            let off = self.append(key, value)?;
            let slot = (hash >> 48) << 48 | off;
            match probe {
                Probe::Found(i, old_off, old_len) => {
                    self.m().slot(i).store(slot, Ordering::Release);
                    self.add_garbage(old_len);
                    Ok(Some(old_off))
                }
                Probe::Vacant(i) => {
                    let live = self.index_count_plus_one(D_LIVE, "live entries")?;
                    let was = self.m().slot(i).load(Ordering::Relaxed);
                    self.m().slot(i).store(slot, Ordering::Release);
                    if was == TOMB {
                        self.m()
                            .store(D_DEAD, self.m().load(D_DEAD).saturating_sub(1));
                    }
                    self.m().store(D_LIVE, live);
                    Ok(None)
                }
                Probe::Full => Err(self.corrupted("no free slot after growth".into())),
            }
        })();
        self.seq_end();
        // The replaced record stays in this segment (garbage is only dropped by a
        // rebuild, which takes this lock).
        match r? {
            Some(off) => self
                .m()
                .with_record(off, self.label(), |body, klen| old(&body[klen..]))
                .map(Some)
                .map_err(unbox),
            None => Ok(None),
        }
    }

    /// The index counter at `at` (live entries, tombstones) plus one, checked: it is a
    /// word another process could have forged, and no count exceeds the slots.
    fn index_count_plus_one(&self, at: usize, what: &str) -> RegionResult<u64> {
        let n = self.m().load(at);
        n.checked_add(1)
            .filter(|n| *n <= self.m().slots as u64)
            .ok_or_else(|| {
                self.corrupted(format!(
                    "{n} {what} in an index of {} slots",
                    self.m().slots
                ))
            })
    }

    /// Removes a key; hands the removed value's bytes to `old`.
    pub(crate) fn remove_with<R>(
        &mut self,
        key: &[u8],
        old: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        let Probe::Found(i, off, len) = self.region.probe(self.m(), key, key_hash(key))? else {
            return Ok(None);
        };
        let dead = self.index_count_plus_one(D_DEAD, "tombstones")?;
        self.seq_begin();
        self.m().slot(i).store(TOMB, Ordering::Release);
        self.m()
            .store(D_LIVE, self.m().load(D_LIVE).saturating_sub(1));
        self.m().store(D_DEAD, dead);
        self.add_garbage(len);
        self.seq_end();
        self.m()
            .with_record(off, self.label(), |body, klen| old(&body[klen..]))
            .map(Some)
            .map_err(unbox)
    }

    /// Empties the collection (a fresh, small data segment).
    pub(crate) fn clear(&mut self) -> RegionResult<()> {
        self.rebuild(0, 0, |recs| {
            recs.clear();
            Ok(())
        })
    }

    /// The list's length under the lock, checked against the index.
    pub(crate) fn list_len(&self) -> RegionResult<usize> {
        let len = self.m().load(D_LIVE);
        if len > self.m().slots as u64 {
            return Err(self.corrupted(format!("length {len} over {} slots", self.m().slots)));
        }
        Ok(len as usize)
    }

    fn list_off(&self, i: usize) -> RegionResult<u64> {
        let v = self.m().slot(i).load(Ordering::Acquire);
        Mapped::slot_off(v).ok_or_else(|| self.corrupted(format!("element {i} has an empty slot")))
    }

    /// Element `i` (below the length, checked by the caller) handed to `f`, with the
    /// record's length.
    fn list_with<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> RegionResult<(R, u64)> {
        let off = self.list_off(i)?;
        self.m()
            .with_record(off, self.label(), |body, klen| {
                (f(&body[klen..]), rec_len(body.len()))
            })
            .map_err(unbox)
    }

    /// Element `i` under the lock, handed to `f`; `None` past the end.
    pub(crate) fn list_get_with<R>(
        &self,
        i: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        if i >= self.list_len()? {
            return Ok(None);
        }
        Ok(Some(self.list_with(i, f)?.0))
    }

    /// Appends an element.
    pub(crate) fn push(&mut self, value: &[u8]) -> RegionResult<()> {
        self.ensure(Need {
            bytes: rec_len(value.len()),
            new_slot: true,
        })?;
        let len = self.list_len()?;
        let off = self.append(&[], value)?;
        self.seq_begin();
        self.m().slot(len).store(off, Ordering::Release);
        // The length publishes the element.
        self.m()
            .word(D_LIVE)
            .store(len as u64 + 1, Ordering::Release);
        self.seq_end();
        Ok(())
    }

    /// Removes the last element, handed to `f`.
    pub(crate) fn pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> RegionResult<Option<R>> {
        let len = self.list_len()?;
        if len == 0 {
            return Ok(None);
        }
        let (r, old_len) = self.list_with(len - 1, f)?;
        self.seq_begin();
        self.m()
            .word(D_LIVE)
            .store(len as u64 - 1, Ordering::Release);
        self.add_garbage(old_len);
        self.seq_end();
        Ok(Some(r))
    }

    /// Replaces element `i` (checked by the caller); hands the old one to `f`.
    pub(crate) fn set_with<R>(
        &mut self,
        i: usize,
        value: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<R> {
        self.ensure(Need {
            bytes: rec_len(value.len()),
            new_slot: false,
        })?;
        let (r, old_len) = self.list_with(i, f)?;
        let off = self.append(&[], value)?;
        self.seq_begin();
        self.m().slot(i).store(off, Ordering::Release);
        self.add_garbage(old_len);
        self.seq_end();
        Ok(r)
    }

    /// Inserts or removes in the middle of a list: a rebuild (as `Vec::insert` moves
    /// the tail, this copies it), so readers never see a half-shifted index.
    pub(crate) fn list_edit(
        &mut self,
        extra: u64,
        edit: impl FnOnce(&mut Vec<Rec>) -> RegionResult<()>,
    ) -> RegionResult<()> {
        self.rebuild(extra, 1, edit)
    }
}

/// Implements [`SharedObject`](shm_core::SharedObject) for a growable collection whose
/// `region` field is a [`Region`]: the control object is created with `limits`, checked
/// against `$spec` on open, and `unlink` removes the current data segment too.
macro_rules! region_object {
    (impl[$($gen:tt)*] $ty:ty, spec: $spec:expr, index: $index:expr, build: |$r:ident| $build:expr) => {
        impl<$($gen)*> shm_core::SharedObject for $ty {
            type Error = $crate::region::RegionError;
            type Init = $crate::region::Limits;

            fn layout() -> shm_core::Layout {
                shm_core::Layout::Header($spec)
            }

            fn payload_len(_: &$crate::region::Limits) -> $crate::region::RegionResult<usize> {
                Ok($crate::region::CTRL_LEN)
            }

            fn init_payload(
                object: &shm_core::Object,
                limits: $crate::region::Limits,
            ) -> $crate::region::RegionResult<()> {
                $crate::region::Region::init(object, &$spec, limits)
            }

            fn attach(object: shm_core::Object) -> $crate::region::RegionResult<Self> {
                let $r = $crate::region::Region::attach(object, &$spec, $index)?;
                Ok($build)
            }

            fn object(&self) -> &shm_core::Object {
                self.region.object()
            }

            fn object_mut(&mut self) -> &mut shm_core::Object {
                self.region.object_mut()
            }

            /// Removes the control object's name and the current data segment's.
            fn unlink(&self) -> $crate::region::RegionResult<()> {
                self.region.unlink_data()?;
                Ok(self.region.object().unlink()?)
            }
        }
    };
}

pub(crate) use region_object;

/// The [`SharedObject`](shm_core::SharedObject) lifecycle as inherent methods of a
/// growable collection (`object_methods!` of shm-core takes one generic parameter;
/// these types have up to two). `$make` creates one, `$path` names the type.
macro_rules! growable_methods {
    ($ty:ident<$($g:ident: $b:path),+>, $make:literal, $path:literal) => {
        impl<$($g: $b),+> $ty<$($g),+> {
            /// Creates the collection under a fresh random `psm_` name with the default
            /// [`Limits`](crate::Limits); the names (control and data segments) are
            /// removed when this handle drops (see `set_unlink_on_drop`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().unwrap().starts_with("psm_"));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create() -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create($crate::Limits::default())
            }

            /// Creates the collection under `name`; `AlreadyExists` if it is taken.
            ///
            /// ```
            #[doc = concat!("let name = format!(\"shm-doc-", stringify!($ty), "-{}\", std::process::id());")]
            #[doc = concat!("let obj = ", $path, "::create_named(&name)?;")]
            /// assert_eq!(obj.name(), Some(name.as_str()));
            #[doc = concat!("assert!(", $path, "::create_named(&name).is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_named(name: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create_named(name, $crate::Limits::default())
            }

            /// Creates the collection with chosen segment options and limits.
            ///
            /// ```
            /// let options = shm_core::SegmentOptions::new();
            /// let limits = shm_collections::Limits { max_key: 64, max_value: 1024 };
            #[doc = concat!("let obj = ", $path, "::create_with(&options, limits)?;")]
            /// assert_eq!(obj.limits(), limits);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn create_with(
                options: &shm_core::SegmentOptions,
                limits: $crate::Limits,
            ) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::create_with(options, limits)
            }

            /// Opens the collection another process created, by name, checking its
            /// kind, layout version and types.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open(obj.name().unwrap())?;")]
            /// assert_eq!(again.name(), obj.name());
            #[doc = concat!("assert!(", $path, "::open(\"shm-doc-no-such-object\").is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open(name: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::open(name)
            }

            /// Opens the collection, waiting up to `wait` for it to be created.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            #[doc = concat!("let again = ", $path, "::open_timeout(obj.name().unwrap(), std::time::Duration::from_millis(50))?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn open_timeout(name: &str, wait: std::time::Duration) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::open_timeout(name, wait)
            }

            /// The control object's name (its data segments are `<name>.g<generation>`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.name().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn name(&self) -> Option<&str> {
                shm_core::SharedObject::object(self).name()
            }

            /// Removes the names (control object and current data segment) now;
            /// processes that have the collection open keep using it.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// obj.unlink()?;
            #[doc = concat!("assert!(", $path, "::open(obj.name().unwrap()).is_err());")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn unlink(&self) -> $crate::RegionResult<()> {
                <Self as shm_core::SharedObject>::unlink(self)
            }

            /// Whether dropping this handle removes the names (`true` for the creator).
            ///
            /// ```
            #[doc = concat!("let mut obj = ", $make, "?;")]
            /// obj.set_unlink_on_drop(false);
            /// let name = obj.name().unwrap().to_owned();
            /// drop(obj);
            #[doc = concat!("let again = ", $path, "::open(&name)?;")]
            /// again.unlink()?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_unlink_on_drop(&mut self, yes: bool) {
                <Self as shm_core::SharedObject>::set_unlink_on_drop(self, yes)
            }

            /// Hands the collection to a child process by name; the child takes it with
            /// `from_env`.
            ///
            /// ```no_run
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let mut cmd = std::process::Command::new("my-worker");
            /// obj.share(&mut cmd, "MY_OBJECT")?.status()?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn share<'c>(
                &self,
                command: &'c mut std::process::Command,
                var: &str,
            ) -> $crate::RegionResult<&'c mut std::process::Command> {
                <Self as shm_core::SharedObject>::share(self, command, var)
            }

            /// Takes the collection a parent handed over with `share` under `var`.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// // SAFETY: no other thread reads the environment in this example.
            /// unsafe { std::env::set_var("SHM_DOC_GROWABLE", obj.name().unwrap()) };
            #[doc = concat!("let again = ", $path, "::from_env(\"SHM_DOC_GROWABLE\")?;")]
            /// assert_eq!(again.name(), obj.name());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn from_env(var: &str) -> $crate::RegionResult<Self> {
                <Self as shm_core::SharedObject>::from_env(var)
            }

            /// The control object underneath.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert!(obj.object().info().is_some());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn object(&self) -> &shm_core::Object {
                shm_core::SharedObject::object(self)
            }

            /// How long this handle's writes (every call that changes the collection,
            /// and `salvage`) wait for the writer lock while another writer holds it:
            /// `None` (the default) waits as long as it takes, `Some(d)` gives up after
            /// `d` with [`RegionError::Lock`](crate::RegionError::Lock) whose source is
            /// [`RawError::Timeout`](shm_sync::RawError::Timeout). A holder in another
            /// PID namespace counts as alive, so without a patience such a wait can be
            /// forever. Reads take no lock (a snapshot that writers keep disturbing falls
            /// back to it, and then waits the same). The uncontended write costs the same
            /// either way.
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// obj.set_patience(Some(std::time::Duration::from_secs(2)));
            /// assert_eq!(obj.patience(), Some(std::time::Duration::from_secs(2)));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn set_patience(&self, patience: Option<std::time::Duration>) {
                self.region.set_patience(patience)
            }

            /// This handle's patience for the writer lock (see `set_patience`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// assert_eq!(obj.patience(), None);
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn patience(&self) -> Option<std::time::Duration> {
                self.region.patience()
            }

            /// The way out when a record is broken (its checksum or bounds fail, so
            /// growth and compaction stop with `Corrupted`): copies every intact record
            /// into a fresh data segment, publishes it and reports what was dropped.
            /// Reads and writes then work again. Waits for the writer lock (see
            /// `set_patience`).
            ///
            /// ```
            #[doc = concat!("let obj = ", $make, "?;")]
            /// let report = obj.salvage()?;
            /// assert!(report.dropped.is_empty());
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn salvage(&self) -> $crate::RegionResult<$crate::region::SalvageReport> {
                self.region.salvage()
            }
        }

        impl<$($g: $b),+> std::fmt::Debug for $ty<$($g),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &shm_core::SharedObject::object(self).label())
                    .finish_non_exhaustive()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data segment whose record area is not a whole number of words (a forged
    /// segment: ours are powers of two) is refused, so word-wise record copies can
    /// never run past it.
    #[test]
    fn data_segment_with_a_ragged_record_area_is_refused() {
        let spec = ObjectSpec::new(kinds::GROWTH_DATA, LAYOUT_VERSION);
        let (slots, cap) = (16u64, 4099u64);
        let payload = DATA_HDR + slots as usize * 8 + cap as usize;
        let obj = Object::create(&SegmentOptions::new(), &spec, payload, |o| {
            o.write_at(D_GEN, &0u64.to_ne_bytes())?;
            o.write_at(D_SLOTS, &slots.to_ne_bytes())?;
            o.write_at(D_CAP, &cap.to_ne_bytes())
        })
        .unwrap();
        let err = Mapped::check(obj, 0, 0, "forged").unwrap_err();
        assert!(
            matches!(&err, RegionError::Corrupted { what, .. } if what.contains("multiple of 8")),
            "{err}"
        );
    }
}
