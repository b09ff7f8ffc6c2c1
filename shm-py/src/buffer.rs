//! The buffer protocol under abi3-py39: a tiny type `shm._shm._Mapping`, made with
//! `PyType_FromSpec` and a `bf_getbuffer` slot, whose instances hold an `Arc` of a
//! mapping. A `memoryview` (or a numpy array) over one keeps the instance, and so the
//! mapping, alive for as long as any view exists: `SharedMemory.close()` never
//! invalidates a view, and nothing is unmapped under a view.
//!
//! PyO3 offers `__getbuffer__` only from abi3-py311 on (when the buffer slots entered the
//! limited API), but `PyType_FromSpec` has accepted them since Python 3.0 and the
//! `Py_buffer` struct has not changed since 3.3, so this is sound on 3.9+.
//!
//! ```
//! use std::sync::Arc;
//! use pyo3::prelude::*;
//! pyo3::Python::initialize();
//! Python::attach(|py| {
//!     let bytes: Arc<Vec<u8>> = Arc::new(vec![1, 2, 3]);
//!     let ptr = bytes.as_ptr() as *mut u8;
//!     // SAFETY: `bytes` (kept alive by the view) holds 3 bytes at `ptr`; read-only.
//!     let view = unsafe { _shm::buffer::memoryview(py, bytes.clone(), ptr, 3, _shm::buffer::Format::BYTES, true) }.unwrap();
//!     assert_eq!(view.len().unwrap(), 3);
//! });
//! ```

use std::any::Any;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The element format of a buffer: a `struct` code and its item size.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// The `struct` module's code, NUL-terminated (`c"B"`, `c"i"`, `c"d"`, ...).
    pub code: &'static CStr,
    /// Bytes per item.
    pub itemsize: usize,
}

impl Format {
    /// Unsigned bytes (`memoryview`'s default).
    pub const BYTES: Format = Format {
        code: c"B",
        itemsize: 1,
    };
}

/// `Py_buffer` as in CPython 3.3-3.13 (`Include/pybuffer.h`).
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: isize,
    itemsize: isize,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut isize,
    strides: *mut isize,
    suboffsets: *mut isize,
    internal: *mut c_void,
}

const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_FORMAT: c_int = 0x0004;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;

/// What an exporter holds: the owner of the mapping and the exported region. Boxed, so
/// that `shape`/`stride` have a stable address for `Py_buffer.shape`/`strides`.
struct Keep {
    _owner: Arc<dyn Any + Send + Sync>,
    ptr: *mut u8,
    len: usize,
    format: Format,
    readonly: bool,
    shape: isize,
    stride: isize,
}

/// The instance layout: a `PyObject` header, then the boxed [`Keep`] (null if the type
/// was instantiated from Python, which exports nothing).
#[repr(C)]
struct Exporter {
    ob_base: ffi::PyObject,
    keep: *mut Keep,
}

