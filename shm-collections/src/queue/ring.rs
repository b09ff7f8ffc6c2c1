//! The crash-safe ring under every queue and pipe: variable-size frames in a byte ring,
//! guarded by one robust [`RawMutex`], with futex sequence words to sleep on.
//!
//! Layout of one ring (at a 64-byte aligned offset of a payload): a [`RingCtl`] of
//! [`CTL_LEN`] bytes, then `capacity` data bytes. A frame is an 8-byte header
//! (`len | FRAME_MAGIC << 32`) and `len` payload bytes padded to a multiple of 8; the
//! payload may wrap around the end of the data area, headers never do.
//!
//! Every change happens under the lock, in three steps: write an *undo record* (the
//! state before, then the operation's tag), change the state and the frames, clear the
//! tag. A holder killed at any instruction leaves either no tag (nothing changed yet,
//! or everything did) or a tag with the full state before: the next locker, told by the
//! lock that the holder died, puts that state back. So a half-written message is never
//! delivered, and a message a consumer was copying out when it died stays in the ring
//! for the next consumer. The next locker then walks the frames to check them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_core::Object;
use shm_sync::{Acquired, RawError, RawMutex};

use super::futex;
use super::{QueueError, QueueResult, QueueStats};

/// The longest a `_nowait` call waits for the ring's lock (held for nanoseconds by a
/// live holder): past it, the call fails with `QueueError::Lock` instead of waiting.
const TRY_LOCK_WAIT: Duration = Duration::from_millis(20);

/// Bytes of a ring's control block.
pub(crate) const CTL_LEN: usize = 192;
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER: u64 = 8;
/// High half of every frame header: catches a head that points into a payload.
const FRAME_MAGIC: u64 = 0x5155_4531; // "QUE1"
/// Longest sleep between two checks of the state: a producer killed between publishing
/// and waking delays a sleeping consumer by at most this.
const SLICE: Duration = Duration::from_millis(50);

/// Undo-record tags.
const OP_NONE: u64 = 0;
const OP_CHANGE: u64 = 0x0d0d_0001;

/// The control block. Atomics only: every process maps it and some fields are read
/// without the lock (sizes for `qsize`, the sequence words to sleep on).
#[repr(C)]
pub(crate) struct RingCtl {
    lock: RawMutex,
    undo_op: AtomicU64,
    undo_head: AtomicU64,
    undo_used: AtomicU64,
    undo_count: AtomicU64,
    undo_unfinished: AtomicU64,
    _pad0: AtomicU64,
    // Written under the lock, read anywhere.
    head: AtomicU64,
    used: AtomicU64,
    count: AtomicU64,
    unfinished: AtomicU64,
    puts: AtomicU64,
    gets: AtomicU64,
    recovered: AtomicU64,
    lost: AtomicU64,
    // Set at creation, then read once per attach.
    capacity: AtomicU64,
    max_messages: AtomicU64,
    closed: AtomicU32,
    not_empty: AtomicU32,
    not_full: AtomicU32,
    all_done: AtomicU32,
    get_waiters: AtomicU32,
    put_waiters: AtomicU32,
    join_waiters: AtomicU32,
    _pad1: [AtomicU32; 5],
}

const _: () = assert!(size_of::<RingCtl>() == CTL_LEN);
const _: () = assert!(align_of::<RingCtl>() == 8);

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Not at all: `Full` / `Empty`.
    Try,
    /// Until this instant: `Timeout` after.
    Until(Instant, Duration),
    /// As long as it takes.
    Forever,
}

impl Mode {
    pub(crate) fn timeout(d: Duration) -> Mode {
        match Instant::now().checked_add(d) {
            Some(t) => Mode::Until(t, d),
            None => Mode::Forever,
        }
    }
}

