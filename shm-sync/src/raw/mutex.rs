//! `RawMutex`: a robust, process-shared futex lock whose word records the holder's
//! identity (TID + start-time token), so waiters can find a dead holder themselves.

use std::time::Duration;

use super::{Acquired, Deadline, FIRST_SLICE, SLICE, SPINS};
use crate::RawError;
use crate::atomic::{AtomicU32, AtomicU64, Instant, Ordering};
use crate::sys::{self, TID_BITS};
use crate::wait::Spin;

/// Set while a thread may sleep on `wake_seq`: unlock must wake.
pub(crate) const WAITERS: u64 = 1 << 30;
/// A holder died and nobody marked the lock consistent; survives unlock.
pub(crate) const INCONSISTENT: u64 = 1 << 31;
/// Token, PID-namespace index and TID: who holds the lock.
pub(crate) const ID_MASK: u64 = !(WAITERS | INCONSISTENT);

/// A robust, process-shared mutual-exclusion lock: 16 bytes, `#[repr(C)]`, all-zero is
/// unlocked, so a zeroed segment already holds initialised locks.
///
/// The owner word is `token << 32 | INCONSISTENT | WAITERS | ns_index << 22 | tid`: the
/// holder's Linux TID (22 bits), the index of its PID namespace (8 bits, see the crate
/// docs) and the low 32 bits of that thread's start time. Locking is one CAS
/// `0 -> me`, unlocking one CAS `me -> 0`; the futex syscall happens only when a thread
/// waits. Waiters sleep in slices (2 ms, then 20 ms) and, when a slice ends with the
/// lock still held by the same value, check whether the holder is alive (see the crate
/// docs): a dead holder's lock is taken over with one CAS, and the new holder learns it
/// through [`Acquired::OwnerDied`].
///
/// The lock belongs to a thread: it must be unlocked by the thread that locked it
/// ([`unlock`](Self::unlock) checks this).
///
/// ```
/// use shm_sync::{Acquired, RawMutex};
/// let m = RawMutex::new();
/// assert_eq!(m.lock(), Ok(Acquired::Clean));
/// assert!(m.is_locked());
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(m.try_lock().is_err()));
/// });
/// m.unlock().unwrap();
/// assert!(!m.is_locked());
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawMutex {
    owner: AtomicU64,
    wake_seq: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<RawMutex>() == 16);
#[cfg(not(loom))]
const _: () = assert!(align_of::<RawMutex>() == 8);

impl RawMutex {
    crate::atomic::const_fn_unless_loom! {
        /// An unlocked mutex (for use inside one process, or to copy the layout).
        ///
        /// ```
        /// static M: shm_sync::RawMutex = shm_sync::RawMutex::new();
        /// M.lock().unwrap();
        /// M.unlock().unwrap();
        /// ```
        pub const fn new() -> RawMutex {
            RawMutex {
                owner: AtomicU64::new(0),
                wake_seq: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
            }
        }
    }

    /// Locks, waiting as long as it takes. `Err` only for
    /// [`RawError::WouldDeadlock`] (the calling thread holds it already).
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// assert_eq!(m.lock(), Ok(shm_sync::Acquired::Clean));
    /// m.unlock().unwrap();
    /// ```
    #[inline]
    pub fn lock(&self) -> Result<Acquired, RawError> {
        self.lock_mode(Deadline::Forever)
    }

    /// Locks if that needs no waiting: [`RawError::WouldBlock`] if a live thread holds
    /// it. A dead holder's lock is taken over ([`Acquired::OwnerDied`]).
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// assert!(m.try_lock().is_ok());
    /// assert!(m.try_lock().is_err());
    /// m.unlock().unwrap();
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Result<Acquired, RawError> {
        self.lock_mode(Deadline::Try)
    }

    /// Locks, waiting at most `timeout`: [`RawError::Timeout`] after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = shm_sync::RawMutex::new();
    /// m.lock_timeout(Duration::from_millis(10)).unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(m.lock_timeout(Duration::from_millis(5)), Err(shm_sync::RawError::Timeout)));
    /// });
    /// m.unlock().unwrap();
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, RawError> {
        self.lock_mode(Deadline::timeout(timeout))
    }

