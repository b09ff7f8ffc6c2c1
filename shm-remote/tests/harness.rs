//! The test server harness: starts, answers, restarts on the same port with its
//! append-only file, fails (never skips) without the binary, removes its directory.

use shm_remote::Manager;
use shm_remote::conn::Retry;
use shm_remote::testing::{RedisServer, ServerOptions};

fn set_get(m: &Manager, k: &str, v: Option<&str>) -> Option<String> {
    let r = m.redis().unwrap();
    if let Some(v) = v {
        let () = r
            .conn()
            .query(
                redis::cmd("SET").arg(k).arg(v),
                r.conn().timeout(),
                Retry::Idempotent,
            )
            .unwrap();
    }
    r.conn()
        .query(
            redis::cmd("GET").arg(k),
            r.conn().timeout(),
            Retry::Idempotent,
        )
        .unwrap()
}

#[test]
fn starts_restarts_and_cleans_up() {
    let mut server = RedisServer::start_with(ServerOptions {
        appendonly: true,
        ..Default::default()
    })
    .expect("redis-server must be installed: the Redis tests fail rather than skip");
    let dir = server.dir().to_owned();
    let m = Manager::connect(&server.url("h")).unwrap();
    assert_eq!(set_get(&m, "h:x", Some("1")).as_deref(), Some("1"));
    let port = server.port();
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    // The same manager reconnects; the acknowledged write survived (AOF).
    assert_eq!(set_get(&m, "h:x", None).as_deref(), Some("1"));
    drop(m);
    drop(server);
    assert!(!dir.exists(), "the server's directory is removed on drop");
}

#[test]
fn a_missing_binary_is_an_error() {
    // A child process with SHM_REDIS_SERVER naming nothing: the harness fails.
    if std::env::var_os("HARNESS_CHILD").is_some() {
        let e = RedisServer::start().unwrap_err();
        println!("ERR:{e}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_missing_binary_is_an_error", "--nocapture"])
        .env("HARNESS_CHILD", "1")
        .env("SHM_REDIS_SERVER", "/nonexistent/redis-server")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("ERR:"), "{text}");
}

#[test]
fn password_from_the_url() {
    let server = RedisServer::start_with(ServerOptions {
        password: Some("p@ss:word".into()),
        ..Default::default()
    })
    .unwrap();
    let good = format!("redis://:p%40ss%3Aword@127.0.0.1:{}/pw", server.port());
    let m = Manager::connect(&good).unwrap();
    assert_eq!(set_get(&m, "pw:a", Some("b")).as_deref(), Some("b"));
    // The address handed to peers carries the (encoded) password.
    Manager::connect(&m.address()).unwrap();
    let bad = format!("redis://:nope@127.0.0.1:{}/pw", server.port());
    let e = Manager::connect(&bad).unwrap_err();
    assert!(matches!(e, shm_remote::Error::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains("nope"), "{e}");
}
