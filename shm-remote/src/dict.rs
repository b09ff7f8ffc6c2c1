//! [`ShareableDict`], [`ShareableVec`], [`Namespace`] and [`Value`] over Redis: a hash,
//! a list, a hash and a string at `<namespace>:d:<name>`, with the serde codec of
//! `shm_collections` (bincode 2, standard configuration; keys and values are the same
//! bytes as in shared memory).
//!
//! # Atomicity and crashes (every type)
//!
//! - Every call is one command, one fixed Lua script or one `WATCH`/`MULTI`/`EXEC`
//!   transaction: the server applies it whole or not at all, and other clients see it
//!   whole. A client killed at any point (kill -9) leaves the value either as before or
//!   as after its last call; nothing it had acknowledged is lost.
//! - `update` reads, runs the closure on this client, and writes in a transaction that
//!   the server refuses when another client changed the key in between; the closure
//!   then runs again on the new value (optimistic concurrency: no lost update, the
//!   closure may run more than once, never a partial write).
//! - The server: a write is acknowledged after the server applied it in memory. With
//!   `appendonly yes` (the harness's `ServerOptions::appendonly`) it is in the
//!   append-only file before the reply, so a killed server (kill -9) restarts with every
//!   acknowledged write; without persistence a restart empties the namespace (calls
//!   then see empty objects, or [`Error::NotFound`] for a [`Value`]). With
//!   `appendfsync everysec` a power loss can lose the last second.
//! - While the server is unreachable calls fail with [`Error::Disconnected`] (or
//!   [`Error::Timeout`] if it does not answer within the handle's patience); the next
//!   call reconnects. A write whose reply was lost may or may not have been applied
//!   (writes that are safe to repeat are repeated once, see [`Retry`]).
//! - Bytes planted by something else (a value that does not decode, a key of another
//!   Redis type, a value over the handle's limits) give [`Error::Corrupted`],
//!   [`Error::WrongType`] or [`Error::TooLarge`], never a panic.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::codec;
use shm_collections::{DictKey, DictValue, Limits, VecItem};

use crate::api::{SharedDict, SharedNamespace, SharedValue, SharedVec};
use crate::conn::{Retry, Session};
use crate::error::{Error, Result};
use crate::manager::RedisManager;
use crate::object::RemoteObject;

fn short<T: ?Sized>() -> String {
    shm_core::short_type_name(std::any::type_name::<T>())
}

/// Encoding, decoding and the size limits of one handle.
#[derive(Debug)]
struct Codec {
    obj: RemoteObject,
    limits: Limits,
}

impl Codec {
    fn key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        codec::encode(key, &mut out).map_err(|e| Error::Encode {
            name: self.obj.label().to_owned(),
            what: "key",
            reason: e.0,
        })?;
        self.check("key", out.len(), self.limits.max_key)?;
        Ok(out)
    }

    fn value<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        codec::encode(v, &mut out).map_err(|e| Error::Encode {
            name: self.obj.label().to_owned(),
            what: "value",
            reason: e.0,
        })?;
        self.check("value", out.len(), self.limits.max_value)?;
        Ok(out)
    }

    fn check(&self, what: &'static str, len: usize, limit: u32) -> Result<()> {
        let limit = limit as usize;
        if len > limit {
            return Err(Error::TooLarge {
                name: self.obj.label().to_owned(),
                what,
                len,
                limit,
            });
        }
        Ok(())
    }

    /// Decodes stored bytes: over the limit is [`Error::TooLarge`], not a `T` is
    /// [`Error::Corrupted`] naming the expected type.
    fn decode<T: DeserializeOwned>(&self, what: &'static str, bytes: &[u8]) -> Result<T> {
        let limit = if what == "key" {
            self.limits.max_key
        } else {
            self.limits.max_value
        };
        self.check(what, bytes.len(), limit)?;
        codec::decode::<T>(bytes).map_err(|e| Error::Corrupted {
            name: self.obj.label().to_owned(),
            what: format!(
                "stored {what} ({} bytes) does not decode as {}: {}",
                bytes.len(),
                short::<T>(),
                e.0
            ),
        })
    }

    /// Runs `f` with this handle's patience; errors name the object.
    fn run<R>(&self, retry: Retry, f: impl FnMut(&mut Session<'_>) -> Result<R>) -> Result<R> {
        self.obj
            .conn()
            .run(self.obj.patience(), retry, f)
            .map_err(|e| self.obj.rename(e))
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, retry: Retry) -> Result<T> {
        self.run(retry, |s| s.query(cmd))
    }

    /// An optimistic transaction on the data key: `WATCH` and the reads of `reads` in
    /// one round trip, then `attempt` turns what they read into the commands to run in
    /// `MULTI`/`EXEC` (a second round trip) and the result. It runs again while another
    /// client's write aborts the `EXEC`, until the patience runs out
    /// ([`Error::Timeout`]).
    fn transact<T: redis::FromRedisValue, R>(
        &self,
        reads: &redis::Pipeline,
        mut attempt: impl FnMut(T) -> Result<(redis::Pipeline, R)>,
    ) -> Result<R> {
        let key = self.obj.data_key().to_owned();
        self.run(Retry::Once, |s| {
            let mut conflicts = 0u32;
            loop {
                let read: T = s.watch_read(&[&key], reads)?;
                let (mut pipe, r) = attempt(read)?;
                if s.exec(&mut pipe)?.is_some() {
                    return Ok(r);
                }
                // Another client won the race: read again (the deadline bounds the loop).
                conflicts = conflicts.saturating_add(1);
                if s.deadline().passed() {
                    return Err(Error::Timeout {
                        what: format!("{} ({conflicts} conflicting writes)", self.obj.label()),
                        waited: s.deadline().timeout().unwrap_or_default(),
                    });
                }
                if conflicts > 8 {
                    std::thread::sleep(Duration::from_micros(50 * u64::from(conflicts.min(40))));
                }
            }
        })
    }
}

