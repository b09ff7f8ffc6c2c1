//! [`Layout`]: how a shared type lays out its segment (behind a checked header, or in
//! a foreign format such as CPython's).

use crate::header::ObjectSpec;

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
        match self {
            Layout::Header(spec) => spec.kind.name(),
            Layout::Foreign(name) => name,
        }
    }
}
