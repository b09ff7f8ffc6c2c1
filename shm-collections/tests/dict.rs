//! ShareableDict: the model test (proptest against HashMap, growth and compaction
//! included; in one process and split across processes), concurrency across
//! processes, limits and types.

use std::collections::HashMap;

mod common;

use proptest::prelude::*;
use shm_collections::{Limits, RegionError, ShareableDict};
use shm_core::SharedObject;
use shm_core::testing::{child_role, run_child, unique_name};

type D = ShareableDict<u64, Vec<u8>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Op {
    Insert(u64, Vec<u8>),
    Remove(u64),
    Update(u64, u8),
    GetOrInsert(u64, Vec<u8>),
    Clear,
    Extend(Vec<(u64, Vec<u8>)>),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u64..64;
    let val = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        8 => (key.clone(), val.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key.clone().prop_map(Op::Remove),
        3 => (key.clone(), any::<u8>()).prop_map(|(k, b)| Op::Update(k, b)),
        2 => (key.clone(), val.clone()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        1 => Just(Op::Clear),
        1 => proptest::collection::vec((key, val), 0..20).prop_map(Op::Extend),
    ]
}

fn apply(d: &D, model: &mut HashMap<u64, Vec<u8>>, op: &Op) {
    match op {
        Op::Insert(k, v) => assert_eq!(
            d.insert(*k, v.clone()).unwrap(),
            model.insert(*k, v.clone())
        ),
        Op::Remove(k) => assert_eq!(d.remove(k).unwrap(), model.remove(k)),
        Op::Update(k, b) => {
            let f = |old: Option<Vec<u8>>| {
                let mut v = old.unwrap_or_default();
                v.push(*b);
                v
            };
            let new = d.update(*k, f).unwrap();
            let m = f(model.get(k).cloned());
            model.insert(*k, m.clone());
            assert_eq!(new, m);
        }
        Op::GetOrInsert(k, v) => {
            let got = d.get_or_insert_with(*k, || v.clone()).unwrap();
            assert_eq!(&got, model.entry(*k).or_insert_with(|| v.clone()));
        }
        Op::Clear => {
            d.clear().unwrap();
            model.clear();
        }
        Op::Extend(pairs) => {
            d.extend(pairs.clone()).unwrap();
            model.extend(pairs.clone());
        }
    }
}

fn check(d: &D, model: &HashMap<u64, Vec<u8>>) {
    assert_eq!(d.len().unwrap(), model.len());
    let all: HashMap<_, _> = d.iter().unwrap().collect();
    assert_eq!(&all, model);
    for k in 0..64 {
        assert_eq!(d.get(&k).unwrap().as_ref(), model.get(&k));
    }
    let s = d.stats().unwrap();
    assert!(s.bytes_used <= s.capacity && s.garbage <= s.bytes_used);
}

/// What `apply` does to the model, without a dict (a child replays the ops before its
/// share to learn the state it must find).
fn apply_model(model: &mut HashMap<u64, Vec<u8>>, op: &Op) {
    match op {
        Op::Insert(k, v) => {
            model.insert(*k, v.clone());
        }
        Op::Remove(k) => {
            model.remove(k);
        }
        Op::Update(k, b) => model.entry(*k).or_default().push(*b),
        Op::GetOrInsert(k, v) => {
            model.entry(*k).or_insert_with(|| v.clone());
        }
        Op::Clear => model.clear(),
        Op::Extend(pairs) => model.extend(pairs.clone()),
    }
}

const SPLIT_TEST: &str = "dict_model_split_across_processes";

/// The model test's steps (see [`common::Replay`]).
const REPLAY: common::Replay<D, Op, HashMap<u64, Vec<u8>>> = common::Replay {
    apply_model,
    apply,
    check,
};

/// A child's share of a split run ([`common::Replay::child`]).
fn split_child() {
    REPLAY.child(|name| D::open(name).unwrap());
}

/// Runs `ops` on one dict in four quarters: parent, child, parent, child (see
/// [`common::Replay::run`]). Returns the dict's final stats.
fn run_split(ops: &[Op]) -> shm_collections::RegionStats {
    let d = D::create_named(&unique_name("dict-split")).unwrap();
    REPLAY.run(SPLIT_TEST, "dict-split-child", &d, d.name().unwrap(), ops);
    d.stats().unwrap()
}

#[test]
fn dict_model_split_across_processes() {
    if child_role().as_deref() == Some("dict-split-child") {
        split_child();
        return;
    }
    // A fixed sequence that surely grows and compacts in every share: 64 keys
    // overwritten with 200-byte values (garbage), removals, a clear, refills.
    let mut ops = Vec::new();
    for round in 0..6u8 {
        for k in 0..64u64 {
            ops.push(Op::Insert(k, vec![round; 200]));
        }
        for k in (0..64u64).step_by(3) {
            ops.push(Op::Remove(k));
            ops.push(Op::Update(k + 1, round));
        }
        if round == 3 {
            ops.push(Op::Clear);
        }
    }
    let stats = run_split(&ops);
    assert!(
        stats.generation >= 8,
        "expected growths and compactions: {stats:?}"
    );

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 8..120), |ops| {
            run_split(&ops);
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dict_matches_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        let d = D::create().unwrap();
        let peer = D::open(d.name().unwrap()).unwrap();
        let mut model = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            // Alternate handles: one of them always has a stale mapping after growth.
            apply(if i % 2 == 0 { &d } else { &peer }, &mut model, op);
        }
        check(&d, &model);
        check(&peer, &model);
    }
}

