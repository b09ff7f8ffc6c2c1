//! [`Object`]: a checked header plus payload, alone in a segment or at an offset inside
//! a larger one; and [`SharedObject`], the one lifecycle every shared type implements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{
    COMPACT_HEADER_LEN, Flags, HEADER_FORMAT, HEADER_LEN, HeaderCore, HeaderExt, INITIALISED,
    MAGIC, OBJECT_ALIGN, ObjectHeader, ObjectInfo, ObjectSpec,
};
use crate::segment::{Segment, SegmentOptions};

/// How long [`Object::open`] waits for a creator that is still initialising.
pub const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(1);

/// Offset of the creator's PID namespace in a full header.
const CREATOR_PIDNS_AT: usize =
    std::mem::offset_of!(ObjectHeader, ext) + std::mem::offset_of!(HeaderExt, creator_pidns);

/// How often an open that waits for initialisation checks whether the creator died.
const CREATOR_CHECK: Duration = Duration::from_millis(10);

/// Separates a segment name from an object's offset in an object name: `arena@4096`.
pub const OFFSET_SEPARATOR: char = '@';

/// Where an object lives: a segment name and the object's offset in it.
///
/// An object alone in its segment is named by the segment's name; an object inside a
/// larger segment (an arena) by `segment@offset`.
///
/// ```
/// use shm_core::ObjectName;
/// assert_eq!(ObjectName::parse("psm_ab12")?, ObjectName { segment: "psm_ab12".into(), offset: None });
/// let n = ObjectName::parse("/arena@4096")?;
/// assert_eq!((n.segment.as_str(), n.offset), ("arena", Some(4096)));
/// assert_eq!(n.to_string(), "arena@4096");
/// assert!(ObjectName::parse("arena@12x").is_err());
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName {
    /// The segment's name (checked, without a leading `/`).
    pub segment: String,
    /// The object's offset in the segment, `None` for an object alone in its segment.
    pub offset: Option<usize>,
}

impl ObjectName {
    /// Parses `segment` or `segment@offset` (decimal offset, a multiple of 64).
    ///
    /// ```
    /// assert!(shm_core::ObjectName::parse("a@7").is_err()); // not 64-byte aligned
    /// ```
    pub fn parse(name: &str) -> Result<ObjectName> {
        let bad = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        let (seg, offset) = match name.rsplit_once(OFFSET_SEPARATOR) {
            None => (name, None),
            Some((seg, off)) => {
                if off.is_empty() || !off.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("expected a decimal offset after '@'"));
                }
                let off: usize = off
                    .parse()
                    .map_err(|_| bad("the offset after '@' is too large"))?;
                if off % OBJECT_ALIGN != 0 {
                    return Err(bad("the offset after '@' is not a multiple of 64"));
                }
                (seg, Some(off))
            }
        };
        Ok(ObjectName {
            segment: crate::normalize_name(seg)?.to_owned(),
            offset,
        })
    }
}

/// Why a segment name cannot hold an object by itself.
const AT_IN_OBJECT_NAME: &str = "an object's segment name must not contain '@': \
     `open` reads `segment@offset` as an object inside an arena (raw segments and \
     CPython ShareableLists may use '@')";

/// The one check of the name an object alone in its segment is created under: what
/// [`ObjectName::parse`] (and so every `open`) reads back as that same segment. A name
/// with [`OFFSET_SEPARATOR`] is refused: `a@b` would not open at all and `x@64` would
/// open segment `x` at offset 64. Raw segments ([`Segment::create_named`]) keep
/// CPython's rules, which allow `@`.
fn check_object_segment_name(name: &str) -> Result<()> {
    if name.contains(OFFSET_SEPARATOR) {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: AT_IN_OBJECT_NAME,
        });
    }
    Ok(())
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            None => f.write_str(&self.segment),
            Some(off) => write!(f, "{}{OFFSET_SEPARATOR}{off}", self.segment),
        }
    }
}

/// A shared object: a checked [`ObjectHeader`] followed by its payload, either alone in
/// a segment (offset 0) or at a 64-byte aligned offset inside a larger segment that
/// many objects share (an arena).
///
/// The layers above build every shared type on this: `create` writes the header, lets
/// the caller initialise the payload and then publishes the object (the initialised
/// flag, stored last with `Release`); `open` checks magic, header format, kind, layout
/// version, element type and lengths before anyone touches the payload.
///
/// Objects of foreign formats (CPython's `ShareableList`) have no header:
/// [`Object::foreign`] wraps a whole segment unchecked, and the type checks its own
/// layout.
///
/// ```
/// use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
/// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Counter"), 1);
/// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |o| o.write_at(0, &42u64.to_ne_bytes()))?;
/// let again = Object::open(obj.name().unwrap(), &spec)?;
/// let mut buf = [0; 8];
/// again.read_at(0, &mut buf)?;
/// assert_eq!(u64::from_ne_bytes(buf), 42);
/// let wrong = ObjectSpec::new(Kind::new(Kind::USER.start + 1, "Other"), 1);
/// assert!(Object::open(obj.name().unwrap(), &wrong).is_err());
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Object {
    /// Start of the payload in this process's mapping (kept beside the `Arc` so that a
    /// copy costs no pointer chase: the hot path of every collection).
    payload: std::ptr::NonNull<u8>,
    segment: Arc<Segment>,
    /// Offset of the header (of the payload, for a foreign object) in the segment.
    offset: usize,
    /// Where the payload starts, relative to `offset`.
    payload_start: usize,
    payload_len: usize,
    /// `segment@offset` for objects in an arena; `None` for anonymous objects.
    name: Option<Box<str>>,
}

