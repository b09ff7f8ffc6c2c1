//! [`Dynamic`]: one value of the types Python and Rust both know (None, bool, int,
//! float, str, bytes, tuple, list, dict), for collections that processes of both
//! languages share without agreeing on one Rust type.
//!
//! The Python package `shm` stores every value of a `ShareableDict()` or `Queue()` as a
//! `Dynamic`; a Rust process opens the same object as `ShareableDict<Dynamic, Dynamic>`
//! or `Queue<Dynamic>` and matches on the variants. Python objects of any other type
//! (and ints beyond 64 bits) travel as [`Dynamic::Pickled`]: pickle bytes that only
//! Python reads.
//!
//! Encoding is the crate's one codec ([`codec`](crate::codec), bincode 2 over serde):
//! each value is its variant number (a varint) followed by the payload the variant's
//! Rust type has (`Int` a zigzag varint like `i64`, `Str` a length-prefixed string like
//! `String`, `Bytes` a length-prefixed byte string like `Vec<u8>`...). Decoding is
//! bounded like every decode of the crate and refuses nesting deeper than
//! [`MAX_DEPTH`], so hostile bytes cannot overflow the stack.
//!
//! ```
//! use shm_collections::{Dynamic, ShareableDict};
//! let d = ShareableDict::<Dynamic, Dynamic>::create()?;
//! d.insert("apples".into(), 3.into())?;
//! d.insert(Dynamic::Int(7), Dynamic::List(vec![1.5.into(), Dynamic::None]))?;
//! assert_eq!(d.get(&Dynamic::from("apples"))?, Some(Dynamic::Int(3)));
//! match d.get(&Dynamic::Int(7))? {
//!     Some(Dynamic::List(items)) => assert_eq!(items[0].as_f64(), Some(1.5)),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), shm_collections::RegionError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The deepest nesting of tuples, lists and dicts that decoding accepts (the outermost
/// container is level 1). Deeper input is a decode error, so a forged record of a
/// million nested one-element tuples cannot overflow the stack of the reader.
///
/// ```
/// use shm_collections::{Dynamic, codec, dynamic::MAX_DEPTH};
/// let mut v = Dynamic::None;
/// for _ in 0..MAX_DEPTH + 1 { v = Dynamic::Tuple(vec![v]); }
/// let mut bytes = Vec::new();
/// codec::encode(&v, &mut bytes)?;
/// assert!(codec::decode::<Dynamic>(&bytes).unwrap_err().to_string().contains("nesting"));
/// # Ok::<(), codec::CodecError>(())
/// ```
pub const MAX_DEPTH: usize = 128;

/// A value of the types Python and Rust share: what a Python `shm.ShareableDict()`,
/// `ShareableVec()`, `Namespace()` and `Queue()` store (see the [module docs](self)).
///
/// It is `Eq`, `Hash` and `Ord` so that it can be a [`ShareableDict`](crate::ShareableDict)
/// key: floats compare by their bits (`f64::total_cmp`, so `NaN == NaN` and
/// `0.0 != -0.0`), values of different variants are ordered by variant (`None < Bool <
/// Int < Float < Str < Bytes < Tuple < List < Dict < Pickled`) and never equal: `Int(1)`,
/// `Float(1.0)` and `Bool(true)` are three keys (Python's dict has one). A `Dict` keeps
/// its pairs in order and compares them in order.
///
/// ```
/// use shm_collections::Dynamic;
/// let v = Dynamic::from(vec![Dynamic::from(1), "two".into(), Dynamic::Bytes(b"3".to_vec())]);
/// assert_eq!(v.to_string(), "[1, 'two', b'3']"); // Display is Python's repr
/// assert_ne!(Dynamic::Int(1), Dynamic::Float(1.0));
/// assert_eq!(Dynamic::Float(f64::NAN), Dynamic::Float(f64::NAN));
/// assert!(Dynamic::Int(5) < Dynamic::Float(-1.0)); // by variant first
/// ```
#[derive(Debug, Clone, Default)]
pub enum Dynamic {
    /// Python's `None`.
    #[default]
    None,
    /// `bool`.
    Bool(bool),
    /// `int` within 64 bits (larger Python ints travel as [`Pickled`](Self::Pickled)).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes` (and `bytearray`, read back as `bytes`).
    Bytes(Vec<u8>),
    /// `tuple`.
    Tuple(Vec<Dynamic>),
    /// `list`.
    List(Vec<Dynamic>),
    /// `dict`, its pairs in insertion order.
    Dict(Vec<(Dynamic, Dynamic)>),
    /// Any other Python object, as `pickle.dumps` bytes (Python reads them back; Rust
    /// can only carry them).
    Pickled(Vec<u8>),
}

