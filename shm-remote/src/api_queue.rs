//! The queue traits: one API over `shm_collections`' [`Queue`](shm_collections::Queue)
//! / [`JoinableQueue`](shm_collections::JoinableQueue) and this crate's Redis queues
//! ([`crate::queue`]).
//!
//! Errors both backends give the same way: no room ([`Error::Full`]), nothing to take
//! ([`Error::Empty`]), closed ([`Error::Closed`]), `join_timeout` ran out
//! ([`Error::Timeout`]), bytes that do not decode ([`Error::Corrupted`]), a value that
//! does not encode ([`Error::Encode`]), `task_done` too often
//! ([`is_task_done_too_many`]). Delivery differs and is documented per backend: the
//! shared-memory queues deliver at most once; the Redis `JoinableQueue` at least once.

use std::time::Duration;

use shm_collections::{Message, QueueError};

use crate::error::{Error, Result};

pub use crate::queue::is_task_done_too_many;

/// A multi-producer, multi-consumer queue (Python's `Queue`).
///
/// ```
/// use shm_remote::api::SharedQueue;
/// fn produce(q: &impl SharedQueue<u32>) -> shm_remote::Result<()> {
///     q.put_many(&[1, 2, 3])
/// }
/// let q = shm_collections::Queue::<u32>::create(16, 4096).unwrap();
/// produce(&q)?;
/// assert_eq!(SharedQueue::get_many(&q, 10)?, [1, 2, 3]);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedQueue<T: Message> {
    /// Puts `value`, waiting as long as it takes for room.
    fn put(&self, value: &T) -> Result<()>;
    /// Puts `value`, waiting at most `timeout` for room: [`Error::Full`] after.
    fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()>;
    /// Puts `value` if there is room now: [`Error::Full`] otherwise.
    fn put_nowait(&self, value: &T) -> Result<()>;
    /// Puts every value in order (batched: one round trip on Redis when unbounded).
    fn put_many(&self, values: &[T]) -> Result<()>;
    /// Takes the oldest value, waiting as long as it takes; [`Error::Closed`] once
    /// closed and drained.
    fn get(&self) -> Result<T>;
    /// Takes the oldest value, waiting at most `timeout`: [`Error::Empty`] after.
    fn get_timeout(&self, timeout: Duration) -> Result<T>;
    /// Takes the oldest value if there is one: [`Error::Empty`] otherwise.
    fn get_nowait(&self) -> Result<T>;
    /// Takes up to `max` values there now, waiting as long as it takes for the first.
    fn get_many(&self, max: usize) -> Result<Vec<T>>;
    /// Takes up to `max` values, waiting at most `timeout` for the first.
    fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>>;
    /// Messages waiting to be taken (a snapshot).
    fn qsize(&self) -> Result<usize>;
    /// Whether no message waits.
    fn empty(&self) -> Result<bool> {
        Ok(self.qsize()? == 0)
    }
    /// Closes the queue for everybody.
    fn close(&self) -> Result<()>;
    /// Whether it was closed.
    fn is_closed(&self) -> Result<bool>;
}

/// A queue that counts unfinished tasks (Python's `JoinableQueue`).
///
/// ```
/// use shm_remote::api::{SharedJoinableQueue, SharedQueue};
/// let q = shm_collections::JoinableQueue::<u32>::create(16, 4096).unwrap();
/// SharedQueue::put(&q, &1)?;
/// SharedQueue::get(&q)?;
/// SharedJoinableQueue::task_done(&q)?;
/// SharedJoinableQueue::join(&q)?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedJoinableQueue<T: Message>: SharedQueue<T> {
    /// Marks one task done.
    fn task_done(&self) -> Result<()>;
    /// Waits until every task is done.
    fn join(&self) -> Result<()>;
    /// Waits at most `timeout`: [`Error::Timeout`] after.
    fn join_timeout(&self, timeout: Duration) -> Result<()>;
    /// Tasks put and not yet done.
    fn unfinished_tasks(&self) -> Result<u64>;
}

