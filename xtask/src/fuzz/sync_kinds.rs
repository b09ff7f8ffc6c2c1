//! The locks and waiting objects of shm-sync, used with timed calls only.

use shm_core::SharedObject;
use shm_sync::{
    Barrier, BoundedSemaphore, Condition, Condvar, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};

use super::{T, Target, e, snapshot};

/// The locks and waiting objects of shm-sync.
pub(super) fn targets() -> Vec<Target> {
    vec![
        Target {
            kind: "Mutex<u64>",
            pristine: snapshot(&<Mutex<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let m = Mutex::<u64>::from_segment(s).map_err(e)?;
                if let Ok(mut g) = m.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                    *g = g.wrapping_add(1);
                }
                let _ = m.try_lock();
                Ok(())
            },
        },
        Target {
            kind: "RwLock<u64>",
            pristine: snapshot(&<RwLock<u64> as SharedObject>::anonymous(7).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = RwLock::<u64>::from_segment(s).map_err(e)?;
                if let Ok(g) = l.read_timeout(T) {
                    let _ = *g;
                }
                drop(l.write_timeout(T));
                Ok(())
            },
        },
        Target {
            kind: "Event",
            pristine: snapshot(&<Event as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let ev = Event::from_segment(s).map_err(e)?;
                let _ = ev.is_set();
                let _ = ev.wait_timeout(T);
                ev.set();
                ev.clear();
                Ok(())
            },
        },
        Target {
            kind: "Semaphore",
            pristine: snapshot(&<Semaphore as SharedObject>::anonymous(3).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let sem = Semaphore::from_segment(s).map_err(e)?;
                if sem.acquire_timeout(T).is_ok() {
                    let _ = sem.release();
                }
                let _ = sem.value();
                Ok(())
            },
        },
        Target {
            kind: "BoundedSemaphore",
            pristine: snapshot(&<BoundedSemaphore as SharedObject>::anonymous(3).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let sem = BoundedSemaphore::from_segment(s).map_err(e)?;
                if sem.try_acquire().is_ok() {
                    let _ = sem.release();
                }
                let _ = sem.release();
                Ok(())
            },
        },
        Target {
            kind: "Barrier",
            pristine: snapshot(&<Barrier as SharedObject>::anonymous(2).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let b = Barrier::from_segment(s).map_err(e)?;
                let _ = b.wait_timeout(T);
                let _ = (b.broken(), b.parties(), b.n_waiting());
                b.reset();
                Ok(())
            },
        },
        Target {
            kind: "Condvar",
            pristine: snapshot(&<Condvar as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let cv = Condvar::from_segment(s).map_err(e)?;
                cv.notify_one();
                cv.notify_all();
                Ok(())
            },
        },
        Target {
            kind: "Condition<u32>",
            pristine: snapshot(&<Condition<u32> as SharedObject>::anonymous(1).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let c = Condition::<u32>::from_segment(s).map_err(e)?;
                if let Ok(g) = c.lock_timeout(T) {
                    let _ = c.wait_timeout(g, T);
                }
                c.notify_all();
                Ok(())
            },
        },
        Target {
            kind: "RLock",
            pristine: snapshot(&<RLock as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = RLock::from_segment(s).map_err(e)?;
                drop(l.lock_timeout(T));
                Ok(())
            },
        },
        Target {
            kind: "Lock",
            pristine: snapshot(&<Lock as SharedObject>::anonymous(()).unwrap()),
            hot: Vec::new(),
            exercise: |s| {
                let l = Lock::from_segment(s).map_err(e)?;
                drop(l.lock_timeout(T));
                Ok(())
            },
        },
    ]
}
