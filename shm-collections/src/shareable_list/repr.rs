//! Python's `repr` of the item types, so that lists print as CPython prints them.

use std::fmt::{self, Write};

/// Writes `x` as Python's `repr(float)`: the shortest string that reads back as `x`,
/// in positional notation when the decimal exponent is in -4..16, else in
/// `1e+16` style; always with a `.0` or an exponent; `inf`, `-inf`, `nan`.
pub(crate) fn write_float(f: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("nan");
    }
    if x.is_infinite() {
        return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `-2.73154e2`, `1e-5`, `0e0`.
    let mut buf = String::with_capacity(32);
    write!(buf, "{x:e}")?;
    let (mantissa, exp) = buf.split_once('e').unwrap_or((&buf, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let mut digits = [0u8; 24];
    let mut n = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let digits = std::str::from_utf8(&digits[..n]).unwrap_or("0");
    // Position of the decimal point relative to the digits: x = 0.DIGITS * 10^decpt.
    let decpt = exp + 1;
    f.write_str(sign)?;
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            f.write_str("0.")?;
            for _ in 0..-decpt {
                f.write_char('0')?;
            }
            f.write_str(digits)
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                f.write_str(digits)?;
                for _ in digits.len()..decpt {
                    f.write_char('0')?;
                }
                f.write_str(".0")
            } else {
                f.write_str(&digits[..decpt])?;
                f.write_char('.')?;
                f.write_str(&digits[decpt..])
            }
        }
    } else {
        f.write_str(&digits[..1])?;
        if digits.len() > 1 {
            f.write_char('.')?;
            f.write_str(&digits[1..])?;
        }
        let e = decpt - 1;
        write!(
            f,
            "e{}{:02}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        )
    }
}

/// The quote Python picks: `'` unless the text holds `'` and no `"`.
fn quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

/// Whether Python's `str.isprintable()` is false for `c` (approximated for rare
/// format and unassigned characters: controls, separators other than the space,
/// common format characters, surrogate-free private use areas).
fn is_unprintable(c: char) -> bool {
    if c.is_ascii() {
        return c < ' ' || c == '\x7f';
    }
    c.is_control()
        || (c.is_whitespace())
        || matches!(c,
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}')
}

/// Writes `s` as Python's `repr(str)`.
pub(crate) fn write_str(f: &mut impl Write, s: &str) -> fmt::Result {
    let q = quote(s.contains('\''), s.contains('"'));
    f.write_char(q)?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == q => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c if is_unprintable(c) => {
                let v = c as u32;
                if v < 0x100 {
                    write!(f, "\\x{v:02x}")?;
                } else if v < 0x10000 {
                    write!(f, "\\u{v:04x}")?;
                } else {
                    write!(f, "\\U{v:08x}")?;
                }
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char(q)
}

/// Writes `b` as Python's `repr(bytes)`.
pub(crate) fn write_bytes(f: &mut impl Write, b: &[u8]) -> fmt::Result {
    let q = quote(b.contains(&b'\''), b.contains(&b'"'));
    f.write_char('b')?;
    f.write_char(q)?;
    for &c in b {
        match c {
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            c if c as char == q => {
                f.write_char('\\')?;
                f.write_char(q)?;
            }
            0x20..=0x7e => f.write_char(c as char)?,
            c => write!(f, "\\x{c:02x}")?,
        }
    }
    f.write_char(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x).unwrap();
        s
    }

    #[test]
    fn floats_print_as_python() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (-273.154, "-273.154"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (2.0f64.powi(63), "9.223372036854776e+18"),
            (1.0 / 3.0, "0.3333333333333333"),
        ];
        for &(x, want) in cases {
            assert_eq!(float(x), want, "{x:?}");
        }
    }

    #[test]
    fn strings_and_bytes_print_as_python() {
        let mut s = String::new();
        write_str(&mut s, "it's \"x\"\n\t\\ é \u{0} \u{a0}").unwrap();
        assert_eq!(s, r#"'it\'s "x"\n\t\\ é \x00 \xa0'"#);
        s.clear();
        write_str(&mut s, "it's").unwrap();
        assert_eq!(s, r#""it's""#);
        s.clear();
        write_bytes(&mut s, b"a'\x00\xff\x7f~").unwrap();
        assert_eq!(s, r#"b"a'\x00\xff\x7f~""#);
    }
}
