//! [`Queue`], [`JoinableQueue`], [`SimpleQueue`] and [`ByteQueue`]: CPython's
//! `multiprocessing` queues as one shared object each, a crash-safe ring of
//! variable-size messages.
//!
//! # How it works
//!
//! One object holds a lock-free ring of fixed-size slots (Dmitry Vyukov's bounded
//! multi-producer multi-consumer queue), bounded by message count and bytes (both chosen
//! at creation, see [`QueueSize`]). A producer claims the slots a message needs with one
//! compare-and-swap on the tail, copies the message in and publishes it with one store
//! per slot; a consumer claims a published message with one compare-and-swap on the
//! head, copies it out and releases its slots. The tail and the head live on cache lines
//! of their own, and slots are cache-line multiples, so a producer and a consumer only
//! share the lines of the message they pass. A message longer than one slot takes
//! consecutive slots, claimed together.
//!
//! Blocking: a call that finds no message (no room) spins a bounded number of times
//! ([`Queue::set_spin`], [`DEFAULT_SPIN`] by default, 0 to sleep at once; more spins
//! trade CPU for latency; every 64th spin yields the CPU, so that a peer waiting for
//! this core runs), then sleeps on a shared futex word (`not_empty`, `not_full`,
//! `all_done`) after registering in a sleeper count. The other side checks that count
//! after every change and makes the wake syscall only when someone sleeps, and then only
//! the first waker since a sleeper went to sleep: the fast path makes no syscall. An
//! idle queue burns no CPU; sleepers wake at least every 50 ms to look for dead peers.
//!
//! # Crash safety: what a `kill -9` does
//!
//! There is no lock to be left held. Each thread that uses a queue has an entry in a
//! small participant table in the object (64 threads at once, then
//! [`QueueError::TooManyParticipants`]; an entry of a dead thread is taken over): its identity (thread
//! id and start time) and its *intent*, the positions it is claiming, written before its
//! compare-and-swap and cleared once its slots are published (released). A survivor that
//! waits on a slot looks at the intents that cover it; once every thread that may have
//! claimed it is provably dead, it finishes for them. Hence, for a process killed at any
//! instruction:
//!
//! - a **producer** killed in `put` either published the whole message or nothing: the
//!   slots it had claimed are turned into tombstones that consumers skip, so a
//!   half-written message is never delivered and its room is free again;
//! - a **consumer** killed after it claimed a message and before it released the slots
//!   (while copying it out) had taken it: a producer that needs those slots frees them
//!   and counts the message in [`QueueStats::lost`]. A consumer killed after `get`
//!   released the slots had the message too, and died before using it. Delivery is
//!   **at most once**: at most one message per killed consumer thread goes missing, the
//!   half-read ones counted in `lost`.
//!
//! [`QueueStats::recovered`] counts the slots finished for dead threads. Positions,
//! sequence words, lengths and frame headers read from the mapping are checked before
//! use: garbage gives [`QueueError::Corrupted`] (a bad frame is dropped and counted in
//! `lost`, so the queue goes on), never undefined behaviour, a panic or a hang.
//!
//! A [`JoinableQueue`]'s consumer that dies between `get` and `task_done` leaves that
//! task unfinished for ever (as in CPython), and so does a producer killed in `put`
//! after it counted the task: use [`JoinableQueue::join_timeout`].
//!
//! ```
//! use shm_collections::Queue;
//! let q: Queue<(u32, String)> = Queue::create(100, 64 * 1024)?;
//! let peer: Queue<(u32, String)> = Queue::open(q.name().unwrap())?; // another process
//! peer.put(&(1, "one".into()))?;
//! assert_eq!(q.get()?, (1, "one".to_string()));
//! # Ok::<(), shm_collections::QueueError>(())
//! ```

mod bytes;
mod codec;
pub(crate) mod ring;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use shm_core::{Layout, Object, ObjectSpec, SharedObject};

pub use bytes::ByteQueue;
pub use codec::Message;
pub(crate) use codec::{decode, encode, with_scratch};
use ring::{Deadline, Dims, Geometry, Ring};

use crate::kinds;

/// Layout version of the queue objects.
const QUEUE_LAYOUT_VERSION: u32 = 2;

/// Spins of a blocked call before it sleeps (see [`Queue::set_spin`]).
pub const DEFAULT_SPIN: u32 = 200;

