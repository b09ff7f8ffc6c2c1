//! The derived-name grammar of data segments (see the module docs, "Names"): the one
//! place it is formatted and parsed.

use shm_core::Object;

use super::error::{RegionError, RegionResult};

/// Longest suffix a data segment name adds to its control name:
/// `.g` + 16 hex digits of generation + `.` + 16 hex digits of incarnation.
const DATA_SUFFIX_MAX: usize = 2 + 16 + 1 + 16;

/// Longest control name of a growable collection: every data segment name it can ever
/// derive (generation up to `u64::MAX`) must fit [`shm_core::MAX_NAME_LEN`].
///
/// ```
/// use shm_collections::{ShareableDict, region::MAX_CONTROL_NAME_LEN};
/// let long = "d".repeat(MAX_CONTROL_NAME_LEN + 1);
/// assert!(ShareableDict::<u64, u64>::create_named(&long).is_err());
/// ```
pub const MAX_CONTROL_NAME_LEN: usize = shm_core::MAX_NAME_LEN - DATA_SUFFIX_MAX;

/// The name of data segment `generation` of the incarnation `incarnation` of the
/// growable collection named `control`: `<control>.g<generation hex>.<incarnation, 16
/// hex>`. The one place the grammar is written (see [`parse_data_segment_name`]).
///
/// ```
/// use shm_collections::region::{data_segment_name, parse_data_segment_name};
/// let n = data_segment_name("jobs", 0xab, 0x1a);
/// assert_eq!(n, "jobs.g1a.00000000000000ab");
/// let p = parse_data_segment_name(&n).unwrap();
/// assert_eq!((p.control, p.generation, p.incarnation), ("jobs", 0x1a, 0xab));
/// ```
pub fn data_segment_name(control: &str, incarnation: u64, generation: u64) -> String {
    format!("{control}.g{generation:x}.{incarnation:016x}")
}

/// The parts of a data segment name (see [`data_segment_name`]).
///
/// ```
/// let p = shm_collections::region::parse_data_segment_name("x.g0.0123456789abcdef").unwrap();
/// assert_eq!(p.control, "x");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSegmentName<'a> {
    /// The control object's name.
    pub control: &'a str,
    /// The generation.
    pub generation: u64,
    /// The incarnation id of the object that made it.
    pub incarnation: u64,
}

/// Parses a name made by [`data_segment_name`] (canonical form only: lower-case hex,
/// no leading zeros in the generation, 16 digits of incarnation); `None` otherwise.
///
/// ```
/// use shm_collections::region::parse_data_segment_name;
/// assert!(parse_data_segment_name("x.g1").is_none()); // no incarnation: a user name
/// assert!(parse_data_segment_name("x.g01.0123456789abcdef").is_none());
/// ```
pub fn parse_data_segment_name(name: &str) -> Option<DataSegmentName<'_>> {
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (rest, inc) = name.rsplit_once('.')?;
    let (control, generation) = rest.rsplit_once(".g")?;
    let ok = inc.len() == 16
        && lower_hex(inc)
        && (1..=16).contains(&generation.len())
        && lower_hex(generation)
        && (generation == "0" || !generation.starts_with('0'))
        && !control.is_empty();
    ok.then(|| DataSegmentName {
        control,
        generation: u64::from_str_radix(generation, 16).unwrap_or(0),
        incarnation: u64::from_str_radix(inc, 16).unwrap_or(0),
    })
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
