//! Every `Process` method across real child processes: the test binary re-runs itself
//! with `<test name> --exact`, and the first line of each test dispatches.

use std::time::{Duration, Instant};

use shm_collections::{Array, Queue, ShareableDict, ShareableVec, Value};
use shm_core::SharedObject;
use shm_process::{Builder, Error, HandleExt, Process, Shared};
use shm_sync::{Event, Lock, Mutex};

fn nothing(_: ()) {}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn panics(msg: String) {
    panic!("worker says: {msg}")
}

fn sleeps(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs))
}

fn checks_env(_: ()) {
    assert_eq!(std::env::var("SHM_PROCESS_TEST_VAR").as_deref(), Ok("yes"));
}

fn increments(args: (Shared<Value<u64>>, u64)) {
    let (counter, times) = args;
    for _ in 0..times {
        counter.update(|v| *v += 1).unwrap();
    }
}

/// Opens a handle (as one received through a queue, say) as a `Value<u32>`.
fn opens_as_u32(h: shm_process::Handle) {
    if let Err(e) = h.open::<Value<u32>>() {
        panic!("{e}");
    }
}

type Everything = (
    Shared<Value<u64>>,
    Shared<Array<u32>>,
    Shared<Queue<String>>,
    Shared<ShareableDict<String, u64>>,
    Shared<ShareableVec<String>>,
    Shared<Event>,
    Shared<Lock>,
    Shared<Mutex<u64>>,
);

fn uses_everything(args: Everything) {
    let (value, array, queue, dict, vec, event, lock, mutex) = args;
    value.set(11).unwrap();
    array.set(1, 22).unwrap();
    queue.put(&"from child".to_string()).unwrap();
    dict.insert("child".into(), 33).unwrap();
    vec.push("child".into()).unwrap();
    drop(lock.lock().unwrap());
    *mutex.lock().unwrap() += 44;
    event.set();
}

type Anonymous = (
    Shared<Value<u64>>,
    Shared<Array<u32>>,
    Shared<Queue<String>>,
    Shared<Event>,
    Shared<Lock>,
    Shared<Mutex<u64>>,
);

fn uses_anonymous(args: Anonymous) {
    let (value, array, queue, event, lock, mutex) = args;
    value.set(11).unwrap();
    array.set(1, 22).unwrap();
    queue.put(&"from child".to_string()).unwrap();
    drop(lock.lock().unwrap());
    *mutex.lock().unwrap() += 44;
    event.set();
}

/// Spawns a daemon grandchild that sleeps, reports its pid, then sleeps itself.
fn spawns_daemon(pid_out: Shared<Value<u64>>) {
    let grandchild = Builder::new().daemon(true).spawn(sleeps, 60).unwrap();
    pid_out.set(u64::from(grandchild.pid())).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn gone(pid: u32) -> bool {
    // Dead, or a zombie waiting for its reaper.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn join_pid_name_and_exit_codes() {
    shm_process::main!(nothing, exit_with);
    let mut p = Builder::new().name("w").spawn(nothing, ()).unwrap();
    assert!(p.pid() > 0);
    assert_eq!(p.name(), "w");
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());
    assert_eq!(p.join().unwrap(), 0); // again: the same

    let mut p = Process::spawn(exit_with, 7).unwrap();
    assert!(p.name().ends_with("exit_with"));
    assert_eq!(p.join().unwrap(), 7);
    assert_eq!(p.exitcode(), Some(7));
}

#[test]
fn panic_message_comes_back() {
    shm_process::main!(panics);
    let mut p = Process::spawn(panics, "out of coffee".to_string()).unwrap();
    match p.join() {
        Err(Error::Panicked { message, pid, .. }) => {
            assert_eq!(message, "worker says: out of coffee");
            assert_eq!(pid, p.pid());
        }
        other => panic!("expected Panicked, found {other:?}"),
    }
    assert_eq!(p.exitcode(), Some(1));
}

