//! Issue 18, item 1: the owner killed with SIGKILL while it creates its root (the first
//! milliseconds of `SharedMemoryManager::named`, before and after its tracker is forked).
//! The root is built complete in an unnamed file and linked into place, so its name
//! never shows a half-made root; a data segment whose root never appeared is an orphan
//! and a complete root whose creator is dead is stale. Whatever the moment, `shm gc`
//! (even trials) or the next `named(NAME)` (odd trials) leaves nothing of the manager.
//! `SHM_CHAOS_TRIALS` sets the number of kill trials (default 60; `cargo xtask chaos`
//! runs 1000, or `--trials N`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{PrefixGuard, shm_ok, tracked, unique_manager};
use shm_core::testing::child_command;
use shm_manager::SharedMemoryManager;

const MANAGER_VAR: &str = "SHM_TEST_MANAGER";
/// Inherited by the tracker (a fork without exec): how the test waits for it.
const TOKEN_VAR: &str = "SHM_TEST_ROOT_TOKEN";

fn trials() -> usize {
    std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn owner_role() {
    // Warm up (lazy statics, page faults of the code), so that the kill window after
    // the go is the creation itself.
    let t = Instant::now();
    drop(SharedMemoryManager::new().unwrap());
    // The parent kills within as long as a creation takes here (about 0.3 to 3 ms).
    println!("up {}", t.elapsed().as_nanos());
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let _m = SharedMemoryManager::named(&std::env::var(MANAGER_VAR).unwrap()).unwrap();
    println!("made");
    // The parent kills us long before; if it failed, we clean up on our own.
    std::thread::sleep(Duration::from_secs(60));
}

/// Pids of the processes other than us whose environment holds `token`.
fn holders(token: &str) -> Vec<u32> {
    let needle = format!("{TOKEN_VAR}={token}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

#[test]
fn kill_9_of_owner_while_it_creates_its_root_leaves_nothing() {
    const TEST: &str = "kill_9_of_owner_while_it_creates_its_root_leaves_nothing";
    if shm_core::testing::child_runs("root-owner", owner_role) {
        return;
    }
    let mut tally = shm_core::testing::Tally::new(
        "owner killed while creating its root, gc / named() leave nothing",
        Duration::from_secs(5),
    );
    let mut rng = shm_core::testing::Rng::new();
    let (mut before_root, mut root_left, mut made) = (0, 0, 0);
    for trial in 0..trials() {
        let name = unique_manager("rootkill");
        let root = shm_manager::root_name(&name).unwrap();
        let _g = PrefixGuard(root.clone());
        let token = format!("{name}-{trial}");
        let mut child = child_command(TEST, "root-owner")
            .env(MANAGER_VAR, &name)
            .env(TOKEN_VAR, &token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // The child's test harness prints its own lines first.
        let mut line = String::new();
        let took = loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "trial {trial}: the owner never started");
            if let Some(ns) = line.trim().strip_prefix("up ") {
                break ns.parse::<u64>().unwrap().clamp(100_000, 10_000_000);
            }
        };
        // From the go to as long as the warm-up creation took: before, during and
        // after the root's creation and the tracker's fork.
        // Two trials in three in its first half, where the root is made.
        let range = if trial % 3 == 0 { took } else { took / 2 };
        let delay = Duration::from_nanos(rng.below(range));
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let go = Instant::now();
        while go.elapsed() < delay {
            std::hint::spin_loop();
        }
        shm_core::testing::sigkill(child.id());
        child.wait().unwrap();
        let killed = Instant::now();
        line.clear();
        if out
            .read_line(&mut line)
            .is_ok_and(|_| line.trim() == "made")
        {
            made += 1;
        }
        // A tracker that was forked sweeps (twice, 100 ms apart): let it finish, so
        // that it cannot sweep the manager this test makes next under the same name.
        let start = Instant::now();
        while !holders(&token).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "trial {trial}: the tracker did not exit"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let left = tracked(&root);
        if left.contains(&root) {
            root_left += 1;
        } else if !left.is_empty() {
            before_root += 1;
        }
        if trial % 2 == 0 {
            shm_ok(&["gc", "--prefix", &root]);
            let after = tracked(&root);
            assert!(
                after.is_empty(),
                "trial {trial} (killed {delay:?} after the go): shm gc left {after:?} \
                 (before it: {left:?})"
            );
        }
        // The name is free again (or its stale root is reclaimed) ...
        let m = SharedMemoryManager::named(&name).unwrap_or_else(|e| {
            panic!("trial {trial} (killed {delay:?} after the go, left {left:?}): named: {e}")
        });
        m.value("v", 1u64).unwrap();
        // ... and what the killed owner left is gone with the new one's shutdown.
        m.shutdown().unwrap();
        let after = tracked(&root);
        assert!(
            after.is_empty(),
            "trial {trial} (killed {delay:?} after the go): left after named + shutdown: \
             {after:?} (before: {left:?})"
        );
        tally.record(killed.elapsed());
    }
    eprintln!(
        "{} trials: {root_left} left a root, {before_root} left only segments without a \
         root, {made} finished creating before the kill; gc / named() left nothing",
        trials()
    );
    println!("{}", tally.line());
}

/// What an owner killed after its registry's first data segment was made but before
/// its root was linked leaves: a data segment whose control object never appeared.
fn orphan_data_segment(name: &str) -> (String, String) {
    let root = shm_manager::root_name(name).unwrap();
    let reg = shm_manager::Registry::create_named(&root).unwrap();
    let data: Vec<String> = tracked(&root).into_iter().filter(|n| *n != root).collect();
    assert_eq!(data.len(), 1, "{data:?}");
    shm_core::unlink(&root).unwrap();
    std::mem::forget(reg); // its drop would remove the data segment
    (root, data[0].clone())
}

#[test]
fn a_registry_data_segment_without_its_root_is_removed_by_gc() {
    let (root, data) = orphan_data_segment(&unique_manager("orph-gc"));
    let _g = PrefixGuard(root.clone());
    assert_eq!(tracked(&root), std::slice::from_ref(&data));
    shm_ok(&["gc", "--prefix", &root]);
    assert_eq!(tracked(&root), Vec::<String>::new());
}

#[test]
fn a_registry_data_segment_without_its_root_is_removed_by_named() {
    let name = unique_manager("orph-named");
    let (root, data) = orphan_data_segment(&name);
    let _g = PrefixGuard(root.clone());
    let m = SharedMemoryManager::named(&name).unwrap();
    let now = tracked(&root);
    assert!(!now.contains(&data), "{now:?}");
    assert!(now.contains(&root), "{now:?}");
    m.shutdown().unwrap();
    assert_eq!(tracked(&root), Vec::<String>::new());
}
