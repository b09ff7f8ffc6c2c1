//! [`Manager`]: objects by key, opened by address. A local name is a
//! [`SharedMemoryManager`] on this machine; `redis://[user:password@]host:port/namespace`
//! (or `rediss://`) is a namespace on a Redis server ([`RedisManager`]). The accessors
//! (`dict`, `list`, `namespace`, `value`, ...) return handles (`AnyDict`, ...) that
//! implement the traits of [`api`](crate::api) over either backend.

use std::borrow::Borrow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::{DictKey, DictValue, VecItem};

use shm_manager::SharedMemoryManager;

use crate::address::{Address, RedisAddress};
use crate::api::{SharedDict, SharedNamespace, SharedValue, SharedVec};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::object::RemoteObject;

/// A namespace on a Redis server: the connection pool and the key prefix.
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::manager::RedisManager::open(&server.url("doc").parse()?, None)?;
/// assert_eq!(m.namespace(), "doc");
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisManager {
    conn: Arc<Conn>,
    namespace: String,
}

impl std::str::FromStr for RedisAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RedisAddress::parse(s)
    }
}

impl RedisManager {
    /// Connects to the server of `address` (one `PING` to check it answers);
    /// `timeout` is every call's default (`None`: [`crate::conn::DEFAULT_TIMEOUT`]).
    pub fn open(address: &RedisAddress, timeout: Option<Duration>) -> Result<Self> {
        Ok(RedisManager {
            conn: Conn::open(address, timeout)?,
            namespace: address.namespace.clone(),
        })
    }

    /// The connection pool.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Opens the object `name` (see [`RemoteObject::open`]).
    pub fn object(
        &self,
        name: &str,
        kind: &str,
        type_name: &str,
        redis_type: &str,
    ) -> Result<RemoteObject> {
        RemoteObject::open(
            self.conn.clone(),
            &self.namespace,
            name,
            kind,
            type_name,
            redis_type,
        )
    }

