//! [`Pool`]: worker processes that run registered functions on many inputs
//! (Python's `multiprocessing.Pool`), built on this workspace's queues.
//!
//! The engine has no thread of its own: whoever waits (a `map`, an [`Imap`]'s `next`,
//! an [`AsyncResult`]'s `get`) hands out tasks, collects replies and replaces dead
//! workers, under one lock shared by the pool and its pending results.

mod dispatch;
mod results;
pub(crate) mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::{Queue, QueueSize};
use shm_core::SharedObject;

use crate::error::{Error, Result};
use dispatch::{
    Chunk, Config, Inner, OUTSTANDING, QUEUE_BYTES, auto_chunksize, decode, encode, function_name,
    lock, queue_err,
};
pub use results::{AsyncResult, Imap};
use worker::{Reply, Task};

/// Chunks per worker that `imap` reads ahead of its caller.
const IMAP_AHEAD: usize = 8;

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
/// results are any serde values; shared objects travel by name ([`Shared`](crate::Shared) of a named
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
