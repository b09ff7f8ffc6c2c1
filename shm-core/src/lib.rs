//! # shm-core
//!
//! The lowest layer of the `shm` workspace: shared-memory segments and the checked
//! object header every other crate builds on.
//!
//! - [`Segment`]: a named POSIX segment (`shm_open`, byte-compatible with CPython's
//!   `multiprocessing.shared_memory.SharedMemory`: `psm_` names, exact sizes) or an
//!   anonymous one (`memfd`) that a child inherits and that can never leak.
//! - [`Object`]: an [`ObjectHeader`] (magic, header format, kind, layout version,
//!   length, element type, creator identity, generation, flags, initialised flag) and a
//!   payload, alone in a segment or at an offset inside a larger one (an arena);
//!   opening one checks all of it and reports a mismatch as a typed [`Error`].
//! - [`SharedObject`]: the one lifecycle of every shared type in the workspace
//!   (`create`, `create_named`, `create_with`, `anonymous`, `open`, `open_timeout`,
//!   `name`, `unlink`, `set_unlink_on_drop`, `share` / `from_env` to hand an object to a
//!   child process), so generic code handles any kind alike.
//! - [`identity`]: process identities that survive PID reuse, and liveness checks.
//! - [`CommandExt`]: hands an anonymous segment to a child process; [`Handle`]: the one
//!   serialisable form of a shared object (kind, Rust type, name or descriptor). Both
//!   share one encoding, in the hand-off module.
//! - [`copy_from_shared`], [`copy_to_shared`], [`fill_shared`]: the one way to copy bytes
//!   that another process may write at the same time (see below).
//!
//! [`Segment::open`] is as careful as glibc's `shm_open` and more: it never follows a
//! symlink, never blocks on a FIFO, and maps only a regular file owned by this process's
//! effective user ([`Error::NotASegment`], [`Error::ForeignOwner`]). Generated names
//! draw 64 fresh bits from the OS each, so a name seen in `/dev/shm` predicts nothing.
//! A named segment closes its descriptor once mapped, so thousands fit under a small
//! `ulimit -n`; an anonymous one keeps its descriptor to hand it on.
//!
//! Pages are reserved when a segment is created, so a full `/dev/shm` is an
//! [`Error::NoSpace`] at creation and never a SIGBUS later.
//!
//! ```
//! use shm_core::Segment;
//! let seg = Segment::create(1024)?;                    // psm_<16 hex digits>
//! seg.write_at(0, b"shared")?;
//! let peer = Segment::open(seg.name().unwrap())?;       // in another process, by name
//! let mut buf = [0; 6];
//! peer.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"shared");
//! # Ok::<(), shm_core::Error>(())
//! ```
//!
//! Linux only for now: the calls that make, open, map, size and hand on segments live
//! in one private module (`sys`); the process identities of [`identity`] read `/proc`
//! and keep their own small registry file.
//!
//! ## Soundness of racing copies
//!
//! Another process may write a mapping at any instant, and a plain `memcpy` over bytes
//! written concurrently is a data race, undefined behaviour in Rust's memory model. So
//! every copy in or out of a mapping ([`Segment::read_at`], [`Segment::write_at`],
//! [`Segment::fill_at`], and the layers above) goes through [`copy_from_shared`],
//! [`copy_to_shared`] or [`fill_shared`], which access the shared side with *relaxed
//! atomic* loads and stores, word by word in the aligned middle and byte by byte at the
//! unaligned ends (the `atomic-memcpy` approach), or, for copies of 96 bytes or more on
//! x86_64 with AVX, with aligned 16-byte vector moves inside `asm!` blocks (opaque to
//! the compiler; see the [`copy`](crate::copy_from_shared) docs). A racing writer then
//! yields a mix of old and new bytes, each aligned word whole, which validation
//! rejects, never UB. A 64 MiB copy runs at the speed of `memcpy` (`shm-bench`,
//! `core/bulk_*_64m`); a 4 KiB copy in and out at about 1.5x its time.
//!
//! ## Limits
//!
//! - A process that *shrinks* a segment (`ftruncate` on its name) makes accesses past
//!   the new end raise `SIGBUS` in every process that maps it: no user-space check can
//!   prevent that for a shared mapping. Segments are created with mode `0600`, so only
//!   processes of the same user can do it; nothing in this workspace ever shrinks one.
//! - A named segment whose creator is killed (`kill -9`) stays in `/dev/shm` until
//!   someone unlinks it. Objects created through `shm-manager`'s
//!   `SharedMemoryManager` are removed by its tracker once their owner is gone, and
//!   `shm gc` removes objects whose creator is provably dead; anonymous segments
//!   ([`Segment::anonymous`]) cannot leak.

mod copy;
mod error;
mod handoff;
mod header;
pub mod identity;
mod layout;
mod methods;
pub mod name;
mod object;
mod segment;
mod shared_object;
mod sys;
#[cfg(feature = "test-support")]
pub mod testing;
mod type_name;

pub use copy::{copy_from_shared, copy_to_shared, fill_shared};
pub use error::{Error, Result};
pub use handoff::{CommandExt, Handle};
pub use header::{
    COMPACT_HEADER_LEN, Flags, HEADER_FORMAT, HEADER_LEN, HeaderCore, HeaderExt, Kind, MAGIC,
    OBJECT_ALIGN, ObjectHeader, ObjectInfo, ObjectSpec, fnv1a,
};
pub use layout::Layout;
pub use name::{MAX_NAME_LEN, RANDOM_NAME_PREFIX, normalize_name};
pub use object::{DEFAULT_OPEN_WAIT, OFFSET_SEPARATOR, Object, ObjectName};
pub use segment::{Segment, SegmentOptions, unlink};
pub use shared_object::SharedObject;
pub use type_name::short_type_name;
