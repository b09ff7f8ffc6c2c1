//! [`ShareableList`]: CPython's `multiprocessing.shared_memory.ShareableList`, byte for
//! byte.

mod error;
mod item;
mod layout;
mod repr;

use std::fmt;

use shm_core::{Layout, Object, Segment, SegmentOptions, SharedObject};

pub use error::{IntOutOfRange, ItemTypeError, ListError, Result};
pub use item::Item;
use item::ItemRef;
use layout::{ALIGN, CODE_BYTES, CODE_NONE, CODE_PLAIN, CODE_STR, COUNT_LEN, Format};

/// A fixed-length list of `int`, `float`, `bool`, `str`, `bytes` and `None` items in a
/// named shared-memory segment, laid out exactly as CPython 3.9+ lays out its
/// `multiprocessing.shared_memory.ShareableList`: a Python process can open a list made
/// here by name, and this type opens lists that Python made, both reading and writing.
///
/// ```
/// use shm_collections::{Item, ShareableList};
/// let mut sl = ShareableList::create([
///     Item::from("howdy"), b"HoWdY".into(), (-273.154).into(), 100.into(),
///     Item::None, true.into(), 42.into(),
/// ])?;
/// assert_eq!(sl.len(), 7);
/// assert_eq!(sl.get(3)?, Item::Int(100));
/// assert_eq!(sl.at(-1)?, Item::Int(42));                  // negative: from the end
/// sl.set(3, "text")?;                                      // type changes in place
/// assert_eq!(sl.get(3)?.as_str(), Some("text"));
/// let name = sl.name().unwrap().to_owned();
/// assert_eq!(
///     sl.to_string(),
///     format!("ShareableList(['howdy', b'HoWdY', -273.154, 'text', None, True, 42], name='{name}')")
/// );
/// let other = ShareableList::open(&name)?;                 // as another process would
/// assert_eq!(other.to_vec()?, sl.to_vec()?);
/// # Ok::<(), shm_collections::ListError>(())
/// ```
///
/// # Slots keep their size
///
/// Each item owns a slot sized at creation: 8 bytes for `int`, `float`, `bool` and
/// `None`; the next multiple of 8 above the UTF-8 length for `str` and `bytes` (CPython
/// counts characters instead, which only differs for non-ASCII text and is compatible:
/// readers trust the stored offsets). [`set`](Self::set) may change an item's type, but
/// a `str` or `bytes` longer than the slot is refused with
/// [`ListError::SlotTooSmall`] and nothing is written.
///
/// # No silent data loss
///
/// CPython strips trailing NUL bytes from `str` and `bytes` items when it reads them
/// back, so `b"ab\0"` would come back as `b"ab"`. Such values are refused with
/// [`ListError::TrailingNul`], at creation and on [`set`](Self::set).
///
/// # Untrusted memory
///
/// Any process can write anything into the segment at any moment. The item count and
/// offsets are checked when the list is opened and then cached (CPython caches them
/// too; they never change after creation); every format and code is checked on every
/// access, and every access is bounds-checked. Garbage gives [`ListError::Corrupted`]
/// or [`ListError::InvalidUtf8`], never undefined behaviour, a panic or an
/// out-of-bounds read. No reference into the mapping is ever handed out: bytes are
/// copied out and then validated.
///
/// # Concurrent use
///
/// As in CPython, nothing is locked. A [`set`](Self::set) writes the item's format and
/// code (only those that change) and then its value, the value of a `str` or `bytes`
/// together with its NUL padding in one copy; a read copies the format, the code and
/// then the value.
///
/// - A write that keeps the item's type (and so its format and code) changes only the
///   value, in one copy: a reader sees the old or the new value, not the new value's
///   start over the old one's end (CPython's own writer is not as careful: `struct`
///   zero-fills the slot and then copies the value). For slots wider than the
///   processor's widest single store (16 or 32 bytes) the copies themselves are
///   several stores, so a reader racing at exactly that instant can still, rarely,
///   see a mix.
/// - A write that changes the type writes format, code and value one after the other
///   (CPython does too, and CPython readers read them one after the other), so a
///   reader racing it can see the new format with the old value: a wrong value or an
///   error.
///
/// Neither is ever undefined behaviour. Where one process reads while another
/// writes and every value must be one that was written, pair the list with a lock
/// every process takes around each access: for
/// example a process-shared mutex from `shm-sync` in a companion segment (named, say,
/// after the list with a `.lock` suffix), or on the Python side a
/// `multiprocessing.Lock` passed to the workers. Take the lock, call
/// [`get`](Self::get)/[`set`](Self::set), release it.
///
/// # Lifetime
///
/// A list made with [`create`](Self::create) owns its segment and unlinks the name when
/// dropped (use [`create_with`](Self::create_with) and
/// [`SegmentOptions::unlink_on_drop`] to keep it, or
/// [`set_unlink_on_drop`](Self::set_unlink_on_drop)); a list made with
/// [`open`](Self::open) never unlinks (unlike a Python attacher, whose resource tracker
/// does).
pub struct ShareableList {
    /// A foreign object (no header): CPython's layout from byte 0.
    obj: Object,
    /// Validated at open: the absolute start and the size of each item's slot.
    slots: Box<[Slot]>,
    /// Absolute offset of the format table.
    fmt_start: usize,
    /// Absolute offset of the back-transform codes.
    code_start: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    cap: usize,
}

