//! [`Queue`] and [`JoinableQueue`] on a Redis server: `shm_collections`' queues for
//! processes on several machines, with the same methods, timeouts, errors and serde
//! codec (bincode), on a Redis stream read through a consumer group.
//!
//! # Semantics, per operation
//!
//! A queue is a stream (`<ns>:d:<name>`, entries with one field `d`: the value's
//! bincode bytes), its consumer group `g`, and a config hash (`<ns>:qc:<name>`:
//! `maxsize`, `lease`, `closed`, `lost`, and `queued`, the messages not yet
//! delivered). Acknowledged entries are trimmed by later gets (`XTRIM MINID ~` below
//! the oldest pending one: whole stream nodes, so up to a node of acknowledged
//! entries stays until the next one fills). Every handle is a consumer of its own in
//! the group. Each operation is one Lua script (atomic on the server):
//!
//! - **put** / **put_many**: appends (`XADD`) unless closed ([`Error::Closed`]) and,
//!   for a bounded queue (`maxsize > 0`), as many as fit under `maxsize` messages not
//!   yet delivered; the rest waits for room (polling, 1 to 20 ms) until the timeout
//!   ([`Error::Full`]). `put_many` sends the whole batch in chunks of 1000 values per
//!   script, all chunks pipelined in one round trip when the queue is unbounded.
//!   Once `put` returned, the message is on the server (and in its append-only file,
//!   if enabled: it survives a restart).
//! - **get** / **get_many**: first claims messages that another consumer took and
//!   left unacknowledged for longer than the queue's lease (`XAUTOCLAIM`: that
//!   consumer died or hangs), then reads new ones (`XREADGROUP`). A plain [`Queue`]
//!   reads with `NOACK` (the messages never enter the pending list: acknowledged as
//!   they are read, in the same script); a [`JoinableQueue`] keeps them
//!   pending for this consumer until [`task_done`](JoinableQueue::task_done), and the
//!   handle's keeper renews their lease (their idle time) meanwhile. An empty queue
//!   makes `get` wait (polling, 1 to 20 ms) until the timeout ([`Error::Empty`]), or
//!   [`Error::Closed`] once closed and drained. `get_many` takes what is there now
//!   (up to `max`, 1000 per round trip), waiting only for the first.
//! - **task_done**: acknowledges the oldest message this handle got and
//!   has not acknowledged. A handle that got none: `TaskDoneTooManyTimes`
//!   (`QueueError` in [`Error::Local`]); unlike the local queue, `task_done` belongs
//!   to the handle that called `get`.
//! - **join**: waits until no message is unfinished (none queued, none pending),
//!   polling, until the timeout ([`Error::Timeout`]).
//! - **close**: sets the closed flag; later puts are refused, gets drain what is left.
//!
//! # Delivery: at least once here, at most once locally
//!
//! A [`JoinableQueue`] message taken by a consumer that dies before `task_done`
//! (`kill -9`, a lost machine) is claimed by another consumer's `get` once it has
//! been idle for the lease (10 s by default, chosen at creation: [`QueueOptions`]), and
//! delivered again with a delivery count one higher
//! ([`JoinableQueue::get_timeout_delivery`]): **at least once**, with the count telling
//! a redelivery apart. A plain [`Queue`] acknowledges inside `get`'s script: a
//! consumer that dies after the script ran loses that message (**at most once**, as
//! the shared-memory queue, whose consumer killed mid-`get` loses at most the message
//! it was copying). The shared-memory `JoinableQueue` does not redeliver either: a task
//! of a dead consumer stays unfinished there.
//!
//! Entries written by something else (no `d` field) are dropped and counted in
//! `lost`; bytes that do not decode as `T` give [`Error::Corrupted`] (the message is
//! acknowledged: it could never be processed) when nothing else was taken.

pub(crate) mod scripts;

mod core;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_collections::{Message, QueueError};

use crate::api::{SharedJoinableQueue, SharedQueue};
use crate::common::{deadline, lock, pause};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keeper::DEFAULT_LEASE;

use self::core::Core;

/// Values per script call of `put_many` / `get_many`.
const CHUNK: usize = 1000;

/// How a new queue is made (ignored when the queue exists: its own settings hold).
///
/// ```
/// let o = shm_remote::queue::QueueOptions { maxsize: 100, ..Default::default() };
/// assert_eq!(o.lease, shm_remote::sync::DEFAULT_LEASE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Most messages waiting to be delivered (0: unbounded, Python's default).
    pub maxsize: usize,
    /// How long a taken, unacknowledged message of a [`JoinableQueue`] may stay idle
    /// before another consumer claims it (its consumer counts as dead); at least
    /// [`MIN_LEASE`](crate::sync::MIN_LEASE).
    pub lease: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            maxsize: 0,
            lease: DEFAULT_LEASE,
        }
    }
}

