//! Helpers shared by the manager tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Segments in /dev/shm that manager `root` tracks (the root and `root.*`).
pub fn tracked(root: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm is readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| shm_manager::is_tracked_by(n, root))
        .collect();
    v.sort();
    v
}

/// Polls until no segment of `root` is left or `limit` passes; returns what is left.
pub fn wait_gone(root: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = tracked(root);
        if left.is_empty() || start.elapsed() >= limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A manager name no other test uses.
pub fn unique_manager(tag: &str) -> String {
    shm_core::testing::unique_name(tag)
}

/// Removes what a test left under `root` even when it fails.
pub struct PrefixGuard(pub String);

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        for n in tracked(&self.0) {
            let _ = shm_core::unlink(&n);
        }
    }
}

/// A new manager, its root's name and a guard that removes what the test leaves under
/// the root even when it fails (declared last, so dropped first).
pub fn manager() -> (shm_manager::SharedMemoryManager, String, PrefixGuard) {
    guarded(shm_manager::SharedMemoryManager::new().unwrap())
}

/// [`manager`] named `name`.
pub fn named_manager(name: &str) -> (shm_manager::SharedMemoryManager, String, PrefixGuard) {
    guarded(shm_manager::SharedMemoryManager::named(name).unwrap())
}

fn guarded(
    m: shm_manager::SharedMemoryManager,
) -> (shm_manager::SharedMemoryManager, String, PrefixGuard) {
    let root = m.root_name().to_owned();
    let guard = PrefixGuard(root.clone());
    (m, root, guard)
}

/// Runs the `shm` command with `args`.
pub fn shm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the shm binary")
}

/// Runs `shm args`, checks it succeeded and returns its standard output.
pub fn shm_ok(args: &[&str]) -> String {
    let o = shm(args);
    let out = String::from_utf8(o.stdout).expect("UTF-8 output");
    assert!(
        o.status.success(),
        "shm {args:?} failed: {}\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs `shm args` (which include `--json`) and parses its output.
pub fn shm_json(args: &[&str]) -> serde_json::Value {
    let text = shm_ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("shm {args:?}: not JSON ({e}):\n{text}"))
}
