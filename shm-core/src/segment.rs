//! [`Segment`]: a mapped shared-memory segment, named or anonymous.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::io::Errno;

use crate::copy;
use crate::error::{Error, Result};
use crate::name::{normalize_name, random_name};
use crate::sys;

/// Display name of anonymous segments in errors.
pub(crate) const ANONYMOUS: &str = "<anonymous>";

/// Tries before giving up on finding a free random name (each collision is a
/// 2^-64 event; several in a row mean something else is wrong).
const RANDOM_NAME_TRIES: usize = 16;

/// A shared-memory segment mapped read/write into this process.
///
/// Named segments (POSIX `shm_open`, the kind CPython's `SharedMemory` makes) can be
/// opened by name from any process of the same user. Anonymous segments (`memfd`) have
/// no name: a child inherits them (see [`CommandExt`](crate::CommandExt)), and they
/// vanish when the last process closes them, so they can never leak.
///
/// Another process may write the bytes at any time, so no safe method hands out
/// references into them: copy with [`read_at`](Self::read_at) and
/// [`write_at`](Self::write_at), or build on [`as_ptr`](Self::as_ptr) with atomics.
///
/// A named segment closes its file descriptor as soon as it is mapped (as CPython
/// does), so a process can hold many thousands of them under a small `ulimit -n`; an
/// anonymous one keeps its descriptor, which is how it is handed on.
///
/// Dropping a `Segment` unmaps it (and closes an anonymous one's descriptor). It
/// unlinks the name only when the segment was created with
/// [`SegmentOptions::unlink_on_drop`] left on (the default of [`Segment::create`]) and
/// the name still refers to this segment.
///
/// ```
/// use shm_core::Segment;
/// let seg = Segment::create(4096)?;               // random psm_ name, unlinked on drop
/// seg.write_at(0, b"hello")?;
/// let other = Segment::open(seg.name().unwrap())?; // as another process would
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// assert_eq!(other.len(), 4096);
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    /// Kept for anonymous segments only; named ones close theirs once mapped.
    fd: Option<OwnedFd>,
    name: Option<String>,
    /// (device, inode) of a named segment: tells on drop whether the name still
    /// refers to this segment.
    file_id: (u64, u64),
    unlink_on_drop: bool,
}

