//! [`Object`]: a checked header plus payload, alone in a segment or at an offset inside
//! a larger one. The lifecycle every shared type implements on top of it is
//! [`SharedObject`](crate::SharedObject).
//!
//! Here: the handle and its accessors (payload, name, unlink, bounds-checked copies);
//! `create` (laying out and publishing a header), `open` (checking one, waiting for a
//! creator, reading a header without opening), `name` (`segment@offset`).

mod create;
mod name;
mod open;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::header::{
    COMPACT_HEADER_LEN, Flags, HEADER_LEN, HeaderCore, HeaderExt, ObjectHeader, ObjectInfo,
};
use crate::segment::Segment;

pub use name::{OFFSET_SEPARATOR, ObjectName};

/// How long [`Object::open`] waits for a creator that is still initialising.
pub const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(1);

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
