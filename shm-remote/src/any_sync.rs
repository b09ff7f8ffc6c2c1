//! Locks, events, semaphores, barriers and queues from a [`Manager`] opened by
//! address: [`ManagerSync`] (in the [`prelude`](crate::prelude)) adds
//! `lock`, `rlock`, `event`, `semaphore`, `barrier`, `queue` and `joinable_queue` to
//! it, returning handles that are either backend (`AnyLock` = `shm_sync::Lock` or
//! [`sync::Lock`](crate::sync::Lock), ...) and implement the traits of
//! [`api`](crate::api) by a two-arm match. Worker code written against the traits
//! runs unchanged on both; only the address differs.

use std::time::Duration;

use shm_collections::{Message, QueueSize};

use crate::api::{
    BarrierWait, HeldLock, LockResult, SharedBarrier, SharedEvent, SharedJoinableQueue, SharedLock,
    SharedQueue, SharedSemaphore,
};
use crate::error::Result;
use crate::manager::Manager;
use crate::queue::QueueOptions;

/// Bytes of a local queue per message of `maxsize` (the ring is sized at creation).
const LOCAL_BYTES_PER_MESSAGE: usize = 1024;

/// The local ring for a queue of `maxsize` messages (0: the default size).
fn local_size(maxsize: usize) -> QueueSize {
    if maxsize == 0 {
        QueueSize::DEFAULT
    } else {
        QueueSize {
            messages: maxsize,
            bytes: maxsize
                .saturating_mul(LOCAL_BYTES_PER_MESSAGE)
                .max(64 * 1024),
        }
    }
}

/// The accessors for locks, events, semaphores, barriers and queues of a [`Manager`]:
/// each opens the object `key`, creating it when new, on the manager's backend.
///
/// ```
/// use shm_remote::prelude::*;
/// let server = shm_remote::testing::RedisServer::start().unwrap();
/// for address in [format!("doc-sync-{}", std::process::id()), server.url("doc")] {
///     let m = shm_remote::Manager::create(&address)?;
///     let q = m.joinable_queue::<String>("jobs", 0)?;
///     q.put(&"one".to_string())?;
///     let l = m.lock("db")?;
///     let g = l.lock().map_err(|e| e.into_error("db"))?;
///     assert_eq!(q.get()?, "one");
///     q.task_done()?;
///     drop(g);
///     q.join()?;
/// }
/// # Ok::<(), shm_remote::Error>(())
/// ```
pub trait ManagerSync {
    /// A lock.
    fn lock(&self, key: &str) -> Result<AnyLock>;
    /// A re-entrant lock.
    fn rlock(&self, key: &str) -> Result<AnyRLock>;
    /// An event.
    fn event(&self, key: &str) -> Result<AnyEvent>;
    /// A semaphore with `value` permits when new.
    fn semaphore(&self, key: &str, value: u32) -> Result<AnySemaphore>;
    /// A barrier for `parties`.
    fn barrier(&self, key: &str, parties: u32) -> Result<AnyBarrier>;
    /// A queue of at most `maxsize` waiting messages (0: unbounded on Redis, the
    /// default ring of 4096 messages locally).
    fn queue<T: Message>(&self, key: &str, maxsize: usize) -> Result<AnyQueue<T>>;
    /// A joinable queue (same sizes as [`queue`](Self::queue)).
    fn joinable_queue<T: Message>(&self, key: &str, maxsize: usize) -> Result<AnyJoinableQueue<T>>;
}

