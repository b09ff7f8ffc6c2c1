//! The producer side: claim free slots at the tail with one CAS (the intent written
//! first), write the message, publish the continuation slots and then the first.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{Entry, NONE, SLOT_HEADER, TOMB, free, published};
use shm_sync::wait::Spin;

use super::waiting::Sleepers;
use super::{Deadline, QueueError, QueueResult, Ring};

/// What a producer finds at a slot it wants to claim.
pub(super) enum TailSlot {
    /// Free for this lap.
    Free,
    /// The slot's previous lap is not released yet: no room.
    NotReleased,
    /// Claimed by another producer: the tail read is stale, read it again.
    Stale,
}

impl<'a> Ring<'a> {
    /// One attempt to put `msg`: `Ok(false)` if there is no room now.
    pub(super) fn try_put(&self, me: &Entry, msg: &[u8]) -> QueueResult<bool> {
        let k = self.slots_for(msg.len());
        if k == 1 {
            return self.try_put_one(me, msg);
        }
        let c = self.ctl;
        'claim: loop {
            let t = c.tail.load(Ordering::Relaxed);
            for j in 0..k {
                match self.tail_slot(t, t.wrapping_add(j))? {
                    TailSlot::Free => {}
                    TailSlot::NotReleased => return Ok(false),
                    TailSlot::Stale => continue 'claim,
                }
            }
            me.prod_k.store(k, Ordering::Relaxed);
            me.prod_pos.store(t, Ordering::Release);
            if c.tail
                .compare_exchange_weak(t, t.wrapping_add(k), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.tasks {
                c.unfinished.fetch_add(1, Ordering::AcqRel);
            }
            let per = self.per_slot() as usize;
            let header = msg.len() as u64 | k << 32;
            let mut off = 0;
            for j in 0..k {
                let pos = t.wrapping_add(j);
                let end = (off + per).min(msg.len());
                self.word(pos, 1).store(t, Ordering::Relaxed);
                self.word(pos, 2).store(header, Ordering::Relaxed);
                // SAFETY: the payload area of a slot is `per` bytes right after its header,
                // inside the ring (attach); end - off <= per. The slot is ours (claimed);
                // others only read it with racing-safe copies.
                unsafe {
                    shm_core::copy_to_shared(
                        &msg[off..end],
                        self.slot(pos).add(SLOT_HEADER as usize),
                    )
                };
                off = end;
            }
            // Continuations first: a published first slot means a whole message.
            for j in (0..k).rev() {
                let pos = t.wrapping_add(j);
                self.seq(pos).store(published(pos), Ordering::Release);
            }
            me.prod_pos.store(NONE, Ordering::Release);
            Entry::bump(&me.puts);
            return Ok(true);
        }
    }

