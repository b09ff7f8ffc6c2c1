//! The participant table: each thread's entry (found through a per-thread cache,
//! registered on first use, taken over from a dead owner), and the recovery that reads
//! the entries' intents: a producer frees the slots of a dead consumer, a consumer
//! tombstones the slot of a dead producer.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use shm_core::identity::{Identity, Liveness, OwnerWord};

use super::layout::{ENTRIES, Entry, NONE, TOMB, before, covers, free, published};
use super::{QueueError, QueueResult, Ring, RingCtl};

impl Entry {
    pub(super) fn identity(&self) -> Identity {
        let o = OwnerWord::from_raw(self.owner.load(Ordering::Acquire));
        o.identity(self.pidns.load(Ordering::Acquire))
    }

    /// Whether the owner may still run (dead only when provably dead).
    pub(super) fn may_live(&self) -> bool {
        self.identity().liveness() != Liveness::Dead
    }

    /// Bumps one of the owner's counters (only the owner writes them: no RMW needed).
    #[inline]
    pub(super) fn bump(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

thread_local! {
    /// This thread's entries in the last rings it used: (control block address, entry
    /// index, owner word). Checked against the entry on every use, so a stale one (a
    /// ring unmapped and another mapped there, a forked child) is only a cache miss.
    static MINE: [Cell<(usize, u32, u64)>; 4] = const {
        [const { Cell::new((0, 0, 0)) }; 4]
    };
}

impl<'a> Ring<'a> {
    pub(super) fn me(&self) -> QueueResult<&Entry> {
        let word = Identity::current_thread_word();
        let key = self.ctl as *const RingCtl as usize;
        let hit = MINE.with(|cache| {
            cache.iter().find_map(|c| {
                let (k, i, w) = c.get();
                (k == key && w == word).then_some(i as usize)
            })
        });
        if let Some(i) = hit {
            let e = self.entry(i);
            if e.owner.load(Ordering::Relaxed) == word {
                return Ok(e);
            }
        }
        let i = self.register(Identity::current_thread(), word)?;
        MINE.with(|cache| {
            for j in (1..cache.len()).rev() {
                cache[j].set(cache[j - 1].get());
            }
            cache[0].set((key, i as u32, word));
        });
        Ok(self.entry(i))
    }

    pub(super) fn register(&self, id: Identity, word: u64) -> QueueResult<usize> {
        for (i, e) in self.used_entries().enumerate() {
            if e.owner.load(Ordering::Acquire) == word {
                return Ok(i);
            }
        }
        let claim = |i: usize, e: &Entry, old: u64| -> bool {
            if e.owner
                .compare_exchange(old, word, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            e.pidns.store(id.pidns, Ordering::Release);
            // A dead owner's counts live on in the totals.
            let c = self.ctl;
            c.retired_puts
                .fetch_add(e.puts.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            c.retired_gets
                .fetch_add(e.gets.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            e.prod_pos.store(NONE, Ordering::Release);
            e.cons_pos.store(NONE, Ordering::Release);
            c.high_water.fetch_max(i as u32 + 1, Ordering::AcqRel);
            true
        };
        for (i, e) in self.entries().enumerate() {
            if e.owner.load(Ordering::Relaxed) == 0 && claim(i, e, 0) {
                return Ok(i);
            }
        }
        // Take over an entry whose owner is dead and whose intents are settled.
        for (i, e) in self.entries().enumerate() {
            let old = e.owner.load(Ordering::Acquire);
            if self.settled(e) && !e.may_live() && claim(i, e, old) {
                return Ok(i);
            }
        }
        Err(QueueError::TooManyParticipants {
            name: self.label.to_owned(),
            max: ENTRIES,
        })
    }

    /// Whether a (dead) entry's intents need nobody any more: its producer claim was
    /// never made or is consumed, its consumer claim never made or released.
    pub(super) fn settled(&self, e: &Entry) -> bool {
        let (p, pk) = (
            e.prod_pos.load(Ordering::Acquire),
            e.prod_k.load(Ordering::Relaxed),
        );
        let prod_ok = p == NONE
            || pk == 0
            || !before(p, self.ctl.tail.load(Ordering::Acquire))
            || !before(self.ctl.head.load(Ordering::Acquire), p.wrapping_add(pk));
        let (q, ck) = (
            e.cons_pos.load(Ordering::Acquire),
            e.cons_k.load(Ordering::Relaxed),
        );
        let cons_ok = q == NONE
            || ck == 0
            || !before(q, self.ctl.head.load(Ordering::Acquire))
            || (0..ck.min(self.slots)).all(|j| {
                let pos = q.wrapping_add(j);
                self.seq(pos).load(Ordering::Acquire) & !TOMB != published(pos)
            });
        prod_ok && cons_ok
    }

    /// A producer finds no room: frees the slots the tail needs that a dead consumer
    /// had claimed and not released (counting its message as lost). Returns whether it
    /// freed any.
    pub(super) fn free_dead_consumers(&self, k: u64) -> bool {
        let c = self.ctl;
        let t = c.tail.load(Ordering::Relaxed);
        let mut freed = false;
        for j in 0..k {
            let pos = t.wrapping_add(j);
            let s = self.seq(pos).load(Ordering::Acquire);
            let q = pos.wrapping_sub(self.slots);
            // Published (or a tombstone) for the previous lap, and taken by a consumer?
            if s & !TOMB != published(q) || !before(q, c.head.load(Ordering::Acquire)) {
                continue;
            }
            if self.used_entries().any(|e| {
                covers(
                    e.cons_pos.load(Ordering::Acquire),
                    e.cons_k.load(Ordering::Relaxed),
                    q,
                ) && e.may_live()
            }) {
                continue;
            }
            let real = s & TOMB == 0 && self.word(q, 1).load(Ordering::Relaxed) == q;
            if self
                .seq(pos)
                .compare_exchange(s, free(pos), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                c.recovered.fetch_add(1, Ordering::Relaxed);
                if real {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                }
                freed = true;
            }
        }
        if freed {
            self.wake_everyone();
        }
        freed
    }

    /// A consumer waits on position `h`, claimed by a producer that has not published it:
    /// if every producer that may have claimed it is dead, tombstones it. Returns
    /// whether it did.
    pub(super) fn bury_dead_producer(&self, h: u64) -> bool {
        let c = self.ctl;
        if self.seq(h).load(Ordering::Acquire) != free(h)
            || !before(h, c.tail.load(Ordering::Acquire))
        {
            return false;
        }
        if self.used_entries().any(|e| {
            covers(
                e.prod_pos.load(Ordering::Acquire),
                e.prod_k.load(Ordering::Relaxed),
                h,
            ) && e.may_live()
        }) {
            return false;
        }
        // A live producer that finished meanwhile published: then this CAS fails.
        if self
            .seq(h)
            .compare_exchange(
                free(h),
                published(h) | TOMB,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            c.recovered.fetch_add(1, Ordering::Relaxed);
            self.wake_everyone();
            return true;
        }
        false
    }
}
