//! Waits that release the GIL and wake every [`SLICE`] to run Python's signal handlers,
//! so that Ctrl-C (KeyboardInterrupt) interrupts a blocked `acquire()`, `wait()`, `get()`.
//!
//! ```
//! use std::time::Duration;
//! pyo3::Python::initialize();
//! pyo3::Python::attach(|py| {
//!     // An attempt that never succeeds: the wait ends at its deadline with `None`.
//!     let got = _shm::wait::wait_sliced(py, Some(Duration::from_millis(20)), |_| Ok::<_, pyo3::PyErr>(None::<()>));
//!     assert!(got.unwrap().is_none());
//! });
//! ```

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long one GIL-released wait lasts before signals are checked.
///
/// ```
/// assert!(_shm::wait::SLICE <= std::time::Duration::from_millis(100)); // Ctrl-C feels instant
/// ```
pub const SLICE: Duration = Duration::from_millis(50);

/// Module-level helpers (none yet beyond the constants).
///
/// ```
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let m = pyo3::types::PyModule::new(py, "m").unwrap();
///     _shm::wait::register(&m).unwrap();
/// });
/// ```
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("_WAIT_SLICE_SECONDS", SLICE.as_secs_f64())?;
    Ok(())
}

/// Python's timeout argument as a deadline: `None` or a negative number is no deadline
/// (`threading.Lock.acquire(timeout=-1)`), a huge one too (no `Instant` overflow).
///
/// ```
/// use _shm::wait::deadline;
/// assert!(deadline(None).unwrap().is_none());
/// assert!(deadline(Some(-1.0)).unwrap().is_none());
/// assert!(deadline(Some(1e300)).unwrap().is_none());
/// assert!(deadline(Some(1.0)).unwrap().is_some());
/// ```
pub fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout: expected a number of seconds, found NaN",
        )),
        Some(t) => Ok(Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d))),
    }
}

/// Like [`deadline`] but for a `Duration` (tests and Rust callers).
fn deadline_of(d: Option<Duration>) -> Option<Instant> {
    d.and_then(|d| Instant::now().checked_add(d))
}

/// Runs `attempt(slice)` with the GIL released until it returns `Some`, the deadline
/// passes (`Ok(None)`) or a signal handler raises (its exception). `attempt` waits at most
/// the slice it is given (zero: try once without waiting).
pub fn wait_sliced<T, E>(
    py: Python<'_>,
    timeout: Option<Duration>,
    attempt: impl FnMut(Duration) -> Result<Option<T>, E> + Send,
) -> PyResult<Option<T>>
where
    T: Send,
    E: Into<PyErr> + Send,
{
    wait_until(py, deadline_of(timeout), attempt)
}

/// [`wait_sliced`] with an absolute deadline (`None`: none).
///
/// ```
/// use std::time::{Duration, Instant};
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let mut n = 0;
///     let got = _shm::wait::wait_until(py, Instant::now().checked_add(Duration::from_secs(30)), |_| {
///         n += 1;
///         Ok::<_, pyo3::PyErr>((n == 3).then_some(n))
///     });
///     assert_eq!(got.unwrap(), Some(3));
/// });
/// ```
pub fn wait_until<T, E>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Duration) -> Result<Option<T>, E> + Send,
) -> PyResult<Option<T>>
where
    T: Send,
    E: Into<PyErr> + Send,
{
    // The uncontended case first, without releasing the GIL (cheap, no syscall).
    if let Some(v) = attempt(Duration::ZERO).map_err(Into::into)? {
        return Ok(Some(v));
    }
    wait_released(py, deadline, attempt)
}

/// [`wait_until`] without its first attempt under the GIL, for callers that have just
/// made it (a queue's `get` tried `get_nowait`): every attempt runs with the GIL
/// released, so one that spins or sleeps never holds up this process's other threads.
///
/// ```
/// use std::time::{Duration, Instant};
/// pyo3::Python::initialize();
/// pyo3::Python::attach(|py| {
///     let got = _shm::wait::wait_released(py, Instant::now().checked_add(Duration::from_millis(10)), |_| {
///         Ok::<_, pyo3::PyErr>(None::<()>)
///     });
///     assert_eq!(got.unwrap(), None);
/// });
/// ```
pub fn wait_released<T, E>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Duration) -> Result<Option<T>, E> + Send,
) -> PyResult<Option<T>>
where
    T: Send,
    E: Into<PyErr> + Send,
{
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(SLICE)
            }
        };
        if let Some(v) = py.detach(|| attempt(slice)).map_err(Into::into)? {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
}
