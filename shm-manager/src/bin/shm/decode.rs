//! Turning stored bytes of unknown types into something to show: the header's type
//! name (as `std::any::type_name` wrote it, possibly truncated to 32 bytes) decides;
//! anything not recognised is shown as hex.

use serde_json::Value as Json;
use shm_collections::codec;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `Outer<A,B>` into its outer name and top-level arguments. An argument cut
/// off by truncation (unbalanced brackets, no closing `>`) is `None`.
pub fn generic_args(type_name: &str) -> Option<(&str, Vec<Option<&str>>)> {
    let open = type_name.find('<')?;
    let outer = &type_name[..open];
    let inner = &type_name[open + 1..];
    let mut args = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '>' if depth == 0 => {
                args.push(Some(&inner[start..i]));
                // Complete only if nothing follows the closing bracket.
                return (i + 1 == inner.len()).then_some((outer, args));
            }
            '>' => depth -= 1,
            ',' if depth == 0 => {
                args.push(Some(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    // Truncated: the last argument is incomplete.
    args.push(None);
    Some((outer, args))
}

/// Decodes bincode `bytes` of the type named `ty` (String and the primitive numbers);
/// `None` for other types or bytes that do not decode exactly.
pub fn decode_bincode(ty: Option<&str>, bytes: &[u8]) -> Option<Json> {
    macro_rules! num {
        ($($t:ty),*) => {
            match ty? {
                "alloc::string::String" | "String" | "&str" | "str" => {
                    codec::decode::<String>(bytes).ok().map(Json::from)
                }
                "bool" => codec::decode::<bool>(bytes).ok().map(Json::from),
                $(stringify!($t) => codec::decode::<$t>(bytes).ok().map(Json::from),)*
                "f64" => codec::decode::<f64>(bytes).ok().map(float),
                "f32" => codec::decode::<f32>(bytes).ok().map(|v| float(f64::from(v))),
                "char" => codec::decode::<char>(bytes).ok().map(|c| Json::from(c.to_string())),
                _ => None,
            }
        };
    }
    num!(u8, u16, u32, u64, i8, i16, i32, i64, usize, isize)
}

/// Decodes native-endian plain bytes of the primitive named `ty` (a `Value`'s or
/// `Array`'s element); `None` for other types or a length mismatch.
pub fn decode_pod(ty: &str, bytes: &[u8]) -> Option<Json> {
    macro_rules! pod {
        ($($t:ty),*) => {
            match ty {
                $(stringify!($t) => {
                    let arr: [u8; size_of::<$t>()] = bytes.try_into().ok()?;
                    Some(Json::from(<$t>::from_ne_bytes(arr)))
                })*
                "f64" => Some(float(f64::from_ne_bytes(bytes.try_into().ok()?))),
                "f32" => Some(float(f64::from(f32::from_ne_bytes(bytes.try_into().ok()?)))),
                _ => None,
            }
        };
    }
    pod!(u8, u16, u32, u64, i8, i16, i32, i64, usize, isize)
}

/// A float as JSON (non-finite values, which JSON cannot hold, as strings).
fn float(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or_else(|| Json::from(v.to_string()), Json::Number)
}

/// A JSON value for people: strings quoted, the rest as JSON.
pub fn show(v: &Json) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_args_of_complete_and_truncated_names() {
        assert_eq!(
            generic_args("Dict<alloc::string::String,u64>"),
            Some(("Dict", vec![Some("alloc::string::String"), Some("u64")]))
        );
        assert_eq!(
            generic_args("Dict<alloc::string::String,alloc"),
            Some(("Dict", vec![Some("alloc::string::String"), None]))
        );
        assert_eq!(
            generic_args("Vec<(u8,u16)>"),
            Some(("Vec", vec![Some("(u8,u16)")]))
        );
        assert_eq!(generic_args("u64"), None);
        assert_eq!(generic_args("Value<u64>x"), None);
    }

    #[test]
    fn decodes_known_types_only() {
        let mut b = Vec::new();
        codec::encode("hi", &mut b).unwrap();
        assert_eq!(
            decode_bincode(Some("alloc::string::String"), &b),
            Some(Json::from("hi"))
        );
        assert_eq!(decode_bincode(None, &b), None);
        assert_eq!(decode_bincode(Some("my::Type"), &b), None);
        b.clear();
        codec::encode(&-3i64, &mut b).unwrap();
        assert_eq!(decode_bincode(Some("i64"), &b), Some(Json::from(-3)));
        assert_eq!(decode_pod("u16", &7u16.to_ne_bytes()), Some(Json::from(7)));
        assert_eq!(decode_pod("u16", &[1]), None);
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
