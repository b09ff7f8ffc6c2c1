//! Issue 17 item 14: opening waits for a creator that is still initialising, never for
//! a header that can never become valid.

use std::time::{Duration, Instant};

use shm_core::identity::{Identity, current_pidns};
use shm_core::testing::{UnlinkGuard, unique_name};
use shm_core::{Error, Kind, MAGIC, Object, ObjectSpec, Segment};

fn spec() -> ObjectSpec {
    ObjectSpec::new(Kind::new(Kind::USER.start + 0x14, "Waits"), 1)
}

/// Header offsets: magic 0, creator id 56 and token 60, creator PID namespace 64.
fn forge_unpublished(name: &str, creator: Identity) -> Segment {
    let seg = Segment::create_named(name, 256).unwrap();
    seg.write_at(0, &MAGIC.to_ne_bytes()).unwrap();
    seg.write_at(56, &creator.id.to_ne_bytes()).unwrap();
    seg.write_at(60, &creator.token.to_ne_bytes()).unwrap();
    seg.write_at(64, &creator.pidns.to_ne_bytes()).unwrap();
    seg
}

/// A pid that just exited (reaped): provably dead in our namespace.
fn dead_identity() -> Identity {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Identity {
        id: pid,
        token: 0x1235,
        pidns: current_pidns(),
    }
}

#[test]
fn an_unpublished_header_of_a_dead_creator_is_an_error_at_once() {
    let name = unique_name("abandoned");
    let _g = UnlinkGuard::new(&name);
    let _seg = forge_unpublished(&name, dead_identity());
    let t = Instant::now();
    match Object::open_timeout(&name, &spec(), Duration::from_secs(5)) {
        Err(e @ Error::Abandoned { .. }) => assert!(e.to_string().contains(&name), "{e}"),
        other => panic!("expected Abandoned, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // `open` (the default patience) too.
    assert!(matches!(
        Object::open(&name, &spec()),
        Err(Error::Abandoned { .. })
    ));
}

#[test]
fn an_unpublished_header_of_a_live_creator_is_waited_for() {
    let name = unique_name("in-the-making");
    let _g = UnlinkGuard::new(&name);
    let _seg = forge_unpublished(&name, Identity::current_process());
    let t = Instant::now();
    match Object::open_timeout(&name, &spec(), Duration::from_millis(100)) {
        Err(Error::NotInitialised { .. }) => {}
        other => panic!("expected NotInitialised, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn a_creator_that_cannot_be_judged_is_waited_for() {
    let name = unique_name("unknown-creator");
    let _g = UnlinkGuard::new(&name);
    let dead = dead_identity();
    // Another PID namespace, and an id no task can have: both Unknown, never Dead.
    for creator in [
        Identity {
            pidns: dead.pidns ^ 1,
            ..dead
        },
        Identity {
            id: u32::MAX,
            ..dead
        },
    ] {
        let _ = shm_core::unlink(&name);
        let _seg = forge_unpublished(&name, creator);
        assert!(matches!(
            Object::open_timeout(&name, &spec(), Duration::from_millis(50)),
            Err(Error::NotInitialised { .. })
        ));
    }
}
