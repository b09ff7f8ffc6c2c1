//! [`Process`], [`Builder`], and the child's side: [`init`] and [`entry`].

use std::any::Any;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::shared::{INCOMING_FDS, OUTGOING_FDS, close_inherited};

/// Names the function a child is started for (its `type_name`).
const ROLE_VAR: &str = "SHM_PROCESS_ROLE";
/// The bincode-encoded arguments, in hex (small arguments).
const ARGS_VAR: &str = "SHM_PROCESS_ARGS";
/// Set when the encoded arguments (large ones: an environment string is limited to
/// 128 KiB) are in an anonymous segment, the first descriptor the parent sends.
const ARGS_FD_VAR: &str = "SHM_PROCESS_ARGS_FD";
/// Encoded arguments up to this many bytes travel in the environment.
const ARGS_IN_ENV: usize = 16 * 1024;
/// The descriptor (standard input, "0") that is a socket to the parent: the child
/// receives the descriptors of its arguments on it and reports a panic or a dispatch
/// failure on it.
///
/// Descriptors travel over the socket (`SCM_RIGHTS`) rather than by inheritance: a
/// `Command` that must clear close-on-exec needs a `pre_exec` hook, which forces std off
/// its `posix_spawn` path onto fork+exec, a quarter slower for a large parent.
const RESULT_FD_VAR: &str = "SHM_PROCESS_RESULT_FD";
/// The parent's numbers of the descriptors it sends (anonymous objects among the
/// arguments), comma-separated, in the order they are sent: handles name them so.
const FDS_VAR: &str = "SHM_PROCESS_FDS";
/// Descriptors sent in one message (the kernel's limit, `SCM_MAX_FD`, is 253).
const FDS_PER_MESSAGE: usize = 250;
/// The parent's pid, set for a daemon child.
const DAEMON_PARENT_VAR: &str = "SHM_PROCESS_DAEMON_PARENT";

/// Exit code of a child whose function panicked (Python's uncaught exception).
const PANIC_EXIT: i32 = 1;
/// Exit code of a child that could not start its function.
const DISPATCH_EXIT: i32 = 2;
/// Longest report a child writes: fits a pipe buffer, so the write never blocks.
const MAX_REPORT: usize = 4000;

/// Set once [`init`] ran in this process (and returned: not a child, or done).
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Decodes the arguments, runs the function and encodes its result; `Err` names what
/// did not decode or encode.
type Runner = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync;

/// In a child: the functions its `main!` registered (pool workers find tasks here).
static REGISTRY: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();

/// The registered function named `name`, or a message naming what is registered.
pub(crate) fn registered(name: &str) -> std::result::Result<&'static Entry, String> {
    let entries = REGISTRY.get().map(Vec::as_slice).unwrap_or_default();
    entries.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<_> = entries.iter().map(|e| e.name).collect();
        format!(
            "expected {name} among the functions registered with shm_process::main!, \
             found only {known:?}"
        )
    })
}

/// A function a child may run, found by name: made by [`entry`], listed in
/// [`main!`](crate::main).
///
/// ```
/// fn work(_: ()) {}
/// let e = shm_process::entry(work);
/// assert!(e.name().ends_with("::work"));
/// ```
pub struct Entry {
    name: &'static str,
    pub(crate) run: Box<Runner>,
}

impl Entry {
    /// The function's name (its `type_name`), which the parent sends.
    ///
    /// ```
    /// fn job(_: u8) {}
    /// assert!(shm_process::entry(job).name().contains("job"));
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish()
    }
}