static DICT_GET_OR_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) \
         return redis.call('HGET', KEYS[1], ARGV[1])",
    )
});

/// A dict of serde keys and values in a Redis hash: `shm_collections::ShareableDict`'s
/// methods, one round trip each.
///
/// | method | Redis | atomic |
/// |--------|-------|--------|
/// | `get`, `contains_key` | `HGET`, `HEXISTS` | yes |
/// | `insert`, `remove` | `MULTI` `HGET` `HSET`/`HDEL` `EXEC` (one round trip) | yes, returns the previous value |
/// | `len`, `clear` | `HLEN`, `DEL` | yes |
/// | `extend` | one `HSET` of every pair | yes, all pairs or none |
/// | `update` | `WATCH` `HGET` … `MULTI` `HSET` `EXEC`, again on conflict | yes, no lost update |
/// | `get_or_insert_with` | `HGET`, then a script (`HSETNX` + `HGET`) | yes, one value wins |
/// | `iter`, `keys`, `values` | `HGETALL`, `HKEYS`, `HVALS` | a consistent snapshot |
///
/// Crashes: see the [module documentation](self).
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
/// let d = shm_remote::ShareableDict::<String, u64>::open(&m, "scores")?;
/// d.insert("ann".into(), 3)?;
/// assert_eq!(d.update("ann".into(), |v| v.unwrap_or(0) + 1)?, 4);
/// assert_eq!(d.get("ann")?, Some(4));
/// assert!(shm_remote::ShareableDict::<String, i8>::open(&m, "scores").is_err()); // another type
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub struct ShareableDict<K, V> {
    c: Codec,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: DictKey, V: DictValue> ShareableDict<K, V> {
    /// Opens the dict `name` of `manager`, creating it (empty) when new.
    /// [`Error::WrongType`] if the name holds another object or another key or value
    /// type.
    pub fn open(manager: &RedisManager, name: &str) -> Result<Self> {
        Self::open_with(manager, name, Limits::default())
    }

    /// As [`open`](Self::open), with other size limits for encoded keys and values
    /// (checked on writes and on what is read back).
    ///
    /// ```
    /// let server = shm_remote::testing::RedisServer::start().unwrap();
    /// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
    /// let limits = shm_collections::Limits { max_key: 16, max_value: 16 };
    /// let d = shm_remote::ShareableDict::<u8, String>::open_with(&m, "small", limits)?;
    /// assert!(matches!(d.insert(1, "x".repeat(100)), Err(shm_remote::Error::TooLarge { .. })));
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open_with(manager: &RedisManager, name: &str, limits: Limits) -> Result<Self> {
        let ty = format!("Dict<{}, {}>", short::<K>(), short::<V>());
        let obj = manager.object(name, "Dict", &ty, "hash")?;
        Ok(ShareableDict {
            c: Codec { obj, limits },
            _t: PhantomData,
        })
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.obj.name()
    }

    /// The Redis key of the hash.
    pub fn data_key(&self) -> &str {
        self.c.obj.data_key()
    }

    fn key_bytes(&self) -> &str {
        self.c.obj.data_key()
    }

    fn opt(&self, v: Option<Vec<u8>>) -> Result<Option<V>> {
        v.map(|b| self.c.decode::<V>("value", &b)).transpose()
    }

    /// The value for `key`: one `HGET`.
    pub fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        let k = self.c.key(key)?;
        let v: Option<Vec<u8>> = self.c.query(
            redis::cmd("HGET").arg(self.key_bytes()).arg(k),
            Retry::Idempotent,
        )?;
        self.opt(v)
    }

    /// Whether `key` is present: one `HEXISTS`.
    pub fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        let k = self.c.key(key)?;
        self.c.query(
            redis::cmd("HEXISTS").arg(self.key_bytes()).arg(k),
            Retry::Idempotent,
        )
    }

    /// Sets `key` to `value`; the previous value (`MULTI`/`EXEC`: atomic, one round trip).
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let k = self.c.key(&key)?;
        let v = self.c.value(&value)?;
        let data = self.key_bytes();
        // MULTI HGET HSET EXEC: one round trip, atomic, no Lua (cheaper on the server
        // than the equivalent script).
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGET")
            .arg(data)
            .arg(&k[..])
            .cmd("HSET")
            .arg(data)
            .arg(&k[..])
            .arg(&v[..])
            .ignore();
        let (old,): (Option<Vec<u8>>,) = self.c.run(Retry::Once, |s| s.pipeline(&pipe))?;
        self.opt(old)
    }

    /// Removes `key`; its value (`MULTI`/`EXEC`: atomic, one round trip).
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        let k = self.c.key(key)?;
        let data = self.key_bytes();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HGET")
            .arg(data)
            .arg(&k[..])
            .cmd("HDEL")
            .arg(data)
            .arg(&k[..])
            .ignore();
        let (old,): (Option<Vec<u8>>,) = self.c.run(Retry::Once, |s| s.pipeline(&pipe))?;
        self.opt(old)
    }

    /// The number of entries: `HLEN`.
    pub fn len(&self) -> Result<usize> {
        self.c
            .query(redis::cmd("HLEN").arg(self.key_bytes()), Retry::Idempotent)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry (`DEL` of the hash; the type tag stays).
    pub fn clear(&self) -> Result<()> {
        let _: usize = self
            .c
            .query(redis::cmd("DEL").arg(self.key_bytes()), Retry::Idempotent)?;
        Ok(())
    }

    /// Inserts every pair in one `HSET` (all or nothing).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.key_bytes());
        let mut any = false;
        for (k, v) in pairs {
            cmd.arg(self.c.key(&k)?).arg(self.c.value(&v)?);
            any = true;
        }
        if any {
            let _: usize = self.c.query(&cmd, Retry::Idempotent)?;
        }
        Ok(())
    }

    /// Replaces the value of `key` by `f(old)` in an optimistic transaction; the new
    /// value. `f` runs again when another client changed the dict in between.
    pub fn update(&self, key: K, mut f: impl FnMut(Option<V>) -> V) -> Result<V> {
        let k = self.c.key(&key)?;
        let data = self.key_bytes();
        let mut reads = redis::pipe();
        reads.cmd("HGET").arg(data).arg(&k[..]);
        self.c.transact(&reads, |(old,): (Option<Vec<u8>>,)| {
            let new = f(self.opt(old)?);
            let bytes = self.c.value(&new)?;
            let mut pipe = redis::pipe();
            pipe.cmd("HSET").arg(data).arg(&k[..]).arg(bytes).ignore();
            Ok((pipe, new))
        })
    }

    /// The value of `key`, inserting `make()` first when absent; when several clients
    /// race, one value wins and all get it.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V> {
        if let Some(v) = self.get(&key)? {
            return Ok(v);
        }
        let k = self.c.key(&key)?;
        let v = self.c.value(&make())?;
        let data = self.key_bytes();
        let stored: Option<Vec<u8>> = self.c.run(Retry::Idempotent, |s| {
            s.invoke(DICT_GET_OR_INSERT.key(data).arg(&k[..]).arg(&v[..]))
        })?;
        self.opt(stored)?.ok_or_else(|| Error::Corrupted {
            name: self.c.obj.label().to_owned(),
            what: "the entry just inserted is missing".into(),
        })
    }

    /// A snapshot of the entries: `HGETALL`.
    pub fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>> {
        let all: Vec<(Vec<u8>, Vec<u8>)> = self.c.query(
            redis::cmd("HGETALL").arg(self.key_bytes()),
            Retry::Idempotent,
        )?;
        let mut out = Vec::with_capacity(all.len());
        for (k, v) in all {
            out.push((self.c.decode("key", &k)?, self.c.decode("value", &v)?));
        }
        Ok(out.into_iter())
    }

    /// A snapshot of the keys: `HKEYS`.
    pub fn keys(&self) -> Result<Vec<K>> {
        let all: Vec<Vec<u8>> = self
            .c
            .query(redis::cmd("HKEYS").arg(self.key_bytes()), Retry::Idempotent)?;
        all.iter().map(|k| self.c.decode("key", k)).collect()
    }

    /// A snapshot of the values: `HVALS`.
    pub fn values(&self) -> Result<Vec<V>> {
        let all: Vec<Vec<u8>> = self
            .c
            .query(redis::cmd("HVALS").arg(self.key_bytes()), Retry::Idempotent)?;
        all.iter().map(|v| self.c.decode("value", v)).collect()
    }

    /// How long each call waits for the server (`None`: no limit); the manager's
    /// timeout by default.
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.c.obj.set_patience(patience)
    }

    /// The current patience.
    pub fn patience(&self) -> Option<Duration> {
        self.c.obj.patience()
    }
}

