//! The crash-cleanup tracker: a process forked (twice) when an owning manager is
//! created, which removes the manager's segments once the owner is gone.
//!
//! The owner keeps the only write end of a pipe (`O_CLOEXEC`, so programs it executes
//! do not inherit it); the tracker blocks in `read` on the read end. The kernel closes
//! the write end when the owner exits for any reason, `kill -9` included, or when the
//! manager drops it; `read` then returns 0 and the tracker unlinks every /dev/shm entry
//! named `shm-rs.m.NAME` or `shm-rs.m.NAME.*` and exits.
//!
//! Between `fork` and `_exit` the child may only make async-signal-safe calls (the
//! owner may be multi-threaded and another thread may hold the allocator's lock), so
//! everything the tracker needs is prepared before the fork: the /dev/shm directory
//! descriptor, the root name's bytes and a `getdents64` buffer. The child then calls
//! only raw syscalls: `setsid`, `fork`, `close_range` (or `close` in a loop),
//! `read`, `lseek`, `getdents64`, `unlinkat`, `nanosleep` and `_exit`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{ManagerError, Result};

/// Size of the `getdents64` buffer, allocated before the fork.
const DIRENT_BUF: usize = 16 * 1024;

/// The owner's side of a tracker: dropping it closes the pipe, which ends the tracker.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// The pipe's write end; nothing is ever written, closing it is the signal.
    _write: OwnedFd,
}

impl Tracker {
    /// Starts the tracker of the manager whose root segment is `root`.
    pub(crate) fn spawn(manager: &str, root: &str) -> Result<Tracker> {
        let os_err = |source: std::io::Error| ManagerError::Tracker {
            name: manager.to_owned(),
            source,
        };
        // Everything the child uses is made here, before the fork.
        let dir = rustix::fs::open(
            "/dev/shm",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| os_err(e.into()))?;
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(os_err(std::io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let prefix: Vec<u8> = root.as_bytes().to_vec();
        let mut buf = vec![0u8; DIRENT_BUF];

        // SAFETY: fork has no memory-safety preconditions; the child below only makes
        // async-signal-safe raw syscalls on memory prepared before the fork and leaves
        // with _exit (no destructor, no atexit handler, no return into Rust code that
        // could allocate or take a lock another thread held at the fork).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os_err(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: we are the freshly forked child; see the function's contract.
            unsafe {
                child(
                    read.as_raw_fd(),
                    dir.as_raw_fd(),
                    &prefix,
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            }
        }
        drop(read);
        drop(dir);
        // Reap the intermediate child (it exits right after forking the tracker) so no
        // zombie is left; the tracker itself is reparented to init or a subreaper.
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid int.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(os_err(err));
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(os_err(std::io::Error::other(format!(
                "the intermediate child ended with status {status:#x}, expected exit code 0"
            ))));
        }
        Ok(Tracker { _write: write })
    }
}

/// The forked side: detach, fork the tracker, and let the intermediate child exit.
///
/// # Safety
/// Called only in a child right after `fork`; `buf` points to `len` writable bytes.
unsafe fn child(read: RawFd, dir: RawFd, prefix: &[u8], buf: *mut u8, len: usize) -> ! {
    // SAFETY: raw async-signal-safe syscalls; _exit never returns.
    unsafe {
        // A session of its own: Ctrl-C, SIGHUP and `kill -- -PGID` aimed at the owner's
        // process group do not reach the tracker.
        libc::setsid();
        let pid = libc::fork();
        if pid != 0 {
            libc::_exit(if pid < 0 { 1 } else { 0 });
        }
        close_all_except(read, dir);
        wait_for_eof(read);
        sweep(dir, prefix, buf, len);
        // A writer of the dead manager that was growing a dict may create one more
        // segment right after the first sweep: look again a little later.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        libc::nanosleep(&pause, std::ptr::null_mut());
        sweep(dir, prefix, buf, len);
        libc::_exit(0)
    }
}

/// Closes every descriptor but `a` and `b`: `close_range`, or `close` in a loop on
/// kernels before 5.9.
///
/// # Safety
/// Only in the forked child (it closes descriptors other code may think it owns).
unsafe fn close_all_except(a: RawFd, b: RawFd) {
    let (lo, hi) = if a < b {
        (a as u32, b as u32)
    } else {
        (b as u32, a as u32)
    };
    let mut ranges = [(0u32, 0u32); 3];
    let mut n = 0;
    if lo > 0 {
        ranges[n] = (0, lo - 1);
        n += 1;
    }
    if hi > lo + 1 {
        ranges[n] = (lo + 1, hi - 1);
        n += 1;
    }
    ranges[n] = (hi + 1, u32::MAX);
    n += 1;
    for &(first, last) in &ranges[..n] {
        // SAFETY: close_range only closes descriptors; no memory is involved.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        if r != 0 {
            let last = last.min(65_535);
            let mut fd = first;
            while fd <= last {
                // SAFETY: as above; EBADF for descriptors that are not open is fine.
                unsafe { libc::close(fd as libc::c_int) };
                fd += 1;
            }
        }
    }
}

