//! Issue 17: a forged owner pid never panics nor removes a live manager (item 11); a
//! damaged arena header is an error at once, not a wait of the whole patience on every
//! open by key (item 14); the manager's patience (item 9).

mod common;

use std::time::{Duration, Instant};

use common::{PrefixGuard, shm_json, shm_ok, unique_manager};
use shm_core::Segment;
use shm_core::testing::child_role;
use shm_manager::{ManagerError, ManagerOptions, SharedMemoryManager};

/// Offset of `creator_id` (u32) in an object header, and of the initialised word.
const CREATOR_ID: usize = 56;
const INIT: usize = 44;

fn exists(name: &str) -> bool {
    Segment::open(name).is_ok()
}

/// A root whose creator word is 2^31 or more used to reach `Pid::from_raw(id as i32)`:
/// a debug-assert panic (release: `kill(-id, 0)`, a process-group probe), and a
/// "dead" verdict would have removed a live manager's segments.
#[test]
fn a_forged_root_creator_neither_panics_nor_removes_the_manager() {
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("forged-owner");
    let m = ManagerOptions::new()
        .name(&name)
        .tracker(false)
        .create()
        .unwrap();
    let root = m.root_name().to_owned();
    let _g = PrefixGuard(root.clone());
    let v = m.value("v", 7u64).unwrap();
    let arena = format!("{root}.a0");
    Segment::open(&root)
        .unwrap()
        .write_at(CREATOR_ID, &0x8000_0001u32.to_ne_bytes())
        .unwrap();

    // Creating the same name again judges the root's owner: unknown, so taken.
    match SharedMemoryManager::named(&name) {
        Err(ManagerError::AlreadyExists { pid, .. }) => assert_eq!(pid, 0x8000_0001),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(exists(&root) && exists(&arena));
    // Attaching works (an unknown owner is not a dead one).
    let peer = SharedMemoryManager::connect(&name).unwrap();
    assert_eq!(peer.value("v", 0u64).unwrap().get().unwrap(), 7);

    // `shm gc` (another process) keeps what an unknown owner holds.
    let r = shm_json(&["gc", "--dry-run", "--json", "--prefix", &root]);
    assert_eq!(r["removed"].as_array().map(Vec::len), Some(0), "{r}");
    shm_ok(&["gc", "--prefix", &root]);
    assert!(exists(&root) && exists(&arena));
    assert_eq!(v.get().unwrap(), 7);
}

/// Damaged arena headers: every open by key used to wait the whole open patience
/// (1 s) again, since the failed arena is never mapped; one listing of 13 keys took
/// 13 s. The registry places objects only in published arenas, so it is an error at
/// once, however long the patience.
#[test]
fn a_damaged_arena_header_is_an_error_at_once() {
    if child_role().is_some() {
        return;
    }
    const KEYS: usize = 3;
    let patience = Some(Duration::from_secs(5));
    let m = ManagerOptions::new()
        .tracker(false)
        .patience(patience)
        .create()
        .unwrap();
    let root = m.root_name().to_owned();
    let _g = PrefixGuard(root.clone());
    let values: Vec<_> = (0..KEYS)
        .map(|i| m.value(&format!("k{i}"), i as u64).unwrap())
        .collect();
    let arena = Segment::open(&format!("{root}.a0")).unwrap();
    let mut header = [0u8; 64];
    arena.read_at(0, &mut header).unwrap();

    // (what, offset, bytes zeroed)
    let damages = [
        ("initialised word cleared", INIT, 4),
        ("whole core zeroed", 0, 64),
    ];
    for (what, at, len) in damages {
        arena.fill_at(at, len, 0).unwrap();
        // A process that has not mapped the arena yet (a fresh attacher).
        let peer = SharedMemoryManager::connect(m.name()).unwrap();
        peer.set_patience(patience);
        let t = Instant::now();
        for i in 0..KEYS {
            match peer.value(&format!("k{i}"), 0u64) {
                Err(e @ ManagerError::Corrupted { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(".a0"), "{what}: {msg}");
                }
                other => panic!("{what}: expected Corrupted, got {other:?}"),
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: {KEYS} opens by key took {:?}",
            t.elapsed()
        );
        arena.write_at(0, &header).unwrap();
    }
    // Repaired: it opens again, and the handles that had it mapped never noticed.
    let peer = SharedMemoryManager::connect(m.name()).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            peer.value(&format!("k{i}"), 0u64).unwrap().get().unwrap(),
            i as u64
        );
        assert_eq!(v.get().unwrap(), i as u64);
    }
}

/// An object in its own segment whose header was damaged the same way: at once too.
#[test]
fn a_damaged_object_header_is_an_error_at_once() {
    if child_role().is_some() {
        return;
    }
    let m = ManagerOptions::new().tracker(false).create().unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    m.set_patience(Some(Duration::from_secs(5)));
    let _d = m.dict::<u8, u8>("d").unwrap();
    let location = m.entry("d").unwrap().unwrap().location;
    Segment::open(&location)
        .unwrap()
        .write_at(INIT, &[0; 4])
        .unwrap();
    let peer = SharedMemoryManager::connect(m.name()).unwrap();
    let t = Instant::now();
    assert!(matches!(
        peer.dict::<u8, u8>("d"),
        Err(ManagerError::Object { .. })
    ));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn patience_round_trips() {
    if child_role().is_some() {
        return;
    }
    let m = ManagerOptions::new().tracker(false).create().unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    assert_eq!(m.patience(), None);
    m.set_patience(Some(Duration::MAX));
    assert!(m.patience().is_some());
    m.set_patience(Some(Duration::ZERO));
    assert_eq!(m.patience(), Some(Duration::ZERO));
    // A zero patience still finds everything that exists.
    let v = m.value("v", 3u8).unwrap();
    assert_eq!(m.value("v", 0u8).unwrap().get().unwrap(), v.get().unwrap());
    assert!(m.arena_stats().unwrap().arenas >= 1);
    m.set_patience(None);
    assert_eq!(m.patience(), None);
}

/// `arena_stats` probes the arena after the last one: a name that does not exist is
/// not waited for (it used to wait the whole patience on every call).
#[test]
fn arena_stats_does_not_wait_for_an_arena_that_does_not_exist() {
    let m = shm_manager::ManagerOptions::new()
        .tracker(false)
        .patience(Some(std::time::Duration::from_secs(30)))
        .create()
        .unwrap();
    m.value("one", 1u64).unwrap();
    let t = std::time::Instant::now();
    let stats = m.arena_stats().unwrap();
    assert_eq!(stats.arenas, 1);
    // The patience is 30 s: a probe that waits for the missing arena takes all of it.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    m.shutdown().unwrap();
}
