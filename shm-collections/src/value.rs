//! `Value<T>` (with a lock, CPython's default), `RawValue<T>` (without) and
//! `AtomicValue<T>` (lock-free integers): one `T` in its own named segment.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::Pod;
use shm_core::{Object, ObjectKind, ObjectSpec, SegmentOptions};
use shm_sync::{LockError, RawMutex};

use crate::cell::{
    AtomicInt, CELL_LAYOUT_VERSION, CellError, CellGuard, CellResult, DATA_OFFSET, LOCK_OFFSET,
    Wait, check_align, convenience_error, lock_cell,
};

/// The header's type record for `Variant<T>`.
pub(crate) fn cell_spec<T>(kind: ObjectKind, variant: &str) -> ObjectSpec {
    ObjectSpec::new(kind, CELL_LAYOUT_VERSION)
        .with_type::<T>(&format!("{variant}<{}>", std::any::type_name::<T>()))
}

fn label(variant: &str, obj: &Object) -> String {
    format!("{variant} {:?}", obj.segment().display_name())
}

/// Creates the segment of a one-element cell.
fn create_cell<T: Pod>(options: &SegmentOptions, variant: &str, initial: T) -> CellResult<Object> {
    check_align::<T>()?;
    let spec = cell_spec::<T>(ObjectKind::Value, variant);
    Ok(Object::create(
        options,
        &spec,
        DATA_OFFSET + size_of::<T>(),
        |payload| {
            // SAFETY: the payload holds DATA_OFFSET + size_of::<T>() bytes, is 64-byte
            // aligned (so T, align <= 64, is aligned at DATA_OFFSET), and is ours alone
            // until `create` publishes it.
            unsafe { payload.add(DATA_OFFSET).cast::<T>().write(initial) }
        },
    )?)
}

fn open_cell<T: Pod>(name: &str, variant: &str) -> CellResult<Object> {
    check_align::<T>()?;
    let obj = Object::open(name, &cell_spec::<T>(ObjectKind::Value, variant))?;
    if obj.payload_len() < DATA_OFFSET + size_of::<T>() {
        // The header's type record matched, so only a forged header gets here.
        return Err(CellError::Corrupted {
            name: label(variant, &obj),
            what: format!(
                "payload of {} bytes cannot hold a {}",
                obj.payload_len(),
                std::any::type_name::<T>()
            ),
        });
    }
    Ok(obj)
}

fn data_ptr<T>(obj: &Object) -> *mut T {
    // SAFETY: create/open checked payload_len >= DATA_OFFSET + size_of::<T>().
    unsafe { obj.payload_ptr().add(DATA_OFFSET).cast() }
}

/// A `T` in shared memory guarded by a process-shared, robust lock: CPython's
/// `multiprocessing.Value(typecode, value)` (with its default `lock=True`).
///
/// [`get`](Self::get), [`set`](Self::set) and [`update`](Self::update) take the lock for
/// one operation; [`lock`](Self::lock) hands out a guard for several. If a process dies
/// holding the lock, the next [`lock`](Self::lock) returns the guard inside
/// [`LockError::OwnerDied`] so the value can be checked and marked consistent, and until
/// then `get`/`set` report [`CellError::Inconsistent`] instead of a possibly
/// half-written value.
///
/// Opening checks the element type: a `Value<u64>` opened as `Value<f32>` is an error.
/// For lock-free integer counters see [`AtomicValue`].
///
/// ```
/// use shm_collections::Value;
/// let v = Value::create(10i64)?;
/// let peer: Value<i64> = Value::open(v.name())?;   // another process, by name
/// peer.update(|x| *x += 5)?;
/// assert_eq!(v.get()?, 15);
/// assert!(Value::<f64>::open(v.name()).is_err());   // wrong element type
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug)]
pub struct Value<T: Pod> {
    obj: Object,
    label: String,
    _t: PhantomData<T>,
}

impl<T: Pod> Value<T> {
    const VARIANT: &'static str = "Value";

