//! ShareableList in one process: CPython's golden byte vectors, operations, repr,
//! and every error path (including a corrupted or truncated segment).

use shm_collections::{Item, ListError, ShareableList};
use shm_core::Segment;
use shm_core::testing::{UnlinkGuard, unique_name};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes_of(sl: &ShareableList) -> Vec<u8> {
    let mut buf = vec![0; sl.segment().len()];
    sl.segment().read_at(0, &mut buf).unwrap();
    buf
}

fn items(v: &[Item]) -> Vec<Item> {
    v.to_vec()
}

/// The golden vectors of /work/shared/cpython-shareablelist.md, byte for byte.
#[test]
fn golden_vectors() {
    let cases: Vec<(Vec<Item>, usize, String)> = vec![
        (vec![], 16, "00000000000000000000000000000000".into()),
        (
            vec![Item::Int(1)],
            41,
            "0100000000000000 0000000000000000 0800000000000000 0100000000000000 7100000000000000 00"
                .into(),
        ),
        (
            items(&[true.into(), false.into(), Item::None]),
            91,
            "0300000000000000 0000000000000000 0800000000000000 1000000000000000 1800000000000000
             0000000000000001 0000000000000000 0000000000000000
             787878787878783f 787878787878783f 7878787878783f78
             000003"
                .into(),
        ),
        (
            items(&[(-1).into(), i64::MAX.into(), i64::MIN.into()]),
            91,
            "0300000000000000 0000000000000000 0800000000000000 1000000000000000 1800000000000000
             ffffffffffffffff ffffffffffffff7f 0000000000000080
             7100000000000000 7100000000000000 7100000000000000
             000000"
                .into(),
        ),
        (
            items(&[1.5.into(), f64::INFINITY.into()]),
            66,
            "0200000000000000 0000000000000000 0800000000000000 1000000000000000
             000000000000f83f 000000000000f07f
             6400000000000000 6400000000000000
             0000"
                .into(),
        ),
        (
            items(&["".into(), "a".into(), "abcdefgh".into(), b"\x00\x01".into()]),
            124,
            "0400000000000000 0000000000000000 0800000000000000 1000000000000000 2000000000000000 2800000000000000
             0000000000000000 6100000000000000 6162636465666768 0000000000000000 0001000000000000
             3873000000000000 3873000000000000 3136730000000000 3873000000000000
             01010102"
                .into(),
        ),
        (
            items(&[
                "howdy".into(),
                b"HoWdY".into(),
                (-273.154).into(),
                100.into(),
                Item::None,
                true.into(),
                42.into(),
            ]),
            191,
            "0700000000000000 0000000000000000 0800000000000000 1000000000000000 1800000000000000
             2000000000000000 2800000000000000 3000000000000000 3800000000000000
             686f776479000000 486f576459000000 5839b4c8761271c0 6400000000000000 0000000000000000
             0000000000000001 2a00000000000000
             3873000000000000 3873000000000000 6400000000000000 7100000000000000 7878787878783f78
             787878787878783f 7100000000000000
             01020000030000"
                .into(),
        ),
    ];
    for (items, size, golden) in cases {
        let sl = ShareableList::create(items.clone()).unwrap();
        assert_eq!(sl.segment().len(), size, "{items:?}");
        assert_eq!(bytes_of(&sl), hex(&golden), "{items:?}");
        assert_eq!(sl.to_vec().unwrap(), items);
        let peer = ShareableList::open(sl.name().unwrap()).unwrap();
        assert_eq!(peer.to_vec().unwrap(), items);
    }
    let sl = ShareableList::create(cpython_doc_items()).unwrap();
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
}

/// The items of the example in CPython's `ShareableList` documentation.
fn cpython_doc_items() -> [Item; 7] {
    [
        Item::from("howdy"),
        b"HoWdY".into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
    ]
}

#[test]
fn repr_matches_cpython() {
    let sl = ShareableList::create(cpython_doc_items()).unwrap();
    let name = sl.name().unwrap();
    let want =
        format!("ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42], name='{name}')");
    assert_eq!(sl.to_string(), want);
    assert_eq!(format!("{sl:?}"), want);
    let sl = ShareableList::create([1.0, 1e16, 1e-5, f64::NAN, f64::NEG_INFINITY, -0.0]).unwrap();
    assert!(
        sl.to_string()
            .starts_with("ShareableList([1.0, 1e+16, 1e-05, nan, -inf, -0.0], name='psm_")
    );
}

