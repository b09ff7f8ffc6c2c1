//! The record codec: a record is `u32` key length, `u32` value length, a `u64`
//! checksum over the lengths and the body, then the body (key then value), padded to
//! 8 bytes. Records are copied in and out of the mapping with racing copies and
//! checked (bounds, lengths, checksum) on every read.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{RegionError, RegionResult, Slim, unbox};
use super::layout::{FIRST_REC, Mapped};
use crate::codec::hash64;

/// Bytes of a record's header: key length, value length, checksum.
pub(super) const REC_HDR: usize = 16;
const HASH_SEED: u64 = 0x5348_4d2d_6469_6374;
const CHECK_SEED: u64 = 0x7265_636f_7264_2121;

/// A record copied out of the mapping: key bytes then value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) body: Vec<u8>,
    pub(crate) klen: usize,
}

impl Rec {
    pub(crate) fn key(&self) -> &[u8] {
        &self.body[..self.klen]
    }
    pub(crate) fn value(&self) -> &[u8] {
        &self.body[self.klen..]
    }
}

pub(super) fn rec_len(body: usize) -> u64 {
    ((REC_HDR + body) as u64 + 7) & !7
}

#[inline]
pub(super) fn key_hash(key: &[u8]) -> u64 {
    hash64(HASH_SEED, key)
}

/// `a == b`, inline for short keys (a u64 key encodes in at most 9 bytes): the slice
/// comparison calls `memcmp`, which costs more than the compare itself here.
#[inline]
pub(super) fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Overlapping reads of both ends cover every byte, as in `hash64`.
    let w4 = |s: &[u8], i: usize| u32::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let w8 = |s: &[u8], i: usize| {
        u64::from_ne_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ])
    };
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=8 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        9..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// Over the lengths and the body (key then value, contiguous: one pass).
#[inline]
fn checksum(klen: u32, vlen: u32, body: &[u8]) -> u64 {
    hash64(CHECK_SEED ^ (u64::from(klen) << 32 | u64::from(vlen)), body)
}

/// The record header and up to 32 body bytes (a u64 key and value take at most 18):
/// a record this small is copied onto the stack word by word, no larger buffer.
const FIRST_READ: usize = REC_HDR + 32;
/// Larger bodies up to this size are copied into a stack buffer.
const SMALL_BODY: usize = 240;

#[cold]
fn bad_offset(label: &str, off: u64, cap: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record offset {off} outside the record area of {cap} bytes"),
    }
}

#[cold]
fn bad_length(label: &str, off: u64, body: u64, cap: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record at {off} claims {body} bytes past the record area of {cap}"),
    }
}

#[cold]
fn bad_sum(label: &str, off: u64) -> RegionError {
    RegionError::Corrupted {
        name: label.to_owned(),
        what: format!("record at {off} fails its checksum"),
    }
}

impl Mapped {
    /// Copies the aligned words at payload position `at` of the record area into
    /// `out` (a multiple of 8 bytes) with one atomic load each: cheaper than a general
    /// racing copy for the small reads of the `get` path.
    #[inline]
    pub(super) fn load_words(&self, at: usize, out: &mut [u8]) {
        assert!(
            at % 8 == 0
                && out.len() % 8 == 0
                && at >= self.rec_base()
                && at + out.len() <= self.rec_base() + self.cap as usize,
            "record words checked by every caller"
        );
        let base = self.obj.payload_ptr();
        for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
            // SAFETY: `check` made sure the record area (rec_base .. rec_base + cap)
            // lies in the payload; `at + 8j + 8 <= at + out.len()` is inside it
            // (asserted) and 8-aligned (the payload is 64-byte aligned); atomics are
            // valid for any bits and for concurrent access from other processes.
            let w = unsafe { &*base.add(at + j * 8).cast::<AtomicU64>() };
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
    }