const VARIANTS: &[&str] = &[
    "None", "Bool", "Int", "Float", "Str", "Bytes", "Tuple", "List", "Dict", "Pickled",
];

impl Dynamic {
    /// The variant's position in the order of the variants (and its wire number).
    fn rank(&self) -> u8 {
        match self {
            Dynamic::None => 0,
            Dynamic::Bool(_) => 1,
            Dynamic::Int(_) => 2,
            Dynamic::Float(_) => 3,
            Dynamic::Str(_) => 4,
            Dynamic::Bytes(_) => 5,
            Dynamic::Tuple(_) => 6,
            Dynamic::List(_) => 7,
            Dynamic::Dict(_) => 8,
            Dynamic::Pickled(_) => 9,
        }
    }

    /// The Python type name of the value (`"int"`, `"str"`, ...; `"pickled"` for
    /// [`Pickled`](Self::Pickled)), for error messages.
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::from("x").type_name(), "str");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Dynamic::None => "NoneType",
            Dynamic::Bool(_) => "bool",
            Dynamic::Int(_) => "int",
            Dynamic::Float(_) => "float",
            Dynamic::Str(_) => "str",
            Dynamic::Bytes(_) => "bytes",
            Dynamic::Tuple(_) => "tuple",
            Dynamic::List(_) => "list",
            Dynamic::Dict(_) => "dict",
            Dynamic::Pickled(_) => "pickled",
        }
    }

    /// Whether this is `None`.
    ///
    /// ```
    /// assert!(shm_collections::Dynamic::None.is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        matches!(self, Dynamic::None)
    }

    /// The bool of a `Bool`.
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::Bool(true).as_bool(), Some(true));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Dynamic::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer of an `Int`.
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::Int(-3).as_i64(), Some(-3));
    /// assert_eq!(shm_collections::Dynamic::Float(3.0).as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Dynamic::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of a `Float`, or of an `Int` converted (as Python's `float(x)`).
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::Int(2).as_f64(), Some(2.0));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Dynamic::Float(f) => Some(*f),
            Dynamic::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text of a `Str`.
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::from("hi").as_str(), Some("hi"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Dynamic::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a `Bytes`.
    ///
    /// ```
    /// assert_eq!(shm_collections::Dynamic::from(&b"ab"[..]).as_bytes(), Some(&b"ab"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Dynamic::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The items of a `Tuple` or a `List`.
    ///
    /// ```
    /// use shm_collections::Dynamic;
    /// let t = Dynamic::Tuple(vec![1.into(), 2.into()]);
    /// assert_eq!(t.as_slice().map(<[Dynamic]>::len), Some(2));
    /// ```
    pub fn as_slice(&self) -> Option<&[Dynamic]> {
        match self {
            Dynamic::Tuple(v) | Dynamic::List(v) => Some(v),
            _ => None,
        }
    }

    /// The value of `key` in a `Dict` (a linear search: dicts carried by value are small).
    ///
    /// ```
    /// use shm_collections::Dynamic;
    /// let d = Dynamic::Dict(vec![("a".into(), 1.into())]);
    /// assert_eq!(d.get(&"a".into()), Some(&Dynamic::Int(1)));
    /// assert_eq!(d.get(&"b".into()), None);
    /// ```
    pub fn get(&self, key: &Dynamic) -> Option<&Dynamic> {
        match self {
            Dynamic::Dict(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl PartialEq for Dynamic {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Dynamic {}

impl PartialOrd for Dynamic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dynamic {
    fn cmp(&self, other: &Self) -> Ordering {
        use Dynamic as D;
        match (self, other) {
            (D::None, D::None) => Ordering::Equal,
            (D::Bool(a), D::Bool(b)) => a.cmp(b),
            (D::Int(a), D::Int(b)) => a.cmp(b),
            // Equal exactly when the bits are: consistent with `Hash`.
            (D::Float(a), D::Float(b)) => a.total_cmp(b),
            (D::Str(a), D::Str(b)) => a.cmp(b),
            (D::Bytes(a), D::Bytes(b)) | (D::Pickled(a), D::Pickled(b)) => a.cmp(b),
            (D::Tuple(a), D::Tuple(b)) | (D::List(a), D::List(b)) => a.cmp(b),
            (D::Dict(a), D::Dict(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Dynamic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.rank());
        match self {
            Dynamic::None => {}
            Dynamic::Bool(b) => b.hash(state),
            Dynamic::Int(i) => i.hash(state),
            Dynamic::Float(f) => f.to_bits().hash(state),
            Dynamic::Str(s) => s.hash(state),
            Dynamic::Bytes(b) | Dynamic::Pickled(b) => b.hash(state),
            Dynamic::Tuple(v) | Dynamic::List(v) => v.hash(state),
            Dynamic::Dict(p) => p.hash(state),
        }
    }
}

/// Python's `repr` of the value (`None`, `True`, `1.5`, `'text'`, `b'\x00'`, `(1,)`,
/// `[1, 2]`, `{'a': 1}`); a `Pickled` value shows as `<pickled N bytes>`.
impl fmt::Display for Dynamic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn items(f: &mut fmt::Formatter<'_>, v: &[Dynamic]) -> fmt::Result {
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{x}")?;
            }
            Ok(())
        }
        match self {
            Dynamic::None => f.write_str("None"),
            Dynamic::Bool(true) => f.write_str("True"),
            Dynamic::Bool(false) => f.write_str("False"),
            Dynamic::Int(i) => write!(f, "{i}"),
            Dynamic::Float(x) => fmt_float(f, *x),
            Dynamic::Str(s) => fmt_str(f, s),
            Dynamic::Bytes(b) => fmt_bytes(f, b),
            Dynamic::Tuple(v) => {
                f.write_str("(")?;
                items(f, v)?;
                f.write_str(if v.len() == 1 { ",)" } else { ")" })
            }
            Dynamic::List(v) => {
                f.write_str("[")?;
                items(f, v)?;
                f.write_str("]")
            }
            Dynamic::Dict(p) => {
                f.write_str("{")?;
                for (i, (k, v)) in p.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Dynamic::Pickled(b) => write!(f, "<pickled {} bytes>", b.len()),
        }
    }
}

fn fmt_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x != 0.0 && (x.abs() >= 1e16 || x.abs() < 1e-4) {
        // Python switches to an exponent there, with a sign and two digits at least.
        let e = format!("{x:e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
        write!(f, "{mantissa}e{sign}{digits:0>2}")
    } else if x == x.trunc() {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

fn fmt_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    // Python prefers single quotes unless the text has one and no double quote.
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    write!(f, "{q}")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == q => write!(f, "\\{c}")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    write!(f, "{q}")
}

fn fmt_bytes(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    write!(f, "b{}", q as char)?;
    for &c in b {
        match c {
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            c if c == q => write!(f, "\\{}", c as char)?,
            0x20..=0x7e => write!(f, "{}", c as char)?,
            c => write!(f, "\\x{c:02x}")?,
        }
    }
    write!(f, "{}", q as char)
}

macro_rules! from_via {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Dynamic {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

from_via!(
    () => |_v| Dynamic::None,
    bool => |v| Dynamic::Bool(v),
    i8 => |v| Dynamic::Int(v.into()),
    i16 => |v| Dynamic::Int(v.into()),
    i32 => |v| Dynamic::Int(v.into()),
    i64 => |v| Dynamic::Int(v),
    u8 => |v| Dynamic::Int(v.into()),
    u16 => |v| Dynamic::Int(v.into()),
    u32 => |v| Dynamic::Int(v.into()),
    f32 => |v| Dynamic::Float(v.into()),
    f64 => |v| Dynamic::Float(v),
    &str => |v| Dynamic::Str(v.to_owned()),
    String => |v| Dynamic::Str(v),
    &[u8] => |v| Dynamic::Bytes(v.to_vec()),
    Vec<u8> => |v| Dynamic::Bytes(v),
    Vec<Dynamic> => |v| Dynamic::List(v),
    Vec<(Dynamic, Dynamic)> => |v| Dynamic::Dict(v),
);

/// `None` for `None`, the value otherwise.
///
/// ```
/// use shm_collections::Dynamic;
/// assert_eq!(Dynamic::from(None::<i64>), Dynamic::None);
/// assert_eq!(Dynamic::from(Some(2)), Dynamic::Int(2));
/// ```
impl<T: Into<Dynamic>> From<Option<T>> for Dynamic {
    fn from(v: Option<T>) -> Self {
        v.map_or(Dynamic::None, Into::into)
    }
}

/// A `u64` above `i64::MAX` does not fit a Python-compatible `Int`.
///
/// ```
/// use shm_collections::Dynamic;
/// assert_eq!(Dynamic::try_from(5u64), Ok(Dynamic::Int(5)));
/// assert!(Dynamic::try_from(u64::MAX).is_err());
/// ```
impl TryFrom<u64> for Dynamic {
    type Error = std::num::TryFromIntError;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        Ok(Dynamic::Int(i64::try_from(v)?))
    }
}

/// Borrowed bytes, serialised as a byte string (the wire form of `Vec<u8>`, in one copy).
struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Dynamic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "Dynamic";
        let r = u32::from(self.rank());
        let v = VARIANTS[r as usize];
        match self {
            Dynamic::None => s.serialize_unit_variant(N, r, v),
            Dynamic::Bool(b) => s.serialize_newtype_variant(N, r, v, b),
            Dynamic::Int(i) => s.serialize_newtype_variant(N, r, v, i),
            Dynamic::Float(x) => s.serialize_newtype_variant(N, r, v, x),
            Dynamic::Str(t) => s.serialize_newtype_variant(N, r, v, t),
            Dynamic::Bytes(b) | Dynamic::Pickled(b) => {
                s.serialize_newtype_variant(N, r, v, &BytesRef(b))
            }
            Dynamic::Tuple(x) | Dynamic::List(x) => s.serialize_newtype_variant(N, r, v, x),
            Dynamic::Dict(p) => s.serialize_newtype_variant(N, r, v, p),
        }
    }
}

impl<'de> Deserialize<'de> for Dynamic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Seed { depth: 0 }.deserialize(d)
    }
}

/// Deserialises one `Dynamic` found at nesting `depth` (containers above it).
#[derive(Clone, Copy)]
struct Seed {
    depth: usize,
}

impl Seed {
    /// The seed for the items of a container at this level.
    fn inner<E: de::Error>(self) -> Result<Seed, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(E::custom(format_args!(
                "Dynamic nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Seed { depth })
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Dynamic;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Dynamic, D::Error> {
        d.deserialize_enum("Dynamic", VARIANTS, self)
    }
}

/// The variant, by number (bincode) or by name (self-describing formats).
struct Variant(u8);

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Variant;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a Dynamic variant (0..={})", VARIANTS.len() - 1)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Variant, E> {
                match u8::try_from(v) {
                    Ok(i) if usize::from(i) < VARIANTS.len() => Ok(Variant(i)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Variant, E> {
                match VARIANTS.iter().position(|n| *n == v) {
                    Some(i) => Ok(Variant(i as u8)),
                    None => Err(E::unknown_variant(v, VARIANTS)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Dynamic;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Dynamic value")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Dynamic, A::Error> {
        let (Variant(i), v) = data.variant::<Variant>()?;
        Ok(match i {
            0 => {
                v.unit_variant()?;
                Dynamic::None
            }
            1 => Dynamic::Bool(v.newtype_variant()?),
            2 => Dynamic::Int(v.newtype_variant()?),
            3 => Dynamic::Float(v.newtype_variant()?),
            4 => Dynamic::Str(v.newtype_variant()?),
            5 => Dynamic::Bytes(v.newtype_variant::<ByteBuf>()?.0),
            6 => Dynamic::Tuple(v.newtype_variant_seed(Items(self.inner()?))?),
            7 => Dynamic::List(v.newtype_variant_seed(Items(self.inner()?))?),
            8 => Dynamic::Dict(v.newtype_variant_seed(Pairs(self.inner()?))?),
            _ => Dynamic::Pickled(v.newtype_variant::<ByteBuf>()?.0),
        })
    }
}

/// An owned byte string (`Vec<u8>`'s wire form, read in one copy).
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// The items of a tuple or list, each one level deeper.
struct Items(Seed);

impl<'de> DeserializeSeed<'de> for Items {
    type Value = Vec<Dynamic>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Dynamic>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items {
    type Value = Vec<Dynamic>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of Dynamic values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Dynamic>, A::Error> {
        // A forged length prefix must not reserve much: cap the hint.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(x) = seq.next_element_seed(self.0)? {
            out.push(x);
        }
        Ok(out)
    }
}

/// The pairs of a dict, keys and values one level deeper.
struct Pairs(Seed);

impl<'de> DeserializeSeed<'de> for Pairs {
    type Value = Vec<(Dynamic, Dynamic)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<(Dynamic, Dynamic)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of (Dynamic, Dynamic) pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(p) = seq.next_element_seed(Pair(self.0))? {
            out.push(p);
        }
        Ok(out)
    }
}

/// One `(key, value)` pair of a dict.
struct Pair(Seed);

impl<'de> DeserializeSeed<'de> for Pair {
    type Value = (Dynamic, Dynamic);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for Pair {
    type Value = (Dynamic, Dynamic);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a (Dynamic, Dynamic) pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let k = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let v = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    fn sample() -> Dynamic {
        Dynamic::Dict(vec![
            ("none".into(), Dynamic::None),
            ("b".into(), true.into()),
            (Dynamic::Int(-7), Dynamic::Float(2.5)),
            (
                Dynamic::Tuple(vec![1.into(), "x".into()]),
                Dynamic::List(vec![
                    Dynamic::Bytes(vec![0, 255]),
                    Dynamic::Pickled(vec![0x80, 4]),
                ]),
            ),
            (Dynamic::Float(f64::NAN), Dynamic::Dict(vec![])),
        ])
    }

    #[test]
    fn round_trips_through_the_codec() {
        let v = sample();
        let mut buf = Vec::new();
        encode(&v, &mut buf).unwrap();
        assert_eq!(decode::<Dynamic>(&buf).unwrap(), v);
    }

    #[test]
    fn wire_form_matches_the_typed_payloads() {
        // A Bytes payload is Vec<u8>'s encoding, a Str String's, an Int i64's.
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode(&Dynamic::Bytes(vec![1, 2, 3]), &mut a).unwrap();
        encode(&vec![1u8, 2, 3], &mut b).unwrap();
        assert_eq!((a[0], &a[1..]), (5, &b[..]));
        encode(&Dynamic::Int(-300), &mut a).unwrap();
        encode(&-300i64, &mut b).unwrap();
        assert_eq!((a[0], &a[1..]), (2, &b[..]));
        encode(&Dynamic::from("héllo"), &mut a).unwrap();
        encode(&"héllo", &mut b).unwrap();
        assert_eq!((a[0], &a[1..]), (4, &b[..]));
    }

    #[test]
    fn depth_is_bounded_in_a_small_stack() {
        // One-element tuples nested a million deep (2 bytes a level) and lists opened
        // without end: errors, not a stack overflow, on a 1 MiB thread (debug builds take about 5 KiB a level).
        let mut deep = Vec::new();
        for _ in 0..1_000_000 {
            deep.extend_from_slice(&[6, 1]);
        }
        deep.push(0);
        let mut open_lists = [7u8, 1].repeat(100_000);
        open_lists.truncate(150_001);
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let e = decode::<Dynamic>(&deep).unwrap_err();
                assert!(e.to_string().contains("nesting deeper than 128"), "{e}");
                assert!(decode::<Dynamic>(&open_lists).is_err());
                // Exactly the limit decodes.
                let mut ok = [6u8, 1].repeat(MAX_DEPTH);
                ok.push(0);
                assert!(decode::<Dynamic>(&ok).is_ok());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn hostile_bytes_give_errors() {
        let bad: &[&[u8]] = &[
            &[],
            &[10],                                 // no such variant
            &[0xfb, 0xff, 0xff],                   // variant number as a u16 varint
            &[4, 2, 0xff, 0xfe],                   // invalid UTF-8
            &[5, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10], // 2^60 bytes claimed
            &[8, 1, 0],                            // a pair with its value missing
            &[1, 2],                               // bool 2
            &[0, 0],                               // trailing byte
        ];
        for b in bad {
            assert!(decode::<Dynamic>(b).is_err(), "{b:?}");
        }
        // Every byte string of up to 3 bytes: Ok or Err, never a panic.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = decode::<Dynamic>(&[a, b]);
                let _ = decode::<Dynamic>(&[a, b, a ^ b]);
            }
        }
    }

    #[test]
    fn order_hash_and_eq_agree() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Dynamic| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        let vals = [
            Dynamic::None,
            false.into(),
            Dynamic::Int(1),
            Dynamic::Float(-0.0),
            Dynamic::Float(0.0),
            Dynamic::Float(1.0),
            Dynamic::Float(f64::NAN),
            "a".into(),
            Dynamic::Bytes(b"a".to_vec()),
            Dynamic::Tuple(vec![]),
            Dynamic::List(vec![]),
            Dynamic::Dict(vec![]),
            Dynamic::Pickled(vec![]),
        ];
        for (i, a) in vals.iter().enumerate() {
            for (j, b) in vals.iter().enumerate() {
                assert_eq!(a == b, i == j, "{a:?} {b:?}");
                assert_eq!(a.cmp(b), i.cmp(&j), "{a:?} {b:?}");
                if a == b {
                    assert_eq!(h(a), h(b));
                }
            }
        }
        assert_eq!(h(&Dynamic::Float(f64::NAN)), h(&Dynamic::Float(f64::NAN)));
    }

    #[test]
    fn display_is_python_repr() {
        assert_eq!(
            sample().to_string(),
            "{'none': None, 'b': True, -7: 2.5, (1, 'x'): [b'\\x00\\xff', <pickled 2 bytes>], nan: {}}"
        );
        assert_eq!(Dynamic::Tuple(vec![1.into()]).to_string(), "(1,)");
        assert_eq!(Dynamic::from("it's").to_string(), "\"it's\"");
        assert_eq!(Dynamic::Float(3.0).to_string(), "3.0");
        assert_eq!(Dynamic::Float(1e20).to_string(), "1e+20");
        assert_eq!(Dynamic::Float(1.5e-7).to_string(), "1.5e-07");
        assert_eq!(Dynamic::Float(-0.0).to_string(), "-0.0");
        assert_eq!(Dynamic::Float(0.1).to_string(), "0.1");
    }
}
