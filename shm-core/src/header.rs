//! The object header at offset 0 of every object this workspace lays out.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{Segment, SegmentOptions};

/// `"shm-rs\0"` followed by a format byte: identifies segments laid out by this workspace.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shm-rs\0\x01");

/// Size of [`ObjectHeader`]; payloads start here, 64-byte aligned.
pub const HEADER_LEN: usize = 64;

/// Value of the initialised flag once the creator has finished.
const INITIALISED: u32 = 1;

/// How long [`Object::open`] waits for a creator that is still initialising.
pub const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(1);

/// What an object is. Stored in the header so that opening a segment as the wrong
/// kind is an error, not a reinterpretation.
///
/// ```
/// use shm_core::ObjectKind;
/// assert_eq!(ObjectKind::from_u32(ObjectKind::Event as u32), Some(ObjectKind::Event));
/// assert_eq!(ObjectKind::Event.to_string(), "Event");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ObjectKind {
    Mutex = 1,
    RwLock = 2,
    Condvar = 3,
    Event = 4,
    Semaphore = 5,
    Barrier = 6,
    RLock = 7,
    Value = 16,
    Array = 17,
    ShareableDict = 18,
    Queue = 19,
    Pipe = 20,
    LockedList = 21,
    Registry = 32,
    /// A user-defined object; the `type_tag` tells such objects apart.
    Custom = 0xFFFF,
}

impl ObjectKind {
    const ALL: [ObjectKind; 15] = [
        Self::Mutex,
        Self::RwLock,
        Self::Condvar,
        Self::Event,
        Self::Semaphore,
        Self::Barrier,
        Self::RLock,
        Self::Value,
        Self::Array,
        Self::ShareableDict,
        Self::Queue,
        Self::Pipe,
        Self::LockedList,
        Self::Registry,
        Self::Custom,
    ];

    /// The kind stored as `raw`, if this build knows it.
    ///
    /// ```
    /// use shm_core::ObjectKind;
    /// assert_eq!(ObjectKind::from_u32(ObjectKind::Queue as u32), Some(ObjectKind::Queue));
    /// assert_eq!(ObjectKind::from_u32(0), None);
    /// ```
    pub fn from_u32(raw: u32) -> Option<ObjectKind> {
        Self::ALL.into_iter().find(|k| *k as u32 == raw)
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The 64-byte header. Every field is an atomic because another process may write the
/// mapping at any time; readers check every field before trusting the payload.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ObjectHeader {
    magic: AtomicU64,
    kind: AtomicU32,
    version: AtomicU32,
    total_len: AtomicU64,
    type_tag: AtomicU64,
    elem_size: AtomicU32,
    elem_align: AtomicU32,
    /// `INITIALISED` once the creator is done, stored last with `Release`.
    init: AtomicU32,
    _reserved: AtomicU32,
    /// The element type's name (truncated, NUL-padded), for error messages.
    type_name: [AtomicU64; 2],
}

const _: () = assert!(size_of::<ObjectHeader>() == HEADER_LEN);
const _: () = assert!(align_of::<ObjectHeader>() == 64);

/// What a header must say: kind, layout version and, for typed objects, the element type.
///
/// ```
/// use shm_core::{ObjectKind, ObjectSpec};
/// let spec = ObjectSpec::new(ObjectKind::Value, 1).with_type::<u64>("u64");
/// assert_eq!(spec.type_name, "u64");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The object kind.
    pub kind: ObjectKind,
    /// Layout version of that kind.
    pub version: u32,
    /// A fingerprint of the element type (0 for untyped objects).
    pub type_tag: u64,
    /// Size of the element type in bytes.
    pub elem_size: u32,
    /// Alignment of the element type.
    pub elem_align: u32,
    /// Name of the element type, for messages (the first 16 bytes are stored).
    pub type_name: String,
}

