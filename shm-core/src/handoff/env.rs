//! Hand-off through the environment: the one encoding of what a child finds in its
//! environment variable ([`Encoded`]), [`CommandExt`], [`Segment::from_inherited`], and
//! the `share` / `from_env` of every shared object.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::object::Object;
use crate::segment::Segment;
use crate::sys;

/// Marks the variable of a named segment, which has no descriptor to inherit.
const NAMED_MARKER: &str = "named:";

/// What the environment variable of a hand-off holds (see the module docs).
enum Encoded<'a> {
    /// Decimal digits only: the number of an inherited descriptor (not yet checked to
    /// fit an `i32`).
    Descriptor(&'a str),
    /// A named segment given to `inherit_segment`: its name, after the marker.
    NamedSegment(&'a str),
    /// Anything else: a name to open (the whole value).
    Name,
}

impl<'a> Encoded<'a> {
    fn decode(value: &'a str) -> Encoded<'a> {
        if let Some(name) = value.strip_prefix(NAMED_MARKER) {
            Encoded::NamedSegment(name)
        } else if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            Encoded::Descriptor(value)
        } else {
            Encoded::Name
        }
    }

    fn descriptor(fd: RawFd) -> String {
        fd.to_string()
    }

    fn named_segment(name: &str) -> String {
        format!("{NAMED_MARKER}{name}")
    }
}

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

impl CommandExt for Command {
    fn inherit_segment(&mut self, segment: &Segment, var: &str) -> &mut Self {
        let Some(fd) = segment.fd() else {
            self.env(var, Encoded::named_segment(segment.display_name()));
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
        self.env(var, Encoded::descriptor(dup.as_raw_fd()));
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

impl Segment {
    /// Takes over an anonymous segment whose descriptor number the parent put in the
    /// environment variable `var` (see [`CommandExt::inherit_segment`](crate::CommandExt)).
    ///
    /// The inherited descriptor is duplicated, not taken over, so this is safe to call
    /// more than once; it must name a memfd, else [`Error::Corrupted`]. The inherited
    /// descriptor itself stays open until the process exits (keeping the memory alive
    /// that long); to take it over instead, wrap it in an `OwnedFd` yourself and call
    /// [`from_fd`](Self::from_fd).
    ///
    /// ```no_run
    /// // In a child spawned with `.inherit_segment(&seg, "WORKER_SEGMENT_FD")`:
    /// let seg = shm_core::Segment::from_inherited("WORKER_SEGMENT_FD")?;
    /// assert_eq!(seg.name(), None); // anonymous
    /// # Ok::<(), shm_core::Error>(())
    /// ```
    pub fn from_inherited(var: &str) -> Result<Segment> {
        let bad = |what: String| Error::Corrupted {
            name: format!("${var}"),
            what,
        };
        let value = std::env::var(var)
            .map_err(|_| bad(format!("environment variable {var} is not set")))?;
        let raw: i32 = match Encoded::decode(&value) {
            Encoded::NamedSegment(name) => {
                return Err(bad(format!(
                    "the parent passed named segment {name:?}, which has no descriptor to \
                     inherit: expected an anonymous segment (open a named one by name)"
                )));
            }
            Encoded::Descriptor(digits) => digits.parse().ok(),
            Encoded::Name => None,
        }
        .ok_or_else(|| bad(format!("expected a descriptor number, found {value:?}")))?;
        // SAFETY: the descriptor is only borrowed for the `fcntl(F_DUPFD_CLOEXEC)` below;
        // if it is not open, the kernel answers EBADF, which is reported as an error.
        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
        let fd = sys::dup_cloexec(borrowed)
            .map_err(|e| bad(format!("descriptor {raw} is not open: {e}")))?;
        if !sys::is_memfd(&fd) {
            return Err(bad(format!(
                "descriptor {raw} is not an anonymous segment (memfd)"
            )));
        }
        Self::from_fd(fd)
    }
}

/// Sets `var` in the child's environment so that [`from_env`] finds `object`: its name,
/// or the number of an inherited descriptor for an anonymous object.
pub(crate) fn share<'c>(
    object: &Object,
    command: &'c mut Command,
    var: &str,
) -> Result<&'c mut Command> {
    match object.name() {
        Some(name) => Ok(command.env(var, name)),
        None if object.offset() == 0 => Ok(command.inherit_segment(object.segment(), var)),
        None => Err(Error::Unsupported {
            name: object.label(),
            what: "handing on an object inside an anonymous arena",
        }),
    }
}

/// The object a parent handed over under `var`: a descriptor number (anonymous) or a name.
pub(crate) fn from_env(var: &str, layout: Layout) -> Result<Object> {
    let value = std::env::var(var).map_err(|_| Error::Corrupted {
        name: format!("${var}"),
        what: format!(
            "environment variable {var} is not set: expected the {} a parent handed over with share()",
            layout.kind_name()
        ),
    })?;
    match Encoded::decode(&value) {
        Encoded::Descriptor(_) => layout.wrap(Segment::from_inherited(var)?),
        // A marked named segment is opened under the whole value, as any name.
        Encoded::NamedSegment(_) | Encoded::Name => layout.open(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::Encoded;

    #[test]
    fn every_value_the_encoder_writes_decodes_to_what_it_was() {
        let fd = Encoded::descriptor(17);
        assert!(matches!(Encoded::decode(&fd), Encoded::Descriptor("17")));
        let named = Encoded::named_segment("psm_0a");
        assert!(matches!(
            Encoded::decode(&named),
            Encoded::NamedSegment("psm_0a")
        ));
        assert!(matches!(Encoded::decode("psm_0a"), Encoded::Name));
    }

    #[test]
    fn only_plain_digits_are_a_descriptor() {
        for value in ["", "+5", "-1", "5 ", "0x5", "psm_12"] {
            assert!(
                matches!(Encoded::decode(value), Encoded::Name),
                "{value:?} decoded as a descriptor or a named segment"
            );
        }
        // Too large for a descriptor number, yet digits: refused when parsed, not opened
        // as a name.
        assert!(matches!(
            Encoded::decode("99999999999"),
            Encoded::Descriptor(_)
        ));
    }
}
