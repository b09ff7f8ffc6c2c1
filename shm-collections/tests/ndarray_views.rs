//! The `ndarray` feature (module `nd`): views over an `Array`'s guard, copies and
//! unchecked views of a `RawArray`, typed shape errors. The cross-process fill is in
//! shm-process's `tests/ndarray.rs`.

use shm_collections::nd::ndarray::{self, ArrayViewD, Ix2, IxDyn, ShapeBuilder, array};
use shm_collections::nd::{GuardViews, ViewError};
use shm_collections::{Array, RawArray};

#[test]
fn guard_views_of_any_shape_see_the_shared_data() {
    let a = Array::from_slice(&(0..24).map(f64::from).collect::<Vec<_>>()).unwrap();
    let peer: Array<f64> = Array::open(a.name().unwrap()).unwrap();
    {
        let guard = peer.lock().unwrap();
        let m = guard.view((4, 6)).unwrap();
        assert_eq!(m.dim(), (4, 6));
        assert_eq!(m[[2, 3]], 15.0);
        let d: ArrayViewD<'_, f64> = guard.view(IxDyn(&[2, 3, 4])).unwrap();
        assert_eq!(d[[1, 2, 3]], 23.0);
        let f = guard.view::<Ix2, _>((4, 6).f()).unwrap();
        assert_eq!(f[[1, 0]], 1.0);
        assert_eq!(f[[0, 1]], 4.0);
    }
    {
        let mut guard = peer.lock().unwrap();
        let mut m = guard.view_mut([6, 4]).unwrap();
        m.column_mut(0).fill(-1.0);
        m[[5, 3]] = 100.0;
    }
    let got = a.to_vec().unwrap();
    assert_eq!(got[0], -1.0);
    assert_eq!(got[4], -1.0);
    assert_eq!(got[1], 1.0);
    assert_eq!(got[23], 100.0);
}

#[test]
fn shape_errors_are_typed_and_name_both_sides() {
    let a = Array::<u32>::create(10).unwrap();
    let mut guard = a.lock().unwrap();
    let err = guard.view((3, 4)).unwrap_err();
    match &err {
        ViewError::Shape {
            shape,
            elements,
            len,
            source,
            ..
        } => {
            assert_eq!(shape, &[3, 4]);
            assert_eq!(*elements, Some(12));
            assert_eq!(*len, 10);
            assert_eq!(source.kind(), ndarray::ErrorKind::OutOfBounds);
        }
        other => panic!("expected a shape error, found {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("10 elements") && msg.contains("[3, 4]"),
        "{msg}"
    );
    let err = guard.view_mut([usize::MAX, 3]).unwrap_err();
    assert!(
        matches!(err, ViewError::Shape { elements: None, .. }),
        "{err:?}"
    );
    // Fewer elements than held view the first ones, as numpy's `buffer=` does.
    guard[8] = 7;
    assert_eq!(guard.view((3, 3)).unwrap().sum(), 7);
}

#[test]
fn raw_array_copies_out_and_in() {
    let r = RawArray::from_slice(&[1i64, 2, 3, 4, 5, 6]).unwrap();
    let m = r.to_ndarray((3, 2)).unwrap();
    assert_eq!(m, array![[1, 2], [3, 4], [5, 6]]);
    let d = r.to_ndarray(vec![6]).unwrap();
    assert_eq!(d.ndim(), 1);
    let err = r.to_ndarray((4, 2)).unwrap_err();
    assert!(err.to_string().contains(r.name().unwrap()), "{err}");

    let src = array![[10i64, 20], [30, 40]];
    r.copy_from_ndarray(2, &src.t()).unwrap();
    assert_eq!(r.to_vec(), [1, 2, 10, 30, 20, 40]);
    r.copy_from_ndarray(0, &src.row(1)).unwrap();
    assert_eq!(r.to_vec(), [30, 40, 10, 30, 20, 40]);
    let err = r.copy_from_ndarray(3, &src).unwrap_err();
    assert!(
        matches!(
            err,
            ViewError::Range {
                start: 3,
                end: 7,
                len: 6,
                ..
            }
        ),
        "{err:?}"
    );
    let err = r.copy_from_ndarray(usize::MAX, &src).unwrap_err();
    assert!(matches!(err, ViewError::Range { .. }), "{err:?}");
}

#[test]
fn raw_array_unchecked_views_cover_their_range_only() {
    let r = RawArray::<f64>::create(8).unwrap();
    {
        // SAFETY: the two views cover disjoint ranges and nothing else touches `r`.
        let (mut lo, mut hi) = unsafe {
            (
                r.view_mut_unchecked(0..4, (2, 2)).unwrap(),
                r.view_mut_unchecked(4..8, [4]).unwrap(),
            )
        };
        lo.fill(1.0);
        hi.fill(2.0);
    }
    assert_eq!(r.to_vec(), [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
    // SAFETY: nothing writes `r` while the view lives.
    let v = unsafe { r.view_unchecked(2..6, (2, 2)) }.unwrap();
    assert_eq!(v, array![[1.0, 1.0], [2.0, 2.0]]);
    // SAFETY: the calls fail before any view exists.
    unsafe {
        let err = r.view_unchecked(4..9, [5]).unwrap_err();
        assert!(
            matches!(
                err,
                ViewError::Range {
                    start: 4,
                    end: 9,
                    len: 8,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(r.view_mut_unchecked(0..4, (3, 2)).is_err());
    }
}
