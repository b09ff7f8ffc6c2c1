//! File descriptors: named segments keep none once mapped (thousands fit under a small
//! `ulimit -n`), and an inherited anonymous segment outlives the original it came from.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use shm_core::testing::{child_command, child_role, run_child, unique_name};
use shm_core::{CommandExt, Error, Segment};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn named_segments_close_their_descriptor_anonymous_ones_keep_it() {
    let created = Segment::create(4096).unwrap();
    let opened = Segment::open(created.name().unwrap()).unwrap();
    assert!(created.fd().is_none() && opened.fd().is_none());
    let anonymous = Segment::anonymous(4096).unwrap();
    let fd = anonymous
        .fd()
        .expect("anonymous segments keep their descriptor");
    assert_eq!(
        File::from(fd.try_clone_to_owned().unwrap())
            .metadata()
            .unwrap()
            .len(),
        4096
    );
    // Still one segment: the closed descriptor did not unmap anything.
    created.write_at(0, b"one").unwrap();
    let mut buf = [0; 3];
    opened.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"one");
}

#[test]
fn thousands_of_named_segments_fit_under_a_small_descriptor_limit() {
    const LIMIT: u64 = 256;
    const SEGMENTS: usize = 3000;
    if let Some(role) = child_role() {
        assert_eq!(role, "hoarder");
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        limit.current = Some(LIMIT);
        setrlimit(Resource::Nofile, limit).unwrap();
        let before = open_fds();

        let created: Vec<Segment> = (0..SEGMENTS)
            .map(|i| Segment::create(4096).unwrap_or_else(|e| panic!("segment {i}: {e}")))
            .collect();
        let opened: Vec<Segment> = created
            .iter()
            .map(|s| Segment::open(s.name().unwrap()).unwrap())
            .collect();
        let during = open_fds();
        assert!(
            during <= before + 2,
            "{during} descriptors open with {} segments, {before} before",
            created.len() + opened.len()
        );
        // Every mapping is live and distinct.
        for (i, s) in created.iter().enumerate() {
            s.write_at(0, &(i as u64).to_ne_bytes()).unwrap();
        }
        for (i, s) in opened.iter().enumerate() {
            let mut word = [0; 8];
            s.read_at(0, &mut word).unwrap();
            assert_eq!(u64::from_ne_bytes(word), i as u64);
        }
        let names: Vec<String> = created.iter().map(|s| s.name().unwrap().into()).collect();
        drop(opened);
        drop(created);
        // Unlink-on-drop still works without a descriptor (it compares device and inode).
        for name in &names {
            assert!(
                matches!(Segment::open(name), Err(Error::NotFound { .. })),
                "{name} left behind"
            );
        }
        return;
    }
    run_child(
        "thousands_of_named_segments_fit_under_a_small_descriptor_limit",
        "hoarder",
        &[] as &[(&str, &str)],
    );
}

/// The parent configures a command with a segment, drops the segment, opens a file that
/// may take the freed descriptor number, then spawns.
#[test]
fn an_inherited_segment_survives_its_original_being_dropped() {
    if let Some(role) = child_role() {
        assert_eq!(role, "heir");
        // First, before this process opens anything: the file the parent opened after
        // dropping the segment must not have been handed down.
        let stray: i32 = std::env::var("SHM_TEST_STRAY_FD").unwrap().parse().unwrap();
        let stray_path = PathBuf::from(std::env::var("SHM_TEST_STRAY_PATH").unwrap());
        let here = std::fs::read_link(format!("/proc/self/fd/{stray}"));
        assert!(
            here.as_ref().map_or(true, |p| *p != stray_path),
            "descriptor {stray} leaked into the child: {here:?}"
        );
        let seg = Segment::from_inherited("SHM_TEST_FD").unwrap();
        let mut buf = [0; 9];
        seg.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"inherited");
        seg.write_at(0, b"INHERITED").unwrap();
        return;
    }
    let seg = Segment::anonymous(64).unwrap();
    seg.write_at(0, b"inherited").unwrap();
    // Keep a second view to check the child's write; a clone of the memfd is a separate
    // descriptor, unaffected by dropping `seg`.
    let view = Segment::from_fd(seg.fd().unwrap().try_clone_to_owned().unwrap()).unwrap();
    let freed = seg.fd().unwrap().as_raw_fd();

    let mut cmd = child_command(
        "an_inherited_segment_survives_its_original_being_dropped",
        "heir",
    );
    cmd.inherit_segment(&seg, "SHM_TEST_FD");
    drop(seg);

    // Take the freed number if no other test thread got it first (lowest free >= it).
    let stray_path = std::env::temp_dir().join(unique_name("stray"));
    let _cleanup = RemoveOnDrop(stray_path.clone());
    let stray_file = File::create(&stray_path).unwrap();
    let stray = rustix::io::fcntl_dupfd_cloexec(&stray_file, freed).unwrap();
    cmd.env("SHM_TEST_STRAY_FD", stray.as_raw_fd().to_string())
        .env("SHM_TEST_STRAY_PATH", &stray_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buf = [0; 9];
    view.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"INHERITED", "the child did not get the segment");
}

#[test]
fn a_named_segment_cannot_be_inherited() {
    if let Some(role) = child_role() {
        assert_eq!(role, "named-heir");
        let err = Segment::from_inherited("SHM_TEST_FD").unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
        assert!(
            err.to_string().contains("expected an anonymous segment"),
            "{err}"
        );
        return;
    }
    let seg = Segment::create(64).unwrap();
    let mut cmd = child_command("a_named_segment_cannot_be_inherited", "named-heir");
    cmd.inherit_segment(&seg, "SHM_TEST_FD")
        .stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
