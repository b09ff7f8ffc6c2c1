//! Things another local user (or a confused process) can plant under a segment's name in
//! `/dev/shm`: each is refused with its typed error, and nothing is written to it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use shm_core::testing::{UnlinkGuard, unique_name};
use shm_core::{Error, Segment, SegmentOptions};

/// Removes whatever is at `path` (file, symlink, FIFO, socket or directory) on drop.
struct RemoveGuard(PathBuf);

impl Drop for RemoveGuard {
    fn drop(&mut self) {
        if std::fs::remove_file(&self.0).is_err() {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
}

fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// Opens `name` on another thread, so that an open that blocks fails the test instead
/// of hanging it.
fn open_with_deadline(name: &str) -> Result<Segment, Error> {
    let (tx, rx) = mpsc::channel();
    let owned = name.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(Segment::open(&owned));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("Segment::open blocked on a planted file")
}

fn assert_not_a_segment(name: &str, expected: &str) {
    let err = open_with_deadline(name).map(drop).unwrap_err();
    assert!(
        matches!(&err, Error::NotASegment { name: n, found } if n == name && *found == expected),
        "{expected}: {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains("expected a regular file"), "{msg}");
    assert!(msg.contains(&format!("found a {expected}")), "{msg}");
}

#[test]
fn a_planted_symlink_is_not_followed() {
    let name = unique_name("symlink");
    let target = std::env::temp_dir().join(unique_name("symlink-target"));
    let _target_guard = RemoveGuard(target.clone());
    std::fs::write(&target, b"precious bytes").unwrap();
    let _link_guard = RemoveGuard(shm_path(&name));
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();

    assert_not_a_segment(&name, "symlink");
    // Creating under the name neither follows the link nor truncates its target.
    let err = Segment::create_named(&name, 4096).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious bytes");
    // The link itself is left alone too.
    assert_eq!(std::fs::read_link(shm_path(&name)).unwrap(), target);
}

#[test]
fn a_symlink_to_a_real_segment_is_refused() {
    let real = Segment::create(64).unwrap();
    real.write_at(0, b"real").unwrap();
    let name = unique_name("symlink-to-segment");
    let _link_guard = RemoveGuard(shm_path(&name));
    std::os::unix::fs::symlink(shm_path(real.name().unwrap()), shm_path(&name)).unwrap();
    assert_not_a_segment(&name, "symlink");
}

#[test]
fn a_planted_fifo_neither_blocks_nor_opens() {
    let name = unique_name("fifo");
    let _guard = RemoveGuard(shm_path(&name));
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        shm_path(&name).as_path(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    assert_not_a_segment(&name, "FIFO");
}

#[test]
fn a_planted_directory_is_refused() {
    let name = unique_name("dir");
    let _guard = RemoveGuard(shm_path(&name));
    std::fs::create_dir(shm_path(&name)).unwrap();
    assert_not_a_segment(&name, "directory");
}

#[test]
fn a_planted_socket_is_refused() {
    let name = unique_name("socket");
    let _guard = RemoveGuard(shm_path(&name));
    let _listener = std::os::unix::net::UnixListener::bind(shm_path(&name)).unwrap();
    assert_not_a_segment(&name, "socket");
}

#[test]
fn a_segment_of_another_user_is_refused() {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        // Only root can give a file away; unprivileged runs meet the same check through
        // EACCES on other users' 0600 segments.
        eprintln!("skipped: giving a segment to another uid needs root");
        return;
    }
    let name = unique_name("foreign");
    let _guard = UnlinkGuard::new(&name);
    let seg = SegmentOptions::new()
        .name(&name)
        .unlink_on_drop(false)
        .create(64)
        .unwrap();
    seg.write_at(0, b"theirs").unwrap();
    drop(seg);
    let stranger = rustix::process::Uid::from_raw(12345);
    rustix::fs::chown(shm_path(&name).as_path(), Some(stranger), None).unwrap();

    let err = Segment::open(&name).map(drop).unwrap_err();
    assert!(
        matches!(&err, Error::ForeignOwner { name: n, owner: 12345, expected }
            if *n == name && *expected == euid.as_raw()),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&name) && msg.contains("12345"), "{msg}");
    assert!(
        msg.contains(&format!("expected uid {}", euid.as_raw())),
        "{msg}"
    );

    // Untouched: same size, same bytes, same owner.
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.len(), 64);
    let bytes = std::fs::read(shm_path(&name)).unwrap();
    assert_eq!(&bytes[..6], b"theirs");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), 12345);
}

#[test]
fn from_fd_refuses_a_pipe() {
    let (reader, _writer) = std::io::pipe().unwrap();
    let err = Segment::from_fd(OwnedFd::from(reader)).unwrap_err();
    assert!(
        matches!(err, Error::NotASegment { found: "FIFO", .. }),
        "{err:?}"
    );
}

#[test]
fn drop_does_not_unlink_a_symlink_planted_under_its_name() {
    let name = unique_name("drop-symlink");
    let target = std::env::temp_dir().join(unique_name("drop-symlink-target"));
    let _target_guard = RemoveGuard(target.clone());
    std::fs::write(&target, b"x").unwrap();
    let seg = Segment::create_named(&name, 8).unwrap();
    seg.unlink().unwrap();
    let _link_guard = RemoveGuard(shm_path(&name));
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();
    drop(seg); // the name no longer refers to our segment: leave it
    assert!(
        std::fs::symlink_metadata(shm_path(&name))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"x");
}
