//! Port of 000 §4.1: a ShareableList modified in a child.
use shm_collections::ShareableList;
use shm_process::{Process, Shared};

/// The bare list, as the document prints it (the repr would add the name).
fn items(list: &ShareableList) -> String {
    let items: Vec<String> = list.iter().map(|i| i.expect("item").to_string()).collect();
    format!("[{}]", items.join(", "))
}

fn modify_shared_list(existing: Shared<ShareableList>) {
    existing.set(0, 99).expect("set");
    println!("Child Process Modified Data: {}", items(&existing));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(modify_shared_list);
    let shared_list = ShareableList::create([1, 2, 3, 4].map(shm_collections::Item::Int))?;
    println!("Initial Data in Parent Process: {}", items(&shared_list));
    let mut p = Process::spawn(modify_shared_list, Shared::of(&shared_list)?)?;
    p.join()?;
    println!(
        "Data in Parent Process After Child Modification: {}",
        items(&shared_list)
    );
    Ok(()) // dropping the creator closes and unlinks it
}