/// A message with its delivery record ([`JoinableQueue::get_timeout_delivery`]).
///
/// ```
/// let d = shm_remote::queue::Delivery { value: 1u8, id: "1-0".into(), deliveries: 2 };
/// assert!(d.is_redelivery());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<T> {
    /// The value.
    pub value: T,
    /// The stream entry id (`ms-seq`).
    pub id: String,
    /// How many times the message was delivered (1 the first time; more after its
    /// consumer died and another claimed it).
    pub deliveries: u64,
}

impl<T> Delivery<T> {
    /// Whether the message was delivered before (to a consumer that did not finish it).
    ///
    /// ```
    /// let d = shm_remote::queue::Delivery { value: (), id: "1-0".into(), deliveries: 1 };
    /// assert!(!d.is_redelivery());
    /// ```
    pub fn is_redelivery(&self) -> bool {
        self.deliveries > 1
    }
}

macro_rules! queue_methods {
    ($ty:ident, $kind:literal, $joinable:expr) => {
        impl<T: Message> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", $kind, self.core.obj.label)
            }
        }

        impl<T: Message> $ty<T> {
            #[doc = concat!("Opens the ", $kind, " `name` of the connection's namespace, creating it")]
            /// unbounded when new (with the default lease).
            /// [`Error::WrongType`] if the name holds another kind or element type.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("let q = shm_remote::queue::", stringify!($ty), "::<String>::open(&conn, \"jobs\")?;")]
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn open(conn: &Arc<Conn>, name: &str) -> Result<Self> {
                Self::open_with(conn, name, QueueOptions::default())
            }

            /// Opens the queue `name`, creating it with `opts` when new.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            /// let opts = shm_remote::queue::QueueOptions { maxsize: 10, ..Default::default() };
            #[doc = concat!("let q = shm_remote::queue::", stringify!($ty), "::<u64>::open_with(&conn, \"small\", opts)?;")]
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn open_with(conn: &Arc<Conn>, name: &str, opts: QueueOptions) -> Result<Self> {
                Ok($ty {
                    core: Core::open(conn, name, $kind, std::any::type_name::<T>(), opts, $joinable)?,
                    _t: PhantomData,
                })
            }

            /// Puts `value`, waiting as long as it takes for room.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put(&7)?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn put(&self, value: &T) -> Result<()> {
                self.core.put(value, false, None)
            }

            /// Puts `value`, waiting at most `timeout` for room: [`Error::Full`] after.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put_timeout(&7, std::time::Duration::from_secs(1))?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
                self.core.put(value, false, Some(timeout))
            }

            /// Puts `value` if there is room now: [`Error::Full`] otherwise.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put_nowait(&7)?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn put_nowait(&self, value: &T) -> Result<()> {
                self.core.put(value, true, Some(Duration::ZERO))
            }

            /// Puts every value in order: chunks of 1000 per script, pipelined in one
            /// round trip when the queue is unbounded; waits for room as long as it
            /// takes otherwise.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put_many(&[1, 2, 3])?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn put_many(&self, values: &[T]) -> Result<()> {
                self.core.put_many(values)
            }

            /// Takes the oldest value, waiting as long as it takes; [`Error::Closed`]
            /// once the queue is closed and drained.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put(&1)?;
            /// assert_eq!(q.get()?, 1);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn get(&self) -> Result<T> {
                self.one(self.core.get(1, false, None)?)
            }

            /// Takes the oldest value, waiting at most `timeout`: [`Error::Empty`] after.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"empty\")?;")]
            /// assert!(q.get_timeout(std::time::Duration::from_millis(10)).is_err());
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                self.one(self.core.get(1, false, Some(timeout))?)
            }

            /// Takes the oldest value if there is one: [`Error::Empty`] otherwise.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"empty\")?;")]
            /// assert!(q.get_nowait().is_err());
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn get_nowait(&self) -> Result<T> {
                self.one(self.core.get(1, true, Some(Duration::ZERO))?)
            }

            /// Takes up to `max` values there now (1000 per round trip), waiting as
            /// long as it takes for the first.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.put_many(&[1, 2])?;
            /// assert_eq!(q.get_many(10)?, [1, 2]);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
                Ok(self.core.get(max, false, None)?.into_iter().map(|d| d.value).collect())
            }

            /// Takes up to `max` values, waiting at most `timeout` for the first
            /// ([`Error::Empty`] after).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"empty\")?;")]
            /// assert!(q.get_many_timeout(5, std::time::Duration::from_millis(10)).is_err());
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
                Ok(self
                    .core
                    .get(max, false, Some(timeout))?
                    .into_iter()
                    .map(|d| d.value)
                    .collect())
            }

            fn one(&self, mut v: Vec<Delivery<T>>) -> Result<T> {
                match v.pop() {
                    Some(d) if v.is_empty() => Ok(d.value),
                    _ => Err(self.core.obj.corrupted("a get took other than one message")),
                }
            }

            /// Messages waiting to be delivered (Python's `qsize`).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// let _n = q.qsize()?;
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn qsize(&self) -> Result<usize> {
                self.core.qsize()
            }

            /// Whether no message waits to be delivered.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"fresh\")?;")]
            /// assert!(q.empty()?);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn empty(&self) -> Result<bool> {
                Ok(self.qsize()? == 0)
            }

            /// The bound on messages waiting (0: unbounded).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"fresh\")?;")]
            /// assert_eq!(q.maxsize(), 0);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn maxsize(&self) -> usize {
                self.core.maxsize
            }

            /// Closes the queue for every handle: later puts get [`Error::Closed`],
            /// gets drain what is left and then get it.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"done\")?;")]
            /// q.close()?;
            /// assert!(q.is_closed()?);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn close(&self) -> Result<()> {
                self.core.close()
            }

            /// Whether some handle closed the queue.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"fresh\")?;")]
            /// assert!(!q.is_closed()?);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn is_closed(&self) -> Result<bool> {
                Ok(self.core.sizes()?.2)
            }

            /// Entries found in the stream without a value field (written by something
            /// else) and dropped.
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"fresh\")?;")]
            /// assert_eq!(q.lost()?, 0);
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn lost(&self) -> Result<u64> {
                Ok(self.core.sizes()?.3)
            }

            /// Sets how long each call waits for the server (`None`: no limit).
            ///
            /// ```
            /// # let server = shm_remote::testing::RedisServer::start().unwrap();
            /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
            #[doc = concat!("# let q = shm_remote::queue::", stringify!($ty), "::<u64>::open(&conn, \"q\")?;")]
            /// q.set_patience(Some(std::time::Duration::from_secs(2)));
            /// # Ok::<(), shm_remote::Error>(())
            /// ```
            pub fn set_patience(&self, patience: Option<Duration>) {
                self.core.obj.ro.set_patience(patience)
            }
        }

        impl<T: Message> SharedQueue<T> for $ty<T> {
            fn put(&self, value: &T) -> Result<()> {
                $ty::put(self, value)
            }
            fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
                $ty::put_timeout(self, value, timeout)
            }
            fn put_nowait(&self, value: &T) -> Result<()> {
                $ty::put_nowait(self, value)
            }
            fn put_many(&self, values: &[T]) -> Result<()> {
                $ty::put_many(self, values)
            }
            fn get(&self) -> Result<T> {
                $ty::get(self)
            }
            fn get_timeout(&self, timeout: Duration) -> Result<T> {
                $ty::get_timeout(self, timeout)
            }
            fn get_nowait(&self) -> Result<T> {
                $ty::get_nowait(self)
            }
            fn get_many(&self, max: usize) -> Result<Vec<T>> {
                $ty::get_many(self, max)
            }
            fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
                $ty::get_many_timeout(self, max, timeout)
            }
            fn qsize(&self) -> Result<usize> {
                $ty::qsize(self)
            }
            fn close(&self) -> Result<()> {
                $ty::close(self)
            }
            fn is_closed(&self) -> Result<bool> {
                $ty::is_closed(self)
            }
        }
    };
}

