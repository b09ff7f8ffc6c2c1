//! The named [`Semaphore`] and [`BoundedSemaphore`].

use std::time::Duration;

use shm_core::ObjectSpec;

use crate::Error;
use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::RawSemaphore;

const VERSION: u32 = 1;

fn spec() -> ObjectSpec {
    ObjectSpec::new(kinds::SEMAPHORE, VERSION)
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`) in its
/// own named segment.
///
/// Permits have no owner: a process that dies holding permits does not return them.
///
/// ```
/// let sem = shm_sync::Semaphore::create(2)?;
/// sem.acquire();
/// sem.acquire();
/// assert!(sem.try_acquire().is_err());
/// sem.release()?;
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Semaphore {
    shared: Shared<RawSemaphore>,
}

sync_object!(
    Semaphore, RawSemaphore,
    make: "shm_sync::Semaphore::create(1)", path: "shm_sync::Semaphore",
    create(value: u32) => value, args: ", 1",
    init: u32, spec: spec(), payload: size_of::<RawSemaphore>(),
    write: |o, value| {
        crate::inplace::raw_in::<RawSemaphore>(o)?.init(value.min(crate::raw::MAX_PERMITS), 0);
        Ok(())
    }
);

/// A semaphore that refuses to be released above its initial value (Python's
/// `BoundedSemaphore`, whose over-release is a `ValueError`): [`Error::OverRelease`].
///
/// It is a [`Semaphore`] object with a bound: [`Semaphore::open`] opens it too, and
/// [`BoundedSemaphore::open`] refuses an unbounded one.
///
/// ```
/// let sem = shm_sync::BoundedSemaphore::create(1)?;
/// sem.acquire();
/// sem.release()?;
/// assert!(matches!(sem.release(), Err(shm_sync::Error::OverRelease { max: 1, .. })));
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct BoundedSemaphore {
    shared: Shared<RawSemaphore>,
}

sync_object!(
    BoundedSemaphore, RawSemaphore,
    make: "shm_sync::BoundedSemaphore::create(1)", path: "shm_sync::BoundedSemaphore",
    create(value: u32) => value, args: ", 1",
    init: u32, spec: spec(), payload: size_of::<RawSemaphore>(),
    write: |o, value| {
        if value == 0 || value > crate::raw::MAX_PERMITS {
            return Err(shm_core::Error::InvalidSize {
                name: o.label(),
                len: u64::from(value),
                reason: "a bounded semaphore needs a bound of 1 to i32::MAX permits",
            }
            .into());
        }
        crate::inplace::raw_in::<RawSemaphore>(o)?.init(value, value);
        Ok(())
    },
    check: |shared| match shared.raw().max() {
        Some(_) => Ok::<(), Error>(()),
        None => Err(shm_core::Error::WrongKind {
            name: shared.object().label(),
            expected: "BoundedSemaphore".into(),
            found: "Semaphore (unbounded)".into(),
        }
        .into()),
    }
);

macro_rules! semaphore_ops {
    ($ty:ident) => {
        impl $ty {
            /// Takes a permit, waiting as long as it takes.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.acquire();
            /// assert_eq!(sem.value(), 0);
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn acquire(&self) {
                self.shared.raw().acquire();
            }

            /// Takes a permit if one is free: [`Error::WouldBlock`] otherwise.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.try_acquire()?;
            /// assert!(sem.try_acquire().is_err());
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn try_acquire(&self) -> Result<(), Error> {
                self.shared
                    .raw()
                    .try_acquire()
                    .map_err(|e| Error::from_raw(e, self.shared.label(), Duration::ZERO))
            }

            /// Takes a permit, waiting at most `timeout`: [`Error::Timeout`] after that.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.acquire_timeout(std::time::Duration::from_millis(1))?;
            /// assert!(sem.acquire_timeout(std::time::Duration::from_millis(1)).is_err());
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), Error> {
                self.shared
                    .raw()
                    .acquire_timeout(timeout)
                    .map_err(|e| Error::from_raw(e, self.shared.label(), timeout))
            }

            /// Gives a permit back and wakes a waiter.
            ///
            /// ```
            #[doc = concat!("let sem = shm_sync::", stringify!($ty), "::create(1)?;")]
            /// sem.acquire();
            /// sem.release()?;
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn release(&self) -> Result<(), Error> {
                self.shared.raw().release().map_err(|e| match e {
                    crate::RawError::OverRelease => Error::OverRelease {
                        object: self.shared.label().clone(),
                        max: self.shared.raw().max().unwrap_or(0),
                    },
                    e => Error::from_raw(e, self.shared.label(), Duration::ZERO),
                })
            }

            /// Free permits now (a snapshot; Python's `get_value`).
            ///
            /// ```
            #[doc = concat!("assert_eq!(shm_sync::", stringify!($ty), "::create(3)?.value(), 3);")]
            /// # Ok::<(), shm_sync::Error>(())
            /// ```
            pub fn value(&self) -> u32 {
                self.shared.raw().value()
            }
        }
    };
}

semaphore_ops!(Semaphore);
semaphore_ops!(BoundedSemaphore);

impl Semaphore {
    /// The bound, for a semaphore created as a [`BoundedSemaphore`].
    ///
    /// ```
    /// assert_eq!(shm_sync::Semaphore::create(1)?.max(), None);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn max(&self) -> Option<u32> {
        self.shared.raw().max()
    }
}

impl BoundedSemaphore {
    /// The bound (the initial value).
    ///
    /// ```
    /// assert_eq!(shm_sync::BoundedSemaphore::create(3)?.max(), 3);
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn max(&self) -> u32 {
        self.shared.raw().max().unwrap_or(0)
    }
}