impl ObjectSpec {
    /// An untyped object of `kind` at layout `version`.
    ///
    /// ```
    /// use shm_core::{ObjectKind, ObjectSpec};
    /// let spec = ObjectSpec::new(ObjectKind::Event, 2);
    /// assert_eq!((spec.kind, spec.version, spec.type_tag), (ObjectKind::Event, 2, 0));
    /// ```
    pub fn new(kind: ObjectKind, version: u32) -> Self {
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
    /// use shm_core::{ObjectKind, ObjectSpec};
    /// let spec = ObjectSpec::new(ObjectKind::Value, 1).with_type::<u32>("u32");
    /// assert_eq!((spec.elem_size, spec.elem_align), (4, 4));
    /// let other = ObjectSpec::new(ObjectKind::Value, 1).with_type::<i32>("i32");
    /// assert_ne!(spec.type_tag, other.type_tag);
    /// ```
    pub fn with_type<T>(mut self, name: &str) -> Self {
        self.elem_size = size_of::<T>() as u32;
        self.elem_align = align_of::<T>() as u32;
        self.type_tag =
            fnv1a(name.as_bytes()) ^ ((self.elem_size as u64) << 32 | self.elem_align as u64);
        self.type_name = name.to_owned();
        self
    }

    fn describe_type(name: &str, size: u32, align: u32) -> String {
        format!("{name} (size {size}, align {align})")
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pack_name(name: &str) -> [u64; 2] {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    [
        u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
        u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default()),
    ]
}

fn unpack_name(words: [u64; 2]) -> String {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&words[0].to_le_bytes());
    bytes.extend_from_slice(&words[1].to_le_bytes());
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A segment that starts with a checked [`ObjectHeader`], followed by the payload.
///
/// The layers above build every named object on this: `create` writes the header,
/// lets the caller initialise the payload and then publishes the object; `open`
/// checks magic, kind, version, element type and length before anyone touches the
/// payload.
///
/// ```
/// use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
/// let spec = ObjectSpec::new(ObjectKind::Custom, 1);
/// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |payload| {
///     // SAFETY: the payload is 8 bytes, ours alone until `create` publishes it.
///     unsafe { payload.cast::<u64>().write(42) };
/// })?;
/// let name = obj.segment().name().unwrap();
/// let again = Object::open(name, &spec)?;
/// // SAFETY: 8 bytes of payload, 64-byte aligned, written above.
/// assert_eq!(unsafe { again.payload_ptr().cast::<u64>().read() }, 42);
/// let wrong = ObjectSpec::new(ObjectKind::Event, 1);
/// assert!(Object::open(name, &wrong).is_err());
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Object {
    segment: Segment,
    payload_len: usize,
}

impl Object {
    /// Creates a segment of `HEADER_LEN + payload_len` bytes, writes the header, runs
    /// `init` on the zeroed payload and then publishes the object (the initialised flag,
    /// stored last with `Release`).
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 16, |payload| {
    ///     // SAFETY: 16 zeroed payload bytes, ours alone until `create` publishes them.
    ///     unsafe { payload.write(7) };
    /// })?;
    /// assert_eq!(obj.segment().len(), shm_core::HEADER_LEN + 16);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create(
        options: &SegmentOptions,
        spec: &ObjectSpec,
        payload_len: usize,
        init: impl FnOnce(*mut u8),
    ) -> Result<Object> {
        let total = HEADER_LEN
            .checked_add(payload_len)
            .ok_or(Error::InvalidSize {
                name: "<object>".into(),
                len: payload_len as u64,
                reason: "payload too large",
            })?;
        let segment = options.create(total)?;
        Self::init_in(segment, spec, init)
    }

    /// Writes the header into a fresh, zeroed segment (named or anonymous), runs `init`
    /// on the payload and publishes the object.
    ///
    /// ```
    /// use shm_core::{Object, ObjectKind, ObjectSpec, Segment};
    /// let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::init_in(Segment::anonymous(128)?, &spec, |_| {})?;
    /// assert_eq!(obj.payload_len(), 128 - shm_core::HEADER_LEN);
    /// assert!(Object::init_in(Segment::anonymous(8)?, &spec, |_| {}).is_err()); // no room
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn init_in(
        segment: Segment,
        spec: &ObjectSpec,
        init: impl FnOnce(*mut u8),
    ) -> Result<Object> {
        if segment.len() < HEADER_LEN {
            return Err(Error::Truncated {
                name: segment.display_name().to_owned(),
                what: "segment length",
                expected: HEADER_LEN as u64,
                found: segment.len() as u64,
            });
        }
        let obj = Object {
            payload_len: segment.len() - HEADER_LEN,
            segment,
        };
        let h = obj.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.kind.store(spec.kind as u32, Ordering::Relaxed);
        h.version.store(spec.version, Ordering::Relaxed);
        h.total_len
            .store(obj.segment.len() as u64, Ordering::Relaxed);
        h.type_tag.store(spec.type_tag, Ordering::Relaxed);
        h.elem_size.store(spec.elem_size, Ordering::Relaxed);
        h.elem_align.store(spec.elem_align, Ordering::Relaxed);
        let packed = pack_name(&spec.type_name);
        h.type_name[0].store(packed[0], Ordering::Relaxed);
        h.type_name[1].store(packed[1], Ordering::Relaxed);
        init(obj.payload_ptr());
        h.init.store(INITIALISED, Ordering::Release);
        Ok(obj)
    }

    /// Opens the named object and checks its header against `spec`, waiting up to
    /// [`DEFAULT_OPEN_WAIT`] for a creator that is still initialising it.
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// # let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| {})?;
    /// let name = obj.segment().name().unwrap();
    /// assert_eq!(Object::open(name, &spec)?.payload_len(), 8);
    /// let newer = ObjectSpec::new(ObjectKind::Custom, 2);
    /// let r = Object::open(name, &newer);
    /// assert!(matches!(r, Err(shm_core::Error::UnsupportedVersion { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn open(name: &str, spec: &ObjectSpec) -> Result<Object> {
        Self::open_timeout(name, spec, DEFAULT_OPEN_WAIT)
    }

    /// [`open`](Self::open) with a chosen wait for the initialised flag.
    ///
    /// ```
    /// use shm_core::{Error, Object, ObjectKind, ObjectSpec, Segment};
    /// use std::time::Duration;
    /// let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let blank = Segment::create(128)?; // zero bytes: a header nobody ever publishes
    /// let r = Object::open_timeout(blank.name().unwrap(), &spec, Duration::from_millis(5));
    /// assert!(matches!(r, Err(Error::NotInitialised { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn open_timeout(name: &str, spec: &ObjectSpec, wait: Duration) -> Result<Object> {
        let start = Instant::now();
        loop {
            let segment = match Segment::open(name) {
                // Between the creator's shm_open and ftruncate the segment is empty.
                Err(Error::Empty { .. }) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(Error::Empty { name }) => {
                    return Err(Error::NotInitialised { name, waited: wait });
                }
                other => other?,
            };
            return Self::from_segment_timeout(segment, spec, wait.saturating_sub(start.elapsed()));
        }
    }