impl<K: DictKey, V: DictValue> SharedDict<K, V> for ShareableDict<K, V> {
    fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        ShareableDict::get(self, key)
    }
    fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        ShareableDict::contains_key(self, key)
    }
    fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        ShareableDict::insert(self, key, value)
    }
    fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        ShareableDict::remove(self, key)
    }
    fn len(&self) -> Result<usize> {
        ShareableDict::len(self)
    }
    fn clear(&self) -> Result<()> {
        ShareableDict::clear(self)
    }
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        ShareableDict::extend(self, pairs)
    }
    fn update(&self, key: K, f: impl FnMut(Option<V>) -> V) -> Result<V> {
        ShareableDict::update(self, key, f)
    }
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V> {
        ShareableDict::get_or_insert_with(self, key, make)
    }
    fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>> {
        ShareableDict::iter(self)
    }
    fn keys(&self) -> Result<Vec<K>> {
        ShareableDict::keys(self)
    }
    fn values(&self) -> Result<Vec<V>> {
        ShareableDict::values(self)
    }
    fn set_patience(&self, patience: Option<Duration>) {
        ShareableDict::set_patience(self, patience)
    }
    fn patience(&self) -> Option<Duration> {
        ShareableDict::patience(self)
    }
}

// ---- ShareableVec ----