#[test]
fn get_set_negative_index_count_index() {
    let sl = ShareableList::create([1, 2, 3, 2]).unwrap();
    assert_eq!(sl.len(), 4);
    assert_eq!(sl.at(-1).unwrap(), Item::Int(2));
    assert_eq!(sl.at(-4).unwrap(), Item::Int(1));
    assert_eq!(sl.at(3).unwrap(), Item::Int(2));
    for bad in [-5isize, 4, isize::MIN, isize::MAX] {
        match sl.at(bad) {
            Err(ListError::IndexOutOfRange { index, len: 4, .. }) => assert_eq!(index, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(
        sl.get(usize::MAX),
        Err(ListError::IndexOutOfRange { len: 4, .. })
    ));
    assert!(matches!(
        sl.set(4, 1),
        Err(ListError::IndexOutOfRange { index: 4, .. })
    ));
    sl.set_at(-1, 2.0).unwrap();
    assert_eq!(sl.count(2).unwrap(), 2);
    assert_eq!(sl.index(2.0).unwrap(), 1);
    assert_eq!(sl.index(3).unwrap(), 2);
    assert!(matches!(sl.index(9), Err(ListError::ValueNotFound { .. })));
    sl.set(0, true).unwrap();
    assert_eq!(sl.count(1).unwrap(), 1);
    assert_eq!(sl.index(true).unwrap(), 0);
    let err = sl.at(-9).unwrap_err().to_string();
    assert!(
        err.contains("-9") && err.contains(sl.name().unwrap()),
        "{err}"
    );
}

#[test]
fn type_changes_in_place_follow_cpython() {
    let sl = ShareableList::create([Item::from("abcdefghij"), 5.into(), "xy".into()]).unwrap();
    // A str slot of 16 bytes takes an int: format `q`, code 0, value in the first 8
    // bytes, the rest of the slot keeps its old bytes.
    sl.set(0, 7).unwrap();
    let raw = bytes_of(&sl);
    let d = 8 * (3 + 2);
    assert_eq!(&raw[d..d + 8], &7i64.to_ne_bytes());
    assert_eq!(&raw[d + 8..d + 16], b"ij\0\0\0\0\0\0");
    assert_eq!(sl.get(0).unwrap(), Item::Int(7));
    // Back to str: no `<n>s` format is stored, so the slot's size is used.
    sl.set(0, "new").unwrap();
    let raw = bytes_of(&sl);
    assert_eq!(&raw[d..d + 16], b"new\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let f = d + 32;
    assert_eq!(&raw[f..f + 8], b"16s\0\0\0\0\0");
    // An int slot takes a str up to 8 bytes, bytes, None, bool, float.
    sl.set(1, "12345678").unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::from("12345678"));
    sl.set(1, b"\x01\x02".to_vec()).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::from(vec![1u8, 2]));
    sl.set(1, ()).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::None);
    sl.set(1, false).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::Bool(false));
    sl.set(1, 0.25f32).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::Float(0.25));
    sl.set_str(2, "").unwrap();
    assert_eq!(sl.get(2).unwrap(), Item::from(""));
    sl.set_bytes(2, b"").unwrap();
    assert_eq!(sl.get(2).unwrap(), Item::Bytes(vec![]));
    assert_eq!(sl.format().unwrap(), "16sd8s");
}

