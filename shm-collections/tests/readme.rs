//! The README's examples, compiled and run by `cargo test`, so that what the README
//! shows keeps working. The child process is this test binary in the role `child`.

use std::time::Duration;

use shm_collections::{Item, ShareableList, Value};
use shm_core::Segment;
use shm_sync::{Condition, Event, LockError, LockResultExt};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn readme_examples_run() -> Result {
    if shm_core::testing::child_role().is_some() {
        return child();
    }
    segments()?;
    values_and_lists()?;
    handing_objects_to_a_child()?;
    condition()?;
    queue_and_dict()?;
    vec_namespace_and_pipe()
}

fn segments() -> Result {
    // Process A: create a segment (unlinked when `seg` drops) and hand its name on.
    let seg = Segment::create(1 << 20)?;
    seg.write_at(0, b"hello from A")?;

    // Process B (or Python: SharedMemory(name=...)): open it by name.
    let peer = Segment::open(seg.name().unwrap())?;
    let mut buf = [0u8; 12];
    peer.read_at(0, &mut buf)?;
    assert_eq!(&buf, b"hello from A");
    Ok(())
}

fn values_and_lists() -> Result {
    let counter = Value::create(0u64)?; // Value<u64> with a robust lock
    counter.update(|n| *n += 1)?; // other processes: Value::<u64>::open(name)
    match counter.lock() {
        Ok(mut n) => *n += 1,
        // A process was killed while holding the lock: repair, then mark consistent.
        Err(LockError::OwnerDied(mut n)) => {
            *n = 0;
            n.mark_consistent();
        }
        Err(e) => return Err(e.to_string().into()),
    }
    // Or in one line: take the lock even from a dead holder, data as it is.
    *counter.lock().recover()? += 1;
    assert_eq!(counter.get()?, 3);

    let list = ShareableList::create([Item::from("howdy"), Item::Int(42), Item::None])?;
    list.set(1, 43)?;
    // Python: ShareableList(name=list.name().unwrap()) reads ['howdy', 43, None]
    assert_eq!(list.get(1)?, Item::Int(43));
    Ok(())
}

fn handing_objects_to_a_child() -> Result {
    // Named objects travel by name, anonymous ones (no name, cannot leak) by an
    // inherited descriptor: the child does not care which.
    let done = Event::create()?;
    let jobs = <Value<u64> as shm_core::SharedObject>::anonymous(41)?;
    // The README's door for a child that is another program (`share`/`from_env`); its
    // `Process` example runs in shm-process/tests/readme.rs. Here the child is this
    // test binary.
    let mut child = shm_core::testing::child_command("readme_examples_run", "child");
    done.share(&mut child, "DONE")?;
    jobs.share(&mut child, "JOBS")?;
    assert!(child.status()?.success());
    assert!(done.is_set());
    assert_eq!(jobs.get()?, 42);
    Ok(())
}

fn child() -> Result {
    let done = Event::from_env("DONE")?;
    let jobs = Value::<u64>::from_env("JOBS")?;
    jobs.update(|n| *n += 1)?;
    // Asking for the wrong type is a typed error, not a reinterpretation.
    assert!(Value::<f64>::from_env("JOBS").is_err());
    done.set();
    Ok(())
}

fn condition() -> Result {
    // Python's Condition: one object that owns its lock (and here, the data it guards).
    let ready = Condition::create(0u32)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            *ready.lock().unwrap() = 7;
            ready.notify_all();
        });
        let (guard, ok) = ready
            .wait_for(
                ready.lock().unwrap(),
                |v| *v != 0,
                Some(Duration::from_secs(10)),
            )
            .unwrap();
        assert!(ok && *guard == 7);
    });
    Ok(())
}

fn queue_and_dict() -> Result {
    use shm_collections::{Queue, ShareableDict};
    // Work out, results back: Python's Queue and Manager().dict(), in shared memory.
    let jobs: Queue<(u32, String)> = Queue::create(1024, 1 << 20)?; // messages, bytes
    let counts = ShareableDict::<String, u64>::create()?;
    jobs.put(&(1, "the cat the hat".into()))?;
    // A worker process: Queue::<(u32, String)>::open(name), ShareableDict::open(name)
    let (_, text) = jobs.get_timeout(Duration::from_secs(10))?;
    for word in text.split_whitespace() {
        counts.update(word.into(), |n| n.unwrap_or(0) + 1)?; // atomic across processes
    }
    assert_eq!(counts.get("the")?, Some(2));
    Ok(())
}

fn vec_namespace_and_pipe() -> Result {
    use shm_collections::{Namespace, Pipe, ShareableVec};

    let results = ShareableVec::<String>::create()?;
    results.push("job 1: ok".into())?;
    results.update(0, |s| s + " (checked)")?;
    assert_eq!(results.get(0)?.as_deref(), Some("job 1: ok (checked)"));

    let cfg = Namespace::create()?;
    cfg.set("threshold", &0.75f64)?;
    cfg.set("model", &"small")?;
    assert_eq!(cfg.get::<f64>("threshold")?, Some(0.75));
    assert!(cfg.get::<u64>("model").is_err()); // a type mismatch is a typed error

    let (parent_end, child_end) = Pipe::new()?; // duplex
    child_end.send(&("ready", 7u32))?;
    assert!(parent_end.poll(Duration::from_secs(1))?);
    assert_eq!(parent_end.recv::<(String, u32)>()?, ("ready".into(), 7));
    Ok(())
}
