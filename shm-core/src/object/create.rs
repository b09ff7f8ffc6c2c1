//! Creating an object: a header written, the payload initialised by the caller, then
//! published (the initialised flag stored last).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::name::check_object_segment_name;
use super::{OFFSET_SEPARATOR, Object};
use crate::error::{Error, Result};
use crate::header::{COMPACT_HEADER_LEN, Flags, HEADER_LEN, INITIALISED, OBJECT_ALIGN, ObjectSpec};
use crate::segment::{Segment, SegmentOptions};

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
    /// inherits it (see [`SharedObject::share`](crate::SharedObject::share)) and it
    /// can never leak.
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

    pub(super) fn wrap(
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
}
