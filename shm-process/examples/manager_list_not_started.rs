//! Port of 004 §1: a manager list handed to processes that are never started. A
//! `Process` here starts when it is made, so the unstarted ones are simply not made.
use shm_manager::SharedMemoryManager;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = SharedMemoryManager::new()?;
    let _a_list = manager.list::<String>("a_list")?;
    println!("it's ok");
    Ok(())
}
