//! Port of 002 §4.1: a Lock around a print in ten processes. Python joins them at exit;
//! here `main` joins them.
use shm_process::{Process, Shared};
use shm_sync::Lock;

fn f(args: (Shared<Lock>, u32)) {
    let (l, i) = args;
    let _held = l.lock().expect("lock"); // released when `_held` drops (Python's finally)
    println!("hello world {i}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(f);
    let lock = Lock::create()?;
    let mut children = Vec::new();
    for num in 0..10 {
        children.push(Process::spawn(f, (Shared::of(&lock)?, num))?);
    }
    for mut c in children {
        c.join()?;
    }
    Ok(())
}
