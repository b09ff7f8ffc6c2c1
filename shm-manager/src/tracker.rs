//! The crash-cleanup tracker: a process forked (twice) when an owning manager is
//! created, which removes the manager's segments once the owner is gone.
//!
//! The owner keeps the only write end of a pipe (`O_CLOEXEC`, so programs it executes
//! do not inherit it); the tracker blocks in `read` on the read end. The kernel closes
//! the write end when the owner exits for any reason, `kill -9` included, or when the
//! manager drops it; `read` then returns 0 and the tracker unlinks every /dev/shm entry
//! named `shm-rs.m.NAME.*`, then the root `shm-rs.m.NAME`, then `shm-rs.m.NAME.*` once
//! more (see `sweep`), and exits.
//!
//! Between `fork` and `_exit` the child may only make async-signal-safe calls (the
//! owner may be multi-threaded and another thread may hold the allocator's lock), so
//! everything the tracker needs is prepared before the fork: the /dev/shm directory
//! descriptor, the root name's bytes and a `getdents64` buffer. The child then calls
//! only raw syscalls: `setsid`, `fork`, `close_range` (or `close` in a loop),
//! `signal`/`sigprocmask` (default dispositions, nothing blocked), `open`/`read` of
//! `/proc/self/maps` and `munmap` of every shared mapping (so the tracker does not keep
//! the owner's segments' memory alive after the owner unmaps them), then `read` on the
//! pipe, `lseek`, `getdents64`, `unlinkat`, `nanosleep` and `_exit`.
//!
//! Cost: the tracker shares the owner's private pages as they were at the fork
//! (copy-on-write); pages the owner rewrites afterwards are duplicated, and the
//! tracker keeps the originals. Create managers early, while the heap is small.

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
        // NUL-terminated, so that the root can be unlinked by name first.
        let prefix: Vec<u8> = root.bytes().chain([0]).collect();
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
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                // SIGCHLD ignored by the program: the kernel reaped it already.
                Some(libc::ECHILD) => {
                    status = 0;
                    break;
                }
                _ => return Err(os_err(err)),
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
        default_signals();
        // Mappings of shared segments would keep their memory alive as long as the
        // tracker lives, after the owner unmapped and unlinked them.
        unmap_shared(buf, len);
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

