//! Scoped lifetimes, attachers, the registry's atomic create-or-open, type checks and
//! arenas, across processes.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{PrefixGuard, tracked, unique_manager};
use shm_collections::{Item, ShareableDict, Value};
use shm_core::testing::{
    BlockedIn, Task, child_command, child_role, current_tid, run_child, wait_until_blocked,
};
use shm_manager::{ManagerError, ManagerOptions, SharedMemoryManager};

const MANAGER_VAR: &str = "SHM_TEST_MANAGER";

fn manager_from_env() -> String {
    std::env::var(MANAGER_VAR).expect("the parent names the manager")
}

#[test]
fn scoped_manager_removes_everything_it_made_on_drop() {
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("scoped");
    let (m, root, _g) = common::named_manager(&name);
    let v = m.value("v", 1u64).unwrap();
    m.lock("l").unwrap();
    m.event("e").unwrap();
    let d = m.dict::<String, String>("d").unwrap();
    for i in 0..500 {
        // Enough to grow the dict into new data segments.
        d.insert(format!("key-{i}"), "x".repeat(50)).unwrap();
    }
    m.list::<u32>("vec").unwrap().push(1).unwrap();
    m.namespace("ns").unwrap().set("a", &1u8).unwrap();
    m.queue::<String>("q", 4, 256).unwrap();
    m.shareable_list("list", vec![Item::Int(3)]).unwrap();
    let raw = m.segment(100).unwrap();
    let before = tracked(&root);
    // root + its data, arena, dict + data, vec + data, ns + data, queue, list, raw
    assert!(before.len() >= 12, "{before:?}");
    assert!(before.iter().any(|n| n.ends_with(".a0")), "{before:?}");
    assert!(before.contains(&raw.name().unwrap().to_owned()));
    drop(m);
    assert_eq!(tracked(&root), Vec::<String>::new());
    // Handles outlive the names: the mappings stay valid.
    assert_eq!(v.get().unwrap(), 1);
    assert_eq!(d.len().unwrap(), 500);
}

#[test]
fn shutdown_reports_removed_and_stops_accepting_work() {
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    m.value("a", 1u8).unwrap();
    m.dict::<u8, u8>("d").unwrap();
    let n = tracked(&root).len();
    assert_eq!(m.shutdown().unwrap(), n);
    assert!(tracked(&root).is_empty());
    assert!(matches!(
        SharedMemoryManager::connect(&root["shm-rs.m.".len()..]),
        Err(ManagerError::NotFound { .. })
    ));
}

#[test]
fn attacher_works_until_owner_shuts_down() {
    const TEST: &str = "attacher_works_until_owner_shuts_down";
    if child_role().as_deref() == Some("attacher") {
        let name = manager_from_env();
        let c = SharedMemoryManager::connect(&name).unwrap();
        assert!(!c.is_owner());
        let v = c.value("n", 0u64).unwrap();
        let ready = c.event("ready").unwrap();
        let go = c.event("go").unwrap();
        // Objects an attacher creates belong to the owner's prefix.
        let d = c.dict::<String, u64>("from-child").unwrap();
        d.insert("k".into(), 7).unwrap();
        v.update(|n| *n += 1).unwrap();
        ready.set();
        go.wait_timeout(Duration::from_secs(20)).unwrap();
        // The owner shut down: names are gone, our mappings still work.
        v.update(|n| *n += 1).unwrap();
        assert!(matches!(
            SharedMemoryManager::connect(&name),
            Err(ManagerError::NotFound { .. })
        ));
        drop(c); // removes nothing (there is nothing left anyway)
        return;
    }
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("attach");
    let (m, root, _g) = common::named_manager(&name);
    let v = m.value("n", 0u64).unwrap();
    let ready = m.event("ready").unwrap();
    let go = m.event("go").unwrap();
    let mut child = child_command(TEST, "attacher")
        .env(MANAGER_VAR, &name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ready.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(v.get().unwrap(), 1);
    let d = m.dict::<String, u64>("from-child").unwrap();
    assert_eq!(d.get("k").unwrap(), Some(7));
    m.shutdown().unwrap();
    assert!(tracked(&root).is_empty());
    go.set();
    let status = child.wait().unwrap();
    assert!(status.success(), "attacher failed: {status}");
    assert_eq!(v.get().unwrap(), 2);
}

#[test]
fn attachers_never_unlink() {
    const TEST: &str = "attachers_never_unlink";
    if child_role().as_deref() == Some("visitor") {
        let c = SharedMemoryManager::connect(&manager_from_env()).unwrap();
        c.value("existing", 0u32).unwrap().set(9).unwrap();
        c.lock("child-lock").unwrap();
        c.queue::<u8>("child-queue", 2, 64).unwrap();
        // Dropped at the end of the role (and the process exits): nothing may go.
        return;
    }
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    let v = m.value("existing", 0u32).unwrap();
    let local = SharedMemoryManager::connect(m.name()).unwrap();
    local.value("existing", 0u32).unwrap();
    drop(local);
    let before = tracked(&root);
    run_child(TEST, "visitor", &[(MANAGER_VAR, m.name())]);
    let after = tracked(&root);
    assert!(
        before.iter().all(|n| after.contains(n)),
        "{before:?} -> {after:?}"
    );
    assert!(
        after.len() > before.len(),
        "the child's queue is there: {after:?}"
    );
    assert_eq!(v.get().unwrap(), 9);
    assert!(m.lock("child-lock").is_ok());
    assert_eq!(m.queue::<u8>("child-queue", 2, 64).unwrap().qsize(), 0);
    let mut keys = m.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["child-lock", "child-queue", "existing"]);
    drop(m);
    assert!(tracked(&root).is_empty());
}

