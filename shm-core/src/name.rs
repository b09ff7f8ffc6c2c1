//! Segment names: CPython's rules and random `psm_` names.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

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
/// The bits come from a per-process key drawn once from the OS's random source,
/// mixed with a counter (SplitMix64): distinct within a process, unpredictable across
/// processes, and one syscall per process instead of one per segment.
pub(crate) fn random_name() -> Result<String> {
    static KEY: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = match KEY.get() {
        Some(k) => *k,
        None => {
            let mut bytes = [0u8; 8];
            let mut filled = 0;
            while filled < bytes.len() {
                match rustix::rand::getrandom(
                    &mut bytes[filled..],
                    rustix::rand::GetRandomFlags::empty(),
                ) {
                    Ok(n) => filled += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(Error::os("getrandom", RANDOM_NAME_PREFIX, e)),
                }
            }
            *KEY.get_or_init(|| u64::from_ne_bytes(bytes))
        }
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(format!(
        "{RANDOM_NAME_PREFIX}{:016x}",
        splitmix64(key.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    ))
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
