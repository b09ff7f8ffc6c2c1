//! [`ByteQueue`]: the queue of byte strings under [`Queue`](super::Queue), without
//! encoding.

use std::time::Duration;

use shm_core::{Layout, Object, SharedObject};

use super::ring::Deadline;
use super::{Core, QueueError, QueueResult, QueueSize, QueueStats};

/// The bytes-level queue under [`Queue`](super::Queue): messages are byte strings, copied in and out
/// as they are (no encoding). The same ring, crash safety and blocking as [`Queue`](super::Queue).
///
/// ```
/// let q = shm_collections::ByteQueue::create(16, 4096)?;
/// q.put(b"hello")?;
/// let mut buf = Vec::new();
/// q.get_into(&mut buf)?;
/// assert_eq!(buf, b"hello");
/// # Ok::<(), shm_collections::QueueError>(())
/// ```
pub struct ByteQueue {
    core: Core,
}

impl SharedObject for ByteQueue {
    type Error = QueueError;
    type Init = QueueSize;

    fn layout() -> Layout {
        Layout::Header(Core::spec("ByteQueue", "u8"))
    }

    fn payload_len(size: &QueueSize) -> QueueResult<usize> {
        Core::payload_len(size)
    }

    fn init_payload(object: &Object, size: QueueSize) -> QueueResult<()> {
        Core::init(object, size)
    }

    fn attach(object: Object) -> QueueResult<Self> {
        Ok(ByteQueue {
            core: Core::attach(object, "ByteQueue")?,
        })
    }

    fn object(&self) -> &Object {
        &self.core.obj
    }

    fn object_mut(&mut self) -> &mut Object {
        &mut self.core.obj
    }
}

shm_core::object_methods!(
    ByteQueue,
    QueueError,
    "shm_collections::ByteQueue::create(16, 4096)",
    "shm_collections::ByteQueue",
    create(max_messages: usize, max_bytes: usize) =>
        QueueSize { messages: max_messages, bytes: max_bytes },
    args: ", 16, 4096"
);

