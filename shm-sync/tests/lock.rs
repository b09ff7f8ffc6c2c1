//! `Lock` across real processes: mutual exclusion with a holder in another process, a
//! holder killed with SIGKILL, and the on-disk identity with `Mutex<()>`.

mod common;

use std::time::Duration;

use common::{Kid, child_role, env, say};
use shm_sync::{Lock, LockError, Mutex};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn killed_holder_in_another_process_gives_owner_died() {
    if let Some(role) = child_role() {
        if role == "holder" {
            let l = Lock::open(&env("SHM_NAME")).unwrap();
            let _g = l.lock().unwrap();
            say("HOLDING");
            std::thread::sleep(LONG);
        }
        return;
    }
    let l = Lock::create().unwrap();
    let mut kid = Kid::spawn(
        "killed_holder_in_another_process_gives_owner_died",
        "holder",
        &[("SHM_NAME", l.name().unwrap())],
    );
    kid.wait_line("HOLDING", LONG);
    assert!(l.is_locked());
    assert!(matches!(l.try_lock(), Err(LockError::WouldBlock { .. })));
    kid.kill();
    let Err(LockError::OwnerDied(g)) = l.lock_timeout(LONG) else {
        panic!("expected OwnerDied");
    };
    assert!(!l.is_consistent());
    g.mark_consistent();
    drop(g);
    assert!(l.is_consistent() && l.lock().is_ok());
}

#[test]
fn a_lock_is_a_mutex_of_unit_on_disk() {
    let l = Lock::create().unwrap();
    let m = Mutex::<()>::open(l.name().unwrap()).unwrap();
    let g = m.lock().unwrap();
    assert!(l.is_locked());
    drop(g);
    let m2 = Mutex::create(()).unwrap();
    assert!(Lock::open(m2.name().unwrap()).is_ok());
    assert!(Lock::open(Mutex::create(0u8).unwrap().name().unwrap()).is_err());
}
