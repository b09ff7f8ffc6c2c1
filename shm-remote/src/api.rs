//! One API over both backends: a trait per object type, implemented by the
//! shared-memory type (`shm_collections`, `shm_sync`), by this crate's Redis type, and
//! by the manager's handle that is either (`AnyDict`, ...).
//!
//! # Why traits (and an enum handle)
//!
//! - Traits let code be generic over the backend (`fn worker(d: &impl SharedDict<..>)`)
//!   with static dispatch: the shared-memory path keeps its speed (a lookup is ~100 ns,
//!   a vtable or a match would be noise but a `Box` per call would not).
//! - The manager opened by address must return *one* type whatever the address: its
//!   accessors return enum handles (`manager::AnyDict` = shared memory or Redis) that
//!   implement the same traits by a two-arm match. Code written against the manager
//!   does not name a backend at all; code written against the traits runs on the
//!   handles, on `shm_collections::ShareableDict` and on [`crate::ShareableDict`].
//! - The traits are not object-safe on purpose (generic methods take borrowed keys
//!   and closures without boxing); nothing needs `dyn`.
//!
//! Method names, arguments and results are those of the shared-memory types; results
//! are [`crate::Result`], one error type for both. `update` takes an `FnMut`: on Redis
//! it is an optimistic transaction (`WATCH`/`MULTI`/`EXEC`) that calls the closure
//! again when another client changed the key in between (no lost update); on shared
//! memory it runs once under the writer lock.
//!
//! The lock, event, semaphore, barrier and queue traits live in `api_sync` and
//! `api_queue` (re-exported here).

use std::borrow::Borrow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::{DictKey, DictValue, VecItem};

use crate::error::Result;

/// A dict of serde keys and values: `shm_collections::ShareableDict`,
/// [`crate::ShareableDict`] (a Redis hash), [`crate::manager::AnyDict`].
///
/// ```
/// use shm_remote::api::SharedDict;
/// fn bump(d: &impl SharedDict<String, u64>, k: &str) -> shm_remote::Result<u64> {
///     d.update(k.to_owned(), |v| v.unwrap_or(0) + 1)
/// }
/// let d = shm_collections::ShareableDict::<String, u64>::create().unwrap();
/// assert_eq!(bump(&d, "a")?, 1);
/// assert_eq!(SharedDict::get(&d, "a")?, Some(1));
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedDict<K: DictKey, V: DictValue> {
    /// The value for `key` (any borrowed form of `K` that encodes like it).
    fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>;
    /// Whether `key` is present.
    fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>;
    /// Sets `key` to `value`; the previous value.
    fn insert(&self, key: K, value: V) -> Result<Option<V>>;
    /// Removes `key`; its value.
    fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>;
    /// The number of entries.
    fn len(&self) -> Result<usize>;
    /// Whether there are no entries.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Removes every entry.
    fn clear(&self) -> Result<()>;
    /// Inserts every pair (atomically as a whole on both backends).
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()>;
    /// Atomically replaces the value of `key` by `f(old)` and returns it. `f` may run
    /// more than once (Redis: again after a conflicting write); only its last result is
    /// stored.
    fn update(&self, key: K, f: impl FnMut(Option<V>) -> V) -> Result<V>;
    /// The value of `key`, inserting `make()` first when absent (atomically: one
    /// writer's value wins and every caller gets it).
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V>;
    /// A snapshot of the entries (unordered).
    fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>>;
    /// A snapshot of the keys.
    fn keys(&self) -> Result<Vec<K>>;
    /// A snapshot of the values.
    fn values(&self) -> Result<Vec<V>>;
    /// How long calls of this handle wait (a writer lock, a server's reply);
    /// `None`: no limit.
    fn set_patience(&self, patience: Option<Duration>);
    /// The current patience.
    fn patience(&self) -> Option<Duration>;
}

