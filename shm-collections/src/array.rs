//! `Array<T>` (with a lock) and `RawArray<T>` (without): a fixed-length `[T]` in its
//! own named segment.

use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::AtomicU64;

use bytemuck::Pod;
use shm_core::{Object, ObjectKind, SegmentOptions};
use shm_sync::{LockError, RawMutex};

use crate::cell::{
    CellError, CellGuard, CellResult, DATA_OFFSET, LEN_OFFSET, LOCK_OFFSET, Wait, check_align,
    convenience_error, lock_cell,
};
use crate::value::{cell_spec, stored_len};

/// The validated shape of an array segment.
#[derive(Debug)]
struct ArrayCore<T> {
    obj: Object,
    len: usize,
    label: String,
    _t: PhantomData<T>,
}

impl<T: Pod> ArrayCore<T> {
    fn payload_len(len: usize, variant: &str) -> CellResult<usize> {
        len.checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(DATA_OFFSET))
            .ok_or_else(|| {
                CellError::Shm(shm_core::Error::InvalidSize {
                    name: variant.into(),
                    len: len as u64,
                    reason: "too many elements for the address space",
                })
            })
    }

    fn create(
        options: &SegmentOptions,
        variant: &str,
        len: usize,
        init: Option<&[T]>,
    ) -> CellResult<Self> {
        check_align::<T>()?;
        let spec = cell_spec::<T>(ObjectKind::Array, variant);
        let obj = Object::create(
            options,
            &spec,
            Self::payload_len(len, variant)?,
            |payload| {
                // SAFETY: the payload is DATA_OFFSET + len * size_of::<T>() bytes, 64-byte
                // aligned, ours alone until published; LEN_OFFSET is 8-aligned.
                unsafe {
                    payload
                        .add(LEN_OFFSET)
                        .cast::<AtomicU64>()
                        .write(AtomicU64::new(len as u64));
                    if let Some(src) = init {
                        ptr::copy_nonoverlapping(
                            src.as_ptr(),
                            payload.add(DATA_OFFSET).cast::<T>(),
                            len,
                        );
                    }
                }
            },
        )?;
        Ok(Self::wrap(obj, len, variant))
    }

    fn open(name: &str, variant: &str) -> CellResult<Self> {
        check_align::<T>()?;
        let obj = Object::open(name, &cell_spec::<T>(ObjectKind::Array, variant))?;
        let stored = stored_len(&obj);
        let capacity = (obj.payload_len() - DATA_OFFSET) / size_of::<T>().max(1);
        // The stored length is untrusted: it must describe exactly the segment's size.
        let fits = usize::try_from(stored)
            .ok()
            .and_then(|n| Self::payload_len(n, variant).ok())
            .is_some_and(|bytes| bytes == obj.payload_len() || size_of::<T>() == 0);
        if !fits {
            return Err(CellError::Corrupted {
                name: format!("{variant} {name:?}"),
                what: format!(
                    "stored length {stored} does not match the segment, which holds {capacity} elements"
                ),
            });
        }
        Ok(Self::wrap(obj, stored as usize, variant))
    }

    fn wrap(obj: Object, len: usize, variant: &str) -> Self {
        Self {
            label: format!("{variant} {:?}", obj.segment().display_name()),
            obj,
            len,
            _t: PhantomData,
        }
    }

    fn data(&self) -> *mut T {
        // SAFETY: the payload holds DATA_OFFSET + len elements (checked at create/open).
        unsafe { self.obj.payload_ptr().add(DATA_OFFSET).cast() }
    }

    fn check_index(&self, index: usize) -> CellResult<()> {
        if index < self.len {
            Ok(())
        } else {
            Err(CellError::IndexOutOfRange {
                name: self.label.clone(),
                index,
                len: self.len,
            })
        }
    }

    fn check_range(&self, start: usize, count: usize) -> CellResult<()> {
        match start.checked_add(count) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(CellError::RangeOutOfBounds {
                name: self.label.clone(),
                start,
                count,
                len: self.len,
            }),
        }
    }

    /// # Safety
    /// `index < len`.
    unsafe fn read(&self, index: usize) -> T {
        // SAFETY: in bounds by the caller; aligned; Pod: any bits are a valid T.
        unsafe { self.data().add(index).read_volatile() }
    }

    /// # Safety
    /// `index < len`.
    unsafe fn write(&self, index: usize, value: T) {
        // SAFETY: in bounds by the caller; aligned; no reference to the bytes exists.
        unsafe { self.data().add(index).write_volatile(value) }
    }

    /// # Safety
    /// `start + dst.len() <= len`.
    unsafe fn copy_out(&self, start: usize, dst: &mut [T]) {
        // SAFETY: in bounds by the caller; `dst` is local memory, not the mapping.
        unsafe { ptr::copy_nonoverlapping(self.data().add(start), dst.as_mut_ptr(), dst.len()) }
    }

    /// # Safety
    /// `start + src.len() <= len`.
    unsafe fn copy_in(&self, start: usize, src: &[T]) {
        // SAFETY: in bounds by the caller; `src` cannot alias the mapping, as no safe
        // API hands out references into it outside a guard, and a guard borrows `self`.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.data().add(start), src.len()) }
    }

    fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        // SAFETY: exactly `len` elements.
        unsafe { self.copy_out(0, &mut out) };
        out
    }
}

