//! [`Namespace`] (attributes of any serde type in a hash) and [`Value`] (one serde
//! value in a string). Atomicity and crashes: the [module docs](super).

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::Limits;
use shm_collections::codec;

use crate::api::{SharedNamespace, SharedValue};
use crate::conn::Retry;
use crate::error::{Error, Result};
use crate::manager::RedisManager;

use super::{Codec, short};

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
