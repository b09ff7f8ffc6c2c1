//! # shm-core
//!
//! The lowest layer of the `shm` workspace: shared-memory segments and the checked
//! object header every other crate builds on.
//!
//! - [`Segment`]: a named POSIX segment (`shm_open`, byte-compatible with CPython's
//!   `multiprocessing.shared_memory.SharedMemory`: `psm_` names, exact sizes) or an
//!   anonymous one (`memfd`) that a child inherits and that can never leak.
//! - [`Object`]: a segment that starts with an [`ObjectHeader`] (magic, kind, layout
//!   version, length, element type, initialised flag); opening one checks all of it and
//!   reports a mismatch as a typed [`Error`].
//! - [`CommandExt`]: hands an anonymous segment to a child process.
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
//! Linux only for now: every OS call lives in one private module (`sys`).
//!
//! ## Limits
//!
//! - A process that *shrinks* a segment (`ftruncate` on its name) makes accesses past
//!   the new end raise `SIGBUS` in every process that maps it: no user-space check can
//!   prevent that for a shared mapping. Segments are created with mode `0600`, so only
//!   processes of the same user can do it; nothing in this workspace ever shrinks one.
//! - A named segment whose creator is killed (`kill -9`) stays in `/dev/shm` until
//!   someone unlinks it: the tracker of `shm-manager` is planned for that. Anonymous
//!   segments ([`Segment::anonymous`]) cannot leak.

mod error;
mod header;
pub mod identity;
mod name;
mod segment;
mod spawn;
mod sys;
#[cfg(feature = "test-support")]
pub mod testing;

pub use error::{Error, Result};
pub use header::{
    DEFAULT_OPEN_WAIT, HEADER_LEN, MAGIC, Object, ObjectHeader, ObjectKind, ObjectSpec,
};
pub use name::{MAX_NAME_LEN, RANDOM_NAME_PREFIX, normalize_name};
pub use segment::{Segment, SegmentOptions, unlink};
pub use spawn::CommandExt;