/// A fixed-length `[T]` in shared memory guarded by a process-shared, robust lock:
/// CPython's `multiprocessing.Array(typecode, size)` (with its default `lock=True`).
///
/// Element access (`get`, `set`) and bulk copies (`copy_from`, `copy_to`, `to_vec`)
/// take the lock once per call; [`lock`](Self::lock) hands out a guard that derefs to
/// `&mut [T]` for as long as it is held. A process that dies holding the lock is
/// reported to the next locker ([`LockError::OwnerDied`]); until the guard is marked
/// consistent the convenience methods return [`CellError::Inconsistent`].
///
/// ```
/// use shm_collections::Array;
/// let a = Array::from_slice(&[1u32, 2, 3, 4])?;
/// let peer: Array<u32> = Array::open(a.name())?; // another process, by name
/// peer.set(0, 10)?;
/// peer.lock().unwrap()[1..].iter_mut().for_each(|x| *x *= 2);
/// assert_eq!(a.to_vec()?, [10, 4, 6, 8]);
/// assert!(a.get(4).is_err());
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug)]
pub struct Array<T: Pod> {
    core: ArrayCore<T>,
}

impl<T: Pod> Array<T> {
    const VARIANT: &'static str = "Array";

    /// Creates `len` zeroed elements under a random `psm_` name, unlinked when this
    /// handle drops.
    ///
    /// ```
    /// let a = shm_collections::Array::<f64>::create(1000)?;
    /// assert_eq!(a.len(), 1000);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create(len: usize) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new(), len)
    }

    /// Creates `len` zeroed elements with the given segment options (name, unlink-on-drop).
    ///
    /// ```
    /// let name = format!("doc-array-{}", std::process::id());
    /// let a = shm_collections::Array::<u8>::create_with(&shm_core::SegmentOptions::new().name(&name), 3)?;
    /// assert_eq!(a.name(), name);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, len: usize) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::create(options, Self::VARIANT, len, None)?,
        })
    }

    /// Creates an array holding a copy of `items`, under a random name.
    ///
    /// ```
    /// let a = shm_collections::Array::from_slice(&[1u32, 2, 3])?;
    /// assert_eq!(a.to_vec()?, [1, 2, 3]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> CellResult<Self> {
        Self::from_slice_with(&SegmentOptions::new(), items)
    }

    /// Creates an array holding a copy of `items`, with the given segment options.
    ///
    /// ```
    /// let a = shm_collections::Array::from_slice_with(&shm_core::SegmentOptions::new(), &[1i8, -1])?;
    /// assert_eq!(a.get(1)?, -1);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn from_slice_with(options: &SegmentOptions, items: &[T]) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::create(options, Self::VARIANT, items.len(), Some(items))?,
        })
    }

    /// Opens an array another process created; the element type must match, and the
    /// stored length must agree with the segment's size.
    ///
    /// ```
    /// use shm_collections::Array;
    /// let a = Array::from_slice(&[1.5f64])?;
    /// let peer: Array<f64> = Array::open(a.name())?;
    /// assert_eq!(peer.get(0)?, 1.5);
    /// assert!(Array::<u64>::open(a.name()).is_err()); // same size, other type
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn open(name: &str) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::open(name, Self::VARIANT)?,
        })
    }

    /// The segment's name.
    ///
    /// ```
    /// let a = shm_collections::Array::<u8>::create(1)?;
    /// assert!(a.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.core.obj.segment().display_name()
    }

    /// The object underneath (segment, unlink-on-drop choice).
    ///
    /// ```
    /// let a = shm_collections::Array::<u32>::create(4)?;
    /// assert_eq!(a.object().segment().name(), Some(a.name()));
    /// assert!(a.object().segment().unlinks_on_drop());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn object(&self) -> &Object {
        &self.core.obj
    }

    /// Number of elements (fixed at creation).
    ///
    /// ```
    /// assert_eq!(shm_collections::Array::<u16>::create(5)?.len(), 5);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.core.len
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(shm_collections::Array::<u8>::create(0)?.is_empty());
    /// assert!(!shm_collections::Array::<u8>::create(1)?.is_empty());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.core.len == 0
    }

    #[inline]
    fn raw_lock(&self) -> &RawMutex {
        // SAFETY: the payload starts with a 16-byte RawMutex, 64-byte aligned, all-zero
        // (unlocked) at creation; atomics are valid for any bits and for concurrent access.
        unsafe {
            &*self
                .core
                .obj
                .payload_ptr()
                .add(LOCK_OFFSET)
                .cast::<RawMutex>()
        }
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> Result<CellGuard<'_, [T]>, LockError<CellGuard<'_, [T]>>> {
        let data = ptr::slice_from_raw_parts_mut(self.core.data(), self.core.len);
        // SAFETY: `len` elements valid for as long as `self`; every writer of an Array
        // writes under its lock.
        unsafe { lock_cell(self.raw_lock(), data, wait, &self.core.label) }
    }

    /// Takes the lock: the guard derefs to `&mut [T]`.
    ///
    /// ```
    /// let a = shm_collections::Array::<u64>::create(4)?;
    /// a.lock().unwrap().copy_from_slice(&[1, 2, 3, 4]);
    /// assert_eq!(a.lock().unwrap().iter().sum::<u64>(), 10);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> Result<CellGuard<'_, [T]>, LockError<CellGuard<'_, [T]>>> {
        self.lock_with(Wait::Forever)
    }

    /// Takes the lock if that needs no waiting.
    ///
    /// ```
    /// let a = shm_collections::Array::<u64>::create(1)?;
    /// assert!(a.try_lock().is_ok());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn try_lock(&self) -> Result<CellGuard<'_, [T]>, LockError<CellGuard<'_, [T]>>> {
        self.lock_with(Wait::Try)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// ```
    /// let a = shm_collections::Array::<u64>::create(1)?;
    /// assert!(a.lock_timeout(std::time::Duration::from_millis(5)).is_ok());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<CellGuard<'_, [T]>, LockError<CellGuard<'_, [T]>>> {
        self.lock_with(Wait::For(timeout))
    }

    fn locked<R>(&self, f: impl FnOnce() -> R) -> CellResult<R> {
        let guard = self
            .lock()
            .map_err(|e| convenience_error(e, &self.core.label))?;
        let out = f();
        drop(guard);
        Ok(out)
    }

    /// Element `index`, read under the lock.
    ///
    /// ```
    /// let a = shm_collections::Array::from_slice(&[5u8, 6])?;
    /// assert_eq!(a.get(1)?, 6);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn get(&self, index: usize) -> CellResult<T> {
        self.core.check_index(index)?;
        // SAFETY: index < len, checked above.
        self.locked(|| unsafe { self.core.read(index) })
    }

    /// Sets element `index` under the lock.
    ///
    /// ```
    /// let a = shm_collections::Array::<u8>::create(2)?;
    /// a.set(1, 9)?;
    /// assert_eq!(a.to_vec()?, [0, 9]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn set(&self, index: usize, value: T) -> CellResult<()> {
        self.core.check_index(index)?;
        // SAFETY: index < len, checked above.
        self.locked(|| unsafe { self.core.write(index, value) })
    }

    /// Copies elements `start..start + dst.len()` out, under the lock.
    ///
    /// ```
    /// let a = shm_collections::Array::from_slice(&[1u16, 2, 3])?;
    /// let mut two = [0; 2];
    /// a.copy_to(1, &mut two)?;
    /// assert_eq!(two, [2, 3]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn copy_to(&self, start: usize, dst: &mut [T]) -> CellResult<()> {
        self.core.check_range(start, dst.len())?;
        // SAFETY: range checked above.
        self.locked(|| unsafe { self.core.copy_out(start, dst) })
    }

    /// Copies `src` into elements `start..start + src.len()`, under the lock.
    ///
    /// ```
    /// let a = shm_collections::Array::<u16>::create(3)?;
    /// a.copy_from(1, &[7, 8])?;
    /// assert_eq!(a.to_vec()?, [0, 7, 8]);
    /// assert!(a.copy_from(2, &[1, 1]).is_err());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn copy_from(&self, start: usize, src: &[T]) -> CellResult<()> {
        self.core.check_range(start, src.len())?;
        // SAFETY: range checked above.
        self.locked(|| unsafe { self.core.copy_in(start, src) })
    }

    /// All elements, copied out under the lock.
    ///
    /// ```
    /// let a = shm_collections::Array::from_slice(&[1i32, -1])?;
    /// a.set(0, 5)?;
    /// assert_eq!(a.to_vec()?, [5, -1]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn to_vec(&self) -> CellResult<Vec<T>> {
        self.locked(|| self.core.to_vec())
    }
}

