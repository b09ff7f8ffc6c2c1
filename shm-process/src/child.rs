//! The child's side of [`Process::spawn`](crate::Process::spawn): [`init`] receives the
//! descriptors and arguments, finds the requested function and runs it.

use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use crate::pool::worker::worker;
use crate::protocol::{
    ARGS_FD_VAR, ARGS_VAR, DAEMON_PARENT_VAR, DISPATCH_EXIT, FDS_VAR, PANIC_EXIT, ROLE_VAR,
    from_hex, receive_fds, started_by_spawn, take_report_socket, write_report,
};
use crate::registry::{Entry, INIT_CALLED, REGISTRY, entry, panic_message, registered};
use crate::shared::{INCOMING_FDS, close_inherited};

/// The child's dispatch, which [`main!`](crate::main) calls with the registered
/// functions: in a process started by [`Process::spawn`](crate::Process::spawn), runs the requested function
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
    entries.push(entry(worker));
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
