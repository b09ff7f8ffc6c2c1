//! Issue 18, item 2: the owner AND its tracker killed with SIGKILL at random moments of
//! the tracker's sweep (as when a whole container or cgroup is stopped) of a manager
//! with many headerless segments (`m.segment()`s, CPython-format `shareable_list`s).
//! The sweep removes the root last, so an interrupted sweep leaves the root, whose dead
//! owner makes `shm gc` remove the rest; and `shm gc` removes orphans under a root that
//! is gone. Whatever the moment, `shm gc` leaves nothing.
//! `SHM_CHAOS_TRIALS` sets the number of kill trials (default 24; `cargo xtask chaos`
//! runs 1000, or `--trials N`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{PrefixGuard, shm_json, shm_ok, tracked, unique_manager};
use shm_collections::Item;
use shm_core::testing::child_command;
use shm_manager::SharedMemoryManager;

const MANAGER_VAR: &str = "SHM_TEST_MANAGER";
/// Shared by the owner and its tracker (a fork without exec): how the test finds the
/// tracker's pid in /proc.
const TOKEN_VAR: &str = "SHM_TEST_SWEEP_TOKEN";
const RAW_SEGMENTS: usize = 160;
const LISTS: usize = 40;

fn trials() -> usize {
    std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn owner_role() {
    let m = SharedMemoryManager::named(&std::env::var(MANAGER_VAR).unwrap()).unwrap();
    m.value("v", 1u64).unwrap();
    m.list::<u32>("l").unwrap().push(1).unwrap();
    for i in 0..LISTS {
        m.shareable_list(&format!("sl{i}"), vec![Item::Int(i as i64)])
            .unwrap();
    }
    let raw: Vec<_> = (0..RAW_SEGMENTS).map(|_| m.segment(64).unwrap()).collect();
    println!("ready");
    // The parent kills us long before; if it failed, we clean up on our own.
    std::thread::sleep(Duration::from_secs(60));
    drop(raw);
}

/// The pid of the process other than `owner` whose environment holds `token`.
fn tracker_of(owner: u32, token: &str) -> Option<u32> {
    let needle = format!("{TOKEN_VAR}={token}");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != owner && pid != std::process::id())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
}

/// Whether `pid` is gone or a zombie (it will never unlink anything again).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn kill_9_of_owner_and_tracker_mid_sweep_then_gc_leaves_nothing() {
    const TEST: &str = "kill_9_of_owner_and_tracker_mid_sweep_then_gc_leaves_nothing";
    if shm_core::testing::child_runs("sweep-owner", owner_role) {
        return;
    }
    let mut tally = shm_core::testing::Tally::new(
        "owner and tracker killed mid-sweep, shm gc leaves nothing",
        Duration::from_secs(2),
    );
    // The delay between the two kills.
    let mut rng = shm_core::testing::Rng::new();
    let mut interrupted = 0;
    for trial in 0..trials() {
        let name = unique_manager("sweep");
        let root = shm_manager::root_name(&name).unwrap();
        let _g = PrefixGuard(root.clone());
        let token = format!("{name}-{trial}");
        let mut child = child_command(TEST, "sweep-owner")
            .env(MANAGER_VAR, &name)
            .env(TOKEN_VAR, &token)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        assert!(
            out.lines().any(|l| l.unwrap() == "ready"),
            "trial {trial}: the owner never got ready"
        );
        let made = tracked(&root);
        assert!(made.len() > RAW_SEGMENTS + LISTS, "trial {trial}: {made:?}");
        let start = Instant::now();
        let tracker = loop {
            if let Some(pid) = tracker_of(child.id(), &token) {
                break pid;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "trial {trial}: no tracker found"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        // 0 to 4 ms: before, during and after the sweep of ~200 names.
        let delay = Duration::from_nanos(rng.below(4_000_000));
        shm_core::testing::sigkill(child.id());
        let killed = Instant::now();
        while killed.elapsed() < delay {
            std::hint::spin_loop();
        }
        shm_core::testing::sigkill(tracker);
        child.wait().unwrap();
        let start = Instant::now();
        while !dead(tracker) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "trial {trial}: the tracker {tracker} survived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let left = tracked(&root);
        if !left.is_empty() {
            interrupted += 1;
            // The dry run lists every leftover (orphans included) and removes nothing.
            let dry = shm_json(&["gc", "--dry-run", "--json", "--prefix", &root]);
            let listed: Vec<&str> = dry["removed"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            for n in &left {
                assert!(
                    listed.contains(&n.as_str()),
                    "trial {trial}: gc --dry-run does not list {n}: {dry}"
                );
            }
            assert_eq!(tracked(&root), left, "trial {trial}: the dry run removed");
        }
        shm_ok(&["gc", "--prefix", &root]);
        let left_after = tracked(&root);
        assert!(
            left_after.is_empty(),
            "trial {trial} (tracker killed {delay:?} after the owner): left after shm gc: \
             {} of {}: {left_after:?}",
            left_after.len(),
            left.len()
        );
        tally.record(killed.elapsed());
    }
    eprintln!(
        "{} trials: {interrupted} sweeps interrupted, shm gc left nothing",
        trials()
    );
    println!("{}", tally.line());
}
