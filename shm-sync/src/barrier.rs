//! The named [`Barrier`].

use std::time::Duration;

use shm_core::ObjectSpec;

use crate::Error;
use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::{BarrierWaitResult, RawBarrier};

/// Layout version: 2 since the state word carries the broken flag and round history.
const VERSION: u32 = 2;

/// A reusable barrier for `parties` processes or threads (Python's
/// `multiprocessing.Barrier`) in its own named segment.
///
/// Every round releases all parties; [`wait`](Self::wait) returns the party's index
/// in the round (`0..parties`, distinct per round, Python's return value of `wait()`)
/// and exactly one party, the last to arrive, is the leader.
///
/// As in Python, the barrier can be *broken*: by [`abort`](Self::abort), by
/// [`reset`](Self::reset) while parties wait, or by a [`wait_timeout`](Self::wait_timeout)
/// that runs out of time. Every party waiting then, and every later `wait`, gets
/// [`Error::BrokenBarrier`] (Python's `BrokenBarrierError`) until `reset`; the party
/// whose time ran out gets [`Error::Timeout`].
///
/// ```
/// let b = shm_sync::Barrier::create(2)?;
/// let peer = shm_sync::Barrier::open(b.name().unwrap())?;
/// std::thread::scope(|s| {
///     let h = s.spawn(|| peer.wait().unwrap());
///     let mine = b.wait().unwrap();
///     let theirs = h.join().unwrap();
///     assert!(mine.is_leader() != theirs.is_leader());
///     assert_eq!(mine.index() + theirs.index(), 1); // indices 0 and 1
/// });
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Barrier {
    shared: Shared<RawBarrier>,
}

sync_object!(
    Barrier, RawBarrier,
    make: "shm_sync::Barrier::create(2)", path: "shm_sync::Barrier",
    create(parties: u32) => parties, args: ", 2",
    init: u32, spec: ObjectSpec::new(kinds::BARRIER, VERSION), payload: size_of::<RawBarrier>(),
    write: |o, parties| {
        if parties == 0 || parties > RawBarrier::MAX_PARTIES {
            return Err(shm_core::Error::InvalidSize {
                name: o.label(),
                len: u64::from(parties),
                reason: "a barrier needs 1 to 8388607 parties",
            }
            .into());
        }
        crate::inplace::raw_in::<RawBarrier>(o)?.init(parties);
        Ok(())
    }
);

impl Barrier {
    fn map(
        &self,
        r: Result<BarrierWaitResult, crate::RawError>,
        waited: Duration,
    ) -> Result<BarrierWaitResult, Error> {
        r.map_err(|e| Error::from_raw(e, self.shared.label(), waited))
    }

    /// Arrives and waits for the other parties (Python's `wait()`); the result's
    /// [`index`](BarrierWaitResult::index) is this party's place in the round.
    /// [`Error::BrokenBarrier`] if the barrier is broken or breaks while waiting;
    /// [`Error::Corrupted`] if another process scribbled over the barrier.
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(1)?;
    /// let r = b.wait()?;
    /// assert!(r.is_leader() && r.index() == 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, Error> {
        self.map(self.shared.raw().wait(), Duration::ZERO)
    }

    /// Arrives and waits at most `timeout` (Python's `wait(timeout)`). Running out of
    /// time breaks the barrier for everybody: this party gets [`Error::Timeout`], the
    /// others (and later waits) [`Error::BrokenBarrier`], until [`reset`](Self::reset).
    ///
    /// ```
    /// use shm_sync::Error;
    /// let b = shm_sync::Barrier::create(2)?;
    /// let err = b.wait_timeout(std::time::Duration::from_millis(1)).unwrap_err();
    /// assert!(matches!(err, Error::Timeout { .. }));
    /// assert!(b.broken());
    /// assert!(matches!(b.wait(), Err(Error::BrokenBarrier { .. })));
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, Error> {
        self.map(self.shared.raw().wait_timeout(timeout), timeout)
    }

    /// Arrives only if that completes the round; [`Error::WouldBlock`] (without
    /// arriving or breaking the barrier) otherwise.
    ///
    /// ```
    /// assert!(shm_sync::Barrier::create(2)?.try_wait().is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_wait(&self) -> Result<BarrierWaitResult, Error> {
        self.map(self.shared.raw().try_wait(), Duration::ZERO)
    }

    /// Number of parties.
    ///
    /// ```
    /// assert_eq!(shm_sync::Barrier::create(2)?.parties(), 2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.shared.raw().parties()
    }

    /// Parties waiting in the current round (Python's `n_waiting`); 0 while broken.
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(2)?;
    /// std::thread::scope(|s| {
    ///     let h = s.spawn(|| b.wait());
    ///     while b.n_waiting() == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     assert_eq!(b.n_waiting(), 1);
    ///     b.wait().unwrap();
    ///     h.join().unwrap().unwrap();
    /// });
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.shared.raw().n_waiting()
    }

    /// Whether the barrier is broken (Python's `broken`): aborted, or a party timed out,
    /// and not [`reset`](Self::reset) since.
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(2)?;
    /// assert!(!b.broken());
    /// b.abort();
    /// assert!(b.broken());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn broken(&self) -> bool {
        self.shared.raw().broken()
    }

    /// Breaks the barrier (Python's `abort`): parties waiting now, in any process, and
    /// every later `wait` get [`Error::BrokenBarrier`] until [`reset`](Self::reset).
    ///
    /// ```
    /// use shm_sync::Error;
    /// let b = shm_sync::Barrier::create(2)?;
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| b.wait());
    ///     while b.n_waiting() == 0 && !waiter.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    ///     b.abort();
    ///     assert!(matches!(waiter.join().unwrap(), Err(Error::BrokenBarrier { .. })));
    /// });
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn abort(&self) {
        self.shared.raw().abort();
    }

    /// Returns the barrier to its initial, empty, unbroken state (Python's `reset`);
    /// parties waiting at that moment get [`Error::BrokenBarrier`].
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(1)?;
    /// b.abort();
    /// assert!(b.wait().is_err());
    /// b.reset();
    /// assert!(!b.broken());
    /// assert!(b.wait()?.is_leader());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn reset(&self) {
        self.shared.raw().reset();
    }
}
