//! The named [`Semaphore`] and [`BoundedSemaphore`].

use std::time::Duration;

use shm_core::{Object, ObjectSpec, SegmentOptions};

use crate::Error;
use crate::atomic::Ordering;
use crate::common::kinds;
use crate::inplace::{Shared, raw_in};
use crate::raw::{
    DEFAULT_SLOTS, Deadline, MAX_PERMITS, MAX_SLOTS, PermitAcquired, SemHead, SemNamedHead, SemSlot,
};

/// Layout version: 2 since the permit table (slot count after the semaphore words,
/// the table after it); 3 since changes are applied to the table lazily (the state
/// word's `APPLYING` bit), which version-2 code would not honour.
const VERSION: u32 = 3;

/// Where the permit table starts in the payload.
const TABLE: usize = size_of::<SemNamedHead>();

fn spec() -> ObjectSpec {
    ObjectSpec::new(kinds::SEMAPHORE, VERSION)
}

/// The handle both semaphore types wrap: the object and its checked slot count.
struct SemObject {
    shared: Shared<SemNamedHead>,
    slots: usize,
}

impl SemObject {
    fn payload(slots: usize) -> usize {
        TABLE + slots * size_of::<SemSlot>()
    }

    fn check_slots(name: impl FnOnce() -> String, slots: u32) -> Result<usize, Error> {
        if slots > MAX_SLOTS {
            return Err(shm_core::Error::InvalidSize {
                name: name(),
                len: u64::from(slots),
                reason: "a semaphore has 0 to 4096 permit slots",
            }
            .into());
        }
        Ok(slots as usize)
    }

    fn init(o: &Object, value: u32, max: u32, slots: u32) -> Result<(), Error> {
        let h = raw_in::<SemNamedHead>(o)?;
        h.slots.store(slots, Ordering::Relaxed);
        h.head.init(&[], value, max);
        Ok(())
    }

    fn attach(object: Object) -> Result<SemObject, Error> {
        // The slot count is untrusted: checked, then the payload length must match it.
        let slots = Self::check_slots(
            || object.label(),
            raw_in::<SemNamedHead>(&object)?
                .slots
                .load(Ordering::Relaxed),
        )?;
        let shared = Shared::<SemNamedHead>::attach(object, Self::payload(slots))?;
        Ok(SemObject { shared, slots })
    }

    fn create(
        options: &SegmentOptions,
        value: u32,
        max: u32,
        slots: u32,
    ) -> Result<SemObject, Error> {
        let n = Self::check_slots(|| "Semaphore (new)".into(), slots)?;
        let object = Object::create(options, &spec(), Self::payload(n), |o| {
            Self::init(o, value, max, slots)
        })?;
        Self::attach(object)
    }

    #[inline]
    fn head(&self) -> &SemHead {
        &self.shared.raw().head
    }

    #[inline]
    fn table(&self) -> &[SemSlot] {
        self.shared.table(TABLE, self.slots)
    }

    #[cold]
    fn err(&self, e: crate::RawError, waited: Duration) -> Error {
        match e {
            crate::RawError::OverRelease => Error::OverRelease {
                object: self.shared.label().clone(),
                max: self.head().max().unwrap_or(0),
            },
            e => Error::from_raw_slots(e, self.shared.label(), waited, self.slots as u32),
        }
    }
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`) in its
/// own named segment.
///
/// Permits belong to processes: a table of [`DEFAULT_SLOTS`](crate::DEFAULT_SLOTS)
/// slots (or as many as [`create_with_slots`](Self::create_with_slots) chose) records
/// how many each process holds, and those of a process that dies come back (noticed
/// within about 20 ms by a waiter, or by `try_acquire`); the next acquirer learns how
/// many ([`PermitAcquired::reclaimed`]). A release by a process that holds none (a
/// semaphore used as a signal) just adds a permit. For a semaphore that counts events
/// (acquirers consume permits, they do not hold them) create it with 0 slots: then
/// nothing is reclaimed.
///
/// ```
/// let sem = shm_sync::Semaphore::create(2)?;
/// sem.acquire()?;
/// sem.acquire()?;
/// assert!(sem.try_acquire().is_err());
/// sem.release()?;
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Semaphore {
    sem: SemObject,
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `BoundedSemaphore`, whose over-release is a `ValueError`): [`Error::OverRelease`].
/// Permits of dead processes come back as for [`Semaphore`], never above the bound.
///
/// It is a [`Semaphore`] object with a bound: [`Semaphore::open`] opens it too, and
/// [`BoundedSemaphore::open`] refuses an unbounded one.
///
/// ```
/// let sem = shm_sync::BoundedSemaphore::create(1)?;
/// sem.acquire()?;
/// sem.release()?;
/// assert!(matches!(sem.release(), Err(shm_sync::Error::OverRelease { max: 1, .. })));
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct BoundedSemaphore {
    sem: SemObject,
}

impl shm_core::SharedObject for Semaphore {
    type Error = Error;
    type Init = u32;

