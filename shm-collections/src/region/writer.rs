//! The writer: the robust writer lock, writes under it, growth and compaction into the
//! next data segment, repair after a dead writer, and salvage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use shm_sync::{Acquired, RawError};

use super::IndexKind;
use super::error::{RegionError, RegionResult, SalvageReport, unbox};
use super::handle::Region;
use super::index::Probe;
use super::layout::{FIRST_REC, MIN_CAP, MIN_SLOTS, Mapped, TOMB, ctrl_header};
use super::names::{ctrl_name, data_segment_name};
use super::record::{REC_HDR, Rec, key_hash, rec_len};
use super::segments::{SKIP_GENERATIONS, create_data, unlink_own};

/// Sets a data header counter to `f` of its value. Only the writer-lock holder writes
/// the counters, so a load and a store do (no read-modify-write).
fn update(word: &AtomicU64, f: impl FnOnce(u64) -> u64) {
    word.store(f(word.load(Ordering::Relaxed)), Ordering::Relaxed);
}

/// Holds the writer lock; unlocks on drop. Not `Send`: the lock belongs to the thread.
pub(crate) struct Writer<'a> {
    region: &'a Region,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = &ctrl_header(&self.region.ctrl).lock.unlock();
    }
}

/// How much a write needs.
struct Need {
    bytes: u64,
    new_slot: bool,
}

impl Region {
    /// Takes the writer lock; after a dead holder, repairs first (see the module docs).
    /// Waits while another writer holds it, at most the handle's patience: then
    /// [`RegionError::Lock`] with [`RawError::Timeout`].
    pub(crate) fn lock(&self) -> RegionResult<Writer<'_>> {
        let (mut w, how) = self.lock_raw()?;
        if how != Acquired::Clean {
            w.repair()?;
            let _ = &ctrl_header(&self.ctrl).lock.mark_consistent();
        }
        Ok(w)
    }

    /// Copies every intact record into a fresh data segment (see
    /// [`SalvageReport`]). Takes the writer lock (waiting as `lock` does); after a
    /// dead holder it salvages instead of repairing, so it works when the repair's
    /// compaction cannot (a broken record).
    pub(crate) fn salvage(&self) -> RegionResult<SalvageReport> {
        let (mut w, how) = self.lock_raw()?;
        if how != Acquired::Clean {
            w.remove_leftovers()?;
        }
        let report = w.salvage()?;
        if how != Acquired::Clean {
            let _ = &ctrl_header(&self.ctrl).lock.mark_consistent();
        }
        Ok(report)
    }

    /// Takes the writer lock and maps the current segment for it; says how the lock
    /// was acquired (after a dead holder, the caller repairs).
    fn lock_raw(&self) -> RegionResult<(Writer<'_>, Acquired)> {
        self.lock_raw_or(true)?
            .ok_or_else(|| self.corrupted("a waiting lock came back empty".into()))
    }

    /// Takes the writer lock without waiting: `None` while another writer holds it (a
    /// caller that must not block here, e.g. while holding Python's GIL, waits
    /// elsewhere and calls [`lock`](Self::lock)).
    pub(crate) fn try_lock(&self) -> RegionResult<Option<Writer<'_>>> {
        match self.lock_raw_or(false)? {
            None => Ok(None),
            Some((mut w, how)) => {
                if how != Acquired::Clean {
                    w.repair()?;
                    let _ = &ctrl_header(&self.ctrl).lock.mark_consistent();
                }
                Ok(Some(w))
            }
        }
    }

    fn lock_raw_or(&self, wait: bool) -> RegionResult<Option<(Writer<'_>, Acquired)>> {
        let raw = &ctrl_header(&self.ctrl).lock;
        // The uncontended path: one CAS, no clock read.
        let how = match raw.try_lock() {
            Err(RawError::WouldBlock) if !wait => return Ok(None),
            Err(RawError::WouldBlock) => match self.patience() {
                None => raw.lock(),
                Some(d) => raw.lock_timeout(d),
            },
            other => other,
        }
        .map_err(|source| RegionError::Lock {
            name: self.label.to_string(),
            source,
        })?;
        let generation = self.gen_word().load(Ordering::Acquire);
        // SAFETY: we hold the writer lock, so no other thread touches `held` (and no
        // Writer of ours exists yet to borrow from it).
        let held = unsafe { &mut *self.held.get() };
        // The segment the last write in this process used, unless another process has
        // grown it since: no reference-count or lock traffic on the write path.
        if held.as_ref().is_none_or(|m| m.generation != generation) {
            match self.current() {
                Ok(m) => *held = Some(m),
                Err(e) => {
                    let _ = raw.unlock();
                    return Err(e);
                }
            }
        }
        let w = Writer {
            region: self,
            _not_send: std::marker::PhantomData,
        };
        Ok(Some((w, how)))
    }
}

