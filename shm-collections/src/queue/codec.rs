//! Values to bytes and back with bincode 2 (serde). Decoding is bounded: bincode's
//! limit (on the memory a decoded value claims: containers count `len * size_of`,
//! integers their full width) is [`EXPANSION`] times the frame's length, at least
//! 1 MiB, rounded up to a power of two. So a forged length prefix inside a frame cannot
//! make the decoder allocate much more than the frame; a genuine value that takes more
//! than that in memory (a long `Vec` of a large enum whose variants encode in a byte or
//! two) is refused with a decode error.

use std::cell::RefCell;

use bincode::config::{Config, standard};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Values a [`Queue`](crate::Queue) or a [`PipeEnd`](crate::PipeEnd) carries: anything
/// serde can serialise and deserialise into an owned value (implemented for all of them).
///
/// ```
/// fn carried<T: shm_collections::Message>() {}
/// carried::<(u32, String, Vec<f64>)>();
/// ```
pub trait Message: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> Message for T {}

thread_local! {
    /// Scratch buffer for encoding and for frames copied out of the ring.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, or a fresh one when it is already in use
/// (a re-entrant call from inside a serde impl).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new(); // do not keep a huge buffer alive for ever
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), bincode::error::EncodeError> {
    bincode::serde::encode_into_std_write(value, out, standard()).map(|_| ())
}

fn decode_with<T: DeserializeOwned, C: Config>(
    bytes: &[u8],
    config: C,
) -> Result<T, bincode::error::DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config)?;
    if read != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!(
            "expected a value of {} bytes, found {read} bytes and {} left over",
            bytes.len(),
            bytes.len() - read
        )));
    }
    Ok(value)
}

/// Memory a decoded value may claim per byte of its encoding.
pub(crate) const EXPANSION: usize = 64;

/// Decodes one value that must fill `bytes` exactly, claiming at most
/// `max(EXPANSION * bytes.len(), 1 MiB)` (rounded up to a power of two) of memory.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    macro_rules! limited {
        ($($bits:literal)*) => {{
            let need = bytes.len().saturating_mul(EXPANSION).max(1 << 20).next_power_of_two();
            $(if need <= 1usize << $bits {
                return decode_with(bytes, standard().with_limit::<{ 1usize << $bits }>());
            })*
            decode_with(bytes, standard().with_limit::<{ 1usize << 40 }>())
        }};
    }
    limited!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exact_length() {
        let mut buf = Vec::new();
        encode(&(7u32, "seven".to_string()), &mut buf).unwrap();
        let back: (u32, String) = decode(&buf).unwrap();
        assert_eq!(back, (7, "seven".into()));
        buf.push(0);
        assert!(
            decode::<(u32, String)>(&buf).is_err(),
            "trailing bytes are refused"
        );
    }

    #[test]
    fn forged_length_prefix_allocates_nothing_big() {
        // A Vec<u8> claiming 2^40 bytes in a 16-byte frame: refused by the limit,
        // before any allocation of that size.
        let mut buf = Vec::new();
        encode(&(1u64 << 40), &mut buf).unwrap();
        buf.resize(16, 0);
        assert!(decode::<Vec<u8>>(&buf).is_err());
        assert!(decode::<String>(&buf).is_err());
    }
}