/// Where a ring lies in its object, and its limits (read once, at attach: later
/// writes of these words by another process are ignored).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Offset of the control block in the payload (a multiple of 64).
    pub offset: usize,
    /// Data bytes (a multiple of 8, at least 16).
    pub capacity: u64,
    /// Most messages at once.
    pub max_messages: u64,
}

impl Geometry {
    /// Payload bytes a ring of `capacity` data bytes takes, rounded to 64.
    pub(crate) fn ring_len(capacity: u64) -> usize {
        (CTL_LEN + capacity as usize).next_multiple_of(64)
    }

    /// Checks sizes asked for at creation: `bytes` rounded up to 8.
    pub(crate) fn check_new(messages: usize, bytes: usize) -> QueueResult<(u64, u64)> {
        let capacity = (bytes as u64).next_multiple_of(8);
        if messages == 0 || bytes < 16 || capacity > (1 << 40) {
            return Err(QueueError::InvalidSize {
                what: format!(
                    "expected at least 1 message and 16 to 2^40 bytes, found {messages} messages and {bytes} bytes"
                ),
            });
        }
        Ok((capacity, messages as u64))
    }

    /// Writes a fresh ring's limits into the zeroed object (before it is published).
    pub(crate) fn init(obj: &Object, offset: usize, capacity: u64, max_messages: u64) {
        // SAFETY: the caller sized the payload for the ring at `offset`.
        let ctl = unsafe { ctl_at(obj, offset) };
        ctl.capacity.store(capacity, Ordering::Relaxed);
        ctl.max_messages.store(max_messages, Ordering::Relaxed);
    }

    /// Reads and checks the limits of the ring at `offset` of an opened object.
    pub(crate) fn attach(obj: &Object, offset: usize, label: &str) -> QueueResult<Geometry> {
        let corrupted = |what: String| QueueError::Corrupted {
            name: label.to_owned(),
            what,
        };
        if offset % 64 != 0
            || offset
                .checked_add(CTL_LEN)
                .is_none_or(|e| e > obj.payload_len())
        {
            return Err(corrupted(format!(
                "expected a ring control block at offset {offset}, found a payload of {} bytes",
                obj.payload_len()
            )));
        }
        // SAFETY: just checked that the control block lies in the payload.
        let ctl = unsafe { ctl_at(obj, offset) };
        let capacity = ctl.capacity.load(Ordering::Relaxed);
        let max_messages = ctl.max_messages.load(Ordering::Relaxed);
        let room = (obj.payload_len() - offset - CTL_LEN) as u64;
        if capacity < 16 || capacity % 8 != 0 || capacity > room {
            return Err(corrupted(format!(
                "expected a capacity that is a multiple of 8 between 16 and {room} bytes, found {capacity}"
            )));
        }
        if max_messages == 0 {
            return Err(corrupted(
                "expected a message limit of at least 1, found 0".into(),
            ));
        }
        Ok(Geometry {
            offset,
            capacity,
            max_messages,
        })
    }
}

/// # Safety
/// `offset + CTL_LEN <= obj.payload_len()` and `offset` is a multiple of 64.
unsafe fn ctl_at(obj: &Object, offset: usize) -> &RingCtl {
    // SAFETY: in bounds (the caller), aligned (64-byte aligned payload); RingCtl is only
    // atomics (RawMutex too), valid for any bits and for concurrent access.
    unsafe { &*obj.payload_ptr().add(offset).cast::<RingCtl>() }
}

/// A ring of an attached object: its control block, data area and limits.
pub(crate) struct Ring<'a> {
    ctl: &'a RingCtl,
    data: *mut u8,
    geo: Geometry,
    label: &'a str,
}

/// What a locked ring's state says, checked.
#[derive(Clone, Copy)]
struct State {
    head: u64,
    used: u64,
    count: u64,
    unfinished: u64,
}

