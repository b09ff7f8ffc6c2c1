//! The typed accessors of [`SharedMemoryManager`]: one short method per shared type
//! (Python's `Manager().Lock()`, `Value`, `dict`...), each a
//! [`get_or_create`](SharedMemoryManager::get_or_create) for that type.

use bytemuck::Pod;
use shm_collections::{
    Array, DictKey, DictValue, Item, Limits, Message, Namespace, Queue, QueueSize, ShareableDict,
    ShareableList, ShareableVec, Value, VecItem,
};
use shm_core::SharedObject;
use shm_sync::{Barrier, Condition, Event, Lock, Mutex as ShmMutex, RLock, RwLock, Semaphore};

use crate::error::{ManagerError, Result};
use crate::manager::SharedMemoryManager;
use crate::registry::Expected;

/// Typed accessors: each is [`get_or_create`](SharedMemoryManager::get_or_create) for
/// one type.
impl SharedMemoryManager {
    /// A [`Value<T>`] (a `T` behind a robust lock), in an arena.
    ///
    /// Write the type of `init` out (`0u64`): a bare `0` is an `i32`, and a process
    /// that opens the key as another type gets [`ManagerError::WrongType`]
    /// (`expected Value<u64>, found Value<i32>`).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let v = m.value("count", 0i64)?;
    /// v.update(|x| *x += 2)?;
    /// assert_eq!(m.value("count", 0i64)?.get()?, 2);
    /// assert!(m.value("count", 0u64).is_err()); // another type
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn value<T: Pod>(&self, key: &str, init: T) -> Result<Value<T>> {
        self.get_or_create(key, init)
    }

    /// An [`Array<T>`] of `len` zeroed elements (in an arena when small). If the key
    /// exists with another length: [`ManagerError::WrongSize`] naming both (open it
    /// without a length with [`open_array`](Self::open_array)).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let a = m.array::<u32>("xs", 3)?;
    /// a.set(1, 7)?;
    /// assert_eq!(m.array::<u32>("xs", 3)?.to_vec()?, [0, 7, 0]);
    /// assert!(m.array::<u32>("xs", 4).is_err()); // another length
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn array<T: Pod>(&self, key: &str, len: usize) -> Result<Array<T>> {
        let a: Array<T> = self.get_or_create(key, len)?;
        if a.len() != len {
            return Err(ManagerError::WrongSize {
                manager: self.name().to_owned(),
                key: key.to_owned(),
                expected: format!("{} of {len} elements", Expected::of::<Array<T>>().plain()),
                found: format!("{} elements", a.len()),
            });
        }
        Ok(a)
    }

