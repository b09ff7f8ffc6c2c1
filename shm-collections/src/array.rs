//! `Array<T>` (with a lock) and `RawArray<T>` (without): a fixed-length `[T]` in its
//! own named segment.

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;

use bytemuck::Pod;
use shm_core::{Layout, Object, SegmentOptions, SharedObject};
use shm_sync::{LockResult, MutexGuard, RawMutex, Wait};

use crate::cell::{
    CellError, CellResult, DATA_OFFSET, LEN_OFFSET, LOCK_OFFSET, check_align, convenience_error,
};
use crate::kinds;
use crate::value::{cell_label, cell_spec, stored_len};

/// The bytes of a slice of plain data (any `T: Pod`, zero-sized ones included).
fn as_bytes<T: Pod>(items: &[T]) -> &[u8] {
    // SAFETY: `items` is valid for `size_of_val(items)` bytes; a Pod has no padding and
    // u8 has no alignment or validity requirement.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast(), size_of_val(items)) }
}

/// The bytes of a mutable slice of plain data: any bytes written are a valid `T: Pod`.
fn as_bytes_mut<T: Pod>(items: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; the borrow is exclusive, and every byte pattern is a
    // valid T.
    unsafe { std::slice::from_raw_parts_mut(items.as_mut_ptr().cast(), size_of_val(items)) }
}

/// The validated shape of an array segment.
struct ArrayCore<T> {
    obj: Object,
    len: usize,
    label: Arc<str>,
    _t: PhantomData<T>,
}

impl<T: Pod> ArrayCore<T> {
    fn payload_len(len: usize, variant: &str) -> CellResult<usize> {
        check_align::<T>()?;
        len.checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(DATA_OFFSET))
            .filter(|b| *b <= isize::MAX as usize)
            .ok_or_else(|| {
                CellError::Shm(shm_core::Error::InvalidSize {
                    name: variant.into(),
                    len: len as u64,
                    reason: "too many elements for the address space",
                })
            })
    }

    /// Writes the length and the items (if any) into a payload nobody else sees yet.
    fn init(obj: &Object, len: usize, items: Option<&[T]>) -> CellResult<()> {
        obj.write_at(LEN_OFFSET, &(len as u64).to_ne_bytes())?;
        if let Some(items) = items {
            obj.write_at(DATA_OFFSET, as_bytes(items))?;
        }
        Ok(())
    }

    /// Creates an array holding a copy of `items` through the object layer.
    fn create_from(options: &SegmentOptions, variant: &str, items: &[T]) -> CellResult<Object> {
        let len = items.len();
        Object::create(
            options,
            &cell_spec::<T>(kinds::ARRAY, variant),
            Self::payload_len(len, variant)?,
            |o| Self::init(o, len, Some(items)),
        )
    }

    /// Checks an opened (or created) array: every length read from the mapping is
    /// untrusted, so the stored length must describe exactly the payload's size.
    fn attach(obj: Object, variant: &str) -> CellResult<Self> {
        check_align::<T>()?;
        let label = cell_label(variant, &obj);
        let payload = obj.payload_len();
        if payload < DATA_OFFSET {
            return Err(CellError::Corrupted {
                name: label.to_string(),
                what: format!(
                    "payload of {payload} bytes is shorter than the array's own header ({DATA_OFFSET} bytes)"
                ),
            });
        }
        // SAFETY: payload >= DATA_OFFSET, checked above.
        let stored = unsafe { stored_len(&obj) };
        let fits = usize::try_from(stored)
            .ok()
            .and_then(|n| Self::payload_len(n, variant).ok())
            .is_some_and(|bytes| bytes == payload);
        if !fits {
            let capacity = (payload - DATA_OFFSET)
                .checked_div(size_of::<T>())
                .map_or_else(|| "any number of".to_owned(), |n| n.to_string());
            return Err(CellError::Corrupted {
                name: label.to_string(),
                what: format!(
                    "stored length {stored} does not match the payload of {payload} bytes, which holds {capacity} elements of {} bytes",
                    size_of::<T>()
                ),
            });
        }
        Ok(Self {
            obj,
            len: stored as usize,
            label,
            _t: PhantomData,
        })
    }

    fn data(&self) -> *mut T {
        // `attach` checked that the payload holds DATA_OFFSET + len elements.
        self.obj.payload_ptr().wrapping_add(DATA_OFFSET).cast()
    }

    fn check_index(&self, index: usize) -> CellResult<()> {
        if index < self.len {
            Ok(())
        } else {
            Err(CellError::IndexOutOfRange {
                name: self.label.to_string(),
                index,
                len: self.len,
            })
        }
    }

    fn check_range(&self, start: usize, count: usize) -> CellResult<()> {
        match start.checked_add(count) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(CellError::RangeOutOfBounds {
                name: self.label.to_string(),
                start,
                count,
                len: self.len,
            }),
        }
    }

    /// Racing copy out of elements `start..start + dst.len()` (no lock held).
    ///
    /// # Safety
    /// `start + dst.len() <= len`.
    unsafe fn copy_out(&self, start: usize, dst: &mut [T]) {
        // SAFETY: in bounds by the caller (attach checked the payload holds `len`
        // elements); `dst` is local memory, not the mapping; another process may write
        // the source concurrently, which the racing copy tolerates.
        unsafe { shm_core::copy_from_shared(self.data().add(start).cast(), as_bytes_mut(dst)) }
    }

    /// Racing copy of `src` into elements `start..` (no lock held).
    ///
    /// # Safety
    /// `start + src.len() <= len`.
    unsafe fn copy_in(&self, start: usize, src: &[T]) {
        // SAFETY: in bounds by the caller; `src` cannot alias the mapping, as no safe
        // API of RawArray hands out references into it.
        unsafe { shm_core::copy_to_shared(as_bytes(src), self.data().add(start).cast()) }
    }
}

