//! `Pool` options and the lazy and asynchronous forms, across real worker processes
//! (the test binary re-runs itself).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_collections::Value;
use shm_process::{Error, Pool, Shared};

fn square(x: u64) -> u64 {
    x * x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn boom(_: ()) -> u32 {
    panic!("boom")
}

/// Set by the initializer in a worker.
static INITIALIZED: AtomicU64 = AtomicU64::new(0);

fn init(args: (Shared<Value<u64>>, u64)) {
    let (count, tag) = args;
    count.update(|c| *c += 1).unwrap();
    INITIALIZED.store(tag, Ordering::SeqCst);
}

fn initialized(_: ()) -> (u32, u64) {
    (std::process::id(), INITIALIZED.load(Ordering::SeqCst))
}

#[test]
fn the_initializer_runs_once_per_worker_before_its_tasks() {
    shm_process::main!(init, initialized);
    let count = Value::create(0u64).unwrap();
    let mut pool = Pool::with_initializer(2, init, (Shared::of(&count).unwrap(), 42)).unwrap();
    let got = pool.map_chunksize(initialized, vec![(); 20], 1).unwrap();
    assert!(got.iter().all(|(_, tag)| *tag == 42), "{got:?}");
    let pids: std::collections::HashSet<u32> = got.iter().map(|(p, _)| *p).collect();
    assert!(pids.len() <= 2);
    pool.close().unwrap();
    pool.join().unwrap();
    assert_eq!(count.get().unwrap(), 2);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    shm_process::main!(init, pid);
    let count = Value::create(0u64).unwrap();
    let mut pool = Pool::builder()
        .workers(1)
        .max_tasks_per_child(2)
        .initializer(init, (Shared::of(&count).unwrap(), 1))
        .build()
        .unwrap();
    let first = pool.pids();
    let got = pool.map_chunksize(pid, vec![(); 6], 1).unwrap();
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "two tasks per worker: {got:?}");
    for p in &distinct {
        assert_eq!(got.iter().filter(|q| *q == p).count(), 2, "{got:?}");
    }
    assert_eq!(distinct[0], first[0]);
    assert!(!distinct.contains(&pool.pids()[0]));
    // A chunk is one task: two chunks of 3 on one worker, the third on the next.
    let got = pool.map_chunksize(pid, vec![(); 9], 3).unwrap();
    assert!(got[..6].iter().all(|p| *p == got[0]), "{got:?}");
    assert!(got[6..].iter().all(|p| *p == got[6]), "{got:?}");
    assert_ne!(got[0], got[6]);
    pool.close().unwrap();
    pool.join().unwrap();
    // One initializer per worker started: four retired, one stopped by close.
    assert_eq!(count.get().unwrap(), 5);
}

#[test]
fn chunked_and_automatic_map_and_starmap_keep_order() {
    shm_process::main!(square, add);
    let mut pool = Pool::new(2).unwrap();
    let want: Vec<u64> = (0..103u64).map(|x| x * x).collect();
    for chunksize in [0, 1, 2, 7, 1000] {
        assert_eq!(
            pool.map_chunksize(square, 0..103u64, chunksize).unwrap(),
            want
        );
    }
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
}

fn add(ab: (u32, u32)) -> u32 {
    ab.0 + ab.1
}

fn jitter(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis((x * 7) % 5));
    x
}

#[test]
fn imap_is_lazy_and_ordered() {
    shm_process::main!(jitter, square);
    let mut pool = Pool::new(2).unwrap();
    let read = Cell::new(0u64);
    // An endless input: only a few chunks ahead of the caller are read.
    let items = (0u64..).inspect(|_| read.set(read.get() + 1));
    let mut it = pool.imap(jitter, items, 2).unwrap();
    let first: Vec<u64> = it.by_ref().take(30).map(Result::unwrap).collect();
    assert_eq!(first, (0..30).collect::<Vec<_>>());
    assert!(read.get() < 30 + 100, "read {} items", read.get());
    drop(it);
    // Results of the dropped iterator do not leak into the next call.
    let v: Vec<u64> = pool
        .imap(square, 0..40u64, 3)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, (0..40u64).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(pool.map(square, [3u64]).unwrap(), [9]);
}

#[test]
fn imap_gives_each_item_its_own_error_and_times_out() {
    shm_process::main!(nap, fails_on_three);
    let mut pool = Pool::new(2).unwrap();
    let got: Vec<_> = pool.imap(fails_on_three, 0..6u32, 1).unwrap().collect();
    assert_eq!(got.len(), 6);
    for (i, r) in got.iter().enumerate() {
        match (i, r) {
            (3, Err(Error::Panicked { message, .. })) => assert_eq!(message, "three"),
            (i, Ok(v)) if i != 3 => assert_eq!(*v as usize, i),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut it = pool.imap(nap, [1500u64], 1).unwrap();
    match it.next_timeout(Duration::from_millis(50)) {
        Some(Err(Error::Timeout { .. })) => {}
        other => panic!("expected Timeout, found {other:?}"),
    }
    assert_eq!(
        it.next_timeout(Duration::from_secs(60)).unwrap().unwrap(),
        1500
    );
    assert!(it.next().is_none());
}

fn fails_on_three(x: u32) -> u32 {
    assert!(x != 3, "three");
    x
}

#[test]
fn imap_unordered_yields_what_is_done_first() {
    shm_process::main!(nap);
    let mut pool = Pool::new(2).unwrap();
    let got: Vec<u64> = pool
        .imap_unordered(nap, [1500u64, 0, 1, 2], 1)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_ne!(got[0], 1500, "{got:?}");
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2, 1500]);
}