impl<'a> Ring<'a> {
    /// The ring `geo` (from [`Geometry::attach`] on this very object) of `obj`.
    pub(crate) fn new(obj: &'a Object, geo: Geometry, label: &'a str) -> Ring<'a> {
        // SAFETY: `Geometry::attach` checked that control block and data area lie in
        // the payload.
        let ctl = unsafe { ctl_at(obj, geo.offset) };
        let data = obj.payload_ptr().wrapping_add(geo.offset + CTL_LEN);
        Ring {
            ctl,
            data,
            geo,
            label,
        }
    }

    fn corrupted(&self, what: String) -> QueueError {
        QueueError::Corrupted {
            name: self.label.to_owned(),
            what,
        }
    }

    /// Largest message (payload bytes) that fits at all.
    pub(crate) fn max_message_len(&self) -> usize {
        (self.geo.capacity - FRAME_HEADER).min(u64::from(u32::MAX)) as usize
    }

    // ---- locking and repair ----

    fn lock(&self, mode: Mode) -> QueueResult<Locked<'_, 'a>> {
        let r = match mode {
            Mode::Forever => self.ctl.lock.lock(),
            Mode::Try => match self.ctl.lock.try_lock() {
                // Not a reason to say Full/Empty: the holder leaves within nanoseconds.
                // Bounded all the same, so that `_nowait` never waits for long on a holder
                // that only looks alive (a forged word, a holder in another namespace).
                Err(RawError::WouldBlock) => self.ctl.lock.lock_timeout(TRY_LOCK_WAIT),
                other => other,
            },
            Mode::Until(t, _) => self
                .ctl
                .lock
                .lock_timeout(t.saturating_duration_since(Instant::now())),
        };
        let acquired = r.map_err(|e| match (e, mode) {
            (RawError::Timeout, Mode::Until(_, d)) => QueueError::Timeout {
                name: self.label.to_owned(),
                waited: d,
            },
            (source, _) => QueueError::Lock {
                name: self.label.to_owned(),
                source,
            },
        })?;
        let locked = Locked { ring: self };
        if acquired != Acquired::Clean {
            locked.repair()?;
            let _ = self.ctl.lock.mark_consistent();
        }
        Ok(locked)
    }

    // ---- lock-free views ----

    /// Messages in the ring (a snapshot).
    pub(crate) fn len(&self) -> u64 {
        self.ctl.count.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ctl.closed.load(Ordering::Acquire) != 0
    }

    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats {
            messages: self.ctl.count.load(Ordering::Relaxed),
            bytes_used: self.ctl.used.load(Ordering::Relaxed),
            puts: self.ctl.puts.load(Ordering::Relaxed),
            gets: self.ctl.gets.load(Ordering::Relaxed),
            recovered: self.ctl.recovered.load(Ordering::Relaxed),
            lost: self.ctl.lost.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.ctl.unfinished.load(Ordering::Acquire)
    }

    /// Whether `put` of a `len`-byte message would find room now (a snapshot).
    pub(crate) fn would_fit(&self, len: usize) -> bool {
        let frame = frame_len(len as u64);
        self.ctl.count.load(Ordering::Acquire) < self.geo.max_messages
            && self.ctl.used.load(Ordering::Acquire).saturating_add(frame) <= self.geo.capacity
    }

    // ---- operations ----

    /// Appends one message; waits for room as `mode` says, spinning `spin` times first.
    pub(crate) fn put(&self, msg: &[u8], mode: Mode, spin: u32) -> QueueResult<()> {
        self.put_many(&[msg], mode, spin).map(|_| ())
    }

    /// Appends messages in order under as few lock acquisitions as room allows;
    /// returns how many went in. Waits (as `mode` says) only while none fits.
    pub(crate) fn put_many(&self, msgs: &[&[u8]], mode: Mode, spin: u32) -> QueueResult<usize> {
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
        let mut spins = spin;
        loop {
            let seq = self.ctl.not_full.load(Ordering::SeqCst);
            if self.is_closed() {
                return Err(self.closed());
            }
            if spins == 0 || self.would_fit(msgs[0].len()) {
                let locked = self.lock(mode)?;
                let n = locked.push(msgs)?;
                drop(locked);
                if n > 0 {
                    self.signal(&self.ctl.not_empty, &self.ctl.get_waiters);
                    return Ok(n);
                }
                // The lock-free look said there was room but there was none (a racing
                // producer, or a forged count): spend the spin budget, then sleep. Every
                // round must shrink the budget, or a forged count spins for ever.
                if spins == 0 {
                    self.sleep(&self.ctl.not_full, &self.ctl.put_waiters, seq, mode, || {
                        QueueError::Full {
                            name: self.label.to_owned(),
                        }
                    })?;
                } else {
                    spins -= 1;
                }
            } else {
                spins -= 1;
                std::hint::spin_loop();
            }
        }
    }

    /// Takes the oldest message into `out` (cleared first).
    pub(crate) fn get(&self, out: &mut Vec<u8>, mode: Mode, spin: u32) -> QueueResult<()> {
        self.get_many(1, mode, spin, &mut |bytes| {
            out.clear();
            out.extend_from_slice(bytes);
        })?;
        Ok(())
    }

    /// Takes up to `max` messages (at least one, waiting as `mode` says) under one lock
    /// acquisition, handing each to `each` (with the lock held: it must be quick and
    /// must not touch this ring). Returns how many.
    pub(crate) fn get_many(
        &self,
        max: usize,
        mode: Mode,
        spin: u32,
        each: &mut dyn FnMut(&[u8]),
    ) -> QueueResult<usize> {
        let mut spins = spin;
        loop {
            let seq = self.ctl.not_empty.load(Ordering::SeqCst);
            if spins == 0 || self.len() > 0 || self.is_closed() {
                let locked = self.lock(mode)?;
                let n = locked.pop(max.max(1), each)?;
                let closed = self.is_closed();
                drop(locked);
                if n > 0 {
                    self.signal(&self.ctl.not_full, &self.ctl.put_waiters);
                    return Ok(n);
                }
                if closed {
                    return Err(self.closed());
                }
                // As in `put_many`: a look that saw messages but a pop that found none
                // (a racing consumer, or a forged count) spends the spin budget too.
                if spins == 0 {
                    self.sleep(
                        &self.ctl.not_empty,
                        &self.ctl.get_waiters,
                        seq,
                        mode,
                        || QueueError::Empty {
                            name: self.label.to_owned(),
                        },
                    )?;
                } else {
                    spins -= 1;
                }
            } else {
                spins -= 1;
                std::hint::spin_loop();
            }
        }
    }

    /// One finished task (`JoinableQueue::task_done`).
    pub(crate) fn task_done(&self) -> QueueResult<()> {
        let locked = self.lock(Mode::Forever)?;
        let st = locked.state()?;
        if st.unfinished == 0 {
            return Err(QueueError::TaskDoneTooManyTimes {
                name: self.label.to_owned(),
            });
        }
        locked.begin(st);
        self.ctl
            .unfinished
            .store(st.unfinished - 1, Ordering::Release);
        locked.commit();
        drop(locked);
        if st.unfinished == 1 {
            self.ctl.all_done.fetch_add(1, Ordering::SeqCst);
            if self.ctl.join_waiters.load(Ordering::SeqCst) > 0 {
                futex::wake_all(&self.ctl.all_done);
            }
        }
        Ok(())
    }

    /// Waits until every message put has been marked done.
    pub(crate) fn join(&self, mode: Mode) -> QueueResult<()> {
        loop {
            let seq = self.ctl.all_done.load(Ordering::SeqCst);
            if self.unfinished() == 0 {
                return Ok(());
            }
            self.sleep(
                &self.ctl.all_done,
                &self.ctl.join_waiters,
                seq,
                mode,
                || QueueError::Timeout {
                    name: self.label.to_owned(),
                    waited: Duration::ZERO,
                },
            )?;
        }
    }

    /// Sleeps until a message may be there (or the ring is closed), at most `timeout`;
    /// takes nothing.
    pub(crate) fn wait_not_empty(&self, timeout: Duration) {
        let seq = self.ctl.not_empty.load(Ordering::SeqCst);
        if self.len() > 0 || self.is_closed() {
            return;
        }
        self.ctl.get_waiters.fetch_add(1, Ordering::SeqCst);
        futex::wait(&self.ctl.not_empty, seq, timeout);
        self.ctl.get_waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Marks the ring closed and wakes every sleeper.
    pub(crate) fn close(&self) {
        self.ctl.closed.store(1, Ordering::SeqCst);
        self.wake_everyone();
    }

    fn wake_everyone(&self) {
        for w in [&self.ctl.not_empty, &self.ctl.not_full, &self.ctl.all_done] {
            w.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(w);
        }
    }

    fn closed(&self) -> QueueError {
        QueueError::Closed {
            name: self.label.to_owned(),
        }
    }

    /// After a change another side waits for: bump the word, wake only if someone
    /// sleeps (SeqCst on both sides: a sleeper registers, then re-reads the word).
    #[inline]
    fn signal(&self, word: &AtomicU32, waiters: &AtomicU32) {
        word.fetch_add(1, Ordering::SeqCst);
        if waiters.load(Ordering::SeqCst) > 0 {
            futex::wake_all(word);
        }
    }

    /// Sleeps on `word` while it still reads `seq`, for at most one slice or until the
    /// deadline; `Try` gives `busy()` at once, a passed deadline `Timeout`.
    fn sleep(
        &self,
        word: &AtomicU32,
        waiters: &AtomicU32,
        seq: u32,
        mode: Mode,
        busy: impl FnOnce() -> QueueError,
    ) -> QueueResult<()> {
        let slice = match mode {
            Mode::Try => return Err(busy()),
            Mode::Forever => SLICE,
            Mode::Until(t, d) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(QueueError::Timeout {
                        name: self.label.to_owned(),
                        waited: d,
                    });
                }
                left.min(SLICE)
            }
        };
        waiters.fetch_add(1, Ordering::SeqCst);
        futex::wait(word, seq, slice);
        waiters.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    // ---- data area ----

    /// Copies `src` into the data area at ring offset `off` (wrapping).
    fn write_data(&self, off: u64, src: &[u8]) {
        let cap = self.geo.capacity;
        let first = (src.len() as u64).min(cap - off) as usize;
        // SAFETY: off < capacity, first <= capacity - off, the rest (< capacity) starts
        // at 0: all inside the data area (checked at attach). The bytes are written only
        // under the ring's lock, which this thread holds; `src` is local memory.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(off as usize), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data, src.len() - first);
        }
    }

    /// Copies `len` bytes from ring offset `off` (wrapping) to `each`, through a
    /// contiguous view when the bytes do not wrap.
    fn read_data(&self, off: u64, len: usize, scratch: &mut Vec<u8>, each: &mut dyn FnMut(&[u8])) {
        let cap = self.geo.capacity;
        let first = (len as u64).min(cap - off) as usize;
        if first == len {
            // SAFETY: off + len <= capacity: inside the data area; under the lock,
            // which every writer of these bytes takes, so they do not change while
            // the slice lives (it does not outlive this call).
            let bytes = unsafe { std::slice::from_raw_parts(self.data.add(off as usize), len) };
            each(bytes);
        } else {
            scratch.clear();
            scratch.reserve(len);
            // SAFETY: as above, in two pieces: off..capacity and 0..len-first
            // (len <= capacity); `scratch` has room for len bytes.
            unsafe {
                let d = scratch.as_mut_ptr();
                std::ptr::copy_nonoverlapping(self.data.add(off as usize), d, first);
                std::ptr::copy_nonoverlapping(self.data, d.add(first), len - first);
                scratch.set_len(len);
            }
            each(scratch);
        }
    }

    fn header_at(&self, off: u64) -> &AtomicU64 {
        // SAFETY: off is a multiple of 8 below capacity (a multiple of 8): the 8 bytes
        // lie in the data area, 8-aligned (the area starts at a multiple of 64).
        unsafe { &*self.data.add(off as usize).cast::<AtomicU64>() }
    }
}

