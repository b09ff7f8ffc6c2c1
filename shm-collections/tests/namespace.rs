//! Namespace: typed attributes across processes, mismatches as typed errors.

use shm_collections::{Namespace, RegionError};
use shm_core::testing::{child_role, run_child, unique_name};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Config {
    workers: u32,
    name: String,
}

#[test]
fn attributes_of_any_type_across_processes() {
    if let Some(role) = child_role() {
        let ns = Namespace::open(&std::env::var("NS").unwrap()).unwrap();
        assert_eq!(
            ns.get::<String>("greeting").unwrap().as_deref(),
            Some("hello")
        );
        for _ in 0..100 {
            ns.update("count", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap();
        }
        ns.set(&format!("done-{role}"), &true).unwrap();
        return;
    }
    let ns = Namespace::create_named(&unique_name("ns")).unwrap();
    ns.set("greeting", &"hello".to_string()).unwrap();
    ns.set(
        "cfg",
        &Config {
            workers: 4,
            name: "x".into(),
        },
    )
    .unwrap();
    let test = "attributes_of_any_type_across_processes";
    let envs = [("NS", ns.name().unwrap().to_owned())];
    let kids: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|r| {
            let envs = envs.clone();
            std::thread::spawn(move || run_child(test, r, &envs))
        })
        .collect();
    for k in kids {
        k.join().unwrap();
    }
    assert_eq!(ns.get::<u64>("count").unwrap(), Some(300));
    assert_eq!(
        ns.get::<Config>("cfg").unwrap(),
        Some(Config {
            workers: 4,
            name: "x".into()
        })
    );
    assert_eq!(
        ns.attrs().unwrap(),
        ["cfg", "count", "done-a", "done-b", "done-c", "greeting"]
    );
    match ns.get::<u32>("count") {
        Err(RegionError::TypeMismatch {
            attr,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (attr.as_str(), expected.as_str(), found.as_str()),
                ("count", "u32", "u64")
            );
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    // A typed update of the wrong type changes nothing.
    assert!(
        ns.update("count", |v: Option<String>| v.unwrap_or_default())
            .is_err()
    );
    assert_eq!(ns.get::<u64>("count").unwrap(), Some(300));
    assert!(ns.remove("cfg").unwrap());
    assert_eq!(ns.len().unwrap(), 5);
    // A namespace is not a dict of the same shape.
    assert!(shm_collections::ShareableDict::<String, Vec<u8>>::open(ns.name().unwrap()).is_err());
}
