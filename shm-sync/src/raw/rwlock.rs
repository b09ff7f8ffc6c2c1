//! `RawRwLock`: writers serialise on a robust [`RawMutex`], then raise `WRITER` in the
//! reader-count word and wait for readers to drain.

use std::time::Duration;

use super::mutex::{ID_MASK, INCONSISTENT};
use super::{Acquired, FIRST_SLICE, Mode, RawMutex, SLICE, SPINS};
use crate::RawError;
use crate::atomic::{AtomicU32, Instant, Ordering};
use crate::sys;

/// A writer holds (or is draining readers for) the lock.
const WRITER: u32 = 1 << 31;
/// Readers sleep on the state word, waiting for `WRITER` to clear.
const READERS_WAITING: u32 = 1 << 30;
/// Number of readers holding the lock.
const COUNT: u32 = READERS_WAITING - 1;

/// A process-shared reader-writer lock: 24 bytes, `#[repr(C)]`, all-zero is unlocked.
///
/// Writers are robust like [`RawMutex`] (they hold one): a writer that dies is noticed
/// by waiting writers and waiting readers alike, and the next one in gets
/// [`Acquired::OwnerDied`]. Readers are counted, not named: a reader that dies holding
/// the lock keeps writers out until their timeout ([`RawError::Timeout`]); untimed
/// `write` waits for ever in that case.
///
/// Writers are preferred: once a writer waits, new readers wait too, so a thread must
/// not take the read lock twice (it could deadlock with a writer in between).
///
/// ```
/// let l = shm_sync::RawRwLock::new();
/// l.read().unwrap();
/// l.read().unwrap();                 // two readers (the same thread here, no writer waiting)
/// assert!(l.try_write().is_err());
/// l.read_unlock().unwrap();
/// l.read_unlock().unwrap();
/// l.write().unwrap();
/// l.write_unlock().unwrap();
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawRwLock {
    writer: RawMutex,
    state: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawRwLock>() == 24);
#[cfg(not(loom))]
const _: () = assert!(align_of::<RawRwLock>() == 8);

impl RawRwLock {
    crate::atomic::const_fn_unless_loom! {
        /// An unlocked lock.
        ///
        /// ```
        /// static L: shm_sync::RawRwLock = shm_sync::RawRwLock::new();
        /// L.write().unwrap();
        /// L.write_unlock().unwrap();
        /// ```
        pub const fn new() -> RawRwLock {
            RawRwLock {
                writer: RawMutex::new(),
                state: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
            }
        }
    }

    /// Takes a read lock, waiting as long as a live writer holds the lock.
    /// [`Acquired::OwnerDied`] when this reader found a dead writer and recovered the
    /// lock; [`Acquired::Inconsistent`] while no writer has marked it consistent since.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.read(), Ok(shm_sync::Acquired::Clean));
    /// l.read_unlock().unwrap();
    /// ```
    #[inline]
    pub fn read(&self) -> Result<Acquired, RawError> {
        self.read_mode(Mode::forever())
    }

    /// Takes a read lock if no writer holds or waits for it.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.write().unwrap();
    /// std::thread::scope(|s| { s.spawn(|| assert!(l.try_read().is_err())); });
    /// l.write_unlock().unwrap();
    /// ```
    pub fn try_read(&self) -> Result<Acquired, RawError> {
        self.read_mode(Mode::Try)
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read_timeout(std::time::Duration::from_millis(5)).unwrap();
    /// l.read_unlock().unwrap();
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.read_mode(Mode::timeout(timeout))
    }

