//! CPython's ShareableList layout (3.9+): header, formats, back-transform codes.
//!
//! ```text
//! 0            N, int64
//! 8            off[0..=N], int64 running offsets into the data area, off[0] = 0
//! D = 8(N+2)   data: item i in [D + off[i], D + off[i+1])
//! F = D + K    per-item struct format, 8 bytes, ASCII, NUL-padded   (K = off[N])
//! F + 8N       per-item back-transform code, int8
//! ```
//!
//! Everything is native-endian. Pure functions only: no segment access here.

use super::error::{ListError, Result};
use super::item::ItemRef;

/// Format of an `int` item.
pub(crate) const FMT_INT: [u8; 8] = *b"q\0\0\0\0\0\0\0";
/// Format of a `float` item.
pub(crate) const FMT_FLOAT: [u8; 8] = *b"d\0\0\0\0\0\0\0";
/// Format of a `bool` item: 7 pad bytes, then the bool.
pub(crate) const FMT_BOOL: [u8; 8] = *b"xxxxxxx?";
/// Format of a `None` item.
pub(crate) const FMT_NONE: [u8; 8] = *b"xxxxxx?x";

/// Back-transform code: the value as unpacked (int, float, bool).
pub(crate) const CODE_PLAIN: i8 = 0;
/// Back-transform code: strip trailing NULs, decode UTF-8.
pub(crate) const CODE_STR: i8 = 1;
/// Back-transform code: strip trailing NULs.
pub(crate) const CODE_BYTES: i8 = 2;
/// Back-transform code: `None`.
pub(crate) const CODE_NONE: i8 = 3;

/// Slot size of the fixed-size types and the unit of every slot.
pub(crate) const ALIGN: usize = 8;
/// Largest `n` of an `<n>s` format (8 characters).
pub(crate) const MAX_FORMAT_N: usize = 9_999_999;
/// Largest str/bytes length CPython's sizing `8 * (len // 8 + 1)` keeps within
/// [`MAX_FORMAT_N`] (the slot is then 9,999,992 bytes).
pub(crate) const MAX_ITEM_LEN: usize = 9_999_991;
/// Header bytes before the offsets: N.
pub(crate) const COUNT_LEN: usize = 8;

/// A parsed item format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Int,
    Float,
    Bool,
    None,
    /// `<n>s`: n bytes, NUL-padded.
    Blob(usize),
}

/// Parses a stored 8-byte format: one of the four fixed ones or `<n>s` (decimal, no
/// sign, no leading zero), NUL-padded. Anything else is `None`.
#[inline]
pub(crate) fn parse_format(raw: [u8; 8]) -> Option<Format> {
    match raw {
        FMT_INT => return Some(Format::Int),
        FMT_FLOAT => return Some(Format::Float),
        FMT_BOOL => return Some(Format::Bool),
        FMT_NONE => return Some(Format::None),
        _ => {}
    }
    let text_len = raw.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let (s_pos, digits) = (text_len.checked_sub(1)?, &raw[..text_len.checked_sub(1)?]);
    if raw[s_pos] != b's' || digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut n = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(d - b'0');
    }
    Some(Format::Blob(n))
}

/// The stored form of `<n>s` (n <= [`MAX_FORMAT_N`]), without allocating.
pub(crate) fn blob_format(n: usize) -> [u8; 8] {
    debug_assert!(n <= MAX_FORMAT_N);
    let mut digits = [0u8; 7];
    let mut len = 0;
    let mut rest = n.min(MAX_FORMAT_N);
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut out = [0u8; 8];
    for (o, d) in out.iter_mut().zip(digits[..len].iter().rev()) {
        *o = *d;
    }
    out[len] = b's';
    out
}

/// A stored format for messages: `'q'`, `'8s'`, `b'\xff...'` when not ASCII text.
pub(crate) fn show_format(raw: [u8; 8]) -> String {
    let text_len = raw.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    format!("'{}'", raw[..text_len].escape_ascii())
}

/// CPython's slot size for a str/bytes of `len` bytes: the next multiple of 8 above.
pub(crate) fn blob_slot(len: usize) -> usize {
    ALIGN * (len / ALIGN + 1)
}

