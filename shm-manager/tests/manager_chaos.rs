//! Crash cleanup: an owner killed with SIGKILL leaves nothing behind within a second
//! (its tracker process sweeps), while kept objects (`track = false`) survive.
//! `SHM_CHAOS_TRIALS` sets the number of kill trials (default 20; `cargo xtask chaos` runs 1000, or `--trials N`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{PrefixGuard, tracked, unique_manager, wait_gone};
use shm_collections::{Item, Value};
use shm_core::Flags;
use shm_core::testing::{UnlinkGuard, child_command, child_role};
use shm_manager::{ObjectOptions, SharedMemoryManager};

const MANAGER_VAR: &str = "SHM_TEST_MANAGER";

fn trials() -> usize {
    std::env::var("SHM_CHAOS_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// The owner's work: objects of every placement, a dict grown into several data
/// segments, a raw segment and (optionally) a kept value; then "ready <kept name>".
fn owner_role(keep: bool) {
    let m = SharedMemoryManager::named(&std::env::var(MANAGER_VAR).unwrap()).unwrap();
    m.value("v", 1u64).unwrap();
    m.lock("l").unwrap();
    let d = m.dict::<u32, String>("d").unwrap();
    for i in 0..300 {
        d.insert(i, "y".repeat(40)).unwrap();
    }
    m.queue::<u8>("q", 4, 128).unwrap();
    m.shareable_list("list", vec![Item::Int(1)]).unwrap();
    let _raw = m.segment(64).unwrap();
    let kept = if keep {
        let v: Value<u64> = m
            .get_or_create_with("kept", 42, ObjectOptions::new().keep(true))
            .unwrap();
        v.name().unwrap().to_owned()
    } else {
        "-".to_owned()
    };
    println!("ready {kept}");
    // The parent kills us long before; if it failed, we clean up on our own.
    std::thread::sleep(Duration::from_secs(60));
}

/// Starts an owner and waits for its "ready" line; returns the child and the kept name.
fn start_owner(test: &str, role: &str, name: &str) -> (Child, String) {
    let mut child = child_command(test, role)
        .env(MANAGER_VAR, name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(kept) = line.strip_prefix("ready ") {
            return (child, kept.to_owned());
        }
    }
    let status = child.wait().unwrap();
    panic!("the owner exited before it was ready: {status}");
}

#[test]
fn kill_9_of_the_owner_leaves_nothing_within_a_second() {
    const TEST: &str = "kill_9_of_the_owner_leaves_nothing_within_a_second";
    if shm_core::testing::child_runs("owner", || owner_role(false)) {
        return;
    }
    // The design's second is the tally's figure; the assert allows a busy machine more.
    let mut tally = shm_core::testing::Tally::new(
        "manager owner killed, its segments gone",
        Duration::from_secs(1),
    );
    for trial in 0..trials() {
        let name = unique_manager("kill");
        let root = shm_manager::root_name(&name).unwrap();
        let _g = PrefixGuard(root.clone());
        let (mut child, _) = start_owner(TEST, "owner", &name);
        let made = tracked(&root);
        // root + data, arena, dict + data, queue, list, raw segment
        assert!(made.len() >= 8, "trial {trial}: {made:?}");
        child.kill().unwrap();
        let killed = Instant::now();
        child.wait().unwrap();
        let left = wait_gone(&root, Duration::from_secs(10));
        assert!(left.is_empty(), "trial {trial}: left after 10 s: {left:?}");
        tally.record(killed.elapsed());
    }
    eprintln!(
        "{} trials: every owner's segments gone, slowest {:?} after the kill",
        trials(),
        tally.max()
    );
    println!("{}", tally.line());
}

#[test]
fn kept_objects_survive_the_owners_kill() {
    const TEST: &str = "kept_objects_survive_the_owners_kill";
    if shm_core::testing::child_runs("keeper", || owner_role(true)) {
        return;
    }
    let name = unique_manager("keep");
    let root = shm_manager::root_name(&name).unwrap();
    let _g = PrefixGuard(root.clone());
    let (mut child, kept) = start_owner(TEST, "keeper", &name);
    let _k = UnlinkGuard::new(kept.clone());
    assert!(kept.starts_with(&format!("shm-rs.k.{name}.o")), "{kept}");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = wait_gone(&root, Duration::from_secs(1));
    assert!(left.is_empty(), "left after 1 s: {left:?}");
    let v = Value::<u64>::open(&kept).unwrap();
    assert_eq!(v.get().unwrap(), 42);
    let info = v.object().info().unwrap();
    assert!(info.flags.contains(Flags::KEEP) && !info.flags.contains(Flags::TRACKED));
    v.unlink().unwrap();
}

#[test]
fn shutdown_stops_the_tracker_and_leaves_kept_objects() {
    if child_role().is_some() {
        return;
    }
    let (m, root, _g) = common::manager();
    let kept: Value<u8> = m
        .get_or_create_with("k", 3, ObjectOptions::new().keep(true))
        .unwrap();
    let _k = UnlinkGuard::new(kept.name().unwrap());
    // A new manager's tracker must not wait on this one's pipe (or keep it open).
    let other = SharedMemoryManager::new().unwrap();
    let _g2 = PrefixGuard(other.root_name().to_owned());
    m.shutdown().unwrap();
    assert!(tracked(&root).is_empty());
    assert_eq!(
        Value::<u8>::open(kept.name().unwrap())
            .unwrap()
            .get()
            .unwrap(),
        3
    );
    assert!(!tracked(other.root_name()).is_empty());
}

#[test]
fn sigkill_to_the_owners_process_group_spares_the_tracker() {
    const TEST: &str = "sigkill_to_the_owners_process_group_spares_the_tracker";
    if shm_core::testing::child_runs("group-owner", || owner_role(false)) {
        return;
    }
    use std::os::unix::process::CommandExt;
    let name = unique_manager("pgrp");
    let root = shm_manager::root_name(&name).unwrap();
    let _g = PrefixGuard(root.clone());
    // The owner leads a process group of its own, as a shell job would (Ctrl-C
    // signals the whole group).
    let mut child = child_command(TEST, "group-owner")
        .env(MANAGER_VAR, &name)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    assert!(
        out.lines().any(|l| l.unwrap().starts_with("ready ")),
        "the owner never got ready"
    );
    let pgid = child.id() as libc::pid_t;
    // SAFETY: sends a signal to the process group we just created; no memory involved.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    let left = wait_gone(&root, Duration::from_secs(1));
    assert!(left.is_empty(), "left after 1 s: {left:?}");
}

/// Processes other than this one that map `/dev/shm/<segment>`.
fn mappers(segment: &str) -> Vec<u32> {
    let me = std::process::id();
    let needle = format!("/dev/shm/{segment}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .is_ok_and(|m| m.lines().any(|l| l.ends_with(&needle)))
        })
        .collect()
}

#[test]
fn the_tracker_keeps_no_mapping_of_the_owners_segments() {
    if child_role().is_some() {
        return;
    }
    // Mapped before the fork: the tracker must unmap its copy.
    let seg = shm_core::Segment::create(4096).unwrap();
    let m = SharedMemoryManager::new().unwrap();
    let _g = PrefixGuard(m.root_name().to_owned());
    let name = seg.name().unwrap().to_owned();
    let start = Instant::now();
    let mut found = mappers(&name);
    while !found.is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
        found = mappers(&name);
    }
    assert!(found.is_empty(), "processes {found:?} still map {name}");
    // The root too (mapped by this process when the tracker forked).
    assert!(mappers(m.root_name()).is_empty());
}