    /// Creates a value under a random `psm_` name, unlinked when this handle drops.
    ///
    /// ```
    /// let v = shm_collections::Value::create(3u32)?;
    /// assert_eq!(v.get()?, 3);
    /// assert!(v.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create(initial: T) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new(), initial)
    }

    /// Creates a value under `name`, unlinked when this handle drops.
    ///
    /// ```
    /// let name = format!("doc-value-{}", std::process::id());
    /// let v = shm_collections::Value::create_named(&name, 1u8)?;
    /// assert_eq!(v.name(), name);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_named(name: &str, initial: T) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new().name(name), initial)
    }

    /// Creates a value with the given segment options.
    ///
    /// ```
    /// let opts = shm_core::SegmentOptions::new().unlink_on_drop(true);
    /// let v = shm_collections::Value::create_with(&opts, [0u16; 4])?;
    /// assert_eq!(v.get()?, [0; 4]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, initial: T) -> CellResult<Self> {
        Ok(Self::wrap(create_cell(options, Self::VARIANT, initial)?))
    }

    /// Opens a value another process created; the element type must match.
    ///
    /// ```
    /// use shm_collections::Value;
    /// let v = Value::create(1.5f64)?;
    /// let peer: Value<f64> = Value::open(v.name())?;
    /// peer.set(2.5)?;
    /// assert_eq!(v.get()?, 2.5);
    /// assert!(Value::<u64>::open(v.name()).is_err()); // same size, other type
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn open(name: &str) -> CellResult<Self> {
        Ok(Self::wrap(open_cell::<T>(name, Self::VARIANT)?))
    }

    fn wrap(obj: Object) -> Self {
        Self {
            label: label(Self::VARIANT, &obj),
            obj,
            _t: PhantomData,
        }
    }

    /// The segment's name, to open the value elsewhere.
    ///
    /// ```
    /// let v = shm_collections::Value::create(0u8)?;
    /// assert!(v.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.obj.segment().display_name()
    }

    /// The object underneath (segment, unlink-on-drop choice).
    ///
    /// ```
    /// let v = shm_collections::Value::create(0u8)?;
    /// assert_eq!(v.object().segment().name(), Some(v.name()));
    /// assert!(v.object().segment().unlinks_on_drop());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn object(&self) -> &Object {
        &self.obj
    }

    #[inline]
    fn raw_lock(&self) -> &RawMutex {
        // SAFETY: the payload starts with a 16-byte, 64-byte aligned RawMutex (all-zero
        // = unlocked at creation); it consists of atomics, valid for any bits and for
        // concurrent access by other processes.
        unsafe { &*self.obj.payload_ptr().add(LOCK_OFFSET).cast::<RawMutex>() }
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> Result<CellGuard<'_, T>, LockError<CellGuard<'_, T>>> {
        // SAFETY: the data is valid for as long as `self`; every writer of a Value
        // writes under its lock.
        unsafe { lock_cell(self.raw_lock(), data_ptr::<T>(&self.obj), wait, &self.label) }
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// ```
    /// let v = shm_collections::Value::create(0u64)?;
    /// *v.lock().unwrap() += 1;
    /// assert_eq!(v.get()?, 1);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> Result<CellGuard<'_, T>, LockError<CellGuard<'_, T>>> {
        self.lock_with(Wait::Forever)
    }

    /// Takes the lock if that needs no waiting.
    ///
    /// ```
    /// let v = shm_collections::Value::create(0u64)?;
    /// let held = v.try_lock().unwrap();
    /// assert!(v.try_lock().is_err()); // this thread holds it already
    /// drop(held);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn try_lock(&self) -> Result<CellGuard<'_, T>, LockError<CellGuard<'_, T>>> {
        self.lock_with(Wait::Try)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// ```
    /// let v = shm_collections::Value::create(0u64)?;
    /// let g = v.lock_timeout(std::time::Duration::from_millis(10)).unwrap();
    /// assert_eq!(*g, 0);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<CellGuard<'_, T>, LockError<CellGuard<'_, T>>> {
        self.lock_with(Wait::For(timeout))
    }

    /// Reads the value under the lock.
    ///
    /// ```
    /// assert_eq!(shm_collections::Value::create(7u16)?.get()?, 7);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn get(&self) -> CellResult<T> {
        self.update(|v| *v)
    }

    /// Writes the value under the lock.
    ///
    /// ```
    /// let v = shm_collections::Value::create(0.0f32)?;
    /// v.set(2.5)?;
    /// assert_eq!(v.get()?, 2.5);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn set(&self, value: T) -> CellResult<()> {
        self.update(|v| *v = value)
    }

    /// Runs `f` on the value under the lock (CPython's `with v.get_lock(): ...`).
    ///
    /// ```
    /// let v = shm_collections::Value::create(1u32)?;
    /// let old = v.update(|x| std::mem::replace(x, 9))?;
    /// assert_eq!((old, v.get()?), (1, 9));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    #[inline]
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> CellResult<R> {
        let mut guard = self.lock().map_err(|e| convenience_error(e, &self.label))?;
        Ok(f(&mut guard))
    }
}

