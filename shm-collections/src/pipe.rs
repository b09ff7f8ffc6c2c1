//! [`Pipe`]: CPython's `multiprocessing.Pipe` as two connected [`PipeEnd`]s over one
//! shared object holding a ring per direction (one ring for a one-way pipe).
//!
//! The rings are the queues' crash-safe rings (see the [`queue`](crate::queue) module):
//! a process killed in `send` never delivers half a message, one killed in `recv`
//! while copying leaves the message for the next `recv`. Each end records the process
//! that holds it (pid, start-time token, PID namespace: the workspace's identity), so
//! a `recv` blocked on a peer that died returns [`QueueError::PeerDied`] instead of
//! hanging (CPython's gh-87971), once the messages the peer sent are read. A peer in
//! another PID namespace cannot be proved dead and counts as alive.
//!
//! An end is closed when its last handle anywhere goes (Python's `EOFError` at the
//! other end): every [`PipeEnd`] holds a kernel lock for its end (see `holders`), which
//! the kernel drops with the handle or with its process, `kill -9` included. Dropping the
//! last handle of an end closes the pipe at once; a blocked `recv` (or `poll`) at the
//! other end notices a killed last holder within 100 ms, and then returns
//! [`QueueError::Closed`] once it has read what was sent.

mod holders;

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_core::identity::{Identity, Liveness, OwnerWord};
use shm_core::{Layout, Object, ObjectSpec, SharedObject};

use crate::kinds;
use crate::queue::ring::{Deadline, Dims, Geometry, Ring};
use crate::queue::{DEFAULT_SPIN, Message, QueueError, QueueResult, decode, encode, with_scratch};

/// Layout version of the pipe object. 3: the ends' handles hold kernel locks on bytes 0
/// and 1 of the memfd, and an end without one counts as closed (a version-2 process
/// holds none: the two must not share a pipe).
const PIPE_LAYOUT_VERSION: u32 = 3;
/// Bytes of the pipe's own control block, before the rings.
const PIPE_CTL: usize = 64;
/// How often a blocked `recv` checks that the peer lives.
const PEER_CHECK: Duration = Duration::from_millis(100);

#[repr(C)]
struct PipeCtl {
    duplex: AtomicU32,
    _pad: AtomicU32,
    /// Per end: the process holding it, an [`OwnerWord`] (plain form, `token << 32 | pid`).
    owner: [AtomicU64; 2],
    /// Per end: that process's PID namespace inode.
    pidns: [AtomicU32; 2],
    _pad2: [AtomicU64; 4],
}

const _: () = assert!(size_of::<PipeCtl>() == PIPE_CTL);
// The offsets other processes (and older builds) read: pinned.
const _: () = assert!(std::mem::offset_of!(PipeCtl, owner) == 8);
const _: () = assert!(std::mem::offset_of!(PipeCtl, pidns) == 24);

/// Sizes and direction of a new pipe.
///
/// ```
/// use shm_collections::{Pipe, PipeOptions};
/// let (a, b) = Pipe::with_options(&PipeOptions { duplex: false, ..PipeOptions::default() })?;
/// b.send(&1u8)?;
/// assert_eq!(a.recv::<u8>()?, 1);
/// assert!(a.send(&2u8).is_err()); // a one-way pipe's first end only receives
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeOptions {
    /// Both ends send and receive (`true`, CPython's default), or the first end only
    /// receives and the second only sends.
    pub duplex: bool,
    /// Ring bytes per direction: `messages` slots of at least `bytes / messages` payload
    /// bytes each (see [`QueueSize`](crate::QueueSize)); a message may span every slot.
    pub bytes: usize,
    /// Most messages in flight per direction.
    pub messages: usize,
}

impl Default for PipeOptions {
    /// Duplex, 64 KiB and 1024 messages per direction.
    fn default() -> Self {
        PipeOptions {
            duplex: true,
            bytes: 64 * 1024,
            messages: 1024,
        }
    }
}

/// The shared object under a pair of pipe ends.
struct PipeObject {
    obj: Object,
    /// rings[i] carries messages *to* end i.
    rings: [Option<Geometry>; 2],
    label: Box<str>,
}

impl SharedObject for PipeObject {
    type Error = QueueError;
    type Init = PipeOptions;

