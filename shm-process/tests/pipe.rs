//! Pipe ends as `Process` arguments (`SharedPipeEnd`), across real child processes: the
//! test binary re-runs itself with `<test name> --exact`, the first line dispatches.

use std::time::Duration;

use shm_collections::{Pipe, QueueError, Value};
use shm_process::{Handle, Process, SharedPipeEnd};

fn sends_and_echoes(conn: SharedPipeEnd) {
    conn.send(&vec!["hi!! I am Python".to_owned()]).unwrap();
    let n: u32 = conn.recv().unwrap();
    conn.send(&(n + 1)).unwrap();
}

#[test]
fn a_pipe_end_passed_to_a_child_carries_both_ways_and_closes_after_join() {
    shm_process::main!(sends_and_echoes);
    let (parent_conn, child_conn) = Pipe::new().unwrap();
    let mut p = Process::spawn(sends_and_echoes, SharedPipeEnd::new(child_conn)).unwrap();
    let got: Vec<String> = parent_conn.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(got, ["hi!! I am Python"]);
    parent_conn.send(&41u32).unwrap();
    assert_eq!(
        parent_conn
            .recv_timeout::<u32>(Duration::from_secs(30))
            .unwrap(),
        42
    );
    assert_eq!(p.join().unwrap(), 0);
    // The child exited and `join` let go of the parent's copy: no holder of its end.
    let r = parent_conn.recv_timeout::<u32>(Duration::from_secs(30));
    assert!(
        matches!(r, Err(QueueError::Closed { .. })),
        "expected Closed, found {r:?}"
    );
}

#[test]
fn a_pipe_end_outside_process_arguments_is_an_error_naming_why() {
    let (_a, b) = Pipe::new().unwrap();
    let cfg = bincode::config::standard();
    let err = bincode::serde::encode_to_vec(SharedPipeEnd::new(b), cfg).unwrap_err();
    assert!(err.to_string().contains("Process argument"), "{err}");
}

#[test]
fn a_handle_of_another_kind_is_not_taken_as_a_pipe_end() {
    let v = Value::create(1u64).unwrap();
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec((Handle::of(&v).unwrap(), 1u8), cfg).unwrap();
    let err = bincode::serde::decode_from_slice::<SharedPipeEnd, _>(&bytes, cfg).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("PipeEnd") && msg.contains("Value"), "{msg}");
}