#[test]
fn four_processes_racing_get_one_object() {
    const TEST: &str = "four_processes_racing_get_one_object";
    if child_role().as_deref() == Some("racer") {
        let c = SharedMemoryManager::connect(&manager_from_env()).unwrap();
        let start = c.barrier("start", 4).unwrap();
        start.wait_timeout(Duration::from_secs(30)).unwrap();
        let v = c.value("counter", 0u64).unwrap();
        let d = c.dict::<String, u64>("tally").unwrap();
        for _ in 0..1000 {
            v.update(|n| *n += 1).unwrap();
        }
        d.update("racers".into(), |n| n.unwrap_or(0) + 1).unwrap();
        return;
    }
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    let children: Vec<_> = (0..4)
        .map(|_| {
            child_command(TEST, "racer")
                .env(MANAGER_VAR, m.name())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(m.value("counter", 0u64).unwrap().get().unwrap(), 4000);
    assert_eq!(
        m.dict::<String, u64>("tally")
            .unwrap()
            .get("racers")
            .unwrap(),
        Some(4)
    );
    // Losers unlinked their own dict: exactly one control segment `.o<hex>` is left.
    let objects: Vec<_> = tracked(&root)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&root)
                .and_then(|r| r.strip_prefix(".o"))
                .is_some_and(|r| r.len() == 16)
        })
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
}