    /// The names of the objects of this namespace (by their type tags; `SCAN`, so
    /// the server is not blocked on large databases).
    pub fn keys(&self) -> Result<Vec<String>> {
        let prefix = crate::object::key(&self.namespace, "m", "");
        let mut out = Vec::new();
        self.scan(&format!("{}*", glob_escape(&prefix)), |batch| {
            out.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)),
            );
            Ok(())
        })?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deletes every key of the namespace (`SCAN` + `UNLINK`); how many. Objects on
    /// Redis outlive their clients: this is how a namespace is removed.
    pub fn clear_namespace(&self) -> Result<usize> {
        let mut removed = 0usize;
        self.scan(&format!("{}:*", glob_escape(&self.namespace)), |batch| {
            if !batch.is_empty() {
                let n: usize = self.conn.query(
                    redis::cmd("UNLINK").arg(&batch),
                    self.conn.timeout(),
                    Retry::Idempotent,
                )?;
                removed += n;
            }
            Ok(())
        })?;
        Ok(removed)
    }

    /// `SCAN MATCH pattern` to the end, each batch of keys to `each`.
    fn scan(&self, pattern: &str, mut each: impl FnMut(Vec<String>) -> Result<()>) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.conn.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000),
                self.conn.timeout(),
                Retry::Idempotent,
            )?;
            each(batch)?;
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Escapes the glob characters of `SCAN MATCH` (`*?[]\`).
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Objects by key, on shared memory or on Redis depending on the address.
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// for address in [format!("doc-mgr-{}", std::process::id()), server.url("doc")] {
///     let m = shm_remote::Manager::create(&address)?;
///     assert_eq!(m.is_local(), !address.starts_with("redis"));
/// }
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub enum Manager {
    /// Shared memory on this machine.
    Local(Box<SharedMemoryManager>),
    /// A namespace on a Redis server.
    Redis(RedisManager),
}

impl Manager {
    /// Creates the manager at `address`: a local name starts a new
    /// [`SharedMemoryManager`] (its owner: dropping it removes its objects); a Redis
    /// address connects to the namespace (Redis objects outlive their clients: see
    /// [`RedisManager::clear_namespace`]).
    pub fn create(address: &str) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => {
                Ok(Manager::Local(Box::new(SharedMemoryManager::named(&name)?)))
            }
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, None)?)),
        }
    }

    /// Connects to the manager at `address` that another process created (a local
    /// name must exist: [`Error::NotFound`] otherwise).
    pub fn connect(address: &str) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => Ok(Manager::Local(Box::new(SharedMemoryManager::connect(
                &name,
            )?))),
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, None)?)),
        }
    }

    /// Connects to the manager at `address`, waiting up to `wait` for a local one to
    /// be created; `wait` is also the Redis manager's default call timeout.
    pub fn connect_timeout(address: &str, wait: Duration) -> Result<Self> {
        match Address::parse(address)? {
            Address::Local(name) => Ok(Manager::Local(Box::new(
                SharedMemoryManager::connect_timeout(&name, wait)?,
            ))),
            Address::Redis(r) => Ok(Manager::Redis(RedisManager::open(&r, Some(wait))?)),
        }
    }

    /// Whether the objects live in shared memory on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Manager::Local(_))
    }

    /// The shared-memory manager, if local.
    pub fn local(&self) -> Option<&SharedMemoryManager> {
        match self {
            Manager::Local(m) => Some(m),
            Manager::Redis(_) => None,
        }
    }

    /// The Redis manager, if remote.
    pub fn redis(&self) -> Option<&RedisManager> {
        match self {
            Manager::Local(_) => None,
            Manager::Redis(m) => Some(m),
        }
    }

    /// The address to hand to other processes: the local manager's name, or the
    /// Redis URL (its password included: it is what a peer needs; never log it).
    pub fn address(&self) -> String {
        match self {
            Manager::Local(m) => m.name().to_owned(),
            Manager::Redis(m) => {
                let a = m.conn.address();
                let scheme = if a.tls { "rediss" } else { "redis" };
                let auth = match (&a.username, &a.password) {
                    (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
                    (Some(u), None) => format!("{}@", enc(u)),
                    (None, Some(p)) => format!(":{}@", enc(p)),
                    (None, None) => String::new(),
                };
                format!("{scheme}://{auth}{}/{}", a.server(), a.namespace)
            }
        }
    }

    /// How long the objects opened from now on wait by default: a writer lock held
    /// by another process (local), a server's reply (Redis). `None`: no limit.
    ///
    /// ```
    /// let m = shm_remote::Manager::create(&format!("doc-pat-{}", std::process::id()))?;
    /// m.set_patience(Some(std::time::Duration::from_secs(2)));
    /// assert_eq!(m.patience(), Some(std::time::Duration::from_secs(2)));
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn set_patience(&self, patience: Option<Duration>) {
        match self {
            Manager::Local(m) => m.set_patience(patience),
            Manager::Redis(m) => m.conn.set_timeout(patience),
        }
    }

    /// The default patience of objects opened from now on.
    pub fn patience(&self) -> Option<Duration> {
        match self {
            Manager::Local(m) => m.patience(),
            Manager::Redis(m) => m.conn.timeout(),
        }
    }

    /// The keys of the objects.
    pub fn keys(&self) -> Result<Vec<String>> {
        match self {
            Manager::Local(m) => Ok(m.keys()?),
            Manager::Redis(m) => m.keys(),
        }
    }
}

/// Percent-encodes the characters of a user info that the URL syntax reserves.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Typed accessors: each opens the object `key`, creating it when new, on the
/// manager's backend. The handles implement the traits of [`api`](crate::api).
impl Manager {
    /// A dict (`shm_collections::ShareableDict` or a Redis hash).
    ///
    /// ```
    /// use shm_remote::prelude::*;
    /// let server = shm_remote::testing::RedisServer::start().unwrap();
    /// for address in [format!("doc-dict-{}", std::process::id()), server.url("doc")] {
    ///     let m = shm_remote::Manager::create(&address)?;
    ///     let d = m.dict::<String, u32>("scores")?;
    ///     d.insert("ann".into(), 3)?;
    ///     assert_eq!(m.dict::<String, u32>("scores")?.get("ann")?, Some(3));
    ///     assert!(m.dict::<String, i64>("scores").is_err()); // another value type
    /// }
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn dict<K: DictKey, V: DictValue>(&self, key: &str) -> Result<AnyDict<K, V>> {
        Ok(match self {
            Manager::Local(m) => AnyDict::Local(m.dict(key)?),
            Manager::Redis(m) => AnyDict::Redis(crate::ShareableDict::open(m, key)?),
        })
    }

