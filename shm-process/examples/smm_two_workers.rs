//! Port of 002 §6.3: a SharedMemoryManager's ShareableList split across two processes,
//! each doubling its half in place; the parent sums the list.
use shm_collections::{Item, ShareableList};
use shm_manager::SharedMemoryManager;
use shm_process::{Process, Shared};

fn do_work((sl, start, stop): (Shared<ShareableList>, usize, usize)) {
    for i in start..stop {
        let v = sl.get(i).expect("get").as_int().expect("an int");
        sl.set(i, v * 2).expect("set");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(do_work);
    let smm = SharedMemoryManager::new()?; // unlinks every block it made when it drops
    let sl = smm.shareable_list("sl", (0..2000).map(Item::Int).collect())?;
    // Divide the work among two processes (a shm_process::Pool might be more efficient).
    let mut p1 = Process::spawn(do_work, (Shared::of(&sl)?, 0, 1000))?;
    let mut p2 = Process::spawn(do_work, (Shared::of(&sl)?, 1000, 2000))?;
    p1.join()?;
    p2.join()?;
    let total_result: i64 = sl
        .iter()
        .map(|i| i.map(|i| i.as_int().unwrap_or(0)))
        .sum::<Result<_, _>>()?;
    println!("{total_result}");
    Ok(())
}
