//! Port of 002 §5.1: an Array('i') element set in a child.
use shm_collections::Array;
use shm_process::{Process, Shared};

fn func(num: Shared<Array<i32>>) {
    num.set(2, 9999).expect("set"); // the child changes it, the parent sees it
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(func);
    let num = Array::from_slice(&[1i32, 2, 3, 4, 5])?;
    let mut p = Process::spawn(func, Shared::of(&num)?)?;
    p.join()?;
    println!("{:?}", num.to_vec()?);
    Ok(())
}
