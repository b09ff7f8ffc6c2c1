//! The named [`Barrier`].

use std::time::Duration;

use shm_core::{ObjectSpec, SegmentOptions};

use crate::Error;
use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::{BarrierWaitResult, RawBarrier};

const VERSION: u32 = 1;

/// A reusable barrier for `parties` processes or threads (Python's
/// `multiprocessing.Barrier`) in its own named segment.
///
/// Every round releases all parties; exactly one of them is the leader. A timed-out
/// waiter withdraws (the barrier stays usable) instead of breaking the barrier as
/// Python does.
///
/// ```
/// let b = shm_sync::Barrier::create(2)?;
/// let peer = shm_sync::Barrier::open(b.name().unwrap())?;
/// std::thread::scope(|s| {
///     let h = s.spawn(|| peer.wait().unwrap());
///     let mine = b.wait().unwrap();
///     assert!(mine.is_leader() != h.join().unwrap().is_leader());
/// });
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Barrier {
    shared: Shared<RawBarrier>,
}

sync_object!(
    Barrier, RawBarrier,
    make: "shm_sync::Barrier::create(2)", path: "shm_sync::Barrier",
    init: u32, spec: ObjectSpec::new(kinds::BARRIER, VERSION), payload: size_of::<RawBarrier>(),
    write: |o, parties| {
        if parties == 0 {
            return Err(shm_core::Error::InvalidSize {
                name: o.label(),
                len: 0,
                reason: "a barrier needs at least one party",
            }
            .into());
        }
        crate::inplace::raw_in::<RawBarrier>(o)?.init(parties);
        Ok(())
    }
);

impl Barrier {
    /// Creates a barrier for `parties` (at least 1) under a fresh random name.
    ///
    /// ```
    /// assert_eq!(shm_sync::Barrier::create(3)?.parties(), 3);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create(parties: u32) -> Result<Self, Error> {
        Self::create_with(&SegmentOptions::new(), parties)
    }

    /// Creates it under `name`.
    ///
    /// ```
    /// let name = format!("shm-doc-barrier-{}", std::process::id());
    /// assert_eq!(shm_sync::Barrier::create_named(&name, 2)?.name().unwrap(), name);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_named(name: &str, parties: u32) -> Result<Self, Error> {
        Self::create_with(&SegmentOptions::new().name(name), parties)
    }

    /// Creates it with chosen segment options; 0 parties is
    /// [`shm_core::Error::InvalidSize`].
    ///
    /// ```
    /// assert!(shm_sync::Barrier::create_with(&shm_core::SegmentOptions::new(), 0).is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with(options: &SegmentOptions, parties: u32) -> Result<Self, Error> {
        <Self as shm_core::SharedObject>::create_with(options, parties)
    }

    fn map(
        &self,
        r: Result<BarrierWaitResult, crate::RawError>,
        waited: Duration,
    ) -> Result<BarrierWaitResult, Error> {
        r.map_err(|e| Error::from_raw(e, self.shared.label(), waited))
    }

    /// Arrives and waits for the other parties. [`Error::Corrupted`] if another
    /// process scribbled over the barrier.
    ///
    /// ```
    /// assert!(shm_sync::Barrier::create(1)?.wait()?.is_leader());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, Error> {
        self.map(self.shared.raw().wait(), Duration::ZERO)
    }

    /// Arrives and waits at most `timeout`; on timeout the arrival is withdrawn and
    /// [`Error::Timeout`] returned.
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(2)?;
    /// assert!(b.wait_timeout(std::time::Duration::from_millis(1)).is_err());
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, Error> {
        self.map(self.shared.raw().wait_timeout(timeout), timeout)
    }

    /// Arrives only if that completes the round; [`Error::WouldBlock`] (without
    /// arriving) otherwise.
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

    /// Parties waiting in the current round.
    ///
    /// ```
    /// assert_eq!(shm_sync::Barrier::create(2)?.n_waiting(), 0);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.shared.raw().n_waiting()
    }
}
