//! kill -9 of a dict writer at random moments (often mid-growth, which is also
//! compaction), then: every committed entry is there, the interrupted one is whole or
//! absent, the next writer proceeds, and no data segment is left behind.
//!
//! Trials: `SHM_CHAOS_TRIALS` (default 24).

use std::process::Stdio;
use std::time::Duration;

use shm_collections::ShareableDict;
use shm_core::testing::{child_command, child_role, unique_name};

type D = ShareableDict<u64, Vec<u8>>;

fn value(k: u64) -> Vec<u8> {
    vec![k as u8; (k % 300) as usize]
}

/// Step `i`: insert `i`; if `i % 7 == 0`, remove `i - 5`; every 10th step also bumps
/// the counter key `u64::MAX` by one under `update`.
fn step(d: &D, i: u64) {
    d.insert(i, value(i)).unwrap();
    if i % 7 == 0 && i >= 5 {
        d.remove(&(i - 5)).unwrap();
    }
    if i % 10 == 0 {
        d.update(u64::MAX, |c| {
            let n = c.map_or(0, |c| u64::from_le_bytes(c[..8].try_into().unwrap()));
            (n + 1).to_le_bytes().to_vec()
        })
        .unwrap();
    }
}

/// `ambiguous`: keys whose removal step was interrupted by a kill; `kills`: how many
/// counter bumps may be lost (one per interrupted step at most).
fn verify(d: &D, name: &str, ambiguous: &std::collections::HashSet<u64>, kills: u64) {
    let all: std::collections::HashMap<u64, Vec<u8>> = d.iter().unwrap().collect();
    assert_eq!(all.len(), d.len().unwrap(), "len agrees with the entries");
    let m = all
        .keys()
        .copied()
        .filter(|k| *k != u64::MAX)
        .max()
        .unwrap_or(0);
    for (k, v) in &all {
        if *k != u64::MAX {
            assert_eq!(v, &value(*k), "entry {k} whole");
        }
    }
    for k in 0..m {
        let removed_at = k + 5;
        let present = all.contains_key(&k);
        if ambiguous.contains(&k) {
            // Its removal step was killed between the insert and the remove.
        } else if removed_at % 7 == 0 && removed_at <= m {
            assert!(!present, "{k} was removed at step {removed_at} <= {m}");
        } else {
            assert!(present, "committed entry {k} lost (max {m})");
        }
    }
    if let Some(c) = all.get(&u64::MAX) {
        let n = u64::from_le_bytes(c[..8].try_into().unwrap());
        // Bumped at steps 0, 10, ..., m: at most one bump lost per kill.
        assert!(
            n <= m / 10 + 1 && n + kills > m / 10,
            "counter {n} for max {m}"
        );
    }
    // Only the current data segment is left.
    let current = shm_collections::region::current_data_segment(name).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.g")) && *n != current)
        .collect();
    assert!(leftovers.is_empty(), "leftover data segments {leftovers:?}");
}

#[test]
fn chaos_kill_dict_writers() {
    if child_role().is_some() {
        let d = D::open(&std::env::var("DICT_NAME").unwrap()).unwrap();
        let start: u64 = std::env::var("START").unwrap().parse().unwrap();
        eprintln!("READY");
        for i in start.. {
            step(&d, i);
        }
        return;
    }
    let trials: u32 = std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut rng = shm_core::testing::Rng::seeded(std::process::id() as u64 ^ 0x9e37_79b9);
    let mut rand = move || rng.next_u64();
    let name = unique_name("dict-chaos");
    let d = D::create_named(&name).unwrap();
    let mut repaired = 0;
    let mut mid_growth = 0;
    let mut ambiguous = std::collections::HashSet::new();
    for trial in 0..trials {
        let start = d
            .keys()
            .unwrap()
            .into_iter()
            .filter(|k| *k != u64::MAX)
            .max()
            .map_or(0, |m| m + 1);
        let mut child = child_command("chaos_kill_dict_writers", "writer")
            .env("DICT_NAME", &name)
            .env("START", start.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(
            shm_core::testing::stderr_line(&mut child),
            "READY",
            "trial {trial}"
        );
        std::thread::sleep(Duration::from_micros(rand() % 40_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let before = d.stats().unwrap().generation;
        let inc = shm_collections::region::parse_data_segment_name(
            &shm_collections::region::current_data_segment(&name).unwrap(),
        )
        .unwrap()
        .incarnation;
        let next = shm_collections::region::data_segment_name(&name, inc, before + 1);
        if std::path::Path::new(&format!("/dev/shm/{next}")).exists() {
            mid_growth += 1;
        }
        // The next writer proceeds (and repairs if the child died holding the lock).
        let killed_at = d
            .keys()
            .unwrap()
            .into_iter()
            .filter(|k| *k != u64::MAX)
            .max();
        if let Some(s) = killed_at.filter(|s| s % 7 == 0 && *s >= 5) {
            ambiguous.insert(s - 5);
        }
        step(&d, killed_at.map_or(0, |m| m + 1));
        if d.stats().unwrap().generation > before {
            repaired += 1;
        }
        verify(&d, &name, &ambiguous, u64::from(trial) + 1);
    }
    eprintln!(
        "{trials} trials: {mid_growth} killed mid-growth, {repaired} followed by a growth or repair"
    );
}