#[test]
fn signals_timeouts_and_liveness() {
    shm_process::main!(sleeps);
    let mut p = Process::spawn(sleeps, 60).unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.join_timeout(Duration::from_millis(50)).unwrap(), None);
    p.terminate().unwrap();
    assert_eq!(p.join_timeout(Duration::MAX).unwrap(), Some(-15));
    assert_eq!(p.exitcode(), Some(-libc_sigterm()));
    p.kill().unwrap(); // reaped: does nothing
    assert!(gone(p.pid()));

    let mut p = Process::spawn(sleeps, 60).unwrap();
    p.kill().unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(-9));
}

fn libc_sigterm() -> i32 {
    15
}

fn checks_big(bytes: Vec<u8>) {
    assert_eq!(bytes.len(), 300_000);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn large_arguments_travel_in_a_segment() {
    shm_process::main!(checks_big);
    let big: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    let mut p = Process::spawn(checks_big, big).unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

/// Starts this test binary again by hand (not with `Process`): the grandchild inherits
/// the child's environment and must run its own `main`, not the child's function.
fn starts_a_plain_grandchild(_: ()) {
    if std::env::var_os("SHM_PROCESS_TEST_GRANDCHILD").is_some() {
        std::process::exit(7); // dispatched again: wrong
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["a_plain_grandchild_runs_its_own_main", "--exact", "-q"])
        .env("SHM_PROCESS_TEST_GRANDCHILD", "1")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42));
}