#[test]
fn kind_and_type_mismatches_are_typed_errors() {
    if child_role().is_some() {
        return;
    }
    let m = SharedMemoryManager::new().unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    m.value("x", 1u64).unwrap();
    match m.value("x", 1u32) {
        Err(e @ ManagerError::WrongType { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("\"x\"") && s.contains("u32") && s.contains("u64"),
                "{s}"
            );
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    match m.lock("x") {
        Err(e @ ManagerError::WrongKind { .. }) => {
            let s = e.to_string();
            assert!(s.contains("Mutex") && s.contains("Value"), "{s}");
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    assert!(matches!(
        m.dict::<String, u64>("x"),
        Err(ManagerError::WrongKind { .. })
    ));
    m.dict::<String, u64>("d").unwrap();
    assert!(matches!(
        m.dict::<String, i64>("d"),
        Err(ManagerError::WrongType { .. })
    ));
    assert!(matches!(
        m.shareable_list("d", vec![]),
        Err(ManagerError::WrongKind { .. })
    ));
    assert!(matches!(
        m.open::<shm_sync::Event>("nothing"),
        Err(ManagerError::NoSuchKey { .. })
    ));
    // The failed calls registered nothing.
    assert_eq!(m.keys().unwrap().len(), 2);
}

#[test]
fn connect_to_a_dead_owner_is_owner_dead() {
    const TEST: &str = "connect_to_a_dead_owner_is_owner_dead";
    if child_role().as_deref() == Some("vanishing-owner") {
        let m = ManagerOptions::new()
            .name(manager_from_env())
            .tracker(false)
            .create()
            .unwrap();
        m.value("left", 5u8).unwrap();
        // Exit without shutting down: with no tracker the root stays behind.
        std::mem::forget(m);
        return;
    }
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("dead");
    let root = shm_manager::root_name(&name).unwrap();
    let _g = PrefixGuard(root.clone());
    run_child(TEST, "vanishing-owner", &[(MANAGER_VAR, &name)]);
    assert!(!tracked(&root).is_empty());
    match SharedMemoryManager::connect(&name) {
        Err(e @ ManagerError::OwnerDead { .. }) => assert!(e.to_string().contains(&name)),
        other => panic!("expected OwnerDead, got {other:?}"),
    }
    // A new owner of the name replaces the dead one's leftovers.
    let m = SharedMemoryManager::named(&name).unwrap();
    assert!(m.keys().unwrap().is_empty());
    let left = tracked(&root);
    assert!(
        left.iter().all(|n| !n[root.len()..].starts_with(".a")),
        "old arena left: {left:?}"
    );
    drop(m);
    assert!(tracked(&root).is_empty());
}

#[test]
fn a_live_owner_keeps_its_name() {
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("taken");
    let m = SharedMemoryManager::named(&name).unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    match SharedMemoryManager::named(&name) {
        Err(ManagerError::AlreadyExists { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(
        SharedMemoryManager::named("bad.name"),
        Err(ManagerError::InvalidName { .. })
    ));
}

#[test]
fn arenas_pack_many_counters() {
    if child_role().is_some() {
        return;
    }
    const N: usize = 100_000;
    let (m, root, _g) = common::manager();
    // Lock-guarded u64 counters: 64-byte compact header + 16-byte payload, in 64-byte
    // steps: 128 bytes each.
    let mut first = None;
    for i in 0..N {
        let c = m.mutex(&format!("c{i}"), i as u64).unwrap();
        if i == 0 {
            first = Some(c);
        } else if i == 1 {
            // One mapping per arena, not per object.
            let a = first.as_ref().unwrap().object().segment();
            assert!(Arc::ptr_eq(a, c.object().segment()));
        }
    }
    let s = m.arena_stats().unwrap();
    let per_object = s.used_bytes as f64 / N as f64;
    assert!(
        per_object <= 128.5,
        "{per_object} bytes per counter ({s:?})"
    );
    assert!(s.used_bytes <= s.capacity_bytes);
    let arenas = tracked(&root)
        .iter()
        .filter(|n| n[root.len()..].starts_with(".a"))
        .count();
    assert_eq!(arenas, s.arenas);
    assert!(s.arenas <= 20, "{s:?}");
    // A Value<T> keeps its lock in a cache line of its own: 256 bytes each.
    for i in 0..1000 {
        let v: Value<u64> = m.value(&format!("v{i}"), i).unwrap();
        assert_eq!(v.get().unwrap(), i);
    }
    let used = m.arena_stats().unwrap().used_bytes - s.used_bytes;
    assert!(used <= 1000 * 256, "{used} bytes for 1000 Values");
    // Another connection (as another process would) maps each arena once and agrees.
    let peer = SharedMemoryManager::connect(m.name()).unwrap();
    assert_eq!(*peer.mutex("c99999", 0u64).unwrap().lock().unwrap(), 99_999);
    assert_eq!(*peer.mutex("c7", 0u64).unwrap().lock().unwrap(), 7);
    assert_eq!(peer.value("v999", 0u64).unwrap().get().unwrap(), 999);
    drop(peer);
    drop(m);
    assert!(tracked(&root).is_empty());
}

#[test]
fn generic_path_places_by_kind() {
    if child_role().is_some() {
        return;
    }
    let m = SharedMemoryManager::new().unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    m.mutex("mx", 0u32).unwrap();
    m.rwlock("rw", 0u32).unwrap();
    m.condition("cv", 0u32).unwrap();
    m.barrier("b", 2).unwrap();
    m.array::<u8>("small", 64).unwrap();
    m.array::<u8>("big", 1 << 16).unwrap();
    m.list::<String>("v").unwrap();
    let d: ShareableDict<u8, u8> = m.get_or_create("d", Default::default()).unwrap();
    drop(d);
    let e: std::collections::HashMap<_, _> = m.entries().unwrap().into_iter().collect();
    for k in ["mx", "rw", "cv", "b", "small"] {
        assert!(e[k].in_arena(), "{k}: {:?}", e[k]);
    }
    for k in ["big", "v", "d"] {
        assert!(!e[k].in_arena(), "{k}: {:?}", e[k]);
    }
}

#[test]
fn connect_timeout_waits_for_the_manager_to_appear() {
    if child_role().is_some() {
        return;
    }
    let name = unique_manager("later");
    let _g = PrefixGuard(shm_manager::root_name(&name).unwrap());
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let maker = {
        let (name, connecting) = (name.clone(), current_tid());
        std::thread::spawn(move || {
            // Made only once the connect below is waiting for it.
            wait_until_blocked(Task::Thread(connecting), BlockedIn::Sleep);
            let m = SharedMemoryManager::named(&name).unwrap();
            m.value("x", 11u16).unwrap();
            // Kept until the client has read "x" (or given up).
            let _ = finished.recv();
            drop(m);
        })
    };
    let c = SharedMemoryManager::connect_timeout(&name, Duration::from_secs(60)).unwrap();
    // The root may be published before "x" is in it: poll, generously.
    let mut got = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(v) = c.open::<Value<u16>>("x") {
            got = Some(v.get().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(done);
    assert_eq!(got, Some(11));
    maker.join().unwrap();
    assert!(matches!(
        SharedMemoryManager::connect_timeout(&name, Duration::from_millis(20)),
        Err(ManagerError::NotFound { .. })
    ));
}

#[test]
fn an_attacher_creating_after_shutdown_leaves_nothing() {
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    let c = SharedMemoryManager::connect(m.name()).unwrap();
    m.shutdown().unwrap();
    // Its registry handle is still mapped, so the creation itself succeeds...
    for r in [
        c.value("late", 1u8).map(drop),
        c.dict::<u8, u8>("late-dict").map(drop),
    ] {
        // ...but the root is gone: what it made is removed and the call fails.
        assert!(matches!(r, Err(ManagerError::ShutDown { .. })), "{r:?}");
        assert_eq!(tracked(&root), Vec::<String>::new());
    }
}