/// How to create a segment: name, page reservation, ownership.
///
/// ```
/// use shm_core::SegmentOptions;
/// let seg = SegmentOptions::new().reserve(false).unlink_on_drop(true).create(1 << 20)?;
/// assert_eq!(seg.len(), 1 << 20);
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    name: Option<String>,
    reserve: bool,
    unlink_on_drop: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentOptions {
    /// Random name, pages reserved, unlinked when the creating `Segment` drops.
    ///
    /// ```
    /// let seg = shm_core::SegmentOptions::new().create(32)?;
    /// assert!(seg.name().unwrap().starts_with("psm_"));
    /// assert!(seg.unlinks_on_drop());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn new() -> Self {
        Self {
            name: None,
            reserve: true,
            unlink_on_drop: true,
        }
    }

    /// Create under this name (a leading `/` is optional) instead of a random one.
    ///
    /// ```
    /// let name = format!("shm-doc-options-name-{}", std::process::id());
    /// let seg = shm_core::SegmentOptions::new().name(format!("/{name}")).create(8)?;
    /// assert_eq!(seg.name(), Some(name.as_str())); // stored without the `/`
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`name`](Self::name), as given (`None`: a random one).
    pub(crate) fn given_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Reserve every page at creation (the default), so that a full `/dev/shm` is an
    /// [`Error::NoSpace`] now and never a SIGBUS later. `false` defers the cost of
    /// zeroing pages to their first touch.
    ///
    /// ```
    /// let seg = shm_core::SegmentOptions::new().reserve(false).create(1 << 16)?;
    /// seg.write_at((1 << 16) - 1, &[1])?; // the last page is allocated on this first touch
    /// assert_eq!(seg.len(), 1 << 16);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.reserve = reserve;
        self
    }

    /// Unlink the name when the creating `Segment` is dropped (default `true`).
    /// `false` leaves the segment for others until someone calls
    /// [`Segment::unlink`] or [`unlink`](crate::unlink).
    ///
    /// ```
    /// let seg = shm_core::SegmentOptions::new().unlink_on_drop(false).create(8)?;
    /// let name = seg.name().unwrap().to_owned();
    /// drop(seg);
    /// let reopened = shm_core::Segment::open(&name).map(|s| s.len()); // still there
    /// shm_core::unlink(&name)?;
    /// assert_eq!(reopened?, 8);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlink_on_drop(mut self, yes: bool) -> Self {
        self.unlink_on_drop = yes;
        self
    }

    /// Creates a named segment of `len` bytes, all zero. Never opens an existing one.
    ///
    /// Errors: [`Error::InvalidSize`] for 0 or more than `isize::MAX`,
    /// [`Error::InvalidName`], [`Error::AlreadyExists`] for a taken given name,
    /// [`Error::NoSpace`] when the pages cannot be reserved.
    ///
    /// ```
    /// let opts = shm_core::SegmentOptions::new();
    /// assert_eq!(opts.create(100)?.len(), 100);
    /// assert!(matches!(opts.create(0), Err(shm_core::Error::InvalidSize { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create(&self, len: usize) -> Result<Segment> {
        let shown = self.name.as_deref().unwrap_or("<random>");
        check_len(shown, len)?;
        let (name, fd) = match &self.name {
            Some(given) => {
                let name = normalize_name(given)?.to_owned();
                let fd = sys::shm_create(&name).map_err(|e| match e {
                    Errno::EXIST => Error::AlreadyExists { name: name.clone() },
                    e => Error::os("shm_open", &name, e),
                })?;
                (name, fd)
            }
            None => create_random()?,
        };
        // From here on the name is ours: remove it again if any later step fails.
        let cleanup = |err: Error| {
            let _ = sys::shm_unlink(&name);
            err
        };
        let info = sys::info(&fd).map_err(|e| cleanup(Error::os("fstat", &name, e)))?;
        sys::set_len(&fd, len as u64).map_err(|e| cleanup(len_error(&name, len, e)))?;
        if self.reserve {
            sys::reserve(&fd, len as u64).map_err(|e| cleanup(len_error(&name, len, e)))?;
        }
        let map = map(&fd, len as u64, &name).map_err(cleanup)?;
        // The mapping keeps the memory; the descriptor is closed here (dropped).
        Ok(Segment {
            map,
            fd: None,
            name: Some(name),
            file_id: info.id,
            unlink_on_drop: self.unlink_on_drop,
        })
    }
}

