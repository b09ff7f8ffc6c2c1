//! The pool's bookkeeping, under its one lock: chunks handed to workers, replies
//! taken, dead workers replaced.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::{Queue, QueueError, QueueSize};
use shm_core::SharedObject;

use super::worker::{Failure, INIT_FAILED_EXIT, Reply, Task, WorkerArgs, worker};
use crate::error::{Error, Result};
use crate::process::{Builder, Process};
use crate::shared::Shared;

/// Chunks a worker may have been handed and not answered yet: enough that a worker
/// rarely runs dry and sleeps (a futex wake per task cost 3x at chunksize 1 with two),
/// few enough to bound what a killed worker takes down with it.
pub(super) const OUTSTANDING: usize = 16;
/// Room of each worker's task queue and of the reply queue.
pub(super) const QUEUE_BYTES: usize = 1 << 20;
/// How long a waiter waits for a reply before checking that the workers live.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long a worker that ran its `maxtasksperchild` may take to exit before it is
/// killed (it has sent its last reply: it only has to return from `main`).
const RETIRE_WITHIN: Duration = Duration::from_secs(5);

/// A chunk of items of one call: handed to a worker as one task.
pub(super) struct Chunk {
    pub(super) id: u64,
    pub(super) function: &'static str,
    /// The encoded items; kept while outstanding only when it may be retried.
    pub(super) args: Vec<Vec<u8>>,
    pub(super) len: usize,
    pub(super) retried: bool,
    /// Handed back once after its worker died before taking it.
    pub(super) requeued: bool,
}

pub(super) struct Worker {
    pub(super) process: Process,
    pub(super) tasks: Queue<Task>,
    /// The chunks handed to it and not answered yet, oldest first.
    pub(super) outstanding: VecDeque<Chunk>,
    /// Chunks handed to it in all (for `maxtasksperchild`).
    pub(super) handed: u64,
}

#[derive(Clone, Default)]
pub(super) struct Config {
    pub(super) init: Option<(String, Vec<u8>)>,
    pub(super) max_tasks: Option<u64>,
    pub(super) retry: bool,
}

/// The pool's state, shared with its [`Imap`]s and [`AsyncResult`]s.
pub(super) struct Inner {
    pub(super) workers: Vec<Worker>,
    pub(super) replies: Queue<Reply>,
    pub(super) config: Config,
    pub(super) next_id: u64,
    pub(super) closed: bool,
    pub(super) terminated: bool,
    /// Chunks submitted and not handed to a worker yet, in order.
    pub(super) backlog: VecDeque<Chunk>,
    /// Outcomes of finished chunks not collected yet.
    pub(super) done: HashMap<u64, Vec<Result<Vec<u8>>>>,
    /// Chunks whose caller went away: their outcomes are dropped on arrival.
    pub(super) abandoned: HashSet<u64>,
    pub(super) last_check: Instant,
}

pub(super) fn queue_err(e: QueueError) -> Error {
    Error::Pool {
        message: e.to_string(),
    }
}

pub(super) fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves consistent enough state: every step
    // re-checks the workers.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// The name a worker finds `F` by, or why `F` has none.
pub(super) fn function_name<F>() -> Result<&'static str> {
    let function = std::any::type_name::<F>();
    if std::mem::size_of::<F>() != 0 || function.contains("{{closure}}") {
        return Err(Error::NotSpawnable {
            function: function.to_owned(),
            reason: "expected a fn item (a closure has no name a worker can find)",
        });
    }
    Ok(function)
}

