//! Every operating-system call of shm-core, through rustix. Linux only for now: a port
//! to another OS replaces this module.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FallocateFlags, Mode};
use rustix::io::Errno;
use rustix::shm::OFlags;

/// Where POSIX shared-memory names live on Linux (for free-space reports).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// `shm_open(name, O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC, 0600)`.
pub(crate) fn shm_create(name: &str) -> Result<OwnedFd, Errno> {
    retry_intr(|| {
        rustix::shm::open(
            slash(name).as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
    })
}

/// `shm_open(name, O_RDWR|O_CLOEXEC)`.
pub(crate) fn shm_open(name: &str) -> Result<OwnedFd, Errno> {
    retry_intr(|| rustix::shm::open(slash(name).as_str(), OFlags::RDWR, Mode::empty()))
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &str) -> Result<(), Errno> {
    rustix::shm::unlink(slash(name).as_str())
}

/// An anonymous shared file (`memfd_create`), closed on exec unless handed on.
pub(crate) fn memfd(label: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::memfd_create(label, rustix::fs::MemfdFlags::CLOEXEC)
}

pub(crate) fn set_len(fd: impl AsFd, len: u64) -> Result<(), Errno> {
    retry_intr(|| rustix::fs::ftruncate(&fd, len))
}

/// Reserves the pages now so that a full file system fails here, not with SIGBUS on
/// first touch. `Ok(false)` when the file system cannot reserve.
pub(crate) fn reserve(fd: impl AsFd, len: u64) -> Result<bool, Errno> {
    match retry_intr(|| rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len)) {
        Ok(()) => Ok(true),
        Err(Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Size of an open file.
pub(crate) fn size(fd: impl AsFd) -> Result<u64, Errno> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// Number of names (links) an open file still has: 0 once its name was unlinked.
pub(crate) fn links(fd: impl AsFd) -> Result<u64, Errno> {
    Ok(rustix::fs::fstat(fd)?.st_nlink as u64)
}

/// 64 bits from the OS's random source (`getrandom`), retrying interrupted calls and
/// short reads.
pub(crate) fn random_u64() -> Result<u64, Errno> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// Bytes free to unprivileged users in `/dev/shm` (0 when unknown).
pub(crate) fn shm_free_bytes() -> u64 {
    rustix::fs::statvfs(SHM_DIR)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// A close-on-exec duplicate of an fd, for taking over an inherited descriptor.
pub(crate) fn dup_cloexec(fd: impl AsFd) -> Result<OwnedFd, Errno> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3)
}

/// Whether `fd` is a shared-memory file that supports seals (a memfd).
pub(crate) fn is_memfd(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok()
}

/// Clears `FD_CLOEXEC` so that the fd survives `exec`. Async-signal-safe: it is called
/// between `fork` and `exec`.
pub(crate) fn clear_cloexec(fd: impl AsFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(io::Error::from)
}

pub(crate) fn into_file(fd: OwnedFd) -> File {
    File::from(fd)
}

fn slash(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 1);
    s.push('/');
    s.push_str(name);
    s
}

fn retry_intr<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}