impl ShareableList {
    /// Creates a list of `items` in a new segment with a random `psm_` name (as
    /// CPython's `ShareableList(items)` does); the segment is unlinked when the list
    /// drops.
    ///
    /// `items` are anything that converts into an [`Item`]; `u64`, `usize`, `i128`
    /// and the like are range-checked (see [`Item`]'s conversions).
    ///
    /// Errors: [`ListError::TrailingNul`] and [`ListError::ItemTooLarge`] for a `str`
    /// or `bytes` CPython's format cannot hold; [`ListError::IntOutOfRange`] for an
    /// integer outside `i64`; segment errors such as [`shm_core::Error::NoSpace`].
    ///
    /// ```
    /// use shm_collections::{ListError, ShareableList};
    /// let sl = ShareableList::create([1, 2, 3])?;
    /// assert!(sl.name().unwrap().starts_with("psm_"));
    /// let wide = ShareableList::create([0u64, i64::MAX as u64])?;
    /// assert_eq!(wide.get(1)?.as_int(), Some(i64::MAX));
    /// assert!(matches!(
    ///     ShareableList::create([u64::MAX]),
    ///     Err(ListError::IntOutOfRange(_))
    /// ));
    /// let empty = ShareableList::create(Vec::<i64>::new())?;
    /// assert!(empty.is_empty());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn create<I>(items: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        Self::create_with(&SegmentOptions::new(), items)
    }

    /// Creates a list of `items` under `name` (a leading `/` is optional); fails with
    /// [`shm_core::Error::AlreadyExists`] if the name is taken. Unlinked on drop.
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// let name = format!("doc-sl-create-named-{}", std::process::id());
    /// let sl = ShareableList::create_named(&name, ["a", "b"])?;
    /// assert_eq!(sl.name(), Some(name.as_str()));
    /// assert!(ShareableList::create_named(&name, ["c"]).is_err());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn create_named<I>(name: &str, items: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        Self::create_with(&SegmentOptions::new().name(name), items)
    }

    /// Creates a list of `items` in a segment made with `options` (name, page
    /// reservation, whether the list unlinks it on drop).
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// use shm_core::SegmentOptions;
    /// let sl = ShareableList::create_with(&SegmentOptions::new().unlink_on_drop(false), [1.5])?;
    /// let name = sl.name().unwrap().to_owned();
    /// drop(sl);
    /// let again = ShareableList::open(&name)?;                // it outlived its creator
    /// assert_eq!(again.get(0)?.as_float(), Some(1.5));
    /// again.unlink()?;
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn create_with<I>(options: &SegmentOptions, items: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: TryInto<Item>,
        ListError: From<<I::Item as TryInto<Item>>::Error>,
    {
        let items = items
            .into_iter()
            .map(|item| item.try_into().map_err(ListError::from))
            .collect::<Result<Vec<Item>>>()?;
        let refs: Vec<ItemRef<'_>> = items.iter().map(ItemRef::from).collect();
        let image = layout::encode(&refs)?;
        let seg = options.create(image.len())?;
        seg.write_at(0, &image)?;
        Self::from_segment(seg)
    }

    /// Opens the list in the named segment (made here or by CPython 3.9+). Never
    /// unlinks it.
    ///
    /// Errors: [`shm_core::Error::NotFound`] and other segment errors;
    /// [`ListError::Corrupted`] when the header or offsets are not a ShareableList's.
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// let sl = ShareableList::create(["x"])?;
    /// let peer = ShareableList::open(sl.name().unwrap())?;
    /// assert_eq!(peer.get(0)?.as_str(), Some("x"));
    /// assert!(ShareableList::open("doc-sl-no-such-list").is_err());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Self::from_segment(Segment::open(name)?)
    }

    /// Takes a segment that holds a list (an anonymous one a parent handed down, say)
    /// and checks its header and offsets. The segment's unlink-on-drop setting stays.
    ///
    /// ```
    /// use shm_collections::{ListError, ShareableList};
    /// let sl = ShareableList::create([7])?;
    /// let seg = shm_core::Segment::open(sl.name().unwrap())?;
    /// assert_eq!(ShareableList::from_segment(seg)?.get(0)?.as_int(), Some(7));
    /// let junk = shm_core::Segment::anonymous(8)?;              // too short for a list
    /// assert!(matches!(ShareableList::from_segment(junk), Err(ListError::Corrupted { .. })));
    /// # Ok::<(), ListError>(())
    /// ```
    pub fn from_segment(seg: Segment) -> Result<Self> {
        Self::from_object(Object::foreign(seg))
    }

    /// Checks CPython's layout in a foreign object and builds the handle.
    fn from_object(obj: Object) -> Result<Self> {
        let seg: &Segment = obj.segment();
        let name = seg.display_name().to_owned();
        let bad = |what: &str, expected: String, found: String| ListError::Corrupted {
            name: name.clone(),
            what: what.to_owned(),
            expected,
            found,
        };
        let seg_len = seg.len();
        let min = COUNT_LEN + ALIGN;
        if seg_len < min {
            return Err(bad(
                "segment length",
                format!("at least {min} bytes (an empty list)"),
                format!("{seg_len} bytes"),
            ));
        }
        let mut word = [0u8; 8];
        seg.read_at(0, &mut word)?;
        let count = i64::from_ne_bytes(word);
        // Each item needs 8 offset bytes, 8 data bytes at least, 8 format bytes, 1 code.
        let max_count = (seg_len - min) / 25;
        let n = usize::try_from(count)
            .ok()
            .filter(|&n| n <= max_count)
            .ok_or_else(|| {
                bad(
                    "item count at offset 0",
                    format!("0..={max_count} for a segment of {seg_len} bytes"),
                    count.to_string(),
                )
            })?;
        // Everything allocated here is bounded by the segment's real length (n was
        // checked against it above), never by a forged count or offset.
        let mut raw = vec![0u8; ALIGN * (n + 1)];
        seg.read_at(COUNT_LEN, &mut raw)?;
        let offset = |i: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&raw[ALIGN * i..ALIGN * (i + 1)]);
            i64::from_ne_bytes(word)
        };
        if offset(0) != 0 {
            return Err(bad("offset of item 0", "0".into(), offset(0).to_string()));
        }
        let data_start = COUNT_LEN + ALIGN * (n + 1);
        // Room for the data area: what the format table and codes leave.
        let data_room = seg_len - data_start - (ALIGN + 1) * n;
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            let (lo, hi) = (offset(i), offset(i + 1));
            let what = if i + 1 == n {
                "data size (the last offset)".to_owned()
            } else {
                format!("offset of item {}", i + 1)
            };
            // 0 <= lo <= data_room (lo is off[0] = 0 or the previous, checked, hi):
            // no overflow.
            let min_hi = lo + ALIGN as i64;
            if hi < min_hi {
                return Err(ListError::Corrupted {
                    name: name.clone(),
                    what: format!("{what} at byte {}", COUNT_LEN + ALIGN * (i + 1)),
                    expected: format!("at least {min_hi} (slots hold at least 8 bytes)"),
                    found: hi.to_string(),
                });
            }
            if hi as u64 > data_room as u64 {
                return Err(ListError::Corrupted {
                    name: name.clone(),
                    what: format!("{what} at byte {}", COUNT_LEN + ALIGN * (i + 1)),
                    expected: format!(
                        "at most {data_room} (segment of {seg_len} bytes, {n} items)"
                    ),
                    found: hi.to_string(),
                });
            }
            // Checked above: 0 <= lo < lo + 8 <= hi <= data_room.
            slots.push(Slot {
                start: data_start + lo as usize,
                cap: (hi - lo) as usize,
            });
        }
        let k = offset(n) as usize; // checked above: 0 <= off[N] <= data_room
        let fmt_start = data_start + k;
        Ok(Self {
            code_start: fmt_start + ALIGN * n,
            fmt_start,
            slots: slots.into_boxed_slice(),
            obj,
        })
    }

    #[inline]
    fn seg(&self) -> &Segment {
        self.obj.segment()
    }

    /// The segment's name, without the leading `/` (CPython's `sl.shm.name`).
    ///
    /// ```
    /// let sl = shm_collections::ShareableList::create([0])?;
    /// assert!(sl.name().unwrap().starts_with("psm_"));
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.seg().name()
    }

    /// The segment the list lives in (CPython's `sl.shm`).
    ///
    /// ```
    /// let sl = shm_collections::ShareableList::create([1, 2])?;
    /// assert_eq!(sl.segment().len(), 17 * 2 + 16 + 16);      // 17N + 16 + K
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn segment(&self) -> &Segment {
        self.obj.segment()
    }

    /// Gives the segment back (to keep it mapped without the list).
    ///
    /// ```
    /// let sl = shm_collections::ShareableList::create([1])?;
    /// let seg = sl.into_segment();
    /// assert_eq!(seg.len(), 41);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn into_segment(self) -> Segment {
        // The list never shares its object, so it holds the only handle.
        match self.obj.into_segment() {
            Ok(seg) => seg,
            Err(_) => unreachable!("a ShareableList's segment has no other handle"),
        }
    }

    /// Removes the segment's name (CPython's `sl.shm.unlink()`); open handles stay valid.
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// let sl = ShareableList::create([1])?;
    /// sl.unlink()?;
    /// assert!(ShareableList::open(sl.name().unwrap()).is_err());
    /// assert_eq!(sl.get(0)?.as_int(), Some(1));
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        Ok(self.seg().unlink()?)
    }

    /// Sets whether dropping this list unlinks its segment's name.
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// let mut sl = ShareableList::create([1])?;
    /// sl.set_unlink_on_drop(false);
    /// let name = sl.name().unwrap().to_owned();
    /// drop(sl);
    /// let mut peer = ShareableList::open(&name)?;
    /// peer.set_unlink_on_drop(true);                         // now this one cleans up
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.obj.set_unlink_on_drop(yes);
    }

    /// The number of items (fixed at creation).
    ///
    /// ```
    /// assert_eq!(shm_collections::ShareableList::create([1, 2, 3])?.len(), 3);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list has no items.
    ///
    /// ```
    /// assert!(!shm_collections::ShareableList::create([1])?.is_empty());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The capacity in bytes of item `index`'s slot: the longest `str` or `bytes` it
    /// can take.
    ///
    /// ```
    /// let sl = shm_collections::ShareableList::create([Item::from(1), "abcdefgh".into()])?;
    /// # use shm_collections::Item;
    /// assert_eq!(sl.slot_capacity(0)?, 8);
    /// assert_eq!(sl.slot_capacity(1)?, 16);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn slot_capacity(&self, index: usize) -> Result<usize> {
        Ok(self.slot(index)?.cap.min(layout::MAX_FORMAT_N))
    }

    /// The item at `index` (Python's `sl[index]` for `index >= 0`).
    ///
    /// Errors: [`ListError::IndexOutOfRange`]; [`ListError::Corrupted`] or
    /// [`ListError::InvalidUtf8`] when the stored item is not valid.
    ///
    /// ```
    /// use shm_collections::{Item, ListError, ShareableList};
    /// let sl = ShareableList::create([Item::from(1), 2.5.into(), "x".into()])?;
    /// assert_eq!(sl.get(1)?, Item::Float(2.5));
    /// assert!(matches!(sl.get(3), Err(ListError::IndexOutOfRange { index: 3, len: 3, .. })));
    /// # Ok::<(), ListError>(())
    /// ```
    #[inline(always)]
    pub fn get(&self, index: usize) -> Result<Item> {
        let slot = self.slot(index)?;
        let (raw_fmt, code) = self.read_meta(index)?;
        // Fast path: int, float and bool, without parsing the format.
        if code == CODE_PLAIN {
            // Compared as words: a match on `[u8; 8]` patterns compares byte by byte.
            let word = u64::from_ne_bytes(raw_fmt);
            let kind = if word == u64::from_ne_bytes(layout::FMT_INT) {
                Format::Int
            } else if word == u64::from_ne_bytes(layout::FMT_FLOAT) {
                Format::Float
            } else if word == u64::from_ne_bytes(layout::FMT_BOOL) {
                Format::Bool
            } else {
                return self.get_slow(index, slot, raw_fmt, code);
            };
            let v = read_array::<8>(&self.obj, slot.start)?;
            return Ok(match kind {
                Format::Int => Item::Int(i64::from_ne_bytes(v)),
                Format::Float => Item::Float(f64::from_ne_bytes(v)),
                _ => Item::Bool(v[7] != 0),
            });
        }
        self.get_slow(index, slot, raw_fmt, code)
    }

    /// [`get`](Self::get) for str, bytes, None and unusual format/code pairs.
    #[inline(never)]
    fn get_slow(&self, index: usize, slot: Slot, raw_fmt: [u8; 8], code: i8) -> Result<Item> {
        match layout::parse_format(raw_fmt) {
            Some(Format::Blob(n)) => {
                self.check_blob_fmt(index, slot, raw_fmt, n)?;
                match code {
                    CODE_NONE => Ok(Item::None),
                    CODE_STR => {
                        let mut buf = Vec::new();
                        self.read_blob(slot, n, true, &mut buf)?;
                        String::from_utf8(buf)
                            .map(Item::Str)
                            .map_err(|_| self.invalid_utf8(index))
                    }
                    CODE_BYTES | CODE_PLAIN => {
                        let mut buf = Vec::new();
                        self.read_blob(slot, n, code == CODE_BYTES, &mut buf)?;
                        Ok(Item::Bytes(buf))
                    }
                    _ => Err(self.bad_code(index, raw_fmt, code)),
                }
            }
            Some(format) => {
                let v = read_array::<8>(&self.obj, slot.start)?;
                match (code, format) {
                    (CODE_NONE, _) => Ok(Item::None),
                    (CODE_PLAIN, Format::Int) => Ok(Item::Int(i64::from_ne_bytes(v))),
                    (CODE_PLAIN, Format::Float) => Ok(Item::Float(f64::from_ne_bytes(v))),
                    (CODE_PLAIN, Format::Bool) => Ok(Item::Bool(v[7] != 0)),
                    (CODE_PLAIN, Format::None) => Ok(Item::Bool(v[6] != 0)),
                    _ => Err(self.bad_code(index, raw_fmt, code)),
                }
            }
            None => Err(self.bad_format(index, raw_fmt)),
        }
    }

    /// The item `index` counts from the end when negative: `-1` is the last item
    /// (Python's `sl[index]`, without CPython's bug that reads the format table for
    /// `-len - 1`).
    ///
    /// ```
    /// use shm_collections::{ListError, ShareableList};
    /// let sl = ShareableList::create([10, 20, 30])?;
    /// assert_eq!(sl.at(-1)?.as_int(), Some(30));
    /// assert_eq!(sl.at(-3)?.as_int(), Some(10));
    /// assert_eq!(sl.at(0)?.as_int(), Some(10));
    /// assert!(matches!(sl.at(-4), Err(ListError::IndexOutOfRange { index: -4, len: 3, .. })));
    /// # Ok::<(), ListError>(())
    /// ```
    pub fn at(&self, index: isize) -> Result<Item> {
        self.get(self.resolve(index)?)
    }

    /// Copies the `str` item at `index` into `buf` (replacing its contents), reusing
    /// its allocation.
    ///
    /// Errors: [`ListError::TypeMismatch`] when the item is not a `str`, and those of
    /// [`get`](Self::get).
    ///
    /// ```
    /// use shm_collections::{Item, ShareableList};
    /// let sl = ShareableList::create([Item::from("howdy"), 5.into()])?;
    /// let mut s = String::with_capacity(64);
    /// sl.get_str_into(0, &mut s)?;
    /// assert_eq!(s, "howdy");
    /// assert!(sl.get_str_into(1, &mut s).is_err());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn get_str_into(&self, index: usize, buf: &mut String) -> Result<()> {
        let mut bytes = std::mem::take(buf).into_bytes();
        if let Err(e) = self.read_blob_into(index, CODE_STR, &mut bytes) {
            bytes.clear();
            *buf = String::from_utf8(bytes).unwrap_or_default();
            return Err(e);
        }
        match String::from_utf8(bytes) {
            Ok(s) => {
                *buf = s;
                Ok(())
            }
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.clear();
                *buf = String::from_utf8(bytes).unwrap_or_default();
                Err(self.invalid_utf8(index))
            }
        }
    }

    /// Copies the `bytes` item at `index` into `buf` (replacing its contents), reusing
    /// its allocation.
    ///
    /// Errors: [`ListError::TypeMismatch`] when the item is not `bytes`, and those of
    /// [`get`](Self::get).
    ///
    /// ```
    /// use shm_collections::ShareableList;
    /// let sl = ShareableList::create([&b"HoWdY"[..]])?;
    /// let mut b = Vec::new();
    /// sl.get_bytes_into(0, &mut b)?;
    /// assert_eq!(b, b"HoWdY");
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn get_bytes_into(&self, index: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.read_blob_into(index, CODE_BYTES, buf)
    }

    /// Replaces the item at `index` (Python's `sl[index] = value`), possibly changing
    /// its type; the slot keeps its size.
    ///
    /// `value` is anything that converts into an [`Item`]: integers of up to 32 bits
    /// and `i64` always, `u64`, `usize`, `isize`, `i128` and `u128` only within `i64`
    /// (CPython's `q` format).
    ///
    /// Errors (nothing is written): [`ListError::IndexOutOfRange`];
    /// [`ListError::IntOutOfRange`] for an integer outside `i64` (CPython's
    /// `struct.error`); [`ListError::SlotTooSmall`] for a
    /// `str`/`bytes` longer than the slot; [`ListError::TrailingNul`] for one ending
    /// in NUL.
    ///
    /// A `str` or `bytes` is written with its NUL padding in one copy, so a process
    /// reading the item meanwhile sees the old or the new value rather than the new
    /// value's start over the old one's end (see "Concurrent use" above for what
    /// remains).
    ///
    /// ```
    /// use shm_collections::{Item, ListError, ShareableList};
    /// let mut sl = ShareableList::create([Item::from(1), "abcdefgh".into()])?;
    /// sl.set(0, 2.5)?;
    /// sl.set(1, b"0123456789abcdef".to_vec())?;               // fills the 16-byte slot
    /// sl.set(0, None::<i64>)?;
    /// assert_eq!(sl.to_vec()?, [Item::None, Item::Bytes(b"0123456789abcdef".to_vec())]);
    /// assert!(sl.set(1, "0123456789abcdefg").is_err());        // 17 bytes
    /// assert!(sl.set(1, "ab\0").is_err());                     // would lose its NUL
    /// sl.set(0, i64::MAX as u64)?;                             // u64 within i64: fine
    /// assert!(matches!(sl.set(0, i64::MAX as u64 + 1), Err(ListError::IntOutOfRange(_))));
    /// assert!(matches!(sl.set(0, i128::MIN), Err(ListError::IntOutOfRange(_))));
    /// assert_eq!(sl.get(0)?, Item::Int(i64::MAX));            // nothing was written
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    #[inline]
    pub fn set<V>(&self, index: usize, value: V) -> Result<()>
    where
        V: TryInto<Item>,
        ListError: From<V::Error>,
    {
        let value = value.try_into()?;
        self.write(index, ItemRef::from(&value))
    }

    /// [`set`](Self::set) with `index` counted from the end when negative.
    ///
    /// ```
    /// let mut sl = shm_collections::ShareableList::create([1, 2, 3])?;
    /// sl.set_at(-1, 30)?;
    /// assert_eq!(sl.get(2)?.as_int(), Some(30));
    /// assert!(sl.set_at(-4, 0).is_err());
    /// assert!(sl.set_at(-1, u128::MAX).is_err());
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn set_at<V>(&self, index: isize, value: V) -> Result<()>
    where
        V: TryInto<Item>,
        ListError: From<V::Error>,
    {
        let index = self.resolve(index)?;
        self.set(index, value)
    }

    /// [`set`](Self::set) of a `str` without allocating.
    ///
    /// ```
    /// let mut sl = shm_collections::ShareableList::create(["howdy"])?;
    /// sl.set_str(0, "hi")?;
    /// assert_eq!(sl.get(0)?.as_str(), Some("hi"));
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn set_str(&self, index: usize, value: &str) -> Result<()> {
        self.write(index, ItemRef::Str(value))
    }

    /// [`set`](Self::set) of `bytes` without allocating.
    ///
    /// ```
    /// let mut sl = shm_collections::ShareableList::create([0])?;
    /// sl.set_bytes(0, b"raw")?;
    /// assert_eq!(sl.get(0)?.as_bytes(), Some(&b"raw"[..]));
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn set_bytes(&self, index: usize, value: &[u8]) -> Result<()> {
        self.write(index, ItemRef::Bytes(value))
    }

    /// The items in order, each read when the iterator reaches it.
    ///
    /// ```
    /// let sl = shm_collections::ShareableList::create([1, 2, 3])?;
    /// let sum: i64 = sl.iter().map(|item| item.unwrap().as_int().unwrap()).sum();
    /// assert_eq!(sum, 6);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            next: 0,
        }
    }

    /// All items (Python's `list(sl)`).
    ///
    /// ```
    /// use shm_collections::{Item, ShareableList};
    /// let sl = ShareableList::create([Item::from(true), Item::None])?;
    /// assert_eq!(sl.to_vec()?, [Item::Bool(true), Item::None]);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        self.iter().collect()
    }

    /// How many items equal `value` under Python's `==` (see [`Item::py_eq`]:
    /// `1`, `1.0` and `True` are equal).
    ///
    /// ```
    /// use shm_collections::{Item, ShareableList};
    /// let sl = ShareableList::create([Item::from(1), 1.0.into(), true.into(), "1".into()])?;
    /// assert_eq!(sl.count(1)?, 3);
    /// assert_eq!(sl.count("1")?, 1);
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn count(&self, value: impl Into<Item>) -> Result<usize> {
        let value = value.into();
        let mut n = 0;
        for item in self {
            n += usize::from(item?.py_eq(&value));
        }
        Ok(n)
    }

    /// The index of the first item equal to `value` under Python's `==`.
    ///
    /// Errors: [`ListError::ValueNotFound`] (Python's `ValueError`) when none is.
    ///
    /// ```
    /// use shm_collections::{ListError, ShareableList};
    /// let sl = ShareableList::create(["a", "b", "b"])?;
    /// assert_eq!(sl.index("b")?, 1);
    /// assert!(matches!(sl.index("c"), Err(ListError::ValueNotFound { .. })));
    /// # Ok::<(), ListError>(())
    /// ```
    pub fn index(&self, value: impl Into<Item>) -> Result<usize> {
        let value = value.into();
        for (i, item) in self.iter().enumerate() {
            if item?.py_eq(&value) {
                return Ok(i);
            }
        }
        Err(ListError::ValueNotFound {
            name: self.seg().display_name().to_owned(),
            value: value.to_string(),
        })
    }

    /// The items' `struct` formats joined (CPython's `sl.format`).
    ///
    /// ```
    /// use shm_collections::{Item, ShareableList};
    /// let sl = ShareableList::create([Item::from("howdy"), 1.5.into(), 1.into(), Item::None, true.into()])?;
    /// assert_eq!(sl.format()?, "8sdqxxxxxx?xxxxxxxx?");
    /// # Ok::<(), shm_collections::ListError>(())
    /// ```
    pub fn format(&self) -> Result<String> {
        let mut out = String::new();
        for index in 0..self.len() {
            let (raw, _) = self.read_meta(index)?;
            if layout::parse_format(raw).is_none() {
                return Err(self.bad_format(index, raw));
            }
            let text_len = raw.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            out.extend(raw[..text_len].iter().map(|&b| char::from(b)));
        }
        Ok(out)
    }

    // ---- internals ----

    #[inline]
    fn slot(&self, index: usize) -> Result<Slot> {
        match self.slots.get(index) {
            Some(slot) => Ok(*slot),
            None => Err(self.out_of_range(isize::try_from(index).unwrap_or(isize::MAX))),
        }
    }

    fn resolve(&self, index: isize) -> Result<usize> {
        let len = self.len();
        let resolved = if index < 0 {
            len.checked_sub(index.unsigned_abs())
        } else {
            Some(index.unsigned_abs())
        };
        match resolved {
            Some(i) if i < len => Ok(i),
            _ => Err(self.out_of_range(index)),
        }
    }

    #[cold]
    fn out_of_range(&self, index: isize) -> ListError {
        ListError::IndexOutOfRange {
            name: self.seg().display_name().to_owned(),
            index,
            len: self.len(),
        }
    }

    /// The stored format and code of item `index` (`index < len`).
    #[inline]
    fn read_meta(&self, index: usize) -> Result<([u8; 8], i8)> {
        let fmt = read_array::<8>(&self.obj, self.fmt_start + ALIGN * index)?;
        let [code] = read_array::<1>(&self.obj, self.code_start + index)?;
        Ok((fmt, code as i8))
    }

    fn check_blob_fmt(&self, index: usize, slot: Slot, raw: [u8; 8], n: usize) -> Result<()> {
        if n > slot.cap {
            return Err(ListError::Corrupted {
                name: self.seg().display_name().to_owned(),
                what: format!("format of item {index}"),
                expected: format!("'<n>s' with n at most the slot size {}", slot.cap),
                found: layout::show_format(raw),
            });
        }
        Ok(())
    }

    /// Reads `n` bytes of a blob slot into `buf`, stripping trailing NULs if asked.
    fn read_blob(&self, slot: Slot, n: usize, strip: bool, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.resize(n, 0);
        self.obj.read_at(slot.start, buf)?;
        if strip {
            let keep = buf.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            buf.truncate(keep);
        }
        Ok(())
    }

    /// Reads a str (`want == CODE_STR`, not UTF-8-checked here) or bytes item.
    fn read_blob_into(&self, index: usize, want: i8, buf: &mut Vec<u8>) -> Result<()> {
        let slot = self.slot(index)?;
        let (raw, code) = self.read_meta(index)?;
        let format = layout::parse_format(raw).ok_or_else(|| self.bad_format(index, raw))?;
        let found = match (format, code) {
            (Format::Blob(n), c) if c == want => {
                self.check_blob_fmt(index, slot, raw, n)?;
                return self.read_blob(slot, n, true, buf);
            }
            (_, CODE_NONE) => "NoneType",
            (Format::Blob(_), CODE_STR) => "str",
            (Format::Blob(_), CODE_BYTES | CODE_PLAIN) => "bytes",
            (Format::Int, CODE_PLAIN) => "int",
            (Format::Float, CODE_PLAIN) => "float",
            (Format::Bool | Format::None, CODE_PLAIN) => "bool",
            _ => return Err(self.bad_code(index, raw, code)),
        };
        Err(ListError::TypeMismatch {
            name: self.seg().display_name().to_owned(),
            index,
            expected: if want == CODE_STR { "str" } else { "bytes" },
            found,
        })
    }

    #[inline]
    fn write(&self, index: usize, value: ItemRef<'_>) -> Result<()> {
        let slot = self.slot(index)?;
        if let Some((format, code, data)) = layout::encode_fixed(value) {
            // CPython's order: format and code first, then the value (8 bytes, one
            // copy; the rest of a larger slot keeps its bytes, as in CPython). Format
            // and code are written without looking at them first: rewriting the same
            // bytes changes nothing a reader can see, and saves two reads.
            let obj = &self.obj;
            obj.write_at(self.fmt_start + ALIGN * index, &format)?;
            obj.write_at(self.code_start + index, &[code as u8])?;
            obj.write_at(slot.start, &data)?;
            return Ok(());
        }
        let current = self.read_meta(index)?;
        let Some((bytes, kind)) = value.as_blob() else {
            return Ok(());
        };
        layout::check_blob(index, bytes, kind)?;
        let capacity = slot.cap.min(layout::MAX_FORMAT_N);
        if bytes.len() > capacity {
            return Err(self.slot_too_small(index, capacity, bytes.len()));
        }
        // Keep an existing `<n>s` format (as CPython does) when the value fits it;
        // otherwise (CPython would truncate the value) use the whole slot.
        let (n, format) = match layout::parse_format(current.0) {
            Some(Format::Blob(n)) if bytes.len() <= n && n <= capacity => (n, current.0),
            _ => (capacity, layout::blob_format(capacity)),
        };
        let code = if kind == "str" { CODE_STR } else { CODE_BYTES };
        // The value and its NUL padding (struct's `<n>s`) go out in ONE copy: written
        // as two, a reader between them would see the new value's start over the old
        // value's end, a value nobody wrote. `n` is at most the slot size, which the
        // offsets checked at open bound by the segment's length.
        let mut small = [0u8; 128];
        let mut large = Vec::new();
        let padded: &mut [u8] = if n <= small.len() {
            &mut small[..n]
        } else {
            large.resize(n, 0);
            &mut large
        };
        padded[..bytes.len()].copy_from_slice(bytes);
        self.write_meta(index, current, format, code)?;
        Ok(self.obj.write_at(slot.start, padded)?)
    }

    /// Writes item `index`'s format and code, each only if it changes: a same-type
    /// write then leaves both untouched, and a reader never sees them move.
    #[inline]
    fn write_meta(
        &self,
        index: usize,
        (old_format, old_code): ([u8; 8], i8),
        format: [u8; 8],
        code: i8,
    ) -> Result<()> {
        if old_format != format {
            self.seg()
                .write_at(self.fmt_start + ALIGN * index, &format)?;
        }
        if old_code != code {
            self.seg()
                .write_at(self.code_start + index, &[code as u8])?;
        }
        Ok(())
    }

    #[cold]
    fn slot_too_small(&self, index: usize, capacity: usize, needed: usize) -> ListError {
        ListError::SlotTooSmall {
            name: self.seg().display_name().to_owned(),
            index,
            capacity,
            needed,
        }
    }

    #[cold]
    fn bad_format(&self, index: usize, raw: [u8; 8]) -> ListError {
        ListError::Corrupted {
            name: self.seg().display_name().to_owned(),
            what: format!(
                "format of item {index} at byte {}",
                self.fmt_start + ALIGN * index
            ),
            expected: "'q', 'd', 'xxxxxxx?', 'xxxxxx?x' or '<n>s'".to_owned(),
            found: layout::show_format(raw),
        }
    }

    #[cold]
    fn bad_code(&self, index: usize, raw: [u8; 8], code: i8) -> ListError {
        let expected = match layout::parse_format(raw) {
            Some(Format::Blob(_)) => "0, 1, 2 or 3 for a '<n>s' format",
            _ => "0 or 3 for a fixed-size format",
        };
        ListError::Corrupted {
            name: self.seg().display_name().to_owned(),
            what: format!(
                "back-transform code of item {index} (format {}) at byte {}",
                layout::show_format(raw),
                self.code_start + index
            ),
            expected: expected.to_owned(),
            found: code.to_string(),
        }
    }

    #[cold]
    fn invalid_utf8(&self, index: usize) -> ListError {
        ListError::InvalidUtf8 {
            name: self.seg().display_name().to_owned(),
            index,
        }
    }
}