pub(super) fn encode<A: Serialize>(function: &str, a: &A) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(a, bincode::config::standard()).map_err(|e| Error::Encode {
        function: function.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn decode<R: DeserializeOwned>(function: &str, bytes: Result<Vec<u8>>) -> Result<R> {
    bincode::serde::decode_from_slice(&bytes?, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| Error::Pool {
            message: format!("cannot decode a result of {function}: {e}"),
        })
}

/// CPython's default chunk size for `map`: `len / (4 * workers)` rounded up, at least 1.
pub(super) fn auto_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(workers.max(1).saturating_mul(4)).max(1)
}

impl Inner {
    pub(super) fn start_worker(&self) -> Result<Worker> {
        let tasks = Queue::<Task>::anonymous(QueueSize {
            messages: 2 * OUTSTANDING,
            bytes: QUEUE_BYTES,
        })
        .map_err(queue_err)?;
        let args = WorkerArgs {
            tasks: Shared::of(&tasks).map_err(queue_err)?,
            replies: Shared::of(&self.replies).map_err(queue_err)?,
            init: self.config.init.clone(),
            max_tasks: self.config.max_tasks,
        };
        let process = Builder::new().daemon(true).spawn(worker, args)?;
        Ok(Worker {
            process,
            tasks,
            outstanding: VecDeque::new(),
            handed: 0,
        })
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Pool {
                message: "the pool is closed: expected an open pool for new tasks".into(),
            });
        }
        Ok(())
    }

    /// Queues `items` as chunks of at most `chunksize`; returns their ids and lengths.
    pub(super) fn submit(
        &mut self,
        function: &'static str,
        items: Vec<Vec<u8>>,
        chunksize: usize,
    ) -> Vec<(u64, usize)> {
        let mut ids = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let args: Vec<_> = items.by_ref().take(chunksize.max(1)).collect();
            let id = self.next_id;
            self.next_id += 1;
            ids.push((id, args.len()));
            self.backlog.push_back(Chunk {
                id,
                function,
                len: args.len(),
                args,
                retried: false,
                requeued: false,
            });
        }
        ids
    }

    /// Records an outcome known without a worker (an item that did not encode).
    pub(super) fn settle(&mut self, error: Error) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.done.insert(id, vec![Err(error)]);
        id
    }

    pub(super) fn finish(&mut self, id: u64, outcome: Vec<Result<Vec<u8>>>) {
        if !self.abandoned.remove(&id) {
            self.done.insert(id, outcome);
        }
    }

    /// The caller of these chunks went away: drop their outcomes.
    pub(super) fn abandon(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            if self.done.remove(&id).is_some() {
                continue;
            }
            if let Some(pos) = self.backlog.iter().position(|c| c.id == id) {
                self.backlog.remove(pos);
                continue;
            }
            if self
                .workers
                .iter()
                .any(|w| w.outstanding.iter().any(|c| c.id == id))
            {
                self.abandoned.insert(id);
            }
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.backlog.len()
            + self
                .workers
                .iter()
                .map(|w| w.outstanding.len())
                .sum::<usize>()
    }

    /// Hands out backlog chunks round-robin while a worker has room.
    pub(super) fn feed(&mut self) {
        let retry = self.config.retry;
        let max = self.config.max_tasks;
        let mut progress = true;
        while progress && !self.backlog.is_empty() {
            progress = false;
            for i in 0..self.workers.len() {
                let w = &mut self.workers[i];
                if w.outstanding.len() >= OUTSTANDING || max.is_some_and(|m| w.handed >= m) {
                    continue;
                }
                let Some(mut chunk) = self.backlog.pop_front() else {
                    return;
                };
                let task = Task::Run {
                    id: chunk.id,
                    function: chunk.function.to_owned(),
                    args: std::mem::take(&mut chunk.args),
                };
                let sent = w.tasks.put_nowait(&task);
                let Task::Run { args, .. } = task else {
                    unreachable!("built as Run above")
                };
                match sent {
                    Ok(()) => {
                        if retry {
                            chunk.args = args;
                        }
                        w.handed += 1;
                        w.outstanding.push_back(chunk);
                        progress = true;
                    }
                    Err(QueueError::Full { .. }) => {
                        chunk.args = args;
                        self.backlog.push_front(chunk);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let outcome = (0..chunk.len)
                            .map(|_| {
                                Err(Error::Pool {
                                    message: message.clone(),
                                })
                            })
                            .collect();
                        self.finish(chunk.id, outcome);
                        progress = true;
                    }
                }
            }
        }
    }

    /// Records a reply (one of an abandoned or already failed chunk is dropped).
    pub(super) fn take(&mut self, reply: Reply) {
        let found = self.workers.iter_mut().find_map(|w| {
            let pos = w.outstanding.iter().position(|c| c.id == reply.id)?;
            w.outstanding.remove(pos)
        });
        let Some(chunk) = found else { return };
        let function = chunk.function;
        let pid = reply.pid;
        let mut outcome: Vec<Result<Vec<u8>>> = reply
            .results
            .into_iter()
            .map(|r| {
                r.map_err(|f| match f {
                    Failure::Panicked(message) => Error::Panicked {
                        pid,
                        function: function.to_owned(),
                        message,
                    },
                    Failure::Dispatch(message) => Error::Dispatch {
                        pid,
                        function: function.to_owned(),
                        message,
                    },
                })
            })
            .collect();
        // Hostile or damaged replies cannot make a caller wait for missing items.
        while outcome.len() < chunk.len {
            outcome.push(Err(Error::Pool {
                message: format!(
                    "expected {} results of {function} from worker {pid}, found fewer",
                    chunk.len
                ),
            }));
        }
        outcome.truncate(chunk.len);
        self.finish(chunk.id, outcome);
    }

    /// Replaces workers that exited: each chunk a dead worker held is retried once if
    /// the pool was asked to, else fails with [`Error::WorkerDied`]. A worker that ran
    /// its `maxtasksperchild` is waited for and replaced.
    pub(super) fn reap(&mut self, all: bool) -> Result<()> {
        if self.terminated {
            return Ok(());
        }
        let max = self.config.max_tasks;
        for i in 0..self.workers.len() {
            let w = &mut self.workers[i];
            let retiring = max.is_some_and(|m| w.handed >= m) && w.outstanding.is_empty();
            if !all && !retiring {
                continue;
            }
            let code = if retiring {
                match w.process.join_timeout(RETIRE_WITHIN) {
                    Ok(Some(code)) => code,
                    _ => {
                        let _ = w.process.kill();
                        let _ = w.process.join();
                        w.process.exitcode().unwrap_or(-libc::SIGKILL)
                    }
                }
            } else {
                match w.process.exitcode() {
                    Some(code) => code,
                    None => continue,
                }
            };
            // Replies it sent before it died come first.
            while let Ok(reply) = self.replies.get_nowait() {
                self.take(reply);
            }
            let fresh = self.start_worker()?;
            let dead = std::mem::replace(&mut self.workers[i], fresh);
            let pid = dead.process.pid();
            // Chunks still in its task queue never started: they go back to the backlog
            // as they are (not a retry), whatever the retry option says.
            let mut untaken = HashMap::new();
            while let Ok(Task::Run { id, args, .. }) = dead.tasks.get_nowait() {
                untaken.insert(id, args);
            }
            for mut chunk in dead.outstanding.into_iter().rev() {
                if let Some(args) = untaken.remove(&chunk.id) {
                    chunk.args = args;
                    // Once only, and not after a failed initializer: workers that die
                    // before taking anything must not be replaced for ever.
                    if !chunk.requeued && code != INIT_FAILED_EXIT {
                        chunk.requeued = true;
                        // An abandoned one is simply dropped (nobody waits for it).
                        if !self.abandoned.remove(&chunk.id) {
                            self.backlog.push_front(chunk);
                        }
                        continue;
                    }
                }
                if self.config.retry && !chunk.retried && !self.abandoned.contains(&chunk.id) {
                    chunk.retried = true;
                    self.backlog.push_front(chunk);
                    continue;
                }
                let outcome = (0..chunk.len)
                    .map(|_| {
                        Err(Error::WorkerDied {
                            pid,
                            exitcode: code,
                            function: chunk.function.to_owned(),
                        })
                    })
                    .collect();
                self.finish(chunk.id, outcome);
            }
        }
        Ok(())
    }

    /// Drives the pool until `until` holds (`Ok(true)`) or the deadline passes
    /// (`Ok(false)`; `None`: no deadline).
    pub(super) fn pump(
        &mut self,
        until: &dyn Fn(&Inner) -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        loop {
            self.feed();
            if until(self) {
                return Ok(true);
            }
            if self.terminated {
                return Err(Error::Pool {
                    message: "the pool was terminated: its tasks will not finish".into(),
                });
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => return Ok(false),
                Some(d) => CHECK_EVERY.min(d - now),
                None => CHECK_EVERY,
            };
            // Every reply that is in, in one lock of the queue.
            match self.replies.get_many_timeout(usize::MAX, wait) {
                Ok(replies) => {
                    for reply in replies {
                        self.take(reply);
                    }
                    if self.config.max_tasks.is_some() {
                        self.reap(false)?;
                    }
                    if self.last_check.elapsed() >= CHECK_EVERY {
                        self.last_check = Instant::now();
                        self.reap(true)?;
                    }
                }
                Err(QueueError::Empty { .. }) => {
                    self.last_check = Instant::now();
                    self.reap(true)?;
                }
                Err(e) => return Err(queue_err(e)),
            }
        }
    }

    /// Takes the outcome of chunk `id`, waiting until `deadline` for it.
    pub(super) fn wait_for(
        &mut self,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<Result<Vec<u8>>>>> {
        if !self.pump(&|s| s.done.contains_key(&id), deadline)? {
            return Ok(None);
        }
        Ok(self.done.remove(&id))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auto_chunksize_is_cpythons() {
        assert_eq!(super::auto_chunksize(10_000, 2), 1250);
        assert_eq!(super::auto_chunksize(10, 2), 2);
        assert_eq!(super::auto_chunksize(9, 2), 2);
        assert_eq!(super::auto_chunksize(8, 2), 1);
        assert_eq!(super::auto_chunksize(0, 2), 1);
        assert_eq!(super::auto_chunksize(1, 0), 1);
    }
}
