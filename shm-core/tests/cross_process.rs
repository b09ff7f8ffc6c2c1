//! Segments shared between real processes: the test binary re-runs itself in a child role.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shm_core::testing::{UnlinkGuard, child_command, child_role, run_child, unique_name};
use shm_core::{CommandExt, Error, Object, ObjectSpec, Segment};

const PATTERN_LEN: usize = 64 * 1024;

fn pattern(seed: u8) -> Vec<u8> {
    (0..PATTERN_LEN)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn env_name() -> String {
    std::env::var("SHM_NAME").expect("SHM_NAME set by the parent")
}

/// A flag word at `offset` of a segment, for hand-shakes between processes.
fn flag(seg: &Segment, offset: usize) -> &AtomicU32 {
    assert!(offset + 4 <= seg.len() && offset % 4 == 0);
    // SAFETY: in bounds and aligned (checked above; the mapping is page aligned); an
    // AtomicU32 is valid for any bits and for concurrent access from other processes.
    unsafe { &*seg.as_ptr().add(offset).cast::<AtomicU32>() }
}

fn wait_flag(seg: &Segment, offset: usize, value: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while flag(seg, offset).load(Ordering::Acquire) != value {
        assert!(
            Instant::now() < deadline,
            "peer never set flag {offset} to {value}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn child_writes_parent_reads() {
    if let Some(role) = child_role() {
        assert_eq!(role, "writer");
        let seg = Segment::open(&env_name()).unwrap();
        seg.write_at(0, &pattern(7)).unwrap();
        return;
    }
    let seg = Segment::create(PATTERN_LEN).unwrap();
    run_child(
        "child_writes_parent_reads",
        "writer",
        &[("SHM_NAME", seg.name().unwrap())],
    );
    let mut buf = vec![0; PATTERN_LEN];
    seg.read_at(0, &mut buf).unwrap();
    assert!(
        buf == pattern(7),
        "the parent does not see what the child wrote"
    );
}

#[test]
fn parent_writes_child_reads() {
    if let Some(role) = child_role() {
        assert_eq!(role, "reader");
        let seg = Segment::open(&env_name()).unwrap();
        assert_eq!(seg.len(), PATTERN_LEN, "size comes from fstat, exactly");
        let mut buf = vec![0; PATTERN_LEN];
        seg.read_at(0, &mut buf).unwrap();
        assert!(
            buf == pattern(3),
            "the child does not see what the parent wrote"
        );
        return;
    }
    let seg = Segment::create(PATTERN_LEN).unwrap();
    seg.write_at(0, &pattern(3)).unwrap();
    run_child(
        "parent_writes_child_reads",
        "reader",
        &[("SHM_NAME", seg.name().unwrap())],
    );
}

#[test]
fn unlink_while_mapped_keeps_mappings_and_stops_new_opens() {
    if let Some(role) = child_role() {
        assert_eq!(role, "holder");
        let seg = Segment::open(&env_name()).unwrap();
        flag(&seg, 0).store(1, Ordering::Release); // opened
        wait_flag(&seg, 0, 2); // parent has unlinked
        assert!(matches!(
            Segment::open(&env_name()),
            Err(Error::NotFound { .. })
        ));
        seg.write_at(8, b"after unlink").unwrap();
        flag(&seg, 0).store(3, Ordering::Release);
        return;
    }
    let seg = Segment::create(4096).unwrap();
    let name = seg.name().unwrap().to_owned();
    let mut child = child_command(
        "unlink_while_mapped_keeps_mappings_and_stops_new_opens",
        "holder",
    )
    .env("SHM_NAME", &name)
    .spawn()
    .unwrap();
    wait_flag(&seg, 0, 1);
    seg.unlink().unwrap();
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
    flag(&seg, 0).store(2, Ordering::Release);
    wait_flag(&seg, 0, 3);
    let mut buf = [0; 12];
    seg.read_at(8, &mut buf).unwrap();
    assert_eq!(&buf, b"after unlink");
    assert!(child.wait().unwrap().success());
    assert!(matches!(
        shm_core::unlink(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn anonymous_segment_is_inherited_by_a_child() {
    if let Some(role) = child_role() {
        assert_eq!(role, "heir");
        let seg = Segment::from_inherited("SHM_TEST_FD").unwrap();
        assert_eq!(seg.name(), None);
        assert_eq!(seg.len(), PATTERN_LEN);
        let mut buf = vec![0; PATTERN_LEN];
        seg.read_at(0, &mut buf).unwrap();
        assert!(buf == pattern(11));
        seg.write_at(0, &pattern(12)).unwrap();
        return;
    }
    let seg = Segment::anonymous(PATTERN_LEN).unwrap();
    seg.write_at(0, &pattern(11)).unwrap();
    let out = child_command("anonymous_segment_is_inherited_by_a_child", "heir")
        .inherit_segment(&seg, "SHM_TEST_FD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buf = vec![0; PATTERN_LEN];
    seg.read_at(0, &mut buf).unwrap();
    assert!(
        buf == pattern(12),
        "the parent does not see the child's write"
    );
}

#[test]
fn an_uninherited_descriptor_is_refused() {
    if let Some(role) = child_role() {
        assert_eq!(role, "stranger");
        // The parent set the variable but did not pass the descriptor (close-on-exec).
        let err = Segment::from_inherited("SHM_TEST_FD").unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
        let err = Segment::from_inherited("SHM_TEST_NO_SUCH_VAR").unwrap_err();
        assert!(err.to_string().contains("not set"), "{err}");
        return;
    }
    let seg = Segment::anonymous(64).unwrap();
    use std::os::fd::AsRawFd;
    run_child(
        "an_uninherited_descriptor_is_refused",
        "stranger",
        &[("SHM_TEST_FD", seg.fd().unwrap().as_raw_fd().to_string())],
    );
}

#[test]
fn object_opened_by_name_in_a_child_is_checked() {
    let spec = ObjectSpec::new(shm_core::Kind::new(shm_core::Kind::USER.start, "Custom"), 3)
        .with_type::<u64>("u64");
    if let Some(role) = child_role() {
        assert_eq!(role, "opener");
        let obj = Object::open(&env_name(), &spec).unwrap();
        // SAFETY: the payload holds 8 bytes, 64-byte aligned, written before publishing.
        let stored = unsafe { obj.payload_ptr().cast::<u64>().read_volatile() };
        assert_eq!(stored, 0xfeed);
        let wrong = ObjectSpec::new(shm_core::Kind::new(shm_core::Kind::USER.start, "Custom"), 3)
            .with_type::<f64>("f64");
        let err = Object::open(&env_name(), &wrong).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        return;
    }
    let obj = Object::create(&shm_core::SegmentOptions::new(), &spec, 8, |o| {
        o.write_at(0, &0xfeed_u64.to_ne_bytes())
    })
    .unwrap();
    run_child(
        "object_opened_by_name_in_a_child_is_checked",
        "opener",
        &[("SHM_NAME", obj.segment().name().unwrap())],
    );
}

#[test]
fn created_segments_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique_name("mode");
    let _guard = UnlinkGuard::new(&name);
    let _seg = Segment::create_named(&name, 10).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm/{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
