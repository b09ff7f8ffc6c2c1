//! [`ShareableVec<T>`]: a growable list of serde values in shared memory (what
//! `Manager().list()` is used for), on the growth region.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::dict::{decode, decode_failed, typed_spec, with_value};
use crate::kinds;
use crate::region::{IndexKind, Limits, Rec, Region, RegionError, RegionResult, RegionStats};

/// A growable list in shared memory, elements of any serde type, read without locks
/// and written under a robust lock by any number of processes: Python's
/// `Manager().list()` without the manager process.
///
/// Element `i` is an immutable record whose offset sits in index slot `i`; the length
/// word publishes pushed elements (one Release store), so readers never see a torn or
/// half-pushed element. `push`, `pop`, `set` and `update` are O(1) (amortised over
/// growth); `insert` and `remove` in the middle rebuild the index into a new data
/// segment (O(n), as `Vec::insert` moves the tail), so a reader never sees a
/// half-shifted list. Growth, compaction and crash recovery are those of the
/// [`region`](crate::region).
///
/// ```
/// use shm_collections::ShareableVec;
/// let v = ShareableVec::<String>::create()?;
/// v.push("a".into())?;
/// v.extend(["b".to_string(), "c".to_string()])?;
/// let peer = ShareableVec::<String>::open(v.name().unwrap())?; // another process
/// peer.insert(0, "z".into())?;
/// assert_eq!(v.iter()?.collect::<Vec<_>>(), ["z", "a", "b", "c"]);
/// assert_eq!(v.pop()?, Some("c".into()));
/// # Ok::<(), shm_collections::RegionError>(())
/// ```
pub struct ShareableVec<T> {
    region: Region,
    _t: PhantomData<fn() -> T>,
}

/// Bounds of a vec element.
pub trait VecItem: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> VecItem for T {}

crate::region::region_object!(
    impl[T: VecItem] ShareableVec<T>,
    spec: typed_spec::<T>(kinds::VEC, &format!("Vec<{}>", std::any::type_name::<T>())),
    index: IndexKind::List,
    build: |region| ShareableVec {
        region,
        _t: PhantomData,
    }
);

growable_methods!(
    ShareableVec<T: VecItem>,
    "shm_collections::ShareableVec::<u64>::create()",
    "shm_collections::ShareableVec::<u64>"
);

impl<T: VecItem> ShareableVec<T> {
    fn bytes(&self, value: &T) -> RegionResult<Vec<u8>> {
        with_value(&self.region, &[], value, |v| Ok(v.to_vec()))
    }

    fn item(&self, bytes: &[u8]) -> RegionResult<T> {
        decode(&self.region, "element", bytes)
    }

    fn out_of_range(&self, index: usize, len: usize) -> RegionError {
        RegionError::IndexOutOfRange {
            name: self.region.label().to_owned(),
            index,
            len,
        }
    }

