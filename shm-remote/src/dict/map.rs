//! [`ShareableDict`] on a Redis hash. Atomicity and crashes: the [module docs](super).

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Serialize;
use shm_collections::{DictKey, DictValue, Limits};

use crate::api::SharedDict;
use crate::conn::Retry;
use crate::error::{Error, Result};
use crate::manager::RedisManager;

use super::{Codec, short};

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
/// Crashes: see the [module documentation](crate::dict).
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
        Ok(ShareableDict {
            c: Codec::open(manager, name, "Dict", &ty, "hash", limits)?,
            _t: PhantomData,
        })
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.name()
    }

    /// The Redis key of the hash.
    pub fn data_key(&self) -> &str {
        self.c.data_key()
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
            redis::cmd("HGET").arg(self.c.data_key()).arg(k),
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
            redis::cmd("HEXISTS").arg(self.c.data_key()).arg(k),
            Retry::Idempotent,
        )
    }

    /// Sets `key` to `value`; the previous value (`MULTI`/`EXEC`: atomic, one round trip).
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let k = self.c.key(&key)?;
        let v = self.c.value(&value)?;
        let mut set = redis::cmd("HSET");
        set.arg(self.c.data_key()).arg(&k[..]).arg(&v[..]);
        self.old_then(&k, set)
    }

    /// `MULTI HGET <write> EXEC`: the old value of `k` and a write in one round trip,
    /// atomic, no Lua (cheaper on the server than the equivalent script).
    fn old_then(&self, k: &[u8], write: redis::Cmd) -> Result<Option<V>> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("HGET").arg(self.c.data_key()).arg(k);
        pipe.add_command(write).ignore();
        let (old,): (Option<Vec<u8>>,) = self.c.run(Retry::Once, |s| s.pipeline(&pipe))?;
        self.opt(old)
    }

    /// Removes `key`; its value (`MULTI`/`EXEC`: atomic, one round trip).
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        let k = self.c.key(key)?;
        let mut del = redis::cmd("HDEL");
        del.arg(self.c.data_key()).arg(&k[..]);
        self.old_then(&k, del)
    }

    /// The number of entries: `HLEN`.
    pub fn len(&self) -> Result<usize> {
        self.c
            .query(redis::cmd("HLEN").arg(self.c.data_key()), Retry::Idempotent)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry (`DEL` of the hash; the type tag stays).
    pub fn clear(&self) -> Result<()> {
        let _: usize = self
            .c
            .query(redis::cmd("DEL").arg(self.c.data_key()), Retry::Idempotent)?;
        Ok(())
    }

    /// Inserts every pair in one `HSET` (all or nothing).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.c.data_key());
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
        let data = self.c.data_key();
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
        let data = self.c.data_key();
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
            redis::cmd("HGETALL").arg(self.c.data_key()),
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
        let all: Vec<Vec<u8>> = self.c.query(
            redis::cmd("HKEYS").arg(self.c.data_key()),
            Retry::Idempotent,
        )?;
        all.iter().map(|k| self.c.decode("key", k)).collect()
    }

    /// A snapshot of the values: `HVALS`.
    pub fn values(&self) -> Result<Vec<V>> {
        let all: Vec<Vec<u8>> = self.c.query(
            redis::cmd("HVALS").arg(self.c.data_key()),
            Retry::Idempotent,
        )?;
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