/// A `T` in shared memory without a lock: CPython's `multiprocessing.RawValue`.
///
/// Reads and writes are plain copies: a reader in another process can see a
/// half-written `T` larger than 8 bytes, exactly as with CPython's `RawValue`. Use
/// [`Value`] for values written concurrently, or [`AtomicValue`] for integers.
///
/// ```
/// use shm_collections::RawValue;
/// let v = RawValue::create([1.0f64, 2.0])?;
/// let peer: RawValue<[f64; 2]> = RawValue::open(v.name())?;
/// peer.set([3.0, 4.0]);
/// assert_eq!(v.get(), [3.0, 4.0]);
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug)]
pub struct RawValue<T: Pod> {
    obj: Object,
    _t: PhantomData<T>,
}

impl<T: Pod> RawValue<T> {
    const VARIANT: &'static str = "RawValue";

    /// Creates a value under a random `psm_` name, unlinked when this handle drops.
    ///
    /// ```
    /// let v = shm_collections::RawValue::create(9i16)?;
    /// assert_eq!(v.get(), 9);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create(initial: T) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new(), initial)
    }

    /// Creates a value with the given segment options (name, unlink-on-drop).
    ///
    /// ```
    /// let v = shm_collections::RawValue::create_with(&shm_core::SegmentOptions::new(), 5u8)?;
    /// assert_eq!(v.get(), 5);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, initial: T) -> CellResult<Self> {
        Ok(Self {
            obj: create_cell(options, Self::VARIANT, initial)?,
            _t: PhantomData,
        })
    }

    /// Opens a value another process created; the element type must match.
    ///
    /// ```
    /// use shm_collections::{RawValue, Value};
    /// let v = RawValue::create(1u64)?;
    /// assert_eq!(RawValue::<u64>::open(v.name())?.get(), 1);
    /// assert!(Value::<u64>::open(v.name()).is_err()); // not a locked Value
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn open(name: &str) -> CellResult<Self> {
        Ok(Self {
            obj: open_cell::<T>(name, Self::VARIANT)?,
            _t: PhantomData,
        })
    }

    /// The segment's name.
    ///
    /// ```
    /// let v = shm_collections::RawValue::create(0u8)?;
    /// assert!(v.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.obj.segment().display_name()
    }

    /// Copies the value out (may be torn if another process writes concurrently).
    ///
    /// ```
    /// let v = shm_collections::RawValue::create([1u8, 2])?;
    /// assert_eq!(v.get(), [1, 2]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn get(&self) -> T {
        // SAFETY: in bounds and aligned (checked at create/open); T is Pod, so any
        // bytes, even torn ones, are a valid T; a volatile read keeps the compiler from
        // assuming the memory is unchanged.
        unsafe { data_ptr::<T>(&self.obj).read_volatile() }
    }

    /// Copies `value` in.
    ///
    /// ```
    /// let v = shm_collections::RawValue::create(0u32)?;
    /// v.set(4);
    /// assert_eq!(v.get(), 4);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn set(&self, value: T) {
        // SAFETY: in bounds and aligned (checked at create/open); no reference to the
        // bytes exists.
        unsafe { data_ptr::<T>(&self.obj).write_volatile(value) }
    }
}

/// An integer in shared memory updated with atomic instructions, no lock: the fast
/// path for counters and flags (`fetch_add` is one instruction, against about a
/// microsecond for CPython's `with v.get_lock(): v.value += 1`).
///
/// A separate type from [`Value`] on purpose: a lock-free update racing with a
/// `Value` guard's `&mut T` would be a data race.
///
/// ```
/// use shm_collections::AtomicValue;
/// let hits = AtomicValue::create(0u64)?;
/// let peer: AtomicValue<u64> = AtomicValue::open(hits.name())?;
/// peer.fetch_add(5);
/// assert_eq!(hits.fetch_add(1), 5);
/// assert_eq!(hits.compare_exchange(6, 10), Ok(6));
/// assert_eq!(peer.load(), 10);
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug)]
pub struct AtomicValue<T: AtomicInt> {
    obj: Object,
    _t: PhantomData<T>,
}