impl Object {
    /// Creates a segment of `HEADER_LEN + payload_len` bytes, writes the header, runs
    /// `init` on the zeroed payload and then publishes the object. If `init` fails the
    /// segment is removed again.
    ///
    /// A given name containing [`OFFSET_SEPARATOR`] (`@`) is [`Error::InvalidName`]
    /// before anything is created: [`Object::open`] would read it as `segment@offset`.
    ///
    /// ```
    /// # use shm_core::{Error, Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let r = Object::create(&SegmentOptions::new().name("x@64"), &spec, 8, |_| Ok::<(), Error>(()));
    /// assert!(matches!(r, Err(Error::InvalidName { name, .. }) if name == "x@64"));
    /// ```
    ///
    /// ```
    /// # use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 16, |o| o.write_at(0, &[7]))?;
    /// assert_eq!((obj.payload_len(), obj.segment().len()), (16, shm_core::HEADER_LEN + 16));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create<E: From<Error>>(
        options: &SegmentOptions,
        spec: &ObjectSpec,
        payload_len: usize,
        init: impl FnOnce(&Object) -> std::result::Result<(), E>,
    ) -> std::result::Result<Object, E> {
        let total = HEADER_LEN
            .checked_add(payload_len)
            .filter(|t| *t <= isize::MAX as usize)
            .ok_or(Error::InvalidSize {
                name: "<object>".into(),
                len: payload_len as u64,
                reason: "payload too large",
            })?;
        if let Some(name) = options.given_name() {
            check_object_segment_name(name)?;
        }
        let segment = options.create(total)?;
        let obj = Object::unpublished(Arc::new(segment), 0, spec, total, Flags::NONE)?;
        init(&obj)?;
        obj.publish();
        Ok(obj)
    }

    /// Creates the object in an anonymous (memfd) segment: it has no name, a child
    /// inherits it (see [`SharedObject::share`]) and it can never leak.
    ///
    /// ```
    /// # use shm_core::{Kind, Object, ObjectSpec};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create_anonymous(&spec, 8, |_| Ok::<(), shm_core::Error>(()))?;
    /// assert_eq!(obj.name(), None);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create_anonymous<E: From<Error>>(
        spec: &ObjectSpec,
        payload_len: usize,
        init: impl FnOnce(&Object) -> std::result::Result<(), E>,
    ) -> std::result::Result<Object, E> {
        let total = HEADER_LEN.saturating_add(payload_len);
        let segment = Segment::anonymous(total)?;
        let obj = Object::unpublished(Arc::new(segment), 0, spec, total, Flags::NONE)?;
        init(&obj)?;
        obj.publish();
        Ok(obj)
    }

    /// Lays out a new object at `offset` inside `segment` (an arena that many objects
    /// share): writes the header, runs `init` on the payload and publishes the object.
    /// Refuses a range whose header is not all zero (an object may live there).
    ///
    /// # Safety
    /// - the `COMPACT_HEADER_LEN + payload_len` bytes at `offset` are not used by any other
    ///   object, in this or another process, for as long as this object lives (the
    ///   caller's allocator hands each range out once);
    /// - nothing else initialises that range concurrently.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use shm_core::{Kind, Object, ObjectSpec, Segment};
    /// let arena = Arc::new(Segment::create(4096)?);
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Small"), 1);
    /// // SAFETY: a fresh arena; this range is handed out once.
    /// let obj = unsafe { Object::create_at(arena.clone(), 1024, &spec, 8, |_| Ok::<(), shm_core::Error>(()))? };
    /// let name = obj.name().unwrap().to_owned();
    /// assert!(name.ends_with("@1024"));
    /// assert_eq!(Object::open(&name, &spec)?.payload_len(), 8);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub unsafe fn create_at<E: From<Error>>(
        segment: Arc<Segment>,
        offset: usize,
        spec: &ObjectSpec,
        payload_len: usize,
        init: impl FnOnce(&Object) -> std::result::Result<(), E>,
    ) -> std::result::Result<Object, E> {
        let total = COMPACT_HEADER_LEN.saturating_add(payload_len);
        if offset % OBJECT_ALIGN != 0 || offset.checked_add(total).is_none_or(|e| e > segment.len())
        {
            return Err(Error::OutOfBounds {
                name: segment.display_name().to_owned(),
                offset,
                len: total,
                segment_len: segment.len(),
            }
            .into());
        }
        let mut head = [0u8; COMPACT_HEADER_LEN];
        segment.read_at(offset, &mut head)?;
        if head.iter().any(|b| *b != 0) {
            return Err(Error::AlreadyInitialised {
                name: format!("{}{OFFSET_SEPARATOR}{offset}", segment.display_name()),
            }
            .into());
        }
        let obj = Object::unpublished(
            segment,
            offset,
            spec,
            total,
            Flags::IN_ARENA | Flags::COMPACT,
        )?;
        init(&obj)?;
        obj.publish();
        Ok(obj)
    }

    /// Writes the header of a new object into a fresh segment (named or anonymous), runs
    /// `init` on the payload and publishes the object. A segment whose header bytes are
    /// not all zero is refused ([`Error::AlreadyInitialised`]): it may hold a live object.
    /// So is a segment whose name contains [`OFFSET_SEPARATOR`] ([`Error::InvalidName`]):
    /// nobody could open the object by that name.
    ///
    /// ```
    /// use shm_core::{Error, Kind, Object, ObjectSpec, Segment};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::init_in(Segment::anonymous(256)?, &spec, |_| Ok::<(), Error>(()))?;
    /// assert_eq!(obj.payload_len(), 256 - shm_core::HEADER_LEN);
    /// let live = Segment::open(Object::create(&Default::default(), &spec, 8, |_| Ok::<(), Error>(()))
    ///     .map(|o| { let n = o.name().unwrap().to_owned(); std::mem::forget(o); n })?.as_str())?;
    /// # let name = live.name().unwrap().to_owned();
    /// assert!(matches!(Object::init_in(live, &spec, |_| Ok::<(), Error>(())), Err(Error::AlreadyInitialised { .. })));
    /// # shm_core::unlink(&name)?;
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn init_in<E: From<Error>>(
        segment: Segment,
        spec: &ObjectSpec,
        init: impl FnOnce(&Object) -> std::result::Result<(), E>,
    ) -> std::result::Result<Object, E> {
        if let Some(name) = segment.name() {
            check_object_segment_name(name)?;
        }
        let total = segment.len();
        let mut head = [0u8; HEADER_LEN];
        if total >= HEADER_LEN {
            segment.read_at(0, &mut head)?;
            if head.iter().any(|b| *b != 0) {
                return Err(Error::AlreadyInitialised {
                    name: segment.display_name().to_owned(),
                }
                .into());
            }
        }
        let obj = Object::unpublished(Arc::new(segment), 0, spec, total, Flags::NONE)?;
        init(&obj)?;
        obj.publish();
        Ok(obj)
    }

    /// Checks room, writes the header (not yet published).
    fn unpublished(
        segment: Arc<Segment>,
        offset: usize,
        spec: &ObjectSpec,
        total: usize,
        flags: Flags,
    ) -> Result<Object> {
        let header_len = if flags.contains(Flags::COMPACT) {
            COMPACT_HEADER_LEN
        } else {
            HEADER_LEN
        };
        if total < header_len || offset.checked_add(total).is_none_or(|e| e > segment.len()) {
            return Err(Error::Truncated {
                name: segment.display_name().to_owned(),
                what: "room for the object header",
                expected: header_len as u64,
                found: segment.len().saturating_sub(offset) as u64,
            });
        }
        let obj = Object::wrap(
            segment,
            offset,
            header_len,
            total - header_len,
            flags.contains(Flags::IN_ARENA),
        );
        obj.core().write(obj.ext(), spec, total as u64, flags);
        Ok(obj)
    }

    fn wrap(
        segment: Arc<Segment>,
        offset: usize,
        payload_start: usize,
        payload_len: usize,
        in_arena: bool,
    ) -> Object {
        let name = segment.name().map(|n| {
            if in_arena {
                format!("{n}{OFFSET_SEPARATOR}{offset}").into_boxed_str()
            } else {
                n.into()
            }
        });
        // SAFETY: the constructors check offset + payload_start <= segment length (and
        // the mapping is non-null); `add` stays inside the mapping or one past its end.
        let payload = unsafe {
            std::ptr::NonNull::new_unchecked(segment.as_ptr().add(offset + payload_start))
        };
        Object {
            payload,
            segment,
            offset,
            payload_start,
            payload_len,
            name,
        }
    }

    fn publish(&self) {
        self.core().init.store(INITIALISED, Ordering::Release);
    }

    /// Wraps a whole segment of a foreign format (no header): the type checks its own
    /// layout. `payload_len` is the segment's length.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::anonymous(100)?);
    /// assert_eq!(obj.payload_len(), 100);
    /// assert!(obj.info().is_none());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn foreign(segment: Segment) -> Object {
        let len = segment.len();
        Object::wrap(Arc::new(segment), 0, 0, len, false)
    }

    /// Opens the named object (`segment` or `segment@offset`) and checks its header
    /// against `spec`, waiting up to [`DEFAULT_OPEN_WAIT`] for a creator that is still
    /// initialising it. A missing name is [`Error::NotFound`] at once.
    ///
    /// ```
    /// # use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok::<(), shm_core::Error>(()))?;
    /// let name = obj.name().unwrap();
    /// assert_eq!(Object::open(name, &spec)?.payload_len(), 8);
    /// let newer = ObjectSpec::new(spec.kind, 2);
    /// assert!(matches!(Object::open(name, &newer), Err(shm_core::Error::UnsupportedVersion { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn open(name: &str, spec: &ObjectSpec) -> Result<Object> {
        Self::open_inner(name, spec, DEFAULT_OPEN_WAIT, false)
    }

    /// Opens the named object, waiting up to `wait` for it to appear (a name that does
    /// not exist yet is retried) and to be initialised. A header that can never become
    /// valid is an error at once, however long `wait` is: a foreign magic, an
    /// impossible initialised word, or an unpublished header whose creator is provably
    /// dead ([`Error::Abandoned`]).
    ///
    /// ```
    /// use shm_core::{Error, Kind, Object, ObjectSpec, Segment};
    /// use std::time::Duration;
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let blank = Segment::create(256)?; // zero bytes: a header nobody ever publishes
    /// let r = Object::open_timeout(blank.name().unwrap(), &spec, Duration::from_millis(5));
    /// assert!(matches!(r, Err(Error::NotInitialised { .. })));
    /// let r = Object::open_timeout("shm-doc-never-created", &spec, Duration::from_millis(5));
    /// assert!(matches!(r, Err(Error::NotFound { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn open_timeout(name: &str, spec: &ObjectSpec, wait: Duration) -> Result<Object> {
        Self::open_inner(name, spec, wait, true)
    }

    fn open_inner(
        name: &str,
        spec: &ObjectSpec,
        wait: Duration,
        wait_for_name: bool,
    ) -> Result<Object> {
        let parsed = ObjectName::parse(name)?;
        let start = Instant::now();
        let segment = loop {
            match Segment::open(&parsed.segment) {
                // Between the creator's shm_open and ftruncate the segment is empty.
                Err(Error::Empty { .. }) if start.elapsed() < wait => {}
                Err(Error::NotFound { .. }) if wait_for_name && start.elapsed() < wait => {}
                Err(Error::Empty { name }) => {
                    return Err(Error::NotInitialised { name, waited: wait });
                }
                other => break other?,
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let left = wait.saturating_sub(start.elapsed());
        Self::checked(Arc::new(segment), parsed.offset, spec, left)
    }

    /// Checks the header of an already mapped segment (an inherited anonymous one, say).
    /// It does not wait: whoever handed the segment over created and published it first.
    ///
    /// ```
    /// use shm_core::{Error, Kind, Object, ObjectSpec, Segment, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok::<(), Error>(()))?;
    /// let seg = Segment::open(obj.name().unwrap())?;
    /// assert_eq!(Object::from_segment(seg, &spec)?.payload_len(), 8);
    /// let junk = Segment::anonymous(256)?;
    /// junk.write_at(0, b"not-shm!")?;
    /// assert!(matches!(Object::from_segment(junk, &spec), Err(Error::WrongMagic { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn from_segment(segment: Segment, spec: &ObjectSpec) -> Result<Object> {
        Self::checked(Arc::new(segment), None, spec, Duration::ZERO)
    }

    /// Checks the header of the object at `offset` in a segment that several objects
    /// share (an arena mapped once for all of them).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use shm_core::{Error, Kind, Object, ObjectSpec, Segment};
    /// let arena = Arc::new(Segment::create(4096)?);
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Small"), 1);
    /// // SAFETY: a fresh arena; this range is handed out once.
    /// let a = unsafe { Object::create_at(arena.clone(), 512, &spec, 8, |_| Ok::<(), Error>(()))? };
    /// let again = Object::from_segment_at(arena.clone(), 512, &spec)?;
    /// assert_eq!(again.offset(), 512);
    /// assert!(Object::from_segment_at(arena, 1024, &spec).is_err()); // nothing there
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn from_segment_at(
        segment: Arc<Segment>,
        offset: usize,
        spec: &ObjectSpec,
    ) -> Result<Object> {
        Self::checked(segment, Some(offset), spec, Duration::ZERO)
    }

    /// The header check shared by every way of opening.
    fn checked(
        segment: Arc<Segment>,
        offset: Option<usize>,
        spec: &ObjectSpec,
        wait: Duration,
    ) -> Result<Object> {
        let at = offset.unwrap_or(0);
        let room = segment.len().saturating_sub(at);
        // Only an object in an arena may have the compact header.
        let least = if offset.is_some() {
            COMPACT_HEADER_LEN
        } else {
            HEADER_LEN
        };
        if at % OBJECT_ALIGN != 0 || at > segment.len() || room < least {
            return Err(Error::Truncated {
                name: segment.display_name().to_owned(),
                what: "room for an object header at the given offset",
                expected: least as u64,
                found: room as u64,
            });
        }
        // The core first: it says whether the header is compact.
        let core = Object::wrap(
            segment,
            at,
            COMPACT_HEADER_LEN,
            room - COMPACT_HEADER_LEN,
            offset.is_some(),
        );
        core.wait_initialised(wait, offset.is_none())?;
        let mut obj = core.with_header_len(offset.is_some())?;
        let total = obj.check(spec, offset.is_some())?;
        obj.payload_len = total - obj.payload_start;
        Ok(obj)
    }

    /// `self` (wrapped with only the 64-byte core as its header) rewrapped with the
    /// header length its flags give: compact only inside an arena, where the flag is
    /// read once (a later change of the flag changes nothing for this handle).
    fn with_header_len(self, in_arena: bool) -> Result<Object> {
        let compact = Flags(self.core().flags.load(Ordering::Acquire)).contains(Flags::COMPACT);
        let header_len = match (compact, in_arena) {
            (true, true) => COMPACT_HEADER_LEN,
            (false, _) => HEADER_LEN,
            (true, false) => {
                return Err(Error::Truncated {
                    name: self.label(),
                    what: "a full header (a compact header is only valid inside an arena)",
                    expected: HEADER_LEN as u64,
                    found: COMPACT_HEADER_LEN as u64,
                });
            }
        };
        let room = self.payload_start + self.payload_len;
        if room < header_len {
            return Err(Error::Truncated {
                name: self.label(),
                what: "room for an object header at the given offset",
                expected: header_len as u64,
                found: room as u64,
            });
        }
        Ok(Object::wrap(
            self.segment,
            self.offset,
            header_len,
            room - header_len,
            in_arena,
        ))
    }

    /// Waits up to `wait` for the creator to publish the header. Errors at once for a
    /// header that can never become valid: a foreign magic, an impossible initialised
    /// word, or (for a full header, which records the creator's PID namespace) a
    /// creator that is provably dead ([`Error::Abandoned`]).
    fn wait_initialised(&self, wait: Duration, full_header: bool) -> Result<()> {
        let start = Instant::now();
        let h = self.core();
        let mut next_creator_check = start;
        loop {
            let init = h.init.load(Ordering::Acquire);
            let magic = h.magic.load(Ordering::Relaxed);
            if init == INITIALISED {
                return Ok(());
            }
            // A foreign segment is refused at once; a zero header may still be in the
            // making, so it is waited for.
            if magic != 0 {
                self.check_magic(magic)?;
            }
            if init != 0 {
                return Err(Error::Corrupted {
                    name: self.label(),
                    what: format!("initialised flag is {init}, expected 0 or {INITIALISED}"),
                });
            }
            if full_header && Instant::now() >= next_creator_check {
                if let Some(pid) = self.dead_creator() {
                    return Err(Error::Abandoned {
                        name: self.label(),
                        pid,
                    });
                }
                // A /proc read each time: every 10 ms is plenty for a creator's death.
                next_creator_check = Instant::now() + CREATOR_CHECK;
            }
            if start.elapsed() >= wait {
                return Err(Error::NotInitialised {
                    name: self.label(),
                    waited: wait,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The creator's pid if the header records one (id and token both written: each
    /// field is 0 until its creator's single store) and it is provably dead. Only for
    /// a full header, the one that records the creator's PID namespace.
    fn dead_creator(&self) -> Option<u32> {
        let h = self.core();
        let id = h.creator_id.load(Ordering::Relaxed);
        let token = h.creator_token.load(Ordering::Relaxed);
        if id == 0 || token == 0 {
            return None;
        }
        let mut ns = [0u8; 4];
        // `checked` made sure HEADER_LEN bytes from `offset` are mapped.
        self.segment
            .read_at(self.offset + CREATOR_PIDNS_AT, &mut ns)
            .ok()?;
        let creator = crate::identity::Identity {
            id,
            token,
            pidns: u32::from_ne_bytes(ns),
        };
        (creator.liveness() == crate::identity::Liveness::Dead).then_some(id)
    }

    fn check_magic(&self, magic: u64) -> Result<()> {
        if magic == MAGIC {
            return Ok(());
        }
        let [b0, b1, b2, b3, b4, b5, b6, format] = magic.to_le_bytes();
        if [b0, b1, b2, b3, b4, b5, b6] == *b"shm-rs\0" {
            return Err(Error::UnsupportedVersion {
                name: self.label(),
                kind: "object header".into(),
                expected: HEADER_FORMAT,
                found: u32::from(format),
            });
        }
        Err(Error::WrongMagic {
            name: self.label(),
            expected: MAGIC,
            found: magic,
        })
    }

    /// Checks the header against `spec`; returns the object's total length.
    fn check(&self, spec: &ObjectSpec, in_arena: bool) -> Result<usize> {
        let info = self.core().info(self.ext());
        self.check_magic(info.magic)?;
        if info.kind != spec.kind.id() {
            let found = if info.kind_name.is_empty() {
                format!("unknown kind {:#x}", info.kind)
            } else {
                format!("{} (kind {:#x})", info.kind_name, info.kind)
            };
            return Err(Error::WrongKind {
                name: self.label(),
                expected: spec.kind.to_string(),
                found,
            });
        }
        if info.version != spec.version {
            return Err(Error::UnsupportedVersion {
                name: self.label(),
                kind: spec.kind.to_string(),
                expected: spec.version,
                found: info.version,
            });
        }
        let room = (self.payload_len + self.payload_start) as u64;
        let total_ok = if in_arena {
            (self.payload_start as u64..=room).contains(&info.total_len)
        } else {
            info.total_len == room
        };
        if !total_ok {
            return Err(Error::Truncated {
                name: self.label(),
                what: "room in the segment against the header's total length",
                expected: info.total_len,
                found: room,
            });
        }
        if (info.type_tag, info.elem_size, info.elem_align)
            != (spec.type_tag, spec.elem_size, spec.elem_align)
        {
            return Err(Error::TypeMismatch {
                name: self.label(),
                expected: ObjectSpec::describe_type(
                    &spec.type_name,
                    spec.elem_size,
                    spec.elem_align,
                ),
                found: ObjectSpec::describe_type(&info.type_name, info.elem_size, info.elem_align),
            });
        }
        // Checked against `room` above, which fits in usize.
        Ok(info.total_len as usize)
    }

    /// Reads the header of the named object without checking it against a kind (for
    /// tools that list and inspect any object).
    ///
    /// Errors: as [`Segment::open`], [`Error::Truncated`] when there is no room for a
    /// header, [`Error::WrongMagic`] / [`Error::UnsupportedVersion`] for segments that
    /// are not objects of this header format.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(256)?;
    /// seg.write_at(0, b"CPython!")?;
    /// assert!(matches!(shm_core::Object::inspect(seg.name().unwrap()),
    ///                  Err(shm_core::Error::WrongMagic { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn inspect(name: &str) -> Result<ObjectInfo> {
        let parsed = ObjectName::parse(name)?;
        let segment = Arc::new(Segment::open(&parsed.segment)?);
        Self::inspect_in(segment, parsed.offset, name)
    }

    /// [`inspect`](Self::inspect) of the object at `offset` of an arena segment already
    /// mapped: a tool that lists many objects of one arena maps it once, not once per
    /// object. Same errors as `inspect` (no room, wrong magic, unsupported format).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use shm_core::{Error, Kind, Object, ObjectSpec, Segment};
    /// let arena = Arc::new(Segment::create(4096)?);
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Small"), 2);
    /// // SAFETY: a fresh arena; this range is handed out once.
    /// let _a = unsafe { Object::create_at(arena.clone(), 512, &spec, 8, |_| Ok::<(), Error>(()))? };
    /// assert_eq!(Object::inspect_at(arena.clone(), 512)?.version, 2);
    /// assert!(Object::inspect_at(arena, 1024).is_err()); // nothing there
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn inspect_at(segment: Arc<Segment>, offset: usize) -> Result<ObjectInfo> {
        let name = format!("{}{OFFSET_SEPARATOR}{offset}", segment.display_name());
        Self::inspect_in(segment, Some(offset), &name)
    }

    /// The header at `offset` of `segment` (`None`: a whole-segment object), for
    /// [`inspect`](Self::inspect) and [`inspect_at`](Self::inspect_at).
    fn inspect_in(segment: Arc<Segment>, offset: Option<usize>, name: &str) -> Result<ObjectInfo> {
        let at = offset.unwrap_or(0);
        let room = segment.len().saturating_sub(at);
        let least = if offset.is_some() {
            COMPACT_HEADER_LEN
        } else {
            HEADER_LEN
        };
        if at % OBJECT_ALIGN != 0 || room < least {
            return Err(Error::Truncated {
                name: name.to_owned(),
                what: "room for an object header",
                expected: least as u64,
                found: room as u64,
            });
        }
        let core = Object::wrap(
            segment,
            at,
            COMPACT_HEADER_LEN,
            room - COMPACT_HEADER_LEN,
            offset.is_some(),
        );
        core.check_magic(core.core().magic.load(Ordering::Relaxed))?;
        let obj = core.with_header_len(offset.is_some())?;
        Ok(obj.core().info(obj.ext()))
    }

    /// The header, read once; `None` for a foreign object (no header).
    ///
    /// ```
    /// # use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 4);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok::<(), shm_core::Error>(()))?;
    /// assert_eq!(obj.info().unwrap().version, 4);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn info(&self) -> Option<ObjectInfo> {
        (self.payload_start != 0).then(|| self.core().info(self.ext()))
    }

    /// The header's first 64 bytes (every header has them).
    fn core(&self) -> &HeaderCore {
        debug_assert!(self.payload_start >= COMPACT_HEADER_LEN);
        // SAFETY: every constructor that sets `payload_start` to COMPACT_HEADER_LEN or
        // HEADER_LEN checked that many bytes at `offset` lie in the mapping and that
        // `offset` is a multiple of 64 (the mapping is page aligned); the mapping lives as
        // long as `self.segment`; HeaderCore consists of atomics, valid for any bit
        // pattern and concurrent writes.
        unsafe { &*self.segment.as_ptr().add(self.offset).cast::<HeaderCore>() }
    }

    /// The header's second 64 bytes, which a compact header has not (they are payload).
    fn ext(&self) -> Option<&HeaderExt> {
        (self.payload_start == HEADER_LEN).then(|| {
            // SAFETY: `payload_start == HEADER_LEN` means the constructor checked that
            // HEADER_LEN bytes at `offset` lie in the mapping: the full ObjectHeader,
            // whose `ext` field is at a 64-aligned offset inside it; HeaderExt consists of
            // atomics, valid for any bit pattern and concurrent writes.
            let full = unsafe {
                &*self
                    .segment
                    .as_ptr()
                    .add(self.offset)
                    .cast::<ObjectHeader>()
            };
            &full.ext
        })
    }

    /// The generation counter of a growable object (header field, shared by all
    /// processes).
    ///
    /// ```
    /// # use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok::<(), shm_core::Error>(()))?;
    /// let g = obj.generation().unwrap();
    /// g.fetch_add(1, std::sync::atomic::Ordering::Release);
    /// assert_eq!(obj.info().unwrap().generation, 1);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn generation(&self) -> Option<&std::sync::atomic::AtomicU64> {
        (self.payload_start != 0).then(|| &self.core().generation)
    }

    /// Sets or clears lifetime flags in the header (e.g. [`Flags::KEEP`]).
    ///
    /// ```
    /// # use shm_core::{Flags, Kind, Object, ObjectSpec, SegmentOptions};
    /// let spec = ObjectSpec::new(Kind::new(Kind::USER.start, "Doc"), 1);
    /// let obj = Object::create(&SegmentOptions::new(), &spec, 8, |_| Ok::<(), shm_core::Error>(()))?;
    /// obj.set_flags(Flags::TRACKED, true);
    /// assert!(obj.info().unwrap().flags.contains(Flags::TRACKED));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn set_flags(&self, flags: Flags, on: bool) {
        if self.payload_start == 0 {
            return;
        }
        // The flags that say where the header and payload are never change.
        let flags = Flags(flags.0 & !(Flags::COMPACT.0 | Flags::IN_ARENA.0));
        let f = &self.core().flags;
        if on {
            f.fetch_or(flags.0, Ordering::Relaxed);
        } else {
            f.fetch_and(!flags.0, Ordering::Relaxed);
        }
    }

    /// The object's name: the segment's name, `segment@offset` inside an arena, `None`
    /// for an anonymous object.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert!(obj.name().unwrap().starts_with("psm_"));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name for messages: [`name`](Self::name) or `<anonymous>`.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::anonymous(8)?);
    /// assert_eq!(obj.label(), "<anonymous>");
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn label(&self) -> String {
        self.name().unwrap_or(crate::segment::ANONYMOUS).to_owned()
    }

    /// The segment underneath (shared with other objects for an arena object).
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert_eq!(obj.segment().len(), 8);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Offset of the object in its segment (0 unless it lives in an arena).
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert_eq!(obj.offset(), 0);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether the object lives inside an arena (at an offset in a shared segment).
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert!(!obj.in_arena());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn in_arena(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(|n| n.contains(OFFSET_SEPARATOR))
            && self
                .segment
                .name()
                .is_some_and(|s| Some(s) != self.name.as_deref())
    }

    /// Removes the object's name so that no new process can open it (processes that
    /// have it open keep using it). A no-op for anonymous objects;
    /// [`Error::Unsupported`] for an object inside an arena (its arena's owner frees it).
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// obj.unlink()?;
    /// assert!(shm_core::Segment::open(obj.name().unwrap()).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        if self.in_arena() {
            return Err(Error::Unsupported {
                name: self.label(),
                what: "unlinking one object of an arena (its arena's owner frees it)",
            });
        }
        self.segment.unlink()
    }

    /// Whether dropping the last handle removes the name: `true` for the creator of an
    /// object alone in its segment, unless changed; always `false` for handles from
    /// `open` and for objects in an arena. Returns whether the choice took effect (it
    /// cannot while another handle shares the segment).
    ///
    /// ```
    /// let mut obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert!(obj.set_unlink_on_drop(false));
    /// let name = obj.name().unwrap().to_owned();
    /// drop(obj);
    /// shm_core::unlink(&name)?; // it was still there
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) -> bool {
        if self.in_arena() {
            return false;
        }
        match Arc::get_mut(&mut self.segment) {
            Some(seg) => {
                seg.set_unlink_on_drop(yes);
                true
            }
            None => false,
        }
    }

    /// Whether dropping this handle removes the name.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert!(obj.unlinks_on_drop());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlinks_on_drop(&self) -> bool {
        !self.in_arena() && self.segment.unlinks_on_drop()
    }

    /// Gives the segment back when no other handle shares it (an object alone in its
    /// segment); the object itself otherwise.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// let seg = obj.into_segment().expect("the only handle");
    /// assert_eq!(seg.len(), 8);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn into_segment(self) -> std::result::Result<Segment, Object> {
        let Object {
            payload,
            segment,
            offset,
            payload_start,
            payload_len,
            name,
        } = self;
        let back = |segment| Object {
            payload,
            segment,
            offset,
            payload_start,
            payload_len,
            name,
        };
        if offset != 0 {
            return Err(back(segment));
        }
        Arc::try_unwrap(segment).map_err(back)
    }

    /// The payload: 64-byte aligned, [`payload_len`](Self::payload_len) bytes. Build on
    /// it with atomics, or copy with [`read_at`](Self::read_at) /
    /// [`write_at`](Self::write_at): another process may write it at any time.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// assert_eq!(obj.payload_ptr() as usize % 64, 0);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn payload_ptr(&self) -> *mut u8 {
        self.payload.as_ptr()
    }

    /// Length of the payload in bytes.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(24)?);
    /// assert_eq!(obj.payload_len(), 24);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Copies `buf.len()` payload bytes at `offset` out (a racing copy: see the crate
    /// docs); [`Error::OutOfBounds`] past the payload.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// let mut b = [1u8; 4];
    /// obj.read_at(4, &mut b)?;
    /// assert_eq!(b, [0; 4]);
    /// assert!(obj.read_at(6, &mut b).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_payload_range(offset, buf.len())?;
        // SAFETY: the range lies in the payload (checked above), which lies in the
        // mapping that `self.segment` keeps alive; `buf` is local memory.
        unsafe { crate::copy::copy_from_shared(self.payload.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the payload at `offset`; [`Error::OutOfBounds`] past it.
    ///
    /// ```
    /// let obj = shm_core::Object::foreign(shm_core::Segment::create(8)?);
    /// obj.write_at(0, b"abc")?;
    /// assert!(obj.write_at(7, b"abc").is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_payload_range(offset, data.len())?;
        // SAFETY: as in `read_at`.
        unsafe { crate::copy::copy_to_shared(data, self.payload.as_ptr().add(offset)) };
        Ok(())
    }

    #[inline]
    fn check_payload_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.payload_len => Ok(()),
            _ => Err(self.out_of_bounds(offset, len)),
        }
    }

    #[cold]
    fn out_of_bounds(&self, offset: usize, len: usize) -> Error {
        Error::OutOfBounds {
            name: self.label(),
            offset,
            len,
            segment_len: self.payload_len,
        }
    }
}