/// Makes the [`Entry`] of a function (a `fn` item taking one argument: use a tuple for
/// several; its result is what a [`Pool`](crate::Pool) returns). Usually written
/// through [`main!`](crate::main).
///
/// ```
/// fn work(args: (u32, String)) { let _ = args; }
/// let e = shm_process::entry(work);
/// assert_eq!(e.name(), std::any::type_name_of_val(&work));
/// ```
pub fn entry<A, R, F>(f: F) -> Entry
where
    A: DeserializeOwned,
    R: Serialize,
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
{
    Entry {
        name: std::any::type_name::<F>(),
        run: Box::new(move |bytes| {
            let (args, _) =
                bincode::serde::decode_from_slice::<A, _>(bytes, bincode::config::standard())
                    .map_err(|e| format!("cannot decode the arguments: {e}"))?;
            let r = f(args);
            bincode::serde::encode_to_vec(&r, bincode::config::standard())
                .map_err(|e| format!("cannot encode the result: {e}"))
        }),
    }
}

/// The child's dispatch, which [`main!`](crate::main) calls with the registered
/// functions: in a process started by [`Process::spawn`], runs the requested function
/// and exits (code 0, 1 after a panic, 2 if it cannot start it); otherwise returns.
///
/// ```
/// fn work(_: ()) {}
/// shm_process::init(vec![shm_process::entry(work)]); // not a child: returns
/// ```
pub fn init(mut entries: Vec<Entry>) {
    let role = match std::env::var_os(ROLE_VAR) {
        Some(role) if started_by_spawn() => role,
        // Not a child; or a process that merely inherited a child's environment (one
        // the child started some other way): it runs its own `main`.
        _ => {
            INIT_CALLED.store(true, Ordering::Relaxed);
            return;
        }
    };
    if let Some(parent) = std::env::var_os(DAEMON_PARENT_VAR) {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no memory is passed.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        // The parent may have died before the line above: then our parent is another.
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        if parent.to_str().and_then(|p| p.parse::<i32>().ok()) != Some(ppid) {
            std::process::exit(DISPATCH_EXIT);
        }
    }
    let report = take_report_socket();
    let role = role.to_string_lossy().into_owned();
    let fail = |report: Option<OwnedFd>, message: String| -> ! {
        write_report(report, b'D', &message);
        std::process::exit(DISPATCH_EXIT)
    };
    let parent_fds: Vec<i32> = std::env::var(FDS_VAR)
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let args_in_fd = std::env::var_os(ARGS_FD_VAR).is_some();
    let wanted = parent_fds.len() + usize::from(args_in_fd);
    let received = match (&report, wanted) {
        (_, 0) => Ok(Vec::new()),
        (Some(socket), n) => receive_fds(socket, n),
        (None, n) => Err(format!(
            "expected {n} descriptors from the parent, found no socket to receive them on"
        )),
    };
    let mut received = match received {
        Ok(r) => r,
        Err(message) => fail(report, message),
    };
    let args_segment = args_in_fd.then(|| received.remove(0));
    let fds: Vec<(i32, i32)> = parent_fds
        .into_iter()
        .zip(received.into_iter().map(IntoRawFd::into_raw_fd))
        .collect();
    let _ = INCOMING_FDS.set(fds.clone());
    entries.push(entry(crate::pool::worker));
    let _ = REGISTRY.set(entries);
    let entry = match registered(&role) {
        Ok(e) => e,
        Err(message) => fail(report, message),
    };
    let args = match read_args(args_segment) {
        Ok(a) => a,
        Err(message) => fail(report, message),
    };
    INIT_CALLED.store(true, Ordering::Relaxed);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (entry.run)(&args)));
    for (_, fd) in fds {
        close_inherited(fd);
    }
    match result {
        Ok(Ok(_)) => std::process::exit(0),
        Ok(Err(message)) => fail(report, message),
        Err(payload) => {
            write_report(report, b'P', &panic_message(&*payload));
            std::process::exit(PANIC_EXIT)
        }
    }
}