#[test]
fn apply_async_times_out_then_gives_its_result_once() {
    shm_process::main!(nap, boom);
    let mut pool = Pool::new(1).unwrap();
    let r = pool.apply_async(nap, 1000).unwrap();
    let start = Instant::now();
    assert!(matches!(
        r.get(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!r.ready());
    assert_eq!(r.successful(), None);
    assert!(r.wait(Duration::from_secs(60)).unwrap());
    assert!(r.ready());
    assert_eq!(r.successful(), Some(true));
    assert_eq!(r.get(Duration::ZERO).unwrap(), 1000);
    assert!(matches!(r.get(Duration::ZERO), Err(Error::Pool { .. })));

    let bad = pool.apply_async(boom, ()).unwrap();
    assert!(bad.wait(Duration::from_secs(60)).unwrap());
    assert_eq!(bad.successful(), Some(false));
    assert!(matches!(
        bad.get(Duration::from_secs(60)),
        Err(Error::Panicked { .. })
    ));

    // Several in flight; one dropped unread does not disturb the others.
    let a = pool.apply_async(nap, 10).unwrap();
    let dropped = pool.apply_async(nap, 20).unwrap();
    let c = pool.apply_async(nap, 30).unwrap();
    drop(dropped);
    assert_eq!(c.get(Duration::from_secs(60)).unwrap(), 30);
    assert_eq!(a.get(Duration::from_secs(60)).unwrap(), 10);
    assert_eq!(pool.map(nap, [1u64, 2]).unwrap(), [1, 2]);

    let pending = pool.apply_async(nap, 5000).unwrap();
    pool.terminate().unwrap();
    assert!(matches!(
        pending.get(Duration::from_secs(60)),
        Err(Error::Pool { .. })
    ));
}

fn kill_later(victim: u32) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill takes a pid and a signal number.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    })
}

#[test]
fn a_killed_workers_task_is_retried_once_when_asked() {
    shm_process::main!(nap, dies);
    let mut pool = Pool::builder()
        .workers(2)
        .retry_killed(true)
        .build()
        .unwrap();
    for trial in 0..2 {
        let victim = pool.pids()[trial % 2];
        let killer = kill_later(victim);
        let r = pool.map_chunksize(nap, [1000u64, 1000], 1);
        killer.join().unwrap();
        assert_eq!(r.unwrap(), [1000, 1000], "trial {trial}");
        assert!(!pool.pids().contains(&victim));
    }
    // A task that kills its worker every time runs twice, then fails.
    let runs = Value::create(0u64).unwrap();
    match pool.apply(dies, Shared::of(&runs).unwrap()) {
        Err(Error::WorkerDied { exitcode, .. }) => assert_eq!(exitcode, -libc::SIGKILL),
        other => panic!("expected WorkerDied, found {other:?}"),
    }
    assert_eq!(runs.get().unwrap(), 2);
    // Without retry it runs once.
    let mut once = Pool::new(1).unwrap();
    runs.set(0).unwrap();
    assert!(matches!(
        once.apply(dies, Shared::of(&runs).unwrap()),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(runs.get().unwrap(), 1);
}

fn dies(runs: Shared<Value<u64>>) {
    runs.update(|r| *r += 1).unwrap();
    // SAFETY: kill takes a pid and a signal number.
    unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
}

#[test]
fn join_runs_what_was_submitted_before_close() {
    shm_process::main!(nap);
    let mut pool = Pool::new(2).unwrap();
    let r = pool.apply_async(nap, 200).unwrap();
    pool.close().unwrap();
    assert!(pool.apply_async(nap, 1).is_err());
    pool.join().unwrap();
    assert!(r.ready());
    assert_eq!(r.get(Duration::ZERO).unwrap(), 200);
}

#[test]
fn an_imap_input_may_use_the_pool() {
    shm_process::main!(square);
    let mut pool = Pool::new(2).unwrap();
    let earlier = pool.apply_async(square, 3).unwrap();
    // The input looks at a pending result of the same pool: it is read without the
    // pool's lock (else this would deadlock).
    let items = (0..5u64).inspect(|_| {
        let _ = earlier.ready();
    });
    let mut it = pool.imap(square, items, 1).unwrap();
    let first = it.next_timeout(Duration::from_secs(60));
    assert_eq!(first.unwrap().unwrap(), 0);
    let rest: Vec<u64> = it.map(Result::unwrap).collect();
    assert_eq!(rest, [1, 4, 9, 16]);
    assert_eq!(earlier.get(Duration::from_secs(60)).unwrap(), 9);
}

fn bad_init(_: ()) {
    panic!("no database")
}

#[test]
fn a_failing_initializer_fails_the_tasks_instead_of_hanging() {
    shm_process::main!(bad_init, square);
    let mut pool = Pool::with_initializer(2, bad_init, ()).unwrap();
    let start = Instant::now();
    match pool.map(square, 0..4u64) {
        Err(Error::WorkerDied { exitcode, .. }) => assert_eq!(exitcode, 4),
        other => panic!("expected WorkerDied, found {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    let closure_init = Pool::builder().initializer(|_: ()| {}, ()).build();
    assert!(
        matches!(closure_init, Err(Error::Pool { .. })),
        "{closure_init:?}"
    );
}
