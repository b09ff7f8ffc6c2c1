//! Handing an anonymous segment to a child process.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::segment::Segment;
use crate::sys;

/// Lets a [`Command`] inherit a [`Segment`].
///
/// Descriptors are close-on-exec by default; this clears the flag in the child only
/// (between `fork` and `exec`), so other children spawned meanwhile by other threads do
/// not inherit it. The child finds the descriptor number in the environment variable
/// `var` and takes it with [`Segment::from_inherited`].
///
/// ```no_run
/// use shm_core::{CommandExt, Segment};
/// let seg = Segment::anonymous(4096)?;
/// seg.write_at(0, b"for the child")?;
/// let status = std::process::Command::new("my-worker")
///     .inherit_segment(&seg, "WORKER_SEGMENT_FD")
///     .status()?;
/// // in my-worker: let seg = Segment::from_inherited("WORKER_SEGMENT_FD")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CommandExt {
    /// Passes `segment`'s descriptor to the child and names it in `var`.
    ///
    /// The descriptor is duplicated now and the duplicate is owned by the command, so
    /// the segment may be dropped before the child is spawned: the child still gets the
    /// memory, and never a descriptor opened since under the old number.
    ///
    /// Only anonymous segments have a descriptor to inherit; for a named segment, pass
    /// its name instead ([`Segment::from_inherited`] in the child reports
    /// [`Error::Corrupted`](crate::Error::Corrupted) naming it). When the descriptor
    /// cannot be duplicated (the process is out of descriptors), `spawn` fails with
    /// that error.
    fn inherit_segment(&mut self, segment: &Segment, var: &str) -> &mut Self;
}

/// Marks the variable of a named segment, which has no descriptor to inherit.
pub(crate) const NAMED_MARKER: &str = "named:";

impl CommandExt for Command {
    fn inherit_segment(&mut self, segment: &Segment, var: &str) -> &mut Self {
        let Some(fd) = segment.fd() else {
            self.env(var, format!("{NAMED_MARKER}{}", segment.display_name()));
            return self;
        };
        let dup = match sys::dup_cloexec(fd) {
            Ok(dup) => dup,
            Err(e) => {
                // `spawn` is the only place that can report it: fail there, with the errno.
                let code = e.raw_os_error();
                // SAFETY: the closure only builds an `io::Error` from an errno, which
                // allocates nothing and is async-signal-safe.
                unsafe { self.pre_exec(move || Err(std::io::Error::from_raw_os_error(code))) };
                return self;
            }
        };
        self.env(var, dup.as_raw_fd().to_string());
        // SAFETY: the closure only calls fcntl(F_SETFD), which is async-signal-safe, and
        // touches no memory shared with the parent's other threads.
        unsafe {
            self.pre_exec(move || {
                // `dup` is owned by the closure, hence by the command: its number stays
                // open and ours until the command is dropped, whatever happens to the
                // segment. The child's copy loses close-on-exec; the parent's keeps it.
                sys::clear_cloexec(&dup)
            })
        }
    }
}
