//! Port of 001 §Array: an Array('i') incremented by two processes, each holding the
//! array's lock for its whole pass (Python's unlocked `+=` races).
use shm_collections::Array;
use shm_process::{Process, Shared};

fn func(arr: Shared<Array<i32>>) {
    let mut items = arr.lock().expect("lock");
    for x in items.iter_mut() {
        *x += 1;
    }
    println!("{:?}", &*items);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(func);
    let arr = Array::from_slice(&[0i32, 1, 2, 3, 4])?;
    let mut process1 = Process::spawn(func, Shared::of(&arr)?)?;
    let mut process2 = Process::spawn(func, Shared::of(&arr)?)?;
    process1.join()?;
    process2.join()?;
    Ok(())
}