/// A multi-producer, multi-consumer queue of `T` on a Redis server (Python's
/// `multiprocessing.Queue` across machines): a stream and a consumer group, values in
/// bincode. `get` acknowledges at once: delivery is at most once, as the
/// shared-memory queue's. See the [module docs](self).
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let q = shm_remote::queue::Queue::<(u32, String)>::open(&conn, "work")?;
/// q.put(&(1, "one".into()))?;
/// assert_eq!(q.get()?, (1, "one".to_string()));
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct Queue<T: Message> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

/// A [`Queue`] whose messages stay pending until [`task_done`](Self::task_done)
/// (Python's `JoinableQueue`): [`join`](Self::join) waits until every message put was
/// done, and a message of a consumer that died before `task_done` is delivered again
/// to another consumer after the queue's lease (at least once, with a delivery count).
///
/// ```
/// # let server = shm_remote::testing::RedisServer::start().unwrap();
/// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
/// let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "tasks")?;
/// q.put(&1)?;
/// let d = q.get_timeout_delivery(std::time::Duration::from_secs(1))?;
/// assert_eq!((d.value, d.deliveries), (1, 1));
/// q.task_done()?;
/// q.join()?;
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub struct JoinableQueue<T: Message> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

queue_methods!(Queue, "Queue", false);
queue_methods!(JoinableQueue, "JoinableQueue", true);

