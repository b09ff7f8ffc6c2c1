//! [`ShareableVec`] on a Redis list. Atomicity and crashes: the [module docs](super).

use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use shm_collections::{Limits, VecItem};

use crate::api::SharedVec;
use crate::conn::Retry;
use crate::error::{Error, Result};
use crate::manager::RedisManager;

use super::{Codec, short};

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
        Ok(ShareableVec {
            c: Codec::open(manager, name, "Vec", &ty, "list", limits)?,
            _t: PhantomData,
        })
    }

    /// The object's name in its manager.
    pub fn name(&self) -> &str {
        self.c.name()
    }

    /// The Redis key of the list.
    pub fn data_key(&self) -> &str {
        self.c.data_key()
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
        let _: usize = self.c.query(
            redis::cmd("RPUSH").arg(self.c.data_key()).arg(v),
            Retry::Once,
        )?;
        Ok(())
    }

    /// Removes and returns the last item: `RPOP`.
    pub fn pop(&self) -> Result<Option<T>> {
        let v: Option<Vec<u8>> = self
            .c
            .query(redis::cmd("RPOP").arg(self.c.data_key()), Retry::Once)?;
        v.map(|b| self.c.decode("element", &b)).transpose()
    }

    /// The item at `index`, `None` past the end: `LINDEX`.
    pub fn get(&self, index: usize) -> Result<Option<T>> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        let v: Option<Vec<u8>> = self.c.query(
            redis::cmd("LINDEX").arg(self.c.data_key()).arg(i),
            Retry::Idempotent,
        )?;
        v.map(|b| self.c.decode("element", &b)).transpose()
    }

    /// Replaces the item at `index`; the old one (a script: atomic).
    /// [`Error::IndexOutOfRange`] past the end.
    pub fn set(&self, index: usize, value: T) -> Result<T> {
        self.check_index(index)?;
        let v = self.c.value(&value)?;
        let data = self.c.data_key();
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
        let data = self.c.data_key();
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
        let data = self.c.data_key();
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
        let data = self.c.data_key();
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
        cmd.arg(self.c.data_key());
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
            .query(redis::cmd("LLEN").arg(self.c.data_key()), Retry::Idempotent)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every item: `DEL`.
    pub fn clear(&self) -> Result<()> {
        let _: usize = self
            .c
            .query(redis::cmd("DEL").arg(self.c.data_key()), Retry::Idempotent)?;
        Ok(())
    }

    /// A snapshot of the items in order: `LRANGE 0 -1`.
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        let all: Vec<Vec<u8>> = self.c.query(
            redis::cmd("LRANGE").arg(self.c.data_key()).arg(0).arg(-1),
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