/// What went wrong with a queue or a pipe; variants name the object.
///
/// ```
/// use shm_collections::{Queue, QueueError};
/// let q: Queue<u8> = Queue::create(1, 64)?;
/// q.put_nowait(&1)?;
/// assert!(matches!(q.put_nowait(&2), Err(QueueError::Full { .. })));
/// # Ok::<(), QueueError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Creating or opening the object failed (not found, wrong kind or element type...).
    #[error(transparent)]
    Shm(#[from] shm_core::Error),
    /// A put found no room: `put_nowait` at once, `put_timeout` once its timeout ran out
    /// (Python's `queue.Full` for both).
    #[error("{name} is full{}", waited_note(*waited))]
    Full {
        /// The object.
        name: String,
        /// How long the call waited for room: its timeout, `Duration::ZERO` for
        /// `put_nowait`.
        waited: Duration,
    },
    /// A get found no message: `get_nowait` at once, `get_timeout` (a pipe's
    /// `recv_timeout`) once its timeout ran out (Python's `queue.Empty` for both).
    #[error("{name} is empty{}", waited_note(*waited))]
    Empty {
        /// The object.
        name: String,
        /// How long the call waited for a message: its timeout, `Duration::ZERO` for
        /// `get_nowait`.
        waited: Duration,
    },
    /// The queue was closed: no more puts, and gets once it is drained (for a pipe: the
    /// other end closed; Python's `EOFError`).
    #[error("{name} is closed")]
    Closed {
        /// The object.
        name: String,
    },
    /// A timed call other than a put or a get ran out of time (`join_timeout`); timed
    /// puts and gets give [`Full`](Self::Full) and [`Empty`](Self::Empty).
    #[error("{name}: timed out after {waited:?}")]
    Timeout {
        /// The object.
        name: String,
        /// The timeout.
        waited: Duration,
    },
    /// A message that the queue could never hold, whatever it contains.
    #[error(
        "{name}: a message of {len} bytes is larger than the {max} bytes this queue can ever hold"
    )]
    TooLarge {
        /// The object.
        name: String,
        /// The message's encoded length.
        len: usize,
        /// The largest message the queue holds.
        max: usize,
    },
    /// `task_done` called more often than messages were put (Python's `ValueError`).
    #[error("{name}: task_done() called too many times (no unfinished task left)")]
    TaskDoneTooManyTimes {
        /// The object.
        name: String,
    },
    /// The process at the other end of a pipe died.
    #[error("{name}: the process at the other end ({pid}) died")]
    PeerDied {
        /// The object.
        name: String,
        /// The dead peer's pid.
        pid: u32,
    },
    /// Sending on the receive-only end of a one-way pipe, or receiving on the send-only one.
    #[error("{name}: this end of a one-way pipe cannot {what}")]
    WrongDirection {
        /// The object.
        name: String,
        /// `send` or `recv`.
        what: &'static str,
    },
    /// The value could not be encoded.
    #[error("{name}: cannot encode the message: {source}")]
    Encode {
        /// The object.
        name: String,
        /// The codec's error.
        #[source]
        source: crate::codec::CodecError,
    },
    /// The message's bytes do not decode as the queue's type.
    #[error(
        "{name}: cannot decode a message as {}: {source}",
        shm_core::short_type_name(type_name)
    )]
    Decode {
        /// The object.
        name: String,
        /// The expected type.
        type_name: &'static str,
        /// The codec's error.
        #[source]
        source: crate::codec::CodecError,
    },
    /// A lock failed (corrupted lock word, or a timeout waiting for it). The lock-free
    /// queues and pipes of this version never return it.
    #[error("{name}: {source}")]
    Lock {
        /// The object.
        name: String,
        /// The lock's error.
        #[source]
        source: shm_sync::RawError,
    },
    /// The shared state breaks the queue's invariants (written by a faulty process).
    #[error("{name} is corrupted: {what}")]
    Corrupted {
        /// The object.
        name: String,
        /// What was expected and what was found.
        what: String,
    },
    /// Every entry of the queue's participant table is held by a live thread (see the
    /// [module docs](crate::queue)): the calling thread cannot take part.
    #[error("{name}: all {max} participant entries are held by live threads")]
    TooManyParticipants {
        /// The object.
        name: String,
        /// Entries per queue.
        max: usize,
    },
    /// Sizes asked for at creation that no queue can have.
    #[error("invalid queue size: {what}")]
    InvalidSize {
        /// What was expected and what was found.
        what: String,
    },
}