unsafe extern "C" fn getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls this slot with an instance of our type (layout `Exporter`).
    let keep = unsafe { (*obj.cast::<Exporter>()).keep };
    let fail = |msg: &CStr| {
        // SAFETY: called with the GIL held (a slot); the exception type is a static.
        unsafe { ffi::PyErr_SetString(ffi::PyExc_BufferError, msg.as_ptr()) };
        -1
    };
    if view.is_null() {
        return fail(c"shm: a buffer request without a Py_buffer");
    }
    if keep.is_null() {
        return fail(c"shm: this _Mapping maps nothing (made from Python)");
    }
    // SAFETY: `keep` is the live box made in `memoryview` (freed only in `dealloc`).
    let k = unsafe { &mut *keep };
    if flags & PYBUF_WRITABLE != 0 && k.readonly {
        return fail(c"shm: the buffer is read-only");
    }
    // SAFETY: `view` is a valid, writable Py_buffer (the caller's); `obj` gets a new
    // reference that the consumer's PyBuffer_Release drops; shape/stride live in the box,
    // which lives as long as `obj`.
    unsafe {
        ffi::Py_INCREF(obj);
        *view = RawBuffer {
            buf: k.ptr.cast(),
            obj,
            len: k.len as isize,
            itemsize: k.format.itemsize as isize,
            readonly: c_int::from(k.readonly),
            ndim: 1,
            format: if flags & PYBUF_FORMAT != 0 {
                k.format.code.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            },
            shape: if flags & PYBUF_ND == PYBUF_ND {
                &mut k.shape
            } else {
                std::ptr::null_mut()
            },
            strides: if flags & PYBUF_STRIDES == PYBUF_STRIDES {
                &mut k.stride
            } else {
                std::ptr::null_mut()
            },
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        };
    }
    0
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is an instance of our heap type, being destroyed (refcount 0, GIL
    // held): its box is dropped once, then the memory goes back through the type's
    // tp_free, and the reference every heap-type instance holds on its type is dropped.
    unsafe {
        let keep = (*obj.cast::<Exporter>()).keep;
        if !keep.is_null() {
            drop(Box::from_raw(keep));
        }
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj.cast());
        ffi::Py_DECREF(tp.cast());
    }
}

static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn exporter_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TYPE.get_or_try_init(py, || {
        let mut slots = [
            ffi::PyType_Slot {
                slot: ffi::Py_bf_getbuffer,
                pfunc: getbuffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_dealloc,
                pfunc: dealloc as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: 0,
                pfunc: std::ptr::null_mut(),
            },
        ];
        let mut spec = ffi::PyType_Spec {
            name: c"shm._shm._Mapping".as_ptr(),
            basicsize: size_of::<Exporter>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: a valid spec; CPython copies the slots (and keeps the static name).
        let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
        // SAFETY: a new reference or null with an exception set.
        let tp = unsafe { Bound::from_owned_ptr_or_err(py, tp) }?;
        Ok(tp.cast_into::<PyType>()?.unbind())
    })
    .map(|t| t.bind(py))
}

/// A `memoryview` of `len` bytes at `ptr` (items of `format`), which keeps `owner`
/// alive as long as it, or any slice or consumer of it, exists.
///
/// # Safety
/// `ptr..ptr+len` is mapped (and, unless `readonly`, writable) for as long as `owner`
/// lives; `len` is a multiple of `format.itemsize`.
pub unsafe fn memoryview<'py>(
    py: Python<'py>,
    owner: Arc<dyn Any + Send + Sync>,
    ptr: *mut u8,
    len: usize,
    format: Format,
    readonly: bool,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the caller's guarantees are `exporter`'s.
    let exporter = unsafe { exporter(py, owner, ptr, len, format, readonly) }?;
    // SAFETY: `exporter` is a live object; a new reference or null with an exception.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(exporter.as_ptr())) }
}

/// The exporter object itself (numpy and `memoryview` accept it as a buffer).
///
/// # Safety
/// As for [`memoryview`].
pub(crate) unsafe fn exporter<'py>(
    py: Python<'py>,
    owner: Arc<dyn Any + Send + Sync>,
    ptr: *mut u8,
    len: usize,
    format: Format,
    readonly: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let tp = exporter_type(py)?;
    let items = len.checked_div(format.itemsize).unwrap_or(0);
    let keep = Box::new(Keep {
        _owner: owner,
        ptr,
        len,
        format,
        readonly,
        shape: items as isize,
        stride: format.itemsize as isize,
    });
    // SAFETY: tp_alloc of our type returns a zeroed instance (refcount 1, type
    // referenced) or null with an exception; we then own the box pointer in it.
    unsafe {
        let alloc = ffi::PyType_GetSlot(tp.as_ptr().cast(), ffi::Py_tp_alloc);
        let alloc: ffi::allocfunc = std::mem::transmute(alloc);
        let obj = alloc(tp.as_ptr().cast(), 0);
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        (*obj.as_ptr().cast::<Exporter>()).keep = Box::into_raw(keep);
        Ok(obj)
    }
}
