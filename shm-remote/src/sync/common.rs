//! What the Redis locks, events, semaphores, barriers and queues share: the object's
//! keys and type tag, scripts run with the object's name in their errors, the lease
//! keeper thread, tokens and the back-off of polling waits.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Script, Value};

use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::object::RemoteObject;

/// The default lease of a lock, a semaphore permit, a barrier party or a queue
/// message being worked on: a holder that stops renewing it (dead, frozen, cut off
/// from the server) loses it this long after its last renewal. The keeper renews
/// every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The shortest lease a handle accepts (renewals every third of it must get through).
pub const MIN_LEASE: Duration = Duration::from_millis(300);

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

/// A renewal the keeper runs every third of the lease until it is removed.
pub(crate) type Renewal = Arc<dyn Fn() -> Result<()> + Send + Sync>;

struct KeeperState {
    items: HashMap<u64, Renewal>,
    stop: bool,
}

struct KeeperShared {
    state: Mutex<KeeperState>,
    cv: Condvar,
    /// Milliseconds between renewals.
    period_ms: AtomicU64,
}

/// The lease keeper of one handle: a thread, started at the first lease, that renews
/// every lease the handle holds each third of the lease, and stops when the handle
/// drops. A renewal that fails (server down) is tried again at the next tick; the
/// lease runs out if the server stays away longer than the lease.
pub(crate) struct Keeper {
    shared: Arc<KeeperShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next: AtomicU64,
}

impl Keeper {
    pub(crate) fn new(lease: Duration) -> Keeper {
        Keeper {
            shared: Arc::new(KeeperShared {
                state: Mutex::new(KeeperState {
                    items: HashMap::new(),
                    stop: false,
                }),
                cv: Condvar::new(),
                period_ms: AtomicU64::new(period(lease)),
            }),
            thread: Mutex::new(None),
            next: AtomicU64::new(1),
        }
    }

    /// Renews every third of `lease` from the next tick on.
    pub(crate) fn set_lease(&self, lease: Duration) {
        self.shared
            .period_ms
            .store(period(lease), Ordering::Relaxed);
    }

    /// Starts renewing; returns the id to [`remove`](Self::remove) it with.
    pub(crate) fn add(&self, renew: Renewal) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.state).items.insert(id, renew);
        let mut t = lock(&self.thread);
        if t.is_none() {
            let shared = self.shared.clone();
            *t = std::thread::Builder::new()
                .name("shm-remote-keeper".into())
                .spawn(move || keep(shared))
                .ok();
        }
        id
    }

    /// Stops renewing `id`.
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.shared.state).items.remove(&id);
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// A third of `lease`, in ms (at least 1).
fn period(lease: Duration) -> u64 {
    (lease.as_millis() / 3).clamp(1, u128::from(u32::MAX)) as u64
}

fn keep(shared: Arc<KeeperShared>) {
    let mut st = lock(&shared.state);
    loop {
        let period = Duration::from_millis(shared.period_ms.load(Ordering::Relaxed));
        let (g, _) = shared
            .cv
            .wait_timeout(st, period)
            .unwrap_or_else(|p| p.into_inner());
        st = g;
        if st.stop {
            return;
        }
        let items: Vec<Renewal> = st.items.values().cloned().collect();
        drop(st);
        for r in items {
            let _ = r();
        }
        st = lock(&shared.state);
    }
}

/// Locks a std mutex, also after a panic elsewhere (the data are plain lists).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a lease chosen for a handle.
pub(crate) fn check_lease(obj: &Obj, lease: Duration) -> Result<Duration> {
    if lease < MIN_LEASE || lease > Duration::from_secs(24 * 3600) {
        return Err(Error::InvalidAddress {
            address: obj.label.clone(),
            reason: format!("expected a lease between {MIN_LEASE:?} and 24 h, found {lease:?}"),
        });
    }
    Ok(lease)
}

/// Milliseconds of a lease, as a script argument.
pub(crate) fn ms(d: Duration) -> Vec<u8> {
    d.as_millis().to_string().into_bytes()
}

/// A connection of its own (not pooled) to the object's server, for a subscriber:
/// the same address, credentials and TLS as the pool's.
pub(crate) fn dedicated(obj: &Obj, timeout: Option<Duration>) -> Result<redis::Connection> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let a = obj.conn.address();
    let addr = if a.tls {
        ConnectionAddr::TcpTls {
            host: a.host.clone(),
            port: a.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(a.host.clone(), a.port)
    };
    let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(u) = &a.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &a.password {
        settings = settings.set_password(p);
    }
    let deadline = crate::conn::Deadline::after(timeout);
    let map = |e: redis::RedisError| obj.err(obj.conn.map_err(e, &deadline));
    let info = addr
        .into_connection_info()
        .map_err(map)?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(map)?;
    client
        .get_connection_with_timeout(timeout.unwrap_or(crate::conn::DEFAULT_TIMEOUT))
        .map_err(map)
}