    fn layout() -> Layout {
        Layout::Header(
            ObjectSpec::new(kinds::PIPE, PIPE_LAYOUT_VERSION).with_type::<u8>("Pipe<bytes>"),
        )
    }

    fn payload_len(o: &PipeOptions) -> QueueResult<usize> {
        let dims = Dims::new(o.messages, o.bytes)?;
        let rings = if o.duplex { 2 } else { 1 };
        Ok(PIPE_CTL + rings * dims.ring_len())
    }

    fn init_payload(object: &Object, o: PipeOptions) -> QueueResult<()> {
        let dims = Dims::new(o.messages, o.bytes)?;
        Geometry::init(object, PIPE_CTL, dims);
        if o.duplex {
            Geometry::init(object, PIPE_CTL + dims.ring_len(), dims);
        }
        // SAFETY: the payload starts with the control block (payload_len above).
        let ctl = unsafe { ctl(object) };
        ctl.duplex.store(u32::from(o.duplex), Ordering::Relaxed);
        Ok(())
    }

    fn attach(object: Object) -> QueueResult<Self> {
        let label: Box<str> = format!("Pipe {:?}", object.label()).into();
        if object.payload_len() < PIPE_CTL {
            return Err(QueueError::Corrupted {
                name: label.into(),
                what: format!(
                    "expected a payload of at least {PIPE_CTL} bytes, found {}",
                    object.payload_len()
                ),
            });
        }
        // SAFETY: just checked that the control block lies in the payload.
        let duplex = unsafe { ctl(&object) }.duplex.load(Ordering::Relaxed) != 0;
        let first = Geometry::attach(&object, PIPE_CTL, &label)?;
        let rings = if duplex {
            let second = PIPE_CTL + first.dims.ring_len();
            [
                Some(first),
                Some(Geometry::attach(&object, second, &label)?),
            ]
        } else {
            [Some(first), None]
        };
        Ok(PipeObject {
            obj: object,
            rings,
            label,
        })
    }

    fn object(&self) -> &Object {
        &self.obj
    }

    fn object_mut(&mut self) -> &mut Object {
        &mut self.obj
    }
}

/// # Safety
/// `obj.payload_len() >= PIPE_CTL`.
unsafe fn ctl(obj: &Object) -> &PipeCtl {
    // SAFETY: in bounds (the caller), 64-byte aligned payload; atomics only, valid for
    // any bits and for concurrent access.
    unsafe { &*obj.payload_ptr().cast::<PipeCtl>() }
}

impl PipeObject {
    fn ctl(&self) -> &PipeCtl {
        // SAFETY: attach checked payload_len >= PIPE_CTL.
        unsafe { ctl(&self.obj) }
    }

    /// The memfd's own descriptor: it holds no end, so it can ask who does.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.obj.segment().fd()
    }

    /// A new hold of `end` (`None` where the kernel offers none, e.g. without `/proc`:
    /// the end is then closed only by `close`).
    fn hold(&self, end: usize) -> Option<holders::Hold> {
        holders::Hold::take(self.fd()?, end).ok()
    }

    /// Whether no handle of `end` is left anywhere (`false` when it cannot be told).
    fn abandoned(&self, end: usize) -> bool {
        self.fd()
            .is_some_and(|fd| holders::end_held(fd, end).is_ok_and(|held| !held))
    }

    /// Closes both directions.
    fn close(&self) {
        for r in [self.ring(0), self.ring(1)].into_iter().flatten() {
            r.close();
        }
    }

    fn ring(&self, to_end: usize) -> Option<Ring<'_>> {
        self.rings[to_end].map(|g| Ring::new(&self.obj, g, &self.label))
    }

    /// Records the calling process as the holder of `end`.
    fn claim(&self, end: usize) {
        let me = Identity::current_process();
        let c = self.ctl();
        c.pidns[end].store(me.pidns, Ordering::Relaxed);
        c.owner[end].store(OwnerWord::from_id(me.id, me.token).raw(), Ordering::Release);
    }

    /// The recorded holder of `end`, checked before anyone probes it: a pid outside
    /// `1..pid_max` (which `kill(2)` would read as a process group or every process)
    /// is `Corrupted` (shm-core's one validator, [`shm_core::identity::is_valid_pid`]).
    fn holder(&self, end: usize) -> QueueResult<Identity> {
        let c = self.ctl();
        let w = OwnerWord::from_raw(c.owner[end].load(Ordering::Acquire));
        let id = w.id();
        if !shm_core::identity::is_valid_pid(id) {
            return Err(QueueError::Corrupted {
                name: self.label.to_string(),
                what: format!(
                    "expected the pid holding end {end} in 1..{}, found {id}",
                    shm_core::identity::pid_max()
                ),
            });
        }
        Ok(w.identity(c.pidns[end].load(Ordering::Relaxed)))
    }
}