    fn layout() -> shm_core::Layout {
        shm_core::Layout::Header(spec())
    }

    fn payload_len(_: &u32) -> Result<usize, Error> {
        Ok(SemObject::payload(DEFAULT_SLOTS as usize))
    }

    fn init_payload(o: &Object, value: u32) -> Result<(), Error> {
        SemObject::init(o, value.min(MAX_PERMITS), 0, DEFAULT_SLOTS)
    }

    fn attach(object: Object) -> Result<Self, Error> {
        Ok(Semaphore {
            sem: SemObject::attach(object)?,
        })
    }

    fn object(&self) -> &Object {
        self.sem.shared.object()
    }

    fn object_mut(&mut self) -> &mut Object {
        self.sem.shared.object_mut()
    }
}

shm_core::object_methods!(
    Semaphore,
    Error,
    "shm_sync::Semaphore::create(1)",
    "shm_sync::Semaphore",
    create(value: u32) => value, args: ", 1"
);

fn check_bound(name: impl FnOnce() -> String, value: u32) -> Result<(), Error> {
    if value == 0 || value > MAX_PERMITS {
        return Err(shm_core::Error::InvalidSize {
            name: name(),
            len: u64::from(value),
            reason: "a bounded semaphore needs a bound of 1 to i32::MAX permits",
        }
        .into());
    }
    Ok(())
}

impl shm_core::SharedObject for BoundedSemaphore {
    type Error = Error;
    type Init = u32;

    fn layout() -> shm_core::Layout {
        shm_core::Layout::Header(spec())
    }

    fn payload_len(_: &u32) -> Result<usize, Error> {
        Ok(SemObject::payload(DEFAULT_SLOTS as usize))
    }

    fn init_payload(o: &Object, value: u32) -> Result<(), Error> {
        check_bound(|| o.label(), value)?;
        SemObject::init(o, value, value, DEFAULT_SLOTS)
    }

    fn attach(object: Object) -> Result<Self, Error> {
        let sem = SemObject::attach(object)?;
        if sem.head().max().is_none() {
            return Err(shm_core::Error::WrongKind {
                name: sem.shared.object().label(),
                expected: "BoundedSemaphore".into(),
                found: "Semaphore (unbounded)".into(),
            }
            .into());
        }
        Ok(BoundedSemaphore { sem })
    }

    fn object(&self) -> &Object {
        self.sem.shared.object()
    }

