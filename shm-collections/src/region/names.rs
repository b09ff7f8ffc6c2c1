//! The derived names of data segments (see the module docs, "Names"): this crate's
//! entry points to the grammar of [`shm_core::name`], where it is formatted and parsed.

use shm_core::Object;

use super::error::{RegionError, RegionResult};

/// Longest control name of a growable collection: every data segment name it can ever
/// derive (generation up to `u64::MAX`) must fit [`shm_core::MAX_NAME_LEN`].
///
/// ```
/// use shm_collections::{ShareableDict, region::MAX_CONTROL_NAME_LEN};
/// let long = "d".repeat(MAX_CONTROL_NAME_LEN + 1);
/// assert!(ShareableDict::<u64, u64>::create_named(&long).is_err());
/// ```
pub const MAX_CONTROL_NAME_LEN: usize = shm_core::name::MAX_CONTROL_NAME_LEN;

/// The name of data segment `generation` of the incarnation `incarnation` of the
/// growable collection named `control`: `<control>.g<generation hex>.<incarnation, 16
/// hex>` ([`shm_core::name::data_segment_name`]; see [`parse_data_segment_name`]).
///
/// ```
/// use shm_collections::region::{data_segment_name, parse_data_segment_name};
/// let n = data_segment_name("jobs", 0xab, 0x1a);
/// assert_eq!(n, "jobs.g1a.00000000000000ab");
/// let p = parse_data_segment_name(&n).unwrap();
/// assert_eq!((p.control, p.generation, p.incarnation), ("jobs", 0x1a, 0xab));
/// ```
pub fn data_segment_name(control: &str, incarnation: u64, generation: u64) -> String {
    shm_core::name::data_segment_name(control, incarnation, generation)
}

/// The parts of a data segment name (see [`data_segment_name`]).
///
/// ```
/// let p = shm_collections::region::parse_data_segment_name("x.g0.0123456789abcdef").unwrap();
/// assert_eq!(p.control, "x");
/// ```
pub use shm_core::name::DataSegmentName;

/// Parses a name made by [`data_segment_name`] (canonical form only: lower-case hex,
/// no leading zeros in the generation, 16 digits of incarnation); `None` otherwise
/// ([`shm_core::name::parse_data_segment_name`]).
///
/// ```
/// use shm_collections::region::parse_data_segment_name;
/// assert!(parse_data_segment_name("x.g1").is_none()); // no incarnation: a user name
/// assert!(parse_data_segment_name("x.g01.0123456789abcdef").is_none());
/// ```
pub fn parse_data_segment_name(name: &str) -> Option<DataSegmentName<'_>> {
    shm_core::name::parse_data_segment_name(name)
}

/// The control object's name, refusing anonymous and arena objects.
pub(super) fn ctrl_name(ctrl: &Object) -> RegionResult<&str> {
    match ctrl.name() {
        Some(n) if !ctrl.in_arena() => Ok(n),
        _ => Err(RegionError::Unsupported {
            name: ctrl.label(),
            what: "a growable collection needs a named control object (not anonymous, not in an arena)",
        }),
    }
}
