//! The one lifecycle of every shm-collections kind, across real processes: create in
//! one process, hand over by name and by inherited descriptor (`share` / `from_env`),
//! use it in the child, unlink, and `open` fails afterwards; the wrong type is a typed
//! error.

use shm_collections::{Array, AtomicValue, Item, RawArray, RawValue, ShareableList, Value};
use shm_core::SharedObject;
use shm_core::testing::child_role;

const VAR: &str = "SHM_LIFECYCLE_OBJECT";
const TEST: &str = "every_kind_is_handed_to_a_child_by_name_and_by_descriptor";

/// The wrong type is refused with a header error naming what was found.
fn refused<T: SharedObject>()
where
    T::Error: std::fmt::Display,
{
    match T::from_env(VAR) {
        Ok(_) => panic!("opened as the wrong type"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("expected"), "{text}");
        }
    }
}

fn child(kind: &str) {
    match kind {
        "value" => {
            Value::<u64>::from_env(VAR)
                .unwrap()
                .update(|v| *v += 1)
                .unwrap();
            refused::<Value<u32>>();
            refused::<RawValue<u64>>();
        }
        "raw-value" => {
            let v = RawValue::<u64>::from_env(VAR).unwrap();
            v.set(v.get() + 1);
            refused::<AtomicValue<u64>>();
        }
        "atomic-value" => {
            AtomicValue::<u64>::from_env(VAR).unwrap().fetch_add(1);
            refused::<Value<u64>>();
        }
        "array" => {
            let a = Array::<u32>::from_env(VAR).unwrap();
            a.set(2, 7).unwrap();
            refused::<Array<u64>>();
            refused::<RawArray<u32>>();
        }
        "raw-array" => {
            RawArray::<u32>::from_env(VAR).unwrap().set(2, 7).unwrap();
            refused::<Value<u32>>();
        }
        "list" => {
            let l = ShareableList::from_env(VAR).unwrap();
            l.set(0, "child").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn both_ways<T: SharedObject>(kind: &str, make: impl Fn() -> T::Init, check: impl Fn(&T))
where
    T::Error: std::fmt::Debug,
{
    let name = shm_core::testing::both_ways::<T>(TEST, VAR, kind, make, check);
    assert!(T::open(&name).is_err());
}

#[test]
fn every_kind_is_handed_to_a_child_by_name_and_by_descriptor() {
    if let Some(kind) = child_role() {
        child(&kind);
        return;
    }
    both_ways::<Value<u64>>("value", || 1, |v| assert_eq!(v.get().unwrap(), 2));
    both_ways::<RawValue<u64>>("raw-value", || 1, |v| assert_eq!(v.get(), 2));
    both_ways::<AtomicValue<u64>>("atomic-value", || 1, |v| assert_eq!(v.load(), 2));
    both_ways::<Array<u32>>(
        "array",
        || 4,
        |a| assert_eq!(a.to_vec().unwrap(), [0, 0, 7, 0]),
    );
    both_ways::<RawArray<u32>>("raw-array", || 4, |a| assert_eq!(a.to_vec(), [0, 0, 7, 0]));
    both_ways::<ShareableList>(
        "list",
        || vec![Item::from("parent"), Item::Int(1)],
        |l| assert_eq!(l.get(0).unwrap(), Item::from("child")),
    );
}
