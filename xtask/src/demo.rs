//! `cargo xtask demo`: a parent creates shared memory, worker processes fill their
//! share, the parent verifies, CPython reads the same bytes and a ShareableList the
//! workers wrote, a worker killed holding a lock blocks nobody, nothing is left behind.

use std::process::Command;
use std::time::Instant;

use shm_collections::{Item, ShareableList, Value};
use shm_core::Segment;
use shm_sync::LockError;

use crate::Result;

/// Bytes each worker fills.
const SHARE: usize = 1 << 20;

fn byte_at(index: usize, offset: usize) -> u8 {
    (offset as u8)
        .wrapping_mul(7)
        .wrapping_add(index as u8 * 31 + 1)
}

/// FNV-1a, computed the same way in Python below.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

const PY_READ: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
if sys.version_info >= (3, 13):
    shm = shared_memory.SharedMemory(name=sys.argv[1], track=False)
else:
    shm = shared_memory.SharedMemory(name=sys.argv[1])
    resource_tracker.unregister(shm._name, "shared_memory")
h = 0xcbf29ce484222325
for b in bytes(shm.buf):
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print(shm.size, h)
shm.close()
"#;

pub fn run(workers: usize) -> Result {
    if workers == 0 || workers > 64 {
        return Err(format!("--workers must be 1..=64, got {workers}").into());
    }
    let started = Instant::now();
    let seg = Segment::create(SHARE * workers)?;
    let name = seg.name().expect("named").to_owned();
    println!(
        "created segment {name} ({} bytes), unlinked when the demo ends",
        seg.len()
    );

    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..workers)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "demo-worker",
                    "segment",
                    &name,
                    &i.to_string(),
                    &workers.to_string(),
                ])
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for (i, mut child) in children.into_iter().enumerate() {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("worker {i} failed: {status}").into());
        }
    }
    let mut all = vec![0u8; seg.len()];
    seg.read_at(0, &mut all)?;
    for (i, share) in all.chunks(SHARE).enumerate() {
        if let Some(off) = share
            .iter()
            .enumerate()
            .position(|(o, b)| *b != byte_at(i, o))
        {
            return Err(format!("worker {i}'s share is wrong at offset {off}").into());
        }
    }
    let ours = checksum(&all);
    println!(
        "{workers} worker processes filled their shares; verified in the parent (fnv1a {ours:#018x})"
    );

    let out = Command::new("python3")
        .args(["-c", PY_READ, &name])
        .output()?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut fields = text.split_whitespace();
    let (size, theirs): (usize, u64) = (
        fields.next().ok_or("python printed nothing")?.parse()?,
        fields.next().ok_or("python printed no checksum")?.parse()?,
    );
    if size != seg.len() || theirs != ours {
        return Err(format!("CPython saw {size} bytes with fnv1a {theirs:#018x}").into());
    }
    println!("CPython attached to {name} and read the same {size} bytes (fnv1a {theirs:#018x})");

    let list_name = shareable_list(&exe, &name, workers)?;
    let value_name = crash_safety(&exe)?;

    drop(seg);
    for gone in [&name, &list_name, &value_name] {
        if std::path::Path::new("/dev/shm").join(gone).exists() {
            return Err(format!("{gone} was left in /dev/shm").into());
        }
    }
    println!(
        "segments unlinked; /dev/shm holds nothing of the demo ({:.1?})",
        started.elapsed()
    );
    Ok(())
}

/// Slot text before a worker writes: sized for the worker's report.
const PENDING: &str = "pending: no report from this worker yet";

const PY_LIST: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(repr(list(sl)))
sl[0] = "read by CPython %d.%d" % sys.version_info[:2]
sl.shm.close()
"#;