// SAFETY: `payload` points into the mapping owned by `segment` (an `Arc<Segment>`, itself
// Send and Sync); the pointer is only used for racing copies and atomics, which any
// thread may do, exactly as through the `Segment`.
unsafe impl Send for Object {}
// SAFETY: as for `Send`: shared access goes through racing copies and atomics only.
unsafe impl Sync for Object {}

use std::sync::atomic::Ordering;

/// The one lifecycle of every shared type (iceoryx2's `NamedConcept` is the model):
/// the same constructors and handle methods everywhere, so generic code (a manager, a
/// test helper, a CLI) creates, opens, hands on and unlinks any kind without knowing it.
///
/// A type implements five small methods ([`layout`](Self::layout),
/// [`payload_len`](Self::payload_len), [`init_payload`](Self::init_payload),
/// [`attach`](Self::attach), [`object`](Self::object)/[`object_mut`](Self::object_mut));
/// everything else is provided.
///
/// ```
/// use shm_core::{Error, Kind, Layout, Object, ObjectSpec, SharedObject};
///
/// /// A shared u64 counter, updated with atomics.
/// struct Counter(Object);
///
/// impl SharedObject for Counter {
///     type Error = Error;
///     type Init = u64;
///     fn layout() -> Layout {
///         Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start + 9, "Counter"), 1))
///     }
///     fn payload_len(_: &u64) -> Result<usize, Error> { Ok(8) }
///     fn init_payload(o: &Object, init: u64) -> Result<(), Error> { o.write_at(0, &init.to_ne_bytes()) }
///     fn attach(o: Object) -> Result<Self, Error> {
///         if o.payload_len() < 8 { return Err(Error::Corrupted { name: o.label(), what: "short".into() }); }
///         Ok(Counter(o))
///     }
///     fn object(&self) -> &Object { &self.0 }
///     fn object_mut(&mut self) -> &mut Object { &mut self.0 }
/// }
///
/// let c = Counter::create(5)?;
/// let again = Counter::open(c.name().unwrap())?;
/// let mut b = [0; 8];
/// again.object().read_at(0, &mut b)?;
/// assert_eq!(u64::from_ne_bytes(b), 5);
/// c.unlink()?;
/// assert!(Counter::open(c.name().unwrap()).is_err());
/// # Ok::<(), shm_core::Error>(())
/// ```
pub trait SharedObject: Sized {
    /// The type's error; every shm-core error converts into it.
    type Error: From<Error>;
    /// What creating one takes: an initial value, a length, items...
    type Init;

