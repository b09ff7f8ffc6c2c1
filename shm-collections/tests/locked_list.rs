//! LockedShareableList across processes: read-modify-writes lose nothing, a dead
//! holder is reported, and CPython still reads the list.

use std::time::{Duration, Instant};

use shm_collections::{Item, LockedListError, LockedShareableList};
use shm_core::testing::{child_command, child_role, pythons, run_python};
use shm_sync::LockError;

const WORKERS: usize = 4;
const ROUNDS: i64 = 500;

#[test]
fn locked_read_modify_writes_from_many_processes_lose_nothing() {
    if let Some(role) = child_role() {
        let i: usize = role.parse().unwrap();
        let list = LockedShareableList::open(&std::env::var("SHM_NAME").unwrap()).unwrap();
        for _ in 0..ROUNDS {
            let g = list.lock().unwrap();
            let total = g.get(0).unwrap().as_int().unwrap();
            std::thread::yield_now(); // invite another process to interleave
            g.set(0, total + 1).unwrap();
            let mine = g.get(1 + i).unwrap().as_int().unwrap();
            g.set(1 + i, mine + 1).unwrap();
        }
        return;
    }
    let list = LockedShareableList::create(vec![Item::Int(0); 1 + WORKERS]).unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            child_command(
                "locked_read_modify_writes_from_many_processes_lose_nothing",
                &i.to_string(),
            )
            .env("SHM_NAME", list.name().unwrap())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let items = list.to_vec().unwrap();
    assert_eq!(items[0], Item::Int(WORKERS as i64 * ROUNDS));
    assert!(
        items[1..].iter().all(|i| *i == Item::Int(ROUNDS)),
        "{items:?}"
    );
    assert_eq!(
        list.lock().unwrap().version(),
        (WORKERS as u64) * ROUNDS as u64 + 1
    );

    // CPython reads the same list (it does not see the companion lock).
    let script = "
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, 'shared_memory')
print(sl[0])
sl.shm.close()";
    let out = run_python(&pythons()[0], script, &[list.name().unwrap()]);
    assert_eq!(out.trim(), (WORKERS as i64 * ROUNDS).to_string());
}

#[test]
fn a_holder_killed_mid_update_is_reported() {
    if let Some(role) = child_role() {
        assert_eq!(role, "victim");
        let list = LockedShareableList::open(&std::env::var("SHM_NAME").unwrap()).unwrap();
        let g = list.lock().unwrap();
        g.set(0, "halfway").unwrap();
        std::thread::sleep(Duration::from_secs(60)); // killed here, before item 1
        return;
    }
    let list = LockedShareableList::create(["clean", "clean"]).unwrap();
    let mut child = child_command("a_holder_killed_mid_update_is_reported", "victim")
        .env("SHM_NAME", list.name().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Without taking the lock, watch for the child's first write.
    let peek = shm_collections::ShareableList::open(list.name().unwrap()).unwrap();
    while peek.get(0).unwrap() != Item::from("halfway") {
        assert!(Instant::now() < deadline, "the child never wrote");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    assert!(matches!(
        list.get(1),
        Err(LockedListError::Inconsistent { .. })
    ));
    match list.lock() {
        Err(LockError::Inconsistent(g)) | Err(LockError::OwnerDied(g)) => {
            assert_eq!(g.get(0).unwrap(), Item::from("halfway"));
            g.set(0, "clean").unwrap();
            g.mark_consistent();
        }
        Err(other) => panic!("expected owner death, got {other}"),
        Ok(_) => panic!("expected owner death, got a clean lock"),
    }
    assert_eq!(
        list.to_vec().unwrap(),
        [Item::from("clean"), Item::from("clean")]
    );
    child.wait().unwrap();
}

#[test]
fn open_without_the_companion_lock_is_a_clear_error() {
    let plain = shm_collections::ShareableList::create([1, 2]).unwrap();
    let err = LockedShareableList::open(plain.name().unwrap()).unwrap_err();
    assert!(matches!(err, LockedListError::Lock { .. }), "{err}");
    assert!(err.to_string().contains(".lock"), "{err}");
}
