//! Port of 002 §6.2. Python's dict takes keys of any type: this one maps reprs to reprs.
use shm_collections::{ShareableDict, ShareableVec};
use shm_manager::SharedMemoryManager;
use shm_process::{Process, Shared};

type Args = (
    Shared<ShareableDict<String, String>>,
    Shared<ShareableVec<i64>>,
);

fn f((d, l): Args) {
    d.insert("1".into(), "'1'".into()).expect("insert");
    d.insert("'2'".into(), "2".into()).expect("insert");
    d.insert("0.25".into(), "None".into()).expect("insert");
    let reversed: Vec<i64> = l.iter().expect("iter").rev().collect(); // l.reverse()
    l.clear().expect("clear");
    l.extend(reversed).expect("extend");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(f);
    let manager = SharedMemoryManager::new()?;
    let (d, l) = (manager.dict("d")?, manager.list("l")?);
    l.extend(0..10)?;
    Process::spawn(f, (Shared::of(&d)?, Shared::of(&l)?))?.join()?;
    let mut pairs: Vec<_> = d.iter()?.collect();
    let num = |k: &str| k.parse::<f64>().unwrap_or(f64::INFINITY); // numbers first
    pairs.sort_by(|a, b| num(&a.0).total_cmp(&num(&b.0)));
    let pairs: Vec<_> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("{{{}}}", pairs.join(", "));
    println!("{:?}", l.iter()?.collect::<Vec<_>>());
    Ok(())
}
