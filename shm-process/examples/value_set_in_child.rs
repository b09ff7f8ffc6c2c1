//! Port of 002 §5.1: a Value('d') set in a child.
use shm_collections::Value;
use shm_process::{Process, Shared};

fn func(num: Shared<Value<f64>>) {
    num.set(10.78).expect("set"); // the child changes it, the parent sees it
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(func);
    let num = Value::create(10.0f64)?;
    let mut p = Process::spawn(func, Shared::of(&num)?)?;
    p.join()?;
    println!("{}", num.get()?);
    Ok(())
}
