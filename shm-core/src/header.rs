//! The object header (format 2) at the start of every object this workspace lays out,
//! object kinds, and what a header must say ([`ObjectSpec`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::identity::Identity;

/// `"shm-rs\0"` followed by the header format byte (2): identifies objects laid out by
/// this workspace.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shm-rs\0\x02");

/// The header format this build reads and writes.
pub const HEADER_FORMAT: u32 = 2;

/// Size of [`ObjectHeader`]; payloads start here, 64-byte aligned.
pub const HEADER_LEN: usize = 128;

/// Size of the compact header of an object inside an arena ([`Flags::COMPACT`]): the
/// first 64 bytes of [`ObjectHeader`] (kind, version, lengths, type, flags, creator
/// pid and token), without the names, creation time and PID namespace, which a tool
/// finds in the registry that placed the object. Payloads start here.
///
/// ```
/// use std::sync::Arc;
/// use shm_core::{COMPACT_HEADER_LEN, Flags, Kind, Object, ObjectSpec, Segment};
/// let arena = Arc::new(Segment::create(4096)?);
/// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Small"), 1);
/// // SAFETY: a fresh arena; this range is handed out once.
/// let obj = unsafe { Object::create_at(arena, 0, &spec, 8, |_| Ok::<(), shm_core::Error>(()))? };
/// let info = obj.info().unwrap();
/// assert!(info.flags.contains(Flags::COMPACT));
/// assert_eq!(info.total_len, (COMPACT_HEADER_LEN + 8) as u64);
/// # Ok::<(), shm_core::Error>(())
/// ```
pub const COMPACT_HEADER_LEN: usize = 64;

/// Objects start at offsets that are multiples of this (in an arena too).
pub const OBJECT_ALIGN: usize = 64;

/// Value of the initialised flag once the creator has finished.
pub(crate) const INITIALISED: u32 = 1;

/// What an object is: a number owned by the crate that defines the type, plus a short
/// name for messages and listings (stored in the header, so a tool that does not know
/// the kind can still name it).
///
/// Numbers are allocated in ranges, one per crate ([`Kind::CORE`], [`Kind::SYNC`],
/// [`Kind::COLLECTIONS`], [`Kind::MANAGER`], [`Kind::USER`]); shm-core defines no kind
/// of the upper layers.
///
/// ```
/// use shm_core::Kind;
/// const GAUGE: Kind = Kind::new(Kind::USER.start + 1, "Gauge");
/// assert_eq!(GAUGE.to_string(), "Gauge");
/// assert!(Kind::USER.contains(&GAUGE.id()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    id: u32,
    name: &'static str,
}

impl Kind {
    /// Kinds of shm-core itself.
    pub const CORE: std::ops::Range<u32> = 0x0000_0100..0x0000_1000;
    /// Kinds of shm-sync (locks, events, ...).
    pub const SYNC: std::ops::Range<u32> = 0x0000_1000..0x0000_2000;
    /// Kinds of shm-collections (values, arrays, dicts, queues, ...).
    pub const COLLECTIONS: std::ops::Range<u32> = 0x0000_2000..0x0000_3000;
    /// Kinds of shm-manager (registries, arenas, ...).
    pub const MANAGER: std::ops::Range<u32> = 0x0000_3000..0x0000_4000;
    /// Kinds defined by users of the workspace.
    pub const USER: std::ops::Range<u32> = 0x0001_0000..0x8000_0000;

    /// A kind numbered `id`, shown as `name` (at most 16 bytes are stored).
    ///
    /// ```
    /// let k = shm_core::Kind::new(0x1_0042, "Thing");
    /// assert_eq!((k.id(), k.name()), (0x1_0042, "Thing"));
    /// ```
    pub const fn new(id: u32, name: &'static str) -> Kind {
        Kind { id, name }
    }

    /// The number stored in headers.
    ///
    /// ```
    /// assert_eq!(shm_core::Kind::new(7, "x").id(), 7);
    /// ```
    pub const fn id(self) -> u32 {
        self.id
    }

    /// The name shown in messages.
    ///
    /// ```
    /// assert_eq!(shm_core::Kind::new(7, "Seven").name(), "Seven");
    /// ```
    pub const fn name(self) -> &'static str {
        self.name
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Header flags: what lifetime management applies to an object.
///
/// ```
/// use shm_core::Flags;
/// let f = Flags::TRACKED | Flags::IN_ARENA;
/// assert!(f.contains(Flags::TRACKED) && !f.contains(Flags::KEEP));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u32);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// A tracker removes the object once its creator is dead.
    pub const TRACKED: Flags = Flags(1);
    /// The object outlives its creator on purpose (Python's `track=False`).
    pub const KEEP: Flags = Flags(2);
    /// The object lives inside a larger segment (an arena), not alone in its own.
    pub const IN_ARENA: Flags = Flags(4);
    /// The header is the 64-byte compact form ([`COMPACT_HEADER_LEN`]); only inside an
    /// arena. Set at creation, never changed.
    pub const COMPACT: Flags = Flags(8);