/// Workers write a report and their share's fnv1a checksum into a ShareableList; CPython
/// prints it and writes an item back. Returns the list's name.
fn shareable_list(exe: &std::path::Path, segment: &str, workers: usize) -> Result<String> {
    let mut items = vec![Item::from(
        "written by Rust workers, not yet read by CPython",
    )];
    for _ in 0..workers {
        items.push(Item::from(PENDING));
        items.push(Item::Int(0));
    }
    let list = ShareableList::create(items)?;
    let list_name = list.name().expect("named").to_owned();
    let children: Vec<_> = (0..workers)
        .map(|i| {
            Command::new(exe)
                .args([
                    "demo-worker",
                    "list",
                    &list_name,
                    &i.to_string(),
                    &workers.to_string(),
                ])
                .env("SHM_DEMO_SEGMENT", segment)
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for (i, mut child) in children.into_iter().enumerate() {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("list worker {i} failed: {status}").into());
        }
    }
    let out = Command::new("python3")
        .args(["-c", PY_LIST, &list_name])
        .output()?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let python_repr = String::from_utf8(out.stdout)?.trim().to_owned();
    println!("CPython read ShareableList {list_name}:\n  {python_repr}");
    let ours = format!(
        "[{}]",
        list.iter()
            .map(|r| r.map(|i| i.to_string()))
            .collect::<std::result::Result<Vec<_>, _>>()?
            .join(", ")
    );
    let back = list.get(0)?;
    if !back
        .as_str()
        .is_some_and(|s| s.starts_with("read by CPython"))
    {
        return Err(format!("CPython's write did not arrive: item 0 is {back}").into());
    }
    let ours_before = ours.replacen(
        &back.to_string(),
        "'written by Rust workers, not yet read by CPython'",
        1,
    );
    if ours_before != python_repr {
        return Err(format!("CPython saw {python_repr}, Rust sees {ours_before}").into());
    }
    println!("Rust reads CPython's write back: item 0 = {back}");
    Ok(list_name)
}

/// A worker takes a Value's lock, writes half an update and is killed with SIGKILL;
/// the parent's next lock reports the dead holder at once instead of hanging.
fn crash_safety(exe: &std::path::Path) -> Result<String> {
    let value = Value::create([0u64; 2])?; // invariant: both halves equal
    let name = value.name().expect("named").to_owned();
    let mut victim = Command::new(exe)
        .args(["demo-worker", "victim", &name, "0", "1"])
        .spawn()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    // The victim holds the lock once it has written the first half.
    loop {
        match value.try_lock() {
            Err(LockError::WouldBlock { .. }) => break,
            Ok(g) if g[0] != 0 => return Err("the victim wrote without holding the lock".into()),
            _ if Instant::now() > deadline => return Err("the victim never took the lock".into()),
            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(20)); // let it write half
    victim.kill()?; // SIGKILL while it holds the lock
    let killed = Instant::now();
    match value.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            println!(
                "a worker was killed (SIGKILL) holding a Value's lock mid-update: the next lock reported it after {:.1?}, data {:?}",
                killed.elapsed(),
                *g
            );
            let repaired = g[0].max(g[1]);
            *g = [repaired; 2];
            g.mark_consistent();
            println!(
                "repaired to {:?} and marked consistent; later lockers get a clean lock",
                *g
            );
        }
        Ok(_) => return Err("the lock came back clean although its holder was killed".into()),
        Err(e) => return Err(format!("expected OwnerDied, got {e}").into()),
    }
    victim.wait()?;
    if value.lock().is_err() {
        return Err("the lock is still inconsistent after the repair".into());
    }
    Ok(name)
}

pub fn worker(kind: &str, name: &str, index: usize, workers: usize) -> Result {
    match kind {
        "segment" => {
            let seg = Segment::open(name)?;
            if seg.len() != SHARE * workers {
                return Err(format!(
                    "segment has {} bytes, expected {}",
                    seg.len(),
                    SHARE * workers
                )
                .into());
            }
            let share: Vec<u8> = (0..SHARE).map(|o| byte_at(index, o)).collect();
            seg.write_at(index * SHARE, &share)?;
            Ok(())
        }
        "list" => {
            let list = ShareableList::open(name)?;
            let seg = Segment::open(&std::env::var("SHM_DEMO_SEGMENT")?)?;
            let mut share = vec![0u8; SHARE];
            seg.read_at(index * SHARE, &mut share)?;
            // The share's checksum as a signed 64-bit int, the width of a list slot.
            let sum = checksum(&share) as i64;
            list.set(
                1 + 2 * index,
                format!("worker {index} of {workers}, pid {}", std::process::id()),
            )?;
            list.set(2 + 2 * index, sum)?;
            Ok(())
        }
        "victim" => {
            let value: Value<[u64; 2]> = Value::open(name)?;
            let mut g = value.lock().map_err(|e| e.to_string())?;
            g[0] = 42; // the first half of an update that never completes
            std::thread::sleep(std::time::Duration::from_secs(30));
            g[1] = 42;
            Ok(())
        }
        other => Err(format!("unknown worker kind {other:?}").into()),
    }
}