/// Iterator over a [`ShareableList`]'s items, each a `Result` (see
/// [`ShareableList::iter`]).
///
/// ```
/// let sl = shm_collections::ShareableList::create(["a", "b"])?;
/// let mut it = sl.iter();
/// assert_eq!(it.len(), 2);
/// assert_eq!(it.next().unwrap()?.as_str(), Some("a"));
/// # Ok::<(), shm_collections::ListError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    list: &'a ShareableList,
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.list.len() {
            return None;
        }
        let item = self.list.get(self.next);
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ShareableList {
    type Item = Result<Item>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl fmt::Display for ShareableList {
    /// CPython's repr: `ShareableList(['howdy', 42], name='psm_...')`; an item that
    /// cannot be read shows as `<error: ...>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareableList([")?;
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match item {
                Ok(item) => write!(f, "{item}")?,
                Err(e) => write!(f, "<error: {e}>")?,
            }
        }
        f.write_str("], name=")?;
        match self.name() {
            Some(name) => repr::write_str(f, name)?,
            None => f.write_str("None")?,
        }
        f.write_str(")")
    }
}

impl fmt::Debug for ShareableList {
    /// Same as `Display`: CPython's repr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Copies `N` bytes at `offset` out of the segment (bounds-checked).
#[inline(always)]
fn read_array<const N: usize>(seg: &Object, offset: usize) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    seg.read_at(offset, &mut out)?;
    Ok(out)
}