#[test]
fn grows_compacts_and_unlinks_old_segments() {
    let d = ShareableDict::<u64, u64>::create().unwrap();
    for i in 0..20_000u64 {
        d.insert(i, i).unwrap();
    }
    let s = d.stats().unwrap();
    assert!(s.generation >= 5, "{s:?}");
    assert_eq!(s.entries, 20_000);
    // Overwrite everything many times: garbage is reclaimed at the next growth.
    for round in 1..6u64 {
        for i in 0..20_000u64 {
            d.insert(i, i + round).unwrap();
        }
    }
    let s = d.stats().unwrap();
    assert!(s.capacity <= 4 << 20, "capacity stays bounded: {s:?}");
    for i in (0..20_000u64).step_by(997) {
        assert_eq!(d.get(&i).unwrap(), Some(i + 5));
    }
    // Only the current data segment exists.
    let name = d.name().unwrap().to_owned();
    let mut found: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.g")))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [shm_collections::region::current_data_segment(&name).unwrap()]
    );
    assert_eq!(
        shm_collections::region::parse_data_segment_name(&found[0])
            .unwrap()
            .generation,
        s.generation
    );
    drop(d);
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{}", found[0])).exists(),
        "dropping the creator removes the data segment"
    );
}

#[test]
fn limits_and_types_are_enforced() {
    let limits = Limits {
        max_key: 16,
        max_value: 64,
    };
    let d = <ShareableDict<String, Vec<u8>> as SharedObject>::create(limits).unwrap();
    d.insert("ok".into(), vec![1; 10]).unwrap();
    assert!(matches!(
        d.insert("k".repeat(40), vec![]),
        Err(RegionError::KeyTooLarge {
            len: 41,
            limit: 16,
            ..
        })
    ));
    assert!(matches!(
        d.insert("k".into(), vec![0; 100]),
        Err(RegionError::ValueTooLarge { limit: 64, .. })
    ));
    assert!(matches!(
        d.update("ok".into(), |_| vec![0; 100]),
        Err(RegionError::ValueTooLarge { .. })
    ));
    assert_eq!(
        d.get("ok").unwrap(),
        Some(vec![1; 10]),
        "nothing stored is lost"
    );
    assert_eq!(d.len().unwrap(), 1);
    let peer = ShareableDict::<String, Vec<u8>>::open(d.name().unwrap()).unwrap();
    assert_eq!(peer.limits(), limits);
    let err = ShareableDict::<String, String>::open(d.name().unwrap()).unwrap_err();
    assert!(
        matches!(err, RegionError::Shm(shm_core::Error::TypeMismatch { .. })),
        "{err}"
    );
    assert!(ShareableDict::<u64, Vec<u8>>::open(d.name().unwrap()).is_err());
    // A closure that uses the dict it updates: an error, not a deadlock.
    let r = d.update("ok".into(), |v| {
        assert!(matches!(
            peer.insert("x".into(), vec![]),
            Err(RegionError::Lock { .. })
        ));
        v.unwrap()
    });
    assert!(r.is_ok());
}

#[test]
fn anonymous_is_refused_with_a_typed_error() {
    let r = <ShareableDict<u8, u8> as SharedObject>::anonymous(Limits::default());
    assert!(matches!(r, Err(RegionError::Unsupported { .. })));
}

const KEYS: u64 = 300;
const ROUNDS: u64 = 200;

