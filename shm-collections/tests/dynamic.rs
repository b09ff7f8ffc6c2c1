//! `Dynamic` through the shared collections: round trips through a
//! `ShareableDict<Dynamic, Dynamic>` and a `Queue<Dynamic>`, and a stored value nested
//! deeper than `MAX_DEPTH` (what a hostile writer can store) is a typed decode error on
//! read, not a panic or a stack overflow.

use proptest::prelude::*;
use shm_collections::dynamic::MAX_DEPTH;
use shm_collections::{Dynamic, Queue, QueueError, RegionError, ShareableDict};

fn leaf() -> impl Strategy<Value = Dynamic> {
    prop_oneof![
        Just(Dynamic::None),
        any::<bool>().prop_map(Dynamic::Bool),
        any::<i64>().prop_map(Dynamic::Int),
        any::<f64>().prop_map(Dynamic::Float),
        ".{0,12}".prop_map(Dynamic::Str),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Dynamic::Bytes),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Dynamic::Pickled),
    ]
}

fn dynamic() -> impl Strategy<Value = Dynamic> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Dynamic::Tuple),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Dynamic::List),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Dynamic::Dict),
        ]
    })
}

fn nested(levels: usize) -> Dynamic {
    let mut v = Dynamic::Int(1);
    for _ in 0..levels {
        v = Dynamic::List(vec![v]);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dict_round_trips(pairs in proptest::collection::vec((dynamic(), dynamic()), 0..24)) {
        let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
        let peer = ShareableDict::<Dynamic, Dynamic>::open(d.name().unwrap()).unwrap();
        let mut model = std::collections::BTreeMap::new();
        for (k, v) in &pairs {
            prop_assert_eq!(d.insert(k.clone(), v.clone()).unwrap(), model.insert(k.clone(), v.clone()));
        }
        for (k, v) in &model {
            let got = peer.get(k).unwrap();
            prop_assert_eq!(got.as_ref(), Some(v));
        }
        let mut all: Vec<_> = peer.iter().unwrap().collect();
        all.sort();
        prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn queue_round_trips(values in proptest::collection::vec(dynamic(), 0..24)) {
        let q = Queue::<Dynamic>::create(64, 1 << 16).unwrap();
        let peer = Queue::<Dynamic>::open(q.name().unwrap()).unwrap();
        for v in &values {
            q.put(v).unwrap();
        }
        for v in &values {
            prop_assert_eq!(&peer.get_nowait().unwrap(), v);
        }
    }
}

#[test]
fn typed_and_dynamic_keys_do_not_mix() {
    // One dict, one type: a Dynamic dict does not open as <String, i64>, and the
    // three "ones" are three keys.
    let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
    assert!(ShareableDict::<String, i64>::open(d.name().unwrap()).is_err());
    d.insert(Dynamic::Int(1), "int".into()).unwrap();
    d.insert(Dynamic::Float(1.0), "float".into()).unwrap();
    d.insert(Dynamic::Bool(true), "bool".into()).unwrap();
    assert_eq!(d.len().unwrap(), 3);
    assert_eq!(d.get(&Dynamic::Int(1)).unwrap(), Some("int".into()));
}

#[test]
fn counters_in_a_dynamic_dict() {
    let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
    for _ in 0..10 {
        d.update("hits".into(), |old| {
            Dynamic::Int(old.and_then(|v| v.as_i64()).unwrap_or(0) + 1)
        })
        .unwrap();
    }
    assert_eq!(
        d.get(&Dynamic::from("hits")).unwrap(),
        Some(Dynamic::Int(10))
    );
}

#[test]
fn overdeep_stored_value_is_a_decode_error() {
    // Encoding has no depth limit (the writer's own data), decoding does: what another
    // process stored too deep reads as a typed error naming the expected type.
    let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
    d.insert("ok".into(), nested(MAX_DEPTH - 1)).unwrap();
    d.insert("deep".into(), nested(MAX_DEPTH + 5)).unwrap();
    assert_eq!(
        d.get(&Dynamic::from("ok")).unwrap(),
        Some(nested(MAX_DEPTH - 1))
    );
    match d.get(&Dynamic::from("deep")) {
        Err(e @ RegionError::Decode { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("Dynamic") && msg.contains("nesting"), "{msg}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(matches!(d.iter(), Err(RegionError::Decode { .. })));
    // The dict goes on working: `set` and `discard` do not read the old value.
    assert!(d.set(&"deep".into(), &Dynamic::None).unwrap());
    d.insert("deep2".into(), nested(MAX_DEPTH + 5)).unwrap();
    assert!(d.discard(&Dynamic::from("deep2")).unwrap());
    assert_eq!(d.iter().unwrap().count(), 2);

    let q = Queue::<Dynamic>::create(4, 1 << 16).unwrap();
    q.put(&nested(MAX_DEPTH + 5)).unwrap();
    q.put(&Dynamic::Int(2)).unwrap();
    assert!(matches!(q.get_nowait(), Err(QueueError::Decode { .. })));
    assert_eq!(q.get_nowait().unwrap(), Dynamic::Int(2));
}

#[test]
fn compare_and_set_counters_lose_nothing() {
    // Optimistic increments from four threads, each with its own handle: read, compute
    // outside the lock, compare-and-set, retry on a conflict.
    let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
    let name = d.name().unwrap().to_owned();
    let key = Dynamic::from("n");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (name, key) = (name.clone(), key.clone());
            s.spawn(move || {
                let d = ShareableDict::<Dynamic, Dynamic>::open(&name).unwrap();
                for _ in 0..200 {
                    loop {
                        let old = d.get(&key).unwrap();
                        let n = old.as_ref().and_then(Dynamic::as_i64).unwrap_or(0);
                        if d.compare_and_set(&key, old.as_ref(), Some(&Dynamic::Int(n + 1)))
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(d.get(&key).unwrap(), Some(Dynamic::Int(800)));
}

#[test]
fn vec_edit_is_atomic_for_readers() {
    // A reader polling while a writer reverses a long vec sees either order, whole.
    use shm_collections::ShareableVec;
    let v = ShareableVec::<Dynamic>::create().unwrap();
    v.extend((0..200).map(Dynamic::Int)).unwrap();
    let name = v.name().unwrap().to_owned();
    let fwd: Vec<Dynamic> = (0..200).map(Dynamic::Int).collect();
    let back: Vec<Dynamic> = fwd.iter().rev().cloned().collect();
    std::thread::scope(|s| {
        let r = s.spawn(|| {
            let peer = ShareableVec::<Dynamic>::open(&name).unwrap();
            for _ in 0..300 {
                let now: Vec<Dynamic> = peer.iter().unwrap().collect();
                assert!(now == fwd || now == back);
            }
        });
        for _ in 0..50 {
            v.edit(|items| items.reverse()).unwrap();
        }
        r.join().unwrap();
    });
}

#[test]
fn try_set_does_not_wait_for_a_held_lock() {
    let d = ShareableDict::<Dynamic, Dynamic>::create().unwrap();
    let name = d.name().unwrap().to_owned();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let d = &d;
        s.spawn(move || {
            d.update("k".into(), |_| {
                held_tx.send(()).unwrap();
                done_rx.recv().unwrap(); // hold the writer lock until told
                Dynamic::Int(1)
            })
            .unwrap();
        });
        held_rx.recv().unwrap();
        let peer = ShareableDict::<Dynamic, Dynamic>::open(&name).unwrap();
        assert_eq!(peer.try_set(&"x".into(), &Dynamic::None).unwrap(), None);
        done_tx.send(()).unwrap();
    });
    assert_eq!(d.try_set(&"x".into(), &Dynamic::None).unwrap(), Some(false));
    assert_eq!(d.get(&Dynamic::from("k")).unwrap(), Some(Dynamic::Int(1)));
}