fn create_random() -> Result<(String, OwnedFd)> {
    for _ in 0..RANDOM_NAME_TRIES {
        let name = random_name()?;
        match sys::shm_create(&name) {
            Ok(fd) => return Ok((name, fd)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(Error::os("shm_open", &name, e)),
        }
    }
    Err(Error::os(
        "shm_open",
        "<random>",
        std::io::Error::other("every random name tried was taken"),
    ))
}

/// The typed error for a failed `shm_open` of an existing name: what the name turned
/// out to be when it is not a segment this process may open.
fn open_error(name: &str, e: Errno) -> Error {
    if e == Errno::NOENT {
        return Error::NotFound {
            name: name.to_owned(),
        };
    }
    // ELOOP (a symlink under O_NOFOLLOW), EISDIR, ENXIO (a socket), EACCES (another
    // user's segment): look at the name itself to say which.
    if let Ok(info) = sys::info_by_name(name) {
        if let Err(typed) = check_file(name, &info) {
            return typed;
        }
    }
    Error::os("shm_open", name, e)
}

/// Refuses anything but a regular file owned by this process's effective user.
fn check_file(name: &str, info: &sys::FileInfo) -> Result<()> {
    if let Some(found) = info.not_regular {
        return Err(Error::NotASegment {
            name: name.to_owned(),
            found,
        });
    }
    let expected = sys::euid();
    if info.uid != expected {
        return Err(Error::ForeignOwner {
            name: name.to_owned(),
            owner: info.uid,
            expected,
        });
    }
    Ok(())
}

fn check_len(name: &str, len: usize) -> Result<()> {
    let reason = if len == 0 {
        "a segment needs at least one byte"
    } else if len > isize::MAX as usize {
        "larger than the address space allows"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSize {
        name: name.to_owned(),
        len: len as u64,
        reason,
    })
}

fn len_error(name: &str, len: usize, e: Errno) -> Error {
    match e {
        Errno::NOSPC | Errno::FBIG | Errno::NOMEM => Error::NoSpace {
            name: name.to_owned(),
            requested: len as u64,
            available: sys::shm_free_bytes(),
        },
        e => Error::os("ftruncate/fallocate", name, e),
    }
}

/// Maps `len` bytes of `fd` shared read/write (`len` is known: no extra `fstat`).
fn map(fd: &OwnedFd, len: u64, name: &str) -> Result<MmapRaw> {
    let len = usize::try_from(len).map_err(|_| Error::InvalidSize {
        name: name.to_owned(),
        len,
        reason: "larger than the address space allows",
    })?;
    MmapOptions::new()
        .len(len)
        .map_raw(fd)
        .map_err(|e| Error::os("mmap", name, e))
}

impl Segment {
    /// Options for creating a segment.
    ///
    /// ```
    /// let seg = shm_core::Segment::options().reserve(false).create(16)?;
    /// assert_eq!(seg.len(), 16);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn options() -> SegmentOptions {
        SegmentOptions::new()
    }

    /// Creates a segment of `len` zero bytes under a fresh random `psm_` name; the
    /// segment is unlinked when this value drops (see [`SegmentOptions`] to keep it).
    ///
    /// ```
    /// let seg = shm_core::Segment::create(64)?;
    /// assert!(seg.name().unwrap().starts_with("psm_"));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create(len: usize) -> Result<Segment> {
        SegmentOptions::new().create(len)
    }

    /// Creates a segment under `name` (unlinked when this value drops); fails with
    /// [`Error::AlreadyExists`] if the name is taken. CPython's rules apply, so `@` is
    /// allowed in a raw segment's name (an object with a header refuses it: see
    /// [`Object::create`](crate::Object::create)).
    ///
    /// ```
    /// let name = format!("shm-doc-create-named-{}", std::process::id());
    /// let seg = shm_core::Segment::create_named(&name, 64)?;
    /// assert_eq!(seg.name(), Some(name.as_str()));
    /// assert!(shm_core::Segment::create_named(&name, 64).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn create_named(name: &str, len: usize) -> Result<Segment> {
        SegmentOptions::new().name(name).create(len)
    }

    /// Opens an existing named segment read/write; its length comes from the segment.
    /// The returned value never unlinks the name.
    ///
    /// Opens as carefully as glibc's `shm_open`, and more: a symlink under the name is
    /// not followed, opening a FIFO does not block, and nothing but a regular file owned
    /// by this process's effective user is mapped (root could otherwise map any
    /// user's segment). Nothing is written to a refused file.
    ///
    /// Errors: [`Error::NotFound`], [`Error::InvalidName`], [`Error::NotASegment`] for a
    /// symlink, FIFO, directory, socket or device under the name,
    /// [`Error::ForeignOwner`] for a segment of another user, [`Error::Empty`] for a
    /// segment its creator has not sized yet.
    ///
    /// ```
    /// let a = shm_core::Segment::create(100)?;
    /// let b = shm_core::Segment::open(a.name().unwrap())?;
    /// assert_eq!(b.len(), 100);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Segment> {
        let name = normalize_name(name)?.to_owned();
        let fd = sys::shm_open(&name).map_err(|e| open_error(&name, e))?;
        let info = sys::info(&fd).map_err(|e| Error::os("fstat", &name, e))?;
        check_file(&name, &info)?;
        if info.size == 0 {
            return Err(Error::Empty { name });
        }
        let map = map(&fd, info.size, &name)?;
        // The mapping keeps the memory; the descriptor is closed here (dropped).
        Ok(Segment {
            map,
            fd: None,
            name: Some(name),
            file_id: info.id,
            unlink_on_drop: false,
        })
    }

    /// Creates an anonymous segment (memfd) of `len` zero bytes, pages reserved. It has
    /// no name; hand it to a child with [`CommandExt::inherit_segment`](crate::CommandExt)
    /// and it disappears when the last process holding it exits or drops it.
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(4096)?;
    /// assert_eq!(seg.name(), None);
    /// seg.write_at(4090, b"end")?;
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn anonymous(len: usize) -> Result<Segment> {
        check_len(ANONYMOUS, len)?;
        let fd =
            sys::memfd("shm-anonymous").map_err(|e| Error::os("memfd_create", ANONYMOUS, e))?;
        sys::set_len(&fd, len as u64).map_err(|e| len_error(ANONYMOUS, len, e))?;
        sys::reserve(&fd, len as u64).map_err(|e| len_error(ANONYMOUS, len, e))?;
        let map = map(&fd, len as u64, ANONYMOUS)?;
        Ok(Segment {
            map,
            fd: Some(fd),
            name: None,
            file_id: (0, 0),
            unlink_on_drop: false,
        })
    }

    /// Maps a shared-memory file descriptor this process owns: an anonymous segment
    /// received from another process (inherited, or sent over a Unix socket), or one
    /// opened some other way. The segment takes the descriptor over and closes it on
    /// drop; it has no name and never unlinks anything.
    ///
    /// Errors: [`Error::NotASegment`] for anything but a regular file (a pipe, a
    /// socket, a directory), [`Error::Empty`] for a file of length 0, [`Error::Os`]
    /// when the descriptor cannot be mapped shared (a read-only file).
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// let seg = shm_core::Segment::anonymous(4096)?;
    /// seg.write_at(0, b"shared")?;
    /// let fd: OwnedFd = seg.fd().expect("anonymous segments keep their fd").try_clone_to_owned()?;
    /// let again = shm_core::Segment::from_fd(fd)?; // as a receiving process would
    /// let mut buf = [0; 6];
    /// again.read_at(0, &mut buf)?;
    /// assert_eq!((&buf, again.len()), (b"shared", 4096));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        let info = sys::info(&fd).map_err(|e| Error::os("fstat", ANONYMOUS, e))?;
        if let Some(found) = info.not_regular {
            return Err(Error::NotASegment {
                name: ANONYMOUS.into(),
                found,
            });
        }
        if info.size == 0 {
            return Err(Error::Empty {
                name: ANONYMOUS.into(),
            });
        }
        let map = map(&fd, info.size, ANONYMOUS)?;
        Ok(Segment {
            map,
            fd: Some(fd),
            name: None,
            file_id: (0, 0),
            unlink_on_drop: false,
        })
    }

    /// As [`from_fd`](Self::from_fd), for a file that will be given `name` (or has it):
    /// the segment reports `name`, so code that derives names from it (a growable
    /// collection's data segments) works before the file is linked into `/dev/shm`.
    /// This is how an object is built complete in an unnamed `O_TMPFILE` file and only
    /// then linked to its name (`linkat`, which never replaces a name): a creator
    /// killed half way leaves no half-made object under the name. The segment never
    /// unlinks anything on drop; [`unlink_if_still_named`](Self::unlink_if_still_named)
    /// knows its file by device and inode.
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(4096)?;
    /// let fd = seg.fd().unwrap().try_clone_to_owned()?;
    /// let named = shm_core::Segment::from_fd_named(fd, "shm-doc-to-be-linked")?;
    /// assert_eq!(named.name(), Some("shm-doc-to-be-linked"));
    /// assert!(shm_core::Segment::open("shm-doc-to-be-linked").is_err()); // not linked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd_named(fd: OwnedFd, name: &str) -> Result<Segment> {
        let name = normalize_name(name)?.to_owned();
        let info = sys::info(&fd).map_err(|e| Error::os("fstat", &name, e))?;
        check_file(&name, &info)?;
        if info.size == 0 {
            return Err(Error::Empty { name });
        }
        let map = map(&fd, info.size, &name)?;
        Ok(Segment {
            map,
            fd: Some(fd),
            name: Some(name),
            file_id: info.id,
            unlink_on_drop: false,
        })
    }

    /// The name without its leading `/`; `None` for anonymous segments.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(8)?;
    /// assert!(seg.name().unwrap().starts_with("psm_"));
    /// assert_eq!(shm_core::Segment::anonymous(8)?.name(), None);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name for messages: the name, or `<anonymous>`.
    ///
    /// ```
    /// assert_eq!(shm_core::Segment::anonymous(8)?.display_name(), "<anonymous>");
    /// let seg = shm_core::Segment::create(8)?;
    /// assert_eq!(Some(seg.display_name()), seg.name());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(ANONYMOUS)
    }

    /// Length in bytes, exact (not rounded to pages).
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(100)?;
    /// assert_eq!(seg.len(), 100); // not rounded up to a page
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: a segment holds at least one byte.
    ///
    /// ```
    /// assert!(!shm_core::Segment::anonymous(1)?.is_empty());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Base address of the mapping, valid for [`len`](Self::len) bytes while `self` lives.
    ///
    /// Other processes may write these bytes at any moment: access them through raw
    /// pointers with [`copy_from_shared`](crate::copy_from_shared) and its siblings, or
    /// through atomics, never through `&[u8]` or a plain `ptr::copy`.
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(8)?;
    /// // SAFETY: offset 3 lies inside the mapping, which `seg` keeps alive.
    /// unsafe { seg.as_ptr().add(3).write_volatile(42) };
    /// let mut buf = [0u8; 4];
    /// seg.read_at(0, &mut buf)?;
    /// assert_eq!(buf, [0, 0, 0, 42]);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Whether this value unlinks the name when dropped.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(8)?;
    /// assert!(seg.unlinks_on_drop());
    /// assert!(!shm_core::Segment::open(seg.name().unwrap())?.unlinks_on_drop());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop
    }

    /// Sets whether this value unlinks the name when dropped; turning it on for a
    /// segment opened by name makes this process its owner.
    ///
    /// ```
    /// let seg = shm_core::SegmentOptions::new().unlink_on_drop(false).create(8)?;
    /// let name = seg.name().unwrap().to_owned();
    /// let mut owner = shm_core::Segment::open(&name)?;
    /// owner.set_unlink_on_drop(true);
    /// drop((seg, owner)); // `owner` unlinks the name
    /// assert!(matches!(shm_core::Segment::open(&name), Err(shm_core::Error::NotFound { .. })));
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.unlink_on_drop = yes && self.name.is_some();
    }

    /// The file descriptor of an anonymous segment (to pass it on, or to `fstat` it);
    /// `None` for a named segment, whose descriptor is closed once it is mapped (open
    /// the name again to get one).
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(4096)?;
    /// let fd = seg.fd().expect("anonymous segments keep their descriptor");
    /// let file = std::fs::File::from(fd.try_clone_to_owned()?);
    /// assert_eq!(file.metadata()?.len(), 4096);
    /// assert!(shm_core::Segment::create(8)?.fd().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    #[inline]
    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(self.out_of_bounds(offset, len)),
        }
    }

    #[cold]
    fn out_of_bounds(&self, offset: usize, len: usize) -> Error {
        Error::OutOfBounds {
            name: self.display_name().to_owned(),
            offset,
            len,
            segment_len: self.len(),
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the segment.
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(8)?;
    /// let mut buf = [1u8; 4];
    /// seg.read_at(4, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// assert!(seg.read_at(5, &mut buf).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        // SAFETY: the range lies inside the live mapping (checked above) and `buf` is a
        // separate local buffer, so the two cannot overlap; other processes may write
        // the range, which `copy_from_shared` allows.
        unsafe { copy::copy_from_shared(self.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the segment at `offset`.
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(8)?;
    /// seg.write_at(0, &[7; 8])?;
    /// assert!(seg.write_at(1, &[7; 8]).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        // SAFETY: the range lies inside the live mapping (checked above); `data` is not
        // in the mapping's range as no safe API hands out references into it; others
        // may access the range concurrently, which `copy_to_shared` allows.
        unsafe { copy::copy_to_shared(data, self.as_ptr().add(offset)) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte` (a `memset` into the segment).
    ///
    /// ```
    /// let seg = shm_core::Segment::anonymous(8)?;
    /// seg.fill_at(2, 4, 0xff)?;
    /// let mut buf = [0u8; 8];
    /// seg.read_at(0, &mut buf)?;
    /// assert_eq!(buf, [0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]);
    /// assert!(seg.fill_at(6, 4, 0).is_err());
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    #[inline]
    pub fn fill_at(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        self.check_range(offset, len)?;
        // SAFETY: the range lies inside the live mapping (checked above); others may
        // access it concurrently, which `fill_shared` allows.
        unsafe { copy::fill_shared(self.as_ptr().add(offset), len, byte) };
        Ok(())
    }

    /// Removes the name so that no new process can open it. Mappings stay valid; the
    /// memory is freed when the last one goes. A no-op for anonymous segments.
    ///
    /// Errors: [`Error::NotFound`] when the name is already gone.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(16)?;
    /// seg.unlink()?;
    /// assert!(shm_core::Segment::open(seg.name().unwrap()).is_err());
    /// seg.write_at(0, b"still mapped")?;
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        match &self.name {
            Some(name) => unlink(name),
            None => Ok(()),
        }
    }

    /// Removes the name only if it still names this segment (same device and inode,
    /// looked up without following a symlink): `Ok(true)` if removed, `Ok(false)` if
    /// the name is gone or now names another segment (made since by someone else,
    /// which must not be removed in our stead). A no-op (`Ok(false)`) for anonymous
    /// segments. A successor made between the check and the unlink would still be
    /// removed: no call unlinks by inode.
    ///
    /// ```
    /// let seg = shm_core::Segment::create(16)?;
    /// let name = seg.name().unwrap().to_owned();
    /// seg.unlink()?;
    /// let mut successor = shm_core::Segment::create_named(&name, 16)?;
    /// assert!(!seg.unlink_if_still_named()?); // the successor keeps its name
    /// assert!(successor.unlink_if_still_named()?);
    /// successor.set_unlink_on_drop(false);
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn unlink_if_still_named(&self) -> Result<bool> {
        match &self.name {
            Some(name) if self.still_named(name) => match unlink(name) {
                Ok(()) => Ok(true),
                Err(Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            _ => Ok(false),
        }
    }

    /// Whether the name still refers to this segment (same device and inode, looked up
    /// without following a symlink). Once unlinked (by anyone), the name may belong to
    /// a segment made since, which must not be removed in our stead.
    fn still_named(&self, name: &str) -> bool {
        sys::info_by_name(name).is_ok_and(|info| info.id == self.file_id)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            if let Some(name) = &self.name {
                // Never remove a segment that someone else created under the same name
                // after ours was unlinked. (A successor made between this check and the
                // unlink would still be removed: no call unlinks by inode.)
                if self.still_named(name) {
                    let _ = sys::shm_unlink(name);
                }
            }
        }
    }
}

/// Removes a named segment by name (CPython's `SharedMemory.unlink`).
///
/// ```
/// let seg = shm_core::SegmentOptions::new().unlink_on_drop(false).create(8)?;
/// let name = seg.name().unwrap().to_owned();
/// drop(seg);
/// shm_core::unlink(&name)?;
/// assert!(matches!(shm_core::unlink(&name), Err(shm_core::Error::NotFound { .. })));
/// # Ok::<(), shm_core::Error>(())
/// ```
pub fn unlink(name: &str) -> Result<()> {
    let name = normalize_name(name)?;
    sys::shm_unlink(name).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            name: name.to_owned(),
        },
        e => Error::os("shm_unlink", name, e),
    })
}