impl ByteQueue {
    /// Creates the queue with sizes given as a [`QueueSize`].
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create_sized(shm_collections::QueueSize { messages: 2, bytes: 64 })?;
    /// assert_eq!(q.max_messages(), 2);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn create_sized(size: QueueSize) -> QueueResult<Self> {
        <Self as SharedObject>::create(size)
    }

    /// Creates the queue with [`QueueSize::DEFAULT`] sizes (4096 messages, 4 MiB).
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::new()?;
    /// assert_eq!(q.max_messages(), 4096);
    /// assert!(q.max_message_len() >= 4 << 20);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    // Python's `Queue()`; it makes a segment, so it returns a `Result`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> QueueResult<Self> {
        Self::create_sized(QueueSize::DEFAULT)
    }

    /// Puts a copy of `msg`, waiting as long as it takes for room.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// q.put(b"x")?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put(&self, msg: &[u8]) -> QueueResult<()> {
        self.core.put_bytes(msg, Deadline::Forever)
    }

    /// Puts a copy of `msg`, waiting at most `timeout` for room.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(1, 256)?;
    /// q.put(b"x")?;
    /// assert!(q.put_timeout(b"y", std::time::Duration::from_millis(2)).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_timeout(&self, msg: &[u8], timeout: Duration) -> QueueResult<()> {
        self.core.put_bytes(msg, Deadline::timeout(timeout))
    }

    /// Puts a copy of `msg` if there is room now: [`QueueError::Full`] otherwise.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(1, 256)?;
    /// q.put_nowait(b"x")?;
    /// assert!(matches!(q.put_nowait(b"y"), Err(shm_collections::QueueError::Full { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_nowait(&self, msg: &[u8]) -> QueueResult<()> {
        self.core.put_bytes(msg, Deadline::Try)
    }

    /// Puts messages in order (one wake-up of sleeping consumers per run that found
    /// room); waits for room as long as it takes. Returns when all are in.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(8, 256)?;
    /// q.put_many(&[b"a", b"b"])?;
    /// assert_eq!(q.qsize(), 2);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn put_many(&self, msgs: &[&[u8]]) -> QueueResult<()> {
        let ring = self.core.ring();
        let mut rest = msgs;
        while !rest.is_empty() {
            let n = ring.put_many(rest, Deadline::Forever, self.core.spin)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Takes the oldest message into `buf` (cleared first), waiting as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// q.put(b"abc")?;
    /// let mut buf = vec![9; 10];
    /// q.get_into(&mut buf)?;
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_into(&self, buf: &mut Vec<u8>) -> QueueResult<()> {
        self.core.ring().get(buf, Deadline::Forever, self.core.spin)
    }

    /// Takes the oldest message, waiting as long as it takes.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// q.put(b"abc")?;
    /// assert_eq!(q.get()?, b"abc");
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get(&self) -> QueueResult<Vec<u8>> {
        let mut buf = Vec::new();
        self.get_into(&mut buf)?;
        Ok(buf)
    }

    /// Takes the oldest message, waiting at most `timeout`.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// assert!(q.get_timeout(std::time::Duration::from_millis(2)).is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> QueueResult<Vec<u8>> {
        let mut buf = Vec::new();
        let mode = Deadline::timeout(timeout);
        self.core.ring().get(&mut buf, mode, self.core.spin)?;
        Ok(buf)
    }

    /// Takes the oldest message if there is one: [`QueueError::Empty`] otherwise.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// assert!(matches!(q.get_nowait(), Err(shm_collections::QueueError::Empty { .. })));
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_nowait(&self) -> QueueResult<Vec<u8>> {
        let mut buf = Vec::new();
        self.core.ring().get(&mut buf, Deadline::Try, 0)?;
        Ok(buf)
    }

    /// Takes up to `max` messages (those there now), handing each to `each` as a copy
    /// (the slot is already released: `each` may take its time); waits as long as it
    /// takes for the first. Returns how many.
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(8, 256)?;
    /// q.put_many(&[b"a", b"bc"])?;
    /// let mut total = 0;
    /// assert_eq!(q.get_many_with(8, |m| total += m.len())?, 2);
    /// assert_eq!(total, 3);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn get_many_with(&self, max: usize, mut each: impl FnMut(&[u8])) -> QueueResult<usize> {
        self.core
            .ring()
            .get_many(max, Deadline::Forever, self.core.spin, &mut each)
    }

    /// Messages in the queue now.
    ///
    /// ```
    /// assert_eq!(shm_collections::ByteQueue::create(4, 256)?.qsize(), 0);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// Closes the queue for every process (see [`Queue::close`](super::Queue::close)).
    ///
    /// ```
    /// let q = shm_collections::ByteQueue::create(4, 256)?;
    /// q.close();
    /// assert!(q.put(b"x").is_err());
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.core.ring().close()
    }

    /// The shared counters.
    ///
    /// ```
    /// assert_eq!(shm_collections::ByteQueue::create(4, 256)?.stats().puts, 0);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn stats(&self) -> QueueStats {
        self.core.ring().stats()
    }

    /// The largest message this queue can ever hold.
    ///
    /// ```
    /// assert_eq!(shm_collections::ByteQueue::create(4, 256)?.max_message_len(), 4 * 104);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn max_message_len(&self) -> usize {
        self.core.ring().max_message_len()
    }

    /// The most messages the queue holds at once.
    ///
    /// ```
    /// assert_eq!(shm_collections::ByteQueue::create(4, 256)?.max_messages(), 4);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn max_messages(&self) -> usize {
        self.core.geo.dims.slots as usize
    }

    /// Spins of a blocked call before it sleeps (see [`Queue::set_spin`](super::Queue::set_spin)).
    ///
    /// ```
    /// let mut q = shm_collections::ByteQueue::create(4, 256)?;
    /// q.set_spin(0);
    /// # Ok::<(), shm_collections::QueueError>(())
    /// ```
    pub fn set_spin(&mut self, spins: u32) {
        self.core.spin = spins;
    }
}