/// `" after waiting 5ms"` for a timed call, nothing for a `_nowait` one.
fn waited_note(waited: Duration) -> String {
    if waited.is_zero() {
        String::new()
    } else {
        format!(" after waiting {waited:?}")
    }
}

/// Result with [`QueueError`].
pub type QueueResult<T> = std::result::Result<T, QueueError>;

/// Counters of a queue (a snapshot; the counters are shared by every process).
///
/// ```
/// let q = shm_collections::ByteQueue::create(8, 256)?;
/// q.put(b"hi")?;
/// let s = q.stats();
/// assert_eq!((s.messages, s.puts, s.gets, s.lost), (1, 1, 0, 0));
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages in the queue (published and not yet taken).
    pub messages: u64,
    /// Payload bytes of the slots between head and tail (whole slots, messages being
    /// written included).
    pub bytes_used: u64,
    /// Messages ever put (summed over the participants; a put whose process was killed
    /// right after publishing may be missing).
    pub puts: u64,
    /// Messages ever taken (the same way; messages counted in `lost` included).
    pub gets: u64,
    /// Times a process found a participant dead mid-call and finished for it (a slot a
    /// dead producer had claimed buried as a tombstone, a slot a dead consumer had
    /// claimed freed).
    pub recovered: u64,
    /// Messages dropped: a message a consumer was killed while copying out (its slot
    /// freed by a producer), or a frame found corrupted.
    pub lost: u64,
}

/// Sizes of a new queue: `messages` slots, each with room for at least
/// `bytes / messages` payload bytes. A slot is that room rounded up to 8 plus a 24-byte
/// header, rounded up to 64 bytes (a cache line multiple, so that a producer and a
/// consumer at neighbouring slots do not share a line); its payload is the rest. A
/// message takes as many consecutive slots as its length needs (at least one), so the
/// queue holds at most `messages` messages, and the largest message fills every slot.
///
/// ```
/// let q = shm_collections::ByteQueue::create_sized(shm_collections::QueueSize { messages: 4, bytes: 100 })?;
/// // 100 / 4 = 25, rounded up to 32, + 24 = 56, rounded up to a 64-byte slot: 40 bytes each.
/// assert_eq!(q.max_message_len(), 4 * 40);
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSize {
    /// Slots: most messages in the queue at once (at least 1).
    pub messages: usize,
    /// Payload bytes in all (at least 16), spread over the slots.
    pub bytes: usize,
}

impl QueueSize {
    /// Slots of [`QueueSize::DEFAULT`].
    pub const DEFAULT_MESSAGES: usize = 4096;
    /// Payload bytes of [`QueueSize::DEFAULT`].
    pub const DEFAULT_BYTES: usize = 4 << 20;
    /// The size of `Queue::new()` (Python's `Queue()`, whose default maxsize 0 means
    /// unbounded): 4096 messages and 4 MiB, slots of 1 KiB, so a message of up to 4 MiB
    /// fits. A ring in shared memory cannot grow under processes that map it, so this
    /// queue is bounded, by a size a port rarely meets: a `put` past it waits for room
    /// (`put_nowait` gives [`QueueError::Full`]) where Python's would not. The segment
    /// takes about 4.3 MiB; size the queue yourself ([`Queue::create`]) for more or
    /// less.
    ///
    /// ```
    /// let s = shm_collections::QueueSize::DEFAULT;
    /// assert_eq!((s.messages, s.bytes), (4096, 4 << 20));
    /// assert_eq!(s, shm_collections::QueueSize::default());
    /// ```
    pub const DEFAULT: QueueSize = QueueSize {
        messages: Self::DEFAULT_MESSAGES,
        bytes: Self::DEFAULT_BYTES,
    };
}

impl Default for QueueSize {
    /// [`QueueSize::DEFAULT`].
    fn default() -> Self {
        QueueSize::DEFAULT
    }
}

/// What every queue handle holds: the object, its ring's geometry and the spin setting.
struct Core {
    obj: Object,
    geo: Geometry,
    label: Arc<str>,
    spin: u32,
    /// Puts count tasks (`JoinableQueue`).
    tasks: bool,
}

impl Core {
    fn spec(variant: &str, elem: &str) -> ObjectSpec {
        ObjectSpec::new(kinds::QUEUE, QUEUE_LAYOUT_VERSION)
            .with_type::<u8>(&format!("{variant}<{elem}>"))
    }

    fn payload_len(size: &QueueSize) -> QueueResult<usize> {
        Ok(Dims::new(size.messages, size.bytes)?.ring_len())
    }

