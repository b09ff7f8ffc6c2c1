//! The one error type of `shm-process`.

/// What can go wrong starting, waiting for, or running a child.
///
/// ```
/// let e = shm_process::Error::NotSpawnable { function: "f::{{closure}}".into(), reason: "a closure" };
/// assert!(e.to_string().contains("f::{{closure}}"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The child could not be started (exec failed, out of processes or descriptors).
    #[error("cannot start a child process for {function}: {source}")]
    Spawn {
        /// The function the child was to run.
        function: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The function cannot be found by name in a child.
    #[error("{function} cannot run in a child process: {reason}")]
    NotSpawnable {
        /// The function's `type_name`.
        function: String,
        /// Why.
        reason: &'static str,
    },
    /// The arguments could not be encoded (an anonymous object inside an arena, say).
    #[error("cannot encode the arguments of {function}: {message}")]
    Encode {
        /// The function the child was to run.
        function: String,
        /// What failed.
        message: String,
    },
    /// The child could not start the function: not registered in its `main!`, or its
    /// arguments did not decode (a shared object of another type, say).
    #[error("child {pid} could not start {function}: {message}")]
    Dispatch {
        /// The child's process id.
        pid: u32,
        /// The function the child was to run.
        function: String,
        /// What the child reported.
        message: String,
    },
    /// The function panicked in the child (exit code 1, as Python's uncaught exception).
    #[error("child {pid} running {function} panicked: {message}")]
    Panicked {
        /// The child's process id.
        pid: u32,
        /// The function the child ran.
        function: String,
        /// The panic's message.
        message: String,
    },
    /// A handle names a shared object of another kind or type than the one expected.
    #[error("wrong shared object type: expected {expected}, found {found}")]
    WrongType {
        /// The type (and kind) expected.
        expected: String,
        /// The type (and kind) the handle names.
        found: String,
    },
    /// The object a handle names could not be opened (gone, or its header says
    /// otherwise), or the handle is malformed.
    #[error("cannot open the {type_name} of handle {handle}: {message}")]
    Open {
        /// The handle's name or descriptor.
        handle: String,
        /// The type expected.
        type_name: String,
        /// What failed.
        message: String,
    },
    /// A pool worker died (killed, out of memory) while it held this task.
    #[error("pool worker {pid} running {function} died (exit code {exitcode}) before it answered")]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// Its exit code (minus the signal that killed it).
        exitcode: i32,
        /// The task's function.
        function: String,
    },
    /// A pool could not hand out or collect tasks (closed, queue error).
    #[error("pool: {message}")]
    Pool {
        /// What failed.
        message: String,
    },
    /// A timed wait ended before what it waited for (the task goes on: wait again).
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The timeout given.
        timeout: std::time::Duration,
    },
    /// Waiting for the child or signalling it failed.
    #[error("waiting for or signalling child {pid}: {source}")]
    Wait {
        /// The child's process id.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// This process was started by `shm-process` as a child but did not dispatch:
    /// `shm_process::main!` is not the first line of `main` (or of the test). Spawning
    /// again from here could start children without end.
    #[error(
        "this process is a child started to run {role}, but shm_process::main! was not \
         called first in main (or in the test): refusing to spawn"
    )]
    NotDispatched {
        /// The function the child was started for.
        role: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