    /// The one fast path (a CAS `0 -> me`) of every lock call; the rest waits in
    /// `lock_slow` as `mode` says.
    #[inline]
    pub(crate) fn lock_mode(&self, mode: Deadline) -> Result<Acquired, RawError> {
        let me = sys::me();
        if self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(me, mode)
    }

    #[cold]
    fn lock_slow(&self, me: u64, mode: Deadline) -> Result<Acquired, RawError> {
        let mut spin = Spin::new(SPINS);
        let mut slept = false;
        let mut slice = FIRST_SLICE;
        let mut next_check = Instant::now() + FIRST_SLICE;
        loop {
            let cur = self.owner.load(Ordering::Relaxed);
            if cur & TID_BITS == 0 {
                if cur & !INCONSISTENT != 0 {
                    // Bits without a holder (a token, WAITERS alone): garbage or a torn
                    // hostile write. Recover it like a dead holder's lock.
                    if let Some(a) = self.take_over(cur, me) {
                        return Ok(a);
                    }
                    continue;
                }
                let new = me | (cur & INCONSISTENT) | if slept { WAITERS } else { 0 };
                if self
                    .owner
                    .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(if cur & INCONSISTENT != 0 {
                        Acquired::Inconsistent
                    } else {
                        Acquired::Clean
                    });
                }
                continue;
            }
            if cur & ID_MASK == me {
                return Err(RawError::WouldDeadlock);
            }
            if cur & WAITERS == 0 && mode != Deadline::Try && spin.step() {
                continue;
            }
            let Some(sleep) = mode.sleep_for(slice) else {
                // Out of time: a dead holder still yields the lock rather than an error.
                if !holder_alive(cur) {
                    if let Some(a) = self.take_over(cur, me) {
                        return Ok(a);
                    }
                    continue;
                }
                if slept {
                    self.pass_on_wake();
                }
                return Err(mode.expired());
            };
            if cur & WAITERS == 0
                && self
                    .owner
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let observed = cur | WAITERS;
            let seq = self.wake_seq.load(Ordering::Acquire);
            if self.owner.load(Ordering::Acquire) != observed {
                continue;
            }
            sys::futex_wait(&self.wake_seq, seq, Some(sleep));
            slept = true;
            let now = Instant::now();
            if now >= next_check {
                next_check = now + SLICE;
                slice = SLICE;
                if self.owner.load(Ordering::Relaxed) == observed && !holder_alive(observed) {
                    if let Some(a) = self.take_over(observed, me) {
                        return Ok(a);
                    }
                }
            }
        }
    }

    /// A waiter leaving on timeout may have taken the one wake-up an unlock sent: wake
    /// another waiter if the lock is free, or make sure the holder's unlock will.
    #[cold]
    fn pass_on_wake(&self) {
        self.pass_on_wake_from(self.owner.load(Ordering::Relaxed));
    }

    /// [`pass_on_wake`](Self::pass_on_wake) from the owner word `cur` last read. The
    /// word may change under us (the holder unlocks without waking, as `WAITERS` is not
    /// set): then look again, or that wake-up is lost (found by the loom model).
    fn pass_on_wake_from(&self, mut cur: u64) {
        loop {
            if cur & TID_BITS == 0 {
                self.wake_seq.fetch_add(1, Ordering::Release);
                sys::futex_wake(&self.wake_seq, 1);
                return;
            }
            if cur & WAITERS != 0 {
                return;
            }
            match self.owner.compare_exchange(
                cur,
                cur | WAITERS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }

    /// Replaces the dead or corrupt owner value `observed` by the caller; exactly one
    /// of several racing waiters wins.
    fn take_over(&self, observed: u64, me: u64) -> Option<Acquired> {
        self.owner
            .compare_exchange(
                observed,
                me | WAITERS | INCONSISTENT,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| Acquired::OwnerDied)
    }

    /// Unlocks. [`RawError::NotOwner`] if the calling thread does not hold the lock
    /// (then nothing changes). An inconsistent lock stays inconsistent.
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// assert_eq!(m.unlock(), Err(shm_sync::RawError::NotOwner));
    /// m.lock().unwrap();
    /// assert_eq!(m.unlock(), Ok(()));
    /// ```
    #[inline]
    pub fn unlock(&self) -> Result<(), RawError> {
        let me = sys::me();
        if self
            .owner
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        self.unlock_slow(me)
    }

    #[cold]
    fn unlock_slow(&self, me: u64) -> Result<(), RawError> {
        let mut cur = self.owner.load(Ordering::Relaxed);
        loop {
            if cur & ID_MASK != me {
                return Err(RawError::NotOwner);
            }
            match self.owner.compare_exchange_weak(
                cur,
                cur & INCONSISTENT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        if cur & WAITERS != 0 {
            self.wake_seq.fetch_add(1, Ordering::Release);
            sys::futex_wake(&self.wake_seq, 1);
        }
        Ok(())
    }

    /// Marks the lock consistent again after [`Acquired::OwnerDied`] or
    /// [`Acquired::Inconsistent`], once the caller has repaired the protected data.
    /// Only the holder may: [`RawError::NotOwner`] otherwise.
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// m.lock().unwrap();
    /// m.mark_consistent().unwrap();
    /// assert!(m.is_consistent());
    /// m.unlock().unwrap();
    /// ```
    pub fn mark_consistent(&self) -> Result<(), RawError> {
        if !self.is_held_by_current_thread() {
            return Err(RawError::NotOwner);
        }
        self.owner.fetch_and(!INCONSISTENT, Ordering::Relaxed);
        Ok(())
    }

    /// Whether some thread holds the lock (a snapshot).
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// assert!(!m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & TID_BITS != 0
    }

    /// Whether no holder died since the lock was last marked consistent (a snapshot).
    ///
    /// ```
    /// assert!(shm_sync::RawMutex::new().is_consistent());
    /// ```
    pub fn is_consistent(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & INCONSISTENT == 0
    }

    /// Whether the calling thread holds the lock.
    ///
    /// ```
    /// let m = shm_sync::RawMutex::new();
    /// m.lock().unwrap();
    /// assert!(m.is_held_by_current_thread());
    /// m.unlock().unwrap();
    /// ```
    pub fn is_held_by_current_thread(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & ID_MASK == sys::me()
    }

    /// The raw owner word (for the RwLock's readers, and tests).
    pub(crate) fn owner_word(&self) -> u64 {
        self.owner.load(Ordering::Acquire)
    }

    /// Overwrites the owner word: for tests that play a hostile process.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn set_owner_word(&self, v: u64) {
        self.owner.store(v, Ordering::Relaxed);
    }
}

/// Whether the holder recorded in owner value `v` may still be alive (`false` only
/// when provably dead, or for a value no holder writes).
pub(crate) fn holder_alive(v: u64) -> bool {
    sys::is_alive(v & ID_MASK)
}

#[cfg(all(test, not(loom)))] // threads of the OS, not of the model
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn counter_under_contention() {
        let m = RawMutex::new();
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        m.lock().unwrap();
                        // A non-atomic read-modify-write under the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        m.unlock().unwrap();
                    }
                });
            }
        });
        assert_eq!(counter.load(Ordering::Relaxed), 160_000);
        assert!(!m.is_locked());
    }

    #[test]
    fn thread_that_exits_holding_is_detected() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        let t = Instant::now();
        assert_eq!(m.lock(), Ok(Acquired::OwnerDied));
        // Seconds, not the detection figure: machines running tests are busy.
        assert!(t.elapsed() < Duration::from_secs(5));
        m.unlock().unwrap();
        assert_eq!(m.lock(), Ok(Acquired::Inconsistent));
        m.mark_consistent().unwrap();
        m.unlock().unwrap();
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        m.unlock().unwrap();
    }

    #[test]
    fn blocked_waiter_sees_exited_holder() {
        let m = RawMutex::new();
        use shm_core::testing::{BlockedIn, Task, current_tid, wait_until_blocked};
        let (tx, rx) = std::sync::mpsc::channel();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (waiter_tx, waiter) = std::sync::mpsc::channel();
        let m = &m;
        std::thread::scope(|s| {
            s.spawn(move || {
                m.lock().unwrap();
                locked_tx.send(()).unwrap();
                // Exits holding, once the waiter sleeps on the lock.
                wait_until_blocked(Task::Thread(waiter.recv().unwrap()), BlockedIn::SharedFutex);
            });
            s.spawn(move || {
                locked.recv().unwrap();
                waiter_tx.send(current_tid()).unwrap();
                tx.send(m.lock_timeout(Duration::from_secs(30))).unwrap();
                m.unlock().unwrap();
            });
        });
        assert_eq!(rx.recv().unwrap(), Ok(Acquired::OwnerDied));
    }

    #[test]
    fn try_lock_takes_over_dead_owner() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| m.lock().unwrap());
        });
        // The thread is exiting or gone once joined; allow the kernel a moment anyway.
        let t = Instant::now();
        let r = loop {
            match m.try_lock() {
                Err(RawError::WouldBlock) if t.elapsed() < Duration::from_secs(2) => {
                    std::thread::yield_now()
                }
                r => break r,
            }
        };
        assert_eq!(r, Ok(Acquired::OwnerDied));
        m.unlock().unwrap();
    }

    #[test]
    fn garbage_words_recover_or_error() {
        use crate::sys::{NS_SHIFT, TID_MASK};
        let m = RawMutex::new();
        let me = sys::me();
        // Provable in our own registered namespace only.
        let ours = shm_core::identity::pidns_index() != 0;
        let garbage = [
            (u64::MAX, true), // index 255: never handed out
            (WAITERS, true),
            (WAITERS | INCONSISTENT, true),
            (0xdead_beef_0000_0000, true),
            (0x1234_5678_9abc_def0 | 0xff << NS_SHIFT, true),
            (me & TID_BITS, true), // our own TID and namespace, token 0: nobody writes it
            (1, true),             // init's TID, token 0: likewise, though PID 1 lives
            ((me & !TID_MASK) | 0x3f_fff0, ours), // a TID that does not exist
            (me ^ (2 << 32), ours), // our TID, someone else's start time
        ];
        for (g, recovers) in garbage {
            m.set_owner_word(g);
            let r = m.lock_timeout(Duration::from_millis(50));
            match r {
                Ok(_) => m.unlock().unwrap(),
                Err(RawError::Timeout) => assert!(!recovers, "{g:#x} must be recovered"),
                Err(e) => panic!("{g:#x}: {e}"),
            }
        }
        m.set_owner_word(me);
        assert_eq!(m.lock(), Err(RawError::WouldDeadlock));
    }

    /// Found by the loom model: a waiter leaving on timeout saw the lock held, and the
    /// holder unlocked (without a wake-up: no `WAITERS`) before the waiter could set
    /// `WAITERS`; the failed CAS was ignored, so the wake-up the leaving waiter had
    /// taken was lost and a sleeping waiter slept on to the end of its slice (20 ms).
    #[test]
    fn pass_on_wake_rereads_a_word_that_changed() {
        let m = RawMutex::new();
        let stale = 0x0000_0003_0000_1234; // a holder that has unlocked since
        // Freed in the meantime: wake a sleeper.
        m.pass_on_wake_from(stale);
        assert_eq!(m.wake_seq.load(Ordering::Relaxed), 1);
        // Re-locked by someone else in the meantime: their unlock must wake.
        let other = 0x0000_0005_0000_0042;
        m.set_owner_word(other);
        m.pass_on_wake_from(stale);
        assert_eq!(m.owner_word(), other | WAITERS);
        assert_eq!(m.wake_seq.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn timeout_lower_bound() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            m.lock().unwrap();
            s.spawn(|| {
                let t = Instant::now();
                assert_eq!(
                    m.lock_timeout(Duration::from_millis(60)),
                    Err(RawError::Timeout)
                );
                let e = t.elapsed();
                assert!(e >= Duration::from_millis(60), "{e:?}");
                assert!(e < Duration::from_secs(5), "{e:?}");
            })
            .join()
            .unwrap();
            m.unlock().unwrap();
        });
    }
}
