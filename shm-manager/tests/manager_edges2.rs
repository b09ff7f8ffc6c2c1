//! Issue 18, items 10-14 and the registry's patience: names a Python user expects
//! (`list` grows, `shareable_list` is CPython's format), opening sized objects by key,
//! type errors in plain words, `ShutDown` after the owner's shutdown (across processes).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::PrefixGuard;
use shm_collections::{Item, RegionError};
use shm_core::testing::{child_command, child_role};
use shm_manager::{ManagerError, SharedMemoryManager};

const MANAGER_VAR: &str = "SHM_TEST_MANAGER";

fn owner() -> (SharedMemoryManager, PrefixGuard) {
    let (m, _root, g) = common::manager();
    (m, g)
}

#[test]
fn list_is_the_growable_one_and_shareable_list_is_cpythons() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    let l = m.list::<String>("results").unwrap();
    l.push("a".into()).unwrap();
    l.push("b".into()).unwrap();
    assert_eq!(m.vec::<String>("results").unwrap().len().unwrap(), 2);
    assert_eq!(m.entry("results").unwrap().unwrap().kind_name, "Vec");
    let row = m
        .shareable_list("row", vec![Item::Int(1), Item::Str("x".into())])
        .unwrap();
    assert_eq!(row.len(), 2);
    assert_eq!(
        m.entry("row").unwrap().unwrap().kind_name,
        "CPython ShareableList"
    );
    // Each name refuses the other's key.
    assert!(matches!(
        m.list::<String>("row"),
        Err(ManagerError::WrongKind { .. })
    ));
    assert!(matches!(
        m.shareable_list("results", vec![]),
        Err(ManagerError::WrongKind { .. })
    ));
}

#[test]
fn a_queue_opens_by_key_without_sizes_and_other_sizes_are_an_error() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    let q = m.queue::<String>("jobs", 64, 1 << 16).unwrap();
    q.put(&"job".to_string()).unwrap();
    let w = SharedMemoryManager::connect(m.name()).unwrap();
    let wq = w.open_queue::<String>("jobs").unwrap();
    assert_eq!(wq.max_messages(), 64);
    assert_eq!(wq.get().unwrap(), "job");
    // The same sizes open it.
    assert_eq!(
        w.queue::<String>("jobs", 64, 1 << 16)
            .unwrap()
            .max_messages(),
        64
    );
    // Other sizes: an error naming both.
    for (messages, bytes) in [(4096, 1 << 16), (64, 1 << 20), (8, 64)] {
        let err = w.queue::<String>("jobs", messages, bytes).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ManagerError::WrongSize { .. }), "{text}");
        assert!(
            text.contains(&format!("{messages} messages in {bytes} bytes"))
                && text.contains("one of 64 messages"),
            "{text}"
        );
        assert!(text.contains("Queue<String>"), "{text}");
    }
    // Absent key, another kind, another type: typed errors.
    assert!(matches!(
        w.open_queue::<String>("none"),
        Err(ManagerError::NoSuchKey { .. })
    ));
    m.event("ev").unwrap();
    assert!(matches!(
        w.open_queue::<String>("ev"),
        Err(ManagerError::WrongKind { .. })
    ));
    let err = w.open_queue::<u64>("jobs").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected Queue<u64>, found Queue<String>"),
        "{err}"
    );
}

