//! Waiting: sleeping on the ring's futex words in slices (so that dead participants
//! are looked for), waking sleepers, deadlines, closing, and the task count
//! `JoinableQueue::join` waits on. The futex calls, the [`Deadline`] and the spin
//! policy are shm-sync's one waiting layer ([`shm_sync::wait`]).

use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

use shm_sync::wait::{Deadline, futex_wait, futex_wake_all};

use super::{QueueError, QueueResult, Ring};

/// Longest sleep between two checks of the state: a producer killed between publishing
/// and waking delays a sleeping consumer by at most this, and a dead participant is
/// looked for at least this often.
pub(super) const SLICE: Duration = Duration::from_millis(50);

/// The two kinds of sleepers of a ring: consumers waiting for a message (`not_empty`)
/// and producers waiting for room (`not_full`).
#[derive(Clone, Copy)]
pub(super) enum Sleepers {
    Getters,
    Putters,
}

impl<'a> Ring<'a> {
    /// What a call that ran out of time returns: `Full` for a producer, `Empty` for a
    /// consumer (Python's `queue.Full` / `queue.Empty` for the timed and untimed forms
    /// alike), with the time it was given.
    #[cold]
    pub(super) fn gave_up(&self, side: Sleepers, waited: Duration) -> QueueError {
        let name = self.label.to_owned();
        match side {
            Sleepers::Putters => QueueError::Full { name, waited },
            Sleepers::Getters => QueueError::Empty { name, waited },
        }
    }

    /// One finished task (`JoinableQueue::task_done`).
    pub(crate) fn task_done(&self) -> QueueResult<()> {
        let c = self.ctl;
        let r = c
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
        match r {
            Err(_) => Err(QueueError::TaskDoneTooManyTimes {
                name: self.label.to_owned(),
            }),
            Ok(1) => {
                c.all_done.fetch_add(1, Ordering::SeqCst);
                if c.join_waiters.load(Ordering::SeqCst) > 0 {
                    futex_wake_all(&c.all_done);
                }
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    /// Waits until every message put has been marked done.
    pub(crate) fn join(&self, mode: Deadline) -> QueueResult<()> {
        let c = self.ctl;
        loop {
            let seq = c.all_done.load(Ordering::SeqCst);
            c.join_waiters.fetch_add(1, Ordering::SeqCst);
            let r = if self.unfinished() == 0 {
                c.join_waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            } else {
                self.sleep_on(&c.all_done, seq, mode)
                    .map_err(|waited| QueueError::Timeout {
                        name: self.label.to_owned(),
                        waited,
                    })
            };
            c.join_waiters.fetch_sub(1, Ordering::SeqCst);
            r?;
        }
    }

    /// Sleeps until a message may be there (or the ring is closed), at most `timeout`;
    /// takes nothing.
    pub(crate) fn wait_not_empty(&self, timeout: Duration) {
        self.registered(Sleepers::Getters, |word, seq| {
            if !self.maybe_ready() && !self.is_closed() {
                futex_wait(word, seq, Some(timeout));
            }
        });
    }

    /// Marks the ring closed and wakes every sleeper.
    pub(crate) fn close(&self) {
        self.ctl.closed.store(1, Ordering::SeqCst);
        self.wake_everyone();
    }

    pub(super) fn wake_everyone(&self) {
        for w in [&self.ctl.not_empty, &self.ctl.not_full, &self.ctl.all_done] {
            w.fetch_add(1, Ordering::SeqCst);
            futex_wake_all(w);
        }
    }

    /// The futex word, sleeper count and "woken already" flag of one side.
    pub(super) fn sleepers(&self, side: Sleepers) -> (&AtomicU32, &AtomicU32, &AtomicU32) {
        let c = self.ctl;
        match side {
            Sleepers::Getters => (&c.not_empty, &c.get_waiters, &c.get_wake_pending),
            Sleepers::Putters => (&c.not_full, &c.put_waiters, &c.put_wake_pending),
        }
    }

    /// Runs `f` (a last look, then maybe a sleep on the futex word while it still reads
    /// the value handed over) registered as a sleeper of `side`. The word is read before
    /// registering, so a wake `f` could miss bumped it since, and its wait returns at
    /// once; the other side checks the sleeper count after every change (`signal`), so
    /// either it sees us or our last look sees its change.
    pub(super) fn registered<R>(&self, side: Sleepers, f: impl FnOnce(&AtomicU32, u32) -> R) -> R {
        let (word, waiters, pending) = self.sleepers(side);
        let seq = word.load(Ordering::SeqCst);
        waiters.fetch_add(1, Ordering::SeqCst);
        pending.store(0, Ordering::SeqCst);
        // Orders the registration before the last look inside `f` (acquire loads) in the
        // language's memory model, not only on x86-64/AArch64 hardware: without it the
        // loom model (shm-sync/tests/loom_ring.rs) finds a lost wake-up. Slow path only.
        fence(Ordering::SeqCst);
        let r = f(word, seq);
        waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// After a change `side` may sleep for: wake it if it sleeps. The fence pairs
    /// with the sleeper's SeqCst increment of its count (`registered`): either it sees
    /// our change when it looks again, or we see it registered. Only the first waker
    /// since a sleeper registered (and cleared `pending`) makes the syscall.
    #[inline]
    pub(super) fn signal(&self, side: Sleepers) {
        let (word, waiters, pending) = self.sleepers(side);
        fence(Ordering::SeqCst);
        if waiters.load(Ordering::Relaxed) > 0 && pending.swap(1, Ordering::SeqCst) == 0 {
            word.fetch_add(1, Ordering::SeqCst);
            futex_wake_all(word);
        }
    }

    /// `Full` / `Empty` (for `side`) once a timed call's deadline has passed, even while
    /// the state keeps changing (a forged ring can make every look "progress").
    pub(super) fn check_deadline(&self, mode: Deadline, side: Sleepers) -> QueueResult<()> {
        if mode.is_past() {
            return Err(self.gave_up(side, mode.waited()));
        }
        Ok(())
    }

    /// Sleeps on `word` while it still reads `seq`, for at most one slice or until the
    /// deadline; `Try` or a passed deadline give up at once (`Full` / `Empty` for
    /// `side`).
    pub(super) fn sleep(
        &self,
        word: &AtomicU32,
        seq: u32,
        mode: Deadline,
        side: Sleepers,
    ) -> QueueResult<()> {
        self.sleep_on(word, seq, mode)
            .map_err(|waited| self.gave_up(side, waited))
    }

    /// [`sleep`](Self::sleep) without the error: `Err(timeout)` when there is no time
    /// left (`Duration::ZERO` for `Try`).
    pub(super) fn sleep_on(
        &self,
        word: &AtomicU32,
        seq: u32,
        mode: Deadline,
    ) -> Result<(), Duration> {
        let Some(slice) = mode.sleep_for(SLICE) else {
            return Err(mode.waited());
        };
        futex_wait(word, seq, Some(slice));
        Ok(())
    }
}
