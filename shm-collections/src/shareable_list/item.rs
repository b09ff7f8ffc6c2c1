//! [`Item`]: one value of a [`ShareableList`](super::ShareableList).

use std::fmt;

use super::error::{IntOutOfRange, ItemTypeError};
use super::repr;

/// One value of a [`ShareableList`](super::ShareableList): the six types CPython's
/// `ShareableList` stores.
///
/// `Display` prints Python's `repr` of the value (`'howdy'`, `b'HoWdY'`, `-273.154`,
/// `None`, `True`); `Debug` prints the Rust enum.
///
/// # Conversions
///
/// `From` converts the Rust types that always fit: `i8`..`i64` and `u8`..`u32` to
/// [`Item::Int`], `f32`/`f64` to [`Item::Float`], `bool`, `&str`/`String`/`char` to
/// [`Item::Str`], `&[u8]`/`Vec<u8>`/`[u8; N]` to [`Item::Bytes`], `()` and
/// `Option::None` to [`Item::None`]. `u64`, `usize`, `isize`, `i128` and `u128` may
/// not fit CPython's signed 64-bit `q` format: they convert with `TryFrom`, which
/// refuses values outside `i64::MIN..=i64::MAX` with [`IntOutOfRange`] (CPython's
/// `struct.error`).
///
/// Back: `TryFrom<Item>` (and `TryFrom<&Item>`) into `i64`, `f64`, `bool`, `String`,
/// `Vec<u8>` (and `&str`, `&[u8]` from `&Item`), failing with [`ItemTypeError`] when
/// the item holds another type. They are strict: a `bool` item is not an `i64`.
///
/// ```
/// use shm_collections::Item;
/// assert_eq!(Item::from(42), Item::Int(42));
/// assert_eq!(Item::from("hi"), Item::Str("hi".into()));
/// assert_eq!(Item::from(&b"hi"[..]), Item::Bytes(b"hi".to_vec()));
/// assert_eq!(Item::from(None::<i64>), Item::None);
/// assert_eq!(Item::from(Some(1.5)).to_string(), "1.5");
/// assert_eq!(Item::from(true).to_string(), "True");
/// assert_eq!(Item::from("it's").to_string(), r#""it's""#);
/// assert_eq!(Item::try_from(i64::MAX as u64), Ok(Item::Int(i64::MAX)));
/// assert!(Item::try_from(i64::MAX as u64 + 1).is_err());
/// assert_eq!(i64::try_from(Item::Int(7)), Ok(7));
/// assert!(String::try_from(Item::Int(7)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Python `int` (64-bit: CPython's format is `q`).
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `bool`.
    Bool(bool),
    /// Python `str`, stored as UTF-8.
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
    /// Python `None`.
    None,
}

impl Item {
    /// The Python name of the item's type: `int`, `float`, `bool`, `str`, `bytes`,
    /// `NoneType`.
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::from(2.5).type_name(), "float");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Item::Int(_) => "int",
            Item::Float(_) => "float",
            Item::Bool(_) => "bool",
            Item::Str(_) => "str",
            Item::Bytes(_) => "bytes",
            Item::None => "NoneType",
        }
    }

    /// The integer, if this is an [`Item::Int`].
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::Int(7).as_int(), Some(7));
    /// assert_eq!(shm_collections::Item::Bool(true).as_int(), None);
    /// ```
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Item::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The float, if this is an [`Item::Float`].
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::Float(0.5).as_float(), Some(0.5));
    /// ```
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Item::Float(v) => Some(v),
            _ => None,
        }
    }

    /// The bool, if this is an [`Item::Bool`].
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::Bool(true).as_bool(), Some(true));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Item::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The text, if this is an [`Item::Str`].
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::from("x").as_str(), Some("x"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes, if this is an [`Item::Bytes`].
    ///
    /// ```
    /// assert_eq!(shm_collections::Item::from(vec![1u8]).as_bytes(), Some(&[1u8][..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Item::Bytes(v) => Some(v),
            _ => None,
        }
    }

    /// Whether this is [`Item::None`].
    ///
    /// ```
    /// assert!(shm_collections::Item::None.is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        matches!(self, Item::None)
    }

    /// Python's `==`: numbers compare by value across `int`, `float` and `bool`
    /// (`1 == 1.0 == True`), exactly (no rounding); `str`, `bytes` and `None` equal only
    /// their own type. This is the equality [`ShareableList::count`] and
    /// [`ShareableList::index`] use, as CPython's do.
    ///
    /// [`ShareableList::count`]: super::ShareableList::count
    /// [`ShareableList::index`]: super::ShareableList::index
    ///
    /// ```
    /// use shm_collections::Item;
    /// assert!(Item::Int(1).py_eq(&Item::Float(1.0)));
    /// assert!(Item::Bool(true).py_eq(&Item::Int(1)));
    /// assert!(!Item::Int(i64::MAX).py_eq(&Item::Float(i64::MAX as f64)));
    /// assert!(!Item::from("1").py_eq(&Item::Int(1)));
    /// ```
    pub fn py_eq(&self, other: &Item) -> bool {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => a.eq(b),
            (None, None) => match (self, other) {
                (Item::Str(a), Item::Str(b)) => a == b,
                (Item::Bytes(a), Item::Bytes(b)) => a == b,
                (Item::None, Item::None) => true,
                _ => false,
            },
            _ => false,
        }
    }

    fn number(&self) -> Option<Number> {
        match *self {
            Item::Int(v) => Some(Number::Int(v)),
            Item::Bool(v) => Some(Number::Int(v.into())),
            Item::Float(v) => Some(Number::Float(v)),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn eq(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                // Exact, as Python compares: every i64 and every float in this range
                // converts to i128 without rounding.
                f.is_finite()
                    && f.fract() == 0.0
                    && (-9.3e18..9.3e18).contains(&f)
                    && f as i128 == i128::from(i)
            }
        }
    }
}

