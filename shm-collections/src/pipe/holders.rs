//! Kernel-held marks of the handles of a pipe's ends, so that an end counts as closed
//! once its last handle anywhere is gone, a `kill -9` included (Python's `EOFError`).
//!
//! Every [`PipeEnd`](super::PipeEnd) holds a [`Hold`]: an open file description of its
//! own on the pipe's memfd (reopened through `/proc/self/fd`) with a shared OFD lock on
//! byte `end`. The kernel drops the lock when the last descriptor of that description
//! closes: when the handle is dropped, or when its process dies. A handle handed to a
//! child ([`inherit`]) passes its description on, so the child's copy keeps the end
//! held. [`end_held`] asks the kernel whether any description still holds byte `end`,
//! from a descriptor that holds none there (the segment's own).
//!
//! The only `unsafe` of the pipe: `fcntl` with a `struct flock`, and taking over a
//! descriptor a parent handed down.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

use rustix::io::{FdFlags, fcntl_setfd};

/// An open file description of the pipe's memfd holding a shared lock on one end's byte.
#[derive(Debug)]
pub(crate) struct Hold {
    fd: OwnedFd,
}

/// `fcntl(fd, cmd, &flock)` on the one byte at offset `end`.
fn lock_op(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    ty: libc::c_int,
    end: usize,
) -> io::Result<libc::flock> {
    // SAFETY: `flock` is plain data, valid all zero (OFD commands need `l_pid == 0`).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = end as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `fd` is open for the borrow; `fl` is a valid `flock` that the kernel reads
    // (and writes back for F_OFD_GETLK) during the call only.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl)
}

impl Hold {
    /// A new description of the memfd behind `segment`, holding end `end`.
    pub(crate) fn take(segment: BorrowedFd<'_>, end: usize) -> io::Result<Hold> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", segment.as_raw_fd()))?;
        let fd = OwnedFd::from(file);
        lock_op(fd.as_fd(), libc::F_OFD_SETLK, libc::F_RDLCK, end)?;
        Ok(Hold { fd })
    }

    /// Takes over descriptor `raw` that a parent handed down with [`inherit`]: it must
    /// be a description of the same file as `segment`. Each number is taken over once
    /// per process (a second `from_env` of the same variable gets a fresh hold).
    pub(crate) fn adopt(raw: RawFd, segment: BorrowedFd<'_>, end: usize) -> io::Result<Hold> {
        static ADOPTED: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
        let mut adopted = ADOPTED.lock().unwrap_or_else(|p| p.into_inner());
        if raw < 0 || adopted.contains(&raw) {
            return Hold::take(segment, end);
        }
        // SAFETY: only borrowed for the `fstat` below; a number that is not open gives
        // EBADF, reported as an error.
        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
        let (st, seg) = (rustix::fs::fstat(borrowed)?, rustix::fs::fstat(segment)?);
        if (st.st_dev, st.st_ino) != (seg.st_dev, seg.st_ino) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("descriptor {raw} is not a descriptor of this pipe"),
            ));
        }
        // SAFETY: the descriptor is open (fstat above), names this pipe's memfd and was
        // handed to this process for this end; `ADOPTED` makes sure it is owned once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        adopted.push(raw);
        // Not inherited further: a grandchild gets its own hold through `share`.
        fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
        // Held already through the parent's description; taking it again is a no-op
        // that also covers a parent that never took it.
        lock_op(fd.as_fd(), libc::F_OFD_SETLK, libc::F_RDLCK, end)?;
        Ok(Hold { fd })
    }
}

/// Whether some open file description holds end `end` of the memfd behind `probe`
/// (which must hold no lock on that byte: the segment's own descriptor).
pub(crate) fn end_held(probe: BorrowedFd<'_>, end: usize) -> io::Result<bool> {
    let fl = lock_op(probe, libc::F_OFD_GETLK, libc::F_WRLCK, end)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Makes the child of `command` inherit `hold` (its descriptor loses close-on-exec in
/// the child only); this process keeps its copy until the command is dropped, so the
/// end stays held until the child has it. Returns the descriptor's number.
pub(crate) fn inherit(command: &mut Command, hold: Hold) -> RawFd {
    let raw = hold.fd.as_raw_fd();
    // SAFETY: the closure only calls fcntl(F_SETFD), which is async-signal-safe, and
    // touches no memory shared with the parent's other threads.
    unsafe {
        command.pre_exec(move || {
            fcntl_setfd(&hold.fd, FdFlags::empty())?;
            Ok(())
        })
    };
    raw
}
