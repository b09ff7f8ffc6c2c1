//! Port of 002 §3.1. A `PipeEnd` is no `Process` argument yet (its holder bookkeeping
//! travels only through `PipeEnd::share`): a one-way `Queue` stands in for the pipe.
use shm_collections::{Item, Queue};
use shm_process::{Process, Shared};

fn myfunction(conn: Shared<Queue<Vec<String>>>) {
    conn.put(&vec!["hi!! I am Python".into()]).expect("send");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(myfunction);
    let parent_conn = Queue::<Vec<String>>::create(16, 4096)?;
    let mut p = Process::spawn(myfunction, Shared::of(&parent_conn)?)?;
    let list: Vec<_> = parent_conn
        .get()?
        .iter()
        .map(|s| Item::from(s).to_string())
        .collect();
    println!("[{}]", list.join(", "));
    p.join()?;
    Ok(())
}
