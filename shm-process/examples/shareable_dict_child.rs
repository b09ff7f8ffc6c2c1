//! Port of 000 §4.2: a ShareableDict modified in a child (CPython has no ShareableDict;
//! this project's is growable and typed).
use shm_collections::{Item, ShareableDict};
use shm_process::{Process, Shared};

type Dict = ShareableDict<String, String>;

/// Python's dict repr, keys sorted (a ShareableDict keeps no insertion order).
fn repr(d: &Dict) -> String {
    let mut pairs: Vec<_> = d.iter().expect("iter").collect();
    pairs.sort();
    let pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", Item::from(k), Item::from(v)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn modify_shared_dict(existing: Shared<Dict>) {
    existing
        .insert("key1".into(), "value1".into())
        .expect("insert");
    println!("Child Process Modified Data: {}", repr(&existing));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(modify_shared_dict);
    let shared_dict = Dict::create()?;
    shared_dict.insert("key".into(), "initial_value".into())?;
    println!("Initial Data in Parent Process: {}", repr(&shared_dict));
    let mut p = Process::spawn(modify_shared_dict, Shared::of(&shared_dict)?)?;
    p.join()?;
    println!(
        "Data in Parent Process After Child Modification: {}",
        repr(&shared_dict)
    );
    Ok(()) // dropping the creator unlinks it
}