/// Refuses a str/bytes value CPython's format cannot hold faithfully: one ending in
/// NUL (reading would strip it) or one too long for an `<n>s` format.
pub(crate) fn check_blob(index: usize, bytes: &[u8], kind: &'static str) -> Result<()> {
    if bytes.last() == Some(&0) {
        return Err(ListError::TrailingNul { index, kind });
    }
    if bytes.len() > MAX_ITEM_LEN {
        return Err(ListError::ItemTooLarge {
            index,
            len: bytes.len(),
            max: MAX_ITEM_LEN,
        });
    }
    Ok(())
}

/// Format, code and the first 8 data bytes of a fixed-size item.
pub(crate) fn encode_fixed(item: ItemRef<'_>) -> Option<([u8; 8], i8, [u8; 8])> {
    Some(match item {
        ItemRef::Int(v) => (FMT_INT, CODE_PLAIN, v.to_ne_bytes()),
        ItemRef::Float(v) => (FMT_FLOAT, CODE_PLAIN, v.to_ne_bytes()),
        ItemRef::Bool(v) => {
            let mut data = [0u8; 8];
            data[7] = u8::from(v);
            (FMT_BOOL, CODE_PLAIN, data)
        }
        ItemRef::None => (FMT_NONE, CODE_NONE, [0u8; 8]),
        ItemRef::Str(_) | ItemRef::Bytes(_) => return None,
    })
}

/// The full segment image CPython's `ShareableList(items)` writes (except that str
/// slots are sized by UTF-8 length where CPython counts characters).
pub(crate) fn encode(items: &[ItemRef<'_>]) -> Result<Vec<u8>> {
    let n = items.len();
    let mut slots = Vec::with_capacity(n);
    for (index, item) in items.iter().enumerate() {
        slots.push(match item.as_blob() {
            Some((bytes, kind)) => {
                check_blob(index, bytes, kind)?;
                blob_slot(bytes.len())
            }
            None => ALIGN,
        });
    }
    let k: usize = slots.iter().sum();
    let data_start = COUNT_LEN + ALIGN * (n + 1);
    let fmt_start = data_start + k;
    let code_start = fmt_start + ALIGN * n;
    let mut out = vec![0u8; code_start + n];
    out[..8].copy_from_slice(&(n as i64).to_ne_bytes());
    let mut off = 0usize;
    for (i, (item, slot)) in items.iter().zip(&slots).enumerate() {
        let at = COUNT_LEN + ALIGN * (i + 1);
        off += slot;
        out[at..at + 8].copy_from_slice(&(off as i64).to_ne_bytes());
        let data = data_start + off - slot;
        let (format, code) = match encode_fixed(*item) {
            Some((format, code, value)) => {
                out[data..data + 8].copy_from_slice(&value);
                (format, code)
            }
            None => {
                let (bytes, kind) = item.as_blob().unwrap_or((&[], "bytes"));
                out[data..data + bytes.len()].copy_from_slice(bytes);
                let code = if kind == "str" { CODE_STR } else { CODE_BYTES };
                (blob_format(*slot), code)
            }
        };
        out[fmt_start + ALIGN * i..fmt_start + ALIGN * (i + 1)].copy_from_slice(&format);
        out[code_start + i] = code as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(parse_format(FMT_INT), Some(Format::Int));
        assert_eq!(parse_format(*b"8s\0\0\0\0\0\0"), Some(Format::Blob(8)));
        assert_eq!(parse_format(*b"9999992s"), Some(Format::Blob(9_999_992)));
        assert_eq!(parse_format(*b"0s\0\0\0\0\0\0"), Some(Format::Blob(0)));
        for n in [0, 7, 8, 16, 1000, 9_999_992, 9_999_999] {
            assert_eq!(parse_format(blob_format(n)), Some(Format::Blob(n)));
        }
        assert_eq!(&blob_format(16), b"16s\0\0\0\0\0");
        for bad in [
            *b"\0\0\0\0\0\0\0\0",
            *b"s\0\0\0\0\0\0\0",
            *b"08s\0\0\0\0\0",
            *b"8s\0x\0\0\0\0",
            *b"-8s\0\0\0\0\0",
            *b"i\0\0\0\0\0\0\0",
            *b"qq\0\0\0\0\0\0",
            *b"99999999",
        ] {
            assert_eq!(parse_format(bad), None, "{}", show_format(bad));
        }
    }
}
