//! Hostile memory: forged counts, offsets, formats, codes and data, written into a real
//! list's segment before it is opened and while it is open. Every operation must
//! return `Ok` or a typed layout error: no panic, no out-of-bounds offset (which the
//! segment would report as `ListError::Shm`), no allocation sized by a forged
//! value, and bounded time.
//!
//! This binary counts the largest single allocation each thread makes, to check that
//! a forged item count of 2^40 or a forged `9999999s` format allocates nothing of the
//! kind.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use shm_collections::{Item, ListError, ShareableList};
use shm_core::Segment;

/// The system allocator, noting the largest allocation of the current thread.
struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `note` only updates a thread-local `Cell` (const-initialised,
// no destructor, so it never allocates itself).
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees on `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees on `layout`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees on `ptr`, `layout`, `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees on `ptr` and `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs `f`, returning its result and the largest single allocation it made.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    PEAK.with(|p| p.set(0));
    let r = f();
    (r, PEAK.with(Cell::get))
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = shm_core::testing::Rng::seeded(seed);
    move || rng.next_u64()
}

/// Every item type, short and long blobs.
fn victim_items() -> Vec<Item> {
    vec![
        1.into(),
        "abc".into(),
        Item::None,
        2.5.into(),
        true.into(),
        b"xy".into(),
        "a".repeat(20).into(),
        (-7).into(),
    ]
}

/// Where the header fields of a list of `items` lie.
struct Fields {
    n: usize,
    fmt_start: usize,
    code_start: usize,
    len: usize,
}

fn fields(image: &[u8], n: usize) -> Fields {
    let off_n = 8 * (n + 1);
    let k = i64::from_ne_bytes(image[off_n..off_n + 8].try_into().unwrap()) as usize;
    let fmt_start = 8 * (n + 2) + k;
    Fields {
        n,
        fmt_start,
        code_start: fmt_start + 8 * n,
        len: image.len(),
    }
}

/// The adversarial 8-byte words for counts and offsets.
fn bad_word(rnd: &mut impl FnMut() -> u64, f: &Fields, current: i64) -> i64 {
    let len = f.len as i64;
    match rnd() % 16 {
        0 => 0,
        1 => -1,
        2 => i64::MAX,
        3 => i64::MIN,
        4 => 1 << 40,
        5 => 1 << 62,
        6 => len,
        7 => len + 8,
        8 => len - 1,
        9 => current + 1,
        10 => current - 8,
        11 => current + 8,
        12 => (f.n as i64) + (rnd() % 4) as i64 - 2,
        13 => rnd() as i64 % 64,
        14 => -((rnd() % 64) as i64),
        _ => rnd() as i64,
    }
}

/// The adversarial formats.
fn bad_format(rnd: &mut impl FnMut() -> u64) -> [u8; 8] {
    let named: [&[u8; 8]; 16] = [
        b"9999999s",
        b"9999992s",
        b"0s\0\0\0\0\0\0",
        b"1s\0\0\0\0\0\0",
        b"8s\0\0\0\0\0\0",
        b"16s\0\0\0\0\0",
        b"24s\0\0\0\0\0",
        b"q\0\0\0\0\0\0\0",
        b"d\0\0\0\0\0\0\0",
        b"xxxxxxx?",
        b"xxxxxx?x",
        b"\0\0\0\0\0\0\0\0",
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
        b"99999999",
        b"s\0\0\0\0\0\0\0",
        b"-8s\0\0\0\0\0",
    ];
    match rnd() % 3 {
        0 => rnd().to_ne_bytes(),
        _ => *named[(rnd() % named.len() as u64) as usize],
    }
}

fn bad_code(rnd: &mut impl FnMut() -> u64) -> u8 {
    [0u8, 1, 2, 3, 4, 0x7f, 0x80, 0xff, rnd() as u8][(rnd() % 9) as usize]
}

/// One forged write: (offset, bytes, what) over the pristine layout `f`.
fn mutation(rnd: &mut impl FnMut() -> u64, f: &Fields, image: &[u8]) -> (usize, Vec<u8>, String) {
    let word_at = |at: usize| i64::from_ne_bytes(image[at..at + 8].try_into().unwrap());
    match rnd() % 6 {
        0 => {
            let v = bad_word(rnd, f, word_at(0));
            (0, v.to_ne_bytes().to_vec(), format!("count = {v}"))
        }
        1 => {
            let i = (rnd() % (f.n as u64 + 1)) as usize;
            let at = 8 * (i + 1);
            let v = bad_word(rnd, f, word_at(at));
            (at, v.to_ne_bytes().to_vec(), format!("off[{i}] = {v}"))
        }
        2 => {
            let i = (rnd() % f.n as u64) as usize;
            let v = bad_format(rnd);
            let what = format!("format[{i}] = {:?}", v.escape_ascii().to_string());
            (f.fmt_start + 8 * i, v.to_vec(), what)
        }
        3 => {
            let i = (rnd() % f.n as u64) as usize;
            let v = bad_code(rnd);
            (f.code_start + i, vec![v], format!("code[{i}] = {v}"))
        }
        4 => {
            let at = (rnd() % f.len as u64) as usize;
            let v = rnd() as u8;
            (at, vec![v], format!("byte {at} = {v}"))
        }
        _ => {
            let at = (rnd() % (f.len as u64 - 7)) as usize & !7;
            let v = bad_word(rnd, f, word_at(at));
            (at, v.to_ne_bytes().to_vec(), format!("word {at} = {v}"))
        }
    }
}

/// Only layout errors and type errors are acceptable; a `Segment` error would mean an
/// offset computed from forged data was used unchecked.
fn check_err(e: &ListError, op: &str, what: &str) {
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(
        matches!(
            e,
            ListError::Corrupted { .. }
                | ListError::InvalidUtf8 { .. }
                | ListError::TypeMismatch { .. }
                | ListError::IndexOutOfRange { .. }
                | ListError::SlotTooSmall { .. }
                | ListError::ValueNotFound { .. }
        ),
        "{op} after {what}: unexpected error {e:?}"
    );
}

fn ok_or_typed<T>(r: Result<T, ListError>, op: &str, what: &str) {
    if let Err(e) = r {
        check_err(&e, op, what);
    }
}

/// Every read and write the list offers, on every item.
fn exercise(sl: &mut ShareableList, what: &str) {
    let n = sl.len();
    ok_or_typed(sl.to_vec(), "to_vec", what);
    ok_or_typed(sl.format(), "format", what);
    assert!(sl.to_string().starts_with("ShareableList(["));
    let _ = format!("{sl:?}");
    ok_or_typed(sl.count(1), "count", what);
    ok_or_typed(sl.index("abc"), "index", what);
    assert_eq!(sl.iter().count(), n);
    let (mut s, mut b) = (String::new(), Vec::new());
    for i in 0..n {
        ok_or_typed(sl.get(i), "get", what);
        ok_or_typed(sl.at(-(i as isize) - 1), "at", what);
        ok_or_typed(sl.get_str_into(i, &mut s), "get_str_into", what);
        ok_or_typed(sl.get_bytes_into(i, &mut b), "get_bytes_into", what);
        let cap = sl.slot_capacity(i).unwrap();
        assert!(
            cap >= 8 && cap <= sl.segment().len(),
            "{what}: capacity {cap}"
        );
    }
    for i in 0..n {
        ok_or_typed(sl.set(i, "abc"), "set str", what);
        ok_or_typed(sl.get(i), "get after set str", what);
        ok_or_typed(sl.set_bytes(i, b"bytes"), "set bytes", what);
        ok_or_typed(sl.set(i, 5), "set int", what);
        // A set rewrites format and code: the item reads back whatever was forged.
        assert_eq!(sl.get(i).unwrap(), Item::Int(5), "{what}");
    }
    assert!(sl.get(n).is_err());
}

/// Opens `seg` and exercises the list, inside `catch_unwind`, checking time and the
/// largest allocation.
fn open_and_exercise(seg: Segment, what: &str, forge_after_open: &[(usize, Vec<u8>)]) {
    let len = seg.len();
    let start = Instant::now();
    let (outcome, peak) = peak_of(|| {
        catch_unwind(AssertUnwindSafe(|| {
            match ShareableList::from_segment(seg) {
                Ok(mut sl) => {
                    for (at, bytes) in forge_after_open {
                        sl.segment().write_at(*at, bytes).unwrap();
                    }
                    exercise(&mut sl, what);
                }
                Err(e) => check_err(&e, "open", what),
            }
        }))
    });
    assert!(outcome.is_ok(), "panic after {what}");
    // Generous: a debug build, 2 shared cores. A hang or a loop over a forged count
    // would take far longer.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{what}: took {:?}",
        start.elapsed()
    );
    // Everything may be proportional to the real segment (a repr is up to 4 bytes per
    // byte), nothing to a forged count or length.
    assert!(
        peak <= 8 * len + 4096,
        "{what}: an allocation of {peak} bytes for a {len}-byte segment"
    );
}

fn anonymous_with(image: &[u8], len: usize) -> Segment {
    let seg = Segment::anonymous(len).unwrap();
    let n = image.len().min(len);
    seg.write_at(0, &image[..n]).unwrap();
    seg
}

#[test]
fn forged_header_fields_give_typed_errors_only() {
    let items = victim_items();
    let template = ShareableList::create(items.clone()).unwrap();
    let mut image = vec![0u8; template.segment().len()];
    template.segment().read_at(0, &mut image).unwrap();
    let f = fields(&image, items.len());
    let mut rnd = xorshift(0x5eed_1234_abcd_0042);
    let mut opened_ok = 0;
    for round in 0..1500 {
        let forged: Vec<(usize, Vec<u8>, String)> = (0..1 + rnd() % 4)
            .map(|_| mutation(&mut rnd, &f, &image))
            .collect();
        let what: Vec<&str> = forged.iter().map(|(_, _, w)| w.as_str()).collect();
        let what = format!("round {round}: {}", what.join(", "));
        // Forged before open, sometimes in a segment of another length too.
        let len = match rnd() % 8 {
            0 => f.len - 1 - (rnd() % 16) as usize,
            1 => f.len + (rnd() % 64) as usize,
            _ => f.len,
        };
        let seg = anonymous_with(&image, len);
        for (at, bytes, _) in &forged {
            if at + bytes.len() <= len {
                seg.write_at(*at, bytes).unwrap();
            }
        }
        if ShareableList::from_segment(anonymous_with(&image, len)).is_ok() {
            opened_ok += 1;
        }
        open_and_exercise(seg, &format!("{what} (len {len}, before open)"), &[]);
        // Forged while open: the validated header is cached, formats and codes and
        // data are read anew.
        let after: Vec<(usize, Vec<u8>)> = forged.into_iter().map(|(a, b, _)| (a, b)).collect();
        open_and_exercise(
            anonymous_with(&image, f.len),
            &format!("{what} (after open)"),
            &after,
        );
    }
    assert!(
        opened_ok > 0,
        "no round opened at all: the test only saw errors"
    );
}

#[test]
fn forged_huge_count_allocates_nothing_of_its_size() {
    let template = ShareableList::create(victim_items()).unwrap();
    let mut image = vec![0u8; template.segment().len()];
    template.segment().read_at(0, &mut image).unwrap();
    for count in [1i64 << 40, 1 << 32, i64::MAX, u32::MAX as i64, -1] {
        let seg = anonymous_with(&image, image.len());
        seg.write_at(0, &count.to_ne_bytes()).unwrap();
        let (r, peak) = peak_of(|| ShareableList::from_segment(seg).map(|_| ()));
        let msg = match r {
            Err(e @ ListError::Corrupted { .. }) => e.to_string(),
            other => panic!("count {count}: expected Corrupted, got {other:?}"),
        };
        assert!(
            msg.contains("item count") && msg.contains(&count.to_string()),
            "{msg}"
        );
        assert!(peak < 4096, "count {count}: allocated {peak} bytes");
    }
    // A 1 MiB segment claiming as many items as could fit: the offsets are read (in
    // proportion to the real segment), found wrong, and reported.
    let len = 1 << 20;
    let seg = Segment::anonymous(len).unwrap();
    let count = ((len - 16) / 25) as i64;
    seg.write_at(0, &count.to_ne_bytes()).unwrap();
    let (r, peak) = peak_of(|| ShareableList::from_segment(seg).map(|_| ()));
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("offset of item 1"), "{msg}");
    assert!(
        peak <= len,
        "allocated {peak} bytes for a {len}-byte segment"
    );
}

#[test]
fn forged_blob_format_allocates_nothing_of_its_size() {
    let sl = ShareableList::create(["abc"]).unwrap();
    let f = 8 * 3 + 8;
    for forged in [b"9999999s", b"9999992s", b"1000000s"] {
        sl.segment().write_at(f, forged).unwrap();
        let (r, peak) = peak_of(|| sl.get(0));
        let msg = match r {
            Err(e @ ListError::Corrupted { .. }) => e.to_string(),
            other => panic!("expected Corrupted, got {other:?}"),
        };
        assert!(msg.contains("slot size 8"), "{msg}");
        assert!(peak < 4096, "allocated {peak} bytes");
        let (r, peak) = peak_of(|| sl.get_str_into(0, &mut String::new()));
        assert!(matches!(r, Err(ListError::Corrupted { .. })));
        assert!(peak < 4096, "allocated {peak} bytes");
        // A write replaces the forged format with the slot's own.
        let (r, peak) = peak_of(|| sl.set(0, "xyz"));
        r.unwrap();
        assert!(peak < 4096, "allocated {peak} bytes");
        assert_eq!(sl.get(0).unwrap(), Item::from("xyz"));
        assert_eq!(sl.format().unwrap(), "8s");
    }
}
