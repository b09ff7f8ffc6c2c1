//! The README's "Handing objects to a child process" example, compiled and run by
//! `cargo test`, so that what the README shows keeps working. In a test,
//! `shm_process::main!` is the first line of the test that spawns (see the crate docs);
//! a wrong type in a handle is tested in `tests/process.rs`.

use shm_collections::Value;
use shm_core::SharedObject;
use shm_process::{Process, Shared};
use shm_sync::Event;

fn worker((done, jobs): (Shared<Event>, Shared<Value<u64>>)) {
    jobs.update(|n| *n += 1).unwrap(); // opened as a Value<u64>, checked
    done.set();
}

#[test]
fn readme_handing_objects_to_a_child() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(worker); // in a child: runs `worker`, exits; here: returns
    let done = Event::create()?;
    let jobs = <Value<u64> as SharedObject>::anonymous(41)?; // no name in /dev/shm at all
    let mut p = Process::spawn(worker, (Shared::of(&done)?, Shared::of(&jobs)?))?;
    assert_eq!(p.join()?, 0); // Python's exitcode: -9 after SIGKILL; a panic is an Err
    assert!(done.is_set() && jobs.get()? == 42);
    Ok(())
}

/// The README's block is this file's code (its `main` is the test above): every line of
/// it is found here, so that the two cannot drift apart.
#[test]
fn readme_block_is_this_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let this = std::fs::read_to_string(root.join("shm-process/tests/readme.rs")).expect("this");
    let section = readme
        .split("## Handing objects to a child process")
        .nth(1)
        .expect("the README's section");
    let block = section
        .split("```rust")
        .nth(1)
        .and_then(|b| b.split("```").next());
    let block = block.expect("a rust block in the section");
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.starts_with("fn main()") {
            assert!(
                this.contains(line),
                "expected the README line {line:?} in tests/readme.rs"
            );
        }
    }
}