    /// A growable vec (`shm_collections::ShareableVec` or a Redis list): what
    /// Python's `Manager().list()` is used for.
    ///
    /// ```
    /// use shm_remote::prelude::*;
    /// let m = shm_remote::Manager::create(&format!("doc-list-{}", std::process::id()))?;
    /// m.list::<String>("results")?.push("ok".into())?;
    /// assert_eq!(m.list::<String>("results")?.len()?, 1);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn list<T: VecItem>(&self, key: &str) -> Result<AnyVec<T>> {
        Ok(match self {
            Manager::Local(m) => AnyVec::Local(m.list(key)?),
            Manager::Redis(m) => AnyVec::Redis(crate::ShareableVec::open(m, key)?),
        })
    }

    /// The same as [`list`](Self::list).
    ///
    /// ```
    /// use shm_remote::prelude::*;
    /// let m = shm_remote::Manager::create(&format!("doc-vec-{}", std::process::id()))?;
    /// m.vec::<u32>("xs")?.push(1)?;
    /// assert_eq!(m.list::<u32>("xs")?.get(0)?, Some(1));
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn vec<T: VecItem>(&self, key: &str) -> Result<AnyVec<T>> {
        self.list(key)
    }

    /// A namespace of typed attributes.
    ///
    /// ```
    /// use shm_remote::prelude::*;
    /// let m = shm_remote::Manager::create(&format!("doc-ns-{}", std::process::id()))?;
    /// m.namespace("cfg")?.set("depth", &3u8)?;
    /// assert_eq!(m.namespace("cfg")?.get::<u8>("depth")?, Some(3));
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn namespace(&self, key: &str) -> Result<AnyNamespace> {
        Ok(match self {
            Manager::Local(m) => AnyNamespace::Local(m.namespace(key)?),
            Manager::Redis(m) => AnyNamespace::Redis(crate::Namespace::open(m, key)?),
        })
    }

    /// A value behind a lock, `init` when new. Locally `T` is a `Pod` in shared memory
    /// (`shm_collections::Value`); on Redis it is encoded with serde. Write the type of
    /// `init` out (`0u64`): another type is [`Error::WrongType`].
    ///
    /// ```
    /// use shm_remote::prelude::*;
    /// let m = shm_remote::Manager::create(&format!("doc-value-{}", std::process::id()))?;
    /// let v = m.value("count", 0i64)?;
    /// v.update(|x| *x += 2)?;
    /// assert_eq!(m.value("count", 0i64)?.get()?, 2);
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn value<T>(&self, key: &str, init: T) -> Result<AnyValue<T>>
    where
        T: bytemuck::Pod + Serialize + DeserializeOwned,
    {
        Ok(match self {
            Manager::Local(m) => AnyValue::Local(m.value(key, init)?),
            Manager::Redis(m) => AnyValue::Redis(crate::Value::open(m, key, init)?),
        })
    }
}

/// Defines a handle enum over the two backends' types.
macro_rules! any_handle {
    ($(#[$doc:meta])* $name:ident<$($g:ident),*> ($local:ty, $redis:ty) where $($bounds:tt)*) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name<$($g),*> where $($bounds)* {
            /// Shared memory.
            Local($local),
            /// Redis.
            Redis($redis),
        }
    };
}

any_handle!(
    /// A dict on either backend (from [`Manager::dict`]); see [`SharedDict`].
    AnyDict<K, V>(shm_collections::ShareableDict<K, V>, crate::ShareableDict<K, V>)
    where K: DictKey, V: DictValue
);
any_handle!(
    /// A vec on either backend (from [`Manager::list`]); see [`SharedVec`].
    AnyVec<T>(shm_collections::ShareableVec<T>, crate::ShareableVec<T>) where T: VecItem
);
any_handle!(
    /// A value on either backend (from [`Manager::value`]); see [`SharedValue`].
    AnyValue<T>(shm_collections::Value<T>, crate::Value<T>)
    where T: bytemuck::Pod + Serialize + DeserializeOwned
);

/// A namespace on either backend (from [`Manager::namespace`]); see [`SharedNamespace`].
#[derive(Debug)]
pub enum AnyNamespace {
    /// Shared memory.
    Local(shm_collections::Namespace),
    /// Redis.
    Redis(crate::Namespace),
}

/// `match self { Local(x) => x.$call, Redis(x) => x.$call }` through the trait.
macro_rules! both {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            Self::Local($h) => $e,
            Self::Redis($h) => $e,
        }
    };
}

