//! What the Redis locks, events, semaphores, barriers and queues share: the object's
//! keys and type tag, scripts run with the object's name in their errors, reply
//! parsing, tokens and handle ids, and the back-off of polling waits. (The lease
//! keeper is [`crate::keeper`].)

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::{Script, Value};

use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::object::RemoteObject;

/// The shortest socket timeout of a call made near its deadline.
pub(crate) const MIN_CALL: Duration = Duration::from_millis(50);

/// Longest sleep between two polls of a waiting call.
const MAX_POLL: Duration = Duration::from_millis(20);

/// One object on the server: R1's [`RemoteObject`] (connection, keys, type tag,
/// patience) shared with the keeper thread.
#[derive(Clone)]
pub(crate) struct Obj {
    pub(crate) ro: Arc<RemoteObject>,
    /// The connection (the same as `ro`'s).
    pub(crate) conn: Arc<Conn>,
    /// The object's label, in errors.
    pub(crate) label: String,
}

impl std::fmt::Debug for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl Obj {
    /// Opens (creating its type tag when new) the object `name` of `kind` and
    /// `type_name` whose data key is of Redis type `redis_type`.
    pub(crate) fn open(
        conn: &Arc<Conn>,
        name: &str,
        kind: &str,
        type_name: &str,
        redis_type: &str,
    ) -> Result<Obj> {
        let ns = conn.address().namespace.clone();
        let ro = RemoteObject::open(conn.clone(), &ns, name, kind, type_name, redis_type)?;
        Ok(Obj {
            label: ro.label().to_owned(),
            conn: conn.clone(),
            ro: Arc::new(ro),
        })
    }

    /// The data key (`<namespace>:d:<name>`).
    pub(crate) fn data(&self) -> &str {
        self.ro.data_key()
    }

    /// Another key of the object: `<namespace>:<tag>:<name>`.
    pub(crate) fn key(&self, tag: &str) -> String {
        self.ro.key(tag)
    }

    /// Names the object in an error that names the server or a key.
    pub(crate) fn err(&self, e: Error) -> Error {
        match e {
            Error::WrongType { .. } => Error::WrongType {
                name: self.label.clone(),
                expected: "the Redis types of the object's keys".into(),
                found: "a key of another Redis type (WRONGTYPE)".into(),
            },
            Error::Server { message, .. } => Error::Corrupted {
                name: self.label.clone(),
                what: format!("the server refused a script on its keys: {message}"),
            },
            other => self.ro.rename(other),
        }
    }

    /// A corrupted-state error about this object.
    pub(crate) fn corrupted(&self, what: impl Into<String>) -> Error {
        Error::Corrupted {
            name: self.label.clone(),
            what: what.into(),
        }
    }

    /// The timeout of one call made within `deadline`: the time left (at least
    /// [`MIN_CALL`], so that a call near the deadline is not cut off in the middle of
    /// a round trip), capped by the handle's patience.
    pub(crate) fn call_timeout(&self, deadline: Option<Instant>) -> Option<Duration> {
        let t = self.ro.patience();
        match deadline {
            None => t,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).max(MIN_CALL);
                Some(t.map_or(left, |t| t.min(left)))
            }
        }
    }

    /// Runs a script once (a script that changes state is never sent twice: a lost
    /// reply is [`Error::Disconnected`]).
    pub(crate) fn run(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<Value> {
        self.run_with(script, keys, args, timeout, Retry::Once)
    }

    /// Runs a script with the given retry policy.
    pub(crate) fn run_with(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
        timeout: Option<Duration>,
        retry: Retry,
    ) -> Result<Value> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        self.conn
            .run(timeout, retry, |s| s.invoke::<Value>(&inv))
            .map_err(|e| self.err(e))
    }

    /// Sets the fields of the object's data hash that are missing (`HSETNX` each, one
    /// round trip): the state of a new object, left alone when it exists.
    pub(crate) fn init_fields(&self, fields: &[(&str, u32)]) -> Result<()> {
        let mut pipe = redis::pipe();
        for (f, v) in fields {
            pipe.cmd("HSETNX").arg(self.data()).arg(*f).arg(*v).ignore();
        }
        self.conn
            .pipeline::<()>(&pipe, self.ro.patience(), Retry::Idempotent)
            .map_err(|e| self.err(e))
    }

    /// An integer field of the object's data hash (`None`: missing).
    pub(crate) fn int_field(&self, f: &str) -> Result<Option<i64>> {
        let v: Value = self
            .conn
            .query(
                redis::cmd("HGET").arg(self.data()).arg(f),
                self.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.err(e))?;
        match v {
            Value::Nil => Ok(None),
            other => int(self, Some(&other)).map(Some),
        }
    }

    /// Runs a script with the handle's patience.
    pub(crate) fn call(&self, script: &Script, keys: &[&str], args: &[&[u8]]) -> Result<Value> {
        self.run(script, keys, args, self.ro.patience())
    }
}

/// Bytes of a reply shown in an error.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Nil => "nothing".into(),
        other => format!("{other:?}"),
    }
}

/// An integer element of a script reply.
pub(crate) fn int(obj: &Obj, v: Option<&Value>) -> Result<i64> {
    match v {
        Some(Value::Int(i)) => Ok(*i),
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                obj.corrupted(format!(
                    "expected an integer, found {:?}",
                    text(&Value::BulkString(b.clone()))
                ))
            }),
        other => Err(obj.corrupted(format!("expected an integer in the reply, found {other:?}"))),
    }
}

/// The elements of an array reply.
pub(crate) fn array(obj: &Obj, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(obj.corrupted(format!("expected an array reply, found {other:?}"))),
    }
}

/// `Instant::now() + timeout`, `None` (no deadline) when that does not fit.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Sleeps before the next poll of a waiting call: 1 ms, doubling up to 20 ms, never
/// past `deadline` nor longer than `hint` (the time until a lease runs out).
/// `false` when the deadline has passed.
pub(crate) fn pause(round: &mut u32, deadline: Option<Instant>, hint: Option<Duration>) -> bool {
    let mut d = Duration::from_millis(1u64 << (*round).min(5)).min(MAX_POLL);
    *round = round.saturating_add(1);
    if let Some(h) = hint {
        d = d.min(h.max(Duration::from_millis(1)));
    }
    if let Some(dl) = deadline {
        let left = dl.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        d = d.min(left);
    }
    std::thread::sleep(d);
    true
}

/// A random 64-bit number (std's hasher keys come from the OS's randomness).
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// This process's random id (tokens of its threads start with it).
fn process_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}.{}", random_u64(), std::process::id()))
}

static NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: String = format!("{}.{}:", process_id(), NEXT.fetch_add(1, Ordering::Relaxed));
}

/// The calling thread's token prefix: unique per thread and process run.
pub(crate) fn thread_prefix() -> String {
    THREAD.with(|t| t.clone())
}

/// A fresh token of the calling thread (its prefix plus a counter).
pub(crate) fn fresh_token() -> String {
    format!(
        "{}{}",
        thread_prefix(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh id for a handle (consumer name, semaphore or barrier member).
pub(crate) fn handle_id() -> String {
    format!("{}.h{}", process_id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Locks a std mutex, also after a panic elsewhere (the data are plain lists).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection of its own (not pooled) to the object's server, for a subscriber:
/// the same address, credentials and TLS as the pool's.
pub(crate) fn dedicated(obj: &Obj, timeout: Option<Duration>) -> Result<redis::Connection> {
    obj.conn.dedicated(timeout).map_err(|e| obj.err(e))
}
