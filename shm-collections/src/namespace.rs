//! [`Namespace`]: attributes by name, each of any serde type (Python's
//! `Manager().Namespace()`), on the growth region.

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_core::SharedObject;

use crate::codec::type_fingerprint;
use crate::dict::{decode, encode_key, encode_value, typed_spec};
use crate::kinds;
use crate::region::{IndexKind, Limits, Region, RegionError, RegionResult, RegionStats, unbox};

/// Attributes by name, each of its own serde type: Python's `Manager().Namespace()`
/// (`ns.count = 5` is `ns.set("count", &5u64)`), shared by any number of processes.
///
/// Each attribute is stored with a fingerprint of its type: reading it as another type
/// is [`RegionError::TypeMismatch`] naming both, never a reinterpretation. Reads take no
/// lock; writes, growth and crash recovery are those of
/// [`ShareableDict`](crate::ShareableDict) (the same [`region`](crate::region)).
///
/// ```
/// use shm_collections::{Namespace, RegionError};
/// let ns = Namespace::create()?;
/// ns.set("count", &5u64)?;
/// ns.set("label", &"ready".to_string())?;
/// let peer = Namespace::open(ns.name().unwrap())?; // another process
/// assert_eq!(peer.get::<u64>("count")?, Some(5));
/// assert!(matches!(peer.get::<String>("count"), Err(RegionError::TypeMismatch { .. })));
/// peer.update("count", |n: Option<u64>| n.unwrap_or(0) + 1)?;
/// assert_eq!(ns.get::<u64>("count")?, Some(6));
/// # Ok::<(), RegionError>(())
/// ```
pub struct Namespace {
    region: Region,
}

/// One stored attribute: type fingerprint, type name (for messages), encoded value.
type Stored = (u64, String, Vec<u8>);

crate::region::region_object!(
    impl[] Namespace,
    spec: typed_spec::<Namespace>(kinds::NAMESPACE, "Namespace"),
    index: IndexKind::Hash,
    build: |region| Namespace { region }
);