    /// Checks the header of an already mapped segment (an inherited anonymous one, say).
    ///
    /// ```
    /// use shm_core::{Error, Object, ObjectKind, ObjectSpec, Segment, SegmentOptions};
    /// let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| {})?;
    /// let seg = Segment::open(obj.segment().name().unwrap())?;
    /// assert_eq!(Object::from_segment(seg, &spec)?.payload_len(), 8);
    /// let junk = Segment::anonymous(128)?;
    /// junk.write_at(0, b"not-shm!")?;
    /// assert!(matches!(Object::from_segment(junk, &spec), Err(Error::WrongMagic { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn from_segment(segment: Segment, spec: &ObjectSpec) -> Result<Object> {
        Self::from_segment_timeout(segment, spec, DEFAULT_OPEN_WAIT)
    }

    fn from_segment_timeout(segment: Segment, spec: &ObjectSpec, wait: Duration) -> Result<Object> {
        let name = segment.display_name().to_owned();
        if segment.len() < HEADER_LEN {
            return Err(Error::Truncated {
                name,
                what: "segment length",
                expected: HEADER_LEN as u64,
                found: segment.len() as u64,
            });
        }
        let obj = Object {
            payload_len: segment.len() - HEADER_LEN,
            segment,
        };
        let start = Instant::now();
        let h = obj.header();
        loop {
            let init = h.init.load(Ordering::Acquire);
            let magic = h.magic.load(Ordering::Relaxed);
            if init == INITIALISED {
                break;
            }
            // A foreign segment is refused at once; a zero header may still be in the
            // making, so it is waited for.
            if magic != MAGIC && magic != 0 {
                return Err(Error::WrongMagic {
                    name,
                    expected: MAGIC,
                    found: magic,
                });
            }
            if init != 0 {
                return Err(Error::Corrupted {
                    name,
                    what: format!("initialised flag is {init}, expected 0 or {INITIALISED}"),
                });
            }
            if start.elapsed() >= wait {
                return Err(Error::NotInitialised { name, waited: wait });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        obj.check(spec)?;
        Ok(obj)
    }

    fn check(&self, spec: &ObjectSpec) -> Result<()> {
        let name = || self.segment.display_name().to_owned();
        let h = self.header();
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(Error::WrongMagic {
                name: name(),
                expected: MAGIC,
                found: magic,
            });
        }
        let kind = h.kind.load(Ordering::Relaxed);
        if kind != spec.kind as u32 {
            return Err(Error::WrongKind {
                name: name(),
                expected: spec.kind.to_string(),
                found: ObjectKind::from_u32(kind)
                    .map_or_else(|| format!("unknown kind {kind}"), |k| k.to_string()),
            });
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != spec.version {
            return Err(Error::UnsupportedVersion {
                name: name(),
                kind: spec.kind.to_string(),
                expected: spec.version,
                found: version,
            });
        }
        let total = h.total_len.load(Ordering::Relaxed);
        if total != self.segment.len() as u64 {
            return Err(Error::Truncated {
                name: name(),
                what: "segment length against the header's total length",
                expected: total,
                found: self.segment.len() as u64,
            });
        }
        let (tag, size, align) = (
            h.type_tag.load(Ordering::Relaxed),
            h.elem_size.load(Ordering::Relaxed),
            h.elem_align.load(Ordering::Relaxed),
        );
        if (tag, size, align) != (spec.type_tag, spec.elem_size, spec.elem_align) {
            let stored = unpack_name([
                h.type_name[0].load(Ordering::Relaxed),
                h.type_name[1].load(Ordering::Relaxed),
            ]);
            return Err(Error::TypeMismatch {
                name: name(),
                expected: ObjectSpec::describe_type(
                    &spec.type_name,
                    spec.elem_size,
                    spec.elem_align,
                ),
                found: ObjectSpec::describe_type(&stored, size, align),
            });
        }
        Ok(())
    }

    fn header(&self) -> &ObjectHeader {
        // SAFETY: the segment holds at least HEADER_LEN bytes (checked by every
        // constructor), the mapping is page aligned, and ObjectHeader consists of
        // atomics, which are valid for any bit pattern and for concurrent writes.
        unsafe { &*self.segment.as_ptr().cast::<ObjectHeader>() }
    }

    /// The segment underneath.
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// # let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| {})?;
    /// assert_eq!(obj.segment().len(), shm_core::HEADER_LEN + 8);
    /// assert!(obj.segment().unlinks_on_drop());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Mutable access to the segment (to change its unlink-on-drop choice).
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// # let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let mut obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| {})?;
    /// obj.segment_mut().set_unlink_on_drop(false);
    /// let name = obj.segment().name().unwrap().to_owned();
    /// drop(obj);
    /// let reopened = Object::open(&name, &spec); // the object outlived its creator
    /// shm_core::unlink(&name)?;
    /// assert!(reopened.is_ok());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn segment_mut(&mut self) -> &mut Segment {
        &mut self.segment
    }

    /// The payload: 64-byte aligned, [`payload_len`](Self::payload_len) bytes.
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// # let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| {})?;
    /// assert_eq!(obj.payload_ptr() as usize % 64, 0);
    /// // SAFETY: 8 payload bytes, aligned for a u64 (checked above).
    /// unsafe { obj.payload_ptr().cast::<u64>().write_volatile(5) };
    /// let mut buf = [0u8; 8];
    /// obj.segment().read_at(shm_core::HEADER_LEN, &mut buf)?;
    /// assert_eq!(u64::from_ne_bytes(buf), 5);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn payload_ptr(&self) -> *mut u8 {
        // SAFETY: HEADER_LEN <= len, checked by every constructor.
        unsafe { self.segment.as_ptr().add(HEADER_LEN) }
    }

    /// Length of the payload in bytes.
    ///
    /// ```
    /// # use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
    /// # let spec = ObjectSpec::new(ObjectKind::Custom, 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 24, |_| {})?;
    /// assert_eq!(obj.payload_len(), 24);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
}
