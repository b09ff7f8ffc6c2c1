//! Segment names: CPython's rules and random `psm_` names.

use crate::error::{Error, Result};

/// Longest name accepted, without the leading `/`.
///
/// glibc refuses names whose length plus the terminating NUL reaches `NAME_MAX` (255).
pub const MAX_NAME_LEN: usize = 253;

/// Prefix of generated names, as CPython's `SharedMemory` makes them.
pub const RANDOM_NAME_PREFIX: &str = "psm_";

/// Hex digits after the prefix: 64 random bits (CPython uses 32; longer names cost
/// nothing and make collisions between hosts' processes negligible).
const RANDOM_HEX_DIGITS: usize = 16;

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

/// A fresh random name in CPython's style: `psm_` and 16 hex digits from the OS's
/// random source.
pub(crate) fn random_name() -> Result<String> {
    let mut bytes = [0u8; RANDOM_HEX_DIGITS / 2];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("getrandom", RANDOM_NAME_PREFIX, e)),
        }
    }
    let mut name = String::with_capacity(RANDOM_NAME_PREFIX.len() + RANDOM_HEX_DIGITS);
    name.push_str(RANDOM_NAME_PREFIX);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    Ok(name)
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