#[test]
fn an_array_opens_by_key_without_its_length_and_another_length_is_an_error() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    m.array::<u32>("xs", 3).unwrap().set(2, 9).unwrap();
    let w = SharedMemoryManager::connect(m.name()).unwrap();
    let a = w.open_array::<u32>("xs").unwrap();
    assert_eq!(a.to_vec().unwrap(), [0, 0, 9]);
    assert_eq!(w.array::<u32>("xs", 3).unwrap().len(), 3);
    let err = w.array::<u32>("xs", 4).unwrap_err();
    assert!(matches!(err, ManagerError::WrongSize { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("expected Array<u32> of 4 elements, found 3 elements"),
        "{err}"
    );
    // A big array in its own segment too.
    m.array::<u64>("big", 10_000).unwrap();
    assert!(matches!(
        w.array::<u64>("big", 9_999),
        Err(ManagerError::WrongSize { .. })
    ));
    assert_eq!(w.open_array::<u64>("big").unwrap().len(), 10_000);
}

#[test]
fn a_barrier_for_other_parties_is_an_error() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    m.barrier("sync", 3).unwrap();
    let w = SharedMemoryManager::connect(m.name()).unwrap();
    assert_eq!(w.barrier("sync", 3).unwrap().parties(), 3);
    let err = w.barrier("sync", 2).unwrap_err();
    assert!(matches!(err, ManagerError::WrongSize { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("expected a Barrier of 2 parties, found one of 3"),
        "{err}"
    );
    assert_eq!(w.open::<shm_sync::Barrier>("sync").unwrap().parties(), 3);
}

#[test]
fn kind_mismatches_read_in_plain_words() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    m.dict::<String, u64>("jobs").unwrap();
    let err = m.queue::<String>("jobs", 8, 1024).unwrap_err();
    assert!(matches!(err, ManagerError::WrongKind { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("expected Queue<String>, found Dict<String, u64>"),
        "{err}"
    );
    m.value("v", 1u8).unwrap();
    let err = m.lock("v").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected Mutex<()>, found Value<u8>"),
        "{err}"
    );
}

#[test]
fn type_mismatches_read_in_plain_words() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    m.value("done", 0).unwrap(); // inferred i32
    let w = SharedMemoryManager::connect(m.name()).unwrap();
    let err = w.value("done", 0u64).unwrap_err();
    assert!(matches!(err, ManagerError::WrongType { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("expected Value<u64>, found Value<i32>"),
        "{err}"
    );
    m.dict::<String, u64>("d").unwrap();
    let err = w.dict::<String, i64>("d").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected Dict<String, i64>, found Dict<String, u64>"),
        "{err}"
    );
    m.mutex("mx", 0u8).unwrap();
    let err = w.mutex("mx", 0u16).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected Mutex<u16>, found Mutex<u8>"),
        "{err}"
    );
    m.list::<Option<String>>("l").unwrap();
    let err = w.list::<String>("l").unwrap_err();
    let text = err.to_string();
    assert!(
        text.ends_with("expected Vec<String>, found Vec<Option<String>>"),
        "{text}"
    );
    assert!(!text.contains("::"), "{text}");
}

/// The child: connects, says so, waits for the owner's shutdown, then opens keys.
fn late_opener() {
    let w = SharedMemoryManager::connect(&std::env::var(MANAGER_VAR).unwrap()).unwrap();
    println!("connected");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "shut down");
    let shut = |what: &str, r: Result<(), ManagerError>| match r {
        Err(ManagerError::ShutDown { name }) => assert_eq!(name, w.name()),
        other => panic!("{what}: expected ShutDown, found {other:?}"),
    };
    shut("dict", w.dict::<String, u64>("d").map(drop));
    shut("queue", w.queue::<String>("q", 8, 1024).map(drop));
    shut("open_queue", w.open_queue::<String>("q").map(drop));
    shut("value", w.value("v", 0u64).map(drop));
    shut("list", w.list::<u32>("l").map(drop));
    shut("shareable_list", w.shareable_list("sl", vec![]).map(drop));
    shut("new key", w.event("never-made").map(drop));
    println!("ok");
}

#[test]
fn opening_keys_after_the_owners_shutdown_is_shut_down() {
    const TEST: &str = "opening_keys_after_the_owners_shutdown_is_shut_down";
    if shm_core::testing::child_runs("late-opener", late_opener) {
        return;
    }
    let (m, _g) = owner();
    m.dict::<String, u64>("d").unwrap();
    m.queue::<String>("q", 8, 1024).unwrap();
    m.value("v", 0u64).unwrap();
    m.list::<u32>("l").unwrap();
    m.shareable_list("sl", vec![Item::Int(1)]).unwrap();
    let mut child = child_command(TEST, "late-opener")
        .env(MANAGER_VAR, m.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // The test harness prints its own lines first.
    let mut line = String::new();
    while line.trim() != "connected" {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child exited before it connected"
        );
    }
    m.shutdown().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "shut down").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.success() && rest.contains("ok"),
        "child: {status}\nstdout: {rest}\nstderr: {err}"
    );
}

#[test]
fn the_registrys_writer_lock_waits_at_most_the_patience() {
    if child_role().is_some() {
        return;
    }
    for via_options in [false, true] {
        let m = if via_options {
            shm_manager::ManagerOptions::new()
                .patience(Some(Duration::from_millis(300)))
                .create()
                .unwrap()
        } else {
            SharedMemoryManager::new().unwrap()
        };
        let _g = PrefixGuard(m.root_name().to_owned());
        m.event("ev").unwrap();
        let entry = m.entry("ev").unwrap().unwrap();
        // Another handle holds the registry's writer lock for 5 s (its `make` runs
        // under the lock).
        let root = m.root_name().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let reg = shm_manager::Registry::open(&root).unwrap();
            reg.get_or_insert_with("holder".into(), || {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_secs(5));
                entry
            })
            .unwrap();
        });
        rx.recv().unwrap();
        if !via_options {
            m.set_patience(Some(Duration::from_millis(300)));
        }
        let start = Instant::now();
        let r = m.event("new-key");
        let took = start.elapsed();
        assert!(
            matches!(r, Err(ManagerError::Registry(RegionError::Lock { .. }))),
            "{r:?}"
        );
        assert!(took < Duration::from_secs(3), "waited {took:?}");
        holder.join().unwrap();
        // Once free, the same call goes through.
        m.event("new-key").unwrap();
    }
}

