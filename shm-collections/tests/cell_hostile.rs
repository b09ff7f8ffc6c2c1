//! Value and Array segments with forged lengths: the array's own length field, the
//! header's total length, and segments shorter than either claims. Opening must give a
//! typed error, never a panic or a read past the mapping.

use shm_collections::{Array, AtomicValue, CellError, RawArray, RawValue, Value};
use shm_core::{HEADER_LEN, Segment};

/// Offset of the header's `total_len` field.
const TOTAL_LEN_AT: usize = 16;
/// Offset of an array's length field in the segment (payload offset 16).
const ARRAY_LEN_AT: usize = HEADER_LEN + 16;

/// A fresh segment of `seg_len` bytes holding the first bytes of `src` (header and as
/// much payload as fits), with the header's total length set to `total_len`.
fn forged_copy(src: &str, seg_len: usize, total_len: u64) -> Segment {
    let src = Segment::open(src).unwrap();
    let mut bytes = vec![0u8; src.len().min(seg_len)];
    src.read_at(0, &mut bytes).unwrap();
    let seg = Segment::create(seg_len).unwrap();
    seg.write_at(0, &bytes).unwrap();
    seg.write_at(TOTAL_LEN_AT, &total_len.to_ne_bytes())
        .unwrap();
    seg
}

fn is_typed(err: &CellError) -> bool {
    matches!(err, CellError::Corrupted { .. } | CellError::Shm(_))
}

/// Opens `name` as every array type by name and by segment; all must fail with a
/// typed error (the ones of the right type included).
fn refuse_array(name: &str, why: &str) {
    let by_name = Array::<u32>::open(name).unwrap_err();
    assert!(is_typed(&by_name), "{why}: {by_name}");
    let by_segment = Array::<u32>::from_segment(Segment::open(name).unwrap()).unwrap_err();
    assert!(is_typed(&by_segment), "{why}: {by_segment}");
}

#[test]
fn forged_array_length_fields_are_refused() {
    for len in [0usize, 1, 10] {
        let a = Array::<u32>::create(len).unwrap();
        let r = RawArray::<u64>::create(len).unwrap();
        let name = a.name().unwrap();
        let raw_name = r.name().unwrap();
        for forged in [
            0u64,
            len as u64 + 1,
            len.saturating_sub(1) as u64,
            u64::MAX,
            u64::MAX / 4 + 1, // len * 4 overflows u64
            1 << 40,
            (isize::MAX as u64) / 4,
        ] {
            if forged == len as u64 {
                continue;
            }
            let seg = Segment::open(name).unwrap();
            seg.write_at(ARRAY_LEN_AT, &forged.to_ne_bytes()).unwrap();
            let err = Array::<u32>::open(name).unwrap_err();
            assert!(
                matches!(err, CellError::Corrupted { .. }),
                "len {len}, forged {forged}: {err}"
            );
            assert!(
                err.to_string().contains(&format!("stored length {forged}")),
                "{err}"
            );
            let raw_seg = Segment::open(raw_name).unwrap();
            raw_seg
                .write_at(ARRAY_LEN_AT, &forged.to_ne_bytes())
                .unwrap();
            let err = RawArray::<u64>::open(raw_name).unwrap_err();
            assert!(matches!(err, CellError::Corrupted { .. }), "{err}");
        }
        // The handles opened before the damage keep their validated length and read
        // within it.
        assert_eq!(a.len(), len);
        assert_eq!(a.to_vec().unwrap().len(), len);
        assert_eq!(r.to_vec().len(), len);
        assert!(a.get(len).is_err());
        assert!(r.get(len).is_err());
    }
}

#[test]
fn forged_zero_sized_element_arrays_are_checked_too() {
    let a = Array::<()>::create(3).unwrap();
    assert_eq!(a.to_vec().unwrap().len(), 3);
    // Any stored length fits a zero-sized element type: the payload is the same.
    let seg = Segment::open(a.name().unwrap()).unwrap();
    seg.write_at(ARRAY_LEN_AT, &u64::MAX.to_ne_bytes()).unwrap();
    match Array::<()>::open(a.name().unwrap()) {
        // Reading u64::MAX zero-sized elements touches no memory.
        Ok(peer) => assert_eq!(peer.get(5).unwrap(), ()),
        Err(e) => assert!(is_typed(&e), "{e}"),
    }
}

#[test]
fn segments_shorter_than_their_header_claims_are_refused() {
    let a = Array::<u32>::create(10).unwrap();
    let full = HEADER_LEN + 64 + 40;
    assert_eq!(Segment::open(a.name().unwrap()).unwrap().len(), full);
    let cases: [(usize, u64, &str); 7] = [
        // The header still claims the full length: the segment is too short for it.
        (
            HEADER_LEN + 64,
            full as u64,
            "segment shorter than total_len",
        ),
        (
            HEADER_LEN + 8,
            full as u64,
            "segment cut inside the array header",
        ),
        // The header's total length was forged to match the short segment: the
        // array's own checks must catch it.
        (
            HEADER_LEN + 64,
            (HEADER_LEN + 64) as u64,
            "no room for the elements",
        ),
        (
            HEADER_LEN + 10,
            (HEADER_LEN + 10) as u64,
            "payload shorter than the array header",
        ),
        (HEADER_LEN, HEADER_LEN as u64, "empty payload"),
        // A total length past the segment or absurd.
        (full, u64::MAX, "total_len u64::MAX"),
        (full, (full + 4) as u64, "total_len one element too long"),
    ];
    for (seg_len, total, why) in cases {
        let seg = forged_copy(a.name().unwrap(), seg_len, total);
        refuse_array(seg.name().unwrap(), why);
    }
    // A total length below the header itself.
    let seg = forged_copy(a.name().unwrap(), full, 8);
    refuse_array(seg.name().unwrap(), "total_len below the header");
}

#[test]
fn short_value_segments_are_refused() {
    let v = Value::create(7u64).unwrap();
    let r = RawValue::create(7u64).unwrap();
    let at = AtomicValue::create(7u64).unwrap();
    for name in [v.name().unwrap(), r.name().unwrap(), at.name().unwrap()] {
        for seg_len in [HEADER_LEN, HEADER_LEN + 16, HEADER_LEN + 64 + 4] {
            let seg = forged_copy(name, seg_len, seg_len as u64);
            let n = seg.name().unwrap();
            let errs = [
                Value::<u64>::open(n).err(),
                RawValue::<u64>::open(n).err(),
                AtomicValue::<u64>::open(n).err(),
            ];
            for err in errs {
                let err = err.expect("a short value segment opened");
                assert!(is_typed(&err), "{seg_len}: {err}");
            }
        }
    }
    // The originals are untouched.
    assert_eq!((v.get().unwrap(), r.get(), at.load()), (7, 7, 7));
}
