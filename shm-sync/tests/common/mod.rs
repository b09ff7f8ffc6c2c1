//! Helpers for the cross-process tests: children that re-run this test binary in a
//! role, killed on drop, whose stdout lines the parent can wait for.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use shm_core::testing::{
    BlockedIn, Task, child_role, current_tid, run_child, wait_until_blocked,
};

/// A spawned child process; SIGKILLed and reaped on drop if still running.
pub struct Kid {
    pub child: Child,
    lines: Receiver<String>,
}

impl Kid {
    /// Spawns this test binary running only `test`, in `role`, with `envs`.
    pub fn spawn(test: &str, role: &str, envs: &[(&str, &str)]) -> Kid {
        let mut cmd = shm_core::testing::child_command(test, role);
        cmd.envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kid { child, lines }
    }

    /// Waits for a stdout line starting with `prefix`; returns the line.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child printed no {prefix:?} within {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child exited before printing {prefix:?}")
                }
            }
        }
    }

    /// Waits until the child sleeps in a wait on shared memory (a lock, condition,
    /// event, barrier...): see [`shm_core::testing::wait_until_blocked`].
    pub fn wait_blocked(&self) {
        shm_core::testing::wait_until_blocked(
            shm_core::testing::Task::Process(self.child.id()),
            shm_core::testing::BlockedIn::SharedFutex,
        );
    }

    /// SIGKILL, without reaping.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits (bounded) for the child to exit and asserts it succeeded.
    pub fn join_ok(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "child failed: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "child did not finish within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints a line for the parent and flushes.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The environment variable the parent passes a name in.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} set by the parent"))
}

/// A small xorshift generator (tests need no crypto).
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
