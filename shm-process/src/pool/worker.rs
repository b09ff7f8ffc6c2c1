//! The pool worker: the loop a worker process runs, and what travels on its queues.

use serde::{Deserialize, Serialize};
use shm_collections::Queue;
use shm_core::SharedObject;

use crate::registry::{Entry, panic_message, registered};
use crate::shared::Shared;

/// What a worker's queue carries.
#[derive(Serialize, Deserialize)]
pub(crate) enum Task {
    /// Run `function` on each of the encoded `args` (one chunk).
    Run {
        id: u64,
        function: String,
        args: Vec<Vec<u8>>,
    },
    /// No more work: exit.
    Stop,
}

/// What the reply queue carries: one outcome per item of the chunk, in order.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(super) id: u64,
    pub(super) pid: u32,
    pub(super) results: Vec<std::result::Result<Vec<u8>, Failure>>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Failure {
    Panicked(String),
    Dispatch(String),
}

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(super) tasks: Shared<Queue<Task>>,
    pub(super) replies: Shared<Queue<Reply>>,
    /// The initializer's name and encoded argument.
    pub(super) init: Option<(String, Vec<u8>)>,
    /// Exit after this many chunks (`maxtasksperchild`).
    pub(super) max_tasks: Option<u64>,
}

/// Exit code of a worker whose initializer panicked or could not start.
pub(super) const INIT_FAILED_EXIT: i32 = 4;
/// Exit code of a worker that could not send a reply at all.
const REPLY_FAILED_EXIT: i32 = 3;

fn run_one(function: &str, args: &[u8]) -> std::result::Result<Vec<u8>, Failure> {
    run_entry(registered(function).map_err(Failure::Dispatch)?, args)
}

fn run_entry(entry: &Entry, args: &[u8]) -> std::result::Result<Vec<u8>, Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (entry.run)(args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(message)) => Err(Failure::Dispatch(message)),
        Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
    }
}

/// The pool worker's main loop, run in a child (registered by every `main!`).
pub(crate) fn worker(args: WorkerArgs) {
    let WorkerArgs {
        tasks,
        replies,
        init,
        max_tasks,
    } = args;
    let pid = std::process::id();
    if let Some((function, args)) = init {
        if let Err(f) = run_one(&function, &args) {
            let (Failure::Panicked(m) | Failure::Dispatch(m)) = f;
            eprintln!("pool worker {pid}: the initializer {function} failed: {m}");
            std::process::exit(INIT_FAILED_EXIT);
        }
    }
    let mut ran = 0u64;
    while let Ok(Task::Run { id, function, args }) = tasks.get() {
        // One look-up per chunk, not per item.
        let results: Vec<_> = match registered(&function) {
            Ok(entry) => args.iter().map(|a| run_entry(entry, a)).collect(),
            Err(message) => args
                .iter()
                .map(|_| Err(Failure::Dispatch(message.clone())))
                .collect(),
        };
        let n = results.len();
        if let Err(e) = replies.put(&Reply { id, pid, results }) {
            // A result the queue cannot carry (too large) fails its chunk, not the worker.
            let message = format!("cannot send the result back: {e}");
            let results = (0..n)
                .map(|_| Err(Failure::Dispatch(message.clone())))
                .collect();
            if replies.put(&Reply { id, pid, results }).is_err() {
                std::process::exit(REPLY_FAILED_EXIT);
            }
        }
        ran += 1;
        if max_tasks.is_some_and(|m| ran >= m) {
            break;
        }
    }
}

// The queues are opened by workers through `Shared`, which needs the types' errors to
// display; a compile-time check that both queue types are shared objects.
const _: fn() = || {
    fn is_shared<T: SharedObject>() {}
    is_shared::<Queue<Task>>();
    is_shared::<Queue<Reply>>();
};
