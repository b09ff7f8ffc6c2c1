//! ShareableVec: proptest against Vec (growth and rebuilds included; two handles, and
//! split across processes), processes pushing and updating concurrently, kill -9 of a
//! pusher, random bytes.

use std::process::Stdio;
use std::time::Duration;

mod common;

use proptest::prelude::*;
use shm_collections::{RegionError, ShareableVec};
use shm_core::Segment;
use shm_core::testing::{child_command, child_role, run_child, unique_name};

type V = ShareableVec<Vec<u16>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Op {
    Push(Vec<u16>),
    Pop,
    Insert(usize, Vec<u16>),
    Remove(usize),
    Set(usize, Vec<u16>),
    Update(usize, u16),
    Extend(Vec<Vec<u16>>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let val = proptest::collection::vec(any::<u16>(), 0..80);
    prop_oneof![
        8 => val.clone().prop_map(Op::Push),
        3 => Just(Op::Pop),
        2 => (0usize..60, val.clone()).prop_map(|(i, v)| Op::Insert(i, v)),
        2 => (0usize..60).prop_map(Op::Remove),
        3 => (0usize..60, val.clone()).prop_map(|(i, v)| Op::Set(i, v)),
        3 => (0usize..60, any::<u16>()).prop_map(|(i, b)| Op::Update(i, b)),
        1 => proptest::collection::vec(val, 0..30).prop_map(Op::Extend),
        1 => Just(Op::Clear),
    ]
}

fn apply(v: &V, model: &mut Vec<Vec<u16>>, op: &Op) {
    let oob = |r: Result<_, RegionError>| matches!(r, Err(RegionError::IndexOutOfRange { .. }));
    match op {
        Op::Push(x) => {
            v.push(x.clone()).unwrap();
            model.push(x.clone());
        }
        Op::Pop => assert_eq!(v.pop().unwrap(), model.pop()),
        Op::Insert(i, x) if *i <= model.len() => {
            v.insert(*i, x.clone()).unwrap();
            model.insert(*i, x.clone());
        }
        Op::Insert(i, x) => assert!(oob(v.insert(*i, x.clone()).map(|_| ()))),
        Op::Remove(i) if *i < model.len() => assert_eq!(v.remove(*i).unwrap(), model.remove(*i)),
        Op::Remove(i) => assert!(oob(v.remove(*i).map(|_| ()))),
        Op::Set(i, x) if *i < model.len() => {
            assert_eq!(
                v.set(*i, x.clone()).unwrap(),
                std::mem::replace(&mut model[*i], x.clone())
            )
        }
        Op::Set(i, x) => assert!(oob(v.set(*i, x.clone()).map(|_| ()))),
        Op::Update(i, b) if *i < model.len() => {
            let new = v
                .update(*i, |mut x| {
                    x.push(*b);
                    x
                })
                .unwrap();
            model[*i].push(*b);
            assert_eq!(new, model[*i]);
        }
        Op::Update(i, _) => assert!(oob(v.update(*i, |x| x).map(|_| ()))),
        Op::Extend(xs) => {
            v.extend(xs.clone()).unwrap();
            model.extend(xs.clone());
        }
        Op::Clear => {
            v.clear().unwrap();
            model.clear();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn vec_matches_std_vec(ops in proptest::collection::vec(op(), 1..150)) {
        let v = V::create().unwrap();
        let peer = V::open(v.name().unwrap()).unwrap();
        let mut model = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            apply(if i % 2 == 0 { &v } else { &peer }, &mut model, op);
        }
        for h in [&v, &peer] {
            prop_assert_eq!(h.len().unwrap(), model.len());
            prop_assert_eq!(&h.iter().unwrap().collect::<Vec<_>>(), &model);
            for (i, x) in model.iter().enumerate() {
                prop_assert_eq!(h.get(i).unwrap(), Some(x.clone()));
            }
            prop_assert_eq!(h.get(model.len()).unwrap(), None);
        }
    }
}

/// What `apply` does to the model, without a vec (a child replays the ops before its
/// share to learn the state it must find).
fn apply_model(model: &mut Vec<Vec<u16>>, op: &Op) {
    match op {
        Op::Push(x) => model.push(x.clone()),
        Op::Pop => {
            model.pop();
        }
        Op::Insert(i, x) if *i <= model.len() => model.insert(*i, x.clone()),
        Op::Remove(i) if *i < model.len() => {
            model.remove(*i);
        }
        Op::Set(i, x) if *i < model.len() => model[*i] = x.clone(),
        Op::Update(i, b) if *i < model.len() => model[*i].push(*b),
        Op::Extend(xs) => model.extend(xs.clone()),
        Op::Clear => model.clear(),
        Op::Insert(..) | Op::Remove(_) | Op::Set(..) | Op::Update(..) => {}
    }
}

fn check_vec(v: &V, model: &[Vec<u16>]) {
    assert_eq!(v.len().unwrap(), model.len());
    assert_eq!(v.iter().unwrap().collect::<Vec<_>>(), model);
    for (i, x) in model.iter().enumerate() {
        assert_eq!(v.get(i).unwrap().as_ref(), Some(x));
    }
    assert_eq!(v.get(model.len()).unwrap(), None);
}

const SPLIT_TEST: &str = "vec_model_split_across_processes";

/// The model test's steps (see [`common::Replay`]).
const REPLAY: common::Replay<V, Op, Vec<Vec<u16>>> = common::Replay {
    apply_model,
    apply,
    check: |v, m| check_vec(v, m),
};

/// A child's share of a split run ([`common::Replay::child`]).
fn split_child() {
    REPLAY.child(|name| V::open(name).unwrap());
}

/// Runs `ops` on one vec in four quarters: parent, child, parent, child (see
/// [`common::Replay::run`]). Returns the vec's final stats.
fn run_split(ops: &[Op]) -> shm_collections::RegionStats {
    let v = V::create_named(&unique_name("vec-split")).unwrap();
    REPLAY.run(SPLIT_TEST, "vec-split-child", &v, v.name().unwrap(), ops);
    v.stats().unwrap()
}

#[test]
fn vec_model_split_across_processes() {
    if child_role().as_deref() == Some("vec-split-child") {
        split_child();
        return;
    }
    // A fixed sequence that surely grows and compacts in every share: pushes of
    // 100-element values, overwrites (garbage), middle inserts and removes, a clear.
    let mut ops = Vec::new();
    for round in 0..6u16 {
        for _ in 0..40 {
            ops.push(Op::Push(vec![round; 100]));
        }
        for i in (0..40).step_by(3) {
            ops.push(Op::Set(i, vec![round + 1; 100]));
            ops.push(Op::Update(i + 1, round));
        }
        ops.push(Op::Insert(5, vec![7; 10]));
        ops.push(Op::Remove(9));
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
        .run(&proptest::collection::vec(op(), 8..150), |ops| {
            run_split(&ops);
            Ok(())
        })
        .unwrap();
}

const PUSHES: u64 = 500;

#[test]
fn processes_push_and_update_concurrently() {
    if let Some(role) = child_role() {
        let v = ShareableVec::<u64>::open(&std::env::var("VEC").unwrap()).unwrap();
        if let Some(w) = role.strip_prefix("pusher") {
            let w: u64 = w.parse().unwrap();
            for i in 0..PUSHES {
                v.push(w << 32 | i).unwrap();
                v.update(0, |c| c + 1).unwrap();
            }
        } else {
            // A reader: every snapshot's elements of one pusher appear in push order.
            for _ in 0..100 {
                let all: Vec<u64> = v.iter().unwrap().collect();
                for w in 1..=3u64 {
                    let mine: Vec<u64> =
                        all[1..].iter().filter(|x| *x >> 32 == w).copied().collect();
                    assert!(
                        mine.windows(2).all(|p| p[0] + 1 == p[1]),
                        "pusher {w} out of order"
                    );
                }
            }
        }
        return;
    }
    let v = ShareableVec::<u64>::create_named(&unique_name("vec")).unwrap();
    v.push(0).unwrap(); // element 0: a counter every pusher increments
    let envs = [("VEC", v.name().unwrap().to_owned())];
    let test = "processes_push_and_update_concurrently";
    let kids: Vec<_> = ["pusher1", "pusher2", "pusher3", "reader"]
        .into_iter()
        .map(|r| {
            let envs = envs.clone();
            std::thread::spawn(move || run_child(test, r, &envs))
        })
        .collect();
    for k in kids {
        k.join().unwrap();
    }
    assert_eq!(v.len().unwrap() as u64, 1 + 3 * PUSHES);
    assert_eq!(v.get(0).unwrap(), Some(3 * PUSHES));
    let mut rest: Vec<u64> = v.iter().unwrap().skip(1).collect();
    rest.sort();
    let mut want: Vec<u64> = (1..=3u64)
        .flat_map(|w| (0..PUSHES).map(move |i| w << 32 | i))
        .collect();
    want.sort();
    assert_eq!(rest, want);
}

/// Element `k` of the chaos list: `k` and `k % 200` padding bytes.
fn element(k: u64) -> Vec<u8> {
    let mut e = k.to_le_bytes().to_vec();
    e.resize(8 + (k % 200) as usize, k as u8);
    e
}

/// What a middle insert puts in (and the paired remove takes out again).
const MARKER: [u8; 300] = [0xee; 300];

fn next_k(v: &ShareableVec<Vec<u8>>) -> u64 {
    match v.len().unwrap() {
        0 => 0,
        n => u64::from_le_bytes(v.get(n - 1).unwrap().unwrap()[..8].try_into().unwrap()) + 1,
    }
}

#[test]
fn chaos_kill_vec_pushers() {
    if child_role().is_some() {
        let v = ShareableVec::<Vec<u8>>::open(&std::env::var("VEC").unwrap()).unwrap();
        eprintln!("READY");
        loop {
            let k = next_k(&v);
            v.push(element(k)).unwrap();
            if k % 5 == 0 {
                // Middle inserts rebuild the index (a growth): often killed there.
                let mid = v.len().unwrap() / 2;
                v.insert(mid, MARKER.to_vec()).unwrap();
                v.remove(mid).unwrap();
            }
        }
    }
    let trials: u32 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let v = ShareableVec::<Vec<u8>>::create_named(&unique_name("vec-chaos")).unwrap();
    let mut rng = shm_core::testing::Rng::seeded(u64::from(std::process::id()) | 1);
    for trial in 0..trials {
        let mut child = child_command("chaos_kill_vec_pushers", "pusher")
            .env("VEC", v.name().unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(
            shm_core::testing::stderr_line(&mut child),
            "READY",
            "trial {trial}"
        );
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        // The next writer proceeds; every pushed element is there once, whole and in
        // order; an interrupted middle insert left at most one marker per kill.
        let k = next_k(&v);
        v.push(element(k)).unwrap();
        let all: Vec<Vec<u8>> = v.iter().unwrap().collect();
        assert_eq!(all.len(), v.len().unwrap());
        let markers = all.iter().filter(|e| e[..] == MARKER[..]).count();
        let normal: Vec<&Vec<u8>> = all.iter().filter(|e| e[..] != MARKER[..]).collect();
        assert!(
            markers <= trial as usize + 1,
            "trial {trial}: {markers} markers"
        );
        assert_eq!(
            normal.len() as u64,
            k + 1,
            "trial {trial}: elements lost or doubled"
        );
        for (i, e) in normal.iter().enumerate() {
            assert_eq!(**e, element(i as u64), "trial {trial}: element {i}");
        }
    }
}

#[test]
fn random_bytes_give_errors_only() {
    let mut s = 0x5eed_u64 ^ u64::from(std::process::id());
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut errors = 0;
    for _ in 0..200 {
        let v = ShareableVec::<String>::create().unwrap();
        v.extend((0..50).map(|i| format!("item {i}"))).unwrap();
        let name = v.name().unwrap().to_owned();
        let generation = v.stats().unwrap().generation;
        let data_name = shm_collections::region::current_data_segment(&name).unwrap();
        let inc = shm_collections::region::parse_data_segment_name(&data_name)
            .unwrap()
            .incarnation;
        let data = Segment::open(&data_name).unwrap();
        for _ in 0..1 + next() % 6 {
            let at = next() as usize % data.len();
            let bytes: Vec<u8> = (0..(1 + next() % 8).min((data.len() - at) as u64))
                .map(|_| next() as u8)
                .collect();
            data.write_at(at, &bytes).unwrap();
        }
        for i in 0..55 {
            errors += usize::from(v.get(i).is_err());
        }
        errors += usize::from(v.iter().is_err());
        errors += usize::from(v.push("x".into()).is_err());
        errors += usize::from(v.pop().is_err());
        errors += usize::from(v.insert(3, "y".into()).is_err());
        errors += usize::from(v.update(1, |s| s + "!").is_err());
        drop(v);
        for g in generation..generation + 3 {
            let _ = shm_core::unlink(&shm_collections::region::data_segment_name(&name, inc, g));
        }
    }
    assert!(errors > 0);
}