/// `LSET` of an index that exists, with the old item: `[1, old]`, or `[0, len]`.
static VEC_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local old = redis.call('LINDEX', KEYS[1], ARGV[1]) \
         if not old then return {0, redis.call('LLEN', KEYS[1])} end \
         redis.call('LSET', KEYS[1], ARGV[1], ARGV[2]) return {1, old}",
    )
});

/// Moves the tail after `i` (exclusive of nothing: from `from`) back on the list in
/// chunks (Lua's `unpack` has a stack limit).
const PUSH_REST: &str = "local function push_rest(rest) \
     for j = 1, #rest, 1000 do \
       redis.call('RPUSH', KEYS[1], unpack(rest, j, math.min(j + 999, #rest))) \
     end end ";

/// Insert at an index: `[1, len]` or `[0, len]` when `index > len`.
static VEC_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PUSH_REST} \
         local n = redis.call('LLEN', KEYS[1]) local i = tonumber(ARGV[1]) \
         if i > n then return {{0, n}} end \
         if i == n then redis.call('RPUSH', KEYS[1], ARGV[2]) return {{1, n}} end \
         if i == 0 then redis.call('LPUSH', KEYS[1], ARGV[2]) return {{1, n}} end \
         local rest = redis.call('LRANGE', KEYS[1], i, -1) \
         redis.call('LTRIM', KEYS[1], 0, i - 1) \
         redis.call('RPUSH', KEYS[1], ARGV[2]) push_rest(rest) return {{1, n}}"
    ))
});

/// Remove at an index: `[len, old]`, or `[len]` when out of range.
static VEC_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PUSH_REST} \
         local n = redis.call('LLEN', KEYS[1]) local i = tonumber(ARGV[1]) \
         if i >= n then return {{n}} end \
         if i == 0 then return {{n, redis.call('LPOP', KEYS[1])}} end \
         if i == n - 1 then return {{n, redis.call('RPOP', KEYS[1])}} end \
         local old = redis.call('LINDEX', KEYS[1], i) \
         local rest = redis.call('LRANGE', KEYS[1], i + 1, -1) \
         redis.call('LTRIM', KEYS[1], 0, i - 1) push_rest(rest) return {{n, old}}"
    ))
});

/// The largest index sent to a script (Lua numbers are exact up to 2^53).
const MAX_SCRIPT_INDEX: usize = 1 << 52;

/// A growable vec of serde items in a Redis list: `shm_collections::ShareableVec`'s
/// methods, one round trip each.
///
/// | method | Redis | atomic |
/// |--------|-------|--------|
/// | `push`, `pop`, `extend` | `RPUSH`, `RPOP`, one `RPUSH` of all | yes |
/// | `get`, `len`, `iter` | `LINDEX`, `LLEN`, `LRANGE 0 -1` | yes (a snapshot) |
/// | `set` | a script (`LINDEX` + `LSET`) | yes, returns the old item |
/// | `insert`, `remove` | a script (moves the tail: O(n) on the server) | yes |
/// | `update` | `WATCH` `LINDEX` … `MULTI` `LSET` `EXEC`, again on conflict | yes, no lost update |
/// | `clear` | `DEL` | yes |
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
/// let v = shm_remote::ShareableVec::<String>::open(&m, "log")?;
/// v.push("a".into())?;
/// v.insert(0, "z".into())?;
/// assert_eq!(v.iter()?.collect::<Vec<_>>(), ["z", "a"]);
/// assert!(matches!(v.set(5, "x".into()), Err(shm_remote::Error::IndexOutOfRange { len: 2, .. })));
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub struct ShareableVec<T> {
    c: Codec,
    _t: PhantomData<fn() -> T>,
}

