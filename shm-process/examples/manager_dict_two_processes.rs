//! Port of 001 §使用Manager类型: a Manager dict written by two processes. The manager
//! hands out a ShareableDict by key; the processes get it as an argument, like the proxy.
use shm_collections::{Item, ShareableDict};
use shm_manager::SharedMemoryManager;
use shm_process::{Process, Shared};

type Dict = ShareableDict<i64, String>;

fn func(d: Shared<Dict>) {
    d.insert(1, "a".into()).expect("insert");
    let mut pairs: Vec<_> = d.iter().expect("iter").collect();
    pairs.sort();
    let pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| format!("{k}: {}", Item::from(v)))
        .collect();
    println!("{{{}}}", pairs.join(", "));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(func);
    let manager = SharedMemoryManager::new()?;
    let dict_shared: Dict = manager.dict("d")?;
    dict_shared.insert(0, "b".into())?;
    let mut process1 = Process::spawn(func, Shared::of(&dict_shared)?)?;
    let mut process2 = Process::spawn(func, Shared::of(&dict_shared)?)?;
    process1.join()?;
    process2.join()?;
    Ok(()) // the manager unlinks everything it made when it drops
}
