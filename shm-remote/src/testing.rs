//! A throwaway `redis-server` for tests, examples and benches: [`RedisServer::start`]
//! runs one on 127.0.0.1 on a free port in a fresh temporary directory, with no RDB
//! snapshots and (optionally) append-only persistence, and kills it and removes the
//! directory on drop.
//!
//! It fails, never skips, when `redis-server` is missing (set `SHM_REDIS_SERVER` to
//! use another binary). The server gets `PR_SET_PDEATHSIG`: if the process that
//! started it is killed, the server dies too (start it from a thread that lives as
//! long as the server, e.g. the test's own).
//!
//! ```
//! let server = shm_remote::testing::RedisServer::start().unwrap();
//! let m = shm_remote::Manager::connect(&server.url("doc"))?;
//! assert!(!m.is_local());
//! # Ok::<(), shm_remote::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING (busy CI machines: seconds).
const READY_WAIT: Duration = Duration::from_secs(20);

/// How a test server is started.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `--appendonly yes` (`appendfsync everysec`: every acknowledged write is in the
    /// file before the reply, so a killed server loses nothing acknowledged).
    pub appendonly: bool,
    /// `--requirepass` (the default user's password).
    pub password: Option<String>,
    /// TLS only (`--port 0 --tls-port PORT`): a throwaway CA and a server certificate
    /// for 127.0.0.1 are made with the `openssl` command in the server's directory;
    /// clients trust the CA through `SSL_CERT_FILE` = [`RedisServer::ca_file`].
    pub tls: bool,
    /// Extra `--name value` arguments.
    pub extra: Vec<(String, String)>,
}

/// A running `redis-server` owned by this process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: ServerOptions,
}

/// The binary: `$SHM_REDIS_SERVER` or `redis-server` on the `PATH`.
pub fn server_binary() -> std::io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SHM_REDIS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    find_in_path("redis-server").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "expected redis-server on the PATH (or SHM_REDIS_SERVER), found none: \
             install it (apt-get install -y redis-server); the Redis tests never skip",
        )
    })
}

/// A program on the `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn unique_dir() -> std::io::Result<PathBuf> {
    let mut bytes = [0u8; 8];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())
        .map_err(std::io::Error::from)?;
    let dir = std::env::temp_dir().join(format!(
        "shm-remote-redis-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(bytes)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// A CA and a server certificate for 127.0.0.1 (P-256 keys, valid two days), made
/// with the `openssl` command.
fn make_certificates(dir: &Path) -> std::io::Result<()> {
    let openssl = |args: &[&str]| -> std::io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("expected the openssl command for a TLS test server: {e}"),
                )
            })?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=shm-remote test CA",
    ]);
    openssl(&ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&csr)?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends `PING` (with AUTH first when a password is set) and reads the reply.
fn ping(port: u16, password: Option<&str>) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    if let Some(p) = password {
        req.extend_from_slice(format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()).as_bytes());
    }
    req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if password.is_some() && (r.read_line(&mut line).is_err() || !line.starts_with("+OK")) {
        return false;
    }
    line.clear();
    r.read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: ServerOptions) -> std::io::Result<Self> {
        server_binary()?;
        let dir = unique_dir()?;
        if options.tls
            && let Err(e) = make_certificates(&dir)
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            options,
        };
        // Another process may take the free port between our probe and the server's
        // bind: a few attempts.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let bin = server_binary()?;
        let mut cmd = Command::new(bin);
        if self.options.tls {
            cmd.arg("--port")
                .arg("0")
                .arg("--tls-port")
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.ca_file())
                .arg("--tls-auth-clients")
                .arg("no");
        } else {
            cmd.arg("--port").arg(self.port.to_string());
        }
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg(if self.options.appendonly { "yes" } else { "no" })
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--unixsocket")
            .arg("")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.options.password {
            cmd.arg("--requirepass").arg(p);
        }
        for (k, v) in &self.options.extra {
            cmd.arg(format!("--{k}")).arg(v);
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // prctl and getppid, both async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // The server dies with the thread that started it (a killed test
                // leaves no server behind).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = std::fs::remove_file(self.dir.join("redis.log"));
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + READY_WAIT;
        loop {
            // A TLS server cannot be pinged in plain text: its log says when it listens.
            let ready = if self.options.tls {
                std::fs::read_to_string(self.dir.join("redis.log"))
                    .is_ok_and(|l| l.contains("Ready to accept connections"))
            } else {
                ping(self.port, self.options.password.as_deref())
            };
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "redis-server on port {} exited ({status}) before answering: {}",
                    self.port,
                    self.log_tail()
                )));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "redis-server on port {} did not answer within {READY_WAIT:?}: {}",
                        self.port,
                        self.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("redis.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (AOF files live here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `redis://[:password@]127.0.0.1:PORT/namespace` (`rediss://` with TLS).
    pub fn url(&self, namespace: &str) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        match &self.options.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}/{namespace}", self.port),
            None => format!("{scheme}://127.0.0.1:{}/{namespace}", self.port),
        }
    }

    /// The throwaway CA's certificate (TLS servers): what `SSL_CERT_FILE` must name.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the server process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: no shutdown save) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory (an append-only file
    /// is loaded back). Waits until it answers.
    pub fn start_again(&mut self) -> std::io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        // The port was ours a moment ago; a TIME_WAIT socket does not block the bind
        // (Redis sets SO_REUSEADDR), another process taking it does: retried briefly.
        let deadline = Instant::now() + READY_WAIT;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Kills the server and starts it again: a crash and restart.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.start_again()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