/// A growable vec of serde items: `shm_collections::ShareableVec`,
/// [`crate::ShareableVec`] (a Redis list), [`crate::manager::AnyVec`].
///
/// ```
/// use shm_remote::api::SharedVec;
/// let v = shm_collections::ShareableVec::<u32>::create().unwrap();
/// SharedVec::push(&v, 4)?;
/// assert_eq!(SharedVec::update(&v, 0, |x| x + 1)?, 5);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedVec<T: VecItem> {
    /// Appends `value`.
    fn push(&self, value: T) -> Result<()>;
    /// Removes and returns the last item.
    fn pop(&self) -> Result<Option<T>>;
    /// The item at `index`, `None` past the end.
    fn get(&self, index: usize) -> Result<Option<T>>;
    /// Replaces the item at `index`; the old one. `IndexOutOfRange` past the end.
    fn set(&self, index: usize, value: T) -> Result<T>;
    /// Atomically replaces the item at `index` by `f(old)`; the new one. `f` may run
    /// more than once.
    fn update(&self, index: usize, f: impl FnMut(T) -> T) -> Result<T>;
    /// Inserts `value` at `index` (`index == len` appends).
    fn insert(&self, index: usize, value: T) -> Result<()>;
    /// Removes and returns the item at `index`.
    fn remove(&self, index: usize) -> Result<T>;
    /// Appends every value (atomically as a whole).
    fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()>;
    /// The number of items.
    fn len(&self) -> Result<usize>;
    /// Whether there are no items.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Removes every item.
    fn clear(&self) -> Result<()>;
    /// A snapshot of the items in order.
    fn iter(&self) -> Result<std::vec::IntoIter<T>>;
    /// How long calls of this handle wait; `None`: no limit.
    fn set_patience(&self, patience: Option<Duration>);
    /// The current patience.
    fn patience(&self) -> Option<Duration>;
}

/// Named attributes of any serde type (Python's `Manager().Namespace()`):
/// `shm_collections::Namespace`, [`crate::Namespace`], [`crate::manager::AnyNamespace`].
///
/// ```
/// use shm_remote::api::SharedNamespace;
/// let ns = shm_collections::Namespace::create().unwrap();
/// SharedNamespace::set(&ns, "depth", &3u8)?;
/// assert_eq!(SharedNamespace::get::<u8>(&ns, "depth")?, Some(3));
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedNamespace {
    /// Sets `attr` to `value` (replacing whatever type it had).
    fn set<T: Serialize>(&self, attr: &str, value: &T) -> Result<()>;
    /// The value of `attr`; `TypeMismatch` if it holds another type.
    fn get<T: DeserializeOwned>(&self, attr: &str) -> Result<Option<T>>;
    /// Atomically replaces `attr` by `f(old)`; the new value. `f` may run more than once.
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        f: impl FnMut(Option<T>) -> T,
    ) -> Result<T>;
    /// Removes `attr`; whether it was set.
    fn remove(&self, attr: &str) -> Result<bool>;
    /// Whether `attr` is set.
    fn contains(&self, attr: &str) -> Result<bool>;
    /// The attribute names.
    fn attrs(&self) -> Result<Vec<String>>;
    /// The number of attributes.
    fn len(&self) -> Result<usize>;
    /// Whether no attribute is set.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// One value behind a lock: `shm_collections::Value` (a `Pod` in shared memory),
/// [`crate::Value`] (a Redis string), [`crate::manager::AnyValue`].
///
/// ```
/// use shm_remote::api::SharedValue;
/// let v = shm_collections::Value::create(1u64).unwrap();
/// assert_eq!(SharedValue::update(&v, |x| { *x += 1; *x })?, 2);
/// assert_eq!(SharedValue::get(&v)?, 2);
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait SharedValue<T> {
    /// The value.
    fn get(&self) -> Result<T>;
    /// Replaces the value.
    fn set(&self, value: T) -> Result<()>;
    /// Runs `f` on the value atomically; what `f` returns. `f` may run more than once
    /// (Redis); only its last run's change is stored.
    fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> Result<R>;
}

// ---- the shared-memory types ----