    fn init(obj: &Object, size: QueueSize) -> QueueResult<()> {
        Geometry::init(obj, 0, Dims::new(size.messages, size.bytes)?);
        Ok(())
    }

    fn attach(obj: Object, variant: &str) -> QueueResult<Core> {
        let label: Arc<str> = format!("{variant} {:?}", obj.label()).into();
        let geo = Geometry::attach(&obj, 0, &label)?;
        Ok(Core {
            obj,
            geo,
            label,
            spin: DEFAULT_SPIN,
            tasks: false,
        })
    }

    #[inline]
    fn ring(&self) -> Ring<'_> {
        Ring::new(&self.obj, self.geo, &self.label).counting_tasks(self.tasks)
    }

    fn spin_for(&self, mode: Deadline) -> u32 {
        if matches!(mode, Deadline::Try) {
            0
        } else {
            self.spin
        }
    }

    fn put_bytes(&self, msg: &[u8], mode: Deadline) -> QueueResult<()> {
        self.ring().put(msg, mode, self.spin_for(mode))
    }

    fn put_value<T: Message>(&self, value: &T, mode: Deadline) -> QueueResult<()> {
        with_scratch(|buf| {
            encode(value, buf).map_err(|source| QueueError::Encode {
                name: self.label.to_string(),
                source,
            })?;
            self.put_bytes(buf, mode)
        })
    }

    fn put_values<T: Message>(&self, values: &[T]) -> QueueResult<()> {
        let mut bufs = Vec::with_capacity(values.len());
        for v in values {
            let mut b = Vec::new();
            encode(v, &mut b).map_err(|source| QueueError::Encode {
                name: self.label.to_string(),
                source,
            })?;
            bufs.push(b);
        }
        let mut refs: &[&[u8]] = &bufs.iter().map(Vec::as_slice).collect::<Vec<_>>();
        let ring = self.ring();
        while !refs.is_empty() {
            let n = ring.put_many(refs, Deadline::Forever, self.spin)?;
            refs = &refs[n..];
        }
        Ok(())
    }

    fn decode<T: Message>(&self, bytes: &[u8]) -> QueueResult<T> {
        decode(bytes).map_err(|source| QueueError::Decode {
            name: self.label.to_string(),
            type_name: std::any::type_name::<T>(),
            source,
        })
    }

    fn get_value<T: Message>(&self, mode: Deadline) -> QueueResult<T> {
        with_scratch(|buf| {
            self.ring().get(buf, mode, self.spin_for(mode))?;
            self.decode(buf)
        })
    }

    fn get_values<T: Message>(&self, max: usize, mode: Deadline) -> QueueResult<Vec<T>> {
        // Copy the frames out, decode after.
        let mut frames: Vec<Vec<u8>> = Vec::new();
        self.ring()
            .get_many(max, mode, self.spin_for(mode), &mut |b| {
                frames.push(b.to_vec())
            })?;
        frames.iter().map(|f| self.decode(f)).collect()
    }

    fn qsize(&self) -> usize {
        self.ring().len() as usize
    }
}

/// `SharedObject` and the inherent lifecycle methods for a typed queue variant.
macro_rules! queue_object {
    ($ty:ident, $variant:literal, $make:literal, $path:literal) => {
        impl<T: Message> SharedObject for $ty<T> {
            type Error = QueueError;
            type Init = QueueSize;

            fn layout() -> Layout {
                Layout::Header(Core::spec($variant, std::any::type_name::<T>()))
            }

            fn payload_len(size: &QueueSize) -> QueueResult<usize> {
                Core::payload_len(size)
            }

            fn init_payload(object: &Object, size: QueueSize) -> QueueResult<()> {
                Core::init(object, size)
            }

            fn attach(object: Object) -> QueueResult<Self> {
                Ok(Self::from_core(Core::attach(object, $variant)?))
            }

            fn object(&self) -> &Object {
                &self.core().obj
            }

            fn object_mut(&mut self) -> &mut Object {
                &mut self.core_mut().obj
            }
        }

        shm_core::object_methods!(
            $ty<T: Message>,
            QueueError,
            $make,
            $path,
            create(max_messages: usize, max_bytes: usize) =>
                QueueSize { messages: max_messages, bytes: max_bytes },
            args: ", 16, 4096"
        );

        impl<T: Message> $ty<T> {
            /// Creates the queue with sizes given as a [`QueueSize`].
            ///
            /// ```
            #[doc = concat!("let q = ", $path, "::create_sized(shm_collections::QueueSize { messages: 2, bytes: 64 })?;")]
            /// assert!(q.name().is_some());
            /// # Ok::<(), shm_collections::QueueError>(())
            /// ```
            pub fn create_sized(size: QueueSize) -> QueueResult<Self> {
                <Self as SharedObject>::create(size)
            }

            /// Creates the queue without choosing sizes (Python's `Queue()`): the
            /// [`QueueSize::DEFAULT`] of 4096 messages and 4 MiB, see there for why it
            /// is bounded nonetheless.
            ///
            /// ```
            #[doc = concat!("let q = ", $path, "::new()?;")]
            /// q.put(&1)?;
            /// # Ok::<(), shm_collections::QueueError>(())
            /// ```
            // Python's `Queue()`; it makes a segment, so it returns a `Result`.
            #[allow(clippy::new_ret_no_self)]
            pub fn new() -> QueueResult<Self> {
                Self::create_sized(QueueSize::DEFAULT)
            }
        }
    };
}

