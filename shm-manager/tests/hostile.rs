//! A registry or an arena written by a hostile or buggy process gives typed errors,
//! never UB, a panic or a hang.

mod common;

use shm_core::testing::child_role;
use shm_manager::{Entry, ManagerError, SharedMemoryManager};

fn forged(m: &SharedMemoryManager, key: &str, template: &str, location: String) {
    let mut e: Entry = m.entry(template).unwrap().unwrap();
    e.location = location;
    m.registry().insert(key.to_owned(), e).unwrap();
}

#[test]
fn forged_locations_are_typed_errors() {
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    m.value("v", 1u64).unwrap();
    m.dict::<u8, u8>("d").unwrap();
    let outside = shm_core::Segment::create(4096).unwrap();
    let cases = [
        // Another segment than the manager's.
        ("outside", "v", outside.name().unwrap().to_owned()),
        ("outside-prefix", "v", format!("{root}x.a0@192")),
        // Not an arena name, an arena that does not exist, a huge index.
        ("not-arena", "v", format!("{root}.b0@192")),
        ("no-arena", "v", format!("{root}.a7@192")),
        ("huge-arena", "v", format!("{root}.a99999999999@192")),
        // Inside the arena's own header, past its end, unaligned.
        ("in-header", "v", format!("{root}.a0@64")),
        ("past-end", "v", format!("{root}.a0@{}", 1u64 << 40)),
        ("unaligned", "v", format!("{root}.a0@200")),
        // Where nothing was allocated yet.
        ("unallocated", "v", format!("{root}.a0@65536")),
        // A segment of ours holding another kind.
        ("other-kind", "d", format!("{root}.a0@192")),
        ("garbage", "v", "\0/..".to_owned()),
    ];
    for (key, template, location) in cases {
        forged(&m, key, template, location.clone());
        let r = if template == "v" {
            m.value(key, 0u64).map(drop)
        } else {
            m.dict::<u8, u8>(key).map(drop)
        };
        match r {
            Err(
                ManagerError::Corrupted { .. } | ManagerError::Object { .. } | ManagerError::Shm(_),
            ) => {}
            other => panic!("{key} ({location}): expected a typed error, got {other:?}"),
        }
    }
    // The genuine entries still work.
    assert_eq!(m.value("v", 0u64).unwrap().get().unwrap(), 1);
}

#[test]
fn a_corrupted_bump_offset_is_reported() {
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    m.event("first").unwrap();
    let arena = shm_core::Segment::open(&format!("{root}.a0")).unwrap();
    // The bump word is the first word of the arena's payload (after the 128-byte header).
    for bad in [u64::MAX, 100, 0, 1 << 30] {
        arena.write_at(128, &bad.to_ne_bytes()).unwrap();
        match m.event(&format!("e{bad}")) {
            Err(e @ ManagerError::Corrupted { .. }) => {
                assert!(e.to_string().contains(".a0"), "{e}");
            }
            other => panic!("bump {bad}: expected Corrupted, got {other:?}"),
        }
        assert!(matches!(
            m.arena_stats(),
            Err(ManagerError::Corrupted { .. })
        ));
    }
    // A full arena (bump at its end) is not corruption: the next arena takes over.
    arena
        .write_at(128, &(shm_manager::ARENA_LEN as u64).to_ne_bytes())
        .unwrap();
    let e = m.event("next").unwrap();
    assert!(m.entry("next").unwrap().unwrap().location.contains(".a1@"));
    e.set();
    assert!(m.event("next").unwrap().is_set());
    assert!(!m.event("first").unwrap().is_set());
}

#[test]
fn manager_handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SharedMemoryManager>();
    check::<ManagerError>();
}
