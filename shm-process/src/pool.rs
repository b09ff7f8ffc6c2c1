//! [`Pool`]: worker processes that run registered functions on many inputs
//! (Python's `multiprocessing.Pool`), built on this workspace's queues.

use std::collections::VecDeque;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shm_collections::{Queue, QueueError, QueueSize};
use shm_core::SharedObject;

use crate::error::{Error, Result};
use crate::process::{Builder, Process, panic_message, registered};
use crate::shared::Shared;

/// Tasks a worker may have been handed and not answered yet: two keep it busy while
/// the parent reads a reply, and bound what a killed worker takes down with it.
const OUTSTANDING: usize = 2;
/// Room of each worker's task queue and of the reply queue.
const QUEUE_BYTES: usize = 1 << 20;
/// How long the parent waits for a reply before checking that its workers live.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// What a worker's queue carries.
#[derive(Serialize, Deserialize)]
pub(crate) enum Task {
    /// Run `function` on the encoded `args`.
    Run {
        id: u64,
        function: String,
        args: Vec<u8>,
    },
    /// No more work: exit.
    Stop,
}

/// What the reply queue carries.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reply {
    id: u64,
    pid: u32,
    result: std::result::Result<Vec<u8>, Failure>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Failure {
    Panicked(String),
    Dispatch(String),
}

/// The pool worker's main loop, run in a child (registered by every `main!`).
pub(crate) fn worker(args: (Shared<Queue<Task>>, Shared<Queue<Reply>>)) {
    let (tasks, replies) = args;
    let pid = std::process::id();
    while let Ok(Task::Run { id, function, args }) = tasks.get() {
        let result = match registered(&function) {
            Err(message) => Err(Failure::Dispatch(message)),
            Ok(entry) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (entry.run)(&args)))
                {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(message)) => Err(Failure::Dispatch(message)),
                    Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
                }
            }
        };
        if let Err(e) = replies.put(&Reply { id, pid, result }) {
            // A result the queue cannot carry (too large) fails its task, not the worker.
            let result = Err(Failure::Dispatch(format!(
                "cannot send the result back: {e}"
            )));
            if replies.put(&Reply { id, pid, result }).is_err() {
                std::process::exit(3);
            }
        }
    }
}

struct Worker {
    process: Process,
    tasks: Queue<Task>,
    /// Ids of the tasks handed to it and not answered yet, oldest first.
    outstanding: VecDeque<u64>,
}

/// Worker processes that run registered functions (Python's `multiprocessing.Pool`).
///
/// Each worker has its own task queue, so the pool always knows which tasks a worker
/// holds: a worker killed mid-task (`kill -9`, OOM) is replaced, and each task it held
/// fails with [`Error::WorkerDied`] naming its exit, never a hang. Workers are daemons:
/// they die with the thread that made the pool. Dropping the pool terminates them.
///
/// Arguments and results are any serde values; shared objects travel by name
/// ([`Shared`] of a named object: an anonymous one is refused with [`Error::Encode`],
/// its descriptor cannot reach a running worker).
///
/// Not yet: `imap`, `imap_unordered`, `starmap`, `apply_async`, `chunksize`,
/// `maxtasksperchild`, an initializer, retrying a task of a killed worker.
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
/// fn main() {
///     shm_process::main!(square);
///     let mut pool = shm_process::Pool::new(2).unwrap();
///     assert_eq!(pool.map(square, [1, 2, 3]).unwrap(), [1, 4, 9]);
///     pool.close().unwrap();
///     pool.join().unwrap();
/// }
/// ```
pub struct Pool {
    workers: Vec<Worker>,
    replies: Queue<Reply>,
    next_id: u64,
    closed: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.pids())
            .field("closed", &self.closed)
            .finish()
    }
}

fn queue_err(e: QueueError) -> Error {
    Error::Pool {
        message: e.to_string(),
    }
}

impl Pool {
    /// Starts `n` worker processes (at least one).
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let pool = shm_process::Pool::new(4).unwrap();
    /// assert_eq!(pool.pids().len(), 4);
    /// # }
    /// ```
    pub fn new(n: usize) -> Result<Pool> {
        let replies = Queue::<Reply>::anonymous(QueueSize {
            messages: 64,
            bytes: QUEUE_BYTES,
        })
        .map_err(queue_err)?;
        let mut pool = Pool {
            workers: Vec::new(),
            replies,
            next_id: 0,
            closed: false,
        };
        for _ in 0..n.max(1) {
            let w = pool.start_worker()?;
            pool.workers.push(w);
        }
        Ok(pool)
    }

