//! Segment names: CPython's rules and random `psm_` names.

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
