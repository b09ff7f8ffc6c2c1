//! [`ShareableDict<K, V>`]: a hash map of serde types in shared memory (what
//! `Manager().dict()` is used for), on the growth region.

use std::borrow::Borrow;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_core::ObjectSpec;

use crate::codec::{self, type_fingerprint};
use crate::kinds;
use crate::region::{
    IndexKind, LAYOUT_VERSION, Limits, Rec, Region, RegionError, RegionResult, RegionStats, Slim,
    unbox,
};

/// A hash map in shared memory, keys and values of any serde types (encoded by
/// [`codec`]), read without locks and written under a robust lock by any number of
/// processes: Python's `Manager().dict()` without the manager process.
///
/// - Reads (`get`, `contains_key`, `len`, `iter`...) never wait for writers and never
///   see a torn entry: every entry is an immutable record published by one atomic
///   store (see [`region`](crate::region) for the layout and the proofs).
/// - Writes are serialised by a robust lock; `update` and `get_or_insert_with` are
///   atomic read-modify-writes, so counters incremented by several processes lose
///   nothing.
/// - It grows without limit (new data segments, never `ftruncate`), reclaims the room of
///   overwritten and removed entries when it grows, and survives a writer killed at any
///   instruction: the next writer repairs (module [`region`](crate::region)).
/// - Opening checks the key and value types (a fingerprint of their names).
///
/// ```
/// use shm_collections::ShareableDict;
/// let d = ShareableDict::<String, u64>::create()?;
/// d.insert("apples".into(), 3)?;
/// let peer = ShareableDict::<String, u64>::open(d.name().unwrap())?; // another process
/// peer.update("apples".into(), |n| n.unwrap_or(0) + 1)?;
/// assert_eq!(d.get("apples")?, Some(4));
/// assert!(ShareableDict::<String, i32>::open(d.name().unwrap()).is_err()); // wrong V
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
pub struct ShareableDict<K, V> {
    region: Region,
    _t: PhantomData<fn() -> (K, V)>,
}

/// Bounds of a dict key.
pub trait DictKey: Serialize + DeserializeOwned + Eq + Hash {}
impl<T: Serialize + DeserializeOwned + Eq + Hash> DictKey for T {}

/// Bounds of a stored value.
pub trait DictValue: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> DictValue for T {}

pub(crate) fn typed_spec<T: ?Sized>(kind: shm_core::Kind, label: &str) -> ObjectSpec {
    ObjectSpec::new(kind, LAYOUT_VERSION).with_type_tag(type_fingerprint::<T>(), 0, 0, label)
}

pub(crate) fn encode_key<Q: Serialize + ?Sized>(region: &Region, key: &Q) -> RegionResult<Vec<u8>> {
    let mut buf = Vec::new();
    codec::encode(key, &mut buf).map_err(|source| RegionError::Encode {
        name: region.label().to_owned(),
        what: "key",
        source,
    })?;
    Ok(buf)
}

pub(crate) fn encode_value<T: Serialize + ?Sized>(region: &Region, v: &T) -> RegionResult<Vec<u8>> {
    let mut buf = Vec::new();
    codec::encode(v, &mut buf).map_err(|source| RegionError::Encode {
        name: region.label().to_owned(),
        what: "value",
        source,
    })?;
    Ok(buf)
}

