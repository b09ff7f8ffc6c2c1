//! The named [`Barrier`].

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use shm_core::{Object, ObjectSpec, SegmentOptions};

use crate::Error;
use crate::atomic::{AtomicU64, Ordering};
use crate::common::kinds;
use crate::inplace::{Shared, raw_in};
use crate::raw::{
    BarrierCore, BarrierNamedHead, BarrierWaitResult, DEFAULT_SLOTS, Deadline, MAX_SLOTS,
    RawBarrier,
};

/// Layout version: 3 since the registration table (slot count after the barrier
/// words, the table after it); 2 added the broken flag and round history.
const VERSION: u32 = 3;

/// Where the registration table starts in the payload.
const TABLE: usize = size_of::<BarrierNamedHead>();

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
/// **A party that dies breaks it too.** A process registers in the barrier's table
/// ([`DEFAULT_SLOTS`](crate::DEFAULT_SLOTS) slots unless
/// [`create_with_slots`](Self::create_with_slots) chose otherwise) at its first `wait`
/// through a handle, and leaves when that handle drops. If a registered process dies
/// (`kill -9` at any moment, waiting or between rounds), the parties waiting notice
/// within about 20 ms and get [`Error::BrokenBarrier`]; `reset` forgets the dead.
/// Parties are processes: the threads of one process share its registration.
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
    shared: Shared<BarrierNamedHead>,
    /// Registration slots, read once from the mapping and checked against its length.
    slots: usize,
    /// Whether this handle registered the process (it leaves when dropped).
    registered: AtomicBool,
}

impl Drop for Barrier {
    fn drop(&mut self) {
        if *self.registered.get_mut() {
            self.core().leave(self.table());
        }
    }
}

impl shm_core::SharedObject for Barrier {
    type Error = Error;
    type Init = u32;

    fn layout() -> shm_core::Layout {
        shm_core::Layout::Header(ObjectSpec::new(kinds::BARRIER, VERSION))
    }

    fn payload_len(_: &u32) -> Result<usize, Error> {
        Ok(Self::payload(DEFAULT_SLOTS as usize))
    }

    fn init_payload(o: &Object, parties: u32) -> Result<(), Error> {
        Self::init(o, parties, DEFAULT_SLOTS)
    }

    fn attach(object: Object) -> Result<Self, Error> {
        // The slot count is untrusted: checked, then the payload length must match it.
        let slots = Self::check_slots(
            || object.label(),
            raw_in::<BarrierNamedHead>(&object)?
                .slots
                .load(Ordering::Relaxed),
        )?;
        let shared = Shared::<BarrierNamedHead>::attach(object, Self::payload(slots))?;
        Ok(Barrier {
            shared,
            slots,
            registered: AtomicBool::new(false),
        })
    }

    fn object(&self) -> &Object {
        self.shared.object()
    }

    fn object_mut(&mut self) -> &mut Object {
        self.shared.object_mut()
    }
}

shm_core::object_methods!(
    Barrier,
    Error,
    "shm_sync::Barrier::create(2)",
    "shm_sync::Barrier",
    create(parties: u32) => parties, args: ", 2"
);

impl Barrier {
    fn payload(slots: usize) -> usize {
        TABLE + 8 * slots
    }

    fn check_slots(name: impl FnOnce() -> String, slots: u32) -> Result<usize, Error> {
        if slots > MAX_SLOTS {
            return Err(shm_core::Error::InvalidSize {
                name: name(),
                len: u64::from(slots),
                reason: "a barrier has 0 to 4096 registration slots",
            }
            .into());
        }
        Ok(slots as usize)
    }

    fn init(o: &Object, parties: u32, slots: u32) -> Result<(), Error> {
        if parties == 0 || parties > RawBarrier::MAX_PARTIES {
            return Err(shm_core::Error::InvalidSize {
                name: o.label(),
                len: u64::from(parties),
                reason: "a barrier needs 1 to 8388607 parties",
            }
            .into());
        }
        let h = raw_in::<BarrierNamedHead>(o)?;
        h.slots.store(slots, Ordering::Relaxed);
        h.core.init(parties);
        Ok(())
    }

    #[inline]
    fn core(&self) -> &BarrierCore {
        &self.shared.raw().core
    }

    #[inline]
    fn table(&self) -> &[AtomicU64] {
        self.shared.table(TABLE, self.slots)
    }

    /// Creates it with chosen segment options and `slots` registration slots (0 to
    /// [`MAX_SLOTS`](crate::MAX_SLOTS): the most processes that wait on it; 0: dead
    /// parties are not noticed).
    ///
    /// ```
    /// use shm_core::SegmentOptions;
    /// let b = shm_sync::Barrier::create_with_slots(&SegmentOptions::new(), 1, 4)?;
    /// b.wait()?;
    /// assert_eq!((b.slots(), b.registered()), (4, 1));
    /// assert!(shm_sync::Barrier::create_with_slots(&SegmentOptions::new(), 1, 5000).is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with_slots(
        options: &SegmentOptions,
        parties: u32,
        slots: u32,
    ) -> Result<Self, Error> {
        Self::check_slots(|| "Barrier (new)".into(), slots)?;
        let object = Object::create(
            options,
            &ObjectSpec::new(kinds::BARRIER, VERSION),
            Self::payload(slots as usize),
            |o| Self::init(o, parties, slots),
        )?;
        <Self as shm_core::SharedObject>::attach(object)
    }

    /// Number of registration slots.
    ///
    /// ```
    /// assert_eq!(shm_sync::Barrier::create(2)?.slots(), shm_sync::DEFAULT_SLOTS);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn slots(&self) -> u32 {
        self.slots as u32
    }

    /// Number of registered processes (a snapshot).
    ///
    /// ```
    /// let b = shm_sync::Barrier::create(1)?;
    /// assert_eq!(b.registered(), 0);
    /// b.wait()?;
    /// assert_eq!(b.registered(), 1);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn registered(&self) -> u32 {
        BarrierCore::registered(self.table())
    }

    fn wait_mode(&self, mode: Deadline, waited: Duration) -> Result<BarrierWaitResult, Error> {
        if !self.registered.load(std::sync::atomic::Ordering::Relaxed) {
            self.registered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.map(self.core().wait_mode(self.table(), mode), waited)
    }

    fn map(
        &self,
        r: Result<BarrierWaitResult, crate::RawError>,
        waited: Duration,
    ) -> Result<BarrierWaitResult, Error> {
        r.map_err(|e| Error::from_raw_slots(e, self.shared.label(), waited, self.slots()))
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
        self.wait_mode(Deadline::Forever, Duration::ZERO)
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
        self.wait_mode(Deadline::timeout(timeout), timeout)
    }

    /// Arrives only if that completes the round; [`Error::WouldBlock`] (without
    /// arriving or breaking the barrier) otherwise.
    ///
    /// ```
    /// assert!(shm_sync::Barrier::create(2)?.try_wait().is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_wait(&self) -> Result<BarrierWaitResult, Error> {
        self.wait_mode(Deadline::Try, Duration::ZERO)
    }

    /// Number of parties.
    ///
    /// ```
    /// assert_eq!(shm_sync::Barrier::create(2)?.parties(), 2);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.core().parties()
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
        self.core().n_waiting()
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
        self.core().broken()
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
        self.core().abort();
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
        self.core().reset(self.table());
    }
}
