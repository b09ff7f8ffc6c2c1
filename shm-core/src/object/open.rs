//! Opening an object: its header checked (magic, format, kind, version, type,
//! lengths) before anyone touches the payload, waiting for a creator still
//! initialising; and reading a header without opening the object.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{DEFAULT_OPEN_WAIT, OFFSET_SEPARATOR, Object, ObjectName};
use crate::error::{Error, Result};
use crate::header::{
    COMPACT_HEADER_LEN, Flags, HEADER_FORMAT, HEADER_LEN, HeaderExt, INITIALISED, MAGIC,
    OBJECT_ALIGN, ObjectHeader, ObjectInfo, ObjectSpec,
};
use crate::segment::Segment;

/// Offset of the creator's PID namespace in a full header.
const CREATOR_PIDNS_AT: usize =
    std::mem::offset_of!(ObjectHeader, ext) + std::mem::offset_of!(HeaderExt, creator_pidns);

/// How often an open that waits for initialisation checks whether the creator died.
const CREATOR_CHECK: Duration = Duration::from_millis(10);

impl Object {
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
}
