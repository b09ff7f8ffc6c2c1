//! Object names: a segment name, and `segment@offset` for an object inside an arena.
//! The grammar lives in [`crate::name`], the workspace's one naming module.

pub(super) use crate::name::check_object_segment_name;
pub use crate::name::{OFFSET_SEPARATOR, ObjectName};