/// `SharedObject` (created with `len` zeroed elements), the inherent lifecycle methods
/// and the constructors of `Array` and `RawArray`.
macro_rules! array_object {
    ($ty:ident, $variant:literal, $make:literal, $path:literal) => {
        impl<T: Pod> SharedObject for $ty<T> {
            type Error = CellError;
            /// The number of (zeroed) elements.
            type Init = usize;

            fn layout() -> Layout {
                Layout::Header(cell_spec::<T>(kinds::ARRAY, $variant))
            }

            fn payload_len(len: &usize) -> CellResult<usize> {
                ArrayCore::<T>::payload_len(*len, $variant)
            }

            fn init_payload(object: &Object, len: usize) -> CellResult<()> {
                ArrayCore::<T>::init(object, len, None)
            }

            fn attach(object: Object) -> CellResult<Self> {
                Ok(Self {
                    core: ArrayCore::attach(object, $variant)?,
                })
            }

            fn object(&self) -> &Object {
                &self.core.obj
            }

            fn object_mut(&mut self) -> &mut Object {
                &mut self.core.obj
            }
        }

        shm_core::object_methods!(
            $ty<T: Pod>,
            CellError,
            $make,
            $path,
            create(len: usize) => len, args: ", 3"
        );

        impl<T: Pod> $ty<T> {
            /// Creates an array holding a copy of `items`, under a random name.
            ///
            /// ```
            #[doc = concat!("let a = shm_collections::", stringify!($ty), "::from_slice(&[1u32, 2, 3])?;")]
            /// assert_eq!(a.len(), 3);
            /// # Ok::<(), shm_collections::CellError>(())
            /// ```
            pub fn from_slice(items: &[T]) -> CellResult<Self> {
                Self::from_slice_with(&SegmentOptions::new(), items)
            }

            /// Creates an array holding a copy of `items`, with the given segment
            /// options.
            ///
            /// ```
            #[doc = concat!("let a = shm_collections::", stringify!($ty), "::from_slice_with(&shm_core::SegmentOptions::new(), &[1i8, -1])?;")]
            /// assert_eq!(a.get(1)?, -1);
            /// # Ok::<(), shm_collections::CellError>(())
            /// ```
            pub fn from_slice_with(options: &SegmentOptions, items: &[T]) -> CellResult<Self> {
                let obj = ArrayCore::<T>::create_from(options, $variant, items)?;
                <Self as SharedObject>::attach(obj)
            }

            /// Number of elements (fixed at creation).
            ///
            /// ```
            #[doc = concat!("assert_eq!(shm_collections::", stringify!($ty), "::<u16>::create(5)?.len(), 5);")]
            /// # Ok::<(), shm_collections::CellError>(())
            /// ```
            pub fn len(&self) -> usize {
                self.core.len
            }

            /// Whether the array has no elements.
            ///
            /// ```
            #[doc = concat!("assert!(shm_collections::", stringify!($ty), "::<u8>::create(0)?.is_empty());")]
            #[doc = concat!("assert!(!shm_collections::", stringify!($ty), "::<u8>::create(1)?.is_empty());")]
            /// # Ok::<(), shm_collections::CellError>(())
            /// ```
            pub fn is_empty(&self) -> bool {
                self.core.len == 0
            }
        }
    };
}