    /// How the object is laid out: behind a checked header, or in a foreign format.
    fn layout() -> Layout;

    /// Payload bytes needed for `init`.
    fn payload_len(init: &Self::Init) -> std::result::Result<usize, Self::Error>;

    /// Writes the initial payload into the zeroed `object`, before anyone else can see it.
    fn init_payload(object: &Object, init: Self::Init) -> std::result::Result<(), Self::Error>;

    /// Wraps an opened or created object, after its header was checked: validates what
    /// the payload says about itself (lengths, counts) and builds the handle.
    fn attach(object: Object) -> std::result::Result<Self, Self::Error>;

    /// The object underneath.
    fn object(&self) -> &Object;

    /// The object underneath, mutably (for [`set_unlink_on_drop`](Self::set_unlink_on_drop)).
    fn object_mut(&mut self) -> &mut Object;

    /// Creates the object with chosen segment options (name, page reservation, unlink
    /// on drop).
    fn create_with(
        options: &SegmentOptions,
        init: Self::Init,
    ) -> std::result::Result<Self, Self::Error> {
        let len = Self::payload_len(&init)?;
        let object = match Self::layout() {
            Layout::Header(spec) => {
                Object::create(options, &spec, len, |o| Self::init_payload(o, init))?
            }
            Layout::Foreign(_) => {
                let o = Object::foreign(options.create(len)?);
                Self::init_payload(&o, init)?;
                o
            }
        };
        Self::attach(object)
    }

