//! [`Process`] and [`Builder`]: the parent's side of a child process.

use std::any::Any;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::protocol::{
    ARGS_FD_VAR, ARGS_IN_ENV, ARGS_VAR, DAEMON_PARENT_VAR, FDS_VAR, RESULT_FD_VAR, ROLE_VAR,
    send_fds, started_by_spawn, to_hex,
};
use crate::registry::INIT_CALLED;
use crate::shared::OUTGOING_FDS;

/// Starts a child with options: a name, daemon, environment, command-line arguments.
///
/// ```no_run
/// fn work(_: ()) {}
/// fn main() {
///     shm_process::main!(work);
///     let mut p = shm_process::Builder::new().name("w1").daemon(true).env("K", "v")
///         .spawn(work, ()).unwrap();
///     assert_eq!(p.name(), "w1");
///     p.join().unwrap();
/// }
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    env: Vec<(OsString, OsString)>,
    args: Option<Vec<OsString>>,
}

impl Builder {
    /// Default options: no name (the function's), not a daemon, the parent's environment.
    ///
    /// ```
    /// let _ = shm_process::Builder::new();
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The process's name (Python's `Process.name`), for messages.
    ///
    /// ```
    /// let _ = shm_process::Builder::new().name("worker-1");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// A daemon child dies with its parent: it is killed (SIGKILL) when the thread that
    /// spawned it exits, or at once if the parent died before it started. (Linux's
    /// `PR_SET_PDEATHSIG` watches the spawning *thread*: spawn daemons from a thread that
    /// outlives them, such as `main`.)
    ///
    /// ```
    /// let _ = shm_process::Builder::new().daemon(true);
    /// ```
    pub fn daemon(mut self, yes: bool) -> Builder {
        self.daemon = yes;
        self
    }

    /// Sets an environment variable in the child.
    ///
    /// ```
    /// let _ = shm_process::Builder::new().env("RUST_LOG", "debug");
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Builder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The child's command-line arguments. The default: a child spawning again passes
    /// its own; a thread with a name other than `main` (libtest names each test's
    /// thread after the test) passes `<name> --exact --test-threads=1 -q`, so that a test
    /// binary runs only the calling test; otherwise none.
    ///
    /// ```
    /// let _ = shm_process::Builder::new().args(["my_test", "--exact"]);
    /// ```
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Builder {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Starts `f(args)` in a child: the current binary re-executed, whose
    /// [`main!`](crate::main) finds `f` by name. `args` stay alive in the returned
    /// [`Process`] until it is joined, so an object the child opens by name is not
    /// removed before it looks.
    ///
    /// Errors: [`Error::NotSpawnable`] for a closure (it has no name a child can find),
    /// [`Error::Encode`], [`Error::Spawn`], [`Error::NotDispatched`].
    ///
    /// ```no_run
    /// fn work(n: u64) { std::process::exit(n as i32) }
    /// fn main() {
    ///     shm_process::main!(work);
    ///     let mut p = shm_process::Builder::new().spawn(work, 3).unwrap();
    ///     assert_eq!(p.join().unwrap(), 3);
    /// }
    /// ```
    pub fn spawn<A, F>(self, f: F, args: A) -> Result<Process>
    where
        A: Serialize + Send + 'static,
        F: Fn(A) + Copy + 'static,
    {
        let _ = f;
        let function = std::any::type_name::<F>();
        if std::mem::size_of::<F>() != 0 || function.contains("{{closure}}") {
            return Err(Error::NotSpawnable {
                function: function.to_owned(),
                reason: "expected a fn item (a closure has no name a child can find)",
            });
        }
        if !INIT_CALLED.load(Ordering::Relaxed) && started_by_spawn() {
            if let Some(role) = std::env::var_os(ROLE_VAR) {
                return Err(Error::NotDispatched {
                    role: role.to_string_lossy().into_owned(),
                });
            }
        }
        let encode_err = |message: String| Error::Encode {
            function: function.to_owned(),
            message,
        };
        OUTGOING_FDS.with(|o| *o.borrow_mut() = Some(Vec::new()));
        let encoded = bincode::serde::encode_to_vec(&args, bincode::config::standard());
        let fds = OUTGOING_FDS
            .with(|o| o.borrow_mut().take())
            .unwrap_or_default();
        let encoded = encoded.map_err(|e| encode_err(e.to_string()))?;
        let spawn_err = |source| Error::Spawn {
            function: function.to_owned(),
            source,
        };
        let exe = std::env::current_exe().map_err(spawn_err)?;
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| spawn_err(e.into()))?;

        let mut cmd = Command::new(exe);
        let mut args_segment = None;
        if encoded.len() <= ARGS_IN_ENV {
            cmd.env(ARGS_VAR, to_hex(&encoded));
        } else {
            let seg = shm_core::Segment::anonymous(encoded.len().saturating_add(8))
                .and_then(|seg| {
                    seg.write_at(0, &(encoded.len() as u64).to_le_bytes())?;
                    seg.write_at(8, &encoded)?;
                    Ok(seg)
                })
                .map_err(|e| encode_err(e.to_string()))?;
            cmd.env(ARGS_FD_VAR, "1");
            args_segment = Some(seg);
        }
        match (&self.args, std::thread::current().name()) {
            (Some(args), _) => {
                cmd.args(args);
            }
            // A child spawning again: its own arguments select the same test (if any).
            (None, _) if std::env::var_os(ROLE_VAR).is_some() => {
                cmd.args(std::env::args_os().skip(1));
            }
            (None, Some(test)) if test != "main" => {
                cmd.args([test, "--exact", "--test-threads=1", "-q"]);
            }
            (None, _) => {}
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::from(theirs));
        cmd.env(ROLE_VAR, function)
            .env(RESULT_FD_VAR, "0")
            .env(
                FDS_VAR,
                fds.iter()
                    .map(|f| f.as_raw_fd().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env_remove(DAEMON_PARENT_VAR);
        if encoded.len() <= ARGS_IN_ENV {
            cmd.env_remove(ARGS_FD_VAR);
        } else {
            cmd.env_remove(ARGS_VAR);
        }
        if self.daemon {
            cmd.env(DAEMON_PARENT_VAR, std::process::id().to_string());
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Dropping the command closes our copy of the child's end: EOF once it exits.
        drop(cmd);
        let sent: Vec<BorrowedFd<'_>> = args_segment
            .as_ref()
            .and_then(shm_core::Segment::fd)
            .into_iter()
            .chain(fds.iter().map(AsFd::as_fd))
            .collect();
        // Non-blocking afterwards: a grandchild that kept the child's end cannot stall
        // the read of the report.
        let handed = send_fds(&ours, &sent)
            .and_then(|()| rustix::io::ioctl_fionbio(&ours, true).map_err(Into::into));
        if let Err(e) = handed {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_err(e));
        }
        // In flight or received: our copies may close now.
        drop(sent);
        drop((fds, args_segment));
        Ok(Process {
            pid: child.id(),
            child,
            function,
            name: self.name.unwrap_or_else(|| function.to_owned()),
            report: Some(ours),
            status: None,
            outcome: None,
            _args: Some(Box::new(args)),
        })
    }
}

/// A child process running a function (Python's `multiprocessing.Process`).
///
/// ```no_run
/// fn work(msg: String) { println!("{msg}"); }
/// fn main() {
///     shm_process::main!(work);
///     let mut p = shm_process::Process::spawn(work, "hello".to_string()).unwrap();
///     assert_eq!(p.join().unwrap(), 0);
///     assert_eq!(p.exitcode(), Some(0));
/// }
/// ```
pub struct Process {
    child: Child,
    pid: u32,
    function: &'static str,
    name: String,
    report: Option<OwnedFd>,
    status: Option<ExitStatus>,
    /// The result of `join`, computed once.
    outcome: Option<std::result::Result<i32, (u8, String)>>,
    /// The arguments, alive until the child has exited.
    _args: Option<Box<dyn Any + Send>>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("function", &self.function)
            .field("status", &self.status)
            .finish()
    }
}