/// A multi-producer, multi-consumer queue of `T` values in shared memory: CPython's
/// `multiprocessing.Queue`. Values are encoded with bincode (serde); the queue is
/// bounded by message count and by bytes, both chosen at creation.
///
/// `put`/`get` block (with `_timeout` and `_nowait` forms); [`close`](Self::close)
/// makes blocked and later `put`s return [`QueueError::Closed`] and `get`s return it
/// once the queue is drained. See the [module docs](crate::queue) for what a process
/// killed mid-call does (nothing bad to the others).
///
/// ```
/// use shm_collections::{Queue, QueueError};
/// let q: Queue<String> = Queue::create(16, 4096)?;
/// q.put(&"a".to_string())?;
/// q.put_many(&["b".to_string(), "c".to_string()])?;
/// assert_eq!(q.qsize(), 3);
/// assert_eq!(q.get()?, "a");
/// assert_eq!(q.get_many(10)?, ["b", "c"]);
/// q.close();
/// assert!(matches!(q.get(), Err(QueueError::Closed { .. })));
/// # Ok::<(), QueueError>(())
/// ```
pub struct Queue<T: Message> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

queue_object!(
    Queue,
    "Queue",
    "shm_collections::Queue::<u64>::create(16, 4096)",
    "shm_collections::Queue::<u64>"
);

