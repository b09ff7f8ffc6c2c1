//! numpy-style views across real processes (feature `ndarray`): children fill an
//! `Array<f64>` through 2-D views of its guard, and their own halves of a `RawArray`
//! through unchecked views, as the porting material's numpy-over-`shm.buf` example.

use shm_collections::nd::GuardViews;
use shm_collections::{Array, RawArray};
use shm_process::{Process, Shared};

const ROWS: usize = 6;
const COLS: usize = 5;

/// Writes `row * 10 + col` into row `row` of the locked array seen as ROWS x COLS.
fn fills_row(args: (Shared<Array<f64>>, usize)) {
    let (array, row) = args;
    let mut guard = array.lock().unwrap();
    let mut m = guard.view_mut((ROWS, COLS)).unwrap();
    for (col, x) in m.row_mut(row).iter_mut().enumerate() {
        *x = (row * 10 + col) as f64;
    }
}

/// Fills elements `range` of the raw array (seen as a column) with `value`.
fn fills_half(args: (Shared<RawArray<f64>>, usize, usize, f64)) {
    let (array, start, end, value) = args;
    // SAFETY: each child gets its own range and the parent reads only after `join`.
    let mut v = unsafe { array.view_mut_unchecked(start..end, [end - start, 1]) }.unwrap();
    v.fill(value);
}

#[test]
fn children_fill_a_2d_view_of_an_array() {
    shm_process::main!(fills_row);
    let array = Array::<f64>::create(ROWS * COLS).unwrap();
    let mut children: Vec<Process> = (0..ROWS)
        .map(|row| Process::spawn(fills_row, (Shared::of(&array).unwrap(), row)).unwrap())
        .collect();
    for p in &mut children {
        assert_eq!(p.join().unwrap(), 0);
    }
    let guard = array.lock().unwrap();
    let m = guard.view((ROWS, COLS)).unwrap();
    for row in 0..ROWS {
        for col in 0..COLS {
            assert_eq!(m[[row, col]], (row * 10 + col) as f64);
        }
    }
    let t = guard.view(vec![COLS, ROWS]).unwrap();
    assert_eq!(t.shape(), [COLS, ROWS]);
}

#[test]
fn two_children_fill_their_halves_of_a_raw_array() {
    shm_process::main!(fills_half);
    let n = 100_000;
    let array = RawArray::<f64>::create(n).unwrap();
    let mut lo = Process::spawn(fills_half, (Shared::of(&array).unwrap(), 0, n / 2, 1.0)).unwrap();
    let mut hi = Process::spawn(fills_half, (Shared::of(&array).unwrap(), n / 2, n, 2.0)).unwrap();
    assert_eq!(lo.join().unwrap(), 0);
    assert_eq!(hi.join().unwrap(), 0);
    let m = array.to_ndarray((2, n / 2)).unwrap();
    assert!(m.row(0).iter().all(|x| *x == 1.0));
    assert!(m.row(1).iter().all(|x| *x == 2.0));
}
