//! Port of 002 §3.1: a child sends a list to the parent through a `Pipe`.
use shm_collections::{Item, Pipe};
use shm_process::{Process, SharedPipeEnd};

fn myfunction(conn: SharedPipeEnd) {
    conn.send(&vec!["hi!! I am Python"]).expect("send");
    conn.close();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shm_process::main!(myfunction);
    let (parent_conn, child_conn) = Pipe::new()?;
    let mut p = Process::spawn(myfunction, SharedPipeEnd::new(child_conn))?;
    let list: Vec<String> = parent_conn.recv()?;
    let list: Vec<_> = list.iter().map(|s| Item::from(s).to_string()).collect();
    println!("[{}]", list.join(", "));
    p.join()?;
    Ok(())
}