impl<T: Message> Queue<T> {
    fn from_core(core: Core) -> Self {
        Queue {
            core,
            _t: PhantomData,
        }
    }
    fn core(&self) -> &Core {
        &self.core
    }
    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// Puts `value`, waiting as long as it takes for room.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(4, 256)?;
    /// q.put(&7)?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put(&self, value: &T) -> QueueResult<()> {
        self.core.put_value(value, Deadline::Forever)
    }

    /// Puts `value`, waiting at most `timeout` for room: [`QueueError::Full`] after
    /// (as `put_nowait`; its `waited` is the timeout). A huge timeout
    /// (`Duration::MAX`) waits as long as it takes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_collections::QueueError;
    /// let q = shm_collections::Queue::<u32>::create(1, 256)?;
    /// q.put_timeout(&1, Duration::from_millis(5))?;
    /// let err = q.put_timeout(&2, Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, QueueError::Full { waited, .. } if waited == Duration::from_millis(5)));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_timeout(&self, value: &T, timeout: Duration) -> QueueResult<()> {
        self.core.put_value(value, Deadline::timeout(timeout))
    }

    /// Puts `value` if there is room now: [`QueueError::Full`] otherwise.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(1, 256)?;
    /// q.put_nowait(&1)?;
    /// assert!(matches!(q.put_nowait(&2), Err(shm_collections::QueueError::Full { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_nowait(&self, value: &T) -> QueueResult<()> {
        self.core.put_value(value, Deadline::Try)
    }

    /// Puts every value in order (one wake-up of sleeping consumers per run of values
    /// that found room), waiting for room as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u16>::create(100, 4096)?;
    /// q.put_many(&[1, 2, 3])?;
    /// assert_eq!(q.get_many(100)?, [1, 2, 3]);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_many(&self, values: &[T]) -> QueueResult<()> {
        self.core.put_values(values)
    }

    /// Takes the oldest value, waiting as long as it takes; [`QueueError::Closed`] once
    /// the queue is closed and drained.
    ///
    /// ```
    /// let q = shm_collections::Queue::<Vec<u8>>::create(4, 256)?;
    /// q.put(&vec![1, 2])?;
    /// assert_eq!(q.get()?, [1, 2]);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get(&self) -> QueueResult<T> {
        self.core.get_value(Deadline::Forever)
    }

    /// Takes the oldest value, waiting at most `timeout`: [`QueueError::Empty`] after
    /// (as `get_nowait`; its `waited` is the timeout). A huge timeout
    /// (`Duration::MAX`) waits as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// let err = q.get_timeout(std::time::Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, shm_collections::QueueError::Empty { .. }));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> QueueResult<T> {
        self.core.get_value(Deadline::timeout(timeout))
    }

    /// Takes the oldest value if there is one: [`QueueError::Empty`] otherwise.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// assert!(matches!(q.get_nowait(), Err(shm_collections::QueueError::Empty { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_nowait(&self) -> QueueResult<T> {
        self.core.get_value(Deadline::Try)
    }

    /// Takes up to `max` values (oldest first): those there now, waiting as long as it
    /// takes for the first.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(8, 256)?;
    /// q.put_many(&[1, 2, 3])?;
    /// assert_eq!(q.get_many(2)?, [1, 2]);
    /// assert_eq!(q.get_many(2)?, [3]);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_many(&self, max: usize) -> QueueResult<Vec<T>> {
        self.core.get_values(max, Deadline::Forever)
    }

    /// Takes up to `max` values, waiting at most `timeout` for the first
    /// ([`QueueError::Empty`] after).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(8, 256)?;
    /// assert!(q.get_many_timeout(4, std::time::Duration::from_millis(2)).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> QueueResult<Vec<T>> {
        self.core.get_values(max, Deadline::timeout(timeout))
    }

    /// Takes every value there is now, without waiting (an empty `Vec` if none).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(8, 256)?;
    /// q.put_many(&[4, 5])?;
    /// assert_eq!(q.drain()?, [4, 5]);
    /// assert!(q.drain()?.is_empty());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn drain(&self) -> QueueResult<Vec<T>> {
        match self.core.get_values(usize::MAX, Deadline::Try) {
            Err(QueueError::Empty { .. } | QueueError::Closed { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Puts a message already encoded in `T`'s wire format (the crate's codec,
    /// [`codec::encode`](crate::codec::encode)) if there is room now:
    /// [`QueueError::Full`] otherwise. For bindings that encode their own values
    /// straight into a reused buffer (shm-py); bytes that are not a `T` reach
    /// consumers as [`QueueError::Decode`], never as undefined behaviour.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(4, 256)?;
    /// let mut buf = Vec::new();
    /// shm_collections::codec::encode(&7u32, &mut buf)?;
    /// q.put_encoded_nowait(&buf)?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_encoded_nowait(&self, msg: &[u8]) -> QueueResult<()> {
        self.core.put_bytes(msg, Deadline::Try)
    }

    /// [`put_encoded_nowait`](Self::put_encoded_nowait), waiting at most `timeout`
    /// for room (spinning first, as [`put_timeout`](Self::put_timeout)).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(1, 256)?;
    /// let mut buf = Vec::new();
    /// shm_collections::codec::encode(&7u32, &mut buf)?;
    /// q.put_encoded_timeout(&buf, std::time::Duration::from_millis(5))?;
    /// assert!(q.put_encoded_timeout(&buf, std::time::Duration::from_millis(5)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_encoded_timeout(&self, msg: &[u8], timeout: Duration) -> QueueResult<()> {
        self.core.put_bytes(msg, Deadline::timeout(timeout))
    }

    /// Takes the oldest message into `buf` (cleared first) as the bytes of `T`'s wire
    /// format, without decoding, if there is one: [`QueueError::Empty`] otherwise.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(4, 256)?;
    /// q.put(&7)?;
    /// let mut buf = Vec::new();
    /// q.get_encoded_nowait(&mut buf)?;
    /// assert_eq!(shm_collections::codec::decode::<u32>(&buf)?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_encoded_nowait(&self, buf: &mut Vec<u8>) -> QueueResult<()> {
        self.core.ring().get(buf, Deadline::Try, 0)
    }

    /// [`get_encoded_nowait`](Self::get_encoded_nowait), waiting at most `timeout` for
    /// a message (spinning first, as [`get_timeout`](Self::get_timeout)).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u32>::create(4, 256)?;
    /// let mut buf = Vec::new();
    /// assert!(q.get_encoded_timeout(&mut buf, std::time::Duration::from_millis(2)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_encoded_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> QueueResult<()> {
        let mode = Deadline::timeout(timeout);
        self.core.ring().get(buf, mode, self.core.spin_for(mode))
    }

    /// Messages in the queue now (Python's `qsize`).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(8, 256)?;
    /// q.put(&1)?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// Whether the queue holds no message now.
    ///
    /// ```
    /// assert!(shm_collections::Queue::<u8>::create(8, 256)?.empty());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the message-count bound is reached now (a byte-bound queue may also
    /// refuse a large message while not `full`).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(1, 256)?;
    /// q.put(&1)?;
    /// assert!(q.full());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn full(&self) -> bool {
        !self.core.ring().would_fit(0)
    }

    /// Closes the queue for every process: blocked and later puts return
    /// [`QueueError::Closed`], gets drain what is left and then return it. Blocked
    /// callers are woken at once.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// q.put(&1)?;
    /// q.close();
    /// assert!(q.is_closed());
    /// assert!(q.put(&2).is_err());
    /// assert_eq!(q.get()?, 1);
    /// assert!(matches!(q.get(), Err(shm_collections::QueueError::Closed { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.core.ring().close()
    }

    /// Whether some process closed the queue.
    ///
    /// ```
    /// assert!(!shm_collections::Queue::<u8>::create(4, 256)?.is_closed());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.core.ring().is_closed()
    }

    /// The shared counters.
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// q.put(&1)?;
    /// assert_eq!(q.stats().puts, 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn stats(&self) -> QueueStats {
        self.core.ring().stats()
    }

    /// The largest encoded message this queue can ever hold; `put` of a larger one is
    /// [`QueueError::TooLarge`].
    ///
    /// ```
    /// let q = shm_collections::Queue::<Vec<u8>>::create(4, 64)?;
    /// assert_eq!(q.max_message_len(), 4 * 40); // 4 slots of 64 bytes, 24 of them header
    /// assert!(matches!(q.put(&vec![0; 200]), Err(shm_collections::QueueError::TooLarge { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn max_message_len(&self) -> usize {
        self.core.ring().max_message_len()
    }

    /// The most messages the queue holds at once.
    ///
    /// ```
    /// assert_eq!(shm_collections::Queue::<u8>::create(5, 256)?.max_messages(), 5);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn max_messages(&self) -> usize {
        self.core.geo.dims.slots as usize
    }

    /// How many times a blocked call of this handle re-checks the queue (a spin-loop
    /// hint each) before it sleeps on a futex: 0 sleeps at once (least CPU), a few
    /// thousand keep a consumer awake for microseconds (lowest latency when messages
    /// come close together). [`DEFAULT_SPIN`] by default.
    ///
    /// ```
    /// let mut q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// q.set_spin(10_000);
    /// assert_eq!(q.spin(), 10_000);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn set_spin(&mut self, spins: u32) {
        self.core.spin = spins;
    }

    /// The spin setting (see [`set_spin`](Self::set_spin)).
    ///
    /// ```
    /// let q = shm_collections::Queue::<u8>::create(4, 256)?;
    /// assert_eq!(q.spin(), shm_collections::DEFAULT_SPIN);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn spin(&self) -> u32 {
        self.core.spin
    }
}