    fn object_mut(&mut self) -> &mut Object {
        self.sem.shared.object_mut()
    }
}

shm_core::object_methods!(
    BoundedSemaphore,
    Error,
    "shm_sync::BoundedSemaphore::create(1)",
    "shm_sync::BoundedSemaphore",
    create(value: u32) => value, args: ", 1"
);

macro_rules! semaphore_ops {
    ($ty:ident) => {
        impl $ty {
            /// Takes a permit, waiting as long as it takes; the result tells how many
            /// permits of dead processes came back since the last acquirer was told.
            /// [`Error::TooManyParticipants`] when every slot names a live process
            /// holding permits.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// assert_eq!(sem.acquire()?.reclaimed(), 0);
            /// assert_eq!(sem.value(), 0);
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            #[inline]
            pub fn acquire(&self) -> Result<PermitAcquired, Error> {
                let s = &self.sem;
                s.head()
                    .acquire_mode(s.table(), Deadline::Forever)
                    .map_err(|e| s.err(e, Duration::ZERO))
            }

            /// Takes a permit if one is free (after giving back dead processes'
            /// permits): [`Error::WouldBlock`] otherwise.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.try_acquire()?;
            /// assert!(sem.try_acquire().is_err());
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            #[inline]
            pub fn try_acquire(&self) -> Result<PermitAcquired, Error> {
                let s = &self.sem;
                s.head()
                    .acquire_mode(s.table(), Deadline::Try)
                    .map_err(|e| s.err(e, Duration::ZERO))
            }

            /// Takes a permit, waiting at most `timeout`: [`Error::Timeout`] after that.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.acquire_timeout(std::time::Duration::from_millis(1))?;
            /// assert!(sem.acquire_timeout(std::time::Duration::from_millis(1)).is_err());
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<PermitAcquired, Error> {
                let s = &self.sem;
                s.head()
                    .acquire_mode(s.table(), Deadline::timeout(timeout))
                    .map_err(|e| s.err(e, timeout))
            }

            /// Gives a permit back (one the calling process holds, if any) and wakes a
            /// waiter.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.acquire()?;
            /// sem.release()?;
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            #[inline]
            pub fn release(&self) -> Result<(), Error> {
                let s = &self.sem;
                s.head()
                    .release(s.table())
                    .map_err(|e| s.err(e, Duration::ZERO))
            }

            /// Free permits now (a snapshot; Python's `get_value`).
            ///
            /// ```
            #[doc = concat!("assert_eq!(shm_sync::", stringify!($ty), "::create(3)?.value(), 3);")]
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn value(&self) -> u32 {
                self.sem.head().value()
            }

            /// Permits the calling process holds (a snapshot).
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(2)?;")]
            /// sem.acquire()?;
            /// assert_eq!(sem.held_by_me(), 1);
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn held_by_me(&self) -> u32 {
                self.sem.head().held_by_me(self.sem.table())
            }

            /// Gives back the permits of dead processes now (waiters and `try_acquire`
            /// do it on their own); returns how many came back.
            ///
            /// ```
            #[doc = concat!("assert_eq!(shm_sync::", stringify!($ty), "::create(2)?.reclaim_dead(), 0);")]
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn reclaim_dead(&self) -> u32 {
                self.sem.head().reclaim_dead(self.sem.table())
            }

            /// Number of permit slots: the most processes holding permits at once (0:
            /// permits are not tracked).
            ///
            /// ```
            #[doc = concat!("assert_eq!(shm_sync::", stringify!($ty), "::create(1)?.slots(), shm_sync::DEFAULT_SLOTS);")]
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn slots(&self) -> u32 {
                self.sem.slots as u32
            }
        }
    };
}

semaphore_ops!(Semaphore);
semaphore_ops!(BoundedSemaphore);

impl Semaphore {
    /// Creates it with chosen segment options and `slots` permit slots (0 to
    /// [`MAX_SLOTS`](crate::MAX_SLOTS); 0: permits are not tracked nor reclaimed, for
    /// a semaphore that counts events).
    ///
    /// ```
    /// use shm_core::SegmentOptions;
    /// let events = shm_sync::Semaphore::create_with_slots(&SegmentOptions::new(), 0, 0)?;
    /// events.release()?;
    /// events.acquire()?;
    /// assert_eq!((events.slots(), events.held_by_me()), (0, 0));
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with_slots(
        options: &SegmentOptions,
        value: u32,
        slots: u32,
    ) -> Result<Self, Error> {
        Ok(Semaphore {
            sem: SemObject::create(options, value.min(MAX_PERMITS), 0, slots)?,
        })
    }

    /// The bound, for a semaphore created as a [`BoundedSemaphore`].
    ///
    /// ```
    /// assert_eq!(shm_sync::Semaphore::create(1)?.max(), None);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn max(&self) -> Option<u32> {
        self.sem.head().max()
    }
}

impl BoundedSemaphore {
    /// Creates it with chosen segment options and `slots` permit slots (0 to
    /// [`MAX_SLOTS`](crate::MAX_SLOTS); 0: permits are not tracked nor reclaimed).
    ///
    /// ```
    /// use shm_sync::{BoundedSemaphore, Error};
    /// let sem = BoundedSemaphore::create_with_slots(&shm_core::SegmentOptions::new(), 4, 8)?;
    /// assert_eq!((sem.max(), sem.slots()), (4, 8));
    /// assert!(BoundedSemaphore::create_with_slots(&shm_core::SegmentOptions::new(), 4, 5000).is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn create_with_slots(
        options: &SegmentOptions,
        value: u32,
        slots: u32,
    ) -> Result<Self, Error> {
        check_bound(|| "BoundedSemaphore (new)".into(), value)?;
        Ok(BoundedSemaphore {
            sem: SemObject::create(options, value, value, slots)?,
        })
    }

    /// The bound (the initial value).
    ///
    /// ```
    /// assert_eq!(shm_sync::BoundedSemaphore::create(3)?.max(), 3);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn max(&self) -> u32 {
        self.sem.head().max().unwrap_or(0)
    }
}
