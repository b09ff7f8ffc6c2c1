//! [`Pool`]: worker processes that run registered functions on many inputs
//! (Python's `multiprocessing.Pool`), built on this workspace's queues.
//!
//! The engine has no thread of its own: whoever waits (a `map`, an [`Imap`]'s `next`,
//! an [`AsyncResult`]'s `get`) hands out tasks, collects replies and replaces dead
//! workers, under one lock shared by the pool and its pending results.

use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shm_collections::{Queue, QueueError, QueueSize};
use shm_core::SharedObject;

use crate::error::{Error, Result};
use crate::process::{Builder, Entry, Process, panic_message, registered};
use crate::shared::Shared;

/// Chunks a worker may have been handed and not answered yet: enough that a worker
/// rarely runs dry and sleeps (a futex wake per task cost 3x at chunksize 1 with two),
/// few enough to bound what a killed worker takes down with it.
const OUTSTANDING: usize = 16;
/// Chunks per worker that `imap` reads ahead of its caller.
const IMAP_AHEAD: usize = 8;
/// Room of each worker's task queue and of the reply queue.
const QUEUE_BYTES: usize = 1 << 20;
/// How long a waiter waits for a reply before checking that the workers live.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long a worker that ran its `maxtasksperchild` may take to exit before it is
/// killed (it has sent its last reply: it only has to return from `main`).
const RETIRE_WITHIN: Duration = Duration::from_secs(5);

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
    id: u64,
    pid: u32,
    results: Vec<std::result::Result<Vec<u8>, Failure>>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Failure {
    Panicked(String),
    Dispatch(String),
}

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    tasks: Shared<Queue<Task>>,
    replies: Shared<Queue<Reply>>,
    /// The initializer's name and encoded argument.
    init: Option<(String, Vec<u8>)>,
    /// Exit after this many chunks (`maxtasksperchild`).
    max_tasks: Option<u64>,
}

/// Exit code of a worker whose initializer panicked or could not start.
const INIT_FAILED_EXIT: i32 = 4;
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

/// A chunk of items of one call: handed to a worker as one task.
struct Chunk {
    id: u64,
    function: &'static str,
    /// The encoded items; kept while outstanding only when it may be retried.
    args: Vec<Vec<u8>>,
    len: usize,
    retried: bool,
    /// Handed back once after its worker died before taking it.
    requeued: bool,
}

struct Worker {
    process: Process,
    tasks: Queue<Task>,
    /// The chunks handed to it and not answered yet, oldest first.
    outstanding: VecDeque<Chunk>,
    /// Chunks handed to it in all (for `maxtasksperchild`).
    handed: u64,
}

#[derive(Clone, Default)]
struct Config {
    init: Option<(String, Vec<u8>)>,
    max_tasks: Option<u64>,
    retry: bool,
}

/// The pool's state, shared with its [`Imap`]s and [`AsyncResult`]s.
struct Inner {
    workers: Vec<Worker>,
    replies: Queue<Reply>,
    config: Config,
    next_id: u64,
    closed: bool,
    terminated: bool,
    /// Chunks submitted and not handed to a worker yet, in order.
    backlog: VecDeque<Chunk>,
    /// Outcomes of finished chunks not collected yet.
    done: HashMap<u64, Vec<Result<Vec<u8>>>>,
    /// Chunks whose caller went away: their outcomes are dropped on arrival.
    abandoned: HashSet<u64>,
    last_check: Instant,
}

fn queue_err(e: QueueError) -> Error {
    Error::Pool {
        message: e.to_string(),
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves consistent enough state: every step
    // re-checks the workers.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// The name a worker finds `F` by, or why `F` has none.
fn function_name<F>() -> Result<&'static str> {
    let function = std::any::type_name::<F>();
    if std::mem::size_of::<F>() != 0 || function.contains("{{closure}}") {
        return Err(Error::NotSpawnable {
            function: function.to_owned(),
            reason: "expected a fn item (a closure has no name a worker can find)",
        });
    }
    Ok(function)
}

fn encode<A: Serialize>(function: &str, a: &A) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(a, bincode::config::standard()).map_err(|e| Error::Encode {
        function: function.to_owned(),
        message: e.to_string(),
    })
}

fn decode<R: DeserializeOwned>(function: &str, bytes: Result<Vec<u8>>) -> Result<R> {
    bincode::serde::decode_from_slice(&bytes?, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| Error::Pool {
            message: format!("cannot decode a result of {function}: {e}"),
        })
}