impl<T: AtomicInt> AtomicValue<T> {
    const VARIANT: &'static str = "AtomicValue";

    /// Creates a value under a random `psm_` name, unlinked when this handle drops.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(5u32)?;
    /// assert_eq!(v.load(), 5);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create(initial: T) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new(), initial)
    }

    /// Creates a value with the given segment options (name, unlink-on-drop).
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create_with(&shm_core::SegmentOptions::new(), 1i32)?;
    /// assert_eq!(v.load(), 1);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, initial: T) -> CellResult<Self> {
        Ok(Self {
            obj: create_cell(options, Self::VARIANT, initial)?,
            _t: PhantomData,
        })
    }

    /// Opens a value another process created; the element type must match.
    ///
    /// ```
    /// use shm_collections::AtomicValue;
    /// let v = AtomicValue::create(0i64)?;
    /// AtomicValue::<i64>::open(v.name())?.store(-2);
    /// assert_eq!(v.load(), -2);
    /// assert!(AtomicValue::<u64>::open(v.name()).is_err()); // other type
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn open(name: &str) -> CellResult<Self> {
        Ok(Self {
            obj: open_cell::<T>(name, Self::VARIANT)?,
            _t: PhantomData,
        })
    }

    /// The segment's name.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(0u8)?;
    /// assert!(v.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.obj.segment().display_name()
    }

    fn atomic(&self) -> &T::Atomic {
        // SAFETY: in bounds and aligned (T::Atomic has T's size and alignment, asserted
        // per type); atomics are valid for any bits and for concurrent access.
        unsafe { &*data_ptr::<T::Atomic>(&self.obj) }
    }

    /// Atomic load.
    ///
    /// ```
    /// assert_eq!(shm_collections::AtomicValue::create(7u8)?.load(), 7);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn load(&self) -> T {
        T::load(self.atomic())
    }

    /// Atomic store.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(0u16)?;
    /// v.store(3);
    /// assert_eq!(v.load(), 3);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn store(&self, value: T) {
        T::store(self.atomic(), value)
    }

    /// Atomic swap; returns the old value.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(1u16)?;
    /// assert_eq!(v.swap(2), 1);
    /// assert_eq!(v.load(), 2);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn swap(&self, value: T) -> T {
        T::swap(self.atomic(), value)
    }

    /// Atomic wrapping add; returns the old value.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(u8::MAX)?;
    /// assert_eq!(v.fetch_add(2), u8::MAX);
    /// assert_eq!(v.load(), 1); // wrapped
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn fetch_add(&self, value: T) -> T {
        T::fetch_add(self.atomic(), value)
    }

    /// Atomic wrapping subtract; returns the old value.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(0u32)?;
    /// assert_eq!(v.fetch_sub(1), 0);
    /// assert_eq!(v.load(), u32::MAX); // wrapped
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn fetch_sub(&self, value: T) -> T {
        T::fetch_sub(self.atomic(), value)
    }

    /// Stores `new` if the value is `current`: `Ok(old)` then, else `Err(actual)`.
    ///
    /// ```
    /// let v = shm_collections::AtomicValue::create(5i32)?;
    /// assert_eq!(v.compare_exchange(5, 6), Ok(5));
    /// assert_eq!(v.compare_exchange(5, 7), Err(6));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        T::compare_exchange(self.atomic(), current, new)
    }
}

/// Reads an array's stored length (an atomic: another process may scribble on it).
pub(crate) fn stored_len(obj: &Object) -> u64 {
    // SAFETY: every cell payload is at least DATA_OFFSET (64) bytes, 64-byte aligned;
    // LEN_OFFSET (16) is 8-aligned; atomics are valid for any bits.
    unsafe {
        (*obj
            .payload_ptr()
            .add(crate::cell::LEN_OFFSET)
            .cast::<AtomicU64>())
        .load(Ordering::Relaxed)
    }
}