/// The encoded arguments: in the environment, or in the anonymous segment the parent
/// sent (its length first, 8 bytes).
fn read_args(segment: Option<OwnedFd>) -> std::result::Result<Vec<u8>, String> {
    if let Some(hex) = std::env::var_os(ARGS_VAR) {
        return hex
            .to_str()
            .and_then(from_hex)
            .ok_or_else(|| format!("expected hex arguments in ${ARGS_VAR}"));
    }
    let fd = segment.ok_or_else(|| {
        format!("expected the arguments in ${ARGS_VAR} or in a segment, found neither")
    })?;
    let seg = shm_core::Segment::from_fd(fd).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    seg.read_at(0, &mut len).map_err(|e| e.to_string())?;
    let len = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .filter(|l| l.checked_add(8).is_some_and(|end| end <= seg.len()))
        .ok_or_else(|| {
            format!(
                "expected an argument length that fits the {}-byte argument segment",
                seg.len()
            )
        })?;
    let mut bytes = vec![0u8; len];
    seg.read_at(8, &mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Whether this process is one [`Builder::spawn`] started: its standard input is the
/// socket named in its environment. A dispatching child moves that socket off standard
/// input (to a close-on-exec number), so a process the child starts otherwise inherits
/// the variables but not the socket.
fn started_by_spawn() -> bool {
    let Some(raw) = std::env::var(RESULT_FD_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|fd| *fd >= 0)
    else {
        return false;
    };
    // SAFETY: fstat writes into a zeroed stat buffer we own; an unopened descriptor is
    // EBADF.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(raw, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

/// The socket to the parent, moved off standard input to a close-on-exec number so
/// that grandchildren do not hold it; standard input becomes `/dev/null`, as in
/// Python's children.
fn take_report_socket() -> Option<OwnedFd> {
    let raw: i32 = std::env::var(RESULT_FD_VAR).ok()?.parse().ok()?;
    // SAFETY: F_DUPFD_CLOEXEC only duplicates `raw` (standard input, checked to be a
    // socket by `started_by_spawn`) to a new number that nothing else owns; an
    // unopened number is EBADF.
    let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return None;
    }
    // SAFETY: `dup` was just made by this process and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: open and dup2 take a NUL-terminated path and descriptor numbers; dup2
    // replaces `raw` (our copy of the socket, not owned by any Rust value) atomically.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, raw);
            libc::close(null);
        }
    }
    Some(socket)
}

/// Receives `n` descriptors the parent sends on `socket` (close-on-exec, so processes
/// the function starts do not inherit them).
fn receive_fds(socket: &OwnedFd, n: usize) -> std::result::Result<Vec<OwnedFd>, String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    let mut fds = Vec::with_capacity(n);
    while fds.len() < n {
        let want = (n - fds.len()).min(FDS_PER_MESSAGE);
        let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(want))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let msg = loop {
            match rustix::net::recvmsg(
                socket,
                &mut [std::io::IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        }
        .map_err(|e| format!("cannot receive the argument descriptors from the parent: {e}"))?;
        if msg.bytes == 0 {
            return Err(format!(
                "expected {n} descriptors from the parent, found the end of its socket after {}",
                fds.len()
            ));
        }
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() > n {
            return Err(format!(
                "expected {n} descriptors from the parent, found more than it announced"
            ));
        }
    }
    Ok(fds)
}

/// Sends `fds` on `socket`, at most [`FDS_PER_MESSAGE`] a message, one byte each.
fn send_fds(socket: &OwnedFd, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    for chunk in fds.chunks(FDS_PER_MESSAGE) {
        let mut space =
            vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(chunk.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(chunk)) {
            return Err(std::io::Error::other(
                "expected room for the descriptors in the control buffer",
            ));
        }
        loop {
            match rustix::net::sendmsg(
                socket,
                &[std::io::IoSlice::new(&[0])],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn write_report(fd: Option<OwnedFd>, tag: u8, message: &str) {
    let Some(fd) = fd else { return };
    let mut bytes = vec![tag];
    let mut end = message.len().min(MAX_REPORT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    bytes.extend_from_slice(&message.as_bytes()[..end]);
    let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), &bytes);
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_owned()
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

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