/// `shm_collections`' queue error mapped into [`Error`].
///
/// ```
/// let e = shm_remote::api::from_queue_error(shm_collections::QueueError::Empty {
///     name: "q".into(),
///     waited: std::time::Duration::ZERO,
/// });
/// assert!(matches!(e, shm_remote::Error::Empty { .. }));
/// ```
pub fn from_queue_error(e: QueueError) -> Error {
    match e {
        QueueError::Full { name, .. } => Error::Full { name },
        QueueError::Empty { name, .. } => Error::Empty { name },
        QueueError::Closed { name } => Error::Closed { name },
        QueueError::Timeout { name, waited } => Error::Timeout { what: name, waited },
        QueueError::TooLarge { name, len, max } => Error::TooLarge {
            name,
            what: "value",
            len,
            limit: max,
        },
        QueueError::Encode { name, source } => Error::Encode {
            name,
            what: "value",
            reason: source.to_string(),
        },
        QueueError::Decode {
            name,
            type_name,
            source,
        } => Error::Corrupted {
            name,
            what: format!("a message does not decode as {type_name}: {source}"),
        },
        QueueError::Corrupted { name, what } => Error::Corrupted { name, what },
        other => Error::Local(Box::new(other)),
    }
}

macro_rules! local_queue {
    ($ty:ident) => {
        impl<T: Message> SharedQueue<T> for shm_collections::$ty<T> {
            fn put(&self, value: &T) -> Result<()> {
                shm_collections::Queue::put(self, value).map_err(from_queue_error)
            }
            fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
                shm_collections::Queue::put_timeout(self, value, timeout).map_err(from_queue_error)
            }
            fn put_nowait(&self, value: &T) -> Result<()> {
                shm_collections::Queue::put_nowait(self, value).map_err(from_queue_error)
            }
            fn put_many(&self, values: &[T]) -> Result<()> {
                shm_collections::Queue::put_many(self, values).map_err(from_queue_error)
            }
            fn get(&self) -> Result<T> {
                shm_collections::Queue::get(self).map_err(from_queue_error)
            }
            fn get_timeout(&self, timeout: Duration) -> Result<T> {
                shm_collections::Queue::get_timeout(self, timeout).map_err(from_queue_error)
            }
            fn get_nowait(&self) -> Result<T> {
                shm_collections::Queue::get_nowait(self).map_err(from_queue_error)
            }
            fn get_many(&self, max: usize) -> Result<Vec<T>> {
                shm_collections::Queue::get_many(self, max).map_err(from_queue_error)
            }
            fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
                shm_collections::Queue::get_many_timeout(self, max, timeout)
                    .map_err(from_queue_error)
            }
            fn qsize(&self) -> Result<usize> {
                Ok(shm_collections::Queue::qsize(self))
            }
            fn close(&self) -> Result<()> {
                shm_collections::Queue::close(self);
                Ok(())
            }
            fn is_closed(&self) -> Result<bool> {
                Ok(shm_collections::Queue::is_closed(self))
            }
        }
    };
}

local_queue!(Queue);
local_queue!(JoinableQueue);

impl<T: Message> SharedJoinableQueue<T> for shm_collections::JoinableQueue<T> {
    fn task_done(&self) -> Result<()> {
        shm_collections::JoinableQueue::task_done(self).map_err(|e| match e {
            QueueError::TaskDoneTooManyTimes { name } => {
                Error::Local(Box::new(QueueError::TaskDoneTooManyTimes { name }))
            }
            other => from_queue_error(other),
        })
    }
    fn join(&self) -> Result<()> {
        shm_collections::JoinableQueue::join(self).map_err(from_queue_error)
    }
    fn join_timeout(&self, timeout: Duration) -> Result<()> {
        shm_collections::JoinableQueue::join_timeout(self, timeout).map_err(from_queue_error)
    }
    fn unfinished_tasks(&self) -> Result<u64> {
        Ok(shm_collections::JoinableQueue::unfinished_tasks(self))
    }
}