    /// Checks the record header at `off` against the record area; returns the
    /// record's payload position, key length, value length and checksum.
    #[inline]
    pub(super) fn header(&self, off: u64, label: &str) -> RegionResult<(usize, u32, u32, u64)> {
        if off % 8 != 0
            || off < FIRST_REC
            || off.checked_add(REC_HDR as u64).is_none_or(|e| e > self.cap)
        {
            return Err(bad_offset(label, off, self.cap));
        }
        let at = self.rec_base() + off as usize;
        let mut hdr = [0u8; REC_HDR];
        self.obj.read_at(at, &mut hdr)?;
        let [k0, k1, k2, k3, v0, v1, v2, v3, s @ ..] = hdr;
        let klen = u32::from_ne_bytes([k0, k1, k2, k3]);
        let vlen = u32::from_ne_bytes([v0, v1, v2, v3]);
        let sum = u64::from_ne_bytes(s);
        let body = u64::from(klen) + u64::from(vlen);
        // off + REC_HDR <= cap (checked above), so this cannot overflow.
        if off + REC_HDR as u64 + body > self.cap {
            return Err(bad_length(label, off, body, self.cap));
        }
        Ok((at, klen, vlen, sum))
    }

    /// Copies the record at `off` out, checking bounds, lengths and checksum.
    pub(super) fn read(&self, off: u64, label: &str) -> RegionResult<Rec> {
        self.with_record(off, label, |body, klen| Rec {
            body: body.to_vec(),
            klen,
        })
        .map_err(unbox)
    }

    /// Copies the whole record at `off` (header and body) into `buf`, checking bounds,
    /// lengths and checksum; returns the key length. For compaction: the copy keeps
    /// its checksum, which covers lengths and bytes but not the record's place.
    pub(super) fn copy_raw(&self, off: u64, label: &str, buf: &mut Vec<u8>) -> RegionResult<usize> {
        let (at, klen, vlen, sum) = self.header(off, label)?;
        let body = klen as usize + vlen as usize;
        // The padded record ends inside the area: cap and off are multiples of 8.
        buf.clear();
        buf.resize(rec_len(body) as usize, 0);
        self.load_words(at, buf);
        // The header was read twice: the second copy is the one checked and kept.
        let (hdr, rest) = buf.split_at(REC_HDR);
        if hdr[0..4] != klen.to_ne_bytes()
            || hdr[4..8] != vlen.to_ne_bytes()
            || hdr[8..16] != sum.to_ne_bytes()
            || checksum(klen, vlen, &rest[..body]) != sum
        {
            return Err(bad_sum(label, off));
        }
        Ok(klen as usize)
    }

