//! # shm-process
//!
//! Python's `multiprocessing.Process` for Rust: run a function in a child process with
//! arguments that may include shared objects, then `join` it.
//!
//! A child is the current binary re-executed (never a `fork` without `exec`): it finds
//! its function by name. The first line of `main` lists the functions children may run;
//! in a child it runs the requested one and exits, in the parent it returns at once:
//!
//! ```
//! use shm_core::SharedObject;
//! use shm_collections::Value;
//! use shm_process::{Process, Shared};
//!
//! fn add(args: (Shared<Value<u64>>, u64)) {
//!     let (counter, n) = args;
//!     counter.update(|v| *v += n).unwrap();
//! }
//!
//! fn main() {
//!     shm_process::main!(add);
//!     let counter = Value::create(0u64).unwrap();
//!     let mut p = Process::spawn(add, (Shared::of(&counter).unwrap(), 5)).unwrap();
//!     assert_eq!(p.join().unwrap(), 0);
//!     assert_eq!(counter.get().unwrap(), 5);
//! }
//! ```
//!
//! Arguments are any `serde` values; a shared object travels as its [`Handle`] inside
//! [`Shared`] (its name, or an inherited descriptor for an anonymous object) and is
//! opened in the child with its kind and type checked.
//!
//! ## What a child inherits
//!
//! Its environment, working directory, standard output and standard error are the
//! parent's. Its standard input is `/dev/null`, as in Python's children: the parent
//! starts it with a socket there, hands over the descriptors of anonymous objects on it
//! (so the spawn needs no `pre_exec` hook and takes std's `posix_spawn` path), and the
//! child moves that socket to a close-on-exec number before the function runs.
//!
//! ## Tests and doctests
//!
//! A doctest is a program with its own `main`: write `shm_process::main!(f)` as its first
//! line, as above. In an integration test (libtest harness) write it as the first line
//! of each test that spawns: a child spawned from a test thread re-runs the test binary
//! with `<test name> --exact --test-threads=1` (libtest names each test's thread after
//! the test), so only the calling test runs in the child, and its first line dispatches.
//! [`Builder::args`] overrides those arguments.
//!
//! ## Examples: the ported material
//!
//! `examples/` holds a port of every program of the Python tutorials this project ports
//! (Value, Array, ShareableList, ShareableDict, managers, Queue, Pipe, Lock, Event):
//! `cargo run -p shm-process --example value_two_processes`. `tests/examples.rs` runs
//! them all and checks their output against the originals'.
//!
//! ## Exit codes
//!
//! [`Process::exitcode`] follows Python: the exit code, or minus the signal number for
//! a child killed by a signal. A panic in the function exits with code 1 and
//! [`Process::join`] returns [`Error::Panicked`] with its message; a child that cannot
//! start the function (not registered, arguments of another type) exits with code 2 and
//! `join` returns [`Error::Dispatch`].
//!
//! ## Why not `procspawn`
//!
//! `procspawn` 1.0 does this job generally, but it finds the child's function by a raw
//! function-pointer offset read from its input, sends arguments over `ipc-channel`
//! sockets (its own descriptor passing, which cannot carry this workspace's anonymous
//! segments as inherited descriptors without a second channel), and gives no hook to
//! add inherited descriptors to the command. Here a function is found by its registered
//! `type_name`, and a child inherits exactly the descriptors its arguments name.

mod child;
mod error;
mod pool;
mod process;
mod protocol;
mod registry;
mod shared;

pub use child::init;
pub use error::{Error, Result};
pub use pool::{AsyncResult, Imap, Pool, PoolBuilder};
pub use process::{Builder, Process};
pub use registry::{Entry, entry};
pub use shared::{HandleExt, Shared, SharedPipeEnd};
/// The serialisable form of a shared object, [`shm_core::Handle`]: kind, Rust type, and
/// a name or an inherited descriptor. Open it in a process with [`HandleExt::open`].
pub use shm_core::Handle;

/// Registers the functions children may run and dispatches when this process is such a
/// child: the first line of `main` (or of each test that spawns). In a child it runs the
/// requested function and exits; otherwise it returns at once.
///
/// ```
/// fn work(n: u32) { assert_eq!(n, 7); }
/// fn main() {
///     shm_process::main!(work);
///     let mut p = shm_process::Process::spawn(work, 7).unwrap();
///     assert_eq!(p.join().unwrap(), 0);
/// }
/// ```
#[macro_export]
macro_rules! main {
    ($($f:path),* $(,)?) => {
        $crate::init(::std::vec![$($crate::entry($f)),*])
    };
}
