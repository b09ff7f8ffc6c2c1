//! The root README's "Beyond one machine" example (`examples/same_worker.rs`) run on
//! both backends with the same worker code, and the README's block checked against
//! the example's source so that the two cannot drift apart.

mod common;

#[path = "../examples/same_worker.rs"]
#[allow(dead_code)]
mod same_worker;

/// Workers are this test binary again, running only `worker_child`.
fn spawn(address: &str, id: usize) -> std::io::Result<std::process::Child> {
    common::child(
        "worker_child",
        "worker",
        &[
            ("WORKER_ADDRESS", address.into()),
            ("WORKER_ID", id.to_string()),
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
}

#[test]
fn worker_child() {
    if common::role().as_deref() == Some("worker") {
        let address = std::env::var("WORKER_ADDRESS").unwrap();
        let id = std::env::var("WORKER_ID").unwrap().parse().unwrap();
        same_worker::worker(&address, id).unwrap();
    }
}

fn expected() -> Vec<(String, u64)> {
    vec![("apple".into(), 10), ("fig".into(), 4), ("pear".into(), 8)]
}

#[test]
fn same_program_on_shared_memory() {
    if common::role().is_some() {
        return;
    }
    let counts = same_worker::run(&common::local_name("readme"), 4, &spawn).unwrap();
    assert_eq!(counts, expected());
}

#[test]
fn same_program_on_redis() {
    if common::role().is_some() {
        return;
    }
    let server = common::server();
    let counts = same_worker::run(&server.url("readme"), 4, &spawn).unwrap();
    assert_eq!(counts, expected());
}

#[test]
fn readme_block_is_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("shm-remote/examples/same_worker.rs")).unwrap();
    let section = readme
        .split("## Beyond one machine")
        .nth(1)
        .expect("the README's section");
    let block = section
        .split("```rust")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a rust block in the section");
    for line in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "...")
    {
        assert!(
            example.contains(line),
            "expected the README line {line:?} in examples/same_worker.rs"
        );
    }
}