impl Namespace {
    /// Creates a namespace under a fresh random `psm_` name (default [`Limits`]).
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// assert!(ns.name().unwrap().starts_with("psm_"));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn create() -> RegionResult<Self> {
        <Self as SharedObject>::create(Limits::default())
    }

    /// Creates a namespace under `name`; `AlreadyExists` if it is taken.
    ///
    /// ```
    /// let name = format!("shm-doc-ns-{}", std::process::id());
    /// let ns = shm_collections::Namespace::create_named(&name)?;
    /// assert!(shm_collections::Namespace::create_named(&name).is_err());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn create_named(name: &str) -> RegionResult<Self> {
        <Self as SharedObject>::create_named(name, Limits::default())
    }

    /// Opens a namespace another process created.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// let again = shm_collections::Namespace::open(ns.name().unwrap())?;
    /// assert_eq!(again.name(), ns.name());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn open(name: &str) -> RegionResult<Self> {
        <Self as SharedObject>::open(name)
    }

    /// The control object's name.
    ///
    /// ```
    /// assert!(shm_collections::Namespace::create()?.name().is_some());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.region.object().name()
    }

    /// Removes the names now; processes that have it open keep using it.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.unlink()?;
    /// assert!(shm_collections::Namespace::open(ns.name().unwrap()).is_err());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn unlink(&self) -> RegionResult<()> {
        <Self as SharedObject>::unlink(self)
    }

    /// How long this handle's writes (`set`, `update`, `remove`, `salvage`) wait for
    /// the writer lock while another writer holds it: `None` (the default) waits as
    /// long as it takes, `Some(d)` gives up after `d` with [`RegionError::Lock`]
    /// (source [`shm_sync::RawError::Timeout`]). A holder in another PID namespace
    /// counts as alive, so without a patience such a wait can be forever.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set_patience(Some(std::time::Duration::from_secs(1)));
    /// assert_eq!(ns.patience(), Some(std::time::Duration::from_secs(1)));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn set_patience(&self, patience: Option<std::time::Duration>) {
        self.region.set_patience(patience)
    }

    /// This handle's patience for the writer lock (see [`set_patience`](Self::set_patience)).
    ///
    /// ```
    /// assert_eq!(shm_collections::Namespace::create()?.patience(), None);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn patience(&self) -> Option<std::time::Duration> {
        self.region.patience()
    }

    /// Copies every intact attribute into a fresh data segment and reports the
    /// broken ones dropped (the way out when a record's checksum fails and growth
    /// stops with `Corrupted`). Waits for the writer lock (see
    /// [`set_patience`](Self::set_patience)).
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("x", &1u8)?;
    /// assert_eq!(ns.salvage()?.kept, 1);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn salvage(&self) -> RegionResult<crate::region::SalvageReport> {
        self.region.salvage()
    }

    fn attr_key(&self, attr: &str) -> RegionResult<Vec<u8>> {
        let k = encode_key(&self.region, attr)?;
        self.region.check_sizes(k.len(), 0)?;
        Ok(k)
    }

    fn pack<T: Serialize>(&self, key: &[u8], value: &T) -> RegionResult<Vec<u8>> {
        let stored: Stored = (
            type_fingerprint::<T>(),
            std::any::type_name::<T>().to_owned(),
            encode_value(&self.region, value)?,
        );
        let v = encode_value(&self.region, &stored)?;
        self.region.check_sizes(key.len(), v.len())?;
        Ok(v)
    }

    fn unpack<T: DeserializeOwned>(&self, attr: &str, bytes: &[u8]) -> RegionResult<T> {
        let (tag, type_name, value): Stored = decode(&self.region, "attribute", bytes)?;
        if tag != type_fingerprint::<T>() {
            return Err(RegionError::TypeMismatch {
                name: self.region.label().to_owned(),
                attr: attr.to_owned(),
                expected: std::any::type_name::<T>().to_owned(),
                found: type_name,
            });
        }
        decode(&self.region, "value", &value)
    }

    /// Sets `attr` to `value` (of any serde type, replacing whatever type it had).
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("x", &1.5f64)?;
    /// ns.set("x", &vec![1u8, 2, 3])?;
    /// assert_eq!(ns.get::<Vec<u8>>("x")?.unwrap().len(), 3);
    /// assert!(ns.get::<f64>("x").is_err()); // it holds a Vec<u8> now
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn set<T: Serialize>(&self, attr: &str, value: &T) -> RegionResult<()> {
        let k = self.attr_key(attr)?;
        let v = self.pack(&k, value)?;
        self.region.lock()?.put(&k, &v)?;
        Ok(())
    }

    /// The value of `attr` as a `T` (no lock): `None` if unset,
    /// [`RegionError::TypeMismatch`] if it holds another type.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// assert_eq!(ns.get::<u8>("missing")?, None);
    /// ns.set("n", &7u8)?;
    /// assert!(ns.get::<u16>("n").is_err());
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, attr: &str) -> RegionResult<Option<T>> {
        let k = self.attr_key(attr)?;
        self.region
            .get_with(&k, |v| self.unpack(attr, v))
            .map_err(unbox)?
            .transpose()
    }

    /// Atomically replaces `attr` by `f(old)` (typed; a mismatch is an error and changes
    /// nothing) and returns the new value.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.update("log", |v: Option<Vec<String>>| { let mut v = v.unwrap_or_default(); v.push("a".into()); v })?;
    /// assert_eq!(ns.get::<Vec<String>>("log")?, Some(vec!["a".to_string()]));
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        attr: &str,
        f: impl FnOnce(Option<T>) -> T,
    ) -> RegionResult<T> {
        let k = self.attr_key(attr)?;
        let mut w = self.region.lock()?;
        let old = w.get_with(&k, |v| self.unpack::<T>(attr, v))?.transpose()?;
        let new = f(old);
        let v = self.pack(&k, &new)?;
        w.put(&k, &v)?;
        Ok(new)
    }

    /// Removes `attr`; whether it was set.
    ///
    /// Waits for the writer lock while another writer holds it, at most this
    /// handle's patience (see [`set_patience`](Self::set_patience)).
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("a", &())?;
    /// assert!(ns.remove("a")? && !ns.remove("a")?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn remove(&self, attr: &str) -> RegionResult<bool> {
        let k = self.attr_key(attr)?;
        Ok(self.region.lock()?.remove_with(&k, |_| ())?.is_some())
    }

    /// Whether `attr` is set (no lock).
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("a", &1u8)?;
    /// assert!(ns.contains("a")? && !ns.contains("b")?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn contains(&self, attr: &str) -> RegionResult<bool> {
        let k = self.attr_key(attr)?;
        Ok(self.region.get_with(&k, |_| ()).map_err(unbox)?.is_some())
    }

    /// The names of the set attributes, sorted, from one snapshot.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("b", &1u8)?;
    /// ns.set("a", &"x")?;
    /// assert_eq!(ns.attrs()?, ["a", "b"]);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn attrs(&self) -> RegionResult<Vec<String>> {
        let mut names = self
            .region
            .snapshot()?
            .iter()
            .map(|r| decode::<String>(&self.region, "attribute name", r.key()))
            .collect::<RegionResult<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    /// Number of set attributes.
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("a", &1u8)?;
    /// assert_eq!(ns.len()?, 1);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn len(&self) -> RegionResult<usize> {
        Ok(self.region.len()? as usize)
    }

    /// Whether no attribute is set.
    ///
    /// ```
    /// assert!(shm_collections::Namespace::create()?.is_empty()?);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn is_empty(&self) -> RegionResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Storage figures (see [`RegionStats`]).
    ///
    /// ```
    /// let ns = shm_collections::Namespace::create()?;
    /// ns.set("a", &1u8)?;
    /// assert_eq!(ns.stats()?.entries, 1);
    /// # Ok::<(), shm_collections::RegionError>(())
    /// ```
    pub fn stats(&self) -> RegionResult<RegionStats> {
        self.region.stats()
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.region.object().label())
            .finish_non_exhaustive()
    }
}
