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
    /// Passes `segment`'s descriptor to the child and names it in `var`. The segment
    /// must stay alive until the child is spawned.
    fn inherit_segment(&mut self, segment: &Segment, var: &str) -> &mut Self;
}

impl CommandExt for Command {
    fn inherit_segment(&mut self, segment: &Segment, var: &str) -> &mut Self {
        let raw = segment.fd().as_raw_fd();
        self.env(var, raw.to_string());
        // SAFETY: the closure only calls fcntl(F_SETFD), which is async-signal-safe, and
        // touches no memory shared with the parent's other threads.
        unsafe {
            self.pre_exec(move || {
                // SAFETY: `raw` was open when the command was configured and the caller
                // keeps the segment alive until spawn; the child owns a copy of it.
                let fd = std::os::fd::BorrowedFd::borrow_raw(raw);
                sys::clear_cloexec(fd)
            })
        }
    }
}
