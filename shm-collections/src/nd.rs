//! numpy-style views (feature `ndarray`): CPython's
//! `np.ndarray(shape, dtype, buffer=shm.buf)`, under this workspace's soundness rule.
//!
//! # The rule for memory other processes write
//!
//! A Rust reference (`&[T]`, `&mut [T]`, and so an `ArrayView`) promises that nobody
//! writes the memory while it lives. Over shared memory only a lock that every writer
//! honours can keep that promise, so:
//!
//! - An [`Array`](crate::Array)'s lock guard gives views of any shape ([`GuardViews::view`],
//!   [`GuardViews::view_mut`]). They borrow the guard: the lock is held as long as a
//!   view lives, and every process touches an `Array`'s data only under that lock.
//! - A [`RawArray`] has no lock, so its safe forms copy: [`RawArray::to_ndarray`] copies
//!   out (a racing copy: a concurrent writer yields mixed values, never undefined
//!   behaviour) and [`RawArray::copy_from_ndarray`] copies in.
//! - Workers that each write their own part of one big array in place (numpy's usual
//!   pattern, and what a lock would serialise) use [`RawArray::view_mut_unchecked`]: an
//!   `unsafe` door whose contract is that nothing else reads or writes that part while
//!   the view lives. No safe form can check that for other processes.
//!
//! ```
//! use shm_collections::Array;
//! use shm_collections::nd::GuardViews;
//! let a = Array::<f64>::create(6)?;
//! let mut guard = a.lock().unwrap();
//! guard.view_mut((2, 3))?.row_mut(1).fill(1.5);
//! assert_eq!(guard.view((3, 2))?[[2, 1]], 1.5);
//! assert!(guard.view((4, 2)).is_err()); // 8 elements asked, 6 held
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ops::Range;

use bytemuck::Pod;
use ndarray::{ArrayBase, ArrayView, ArrayViewMut, Data, Dimension, StrideShape};
use shm_sync::MutexGuard;

use crate::RawArray;

/// The `ndarray` crate this module is built with (its types appear in this API).
pub use ndarray;

/// A shape that does not fit the elements it is asked to view, or a range outside the
/// array.
///
/// ```
/// use shm_collections::nd::{GuardViews, ViewError};
/// let a = shm_collections::Array::<u8>::create(4)?;
/// let guard = a.lock().unwrap();
/// let err = guard.view((3, 2)).unwrap_err();
/// assert!(matches!(err, ViewError::Shape { len: 4, .. }));
/// assert!(err.to_string().contains("[3, 2]"));
/// # Ok::<(), shm_collections::CellError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// ndarray rejected the shape (and strides, if given) for `len` elements.
    #[error(
        "{what}: expected a shape that fits its {len} elements, found shape {shape:?} ({}): {source}",
        match .elements { Some(n) => format!("{n} elements"), None => "more elements than an address space holds".to_owned() }
    )]
    Shape {
        /// What was viewed (`the locked array`, `RawArray<f64> name`...).
        what: String,
        /// The shape asked for.
        shape: Vec<usize>,
        /// Its number of elements, `None` when the product overflows.
        elements: Option<usize>,
        /// The number of elements there are.
        len: usize,
        /// ndarray's reason.
        source: ndarray::ShapeError,
    },
    /// The range of elements asked for is not inside the array.
    #[error("{what}: expected a range of elements within 0..{len}, found {start}..{end}")]
    Range {
        /// What was viewed.
        what: String,
        /// The range's start.
        start: usize,
        /// The range's end.
        end: usize,
        /// The number of elements there are.
        len: usize,
    },
}

/// Builds the `Shape` error of a rejected shape.
fn shape_error<D: Dimension>(
    what: impl Into<String>,
    dim: &D,
    len: usize,
    source: ndarray::ShapeError,
) -> ViewError {
    let shape = dim.slice().to_vec();
    ViewError::Shape {
        what: what.into(),
        elements: shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d)),
        shape,
        len,
        source,
    }
}