/// A [`Queue`] that counts unfinished tasks: CPython's `multiprocessing.JoinableQueue`.
/// Every put adds a task; consumers call [`task_done`](Self::task_done) once per value
/// they got; [`join`](Self::join) waits until every task is done. All of [`Queue`]'s
/// methods are available through `Deref`.
///
/// ```
/// use shm_collections::{JoinableQueue, QueueError};
/// let q: JoinableQueue<u32> = JoinableQueue::create(8, 1024)?;
/// q.put(&1)?;
/// assert_eq!(q.get()?, 1);
/// q.task_done()?;
/// q.join()?;
/// assert!(matches!(q.task_done(), Err(QueueError::TaskDoneTooManyTimes { .. })));
/// # Ok::<(), QueueError>(())
/// ```
pub struct JoinableQueue<T: Message> {
    queue: Queue<T>,
}

queue_object!(
    JoinableQueue,
    "JoinableQueue",
    "shm_collections::JoinableQueue::<u64>::create(16, 4096)",
    "shm_collections::JoinableQueue::<u64>"
);

impl<T: Message> JoinableQueue<T> {
    fn from_core(mut core: Core) -> Self {
        core.tasks = true;
        JoinableQueue {
            queue: Queue::from_core(core),
        }
    }
    fn core(&self) -> &Core {
        &self.queue.core
    }
    fn core_mut(&mut self) -> &mut Core {
        &mut self.queue.core
    }

