//! [`ShareableDict`], [`ShareableVec`], [`Namespace`] and [`Value`] over Redis: a hash,
//! a list, a hash and a string at `<namespace>:d:<name>`, with the serde codec of
//! `shm_collections` (bincode 2, standard configuration; keys and values are the same
//! bytes as in shared memory).
//!
//! # Atomicity and crashes (every type)
//!
//! - Every call is one command, one fixed Lua script or one `WATCH`/`MULTI`/`EXEC`
//!   transaction: the server applies it whole or not at all, and other clients see it
//!   whole. A client killed at any point (kill -9) leaves the value either as before or
//!   as after its last call; nothing it had acknowledged is lost.
//! - `update` reads, runs the closure on this client, and writes in a transaction that
//!   the server refuses when another client changed the key in between; the closure
//!   then runs again on the new value (optimistic concurrency: no lost update, the
//!   closure may run more than once, never a partial write).
//! - The server: a write is acknowledged after the server applied it in memory. With
//!   `appendonly yes` (the harness's `ServerOptions::appendonly`) it is in the
//!   append-only file before the reply, so a killed server (kill -9) restarts with every
//!   acknowledged write; without persistence a restart empties the namespace (calls
//!   then see empty objects, or [`Error::NotFound`] for a [`Value`]). With
//!   `appendfsync everysec` a power loss can lose the last second.
//! - While the server is unreachable calls fail with [`Error::Disconnected`] (or
//!   [`Error::Timeout`] if it does not answer within the handle's patience); the next
//!   call reconnects. A write whose reply was lost may or may not have been applied
//!   (writes that are safe to repeat are repeated once, see [`Retry`]).
//! - Bytes planted by something else (a value that does not decode, a key of another
//!   Redis type, a value over the handle's limits) give [`Error::Corrupted`],
//!   [`Error::WrongType`] or [`Error::TooLarge`], never a panic.

mod map;
mod namespace;
mod vec;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_collections::Limits;
use shm_collections::codec;

use crate::conn::{Retry, Session};
use crate::error::{Error, Result};
use crate::manager::RedisManager;
use crate::object::RemoteObject;

pub use map::ShareableDict;
pub use namespace::{Namespace, Value};
pub use vec::ShareableVec;

fn short<T: ?Sized>() -> String {
    shm_core::short_type_name(std::any::type_name::<T>())
}

/// Encoding, decoding and the size limits of one handle.
#[derive(Debug)]
pub(super) struct Codec {
    pub(super) obj: RemoteObject,
    pub(super) limits: Limits,
}

impl Codec {
    /// Opens (creating its type tag when new) the object `name` of `manager`.
    pub(super) fn open(
        manager: &RedisManager,
        name: &str,
        kind: &str,
        type_name: &str,
        redis_type: &str,
        limits: Limits,
    ) -> Result<Codec> {
        let obj = manager.object(name, kind, type_name, redis_type)?;
        Ok(Codec { obj, limits })
    }

    /// The object's name in its manager.
    pub(super) fn name(&self) -> &str {
        self.obj.name()
    }

    /// The Redis key of the object's data.
    pub(super) fn data_key(&self) -> &str {
        self.obj.data_key()
    }

    pub(super) fn key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        codec::encode(key, &mut out).map_err(|e| Error::Encode {
            name: self.obj.label().to_owned(),
            what: "key",
            reason: e.0,
        })?;
        self.check("key", out.len(), self.limits.max_key)?;
        Ok(out)
    }

    pub(super) fn value<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        codec::encode(v, &mut out).map_err(|e| Error::Encode {
            name: self.obj.label().to_owned(),
            what: "value",
            reason: e.0,
        })?;
        self.check("value", out.len(), self.limits.max_value)?;
        Ok(out)
    }

    pub(super) fn check(&self, what: &'static str, len: usize, limit: u32) -> Result<()> {
        let limit = limit as usize;
        if len > limit {
            return Err(Error::TooLarge {
                name: self.obj.label().to_owned(),
                what,
                len,
                limit,
            });
        }
        Ok(())
    }

    /// Decodes stored bytes: over the limit is [`Error::TooLarge`], not a `T` is
    /// [`Error::Corrupted`] naming the expected type.
    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        what: &'static str,
        bytes: &[u8],
    ) -> Result<T> {
        let limit = if what == "key" {
            self.limits.max_key
        } else {
            self.limits.max_value
        };
        self.check(what, bytes.len(), limit)?;
        codec::decode::<T>(bytes).map_err(|e| Error::Corrupted {
            name: self.obj.label().to_owned(),
            what: format!(
                "stored {what} ({} bytes) does not decode as {}: {}",
                bytes.len(),
                short::<T>(),
                e.0
            ),
        })
    }

    /// Runs `f` with this handle's patience; errors name the object.
    pub(super) fn run<R>(
        &self,
        retry: Retry,
        f: impl FnMut(&mut Session<'_>) -> Result<R>,
    ) -> Result<R> {
        self.obj
            .conn()
            .run(self.obj.patience(), retry, f)
            .map_err(|e| self.obj.rename(e))
    }

    pub(super) fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        retry: Retry,
    ) -> Result<T> {
        self.run(retry, |s| s.query(cmd))
    }

    /// An optimistic transaction on the data key: `WATCH` and the reads of `reads` in
    /// one round trip, then `attempt` turns what they read into the commands to run in
    /// `MULTI`/`EXEC` (a second round trip) and the result. It runs again while another
    /// client's write aborts the `EXEC`, until the patience runs out
    /// ([`Error::Timeout`]).
    pub(super) fn transact<T: redis::FromRedisValue, R>(
        &self,
        reads: &redis::Pipeline,
        mut attempt: impl FnMut(T) -> Result<(redis::Pipeline, R)>,
    ) -> Result<R> {
        let key = self.obj.data_key().to_owned();
        self.run(Retry::Once, |s| {
            let mut conflicts = 0u32;
            loop {
                let read: T = s.watch_read(&[&key], reads)?;
                let (mut pipe, r) = attempt(read)?;
                if s.exec(&mut pipe)?.is_some() {
                    return Ok(r);
                }
                // Another client won the race: read again (the deadline bounds the loop).
                conflicts = conflicts.saturating_add(1);
                if s.deadline().passed() {
                    return Err(Error::Timeout {
                        what: format!("{} ({conflicts} conflicting writes)", self.obj.label()),
                        waited: s.deadline().timeout().unwrap_or_default(),
                    });
                }
                if conflicts > 8 {
                    std::thread::sleep(Duration::from_micros(50 * u64::from(conflicts.min(40))));
                }
            }
        })
    }
}