fn frame_len(len: u64) -> u64 {
    FRAME_HEADER + len.next_multiple_of(8)
}

/// The ring with its lock held by this thread; unlocks on drop.
struct Locked<'r, 'a> {
    ring: &'r Ring<'a>,
}

impl Drop for Locked<'_, '_> {
    fn drop(&mut self) {
        let _ = self.ring.ctl.lock.unlock();
    }
}

impl Locked<'_, '_> {
    /// Reads and checks the state.
    fn state(&self) -> QueueResult<State> {
        let c = self.ring.ctl;
        let st = State {
            head: c.head.load(Ordering::Relaxed),
            used: c.used.load(Ordering::Relaxed),
            count: c.count.load(Ordering::Relaxed),
            unfinished: c.unfinished.load(Ordering::Relaxed),
        };
        let cap = self.ring.geo.capacity;
        if st.head >= cap
            || st.head % 8 != 0
            || st.used > cap
            || st.used % 8 != 0
            || st.count > self.ring.geo.max_messages
            || (st.count == 0) != (st.used == 0)
            || st.used < st.count.saturating_mul(FRAME_HEADER)
        {
            return Err(self.ring.corrupted(format!(
                "expected head < {cap}, used <= {cap} (multiples of 8) and at most {} messages, found head {}, used {}, {} messages",
                self.ring.geo.max_messages, st.head, st.used, st.count
            )));
        }
        Ok(st)
    }

