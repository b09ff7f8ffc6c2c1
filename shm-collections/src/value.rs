//! `Value<T>` (with a lock, CPython's default), `RawValue<T>` (without) and
//! `AtomicValue<T>` (lock-free integers): one `T` in its own named segment.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::Pod;
use shm_core::{Kind, Layout, Object, ObjectSpec, SharedObject};
use shm_sync::{LockResult, MutexGuard, RawMutex, Wait};

use crate::cell::{
    AtomicInt, CELL_LAYOUT_VERSION, CellError, CellResult, DATA_OFFSET, LOCK_OFFSET, check_align,
    convenience_error,
};
use crate::kinds;

/// The header's type record for `Variant<T>`: the variant is part of the element type,
/// so a `Value` cannot open a `RawValue` or an `AtomicValue` (nor an `Array` a
/// `RawArray`) although they share a kind and a layout.
pub(crate) fn cell_spec<T>(kind: Kind, variant: &str) -> ObjectSpec {
    ObjectSpec::new(kind, CELL_LAYOUT_VERSION)
        .with_type::<T>(&format!("{variant}<{}>", std::any::type_name::<T>()))
}

/// `Variant "name"`, for messages and lock errors.
pub(crate) fn cell_label(variant: &str, obj: &Object) -> Arc<str> {
    format!("{variant} {:?}", obj.label()).into()
}

/// Payload bytes of a one-element cell.
fn value_payload_len<T>() -> CellResult<usize> {
    check_align::<T>()?;
    Ok(DATA_OFFSET + size_of::<T>())
}

/// Writes the initial value into a payload nobody else sees yet.
fn init_value<T: Pod>(obj: &Object, initial: T) -> CellResult<()> {
    Ok(obj.write_at(DATA_OFFSET, bytemuck::bytes_of(&initial))?)
}

/// Checks an opened cell's payload (its header's type record already matched).
fn check_value<T>(obj: &Object, variant: &str) -> CellResult<()> {
    check_align::<T>()?;
    if obj.payload_len() < DATA_OFFSET + size_of::<T>() {
        // Only a forged header gets here.
        return Err(CellError::Corrupted {
            name: cell_label(variant, obj).to_string(),
            what: format!(
                "payload of {} bytes cannot hold a {} at offset {DATA_OFFSET}",
                obj.payload_len(),
                std::any::type_name::<T>()
            ),
        });
    }
    Ok(())
}

fn data_ptr<T>(obj: &Object) -> *mut T {
    // `check_value` made sure payload_len >= DATA_OFFSET + size_of::<T>().
    obj.payload_ptr().wrapping_add(DATA_OFFSET).cast()
}

/// `SharedObject`, the inherent lifecycle methods and `create`/`create_named`/
/// `create_with` for one of the three value types.
macro_rules! value_object {
    ($ty:ident<$g:ident: $b:path>, $variant:literal, $example:literal, $make:literal, $path:literal, $($field:ident: $value:expr),*) => {
        impl<$g: $b> SharedObject for $ty<$g> {
            type Error = CellError;
            type Init = $g;

            fn layout() -> Layout {
                Layout::Header(cell_spec::<$g>(kinds::VALUE, $variant))
            }

            fn payload_len(_: &$g) -> CellResult<usize> {
                value_payload_len::<$g>()
            }

            fn init_payload(object: &Object, initial: $g) -> CellResult<()> {
                init_value(object, initial)
            }

            #[allow(unused_variables)]
            fn attach(object: Object) -> CellResult<Self> {
                check_value::<$g>(&object, $variant)?;
                Ok(Self {
                    $($field: $value(&object),)*
                    obj: object,
                    _t: PhantomData,
                })
            }

            fn object(&self) -> &Object {
                &self.obj
            }

            fn object_mut(&mut self) -> &mut Object {
                &mut self.obj
            }
        }

        shm_core::object_methods!(
            $ty<$g: $b>,
            CellError,
            $make,
            $path,
            create(initial: $g) => initial, args: $example
        );

    };
}

/// A `T` in shared memory guarded by a process-shared, robust lock: CPython's
/// `multiprocessing.Value(typecode, value)` (with its default `lock=True`).
///
/// [`get`](Self::get), [`set`](Self::set) and [`update`](Self::update) take the lock for
/// one operation; [`lock`](Self::lock) hands out a guard for several. If a process dies
/// holding the lock, the next [`lock`](Self::lock) returns the guard inside
/// [`shm_sync::LockError::OwnerDied`] so the value can be checked and marked consistent, and until
/// then `get`/`set` report [`CellError::Inconsistent`] instead of a possibly
/// half-written value.
///
/// Opening checks the element type: a `Value<u64>` opened as `Value<f32>` is an error.
/// For lock-free integer counters see [`AtomicValue`].
///
/// ```
/// use shm_collections::Value;
/// let v = Value::create(10i64)?;
/// let peer: Value<i64> = Value::open(v.name().unwrap())?;   // another process, by name
/// peer.update(|x| *x += 5)?;
/// assert_eq!(v.get()?, 15);
/// assert!(Value::<f64>::open(v.name().unwrap()).is_err());   // wrong element type
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub struct Value<T: Pod> {
    obj: Object,
    label: Arc<str>,
    _t: PhantomData<T>,
}