#[test]
fn four_writers_two_readers_and_exact_counters() {
    if let Some(role) = child_role() {
        let name = std::env::var("DICT_NAME").unwrap();
        let d = ShareableDict::<u64, u64>::open(&name).unwrap();
        let counters =
            ShareableDict::<String, u64>::open(&std::env::var("COUNTERS").unwrap()).unwrap();
        if let Some(w) = role.strip_prefix("writer") {
            let w: u64 = w.parse().unwrap();
            for i in 0..KEYS {
                // Disjoint keys per writer, and one shared range all of them write.
                d.insert((w + 1) * 1_000_000 + i, i).unwrap();
                d.insert(i, w).unwrap();
            }
            for r in 0..ROUNDS {
                counters
                    .update(format!("c{}", r % 3), |n| n.unwrap_or(0) + 1)
                    .unwrap();
            }
        } else {
            // Readers: every entry seen is whole and consistent with what writers write.
            for _ in 0..200 {
                for (k, v) in d.iter().unwrap() {
                    if k >= 1_000_000 {
                        assert_eq!(v, k % 1_000_000);
                    } else {
                        assert!(v < 4);
                    }
                }
                if let Some(v) = d.get(&7).unwrap() {
                    assert!(v < 4);
                }
            }
        }
        return;
    }
    let d = ShareableDict::<u64, u64>::create_named(&unique_name("dict4")).unwrap();
    let c = ShareableDict::<String, u64>::create_named(&unique_name("ctr")).unwrap();
    let test = "four_writers_two_readers_and_exact_counters";
    let envs = [
        ("DICT_NAME", d.name().unwrap().to_owned()),
        ("COUNTERS", c.name().unwrap().to_owned()),
    ];
    let roles = [
        "writer0", "writer1", "writer2", "writer3", "reader0", "reader1",
    ];
    let handles: Vec<_> = roles
        .iter()
        .map(|r| {
            let envs = envs.clone();
            let r = r.to_string();
            std::thread::spawn(move || run_child(test, &r, &envs))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(d.len().unwrap() as u64, KEYS * 5);
    for w in 0..4 {
        for i in 0..KEYS {
            assert_eq!(d.get(&((w + 1) * 1_000_000 + i)).unwrap(), Some(i));
        }
    }
    for i in 0..KEYS {
        assert!(d.get(&i).unwrap().unwrap() < 4);
    }
    let total: u64 = c.values().unwrap().iter().sum();
    assert_eq!(total, 4 * ROUNDS);
    assert_eq!(c.get("c0").unwrap(), Some(4 * ROUNDS.div_ceil(3)));
}

/// Reads run on a per-thread cache of the current mapping: threads of one process
/// that read while another thread grows and compacts the dict (each growth replacing
/// the handle's mapping) always get the right value, never one of a dropped mapping.
#[test]
fn threads_read_while_another_thread_grows() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let d = ShareableDict::<u64, u64>::create_named(&unique_name("dict-tgrow")).unwrap();
    for k in 0..100 {
        d.insert(k, k * 3).unwrap();
    }
    let g0 = d.stats().unwrap().generation;
    let (stop, published) = (AtomicBool::new(false), AtomicU64::new(0));
    let reads = std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut reads = 0u64;
                    // At least one round, even if the writer is done first.
                    loop {
                        let last = stop.load(Ordering::Acquire);
                        for k in 0..100 {
                            assert_eq!(d.get(&k).unwrap(), Some(k * 3));
                        }
                        // Every key the writer said it inserted is there.
                        let p = published.load(Ordering::Acquire);
                        if p > 0 {
                            assert_eq!(d.get(&(1_000_000 + p - 1)).unwrap(), Some(p - 1));
                        }
                        reads += 101;
                        if last {
                            break reads;
                        }
                    }
                })
            })
            .collect();
        for i in 0..20_000u64 {
            d.insert(1_000_000 + i, i).unwrap();
            published.store(i + 1, Ordering::Release);
            // Overwrites make garbage: compactions as well as growths.
            d.insert(i % 100, (i % 100) * 3).unwrap();
        }
        stop.store(true, Ordering::Release);
        readers.into_iter().map(|r| r.join().unwrap()).sum::<u64>()
    });
    let g1 = d.stats().unwrap().generation;
    assert!(g1 >= g0 + 5, "only {} new generations", g1 - g0);
    assert!(reads > 0);
    assert_eq!(d.len().unwrap(), 20_100);
}

