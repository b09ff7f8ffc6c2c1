//! Test support for crates built on shm-core (feature `test-support`): child processes
//! that re-run the current test binary in a role, unique names, guards that leave
//! `/dev/shm` clean even when a test fails, a handshake that waits until a peer is
//! asleep ([`wait_until_blocked`], instead of sleeping "to let it block first"), and the
//! crash trials' [`Tally`] (exact figures printed; tests assert only seconds).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Environment variable naming a child's role.
pub const ROLE_VAR: &str = "SHM_TEST_ROLE";

/// The role this process was started in, if it is a child.
///
/// A test that spawns children starts with
/// `if let Some(role) = child_role() { ...child work...; return; }`.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// For a test whose children run in role `role`: in such a child runs `f` and returns
/// `true`; in a child started in another role returns `true` without running anything
/// (that child is there for another part of the test); in the parent returns `false`. A test starts with
/// `if child_runs("owner", owner_role) { return; }`.
///
/// ```
/// let mut ran = false;
/// // Not a child here (no role set): nothing runs.
/// assert!(!shm_core::testing::child_runs("owner", || ran = true));
/// assert!(!ran);
/// ```
pub fn child_runs(role: &str, f: impl FnOnce()) -> bool {
    match child_role() {
        Some(r) => {
            if r == role {
                f();
            }
            true
        }
        None => false,
    }
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

/// Runs child role `role` of test `test` with `obj` handed over under `var`
/// ([`SharedObject::share`](crate::SharedObject::share): by name, or by inherited
/// descriptor for an anonymous object); panics with the child's stderr unless it
/// succeeds.
///
/// ```no_run
/// # use shm_core::SharedObject;
/// # fn f<T: SharedObject>(obj: &T) where T::Error: std::fmt::Debug {
/// shm_core::testing::run_shared(obj, "my_test", "reader", "SHM_OBJECT");
/// # }
/// ```
pub fn run_shared<T: crate::SharedObject>(obj: &T, test: &str, role: &str, var: &str)
where
    T::Error: std::fmt::Debug,
{
    let mut cmd = child_command(test, role);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    obj.share(&mut cmd, var)
        .unwrap_or_else(|e| panic!("share {role}: {e:?}"));
    let out = cmd.output().expect("spawn child test process");
    assert!(
        out.status.success(),
        "child {role} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lifecycle check every shared type runs: creates `T` named and anonymous (from
/// `make()`), hands each to child role `role` of test `test` under `var`
/// ([`run_shared`]) and `check`s the child's effect; then unlinks the named one and
/// returns its name, which must no longer open (the caller checks how it fails).
///
/// ```no_run
/// use shm_core::SharedObject;
/// # fn f<T: SharedObject<Init = u64>>() where T::Error: std::fmt::Debug {
/// let name = shm_core::testing::both_ways::<T>("my_test", "SHM_OBJECT", "value", || 1, |_| {});
/// assert!(T::open(&name).is_err());
/// # }
/// ```
pub fn both_ways<T: crate::SharedObject>(
    test: &str,
    var: &str,
    role: &str,
    make: impl Fn() -> T::Init,
    check: impl Fn(&T),
) -> String
where
    T::Error: std::fmt::Debug,
{
    let named = T::create(make()).expect("create named");
    run_shared(&named, test, role, var);
    check(&named);
    let anon = T::anonymous(make()).expect("create anonymous");
    assert_eq!(anon.name(), None);
    run_shared(&anon, test, role, var);
    check(&anon);
    let name = named.name().expect("a named object").to_owned();
    assert!(T::open(&name).is_ok());
    named.unlink().expect("unlink");
    name
}

/// The environment variable `var` a parent passed to this child; panics naming it when
/// it is missing.
///
/// ```
/// // SAFETY: no other thread of this doctest reads the environment.
/// unsafe { std::env::set_var("SHM_DOC_ENV", "x") };
/// assert_eq!(shm_core::testing::env("SHM_DOC_ENV"), "x");
/// ```
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} set by the parent"))
}

/// Prints a line on the real stdout for the parent (the harness captures `println!`
/// only in the parent's own tests) and flushes it.
///
/// ```
/// shm_core::testing::say("READY");
/// ```
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The deadline `timeout` from now; `None` (no deadline) when it does not fit.
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Reads `child`'s stdout (taken from it) until a line contains `want`, then keeps
/// draining it in the background so that the child never blocks on a full pipe.
/// Panics if the child ends first.
///
/// ```no_run
/// let mut kid = shm_core::testing::child_command("t", "role")
///     .stdout(std::process::Stdio::piped())
///     .spawn()?;
/// shm_core::testing::wait_line(&mut kid, "READY");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_line(child: &mut Child, want: &str) {
    let out = child.stdout.take().expect("the child's stdout is piped");
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        if line.expect("read the child's stdout").contains(want) {
            std::thread::spawn(move || for _ in lines {});
            return;
        }
    }
    panic!("child ended before saying {want}");
}

