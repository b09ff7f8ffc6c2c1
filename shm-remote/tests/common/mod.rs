//! Helpers of the shm-remote tests: unique names, a test server per test.
#![allow(dead_code)]

use shm_remote::testing::{RedisServer, ServerOptions};

/// A unique local manager name for this test (pid + random).
pub fn local_name(tag: &str) -> String {
    let mut b = [0u8; 6];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap();
    let r: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("rt-{tag}-{}-{r}", std::process::id())
}

/// A server without persistence (fails when redis-server is missing: never skips).
pub fn server() -> RedisServer {
    RedisServer::start()
        .expect("redis-server must be installed: the Redis tests fail rather than skip")
}

/// A server with append-only persistence.
pub fn aof_server() -> RedisServer {
    RedisServer::start_with(ServerOptions {
        appendonly: true,
        ..Default::default()
    })
    .expect("redis-server must be installed: the Redis tests fail rather than skip")
}

/// Runs the current test binary again as a child with `role` in `SHM_REMOTE_ROLE` and
/// the given extra environment, running only `test`.
pub fn child(test: &str, role: &str, env: &[(&str, String)]) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("SHM_REMOTE_ROLE", role);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The role of this process (`None` in the parent).
pub fn role() -> Option<String> {
    std::env::var("SHM_REMOTE_ROLE").ok()
}