    /// Marks one task done; [`QueueError::TaskDoneTooManyTimes`] if none is unfinished.
    ///
    /// ```
    /// let q = shm_collections::JoinableQueue::<u8>::create(4, 256)?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn task_done(&self) -> QueueResult<()> {
        self.core().ring().task_done()
    }

    /// Waits until every value put has been marked done, as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::JoinableQueue::<u8>::create(4, 256)?;
    /// q.join()?; // nothing was put
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn join(&self) -> QueueResult<()> {
        self.core().ring().join(Deadline::Forever)
    }

    /// Waits at most `timeout` for every task to be done.
    ///
    /// ```
    /// let q = shm_collections::JoinableQueue::<u8>::create(4, 256)?;
    /// q.put(&1)?;
    /// assert!(q.join_timeout(std::time::Duration::from_millis(5)).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> QueueResult<()> {
        self.core().ring().join(Deadline::timeout(timeout))
    }

    /// Tasks put and not yet marked done.
    ///
    /// ```
    /// let q = shm_collections::JoinableQueue::<u8>::create(4, 256)?;
    /// q.put(&1)?;
    /// assert_eq!(q.unfinished_tasks(), 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn unfinished_tasks(&self) -> u64 {
        self.core().ring().unfinished()
    }
}

impl<T: Message> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Message> std::ops::DerefMut for JoinableQueue<T> {
    fn deref_mut(&mut self) -> &mut Queue<T> {
        &mut self.queue
    }
}

/// The plain queue of CPython's `multiprocessing.SimpleQueue`: `put`, `get`, `empty`,
/// `close`, nothing else (no sizes, timeouts or counters in its API).
///
/// ```
/// let q = shm_collections::SimpleQueue::<String>::create(64, 4096)?;
/// q.put(&"x".into())?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "x");
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
pub struct SimpleQueue<T: Message> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

queue_object!(
    SimpleQueue,
    "SimpleQueue",
    "shm_collections::SimpleQueue::<u64>::create(16, 4096)",
    "shm_collections::SimpleQueue::<u64>"
);

impl<T: Message> SimpleQueue<T> {
    fn from_core(core: Core) -> Self {
        SimpleQueue {
            core,
            _t: PhantomData,
        }
    }
    fn core(&self) -> &Core {
        &self.core
    }
    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// Puts `value`, waiting as long as it takes for room.
    ///
    /// ```
    /// let q = shm_collections::SimpleQueue::<u8>::create(4, 256)?;
    /// q.put(&3)?;
    /// assert_eq!(q.get()?, 3);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put(&self, value: &T) -> QueueResult<()> {
        self.core.put_value(value, Deadline::Forever)
    }

    /// Takes the oldest value, waiting as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::SimpleQueue::<u8>::create(4, 256)?;
    /// q.put(&3)?;
    /// assert_eq!(q.get()?, 3);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get(&self) -> QueueResult<T> {
        self.core.get_value(Deadline::Forever)
    }

    /// Whether the queue holds no message now.
    ///
    /// ```
    /// assert!(shm_collections::SimpleQueue::<u8>::create(4, 256)?.empty());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.core.qsize() == 0
    }

    /// Closes the queue for every process (see [`Queue::close`]).
    ///
    /// ```
    /// let q = shm_collections::SimpleQueue::<u8>::create(4, 256)?;
    /// q.close();
    /// assert!(q.put(&1).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.core.ring().close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_a_value_give_a_decode_error() {
        let q: Queue<String> = Queue::create(4, 256).unwrap();
        // A length prefix claiming 250 bytes in a 3-byte frame, then a bad UTF-8 string.
        q.core.put_bytes(&[250, 0xff, 0xff], Deadline::Try).unwrap();
        q.core.put_bytes(&[2, 0xff, 0xfe], Deadline::Try).unwrap();
        assert!(matches!(q.get_nowait(), Err(QueueError::Decode { .. })));
        assert!(matches!(q.get_nowait(), Err(QueueError::Decode { .. })));
        q.put(&"fine".into()).unwrap();
        assert_eq!(q.get_nowait().unwrap(), "fine");
    }
}