    /// Records the state before a change (the tag last).
    fn begin(&self, st: State) {
        let c = self.ring.ctl;
        c.undo_head.store(st.head, Ordering::Relaxed);
        c.undo_used.store(st.used, Ordering::Relaxed);
        c.undo_count.store(st.count, Ordering::Relaxed);
        c.undo_unfinished.store(st.unfinished, Ordering::Relaxed);
        c.undo_op.store(OP_CHANGE, Ordering::Release);
    }

    /// The change is complete.
    fn commit(&self) {
        self.ring.ctl.undo_op.store(OP_NONE, Ordering::Release);
    }

    fn push(&self, msgs: &[&[u8]]) -> QueueResult<usize> {
        let ring = self.ring;
        let c = ring.ctl;
        if ring.is_closed() {
            return Err(ring.closed());
        }
        let st = self.state()?;
        let cap = ring.geo.capacity;
        let (mut used, mut count, mut n) = (st.used, st.count, 0);
        for msg in msgs {
            let frame = frame_len(msg.len() as u64);
            if count >= ring.geo.max_messages || used + frame > cap {
                break;
            }
            if n == 0 {
                self.begin(st);
            }
            let tail = (st.head + used) % cap;
            ring.header_at(tail)
                .store(msg.len() as u64 | FRAME_MAGIC << 32, Ordering::Relaxed);
            ring.write_data((tail + FRAME_HEADER) % cap, msg);
            used += frame;
            count += 1;
            n += 1;
        }
        if n > 0 {
            c.used.store(used, Ordering::Release);
            c.count.store(count, Ordering::Release);
            c.unfinished
                .store(st.unfinished.saturating_add(n as u64), Ordering::Release);
            c.puts.fetch_add(n as u64, Ordering::Relaxed);
            self.commit();
        }
        Ok(n)
    }