    /// The [`Array<T>`] registered under `key`, whatever its length;
    /// [`ManagerError::NoSuchKey`] if there is none, [`ManagerError::WrongKind`] /
    /// [`ManagerError::WrongType`] if the key holds something else.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.array::<f32>("xs", 5)?;
    /// assert_eq!(m.open_array::<f32>("xs")?.len(), 5);
    /// assert!(m.open_array::<f32>("ys").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_array<T: Pod>(&self, key: &str) -> Result<Array<T>> {
        self.open(key)
    }

    /// A [`Lock`], in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let l = m.lock("db")?;
    /// let g = l.lock().unwrap();
    /// assert!(m.lock("db")?.is_locked());
    /// drop(g);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self, key: &str) -> Result<Lock> {
        self.get_or_create(key, ())
    }

    /// An [`RLock`] (reentrant), in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let r = m.rlock("re")?;
    /// let _a = r.lock().unwrap();
    /// let _b = r.lock().unwrap(); // same thread: reentrant
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rlock(&self, key: &str) -> Result<RLock> {
        self.get_or_create(key, ())
    }

    /// A [`Mutex<T>`](shm_sync::Mutex), in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let mx = m.mutex("total", 1u64)?;
    /// *mx.lock().unwrap() += 1;
    /// assert_eq!(*m.mutex("total", 0u64)?.lock().unwrap(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mutex<T: Pod>(&self, key: &str, init: T) -> Result<ShmMutex<T>> {
        self.get_or_create(key, init)
    }

    /// An [`Event`], in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.event("go")?.set();
    /// assert!(m.event("go")?.is_set());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event(&self, key: &str) -> Result<Event> {
        self.get_or_create(key, ())
    }

    /// A [`Semaphore`] starting at `value`, in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let s = m.semaphore("slots", 1)?;
    /// assert!(s.try_acquire().is_ok());
    /// assert!(m.semaphore("slots", 1)?.try_acquire().is_err()); // the one permit is taken
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn semaphore(&self, key: &str, value: u32) -> Result<Semaphore> {
        self.get_or_create(key, value)
    }

    /// A [`Barrier`] for `parties` processes, in an arena. If the key exists for
    /// another number of parties: [`ManagerError::WrongSize`] naming both (a party
    /// counting differently would wait forever or pass early); open it by key with
    /// [`open`](Self::open).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let b = m.barrier("sync", 1)?;
    /// assert!(b.wait().is_ok()); // one party: passes at once
    /// assert!(m.barrier("sync", 2).is_err());
    /// assert_eq!(m.open::<shm_sync::Barrier>("sync")?.parties(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn barrier(&self, key: &str, parties: u32) -> Result<Barrier> {
        let b: Barrier = self.get_or_create(key, parties)?;
        if b.parties() != parties {
            return Err(ManagerError::WrongSize {
                manager: self.name().to_owned(),
                key: key.to_owned(),
                expected: format!("a Barrier of {parties} parties"),
                found: format!("one of {}", b.parties()),
            });
        }
        Ok(b)
    }

    /// A [`Condition<T>`](shm_sync::Condition) guarding `init`, in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let c = m.condition("ready", 0u32)?;
    /// *c.lock().unwrap() = 1;
    /// c.notify_all();
    /// assert_eq!(*m.condition("ready", 0u32)?.lock().unwrap(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn condition<T: Pod>(&self, key: &str, init: T) -> Result<Condition<T>> {
        self.get_or_create(key, init)
    }

    /// An [`RwLock<T>`](shm_sync::RwLock) guarding `init`, in an arena.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let rw = m.rwlock("cfg", 3u16)?;
    /// *rw.write().unwrap() = 4;
    /// assert_eq!(*m.rwlock("cfg", 0u16)?.read().unwrap(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rwlock<T: Pod>(&self, key: &str, init: T) -> Result<RwLock<T>> {
        self.get_or_create(key, init)
    }

    /// A [`ShareableDict<K, V>`] (its own segments), created empty.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.dict::<String, u32>("scores")?.insert("ann".into(), 3)?;
    /// assert_eq!(m.dict::<String, u32>("scores")?.get("ann")?, Some(3));
    /// assert!(m.dict::<String, i64>("scores").is_err()); // another value type
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dict<K: DictKey, V: DictValue>(&self, key: &str) -> Result<ShareableDict<K, V>> {
        self.get_or_create(key, Limits::default())
    }

    /// A growable [`ShareableVec<T>`] (its own segments), created empty: what Python's
    /// `Manager().list()` is used for. CPython's fixed-length `ShareableList` format is
    /// [`shareable_list`](Self::shareable_list).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.list::<String>("results")?.push("ok".into())?;
    /// assert_eq!(m.list::<String>("results")?.len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list<T: VecItem>(&self, key: &str) -> Result<ShareableVec<T>> {
        self.get_or_create(key, Limits::default())
    }

    /// The same as [`list`](Self::list) (the type is a [`ShareableVec`]).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.vec::<u32>("xs")?.push(1)?;
    /// assert_eq!(m.list::<u32>("xs")?.get(0)?, Some(1)); // one object, two names
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn vec<T: VecItem>(&self, key: &str) -> Result<ShareableVec<T>> {
        self.list(key)
    }

    /// A [`Namespace`] (its own segments), created empty.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.namespace("cfg")?.set("depth", &3u8)?;
    /// assert_eq!(m.namespace("cfg")?.get::<u8>("depth")?, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn namespace(&self, key: &str) -> Result<Namespace> {
        self.get_or_create(key, Limits::default())
    }

    /// A [`Queue<T>`] (its own segment) of at most `max_messages` messages in
    /// `max_bytes` ring bytes. If the key exists with other sizes (another ring):
    /// [`ManagerError::WrongSize`] naming both. Workers that only use an existing queue
    /// open it without sizes: [`open_queue`](Self::open_queue).
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.queue::<String>("jobs", 16, 4096)?.put(&"a".to_string())?;
    /// assert_eq!(m.queue::<String>("jobs", 16, 4096)?.get()?, "a");
    /// assert!(m.queue::<String>("jobs", 32, 4096).is_err()); // other sizes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue<T: Message>(
        &self,
        key: &str,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<Queue<T>> {
        let size = QueueSize {
            messages: max_messages,
            bytes: max_bytes,
        };
        let q: Queue<T> = self.get_or_create(key, size)?;
        // Same slot count and same ring (sizes that round to the same slots are one).
        let want = <Queue<T> as SharedObject>::payload_len(&size).map_err(self.object_err(key))?;
        if q.max_messages() != max_messages || q.object().payload_len() != want {
            return Err(ManagerError::WrongSize {
                manager: self.name().to_owned(),
                key: key.to_owned(),
                expected: format!(
                    "{} of {max_messages} messages in {max_bytes} bytes",
                    Expected::of::<Queue<T>>().plain()
                ),
                found: format!(
                    "one of {} messages of at most {} bytes each (open it by key without \
                     sizes: open_queue)",
                    q.max_messages(),
                    q.max_message_len()
                ),
            });
        }
        Ok(q)
    }

    /// The [`Queue<T>`] registered under `key`, whatever its sizes: how workers open
    /// the queue their owner made. [`ManagerError::NoSuchKey`] if there is none,
    /// [`ManagerError::WrongKind`] / [`ManagerError::WrongType`] if the key holds
    /// something else.
    ///
    /// ```
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// m.queue::<String>("jobs", 4096, 1 << 16)?.put(&"a".to_string())?;
    /// let w = shm_manager::SharedMemoryManager::connect(m.name())?; // a worker
    /// assert_eq!(w.open_queue::<String>("jobs")?.get()?, "a");
    /// assert!(matches!(
    ///     w.open_queue::<String>("none"),
    ///     Err(shm_manager::ManagerError::NoSuchKey { .. })
    /// ));
    /// assert!(matches!(
    ///     w.open_queue::<u64>("jobs"),
    ///     Err(shm_manager::ManagerError::WrongType { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_queue<T: Message>(&self, key: &str) -> Result<Queue<T>> {
        self.open(key)
    }

    /// A [`ShareableList`] holding `items`: CPython's fixed-length
    /// `multiprocessing.shared_memory.ShareableList` format (its own segment, readable
    /// by Python as `ShareableList(name=...)`). For a list that grows, Python's
    /// `Manager().list()`, use [`list`](Self::list).
    ///
    /// ```
    /// use shm_collections::Item;
    /// let m = shm_manager::SharedMemoryManager::new()?;
    /// let l = m.shareable_list("row", vec![Item::Int(1), Item::Str("a".into())])?;
    /// assert_eq!(m.shareable_list("row", vec![])?.len(), 2); // exists: items unused
    /// # drop(l);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shareable_list(&self, key: &str, items: Vec<Item>) -> Result<ShareableList> {
        self.get_or_create(key, items)
    }
}
