//! The one codec of the growable collections ([`ShareableDict`](crate::ShareableDict),
//! [`ShareableVec`](crate::ShareableVec), [`Namespace`](crate::Namespace)): serde types
//! to bytes and back, with bincode 2 (standard configuration) today. Swapping the
//! format means changing this module only (and the collections' layout version).
//!
//! Decoding is bounded: the bytes come from a mapping that another process may have
//! corrupted, so bincode's byte limit is set to a small multiple of the input's length.
//! A length prefix claiming 2^60 elements is an error before anything is allocated.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why encoding or decoding failed (the text of bincode's error).
///
/// ```
/// let err = shm_collections::codec::decode::<String>(&[0xff; 3]).unwrap_err();
/// assert!(!err.to_string().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` into `out` (cleared first).
///
/// ```
/// let mut buf = Vec::new();
/// shm_collections::codec::encode(&(1u8, "a"), &mut buf)?;
/// assert_eq!(shm_collections::codec::decode::<(u8, String)>(&buf)?, (1, "a".into()));
/// # Ok::<(), shm_collections::codec::CodecError>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.clear();
    let mut stack = [0u8; 128];
    // Small values (the common case) are encoded on the stack first: no allocation.
    match bincode::serde::encode_into_slice(value, &mut stack, config()) {
        Ok(n) => {
            out.extend_from_slice(&stack[..n]);
            Ok(())
        }
        Err(bincode::error::EncodeError::UnexpectedEnd) => {
            let v = bincode::serde::encode_to_vec(value, config())
                .map_err(|e| CodecError(e.to_string()))?;
            out.extend_from_slice(&v);
            Ok(())
        }
        Err(e) => Err(CodecError(e.to_string())),
    }
}

/// Encodes `value` and hands the bytes to `f`, on the stack when they fit in 128
/// bytes (no allocation on the lookup path).
///
/// ```
/// let n = shm_collections::codec::with_encoded(&7u64, |b| b.len())?;
/// assert_eq!(n, 1); // varint
/// # Ok::<(), shm_collections::codec::CodecError>(())
/// ```
pub fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, CodecError> {
    let mut stack = [0u8; 128];
    match bincode::serde::encode_into_slice(value, &mut stack, config()) {
        Ok(n) => Ok(f(&stack[..n])),
        Err(bincode::error::EncodeError::UnexpectedEnd) => {
            let v = bincode::serde::encode_to_vec(value, config())
                .map_err(|e| CodecError(e.to_string()))?;
            Ok(f(&v))
        }
        Err(e) => Err(CodecError(e.to_string())),
    }
}

/// Decodes a `T` that takes exactly all of `bytes` (trailing bytes are an error).
///
/// ```
/// use shm_collections::codec::decode;
/// assert!(decode::<Vec<u8>>(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).is_err()); // 2^60 elements
/// assert!(decode::<u8>(&[1, 2]).is_err()); // trailing byte
/// ```
#[inline]
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // The common case (a small value) inline: the first limit class applies anyway.
    if bytes.len() <= SMALL_LIMIT / 64 {
        return finish(
            bincode::serde::decode_from_slice(bytes, config().with_limit::<SMALL_LIMIT>()),
            bytes.len(),
        );
    }
    decode_large(bytes)
}

/// The limit of the smallest class (input up to 64 bytes).
const SMALL_LIMIT: usize = 4096;

/// `decode` of a larger input, out of line.
#[inline(never)]
fn decode_large<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // bincode's limit is a const generic: pick the smallest class that fits the input,
    // so a forged length prefix can claim at most 64 times the input's length.
    macro_rules! with_limit {
        ($($lim:literal),*) => {{
            $(if bytes.len() <= $lim / 64 {
                return finish(bincode::serde::decode_from_slice(bytes, config().with_limit::<$lim>()), bytes.len());
            })*
            finish(bincode::serde::decode_from_slice(bytes, config().with_limit::<{ 1usize << 46 }>()), bytes.len())
        }};
    }
    with_limit!(262144, 16777216, 1073741824, 68719476736)
}

#[inline(always)]
fn finish<T>(
    r: Result<(T, usize), bincode::error::DecodeError>,
    len: usize,
) -> Result<T, CodecError> {
    match r {
        Ok((v, n)) if n == len => Ok(v),
        Ok((_, n)) => Err(trailing(n, len)),
        Err(e) => Err(decode_error(e)),
    }
}

#[cold]
#[inline(never)]
fn trailing(n: usize, len: usize) -> CodecError {
    CodecError(format!(
        "{} trailing bytes after the value ({n} of {len} used)",
        len - n
    ))
}

#[cold]
#[inline(never)]
fn decode_error(e: bincode::error::DecodeError) -> CodecError {
    CodecError(e.to_string())
}

/// A stable 64-bit fingerprint of a type's name (the same in every process of one
/// build), for the header's type record and the namespace's per-attribute tags.
///
/// ```
/// use shm_collections::codec::type_fingerprint;
/// assert_ne!(type_fingerprint::<u64>(), type_fingerprint::<String>());
/// ```
pub fn type_fingerprint<T: ?Sized>() -> u64 {
    shm_core::fnv1a(std::any::type_name::<T>().as_bytes())
}

/// A fast, stable hash of bytes (the same in every process and build): the dict's
/// index hash and the records' checksum. Word-at-a-time folded multiplication (the
/// 128-bit product's halves xored, as wyhash and foldhash do).
#[inline]
pub(crate) fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xd6e8_feb8_6659_fd93;
    #[inline(always)]
    fn fold(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let mut h = fold(seed ^ K1, (bytes.len() as u64) ^ K2);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K1);
    }
    let rest = chunks.remainder();
    // The tail in registers (overlapping reads, as wyhash does): a partial copy into
    // a stack word would stall on store forwarding.
    let n = rest.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let hi = u32::from_le_bytes([rest[n - 4], rest[n - 3], rest[n - 2], rest[n - 1]]);
        h = fold(h ^ (u64::from(lo) | u64::from(hi) << 32), K2);
    } else if n > 0 {
        let w = u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16;
        h = fold(h ^ w, K2);
    }
    fold(h, K1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_length_prefixes_allocate_nothing() {
        // Varint 0xfd = u64 follows: 2^60.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<String>(&bytes).is_err());
        assert!(decode::<Vec<u64>>(&bytes).is_err());
        assert!(decode::<std::collections::HashMap<u64, u64>>(&bytes).is_err());
    }

    #[test]
    fn hash_differs_and_is_stable() {
        assert_eq!(hash64(1, b"abc"), hash64(1, b"abc"));
        assert_ne!(hash64(1, b"abc"), hash64(1, b"abd"));
        assert_ne!(hash64(1, b""), hash64(1, b"\0"));
        let mut v = Vec::new();
        encode(&vec![7u8; 1000], &mut v).unwrap();
        assert_eq!(decode::<Vec<u8>>(&v).unwrap(), vec![7u8; 1000]);
    }
}
