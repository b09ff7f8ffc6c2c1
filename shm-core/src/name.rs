//! The name grammar of the workspace, formatted and parsed here and nowhere else:
//!
//! - segment names: CPython's rules ([`normalize_name`]) and random `psm_` names;
//! - objects: `segment` alone, or `segment@offset` inside an arena ([`ObjectName`]);
//! - growable collections: data segment `CONTROL.g<generation hex>.<incarnation, 16 hex>`
//!   ([`data_segment_name`], [`parse_data_segment_name`]);
//! - managers: `NAME` ([`manager_name_problem`]), root `shm-rs.m.NAME` ([`manager_root`]),
//!   arenas `ROOT.a<N>` ([`arena_segment_name`]), own objects `ROOT.o<16 hex>` and kept
//!   ones `shm-rs.k.NAME.o<16 hex>` ([`own_object_name`], [`parse_own_object`]);
//! - the PID-namespace registry `shm-rs-pidns-<euid>` ([`PIDNS_PREFIX`]).
//!
//! Derived names belong to one incarnation of one object (see DESIGN.md, "Names an
//! object derives"): every function that builds one has its parser beside it.

use crate::error::{Error, Result};
use crate::header::OBJECT_ALIGN;

/// Longest name accepted, without the leading `/`.
///
/// glibc refuses names whose length plus the terminating NUL reaches `NAME_MAX` (255).
pub const MAX_NAME_LEN: usize = 253;

/// Prefix of generated names, as CPython's `SharedMemory` makes them.
pub const RANDOM_NAME_PREFIX: &str = "psm_";

/// Checks a user-given name and returns it without its optional leading `/`.
///
/// ```
/// assert_eq!(shm_core::normalize_name("/psm_1234").unwrap(), "psm_1234");
/// assert!(shm_core::normalize_name("a/b").is_err());
/// ```
pub fn normalize_name(name: &str) -> Result<&str> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return bad("the name is empty");
    }
    if bare.len() > MAX_NAME_LEN {
        return bad("the name is longer than 253 bytes");
    }
    if bare.contains('/') {
        return bad("the name contains '/' after its optional leading one");
    }
    if bare.contains('\0') {
        return bad("the name contains a NUL byte");
    }
    if bare == "." || bare == ".." {
        return bad("'.' and '..' are not segment names");
    }
    Ok(bare)
}

/// A fresh random name in CPython's style: `psm_` and 16 hex digits, 64 random bits
/// (CPython uses 32; longer names cost nothing and make collisions negligible).
///
/// Every name draws its own 64 bits from the OS (`getrandom`), as CPython does with
/// `secrets.token_hex`: `/dev/shm` is world-readable, so names derived from a
/// per-process key and a counter would let anyone who sees one predict the next and
/// create it first. A collision with an existing name is handled by the caller, which
/// retries with a new name.
pub(crate) fn random_name() -> Result<String> {
    let bits =
        crate::sys::random_u64().map_err(|e| Error::os("getrandom", RANDOM_NAME_PREFIX, e))?;
    Ok(format!("{RANDOM_NAME_PREFIX}{bits:016x}"))
}

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
            segment: normalize_name(seg)?.to_owned(),
            offset,
        })
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            None => f.write_str(&self.segment),
            Some(off) => write!(f, "{}{OFFSET_SEPARATOR}{off}", self.segment),
        }
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
///
/// [`Segment::create_named`]: crate::Segment::create_named
pub(crate) fn check_object_segment_name(name: &str) -> Result<()> {
    if name.contains(OFFSET_SEPARATOR) {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: AT_IN_OBJECT_NAME,
        });
    }
    Ok(())
}

/// Lower-case hex digits only (the canonical form of every hex field a name carries).
fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a growable collection's data segment name adds to its control name before the
/// generation: `CONTROL.g<generation hex>.<incarnation>`.
pub const GROWTH_INFIX: &str = ".g";

/// Longest suffix a data segment name adds to its control name:
/// `.g` + 16 hex digits of generation + `.` + 16 hex digits of incarnation.
const DATA_SUFFIX_MAX: usize = GROWTH_INFIX.len() + 16 + 1 + 16;

/// Longest control name of a growable collection: every data segment name it can ever
/// derive (generation up to `u64::MAX`) must fit [`MAX_NAME_LEN`].
///
/// ```
/// use shm_core::name::{MAX_CONTROL_NAME_LEN, data_segment_name};
/// let longest = data_segment_name(&"d".repeat(MAX_CONTROL_NAME_LEN), u64::MAX, u64::MAX);
/// assert_eq!(longest.len(), shm_core::MAX_NAME_LEN);
/// ```
pub const MAX_CONTROL_NAME_LEN: usize = MAX_NAME_LEN - DATA_SUFFIX_MAX;

