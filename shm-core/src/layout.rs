//! [`Layout`]: how a shared type lays out its segment (behind a checked header, or in
//! a foreign format such as CPython's).

use crate::error::Result;
use crate::header::ObjectSpec;
use crate::object::Object;
use crate::segment::Segment;

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
    /// A checked [`ObjectHeader`](crate::ObjectHeader), then the payload.
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
        self.select((), |spec, ()| spec.kind.name(), |name, ()| name)
    }

    /// The one place the two layouts are told apart: runs `header` with the spec of a
    /// type behind a checked header, or `foreign` with the name of a foreign format,
    /// handing `with` to whichever runs (so both may use a value that only one can take).
    ///
    /// ```
    /// use shm_core::{Kind, Layout, ObjectSpec};
    /// let l = Layout::Header(ObjectSpec::new(Kind::new(Kind::USER.start, "X"), 3));
    /// let version = l.select(10, |spec, base| base + spec.version, |_, base| base);
    /// assert_eq!(version, 13);
    /// assert_eq!(Layout::Foreign("F").select(10, |_, b| b + 1, |_, b| b), 10);
    /// ```
    pub fn select<'a, C, R>(
        &'a self,
        with: C,
        header: impl FnOnce(&'a ObjectSpec, C) -> R,
        foreign: impl FnOnce(&'static str, C) -> R,
    ) -> R {
        match self {
            Layout::Header(spec) => header(spec, with),
            Layout::Foreign(name) => foreign(name, with),
        }
    }

    /// Wraps a mapped segment (received or inherited) as an object of this layout,
    /// checking its header.
    pub(crate) fn wrap(&self, segment: Segment) -> Result<Object> {
        self.select(
            segment,
            |spec, segment| Object::from_segment(segment, spec),
            |_, segment| Ok(Object::foreign(segment)),
        )
    }

    /// Opens the object named `name` (`segment` or `segment@offset`) as this layout.
    pub(crate) fn open(&self, name: &str) -> Result<Object> {
        self.select(
            (),
            |spec, ()| Object::open(name, spec),
            |_, ()| Segment::open(name).map(Object::foreign),
        )
    }
}
