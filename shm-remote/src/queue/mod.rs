//! [`Queue`] and [`JoinableQueue`] on a Redis server: `shm_collections`' queues for
//! processes on several machines, with the same methods, timeouts, errors and serde
//! codec (bincode), on a Redis stream read through a consumer group.
//!
//! # Semantics, per operation
//!
//! A queue is a stream (`<ns>:d:<name>`, entries with one field `d`: the value's
//! bincode bytes), its consumer group `g`, and a config hash (`<ns>:qc:<name>`:
//! `maxsize`, `lease`, `closed`, `lost`, and `queued`, the messages not yet
//! delivered). Acknowledged entries are trimmed by later gets (`XTRIM MINID` below
//! the oldest pending one). Every handle is a consumer of its own in
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
//!   acknowledges them in the same script; a [`JoinableQueue`] keeps them
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

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::{Script, Value};
use shm_collections::{Message, QueueError};

use crate::api::{SharedJoinableQueue, SharedQueue};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::sync::{
    DEFAULT_LEASE, Keeper, MIN_LEASE, Obj, array, deadline, handle_id, int, lock, pause,
};

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::PUT));
static GET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::GET));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ACK));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RENEW));
static SIZES: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SIZES));

/// How long a handle's drop waits for the server (a drop with the server down must
/// not hang).
pub(crate) const DROP_PATIENCE: Duration = Duration::from_secs(1);

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
    /// [`MIN_LEASE`].
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

/// One raw entry of a get: id, deliveries, payload (`None`: garbage, dropped).
type Entry = (String, u64, Option<Vec<u8>>);

struct Core {
    obj: Obj,
    conf: String,
    consumer: String,
    joinable: bool,
    maxsize: usize,
    lease: Duration,
    /// Ids this handle got and has not acknowledged (JoinableQueue), oldest first.
    taken: Arc<Mutex<VecDeque<String>>>,
    keeper: Keeper,
    renewing: AtomicBool,
    type_name: &'static str,
}

impl Drop for Core {
    fn drop(&mut self) {
        // A consumer with nothing pending leaves the group; one with pending messages
        // stays so that they are claimed after the lease.
        if lock(&self.taken).is_empty() {
            let _ = self.obj.conn.query::<Value>(
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(self.obj.data())
                    .arg("g")
                    .arg(&self.consumer),
                Some(DROP_PATIENCE),
                Retry::Idempotent,
            );
        }
    }
}

