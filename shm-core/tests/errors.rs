//! Every error path of shm-core returns its typed error, with a message that names the
//! segment, what was expected and what was found.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_core::testing::{
    BlockedIn, Task, UnlinkGuard, current_tid, unique_name, wait_until_blocked,
};
use shm_core::{Error, HEADER_LEN, MAGIC, Object, ObjectSpec, Segment, SegmentOptions};

#[test]
fn bad_names_are_refused_before_any_syscall() {
    for name in ["", "/", "a/b", "a\0b", ".", ".."] {
        for result in [
            Segment::open(name).map(drop),
            Segment::create_named(name, 8).map(drop),
            shm_core::unlink(name),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        }
    }
    let long = "n".repeat(254);
    let err = Segment::create_named(&long, 8).unwrap_err();
    assert!(err.to_string().contains("longer than 253"), "{err}");
}

#[test]
fn longest_name_works() {
    let name = format!("{}{}", unique_name("long"), "x".repeat(260));
    let name = &name[..253];
    let _guard = UnlinkGuard::new(name);
    let seg = Segment::create_named(name, 8).unwrap();
    assert_eq!(Segment::open(&format!("/{name}")).unwrap().len(), seg.len());
}

#[test]
fn missing_segment_is_not_found() {
    let name = unique_name("missing");
    let err = Segment::open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { name: n } if *n == name),
        "{err}"
    );
    assert!(err.to_string().contains(&name));
    assert!(matches!(
        shm_core::unlink(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn create_never_opens_an_existing_name() {
    let name = unique_name("exists");
    let _guard = UnlinkGuard::new(&name);
    let first = Segment::create_named(&name, 16).unwrap();
    first.write_at(0, b"precious").unwrap();
    let err = Segment::create_named(&name, 32).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    // The failed create neither resized nor unlinked the existing segment.
    let again = Segment::open(&name).unwrap();
    assert_eq!(again.len(), 16);
    let mut buf = [0; 8];
    again.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"precious");
}

#[test]
fn size_zero_is_refused() {
    let err = Segment::create(0).unwrap_err();
    assert!(matches!(err, Error::InvalidSize { len: 0, .. }), "{err}");
    assert!(matches!(
        Segment::anonymous(0),
        Err(Error::InvalidSize { .. })
    ));
}

#[test]
fn a_zero_length_segment_does_not_open() {
    // What a creator between shm_open and ftruncate looks like from outside.
    let name = unique_name("empty");
    let _guard = UnlinkGuard::new(&name);
    std::fs::File::create_new(format!("/dev/shm/{name}")).unwrap();
    assert!(matches!(Segment::open(&name), Err(Error::Empty { .. })));
    let spec = ObjectSpec::new(shm_core::Kind::new(shm_core::Kind::USER.start, "Custom"), 1);
    let err = Object::open_timeout(&name, &spec, Duration::from_millis(30)).unwrap_err();
    assert!(matches!(err, Error::NotInitialised { .. }), "{err}");
}

#[test]
fn a_size_too_large_for_dev_shm_is_no_space_not_sigbus() {
    let name = unique_name("huge");
    let _guard = UnlinkGuard::new(&name);
    let huge = 1usize << 40; // 1 TiB: far beyond /dev/shm here
    let err = Segment::create_named(&name, huge).unwrap_err();
    match &err {
        Error::NoSpace {
            requested,
            available,
            ..
        } => {
            assert_eq!(*requested, huge as u64);
            assert!(*available < huge as u64);
        }
        other => panic!("expected NoSpace, got {other}"),
    }
    assert!(err.to_string().contains("bytes free"), "{err}");
    // Nothing is left behind under the name.
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
    // The lazy option creates it (pages come on first touch).
    let lazy = SegmentOptions::new()
        .name(&name)
        .reserve(false)
        .create(huge)
        .unwrap();
    assert_eq!(lazy.len(), huge);
}

#[test]
fn out_of_bounds_copies_are_errors() {
    let seg = Segment::anonymous(100).unwrap();
    let mut buf = [0; 10];
    for (offset, len) in [(91, 10), (100, 1), (usize::MAX, 2)] {
        let err = seg.read_at(offset, &mut buf[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfBounds {
                    segment_len: 100,
                    ..
                }
            ),
            "{err}"
        );
        assert!(seg.write_at(offset, &buf[..len]).is_err());
    }
    seg.read_at(90, &mut buf).unwrap();
    seg.write_at(100, &[]).unwrap();
}

fn spec() -> ObjectSpec {
    ObjectSpec::new(
        shm_core::Kind::new(shm_core::Kind::USER.start + 1, "Value"),
        2,
    )
    .with_type::<u32>("u32")
}

/// A published object whose header a test then damages.
fn object() -> (Object, String) {
    let obj = Object::create(&SegmentOptions::new(), &spec(), 16, |_| Ok::<(), Error>(())).unwrap();
    let name = obj.segment().name().unwrap().to_owned();
    (obj, name)
}

fn header_u32(obj: &Object, offset: usize) -> &AtomicU32 {
    // SAFETY: offset < HEADER_LEN and 4-aligned; atomics tolerate concurrent writers.
    unsafe { &*obj.segment().as_ptr().add(offset).cast::<AtomicU32>() }
}

fn header_u64(obj: &Object, offset: usize) -> &AtomicU64 {
    // SAFETY: offset < HEADER_LEN and 8-aligned; atomics tolerate concurrent writers.
    unsafe { &*obj.segment().as_ptr().add(offset).cast::<AtomicU64>() }
}

#[test]
fn header_mismatches_are_distinct_errors() {
    let (_obj, name) = object();
    Object::open(&name, &spec()).unwrap();

    let err = Object::open(
        &name,
        &ObjectSpec::new(
            shm_core::Kind::new(shm_core::Kind::USER.start + 2, "Array"),
            2,
        )
        .with_type::<u32>("u32"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::WrongKind { expected, found, .. } if expected == "Array" && found.starts_with("Value")),
        "{err}"
    );

    let err = Object::open(
        &name,
        &ObjectSpec::new(
            shm_core::Kind::new(shm_core::Kind::USER.start + 1, "Value"),
            3,
        )
        .with_type::<u32>("u32"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );

    let err = Object::open(
        &name,
        &ObjectSpec::new(
            shm_core::Kind::new(shm_core::Kind::USER.start + 1, "Value"),
            2,
        )
        .with_type::<f32>("f32"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::TypeMismatch { expected, found, .. } if expected.starts_with("f32") && found.starts_with("u32")),
        "{err}"
    );
    assert!(err.to_string().contains(&name));
}

#[test]
fn foreign_and_corrupted_headers_are_refused() {
    // A plain segment full of non-header bytes: foreign, refused at once (no wait).
    let foreign = Segment::create(128).unwrap();
    foreign.write_at(0, &[0xAB; 128]).unwrap();
    let err = Object::open(foreign.name().unwrap(), &spec()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongMagic {
                expected: MAGIC,
                found: 0xABAB_ABAB_ABAB_ABAB,
                ..
            }
        ),
        "{err}"
    );
    // "At once": with a minute's patience, an answer within seconds (a busy machine
    // may take a few) proves it was not waited for.
    let started = Instant::now();
    let err = Object::open_timeout(foreign.name().unwrap(), &spec(), Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, Error::WrongMagic { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");

    // Shorter than a header.
    let short = Segment::create(HEADER_LEN - 1).unwrap();
    let err = Object::open(short.name().unwrap(), &spec()).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");

    // Total length in the header disagrees with the segment.
    let (obj, name) = object();
    header_u64(&obj, 16).store(1 << 20, Ordering::Relaxed);
    let err = Object::open(&name, &spec()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 1_048_576,
                found: 144,
                ..
            }
        ),
        "{err}"
    );

    // An unknown kind number is reported as such.
    let (obj, name) = object();
    header_u32(&obj, 8).store(999, Ordering::Relaxed);
    let err = Object::open(&name, &spec()).unwrap_err();
    assert!(err.to_string().contains("kind 0x3e7"), "{err}");

    // A garbage initialised flag.
    let (obj, name) = object();
    header_u32(&obj, 44).store(77, Ordering::Relaxed);
    let err = Object::open(&name, &spec()).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

#[test]
fn a_format_1_header_is_an_unsupported_version() {
    let (obj, name) = object();
    header_u64(&obj, 0).store(u64::from_le_bytes(*b"shm-rs\0\x01"), Ordering::Relaxed);
    let err = Object::open(&name, &spec()).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedVersion { kind, expected: 2, found: 1, .. } if kind == "object header"),
        "{err}"
    );
}

#[test]
fn arena_objects_are_bounded_by_their_segment() {
    use std::sync::Arc;
    let arena = Arc::new(Segment::create(4096).unwrap());
    // SAFETY: a fresh arena; each range is handed out once.
    let a = unsafe { Object::create_at(arena.clone(), 0, &spec(), 16, |_| Ok::<(), Error>(())) }
        .unwrap();
    // SAFETY: as above, a disjoint range.
    let b = unsafe { Object::create_at(arena.clone(), 256, &spec(), 16, |_| Ok::<(), Error>(())) }
        .unwrap();
    assert_ne!(a.name(), b.name());
    assert_eq!(
        Object::open(b.name().unwrap(), &spec())
            .unwrap()
            .payload_len(),
        16
    );
    // Past the end, misaligned, or over a live header: refused.
    // SAFETY: the range runs past the arena's end, so the call is refused before it writes.
    let past_end =
        unsafe { Object::create_at(arena.clone(), 4032, &spec(), 16, |_| Ok::<(), Error>(())) };
    assert!(past_end.is_err());
    assert!(Object::open(&format!("{}@100", arena.name().unwrap()), &spec()).is_err());
    assert!(Object::open(&format!("{}@8192", arena.name().unwrap()), &spec()).is_err());
    // A forged total length past the segment's end is refused, not read.
    // SAFETY: offset 256 + 16 lies in b's header; atomics tolerate concurrent writers.
    let total = unsafe { &*arena.as_ptr().add(256 + 16).cast::<AtomicU64>() };
    total.store(u64::MAX, Ordering::Relaxed);
    assert!(matches!(
        Object::open(b.name().unwrap(), &spec()),
        Err(Error::Truncated { .. })
    ));
    // Arena objects are freed by their arena's owner, not unlinked one by one.
    assert!(matches!(a.unlink(), Err(Error::Unsupported { .. })));
}

#[test]
fn arena_objects_have_compact_headers() {
    use shm_core::{COMPACT_HEADER_LEN, Flags};
    use std::sync::Arc;
    let arena = Arc::new(Segment::create(4096).unwrap());
    // SAFETY: a fresh arena; each range is handed out once.
    let a = unsafe { Object::create_at(arena.clone(), 64, &spec(), 8, |_| Ok::<(), Error>(())) }
        .unwrap();
    // Header and payload in one 64 + 8 bytes: the next object fits at 192.
    let info = a.info().unwrap();
    assert_eq!(info.total_len, (COMPACT_HEADER_LEN + 8) as u64);
    assert!(info.flags.contains(Flags::COMPACT | Flags::IN_ARENA));
    assert_eq!(
        (info.kind, info.version),
        (spec().kind.id(), spec().version)
    );
    assert!(
        info.kind_name.is_empty(),
        "a compact header stores no names"
    );
    a.write_at(0, &7u64.to_ne_bytes()).unwrap();
    assert_eq!(
        arena.as_ptr() as usize + 64 + COMPACT_HEADER_LEN,
        a.payload_ptr() as usize
    );
    let again = Object::open(a.name().unwrap(), &spec()).unwrap();
    let mut v = [0u8; 8];
    again.read_at(0, &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 7);
    assert_eq!(
        Object::inspect(a.name().unwrap()).unwrap().total_len,
        info.total_len
    );
    // SAFETY: a disjoint range right after a's 72 bytes, rounded to 64.
    unsafe { Object::create_at(arena.clone(), 192, &spec(), 8, |_| Ok::<(), Error>(())) }.unwrap();
    // Over a live header: refused.
    // SAFETY: the call reads the range first and refuses it (a's header is there).
    let over = unsafe { Object::create_at(arena.clone(), 64, &spec(), 8, |_| Ok::<(), Error>(())) };
    assert!(matches!(over, Err(Error::AlreadyInitialised { .. })));
    // The layout flags cannot be changed through set_flags.
    a.set_flags(Flags::COMPACT | Flags::IN_ARENA, false);
    assert!(
        a.info()
            .unwrap()
            .flags
            .contains(Flags::COMPACT | Flags::IN_ARENA)
    );
    // A compact flag forged onto an object in its own segment is refused, not obeyed.
    let (obj, name) = object();
    header_u32(&obj, 40).fetch_or(Flags::COMPACT.0, Ordering::Relaxed);
    assert!(matches!(
        Object::open(&name, &spec()),
        Err(Error::Truncated { .. })
    ));
    // A compact flag cleared in the arena makes the object a full-header one, whose
    // length no longer matches: refused.
    // SAFETY: offset 64 + 40 is a's flags word; atomics tolerate concurrent writers.
    let flags = unsafe { &*arena.as_ptr().add(64 + 40).cast::<AtomicU32>() };
    flags.fetch_and(!Flags::COMPACT.0, Ordering::Relaxed);
    assert!(Object::open(a.name().unwrap(), &spec()).is_err());
}

#[test]
fn an_unpublished_object_waits_then_times_out() {
    let seg = Segment::create(HEADER_LEN + 8).unwrap(); // all zero: being initialised
    let started = Instant::now();
    let err =
        Object::open_timeout(seg.name().unwrap(), &spec(), Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, Error::NotInitialised { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn an_object_published_during_the_wait_opens() {
    let name = unique_name("late");
    let _guard = UnlinkGuard::new(&name);
    let seg = SegmentOptions::new()
        .name(&name)
        .unlink_on_drop(false)
        .create(HEADER_LEN + 16)
        .unwrap();
    let opener = current_tid();
    let publisher = std::thread::spawn(move || {
        // Published only once the open below is waiting: it must see it mid-wait.
        wait_until_blocked(Task::Thread(opener), BlockedIn::Sleep);
        Object::init_in(seg, &spec(), |_| Ok::<(), Error>(())).unwrap()
    });
    let obj = Object::open_timeout(&name, &spec(), Duration::from_secs(60)).unwrap();
    assert_eq!(obj.payload_len(), 16);
    publisher.join().unwrap();
}

#[test]
fn drop_does_not_unlink_a_successor_with_the_same_name() {
    let name = unique_name("successor");
    let _guard = UnlinkGuard::new(&name);
    let first = Segment::create_named(&name, 8).unwrap();
    first.unlink().unwrap();
    let _second = SegmentOptions::new()
        .name(&name)
        .unlink_on_drop(false)
        .create(8)
        .unwrap();
    drop(first); // its unlink-on-drop must not remove the successor
    assert!(Segment::open(&name).is_ok());
}

#[test]
fn opened_segments_never_unlink_on_drop() {
    let creator = Segment::create(8).unwrap();
    let name = creator.name().unwrap().to_owned();
    drop(Segment::open(&name).unwrap());
    assert!(Segment::open(&name).is_ok());
    drop(creator);
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn from_fd_refuses_what_it_cannot_map_shared() {
    use std::os::fd::OwnedFd;
    // An empty regular file: length 0.
    let dir = std::env::temp_dir().join(unique_name("fromfd"));
    std::fs::write(&dir, b"").unwrap();
    let empty = OwnedFd::from(std::fs::File::open(&dir).unwrap());
    assert!(matches!(Segment::from_fd(empty), Err(Error::Empty { .. })));
    // A read-only file with content cannot be mapped read/write.
    std::fs::write(&dir, b"some bytes").unwrap();
    let read_only = OwnedFd::from(std::fs::File::open(&dir).unwrap());
    let err = Segment::from_fd(read_only).unwrap_err();
    assert!(matches!(err, Error::Os { op: "mmap", .. }), "{err}");
    std::fs::remove_file(&dir).unwrap();
}
