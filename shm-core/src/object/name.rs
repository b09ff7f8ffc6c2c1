//! Object names: a segment name, and `segment@offset` for an object inside an arena.

use crate::error::{Error, Result};
use crate::header::OBJECT_ALIGN;

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
pub(super) fn check_object_segment_name(name: &str) -> Result<()> {
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
