//! The consumer side: claim the published message at the head with one CAS (the
//! intent written first), copy it out, release its slots; skip tombstones.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{Entry, NONE, SLOT_HEADER, TOMB, before, free, published};
use shm_sync::wait::Spin;

use super::waiting::Sleepers;
use super::{Deadline, QueueResult, Ring};

/// Spins a `_nowait` call gives a message a live producer is writing right now.
pub(super) const INFLIGHT_SPIN: u32 = 256;

#[cfg(test)]
thread_local! {
    /// Runs once between a consumer's failed look at the head and its spin loop: lets a
    /// test publish a message in exactly that window.
    pub(super) static AFTER_NOT_READY: std::cell::Cell<Option<fn(&Ring<'_>)>> =
        const { std::cell::Cell::new(None) };
}

/// What a consumer found at the head.
pub(super) enum Took {
    /// A message, copied into the buffer.
    Message,
    /// Nothing published at this head position (yet): the position and the sequence
    /// word seen there.
    NotReady(u64, u64),
}

/// What a consumer claims at the head.
pub(super) enum Claim {
    /// Length and slots.
    Message(usize, u64),
    /// A tombstone or a continuation slot of a message whose first slot was tombstoned.
    Skip,
    /// A frame header that cannot be right.
    Bad(u64, u64),
}

impl<'a> Ring<'a> {
    /// One attempt to take the message at the head into `out` (skipping tombstones).
    pub(super) fn try_get(&self, me: &Entry, out: &mut Vec<u8>) -> QueueResult<Took> {
        let c = self.ctl;
        loop {
            let h = c.head.load(Ordering::Relaxed);
            let s = self.seq(h).load(Ordering::Acquire);
            let d = (s & !TOMB).wrapping_sub(published(h)) as i64;
            if d < 0 {
                // Not published: free for lap `h` (empty, or being written), or still
                // in the previous lap (its consumer releasing it); anything older is
                // forged. Compares on the word just loaded.
                if s != free(h)
                    && s & !TOMB != published(h.wrapping_sub(self.slots))
                    && c.head.load(Ordering::Relaxed) == h
                {
                    return Err(self.corrupted(format!(
                        "expected the slot of position {h} (the head) to be free for lap {h} or in the previous lap, found sequence {s:#x}"
                    )));
                }
                // The caller tells "empty" from "being written" only when it must
                // (`in_flight`), so that a spinning consumer reads no line but this
                // slot's.
                return Ok(Took::NotReady(h, s));
            }
            if d > 0 {
                if c.head.load(Ordering::Relaxed) == h {
                    return Err(self.corrupted(format!(
                        "expected the slot of position {h} (the head) to hold lap {h}, found sequence {s:#x}"
                    )));
                }
                continue;
            }
            let claim = if s & TOMB != 0 || self.word(h, 1).load(Ordering::Relaxed) != h {
                Claim::Skip
            } else {
                let lk = self.word(h, 2).load(Ordering::Relaxed);
                let (len, k) = (lk & 0xffff_ffff, lk >> 32);
                // k is exactly the slots len needs (no division on this path).
                if k == 0
                    || k > self.slots
                    || len > k * self.per_slot()
                    || (k > 1 && len <= (k - 1) * self.per_slot())
                {
                    Claim::Bad(h, lk)
                } else {
                    Claim::Message(len as usize, k)
                }
            };
            let k = match claim {
                Claim::Message(_, k) => k,
                _ => 1,
            };
            me.cons_k.store(k, Ordering::Relaxed);
            me.cons_pos.store(h, Ordering::Release);
            if c.head
                .compare_exchange_weak(h, h.wrapping_add(k), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if let Claim::Message(len, _) = claim {
                Entry::bump(&me.gets);
                out.resize(len, 0);
                if k == 1 {
                    // SAFETY: the payload area of the slot (`per_slot` bytes after its
                    // header) lies in the ring and len <= per_slot (k = 1); `out` is
                    // local memory. The slot is ours until released; a forged writer
                    // yields wrong bytes only.
                    unsafe {
                        shm_core::copy_from_shared(self.slot(h).add(SLOT_HEADER as usize), out)
                    };
                } else {
                    let per = self.per_slot() as usize;
                    let mut off = 0;
                    for j in 0..k {
                        let end = (off + per).min(len);
                        // SAFETY: as above, for slot j of the message: end - off <= per.
                        unsafe {
                            shm_core::copy_from_shared(
                                self.slot(h.wrapping_add(j)).add(SLOT_HEADER as usize),
                                &mut out[off..end],
                            )
                        };
                        off = end;
                    }
                }
            }
            // Release (the first slot last, so a producer freeing a dead consumer's slots
            // counts its message as lost only if it had not finished).
            if k == 1 {
                self.seq(h)
                    .store(free(h.wrapping_add(self.slots)), Ordering::Release);
            } else {
                for j in (0..k).rev() {
                    let pos = h.wrapping_add(j);
                    self.seq(pos)
                        .store(free(pos.wrapping_add(self.slots)), Ordering::Release);
                }
            }
            me.cons_pos.store(NONE, Ordering::Release);
            self.signal(Sleepers::Putters);
            match claim {
                Claim::Message(..) => return Ok(Took::Message),
                Claim::Skip => continue,
                Claim::Bad(pos, lk) => {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                    return Err(self.corrupted(format!(
                        "expected a frame (length <= {} in 1 to {} slots) at position {pos}, found {lk:#018x}; dropped it",
                        self.max_message_len(),
                        self.slots
                    )));
                }
            }
        }
    }

    /// Whether position `h`, not published, is claimed by a producer (below the tail).
    pub(super) fn in_flight(&self, h: u64) -> QueueResult<bool> {
        let c = self.ctl;
        let tail = c.tail.load(Ordering::Acquire);
        // `h` was the head before this read of the tail, and the tail never falls behind
        // the head; producers claim only free slots, so the tail is never more than a
        // lap on. Plain comparisons: positions never wrap (2^64 messages), so a wrapped
        // difference is forged.
        if tail < h || (tail - h > self.slots && c.head.load(Ordering::Acquire) == h) {
            return Err(self.bad_positions(h, tail));
        }
        Ok(tail != h)
    }

    /// Takes the oldest message into `out` (resized to it).
    pub(crate) fn get(&self, out: &mut Vec<u8>, mode: Deadline, spin: u32) -> QueueResult<()> {
        let me = self.me()?;
        let mut spin = Spin::yielding(spin);
        let mut inflight_spin = Spin::new(INFLIGHT_SPIN);
        loop {
            let (h, seen) = match self.try_get(me, out)? {
                Took::Message => return Ok(()),
                Took::NotReady(h, s) => (h, s),
            };
            #[cfg(test)]
            if let Some(hook) = AFTER_NOT_READY.take() {
                hook(self);
            }
            if self.is_closed() && !self.in_flight(h)? {
                // Drained and closed (a put racing with close may still land: look again).
                if let Took::Message = self.try_get(me, out)? {
                    return Ok(());
                }
                return Err(self.closed());
            }
            if !spin.is_done() {
                if self.is_closed() {
                    // Closed with the head claimed and unpublished: nothing to spin for
                    // (the spin loop below would end at once, for ever). The slow path
                    // waits for the producer or buries it, and keeps the deadline.
                    spin.stop();
                    continue;
                }
                // Spin on the head slot's sequence word alone: reading the tail here
                // would pull the producers' line away from them on every put. Compare
                // with the word `try_get` saw, not a fresh load: a publish between the
                // two would otherwise go unnoticed until the spins run out.
                while !spin.is_done()
                    && self.seq(h).load(Ordering::Relaxed) == seen
                    && self.ctl.head.load(Ordering::Relaxed) == h
                    && !self.is_closed()
                {
                    spin.step();
                }
                // At least one step per round, whatever ended the loop: the spins always
                // run out.
                spin.skip();
                continue;
            }
            let inflight = self.in_flight(h)?;
            if inflight && inflight_spin.step() {
                // A live producer is writing it: give it a moment before the slow path.
                continue;
            }
            if matches!(mode, Deadline::Try) {
                // One look for a dead producer, one more try, then `Empty`.
                if inflight && self.bury_dead_producer(h) {
                    if let Took::Message = self.try_get(me, out)? {
                        return Ok(());
                    }
                }
                return Err(self.gave_up(Sleepers::Getters, Duration::ZERO));
            }
            self.check_deadline(mode, Sleepers::Getters)?;
            self.registered(Sleepers::Getters, |word, seq| {
                if (inflight && self.bury_dead_producer(h)) || self.moved_on(h, inflight) {
                    return Ok(());
                }
                self.sleep(word, seq, mode, Sleepers::Getters)
            })?;
        }
    }

    /// Whether the state a consumer saw at head `h` (nothing, or a message being
    /// written) changed: the head moved, `h` got published, a producer claimed it, or
    /// the ring was closed.
    pub(super) fn moved_on(&self, h: u64, inflight: bool) -> bool {
        let c = self.ctl;
        c.head.load(Ordering::Acquire) != h
            || (self.seq(h).load(Ordering::Acquire) & !TOMB) == published(h)
            || (!inflight && (before(h, c.tail.load(Ordering::Acquire)) || self.is_closed()))
    }

    /// Takes up to `max` messages (at least one, waiting as `mode` says), handing each to
    /// `each`. Returns how many.
    pub(crate) fn get_many(
        &self,
        max: usize,
        mode: Deadline,
        spin: u32,
        each: &mut dyn FnMut(&[u8]),
    ) -> QueueResult<usize> {
        let mut buf = Vec::new();
        self.get(&mut buf, mode, spin)?;
        each(&buf);
        let me = self.me()?;
        let mut n = 1;
        while n < max {
            match self.try_get(me, &mut buf) {
                Ok(Took::Message) => {
                    each(&buf);
                    n += 1;
                }
                // Hand out what was good; the next call reports a bad frame.
                _ => break,
            }
        }
        Ok(n)
    }
}
