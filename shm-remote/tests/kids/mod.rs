//! Helpers of the lock and queue tests: a test server, a connection in a fresh
//! namespace, and children that re-run this test binary in a role (killed on drop),
//! whose stdout lines the parent waits for.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

pub use shm_core::testing::{child_role, unique_name};
use shm_remote::address::RedisAddress;
use shm_remote::conn::Conn;
use shm_remote::testing::{RedisServer, ServerOptions};

/// A server of this test (killed when dropped).
pub fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed: the Redis tests never skip")
}

/// A server with append-only persistence.
pub fn aof_server() -> RedisServer {
    RedisServer::start_with(ServerOptions {
        appendonly: true,
        ..Default::default()
    })
    .expect("redis-server must be installed: the Redis tests never skip")
}

/// A connection to `url`.
pub fn conn_to(url: &str) -> Arc<Conn> {
    Conn::open(
        &RedisAddress::parse(url).unwrap(),
        Some(Duration::from_secs(5)),
    )
    .unwrap()
}

/// A connection to `server` in a fresh namespace; the URL for children.
pub fn conn(server: &RedisServer) -> (Arc<Conn>, String) {
    let ns = unique_name("r2").replace('/', "-");
    let url = server.url(&ns);
    (conn_to(&url), url)
}

/// Runs a raw command on the server (hostile writes in tests).
pub fn raw<T: redis::FromRedisValue>(conn: &Conn, cmd: &redis::Cmd) -> T {
    conn.query(
        cmd,
        Some(Duration::from_secs(5)),
        shm_remote::conn::Retry::Once,
    )
    .unwrap()
}

/// Prints a line for the parent and flushes.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// An environment variable the parent set.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} set by the parent"))
}

/// A child process; SIGKILLed and reaped on drop if still running.
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
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kid { child, lines: rx }
    }

    /// The next line starting with `prefix` (the rest of it), within `timeout`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let end = std::time::Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no line {prefix:?} within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the child ended before printing {prefix:?}")
                }
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a successful exit within `timeout`.
    pub fn join_ok(mut self, timeout: Duration) {
        let end = std::time::Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "child failed: {st}");
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "child still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// `f` retried while it fails with a transient error (the server just came back on a
/// loaded machine), for at most 30 s.
pub fn after_restart<T>(mut f: impl FnMut() -> shm_remote::Result<T>) -> T {
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_transient() && std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("still failing after the restart: {e}"),
        }
    }
}