    /// Creates the object under a fresh random `psm_` name, removed when the handle drops.
    fn create(init: Self::Init) -> std::result::Result<Self, Self::Error> {
        Self::create_with(&SegmentOptions::new(), init)
    }

    /// Creates the object under `name` ([`Error::AlreadyExists`] if taken). A type
    /// with a header refuses a name containing `@` ([`Error::InvalidName`]): `open`
    /// reads `segment@offset` as an object inside an arena.
    fn create_named(name: &str, init: Self::Init) -> std::result::Result<Self, Self::Error> {
        Self::create_with(&SegmentOptions::new().name(name), init)
    }

    /// Creates the object in an anonymous (memfd) segment: no name, handed to children
    /// with [`share`](Self::share), never leaks.
    fn anonymous(init: Self::Init) -> std::result::Result<Self, Self::Error> {
        let len = Self::payload_len(&init)?;
        let object = match Self::layout() {
            Layout::Header(spec) => {
                Object::create_anonymous(&spec, len, |o| Self::init_payload(o, init))?
            }
            Layout::Foreign(_) => {
                let o = Object::foreign(Segment::anonymous(len)?);
                Self::init_payload(&o, init)?;
                o
            }
        };
        Self::attach(object)
    }

    /// Lays the object out at `offset` inside `segment`, an arena that many small
    /// objects share (one mapping and no descriptor for all of them); its name is
    /// `segment@offset`. Foreign layouts (CPython's) are [`Error::Unsupported`].
    ///
    /// # Safety
    /// As [`Object::create_at`]: the range is handed out once by the caller's allocator
    /// and nothing else uses or initialises it while the object lives.
    unsafe fn create_at(
        segment: Arc<Segment>,
        offset: usize,
        init: Self::Init,
    ) -> std::result::Result<Self, Self::Error> {
        let Layout::Header(spec) = Self::layout() else {
            return Err(Error::Unsupported {
                name: segment.display_name().to_owned(),
                what: "placing a foreign-format object inside an arena",
            }
            .into());
        };
        let len = Self::payload_len(&init)?;
        // SAFETY: forwarded from this function's contract.
        let object = unsafe {
            Object::create_at(segment, offset, &spec, len, |o| Self::init_payload(o, init))?
        };
        Self::attach(object)
    }

