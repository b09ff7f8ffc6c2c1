//! The one lifecycle of every shm-sync kind, across real processes: create in one
//! process, hand over by name and by inherited descriptor (`share` / `from_env`), use it
//! in the child, unlink, and `open` fails afterwards; the wrong type is a typed error.

use std::time::Duration;

use shm_core::SharedObject;
use shm_core::testing::{BlockedIn, Task, child_role, current_tid, wait_until_blocked};
use shm_sync::{
    Barrier, BoundedSemaphore, Condition, Condvar, Error, Event, Lock, Mutex, RLock, RwLock,
    Semaphore,
};

const VAR: &str = "SHM_LIFECYCLE_OBJECT";
const TEST: &str = "every_kind_is_handed_to_a_child_by_name_and_by_descriptor";

/// The wrong type refuses with a typed header error, never a reinterpretation.
fn wrong_type_is_refused<T: SharedObject<Error = Error>>() {
    match T::from_env(VAR) {
        Err(Error::Shm(
            shm_core::Error::WrongKind { .. } | shm_core::Error::TypeMismatch { .. },
        )) => {}
        Err(other) => panic!("expected a wrong-kind error, got {other}"),
        Ok(_) => panic!("opened as the wrong type"),
    }
}

fn child(kind: &str) {
    match kind {
        "mutex" => {
            *Mutex::<u64>::from_env(VAR).unwrap().lock().unwrap() += 1;
            wrong_type_is_refused::<Mutex<u32>>();
            wrong_type_is_refused::<Event>();
        }
        "rwlock" => {
            *RwLock::<u64>::from_env(VAR).unwrap().write().unwrap() += 1;
            wrong_type_is_refused::<RwLock<i64>>();
        }
        "event" => {
            Event::from_env(VAR).unwrap().set();
            wrong_type_is_refused::<Semaphore>();
        }
        "semaphore" => {
            Semaphore::from_env(VAR).unwrap().release().unwrap();
            wrong_type_is_refused::<Barrier>();
        }
        "bounded" => {
            let s = BoundedSemaphore::from_env(VAR).unwrap();
            s.try_acquire().unwrap();
            wrong_type_is_refused::<Condvar>();
        }
        "barrier" => {
            let b = Barrier::from_env(VAR).unwrap();
            assert_eq!(b.parties(), 1);
            b.wait().unwrap();
            wrong_type_is_refused::<Event>();
        }
        "condvar" => {
            Condvar::from_env(VAR).unwrap().notify_all();
            wrong_type_is_refused::<RLock>();
        }
        "condition" => {
            let c = Condition::<u32>::from_env(VAR).unwrap();
            *c.lock().unwrap() = 42;
            c.notify_all();
            wrong_type_is_refused::<Condition<u64>>();
        }
        "rlock" => {
            let l = RLock::from_env(VAR).unwrap();
            drop(l.lock().unwrap());
            wrong_type_is_refused::<Lock>();
        }
        "lock" => {
            drop(Lock::from_env(VAR).unwrap().lock().unwrap());
            wrong_type_is_refused::<RLock>();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Creates `T` both named and anonymous, hands each to a child, checks the child's
/// effect, then unlinks the named one and checks that `open` fails.
fn both_ways<T: SharedObject<Error = Error>>(
    kind: &str,
    make: impl Fn() -> T::Init,
    check: impl Fn(&T),
) {
    let name = shm_core::testing::both_ways::<T>(TEST, VAR, kind, make, check);
    assert!(matches!(
        T::open(&name),
        Err(Error::Shm(shm_core::Error::NotFound { .. }))
    ));
}

#[test]
fn every_kind_is_handed_to_a_child_by_name_and_by_descriptor() {
    if let Some(kind) = child_role() {
        child(&kind);
        return;
    }
    both_ways::<Mutex<u64>>("mutex", || 1, |m| assert_eq!(*m.lock().unwrap(), 2));
    both_ways::<RwLock<u64>>("rwlock", || 1, |m| assert_eq!(*m.read().unwrap(), 2));
    both_ways::<Event>("event", || (), |e| assert!(e.is_set()));
    both_ways::<Semaphore>("semaphore", || 0, |s| assert_eq!(s.value(), 1));
    both_ways::<BoundedSemaphore>("bounded", || 2, |s| assert_eq!(s.value(), 1));
    both_ways::<Barrier>("barrier", || 1, |b| assert!(!b.broken()));
    both_ways::<Condvar>("condvar", || (), |_| {});
    both_ways::<Condition<u32>>(
        "condition",
        || 0,
        |c| assert_eq!(*c.lock_timeout(Duration::from_secs(5)).unwrap(), 42),
    );
    both_ways::<RLock>("rlock", || (), |l| drop(l.try_lock().unwrap()));
    both_ways::<Lock>("lock", || (), |l| assert!(!l.is_locked()));
}

#[test]
fn open_timeout_waits_for_a_late_creator() {
    let name = shm_core::testing::unique_name("late-event");
    let _guard = shm_core::testing::UnlinkGuard::new(&name);
    let opener = current_tid();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Created only once the open below is waiting for the name.
            wait_until_blocked(Task::Thread(opener), BlockedIn::Sleep);
            let mut ev = Event::create_named(&name).unwrap();
            ev.set();
            ev.set_unlink_on_drop(false);
        });
        let ev = Event::open_timeout(&name, Duration::from_secs(60)).unwrap();
        assert!(ev.wait_timeout(Duration::from_secs(60)).is_ok());
    });
    assert!(matches!(
        Event::open_timeout("shm-lifecycle-never", Duration::from_millis(20)),
        Err(Error::Shm(shm_core::Error::NotFound { .. }))
    ));
}