/// Default dispositions and an empty signal mask: the owner's handlers (code that may
/// allocate) must never run here.
///
/// # Safety
/// Only in the forked child.
unsafe fn default_signals() {
    // 1..=64: every signal number of Linux (_NSIG is 65).
    for sig in 1..65 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: sets a disposition; no memory is involved.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: `set` is a local sigset_t that sigemptyset initialises.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Unmaps every shared mapping the fork copied (lines of `/proc/self/maps` whose
/// permissions end in `s`), streaming the file through `buf`.
///
/// # Safety
/// Only in the forked child, which touches no shared mapping; `buf` points to `len`
/// writable bytes.
unsafe fn unmap_shared(buf: *mut u8, len: usize) {
    // SAFETY: a NUL-terminated path; open is async-signal-safe.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut have = 0;
    loop {
        // SAFETY: reads into the unfilled tail of `buf`.
        let n = unsafe { libc::read(fd, buf.add(have).cast(), len - have) };
        if n < 0 {
            // SAFETY: as in `wait_for_eof`.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        have += n as usize;
        // SAFETY: the first `have` bytes of `buf` are filled.
        let filled = unsafe { std::slice::from_raw_parts(buf, have) };
        let mut start = 0;
        while let Some(nl) = filled[start..].iter().position(|&b| b == b'\n') {
            if let Some((addr, size)) = shared_mapping(&filled[start..start + nl]) {
                // SAFETY: the range is a whole mapping the child never uses.
                unsafe { libc::munmap(addr as *mut libc::c_void, size) };
            }
            start += nl + 1;
        }
        // Keep the partial last line; a line longer than the buffer is dropped.
        have -= start;
        // SAFETY: moves `have` bytes inside `buf` (overlap allowed by `copy`).
        unsafe { std::ptr::copy(buf.add(start), buf, have) };
        if have == len {
            have = 0;
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
}

/// `(start, length)` of a `/proc/self/maps` line whose permissions end in `s`.
fn shared_mapping(line: &[u8]) -> Option<(usize, usize)> {
    fn hex(s: &[u8]) -> Option<usize> {
        if s.is_empty() || s.len() > 16 {
            return None;
        }
        s.iter().try_fold(0usize, |acc, &c| {
            let d = (c as char).to_digit(16)?;
            Some(acc << 4 | d as usize)
        })
    }
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = dash + 1 + line[dash + 1..].iter().position(|&b| b == b' ')?;
    let perms = line.get(space + 1..space + 5)?;
    if perms[3] != b's' {
        return None;
    }
    let (start, end) = (hex(&line[..dash])?, hex(&line[dash + 1..space])?);
    (end > start).then(|| (start, end - start))
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

/// Unlinks every entry of the directory `dir` named `prefix.*` but the registry's own
/// data segments `prefix.g*`, then `prefix` (the root), then every `prefix.*`. The root
/// goes last so that a tracker killed mid-sweep leaves the root, whose dead owner
/// makes `shm gc` remove the rest; its data segments go with it, so that the registry
/// stays readable while the root exists. An attacher that created something checks
/// afterwards that the root still exists (and removes what it made if not); what it
/// made before its check saw the root is found by the pass after the root's unlink.
///
/// # Safety
/// Only in the forked child; `buf` points to `len` writable bytes.
unsafe fn sweep(dir: RawFd, prefix_nul: &[u8], buf: *mut u8, len: usize) {
    let prefix = &prefix_nul[..prefix_nul.len() - 1];
    // SAFETY: forwarded contract.
    unsafe { sweep_children(dir, prefix, false, buf, len) };
    // SAFETY: `prefix_nul` ends with the NUL byte added before the fork.
    unsafe { libc::unlinkat(dir, prefix_nul.as_ptr().cast(), 0) };
    // SAFETY: forwarded contract.
    unsafe { sweep_children(dir, prefix, true, buf, len) };
}

/// Unlinks every entry of `dir` named `prefix.*` (never `prefix` itself; the root's
/// data segments `prefix.g*` only with `root_data`), scanning again until a pass
/// removes nothing (removing entries while reading a directory may make the kernel
/// skip some).
///
/// # Safety
/// Only in the forked child; `buf` points to `len` writable bytes.
unsafe fn sweep_children(dir: RawFd, prefix: &[u8], root_data: bool, buf: *mut u8, len: usize) {
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
                    if child_of(name, prefix) && (root_data || !root_data_of(name, prefix)) {
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

/// `name` starts with `prefix.` (a segment under the root, not the root); no
/// allocation.
fn child_of(name: &[u8], prefix: &[u8]) -> bool {
    name.len() > prefix.len() && name[..prefix.len()] == *prefix && name[prefix.len()] == b'.'
}

/// `name` is a data segment of the root's registry: `prefix.g<...>` (objects are
/// `.o<hex>`, arenas `.a<N>`); no allocation.
fn root_data_of(name: &[u8], prefix: &[u8]) -> bool {
    child_of(name, prefix) && name.get(prefix.len() + 1) == Some(&b'g')
}

#[cfg(test)]
mod tests {
    #[test]
    fn children_are_the_suffixed_names_only() {
        assert!(!super::child_of(b"shm-rs.m.a", b"shm-rs.m.a"));
        assert!(super::child_of(b"shm-rs.m.a.o1", b"shm-rs.m.a"));
        assert!(!super::child_of(b"shm-rs.m.ab", b"shm-rs.m.a"));
        assert!(!super::child_of(b"shm-rs.m.", b"shm-rs.m.a"));
        assert!(super::root_data_of(
            b"shm-rs.m.a.g1.0123456789abcdef",
            b"shm-rs.m.a"
        ));
        assert!(!super::root_data_of(
            b"shm-rs.m.a.o1.g1.0123456789abcdef",
            b"shm-rs.m.a"
        ));
        assert!(!super::root_data_of(b"shm-rs.m.a.a0", b"shm-rs.m.a"));
    }

    #[test]
    fn shared_mappings_are_recognised() {
        let line = b"7f00a000-7f00c000 rw-s 00000000 00:1a 42   /dev/shm/x";
        assert_eq!(super::shared_mapping(line), Some((0x7f00a000, 0x2000)));
        assert_eq!(
            super::shared_mapping(b"7f00a000-7f00c000 rw-p 0 0:0 0"),
            None
        );
        assert_eq!(super::shared_mapping(b"garbage"), None);
        assert_eq!(super::shared_mapping(b"10-5 rw-s"), None);
    }
}
