//! The named [`Event`].

use std::time::Duration;

use shm_core::ObjectSpec;

use crate::Error;
use crate::common::{kinds, sync_object};
use crate::inplace::Shared;
use crate::raw::RawEvent;

const VERSION: u32 = 1;

/// A process-shared event (Python's `multiprocessing.Event`) in its own named segment:
/// `set` wakes every waiter in every process; the flag stays set until `clear`.
///
/// ```
/// let ev = shm_sync::Event::create()?;
/// let peer = shm_sync::Event::open(ev.name().unwrap())?;
/// std::thread::scope(|s| {
///     s.spawn(|| peer.wait());
///     ev.set();
/// });
/// assert!(peer.is_set());
/// # Ok::<(), shm_sync::Error>(())
/// ```
pub struct Event {
    shared: Shared<RawEvent>,
}

sync_object!(
    Event, RawEvent,
    make: "shm_sync::Event::create()", path: "shm_sync::Event",
    create() => (), args: "",
    init: (), spec: ObjectSpec::new(kinds::EVENT, VERSION), payload: size_of::<RawEvent>(),
    write: |o, v| Ok(())
);

impl Event {
    /// Sets the flag and wakes every waiter.
    ///
    /// ```
    /// let ev = shm_sync::Event::create()?;
    /// ev.set();
    /// assert!(ev.is_set());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn set(&self) {
        self.shared.raw().set();
    }

    /// Clears the flag.
    ///
    /// ```
    /// let ev = shm_sync::Event::create()?;
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn clear(&self) {
        self.shared.raw().clear();
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// assert!(!shm_sync::Event::create()?.is_set());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.shared.raw().is_set()
    }

    /// Waits until the flag is set.
    ///
    /// ```
    /// let ev = shm_sync::Event::create()?;
    /// ev.set();
    /// ev.wait();
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait(&self) {
        self.shared.raw().wait();
    }

    /// `Ok` if the flag is set, [`Error::WouldBlock`] otherwise.
    ///
    /// ```
    /// assert!(shm_sync::Event::create()?.try_wait().is_err());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn try_wait(&self) -> Result<(), Error> {
        self.shared
            .raw()
            .try_wait()
            .map_err(|e| Error::from_raw(e, self.shared.label(), Duration::ZERO))
    }

    /// Waits at most `timeout` for the flag: [`Error::Timeout`] if it stays unset
    /// (Python's `wait(timeout)` returning `False`).
    ///
    /// ```
    /// let ev = shm_sync::Event::create()?;
    /// assert!(ev.wait_timeout(std::time::Duration::from_millis(1)).is_err());
    /// ev.set();
    /// assert!(ev.wait_timeout(std::time::Duration::from_millis(1)).is_ok());
    /// # Ok::<(), shm_sync::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.shared
            .raw()
            .wait_timeout(timeout)
            .map_err(|e| Error::from_raw(e, self.shared.label(), timeout))
    }
}