impl<T: VecItem> ShareableVec<T> {
    /// Opens the vec `name` of `manager`, creating it (empty) when new.
    pub fn open(manager: &RedisManager, name: &str) -> Result<Self> {
        Self::open_with(manager, name, Limits::default())
    }

    /// As [`open`](Self::open) with other limits (`max_value` bounds an item).
    ///
    /// ```
    /// let server = shm_remote::testing::RedisServer::start().unwrap();
    /// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
    /// let limits = shm_collections::Limits { max_key: 16, max_value: 4 };
    /// let v = shm_remote::ShareableVec::<Vec<u8>>::open_with(&m, "tiny", limits)?;
    /// assert!(v.push(vec![0; 10]).is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn open_with(manager: &RedisManager, name: &str, limits: Limits) -> Result<Self> {
        let ty = format!("Vec<{}>", short::<T>());
        let obj = manager.object(name, "Vec", &ty, "list")?;
        Ok(ShareableVec {
            c: Codec { obj, limits },
            _t: PhantomData,
        })
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.obj.name()
    }

    /// The Redis key of the list.
    pub fn data_key(&self) -> &str {
        self.c.obj.data_key()
    }

    fn data(&self) -> &str {
        self.c.obj.data_key()
    }

    fn out_of_range(&self, index: usize, len: usize) -> Error {
        Error::IndexOutOfRange {
            name: self.c.obj.label().to_owned(),
            index,
            len,
        }
    }

    fn bad_reply(&self, what: &str) -> Error {
        Error::Corrupted {
            name: self.c.obj.label().to_owned(),
            what: format!("unexpected reply from the {what} script"),
        }
    }

    /// An index too large for a script: out of range whatever the list holds.
    fn check_index(&self, index: usize) -> Result<()> {
        if index > MAX_SCRIPT_INDEX {
            return Err(self.out_of_range(index, self.len()?));
        }
        Ok(())
    }

    /// Appends `value`: `RPUSH`.
    pub fn push(&self, value: T) -> Result<()> {
        let v = self.c.value(&value)?;
        let _: usize = self
            .c
            .query(redis::cmd("RPUSH").arg(self.data()).arg(v), Retry::Once)?;
        Ok(())
    }

    /// Removes and returns the last item: `RPOP`.
    pub fn pop(&self) -> Result<Option<T>> {
        let v: Option<Vec<u8>> = self
            .c
            .query(redis::cmd("RPOP").arg(self.data()), Retry::Once)?;
        v.map(|b| self.c.decode("element", &b)).transpose()
    }

    /// The item at `index`, `None` past the end: `LINDEX`.
    pub fn get(&self, index: usize) -> Result<Option<T>> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        let v: Option<Vec<u8>> = self.c.query(
            redis::cmd("LINDEX").arg(self.data()).arg(i),
            Retry::Idempotent,
        )?;
        v.map(|b| self.c.decode("element", &b)).transpose()
    }

    /// Replaces the item at `index`; the old one (a script: atomic).
    /// [`Error::IndexOutOfRange`] past the end.
    pub fn set(&self, index: usize, value: T) -> Result<T> {
        self.check_index(index)?;
        let v = self.c.value(&value)?;
        let data = self.data();
        let r: (i64, redis::Value) = self.c.run(Retry::Once, |s| {
            s.invoke(VEC_SET.key(data).arg(index).arg(&v[..]))
        })?;
        match r {
            (1, redis::Value::BulkString(old)) => self.c.decode("element", &old),
            (0, redis::Value::Int(n)) => {
                Err(self.out_of_range(index, usize::try_from(n).unwrap_or(0)))
            }
            _ => Err(self.bad_reply("set")),
        }
    }

    /// Replaces the item at `index` by `f(old)` in an optimistic transaction; the new
    /// item. [`Error::IndexOutOfRange`] past the end.
    pub fn update(&self, index: usize, mut f: impl FnMut(T) -> T) -> Result<T> {
        let Ok(i) = i64::try_from(index) else {
            return Err(self.out_of_range(index, self.len()?));
        };
        let data = self.data();
        let mut reads = redis::pipe();
        reads.cmd("LINDEX").arg(data).arg(i).cmd("LLEN").arg(data);
        self.c
            .transact(&reads, |(old, n): (Option<Vec<u8>>, usize)| {
                let Some(old) = old else {
                    return Err(self.out_of_range(index, n));
                };
                let new = f(self.c.decode("element", &old)?);
                let bytes = self.c.value(&new)?;
                let mut pipe = redis::pipe();
                pipe.cmd("LSET").arg(data).arg(i).arg(bytes).ignore();
                Ok((pipe, new))
            })
    }

    /// Inserts `value` at `index` (`index == len` appends); later items move up.
    /// A script (atomic; O(len - index) on the server).
    pub fn insert(&self, index: usize, value: T) -> Result<()> {
        self.check_index(index)?;
        let v = self.c.value(&value)?;
        let data = self.data();
        let (ok, n): (i64, i64) = self.c.run(Retry::Once, |s| {
            s.invoke(VEC_INSERT.key(data).arg(index).arg(&v[..]))
        })?;
        if ok == 1 {
            Ok(())
        } else {
            Err(self.out_of_range(index, usize::try_from(n).unwrap_or(0)))
        }
    }

    /// Removes and returns the item at `index`; later items move down. A script
    /// (atomic; O(len - index) on the server).
    pub fn remove(&self, index: usize) -> Result<T> {
        self.check_index(index)?;
        let data = self.data();
        let r: Vec<redis::Value> = self
            .c
            .run(Retry::Once, |s| s.invoke(VEC_REMOVE.key(data).arg(index)))?;
        match r.as_slice() {
            [redis::Value::Int(_), redis::Value::BulkString(old)] => self.c.decode("element", old),
            [redis::Value::Int(n)] => {
                Err(self.out_of_range(index, usize::try_from(*n).unwrap_or(0)))
            }
            _ => Err(self.bad_reply("remove")),
        }
    }

    /// Appends every value in one `RPUSH` (all or nothing).
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(self.data());
        let mut any = false;
        for v in values {
            cmd.arg(self.c.value(&v)?);
            any = true;
        }
        if any {
            let _: usize = self.c.query(&cmd, Retry::Once)?;
        }
        Ok(())
    }

    /// The number of items: `LLEN`.
    pub fn len(&self) -> Result<usize> {
        self.c
            .query(redis::cmd("LLEN").arg(self.data()), Retry::Idempotent)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every item: `DEL`.
    pub fn clear(&self) -> Result<()> {
        let _: usize = self
            .c
            .query(redis::cmd("DEL").arg(self.data()), Retry::Idempotent)?;
        Ok(())
    }

    /// A snapshot of the items in order: `LRANGE 0 -1`.
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        let all: Vec<Vec<u8>> = self.c.query(
            redis::cmd("LRANGE").arg(self.data()).arg(0).arg(-1),
            Retry::Idempotent,
        )?;
        let items: Result<Vec<T>> = all.iter().map(|b| self.c.decode("element", b)).collect();
        Ok(items?.into_iter())
    }

    /// How long each call waits for the server (`None`: no limit).
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.c.obj.set_patience(patience)
    }

    /// The current patience.
    pub fn patience(&self) -> Option<Duration> {
        self.c.obj.patience()
    }
}