/// The next line `child` writes on its stderr (piped), without its line end: a child
/// announces `READY` there while the harness keeps its stdout.
///
/// ```no_run
/// let mut child = shm_core::testing::child_command("t", "role")
///     .stderr(std::process::Stdio::piped())
///     .spawn()?;
/// assert_eq!(shm_core::testing::stderr_line(&mut child), "READY");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stderr_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().expect("the child's stderr is piped"))
        .read_line(&mut line)
        .expect("read the child's stderr");
    line.trim().to_owned()
}

/// A child process re-running this test binary in a role (see [`child_command`]),
/// SIGKILLed and reaped on drop if still running, whose stdout lines the parent can
/// wait for ([`Kid::wait_line`]).
///
/// ```no_run
/// use std::time::Duration;
/// let kid = shm_core::testing::Kid::spawn("my_test", "holder", &[("SHM_NAME", "x")]);
/// kid.wait_line("LOCKED", Duration::from_secs(20));
/// kid.join_ok(Duration::from_secs(20));
/// ```
#[derive(Debug)]
pub struct Kid {
    /// The child process.
    pub child: Child,
    lines: Receiver<String>,
}

impl Kid {
    /// Spawns this test binary running only `test`, in `role`, with `envs`.
    pub fn spawn(test: &str, role: &str, envs: &[(&str, &str)]) -> Kid {
        let mut cmd = child_command(test, role);
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

    /// Waits for a line starting with `prefix` (skipping others) and returns it;
    /// panics after `timeout` or if the child exits first.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = deadline(timeout);
        loop {
            let line = match deadline {
                Some(d) => self
                    .lines
                    .recv_timeout(d.saturating_duration_since(Instant::now())),
                None => self
                    .lines
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match line {
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
    /// event, barrier...): see [`wait_until_blocked`].
    pub fn wait_blocked(&self) {
        wait_until_blocked(Task::Process(self.child.id()), BlockedIn::SharedFutex);
    }

    /// SIGKILL, without reaping.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits (bounded) for the child to exit and asserts it succeeded.
    pub fn join_ok(mut self, timeout: Duration) {
        let deadline = deadline(timeout);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "child failed: {status}");
                return;
            }
            assert!(
                deadline.is_none_or(|d| Instant::now() < d),
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

/// A small xorshift generator (tests need no crypto, nor a crate for this).
///
/// ```
/// let mut r = shm_core::testing::Rng::seeded(7);
/// assert!(r.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock and the process id (different in every run).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A generator from `seed` (a zero seed is made non-zero: xorshift stays at 0).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Sends SIGKILL to process `pid` (a child the test spawned), ignoring errors (it may
/// have exited already).
///
/// ```
/// let mut c = std::process::Command::new("sleep").arg("10").spawn()?;
/// shm_core::testing::sigkill(c.id());
/// assert!(!c.wait()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sigkill(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// 32 random bits from the OS (`getrandom`): unique names and seeds.
///
/// ```
/// let _ = shm_core::testing::random_u32();
/// ```
pub fn random_u32() -> u32 {
    crate::sys::random_u64().expect("getrandom") as u32
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

/// Recovery times of a crash-trial test, summed up as the line `cargo xtask chaos`
/// collects into its tally: `chaos tally: <what>: ...` with p50, p99, max and how many
/// trials missed `target`.
///
/// Tests assert only a wide bound (seconds: machines running tests are busy); the exact
/// figure against the design's target is this line's.
///
/// ```
/// use std::time::Duration;
/// let mut t = shm_core::testing::Tally::new("barrier break", Duration::from_millis(100));
/// t.record(Duration::from_millis(3));
/// t.record(Duration::from_millis(120));
/// let line = t.line();
/// assert!(line.starts_with("chaos tally: barrier break: 2 trials"), "{line}");
/// assert!(line.ends_with("1 over"), "{line}");
/// assert_eq!(t.max(), Duration::from_millis(120));
/// ```
#[derive(Debug, Clone)]
pub struct Tally {
    what: String,
    target: std::time::Duration,
    times: Vec<std::time::Duration>,
}

impl Tally {
    /// The prefix of [`Tally::line`], which `cargo xtask chaos` looks for.
    pub const PREFIX: &'static str = "chaos tally: ";

    /// An empty tally of `what`, against the design's `target`.
    ///
    /// ```
    /// let t = shm_core::testing::Tally::new("x", std::time::Duration::from_millis(1));
    /// assert_eq!(t.max(), std::time::Duration::ZERO);
    /// ```
    pub fn new(what: &str, target: std::time::Duration) -> Self {
        Self {
            what: what.to_owned(),
            target,
            times: Vec::new(),
        }
    }

    /// Records one trial's time.
    ///
    /// ```
    /// let mut t = shm_core::testing::Tally::new("x", std::time::Duration::from_millis(1));
    /// t.record(std::time::Duration::from_millis(2));
    /// assert_eq!(t.max(), std::time::Duration::from_millis(2));
    /// ```
    pub fn record(&mut self, took: std::time::Duration) {
        self.times.push(took);
    }

    /// The longest recorded time (zero when none).
    ///
    /// ```
    /// let t = shm_core::testing::Tally::new("x", std::time::Duration::from_millis(1));
    /// assert!(t.max().is_zero());
    /// ```
    pub fn max(&self) -> std::time::Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }

    /// `chaos tally: <what>: <n> trials, p50 <d>, p99 <d>, max <d>; target <d>: <k> over`.
    ///
    /// ```
    /// let t = shm_core::testing::Tally::new("x", std::time::Duration::from_millis(1));
    /// assert!(t.line().contains("0 trials"));
    /// ```
    pub fn line(&self) -> String {
        let mut v = self.times.clone();
        v.sort();
        // Nearest rank: the smallest time at or above a fraction `q` of the trials.
        let pct = |q: f64| {
            let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1));
            v.get(rank - 1).copied().unwrap_or_default()
        };
        let over = v.iter().filter(|&&t| t > self.target).count();
        format!(
            "{}{}: {} trials, p50 {:?}, p99 {:?}, max {:?}; target {:?}: {over} over",
            Self::PREFIX,
            self.what,
            v.len(),
            pct(0.5),
            pct(0.99),
            self.max(),
            self.target
        )
    }
}

/// The calling thread's kernel thread id, for [`Task::Thread`]: a thread about to block
/// hands it to the thread that waits for it to be asleep.
///
/// ```
/// let tid = shm_core::testing::current_tid();
/// assert!(std::path::Path::new(&format!("/proc/self/task/{tid}")).exists());
/// ```
pub fn current_tid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Whose threads [`wait_until_blocked`] watches.
///
/// ```
/// use shm_core::testing::{Task, current_tid};
/// let me = Task::Thread(current_tid());
/// let child = Task::Process(std::process::id()); // in a test: `child.id()`
/// assert_ne!(me, child);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// One thread, by its [`current_tid`]: of this process, or of another one (its parent,
    /// say) when that process's threads may be read (`/proc/<tid>`, same user).
    Thread(u32),
    /// Any thread of another process (a child running a role): only its test thread
    /// sleeps where [`BlockedIn`] looks.
    Process(u32),
}

/// Where a blocked thread sleeps, for [`wait_until_blocked`].
///
/// ```
/// use shm_core::testing::BlockedIn;
/// assert_ne!(BlockedIn::SharedFutex, BlockedIn::Sleep);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedIn {
    /// A shared (not `FUTEX_PRIVATE_FLAG`) `FUTEX_WAIT` or `FUTEX_WAIT_BITSET`: where the
    /// workspace's locks, conditions, events, barriers, queues and pipes sleep. std's
    /// locks and channels (and glibc's) wait on private futexes, so they never count.
    SharedFutex,
    /// `nanosleep` or `clock_nanosleep`: the polling waits (opening an object that is
    /// still being initialised, connecting to a manager that is not there yet).
    Sleep,
}

/// How long [`wait_until_blocked`] waits for a peer to fall asleep before it fails the
/// test: generous, for busy machines.
pub const BLOCKED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits until `task` is asleep in `what` (read from `/proc/<pid>/task/<tid>/stat` and
/// `.../syscall`), at most [`BLOCKED_PATIENCE`], and panics if it never is or if the task
/// exits first.
///
/// Tests call this instead of sleeping "to let the other side block first": on a busy
/// machine a sleep may end before the peer has blocked, and the test then passes without
/// exercising the sleeping path it is about. A thread that waits in slices (to check a
/// holder's liveness) is seen during one of its slices.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use shm_core::testing::{BlockedIn, Task, current_tid, wait_until_blocked};
/// let stop = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     let (tx, rx) = std::sync::mpsc::channel();
///     let stop = &stop;
///     s.spawn(move || {
///         tx.send(current_tid()).unwrap();
///         while !stop.load(Ordering::Relaxed) {
///             std::thread::sleep(std::time::Duration::from_millis(1));
///         }
///     });
///     wait_until_blocked(Task::Thread(rx.recv().unwrap()), BlockedIn::Sleep);
///     stop.store(true, Ordering::Relaxed);
/// });
/// ```
pub fn wait_until_blocked(task: Task, what: BlockedIn) {
    let start = std::time::Instant::now();
    let mut seen = String::new();
    loop {
        match blocked_now(task, what) {
            Ok(true) => return,
            Ok(false) => {}
            Err(why) => panic!("{task:?} did not block in {what:?}: {why}"),
        }
        if start.elapsed() >= BLOCKED_PATIENCE {
            // One last look at what it does instead, for the message.
            for dir in task_dirs(task).unwrap_or_default() {
                let syscall = std::fs::read_to_string(format!("{dir}/syscall")).unwrap_or_default();
                seen.push_str(&format!("\n  {dir}: {}", syscall.trim()));
            }
            panic!("{task:?} not asleep in {what:?} within {BLOCKED_PATIENCE:?}; syscalls:{seen}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The `/proc` directories of the threads `task` names.
fn task_dirs(task: Task) -> Result<Vec<String>, String> {
    match task {
        // /proc/<tid> exists for every thread, though only leaders are listed.
        Task::Thread(tid) => Ok(vec![format!("/proc/{tid}")]),
        Task::Process(pid) => {
            let dir = format!("/proc/{pid}/task");
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
            Ok(entries
                .flatten()
                .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                .collect())
        }
    }
}

/// Whether some thread of `task` sleeps in `what` right now.
fn blocked_now(task: Task, what: BlockedIn) -> Result<bool, String> {
    if let Task::Process(pid) = task {
        // A zombie has no threads to look at: it exited before blocking.
        if state(&format!("/proc/{pid}"))? == 'Z' {
            return Err(format!("process {pid} exited"));
        }
    }
    for dir in task_dirs(task)? {
        let first = match std::fs::read_to_string(format!("{dir}/syscall")) {
            Ok(line) => line,
            // A thread of a process that just exited: the others may still block.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && matches!(task, Task::Process(_)) =>
            {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("{dir} exited"));
            }
            Err(e) => return Err(format!("{dir}/syscall: {e}")),
        };
        if !sleeps_in(&first, what) {
            continue;
        }
        // Asleep (not merely preempted inside the call) and still in the same call.
        let asleep = state(&dir).is_ok_and(|s| s == 'S');
        if asleep && std::fs::read_to_string(format!("{dir}/syscall")).is_ok_and(|s| s == first) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The state letter of `/proc/.../stat` in `dir` (after the command's closing paren).
fn state(dir: &str) -> Result<char, String> {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).map_err(|e| format!("{dir}: {e}"))?;
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .and_then(|s| s.chars().next())
        .ok_or_else(|| format!("{dir}/stat unreadable: {stat:?}"))
}

/// Syscall numbers: (futex, [nanosleep, clock_nanosleep]).
#[cfg(target_arch = "x86_64")]
const SYSCALLS: Option<(u64, [u64; 2])> = Some((202, [35, 230]));
#[cfg(target_arch = "aarch64")]
const SYSCALLS: Option<(u64, [u64; 2])> = Some((98, [101, 115]));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALLS: Option<(u64, [u64; 2])> = None;

/// Whether a `/proc/.../syscall` line (`nr arg1 arg2 ...`, or `running`, or `-1 ...` when
/// blocked outside a syscall) shows a sleep in `what`.
fn sleeps_in(line: &str, what: BlockedIn) -> bool {
    let mut fields = line.split_whitespace();
    // The number is decimal; "running" and "-1" (blocked outside a syscall) fail here.
    let Some(Ok(nr)) = fields.next().map(str::parse::<u64>) else {
        return false;
    };
    let Some((futex, sleeps)) = SYSCALLS else {
        return true; // unknown numbers here: a sleeping syscall is the best we can tell
    };
    match what {
        BlockedIn::SharedFutex => {
            // Arguments are hex: `0x<uaddr> 0x<op> ...`.
            let op = fields
                .nth(1)
                .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
            const PRIVATE: u64 = 128;
            const WAIT: u64 = 0;
            const WAIT_BITSET: u64 = 9;
            nr == futex
                && op.is_some_and(|op| op & PRIVATE == 0 && matches!(op & 127, WAIT | WAIT_BITSET))
        }
        BlockedIn::Sleep => sleeps.contains(&nr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines_are_read_as_the_kernel_writes_them() {
        let shared = "202 0x7f0000001000 0x0 0x5 0x7ffd0 0x0 0x0 0x7ffd8 0x7f12";
        let private = "202 0x7f0000001000 0x80 0x5 0x0 0x0 0x0 0x7ffd8 0x7f12";
        let bitset_private = "202 0x7f0000001000 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd8 0x7f1";
        let wake = "202 0x7f0000001000 0x1 0x7fffffff 0x0 0x0 0x0 0x7ffd8 0x7f12";
        if cfg!(target_arch = "x86_64") {
            assert!(sleeps_in(shared, BlockedIn::SharedFutex));
            assert!(!sleeps_in(private, BlockedIn::SharedFutex));
            assert!(!sleeps_in(bitset_private, BlockedIn::SharedFutex));
            assert!(!sleeps_in(wake, BlockedIn::SharedFutex));
            assert!(!sleeps_in(shared, BlockedIn::Sleep));
            assert!(sleeps_in(
                "230 0x1 0x0 0x7ffd 0x7ffd 0x0 0x0 0x7ff 0x7f",
                BlockedIn::Sleep
            ));
        }
        assert!(!sleeps_in("running", BlockedIn::SharedFutex));
        assert!(!sleeps_in("-1 0x7ffd 0x7f12", BlockedIn::Sleep));
    }

    #[test]
    #[should_panic(expected = "exited")]
    fn a_thread_that_exits_instead_of_blocking_fails_the_wait() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(current_tid()).unwrap())
            .join()
            .unwrap();
        wait_until_blocked(Task::Thread(rx.recv().unwrap()), BlockedIn::SharedFutex);
    }

    #[test]
    fn a_shared_futex_sleeper_is_seen_and_a_private_one_is_not() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let word = AtomicU32::new(0);
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let word = &word;
            s.spawn(move || {
                tx.send(current_tid()).unwrap();
                while word.load(Ordering::Acquire) == 0 {
                    let _ = rustix::thread::futex::wait(
                        word,
                        rustix::thread::futex::Flags::empty(),
                        0,
                        None,
                    );
                }
            });
            let tid = rx.recv().unwrap();
            wait_until_blocked(Task::Thread(tid), BlockedIn::SharedFutex);
            assert_eq!(blocked_now(Task::Thread(tid), BlockedIn::Sleep), Ok(false));
            word.store(1, Ordering::Release);
            let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
        });
        // This thread waits on a private futex (std's channel) while a helper looks.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                tid_tx.send(current_tid()).unwrap();
                let _ = rx.recv();
            });
            let tid = tid_rx.recv().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(
                blocked_now(Task::Thread(tid), BlockedIn::SharedFutex),
                Ok(false)
            );
            drop(tx);
        });
    }
}
