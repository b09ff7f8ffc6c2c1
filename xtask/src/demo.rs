//! `cargo xtask demo`: a parent creates shared memory, worker processes fill their
//! share, the parent verifies, CPython reads the same bytes, nothing is left behind.

use std::process::Command;
use std::time::Instant;

use shm_core::Segment;

use crate::Result;

/// Bytes each worker fills.
const SHARE: usize = 1 << 20;

fn byte_at(index: usize, offset: usize) -> u8 {
    (offset as u8).wrapping_mul(7).wrapping_add(index as u8 * 31 + 1)
}

/// FNV-1a, computed the same way in Python below.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
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
    println!("created segment {name} ({} bytes), unlinked when the demo ends", seg.len());

    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..workers)
        .map(|i| {
            Command::new(&exe)
                .args(["demo-worker", "segment", &name, &i.to_string(), &workers.to_string()])
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
        if let Some(off) = share.iter().enumerate().position(|(o, b)| *b != byte_at(i, o)) {
            return Err(format!("worker {i}'s share is wrong at offset {off}").into());
        }
    }
    let ours = checksum(&all);
    println!("{workers} worker processes filled their shares; verified in the parent (fnv1a {ours:#018x})");

    let out = Command::new("python3").args(["-c", PY_READ, &name]).output()?;
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

    drop(seg);
    if std::path::Path::new("/dev/shm").join(&name).exists() {
        return Err(format!("{name} was left in /dev/shm").into());
    }
    println!("segment unlinked; /dev/shm holds nothing of the demo ({:.0?})", started.elapsed());
    Ok(())
}

pub fn worker(kind: &str, name: &str, index: usize, workers: usize) -> Result {
    match kind {
        "segment" => {
            let seg = Segment::open(name)?;
            if seg.len() != SHARE * workers {
                return Err(format!("segment has {} bytes, expected {}", seg.len(), SHARE * workers).into());
            }
            let share: Vec<u8> = (0..SHARE).map(|o| byte_at(index, o)).collect();
            seg.write_at(index * SHARE, &share)?;
            Ok(())
        }
        other => Err(format!("unknown worker kind {other:?}").into()),
    }
}