impl<T: VecItem> SharedVec<T> for ShareableVec<T> {
    fn push(&self, value: T) -> Result<()> {
        ShareableVec::push(self, value)
    }
    fn pop(&self) -> Result<Option<T>> {
        ShareableVec::pop(self)
    }
    fn get(&self, index: usize) -> Result<Option<T>> {
        ShareableVec::get(self, index)
    }
    fn set(&self, index: usize, value: T) -> Result<T> {
        ShareableVec::set(self, index, value)
    }
    fn update(&self, index: usize, f: impl FnMut(T) -> T) -> Result<T> {
        ShareableVec::update(self, index, f)
    }
    fn insert(&self, index: usize, value: T) -> Result<()> {
        ShareableVec::insert(self, index, value)
    }
    fn remove(&self, index: usize) -> Result<T> {
        ShareableVec::remove(self, index)
    }
    fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        ShareableVec::extend(self, values)
    }
    fn len(&self) -> Result<usize> {
        ShareableVec::len(self)
    }
    fn clear(&self) -> Result<()> {
        ShareableVec::clear(self)
    }
    fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        ShareableVec::iter(self)
    }
    fn set_patience(&self, patience: Option<Duration>) {
        ShareableVec::set_patience(self, patience)
    }
    fn patience(&self) -> Option<Duration> {
        ShareableVec::patience(self)
    }
}

// ---- Namespace ----

/// What a namespace attribute stores: the type's fingerprint, its name, the value
/// (the layout of `shm_collections::Namespace`).
type Stored = (u64, String, Vec<u8>);

/// Named attributes of any serde type in a Redis hash (field = attribute name):
/// `shm_collections::Namespace`'s methods. Each attribute carries its type, and
/// reading it as another type is [`Error::TypeMismatch`].
///
/// | method | Redis | atomic |
/// |--------|-------|--------|
/// | `set`, `get`, `remove`, `contains` | `HSET`, `HGET`, `HDEL`, `HEXISTS` | yes |
/// | `update` | `WATCH` `HGET` … `MULTI` `HSET` `EXEC`, again on conflict | yes, no lost update |
/// | `attrs`, `len` | `HKEYS`, `HLEN` | a snapshot |
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
/// let ns = shm_remote::Namespace::open(&m, "cfg")?;
/// ns.set("depth", &3u8)?;
/// assert_eq!(ns.get::<u8>("depth")?, Some(3));
/// assert!(matches!(ns.get::<String>("depth"), Err(shm_remote::Error::TypeMismatch { .. })));
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub struct Namespace {
    c: Codec,
}