#[test]
fn slot_too_small_and_trailing_nul_write_nothing() {
    let sl = ShareableList::create([Item::from("abc"), 1.into(), "é".into()]).unwrap();
    let before = bytes_of(&sl);
    match sl.set(0, "123456789") {
        Err(ListError::SlotTooSmall {
            index: 0,
            capacity: 8,
            needed: 9,
            name,
        }) => assert_eq!(name, sl.name().unwrap()),
        other => panic!("{other:?}"),
    }
    let msg = sl.set(1, vec![7u8; 20]).unwrap_err().to_string();
    assert!(
        msg.contains("at most 8 bytes") && msg.contains("needs 20"),
        "{msg}"
    );
    // UTF-8 length counts: 5 two-byte characters need 10 bytes.
    assert!(matches!(
        sl.set(2, "ééééé"),
        Err(ListError::SlotTooSmall { needed: 10, .. })
    ));
    assert!(matches!(
        sl.set(0, "a\0"),
        Err(ListError::TrailingNul {
            index: 0,
            kind: "str"
        })
    ));
    assert!(matches!(
        sl.set_bytes(0, b"\0"),
        Err(ListError::TrailingNul {
            index: 0,
            kind: "bytes"
        })
    ));
    assert_eq!(bytes_of(&sl), before);
    // Interior NULs are kept.
    sl.set_bytes(0, b"a\0b").unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::from(&b"a\0b"[..]));
    assert!(matches!(
        ShareableList::create([b"x\0".to_vec()]),
        Err(ListError::TrailingNul { index: 0, .. })
    ));
    assert!(matches!(
        ShareableList::create([Item::from(1), "\0".into()]),
        Err(ListError::TrailingNul { index: 1, .. })
    ));
}

#[test]
fn item_size_limit() {
    let big = vec![b'a'; 9_999_991];
    let sl = ShareableList::create([big.clone()]).unwrap();
    assert_eq!(sl.slot_capacity(0).unwrap(), 9_999_992);
    assert_eq!(sl.format().unwrap(), "9999992s");
    assert_eq!(sl.get(0).unwrap(), Item::Bytes(big));
    assert!(matches!(
        ShareableList::create([vec![b'a'; 9_999_992]]),
        Err(ListError::ItemTooLarge {
            len: 9_999_992,
            max: 9_999_991,
            ..
        })
    ));
}

#[test]
fn str_and_bytes_into_buffers() {
    let sl = ShareableList::create([Item::from("howdy"), b"raw".into(), 3.into()]).unwrap();
    let mut s = String::from("old contents");
    sl.get_str_into(0, &mut s).unwrap();
    assert_eq!(s, "howdy");
    assert!(matches!(
        sl.get_str_into(1, &mut s),
        Err(ListError::TypeMismatch {
            expected: "str",
            found: "bytes",
            ..
        })
    ));
    assert!(s.is_empty());
    let mut b = Vec::new();
    sl.get_bytes_into(1, &mut b).unwrap();
    assert_eq!(b, b"raw");
    assert!(matches!(
        sl.get_bytes_into(2, &mut b),
        Err(ListError::TypeMismatch { found: "int", .. })
    ));
    assert!(matches!(
        sl.get_bytes_into(3, &mut b),
        Err(ListError::IndexOutOfRange { .. })
    ));
}

#[test]
fn named_create_open_and_ownership() {
    let name = unique_name("sl-named");
    let _guard = UnlinkGuard::new(&name);
    let sl = ShareableList::create_named(&name, ["a"]).unwrap();
    assert!(matches!(
        ShareableList::create_named(&name, ["b"]),
        Err(ListError::Shm(shm_core::Error::AlreadyExists { .. }))
    ));
    let peer = ShareableList::open(&format!("/{name}")).unwrap();
    drop(peer); // an opener never unlinks
    assert!(ShareableList::open(&name).is_ok());
    drop(sl); // the creator does
    assert!(matches!(
        ShareableList::open(&name),
        Err(ListError::Shm(shm_core::Error::NotFound { .. }))
    ));
}

// ---- corruption: the layout is untrusted input ----

/// A list of [1, 'abc', None] and a raw handle on its segment to corrupt it with.
fn victim() -> (ShareableList, Segment, UnlinkGuard) {
    let name = unique_name("sl-corrupt");
    let guard = UnlinkGuard::new(&name);
    let sl = ShareableList::create_named(&name, [Item::from(1), "abc".into(), Item::None]).unwrap();
    let raw = Segment::open(&name).unwrap();
    (sl, raw, guard)
}

const N: usize = 3;
const D: usize = 8 * (N + 2);
const F: usize = D + 24;
const C: usize = F + 8 * N;