/// A fixed-length `[T]` in shared memory without a lock: CPython's
/// `multiprocessing.RawArray`. Copies are plain `memcpy`s: a reader in another process
/// can see a half-done copy, as with CPython's `RawArray`.
///
/// ```
/// use shm_collections::RawArray;
/// let a = RawArray::<f32>::create(3)?;
/// a.copy_from(0, &[1.0, 2.0, 3.0])?;
/// let peer: RawArray<f32> = RawArray::open(a.name())?;
/// assert_eq!(peer.get(2)?, 3.0);
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug)]
pub struct RawArray<T: Pod> {
    core: ArrayCore<T>,
}

impl<T: Pod> RawArray<T> {
    const VARIANT: &'static str = "RawArray";

    /// Creates `len` zeroed elements under a random `psm_` name, unlinked on drop.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<u32>::create(3)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create(len: usize) -> CellResult<Self> {
        Self::create_with(&SegmentOptions::new(), len)
    }

    /// Creates `len` zeroed elements with the given segment options.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<u8>::create_with(&shm_core::SegmentOptions::new(), 2)?;
    /// assert_eq!(a.to_vec(), [0, 0]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, len: usize) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::create(options, Self::VARIANT, len, None)?,
        })
    }

    /// Creates an array holding a copy of `items`, under a random name.
    ///
    /// ```
    /// let a = shm_collections::RawArray::from_slice(&[3u8, 4])?;
    /// assert_eq!(a.len(), 2);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::create(
                &SegmentOptions::new(),
                Self::VARIANT,
                items.len(),
                Some(items),
            )?,
        })
    }

    /// Opens an array another process created; the element type must match.
    ///
    /// ```
    /// use shm_collections::RawArray;
    /// let a = RawArray::from_slice(&[7u8])?;
    /// assert_eq!(RawArray::<u8>::open(a.name())?.get(0)?, 7);
    /// assert!(shm_collections::Array::<u8>::open(a.name()).is_err()); // not an Array
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn open(name: &str) -> CellResult<Self> {
        Ok(Self {
            core: ArrayCore::open(name, Self::VARIANT)?,
        })
    }

    /// The segment's name.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<u8>::create(1)?;
    /// assert!(a.name().starts_with("psm_"));
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.core.obj.segment().display_name()
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(shm_collections::RawArray::<u64>::create(3)?.len(), 3);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.core.len
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// assert!(shm_collections::RawArray::<u8>::create(0)?.is_empty());
    /// assert!(!shm_collections::RawArray::<u8>::create(1)?.is_empty());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.core.len == 0
    }

    /// Element `index`.
    ///
    /// ```
    /// let a = shm_collections::RawArray::from_slice(&[1u8, 2])?;
    /// assert_eq!(a.get(1)?, 2);
    /// assert!(a.get(2).is_err());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn get(&self, index: usize) -> CellResult<T> {
        self.core.check_index(index)?;
        // SAFETY: index < len, checked above.
        Ok(unsafe { self.core.read(index) })
    }

    /// Sets element `index`.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<i64>::create(1)?;
    /// a.set(0, -3)?;
    /// assert_eq!(a.get(0)?, -3);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn set(&self, index: usize, value: T) -> CellResult<()> {
        self.core.check_index(index)?;
        // SAFETY: index < len, checked above.
        unsafe { self.core.write(index, value) };
        Ok(())
    }

    /// Copies elements `start..start + dst.len()` out.
    ///
    /// ```
    /// let a = shm_collections::RawArray::from_slice(&[1u8, 2, 3])?;
    /// let mut two = [0; 2];
    /// a.copy_to(0, &mut two)?;
    /// assert_eq!(two, [1, 2]);
    /// assert!(a.copy_to(2, &mut two).is_err());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn copy_to(&self, start: usize, dst: &mut [T]) -> CellResult<()> {
        self.core.check_range(start, dst.len())?;
        // SAFETY: range checked above.
        unsafe { self.core.copy_out(start, dst) };
        Ok(())
    }

    /// Copies `src` in at `start`.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<u8>::create(3)?;
    /// a.copy_from(1, &[8, 9])?;
    /// assert_eq!(a.to_vec(), [0, 8, 9]);
    /// assert!(a.copy_from(2, &[1, 1]).is_err());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn copy_from(&self, start: usize, src: &[T]) -> CellResult<()> {
        self.core.check_range(start, src.len())?;
        // SAFETY: range checked above.
        unsafe { self.core.copy_in(start, src) };
        Ok(())
    }

    /// All elements, copied out.
    ///
    /// ```
    /// assert_eq!(shm_collections::RawArray::from_slice(&[4u64, 5])?.to_vec(), [4, 5]);
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.core.to_vec()
    }
}
