//! Issue 17 item 9: every LockedShareableList call that waits for the lock has a
//! bounded form. A holder that stays alive (as one in another PID namespace always
//! counts) used to make `get`, `set` and `to_vec` wait forever.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use shm_collections::{Item, LockedListError, LockedShareableList, ShareableList};
use shm_core::testing::{child_command, child_role};
use shm_sync::LockError;

const HOLDER: &str = "locked_list_waits_holder";

/// Child: takes the lock, says so through item 0 (readable without the lock), and
/// keeps the lock until its stdin closes.
fn hold() {
    let list = LockedShareableList::open(&std::env::var("SHM_NAME").unwrap()).unwrap();
    let g = list.lock().unwrap();
    g.set(0, 1).unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(g);
}

#[test]
fn a_live_holder_in_another_process_bounds_every_wait() {
    if child_role().as_deref() == Some(HOLDER) {
        return hold();
    }
    if child_role().is_some() {
        return;
    }
    let list = LockedShareableList::create([Item::Int(0), Item::Int(5)]).unwrap();
    let name = list.name().unwrap().to_owned();
    let mut child = child_command("a_live_holder_in_another_process_bounds_every_wait", HOLDER)
        .env("SHM_NAME", &name)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // Handshake on something observable: the holder's write, read without the lock.
    let raw = ShareableList::open(&name).unwrap();
    let start = Instant::now();
    while raw.get(0).unwrap() != Item::Int(1) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the holder never took the lock"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    let peer = LockedShareableList::open(&name).unwrap();
    peer.set_patience(Some(Duration::from_millis(100)));
    let t = Instant::now();
    for (what, r) in [
        ("get", peer.get(1).map(drop)),
        ("set", peer.set(1, 6).map(drop)),
        ("to_vec", peer.to_vec().map(drop)),
    ] {
        match r {
            Err(LockedListError::NotAcquired { reason, .. }) => {
                assert!(reason.contains("timed out"), "{what}: {reason}")
            }
            other => panic!("{what}: expected NotAcquired, got {other:?}"),
        }
    }
    assert!(
        matches!(
            peer.lock_timeout(Duration::from_millis(100)),
            Err(LockError::Timeout { .. })
        ),
        "lock_timeout"
    );
    assert!(
        matches!(peer.try_lock(), Err(LockError::WouldBlock { .. })),
        "try_lock"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Nothing was written while waiting.
    assert_eq!(raw.get(1).unwrap(), Item::Int(5));

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Free again: the same calls go through, within the patience.
    peer.set(1, 6).unwrap();
    assert_eq!(peer.to_vec().unwrap(), [Item::Int(1), Item::Int(6)]);
    peer.set_patience(None);
    assert_eq!(peer.patience(), None);
    assert_eq!(peer.get(1).unwrap(), Item::Int(6));
}

#[test]
fn a_huge_patience_means_no_deadline() {
    if child_role().is_some() {
        return;
    }
    let list = LockedShareableList::create([1]).unwrap();
    list.set_patience(Some(Duration::MAX));
    assert!(list.patience().is_some());
    assert_eq!(list.get(0).unwrap(), Item::Int(1));
    drop(list.lock_timeout(Duration::MAX).unwrap());
}

/// Issue 17 item 6 for the collections: every type with a header refuses a name that
/// `open` would read as `segment@offset`; a refused LockedShareableList leaves nothing.
#[test]
fn names_with_an_at_sign_are_refused_and_leave_nothing() {
    use shm_collections::{ShareableDict, Value};
    use shm_core::SegmentOptions;
    use shm_core::testing::{UnlinkGuard, unique_name};
    if child_role().is_some() {
        return;
    }
    let base = unique_name("at");
    let name = format!("{base}@64");
    let _g = [
        UnlinkGuard::new(&name),
        UnlinkGuard::new(format!("{name}.lock")),
        UnlinkGuard::new(&base),
    ];
    let e = Value::<u64>::create_named(&name, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains('@'), "{e}");
    let e = ShareableDict::<u8, u8>::create_named(&name)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains('@'), "{e}");
    let opts = SegmentOptions::new().name(&name).unlink_on_drop(false);
    match LockedShareableList::create_with(&opts, [1]) {
        Err(LockedListError::Lock { source, .. }) => {
            assert!(source.to_string().contains('@'), "{source}")
        }
        other => panic!("expected a Lock error, got {other:?}"),
    }
    for n in [name.clone(), format!("{name}.lock"), base.clone()] {
        assert!(shm_core::Segment::open(&n).is_err(), "{n} was left behind");
    }
    // A plain ShareableList (CPython's format, no header) keeps CPython's names.
    let list = ShareableList::create_named(&name, [Item::Int(3)]).unwrap();
    assert_eq!(
        ShareableList::open(&name).unwrap().get(0).unwrap(),
        Item::Int(3)
    );
    drop(list);
}