#[test]
fn a_plain_grandchild_runs_its_own_main() {
    shm_process::main!(starts_a_plain_grandchild);
    if std::env::var_os("SHM_PROCESS_TEST_GRANDCHILD").is_some() {
        std::process::exit(42); // main! returned: right
    }
    let mut p = Process::spawn(starts_a_plain_grandchild, ()).unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn builder_args_replace_the_default() {
    shm_process::main!(nothing);
    let mut p = Builder::new()
        .args(["builder_args_replace_the_default", "--exact", "-q"])
        .spawn(nothing, ())
        .unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn builder_env_reaches_the_child() {
    shm_process::main!(checks_env);
    let mut p = Builder::new()
        .env("SHM_PROCESS_TEST_VAR", "yes")
        .spawn(checks_env, ())
        .unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn closures_and_unregistered_functions_are_typed_errors() {
    shm_process::main!(nothing);
    let r = Process::spawn(|_: ()| {}, ());
    assert!(matches!(r, Err(Error::NotSpawnable { .. })), "{r:?}");
    let mut p = Process::spawn(exit_with, 3).unwrap(); // not registered in this test
    match p.join() {
        Err(Error::Dispatch { message, .. }) => {
            assert!(message.contains("exit_with"), "{message}");
            assert!(message.contains("nothing"), "{message}");
        }
        other => panic!("expected Dispatch, found {other:?}"),
    }
    assert_eq!(p.exitcode(), Some(2));
}

#[test]
fn children_increment_a_shared_value() {
    shm_process::main!(increments);
    let counter = Value::create(0u64).unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|_| Process::spawn(increments, (Shared::of(&counter).unwrap(), 100)).unwrap())
        .collect();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert_eq!(counter.get().unwrap(), 300);

    let anon = Value::anonymous(0u64).unwrap();
    let mut k = Process::spawn(increments, (Shared::of(&anon).unwrap(), 5)).unwrap();
    assert_eq!(k.join().unwrap(), 0);
    assert_eq!(anon.get().unwrap(), 5);
}

#[test]
fn a_shared_object_of_another_type_is_a_typed_error() {
    shm_process::main!(opens_as_u32);
    // A handle that says Value<u64> read where a Value<u32> is expected (what a handle
    // from elsewhere, e.g. through a queue, may hold): refused before opening.
    let v = Value::create(0u64).unwrap();
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(Shared::of(&v).unwrap(), cfg).unwrap();
    let err = bincode::serde::decode_from_slice::<Shared<Value<u32>>, _>(&bytes, cfg).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("expected shm_collections::value::Value<u32>"),
        "{msg}"
    );
    assert!(
        msg.contains("found shm_collections::value::Value<u64>"),
        "{msg}"
    );

    // A handle that lies about its type: the object's header says otherwise.
    let mut h = shm_process::Handle::of(&v).unwrap();
    h.type_name = std::any::type_name::<Value<u32>>().to_owned();
    let bytes = bincode::serde::encode_to_vec(&h, cfg).unwrap();
    let r = bincode::serde::decode_from_slice::<Shared<Value<u32>>, _>(&bytes, cfg);
    assert!(r.is_err());

    match h.open::<Value<u32>>() {
        Err(Error::Open { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected Open, found {other:?}"),
    }

    // In a child.
    let h = shm_process::Handle::of(&v).unwrap();
    let mut p = Process::spawn(opens_as_u32, h).unwrap();
    match p.join() {
        Err(Error::Panicked { message, .. }) => {
            assert!(message.starts_with("wrong shared object type"), "{message}");
            assert!(message.contains("Value<u32>"), "{message}");
            assert!(message.contains("Value<u64>"), "{message}");
        }
        other => panic!("expected Panicked, found {other:?}"),
    }
}

#[test]
fn objects_of_every_kind_as_arguments() {
    shm_process::main!(uses_everything, uses_anonymous);
    let value = Value::create(0u64).unwrap();
    let array = Array::<u32>::create(4).unwrap();
    let queue: Queue<String> = Queue::create(4, 1024).unwrap();
    let dict = ShareableDict::<String, u64>::create().unwrap();
    let vec = ShareableVec::<String>::create().unwrap();
    let event = Event::create().unwrap();
    let lock = Lock::create().unwrap();
    let mutex = Mutex::create(0u64).unwrap();
    let args = (
        Shared::of(&value).unwrap(),
        Shared::of(&array).unwrap(),
        Shared::of(&queue).unwrap(),
        Shared::of(&dict).unwrap(),
        Shared::of(&vec).unwrap(),
        Shared::of(&event).unwrap(),
        Shared::of(&lock).unwrap(),
        Shared::of(&mutex).unwrap(),
    );
    let mut p = Process::spawn(uses_everything, args).unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(value.get().unwrap(), 11);
    assert_eq!(array.get(1).unwrap(), 22);
    assert_eq!(queue.get().unwrap(), "from child");
    assert_eq!(dict.get(&"child".to_string()).unwrap(), Some(33));
    assert_eq!(vec.get(0).unwrap().as_deref(), Some("child"));
    assert!(event.is_set());
    assert_eq!(*mutex.lock().unwrap(), 44);

    let value = Value::anonymous(0u64).unwrap();
    let array = Array::<u32>::anonymous(4).unwrap();
    let queue = Queue::<String>::anonymous(shm_collections::QueueSize {
        messages: 4,
        bytes: 1024,
    })
    .unwrap();
    let event = Event::anonymous(()).unwrap();
    let lock = Lock::anonymous(()).unwrap();
    let mutex = Mutex::anonymous(0u64).unwrap();
    let args = (
        Shared::of(&value).unwrap(),
        Shared::of(&array).unwrap(),
        Shared::of(&queue).unwrap(),
        Shared::of(&event).unwrap(),
        Shared::of(&lock).unwrap(),
        Shared::of(&mutex).unwrap(),
    );
    let mut p = Process::spawn(uses_anonymous, args).unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(value.get().unwrap(), 11);
    assert_eq!(array.get(1).unwrap(), 22);
    assert_eq!(queue.get().unwrap(), "from child");
    assert!(event.is_set());
    assert_eq!(*mutex.lock().unwrap(), 44);
}

#[test]
fn terminate_leaves_no_process_and_no_segment() {
    shm_process::main!(increments);
    let name;
    let pid;
    {
        let counter = Value::create(0u64).unwrap();
        name = counter.name().unwrap().to_owned();
        // Enough work that the child is still running when terminated.
        let mut p = Process::spawn(increments, (Shared::of(&counter).unwrap(), u64::MAX)).unwrap();
        pid = p.pid();
        wait_until("the child counts", || counter.get().unwrap() > 0);
        p.terminate().unwrap();
        assert_eq!(p.join().unwrap(), -15);
    }
    assert!(gone(pid));
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn a_daemon_dies_with_its_parent() {
    shm_process::main!(spawns_daemon, sleeps);
    let out = Value::create(0u64).unwrap();
    let mut middle = Process::spawn(spawns_daemon, Shared::of(&out).unwrap()).unwrap();
    wait_until("the daemon starts", || out.get().unwrap() != 0);
    let daemon = u32::try_from(out.get().unwrap()).unwrap();
    assert!(!gone(daemon));
    middle.kill().unwrap();
    assert_eq!(middle.join().unwrap(), -9);
    wait_until("the daemon dies with its parent", || gone(daemon));
}

fn adds_to_each(values: Vec<Shared<Value<u64>>>) {
    for (i, v) in values.iter().enumerate() {
        v.set(i as u64 + 1).unwrap();
    }
}

#[test]
fn more_anonymous_objects_than_one_message_carries() {
    shm_process::main!(adds_to_each);
    // 300 descriptors: two SCM_RIGHTS messages (at most 250 each).
    let values: Vec<Value<u64>> = (0..300).map(|_| Value::anonymous(0u64).unwrap()).collect();
    let args: Vec<Shared<Value<u64>>> = values.iter().map(|v| Shared::of(v).unwrap()).collect();
    let mut p = Process::spawn(adds_to_each, args).unwrap();
    assert_eq!(p.join().unwrap(), 0);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.get().unwrap(), i as u64 + 1, "value {i}");
    }
}

fn big_and_anonymous(args: (Vec<u8>, Shared<Value<u64>>)) {
    let (bytes, value) = args;
    value.set(bytes.len() as u64).unwrap();
}

#[test]
fn large_arguments_and_anonymous_objects_together() {
    shm_process::main!(big_and_anonymous);
    let value = Value::anonymous(0u64).unwrap();
    let mut p = Process::spawn(
        big_and_anonymous,
        (vec![7u8; 100_000], Shared::of(&value).unwrap()),
    )
    .unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(value.get().unwrap(), 100_000);
}

/// The child's descriptors: standard input is `/dev/null` (as Python's children), and
/// no descriptor the parent handed over survives an `exec` (close-on-exec).
fn reports_descriptors(out: Shared<Queue<Vec<String>>>) {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        // SAFETY: F_GETFD only reads the flags of a number (closed ones are EBADF).
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        seen.push(format!(
            "{fd} {target} cloexec={}",
            flags >= 0 && flags & libc::FD_CLOEXEC != 0
        ));
    }
    out.put(&seen).unwrap();
}

#[test]
fn the_child_has_dev_null_as_stdin_and_nothing_inheritable() {
    shm_process::main!(reports_descriptors);
    let out: Queue<Vec<String>> = Queue::anonymous(shm_collections::QueueSize {
        messages: 2,
        bytes: 64 * 1024,
    })
    .unwrap();
    let mut p = Process::spawn(reports_descriptors, Shared::of(&out).unwrap()).unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let seen = out.get_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        seen.iter().any(|l| l.starts_with("0 /dev/null")),
        "{seen:?}"
    );
    // Descriptors this test process itself was started with (a jobserver's, say) are
    // inherited by every child: only the others must be close-on-exec.
    let ours_inheritable: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        // SAFETY: F_GETFD only reads the flags of a number (closed ones are EBADF).
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } == 0)
        .collect();
    for line in &seen {
        let fd: i32 = line.split(' ').next().unwrap().parse().unwrap();
        if fd > 2 && !ours_inheritable.contains(&fd) {
            assert!(
                line.ends_with("cloexec=true"),
                "inheritable: {line} in {seen:?}"
            );
        }
        assert!(
            !line.contains("socket:") || fd > 2,
            "a socket on stdio: {seen:?}"
        );
    }
}