    /// The frame at ring offset `off` with `avail` bytes used from there: its payload
    /// length, checked.
    fn frame_at(&self, off: u64, avail: u64) -> QueueResult<u64> {
        let h = self.ring.header_at(off).load(Ordering::Relaxed);
        let len = h & 0xffff_ffff;
        if h >> 32 != FRAME_MAGIC || frame_len(len) > avail {
            return Err(self.ring.corrupted(format!(
                "expected a frame header (magic {FRAME_MAGIC:#x}, length <= {}) at offset {off}, found {h:#018x}",
                avail.saturating_sub(FRAME_HEADER)
            )));
        }
        Ok(len)
    }

    fn pop(&self, max: usize, each: &mut dyn FnMut(&[u8])) -> QueueResult<usize> {
        let ring = self.ring;
        let c = ring.ctl;
        let st = self.state()?;
        if st.count == 0 {
            return Ok(0);
        }
        let cap = ring.geo.capacity;
        let mut scratch = Vec::new();
        let (mut head, mut used, mut count, mut n) = (st.head, st.used, st.count, 0);
        self.begin(st);
        while count > 0 && n < max {
            let len = match self.frame_at(head, used) {
                Ok(len) => len,
                // Hand out what was good; the next call reports the bad frame.
                Err(_) if n > 0 => break,
                Err(e) => {
                    self.commit();
                    return Err(e);
                }
            };
            ring.read_data(
                (head + FRAME_HEADER) % cap,
                len as usize,
                &mut scratch,
                each,
            );
            let frame = frame_len(len);
            head = (head + frame) % cap;
            used -= frame;
            count -= 1;
            n += 1;
        }
        c.head.store(head, Ordering::Release);
        c.used.store(used, Ordering::Release);
        c.count.store(count, Ordering::Release);
        c.gets.fetch_add(n as u64, Ordering::Relaxed);
        self.commit();
        Ok(n)
    }