impl ManagerSync for Manager {
    fn lock(&self, key: &str) -> Result<AnyLock> {
        Ok(match self {
            Manager::Local(m) => AnyLock::Local(m.lock(key)?),
            Manager::Redis(m) => AnyLock::Redis(crate::sync::Lock::open(m.conn(), key)?),
        })
    }
    fn rlock(&self, key: &str) -> Result<AnyRLock> {
        Ok(match self {
            Manager::Local(m) => AnyRLock::Local(m.rlock(key)?),
            Manager::Redis(m) => AnyRLock::Redis(crate::sync::RLock::open(m.conn(), key)?),
        })
    }
    fn event(&self, key: &str) -> Result<AnyEvent> {
        Ok(match self {
            Manager::Local(m) => AnyEvent::Local(m.event(key)?),
            Manager::Redis(m) => AnyEvent::Redis(crate::sync::Event::open(m.conn(), key)?),
        })
    }
    fn semaphore(&self, key: &str, value: u32) -> Result<AnySemaphore> {
        Ok(match self {
            Manager::Local(m) => AnySemaphore::Local(m.semaphore(key, value)?),
            Manager::Redis(m) => {
                AnySemaphore::Redis(crate::sync::Semaphore::open(m.conn(), key, value)?)
            }
        })
    }
    fn barrier(&self, key: &str, parties: u32) -> Result<AnyBarrier> {
        Ok(match self {
            Manager::Local(m) => AnyBarrier::Local(m.barrier(key, parties)?),
            Manager::Redis(m) => {
                AnyBarrier::Redis(crate::sync::Barrier::open(m.conn(), key, parties)?)
            }
        })
    }
    fn queue<T: Message>(&self, key: &str, maxsize: usize) -> Result<AnyQueue<T>> {
        Ok(match self {
            Manager::Local(m) => {
                let s = local_size(maxsize);
                AnyQueue::Local(m.queue(key, s.messages, s.bytes)?)
            }
            Manager::Redis(m) => AnyQueue::Redis(crate::queue::Queue::open_with(
                m.conn(),
                key,
                QueueOptions {
                    maxsize,
                    ..Default::default()
                },
            )?),
        })
    }
    fn joinable_queue<T: Message>(&self, key: &str, maxsize: usize) -> Result<AnyJoinableQueue<T>> {
        Ok(match self {
            Manager::Local(m) => AnyJoinableQueue::Local(
                m.get_or_create::<shm_collections::JoinableQueue<T>>(key, local_size(maxsize))?,
            ),
            Manager::Redis(m) => AnyJoinableQueue::Redis(crate::queue::JoinableQueue::open_with(
                m.conn(),
                key,
                QueueOptions {
                    maxsize,
                    ..Default::default()
                },
            )?),
        })
    }
}

/// A lock of either backend ([`ManagerSync::lock`]).
#[derive(Debug)]
pub enum AnyLock {
    /// Shared memory.
    Local(shm_sync::Lock),
    /// Redis.
    Redis(crate::sync::Lock),
}

/// The guard of an [`AnyLock`] or [`AnyRLock`].
#[derive(Debug)]
pub enum AnyLockGuard<'a> {
    /// Shared memory.
    Local(shm_sync::LockGuard<'a>),
    /// Shared memory, re-entrant.
    LocalR(shm_sync::RLockGuard<'a>),
    /// Redis.
    Redis(crate::sync::LockGuard<'a>),
}

impl HeldLock for AnyLockGuard<'_> {
    fn mark_consistent(&self) -> Result<()> {
        match self {
            AnyLockGuard::Local(g) => HeldLock::mark_consistent(g),
            AnyLockGuard::LocalR(g) => HeldLock::mark_consistent(g),
            AnyLockGuard::Redis(g) => HeldLock::mark_consistent(g),
        }
    }
    fn fencing_token(&self) -> Option<u64> {
        match self {
            AnyLockGuard::Local(g) => HeldLock::fencing_token(g),
            AnyLockGuard::LocalR(g) => HeldLock::fencing_token(g),
            AnyLockGuard::Redis(g) => HeldLock::fencing_token(g),
        }
    }
}

/// A lock result of one backend as one of [`AnyLockGuard`] (the guard moved into
/// `wrap`, in the error too).
fn guard_of<'a, G>(
    r: LockResult<G>,
    wrap: fn(G) -> AnyLockGuard<'a>,
) -> LockResult<AnyLockGuard<'a>> {
    r.map(wrap).map_err(|e| e.map(wrap))
}