/// The object model's lifecycle for CPython's format: a foreign object (no header), so
/// generic code (a manager, a test helper) creates, opens and hands on lists like any
/// other kind. `Init` is the list's items.
///
/// ```
/// use shm_collections::{Item, ShareableList};
/// use shm_core::SharedObject;
/// let sl = <ShareableList as SharedObject>::anonymous(vec![Item::Int(1), Item::from("a")])?;
/// assert_eq!(sl.name(), None);
/// assert_eq!(sl.get(1)?, Item::from("a"));
/// # Ok::<(), shm_collections::ListError>(())
/// ```
impl SharedObject for ShareableList {
    type Error = ListError;
    type Init = Vec<Item>;

    fn layout() -> Layout {
        Layout::Foreign("CPython ShareableList")
    }

    fn payload_len(items: &Vec<Item>) -> Result<usize> {
        let refs: Vec<ItemRef<'_>> = items.iter().map(ItemRef::from).collect();
        Ok(layout::encode(&refs)?.len())
    }

    fn init_payload(object: &Object, items: Vec<Item>) -> Result<()> {
        let refs: Vec<ItemRef<'_>> = items.iter().map(ItemRef::from).collect();
        Ok(object.write_at(0, &layout::encode(&refs)?)?)
    }

    fn attach(object: Object) -> Result<Self> {
        Self::from_object(object)
    }

    fn object(&self) -> &Object {
        &self.obj
    }

    fn object_mut(&mut self) -> &mut Object {
        &mut self.obj
    }
}
