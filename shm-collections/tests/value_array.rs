//! Value, RawValue, AtomicValue, Array and RawArray across real processes, after a
//! kill -9, against a Vec model, and with damaged segments.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use shm_collections::{Array, AtomicValue, CellError, RawArray, RawValue, Value};
use shm_core::testing::{child_command, child_role, env, run_child};
use shm_sync::LockError;

const WORKERS: usize = 4;
const INCREMENTS: u64 = 5_000;

/// Runs [`WORKERS`] children of `test` in `role` at the same time, each given the object
/// `name` in `SHM_NAME`, and checks that every one succeeded.
fn run_at_once(test: &str, role: &str, name: &str) {
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            child_command(test, role)
                .env("SHM_NAME", name)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

#[test]
fn locked_increments_across_processes_are_exact() {
    if let Some(role) = child_role() {
        assert_eq!(role, "incrementer");
        let v: Value<u64> = Value::open(&env("SHM_NAME")).unwrap();
        for _ in 0..INCREMENTS {
            // A read-modify-write that loses updates unless the lock excludes the others.
            v.update(|x| {
                let seen = *x;
                std::hint::spin_loop();
                *x = seen + 1;
            })
            .unwrap();
        }
        return;
    }
    let v = Value::create(0u64).unwrap();
    run_at_once(
        "locked_increments_across_processes_are_exact",
        "incrementer",
        v.name().unwrap(),
    );
    assert_eq!(v.get().unwrap(), WORKERS as u64 * INCREMENTS);
}

#[test]
fn atomic_increments_across_processes_are_exact() {
    if let Some(role) = child_role() {
        assert_eq!(role, "adder");
        let v: AtomicValue<u64> = AtomicValue::open(&env("SHM_NAME")).unwrap();
        for _ in 0..INCREMENTS * 10 {
            v.fetch_add(1);
        }
        return;
    }
    let v = AtomicValue::create(0u64).unwrap();
    run_at_once(
        "atomic_increments_across_processes_are_exact",
        "adder",
        v.name().unwrap(),
    );
    assert_eq!(v.load(), WORKERS as u64 * INCREMENTS * 10);
}

#[test]
fn children_fill_their_share_of_arrays() {
    const SHARE: usize = 1000;
    if let Some(role) = child_role() {
        let i: usize = role.parse().unwrap();
        let locked: Array<u64> = Array::open(&env("SHM_LOCKED")).unwrap();
        let raw: RawArray<u64> = RawArray::open(&env("SHM_RAW")).unwrap();
        let share: Vec<u64> = (0..SHARE).map(|k| (i * SHARE + k) as u64 * 3).collect();
        locked.lock().unwrap()[i * SHARE..(i + 1) * SHARE].copy_from_slice(&share);
        raw.copy_from(i * SHARE, &share).unwrap();
        return;
    }
    let locked = Array::<u64>::create(WORKERS * SHARE).unwrap();
    let raw = RawArray::<u64>::create(WORKERS * SHARE).unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            child_command("children_fill_their_share_of_arrays", &i.to_string())
                .env("SHM_LOCKED", locked.name().unwrap())
                .env("SHM_RAW", raw.name().unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let expected: Vec<u64> = (0..WORKERS * SHARE).map(|k| k as u64 * 3).collect();
    assert_eq!(locked.to_vec().unwrap(), expected);
    assert_eq!(raw.to_vec(), expected);
}

#[test]
fn a_holder_killed_mid_write_is_reported_to_the_next_locker() {
    if let Some(role) = child_role() {
        assert_eq!(role, "victim");
        let a: Array<u32> = Array::open(&env("SHM_NAME")).unwrap();
        let flag: AtomicValue<u32> = AtomicValue::open(&env("SHM_FLAG")).unwrap();
        let mut g = a.lock().unwrap();
        g[..4].fill(7); // half of the update
        flag.store(1);
        std::thread::sleep(Duration::from_secs(60)); // killed here
        return;
    }
    let a = Array::<u32>::create(8).unwrap();
    let flag = AtomicValue::create(0u32).unwrap();
    for trial in 0..3 {
        flag.store(0);
        let mut child = child_command(
            "a_holder_killed_mid_write_is_reported_to_the_next_locker",
            "victim",
        )
        .env("SHM_NAME", a.name().unwrap())
        .env("SHM_FLAG", flag.name().unwrap())
        .spawn()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while flag.load() != 1 {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the child never took the lock"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        // The convenience methods refuse to hand out a possibly half-written array...
        let started = Instant::now();
        assert!(
            matches!(a.get(0), Err(CellError::Inconsistent { .. })),
            "trial {trial}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "dead holder noticed late: {:?}",
            started.elapsed()
        );
        // ...every time, until someone repairs it.
        assert!(matches!(a.to_vec(), Err(CellError::Inconsistent { .. })));
        let guard = match a.lock() {
            Err(LockError::Inconsistent(g)) | Err(LockError::OwnerDied(g)) => g,
            other => panic!("trial {trial}: expected owner death, got {other:?}"),
        };
        assert_eq!(
            &guard[..],
            &[7, 7, 7, 7, 0, 0, 0, 0],
            "the half-done write is visible to the repairer"
        );
        let mut guard = guard;
        guard.fill(0);
        guard.mark_consistent();
        drop(guard);
        assert_eq!(a.to_vec().unwrap(), [0; 8]);
        child.wait().unwrap();
    }
}

#[test]
fn wrong_types_and_variants_are_refused() {
    let v = Value::create(1u64).unwrap();
    let err = Value::<f32>::open(v.name().unwrap()).unwrap_err();
    assert!(err.to_string().contains("Value<f32>"), "{err}");
    assert!(err.to_string().contains("Value<u64>"), "{err}");
    assert!(
        RawValue::<u64>::open(v.name().unwrap()).is_err(),
        "a locked Value is not a RawValue"
    );
    assert!(AtomicValue::<u64>::open(v.name().unwrap()).is_err());
    assert!(
        Array::<u64>::open(v.name().unwrap()).is_err(),
        "a Value is not an Array"
    );
    let a = Array::<i16>::create(3).unwrap();
    assert!(Array::<u16>::open(a.name().unwrap()).is_err());
    assert!(RawArray::<i16>::open(a.name().unwrap()).is_err());
    assert!(Value::<i16>::open(a.name().unwrap()).is_err());
    assert!(Array::<i16>::open(a.name().unwrap()).is_ok());
}

#[test]
fn a_corrupted_array_length_is_refused() {
    let a = Array::<u32>::create(10).unwrap();
    let seg = shm_core::Segment::open(a.name().unwrap()).unwrap();
    let len_at = shm_core::HEADER_LEN + 16;
    for forged in [11u64, 9, 0, u64::MAX, 1 << 62] {
        seg.write_at(len_at, &forged.to_ne_bytes()).unwrap();
        let err = Array::<u32>::open(a.name().unwrap()).unwrap_err();
        assert!(
            matches!(err, CellError::Corrupted { .. }),
            "{forged}: {err}"
        );
        assert!(err.to_string().contains("10 elements"), "{err}");
    }
    // The handle opened before the damage keeps its validated length.
    assert_eq!(a.len(), 10);
    assert!(a.get(10).is_err());
    a.set(9, 1).unwrap();
}

#[test]
fn out_of_range_is_a_typed_error() {
    let a = Array::from_slice(&[1u8, 2, 3]).unwrap();
    assert!(matches!(
        a.get(3),
        Err(CellError::IndexOutOfRange {
            index: 3,
            len: 3,
            ..
        })
    ));
    assert!(matches!(
        a.set(usize::MAX, 0),
        Err(CellError::IndexOutOfRange { .. })
    ));
    let mut buf = [0u8; 2];
    assert!(matches!(
        a.copy_to(2, &mut buf),
        Err(CellError::RangeOutOfBounds {
            start: 2,
            count: 2,
            len: 3,
            ..
        })
    ));
    assert!(matches!(
        a.copy_from(usize::MAX, &buf),
        Err(CellError::RangeOutOfBounds { .. })
    ));
    assert_eq!(a.to_vec().unwrap(), [1, 2, 3], "nothing was written");
    let empty = Array::<u64>::create(0).unwrap();
    assert!(empty.is_empty());
    assert!(empty.get(0).is_err());
}

#[test]
fn a_lock_held_elsewhere_times_out() {
    let v = Value::create(0u32).unwrap();
    let name = v.name().unwrap().to_owned();
    let held = v.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let other: Value<u32> = Value::open(&name).unwrap();
            let started = Instant::now();
            let err = other.lock_timeout(Duration::from_millis(30)).unwrap_err();
            assert!(matches!(err, LockError::Timeout { .. }), "{err}");
            assert!(started.elapsed() >= Duration::from_millis(30));
            assert!(matches!(
                other.try_lock(),
                Err(LockError::WouldBlock { .. })
            ));
        });
    });
    drop(held);
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, i32),
    Get(usize),
    CopyFrom(usize, Vec<i32>),
    CopyTo(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..20usize, any::<i32>()).prop_map(|(i, v)| Op::Set(i, v)),
        (0..20usize).prop_map(Op::Get),
        (0..20usize, prop::collection::vec(any::<i32>(), 0..8))
            .prop_map(|(i, v)| Op::CopyFrom(i, v)),
        (0..20usize, 0..8usize).prop_map(|(i, n)| Op::CopyTo(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn array_behaves_like_a_vec(len in 0..16usize, ops in prop::collection::vec(op(), 1..40)) {
        let a = Array::<i32>::create(len).unwrap();
        let raw = RawArray::<i32>::open(a.name().unwrap());
        prop_assert!(raw.is_err(), "variants stay apart");
        let mut model = vec![0i32; len];
        for op in ops {
            match op {
                Op::Set(i, v) => {
                    let r = a.set(i, v);
                    prop_assert_eq!(r.is_ok(), i < len);
                    if i < len { model[i] = v; }
                }
                Op::Get(i) => {
                    prop_assert_eq!(a.get(i).ok(), model.get(i).copied());
                }
                Op::CopyFrom(i, v) => {
                    let fits = i + v.len() <= len;
                    prop_assert_eq!(a.copy_from(i, &v).is_ok(), fits);
                    if fits { model[i..i + v.len()].copy_from_slice(&v); }
                }
                Op::CopyTo(i, n) => {
                    let mut buf = vec![0; n];
                    let fits = i + n <= len;
                    prop_assert_eq!(a.copy_to(i, &mut buf).is_ok(), fits);
                    if fits { prop_assert_eq!(&buf[..], &model[i..i + n]); }
                }
            }
            prop_assert_eq!(a.to_vec().unwrap(), model.clone());
        }
    }
}

#[test]
fn raw_value_round_trips_across_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "writer");
        let v: RawValue<[f64; 3]> = RawValue::open(&env("SHM_NAME")).unwrap();
        assert_eq!(v.get(), [1.0, 2.0, 3.0]);
        v.set([4.0, 5.0, 6.0]);
        return;
    }
    let v = RawValue::create([1.0f64, 2.0, 3.0]).unwrap();
    run_child(
        "raw_value_round_trips_across_processes",
        "writer",
        &[("SHM_NAME", v.name().unwrap())],
    );
    assert_eq!(v.get(), [4.0, 5.0, 6.0]);
}