    fn start_worker(&self) -> Result<Worker> {
        let tasks = Queue::<Task>::anonymous(QueueSize {
            messages: 8,
            bytes: QUEUE_BYTES,
        })
        .map_err(queue_err)?;
        let args = (
            Shared::of(&tasks).map_err(queue_err)?,
            Shared::of(&self.replies).map_err(queue_err)?,
        );
        let process = Builder::new().daemon(true).spawn(worker, args)?;
        Ok(Worker {
            process,
            tasks,
            outstanding: VecDeque::new(),
        })
    }

    /// The workers' process ids (a replaced worker has a new one).
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let pool = shm_process::Pool::new(1).unwrap();
    /// assert!(pool.pids()[0] > 0);
    /// # }
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.process.pid()).collect()
    }

    /// Runs `f` on every item in the workers and returns the results in order, or the
    /// first error in order: [`Error::Panicked`] (the task panicked), [`Error::WorkerDied`]
    /// (its worker was killed), [`Error::Dispatch`] (`f` is not registered in
    /// `main!`). All tasks have finished when it returns.
    ///
    /// ```no_run
    /// fn len(s: String) -> usize { s.len() }
    /// fn main() {
    ///     shm_process::main!(len);
    ///     let mut pool = shm_process::Pool::new(2).unwrap();
    ///     assert_eq!(pool.map(len, ["a".to_string(), "bcd".into()]).unwrap(), [1, 3]);
    /// }
    /// ```
    pub fn map<A, R, F, I>(&mut self, f: F, items: I) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let function = std::any::type_name::<F>();
        if std::mem::size_of::<F>() != 0 || function.contains("{{closure}}") {
            return Err(Error::NotSpawnable {
                function: function.to_owned(),
                reason: "expected a fn item (a closure has no name a worker can find)",
            });
        }
        let args = items
            .into_iter()
            .map(|a| {
                bincode::serde::encode_to_vec(&a, bincode::config::standard()).map_err(|e| {
                    Error::Encode {
                        function: function.to_owned(),
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.run(function, args)?
            .into_iter()
            .map(|r| {
                let bytes = r?;
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                    .map(|(v, _)| v)
                    .map_err(|e| Error::Pool {
                        message: format!("cannot decode a result of {function}: {e}"),
                    })
            })
            .collect()
    }

    /// Runs `f(arg)` in a worker and returns its result (Python's `apply`).
    ///
    /// ```no_run
    /// fn add(ab: (u32, u32)) -> u32 { ab.0 + ab.1 }
    /// fn main() {
    ///     shm_process::main!(add);
    ///     let mut pool = shm_process::Pool::new(1).unwrap();
    ///     assert_eq!(pool.apply(add, (2, 3)).unwrap(), 5);
    /// }
    /// ```
    pub fn apply<A, R, F>(&mut self, f: F, arg: A) -> Result<R>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
    {
        let mut v = self.map(f, [arg])?;
        v.pop().ok_or_else(|| Error::Pool {
            message: "expected one result, found none".into(),
        })
    }

    /// Hands out the encoded tasks and collects one outcome per task, in order.
    fn run(&mut self, function: &'static str, args: Vec<Vec<u8>>) -> Result<Vec<Result<Vec<u8>>>> {
        if self.closed {
            return Err(Error::Pool {
                message: "the pool is closed: expected an open pool for new tasks".into(),
            });
        }
        let n = args.len();
        let base = self.next_id;
        self.next_id += n as u64;
        let mut out: Vec<Option<Result<Vec<u8>>>> = (0..n).map(|_| None).collect();
        let mut args = args.into_iter().enumerate();
        let mut pending = args.next();
        let mut done = 0;
        while done < n {
            // Hand out tasks round-robin while a worker has room.
            'feed: for _ in 0..OUTSTANDING {
                for w in &mut self.workers {
                    if w.outstanding.len() >= OUTSTANDING {
                        continue;
                    }
                    let Some((i, a)) = pending.take() else {
                        break 'feed;
                    };
                    let id = base + i as u64;
                    let task = Task::Run {
                        id,
                        function: function.to_owned(),
                        args: a,
                    };
                    match w.tasks.put_nowait(&task) {
                        Ok(()) => w.outstanding.push_back(id),
                        Err(QueueError::Full { .. }) => {
                            let Task::Run { args, .. } = task else {
                                unreachable!("built as Run above")
                            };
                            pending = Some((i, args));
                            continue;
                        }
                        Err(e) => {
                            out[i] = Some(Err(queue_err(e)));
                            done += 1;
                        }
                    }
                    pending = args.next();
                }
            }
            match self.replies.get_timeout(CHECK_EVERY) {
                Ok(reply) => self.take(reply, base, function, &mut out, &mut done),
                Err(QueueError::Empty { .. }) => self.reap(base, function, &mut out, &mut done)?,
                Err(e) => return Err(queue_err(e)),
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every task answered"))
            .collect())
    }

    /// Records a reply (one of an earlier, abandoned call is dropped).
    fn take(
        &mut self,
        reply: Reply,
        base: u64,
        function: &str,
        out: &mut [Option<Result<Vec<u8>>>],
        done: &mut usize,
    ) {
        for w in &mut self.workers {
            w.outstanding.retain(|id| *id != reply.id);
        }
        let Some(slot) = reply
            .id
            .checked_sub(base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| out.get_mut(i))
        else {
            return;
        };
        if slot.is_some() {
            return;
        }
        *slot = Some(reply.result.map_err(|f| match f {
            Failure::Panicked(message) => Error::Panicked {
                pid: reply.pid,
                function: function.to_owned(),
                message,
            },
            Failure::Dispatch(message) => Error::Dispatch {
                pid: reply.pid,
                function: function.to_owned(),
                message,
            },
        }));
        *done += 1;
    }

    /// Replaces dead workers; each task a dead worker held fails with its exit.
    fn reap(
        &mut self,
        base: u64,
        function: &str,
        out: &mut [Option<Result<Vec<u8>>>],
        done: &mut usize,
    ) -> Result<()> {
        for i in 0..self.workers.len() {
            let Some(code) = self.workers[i].process.exitcode() else {
                continue;
            };
            // Replies it sent before it died come first.
            while let Ok(reply) = self.replies.get_nowait() {
                self.take(reply, base, function, out, done);
            }
            let fresh = self.start_worker()?;
            let dead = std::mem::replace(&mut self.workers[i], fresh);
            let pid = dead.process.pid();
            for id in dead.outstanding {
                let slot = id
                    .checked_sub(base)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| out.get_mut(i));
                if let Some(slot @ None) = slot {
                    *slot = Some(Err(Error::WorkerDied {
                        pid,
                        exitcode: code,
                        function: function.to_owned(),
                    }));
                    *done += 1;
                }
            }
        }
        Ok(())
    }

    /// No more tasks: each worker exits once its queue is drained (Python's `close`).
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let mut pool = shm_process::Pool::new(1).unwrap();
    /// pool.close().unwrap();
    /// pool.join().unwrap();
    /// # }
    /// ```
    pub fn close(&mut self) -> Result<()> {
        self.closed = true;
        for w in &self.workers {
            w.tasks.put(&Task::Stop).map_err(queue_err)?;
        }
        Ok(())
    }

    /// Waits for every worker to exit; call [`close`](Self::close) (or
    /// [`terminate`](Self::terminate)) first.
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let mut pool = shm_process::Pool::new(1).unwrap();
    /// assert!(pool.join().is_err()); // not closed
    /// pool.close().unwrap();
    /// pool.join().unwrap();
    /// # }
    /// ```
    pub fn join(&mut self) -> Result<()> {
        if !self.closed {
            return Err(Error::Pool {
                message: "expected a closed pool to join, found it open: call close() first".into(),
            });
        }
        for w in &mut self.workers {
            w.process.join()?;
        }
        Ok(())
    }

    /// Kills every worker (SIGKILL) and waits for them (Python's `terminate`).
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let mut pool = shm_process::Pool::new(2).unwrap();
    /// let pids = pool.pids();
    /// pool.terminate().unwrap();
    /// # }
    /// ```
    pub fn terminate(&mut self) -> Result<()> {
        self.closed = true;
        for w in &mut self.workers {
            w.process.kill()?;
        }
        for w in &mut self.workers {
            let _ = w.process.join();
        }
        Ok(())
    }
}

impl Drop for Pool {
    /// Terminates the workers, as Python's pool does when collected.
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

// The queues are opened by workers through `Shared`, which needs the types' errors to
// display; a compile-time check that both queue types are shared objects.
const _: fn() = || {
    fn is_shared<T: SharedObject>() {}
    is_shared::<Queue<Task>>();
    is_shared::<Queue<Reply>>();
};
