//! The conformance suite: every operation of every trait, written once against the
//! traits and run unchanged on both backends. Through the manager only the address
//! differs; the backends' own types run the same functions.

mod common;

use shm_remote::Error;
use shm_remote::Manager;
use shm_remote::prelude::*;
use std::time::Duration;

/// Every `SharedDict` operation.
pub fn dict_suite(d: &impl SharedDict<String, u64>) {
    assert!(d.is_empty().unwrap());
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(d.get("a").unwrap(), None);
    assert!(!d.contains_key("a").unwrap());
    assert_eq!(d.insert("a".into(), 1).unwrap(), None);
    assert_eq!(d.insert("a".into(), 2).unwrap(), Some(1));
    assert_eq!(d.get("a").unwrap(), Some(2));
    assert!(d.contains_key("a").unwrap());
    assert_eq!(d.len().unwrap(), 1);
    assert!(!d.is_empty().unwrap());
    d.extend([("b".to_string(), 10), ("c".to_string(), 20)])
        .unwrap();
    d.extend(std::iter::empty()).unwrap();
    assert_eq!(d.len().unwrap(), 3);
    assert_eq!(d.update("a".into(), |v| v.unwrap() + 5).unwrap(), 7);
    assert_eq!(
        d.update("new".into(), |v| v.unwrap_or(100) + 1).unwrap(),
        101
    );
    assert_eq!(d.get_or_insert_with("b".into(), || 999).unwrap(), 10);
    assert_eq!(d.get_or_insert_with("z".into(), || 5).unwrap(), 5);
    assert_eq!(d.get("z").unwrap(), Some(5));
    let mut all: Vec<(String, u64)> = d.iter().unwrap().collect();
    all.sort();
    assert_eq!(
        all,
        [
            ("a".into(), 7),
            ("b".into(), 10),
            ("c".into(), 20),
            ("new".into(), 101),
            ("z".into(), 5)
        ]
    );
    let mut keys = d.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "new", "z"]);
    let mut values = d.values().unwrap();
    values.sort();
    assert_eq!(values, [5, 7, 10, 20, 101]);
    assert_eq!(d.remove("b").unwrap(), Some(10));
    assert_eq!(d.remove("b").unwrap(), None);
    assert_eq!(d.len().unwrap(), 4);
    d.set_patience(Some(Duration::from_secs(3)));
    assert_eq!(d.patience(), Some(Duration::from_secs(3)));
    d.set_patience(None);
    assert_eq!(d.patience(), None);
    d.set_patience(Some(Duration::from_secs(10)));
    d.clear().unwrap();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.get("a").unwrap(), None);
    assert_eq!(d.iter().unwrap().count(), 0);
}

/// Every `SharedVec` operation.
pub fn vec_suite(v: &impl SharedVec<String>) {
    assert!(v.is_empty().unwrap());
    assert_eq!(v.pop().unwrap(), None);
    assert_eq!(v.get(0).unwrap(), None);
    assert_eq!(v.get(usize::MAX).unwrap(), None);
    v.push("a".into()).unwrap();
    v.push("b".into()).unwrap();
    v.extend(["c".to_string(), "d".to_string()]).unwrap();
    v.extend(std::iter::empty()).unwrap();
    assert_eq!(v.len().unwrap(), 4);
    assert_eq!(v.get(1).unwrap().as_deref(), Some("b"));
    assert_eq!(v.set(1, "B".into()).unwrap(), "b");
    assert!(matches!(
        v.set(4, "x".into()),
        Err(Error::IndexOutOfRange {
            index: 4,
            len: 4,
            ..
        })
    ));
    assert!(matches!(
        v.set(usize::MAX, "x".into()),
        Err(Error::IndexOutOfRange { len: 4, .. })
    ));
    assert_eq!(v.update(0, |s| s + "!").unwrap(), "a!");
    assert!(matches!(
        v.update(9, |s| s),
        Err(Error::IndexOutOfRange {
            index: 9,
            len: 4,
            ..
        })
    ));
    v.insert(0, "first".into()).unwrap();
    v.insert(2, "mid".into()).unwrap();
    v.insert(6, "end".into()).unwrap();
    assert!(matches!(
        v.insert(99, "x".into()),
        Err(Error::IndexOutOfRange {
            index: 99,
            len: 7,
            ..
        })
    ));
    assert_eq!(
        v.iter().unwrap().collect::<Vec<_>>(),
        ["first", "a!", "mid", "B", "c", "d", "end"]
    );
    assert_eq!(v.remove(2).unwrap(), "mid");
    assert_eq!(v.remove(0).unwrap(), "first");
    assert_eq!(v.remove(4).unwrap(), "end");
    assert!(matches!(
        v.remove(4),
        Err(Error::IndexOutOfRange {
            index: 4,
            len: 4,
            ..
        })
    ));
    assert_eq!(v.iter().unwrap().collect::<Vec<_>>(), ["a!", "B", "c", "d"]);
    assert_eq!(v.pop().unwrap().as_deref(), Some("d"));
    assert_eq!(v.len().unwrap(), 3);
    v.set_patience(Some(Duration::from_secs(4)));
    assert_eq!(v.patience(), Some(Duration::from_secs(4)));
    v.clear().unwrap();
    assert!(v.is_empty().unwrap());
    // A long tail moved by insert/remove (the scripts move it in chunks).
    v.extend((0..2500).map(|i| i.to_string())).unwrap();
    v.insert(1, "x".into()).unwrap();
    assert_eq!(v.remove(1).unwrap(), "x");
    assert_eq!(v.len().unwrap(), 2500);
    assert_eq!(v.get(2499).unwrap().as_deref(), Some("2499"));
    v.clear().unwrap();
}