    /// Stores `bytes` (a padded record) at payload position `at` with one atomic store
    /// per word when aligned and inside the record area, else by a checked racing copy
    /// (which reports the bounds error).
    #[inline]
    pub(super) fn store_words(&self, at: usize, bytes: &[u8]) -> RegionResult<()> {
        let fits = at % 8 == 0
            && bytes.len() % 8 == 0
            && at >= self.rec_base()
            && at
                .checked_add(bytes.len())
                .is_some_and(|e| e <= self.rec_base() + self.cap as usize);
        if !fits {
            self.obj.write_at(at, bytes)?;
            return Ok(());
        }
        let base = self.obj.payload_ptr();
        for (j, chunk) in bytes.chunks_exact(8).enumerate() {
            // SAFETY: as in `load_words`: `at + 8j + 8 <= at + bytes.len()` lies in the
            // record area inside the payload (checked above), 8-aligned; atomic.
            let w = unsafe { &*base.add(at + j * 8).cast::<AtomicU64>() };
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            w.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Lays a record out in `rec` (header, key, value, zero padding).
    fn fill(rec: &mut [u8], key: &[u8], value: &[u8]) {
        let (hdr, body) = rec.split_at_mut(REC_HDR);
        let (k, v) = body.split_at_mut(key.len());
        k.copy_from_slice(key);
        v[..value.len()].copy_from_slice(value);
        let (klen, vlen) = (key.len() as u32, value.len() as u32);
        let sum = checksum(klen, vlen, &body[..key.len() + value.len()]);
        hdr[0..4].copy_from_slice(&klen.to_ne_bytes());
        hdr[4..8].copy_from_slice(&vlen.to_ne_bytes());
        hdr[8..16].copy_from_slice(&sum.to_ne_bytes());
    }

    /// Writes a record at `off` (reserved by the caller, nobody reads it yet): laid out
    /// in one buffer (on the stack when small) and stored in once, padding included.
    #[inline]
    pub(super) fn write(&self, off: u64, key: &[u8], value: &[u8]) -> RegionResult<()> {
        let len = rec_len(key.len() + value.len()) as usize;
        let at = self.rec_base() + off as usize;
        if len <= 64 {
            let mut small = [0u8; 64];
            Self::fill(&mut small[..len], key, value);
            self.store_words(at, &small[..len])
        } else {
            self.write_long(at, len, key, value)
        }
    }

    /// `write` of a larger record, out of line (its buffers stay off the short path).
    #[inline(never)]
    fn write_long(&self, at: usize, len: usize, key: &[u8], value: &[u8]) -> RegionResult<()> {
        let mut small = [0u8; REC_HDR + SMALL_BODY + 8];
        let mut large = Vec::new();
        let rec = if len <= small.len() {
            &mut small[..len]
        } else {
            large.resize(len, 0);
            &mut large[..]
        };
        Self::fill(rec, key, value);
        self.store_words(at, rec)
    }

    /// Checks the record at `off` and hands its body (key then value) and key length
    /// to `f`. The header and a small body come in one racing copy onto the stack; a
    /// larger body in a second (no allocation up to `SMALL_BODY` bytes).
    #[inline]
    pub(super) fn with_record<R>(
        &self,
        off: u64,
        label: &str,
        f: impl FnOnce(&[u8], usize) -> R,
    ) -> Slim<R> {
        if off % 8 != 0
            || off < FIRST_REC
            || off.checked_add(REC_HDR as u64).is_none_or(|e| e > self.cap)
        {
            return Err(Box::new(bad_offset(label, off, self.cap)));
        }
        let at = self.rec_base() + off as usize;
        // The header first, then only the body words the record has (a u64 key and
        // value take one), each one aligned atomic load onto the stack.
        let mut hdr = [0u8; REC_HDR];
        self.load_words(at, &mut hdr);
        let [
            k0,
            k1,
            k2,
            k3,
            v0,
            v1,
            v2,
            v3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
        ] = hdr;
        let klen = u32::from_ne_bytes([k0, k1, k2, k3]);
        let vlen = u32::from_ne_bytes([v0, v1, v2, v3]);
        let sum = u64::from_ne_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
        let body = u64::from(klen) + u64::from(vlen);
        // off + REC_HDR <= cap (checked above), so this cannot overflow.
        if off + REC_HDR as u64 + body > self.cap {
            return Err(Box::new(bad_length(label, off, body, self.cap)));
        }
        let body = body as usize;
        if body > FIRST_READ - REC_HDR {
            return self.with_long_record(at, klen, vlen, sum, off, label, f);
        }
        let mut first = [0u8; FIRST_READ - REC_HDR];
        // The padded body ends inside the area too: cap, off and REC_HDR are multiples
        // of 8 and off + REC_HDR + body <= cap.
        self.load_words(at + REC_HDR, &mut first[..body.next_multiple_of(8)]);
        let buf = &first[..body];
        if checksum(klen, vlen, buf) != sum {
            return Err(Box::new(bad_sum(label, off)));
        }
        Ok(f(buf, klen as usize))
    }

    /// `with_record` for a body longer than the first read: copied again in full
    /// (onto the stack up to `SMALL_BODY` bytes). Out of line, so the short path
    /// does not zero these buffers.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn with_long_record<R>(
        &self,
        at: usize,
        klen: u32,
        vlen: u32,
        sum: u64,
        off: u64,
        label: &str,
        f: impl FnOnce(&[u8], usize) -> R,
    ) -> Slim<R> {
        let body = klen as usize + vlen as usize;
        let mut small = [0u8; SMALL_BODY];
        let mut large = Vec::new();
        let buf = if body <= SMALL_BODY {
            &mut small[..body]
        } else {
            large.resize(body, 0);
            &mut large[..]
        };
        self.obj
            .read_at(at + REC_HDR, buf)
            .map_err(|e| Box::new(e.into()))?;
        if checksum(klen, vlen, buf) != sum {
            return Err(Box::new(bad_sum(label, off)));
        }
        Ok(f(buf, klen as usize))
    }
}