/// CPython's `multiprocessing.Pipe()`: creates a pipe and returns its two ends.
///
/// ```
/// use shm_collections::Pipe;
/// let (a, b) = Pipe::new()?;
/// a.send(&("ping", 1u32))?;
/// assert_eq!(b.recv::<(String, u32)>()?, ("ping".to_string(), 1));
/// b.send_bytes(b"pong")?;
/// assert_eq!(a.recv_bytes()?, b"pong");
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// A duplex pipe with [`PipeOptions::default`] sizes, in an anonymous segment (it
    /// vanishes with the last process holding an end; hand an end to a child with
    /// [`PipeEnd::share`]).
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// a.send(&5u8)?;
    /// assert!(b.poll(std::time::Duration::ZERO)?);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    // CPython's `Pipe()` returns the pair; so does this.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> QueueResult<(PipeEnd, PipeEnd)> {
        Pipe::with_options(&PipeOptions::default())
    }

    /// A pipe with chosen direction and sizes (see [`PipeOptions`]).
    ///
    /// ```
    /// use shm_collections::{Pipe, PipeOptions};
    /// let (a, _b) = Pipe::with_options(&PipeOptions { bytes: 160, messages: 4, ..Default::default() })?;
    /// assert_eq!(a.max_message_len(), 160); // 4 slots of 40 bytes
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn with_options(options: &PipeOptions) -> QueueResult<(PipeEnd, PipeEnd)> {
        let obj = Arc::new(PipeObject::anonymous(*options)?);
        obj.claim(0);
        obj.claim(1);
        let (h0, h1) = (obj.hold(0), obj.hold(1));
        Ok((PipeEnd::new(obj.clone(), 0, h0), PipeEnd::new(obj, 1, h1)))
    }
}

/// One end of a [`Pipe`]: CPython's `Connection`. `send`/`recv` carry serde values
/// (bincode), `send_bytes`/`recv_bytes` byte strings; `poll` waits for something to
/// read. Usable from any thread; hand it to a child process with
/// [`share`](Self::share) and take it there with [`from_env`](Self::from_env).
///
/// Dropping the last handle of an end (in every process: a child's copy counts, a
/// killed holder's does not) closes the pipe: the other end's `recv` returns
/// [`QueueError::Closed`] once it has read what was sent (Python's `EOFError`).
///
/// ```
/// let (a, b) = shm_collections::Pipe::new()?;
/// a.send(&vec![1u16, 2])?;
/// assert_eq!(b.recv::<Vec<u16>>()?, [1, 2]);
/// drop(a); // its last handle
/// assert!(matches!(b.recv::<u8>(), Err(shm_collections::QueueError::Closed { .. })));
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
pub struct PipeEnd {
    obj: Arc<PipeObject>,
    end: usize,
    spin: u32,
    /// This handle's kernel lock on its end (dropped with it).
    hold: Option<holders::Hold>,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        // Let go of the end, then close the pipe if no handle of it is left anywhere: a
        // blocked peer wakes at once instead of at its next check.
        if self.hold.take().is_some() && self.obj.abandoned(self.end) {
            self.obj.close();
        }
    }
}

