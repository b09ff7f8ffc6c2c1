//! Many small objects packed into one arena segment (what a manager does for 10^5
//! counters): one mapping and no descriptor for all of them, each addressed as
//! `segment@offset`, opened and used by another process.

use std::sync::Arc;

use shm_collections::Value;
use shm_core::testing::{child_role, run_child};
use shm_core::{Segment, SharedObject};

const COUNT: usize = 10_000;
const STRIDE: usize = 256; // a Value<u64>: 128-byte header + 64 + 8, rounded up

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn ten_thousand_values_share_one_mapping_across_processes() {
    if let Some(role) = child_role() {
        assert_eq!(role, "incrementer");
        let arena = Arc::new(Segment::open(&std::env::var("ARENA").unwrap()).unwrap());
        for i in 0..COUNT {
            let v = Value::<u64>::open_at(arena.clone(), i * STRIDE).unwrap();
            v.update(|n| *n += 1).unwrap();
        }
        // One of them by its full name, as any process would find it.
        let name = format!("{}@{}", arena.name().unwrap(), 7 * STRIDE);
        assert_eq!(Value::<u64>::open(&name).unwrap().get().unwrap(), 8);
        // A wrong type at a valid offset, and an offset between objects: typed errors.
        assert!(shm_collections::Value::<u32>::open_at(arena.clone(), 0).is_err());
        assert!(Value::<u64>::open_at(arena.clone(), STRIDE / 2).is_err());
        return;
    }
    let (maps, fds) = (mappings(), descriptors());
    let arena = Arc::new(Segment::create(COUNT * STRIDE).unwrap());
    let values: Vec<Value<u64>> = (0..COUNT)
        .map(|i| {
            // SAFETY: each range [i * STRIDE, (i + 1) * STRIDE) is handed out once.
            unsafe { Value::create_at(arena.clone(), i * STRIDE, i as u64) }.unwrap()
        })
        .collect();
    assert!(
        mappings() <= maps + 2,
        "{} mappings for {COUNT} values",
        mappings() - maps
    );
    assert!(descriptors() <= fds, "named arenas keep no descriptor");
    assert_eq!(
        values[42].name(),
        Some(format!("{}@{}", arena.name().unwrap(), 42 * STRIDE).as_str())
    );
    // Arena objects are freed by the arena's owner, not unlinked one by one.
    assert!(values[0].unlink().is_err());

    run_child(
        "ten_thousand_values_share_one_mapping_across_processes",
        "incrementer",
        &[("ARENA", arena.name().unwrap())],
    );
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.get().unwrap(), i as u64 + 1);
    }
}