impl<K: DictKey, V: DictValue> SharedDict<K, V> for shm_collections::ShareableDict<K, V> {
    fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        Ok(shm_collections::ShareableDict::get(self, key)?)
    }
    fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        Ok(shm_collections::ShareableDict::contains_key(self, key)?)
    }
    fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        Ok(shm_collections::ShareableDict::insert(self, key, value)?)
    }
    fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        Ok(shm_collections::ShareableDict::remove(self, key)?)
    }
    fn len(&self) -> Result<usize> {
        Ok(shm_collections::ShareableDict::len(self)?)
    }
    fn clear(&self) -> Result<()> {
        Ok(shm_collections::ShareableDict::clear(self)?)
    }
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        Ok(shm_collections::ShareableDict::extend(self, pairs)?)
    }
    fn update(&self, key: K, f: impl FnMut(Option<V>) -> V) -> Result<V> {
        Ok(shm_collections::ShareableDict::update(self, key, f)?)
    }
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V> {
        Ok(shm_collections::ShareableDict::get_or_insert_with(
            self, key, make,
        )?)
    }
    fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>> {
        Ok(shm_collections::ShareableDict::iter(self)?)
    }
    fn keys(&self) -> Result<Vec<K>> {
        Ok(shm_collections::ShareableDict::keys(self)?)
    }
    fn values(&self) -> Result<Vec<V>> {
        Ok(shm_collections::ShareableDict::values(self)?)
    }
    fn set_patience(&self, patience: Option<Duration>) {
        shm_collections::ShareableDict::set_patience(self, patience)
    }
    fn patience(&self) -> Option<Duration> {
        shm_collections::ShareableDict::patience(self)
    }
}

impl<T: VecItem> SharedVec<T> for shm_collections::ShareableVec<T> {
    fn push(&self, value: T) -> Result<()> {
        Ok(shm_collections::ShareableVec::push(self, value)?)
    }
    fn pop(&self) -> Result<Option<T>> {
        Ok(shm_collections::ShareableVec::pop(self)?)
    }
    fn get(&self, index: usize) -> Result<Option<T>> {
        Ok(shm_collections::ShareableVec::get(self, index)?)
    }
    fn set(&self, index: usize, value: T) -> Result<T> {
        Ok(shm_collections::ShareableVec::set(self, index, value)?)
    }
    fn update(&self, index: usize, f: impl FnMut(T) -> T) -> Result<T> {
        Ok(shm_collections::ShareableVec::update(self, index, f)?)
    }
    fn insert(&self, index: usize, value: T) -> Result<()> {
        Ok(shm_collections::ShareableVec::insert(self, index, value)?)
    }
    fn remove(&self, index: usize) -> Result<T> {
        Ok(shm_collections::ShareableVec::remove(self, index)?)
    }
    fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        Ok(shm_collections::ShareableVec::extend(self, values)?)
    }
    fn len(&self) -> Result<usize> {
        Ok(shm_collections::ShareableVec::len(self)?)
    }
    fn clear(&self) -> Result<()> {
        Ok(shm_collections::ShareableVec::clear(self)?)
    }
    fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        Ok(shm_collections::ShareableVec::iter(self)?)
    }
    fn set_patience(&self, patience: Option<Duration>) {
        shm_collections::ShareableVec::set_patience(self, patience)
    }
    fn patience(&self) -> Option<Duration> {
        shm_collections::ShareableVec::patience(self)
    }
}

impl SharedNamespace for shm_collections::Namespace {
    fn set<T: Serialize>(&self, attr: &str, value: &T) -> Result<()> {
        Ok(shm_collections::Namespace::set(self, attr, value)?)
    }
    fn get<T: DeserializeOwned>(&self, attr: &str) -> Result<Option<T>> {
        Ok(shm_collections::Namespace::get(self, attr)?)
    }
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        f: impl FnMut(Option<T>) -> T,
    ) -> Result<T> {
        Ok(shm_collections::Namespace::update(self, attr, f)?)
    }
    fn remove(&self, attr: &str) -> Result<bool> {
        Ok(shm_collections::Namespace::remove(self, attr)?)
    }
    fn contains(&self, attr: &str) -> Result<bool> {
        Ok(shm_collections::Namespace::contains(self, attr)?)
    }
    fn attrs(&self) -> Result<Vec<String>> {
        Ok(shm_collections::Namespace::attrs(self)?)
    }
    fn len(&self) -> Result<usize> {
        Ok(shm_collections::Namespace::len(self)?)
    }
}

impl<T: bytemuck::Pod> SharedValue<T> for shm_collections::Value<T> {
    fn get(&self) -> Result<T> {
        Ok(shm_collections::Value::get(self)?)
    }
    fn set(&self, value: T) -> Result<()> {
        Ok(shm_collections::Value::set(self, value)?)
    }
    fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> Result<R> {
        Ok(shm_collections::Value::update(self, f)?)
    }
}

pub use crate::api_queue::*;
pub use crate::api_sync::*;