fn corrupted(r: Result<impl std::fmt::Debug, ListError>) -> String {
    match r {
        Err(e @ ListError::Corrupted { .. }) => e.to_string(),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn corrupted_count() {
    for bad in [-1i64, 4, 1 << 40, i64::MAX, i64::MIN] {
        let (sl, raw, _g) = victim();
        raw.write_at(0, &bad.to_ne_bytes()).unwrap();
        let msg = corrupted(ShareableList::open(sl.name().unwrap()));
        assert!(
            msg.contains("item count") && msg.contains(&bad.to_string()),
            "{msg}"
        );
        assert!(msg.contains(sl.name().unwrap()), "{msg}");
        // A handle opened before keeps its validated header and still works.
        assert_eq!(sl.get(0).unwrap(), Item::Int(1));
    }
    // A smaller count is a valid (shorter) list only if the offsets fit; here the
    // segment is then too long, which is allowed (only shorter is an error).
    let (sl, raw, _g) = victim();
    raw.write_at(0, &0i64.to_ne_bytes()).unwrap();
    assert!(ShareableList::open(sl.name().unwrap()).unwrap().is_empty());
}

#[test]
fn corrupted_offsets() {
    let cases: &[(usize, i64, &str)] = &[
        (8, 8, "offset of item 0"),   // off[0] != 0
        (16, 4, "offset of item 1"),  // slot smaller than 8
        (24, 8, "offset of item 2"),  // not increasing
        (24, -8, "offset of item 2"), // negative
        (32, 1 << 20, "data size"),   // past the end
        (32, i64::MAX, "data size"),  // overflow bait
        (16, i64::MIN, "offset of item 1"),
        (24, i64::MIN, "offset of item 2"), // overflow bait after a positive one
        (24, i64::MAX, "offset of item 2"),
    ];
    for &(at, value, what) in cases {
        let (sl, raw, _g) = victim();
        raw.write_at(at, &value.to_ne_bytes()).unwrap();
        let msg = corrupted(ShareableList::open(sl.name().unwrap()));
        assert!(msg.contains(what), "{at}={value}: {msg}");
    }
}

#[test]
fn truncated_segments() {
    for len in [1usize, 8, 15] {
        let seg = Segment::anonymous(len).unwrap();
        let msg = corrupted(ShareableList::from_segment(seg));
        assert!(msg.contains("segment length"), "{msg}");
    }
    // A real list's bytes in a segment one byte too short.
    let sl = ShareableList::create([Item::from(1), "abc".into(), Item::None]).unwrap();
    let full = bytes_of(&sl);
    let short = Segment::anonymous(full.len() - 1).unwrap();
    short.write_at(0, &full[..full.len() - 1]).unwrap();
    corrupted(ShareableList::from_segment(short));
    // Longer than needed (macOS rounds to pages) is fine.
    let long = Segment::anonymous(full.len() + 100).unwrap();
    long.write_at(0, &full).unwrap();
    let list = ShareableList::from_segment(long).unwrap();
    assert_eq!(list.to_vec().unwrap(), sl.to_vec().unwrap());
    assert_eq!(
        list.to_string(),
        "ShareableList([1, 'abc', None], name=None)"
    );
}

#[test]
fn corrupted_formats_and_codes_after_open() {
    let (sl, raw, _g) = victim();
    let bad_formats: &[&[u8; 8]] = &[
        b"\0\0\0\0\0\0\0\0",
        b"i\0\0\0\0\0\0\0",
        b"q\0q\0\0\0\0\0",
        b"xxxxxxxx",
        b"\xff\xfe\0\0\0\0\0\0",
        b"08s\0\0\0\0\0",
    ];
    for fmt in bad_formats {
        raw.write_at(F, *fmt).unwrap();
        let msg = corrupted(sl.get(0));
        assert!(msg.contains("format of item 0"), "{msg}");
        corrupted(sl.format());
        assert!(sl.to_string().contains("<error: "));
    }
    // `<n>s` larger than the slot would read the next slot (CPython does): refused.
    raw.write_at(F + 8, b"16s\0\0\0\0\0").unwrap();
    let msg = corrupted(sl.get(1));
    assert!(
        msg.contains("slot size 8") && msg.contains("'16s'"),
        "{msg}"
    );
    corrupted(sl.get_str_into(1, &mut String::new()));
    // Bad codes.
    raw.write_at(F + 8, b"8s\0\0\0\0\0\0").unwrap();
    for code in [4u8, 0x80, 0xff] {
        raw.write_at(C + 1, &[code]).unwrap();
        let msg = corrupted(sl.get(1));
        assert!(msg.contains("back-transform code of item 1"), "{msg}");
    }
    raw.write_at(F, b"q\0\0\0\0\0\0\0").unwrap();
    for code in [1u8, 2] {
        raw.write_at(C, &[code]).unwrap();
        corrupted(sl.get(0));
    }
    // A set repairs the item (it overwrites format and code).
    sl.set(0, 5).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Int(5));
    raw.write_at(F + 8, b"garbage!").unwrap();
    sl.set(1, "ok").unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::from("ok"));
}

