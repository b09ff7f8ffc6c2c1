//! The shm collections and locks beyond one machine: the same API over shared memory
//! (this machine) and over a Redis (or Valkey) server, chosen by an address.
//!
//! - [`api`]: the traits both backends implement ([`api::SharedDict`], ...).
//! - [`ShareableDict`], [`ShareableVec`], [`Namespace`], [`Value`]: the Redis types, with
//!   the method names, timeouts, errors and serde codec of `shm_collections`.
//! - [`sync`] (`Lock`, `RLock`, `Event`, `Semaphore`, `Barrier`) and [`queue`] (`Queue`,
//!   `JoinableQueue`): the Redis locks and queues, with leases for dead participants.
//! - [`Manager`]: objects by key, opened by address: a local name for shared memory,
//!   `redis://[user:password@]host:port/namespace` (`rediss://` with TLS) for Redis.
//!   Its accessors (`dict`, `list`, `namespace`, `value`, and [`ManagerSync`]'s `lock`,
//!   `event`, `queue`, ...) return handles over either backend; [`prelude`] brings the
//!   traits into scope.
//! - [`Error`]: one error type for both backends.
//! - [`testing`]: a throwaway `redis-server` for tests.
//!
//! ```
//! let server = shm_remote::testing::RedisServer::start().unwrap();
//! let local = format!("doc-lib-{}", std::process::id());
//! for address in [local, server.url("doc")] {
//!     let m = shm_remote::Manager::create(&address)?;
//!     assert!(m.keys()?.is_empty());
//! }
//! # Ok::<(), shm_remote::Error>(())
//! ```

pub mod address;
pub mod api;
pub mod conn;
pub mod dict;
pub mod error;
pub mod manager;
pub mod object;
pub mod testing;

pub use error::{Error, Result};
/// The traits, for `use shm_remote::prelude::*` in code written against them.
pub mod prelude {
    pub use crate::any_sync::ManagerSync;
    pub use crate::api::{
        HeldLock, SharedBarrier, SharedEvent, SharedJoinableQueue, SharedLock, SharedQueue,
        SharedSemaphore,
    };
    pub use crate::api::{SharedDict, SharedNamespace, SharedValue, SharedVec};
}

pub use dict::{Namespace, ShareableDict, ShareableVec, Value};
pub use manager::{AnyDict, AnyNamespace, AnyValue, AnyVec, Manager, RedisManager};
mod any_sync;
pub use any_sync::{
    AnyBarrier, AnyEvent, AnyJoinableQueue, AnyLock, AnyLockGuard, AnyQueue, AnyRLock,
    AnySemaphore, ManagerSync,
};
mod api_queue;
mod api_sync;
mod common;
mod keeper;
pub mod queue;
pub mod sync;