impl Namespace {
    /// Opens the namespace `name` of `manager`, creating it (empty) when new.
    pub fn open(manager: &RedisManager, name: &str) -> Result<Self> {
        let obj = manager.object(name, "Namespace", "Namespace", "hash")?;
        Ok(Namespace {
            c: Codec {
                obj,
                limits: Limits::default(),
            },
        })
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.obj.name()
    }

    fn data(&self) -> &str {
        self.c.obj.data_key()
    }

    fn attr<'a>(&self, attr: &'a str) -> Result<&'a str> {
        self.c.check("key", attr.len(), self.c.limits.max_key)?;
        Ok(attr)
    }

    fn pack<T: Serialize>(&self, value: &T) -> Result<Vec<u8>> {
        let stored: Stored = (
            codec::type_fingerprint::<T>(),
            std::any::type_name::<T>().to_owned(),
            self.c.value(value)?,
        );
        self.c.value(&stored)
    }

    fn unpack<T: DeserializeOwned>(&self, attr: &str, bytes: &[u8]) -> Result<T> {
        let (tag, type_name, value): Stored = self.c.decode("attribute", bytes)?;
        if tag != codec::type_fingerprint::<T>() {
            return Err(Error::TypeMismatch {
                name: self.c.obj.label().to_owned(),
                attr: attr.to_owned(),
                expected: short::<T>(),
                found: shm_core::short_type_name(&crate::object::clip(type_name.as_bytes())),
            });
        }
        self.c.decode("value", &value)
    }

    /// Sets `attr` to `value` (of any serde type): `HSET`.
    pub fn set<T: Serialize>(&self, attr: &str, value: &T) -> Result<()> {
        let a = self.attr(attr)?;
        let v = self.pack(value)?;
        let _: usize = self.c.query(
            redis::cmd("HSET").arg(self.data()).arg(a).arg(v),
            Retry::Idempotent,
        )?;
        Ok(())
    }

    /// The value of `attr` as a `T`: `None` if unset, [`Error::TypeMismatch`] if it
    /// holds another type. `HGET`.
    pub fn get<T: DeserializeOwned>(&self, attr: &str) -> Result<Option<T>> {
        let a = self.attr(attr)?;
        let v: Option<Vec<u8>> = self.c.query(
            redis::cmd("HGET").arg(self.data()).arg(a),
            Retry::Idempotent,
        )?;
        v.map(|b| self.unpack(attr, &b)).transpose()
    }

    /// Replaces `attr` by `f(old)` in an optimistic transaction; the new value. A type
    /// mismatch is an error and changes nothing.
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        mut f: impl FnMut(Option<T>) -> T,
    ) -> Result<T> {
        let a = self.attr(attr)?;
        let data = self.data();
        let mut reads = redis::pipe();
        reads.cmd("HGET").arg(data).arg(a);
        self.c.transact(&reads, |(old,): (Option<Vec<u8>>,)| {
            let old = old.map(|b| self.unpack::<T>(attr, &b)).transpose()?;
            let new = f(old);
            let bytes = self.pack(&new)?;
            let mut pipe = redis::pipe();
            pipe.cmd("HSET").arg(data).arg(a).arg(bytes).ignore();
            Ok((pipe, new))
        })
    }

    /// Removes `attr`; whether it was set. `HDEL`.
    pub fn remove(&self, attr: &str) -> Result<bool> {
        let a = self.attr(attr)?;
        let n: usize = self
            .c
            .query(redis::cmd("HDEL").arg(self.data()).arg(a), Retry::Once)?;
        Ok(n > 0)
    }

    /// Whether `attr` is set: `HEXISTS`.
    pub fn contains(&self, attr: &str) -> Result<bool> {
        let a = self.attr(attr)?;
        self.c.query(
            redis::cmd("HEXISTS").arg(self.data()).arg(a),
            Retry::Idempotent,
        )
    }

    /// The attribute names: `HKEYS`. Names that are not UTF-8 (planted by something
    /// else) are [`Error::Corrupted`].
    pub fn attrs(&self) -> Result<Vec<String>> {
        let all: Vec<Vec<u8>> = self
            .c
            .query(redis::cmd("HKEYS").arg(self.data()), Retry::Idempotent)?;
        all.into_iter()
            .map(|b| {
                String::from_utf8(b).map_err(|e| Error::Corrupted {
                    name: self.c.obj.label().to_owned(),
                    what: format!("an attribute name is not UTF-8: {e}"),
                })
            })
            .collect()
    }

    /// The number of attributes: `HLEN`.
    pub fn len(&self) -> Result<usize> {
        self.c
            .query(redis::cmd("HLEN").arg(self.data()), Retry::Idempotent)
    }

    /// Whether no attribute is set.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// How long each call waits for the server (`None`: no limit).
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.c.obj.set_patience(patience)
    }

    /// The current patience.
    pub fn patience(&self) -> Option<Duration> {
        self.c.obj.patience()
    }
}