/// Blocks until the pipe's write end is closed everywhere (the owner is gone).
///
/// # Safety
/// Only in the forked child.
unsafe fn wait_for_eof(read: RawFd) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a local.
        let n = unsafe { libc::read(read, (&raw mut byte).cast(), 1) };
        if n == 0 {
            return;
        }
        // SAFETY: __errno_location is async-signal-safe and returns this thread's errno.
        if n < 0 && unsafe { *libc::__errno_location() } != libc::EINTR {
            return;
        }
    }
}

/// Unlinks every entry of the directory `dir` named `prefix` or `prefix.*`, scanning
/// again until a pass removes nothing (removing entries while reading a directory may
/// make the kernel skip some).
///
/// # Safety
/// Only in the forked child; `buf` points to `len` writable bytes.
unsafe fn sweep(dir: RawFd, prefix: &[u8], buf: *mut u8, len: usize) {
    for _ in 0..16 {
        let mut removed = 0;
        // SAFETY: raw syscalls on our descriptor and buffer.
        unsafe { libc::lseek(dir, 0, libc::SEEK_SET) };
        loop {
            // SAFETY: the kernel writes at most `len` bytes into `buf`.
            let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf, len) };
            if n <= 0 {
                break;
            }
            let n = n as usize;
            let mut pos = 0;
            // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, NUL-terminated name.
            while pos + 19 < n {
                // SAFETY: pos + 19 < n <= len: the two bytes at pos + 16 are in `buf`.
                let reclen = unsafe {
                    u16::from_ne_bytes([*buf.add(pos + 16), *buf.add(pos + 17)]) as usize
                };
                if reclen < 20 || pos + reclen > n {
                    break;
                }
                // SAFETY: the record [pos, pos + reclen) lies in the filled part of `buf`.
                let name = unsafe { std::slice::from_raw_parts(buf.add(pos + 19), reclen - 19) };
                let end = name.iter().position(|&c| c == 0);
                if let Some(end) = end {
                    let name = &name[..end];
                    if tracked(name, prefix) {
                        // SAFETY: `name` is NUL-terminated inside the buffer.
                        if unsafe { libc::unlinkat(dir, name.as_ptr().cast(), 0) } == 0 {
                            removed += 1;
                        }
                    }
                }
                pos += reclen;
            }
        }
        if removed == 0 {
            return;
        }
    }
}

/// `name == prefix` or `name` starts with `prefix.`; no allocation.
fn tracked(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len()
        && name[..prefix.len()] == *prefix
        && (name.len() == prefix.len() || name[prefix.len()] == b'.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn tracked_matches_root_and_suffixes_only() {
        assert!(super::tracked(b"shm-rs.m.a", b"shm-rs.m.a"));
        assert!(super::tracked(b"shm-rs.m.a.o1", b"shm-rs.m.a"));
        assert!(!super::tracked(b"shm-rs.m.ab", b"shm-rs.m.a"));
        assert!(!super::tracked(b"shm-rs.m.", b"shm-rs.m.a"));
    }
}