impl<K: DictKey, V: DictValue> SharedDict<K, V> for AnyDict<K, V> {
    fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        both!(self, d => SharedDict::get(d, key))
    }
    fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        both!(self, d => SharedDict::contains_key(d, key))
    }
    fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        both!(self, d => SharedDict::insert(d, key, value))
    }
    fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        both!(self, d => SharedDict::remove(d, key))
    }
    fn len(&self) -> Result<usize> {
        both!(self, d => SharedDict::len(d))
    }
    fn clear(&self) -> Result<()> {
        both!(self, d => SharedDict::clear(d))
    }
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        both!(self, d => SharedDict::extend(d, pairs))
    }
    fn update(&self, key: K, f: impl FnMut(Option<V>) -> V) -> Result<V> {
        both!(self, d => SharedDict::update(d, key, f))
    }
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V> {
        both!(self, d => SharedDict::get_or_insert_with(d, key, make))
    }
    fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>> {
        both!(self, d => SharedDict::iter(d))
    }
    fn keys(&self) -> Result<Vec<K>> {
        both!(self, d => SharedDict::keys(d))
    }
    fn values(&self) -> Result<Vec<V>> {
        both!(self, d => SharedDict::values(d))
    }
    fn set_patience(&self, patience: Option<Duration>) {
        both!(self, d => SharedDict::set_patience(d, patience))
    }
    fn patience(&self) -> Option<Duration> {
        both!(self, d => SharedDict::patience(d))
    }
}

impl<T: VecItem> SharedVec<T> for AnyVec<T> {
    fn push(&self, value: T) -> Result<()> {
        both!(self, v => SharedVec::push(v, value))
    }
    fn pop(&self) -> Result<Option<T>> {
        both!(self, v => SharedVec::pop(v))
    }
    fn get(&self, index: usize) -> Result<Option<T>> {
        both!(self, v => SharedVec::get(v, index))
    }
    fn set(&self, index: usize, value: T) -> Result<T> {
        both!(self, v => SharedVec::set(v, index, value))
    }
    fn update(&self, index: usize, f: impl FnMut(T) -> T) -> Result<T> {
        both!(self, v => SharedVec::update(v, index, f))
    }
    fn insert(&self, index: usize, value: T) -> Result<()> {
        both!(self, v => SharedVec::insert(v, index, value))
    }
    fn remove(&self, index: usize) -> Result<T> {
        both!(self, v => SharedVec::remove(v, index))
    }
    fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        both!(self, v => SharedVec::extend(v, values))
    }
    fn len(&self) -> Result<usize> {
        both!(self, v => SharedVec::len(v))
    }
    fn clear(&self) -> Result<()> {
        both!(self, v => SharedVec::clear(v))
    }
    fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        both!(self, v => SharedVec::iter(v))
    }
    fn set_patience(&self, patience: Option<Duration>) {
        both!(self, v => SharedVec::set_patience(v, patience))
    }
    fn patience(&self) -> Option<Duration> {
        both!(self, v => SharedVec::patience(v))
    }
}

impl SharedNamespace for AnyNamespace {
    fn set<T: Serialize>(&self, attr: &str, value: &T) -> Result<()> {
        both!(self, n => SharedNamespace::set(n, attr, value))
    }
    fn get<T: DeserializeOwned>(&self, attr: &str) -> Result<Option<T>> {
        both!(self, n => SharedNamespace::get(n, attr))
    }
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        f: impl FnMut(Option<T>) -> T,
    ) -> Result<T> {
        both!(self, n => SharedNamespace::update(n, attr, f))
    }
    fn remove(&self, attr: &str) -> Result<bool> {
        both!(self, n => SharedNamespace::remove(n, attr))
    }
    fn contains(&self, attr: &str) -> Result<bool> {
        both!(self, n => SharedNamespace::contains(n, attr))
    }
    fn attrs(&self) -> Result<Vec<String>> {
        both!(self, n => SharedNamespace::attrs(n))
    }
    fn len(&self) -> Result<usize> {
        both!(self, n => SharedNamespace::len(n))
    }
}

impl<T: bytemuck::Pod + Serialize + DeserializeOwned> SharedValue<T> for AnyValue<T> {
    fn get(&self) -> Result<T> {
        both!(self, v => SharedValue::get(v))
    }
    fn set(&self, value: T) -> Result<()> {
        both!(self, v => SharedValue::set(v, value))
    }
    fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> Result<R> {
        both!(self, v => SharedValue::update(v, f))
    }
}
