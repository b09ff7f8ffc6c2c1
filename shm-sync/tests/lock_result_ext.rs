//! `LockResultExt`: the one-liners over a lock whose holder really died (a thread that
//! ended holding it counts as a dead holder).

use shm_sync::{LockError, LockResultExt, Mutex};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn kill_holder(m: &Mutex<u64>) {
    let name = m.name().unwrap().to_owned();
    std::thread::spawn(move || {
        let m = Mutex::<u64>::open(&name).unwrap();
        let mut g = m.lock().unwrap();
        *g = 5;
        std::mem::forget(g); // the thread ends holding the lock
    })
    .join()
    .unwrap();
}

#[test]
fn recover_takes_the_lock_from_a_dead_holder_and_leaves_it_inconsistent() -> Result {
    let m = Mutex::create(0u64)?;
    kill_holder(&m);
    *m.lock().recover()? += 1; // compiles with `?` into Box<dyn Error>, and works
    // Nobody marked it consistent: the next locker is told.
    assert!(matches!(m.lock(), Err(LockError::Inconsistent(_))));
    assert_eq!(*m.lock().recover()?, 6);
    Ok(())
}

#[test]
fn detach_makes_owner_death_an_error_without_a_guard() -> Result {
    let m = Mutex::create(0u64)?;
    kill_holder(&m);
    let err = m.lock().detach().unwrap_err();
    assert!(matches!(err, LockError::OwnerDied(())), "{err:?}");
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert!(boxed.to_string().contains("died"), "{boxed}");
    // The lock was released with the dropped guard (and is still inconsistent).
    let g = m
        .lock()
        .unwrap_err()
        .into_guard()
        .expect("held after Inconsistent");
    assert_eq!(*g, 5);
    g.mark_consistent();
    drop(g);
    assert_eq!(*m.lock().detach()?, 5);
    Ok(())
}