/// Views of any shape over an [`Array`](crate::Array)'s lock guard (which derefs to `[T]`).
///
/// A shape is anything ndarray takes: `(rows, cols)`, `[a, b, c]`, `&[..]` or a
/// `Vec<usize>` for a dynamic shape (`IxDyn`), or a shape with strides (`.f()` for
/// column-major order). The view borrows the guard, so the lock stays held while it
/// lives.
///
/// ```
/// use shm_collections::nd::GuardViews;
/// let a = shm_collections::Array::from_slice(&[1u32, 2, 3, 4, 5, 6])?;
/// let guard = a.lock().unwrap();
/// let v = guard.view(vec![1, 2, 3])?; // ArrayViewD
/// assert_eq!(v[[0, 1, 2]], 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait GuardViews<T> {
    /// A shared view of the locked elements in `shape`.
    ///
    /// ```
    /// use shm_collections::nd::GuardViews;
    /// use shm_collections::nd::ndarray::ShapeBuilder;
    /// let a = shm_collections::Array::from_slice(&[1i64, 2, 3, 4])?;
    /// let guard = a.lock().unwrap();
    /// assert_eq!(guard.view((2, 2))?[[0, 1]], 2);
    /// assert_eq!(guard.view((2, 2).f())?[[0, 1]], 3); // column-major
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn view<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        shape: Sh,
    ) -> Result<ArrayView<'_, T, D>, ViewError>;

    /// A mutable view of the locked elements in `shape`.
    ///
    /// ```
    /// use shm_collections::nd::GuardViews;
    /// let a = shm_collections::Array::<f32>::create(4)?;
    /// a.lock().unwrap().view_mut([2, 2])?.column_mut(0).fill(1.0);
    /// assert_eq!(a.to_vec()?, [1.0, 0.0, 1.0, 0.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn view_mut<D: Dimension, Sh: Into<StrideShape<D>>>(
        &mut self,
        shape: Sh,
    ) -> Result<ArrayViewMut<'_, T, D>, ViewError>;
}

impl<T: Pod> GuardViews<T> for MutexGuard<'_, [T]> {
    fn view<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        shape: Sh,
    ) -> Result<ArrayView<'_, T, D>, ViewError> {
        let shape = shape.into();
        let dim = shape.raw_dim().clone();
        let len = self.len();
        ArrayView::from_shape(shape, self)
            .map_err(|e| shape_error("the locked array", &dim, len, e))
    }

    fn view_mut<D: Dimension, Sh: Into<StrideShape<D>>>(
        &mut self,
        shape: Sh,
    ) -> Result<ArrayViewMut<'_, T, D>, ViewError> {
        let shape = shape.into();
        let dim = shape.raw_dim().clone();
        let len = self.len();
        ArrayViewMut::from_shape(shape, self)
            .map_err(|e| shape_error("the locked array", &dim, len, e))
    }
}

impl<T: Pod> RawArray<T> {
    fn what(&self) -> String {
        self.object().label()
    }

    fn check_range(&self, range: &Range<usize>) -> Result<(), ViewError> {
        if range.start <= range.end && range.end <= self.len() {
            Ok(())
        } else {
            Err(ViewError::Range {
                what: self.what(),
                start: range.start,
                end: range.end,
                len: self.len(),
            })
        }
    }