    /// Whether every flag of `other` is set.
    ///
    /// ```
    /// assert!(shm_core::Flags::KEEP.contains(shm_core::Flags::NONE));
    /// ```
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The 128-byte header (format 2): a [`HeaderCore`] and a [`HeaderExt`]. Objects in
/// an arena may have only the core ([`Flags::COMPACT`]). Every field is an atomic because
/// another process may write the mapping at any time; readers check every field before
/// trusting the payload.
///
/// ```
/// assert_eq!(size_of::<shm_core::ObjectHeader>(), shm_core::HEADER_LEN);
/// ```
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ObjectHeader {
    pub(crate) core: HeaderCore,
    pub(crate) ext: HeaderExt,
}

/// The first 64 bytes of every header, compact or not.
///
/// ```
/// assert_eq!(size_of::<shm_core::HeaderCore>(), shm_core::COMPACT_HEADER_LEN);
/// ```
#[repr(C, align(64))]
#[derive(Debug)]
pub struct HeaderCore {
    pub(crate) magic: AtomicU64,
    pub(crate) kind: AtomicU32,
    /// Layout version of the kind's payload.
    pub(crate) version: AtomicU32,
    /// Header plus payload, in bytes.
    pub(crate) total_len: AtomicU64,
    pub(crate) type_tag: AtomicU64,
    pub(crate) elem_size: AtomicU32,
    pub(crate) elem_align: AtomicU32,
    pub(crate) flags: AtomicU32,
    /// `INITIALISED` once the creator is done, stored last with `Release`.
    pub(crate) init: AtomicU32,
    /// Bumped by growable objects each time they move to a new data segment.
    pub(crate) generation: AtomicU64,
    pub(crate) creator_id: AtomicU32,
    pub(crate) creator_token: AtomicU32,
}

/// The second 64 bytes of a full header: what tools show.
///
/// ```
/// use shm_core::{COMPACT_HEADER_LEN, HEADER_LEN, HeaderExt};
/// assert_eq!(size_of::<HeaderExt>(), HEADER_LEN - COMPACT_HEADER_LEN);
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct HeaderExt {
    pub(crate) creator_pidns: AtomicU32,
    _reserved: AtomicU32,
    /// Seconds since the Unix epoch at creation.
    pub(crate) created: AtomicU64,
    /// The kind's name (NUL-padded), for tools that do not know the kind.
    pub(crate) kind_name: [AtomicU64; 2],
    /// The element type's name (truncated, NUL-padded), for messages.
    pub(crate) type_name: [AtomicU64; 4],
}

const _: () = assert!(size_of::<ObjectHeader>() == HEADER_LEN);
const _: () = assert!(size_of::<HeaderCore>() == COMPACT_HEADER_LEN);
const _: () = assert!(size_of::<HeaderExt>() == HEADER_LEN - COMPACT_HEADER_LEN);
const _: () = assert!(align_of::<ObjectHeader>() == OBJECT_ALIGN);
const _: () = assert!(align_of::<HeaderCore>() == OBJECT_ALIGN);

impl HeaderCore {
    /// Writes every core field but the initialised flag (the object is not yet
    /// visible); `ext` too unless the header is compact.
    pub(crate) fn write(
        &self,
        ext: Option<&HeaderExt>,
        spec: &ObjectSpec,
        total_len: u64,
        flags: Flags,
    ) {
        let creator = Identity::current_process();
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.kind.store(spec.kind.id(), Ordering::Relaxed);
        self.version.store(spec.version, Ordering::Relaxed);
        self.total_len.store(total_len, Ordering::Relaxed);
        self.type_tag.store(spec.type_tag, Ordering::Relaxed);
        self.elem_size.store(spec.elem_size, Ordering::Relaxed);
        self.elem_align.store(spec.elem_align, Ordering::Relaxed);
        self.flags.store(flags.0, Ordering::Relaxed);
        self.generation.store(0, Ordering::Relaxed);
        self.creator_id.store(creator.id, Ordering::Relaxed);
        self.creator_token.store(creator.token, Ordering::Relaxed);
        if let Some(ext) = ext {
            ext.creator_pidns.store(creator.pidns, Ordering::Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            ext.created.store(now, Ordering::Relaxed);
            store_str(&ext.kind_name, spec.kind.name());
            store_str(&ext.type_name, &spec.type_name);
        }
    }

    /// A snapshot of every field (not checked: see [`Object`](crate::Object) for that);
    /// a compact header (`ext` is `None`) has no names, creation time or namespace.
    pub(crate) fn info(&self, ext: Option<&HeaderExt>) -> ObjectInfo {
        let r = Ordering::Relaxed;
        ObjectInfo {
            initialised: self.init.load(Ordering::Acquire) == INITIALISED,
            magic: self.magic.load(r),
            kind: self.kind.load(r),
            kind_name: ext.map(|e| load_str(&e.kind_name)).unwrap_or_default(),
            version: self.version.load(r),
            total_len: self.total_len.load(r),
            type_tag: self.type_tag.load(r),
            elem_size: self.elem_size.load(r),
            elem_align: self.elem_align.load(r),
            type_name: ext.map(|e| load_str(&e.type_name)).unwrap_or_default(),
            flags: Flags(self.flags.load(r)),
            generation: self.generation.load(r),
            creator: Identity {
                id: self.creator_id.load(r),
                token: self.creator_token.load(r),
                pidns: ext.map_or(0, |e| e.creator_pidns.load(r)),
            },
            created: ext.map_or(0, |e| e.created.load(r)),
        }
    }
}

/// Everything a header says, read once; [`Object::info`](crate::Object::info) and
/// [`Object::inspect`](crate::Object::inspect) return it (for tools such as `shm ls`).
///
/// ```
/// use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
/// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 3);
/// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok(()))?;
/// let info = Object::inspect(obj.name().unwrap())?;
/// assert_eq!((info.kind_name.as_str(), info.version), ("Doc", 3));
/// assert_eq!(info.creator.id, std::process::id());
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Whether the creator had published the object.
    pub initialised: bool,
    /// The magic number ([`MAGIC`] for this format).
    pub magic: u64,
    /// The kind number.
    pub kind: u32,
    /// The kind's name as its creator stored it.
    pub kind_name: String,
    /// The kind's layout version.
    pub version: u32,
    /// Header plus payload, in bytes.
    pub total_len: u64,
    /// Fingerprint of the element type (0 for untyped objects).
    pub type_tag: u64,
    /// Size of the element type.
    pub elem_size: u32,
    /// Alignment of the element type.
    pub elem_align: u32,
    /// The element type's name (truncated to 32 bytes).
    pub type_name: String,
    /// Lifetime flags.
    pub flags: Flags,
    /// Generation of a growable object.
    pub generation: u64,
    /// The process that created the object.
    pub creator: Identity,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// What a header must say: kind, layout version and, for typed objects, the element type.
///
/// ```
/// use shm_core::{Kind, ObjectSpec};
/// const VALUE: Kind = Kind::new(Kind::USER.start + 2, "Value");
/// let spec = ObjectSpec::new(VALUE, 1).with_type::<u64>("u64");
/// assert_eq!(spec.type_name, "u64");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The object kind.
    pub kind: Kind,
    /// Layout version of that kind.
    pub version: u32,
    /// A fingerprint of the element type (0 for untyped objects).
    pub type_tag: u64,
    /// Size of the element type in bytes.
    pub elem_size: u32,
    /// Alignment of the element type.
    pub elem_align: u32,
    /// Name of the element type, for messages (the first 32 bytes are stored).
    pub type_name: String,
}

impl ObjectSpec {
    /// An untyped object of `kind` at layout `version`.
    ///
    /// ```
    /// use shm_core::{Kind, ObjectSpec};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Flag"), 2);
    /// assert_eq!((spec.version, spec.type_tag), (2, 0));
    /// ```
    pub fn new(kind: Kind, version: u32) -> Self {
        Self {
            kind,
            version,
            type_tag: 0,
            elem_size: 0,
            elem_align: 0,
            type_name: String::new(),
        }
    }