impl SharedNamespace for Namespace {
    fn set<T: Serialize>(&self, attr: &str, value: &T) -> Result<()> {
        Namespace::set(self, attr, value)
    }
    fn get<T: DeserializeOwned>(&self, attr: &str) -> Result<Option<T>> {
        Namespace::get(self, attr)
    }
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        f: impl FnMut(Option<T>) -> T,
    ) -> Result<T> {
        Namespace::update(self, attr, f)
    }
    fn remove(&self, attr: &str) -> Result<bool> {
        Namespace::remove(self, attr)
    }
    fn contains(&self, attr: &str) -> Result<bool> {
        Namespace::contains(self, attr)
    }
    fn attrs(&self) -> Result<Vec<String>> {
        Namespace::attrs(self)
    }
    fn len(&self) -> Result<usize> {
        Namespace::len(self)
    }
}

// ---- Value ----

/// One serde value in a Redis string, created with an initial value:
/// `shm_collections::Value`'s `get`/`set`/`update` (any serde type, not only `Pod`).
///
/// | method | Redis | atomic |
/// |--------|-------|--------|
/// | `get`, `set` | `GET`, `SET` | yes |
/// | `update` | `WATCH` `GET` … `MULTI` `SET` `EXEC`, again on conflict | yes, no lost update |
///
/// A value deleted behind the handle's back (or lost with a server restarted without
/// persistence) is [`Error::NotFound`] on `get` and `update`.
///
/// ```
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// let m = shm_remote::RedisManager::open(&server.url("doc").parse()?, None)?;
/// let v = shm_remote::Value::open(&m, "count", 10i64)?;
/// v.update(|x| *x += 5)?;
/// assert_eq!(v.get()?, 15);
/// assert_eq!(shm_remote::Value::open(&m, "count", 0i64)?.get()?, 15); // init only when new
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Debug)]
pub struct Value<T> {
    c: Codec,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// Opens the value `name` of `manager`, setting it to `init` when new (`SET NX`).
    pub fn open(manager: &RedisManager, name: &str, init: T) -> Result<Self> {
        let ty = format!("Value<{}>", short::<T>());
        let obj = manager.object(name, "Value", &ty, "string")?;
        let v = Value {
            c: Codec {
                obj,
                limits: Limits::default(),
            },
            _t: PhantomData,
        };
        let bytes = v.c.value(&init)?;
        let _: Option<String> = v.c.query(
            redis::cmd("SET").arg(v.data()).arg(bytes).arg("NX"),
            Retry::Idempotent,
        )?;
        Ok(v)
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.obj.name()
    }

    fn data(&self) -> &str {
        self.c.obj.data_key()
    }

    fn missing(&self) -> Error {
        Error::NotFound {
            name: format!("{} (its key was deleted)", self.c.obj.label()),
        }
    }

    /// The value: `GET`.
    pub fn get(&self) -> Result<T> {
        let v: Option<Vec<u8>> = self
            .c
            .query(redis::cmd("GET").arg(self.data()), Retry::Idempotent)?;
        match v {
            Some(b) => self.c.decode("value", &b),
            None => Err(self.missing()),
        }
    }

    /// Replaces the value: `SET`.
    pub fn set(&self, value: T) -> Result<()> {
        let b = self.c.value(&value)?;
        let () = self
            .c
            .query(redis::cmd("SET").arg(self.data()).arg(b), Retry::Idempotent)?;
        Ok(())
    }

    /// Runs `f` on the value in an optimistic transaction; what `f` returned (of its
    /// last run: it runs again when another client changed the value in between).
    pub fn update<R>(&self, mut f: impl FnMut(&mut T) -> R) -> Result<R> {
        let data = self.data();
        let mut reads = redis::pipe();
        reads.cmd("GET").arg(data);
        self.c.transact(&reads, |(old,): (Option<Vec<u8>>,)| {
            let Some(old) = old else {
                return Err(self.missing());
            };
            let mut v: T = self.c.decode("value", &old)?;
            let r = f(&mut v);
            let bytes = self.c.value(&v)?;
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(data).arg(bytes).ignore();
            Ok((pipe, r))
        })
    }

    /// How long each call waits for the server (`None`: no limit).
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.c.obj.set_patience(patience)
    }

    /// The current patience.
    pub fn patience(&self) -> Option<Duration> {
        self.c.obj.patience()
    }
}

impl<T: Serialize + DeserializeOwned> SharedValue<T> for Value<T> {
    fn get(&self) -> Result<T> {
        Value::get(self)
    }
    fn set(&self, value: T) -> Result<()> {
        Value::set(self, value)
    }
    fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> Result<R> {
        Value::update(self, f)
    }
}
