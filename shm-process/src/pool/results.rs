//! What a caller holds while the pool works: [`AsyncResult`] and [`Imap`].

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::dispatch::{Inner, decode, lock};
use crate::error::{Error, Result};

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) (Python's `AsyncResult`).
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
    pub(super) inner: Arc<Mutex<Inner>>,
    pub(super) id: u64,
    pub(super) function: &'static str,
    pub(super) taken: std::sync::atomic::AtomicBool,
    pub(super) _r: PhantomData<fn() -> R>,
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

/// The lazy iterator of [`Pool::imap`](crate::Pool::imap) and [`Pool::imap_unordered`](crate::Pool::imap_unordered): each item is the
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
    pub(super) inner: Arc<Mutex<Inner>>,
    pub(super) items: Box<dyn Iterator<Item = Result<Vec<u8>>> + 'a>,
    pub(super) function: &'static str,
    pub(super) chunksize: usize,
    /// Chunks in flight at most.
    pub(super) window: usize,
    /// Chunks submitted and not yielded yet, in input order.
    pub(super) ids: VecDeque<u64>,
    /// Results of a chunk taken and not yielded yet.
    pub(super) ready: VecDeque<Result<R>>,
    pub(super) ordered: bool,
    pub(super) _r: PhantomData<fn() -> R>,
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