    /// Opens the object at `offset` in an arena already mapped by this process (no new
    /// mapping), checking its header.
    fn open_at(segment: Arc<Segment>, offset: usize) -> std::result::Result<Self, Self::Error> {
        let Layout::Header(spec) = Self::layout() else {
            return Err(Error::Unsupported {
                name: segment.display_name().to_owned(),
                what: "a foreign-format object inside an arena",
            }
            .into());
        };
        Self::attach(Object::from_segment_at(segment, offset, &spec)?)
    }

    /// Opens the object another process created, by name (`segment` or
    /// `segment@offset`), checking its header.
    fn open(name: &str) -> std::result::Result<Self, Self::Error> {
        let object = match Self::layout() {
            Layout::Header(spec) => Object::open(name, &spec)?,
            Layout::Foreign(_) => Object::foreign(Segment::open(name)?),
        };
        Self::attach(object)
    }

    /// Opens the object, waiting up to `wait` for it to be created and initialised.
    fn open_timeout(name: &str, wait: Duration) -> std::result::Result<Self, Self::Error> {
        let object = match Self::layout() {
            Layout::Header(spec) => Object::open_timeout(name, &spec, wait)?,
            Layout::Foreign(_) => {
                let start = Instant::now();
                loop {
                    match Segment::open(name) {
                        Err(Error::NotFound { .. } | Error::Empty { .. })
                            if start.elapsed() < wait =>
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        other => break Object::foreign(other?),
                    }
                }
            }
        };
        Self::attach(object)
    }