/// The name of data segment `generation` of the incarnation `incarnation` of the
/// growable collection named `control`: `<control>.g<generation hex>.<incarnation, 16
/// hex>` (parsed back by [`parse_data_segment_name`]).
///
/// ```
/// use shm_core::name::{data_segment_name, parse_data_segment_name};
/// let n = data_segment_name("jobs", 0xab, 0x1a);
/// assert_eq!(n, "jobs.g1a.00000000000000ab");
/// let p = parse_data_segment_name(&n).unwrap();
/// assert_eq!((p.control, p.generation, p.incarnation), ("jobs", 0x1a, 0xab));
/// ```
pub fn data_segment_name(control: &str, incarnation: u64, generation: u64) -> String {
    format!("{control}{GROWTH_INFIX}{generation:x}.{incarnation:016x}")
}

/// The parts of a data segment name (see [`data_segment_name`]).
///
/// ```
/// let p = shm_core::name::parse_data_segment_name("x.g0.0123456789abcdef").unwrap();
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
/// use shm_core::name::parse_data_segment_name;
/// assert!(parse_data_segment_name("x.g1").is_none()); // no incarnation: a user name
/// assert!(parse_data_segment_name("x.g01.0123456789abcdef").is_none());
/// ```
pub fn parse_data_segment_name(name: &str) -> Option<DataSegmentName<'_>> {
    let (rest, inc) = name.rsplit_once('.')?;
    let (control, generation) = rest.rsplit_once(GROWTH_INFIX)?;
    let ok = inc.len() == 16
        && is_lower_hex(inc)
        && (1..=16).contains(&generation.len())
        && is_lower_hex(generation)
        && (generation == "0" || !generation.starts_with('0'))
        && !control.is_empty();
    ok.then(|| DataSegmentName {
        control,
        generation: u64::from_str_radix(generation, 16).unwrap_or(0),
        incarnation: u64::from_str_radix(inc, 16).unwrap_or(0),
    })
}

/// Prefix of every segment a manager owns (its root and `.`-suffixed segments).
pub const MANAGED_PREFIX: &str = "shm-rs.m.";

/// Prefix of the objects a manager keeps past its lifetime (`track = false`).
pub const KEPT_PREFIX: &str = "shm-rs.k.";

/// Prefix of the PID-namespace registry of [`identity`](crate::identity):
/// `shm-rs-pidns-<euid>`.
pub const PIDNS_PREFIX: &str = "shm-rs-pidns-";

/// Longest manager name.
pub const MAX_MANAGER_NAME: usize = 64;

/// What is wrong with manager name `name`, `None` when it is valid: 1..=64 characters
/// of `[A-Za-z0-9_-]` (no `.`, so that `shm-rs.m.NAME.<suffix>` parses back).
///
/// ```
/// use shm_core::name::manager_name_problem;
/// assert_eq!(manager_name_problem("jobs_1-a"), None);
/// assert!(manager_name_problem("").is_some());
/// assert!(manager_name_problem("a.b").is_some());
/// assert!(manager_name_problem(&"x".repeat(65)).is_some());
/// ```
pub fn manager_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("expected 1 to 64 characters, found none");
    }
    if name.len() > MAX_MANAGER_NAME {
        return Some("expected at most 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Some("expected only ASCII letters, digits, '_' and '-'");
    }
    None
}

/// The root (registry) segment of manager `name`: `shm-rs.m.NAME` (`name` unchecked:
/// see [`manager_name_problem`]).
///
/// ```
/// assert_eq!(shm_core::name::manager_root("jobs"), "shm-rs.m.jobs");
/// ```
pub fn manager_root(name: &str) -> String {
    format!("{MANAGED_PREFIX}{name}")
}

/// The manager NAME of `shm-rs.m.NAME`, `shm-rs.m.NAME.<suffix>` or
/// `shm-rs.k.NAME.<suffix>`; `None` otherwise (or for an invalid NAME).
///
/// ```
/// use shm_core::name::manager_of;
/// assert_eq!(manager_of("shm-rs.m.abc.a0@64"), Some("abc"));
/// assert_eq!(manager_of("shm-rs.k.x-y.o12"), Some("x-y"));
/// assert_eq!(manager_of("psm_12"), None);
/// ```
pub fn manager_of(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix(MANAGED_PREFIX)
        .or_else(|| name.strip_prefix(KEPT_PREFIX))?;
    let m = rest.split('.').next()?;
    manager_name_problem(m).is_none().then_some(m)
}

