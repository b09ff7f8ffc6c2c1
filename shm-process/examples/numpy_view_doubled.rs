//! Port of 000 §3.1: a SharedMemory viewed as a numpy int64 array, doubled in a child.
//! The numpy view is the `Array<i64>` guard here (a `[i64]` slice over shared memory).
use shm_collections::Array;
use shm_process::{Process, Shared};

/// numpy's way of printing a 1-d array: `[1 2 3 4]`.
fn np(items: &[i64]) -> String {
    format!("{items:?}").replace(", ", " ")
}

fn modify_shared_memory(array: Shared<Array<i64>>) {
    // The guard is the view: a slice over the shared memory, held under its lock.
    let mut view = array.lock().expect("lock");
    for x in view.iter_mut() {
        *x *= 2;
    }
    println!("Child Process Modified Data: {}", np(&view));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(modify_shared_memory);
    // 4 int64 elements; unlinked when `array` drops (Python's close + unlink).
    let array = Array::<i64>::from_slice(&[1, 2, 3, 4])?;
    println!("Initial Data in Parent Process: {}", np(&array.to_vec()?));
    let mut p = Process::spawn(modify_shared_memory, Shared::of(&array)?)?;
    p.join()?;
    let after = np(&array.to_vec()?);
    println!("Data in Parent Process After Child Modification: {after}");
    Ok(())
}