/// The error of a `task_done` with nothing to acknowledge (both backends).
fn task_done_too_many(name: String) -> Error {
    Error::Local(Box::new(QueueError::TaskDoneTooManyTimes { name }))
}

/// Whether `e` is a `task_done` called more often than messages were taken.
///
/// ```
/// let e = shm_remote::Error::Local(Box::new(shm_collections::QueueError::TaskDoneTooManyTimes { name: "q".into() }));
/// assert!(shm_remote::api::is_task_done_too_many(&e));
/// ```
pub fn is_task_done_too_many(e: &Error) -> bool {
    matches!(e, Error::Local(b) if matches!(b.downcast_ref::<QueueError>(), Some(QueueError::TaskDoneTooManyTimes { .. })))
}

impl<T: Message> JoinableQueue<T> {
    /// Takes the oldest value with its delivery record, waiting at most `timeout`
    /// ([`Error::Empty`] after).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "tasks")?;
    /// q.put(&5)?;
    /// let d = q.get_timeout_delivery(std::time::Duration::from_secs(1))?;
    /// assert!(!d.is_redelivery());
    /// q.task_done()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn get_timeout_delivery(&self, timeout: Duration) -> Result<Delivery<T>> {
        let mut v = self.core.get::<T>(1, false, Some(timeout))?;
        match v.pop() {
            Some(d) if v.is_empty() => Ok(d),
            _ => Err(self.core.obj.corrupted("a get took other than one message")),
        }
    }

    /// Acknowledges the oldest message this handle got and has not acknowledged (it
    /// is never delivered again). `TaskDoneTooManyTimes` if there is none
    /// ([`is_task_done_too_many`]).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "fresh-tasks")?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        let Some(id) = lock(&self.core.taken).pop_front() else {
            return Err(task_done_too_many(self.core.name()));
        };
        match self.core.ack(&[&id]) {
            Ok(_) => Ok(()),
            Err(e) => {
                lock(&self.core.taken).push_front(id);
                Err(e)
            }
        }
    }

    /// Waits until every message put has been done, as long as it takes.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "fresh-tasks")?;
    /// q.join()?;
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.join_until(None, Duration::MAX)
    }

    /// Waits at most `timeout` for every message to be done: [`Error::Timeout`] after.
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "busy")?;
    /// q.put(&1)?;
    /// assert!(q.join_timeout(std::time::Duration::from_millis(10)).is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_until(deadline(timeout), timeout)
    }

    fn join_until(&self, dl: Option<Instant>, waited: Duration) -> Result<()> {
        let mut round = 0;
        loop {
            if self.core.unfinished()? == 0 {
                return Ok(());
            }
            if !pause(&mut round, dl, None) {
                return Err(Error::Timeout {
                    what: self.core.name(),
                    waited,
                });
            }
        }
    }

    /// Messages put and not yet done (taken or not).
    ///
    /// ```
    /// # let server = shm_remote::testing::RedisServer::start().unwrap();
    /// # let conn = shm_remote::conn::Conn::open(&shm_remote::address::RedisAddress::parse(&server.url("doc"))?, None)?;
    /// # let q = shm_remote::queue::JoinableQueue::<u32>::open(&conn, "fresh-tasks")?;
    /// assert_eq!(q.unfinished_tasks()?, 0);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> Result<u64> {
        self.core.unfinished()
    }
}

impl<T: Message> SharedJoinableQueue<T> for JoinableQueue<T> {
    fn task_done(&self) -> Result<()> {
        JoinableQueue::task_done(self)
    }
    fn join(&self) -> Result<()> {
        JoinableQueue::join(self)
    }
    fn join_timeout(&self, timeout: Duration) -> Result<()> {
        JoinableQueue::join_timeout(self, timeout)
    }
    fn unfinished_tasks(&self) -> Result<u64> {
        JoinableQueue::unfinished_tasks(self)
    }
}
