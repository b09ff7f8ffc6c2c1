//! Names an object cannot be opened by are refused at create (issue 17 item 6), and
//! ids read from shared memory are validated before any syscall (item 11).

use shm_core::identity::{Identity, Liveness, current_pidns, is_valid_pid, pid_max};
use shm_core::testing::{UnlinkGuard, child_role, run_child, unique_name};
use shm_core::{Error, Kind, Object, ObjectSpec, Segment, SegmentOptions};

fn spec() -> ObjectSpec {
    ObjectSpec::new(Kind::new(Kind::USER.start + 0x17, "Names"), 1)
}

fn create(name: &str) -> Result<Object, Error> {
    Object::create(&SegmentOptions::new().name(name), &spec(), 8, |_| {
        Ok::<(), Error>(())
    })
}

#[test]
fn object_names_with_an_at_sign_are_refused_at_create() {
    let base = unique_name("at");
    for name in [
        format!("{base}@b"),
        format!("{base}@64"),
        format!("/{base}@0"),
    ] {
        let _g = UnlinkGuard::new(name.trim_start_matches('/'));
        let _x = UnlinkGuard::new(&base);
        match create(&name) {
            Err(e @ Error::InvalidName { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&name), "the error names the name: {msg}");
                assert!(msg.contains('@'), "the error says why: {msg}");
            }
            other => panic!("{name}: expected InvalidName, got {other:?}"),
        }
        // Nothing was created under either reading of the name.
        assert!(matches!(
            Segment::open(name.trim_start_matches('/')),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(Segment::open(&base), Err(Error::NotFound { .. })));
    }
    // A segment named with '@' (CPython allows it) cannot be turned into an object.
    let raw_name = format!("{base}@128");
    let _g = UnlinkGuard::new(&raw_name);
    let raw = Segment::create_named(&raw_name, 4096).unwrap();
    assert!(matches!(
        Object::init_in(raw, &spec(), |_| Ok::<(), Error>(())),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn raw_segments_keep_cpython_names() {
    let name = format!("{}@64", unique_name("raw-at"));
    let _g = UnlinkGuard::new(&name);
    let seg = Segment::create_named(&name, 64).unwrap();
    seg.write_at(0, b"cpython").unwrap();
    let again = Segment::open(&name).unwrap();
    let mut buf = [0; 7];
    again.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"cpython");
}

#[test]
fn objects_created_by_name_open_by_that_name() {
    let name = unique_name("plain");
    let _g = UnlinkGuard::new(&name);
    let obj = create(&name).unwrap();
    assert_eq!(Object::open(&name, &spec()).unwrap().payload_len(), 8);
    drop(obj);
}

#[test]
fn the_pid_validator() {
    let max = pid_max();
    assert!(max > 1 && max <= i32::MAX as u32);
    assert!(is_valid_pid(1));
    assert!(is_valid_pid(std::process::id()));
    assert!(is_valid_pid(max - 1));
    for bad in [0, max, max + 1, 1 << 31, (1 << 31) + 5, u32::MAX] {
        assert!(!is_valid_pid(bad), "{bad}");
    }
}

/// Ids of 2^31 or more used to reach `Pid::from_raw(id as i32)`: a debug-assert
/// panic, and in release `kill(-id, 0)`, a process-group probe. Ids no task can have
/// are `Unknown` (a damaged word proves nobody dead).
#[test]
fn impossible_ids_are_unknown_not_a_panic_or_a_group_probe() {
    let ns = current_pidns();
    let me = Identity::current_process();
    for id in [
        1u32 << 31,
        (1 << 31) | me.id,
        u32::MAX,
        u32::MAX - 1,
        pid_max(),
    ] {
        for token in [me.token, 1, shm_core::identity::TOKEN_UNKNOWN] {
            let forged = Identity {
                id,
                token,
                pidns: ns,
            };
            assert_eq!(forged.liveness(), Liveness::Unknown, "{forged:?}");
        }
    }
    // The conventions for valid words are unchanged.
    assert_eq!(me.liveness(), Liveness::Alive);
    assert_eq!(Identity { id: 0, ..me }.liveness(), Liveness::Dead);
}

/// Child role: a process whose header says its creator is an impossible id.
const FORGER: &str = "names_ids_forger";

/// A header written by another process with a forged creator: reading it and
/// judging its creator is safe in this process.
#[test]
fn a_forged_creator_from_another_process_is_unknown() {
    if child_role().as_deref() == Some(FORGER) {
        let name = std::env::var("NAMES_IDS_OBJ").unwrap();
        let seg = Segment::open(&name).unwrap();
        // creator_id is the u32 at offset 56 of the header.
        seg.write_at(56, &(u32::MAX - 7).to_ne_bytes()).unwrap();
        return;
    }
    if child_role().is_some() {
        return;
    }
    let name = unique_name("forged");
    let _g = UnlinkGuard::new(&name);
    let obj = create(&name).unwrap();
    run_child(
        "a_forged_creator_from_another_process_is_unknown",
        FORGER,
        &[("NAMES_IDS_OBJ", &name)],
    );
    let info = Object::inspect(&name).unwrap();
    assert_eq!(info.creator.id, u32::MAX - 7);
    assert_eq!(info.creator.liveness(), Liveness::Unknown);
    drop(obj);
}