#[cold]
pub(crate) fn decode_failed<T>(
    region: &Region,
    what: &'static str,
    source: codec::CodecError,
) -> RegionError {
    RegionError::Decode {
        name: region.label().to_owned(),
        what,
        expected: std::any::type_name::<T>(),
        source,
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    region: &Region,
    what: &'static str,
    bytes: &[u8],
) -> RegionResult<T> {
    codec::decode(bytes).map_err(|source| RegionError::Decode {
        name: region.label().to_owned(),
        what,
        expected: std::any::type_name::<T>(),
        source,
    })
}

fn encode_error(region: &Region, what: &'static str, source: codec::CodecError) -> RegionError {
    RegionError::Encode {
        name: region.label().to_owned(),
        what,
        source,
    }
}

/// Encodes a key (on the stack when small: no allocation), checks it against the
/// limits and hands it to `f`.
#[inline]
pub(crate) fn with_key<Q: Serialize + ?Sized, R>(
    region: &Region,
    key: &Q,
    f: impl FnOnce(&[u8]) -> RegionResult<R>,
) -> RegionResult<R> {
    codec::with_encoded(key, |k| {
        region.check_sizes(k.len(), 0)?;
        f(k)
    })
    .map_err(|e| encode_error(region, "key", e))?
}

/// Encodes a value (on the stack when small), checks key and value against the
/// limits and hands it to `f`.
#[inline]
pub(crate) fn with_value<T: Serialize + ?Sized, R>(
    region: &Region,
    key: &[u8],
    value: &T,
    f: impl FnOnce(&[u8]) -> RegionResult<R>,
) -> RegionResult<R> {
    codec::with_encoded(value, |v| {
        region.check_sizes(key.len(), v.len())?;
        f(v)
    })
    .map_err(|e| encode_error(region, "value", e))?
}

crate::region::region_object!(
    impl[K: DictKey, V: DictValue] ShareableDict<K, V>,
    spec: typed_spec::<(K, V)>(
        kinds::DICT,
        &format!(
            "Dict<{},{}>",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ),
    ),
    index: IndexKind::Hash,
    build: |region| ShareableDict {
        region,
        _t: PhantomData,
    }
);

growable_methods!(
    ShareableDict<K: DictKey, V: DictValue>,
    "shm_collections::ShareableDict::<u64, String>::create()",
    "shm_collections::ShareableDict::<u64, String>"
);

impl<K: DictKey, V: DictValue> ShareableDict<K, V> {
    fn decode_value(&self, bytes: &[u8]) -> RegionResult<V> {
        decode(&self.region, "value", bytes)
    }

    fn decode_key(&self, rec: &Rec) -> RegionResult<K> {
        decode(&self.region, "key", rec.key())
    }

    /// Encodes `key` (on the stack when small) and checks it against the limits.
    #[inline]
    fn with_key<Q: Serialize + ?Sized, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&[u8]) -> RegionResult<R>,
    ) -> RegionResult<R> {
        with_key(&self.region, key, f)
    }

    /// Encodes `key` and `value` (on the stack when small) and checks both.
    #[inline]
    fn with_pair<R>(
        &self,
        key: &K,
        value: &V,
        f: impl FnOnce(&[u8], &[u8]) -> RegionResult<R>,
    ) -> RegionResult<R> {
        self.with_key(key, |k| with_value(&self.region, k, value, |v| f(k, v)))
    }

    fn key_bytes<Q: Serialize + ?Sized>(&self, key: &Q) -> RegionResult<Vec<u8>> {
        self.with_key(key, |k| Ok(k.to_vec()))
    }

    fn value_bytes(&self, key: &[u8], value: &V) -> RegionResult<Vec<u8>> {
        with_value(&self.region, key, value, |v| Ok(v.to_vec()))
    }

    /// The value for `key`, without taking the lock. `key` may be any borrowed form of
    /// `K` that encodes like it (`&str` for `String`, `&[T]` for `Vec<T>`).
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<String, Vec<u8>>::create()?;
    /// d.insert("k".into(), vec![1, 2])?;
    /// assert_eq!(d.get("k")?, Some(vec![1, 2]));
    /// assert_eq!(d.get("nope")?, None);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> RegionResult<Option<V>>
    where
        K: Borrow<Q>,
    {
        // The errors travel boxed (`Slim`) until the end: the results handed through
        // the layers stay a few words.
        let r = codec::with_encoded(key, |k| -> Slim<Option<V>> {
            self.region.check_sizes(k.len(), 0).map_err(Box::new)?;
            match self.region.get_with(k, |v| codec::decode::<V>(v))? {
                Some(Ok(v)) => Ok(Some(v)),
                None => Ok(None),
                Some(Err(e)) => Err(Box::new(decode_failed::<V>(&self.region, "value", e))),
            }
        });
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(*e),
            Err(e) => Err(encode_error(&self.region, "key", e)),
        }
    }

    /// Whether `key` is present (no lock).
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<u32, ()>::create()?;
    /// d.insert(5, ())?;
    /// assert!(d.contains_key(&5)? && !d.contains_key(&6)?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> RegionResult<bool>
    where
        K: Borrow<Q>,
    {
        self.with_key(key, |k| {
            Ok(self.region.get_with(k, |_| ()).map_err(unbox)?.is_some())
        })
    }

    /// Inserts or replaces; returns the old value. A key or value over the limits is
    /// refused before anything changes.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, String>::create()?;
    /// assert_eq!(d.insert(1, "a".into())?, None);
    /// assert_eq!(d.insert(1, "b".into())?, Some("a".into()));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> RegionResult<Option<V>> {
        self.with_pair(&key, &value, |k, v| {
            let old = self
                .region
                .lock()?
                .put_with(k, v, |old| self.decode_value(old))?;
            old.transpose()
        })
    }

    /// Inserts or replaces without reading the replaced value (cheaper than
    /// [`insert`](Self::insert), and it works when the old value no longer decodes);
    /// whether a value was replaced.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, String>::create()?;
    /// assert!(!d.set(&1, &"a".into())?);
    /// assert!(d.set(&1, &"b".into())?);
    /// assert_eq!(d.get(&1)?, Some("b".into()));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn set(&self, key: &K, value: &V) -> RegionResult<bool> {
        self.with_pair(key, value, |k, v| self.region.lock()?.put(k, v))
    }

    /// Atomically replaces the value of `key` by `new` (`None`: removes it) if its
    /// current value is `expected` (`None`: absent), comparing encoded bytes; whether it
    /// did. The optimistic read-modify-write for callers that compute the new value
    /// without holding the writer lock (a Python callback), retrying on `false`.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<String, u64>::create()?;
    /// assert!(d.compare_and_set(&"n".into(), None, Some(&1))?);
    /// assert!(!d.compare_and_set(&"n".into(), None, Some(&5))?); // it is 1 now
    /// assert!(d.compare_and_set(&"n".into(), Some(&1), Some(&2))?);
    /// assert!(d.compare_and_set(&"n".into(), Some(&2), None)?);
    /// assert_eq!(d.get("n")?, None);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<&V>,
        new: Option<&V>,
    ) -> RegionResult<bool> {
        let expected = expected.map(|v| self.value_bytes(&[], v)).transpose()?;
        self.with_key(key, |k| {
            let new = new.map(|v| self.value_bytes(k, v)).transpose()?;
            let mut w = self.region.lock()?;
            let same = w.get_with(k, |cur| Some(cur) == expected.as_deref())?;
            if same.unwrap_or(expected.is_none()) {
                match &new {
                    Some(v) => {
                        w.put(k, v)?;
                    }
                    None => {
                        w.remove_with(k, |_| ())?;
                    }
                }
                Ok(true)
            } else {
                Ok(false)
            }
        })
    }

    /// The type tag this dict's header carries (a fingerprint of `(K, V)`), to pick
    /// the instantiation that opens an object found by name (see
    /// [`Object::inspect`](shm_core::Object::inspect)).
    ///
    /// ```
    /// use shm_collections::ShareableDict;
    /// let d = ShareableDict::<String, i64>::create()?;
    /// let info = shm_core::Object::inspect(d.name().unwrap())?;
    /// assert_eq!(info.type_tag, ShareableDict::<String, i64>::header_type_tag());
    /// assert_ne!(info.type_tag, ShareableDict::<String, u64>::header_type_tag());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header_type_tag() -> u64 {
        let spec = <Self as shm_core::SharedObject>::layout();
        match spec {
            shm_core::Layout::Header(spec) => spec.type_tag,
            _ => 0,
        }
    }

    /// [`set`](Self::set) if the writer lock is free now, without waiting: `None` (and
    /// nothing changed) while another writer holds it. For callers that must not block
    /// where they are (Python's GIL holders), which then wait elsewhere and call `set`.
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// assert_eq!(d.try_set(&1, &2)?, Some(false)); // inserted
    /// assert_eq!(d.try_set(&1, &3)?, Some(true)); // replaced
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn try_set(&self, key: &K, value: &V) -> RegionResult<Option<bool>> {
        self.with_pair(key, value, |k, v| match self.region.try_lock()? {
            Some(mut w) => Ok(Some(w.put(k, v)?)),
            None => Ok(None),
        })
    }

    /// Removes `key` without reading its value; whether it was present.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.insert(1, 10)?;
    /// assert!(d.discard(&1)?);
    /// assert!(!d.discard(&1)?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn discard<Q: Serialize + ?Sized>(&self, key: &Q) -> RegionResult<bool>
    where
        K: Borrow<Q>,
    {
        self.with_key(key, |k| {
            Ok(self.region.lock()?.remove_with(k, |_| ())?.is_some())
        })
    }

    /// Removes `key`; returns its value.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.insert(1, 10)?;
    /// assert_eq!(d.remove(&1)?, Some(10));
    /// assert_eq!(d.remove(&1)?, None);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> RegionResult<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.with_key(key, |k| {
            let old = self
                .region
                .lock()?
                .remove_with(k, |old| self.decode_value(old))?;
            old.transpose()
        })
    }

    /// Number of entries (no lock).
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.extend([(1, 1), (2, 2)])?;
    /// assert_eq!(d.len()?, 2);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn len(&self) -> RegionResult<usize> {
        Ok(self.region.len()? as usize)
    }

    /// Whether the dict is empty.
    ///
    /// ```
    /// assert!(shm_collections::ShareableDict::<u8, u8>::create()?.is_empty()?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn is_empty(&self) -> RegionResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry (moves to a fresh, small data segment).
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.insert(1, 1)?;
    /// d.clear()?;
    /// assert!(d.is_empty()? && d.get(&1)?.is_none());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn clear(&self) -> RegionResult<()> {
        self.region.lock()?.clear()
    }

    /// Inserts every pair under one lock (other processes' writes wait, readers do not).
    /// All pairs are checked against the limits first: on an error nothing is inserted.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u32, u32>::create()?;
    /// d.extend((0..100).map(|i| (i, i * i)))?;
    /// assert_eq!(d.get(&9)?, Some(81));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> RegionResult<()> {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| {
                let k = self.key_bytes(&k)?;
                let v = self.value_bytes(&k, &v)?;
                Ok((k, v))
            })
            .collect::<RegionResult<Vec<_>>>()?;
        let mut w = self.region.lock()?;
        for (k, v) in &encoded {
            w.put(k, v)?;
        }
        Ok(())
    }

    /// Atomically replaces the value of `key` by `f(old)` (`None` when absent) and
    /// returns the new value: the read-modify-write for counters and appends across
    /// processes. `f` runs under the writer lock; it must not use this dict (that is a
    /// [`RegionError::Lock`] "would deadlock"). If `f` panics nothing changes.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<String, u64>::create()?;
    /// for _ in 0..3 { d.update("hits".into(), |n| n.unwrap_or(0) + 1)?; }
    /// assert_eq!(d.get("hits")?, Some(3));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn update(&self, key: K, f: impl FnOnce(Option<V>) -> V) -> RegionResult<V> {
        self.with_key(&key, |k| {
            let mut w = self.region.lock()?;
            let old = w.get_with(k, |old| self.decode_value(old))?.transpose()?;
            let new = f(old);
            with_value(&self.region, k, &new, |v| w.put(k, v))?;
            Ok(new)
        })
    }

    /// The value of `key`, inserting `make()` first if it is absent (atomically).
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, String>::create()?;
    /// assert_eq!(d.get_or_insert_with(1, || "first".into())?, "first");
    /// assert_eq!(d.get_or_insert_with(1, || "second".into())?, "first");
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> RegionResult<V> {
        self.with_key(&key, |k| {
            let found = self.region.get_with(k, |old| self.decode_value(old));
            if let Some(v) = found.map_err(unbox)? {
                return v;
            }
            let mut w = self.region.lock()?;
            if let Some(v) = w.get_with(k, |old| self.decode_value(old))? {
                return v;
            }
            let value = make();
            with_value(&self.region, k, &value, |v| w.put(k, v))?;
            Ok(value)
        })
    }

    /// Every entry as of one moment (a consistent snapshot, taken without the lock
    /// unless writers keep changing the dict), in no particular order.
    ///
    /// Takes no lock unless writers keep changing the collection during 64 attempts;
    /// then it waits for the writer lock, at most this handle's patience (see
    /// [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.extend([(1, 10), (2, 20)])?;
    /// let mut all: Vec<_> = d.iter()?.collect();
    /// all.sort();
    /// assert_eq!(all, [(1, 10), (2, 20)]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn iter(&self) -> RegionResult<std::vec::IntoIter<(K, V)>> {
        let recs = self.region.snapshot()?;
        let pairs = recs
            .iter()
            .map(|r| Ok((self.decode_key(r)?, self.decode_value(r.value())?)))
            .collect::<RegionResult<Vec<_>>>()?;
        Ok(pairs.into_iter())
    }

    /// Every key, from one snapshot.
    ///
    /// Takes no lock unless writers keep changing the collection during 64 attempts;
    /// then it waits for the writer lock, at most this handle's patience (see
    /// [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.insert(7, 0)?;
    /// assert_eq!(d.keys()?, [7]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn keys(&self) -> RegionResult<Vec<K>> {
        self.region
            .snapshot()?
            .iter()
            .map(|r| self.decode_key(r))
            .collect()
    }

    /// Every value, from one snapshot.
    ///
    /// Takes no lock unless writers keep changing the collection during 64 attempts;
    /// then it waits for the writer lock, at most this handle's patience (see
    /// [`set_patience`](Self::set_patience)).
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// d.insert(7, 9)?;
    /// assert_eq!(d.values()?, [9]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn values(&self) -> RegionResult<Vec<V>> {
        self.region
            .snapshot()?
            .iter()
            .map(|r| self.decode_value(r.value()))
            .collect()
    }

    /// Entries, bytes used, capacity, generation and garbage of the current data
    /// segment.
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<u64, u64>::create()?;
    /// d.extend((0..10_000).map(|i| (i, i)))?;
    /// let s = d.stats()?;
    /// assert_eq!(s.entries, 10_000);
    /// assert!(s.generation > 0); // it grew
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn stats(&self) -> RegionResult<RegionStats> {
        self.region.stats()
    }

    /// The limits every process enforces on this dict.
    ///
    /// ```
    /// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
    /// assert_eq!(d.limits(), shm_collections::Limits::default());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn limits(&self) -> Limits {
        self.region.limits()
    }
}