impl Core {
    fn open(
        conn: &Arc<Conn>,
        name: &str,
        kind: &str,
        type_name: &'static str,
        opts: QueueOptions,
        joinable: bool,
    ) -> Result<Core> {
        let ty = format!("{kind}<{type_name}>");
        let obj = Obj::open(conn, name, kind, &ty, "stream")?;
        let conf = obj.key("qc");
        let lease = opts.lease.clamp(MIN_LEASE, Duration::from_secs(24 * 3600));
        let mut p = redis::pipe();
        p.cmd("HSETNX")
            .arg(&conf)
            .arg("maxsize")
            .arg(opts.maxsize)
            .ignore();
        p.cmd("HSETNX")
            .arg(&conf)
            .arg("lease")
            .arg(lease.as_millis() as u64)
            .ignore();
        p.cmd("HMGET").arg(&conf).arg("maxsize").arg("lease");
        let (vals,): (Vec<Value>,) = obj
            .conn
            .pipeline(&p, obj.ro.patience(), Retry::Idempotent)
            .map_err(|e| obj.err(e))?;
        let maxsize = int(&obj, vals.first())?;
        let lease_ms = int(&obj, vals.get(1))?;
        let maxsize = usize::try_from(maxsize)
            .map_err(|_| obj.corrupted(format!("expected maxsize >= 0, found {maxsize}")))?;
        let lease = u64::try_from(lease_ms)
            .ok()
            .filter(|ms| *ms >= MIN_LEASE.as_millis() as u64)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                obj.corrupted(format!(
                    "expected a lease >= {MIN_LEASE:?} in ms, found {lease_ms}"
                ))
            })?;
        match obj.conn.query::<Value>(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(obj.data())
                .arg("g")
                .arg("0")
                .arg("MKSTREAM"),
            obj.ro.patience(),
            Retry::Idempotent,
        ) {
            Ok(_) => {}
            Err(Error::Server { message, .. }) if message.contains("BUSYGROUP") => {}
            Err(e) => return Err(obj.err(e)),
        }
        let keeper = Keeper::new(lease);
        Ok(Core {
            conf,
            obj,
            consumer: handle_id(),
            joinable,
            maxsize,
            lease,
            taken: Arc::new(Mutex::new(VecDeque::new())),
            keeper,
            renewing: AtomicBool::new(false),
            type_name,
        })
    }

    fn name(&self) -> String {
        self.obj.label.clone()
    }

    fn full(&self, waited: Duration) -> Error {
        let _ = waited;
        Error::Full { name: self.name() }
    }

    fn encode<T: Message>(&self, v: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        shm_collections::codec::encode(v, &mut out).map_err(|e| Error::Encode {
            name: self.name(),
            what: "value",
            reason: e.to_string(),
        })?;
        Ok(out)
    }

    /// Runs PUT scripts for `chunks`: pipelined when the queue is unbounded.
    fn put_chunks(&self, chunks: &[&[Vec<u8>]], timeout: Option<Duration>) -> Result<Vec<i64>> {
        let keys = [self.obj.data(), self.conf.as_str()];
        let mut invs = Vec::with_capacity(chunks.len());
        for c in chunks {
            let mut inv = PUT.prepare_invoke();
            inv.key(keys[0]).key(keys[1]);
            for m in c.iter() {
                inv.arg(m.as_slice());
            }
            invs.push(inv);
        }
        if invs.len() == 1 {
            let v = self.obj.run(
                &PUT,
                &keys,
                &chunks[0].iter().map(|m| m.as_slice()).collect::<Vec<_>>(),
                timeout,
            )?;
            return Ok(vec![int(&self.obj, Some(&v))?]);
        }
        let mut pipe = redis::pipe();
        for inv in &invs {
            pipe.invoke_script(inv);
        }
        let r = self
            .obj
            .conn
            .run(timeout, Retry::Once, |s| s.pipeline::<Vec<i64>>(&pipe));
        match r {
            Err(Error::Server { message, .. }) if message.contains("NOSCRIPT") => {
                // Not loaded (first use, or the server restarted): nothing ran.
                self.obj
                    .conn
                    .query::<String>(
                        redis::cmd("SCRIPT").arg("LOAD").arg(scripts::PUT),
                        timeout,
                        Retry::Idempotent,
                    )
                    .map_err(|e| self.obj.err(e))?;
                self.obj
                    .conn
                    .run(timeout, Retry::Once, |s| s.pipeline::<Vec<i64>>(&pipe))
                    .map_err(|e| self.obj.err(e))
            }
            other => other.map_err(|e| self.obj.err(e)),
        }
    }

    /// Puts `msgs` in order, waiting for room until `dl` (`try_` when `nowait`).
    fn put_encoded(
        &self,
        msgs: &[Vec<u8>],
        nowait: bool,
        dl: Option<Instant>,
        waited: Duration,
    ) -> Result<()> {
        let mut rest = msgs;
        let mut round = 0;
        if self.maxsize == 0 && rest.len() > CHUNK {
            let chunks: Vec<&[Vec<u8>]> = rest.chunks(CHUNK).collect();
            let ns = self.put_chunks(&chunks, self.obj.call_timeout(dl))?;
            for (n, c) in ns.iter().zip(&chunks) {
                if *n < 0 {
                    return Err(Error::Closed { name: self.name() });
                }
                if *n as usize != c.len() {
                    return Err(self
                        .obj
                        .corrupted(format!("an unbounded queue put {n} of {} values", c.len())));
                }
            }
            return Ok(());
        }
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(CHUNK)];
            let n = self.put_chunks(&[chunk], self.obj.call_timeout(dl))?[0];
            if n < 0 {
                return Err(Error::Closed { name: self.name() });
            }
            let n = (n as usize).min(chunk.len());
            rest = &rest[n..];
            if n == 0 && !rest.is_empty() {
                if nowait || !pause(&mut round, dl, None) {
                    return Err(self.full(waited));
                }
            } else {
                round = 0;
            }
        }
        Ok(())
    }

    fn put<T: Message>(&self, v: &T, nowait: bool, timeout: Option<Duration>) -> Result<()> {
        let m = self.encode(v)?;
        let dl = if nowait {
            None
        } else {
            timeout.and_then(deadline)
        };
        self.put_encoded(
            std::slice::from_ref(&m),
            nowait,
            dl,
            timeout.unwrap_or(Duration::ZERO),
        )
    }

    fn put_many<T: Message>(&self, values: &[T]) -> Result<()> {
        let msgs = values
            .iter()
            .map(|v| self.encode(v))
            .collect::<Result<Vec<_>>>()?;
        self.put_encoded(&msgs, false, None, Duration::ZERO)
    }

    /// One GET script: up to `n` entries.
    fn get_once(&self, n: usize, timeout: Option<Duration>) -> Result<(bool, Vec<Entry>)> {
        let ack: &[u8] = if self.joinable { b"0" } else { b"1" };
        let count = n.to_string();
        let lease = self.lease.as_millis().to_string();
        let reply = array(
            &self.obj,
            self.obj.run(
                &GET,
                &[self.obj.data(), &self.conf],
                &[
                    self.consumer.as_bytes(),
                    count.as_bytes(),
                    ack,
                    lease.as_bytes(),
                ],
                timeout,
            )?,
        )?;
        let closed = int(&self.obj, reply.first())? == 1;
        let mut out = Vec::with_capacity((reply.len().saturating_sub(1)) / 3);
        let mut it = reply.into_iter().skip(1);
        while let Some(id) = it.next() {
            let id = match id {
                Value::BulkString(b) => String::from_utf8(b)
                    .map_err(|_| self.obj.corrupted("a stream id that is not UTF-8"))?,
                other => {
                    return Err(self
                        .obj
                        .corrupted(format!("expected a stream id, found {other:?}")));
                }
            };
            let d = int(&self.obj, it.next().as_ref())?;
            let payload = match it.next() {
                Some(Value::BulkString(b)) => Some(b),
                Some(Value::Nil) => None,
                other => {
                    return Err(self
                        .obj
                        .corrupted(format!("expected a payload, found {other:?}")));
                }
            };
            out.push((id, u64::try_from(d).unwrap_or(1), payload));
        }
        Ok((closed, out))
    }

    fn start_keeper(&self) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let obj = self.obj.clone();
        let taken = self.taken.clone();
        let consumer = self.consumer.clone();
        self.keeper.add(Arc::new(move || {
            let ids: Vec<String> = lock(&taken).iter().cloned().collect();
            if ids.is_empty() {
                return Ok(());
            }
            let mut args: Vec<&[u8]> = vec![consumer.as_bytes()];
            args.extend(ids.iter().map(|i| i.as_bytes()));
            obj.run(&RENEW, &[obj.data()], &args, obj.call_timeout(None))
                .map(drop)
        }));
    }

    /// Acknowledges `ids` (and deletes them).
    fn ack(&self, ids: &[&str]) -> Result<i64> {
        let args: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes()).collect();
        let v = self.obj.call(&ACK, &[self.obj.data()], &args)?;
        int(&self.obj, Some(&v))
    }

    /// Decodes what a get took; records the good ids of a joinable queue; acks the ones
    /// that do not decode.
    fn decode<T: Message>(&self, entries: Vec<Entry>) -> Result<Vec<Delivery<T>>> {
        let mut good = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        let mut first_err = None;
        for (id, deliveries, payload) in entries {
            let Some(p) = payload else { continue };
            match shm_collections::codec::decode::<T>(&p) {
                Ok(value) => good.push(Delivery {
                    value,
                    id,
                    deliveries,
                }),
                Err(e) => {
                    first_err.get_or_insert_with(|| {
                        self.obj.corrupted(format!(
                            "message {id} does not decode as {}: {e}",
                            self.type_name
                        ))
                    });
                    bad.push(id);
                }
            }
        }
        if self.joinable {
            if !bad.is_empty() {
                let ids: Vec<&str> = bad.iter().map(String::as_str).collect();
                let _ = self.ack(&ids);
            }
            if !good.is_empty() {
                lock(&self.taken).extend(good.iter().map(|d| d.id.clone()));
                self.start_keeper();
            }
        }
        match (good.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(good),
        }
    }

    /// Takes up to `max` messages, waiting for the first until `dl` (or not at all
    /// when `nowait`).
    fn get<T: Message>(
        &self,
        max: usize,
        nowait: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<Delivery<T>>> {
        let max = max.max(1);
        let dl = if nowait {
            None
        } else {
            timeout.and_then(deadline)
        };
        let waited = timeout.unwrap_or(Duration::ZERO);
        let mut round = 0;
        loop {
            let (closed, entries) = self.get_once(max.min(CHUNK), self.obj.call_timeout(dl))?;
            if !entries.is_empty() {
                let full = entries.len() == max.min(CHUNK);
                let mut got = self.decode::<T>(entries)?;
                // get_many: more in further round trips while chunks come back full.
                while full && got.len() < max {
                    let (_, more) =
                        self.get_once((max - got.len()).min(CHUNK), self.obj.call_timeout(dl))?;
                    let n = more.len();
                    got.extend(self.decode::<T>(more)?);
                    if n < CHUNK {
                        break;
                    }
                }
                if !got.is_empty() {
                    return Ok(got);
                }
                continue;
            }
            if closed {
                return Err(Error::Closed { name: self.name() });
            }
            if nowait || !pause(&mut round, dl, None) {
                let _ = waited;
                return Err(Error::Empty { name: self.name() });
            }
        }
    }

    fn sizes(&self) -> Result<(u64, u64, bool, u64)> {
        let v = array(
            &self.obj,
            self.obj.run_with(
                &SIZES,
                &[self.obj.data(), &self.conf],
                &[],
                self.obj.ro.patience(),
                Retry::Idempotent,
            )?,
        )?;
        let f = |i: usize| -> Result<u64> {
            let n = int(&self.obj, v.get(i))?;
            u64::try_from(n).map_err(|_| {
                self.obj
                    .corrupted(format!("expected a count >= 0, found {n}"))
            })
        };
        Ok((f(0)?, f(1)?, f(2)? == 1, f(3)?))
    }

    fn qsize(&self) -> Result<usize> {
        Ok(self.core_queued()? as usize)
    }

    fn core_queued(&self) -> Result<u64> {
        Ok(self.sizes()?.0)
    }

    /// Messages put and not acknowledged: waiting plus taken-and-pending.
    fn unfinished(&self) -> Result<u64> {
        let (queued, pending, _, _) = self.sizes()?;
        Ok(queued.saturating_add(pending))
    }

    fn close(&self) -> Result<()> {
        self.obj
            .conn
            .query::<()>(
                redis::cmd("HSET").arg(&self.conf).arg("closed").arg("1"),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))
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
