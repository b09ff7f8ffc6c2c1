//! The naming convention shared by the manager and the `shm` command: a manager `NAME`
//! owns the root segment `shm-rs.m.NAME` and every segment `shm-rs.m.NAME.<suffix>`;
//! objects kept past the manager are `shm-rs.k.NAME.<suffix>`. The grammar itself is
//! [`shm_core::name`]'s (the workspace's one naming module); these are its manager
//! forms, with this crate's errors.

use crate::error::{ManagerError, Result};

/// Prefix of every segment a manager owns (its root and `.`-suffixed segments).
///
/// ```
/// let m = shm_manager::SharedMemoryManager::new()?;
/// assert_eq!(m.root_name(), format!("{}{}", shm_manager::MANAGED_PREFIX, m.name()));
/// # Ok::<(), shm_manager::ManagerError>(())
/// ```
pub const MANAGED_PREFIX: &str = shm_core::name::MANAGED_PREFIX;

/// Prefix of the objects a manager keeps past its lifetime (`track = false`).
///
/// ```
/// use shm_manager::{ObjectOptions, SharedMemoryManager, KEPT_PREFIX};
/// let m = SharedMemoryManager::new()?;
/// let _e: shm_sync::Event = m.get_or_create_with("kept", (), ObjectOptions::new().keep(true))?;
/// let name = m.entry("kept")?.unwrap().location;
/// assert!(name.starts_with(&format!("{KEPT_PREFIX}{}.o", m.name())));
/// shm_core::unlink(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const KEPT_PREFIX: &str = shm_core::name::KEPT_PREFIX;

/// Longest manager name.
///
/// ```
/// use shm_manager::{check_name, MAX_MANAGER_NAME};
/// assert!(check_name(&"a".repeat(MAX_MANAGER_NAME)).is_ok());
/// assert!(check_name(&"a".repeat(MAX_MANAGER_NAME + 1)).is_err());
/// ```
pub const MAX_MANAGER_NAME: usize = shm_core::name::MAX_MANAGER_NAME;

/// Checks a manager name: 1..=64 characters of `[A-Za-z0-9_-]`.
///
/// ```
/// use shm_manager::check_name;
/// assert!(check_name("jobs_1-a").is_ok());
/// assert!(check_name("").is_err());
/// assert!(check_name("a.b").is_err());
/// assert!(check_name(&"x".repeat(65)).is_err());
/// ```
pub fn check_name(name: &str) -> Result<()> {
    match shm_core::name::manager_name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(ManagerError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
    }
}

/// The root (registry) segment of manager `name`: `shm-rs.m.NAME`.
///
/// ```
/// assert_eq!(shm_manager::root_name("jobs")?, "shm-rs.m.jobs");
/// assert!(shm_manager::root_name("../x").is_err());
/// # Ok::<(), shm_manager::ManagerError>(())
/// ```
pub fn root_name(name: &str) -> Result<String> {
    check_name(name)?;
    Ok(shm_core::name::manager_root(name))
}

/// Whether `segment` (a name in /dev/shm) belongs to the tracked objects of the
/// manager whose root is `root`: the root itself or `root.<suffix>`.
///
/// ```
/// use shm_manager::is_tracked_by;
/// assert!(is_tracked_by("shm-rs.m.jobs", "shm-rs.m.jobs"));
/// assert!(is_tracked_by("shm-rs.m.jobs.a0", "shm-rs.m.jobs"));
/// assert!(!is_tracked_by("shm-rs.m.jobs2", "shm-rs.m.jobs"));
/// ```
pub fn is_tracked_by(segment: &str, root: &str) -> bool {
    shm_core::name::is_tracked_by(segment, root)
}

/// 16 random hex digits (64 bits from the OS): anonymous manager names, unguessable
/// from the names already in /dev/shm.
pub(crate) fn random_hex() -> Result<String> {
    Ok(format!("{:016x}", random_u64()?))
}

/// 64 random bits from the OS: anonymous manager names and object ids (see
/// [`shm_core::name::own_object_name`]).
pub(crate) fn random_u64() -> Result<u64> {
    let mut b = [0u8; 8];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(shm_core::Error::Os {
                    op: "getrandom",
                    name: "<manager name>".into(),
                    source: e.into(),
                }
                .into());
            }
        }
    }
    Ok(u64::from_ne_bytes(b))
}

/// Whether the root segment `root` exists (its name, not its contents).
pub(crate) fn root_exists(root: &str) -> bool {
    rustix::fs::access(
        format!("/dev/shm/{root}").as_str(),
        rustix::fs::Access::EXISTS,
    )
    .is_ok()
}

/// Every entry of /dev/shm tracked by `root` (see [`is_tracked_by`]).
pub(crate) fn tracked_segments(root: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_tracked_by(n, root))
        .collect()
}

/// Unlinks every segment tracked by `root`, the root (with its registry's data
/// segments) LAST, and returns how many it
/// removed. Root last: a sweep interrupted (its process killed) leaves the root, whose
/// dead owner makes `shm gc` remove the rest; a root-first sweep left headerless
/// segments that nothing judged. An attacher that created something checks afterwards
/// that the root still exists and sweeps itself if not; so after unlinking the root the
/// children are swept once more (whatever an attacher made before its check saw the root
/// is found there). Repeats each phase while it finds some (a dict growing concurrently
/// may add one behind the scan).
pub(crate) fn remove_tracked(root: &str) -> usize {
    // The registry's own data segments (`root.g*`) go with the root, so that the
    // registry stays readable while the root exists.
    let children = |root_data: bool| {
        let mut removed = 0;
        for _ in 0..8 {
            let mut this_pass = 0;
            for name in tracked_segments(root) {
                let ours =
                    name != root && (root_data || !shm_core::name::is_root_data(&name, root));
                if ours && shm_core::unlink(&name).is_ok() {
                    this_pass += 1;
                }
            }
            removed += this_pass;
            if this_pass == 0 {
                break;
            }
        }
        removed
    };
    let mut removed = children(false);
    removed += usize::from(shm_core::unlink(root).is_ok());
    removed + children(true)
}