/// `SharedLock` for an enum lock handle: its local arm's guards wrapped in `$guard`,
/// the Redis arm's in `AnyLockGuard::Redis`.
macro_rules! any_lock {
    ($any:ident, $guard:path) => {
        impl SharedLock for $any {
            type Guard<'a> = AnyLockGuard<'a>;
            fn lock(&self) -> LockResult<AnyLockGuard<'_>> {
                match self {
                    $any::Local(l) => guard_of(SharedLock::lock(l), $guard),
                    $any::Redis(l) => guard_of(l.lock(), AnyLockGuard::Redis),
                }
            }
            fn try_lock(&self) -> LockResult<AnyLockGuard<'_>> {
                match self {
                    $any::Local(l) => guard_of(SharedLock::try_lock(l), $guard),
                    $any::Redis(l) => guard_of(l.try_lock(), AnyLockGuard::Redis),
                }
            }
            fn lock_timeout(&self, timeout: Duration) -> LockResult<AnyLockGuard<'_>> {
                match self {
                    $any::Local(l) => guard_of(SharedLock::lock_timeout(l, timeout), $guard),
                    $any::Redis(l) => guard_of(l.lock_timeout(timeout), AnyLockGuard::Redis),
                }
            }
            fn is_locked(&self) -> Result<bool> {
                match self {
                    $any::Local(l) => SharedLock::is_locked(l),
                    $any::Redis(l) => l.is_locked(),
                }
            }
        }
    };
}

any_lock!(AnyLock, AnyLockGuard::Local);

/// A re-entrant lock of either backend ([`ManagerSync::rlock`]).
#[derive(Debug)]
pub enum AnyRLock {
    /// Shared memory.
    Local(shm_sync::RLock),
    /// Redis.
    Redis(crate::sync::RLock),
}

any_lock!(AnyRLock, AnyLockGuard::LocalR);

/// Delegates each method of a trait to the two arms of an enum handle.
macro_rules! delegate {
    ($any:ident, $tr:ident { $(fn $m:ident(&self $(, $a:ident: $t:ty)*) -> $r:ty;)* }) => {
        impl $tr for $any {
            $(fn $m(&self $(, $a: $t)*) -> $r {
                match self {
                    $any::Local(x) => $tr::$m(x $(, $a)*),
                    $any::Redis(x) => $tr::$m(x $(, $a)*),
                }
            })*
        }
    };
}

/// An event of either backend ([`ManagerSync::event`]).
#[derive(Debug)]
pub enum AnyEvent {
    /// Shared memory.
    Local(shm_sync::Event),
    /// Redis.
    Redis(crate::sync::Event),
}

delegate!(AnyEvent, SharedEvent {
    fn set(&self) -> Result<()>;
    fn clear(&self) -> Result<()>;
    fn is_set(&self) -> Result<bool>;
    fn wait(&self) -> Result<()>;
    fn wait_timeout(&self, timeout: Duration) -> Result<()>;
});

/// A semaphore of either backend ([`ManagerSync::semaphore`]).
#[derive(Debug)]
pub enum AnySemaphore {
    /// Shared memory.
    Local(shm_sync::Semaphore),
    /// Redis.
    Redis(crate::sync::Semaphore),
}

delegate!(AnySemaphore, SharedSemaphore {
    fn acquire(&self) -> Result<u32>;
    fn try_acquire(&self) -> Result<u32>;
    fn acquire_timeout(&self, timeout: Duration) -> Result<u32>;
    fn release(&self) -> Result<()>;
    fn value(&self) -> Result<u32>;
});

/// A barrier of either backend ([`ManagerSync::barrier`]).
#[derive(Debug)]
pub enum AnyBarrier {
    /// Shared memory.
    Local(shm_sync::Barrier),
    /// Redis.
    Redis(crate::sync::Barrier),
}

delegate!(AnyBarrier, SharedBarrier {
    fn wait(&self) -> Result<BarrierWait>;
    fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait>;
    fn abort(&self) -> Result<()>;
    fn reset(&self) -> Result<()>;
    fn broken(&self) -> Result<bool>;
    fn parties(&self) -> Result<u32>;
});

/// A queue of either backend ([`ManagerSync::queue`]).
pub enum AnyQueue<T: Message> {
    /// Shared memory.
    Local(shm_collections::Queue<T>),
    /// Redis.
    Redis(crate::queue::Queue<T>),
}

/// A joinable queue of either backend ([`ManagerSync::joinable_queue`]).
pub enum AnyJoinableQueue<T: Message> {
    /// Shared memory.
    Local(shm_collections::JoinableQueue<T>),
    /// Redis.
    Redis(crate::queue::JoinableQueue<T>),
}

