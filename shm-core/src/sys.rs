//! The operating-system calls behind segments (shm_open, memfd, fstat, ftruncate,
//! fallocate, statvfs, getrandom, fcntl on descriptors handed on), through rustix.
//! Linux only for now: a port to another OS replaces this module (the mapping itself
//! is memmap2's, and the process identities of `identity` make their own calls).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FallocateFlags, Mode};
use rustix::io::Errno;
use rustix::shm::OFlags;

/// Where POSIX shared-memory names live on Linux (for free-space reports).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Flags added to every `shm_open`, as glibc adds `O_NOFOLLOW`: a symlink planted under
/// a segment's name is never followed (ELOOP), a FIFO never blocks the open, a terminal
/// never becomes the controlling one. The caller then `fstat`s and refuses anything
/// that is not a regular file before using it.
fn careful() -> OFlags {
    OFlags::from_bits_retain(
        (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY)
            .bits(),
    )
}

/// `shm_open(name, O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC|O_NOFOLLOW|O_NONBLOCK, 0600)`.
pub(crate) fn shm_create(name: &str) -> Result<OwnedFd, Errno> {
    retry_intr(|| {
        rustix::shm::open(
            slash(name).as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | careful(),
            Mode::RUSR | Mode::WUSR,
        )
    })
}

/// `shm_open(name, O_RDWR|O_CLOEXEC|O_NOFOLLOW|O_NONBLOCK)`.
pub(crate) fn shm_open(name: &str) -> Result<OwnedFd, Errno> {
    retry_intr(|| {
        rustix::shm::open(
            slash(name).as_str(),
            OFlags::RDWR | careful(),
            Mode::empty(),
        )
    })
}

/// What `fstat`/`lstat` say about a file, as far as segments care.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    /// `None` for a regular file, else what it is ("symlink", "FIFO", ...).
    pub(crate) not_regular: Option<&'static str>,
    pub(crate) uid: u32,
    pub(crate) size: u64,
    /// Device and inode: which file a name refers to.
    pub(crate) id: (u64, u64),
}

impl FileInfo {
    // `st_dev`/`st_ino` are `u64` here but `c_ulong` in other targets' `Stat`.
    #[allow(clippy::useless_conversion)]
    fn from_stat(st: &rustix::fs::Stat) -> Self {
        use rustix::fs::FileType;
        let not_regular = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => None,
            FileType::Directory => Some("directory"),
            FileType::Symlink => Some("symlink"),
            FileType::Fifo => Some("FIFO"),
            FileType::Socket => Some("socket"),
            FileType::CharacterDevice => Some("character device"),
            FileType::BlockDevice => Some("block device"),
            FileType::Unknown => Some("file of unknown type"),
        };
        Self {
            not_regular,
            uid: st.st_uid,
            size: st.st_size as u64,
            id: (u64::from(st.st_dev), u64::from(st.st_ino)),
        }
    }
}

/// `fstat` of an open file.
pub(crate) fn info(fd: impl AsFd) -> Result<FileInfo, Errno> {
    Ok(FileInfo::from_stat(&rustix::fs::fstat(fd)?))
}

/// `lstat` of a segment's name: what the name itself is, never following a symlink.
pub(crate) fn info_by_name(name: &str) -> Result<FileInfo, Errno> {
    let path = format!("{SHM_DIR}/{name}");
    let st = rustix::fs::statat(
        rustix::fs::CWD,
        path.as_str(),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(FileInfo::from_stat(&st))
}

/// The effective user id, which owns the segments this process creates.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
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
