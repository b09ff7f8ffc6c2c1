//! The wire between a parent and the child it spawns: environment variables, exit
//! codes, the descriptors sent over the child's standard-input socket, and the reports
//! the child writes back on it.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// Names the function a child is started for (its `type_name`).
pub(crate) const ROLE_VAR: &str = "SHM_PROCESS_ROLE";
/// The bincode-encoded arguments, in hex (small arguments).
pub(crate) const ARGS_VAR: &str = "SHM_PROCESS_ARGS";
/// Set when the encoded arguments (large ones: an environment string is limited to
/// 128 KiB) are in an anonymous segment, the first descriptor the parent sends.
pub(crate) const ARGS_FD_VAR: &str = "SHM_PROCESS_ARGS_FD";
/// Encoded arguments up to this many bytes travel in the environment.
pub(crate) const ARGS_IN_ENV: usize = 16 * 1024;
/// The descriptor (standard input, "0") that is a socket to the parent: the child
/// receives the descriptors of its arguments on it and reports a panic or a dispatch
/// failure on it.
///
/// Descriptors travel over the socket (`SCM_RIGHTS`) rather than by inheritance: a
/// `Command` that must clear close-on-exec needs a `pre_exec` hook, which forces std off
/// its `posix_spawn` path onto fork+exec, a quarter slower for a large parent.
pub(crate) const RESULT_FD_VAR: &str = "SHM_PROCESS_RESULT_FD";
/// The parent's numbers of the descriptors it sends (anonymous objects among the
/// arguments), comma-separated, in the order they are sent: handles name them so.
pub(crate) const FDS_VAR: &str = "SHM_PROCESS_FDS";
/// Descriptors sent in one message (the kernel's limit, `SCM_MAX_FD`, is 253).
pub(crate) const FDS_PER_MESSAGE: usize = 250;
/// The parent's pid, set for a daemon child.
pub(crate) const DAEMON_PARENT_VAR: &str = "SHM_PROCESS_DAEMON_PARENT";

/// Exit code of a child whose function panicked (Python's uncaught exception).
pub(crate) const PANIC_EXIT: i32 = 1;
/// Exit code of a child that could not start its function.
pub(crate) const DISPATCH_EXIT: i32 = 2;
/// Longest report a child writes: fits a pipe buffer, so the write never blocks.
pub(crate) const MAX_REPORT: usize = 4000;

/// Whether this process is one [`Builder::spawn`] started: its standard input is the
/// socket named in its environment. A dispatching child moves that socket off standard
/// input (to a close-on-exec number), so a process the child starts otherwise inherits
/// the variables but not the socket.
pub(crate) fn started_by_spawn() -> bool {
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
pub(crate) fn take_report_socket() -> Option<OwnedFd> {
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
pub(crate) fn receive_fds(socket: &OwnedFd, n: usize) -> std::result::Result<Vec<OwnedFd>, String> {
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
pub(crate) fn send_fds(socket: &OwnedFd, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
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

/// Writes a report (`tag`, then `message`, cut to [`MAX_REPORT`]) to the parent.
pub(crate) fn write_report(fd: Option<OwnedFd>, tag: u8, message: &str) {
    let Some(fd) = fd else { return };
    let mut bytes = vec![tag];
    let mut end = message.len().min(MAX_REPORT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    bytes.extend_from_slice(&message.as_bytes()[..end]);
    let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), &bytes);
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