/// CPython's default chunk size for `map`: `len / (4 * workers)` rounded up, at least 1.
fn auto_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(workers.max(1).saturating_mul(4)).max(1)
}

impl Inner {
    fn start_worker(&self) -> Result<Worker> {
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

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Pool {
                message: "the pool is closed: expected an open pool for new tasks".into(),
            });
        }
        Ok(())
    }

    /// Queues `items` as chunks of at most `chunksize`; returns their ids and lengths.
    fn submit(
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
    fn settle(&mut self, error: Error) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.done.insert(id, vec![Err(error)]);
        id
    }

    fn finish(&mut self, id: u64, outcome: Vec<Result<Vec<u8>>>) {
        if !self.abandoned.remove(&id) {
            self.done.insert(id, outcome);
        }
    }

    /// The caller of these chunks went away: drop their outcomes.
    fn abandon(&mut self, ids: impl IntoIterator<Item = u64>) {
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

    fn pending(&self) -> usize {
        self.backlog.len()
            + self
                .workers
                .iter()
                .map(|w| w.outstanding.len())
                .sum::<usize>()
    }

    /// Hands out backlog chunks round-robin while a worker has room.
    fn feed(&mut self) {
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
    fn take(&mut self, reply: Reply) {
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
    fn reap(&mut self, all: bool) -> Result<()> {
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
    fn pump(&mut self, until: &dyn Fn(&Inner) -> bool, deadline: Option<Instant>) -> Result<bool> {
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
    fn wait_for(
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

/// Options of a [`Pool`]: number of workers, an initializer, `maxtasksperchild`,
/// retrying the tasks of a killed worker.
///
/// ```no_run
/// fn setup(greeting: String) { let _ = greeting; }
/// fn main() {
///     shm_process::main!(setup);
///     let pool = shm_process::Pool::builder()
///         .workers(2)
///         .initializer(setup, "hello".to_string())
///         .max_tasks_per_child(100)
///         .retry_killed(true)
///         .build()
///         .unwrap();
///     assert_eq!(pool.pids().len(), 2);
/// }
/// ```
#[derive(Clone, Default)]
pub struct PoolBuilder {
    workers: Option<usize>,
    config: Config,
    error: Option<String>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("workers", &self.workers)
            .field("initializer", &self.config.init.as_ref().map(|i| &i.0))
            .field("max_tasks_per_child", &self.config.max_tasks)
            .field("retry_killed", &self.config.retry)
            .finish()
    }
}

impl PoolBuilder {
    /// The number of workers (at least one; default: the available parallelism).
    ///
    /// ```
    /// let _ = shm_process::Pool::builder().workers(4);
    /// ```
    pub fn workers(mut self, n: usize) -> PoolBuilder {
        self.workers = Some(n);
        self
    }

    /// Each worker runs `f(args)` once when it starts, before any task (Python's
    /// `initializer` and `initargs`); `f` is registered in `main!` like a task. A worker
    /// whose initializer panics exits (code 4, its message on stderr): the tasks it held
    /// fail with [`Error::WorkerDied`] and it is replaced.
    ///
    /// ```
    /// fn init(n: u32) { let _ = n; }
    /// let _ = shm_process::Pool::builder().initializer(init, 7u32);
    /// ```
    pub fn initializer<A, F>(mut self, f: F, args: A) -> PoolBuilder
    where
        A: Serialize,
        F: Fn(A) + Copy + 'static,
    {
        let _ = f;
        match function_name::<F>().and_then(|name| Ok((name, encode(name, &args)?))) {
            Ok((name, bytes)) => self.config.init = Some((name.to_owned(), bytes)),
            Err(e) => self.error = Some(e.to_string()),
        }
        self
    }

    /// A worker exits after this many tasks (chunks) and is replaced by a fresh one
    /// (Python's `maxtasksperchild`, to release resources a task leaks). Default: never.
    ///
    /// ```
    /// let _ = shm_process::Pool::builder().max_tasks_per_child(10);
    /// ```
    pub fn max_tasks_per_child(mut self, n: u64) -> PoolBuilder {
        self.config.max_tasks = Some(n.max(1));
        self
    }

    /// Whether a chunk whose worker died (killed, out of memory) before it answered is
    /// run once more on another worker; a second death fails it with
    /// [`Error::WorkerDied`]. Default: no retry, the chunk fails at once. Retry only
    /// tasks that may run twice (a killed worker may have done part of the work).
    ///
    /// ```
    /// let _ = shm_process::Pool::builder().retry_killed(true);
    /// ```
    pub fn retry_killed(mut self, yes: bool) -> PoolBuilder {
        self.config.retry = yes;
        self
    }

    /// Starts the workers.
    ///
    /// Errors: [`Error::Pool`] for an initializer that is a closure or whose argument
    /// does not encode, [`Error::Spawn`], or a queue error as [`Error::Pool`].
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let pool = shm_process::Pool::builder().workers(1).build().unwrap();
    /// # }
    /// ```
    pub fn build(self) -> Result<Pool> {
        if let Some(message) = self.error {
            return Err(Error::Pool { message });
        }
        let n = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let replies = Queue::<Reply>::anonymous(QueueSize {
            messages: n.saturating_mul(OUTSTANDING).clamp(64, 4096),
            bytes: QUEUE_BYTES,
        })
        .map_err(queue_err)?;
        let mut inner = Inner {
            workers: Vec::new(),
            replies,
            config: self.config,
            next_id: 0,
            closed: false,
            terminated: false,
            backlog: VecDeque::new(),
            done: HashMap::new(),
            abandoned: HashSet::new(),
            last_check: Instant::now(),
        };
        for _ in 0..n {
            let w = inner.start_worker()?;
            inner.workers.push(w);
        }
        Ok(Pool {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

/// Worker processes that run registered functions (Python's `multiprocessing.Pool`).
///
/// Each worker has its own task queue, so the pool always knows which tasks a worker
/// holds: a worker killed mid-task (`kill -9`, OOM) is replaced, and each task it held
/// fails with [`Error::WorkerDied`] naming its exit (or runs once more, see
/// [`PoolBuilder::retry_killed`]), never a hang. Workers are daemons: they die with the
/// thread that started them (the one that made the pool, or one that waited when a
/// worker was replaced). Dropping the pool terminates them.
///
/// A task is a registered `fn(A) -> R` (see [`main!`](crate::main)); arguments and
/// results are any serde values; shared objects travel by name ([`Shared`] of a named
/// object: an anonymous one is refused with [`Error::Encode`], its descriptor cannot
/// reach a running worker).
///
/// Every blocking call returns once each task it waits for has answered or its worker
/// has died: a task that never returns blocks it, so a caller that needs a bound uses
/// [`Imap::next_timeout`] or [`AsyncResult::get`] with a timeout.
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
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("Pool")
            .field(
                "workers",
                &inner
                    .workers
                    .iter()
                    .map(|w| w.process.pid())
                    .collect::<Vec<_>>(),
            )
            .field("closed", &inner.closed)
            .finish()
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
        Pool::builder().workers(n).build()
    }

    /// Options beyond the number of workers: see [`PoolBuilder`].
    ///
    /// ```
    /// let _ = shm_process::Pool::builder().workers(2).retry_killed(true);
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Starts `n` workers that each run `init(args)` once before any task (Python's
    /// `Pool(n, initializer, initargs)`).
    ///
    /// ```no_run
    /// fn init(name: String) { let _ = name; }
    /// fn main() {
    ///     shm_process::main!(init);
    ///     let pool = shm_process::Pool::with_initializer(2, init, "db".to_string()).unwrap();
    /// }
    /// ```
    pub fn with_initializer<A, F>(n: usize, init: F, args: A) -> Result<Pool>
    where
        A: Serialize,
        F: Fn(A) + Copy + 'static,
    {
        Pool::builder().workers(n).initializer(init, args).build()
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
        lock(&self.inner)
            .workers
            .iter()
            .map(|w| w.process.pid())
            .collect()
    }

    fn encode_all<A: Serialize>(
        function: &'static str,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<Vec<u8>>> {
        items.into_iter().map(|a| encode(function, &a)).collect()
    }

    /// Runs `f` on every item in the workers and returns the results in order, or the
    /// first error in order: [`Error::Panicked`] (the task panicked), [`Error::WorkerDied`]
    /// (its worker was killed), [`Error::Dispatch`] (`f` is not registered in
    /// `main!`). Items travel in chunks of CPython's default size (`len / (4 *
    /// workers)` rounded up); see [`map_chunksize`](Self::map_chunksize). All tasks have
    /// finished when it returns.
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
        self.map_chunksize(f, items, 0)
    }

    /// [`map`](Self::map) with `chunksize` items per task (0: the automatic size). A
    /// chunk is one message each way and one unit of `maxtasksperchild` and of retry.
    ///
    /// ```no_run
    /// fn double(x: u32) -> u32 { 2 * x }
    /// fn main() {
    ///     shm_process::main!(double);
    ///     let mut pool = shm_process::Pool::new(2).unwrap();
    ///     assert_eq!(pool.map_chunksize(double, 0..5, 1).unwrap(), [0, 2, 4, 6, 8]);
    /// }
    /// ```
    pub fn map_chunksize<A, R, F, I>(&mut self, f: F, items: I, chunksize: usize) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let function = function_name::<F>()?;
        let args = Self::encode_all(function, items)?;
        let mut inner = lock(&self.inner);
        inner.check_open()?;
        let chunksize = if chunksize == 0 {
            auto_chunksize(args.len(), inner.workers.len())
        } else {
            chunksize
        };
        let ids = inner.submit(function, args, chunksize);
        // Outcomes stay in `done` until collected below, so a cursor over the ids keeps
        // the check linear in all (scanning from the first each time is quadratic).
        let cursor = std::cell::Cell::new(0);
        let all = |s: &Inner| {
            let mut i = cursor.get();
            while ids.get(i).is_some_and(|(id, _)| s.done.contains_key(id)) {
                i += 1;
            }
            cursor.set(i);
            i == ids.len()
        };
        if let Err(e) = inner.pump(&all, None) {
            inner.abandon(ids.iter().map(|(id, _)| *id));
            return Err(e);
        }
        let mut out = Vec::new();
        let mut first_err = None;
        for (id, _) in &ids {
            for r in inner.done.remove(id).unwrap_or_default() {
                match decode::<R>(function, r) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Python's `starmap`: there each item is a tuple unpacked into the function's
    /// positional arguments. A Rust task takes one argument, so a function of several
    /// takes them as a tuple, and `starmap` is [`map`](Self::map) over tuples (kept so
    /// that ported code reads the same).
    ///
    /// ```no_run
    /// fn add(ab: (u32, u32)) -> u32 { ab.0 + ab.1 }
    /// fn main() {
    ///     shm_process::main!(add);
    ///     let mut pool = shm_process::Pool::new(2).unwrap();
    ///     assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    /// }
    /// ```
    pub fn starmap<A, R, F, I>(&mut self, f: F, items: I) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map(f, items)
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
        let mut v = self.map_chunksize(f, [arg], 1)?;
        v.pop().ok_or_else(|| Error::Pool {
            message: "expected one result, found none".into(),
        })
    }

    /// Starts `f(arg)` in a worker and returns at once (Python's `apply_async`): the
    /// [`AsyncResult`] waits for it with a timeout. The task runs while anyone waits on
    /// the pool (this result, another one, a `map`).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// fn square(x: u64) -> u64 { x * x }
    /// fn main() {
    ///     shm_process::main!(square);
    ///     let mut pool = shm_process::Pool::new(1).unwrap();
    ///     let r = pool.apply_async(square, 9).unwrap();
    ///     assert_eq!(r.get(Duration::from_secs(30)).unwrap(), 81);
    /// }
    /// ```
    pub fn apply_async<A, R, F>(&mut self, f: F, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
    {
        let _ = f;
        let function = function_name::<F>()?;
        let bytes = encode(function, &arg)?;
        let mut inner = lock(&self.inner);
        inner.check_open()?;
        let id = inner.submit(function, vec![bytes], 1)[0].0;
        inner.feed();
        drop(inner);
        Ok(AsyncResult {
            inner: Arc::clone(&self.inner),
            id,
            function,
            taken: std::sync::atomic::AtomicBool::new(false),
            _r: PhantomData,
        })
    }

    fn imap_with<'a, A, R, F, I>(
        &mut self,
        f: F,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<Imap<'a, R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        let _ = f;
        let function = function_name::<F>()?;
        let inner = lock(&self.inner);
        inner.check_open()?;
        // Chunks read ahead of the caller: enough to keep every worker busy, few
        // enough to stay lazy over an endless input.
        let window = inner.workers.len() * IMAP_AHEAD;
        drop(inner);
        Ok(Imap {
            inner: Arc::clone(&self.inner),
            items: Box::new(items.into_iter().map(move |a| encode(function, &a))),
            function,
            chunksize: chunksize.max(1),
            window,
            ids: VecDeque::new(),
            ready: VecDeque::new(),
            ordered,
            _r: PhantomData,
        })
    }

    /// A lazy iterator of the results of `f` on `items`, in order (Python's `imap`):
    /// items are read and handed out in chunks of `chunksize` only a few chunks per
    /// worker ahead of the caller, and each result is yielded as soon as it and those
    /// before it are in. Each item's error is its own (the next ones still come).
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// fn main() {
    ///     shm_process::main!(square);
    ///     let mut pool = shm_process::Pool::new(2).unwrap();
    ///     let v: Vec<u64> = pool.imap(square, 1..=3, 1).unwrap().map(Result::unwrap).collect();
    ///     assert_eq!(v, [1, 4, 9]);
    /// }
    /// ```
    pub fn imap<'a, A, R, F, I>(&mut self, f: F, items: I, chunksize: usize) -> Result<Imap<'a, R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        self.imap_with(f, items, chunksize, true)
    }

    /// Like [`imap`](Self::imap), but each chunk's results come as soon as the chunk is
    /// done, in any order (Python's `imap_unordered`).
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 { x * x }
    /// fn main() {
    ///     shm_process::main!(square);
    ///     let mut pool = shm_process::Pool::new(2).unwrap();
    ///     let mut v: Vec<u64> =
    ///         pool.imap_unordered(square, 1..=3, 1).unwrap().map(Result::unwrap).collect();
    ///     v.sort();
    ///     assert_eq!(v, [1, 4, 9]);
    /// }
    /// ```
    pub fn imap_unordered<'a, A, R, F, I>(
        &mut self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<Imap<'a, R>>
    where
        A: Serialize,
        R: DeserializeOwned,
        F: Fn(A) -> R + Copy + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        self.imap_with(f, items, chunksize, false)
    }

    /// No more tasks (Python's `close`): tasks already submitted still run; then
    /// [`join`](Self::join) waits for them and for the workers to exit.
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let mut pool = shm_process::Pool::new(1).unwrap();
    /// pool.close().unwrap();
    /// pool.join().unwrap();
    /// # }
    /// ```
    pub fn close(&mut self) -> Result<()> {
        lock(&self.inner).closed = true;
        Ok(())
    }

    /// Waits for every submitted task and then for every worker to exit; call
    /// [`close`](Self::close) (or [`terminate`](Self::terminate)) first. Bound: the
    /// longest pending task.
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
        let mut inner = lock(&self.inner);
        if !inner.closed {
            return Err(Error::Pool {
                message: "expected a closed pool to join, found it open: call close() first".into(),
            });
        }
        if inner.terminated {
            return Ok(());
        }
        inner.pump(&|s| s.pending() == 0, None)?;
        for w in &inner.workers {
            // A worker that already exited (maxtasksperchild) does not read it.
            let _ = w.tasks.put_nowait(&Task::Stop);
        }
        for w in &mut inner.workers {
            w.process.join()?;
        }
        Ok(())
    }

    /// Kills every worker (SIGKILL) and waits for them (Python's `terminate`); tasks not
    /// finished fail with [`Error::Pool`].
    ///
    /// ```no_run
    /// # fn main() { shm_process::main!();
    /// let mut pool = shm_process::Pool::new(2).unwrap();
    /// pool.terminate().unwrap();
    /// # }
    /// ```
    pub fn terminate(&mut self) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.terminated = true;
        for w in &mut inner.workers {
            w.process.kill()?;
        }
        for w in &mut inner.workers {
            let _ = w.process.join();
        }
        let mut chunks: Vec<Chunk> = inner.backlog.drain(..).collect();
        for w in &mut inner.workers {
            chunks.extend(w.outstanding.drain(..));
        }
        for c in chunks {
            let outcome = (0..c.len)
                .map(|_| {
                    Err(Error::Pool {
                        message: "the pool was terminated before the task finished".into(),
                    })
                })
                .collect();
            inner.finish(c.id, outcome);
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

/// The result of [`Pool::apply_async`] (Python's `AsyncResult`).
///
/// ```no_run
/// use std::time::Duration;
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
/// fn main() {
///     shm_process::main!(nap);
///     let mut pool = shm_process::Pool::new(1).unwrap();
///     let r = pool.apply_async(nap, 500).unwrap();
///     assert!(!r.wait(Duration::from_millis(10)).unwrap());
///     assert!(r.wait(Duration::from_secs(30)).unwrap());
///     assert!(r.ready() && r.successful() == Some(true));
///     assert_eq!(r.get(Duration::ZERO).unwrap(), 500);
/// }
/// ```
pub struct AsyncResult<R> {
    inner: Arc<Mutex<Inner>>,
    id: u64,
    function: &'static str,
    taken: std::sync::atomic::AtomicBool,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("id", &self.id)
            .field("function", &self.function)
            .finish()
    }
}

impl<R: DeserializeOwned> AsyncResult<R> {
    fn deadline(timeout: Duration) -> Option<Instant> {
        Instant::now().checked_add(timeout)
    }

    /// Waits at most `timeout` (a huge one: no deadline) for the task: whether it is
    /// done (finished, failed, or its worker died).
    ///
    /// ```no_run
    /// # fn f(_: ()) {}
    /// # fn main() { shm_process::main!(f);
    /// # let mut pool = shm_process::Pool::new(1).unwrap();
    /// let r = pool.apply_async(f, ()).unwrap();
    /// assert!(r.wait(std::time::Duration::from_secs(30)).unwrap());
    /// # }
    /// ```
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        if self.taken.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(true);
        }
        let id = self.id;
        lock(&self.inner).pump(&|s| s.done.contains_key(&id), Self::deadline(timeout))
    }

    /// Whether the task is done; does not wait (it collects replies that are in).
    ///
    /// ```no_run
    /// # fn f(_: ()) {}
    /// # fn main() { shm_process::main!(f);
    /// # let mut pool = shm_process::Pool::new(1).unwrap();
    /// let r = pool.apply_async(f, ()).unwrap();
    /// r.wait(std::time::Duration::from_secs(30)).unwrap();
    /// assert!(r.ready());
    /// # }
    /// ```
    pub fn ready(&self) -> bool {
        self.wait(Duration::ZERO).unwrap_or(true)
    }

    /// Whether the task succeeded: `None` while it is not done (Python raises there).
    ///
    /// ```no_run
    /// # fn f(_: ()) { panic!("no") }
    /// # fn main() { shm_process::main!(f);
    /// # let mut pool = shm_process::Pool::new(1).unwrap();
    /// let r = pool.apply_async(f, ()).unwrap();
    /// r.wait(std::time::Duration::from_secs(30)).unwrap();
    /// assert_eq!(r.successful(), Some(false));
    /// # }
    /// ```
    pub fn successful(&self) -> Option<bool> {
        if !self.ready() {
            return None;
        }
        let inner = lock(&self.inner);
        let outcome = inner.done.get(&self.id)?;
        Some(outcome.iter().all(|r| r.is_ok()))
    }

    /// Waits at most `timeout` (a huge one: no deadline) and returns the result (once:
    /// a second `get` after the result was taken is an [`Error::Pool`]), or
    /// [`Error::Timeout`] while the task is not done (it keeps running: `get` again).
    ///
    /// ```no_run
    /// # fn f(x: u8) -> u8 { x }
    /// # fn main() { shm_process::main!(f);
    /// # let mut pool = shm_process::Pool::new(1).unwrap();
    /// let r = pool.apply_async(f, 3).unwrap();
    /// assert_eq!(r.get(std::time::Duration::from_secs(30)).unwrap(), 3);
    /// # }
    /// ```
    pub fn get(&self, timeout: Duration) -> Result<R> {
        if self.taken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Pool {
                message: format!(
                    "the result of {} was already taken by an earlier get",
                    self.function
                ),
            });
        }
        let outcome = lock(&self.inner).wait_for(self.id, Self::deadline(timeout))?;
        let Some(outcome) = outcome else {
            return Err(Error::Timeout {
                what: format!("the result of {}", self.function),
                timeout,
            });
        };
        self.taken.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = outcome.into_iter().next().unwrap_or_else(|| {
            Err(Error::Pool {
                message: "expected one result, found none".into(),
            })
        });
        decode(self.function, r)
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        if !self.taken.load(std::sync::atomic::Ordering::Relaxed) {
            lock(&self.inner).abandon([self.id]);
        }
    }
}

/// The lazy iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: each item is the
/// result of one input item. `next` blocks until a result is in (bound: the running
/// task); [`next_timeout`](Self::next_timeout) waits at most a given time. Dropping it
/// early drops the results still to come (tasks already handed out still run).
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
/// fn main() {
///     shm_process::main!(square);
///     let mut pool = shm_process::Pool::new(2).unwrap();
///     let mut it = pool.imap(square, 0.., 4).unwrap(); // an endless input: lazy
///     assert_eq!(it.next().unwrap().unwrap(), 0);
///     assert_eq!(it.nth(2).unwrap().unwrap(), 9);
/// }
/// ```
pub struct Imap<'a, R> {
    inner: Arc<Mutex<Inner>>,
    items: Box<dyn Iterator<Item = Result<Vec<u8>>> + 'a>,
    function: &'static str,
    chunksize: usize,
    /// Chunks in flight at most.
    window: usize,
    /// Chunks submitted and not yielded yet, in input order.
    ids: VecDeque<u64>,
    /// Results of a chunk taken and not yielded yet.
    ready: VecDeque<Result<R>>,
    ordered: bool,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("function", &self.function)
            .field("chunksize", &self.chunksize)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<R: DeserializeOwned> Imap<'_, R> {
    /// Reads input items while fewer than `window` chunks are in flight.
    /// The input is read without the pool's lock: an input iterator may use the pool.
    fn top_up(&mut self) {
        while self.ids.len() < self.window {
            let mut chunk = Vec::new();
            let mut bad = None;
            while chunk.len() < self.chunksize {
                match self.items.next() {
                    Some(Ok(a)) => chunk.push(a),
                    Some(Err(e)) => {
                        bad = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let (had_chunk, had_bad) = (!chunk.is_empty(), bad.is_some());
            let mut inner = lock(&self.inner);
            if had_chunk {
                let ids = inner.submit(self.function, chunk, self.chunksize);
                self.ids.extend(ids.into_iter().map(|(id, _)| id));
            }
            if let Some(e) = bad {
                // An item that did not encode fails alone, in its place.
                let id = inner.settle(e);
                self.ids.push_back(id);
            }
            if !had_chunk && !had_bad {
                break;
            }
        }
    }

    /// The next result, waiting at most `timeout` (a huge one: no deadline):
    /// `Some(Err(Error::Timeout))` when none came in time (call again: the tasks go on),
    /// `None` at the end.
    ///
    /// ```no_run
    /// # fn f(x: u8) -> u8 { x }
    /// # fn main() { shm_process::main!(f);
    /// # let mut pool = shm_process::Pool::new(1).unwrap();
    /// let mut it = pool.imap(f, [1u8], 1).unwrap();
    /// let first = it.next_timeout(std::time::Duration::from_secs(30));
    /// assert_eq!(first.unwrap().unwrap(), 1);
    /// # }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            self.top_up();
            let inner_arc = Arc::clone(&self.inner);
            let mut inner = lock(&inner_arc);
            if self.ids.is_empty() {
                return None;
            }
            let target = if self.ordered {
                let first = self.ids[0];
                match inner.pump(&|s| s.done.contains_key(&first), deadline) {
                    Ok(true) => Some(first),
                    Ok(false) => None,
                    Err(e) => return Some(Err(e)),
                }
            } else {
                let ids = &self.ids;
                match inner.pump(&|s| ids.iter().any(|id| s.done.contains_key(id)), deadline) {
                    Ok(true) => ids.iter().copied().find(|id| inner.done.contains_key(id)),
                    Ok(false) => None,
                    Err(e) => return Some(Err(e)),
                }
            };
            let Some(id) = target else {
                return Some(Err(Error::Timeout {
                    what: format!("the next result of {}", self.function),
                    timeout,
                }));
            };
            self.ids.retain(|i| *i != id);
            let outcome = inner.done.remove(&id).unwrap_or_default();
            let function = self.function;
            self.ready
                .extend(outcome.into_iter().map(|r| decode(function, r)));
        }
    }
}

impl<R: DeserializeOwned> Iterator for Imap<'_, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.next_timeout(Duration::MAX)
    }
}

impl<R> Drop for Imap<'_, R> {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.ids.drain(..).collect();
        lock(&self.inner).abandon(ids);
    }
}

// The queues are opened by workers through `Shared`, which needs the types' errors to
// display; a compile-time check that both queue types are shared objects.
const _: fn() = || {
    fn is_shared<T: SharedObject>() {}
    is_shared::<Queue<Task>>();
    is_shared::<Queue<Reply>>();
};

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