    /// Records the element type `T` under `name`: its size, alignment and a tag hashed
    /// from the name, size and alignment.
    ///
    /// ```
    /// use shm_core::{Kind, ObjectSpec};
    /// let k = Kind::new(Kind::USER.start, "Cell");
    /// let spec = ObjectSpec::new(k, 1).with_type::<u32>("u32");
    /// assert_eq!((spec.elem_size, spec.elem_align), (4, 4));
    /// let other = ObjectSpec::new(k, 1).with_type::<i32>("i32");
    /// assert_ne!(spec.type_tag, other.type_tag);
    /// ```
    pub fn with_type<T>(self, name: &str) -> Self {
        self.with_type_tag(
            fnv1a(name.as_bytes()),
            size_of::<T>() as u32,
            align_of::<T>() as u32,
            name,
        )
    }

    /// Records an element type by fingerprint (for serialised types, whose fingerprint
    /// is computed by the caller), size and alignment.
    ///
    /// ```
    /// use shm_core::{Kind, ObjectSpec};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Map"), 1)
    ///     .with_type_tag(0xfeed, 0, 0, "String -> u64");
    /// assert_eq!(spec.type_tag, 0xfeed);
    /// ```
    pub fn with_type_tag(mut self, tag: u64, size: u32, align: u32, name: &str) -> Self {
        self.elem_size = size;
        self.elem_align = align;
        self.type_tag = tag ^ (u64::from(size) << 32 | u64::from(align));
        self.type_name = name.to_owned();
        self
    }

    pub(crate) fn describe_type(name: &str, size: u32, align: u32) -> String {
        format!("{name} (size {size}, align {align})")
    }
}

/// FNV-1a, a stable hash for type fingerprints (the same in every process and build).
///
/// ```
/// assert_ne!(shm_core::fnv1a(b"u32"), shm_core::fnv1a(b"i32"));
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn store_str<const N: usize>(words: &[AtomicU64; N], s: &str) {
    let mut bytes = vec![0u8; N * 8];
    let n = s.len().min(N * 8);
    bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
    for (w, chunk) in words.iter().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

fn load_str<const N: usize>(words: &[AtomicU64; N]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