/// More handles than a thread caches, handles dropped and new ones made: every read
/// goes to its own handle's data.
#[test]
fn many_handles_on_one_thread_read_their_own_data() {
    let dicts: Vec<_> = (0..9u64)
        .map(|j| {
            let d = ShareableDict::<u64, u64>::create_named(&unique_name("dict-ways")).unwrap();
            d.insert(1, j).unwrap();
            d
        })
        .collect();
    for round in 0..3 {
        for (j, d) in dicts.iter().enumerate() {
            assert_eq!(d.get(&1).unwrap(), Some(j as u64), "round {round}");
        }
    }
    // A second handle on the same object sees what the first writes, growth included.
    let other = ShareableDict::<u64, u64>::open(dicts[0].name().unwrap()).unwrap();
    assert_eq!(other.get(&1).unwrap(), Some(0));
    for k in 2..5_000 {
        dicts[0].insert(k, k).unwrap();
    }
    assert_eq!(other.get(&4_999).unwrap(), Some(4_999));
    drop(dicts);
    let fresh = ShareableDict::<u64, u64>::create_named(&unique_name("dict-ways")).unwrap();
    assert_eq!(fresh.get(&1).unwrap(), None);
    fresh.insert(1, 77).unwrap();
    assert_eq!(fresh.get(&1).unwrap(), Some(77));
    assert_eq!(other.get(&1).unwrap(), Some(0));
}

static INNER: std::sync::OnceLock<ShareableDict<u64, u64>> = std::sync::OnceLock::new();

/// A value whose decoding reads another dict on the same thread (a read inside a read).
#[derive(Debug, PartialEq, serde::Serialize)]
struct Looked(u64);

impl<'de> serde::Deserialize<'de> for Looked {
    fn deserialize<De: serde::Deserializer<'de>>(de: De) -> Result<Self, De::Error> {
        let k = u64::deserialize(de)?;
        let inner = INNER.get().expect("set by the test");
        // Growth of the inner dict here forces its slow path inside the outer read.
        inner.insert(k + 10_000, k).unwrap();
        Ok(Looked(inner.get(&k).unwrap().expect("inner key")))
    }
}

#[test]
fn a_read_inside_a_read_on_one_thread() {
    let inner = INNER.get_or_init(|| {
        ShareableDict::<u64, u64>::create_named(&unique_name("dict-inner")).unwrap()
    });
    let outer = ShareableDict::<u64, Looked>::create_named(&unique_name("dict-outer")).unwrap();
    for k in 0..2_000 {
        inner.insert(k, k * 5).unwrap();
        outer.insert(k, Looked(k)).unwrap();
    }
    let g0 = inner.stats().unwrap().generation;
    for k in 0..2_000 {
        assert_eq!(outer.get(&k).unwrap(), Some(Looked(k * 5)));
    }
    assert!(
        inner.stats().unwrap().generation > g0,
        "the inner dict grew"
    );
    inner.unlink().unwrap();
}

const GROW_TEST: &str = "reads_while_another_process_grows";

/// Another process grows and compacts the dict while this handle reads in a loop.
#[test]
fn reads_while_another_process_grows() {
    if child_role().as_deref() == Some("grower") {
        let d = ShareableDict::<u64, u64>::open(&std::env::var("DICT_NAME").unwrap()).unwrap();
        for i in 0..20_000u64 {
            d.insert(1_000_000 + i, i).unwrap();
            d.insert(i % 100, (i % 100) * 3).unwrap();
        }
        return;
    }
    let d = ShareableDict::<u64, u64>::create_named(&unique_name("dict-pgrow")).unwrap();
    for k in 0..100 {
        d.insert(k, k * 3).unwrap();
    }
    let g0 = d.stats().unwrap().generation;
    let mut child = shm_core::testing::child_command(GROW_TEST, "grower")
        .env("DICT_NAME", d.name().unwrap())
        .spawn()
        .unwrap();
    let mut rounds = 0u64;
    let status = loop {
        for k in 0..100 {
            assert_eq!(d.get(&k).unwrap(), Some(k * 3));
        }
        rounds += 1;
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    assert!(status.success(), "the grower failed: {status}");
    assert!(rounds > 0);
    assert!(d.stats().unwrap().generation >= g0 + 5);
    for i in (0..20_000u64).step_by(97) {
        assert_eq!(d.get(&(1_000_000 + i)).unwrap(), Some(i));
    }
}