/// A fixed-length `[T]` in shared memory guarded by a process-shared, robust lock:
/// CPython's `multiprocessing.Array(typecode, size)` (with its default `lock=True`).
///
/// Element access (`get`, `set`) and bulk copies (`copy_from`, `copy_to`, `to_vec`)
/// take the lock once per call; [`lock`](Self::lock) hands out a guard that derefs to
/// `&mut [T]` for as long as it is held. A process that dies holding the lock is
/// reported to the next locker ([`shm_sync::LockError::OwnerDied`]); until the guard is marked
/// consistent the convenience methods return [`CellError::Inconsistent`].
///
/// ```
/// use shm_collections::Array;
/// let a = Array::from_slice(&[1u32, 2, 3, 4])?;
/// let peer: Array<u32> = Array::open(a.name().unwrap())?; // another process, by name
/// peer.set(0, 10)?;
/// peer.lock().unwrap()[1..].iter_mut().for_each(|x| *x *= 2);
/// assert_eq!(a.to_vec()?, [10, 4, 6, 8]);
/// assert!(a.get(4).is_err());
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub struct Array<T: Pod> {
    core: ArrayCore<T>,
}

array_object!(
    Array,
    "Array",
    "shm_collections::Array::<u32>::create(4)",
    "shm_collections::Array::<u32>"
);

impl<T: Pod> Array<T> {
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
    fn lock_with(&self, wait: Wait) -> LockResult<MutexGuard<'_, [T]>> {
        let data = ptr::slice_from_raw_parts_mut(self.core.data(), self.core.len);
        // SAFETY: `attach` checked that the payload holds `len` elements at DATA_OFFSET,
        // aligned for T (64-byte aligned payload, align_of::<T>() <= 64), mapped as long
        // as `self`; T: Pod is valid for any bytes; every process accesses an Array's
        // data only under its lock.
        unsafe { MutexGuard::lock_raw(self.raw_lock(), data, wait, &self.core.label) }
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
    pub fn lock(&self) -> LockResult<MutexGuard<'_, [T]>> {
        self.lock_with(Wait::Forever)
    }

    /// Takes the lock if that needs no waiting.
    ///
    /// ```
    /// let a = shm_collections::Array::<u64>::create(1)?;
    /// assert!(a.try_lock().is_ok());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, [T]>> {
        self.lock_with(Wait::Try)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// ```
    /// let a = shm_collections::Array::<u64>::create(1)?;
    /// assert!(a.lock_timeout(std::time::Duration::from_millis(5)).is_ok());
    /// # Ok::<(), shm_collections::CellError>(())
    /// ```
    pub fn lock_timeout(&self, timeout: std::time::Duration) -> LockResult<MutexGuard<'_, [T]>> {
        self.lock_with(Wait::Timeout(timeout))
    }

    /// Runs `f` on the data under the lock (the convenience methods' one lock call).
    fn locked<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> CellResult<R> {
        let mut guard = self
            .lock()
            .map_err(|e| convenience_error(e, &self.core.label))?;
        Ok(f(&mut guard))
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
        self.locked(|data| data[index])
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
        self.locked(|data| data[index] = value)
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
        self.locked(|data| dst.copy_from_slice(&data[start..start + dst.len()]))
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
        self.locked(|data| data[start..start + src.len()].copy_from_slice(src))
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
        self.locked(|data| data.to_vec())
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
/// let peer: RawArray<f32> = RawArray::open(a.name().unwrap())?;
/// assert_eq!(peer.get(2)?, 3.0);
/// # Ok::<(), shm_collections::CellError>(())
/// ```
pub struct RawArray<T: Pod> {
    core: ArrayCore<T>,
}

array_object!(
    RawArray,
    "RawArray",
    "shm_collections::RawArray::<u32>::create(4)",
    "shm_collections::RawArray::<u32>"
);

impl<T: Pod> RawArray<T> {
    /// The first element's address in this mapping (for module `nd`'s unchecked views).
    #[cfg(feature = "ndarray")]
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.core.data()
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
        let mut out = [T::zeroed()];
        // SAFETY: index < len, checked above.
        unsafe { self.core.copy_out(index, &mut out) };
        Ok(out[0])
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
        unsafe { self.core.copy_in(index, &[value]) };
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
        let mut out = vec![T::zeroed(); self.core.len];
        // SAFETY: exactly `len` elements.
        unsafe { self.core.copy_out(0, &mut out) };
        out
    }
}