impl Writer<'_> {
    /// The data segment this writer works on (current: the lock keeps it so).
    #[inline]
    pub(super) fn m(&self) -> &Mapped {
        // SAFETY: only the thread holding the writer lock touches `held` (see
        // `Region::held`) and this Writer guards that lock; `lock` filled it and only
        // `publish` (taking `&mut self`, so no borrow from here is alive) replaces it.
        let held = unsafe { &*self.region.held.get() };
        held.as_deref().expect("`lock` maps the current segment")
    }

    fn label(&self) -> &str {
        &self.region.label
    }

    fn corrupted(&self, what: String) -> RegionError {
        self.region.corrupted(what)
    }

    fn seq_begin(&self) {
        let s = self.m().hdr().seq.load(Ordering::Relaxed);
        self.m().hdr().seq.store(s | 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    fn seq_end(&self) {
        let s = self.m().hdr().seq.load(Ordering::Relaxed);
        self.m()
            .hdr()
            .seq
            .store((s | 1).wrapping_add(1), Ordering::Release);
    }

    /// Whether the current segment has room for `need`; grows (compacting) if not.
    fn ensure(&mut self, need: Need) -> RegionResult<()> {
        let used = self.m().hdr().used.load(Ordering::Relaxed);
        if used < FIRST_REC || used % 8 != 0 || used > self.m().cap {
            return Err(self.corrupted(format!("{used} bytes used of {}", self.m().cap)));
        }
        let fits_bytes = used + need.bytes <= self.m().cap;
        let fits_slot = match self.region.kind {
            IndexKind::Hash => {
                let taken = self
                    .m()
                    .hdr()
                    .live
                    .load(Ordering::Relaxed)
                    .saturating_add(self.m().hdr().dead.load(Ordering::Relaxed));
                !need.new_slot
                    || taken.saturating_add(1).saturating_mul(4) <= self.m().slots as u64 * 3
            }
            IndexKind::List => {
                !need.new_slot
                    || self.m().hdr().live.load(Ordering::Relaxed) < self.m().slots as u64
            }
        };
        if fits_bytes && fits_slot {
            return Ok(());
        }
        self.compact(need.bytes, u64::from(need.new_slot))
    }

    /// Copies the live records (after `edit`) into a fresh data segment of generation
    /// g + 1 with room for `extra_bytes` and `extra_entries` more, publishes it and
    /// unlinks segment g.
    fn rebuild(
        &mut self,
        extra_bytes: u64,
        extra_entries: u64,
        edit: impl FnOnce(&mut Vec<Rec>) -> RegionResult<()>,
    ) -> RegionResult<()> {
        let mut recs = self.m().collect(self.region.kind, self.label())?;
        edit(&mut recs)?;
        self.rebuild_from(&recs, extra_bytes, extra_entries)
    }

    /// Writes `recs` into a fresh data segment with room for `extra_bytes` and
    /// `extra_entries` more and publishes it.
    fn rebuild_from(
        &mut self,
        recs: &[Rec],
        extra_bytes: u64,
        extra_entries: u64,
    ) -> RegionResult<()> {
        let live_bytes: u64 = recs.iter().map(|r| rec_len(r.body.len())).sum();
        let (slots, cap) = Self::geometry(
            live_bytes.saturating_add(extra_bytes),
            (recs.len() as u64).saturating_add(extra_entries),
            2,
        );
        let m = self.create_next(slots, cap)?;
        let filled = (|| {
            let mut used = FIRST_REC;
            for (idx, r) in recs.iter().enumerate() {
                m.write(used, r.key(), r.value())?;
                m.index_new(self.region.kind, idx, r.key(), used);
                used += rec_len(r.body.len());
            }
            m.hdr().used.store(used, Ordering::Relaxed);
            m.hdr().live.store(recs.len() as u64, Ordering::Relaxed);
            Ok(())
        })();
        self.finish(m, filled)
    }

    /// Creates the next data segment (after the current generation) of this geometry.
    fn create_next(&self, slots: usize, cap: u64) -> RegionResult<Mapped> {
        create_data(
            &self.region.ctrl,
            self.region.inc,
            &self.region.data_spec,
            Some(self.m().generation),
            slots,
            cap,
        )
    }

    /// Publishes `m` if it was filled; else removes it again (this writer made it
    /// moments ago and nobody else knows it), so a failed growth leaves nothing.
    fn finish(&mut self, m: Mapped, filled: RegionResult<()>) -> RegionResult<()> {
        match filled {
            Ok(()) => {
                self.publish(m);
                Ok(())
            }
            Err(e) => {
                m.unlink_name();
                Err(e)
            }
        }
    }

    /// Sizes a data segment for `live_bytes` of records and `entries` entries.
    /// `room`: record area per live byte (before rounding up to whole pages). The
    /// record area is not rounded to a power of two (only the slots are, for the
    /// probe mask): that cost up to twice the memory at every size (10^5 manager
    /// registry entries: 16.8 MB of records where 11.2 MB do).
    fn geometry(live_bytes: u64, entries: u64, room: u64) -> (usize, u64) {
        const PAGE: u64 = 4096;
        let cap = live_bytes
            .saturating_mul(room)
            .max(MIN_CAP as u64)
            .checked_next_multiple_of(PAGE)
            .unwrap_or(u64::MAX - PAGE + 1);
        let slots = entries
            .saturating_mul(2)
            .max(MIN_SLOTS as u64)
            .next_power_of_two();
        (slots as usize, cap)
    }

    /// `rebuild` without an edit, streaming: the live records are copied straight
    /// from the current segment into segment g + 1 (one reused buffer, each record's
    /// checksum checked on the way), with room for `extra_bytes` and `extra_entries`.
    fn compact(&mut self, extra_bytes: u64, extra_entries: u64) -> RegionResult<()> {
        let n = match self.region.kind {
            IndexKind::Hash => self.m().slots,
            IndexKind::List => self.list_len()?,
        };
        // Pass 1: the live records' sizes (headers checked).
        let (mut live, mut count) = (0u64, 0u64);
        for i in 0..n {
            match Mapped::slot_off(self.m().slot(i).load(Ordering::Acquire)) {
                Some(off) => {
                    let (_, k, v, _) = self.m().header(off, self.label())?;
                    live += rec_len(k as usize + v as usize);
                    count += 1;
                }
                None if self.region.kind == IndexKind::List => {
                    return Err(self.corrupted(format!("element {i} has an empty slot")));
                }
                None => {}
            }
        }
        // A segment that filled up mostly with garbage (overwrites and removals, not
        // growth) gets twice the usual room: compactions (a new segment, every live
        // record copied) then come after at least 3x the live bytes of writes, not 1x.
        let room = if live.saturating_mul(2) <= self.m().hdr().used.load(Ordering::Relaxed) {
            4
        } else {
            2
        };
        let (slots, cap) = Self::geometry(
            live.saturating_add(extra_bytes),
            count.saturating_add(extra_entries),
            room,
        );
        let m = self.create_next(slots, cap)?;
        let filled = self.copy_into(&m, n);
        self.finish(m, filled)
    }

    /// Pass 2 of `compact`: copies the live records of the first `n` slots into `m`.
    fn copy_into(&self, m: &Mapped, n: usize) -> RegionResult<()> {
        // Records are immutable and we hold the lock, so only a foreign scribbler
        // could change them in between: every copy is checked again, and the new
        // segment's bounds are checked before each write.
        let mut used = FIRST_REC;
        let mut buf = Vec::new();
        let mut idx = 0;
        for i in 0..n {
            let Some(off) = Mapped::slot_off(self.m().slot(i).load(Ordering::Acquire)) else {
                if self.region.kind == IndexKind::List {
                    return Err(self.corrupted(format!("element {i} has an empty slot")));
                }
                continue;
            };
            let klen = self.m().copy_raw(off, self.label(), &mut buf)?;
            let len = buf.len() as u64;
            if used + len > m.cap || idx >= m.slots {
                return Err(self.corrupted("the records changed during compaction".into()));
            }
            m.store_words(m.rec_base() + used as usize, &buf)?;
            m.index_new(self.region.kind, idx, &buf[REC_HDR..REC_HDR + klen], used);
            used += len;
            idx += 1;
        }
        m.hdr().used.store(used, Ordering::Relaxed);
        m.hdr().live.store(idx as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Copies every record that passes its checks into a fresh data segment and
    /// publishes it; reports the ones dropped (see [`SalvageReport`]).
    pub(crate) fn salvage(&mut self) -> RegionResult<SalvageReport> {
        let n = match self.region.kind {
            IndexKind::Hash => self.m().slots,
            // A forged length is bounded by the index.
            IndexKind::List => usize::try_from(self.m().hdr().live.load(Ordering::Relaxed))
                .map_or(self.m().slots, |l| l.min(self.m().slots)),
        };
        let mut recs = Vec::new();
        let mut report = SalvageReport::default();
        for i in 0..n {
            let v = self.m().slot(i).load(Ordering::Acquire);
            let Some(off) = Mapped::slot_off(v) else {
                if self.region.kind == IndexKind::List {
                    report.dropped.push((i as u64, "empty slot".into()));
                }
                continue;
            };
            match self.m().read(off, self.label()) {
                Ok(r) => recs.push(r),
                Err(e) => report.dropped.push((i as u64, e.to_string())),
            }
        }
        report.kept = recs.len() as u64;
        self.rebuild_from(&recs, 0, 0)?;
        report.generation = self.m().generation;
        Ok(report)
    }

    /// Publishes `m` as the next generation and unlinks the current segment (if its
    /// header says this incarnation made it).
    fn publish(&mut self, m: Mapped) {
        // Publish: everything above happens-before a reader's Acquire of the generation.
        self.region
            .gen_word()
            .store(m.generation, Ordering::Release);
        // The segment published over: the one this writer has mapped (checked when
        // mapped), if the name still names it.
        self.m().unlink_name();
        let m = Arc::new(m);
        *self.region.map.write().unwrap_or_else(|p| p.into_inner()) = m.clone();
        // SAFETY: this Writer guards the writer lock, so no other thread touches
        // `held`; `&mut self` keeps every `&Mapped` from `self.m()` out of scope.
        unsafe { *self.region.held.get() = Some(m) };
    }

    /// After a dead writer: removes its leftovers and rebuilds (see the module docs).
    fn repair(&mut self) -> RegionResult<()> {
        self.remove_leftovers()?;
        self.compact(0, 0)
    }

    /// Removes this incarnation's segments around the current generation that a
    /// dead writer left: unpublished ones after it, published-over ones before it
    /// (each only if its header says this incarnation made it).
    fn remove_leftovers(&self) -> RegionResult<()> {
        let name = ctrl_name(&self.region.ctrl)?;
        let (generation, inc) = (self.m().generation, self.region.inc);
        let lo = generation.saturating_sub(SKIP_GENERATIONS);
        let hi = generation.saturating_add(SKIP_GENERATIONS);
        for g in (lo..=hi).filter(|g| *g != generation) {
            let leftover = data_segment_name(name, inc, g);
            unlink_own(&leftover, &self.region.data_spec, inc, |h| h == g);
        }
        Ok(())
    }

    /// Reserves and writes a record; returns its offset.
    fn append(&self, key: &[u8], value: &[u8]) -> RegionResult<u64> {
        let used = self.m().hdr().used.load(Ordering::Relaxed);
        let len = rec_len(key.len() + value.len());
        if used.checked_add(len).is_none_or(|e| e > self.m().cap) {
            return Err(self.corrupted("no room after growth".into()));
        }
        // Reserve first: a writer killed past this point never reuses these bytes.
        self.m().hdr().used.store(used + len, Ordering::Relaxed);
        self.m().write(used, key, value)?;
        Ok(used)
    }

    fn add_garbage(&self, len: u64) {
        update(&self.m().hdr().garbage, |g| g.saturating_add(len));
    }

    /// A dict lookup under the lock, handing the value bytes to `f`.
    pub(crate) fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        match self.m().probe(key, key_hash(key), self.label())? {
            Probe::Found(_, off, _) => self
                .m()
                .with_record(off, self.label(), |body, klen| f(&body[klen..]))
                .map(Some)
                .map_err(unbox),
            _ => Ok(None),
        }
    }

    /// Inserts or replaces; whether a value was replaced.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> RegionResult<bool> {
        Ok(self.put_with(key, value, |_| ())?.is_some())
    }

    /// Inserts or replaces: one record append and one slot store (after a growth when
    /// it does not fit); hands the replaced value's bytes to `old`.
    pub(crate) fn put_with<R>(
        &mut self,
        key: &[u8],
        value: &[u8],
        old: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        let hash = key_hash(key);
        let bytes = rec_len(key.len() + value.len());
        let mut probe = self.m().probe(key, hash, self.label())?;
        let before = self.m().generation;
        self.ensure(Need {
            bytes,
            new_slot: !matches!(probe, Probe::Found(..)),
        })?;
        if self.m().generation != before {
            // A new index: probe it.
            probe = self.m().probe(key, hash, self.label())?;
        }
        self.seq_begin();
        let r = (|| {
            let off = self.append(key, value)?;
            let slot = (hash >> 48) << 48 | off;
            match probe {
                Probe::Found(i, old_off, old_len) => {
                    self.m().slot(i).store(slot, Ordering::Release);
                    self.add_garbage(old_len);
                    Ok(Some(old_off))
                }
                Probe::Vacant(i) => {
                    let live = self.index_count_plus_one(&self.m().hdr().live, "live entries")?;
                    let was = self.m().slot(i).load(Ordering::Relaxed);
                    self.m().slot(i).store(slot, Ordering::Release);
                    if was == TOMB {
                        update(&self.m().hdr().dead, |n| n.saturating_sub(1));
                    }
                    self.m().hdr().live.store(live, Ordering::Relaxed);
                    Ok(None)
                }
                Probe::Full => Err(self.corrupted("no free slot after growth".into())),
            }
        })();
        self.seq_end();
        // The replaced record stays in this segment (garbage is only dropped by a
        // rebuild, which takes this lock).
        match r? {
            Some(off) => self
                .m()
                .with_record(off, self.label(), |body, klen| old(&body[klen..]))
                .map(Some)
                .map_err(unbox),
            None => Ok(None),
        }
    }

    /// The index counter `word` (live entries, tombstones) plus one, checked: it is a
    /// word another process could have forged, and no count exceeds the slots.
    fn index_count_plus_one(&self, word: &AtomicU64, what: &str) -> RegionResult<u64> {
        let n = word.load(Ordering::Relaxed);
        n.checked_add(1)
            .filter(|n| *n <= self.m().slots as u64)
            .ok_or_else(|| {
                self.corrupted(format!(
                    "{n} {what} in an index of {} slots",
                    self.m().slots
                ))
            })
    }

    /// Removes a key; hands the removed value's bytes to `old`.
    pub(crate) fn remove_with<R>(
        &mut self,
        key: &[u8],
        old: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        let Probe::Found(i, off, len) = self.m().probe(key, key_hash(key), self.label())? else {
            return Ok(None);
        };
        let dead = self.index_count_plus_one(&self.m().hdr().dead, "tombstones")?;
        self.seq_begin();
        self.m().slot(i).store(TOMB, Ordering::Release);
        update(&self.m().hdr().live, |n| n.saturating_sub(1));
        self.m().hdr().dead.store(dead, Ordering::Relaxed);
        self.add_garbage(len);
        self.seq_end();
        self.m()
            .with_record(off, self.label(), |body, klen| old(&body[klen..]))
            .map(Some)
            .map_err(unbox)
    }

    /// Empties the collection (a fresh, small data segment).
    pub(crate) fn clear(&mut self) -> RegionResult<()> {
        self.rebuild(0, 0, |recs| {
            recs.clear();
            Ok(())
        })
    }

    /// The list's length under the lock, checked against the index.
    pub(crate) fn list_len(&self) -> RegionResult<usize> {
        let len = self.m().hdr().live.load(Ordering::Relaxed);
        if len > self.m().slots as u64 {
            return Err(self.corrupted(format!("length {len} over {} slots", self.m().slots)));
        }
        Ok(len as usize)
    }

    fn list_off(&self, i: usize) -> RegionResult<u64> {
        let v = self.m().slot(i).load(Ordering::Acquire);
        Mapped::slot_off(v).ok_or_else(|| self.corrupted(format!("element {i} has an empty slot")))
    }

    /// Element `i` (below the length, checked by the caller) handed to `f`, with the
    /// record's length.
    fn list_with<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> RegionResult<(R, u64)> {
        let off = self.list_off(i)?;
        self.m()
            .with_record(off, self.label(), |body, klen| {
                (f(&body[klen..]), rec_len(body.len()))
            })
            .map_err(unbox)
    }

    /// Element `i` under the lock, handed to `f`; `None` past the end.
    pub(crate) fn list_get_with<R>(
        &self,
        i: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<Option<R>> {
        if i >= self.list_len()? {
            return Ok(None);
        }
        Ok(Some(self.list_with(i, f)?.0))
    }

    /// Appends an element.
    pub(crate) fn push(&mut self, value: &[u8]) -> RegionResult<()> {
        self.ensure(Need {
            bytes: rec_len(value.len()),
            new_slot: true,
        })?;
        let len = self.list_len()?;
        let off = self.append(&[], value)?;
        self.seq_begin();
        self.m().slot(len).store(off, Ordering::Release);
        // The length publishes the element.
        self.m().hdr().live.store(len as u64 + 1, Ordering::Release);
        self.seq_end();
        Ok(())
    }

    /// Removes the last element, handed to `f`.
    pub(crate) fn pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> RegionResult<Option<R>> {
        let len = self.list_len()?;
        if len == 0 {
            return Ok(None);
        }
        let (r, old_len) = self.list_with(len - 1, f)?;
        self.seq_begin();
        self.m().hdr().live.store(len as u64 - 1, Ordering::Release);
        self.add_garbage(old_len);
        self.seq_end();
        Ok(Some(r))
    }

    /// Replaces element `i` (checked by the caller); hands the old one to `f`.
    pub(crate) fn set_with<R>(
        &mut self,
        i: usize,
        value: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> RegionResult<R> {
        self.ensure(Need {
            bytes: rec_len(value.len()),
            new_slot: false,
        })?;
        let (r, old_len) = self.list_with(i, f)?;
        let off = self.append(&[], value)?;
        self.seq_begin();
        self.m().slot(i).store(off, Ordering::Release);
        self.add_garbage(old_len);
        self.seq_end();
        Ok(r)
    }

    /// Inserts or removes in the middle of a list: a rebuild (as `Vec::insert` moves
    /// the tail, this copies it), so readers never see a half-shifted index.
    pub(crate) fn list_edit(
        &mut self,
        extra: u64,
        edit: impl FnOnce(&mut Vec<Rec>) -> RegionResult<()>,
    ) -> RegionResult<()> {
        self.rebuild(extra, 1, edit)
    }
}