#[test]
fn gc_removes_segments_whose_root_is_gone() {
    if child_role().is_some() {
        return;
    }
    let m = shm_manager::ManagerOptions::new()
        .tracker(false)
        .create()
        .unwrap();
    let root = m.root_name().to_owned();
    let _g = PrefixGuard(root.clone());
    let raw = m.segment(64).unwrap();
    m.shareable_list("sl", vec![Item::Int(1)]).unwrap();
    m.list::<u32>("l").unwrap().push(1).unwrap();
    m.event("e").unwrap();
    drop(raw);
    // A sweep interrupted right after the root (or an attacher's late write): only
    // the root is gone.
    shm_core::unlink(&root).unwrap();
    let left = common::tracked(&root);
    assert!(left.len() >= 5, "{left:?}");
    let dry = common::shm_json(&["gc", "--dry-run", "--json", "--prefix", &root]);
    for n in &left {
        let row = dry["removed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n.as_str())
            .unwrap_or_else(|| panic!("gc --dry-run does not list {n}: {dry}"));
        assert!(row["reason"].as_str().unwrap().contains("orphan"), "{row}");
    }
    assert_eq!(
        common::tracked(&root),
        left,
        "the dry run removed something"
    );
    common::shm_ok(&["gc", "--prefix", &root]);
    assert!(common::tracked(&root).is_empty());
    drop(m);
}

#[test]
fn attachers_creating_while_the_owner_sweeps_leave_nothing() {
    if child_role().is_some() {
        return;
    }
    // The sweep removes the root last and then the children once more; an attacher
    // checks the root after it created something. Whatever the interleaving, nothing
    // is left once every call returned.
    let trials: u64 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    for trial in 0..trials {
        let m = shm_manager::ManagerOptions::new()
            .tracker(false)
            .create()
            .unwrap();
        let root = m.root_name().to_owned();
        let _g = PrefixGuard(root.clone());
        for i in 0..50 {
            m.segment(64).unwrap();
            m.value(&format!("pre{i}"), 0u8).unwrap();
        }
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let c = SharedMemoryManager::connect(m.name()).unwrap();
                std::thread::spawn(move || {
                    for i in 0.. {
                        let key = format!("w{w}-{i}");
                        let r = match i % 3 {
                            0 => c.queue::<u8>(&key, 2, 64).map(drop),
                            1 => c.value(&key, 1u32).map(drop),
                            _ => c.list::<u8>(&key).map(drop),
                        };
                        match r {
                            Err(e @ ManagerError::ShutDown { .. }) => return e,
                            // While the sweep's first pass runs, the root still
                            // exists: a creation whose segments it removed fails
                            // with the object's own error. Go on until the root is gone.
                            Err(ManagerError::Object { .. }) | Ok(()) => {}
                            Err(e) => return e,
                        }
                        assert!(i < 1_000_000, "never shut down");
                    }
                    unreachable!()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200 + trial % 7 * 300));
        m.shutdown().unwrap();
        for w in workers {
            let e = w.join().unwrap();
            assert!(
                matches!(e, ManagerError::ShutDown { .. }),
                "trial {trial}: {e}"
            );
        }
        let left = common::tracked(&root);
        assert!(left.is_empty(), "trial {trial}: left {left:?}");
    }
}

mod a {
    /// A `u32` newtype named like `b::Foo`.
    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(transparent)]
    pub struct Foo(pub u32);
    // SAFETY: a transparent u32: any bit pattern is valid, no padding.
    unsafe impl bytemuck::Zeroable for Foo {}
    // SAFETY: as above; Copy + 'static.
    unsafe impl bytemuck::Pod for Foo {}
}

mod b {
    /// A `u32` newtype named like `a::Foo`.
    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(transparent)]
    pub struct Foo(pub u32);
    // SAFETY: a transparent u32: any bit pattern is valid, no padding.
    unsafe impl bytemuck::Zeroable for Foo {}
    // SAFETY: as above; Copy + 'static.
    unsafe impl bytemuck::Pod for Foo {}
}

#[test]
fn types_with_the_same_short_name_are_told_apart_by_their_full_names() {
    if child_role().is_some() {
        return;
    }
    let (m, _g) = owner();
    m.value("foo", a::Foo(1)).unwrap();
    let err = m.value("foo", b::Foo(1)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ManagerError::WrongType { .. }), "{text}");
    assert!(
        text.contains("b::Foo") && text.contains("a::Foo") && text.contains("type tag"),
        "{text}"
    );
}