impl std::fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeEnd")
            .field("pipe", &self.obj.label)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl PipeEnd {
    fn new(obj: Arc<PipeObject>, end: usize, hold: Option<holders::Hold>) -> PipeEnd {
        PipeEnd {
            obj,
            end,
            spin: DEFAULT_SPIN,
            hold,
        }
    }

    /// Whether the other end's last handle is gone (then the pipe is closed, for the
    /// sends of this end too). Asked only while waiting.
    fn peer_gone(&self) -> bool {
        if self.obj.abandoned(self.peer()) {
            self.obj.close();
            return true;
        }
        false
    }

    fn peer(&self) -> usize {
        1 - self.end
    }

    fn inbox(&self) -> QueueResult<Ring<'_>> {
        self.obj
            .ring(self.end)
            .ok_or_else(|| QueueError::WrongDirection {
                name: self.obj.label.to_string(),
                what: "receive",
            })
    }

    fn outbox(&self) -> QueueResult<Ring<'_>> {
        self.obj
            .ring(self.peer())
            .ok_or_else(|| QueueError::WrongDirection {
                name: self.obj.label.to_string(),
                what: "send",
            })
    }

    /// The segment under this end's pipe (an anonymous memfd): with [`end`](Self::end),
    /// what a process needs to take this end over with [`from_segment`](Self::from_segment)
    /// (`shm_process` hands ends to its children this way).
    ///
    /// ```
    /// let (a, _b) = shm_collections::Pipe::new()?;
    /// assert!(a.segment().name().is_none() && a.segment().fd().is_some());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn segment(&self) -> &shm_core::Segment {
        self.obj.obj.segment()
    }

    /// Takes end `end` (0 or 1) of the pipe in `segment` (a descriptor of the segment
    /// another process handed over, see [`segment`](Self::segment)), checking its
    /// header, and records this process as a holder of the end.
    ///
    /// ```
    /// use shm_collections::{Pipe, PipeEnd};
    /// let (a, b) = Pipe::new()?;
    /// let fd = b.segment().fd().unwrap().try_clone_to_owned().unwrap();
    /// let b2 = PipeEnd::from_segment(shm_core::Segment::from_fd(fd)?, 1)?;
    /// a.send(&7u8)?;
    /// assert_eq!(b2.recv::<u8>()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_segment(segment: shm_core::Segment, end: usize) -> QueueResult<PipeEnd> {
        let obj = PipeObject::from_segment(segment)?;
        if end > 1 {
            return Err(QueueError::Corrupted {
                name: obj.label.to_string(),
                what: format!("expected pipe end 0 or 1, found {end}"),
            });
        }
        let hold = obj.hold(end);
        obj.claim(end);
        Ok(PipeEnd::new(Arc::new(obj), end, hold))
    }

    /// Which end this is: 0 for the first of [`Pipe::new`]'s pair, 1 for the second.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// assert_eq!((a.end(), b.end()), (0, 1));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn end(&self) -> usize {
        self.end
    }

    /// Sends a copy of `msg`, waiting as long as it takes for room: [`QueueError::Closed`]
    /// once the pipe is closed or the other end's last handle is gone.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// a.send_bytes(b"raw")?;
    /// assert_eq!(b.recv_bytes()?, b"raw");
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn send_bytes(&self, msg: &[u8]) -> QueueResult<()> {
        self.send_raw(&self.outbox()?, msg)
    }

    /// Puts `msg` into `out`, waiting for room as long as the other end has a handle
    /// somewhere ([`QueueError::Closed`] once it has none).
    fn send_raw(&self, out: &Ring<'_>, msg: &[u8]) -> QueueResult<()> {
        match out.put(msg, Deadline::Try, 0) {
            Err(QueueError::Full { .. }) => {}
            other => return other,
        }
        loop {
            match out.put(msg, Deadline::timeout(PEER_CHECK), self.spin) {
                Err(QueueError::Full { .. }) => {}
                other => return other,
            }
            // Gone: the pipe is closed now, and the next put says so.
            self.peer_gone();
        }
    }

    /// Sends `value` (encoded with bincode), waiting as long as it takes for room (see
    /// [`send_bytes`](Self::send_bytes) for the errors).
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// b.send(&Some(3.5f64))?;
    /// assert_eq!(a.recv::<Option<f64>>()?, Some(3.5));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn send<T: serde::Serialize + ?Sized>(&self, value: &T) -> QueueResult<()> {
        let out = self.outbox()?;
        with_scratch(|buf| {
            encode(value, buf).map_err(|source| QueueError::Encode {
                name: self.obj.label.to_string(),
                source,
            })?;
            self.send_raw(&out, buf)
        })
    }

    /// Receives the next message's bytes into `buf` (cleared first), waiting up to
    /// `timeout` (`None`: as long as it takes, or until the peer is found dead).
    fn recv_into(&self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> QueueResult<()> {
        let inbox = self.inbox()?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(PEER_CHECK),
                None => PEER_CHECK,
            };
            match inbox.get(buf, Deadline::timeout(slice), self.spin) {
                Err(QueueError::Empty { .. }) => {}
                other => return other,
            }
            let peer = self.obj.holder(self.peer())?;
            if peer.liveness() == Liveness::Dead {
                // What it sent before dying is still delivered.
                return match inbox.get(buf, Deadline::Try, 0) {
                    Err(QueueError::Empty { .. }) => Err(QueueError::PeerDied {
                        name: self.obj.label.to_string(),
                        pid: peer.id,
                    }),
                    other => other,
                };
            }
            if self.peer_gone() {
                // Closed now: what was sent is still delivered, then `Closed`.
                return inbox.get(buf, Deadline::Try, 0);
            }
            if let (Some(d), Some(t)) = (deadline, timeout) {
                if Instant::now() >= d {
                    return Err(QueueError::Empty {
                        name: self.obj.label.to_string(),
                        waited: t,
                    });
                }
            }
        }
    }

    /// Receives the next message's bytes, waiting as long as it takes:
    /// [`QueueError::Closed`] once the peer closed its end and everything it sent was
    /// read, [`QueueError::PeerDied`] if the peer's process died.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// a.send_bytes(b"x")?;
    /// a.close();
    /// assert_eq!(b.recv_bytes()?, b"x");
    /// assert!(matches!(b.recv_bytes(), Err(shm_collections::QueueError::Closed { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn recv_bytes(&self) -> QueueResult<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into(&mut buf, None)?;
        Ok(buf)
    }

    /// Receives the next message's bytes into `buf` (cleared first), reusing its
    /// allocation.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// a.send_bytes(b"abc")?;
    /// let mut buf = Vec::with_capacity(64);
    /// b.recv_bytes_into(&mut buf)?;
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut Vec<u8>) -> QueueResult<()> {
        self.recv_into(buf, None)
    }

    /// Receives and decodes the next value, waiting as long as it takes (see
    /// [`recv_bytes`](Self::recv_bytes) for the errors).
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// a.send(&"hi")?;
    /// assert_eq!(b.recv::<String>()?, "hi");
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn recv<T: Message>(&self) -> QueueResult<T> {
        self.recv_value(None)
    }

    /// Receives and decodes the next value, waiting at most `timeout`:
    /// [`QueueError::Empty`] after (as a queue's `get_timeout`; its `waited` is the
    /// timeout). A huge timeout (`Duration::MAX`) waits as long as it takes.
    ///
    /// ```
    /// let (a, _b) = shm_collections::Pipe::new()?;
    /// let r = a.recv_timeout::<u8>(std::time::Duration::from_millis(5));
    /// assert!(matches!(r, Err(shm_collections::QueueError::Empty { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn recv_timeout<T: Message>(&self, timeout: Duration) -> QueueResult<T> {
        self.recv_value(Some(timeout))
    }

    fn recv_value<T: Message>(&self, timeout: Option<Duration>) -> QueueResult<T> {
        with_scratch(|buf| {
            self.recv_into(buf, timeout)?;
            decode(buf).map_err(|source| QueueError::Decode {
                name: self.obj.label.to_string(),
                type_name: std::any::type_name::<T>(),
                source,
            })
        })
    }

    /// Whether a message can be received, waiting up to `timeout` for one
    /// (`Duration::ZERO`: a snapshot; a timeout too large for a deadline, such as
    /// `Duration::MAX`, waits as long as it takes: Python's `poll(None)`). Also `true`
    /// when `recv` would return at once with an error (the peer closed its end).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// assert!(!b.poll(Duration::from_millis(1))?);
    /// a.send(&1u8)?;
    /// assert!(b.poll(Duration::ZERO)?);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> QueueResult<bool> {
        let inbox = self.inbox()?;
        // `None`: no deadline (the sum overflows `Instant`).
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if inbox.len() > 0 || inbox.is_closed() || self.peer_gone() {
                return Ok(true);
            }
            let left = deadline.map_or(PEER_CHECK, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(false);
            }
            // Waits on the ring's not-empty word without taking a message.
            inbox.wait_not_empty(left.min(PEER_CHECK));
        }
    }

    /// Closes the pipe from this end: the peer's `recv` returns [`QueueError::Closed`]
    /// once it has read what was sent, its `send` returns it at once.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// b.close();
    /// assert!(a.send(&1u8).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.obj.close();
    }

    /// The largest message (encoded) this end can send.
    ///
    /// ```
    /// let (a, _b) = shm_collections::Pipe::new()?;
    /// assert_eq!(a.max_message_len(), 1024 * 104); // 1024 slots of 128 bytes, 104 of payload
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn max_message_len(&self) -> usize {
        self.obj
            .ring(self.peer())
            .or_else(|| self.obj.ring(self.end))
            .map_or(0, |r| r.max_message_len())
    }

    /// Spins of a blocked call before it sleeps (see [`Queue::set_spin`](crate::Queue::set_spin)).
    ///
    /// ```
    /// let (mut a, _b) = shm_collections::Pipe::new()?;
    /// a.set_spin(0);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn set_spin(&mut self, spins: u32) {
        self.spin = spins;
    }

    /// Hands this end to a child process: `var` names the pipe (its descriptor is
    /// inherited) and `var` + `_END` which end; the child takes it with
    /// [`from_env`](Self::from_env).
    ///
    /// ```no_run
    /// let (parent_end, child_end) = shm_collections::Pipe::new()?;
    /// let mut cmd = std::process::Command::new("my-worker");
    /// child_end.share(&mut cmd, "MY_PIPE")?.spawn()?;
    /// // in my-worker: let end = shm_collections::PipeEnd::from_env("MY_PIPE")?;
    /// println!("{}", parent_end.recv::<String>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn share<'c>(
        &self,
        command: &'c mut std::process::Command,
        var: &str,
    ) -> QueueResult<&'c mut std::process::Command> {
        let cmd = self.obj.share(command, var)?;
        // The child's hold, taken now: the end stays held from here on, whatever this
        // handle does before the child takes it over.
        if let Some(hold) = self.obj.hold(self.end) {
            let fd = holders::inherit(cmd, hold);
            cmd.env(format!("{var}_HOLD"), fd.to_string());
        }
        Ok(cmd.env(format!("{var}_END"), self.end.to_string()))
    }

    /// Takes the end a parent handed over with [`share`](Self::share) under `var`, and
    /// records this process as its holder.
    ///
    /// ```
    /// let (a, b) = shm_collections::Pipe::new()?;
    /// let mut cmd = std::process::Command::new("true");
    /// b.share(&mut cmd, "SHM_DOC_PIPE")?;
    /// assert!(cmd.get_envs().any(|(k, v)| k == "SHM_DOC_PIPE_END" && v == Some("1".as_ref())));
    /// // A child would call: shm_collections::PipeEnd::from_env("SHM_DOC_PIPE")
    /// assert!(shm_collections::PipeEnd::from_env("SHM_DOC_NO_SUCH_PIPE").is_err());
    /// # drop(a);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn from_env(var: &str) -> QueueResult<PipeEnd> {
        let obj = PipeObject::from_env(var)?;
        let end_var = format!("{var}_END");
        let end = match std::env::var(&end_var).as_deref() {
            Ok("0") => 0,
            Ok("1") => 1,
            other => {
                return Err(QueueError::Corrupted {
                    name: obj.label.to_string(),
                    what: format!("expected {end_var} to be 0 or 1, found {other:?}"),
                });
            }
        };
        let hold = match (std::env::var(format!("{var}_HOLD")), obj.fd()) {
            (Ok(v), Some(fd)) => {
                let bad = |what: String| QueueError::Corrupted {
                    name: obj.label.to_string(),
                    what,
                };
                let raw = v.parse::<i32>().map_err(|_| {
                    bad(format!(
                        "expected {var}_HOLD to be a descriptor number, found {v:?}"
                    ))
                })?;
                Some(holders::Hold::adopt(raw, fd, end).map_err(|e| {
                    bad(format!(
                        "expected {var}_HOLD ({raw}) to hold end {end} of this pipe: {e}"
                    ))
                })?)
            }
            _ => obj.hold(end),
        };
        obj.claim(end);
        Ok(PipeEnd::new(Arc::new(obj), end, hold))
    }
}