/// Every `SharedNamespace` operation.
pub fn namespace_suite(ns: &impl SharedNamespace) {
    assert!(ns.is_empty().unwrap());
    assert_eq!(ns.get::<u8>("x").unwrap(), None);
    ns.set("x", &1.5f64).unwrap();
    assert_eq!(ns.get::<f64>("x").unwrap(), Some(1.5));
    match ns.get::<u8>("x") {
        Err(Error::TypeMismatch {
            attr,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (attr.as_str(), expected.as_str(), found.as_str()),
                ("x", "u8", "f64")
            );
        }
        other => panic!("expected a TypeMismatch, found {other:?}"),
    }
    ns.set("x", &vec![1u8, 2]).unwrap();
    assert_eq!(ns.get::<Vec<u8>>("x").unwrap(), Some(vec![1, 2]));
    assert!(ns.contains("x").unwrap() && !ns.contains("y").unwrap());
    assert_eq!(
        ns.update("log", |v: Option<Vec<String>>| {
            let mut v = v.unwrap_or_default();
            v.push("a".into());
            v
        })
        .unwrap(),
        ["a"]
    );
    assert!(matches!(
        ns.update("x", |v: Option<u32>| v.unwrap_or(0)),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(ns.get::<Vec<u8>>("x").unwrap(), Some(vec![1, 2])); // unchanged
    let mut attrs = ns.attrs().unwrap();
    attrs.sort();
    assert_eq!(attrs, ["log", "x"]);
    assert_eq!(ns.len().unwrap(), 2);
    assert!(ns.remove("x").unwrap());
    assert!(!ns.remove("x").unwrap());
    assert_eq!(ns.len().unwrap(), 1);
}

/// Every `SharedValue` operation (created with 7).
pub fn value_suite(v: &impl SharedValue<u64>) {
    assert_eq!(v.get().unwrap(), 7);
    v.set(9).unwrap();
    assert_eq!(v.get().unwrap(), 9);
    assert_eq!(v.update(|x| std::mem::replace(x, 1)).unwrap(), 9);
    assert_eq!(
        v.update(|x| {
            *x += 1;
            *x
        })
        .unwrap(),
        2
    );
    assert_eq!(v.get().unwrap(), 2);
}

/// The locks, events, semaphores, barriers and queues through the manager (their full
/// suites on both backends are in `remote_sync.rs` and `remote_queue.rs`).
fn sync_and_queue_suite(m: &Manager) {
    let short = Duration::from_millis(50);
    let lk = m.lock("lk").unwrap();
    assert!(!lk.is_locked().unwrap());
    {
        let _g = lk
            .lock_timeout(Duration::from_secs(5))
            .map_err(|e| e.into_error("lk"))
            .unwrap();
        assert!(lk.is_locked().unwrap());
    }
    assert!(!lk.is_locked().unwrap());
    let rl = m.rlock("rl").unwrap();
    {
        let _a = rl.lock().map_err(|e| e.into_error("rl")).unwrap();
        let _b = rl.try_lock().map_err(|e| e.into_error("rl")).unwrap(); // re-entrant
    }
    let ev = m.event("ev").unwrap();
    assert!(!ev.is_set().unwrap());
    assert!(matches!(ev.wait_timeout(short), Err(Error::Timeout { .. })));
    ev.set().unwrap();
    ev.wait().unwrap();
    ev.clear().unwrap();
    assert!(!ev.is_set().unwrap());
    let sem = m.semaphore("sem", 2).unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    sem.acquire().unwrap();
    sem.try_acquire().unwrap();
    assert!(matches!(sem.try_acquire(), Err(Error::Timeout { .. })));
    assert!(matches!(
        sem.acquire_timeout(short),
        Err(Error::Timeout { .. })
    ));
    sem.release().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    let bar = m.barrier("bar", 1).unwrap();
    assert_eq!(bar.parties().unwrap(), 1);
    bar.wait().unwrap();
    assert!(!bar.broken().unwrap());
    let q = m.queue::<String>("q", 0).unwrap();
    assert!(q.empty().unwrap());
    q.put(&"a".to_string()).unwrap();
    q.put_many(&["b".to_string(), "c".to_string()]).unwrap();
    assert_eq!(q.qsize().unwrap(), 3);
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.get_many(5).unwrap(), ["b", "c"]);
    assert!(matches!(
        q.get_timeout(short),
        Err(Error::Empty { .. } | Error::Timeout { .. })
    ));
    let jq = m.joinable_queue::<u32>("jq", 0).unwrap();
    jq.put(&7).unwrap();
    assert_eq!(jq.unfinished_tasks().unwrap(), 1);
    assert_eq!(jq.get().unwrap(), 7);
    jq.task_done().unwrap();
    jq.join_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(jq.unfinished_tasks().unwrap(), 0);
}

/// The whole suite through a manager: the only input is the address.
fn manager_suite(address: &str) {
    let m = Manager::create(address).unwrap();
    dict_suite(&m.dict::<String, u64>("d").unwrap());
    vec_suite(&m.list::<String>("v").unwrap());
    namespace_suite(&m.namespace("ns").unwrap());
    value_suite(&m.value("val", 7u64).unwrap());
    // Reopening by key gives the same object; another type is WrongType on both.
    m.dict::<String, u64>("d")
        .unwrap()
        .insert("k".into(), 1)
        .unwrap();
    assert_eq!(
        m.dict::<String, u64>("d").unwrap().get("k").unwrap(),
        Some(1)
    );
    assert_eq!(m.value("val", 0u64).unwrap().get().unwrap(), 2);
    assert!(matches!(
        m.dict::<String, i32>("d"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        m.list::<String>("d"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(m.value("val", 0u32), Err(Error::WrongType { .. })));
    assert!(matches!(m.vec::<u8>("v"), Err(Error::WrongType { .. })));
    sync_and_queue_suite(&m);
    let mut keys = m.keys().unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bar", "d", "ev", "jq", "lk", "ns", "q", "rl", "sem", "v", "val"
        ]
    );
    // A second handle on the manager from its address sees the same objects.
    let peer = Manager::connect(&m.address()).unwrap();
    assert_eq!(
        peer.dict::<String, u64>("d").unwrap().get("k").unwrap(),
        Some(1)
    );
}

#[test]
fn conformance_local_address() {
    manager_suite(&common::local_name("conf"));
}

#[test]
fn conformance_redis_address() {
    let server = common::server();
    manager_suite(&server.url("conf"));
}

#[test]
fn conformance_backend_types() {
    // shm_collections' own types.
    dict_suite(&shm_collections::ShareableDict::<String, u64>::create().unwrap());
    vec_suite(&shm_collections::ShareableVec::<String>::create().unwrap());
    namespace_suite(&shm_collections::Namespace::create().unwrap());
    value_suite(&shm_collections::Value::create(7u64).unwrap());
    // This crate's Redis types.
    let server = common::server();
    let m = shm_remote::RedisManager::open(&server.url("types").parse().unwrap(), None).unwrap();
    dict_suite(&shm_remote::ShareableDict::<String, u64>::open(&m, "d").unwrap());
    vec_suite(&shm_remote::ShareableVec::<String>::open(&m, "v").unwrap());
    namespace_suite(&shm_remote::Namespace::open(&m, "ns").unwrap());
    value_suite(&shm_remote::Value::open(&m, "val", 7u64).unwrap());
    // 4 type tags, the namespace and the value (the dict and vec ended cleared: no key).
    assert_eq!(m.clear_namespace().unwrap(), 6);
    assert!(m.keys().unwrap().is_empty());
}