    /// `try_put` of a message that fits one slot (the common case), without the loops
    /// over slots: the same steps for `k = 1`.
    #[inline]
    pub(super) fn try_put_one(&self, me: &Entry, msg: &[u8]) -> QueueResult<bool> {
        let c = self.ctl;
        loop {
            let t = c.tail.load(Ordering::Relaxed);
            match self.tail_slot(t, t)? {
                TailSlot::Free => {}
                TailSlot::NotReleased => return Ok(false),
                TailSlot::Stale => continue,
            }
            me.prod_k.store(1, Ordering::Relaxed);
            me.prod_pos.store(t, Ordering::Release);
            if c.tail
                .compare_exchange_weak(t, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.tasks {
                c.unfinished.fetch_add(1, Ordering::AcqRel);
            }
            self.word(t, 1).store(t, Ordering::Relaxed);
            self.word(t, 2)
                .store(msg.len() as u64 | 1 << 32, Ordering::Relaxed);
            // SAFETY: as in `try_put`: the slot's payload area (`per_slot` bytes after
            // its header) lies in the ring and holds `msg` (k = 1); the slot is ours.
            unsafe { shm_core::copy_to_shared(msg, self.slot(t).add(SLOT_HEADER as usize)) };
            self.seq(t).store(published(t), Ordering::Release);
            me.prod_pos.store(NONE, Ordering::Release);
            Entry::bump(&me.puts);
            return Ok(true);
        }
    }

    /// What a producer that read tail `t` finds at the slot of position `pos` (`t` or a
    /// continuation after it).
    #[inline]
    pub(super) fn tail_slot(&self, t: u64, pos: u64) -> QueueResult<TailSlot> {
        let s = self.seq(pos).load(Ordering::Acquire) & !TOMB;
        let d = s.wrapping_sub(free(pos)) as i64;
        if d < 0 {
            // Not released: the slot can only still be in the previous lap (claimed or
            // published for `pos - slots`); anything older is forged. Two compares on
            // the word just loaded, off the fast path.
            let q = pos.wrapping_sub(self.slots);
            if s != free(q) && s != published(q) && self.ctl.tail.load(Ordering::Relaxed) == t {
                return Err(self.tail_not_free(pos, s));
            }
            return Ok(TailSlot::NotReleased);
        }
        if d > 0 {
            // Someone claimed it: our tail is stale, or the ring is forged.
            if self.ctl.tail.load(Ordering::Relaxed) == t {
                return Err(self.tail_not_free(pos, s));
            }
            return Ok(TailSlot::Stale);
        }
        Ok(TailSlot::Free)
    }

    #[cold]
    pub(super) fn tail_not_free(&self, pos: u64, s: u64) -> QueueError {
        self.corrupted(format!(
            "expected the slot of position {pos} (at the tail) to be free or in the previous lap, found sequence {s:#x}"
        ))
    }

    /// Appends one message; waits for room as `mode` says, spinning `spin` times first.
    pub(crate) fn put(&self, msg: &[u8], mode: Deadline, spin: u32) -> QueueResult<()> {
        // The common case first: a one-slot message and room at the tail.
        if msg.len() as u64 <= self.per_slot() && !self.is_closed() {
            let me = self.me()?;
            if self.try_put_one(me, msg)? {
                self.signal(Sleepers::Getters);
                return Ok(());
            }
        }
        self.put_many(&[msg], mode, spin).map(|_| ())
    }

    /// Appends messages in order; returns how many went in. Waits (as `mode` says) only
    /// while none fits.
    pub(crate) fn put_many(&self, msgs: &[&[u8]], mode: Deadline, spin: u32) -> QueueResult<usize> {
        let max = self.max_message_len();
        if let Some(m) = msgs.iter().find(|m| m.len() > max) {
            return Err(QueueError::TooLarge {
                name: self.label.to_owned(),
                len: m.len(),
                max,
            });
        }
        if msgs.is_empty() {
            return Ok(0);
        }
        let me = self.me()?;
        let mut spin = Spin::yielding(spin);
        let mut n = 0;
        let k = self.slots_for(msgs[0].len());
        loop {
            if self.is_closed() {
                return Err(self.closed());
            }
            while n < msgs.len() && self.try_put(me, msgs[n])? {
                n += 1;
            }
            if n > 0 {
                self.signal(Sleepers::Getters);
                return Ok(n);
            }
            if spin.step() {
                continue;
            }
            // No room: a forged tail or head is `Corrupted`, not "full for ever".
            self.check_positions()?;
            if matches!(mode, Deadline::Try) {
                // One look for a dead consumer's slots, one more try, then `Full`.
                if self.free_dead_consumers(k) && self.try_put(me, msgs[0])? {
                    self.signal(Sleepers::Getters);
                    return Ok(1);
                }
                return Err(self.gave_up(Sleepers::Putters, Duration::ZERO));
            }
            // Register as a sleeper, then look again (the consumer side checks the
            // sleeper count after releasing, so one of us sees the other).
            self.check_deadline(mode, Sleepers::Putters)?;
            self.registered(Sleepers::Putters, |word, seq| {
                if self.room_at_tail(k) || self.free_dead_consumers(k) || self.is_closed() {
                    return Ok(());
                }
                self.sleep(word, seq, mode, Sleepers::Putters)
            })?;
        }
    }

    /// Whether the `k` slots at the tail are free now (the test `try_put` makes).
    pub(super) fn room_at_tail(&self, k: u64) -> bool {
        let t = self.ctl.tail.load(Ordering::Acquire);
        (0..k).all(|j| {
            let pos = t.wrapping_add(j);
            (self.seq(pos).load(Ordering::Acquire) & !TOMB).wrapping_sub(free(pos)) as i64 >= 0
        })
    }
}
