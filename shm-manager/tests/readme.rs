//! The README's manager example, compiled and run by `cargo test`, so that what the
//! README shows keeps working.

use shm_manager::SharedMemoryManager;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn readme_manager_example_runs() -> Result {
    let m = SharedMemoryManager::new()?; // the owner
    let jobs = m.queue::<String>("jobs", 64, 1 << 16)?; // created, or opened if it exists
    let scores = m.dict::<String, u64>("scores")?;
    let done = m.value("done", 0u64)?; // packed in an arena: 192 bytes
    jobs.put(&"resize a.png".to_string())?;

    // A worker process, given m.name():
    let w = SharedMemoryManager::connect(m.name())?;
    let job = w.open_queue::<String>("jobs")?.get()?; // by key: no sizes to repeat
    w.dict::<String, u64>("scores")?
        .update(job, |n| n.unwrap_or(0) + 1)?;
    w.value("done", 0u64)?.update(|n| *n += 1)?;
    assert!(w.dict::<String, String>("scores").is_err()); // wrong value type: typed error
    drop(w); // attachers unlink nothing

    assert_eq!((scores.get("resize a.png")?, done.get()?), (Some(1), 1));
    let root = m.root_name().to_owned();
    drop((jobs, scores, done));
    m.shutdown()?; // everything it made is gone
    assert!(shm_core::Segment::open(&root).is_err());
    Ok(())
}