macro_rules! delegate_queue {
    ($any:ident) => {
        impl<T: Message> SharedQueue<T> for $any<T> {
            fn put(&self, value: &T) -> Result<()> {
                match self {
                    $any::Local(q) => SharedQueue::put(q, value),
                    $any::Redis(q) => SharedQueue::put(q, value),
                }
            }
            fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
                match self {
                    $any::Local(q) => SharedQueue::put_timeout(q, value, timeout),
                    $any::Redis(q) => SharedQueue::put_timeout(q, value, timeout),
                }
            }
            fn put_nowait(&self, value: &T) -> Result<()> {
                match self {
                    $any::Local(q) => SharedQueue::put_nowait(q, value),
                    $any::Redis(q) => SharedQueue::put_nowait(q, value),
                }
            }
            fn put_many(&self, values: &[T]) -> Result<()> {
                match self {
                    $any::Local(q) => SharedQueue::put_many(q, values),
                    $any::Redis(q) => SharedQueue::put_many(q, values),
                }
            }
            fn get(&self) -> Result<T> {
                match self {
                    $any::Local(q) => SharedQueue::get(q),
                    $any::Redis(q) => SharedQueue::get(q),
                }
            }
            fn get_timeout(&self, timeout: Duration) -> Result<T> {
                match self {
                    $any::Local(q) => SharedQueue::get_timeout(q, timeout),
                    $any::Redis(q) => SharedQueue::get_timeout(q, timeout),
                }
            }
            fn get_nowait(&self) -> Result<T> {
                match self {
                    $any::Local(q) => SharedQueue::get_nowait(q),
                    $any::Redis(q) => SharedQueue::get_nowait(q),
                }
            }
            fn get_many(&self, max: usize) -> Result<Vec<T>> {
                match self {
                    $any::Local(q) => SharedQueue::get_many(q, max),
                    $any::Redis(q) => SharedQueue::get_many(q, max),
                }
            }
            fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
                match self {
                    $any::Local(q) => SharedQueue::get_many_timeout(q, max, timeout),
                    $any::Redis(q) => SharedQueue::get_many_timeout(q, max, timeout),
                }
            }
            fn qsize(&self) -> Result<usize> {
                match self {
                    $any::Local(q) => SharedQueue::qsize(q),
                    $any::Redis(q) => SharedQueue::qsize(q),
                }
            }
            fn close(&self) -> Result<()> {
                match self {
                    $any::Local(q) => SharedQueue::close(q),
                    $any::Redis(q) => SharedQueue::close(q),
                }
            }
            fn is_closed(&self) -> Result<bool> {
                match self {
                    $any::Local(q) => SharedQueue::is_closed(q),
                    $any::Redis(q) => SharedQueue::is_closed(q),
                }
            }
        }
    };
}

delegate_queue!(AnyQueue);
delegate_queue!(AnyJoinableQueue);

impl<T: Message> SharedJoinableQueue<T> for AnyJoinableQueue<T> {
    fn task_done(&self) -> Result<()> {
        match self {
            AnyJoinableQueue::Local(q) => SharedJoinableQueue::task_done(q),
            AnyJoinableQueue::Redis(q) => SharedJoinableQueue::task_done(q),
        }
    }
    fn join(&self) -> Result<()> {
        match self {
            AnyJoinableQueue::Local(q) => SharedJoinableQueue::join(q),
            AnyJoinableQueue::Redis(q) => SharedJoinableQueue::join(q),
        }
    }
    fn join_timeout(&self, timeout: Duration) -> Result<()> {
        match self {
            AnyJoinableQueue::Local(q) => SharedJoinableQueue::join_timeout(q, timeout),
            AnyJoinableQueue::Redis(q) => SharedJoinableQueue::join_timeout(q, timeout),
        }
    }
    fn unfinished_tasks(&self) -> Result<u64> {
        match self {
            AnyJoinableQueue::Local(q) => SharedJoinableQueue::unfinished_tasks(q),
            AnyJoinableQueue::Redis(q) => SharedJoinableQueue::unfinished_tasks(q),
        }
    }
}
