//! The Rust side of the Python package's interop tests (`shm-py/tests/test_interop.py`):
//! a Rust process that shares a dict (typed and dynamic), a queue and a lock with a
//! Python process, by name.
//!
//! ```text
//! py_peer dict  <ShareableDict<String, i64> name> <ShareableDict<Dynamic, Dynamic> name>
//! py_peer queue <Queue<Dynamic> name>
//! py_peer lock  <Lock name> <ShareableDict<String, i64> name> <rounds>
//! py_peer make                                        (creates a typed dict and a queue,
//!                                                      prints their names, waits for stdin)
//! ```

use std::io::BufRead;

use shm_collections::{Dynamic, Queue, ShareableDict};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn dict(typed: &str, dynamic: &str) -> Result {
    let t = ShareableDict::<String, i64>::open(typed)?;
    println!("typed from_py = {:?}", t.get("from_py")?);
    t.insert("from_rust".into(), 42)?;
    for _ in 0..500 {
        t.update("counter".into(), |n| n.unwrap_or(0) + 1)?;
    }
    let d = ShareableDict::<Dynamic, Dynamic>::open(dynamic)?;
    let v = d.get(&Dynamic::from("py"))?.ok_or("no key 'py'")?;
    println!("dynamic py = {v}");
    // Match on the variants as Rust code would.
    if let Dynamic::Tuple(items) = &v {
        let n = items[0].as_i64().ok_or("item 0 is not an int")?;
        d.insert("rust_saw".into(), Dynamic::Int(n * 10))?;
    }
    d.insert(
        Dynamic::Int(7),
        Dynamic::Dict(vec![
            (
                "list".into(),
                Dynamic::List(vec![1.5.into(), Dynamic::None, true.into()]),
            ),
            ("bytes".into(), Dynamic::Bytes(vec![0, 255])),
            ("tuple".into(), Dynamic::Tuple(vec!["rust".into()])),
        ]),
    )?;
    for _ in 0..500 {
        d.update("counter".into(), |n| {
            Dynamic::Int(n.and_then(|n| n.as_i64()).unwrap_or(0) + 1)
        })?;
    }
    Ok(())
}

fn queue(name: &str) -> Result {
    let q = Queue::<Dynamic>::open(name)?;
    for _ in 0..3 {
        let v = q.get_timeout(std::time::Duration::from_secs(30))?;
        println!("got {v}");
    }
    for i in 0..3 {
        q.put(&Dynamic::Tuple(vec![Dynamic::Int(i), "rust".into()]))?;
    }
    Ok(())
}

fn lock(lock: &str, dict: &str, rounds: u32) -> Result {
    let l = shm_sync::Lock::open(lock)?;
    let d = ShareableDict::<String, i64>::open(dict)?;
    for _ in 0..rounds {
        let _g = l.lock().map_err(|e| format!("lock: {e:?}"))?;
        // A read and a write that only the shared lock makes atomic.
        let n = d.get("guarded")?.unwrap_or(0);
        d.insert("guarded".into(), n + 1)?;
    }
    println!("lock done");
    Ok(())
}

fn make() -> Result {
    let d = ShareableDict::<String, i64>::create()?;
    d.insert("made_in_rust".into(), 1)?;
    let q = Queue::<Dynamic>::new()?;
    q.put(&Dynamic::List(vec!["from".into(), "rust".into()]))?;
    println!(
        "{} {}",
        d.name().ok_or("no name")?,
        q.name().ok_or("no name")?
    );
    // Keep both alive (and named) until the Python side says it is done.
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    println!("rust sees {:?}", d.get("made_in_python")?);
    Ok(())
}

fn main() -> Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dict", typed, dynamic] => dict(typed, dynamic),
        ["queue", name] => queue(name),
        ["lock", l, d, rounds] => lock(l, d, rounds.parse()?),
        ["make"] => make(),
        _ => Err(format!("usage: py_peer dict|queue|lock|make ..., found {args:?}").into()),
    }
}
