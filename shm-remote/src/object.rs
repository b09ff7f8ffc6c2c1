//! What every Redis object shares: its keys and its type tag.
//!
//! # Key layout
//!
//! Every key of a manager is `<namespace>:<tag>:<name>`: the namespace has no `:`
//! (see [`check_namespace`](crate::address::check_namespace)) and the tag is one of a
//! fixed set without `:`, so a key splits back unambiguously whatever the object's
//! name contains. Tags in use:
//!
//! | tag | key holds |
//! |-----|-----------|
//! | `m` | the type tag: a hash `{kind, type}` written at creation, checked at every open |
//! | `d` | the data: a hash (dict, namespace), a list (vec), a string (value) |
//!
//! Other object kinds add their own tags (one letter or word, no `:`).
//!
//! The type tag is checked when a handle is opened, not on each call: a call costs
//! one round trip. A key replaced later by another Redis type (by hand, or a
//! hostile client) is still caught: the server answers `WRONGTYPE` and the call
//! returns [`Error::WrongType`]; bytes that do not decode give
//! [`Error::Corrupted`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};

/// The key `<namespace>:<tag>:<name>`.
///
/// ```
/// assert_eq!(shm_remote::object::key("ns", "d", "a:b"), "ns:d:a:b");
/// ```
pub fn key(namespace: &str, tag: &str, name: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + tag.len() + name.len() + 2);
    k.push_str(namespace);
    k.push(':');
    k.push_str(tag);
    k.push(':');
    k.push_str(name);
    k
}

/// The longest type tag text accepted back from the server (a hostile meta hash
/// cannot make an error message of megabytes).
const MAX_TAG: usize = 256;

/// Creates the type tag or checks it, and reports the data key's Redis type, in one
/// round trip. KEYS: meta, data. ARGV: kind, type.
const OPEN_SCRIPT: &str = r#"
local mt = redis.call('TYPE', KEYS[1])['ok']
if mt ~= 'none' and mt ~= 'hash' then return {'', '', '', mt} end
local kind = redis.call('HGET', KEYS[1], 'kind')
local ty = redis.call('HGET', KEYS[1], 'type')
if not kind then
  redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'type', ARGV[2])
  kind = ARGV[1]
  ty = ARGV[2]
end
return {kind, ty or '', redis.call('TYPE', KEYS[2])['ok'], 'hash'}
"#;

/// Cuts a text read from the server for an error message.
pub(crate) fn clip(s: &[u8]) -> String {
    let s = String::from_utf8_lossy(&s[..s.len().min(MAX_TAG)]).into_owned();
    if s.len() >= MAX_TAG {
        format!("{s}...")
    } else {
        s
    }
}

/// A handle's connection, names and patience: what each Redis type holds.
pub struct RemoteObject {
    conn: Arc<Conn>,
    namespace: String,
    name: String,
    label: String,
    data: String,
    /// Nanoseconds, `u64::MAX`: no limit.
    patience: AtomicU64,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

fn nanos(p: Option<Duration>) -> u64 {
    p.map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
    })
}

impl RemoteObject {
    /// Opens (creating its type tag when new) the object `name` of `kind` and `type_name`
    /// (`Dict`, `Dict<String, u64>`), whose data key must be of Redis type
    /// `redis_type` (`hash`, `list`, `string`, ...) or absent.
    /// [`Error::WrongType`] if the name holds another kind or type, or its data key
    /// another Redis type.
    pub fn open(
        conn: Arc<Conn>,
        namespace: &str,
        name: &str,
        kind: &str,
        type_name: &str,
        redis_type: &str,
    ) -> Result<Self> {
        let meta = key(namespace, "m", name);
        let data = key(namespace, "d", name);
        let label = format!("{type_name} {name:?} at {}", conn.address());
        let script = redis::Script::new(OPEN_SCRIPT);
        let reply: Vec<Vec<u8>> = conn.run(conn.timeout(), Retry::Idempotent, |s| {
            s.invoke(script.key(&meta).key(&data).arg(kind).arg(type_name))
        })?;
        let [found_kind, found_type, data_type, meta_type] = reply.as_slice() else {
            return Err(Error::Corrupted {
                name: label,
                what: format!(
                    "expected 4 fields from the open script, found {}",
                    reply.len()
                ),
            });
        };
        if meta_type.as_slice() != b"hash" {
            return Err(Error::WrongType {
                name: meta,
                expected: "a Redis hash (the type tag)".into(),
                found: format!("a Redis {}", clip(meta_type)),
            });
        }
        if found_kind.as_slice() != kind.as_bytes() || found_type.as_slice() != type_name.as_bytes()
        {
            return Err(Error::WrongType {
                name: name.to_owned(),
                expected: type_name.to_owned(),
                found: if found_type.is_empty() {
                    clip(found_kind)
                } else {
                    clip(found_type)
                },
            });
        }
        if data_type.as_slice() != b"none" && data_type.as_slice() != redis_type.as_bytes() {
            return Err(Error::WrongType {
                name: data,
                expected: format!("a Redis {redis_type}"),
                found: format!("a Redis {}", clip(data_type)),
            });
        }
        let patience = AtomicU64::new(nanos(conn.timeout()));
        Ok(RemoteObject {
            conn,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            label,
            data,
            patience,
        })
    }

    /// The connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The shared connection.
    pub fn conn_arc(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The object's name (the manager's key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manager's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `Dict<String, u64> "name" at redis://host:port/ns`, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The data key.
    pub fn data_key(&self) -> &str {
        &self.data
    }

    /// Another key of this object: `<namespace>:<tag>:<name>`.
    pub fn key(&self, tag: &str) -> String {
        key(&self.namespace, tag, &self.name)
    }

    /// How long each call waits for the server (`None`: no limit).
    pub fn patience(&self) -> Option<Duration> {
        match self.patience.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Sets how long each call waits for the server.
    pub fn set_patience(&self, patience: Option<Duration>) {
        self.patience.store(nanos(patience), Ordering::Relaxed);
    }

    /// Names this object in an error that names the server: `WrongType`, `Timeout`
    /// and `Corrupted` name the object rather than the server.
    pub fn rename(&self, e: Error) -> Error {
        match e {
            Error::WrongType { .. } => Error::WrongType {
                name: self.label.clone(),
                expected: "the object's Redis type".into(),
                found: "another Redis type at its key (WRONGTYPE)".into(),
            },
            Error::Timeout { waited, .. } => Error::Timeout {
                what: self.label.clone(),
                waited,
            },
            Error::Corrupted { what, .. } => Error::Corrupted {
                name: self.label.clone(),
                what,
            },
            other => other,
        }
    }
}
