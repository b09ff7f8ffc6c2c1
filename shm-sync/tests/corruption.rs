//! A hostile process scribbles over the lock words: every operation must return (an
//! error or a recovery) within its timeout, never hang, panic or misbehave.

mod common;

use std::time::{Duration, Instant};

use common::Rng;
use shm_core::{HEADER_LEN, Segment};
use shm_sync::{Barrier, Condvar, Event, Mutex, RLock, RwLock, Semaphore};

const T: Duration = Duration::from_millis(30);

/// Garbage values worth trying, plus random ones.
fn garbage(rng: &mut Rng) -> [u8; 24] {
    let mut b = [0u8; 24];
    let pick = rng.below(6);
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        let v = match pick {
            0 => u64::MAX,
            1 => 1 << 30 | 1 << 31,
            2 => 0xdead_beef_0000_0000,
            3 if i == 0 => u64::from(std::process::id()),
            4 => rng.next_u64() & 0xffff_ffff,
            _ => rng.next_u64(),
        };
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn scribble(name: &str, rng: &mut Rng) {
    let seg = Segment::open(name).unwrap();
    let g = garbage(rng);
    let n = (seg.len() - HEADER_LEN).min(g.len());
    seg.write_at(HEADER_LEN, &g[..n]).unwrap();
}

/// Runs `op` and checks it returns within `T` plus generous slack.
fn bounded<R>(what: &str, op: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = op();
    assert!(
        t.elapsed() < T + Duration::from_secs(3),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn scribbled_locks_error_or_recover() {
    let mut rng = Rng::new();
    let m = Mutex::create(0u64).unwrap();
    let l = RwLock::create(0u64).unwrap();
    let r = RLock::create().unwrap();
    for _ in 0..40 {
        scribble(m.name().unwrap(), &mut rng);
        let res = bounded("Mutex", || {
            m.lock_timeout(T)
                .map(|_| ())
                .map_err(|e| e.map(|g| g.mark_consistent()))
        });
        let _ = res;
        // Whatever happened, a fresh lock word works again.
        Segment::open(m.name().unwrap())
            .unwrap()
            .write_at(HEADER_LEN, &[0; 16])
            .unwrap();
        assert!(m.try_lock().is_ok());

        scribble(l.name().unwrap(), &mut rng);
        let _ = bounded("RwLock::write", || {
            l.write_timeout(T).map(|_| ()).map_err(|e| e.map(|_| ()))
        });
        let _ = bounded("RwLock::read", || {
            l.read_timeout(T).map(|_| ()).map_err(|e| e.map(|_| ()))
        });
        let _ = bounded("RwLock::try", || {
            l.try_write().map(|_| ()).map_err(|e| e.map(|_| ()))
        });

        scribble(r.name().unwrap(), &mut rng);
        bounded("RLock", || {
            if r.acquire_timeout(T).is_ok() {
                let _ = r.release();
            }
        });
    }
}

#[test]
fn scribbled_waits_error_or_return() {
    let mut rng = Rng::new();
    let ev = Event::create().unwrap();
    let sem = Semaphore::create(0).unwrap();
    let b = Barrier::create(3).unwrap();
    let cv = Condvar::create().unwrap();
    let m = Mutex::create(0u8).unwrap();
    for _ in 0..40 {
        scribble(ev.name().unwrap(), &mut rng);
        let _ = bounded("Event", || ev.wait_timeout(T));
        ev.set();
        assert!(ev.is_set());
        ev.clear();

        scribble(sem.name().unwrap(), &mut rng);
        let _ = bounded("Semaphore", || sem.acquire_timeout(T));
        let _ = sem.release();

        scribble(b.name().unwrap(), &mut rng);
        let _ = bounded("Barrier", || b.wait_timeout(T));

        scribble(cv.name().unwrap(), &mut rng);
        let g = m.lock().unwrap();
        let _ = bounded("Condvar", || {
            cv.wait_timeout(g, T).map(|_| ()).map_err(|e| e.map(|_| ()))
        });
        cv.notify_all();
    }
}