    /// After a holder died: undo its half-done change, then walk the frames and cut
    /// the ring at the first bad one (only a corrupted mapping has one).
    fn repair(&self) -> QueueResult<()> {
        let ring = self.ring;
        let c = ring.ctl;
        if c.undo_op.load(Ordering::Acquire) != OP_NONE {
            c.head
                .store(c.undo_head.load(Ordering::Relaxed), Ordering::Relaxed);
            c.used
                .store(c.undo_used.load(Ordering::Relaxed), Ordering::Relaxed);
            c.count
                .store(c.undo_count.load(Ordering::Relaxed), Ordering::Relaxed);
            c.unfinished
                .store(c.undo_unfinished.load(Ordering::Relaxed), Ordering::Relaxed);
            c.undo_op.store(OP_NONE, Ordering::Release);
        }
        c.recovered.fetch_add(1, Ordering::Relaxed);
        let cap = ring.geo.capacity;
        let head = c.head.load(Ordering::Relaxed);
        let used = c.used.load(Ordering::Relaxed);
        let count = c.count.load(Ordering::Relaxed);
        if head >= cap || head % 8 != 0 || used > cap || used % 8 != 0 {
            // Nothing in the ring can be trusted: empty it.
            c.head.store(0, Ordering::Relaxed);
            c.used.store(0, Ordering::Relaxed);
            c.count.store(0, Ordering::Relaxed);
            c.lost.fetch_add(count, Ordering::Relaxed);
        } else {
            // Walk: at most capacity / 8 steps, each at least 8 bytes.
            let (mut pos, mut found) = (0u64, 0u64);
            while pos < used && found < ring.geo.max_messages {
                match self.frame_at((head + pos) % cap, used - pos) {
                    Ok(len) => {
                        pos += frame_len(len);
                        found += 1;
                    }
                    Err(_) => break,
                }
            }
            if pos != used || found != count {
                c.used.store(pos, Ordering::Relaxed);
                c.count.store(found, Ordering::Relaxed);
                c.lost
                    .fetch_add(count.saturating_sub(found), Ordering::Relaxed);
            }
        }
        ring.wake_everyone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_core::{Kind, ObjectSpec, SegmentOptions};

    fn ring_object(cap: u64, max: u64) -> (Object, Geometry) {
        let spec = ObjectSpec::new(Kind::new(Kind::USER.start + 77, "RingTest"), 1);
        let obj = Object::create(
            &SegmentOptions::new(),
            &spec,
            Geometry::ring_len(cap),
            |o| {
                Geometry::init(o, 0, cap, max);
                Ok::<_, shm_core::Error>(())
            },
        )
        .unwrap();
        let geo = Geometry::attach(&obj, 0, "t").unwrap();
        (obj, geo)
    }

    #[test]
    fn wraps_and_keeps_order() {
        let (obj, geo) = ring_object(64, 100);
        let r = Ring::new(&obj, geo, "t");
        let mut out = Vec::new();
        for i in 0..50u8 {
            let msg = vec![i; (i % 13) as usize];
            r.put(&msg, Mode::Try, 0).unwrap();
            r.get(&mut out, Mode::Try, 0).unwrap();
            assert_eq!(out, msg);
        }
        assert_eq!(r.max_message_len(), 56);
        assert!(matches!(
            r.put(&[0; 57], Mode::Try, 0),
            Err(QueueError::TooLarge {
                len: 57,
                max: 56,
                ..
            })
        ));
    }

    #[test]
    fn holder_dying_mid_put_or_mid_get_is_undone() {
        let (obj, geo) = ring_object(256, 100);
        let r = Ring::new(&obj, geo, "t");
        r.put(b"first", Mode::Try, 0).unwrap();
        // A thread that ends holding the lock counts as dead. It dies after writing a
        // frame and the new sizes but before clearing the undo tag.
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = Ring::new(&obj, geo, "t");
                let l = r.lock(Mode::Forever).unwrap();
                let st = l.state().unwrap();
                l.begin(st);
                let tail = (st.head + st.used) % 256;
                r.header_at(tail)
                    .store(3 | FRAME_MAGIC << 32, Ordering::Relaxed);
                r.ctl.used.store(st.used + 16, Ordering::Relaxed);
                r.ctl.count.store(2, Ordering::Relaxed);
                std::mem::forget(l);
            });
        });
        // And one that dies mid-get, after moving the head.
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = Ring::new(&obj, geo, "t");
                let l = r.lock(Mode::Forever).unwrap();
                let st = l.state().unwrap();
                l.begin(st);
                r.ctl.head.store(16, Ordering::Relaxed);
                r.ctl.count.store(0, Ordering::Relaxed);
                std::mem::forget(l);
            });
        });
        let mut out = Vec::new();
        r.get(&mut out, Mode::Try, 0).unwrap();
        assert_eq!(out, b"first");
        assert!(matches!(
            r.get(&mut out, Mode::Try, 0),
            Err(QueueError::Empty { .. })
        ));
        assert_eq!(
            r.stats().recovered,
            2,
            "each death was repaired by the next locker"
        );
        assert_eq!(r.stats().lost, 0);
    }

    #[test]
    fn hostile_state_gives_errors() {
        let (obj, geo) = ring_object(64, 4);
        let r = Ring::new(&obj, geo, "t");
        r.put(b"abc", Mode::Try, 0).unwrap();
        r.header_at(0).store(u64::MAX, Ordering::Relaxed);
        let mut out = Vec::new();
        assert!(matches!(
            r.get(&mut out, Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
        r.ctl.used.store(1 << 40, Ordering::Relaxed);
        assert!(matches!(
            r.put(b"x", Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
        r.ctl.used.store(8, Ordering::Relaxed);
        r.ctl.count.store(5, Ordering::Relaxed);
        assert!(matches!(
            r.get(&mut out, Mode::Try, 0),
            Err(QueueError::Corrupted { .. })
        ));
    }
}