    /// Appends `value`.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.push(1)?;
    /// assert_eq!(v.len()?, 1);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn push(&self, value: T) -> RegionResult<()> {
        with_value(&self.region, &[], &value, |b| self.region.lock()?.push(b))
    }

    /// Removes and returns the last element.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.push(1)?;
    /// assert_eq!((v.pop()?, v.pop()?), (Some(1), None));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn pop(&self) -> RegionResult<Option<T>> {
        let old = self.region.lock()?.pop_with(|old| self.item(old))?;
        old.transpose()
    }

    /// Element `index` (no lock), `None` past the end.
    ///
    /// ```
    /// let v = shm_collections::ShareableVec::<String>::create()?;
    /// v.push("x".into())?;
    /// assert_eq!(v.get(0)?.as_deref(), Some("x"));
    /// assert_eq!(v.get(1)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, index: usize) -> RegionResult<Option<T>> {
        match self.region.list_get_with(index, |v| codec::decode::<T>(v)) {
            Ok(Ok(Ok(item))) => Ok(Some(item)),
            Ok(Ok(Err(e))) => Err(decode_failed::<T>(&self.region, "element", e)),
            Ok(Err(_)) => Ok(None),
            Err(e) => Err(*e),
        }
    }

    /// Replaces element `index`; returns the old one. Past the end:
    /// [`RegionError::IndexOutOfRange`].
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.push(1)?;
    /// assert_eq!(v.set(0, 2)?, 1);
    /// assert_eq!(v.get(0)?, Some(2));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn set(&self, index: usize, value: T) -> RegionResult<T> {
        with_value(&self.region, &[], &value, |b| {
            let mut w = self.region.lock()?;
            let len = w.list_len()?;
            if index >= len {
                return Err(self.out_of_range(index, len));
            }
            w.set_with(index, b, |old| self.item(old))?
        })
    }

    /// Atomically replaces element `index` by `f(old)`; returns the new value.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u64>::create()?;
    /// v.push(10)?;
    /// assert_eq!(v.update(0, |x| x + 1)?, 11);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn update(&self, index: usize, f: impl FnOnce(T) -> T) -> RegionResult<T> {
        let mut w = self.region.lock()?;
        let len = w.list_len()?;
        let Some(old) = w.list_get_with(index, |old| self.item(old))? else {
            return Err(self.out_of_range(index, len));
        };
        let new = f(old?);
        with_value(&self.region, &[], &new, |b| w.set_with(index, b, |_| ()))?;
        Ok(new)
    }

    /// Inserts `value` at `index` (`index == len` appends); past the end:
    /// [`RegionError::IndexOutOfRange`]. Rebuilds the index (O(n)).
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.extend([1, 3])?;
    /// v.insert(1, 2)?;
    /// assert_eq!(v.iter()?.collect::<Vec<_>>(), [1, 2, 3]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn insert(&self, index: usize, value: T) -> RegionResult<()> {
        let b = self.bytes(&value)?;
        let mut w = self.region.lock()?;
        let len = w.list_len()?;
        if index > len {
            return Err(self.out_of_range(index, len));
        }
        if index == len {
            return w.push(&b);
        }
        w.list_edit(b.len() as u64 + 16, |recs| {
            recs.insert(index, Rec { body: b, klen: 0 });
            Ok(())
        })
    }

    /// Removes and returns element `index`; past the end:
    /// [`RegionError::IndexOutOfRange`]. Rebuilds the index (O(n)) unless it is the last.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.extend([1, 2, 3])?;
    /// assert_eq!(v.remove(0)?, 1);
    /// assert_eq!(v.iter()?.collect::<Vec<_>>(), [2, 3]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn remove(&self, index: usize) -> RegionResult<T> {
        let mut w = self.region.lock()?;
        let len = w.list_len()?;
        if index >= len {
            return Err(self.out_of_range(index, len));
        }
        if index + 1 == len {
            let old = w
                .pop_with(|old| self.item(old))?
                .ok_or_else(|| self.out_of_range(index, 0))?;
            return old;
        }
        let mut removed = None;
        w.list_edit(0, |recs| {
            removed = Some(recs.remove(index));
            Ok(())
        })?;
        drop(w);
        let rec = removed.ok_or_else(|| self.out_of_range(index, len))?;
        self.item(rec.value())
    }

    /// Runs `f` on every element as one `Vec` under the writer lock and stores the
    /// result atomically (readers see the old elements or the new ones, never a mix): the
    /// edit for `reverse`, slice assignment and other whole-list changes. Rebuilds the
    /// data segment (O(n)). `f` must not use this vec ("would deadlock"). If an edited
    /// element is over the limits nothing changes.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.extend([1, 2, 3, 4])?;
    /// let removed = v.edit(|items| { items.reverse(); items.drain(1..3).count() })?;
    /// assert_eq!((removed, v.iter()?.collect::<Vec<_>>()), (2, vec![4, 1]));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn edit<R>(&self, f: impl FnOnce(&mut Vec<T>) -> R) -> RegionResult<R> {
        let mut w = self.region.lock()?;
        let mut out = None;
        w.list_edit(0, |recs| {
            let mut items = recs
                .iter()
                .map(|r| self.item(r.value()))
                .collect::<RegionResult<Vec<T>>>()?;
            out = Some(f(&mut items));
            *recs = items
                .iter()
                .map(|v| {
                    Ok(Rec {
                        body: self.bytes(v)?,
                        klen: 0,
                    })
                })
                .collect::<RegionResult<Vec<Rec>>>()?;
            Ok(())
        })?;
        out.ok_or_else(|| RegionError::Corrupted {
            name: self.region.label().to_owned(),
            what: "the edit did not run".into(),
        })
    }

    /// Appends every value under one lock; all are checked against the limits first.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u32>::create()?;
    /// v.extend(0..1000)?;
    /// assert_eq!(v.get(999)?, Some(999));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> RegionResult<()> {
        let encoded = values
            .into_iter()
            .map(|v| self.bytes(&v))
            .collect::<RegionResult<Vec<_>>>()?;
        let mut w = self.region.lock()?;
        for b in &encoded {
            w.push(b)?;
        }
        Ok(())
    }

    /// Number of elements (no lock).
    ///
    /// ```
    /// assert_eq!(shm_collections::ShareableVec::<u8>::create()?.len()?, 0);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn len(&self) -> RegionResult<usize> {
        Ok(self.region.len()? as usize)
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// assert!(shm_collections::ShareableVec::<u8>::create()?.is_empty()?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn is_empty(&self) -> RegionResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every element (a fresh, small data segment).
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.extend([1, 2])?;
    /// v.clear()?;
    /// assert!(v.is_empty()?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn clear(&self) -> RegionResult<()> {
        self.region.lock()?.clear()
    }

    /// Every element as of one moment (a consistent snapshot), in order.
    ///
    /// Takes no lock unless writers keep changing the collection during 64 attempts;
    /// then it waits for the writer lock, at most this handle's patience (see
    /// [`set_patience`](Self::set_patience)).
    /// ```
    /// let v = shm_collections::ShareableVec::<i8>::create()?;
    /// v.extend([-1, 0, 1])?;
    /// assert_eq!(v.iter()?.sum::<i8>(), 0);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn iter(&self) -> RegionResult<std::vec::IntoIter<T>> {
        let items = self
            .region
            .snapshot()?
            .iter()
            .map(|r| self.item(r.value()))
            .collect::<RegionResult<Vec<_>>>()?;
        Ok(items.into_iter())
    }

    /// Storage figures (see [`RegionStats`]; `entries` is the length).
    ///
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// v.push(1)?;
    /// assert_eq!(v.stats()?.entries, 1);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn stats(&self) -> RegionResult<RegionStats> {
        self.region.stats()
    }

    /// The limits every process enforces on this list.
    ///
    /// ```
    /// let v = shm_collections::ShareableVec::<u8>::create()?;
    /// assert_eq!(v.limits(), shm_collections::Limits::default());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn limits(&self) -> Limits {
        self.region.limits()
    }
}