impl fmt::Display for Item {
    /// Python's `repr` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(v) => write!(f, "{v}"),
            Item::Float(v) => repr::write_float(f, *v),
            Item::Bool(true) => f.write_str("True"),
            Item::Bool(false) => f.write_str("False"),
            Item::Str(s) => repr::write_str(f, s),
            Item::Bytes(b) => repr::write_bytes(f, b),
            Item::None => f.write_str("None"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Item {
            fn from(v: $t) -> Self {
                Item::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! try_from_int {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for Item {
            type Error = IntOutOfRange;

            /// [`Item::Int`] when the value fits CPython's `q` format (`i64`), else
            /// [`IntOutOfRange`].
            fn try_from(v: $t) -> Result<Self, IntOutOfRange> {
                i64::try_from(v)
                    .map(Item::Int)
                    .map_err(|_| IntOutOfRange::new(v, stringify!($t)))
            }
        }
    )*};
}
try_from_int!(u64, usize, isize, i128, u128);

impl From<f64> for Item {
    fn from(v: f64) -> Self {
        Item::Float(v)
    }
}

impl From<f32> for Item {
    fn from(v: f32) -> Self {
        Item::Float(f64::from(v))
    }
}

impl From<bool> for Item {
    fn from(v: bool) -> Self {
        Item::Bool(v)
    }
}

impl From<&str> for Item {
    fn from(v: &str) -> Self {
        Item::Str(v.to_owned())
    }
}

impl From<String> for Item {
    fn from(v: String) -> Self {
        Item::Str(v)
    }
}

impl From<&String> for Item {
    fn from(v: &String) -> Self {
        Item::Str(v.clone())
    }
}

impl From<char> for Item {
    fn from(v: char) -> Self {
        Item::Str(v.to_string())
    }
}

impl From<&[u8]> for Item {
    fn from(v: &[u8]) -> Self {
        Item::Bytes(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Item {
    fn from(v: [u8; N]) -> Self {
        Item::Bytes(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Item {
    fn from(v: &[u8; N]) -> Self {
        Item::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Self {
        Item::Bytes(v)
    }
}

impl From<()> for Item {
    fn from((): ()) -> Self {
        Item::None
    }
}

impl<T: Into<Item>> From<Option<T>> for Item {
    fn from(v: Option<T>) -> Self {
        v.map_or(Item::None, Into::into)
    }
}

impl From<&Item> for Item {
    fn from(v: &Item) -> Self {
        v.clone()
    }
}

/// The `TryFrom<Item>` and `TryFrom<&Item>` conversions into `$t`, taking the value
/// out of variant `$variant` (Python type `$py`).
macro_rules! item_into {
    ($t:ty, $variant:ident, $py:literal, |$v:ident| $owned:expr, |$r:ident| $borrowed:expr) => {
        impl TryFrom<Item> for $t {
            type Error = ItemTypeError;

            fn try_from(item: Item) -> Result<Self, ItemTypeError> {
                match item {
                    Item::$variant($v) => Ok($owned),
                    other => Err(ItemTypeError {
                        expected: $py,
                        found: other.type_name(),
                    }),
                }
            }
        }

        impl TryFrom<&Item> for $t {
            type Error = ItemTypeError;

            fn try_from(item: &Item) -> Result<Self, ItemTypeError> {
                match item {
                    Item::$variant($r) => Ok($borrowed),
                    other => Err(ItemTypeError {
                        expected: $py,
                        found: other.type_name(),
                    }),
                }
            }
        }
    };
}
item_into!(i64, Int, "int", |v| v, |v| *v);
item_into!(f64, Float, "float", |v| v, |v| *v);
item_into!(bool, Bool, "bool", |v| v, |v| *v);
item_into!(String, Str, "str", |v| v, |v| v.clone());
item_into!(Vec<u8>, Bytes, "bytes", |v| v, |v| v.clone());

impl<'a> TryFrom<&'a Item> for &'a str {
    type Error = ItemTypeError;

    fn try_from(item: &'a Item) -> Result<Self, ItemTypeError> {
        item.as_str().ok_or(ItemTypeError {
            expected: "str",
            found: item.type_name(),
        })
    }
}

impl<'a> TryFrom<&'a Item> for &'a [u8] {
    type Error = ItemTypeError;

    fn try_from(item: &'a Item) -> Result<Self, ItemTypeError> {
        item.as_bytes().ok_or(ItemTypeError {
            expected: "bytes",
            found: item.type_name(),
        })
    }
}

/// A borrowed item: what a write needs, without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ItemRef<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
    Bytes(&'a [u8]),
    None,
}

impl<'a> From<&'a Item> for ItemRef<'a> {
    fn from(v: &'a Item) -> Self {
        match v {
            Item::Int(v) => ItemRef::Int(*v),
            Item::Float(v) => ItemRef::Float(*v),
            Item::Bool(v) => ItemRef::Bool(*v),
            Item::Str(v) => ItemRef::Str(v),
            Item::Bytes(v) => ItemRef::Bytes(v),
            Item::None => ItemRef::None,
        }
    }
}

impl ItemRef<'_> {
    /// The encoded bytes and type name of a str or bytes value.
    pub(crate) fn as_blob(&self) -> Option<(&[u8], &'static str)> {
        match *self {
            ItemRef::Str(s) => Some((s.as_bytes(), "str")),
            ItemRef::Bytes(b) => Some((b, "bytes")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_ints_convert_within_the_q_range() {
        assert_eq!(Item::try_from(i64::MAX as u64), Ok(Item::Int(i64::MAX)));
        assert_eq!(Item::try_from(0u64), Ok(Item::Int(0)));
        let err = Item::try_from(i64::MAX as u64 + 1).unwrap_err();
        assert_eq!(
            (err.value(), err.type_name()),
            ("9223372036854775808", "u64")
        );
        assert!(
            err.to_string()
                .contains("-9223372036854775808..=9223372036854775807")
        );
        assert_eq!(Item::try_from(i64::MAX as usize), Ok(Item::Int(i64::MAX)));
        assert!(Item::try_from(usize::MAX).is_err());
        assert_eq!(Item::try_from(isize::MIN), Ok(Item::Int(i64::MIN)));
        assert_eq!(
            Item::try_from(i128::from(i64::MIN)),
            Ok(Item::Int(i64::MIN))
        );
        assert_eq!(
            Item::try_from(i128::from(i64::MAX)),
            Ok(Item::Int(i64::MAX))
        );
        assert!(Item::try_from(i128::from(i64::MIN) - 1).is_err());
        assert!(Item::try_from(i128::from(i64::MAX) + 1).is_err());
        let err = Item::try_from(i128::MIN).unwrap_err();
        assert_eq!(err.value(), i128::MIN.to_string());
        assert_eq!(err.type_name(), "i128");
        assert!(Item::try_from(i128::MAX).is_err());
        assert_eq!(Item::try_from(i64::MAX as u128), Ok(Item::Int(i64::MAX)));
        assert!(Item::try_from(i64::MAX as u128 + 1).is_err());
        assert_eq!(
            Item::try_from(u128::MAX).unwrap_err().value(),
            u128::MAX.to_string()
        );
    }

    #[test]
    fn narrow_types_convert_infallibly() {
        assert_eq!(Item::from(i8::MIN), Item::Int(-128));
        assert_eq!(Item::from(i16::MAX), Item::Int(32767));
        assert_eq!(Item::from(i32::MIN), Item::Int(i64::from(i32::MIN)));
        assert_eq!(Item::from(i64::MIN), Item::Int(i64::MIN));
        assert_eq!(Item::from(u8::MAX), Item::Int(255));
        assert_eq!(Item::from(u16::MAX), Item::Int(65535));
        assert_eq!(Item::from(u32::MAX), Item::Int(4_294_967_295));
        assert_eq!(Item::from(1.5f32), Item::Float(1.5));
        assert_eq!(
            Item::from(f64::NEG_INFINITY),
            Item::Float(f64::NEG_INFINITY)
        );
        assert_eq!(Item::from(false), Item::Bool(false));
        assert_eq!(Item::from(String::from("s")), Item::Str("s".into()));
        assert_eq!(Item::from(&[1u8, 2][..]), Item::Bytes(vec![1, 2]));
        assert_eq!(Item::from(vec![3u8]), Item::Bytes(vec![3]));
        assert_eq!(Item::from(()), Item::None);
        assert_eq!(Item::from(None::<&str>), Item::None);
        assert_eq!(Item::from(Some(3u8)), Item::Int(3));
        // Infallible conversions also pass a `TryInto` bound (as `set`'s).
        fn via_try_into<V: TryInto<Item>>(v: V) -> Result<Item, V::Error> {
            v.try_into()
        }
        assert_eq!(via_try_into(5i32), Ok(Item::Int(5)));
        assert_eq!(via_try_into("s"), Ok(Item::from("s")));
    }

    #[test]
    fn items_convert_back_strictly() {
        assert_eq!(i64::try_from(Item::Int(i64::MIN)), Ok(i64::MIN));
        assert_eq!(f64::try_from(Item::Float(-0.5)), Ok(-0.5));
        assert_eq!(bool::try_from(Item::Bool(true)), Ok(true));
        assert_eq!(String::try_from(Item::from("é")), Ok("é".to_owned()));
        assert_eq!(
            Vec::<u8>::try_from(Item::from(&b"\x00x"[..])),
            Ok(b"\x00x".to_vec())
        );
        let cases: [(Item, &str); 6] = [
            (Item::Int(1), "int"),
            (Item::Float(1.0), "float"),
            (Item::Bool(true), "bool"),
            (Item::from("1"), "str"),
            (Item::from(&b"1"[..]), "bytes"),
            (Item::None, "NoneType"),
        ];
        for (item, found) in &cases {
            let mismatch = |expected| ItemTypeError { expected, found };
            if *found != "int" {
                assert_eq!(i64::try_from(item.clone()), Err(mismatch("int")));
                assert_eq!(i64::try_from(item), Err(mismatch("int")));
            }
            if *found != "float" {
                assert_eq!(f64::try_from(item.clone()), Err(mismatch("float")));
                assert_eq!(f64::try_from(item), Err(mismatch("float")));
            }
            if *found != "bool" {
                assert_eq!(bool::try_from(item.clone()), Err(mismatch("bool")));
                assert_eq!(bool::try_from(item), Err(mismatch("bool")));
            }
            if *found != "str" {
                assert_eq!(String::try_from(item.clone()), Err(mismatch("str")));
                assert_eq!(<&str>::try_from(item), Err(mismatch("str")));
            }
            if *found != "bytes" {
                assert_eq!(Vec::<u8>::try_from(item.clone()), Err(mismatch("bytes")));
                assert_eq!(<&[u8]>::try_from(item), Err(mismatch("bytes")));
            }
        }
        let s = Item::from("borrowed");
        assert_eq!(<&str>::try_from(&s), Ok("borrowed"));
        assert_eq!(String::try_from(&s), Ok("borrowed".to_owned()));
        let b = Item::from(&b"raw"[..]);
        assert_eq!(<&[u8]>::try_from(&b), Ok(&b"raw"[..]));
        assert_eq!(Vec::<u8>::try_from(&b), Ok(b"raw".to_vec()));
        assert_eq!(i64::try_from(&Item::Int(9)), Ok(9));
        assert_eq!(
            f64::try_from(Item::Int(1)).unwrap_err().to_string(),
            "expected a ShareableList item of type float, found int"
        );
    }
}
