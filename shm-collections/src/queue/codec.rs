//! Values to bytes and back for the queue and the pipe, with the crate's one codec
//! ([`crate::codec`], bincode 2 through serde). Decoding is bounded there: bincode's
//! limit (on the memory a decoded value claims: containers count `len * size_of`,
//! integers their full width) is 4 KiB for a frame of up to 64 bytes and otherwise the
//! smallest of 256 KiB, 16 MiB, 1 GiB and 64 GiB that is at least 64 times the frame's
//! length. So a forged length prefix inside a frame cannot make the decoder allocate
//! much more than the frame; a genuine value that takes more than that in memory (a long
//! `Vec` of a large enum whose variants encode in a byte or two) is refused with a
//! decode error.

use std::cell::RefCell;

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

/// Encodes `value` into `out` (cleared first) with the crate's one codec
/// ([`crate::codec`]).
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), crate::codec::CodecError> {
    crate::codec::encode(value, out)
}

/// Decodes one message with the crate's one codec: bounded, so a forged length prefix
/// allocates nothing big.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, crate::codec::CodecError> {
    crate::codec::decode(bytes)
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
