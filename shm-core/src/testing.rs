//! Test support for crates built on shm-core (feature `test-support`): child processes
//! that re-run the current test binary in a role, unique names, and guards that leave
//! `/dev/shm` clean even when a test fails.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable naming a child's role.
pub const ROLE_VAR: &str = "SHM_TEST_ROLE";

/// The role this process was started in, if it is a child.
///
/// A test that spawns children starts with
/// `if let Some(role) = child_role() { ...child work...; return; }`.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A name no other test (in this or another process) uses: `shmtest-<pid>-<n>-<tag>`.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmtest-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unlinks a segment name when dropped (also on panic), ignoring "not found".
#[derive(Debug)]
pub struct UnlinkGuard(pub String);

impl UnlinkGuard {
    /// A guard for `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }
}

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        let _ = crate::unlink(&self.0);
    }
}

/// A command that re-runs this test binary, runs only `test` (its full path as the
/// harness prints it) and sets [`ROLE_VAR`] to `role`. The child's stdout is discarded
/// (its harness summary would read as the parent's); its stderr, where panics go, is
/// inherited.
pub fn child_command(test: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Runs a child (see [`child_command`]) with extra environment variables, waits for it
/// and panics with its output unless it succeeded. Its stdout and stderr are captured.
pub fn run_child<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    test: &str,
    role: &str,
    envs: &[(K, V)],
) -> Output {
    let mut cmd = child_command(test, role);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn child test process");
    assert!(
        out.status.success(),
        "child {role} of {test} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every CPython 3.9+ on this machine: `python3` first (required: panics when absent,
/// so interop tests fail rather than skip), then the pyenv versions.
pub fn pythons() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let python3 = which("python3").expect("python3 is required for the interop tests");
    found.push(python3);
    let root = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pyenv")));
    if let Some(root) = root {
        if let Ok(entries) = std::fs::read_dir(root.join("versions")) {
            let mut versions: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            versions.sort();
            for dir in versions {
                let exe = dir.join("bin/python3");
                if exe.exists() && python_minor(&exe).is_some_and(|(maj, min)| maj == 3 && min >= 9)
                {
                    found.push(exe);
                }
            }
        }
    }
    found
}

fn python_minor(exe: &std::path::Path) -> Option<(u32, u32)> {
    let out = Command::new(exe)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse().ok());
    Some((it.next()??, it.next()??))
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
}

/// Runs `python -c script args...` and returns its stdout, panicking with stderr on failure.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} failed: {}\nstderr:\n{}",
        python.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python printed UTF-8")
}

/// Python code that attaches to a segment without registering it with CPython's
/// resource tracker (which would unlink it when the interpreter exits).
pub const PY_ATTACH: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm
"#;
