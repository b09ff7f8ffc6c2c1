//! The locks and waiting objects of shm-sync, used with timed calls only.

use shm_sync::{
    Barrier, BoundedSemaphore, Condition, Condvar, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};

use super::{T, Target, e};

/// The locks and waiting objects of shm-sync.
pub(super) fn targets() -> Vec<Target> {
    vec![
        Target::fresh::<Mutex<u64>>("Mutex<u64>", 7, |s| {
            let m = Mutex::<u64>::from_segment(s).map_err(e)?;
            if let Ok(mut g) = m.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                *g = g.wrapping_add(1);
            }
            let _ = m.try_lock();
            Ok(())
        }),
        Target::fresh::<RwLock<u64>>("RwLock<u64>", 7, |s| {
            let l = RwLock::<u64>::from_segment(s).map_err(e)?;
            if let Ok(g) = l.read_timeout(T) {
                let _ = *g;
            }
            drop(l.write_timeout(T));
            Ok(())
        }),
        Target::fresh::<Event>("Event", (), |s| {
            let ev = Event::from_segment(s).map_err(e)?;
            let _ = ev.is_set();
            let _ = ev.wait_timeout(T);
            ev.set();
            ev.clear();
            Ok(())
        }),
        Target::fresh::<Semaphore>("Semaphore", 3, |s| {
            let sem = Semaphore::from_segment(s).map_err(e)?;
            if sem.acquire_timeout(T).is_ok() {
                let _ = sem.release();
            }
            let _ = sem.value();
            Ok(())
        }),
        Target::fresh::<BoundedSemaphore>("BoundedSemaphore", 3, |s| {
            let sem = BoundedSemaphore::from_segment(s).map_err(e)?;
            if sem.try_acquire().is_ok() {
                let _ = sem.release();
            }
            let _ = sem.release();
            Ok(())
        }),
        Target::fresh::<Barrier>("Barrier", 2, |s| {
            let b = Barrier::from_segment(s).map_err(e)?;
            let _ = b.wait_timeout(T);
            let _ = (b.broken(), b.parties(), b.n_waiting());
            b.reset();
            Ok(())
        }),
        Target::fresh::<Condvar>("Condvar", (), |s| {
            let cv = Condvar::from_segment(s).map_err(e)?;
            cv.notify_one();
            cv.notify_all();
            Ok(())
        }),
        Target::fresh::<Condition<u32>>("Condition<u32>", 1, |s| {
            let c = Condition::<u32>::from_segment(s).map_err(e)?;
            if let Ok(g) = c.lock_timeout(T) {
                let _ = c.wait_timeout(g, T);
            }
            c.notify_all();
            Ok(())
        }),
        Target::fresh::<RLock>("RLock", (), |s| {
            let l = RLock::from_segment(s).map_err(e)?;
            drop(l.lock_timeout(T));
            Ok(())
        }),
        Target::fresh::<Lock>("Lock", (), |s| {
            let l = Lock::from_segment(s).map_err(e)?;
            drop(l.lock_timeout(T));
            Ok(())
        }),
    ]
}