    /// All elements copied out into an owned `ndarray::Array` of `shape`.
    ///
    /// A racing copy: elements another process writes meanwhile come out old or new,
    /// as with [`RawArray::to_vec`].
    ///
    /// ```
    /// let a = shm_collections::RawArray::from_slice(&[1u16, 2, 3, 4, 5, 6])?;
    /// let m = a.to_ndarray((2, 3))?;
    /// assert_eq!(m.row(1).to_vec(), [4, 5, 6]);
    /// assert!(a.to_ndarray((4, 2)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_ndarray<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        shape: Sh,
    ) -> Result<ndarray::Array<T, D>, ViewError> {
        let shape = shape.into();
        let dim = shape.raw_dim().clone();
        ndarray::Array::from_shape_vec(shape, self.to_vec())
            .map_err(|e| shape_error(self.what(), &dim, self.len(), e))
    }

    /// Copies the elements of `src`, in logical (row-major) order, into elements
    /// `start..start + src.len()`.
    ///
    /// ```
    /// use shm_collections::nd::ndarray::array;
    /// let a = shm_collections::RawArray::<i32>::create(5)?;
    /// let m = array![[1, 2], [3, 4]];
    /// a.copy_from_ndarray(1, &m.t())?; // the transpose, in its logical order
    /// assert_eq!(a.to_vec(), [0, 1, 3, 2, 4]);
    /// assert!(a.copy_from_ndarray(2, &m).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_from_ndarray<S: Data<Elem = T>, D: Dimension>(
        &self,
        start: usize,
        src: &ArrayBase<S, D>,
    ) -> Result<(), ViewError> {
        let end = start.saturating_add(src.len());
        self.check_range(&(start..end))?;
        let copied;
        let items = match src.as_slice() {
            Some(items) => items,
            None => {
                copied = src.iter().copied().collect::<Vec<T>>();
                &copied
            }
        };
        self.copy_from(start, items).map_err(|_| ViewError::Range {
            what: self.what(),
            start,
            end,
            len: self.len(),
        })
    }

    /// A mutable view, in `shape`, of elements `range`, without any lock: for workers
    /// that each fill their own part of one array in place.
    ///
    /// # Safety
    ///
    /// While the view lives, nothing else (no other thread, no other process, no other
    /// view or copy through this or another handle) reads or writes elements `range`:
    /// the view is a `&mut [T]` over them. Disjoint ranges may be viewed concurrently.
    ///
    /// ```
    /// let a = shm_collections::RawArray::<f64>::create(8)?;
    /// // SAFETY: this process is the only one that touches `a`.
    /// let mut half = unsafe { a.view_mut_unchecked(4..8, (2, 2))? };
    /// half.fill(2.0);
    /// drop(half);
    /// assert_eq!(a.to_vec(), [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::mut_from_ref)] // the contract makes the elements exclusively the view's
    pub unsafe fn view_mut_unchecked<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        range: Range<usize>,
        shape: Sh,
    ) -> Result<ArrayViewMut<'_, T, D>, ViewError> {
        self.check_range(&range)?;
        // SAFETY: range is within the `len` elements `attach` checked the mapping holds,
        // aligned for T and mapped as long as `self`; T: Pod is valid for any bytes; the
        // caller guarantees nothing else accesses these elements while the slice lives.
        let items = unsafe {
            std::slice::from_raw_parts_mut(self.data_ptr().add(range.start), range.len())
        };
        let shape = shape.into();
        let dim = shape.raw_dim().clone();
        ArrayViewMut::from_shape(shape, items)
            .map_err(|e| shape_error(self.what(), &dim, range.len(), e))
    }

    /// A shared view, in `shape`, of elements `range`, without any lock.
    ///
    /// # Safety
    ///
    /// While the view lives, nothing writes elements `range` (no other thread or
    /// process, no copy in through any handle): the view is a `&[T]` over them.
    ///
    /// ```
    /// let a = shm_collections::RawArray::from_slice(&[1u8, 2, 3, 4])?;
    /// // SAFETY: nothing writes `a` while the view lives.
    /// let v = unsafe { a.view_unchecked(0..4, (2, 2))? };
    /// assert_eq!(v[[1, 0]], 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn view_unchecked<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        range: Range<usize>,
        shape: Sh,
    ) -> Result<ArrayView<'_, T, D>, ViewError> {
        self.check_range(&range)?;
        // SAFETY: as in `view_mut_unchecked`; the caller guarantees no writer while the
        // slice lives.
        let items =
            unsafe { std::slice::from_raw_parts(self.data_ptr().add(range.start), range.len()) };
        let shape = shape.into();
        let dim = shape.raw_dim().clone();
        ArrayView::from_shape(shape, items)
            .map_err(|e| shape_error(self.what(), &dim, range.len(), e))
    }
}
