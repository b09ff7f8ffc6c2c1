//! Every `unsafe` of shm-sync that touches memory: viewing bytes of a mapping as a raw
//! primitive (`from_ptr`), the named objects' payload, and the typed guards' access to
//! the data a lock protects.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use shm_core::Object;

use crate::atomic::AtomicU64;
use crate::raw::{RawCondvar, RawEvent, RawMutex, RawRLock};
use crate::{Error, RwLockReadGuard, RwLockWriteGuard};

/// Types that may be viewed in place in shared memory: `#[repr(C)]`, made only of
/// atomics (valid for every bit pattern and for concurrent access from any process),
/// no pointers.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs of atomic integers only.
pub(crate) unsafe trait InPlace: Sized {}

macro_rules! in_place {
    ($($ty:ident),*) => {$(
        // SAFETY: `#[repr(C)]` and made of `AtomicU32`/`AtomicU64` fields only (see the
        // type's definition and its size assertions).
        unsafe impl InPlace for $ty {}

        impl $ty {
            #[doc = concat!("Views the bytes at `ptr` as a `", stringify!($ty), "` living in shared memory.")]
            ///
            /// Bytes that are all zero are the primitive's initial state, so a freshly
            /// created (zeroed) segment needs no initialisation. Any other bit pattern,
            /// including garbage written by a faulty process, is memory-safe: it is
            /// recovered from or reported as an error, never undefined behaviour.
            ///
            /// # Safety
            /// - `ptr` is non-null and aligned to `align_of::<Self>()` (8 on every
            ///   supported target);
            /// - `ptr` is valid for reads and writes of `size_of::<Self>()` bytes for
            ///   all of `'a` (the mapping stays mapped that long);
            /// - for all of `'a`, every process and thread accesses those bytes only
            ///   through this type (atomically): never through `&mut`, plain reads or
            ///   writes, or `memcpy`.
            ///
            /// ```
            /// let seg = shm_core::Segment::create(4096)?;
            /// // SAFETY: the mapping is page aligned, 4096 bytes, lives as long as `seg`,
            /// // and nothing else touches these bytes.
            #[doc = concat!("let raw = unsafe { shm_sync::", stringify!($ty), "::from_ptr(seg.as_ptr()) };")]
            /// # let _ = raw;
            /// # Ok::<(), shm_core::Error>(())
            /// ```
            pub unsafe fn from_ptr<'a>(ptr: *const u8) -> &'a $ty {
                debug_assert!(ptr.cast::<$ty>().is_aligned(), "misaligned {}", stringify!($ty));
                // SAFETY: the caller guarantees alignment, validity for 'a and atomic-only
                // access; the type is all atomics, valid for any bit pattern.
                unsafe { &*ptr.cast::<$ty>() }
            }
        }
    )*};
}

// SAFETY: an atomic integer, valid for any bit pattern (a participant table's word).
unsafe impl InPlace for AtomicU64 {}
// SAFETY: `#[repr(C)]`: a `RawMutex` and `AtomicU32`s (see its definition).
unsafe impl InPlace for crate::raw::RwNamedHead {}
// SAFETY: `#[repr(C)]`, `AtomicU64`/`AtomicU32` fields only (see their definitions).
unsafe impl InPlace for crate::raw::SemNamedHead {}
// SAFETY: as above.
unsafe impl InPlace for crate::raw::SemSlot {}
// SAFETY: as above.
unsafe impl InPlace for crate::raw::BarrierNamedHead {}

in_place!(RawMutex, RawCondvar, RawEvent, RawRLock);

/// A named object: a checked [`Object`] whose payload starts with a raw primitive `R`,
/// optionally followed by plain data.
#[derive(Debug)]
pub(crate) struct Shared<R: InPlace> {
    object: Object,
    /// `Kind "name"`, for messages.
    label: Arc<str>,
    _raw: PhantomData<R>,
}

/// The primitive at the start of a payload being initialised (before publication).
pub(crate) fn raw_in<R: InPlace>(object: &Object) -> Result<&R, Error> {
    check_payload::<R>(object, size_of::<R>(), false)?;
    // SAFETY: the payload is 64-byte aligned and at least size_of::<R>() bytes (checked
    // above), mapped as long as `object`; all processes access it through `R` (atomics).
    Ok(unsafe { &*object.payload_ptr().cast::<R>() })
}

fn check_payload<R: InPlace>(
    object: &Object,
    payload_len: usize,
    exact: bool,
) -> Result<(), Error> {
    let need = payload_len.max(size_of::<R>());
    let found = object.payload_len();
    if found < need || (exact && found != need) {
        return Err(shm_core::Error::Truncated {
            name: object.label(),
            what: "payload length of the synchronisation object",
            expected: need as u64,
            found: found as u64,
        }
        .into());
    }
    Ok(())
}

impl<R: InPlace> Shared<R> {
    /// Wraps a checked object whose payload must be `payload_len` bytes (at least the
    /// primitive).
    pub(crate) fn attach(object: Object, payload_len: usize) -> Result<Self, Error> {
        check_payload::<R>(&object, payload_len, true)?;
        let kind = object
            .info()
            .map_or_else(|| "object".to_owned(), |i| i.kind_name);
        let label = format!("{kind} {:?}", object.label()).into();
        Ok(Shared {
            object,
            label,
            _raw: PhantomData,
        })
    }

    /// The primitive at the start of the payload.
    #[inline]
    pub(crate) fn raw(&self) -> &R {
        // SAFETY: `attach` checked `payload_len >= size_of::<R>()`; the payload is
        // 64-byte aligned and mapped while `self.object` lives; all processes access it
        // through `R` (atomics) only.
        unsafe { &*self.object.payload_ptr().cast::<R>() }
    }

    /// The `n` elements of type `E` at `offset` of the payload: a participant table.
    /// Panics unless they lie inside the payload, aligned (callers check the count
    /// read from the mapping before, so this never fires on hostile input).
    #[inline]
    pub(crate) fn table<E: InPlace>(&self, offset: usize, n: usize) -> &[E] {
        let end = n
            .checked_mul(size_of::<E>())
            .and_then(|l| l.checked_add(offset));
        assert!(
            end.is_some_and(|e| e <= self.object.payload_len()) && offset % align_of::<E>() == 0,
            "participant table outside the payload"
        );
        // SAFETY: `offset..offset + n * size_of::<E>()` lies inside the payload (checked
        // above), which is 64-byte aligned, so the elements are aligned; it is mapped
        // while `self.object` lives, and every process accesses it through `E`
        // (atomics only), valid for any bit pattern.
        unsafe { std::slice::from_raw_parts(self.object.payload_ptr().add(offset).cast::<E>(), n) }
    }

    /// Pointer to the payload at `offset` (for the protected data).
    #[inline]
    pub(crate) fn data_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.object.payload_len());
        self.object.payload_ptr().wrapping_add(offset)
    }

    pub(crate) fn label(&self) -> &Arc<str> {
        &self.label
    }

    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    pub(crate) fn object_mut(&mut self) -> &mut Object {
        &mut self.object
    }
}

impl<T: Pod> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: writers (who honour the lock) are excluded, so the
        // bytes do not change; placement and validity as for `MutexGuard`.
        unsafe { &*self.lock.data_ptr().cast::<T>() }
    }
}

impl<T: Pod> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held; placement and validity as for `MutexGuard`.
        unsafe { &*self.lock.data_ptr().cast::<T>() }
    }
}

impl<T: Pod> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock excludes every reader and writer.
        unsafe { &mut *self.lock.data_ptr().cast::<T>() }
    }
}