value_object!(
    Value<T: Pod>,
    "Value",
    ", 3u32",
    "shm_collections::Value::create(3u32)",
    "shm_collections::Value::<u32>",
    label: |o| cell_label("Value", o));

impl<T: Pod> Value<T> {
    #[inline]
    fn raw_lock(&self) -> &RawMutex {
        // SAFETY: the payload starts with a 16-byte, 64-byte aligned RawMutex (all-zero
        // = unlocked at creation); it consists of atomics, valid for any bits and for
        // concurrent access by other processes.
        unsafe { &*self.obj.payload_ptr().add(LOCK_OFFSET).cast::<RawMutex>() }
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> LockResult<MutexGuard<'_, T>> {
        // SAFETY: the data lies in the payload at DATA_OFFSET (checked at attach),
        // aligned for T (64-byte aligned payload, align_of::<T>() <= 64), mapped as long
        // as `self`; T: Pod is valid for any bytes; every process writes a Value only
        // under its lock.
        unsafe {
            MutexGuard::lock_raw(self.raw_lock(), data_ptr::<T>(&self.obj), wait, &self.label)
        }
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
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
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
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
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
    pub fn lock_timeout(&self, timeout: std::time::Duration) -> LockResult<MutexGuard<'_, T>> {
        self.lock_with(Wait::Timeout(timeout))
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
/// let peer: RawValue<[f64; 2]> = RawValue::open(v.name().unwrap())?;
/// peer.set([3.0, 4.0]);
/// assert_eq!(v.get(), [3.0, 4.0]);
/// // Same kind and layout, but the variant is part of the type record:
/// assert!(shm_collections::Value::<[f64; 2]>::open(v.name().unwrap()).is_err());
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub struct RawValue<T: Pod> {
    obj: Object,
    _t: PhantomData<T>,
}

value_object!(
    RawValue<T: Pod>,
    "RawValue",
    ", 9i16",
    "shm_collections::RawValue::create(9i16)",
    "shm_collections::RawValue::<i16>",
);

impl<T: Pod> RawValue<T> {
    /// Copies the value out (may be torn if another process writes concurrently).
    ///
    /// ```
    /// let v = shm_collections::RawValue::create([1u8, 2])?;
    /// assert_eq!(v.get(), [1, 2]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn get(&self) -> T {
        let mut value = T::zeroed();
        // SAFETY: the payload holds a T at DATA_OFFSET (checked at attach), mapped as
        // long as `self`; `value` is local; T is Pod, so any bytes, even torn ones, are
        // a valid T.
        unsafe {
            shm_core::copy_from_shared(
                data_ptr::<T>(&self.obj).cast(),
                bytemuck::bytes_of_mut(&mut value),
            )
        };
        value
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
        // SAFETY: the payload holds a T at DATA_OFFSET (checked at attach), mapped as
        // long as `self`; `value` is local, so the ranges do not overlap.
        unsafe {
            shm_core::copy_to_shared(bytemuck::bytes_of(&value), data_ptr::<T>(&self.obj).cast())
        }
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
/// let peer: AtomicValue<u64> = AtomicValue::open(hits.name().unwrap())?;
/// peer.fetch_add(5);
/// assert_eq!(hits.fetch_add(1), 5);
/// assert_eq!(hits.compare_exchange(6, 10), Ok(6));
/// assert_eq!(peer.load(), 10);
/// assert!(shm_collections::RawValue::<u64>::open(hits.name().unwrap()).is_err());
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub struct AtomicValue<T: AtomicInt> {
    obj: Object,
    _t: PhantomData<T>,
}

value_object!(
    AtomicValue<T: AtomicInt>,
    "AtomicValue",
    ", 5u32",
    "shm_collections::AtomicValue::create(5u32)",
    "shm_collections::AtomicValue::<u32>",
);

impl<T: AtomicInt> AtomicValue<T> {
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
///
/// # Safety
/// `obj`'s payload is at least `DATA_OFFSET` bytes (the caller checked).
pub(crate) unsafe fn stored_len(obj: &Object) -> u64 {
    // SAFETY: the payload is at least DATA_OFFSET (64) bytes (caller's contract),
    // 64-byte aligned; LEN_OFFSET (16) is 8-aligned; atomics are valid for any bits.
    unsafe {
        (*obj
            .payload_ptr()
            .add(crate::cell::LEN_OFFSET)
            .cast::<AtomicU64>())
        .load(Ordering::Relaxed)
    }
}