#[test]
fn invalid_utf8_is_an_error() {
    let (sl, raw, _g) = victim();
    raw.write_at(D + 8, b"ab\xffcd").unwrap();
    assert!(matches!(
        sl.get(1),
        Err(ListError::InvalidUtf8 { index: 1, .. })
    ));
    let mut s = String::from("x");
    assert!(matches!(
        sl.get_str_into(1, &mut s),
        Err(ListError::InvalidUtf8 { .. })
    ));
    // As bytes (code 2) the same slot reads fine.
    raw.write_at(C + 1, &[2]).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"ab\xffcd"[..]));
}

#[test]
fn cpython_code_and_format_combinations() {
    // What CPython returns for format/code pairs it never writes itself.
    let (sl, raw, _g) = victim();
    // `<n>s` with code 0: the raw bytes, padding included.
    raw.write_at(C + 1, &[0]).unwrap();
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"abc\0\0\0\0\0"[..]));
    // Any format with code 3 is None.
    raw.write_at(C, &[3]).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::None);
    // The None format with code 0 unpacks its `?` byte: a bool.
    raw.write_at(C + 2, &[0]).unwrap();
    assert_eq!(sl.get(2).unwrap(), Item::Bool(false));
    raw.write_at(D + 16 + 6, &[1]).unwrap();
    assert_eq!(sl.get(2).unwrap(), Item::Bool(true));
    // A bool byte other than 1 is True, as struct's `?` reads it.
    raw.write_at(F, b"xxxxxxx?").unwrap();
    raw.write_at(C, &[0]).unwrap();
    raw.write_at(D, &[0, 0, 0, 0, 0, 0, 0, 7]).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Bool(true));
}

#[test]
fn garbage_never_panics() {
    // Random bytes over every part of the layout: only Ok or typed errors.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..1000 {
        let (sl, raw, _g) = victim();
        let len = raw.len();
        for _ in 0..(rnd() % 6 + 1) {
            let at = (rnd() % len as u64) as usize;
            if rnd() % 2 == 0 && at + 8 <= len {
                // A whole word: extreme counts and offsets.
                let word = match rnd() % 4 {
                    0 => rnd(),
                    1 => rnd() % 64,
                    2 => u64::MAX - rnd() % 64,
                    _ => (1 << 63) + rnd() % 64,
                };
                raw.write_at(at & !7, &word.to_ne_bytes()).unwrap();
            } else {
                raw.write_at(at, &[rnd() as u8]).unwrap();
            }
        }
        let _ = sl.to_vec();
        let _ = sl.to_string();
        if let Ok(again) = ShareableList::open(sl.name().unwrap()) {
            let _ = again.to_vec();
            let _ = again.format();
        }
    }
}

#[test]
fn set_keeps_a_short_blob_format_only_when_the_value_fits_it() {
    // A 16-byte slot whose stored format says `8s` (CPython never writes this, another
    // writer might): values up to 8 bytes keep `8s`, as CPython does; a longer value
    // (which CPython would silently truncate to 8 bytes) gets `16s`.
    let list = ShareableList::create([Item::from("0123456789"), 1.into()]).unwrap();
    let seg = Segment::open(list.name().unwrap()).unwrap();
    let list = list;
    let f = 8 * (2 + 2) + 24;
    seg.write_at(f, b"8s\0\0\0\0\0\0").unwrap();
    list.set(0, "short").unwrap();
    let mut fmt = [0u8; 8];
    seg.read_at(f, &mut fmt).unwrap();
    assert_eq!(&fmt, b"8s\0\0\0\0\0\0");
    list.set(0, "twelve bytes").unwrap();
    seg.read_at(f, &mut fmt).unwrap();
    assert_eq!(&fmt, b"16s\0\0\0\0\0");
    assert_eq!(list.get(0).unwrap(), Item::from("twelve bytes"));
}
