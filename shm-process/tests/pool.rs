//! `Pool` across real worker processes (the test binary re-runs itself).

use std::time::{Duration, Instant};

use shm_process::{Error, Pool};

fn square(x: u64) -> u64 {
    x * x
}

fn fails_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not allowed");
    x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn adds(args: (shm_process::Shared<shm_collections::Value<u64>>, u64)) -> u64 {
    let (v, n) = args;
    v.update(|x| {
        *x += n;
        *x
    })
    .unwrap()
}

#[test]
fn named_objects_travel_to_workers_anonymous_ones_are_refused() {
    use shm_core::SharedObject;
    use shm_process::Shared;
    shm_process::main!(adds);
    let mut pool = Pool::new(2).unwrap();
    let v = shm_collections::Value::create(0u64).unwrap();
    let args: Vec<_> = (1..=4).map(|n| (Shared::of(&v).unwrap(), n)).collect();
    pool.map(adds, args).unwrap();
    assert_eq!(v.get().unwrap(), 10);
    let anon = shm_collections::Value::anonymous(0u64).unwrap();
    let r = pool.apply(adds, (Shared::of(&anon).unwrap(), 1));
    match r {
        Err(Error::Encode { message, .. }) => {
            assert!(message.contains("Process argument"), "{message}")
        }
        other => panic!("expected Encode, found {other:?}"),
    }
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

#[test]
fn map_and_apply_give_results_in_order() {
    shm_process::main!(square);
    let mut pool = Pool::new(2).unwrap();
    let got = pool.map(square, 0..50u64).unwrap();
    assert_eq!(got, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    assert!(pool.join().is_err()); // not closed yet
    pool.close().unwrap();
    assert!(matches!(pool.map(square, [1]), Err(Error::Pool { .. })));
    pool.join().unwrap();
}

fn too_big(n: usize) -> Vec<u8> {
    vec![1; n]
}

#[test]
fn a_panicking_task_is_an_error_and_the_pool_goes_on() {
    shm_process::main!(fails_on_three, too_big);
    let mut pool = Pool::new(2).unwrap();
    match pool.map(fails_on_three, 0..6) {
        Err(Error::Panicked { message, .. }) => assert_eq!(message, "three is not allowed"),
        other => panic!("expected Panicked, found {other:?}"),
    }
    assert_eq!(pool.map(fails_on_three, [1, 2]).unwrap(), [1, 2]);
    match pool.apply(too_big, 4 << 20) {
        Err(Error::Dispatch { message, .. }) => {
            assert!(message.contains("cannot send the result back"), "{message}")
        }
        other => panic!("expected Dispatch, found {other:?}"),
    }
    assert_eq!(pool.apply(too_big, 3).unwrap(), [1, 1, 1]);
    let r = pool.apply(square, 2); // not registered in this test
    assert!(matches!(r, Err(Error::Dispatch { .. })), "{r:?}");
}

#[test]
fn a_worker_killed_mid_task_fails_its_task_and_is_replaced() {
    shm_process::main!(nap, pid);
    let mut pool = Pool::new(2).unwrap();
    let victims = pool.pids();
    for trial in 0..3 {
        let victim = pool.pids()[0];
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let status = std::process::Command::new("kill")
                .args(["-9", &victim.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        });
        let start = Instant::now();
        // Each worker holds a long task when the victim is killed.
        let r = pool.map(nap, [1000, 1000]);
        killer.join().unwrap();
        match r {
            Err(Error::WorkerDied { pid, exitcode, .. }) => {
                assert_eq!((pid, exitcode), (victim, -9), "trial {trial}");
            }
            other => panic!("trial {trial}: expected WorkerDied, found {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(30), "trial {trial}");
        assert!(!pool.pids().contains(&victim));
    }
    assert_ne!(pool.pids()[0], victims[0]);
    // The replaced workers work.
    let pids = pool.map(pid, vec![(); 4]).unwrap();
    assert!(pids.iter().all(|p| pool.pids().contains(p)));
    pool.terminate().unwrap();
}

#[test]
fn tasks_handed_to_an_idle_worker_killed_before_taking_them_are_not_lost() {
    shm_process::main!(square);
    for trial in 0..5 {
        // No retry asked: only tasks a worker started may fail with WorkerDied.
        let mut pool = Pool::new(2).unwrap();
        assert_eq!(pool.map(square, [1u64, 2]).unwrap(), [1, 4]);
        let victim = pool.pids()[trial % 2];
        // SAFETY: kill takes a pid and a signal number.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        // Wait until it is gone (a zombie until the pool reaps it), so that tasks are
        // handed to a dead worker's queue.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(format!("/proc/{victim}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the victim lives on"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let want: Vec<u64> = (0..64u64).map(|x| x * x).collect();
        assert_eq!(
            pool.map_chunksize(square, 0..64u64, 1).unwrap(),
            want,
            "trial {trial}"
        );
        assert!(!pool.pids().contains(&victim), "trial {trial}: replaced");
        pool.terminate().unwrap();
    }
}
