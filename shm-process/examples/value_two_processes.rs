//! Port of 001 §Value: a Value('i') incremented by two processes. `update` holds the
//! value's lock (Python's `+=` without `get_lock()` races), so the two lines are 1 and 2.
use shm_collections::Value;
use shm_process::{Process, Shared};

fn func(val: Shared<Value<i32>>) {
    let v = val
        .update(|v| {
            *v += 1;
            *v
        })
        .expect("update");
    println!("{v}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(func);
    let val = Value::create(0i32)?;
    let mut process1 = Process::spawn(func, Shared::of(&val)?)?;
    let mut process2 = Process::spawn(func, Shared::of(&val)?)?;
    process1.join()?;
    process2.join()?;
    Ok(())
}