/// Whether `segment` (a name in /dev/shm) belongs to the tracked objects of the
/// manager whose root is `root`: the root itself or `root.<suffix>`.
///
/// ```
/// use shm_core::name::is_tracked_by;
/// assert!(is_tracked_by("shm-rs.m.jobs.a0", "shm-rs.m.jobs"));
/// assert!(!is_tracked_by("shm-rs.m.jobs2", "shm-rs.m.jobs"));
/// ```
pub fn is_tracked_by(segment: &str, root: &str) -> bool {
    segment
        .strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether `segment` is one of the objects of manager `name` (root `root`, see
/// [`manager_root`]): `ROOT.<suffix>`, or `shm-rs.k.NAME.<suffix>` for one kept past
/// the manager; not the root itself.
///
/// ```
/// use shm_core::name::is_owned_by;
/// assert!(is_owned_by("shm-rs.m.x.o12", "shm-rs.m.x", "x"));
/// assert!(is_owned_by("shm-rs.k.x.o12", "shm-rs.m.x", "x"));
/// assert!(!is_owned_by("shm-rs.m.x", "shm-rs.m.x", "x"));
/// assert!(!is_owned_by("shm-rs.m.xy.o1", "shm-rs.m.x", "x"));
/// ```
pub fn is_owned_by(segment: &str, root: &str, name: &str) -> bool {
    let under = |prefix: &str| {
        segment
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    under(root)
        || segment
            .strip_prefix(KEPT_PREFIX)
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether `segment`, tracked by `root` (see [`is_tracked_by`]), is one of the data
/// segments of the root's own registry (`ROOT.g...`).
///
/// ```
/// use shm_core::name::is_root_data;
/// assert!(is_root_data("shm-rs.m.jobs.g0.0123456789abcdef", "shm-rs.m.jobs"));
/// assert!(!is_root_data("shm-rs.m.jobs.a0", "shm-rs.m.jobs"));
/// ```
pub fn is_root_data(segment: &str, root: &str) -> bool {
    segment
        .strip_prefix(root)
        .is_some_and(|rest| rest.starts_with(GROWTH_INFIX))
}

/// Name of arena `index` of the manager whose root is `root`: `ROOT.a<index>`.
///
/// ```
/// use shm_core::name::{arena_segment_name, parse_arena_segment};
/// assert_eq!(arena_segment_name("shm-rs.m.jobs", 3), "shm-rs.m.jobs.a3");
/// assert_eq!(parse_arena_segment("shm-rs.m.jobs.a3"), Some(("shm-rs.m.jobs", 3)));
/// ```
pub fn arena_segment_name(root: &str, index: u32) -> String {
    format!("{root}.a{index}")
}

/// The root and index of an arena segment name made by [`arena_segment_name`]
/// (canonical decimal index only); `None` otherwise.
///
/// ```
/// use shm_core::name::parse_arena_segment;
/// assert_eq!(parse_arena_segment("r.a01"), None);
/// assert_eq!(parse_arena_segment("r.a"), None);
/// ```
pub fn parse_arena_segment(segment: &str) -> Option<(&str, u32)> {
    let (root, index) = segment.rsplit_once(".a")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u32 = index.parse().ok()?;
    (i.to_string() == index).then_some((root, i))
}

/// Name of a manager's own object segment `id`: `ROOT.o<16 hex>`, or for an object kept
/// past the manager (`kept`) `shm-rs.k.NAME.o<16 hex>` (`root` is `shm-rs.m.NAME`).
///
/// ```
/// use shm_core::name::{own_object_name, parse_own_object};
/// let n = own_object_name("shm-rs.m.jobs", true, 0xab);
/// assert_eq!(n, "shm-rs.k.jobs.o00000000000000ab");
/// assert_eq!(parse_own_object(&n), Some((true, "jobs", 0xab)));
/// ```
pub fn own_object_name(root: &str, kept: bool, id: u64) -> String {
    match root.strip_prefix(MANAGED_PREFIX).filter(|_| kept) {
        Some(manager) => format!("{KEPT_PREFIX}{manager}.o{id:016x}"),
        None => format!("{root}.o{id:016x}"),
    }
}

/// `(kept, NAME part, id)` of a name made by [`own_object_name`]; `None` otherwise.
///
/// ```
/// use shm_core::name::parse_own_object;
/// assert_eq!(parse_own_object("shm-rs.m.j.o000000000000001f"), Some((false, "j", 0x1f)));
/// assert_eq!(parse_own_object("shm-rs.m.j.o1f"), None);
/// ```
pub fn parse_own_object(name: &str) -> Option<(bool, &str, u64)> {
    let (kept, rest) = match name.strip_prefix(KEPT_PREFIX) {
        Some(rest) => (true, rest),
        None => (false, name.strip_prefix(MANAGED_PREFIX)?),
    };
    let (manager, id) = rest.rsplit_once(".o")?;
    if id.len() != 16 || !is_lower_hex(id) {
        return None;
    }
    Some((kept, manager, u64::from_str_radix(id, 16).ok()?))
}

/// `(NAME part, arena index, offset)` of an object inside a manager's arena,
/// `shm-rs.m.NAME.a<index>@<offset>`; `None` for any other name.
///
/// ```
/// use shm_core::name::parse_arena_object;
/// assert_eq!(parse_arena_object("shm-rs.m.j.a2@128"), Some(("j", 2, 128)));
/// assert_eq!(parse_arena_object("shm-rs.m.j.a2"), None);
/// ```
pub fn parse_arena_object(name: &str) -> Option<(&str, u32, u64)> {
    let rest = name.strip_prefix(MANAGED_PREFIX)?;
    let (seg, off) = rest.rsplit_once(OFFSET_SEPARATOR)?;
    let (manager, index) = seg.rsplit_once(".a")?;
    Some((manager, index.parse().ok()?, off.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_namespace_registry_is_named_by_this_grammar() {
        assert_eq!(
            crate::identity::REGISTRY_PREFIX,
            format!("/dev/shm/{PIDNS_PREFIX}")
        );
    }

    #[test]
    fn derived_names_parse_back() {
        assert_eq!(manager_of("shm-rs.m.abc"), Some("abc"));
        assert_eq!(manager_of("shm-rs.m.abc.a0.g1f"), Some("abc"));
        assert_eq!(manager_of("shm-rs.m."), None);
        assert_eq!(manager_of("shm-rs.m.a b"), None);
        let p = |n| parse_data_segment_name(n).map(|p| p.control);
        assert_eq!(p("shm-rs.m.x.g0.0123456789abcdef"), Some("shm-rs.m.x"));
        for bad in [
            "d.g1a",
            "d.gx.0123456789abcdef",
            "d.g.0123456789abcdef",
            ".g0.0123456789abcdef",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        for (root, i) in [("shm-rs.m.a", 0), ("shm-rs.m.b", u32::MAX)] {
            assert_eq!(
                parse_arena_segment(&arena_segment_name(root, i)),
                Some((root, i))
            );
        }
        for kept in [false, true] {
            let n = own_object_name("shm-rs.m.m-1", kept, u64::MAX);
            assert_eq!(parse_own_object(&n), Some((kept, "m-1", u64::MAX)));
            assert_eq!(manager_of(&n), Some("m-1"));
        }
        assert!(is_tracked_by("shm-rs.m.jobs", "shm-rs.m.jobs"));
        let ctrl = "c".repeat(MAX_CONTROL_NAME_LEN);
        assert!(normalize_name(&data_segment_name(&ctrl, u64::MAX, u64::MAX)).is_ok());
    }

    #[test]
    fn rules() {
        assert_eq!(normalize_name("x").unwrap(), "x");
        assert_eq!(normalize_name("/x").unwrap(), "x");
        for bad in ["", "/", "a/b", "//a", "a\0b", ".", "/.."] {
            assert!(
                matches!(normalize_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_NAME_LEN);
        assert!(normalize_name(&long).is_ok());
        assert!(normalize_name(&format!("{long}a")).is_err());
    }

    #[test]
    fn random_names_are_cpython_style_and_distinct() {
        let a = random_name().unwrap();
        let b = random_name().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 16);
        assert!(a.starts_with("psm_"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    /// Names drawn one after another show no relation a local user could exploit to
    /// predict the next one: no repeats, no constant step (as a counter would give),
    /// no constant xor, and every bit is set in about half of them.
    #[test]
    fn random_names_are_independent() {
        const N: usize = 2000;
        let bits: Vec<u64> = (0..N)
            .map(|_| u64::from_str_radix(&random_name().unwrap()[4..], 16).unwrap())
            .collect();
        let mut sorted = bits.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), N, "repeated names");

        let steps: Vec<u64> = bits.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        let xors: Vec<u64> = bits.windows(2).map(|w| w[1] ^ w[0]).collect();
        for (what, seq) in [("difference", steps), ("xor", xors)] {
            let mut distinct = seq.clone();
            distinct.sort_unstable();
            distinct.dedup();
            // Random 64-bit values essentially never repeat; a derivable sequence
            // (counter, xorshift of a constant, ...) repeats a lot.
            assert!(
                distinct.len() > N - 10,
                "{what} of consecutive names repeats"
            );
        }

        for bit in 0..64 {
            let set = bits.iter().filter(|b| *b >> bit & 1 == 1).count();
            // Binomial(2000, 1/2) has sd ~22: 30%..70% is more than 13 sd wide.
            assert!(
                (N * 3 / 10..=N * 7 / 10).contains(&set),
                "bit {bit} set in {set} of {N} names"
            );
        }
    }
}
