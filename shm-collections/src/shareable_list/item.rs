//! [`Item`]: one value of a [`ShareableList`](super::ShareableList).

use std::fmt;

use super::repr;

/// One value of a [`ShareableList`](super::ShareableList): the six types CPython's
/// `ShareableList` stores.
///
/// `Display` prints Python's `repr` of the value (`'howdy'`, `b'HoWdY'`, `-273.154`,
/// `None`, `True`); `Debug` prints the Rust enum. `From` converts the Rust types:
/// integers up to 32 bits and `i64` to [`Item::Int`], `f32`/`f64` to [`Item::Float`],
/// `bool`, `&str`/`String`/`char` to [`Item::Str`], `&[u8]`/`Vec<u8>`/`[u8; N]` to
/// [`Item::Bytes`], `()` and `Option::None` to [`Item::None`].
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