impl Process {
    /// Starts `f(args)` in a child with default options (see [`Builder::spawn`]).
    ///
    /// ```no_run
    /// fn work(n: u32) { assert_eq!(n, 7); }
    /// fn main() {
    ///     shm_process::main!(work);
    ///     shm_process::Process::spawn(work, 7u32).unwrap().join().unwrap();
    /// }
    /// ```
    pub fn spawn<A, F>(f: F, args: A) -> Result<Process>
    where
        A: Serialize + Send + 'static,
        F: Fn(A) + Copy + 'static,
    {
        Builder::new().spawn(f, args)
    }

    /// The child's process id.
    ///
    /// ```no_run
    /// # fn work(_: ()) {}
    /// # shm_process::main!(work);
    /// let p = shm_process::Process::spawn(work, ()).unwrap();
    /// assert!(p.pid() > 0);
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given with [`Builder::name`], else the function's.
    ///
    /// ```no_run
    /// # fn work(_: ()) {}
    /// # shm_process::main!(work);
    /// let p = shm_process::Process::spawn(work, ()).unwrap();
    /// assert!(p.name().ends_with("work"));
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    fn record(&mut self, status: ExitStatus) {
        if self.status.is_none() {
            self.status = Some(status);
            self._args = None;
        }
    }

    /// The exit code once the child has exited: its code, or minus the signal that
    /// killed it (Python's convention); `None` while it runs. Does not wait.
    ///
    /// ```no_run
    /// # fn work(_: ()) { std::process::exit(4) }
    /// # shm_process::main!(work);
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// p.join().unwrap();
    /// assert_eq!(p.exitcode(), Some(4));
    /// ```
    pub fn exitcode(&mut self) -> Option<i32> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.record(s);
            }
        }
        self.status.map(code_of)
    }

    /// Whether the child is still running.
    ///
    /// ```no_run
    /// # fn work(_: ()) {}
    /// # shm_process::main!(work);
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// p.join().unwrap();
    /// assert!(!p.is_alive());
    /// ```
    pub fn is_alive(&mut self) -> bool {
        self.exitcode().is_none()
    }

    /// Waits for the child to exit and returns its exit code (see
    /// [`exitcode`](Self::exitcode)), or [`Error::Panicked`] with the panic's message,
    /// or [`Error::Dispatch`] when the child could not start the function. Joining again
    /// returns the same.
    ///
    /// ```no_run
    /// # fn work(_: ()) { panic!("no more work") }
    /// # shm_process::main!(work);
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// let err = p.join().unwrap_err();
    /// assert!(err.to_string().contains("no more work"));
    /// assert_eq!(p.exitcode(), Some(1));
    /// ```
    pub fn join(&mut self) -> Result<i32> {
        if self.status.is_none() {
            let status = self.child.wait().map_err(|source| Error::Wait {
                pid: self.pid,
                source,
            })?;
            self.record(status);
        }
        self.outcome()
    }

    /// Waits at most `timeout` for the child to exit: `Ok(None)` if it still runs, else
    /// what [`join`](Self::join) returns. A huge timeout means no deadline.
    ///
    /// ```no_run
    /// # fn work(_: ()) { std::thread::sleep(std::time::Duration::from_secs(60)) }
    /// # shm_process::main!(work);
    /// use std::time::Duration;
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// assert_eq!(p.join_timeout(Duration::from_millis(10)).unwrap(), None);
    /// p.kill().unwrap();
    /// assert_eq!(p.join_timeout(Duration::from_secs(10)).unwrap(), Some(-9));
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.join().map(Some);
        };
        let mut nap = Duration::from_micros(100);
        loop {
            if self.exitcode().is_some() {
                return self.outcome().map(Some);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (Python's `terminate`); does nothing once the child has been
    /// reaped. Join afterwards.
    ///
    /// ```no_run
    /// # fn work(_: ()) { std::thread::sleep(std::time::Duration::from_secs(60)) }
    /// # shm_process::main!(work);
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// p.terminate().unwrap();
    /// assert_eq!(p.join().unwrap(), -15);
    /// ```
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (Python's `kill`); does nothing once the child has been reaped.
    ///
    /// ```no_run
    /// # fn work(_: ()) { std::thread::sleep(std::time::Duration::from_secs(60)) }
    /// # shm_process::main!(work);
    /// let mut p = shm_process::Process::spawn(work, ()).unwrap();
    /// p.kill().unwrap();
    /// assert_eq!(p.join().unwrap(), -9);
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    fn signal(&mut self, sig: i32) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // The child is not reaped yet (we hold its `Child` and never waited
        // successfully), so its pid cannot have been reused.
        let pid = i32::try_from(self.pid).map_err(|_| Error::Wait {
            pid: self.pid,
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        })?;
        // SAFETY: kill takes a pid and a signal number; no memory is passed.
        if unsafe { libc::kill(pid, sig) } < 0 {
            return Err(Error::Wait {
                pid: self.pid,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// The outcome of an exited child, reading its report once.
    fn outcome(&mut self) -> Result<i32> {
        let Some(status) = self.status else {
            unreachable!("outcome() is called after the child exited");
        };
        if self.outcome.is_none() {
            let mut bytes = Vec::new();
            if let Some(fd) = self.report.take() {
                // Non-blocking: a grandchild that kept the write end cannot stall us.
                let _ = std::fs::File::from(fd).read_to_end(&mut bytes);
            }
            let code = code_of(status);
            self.outcome = Some(match bytes.split_first() {
                Some((&tag, msg)) if code > 0 => {
                    Err((tag, String::from_utf8_lossy(msg).into_owned()))
                }
                _ => Ok(code),
            });
        }
        match self.outcome.clone() {
            Some(Ok(code)) => Ok(code),
            Some(Err((b'P', message))) => Err(Error::Panicked {
                pid: self.pid,
                function: self.function.to_owned(),
                message,
            }),
            Some(Err((_, message))) => Err(Error::Dispatch {
                pid: self.pid,
                function: self.function.to_owned(),
                message,
            }),
            None => unreachable!("set above"),
        }
    }
}

impl Drop for Process {
    /// Reaps a child that has already exited; a running child keeps running (join it).
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.try_wait();
        }
    }
}

/// Python's `exitcode`: the code, or minus the signal.
fn code_of(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => -s,
        (None, None) => i32::MIN,
    }
}
