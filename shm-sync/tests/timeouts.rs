//! Timeouts fire (lower bounds exact, upper bounds generous), `try_` forms never wait.

use std::time::{Duration, Instant};

use shm_sync::{
    Barrier, BoundedSemaphore, Condvar, Error, Event, LockError, Mutex, RLock, RwLock, Semaphore,
};

const D: Duration = Duration::from_millis(40);
const SLACK: Duration = Duration::from_secs(3);

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn assert_on_time(what: &str, took: Duration) {
    assert!(
        took >= D,
        "{what}: returned after {took:?}, before its timeout {D:?}"
    );
    assert!(took < D + SLACK, "{what}: took {took:?}");
}

#[test]
fn lock_timeouts_fire_on_time() {
    let m = Mutex::create(0u32).unwrap();
    let l = RwLock::create(0u32).unwrap();
    let r = RLock::create().unwrap();
    let _held = (m.lock().unwrap(), l.read().unwrap(), r.lock().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            let (res, took) = timed(|| m.lock_timeout(D));
            assert!(matches!(res, Err(LockError::Timeout { waited, .. }) if waited == D));
            assert_on_time("Mutex::lock_timeout", took);
            assert!(matches!(m.try_lock(), Err(LockError::WouldBlock { .. })));

            let (res, took) = timed(|| l.write_timeout(D));
            assert!(matches!(res, Err(LockError::Timeout { .. })));
            assert_on_time("RwLock::write_timeout", took);
            assert!(l.try_write().is_err());
            // The timed-out writer did not leave readers locked out.
            assert!(l.try_read().is_ok());

            let (res, took) = timed(|| r.lock_timeout(D));
            assert!(matches!(res, Err(LockError::Timeout { .. })));
            assert_on_time("RLock::lock_timeout", took);
        });
    });
}

#[test]
fn read_timeout_while_writer_holds() {
    let l = RwLock::create(0u32).unwrap();
    let _w = l.write().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (res, took) = timed(|| l.read_timeout(D));
            assert!(matches!(res, Err(LockError::Timeout { .. })));
            assert_on_time("RwLock::read_timeout", took);
        });
    });
}

#[test]
fn wait_timeouts_fire_on_time() {
    let ev = Event::create().unwrap();
    let (res, took) = timed(|| ev.wait_timeout(D));
    assert!(matches!(res, Err(Error::Timeout { .. })));
    assert_on_time("Event::wait_timeout", took);

    let sem = Semaphore::create(0).unwrap();
    let (res, took) = timed(|| sem.acquire_timeout(D));
    assert!(matches!(res, Err(Error::Timeout { .. })));
    assert_on_time("Semaphore::acquire_timeout", took);

    let b = Barrier::create(2).unwrap();
    let (res, took) = timed(|| b.wait_timeout(D));
    assert!(matches!(res, Err(Error::Timeout { .. })));
    assert_on_time("Barrier::wait_timeout", took);
    assert!(
        b.broken(),
        "a timed-out party breaks the barrier (Python's semantics)"
    );
    b.reset();
    // Usable again after `reset`.
    std::thread::scope(|s| {
        s.spawn(|| b.wait_timeout(SLACK).unwrap());
        b.wait_timeout(SLACK).unwrap();
    });

    let m = Mutex::create(0u8).unwrap();
    let cv = Condvar::create().unwrap();
    let ((g, r), took) = timed(|| cv.wait_timeout(m.lock().unwrap(), D).unwrap());
    assert!(r.timed_out());
    assert_on_time("Condvar::wait_timeout", took);
    drop(g);
}

#[test]
fn timeout_messages_name_the_object() {
    let ev = Event::create().unwrap();
    let msg = ev
        .wait_timeout(Duration::from_millis(1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Event") && msg.contains(ev.name().unwrap()),
        "{msg}"
    );
    let m = Mutex::create(0u8).unwrap();
    let _g = m.lock().unwrap();
    let msg = std::thread::scope(|s| {
        s.spawn(|| {
            m.lock_timeout(Duration::from_millis(1))
                .unwrap_err()
                .to_string()
        })
        .join()
        .unwrap()
    });
    assert!(
        msg.contains("Mutex") && msg.contains(m.name().unwrap()),
        "{msg}"
    );
}

#[test]
fn bounded_semaphore_over_release_is_an_error() {
    let s = BoundedSemaphore::create(2).unwrap();
    assert!(matches!(
        s.release(),
        Err(Error::OverRelease { max: 2, .. })
    ));
    s.acquire().unwrap();
    s.release().unwrap();
    assert_eq!(s.value(), 2);
}

#[test]
fn wrong_kind_or_type_is_refused() {
    let m = Mutex::create(0u64).unwrap();
    assert!(matches!(
        Mutex::<u32>::open(m.name().unwrap()),
        Err(Error::Shm(shm_core::Error::TypeMismatch { .. }))
    ));
    assert!(matches!(
        Mutex::<i64>::open(m.name().unwrap()),
        Err(Error::Shm(shm_core::Error::TypeMismatch { .. }))
    ));
    assert!(matches!(
        Event::open(m.name().unwrap()),
        Err(Error::Shm(shm_core::Error::WrongKind { .. }))
    ));
    assert!(matches!(
        RwLock::<u64>::open(m.name().unwrap()),
        Err(Error::Shm(shm_core::Error::WrongKind { .. }))
    ));
    assert!(matches!(
        Semaphore::open("shm-sync-test-no-such-object"),
        Err(Error::Shm(shm_core::Error::NotFound { .. }))
    ));
}

#[test]
fn spurious_wakeups_are_absorbed() {
    // Notifications without the condition: the waiter re-checks and sleeps again.
    let m = Mutex::create(0u8).unwrap();
    let cv = Condvar::create().unwrap();
    let (m, cv) = (&m, &cv);
    std::thread::scope(|s| {
        let (tx, tid) = std::sync::mpsc::channel();
        let h = s.spawn(move || {
            tx.send(shm_core::testing::current_tid()).unwrap();
            let mut g = m.lock().unwrap();
            while *g == 0 {
                g = cv.wait(g).unwrap();
            }
        });
        let waiter = shm_core::testing::Task::Thread(tid.recv().unwrap());
        for _ in 0..20 {
            // Each notification finds the waiter asleep: a real wake-up to absorb.
            shm_core::testing::wait_until_blocked(
                waiter,
                shm_core::testing::BlockedIn::SharedFutex,
            );
            cv.notify_all();
        }
        *m.lock().unwrap() = 1;
        cv.notify_all();
        h.join().unwrap();
    });
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Mutex<u64>>();
    send_sync::<RwLock<[u8; 16]>>();
    send_sync::<RLock>();
    send_sync::<Condvar>();
    send_sync::<Event>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Barrier>();
    send_sync::<shm_sync::RawMutex>();
}