    /// Wraps an already mapped segment (received or inherited), checking its header.
    fn from_segment(segment: Segment) -> std::result::Result<Self, Self::Error> {
        let object = match Self::layout() {
            Layout::Header(spec) => Object::from_segment(segment, &spec)?,
            Layout::Foreign(_) => Object::foreign(segment),
        };
        Self::attach(object)
    }

    /// The object's name (`None` for an anonymous one), to open it elsewhere.
    fn name(&self) -> Option<&str> {
        self.object().name()
    }

    /// Removes the name now (Python's `unlink`); processes that have the object open
    /// keep using it.
    fn unlink(&self) -> std::result::Result<(), Self::Error> {
        Ok(self.object().unlink()?)
    }

    /// Whether dropping this handle removes the name (`true` for the creator by default).
    fn set_unlink_on_drop(&mut self, yes: bool) {
        self.object_mut().set_unlink_on_drop(yes);
    }

    /// Hands the object to a child process, the way Python passes objects in
    /// `Process(args=...)`: sets `var` in the child's environment to the object's name,
    /// or, for an anonymous object, lets the child inherit its descriptor. The child
    /// takes it with [`from_env`](Self::from_env).
    fn share<'c>(
        &self,
        command: &'c mut std::process::Command,
        var: &str,
    ) -> std::result::Result<&'c mut std::process::Command, Self::Error> {
        Ok(crate::share::share(
            self.object(),
            Self::layout(),
            command,
            var,
        )?)
    }

    /// Takes the object a parent handed over with [`share`](Self::share) under `var`,
    /// checking that it is of this type.
    fn from_env(var: &str) -> std::result::Result<Self, Self::Error> {
        let object = crate::share::from_env(var, Self::layout())?;
        Self::attach(object)
    }
}

/// How a shared type lays out its segment.
///
/// ```
/// use shm_core::{Kind, Layout, ObjectSpec};
/// let l = Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start, "X"), 1));
/// assert_eq!(l.kind_name(), "X");
/// assert_eq!(Layout::Foreign("CPython ShareableList").kind_name(), "CPython ShareableList");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A checked [`ObjectHeader`], then the payload.
    Header(ObjectSpec),
    /// A format defined elsewhere (CPython's), named for messages; no header.
    Foreign(&'static str),
}

impl Layout {
    /// The kind's name, for messages.
    ///
    /// ```
    /// assert_eq!(shm_core::Layout::Foreign("F").kind_name(), "F");
    /// ```
    pub fn kind_name(&self) -> &str {
        match self {
            Layout::Header(spec) => spec.kind.name(),
            Layout::Foreign(name) => name,
        }
    }
}