    #[inline]
    pub(crate) fn read_mode(&self, mode: Mode) -> Result<Acquired, RawError> {
        let s = self.state.load(Ordering::Relaxed);
        // WRITER is above COUNT: this also says "no writer".
        if s & (WRITER | COUNT) < COUNT
            && self
                .state
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Ok(self.reader_state());
        }
        self.read_slow(mode)
    }

    fn reader_state(&self) -> Acquired {
        if self.writer.owner_word() & INCONSISTENT != 0 {
            Acquired::Inconsistent
        } else {
            Acquired::Clean
        }
    }

    #[cold]
    fn read_slow(&self, mode: Mode) -> Result<Acquired, RawError> {
        let mut spins = 0;
        let mut next_check = Instant::now() + FIRST_SLICE;
        let mut slice = FIRST_SLICE;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & WRITER == 0 {
                if s & COUNT == COUNT {
                    return Err(RawError::Overflow);
                }
                if self
                    .state
                    .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.reader_state());
                }
                continue;
            }
            if self.writer.owner_word() & ID_MASK == sys::me() {
                return Err(RawError::WouldDeadlock);
            }
            if spins < SPINS && mode != Mode::Try {
                spins += 1;
                crate::atomic::spin_loop();
                continue;
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                if let Some(r) = self.recover_as_reader()? {
                    return Ok(r);
                }
                return Err(mode.expired());
            };
            if s & READERS_WAITING == 0
                && self
                    .state
                    .compare_exchange(s, s | READERS_WAITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            sys::futex_wait(&self.state, s | READERS_WAITING, Some(sleep));
            let now = Instant::now();
            if now >= next_check {
                next_check = now + SLICE;
                slice = SLICE;
                if let Some(r) = self.recover_as_reader()? {
                    return Ok(r);
                }
            }
        }
    }

    /// A reader that has waited a slice for a writer: `try_lock` on the writers' mutex
    /// takes it over if the writer is dead (or free while `WRITER` is stale). Holding
    /// it, no live writer is inside, so the reader clears `WRITER`, counts itself in
    /// and lets the mutex go (an inconsistent mark stays for the next writer).
    fn recover_as_reader(&self) -> Result<Option<Acquired>, RawError> {
        let acquired = match self.writer.try_lock() {
            Ok(a) => a,
            Err(RawError::WouldBlock) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut s = self.state.load(Ordering::Relaxed);
        let result = loop {
            if s & COUNT == COUNT {
                break Err(RawError::Overflow);
            }
            let new = (s & !(WRITER | READERS_WAITING)) + 1;
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break Ok(Some(acquired)),
                Err(v) => s = v,
            }
        };
        let _ = self.writer.unlock();
        if s & READERS_WAITING != 0 {
            sys::futex_wake_all(&self.state);
        }
        result
    }

    /// Releases a read lock. [`RawError::NotOwner`] when no reader holds the lock.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.read_unlock(), Err(shm_sync::RawError::NotOwner));
    /// ```
    #[inline]
    pub fn read_unlock(&self) -> Result<(), RawError> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & COUNT == 0 {
                return Err(RawError::NotOwner);
            }
            match self
                .state
                .compare_exchange_weak(s, s - 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(v) => s = v,
            }
        }
        if s & COUNT == 1 && s & WRITER != 0 {
            // The last reader out lets the waiting writer in.
            sys::futex_wake_all(&self.state);
        }
        Ok(())
    }

    /// Takes the write lock, waiting as long as it takes (see the type's docs on dead
    /// readers). [`Acquired::OwnerDied`] when the previous writer died.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert_eq!(l.write(), Ok(shm_sync::Acquired::Clean));
    /// l.write_unlock().unwrap();
    /// ```
    pub fn write(&self) -> Result<Acquired, RawError> {
        self.write_mode(Mode::forever())
    }

    /// Takes the write lock if nobody holds the lock.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read().unwrap();
    /// assert!(l.try_write().is_err());
    /// l.read_unlock().unwrap();
    /// assert!(l.try_write().is_ok());
    /// l.write_unlock().unwrap();
    /// ```
    pub fn try_write(&self) -> Result<Acquired, RawError> {
        self.write_mode(Mode::Try)
    }

    /// Takes the write lock, waiting at most `timeout` in all (for the writers' mutex
    /// and for readers to drain).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read().unwrap();
    /// assert_eq!(l.write_timeout(std::time::Duration::from_millis(5)), Err(shm_sync::RawError::Timeout));
    /// l.read_unlock().unwrap();
    /// ```
    pub fn write_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.write_mode(Mode::timeout(timeout))
    }

    pub(crate) fn write_mode(&self, mode: Mode) -> Result<Acquired, RawError> {
        let acquired = self.writer.lock_mode(mode)?;
        // After a takeover from a dead writer WRITER may be set already: it is ours now.
        let mut s = self.state.fetch_or(WRITER, Ordering::Acquire) | WRITER;
        let mut slice = FIRST_SLICE;
        while s & COUNT != 0 {
            let Some(sleep) = mode.sleep_for(slice) else {
                self.release_writer();
                return Err(mode.expired());
            };
            sys::futex_wait(&self.state, s, Some(sleep));
            slice = SLICE;
            s = self.state.load(Ordering::Acquire);
        }
        Ok(acquired)
    }

    /// Releases the write lock. [`RawError::NotOwner`] unless the calling thread holds it.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// assert!(l.write_unlock().is_err());
    /// ```
    pub fn write_unlock(&self) -> Result<(), RawError> {
        if !self.writer.is_held_by_current_thread() {
            return Err(RawError::NotOwner);
        }
        self.release_writer();
        Ok(())
    }

    fn release_writer(&self) {
        let old = self
            .state
            .fetch_and(!(WRITER | READERS_WAITING), Ordering::Release);
        if old & READERS_WAITING != 0 {
            sys::futex_wake_all(&self.state);
        }
        let _ = self.writer.unlock();
    }

    /// Marks the lock consistent after [`Acquired::OwnerDied`]; only the writer may.
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.write().unwrap();
    /// l.mark_consistent().unwrap();
    /// l.write_unlock().unwrap();
    /// ```
    pub fn mark_consistent(&self) -> Result<(), RawError> {
        self.writer.mark_consistent()
    }

    /// Whether no writer died since the lock was last marked consistent.
    ///
    /// ```
    /// assert!(shm_sync::RawRwLock::new().is_consistent());
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.writer.is_consistent()
    }

    /// Number of readers holding the lock (a snapshot).
    ///
    /// ```
    /// let l = shm_sync::RawRwLock::new();
    /// l.read().unwrap();
    /// assert_eq!(l.readers(), 1);
    /// l.read_unlock().unwrap();
    /// ```
    pub fn readers(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & COUNT
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn writer_mutex(&self) -> &RawMutex {
        &self.writer
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn set_state(&self, v: u32) {
        self.state.store(v, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn readers_and_writers_keep_invariant() {
        let l = RawRwLock::new();
        let a = AtomicU64::new(0);
        let b = AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..6 {
                let (l, a, b) = (&l, &a, &b);
                s.spawn(move || {
                    for _ in 0..5_000 {
                        if i % 2 == 0 {
                            l.write().unwrap();
                            let v = a.load(Ordering::Relaxed);
                            a.store(v + 1, Ordering::Relaxed);
                            b.store(v + 1, Ordering::Relaxed);
                            l.write_unlock().unwrap();
                        } else {
                            l.read().unwrap();
                            assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
                            l.read_unlock().unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(a.load(Ordering::Relaxed), 15_000);
        assert_eq!(l.readers(), 0);
    }

    #[test]
    fn dead_writer_recovered_by_reader_and_writer() {
        let l = RawRwLock::new();
        std::thread::scope(|s| {
            s.spawn(|| l.write().unwrap());
        });
        assert_eq!(
            l.read_timeout(Duration::from_secs(2)),
            Ok(Acquired::OwnerDied)
        );
        l.read_unlock().unwrap();
        assert_eq!(l.read(), Ok(Acquired::Inconsistent));
        l.read_unlock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| l.write().unwrap());
        });
        assert_eq!(
            l.write_timeout(Duration::from_secs(2)),
            Ok(Acquired::OwnerDied)
        );
        l.mark_consistent().unwrap();
        l.write_unlock().unwrap();
        assert_eq!(l.read(), Ok(Acquired::Clean));
        l.read_unlock().unwrap();
    }

    #[test]
    fn dead_reader_times_writer_out() {
        let l = RawRwLock::new();
        std::thread::scope(|s| {
            s.spawn(|| l.read().unwrap());
        });
        assert_eq!(
            l.write_timeout(Duration::from_millis(30)),
            Err(RawError::Timeout)
        );
        // The failed writer left readers free to enter.
        assert!(l.try_read().is_ok());
    }

    #[test]
    fn garbage_state_never_hangs() {
        for g in [u32::MAX, WRITER, WRITER | 5, READERS_WAITING, COUNT, 12345] {
            let l = RawRwLock::new();
            l.set_state(g);
            match l.read_timeout(Duration::from_millis(40)) {
                Ok(_) => l.read_unlock().unwrap(),
                Err(RawError::Overflow | RawError::Timeout) => {}
                Err(e) => panic!("{g:#x}: {e}"),
            }
            let _ = l.write_timeout(Duration::from_millis(20));
            assert!(!l.writer_mutex().is_held_by_current_thread() || l.write_unlock().is_ok());
        }
    }
}
