//! Port of 002 §6.4 (`BaseManager.register('Maths', MathsClass)`). This manager runs no
//! server, so no method runs remotely: a serde type goes in a manager's `Namespace`.
use shm_collections::Namespace;
use shm_manager::SharedMemoryManager;
use shm_process::{Process, Shared};

#[derive(serde::Serialize, serde::Deserialize)]
struct MathsClass;

impl MathsClass {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
    fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }
}

fn worker(ns: Shared<Namespace>) {
    let maths: MathsClass = ns.get("maths").expect("get").expect("set by the parent");
    println!("{}", maths.add(4, 3)); // prints 7
    println!("{}", maths.mul(7, 8));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(worker);
    let manager = SharedMemoryManager::new()?;
    let ns = manager.namespace("objects")?;
    ns.set("maths", &MathsClass)?;
    Process::spawn(worker, Shared::of(&ns)?)?.join()?;
    Ok(())
}
