//! The queue's state on the server and the scripts that change it: one [`Core`] per
//! handle of a [`Queue`](super::Queue) or [`JoinableQueue`](super::JoinableQueue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::{Script, Value};
use shm_collections::Message;

use crate::common::{Obj, array, deadline, handle_id, int, lock, pause};
use crate::conn::{Conn, Retry};
use crate::error::{Error, Result};
use crate::keeper::{DROP_PATIENCE, Keeper, MIN_LEASE};

use super::{CHUNK, Delivery, QueueOptions, scripts};

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::PUT));
static GET: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::GET));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ACK));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RENEW));
static SIZES: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SIZES));

/// One raw entry of a get: id, deliveries, payload (`None`: garbage, dropped).
pub(super) type Entry = (String, u64, Option<Vec<u8>>);

pub(super) struct Core {
    pub(super) obj: Obj,
    pub(super) conf: String,
    pub(super) consumer: String,
    pub(super) joinable: bool,
    pub(super) maxsize: usize,
    pub(super) lease: Duration,
    /// Ids this handle got and has not acknowledged (JoinableQueue), oldest first.
    pub(super) taken: Arc<Mutex<VecDeque<String>>>,
    pub(super) keeper: Keeper,
    pub(super) renewing: AtomicBool,
    pub(super) type_name: &'static str,
}

impl Drop for Core {
    fn drop(&mut self) {
        // A consumer with nothing pending leaves the group; one with pending messages
        // stays so that they are claimed after the lease.
        if lock(&self.taken).is_empty() {
            let _ = self.obj.conn.query::<Value>(
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(self.obj.data())
                    .arg("g")
                    .arg(&self.consumer),
                Some(DROP_PATIENCE),
                Retry::Idempotent,
            );
        }
    }
}

impl Core {
    pub(super) fn open(
        conn: &Arc<Conn>,
        name: &str,
        kind: &str,
        type_name: &'static str,
        opts: QueueOptions,
        joinable: bool,
    ) -> Result<Core> {
        let ty = format!("{kind}<{type_name}>");
        let obj = Obj::open(conn, name, kind, &ty, "stream")?;
        let conf = obj.key("qc");
        let lease = opts.lease.clamp(MIN_LEASE, Duration::from_secs(24 * 3600));
        let mut p = redis::pipe();
        p.cmd("HSETNX")
            .arg(&conf)
            .arg("maxsize")
            .arg(opts.maxsize)
            .ignore();
        p.cmd("HSETNX")
            .arg(&conf)
            .arg("lease")
            .arg(lease.as_millis() as u64)
            .ignore();
        p.cmd("HMGET").arg(&conf).arg("maxsize").arg("lease");
        let (vals,): (Vec<Value>,) = obj
            .conn
            .pipeline(&p, obj.ro.patience(), Retry::Idempotent)
            .map_err(|e| obj.err(e))?;
        let maxsize = int(&obj, vals.first())?;
        let lease_ms = int(&obj, vals.get(1))?;
        let maxsize = usize::try_from(maxsize)
            .map_err(|_| obj.corrupted(format!("expected maxsize >= 0, found {maxsize}")))?;
        let lease = u64::try_from(lease_ms)
            .ok()
            .filter(|ms| *ms >= MIN_LEASE.as_millis() as u64)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                obj.corrupted(format!(
                    "expected a lease >= {MIN_LEASE:?} in ms, found {lease_ms}"
                ))
            })?;
        match obj.conn.query::<Value>(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(obj.data())
                .arg("g")
                .arg("0")
                .arg("MKSTREAM"),
            obj.ro.patience(),
            Retry::Idempotent,
        ) {
            Ok(_) => {}
            Err(Error::Server { message, .. }) if message.contains("BUSYGROUP") => {}
            Err(e) => return Err(obj.err(e)),
        }
        let keeper = Keeper::new(lease);
        Ok(Core {
            conf,
            obj,
            consumer: handle_id(),
            joinable,
            maxsize,
            lease,
            taken: Arc::new(Mutex::new(VecDeque::new())),
            keeper,
            renewing: AtomicBool::new(false),
            type_name,
        })
    }

    pub(super) fn name(&self) -> String {
        self.obj.label.clone()
    }

    pub(super) fn full(&self, waited: Duration) -> Error {
        let _ = waited;
        Error::Full { name: self.name() }
    }

    pub(super) fn encode<T: Message>(&self, v: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        shm_collections::codec::encode(v, &mut out).map_err(|e| Error::Encode {
            name: self.name(),
            what: "value",
            reason: e.to_string(),
        })?;
        Ok(out)
    }

    /// Runs PUT scripts for `chunks`: pipelined when the queue is unbounded.
    pub(super) fn put_chunks(
        &self,
        chunks: &[&[Vec<u8>]],
        timeout: Option<Duration>,
    ) -> Result<Vec<i64>> {
        let keys = [self.obj.data(), self.conf.as_str()];
        let mut invs = Vec::with_capacity(chunks.len());
        for c in chunks {
            let mut inv = PUT.prepare_invoke();
            inv.key(keys[0]).key(keys[1]);
            for m in c.iter() {
                inv.arg(m.as_slice());
            }
            invs.push(inv);
        }
        if invs.len() == 1 {
            let v = self.obj.run(
                &PUT,
                &keys,
                &chunks[0].iter().map(|m| m.as_slice()).collect::<Vec<_>>(),
                timeout,
            )?;
            return Ok(vec![int(&self.obj, Some(&v))?]);
        }
        let mut pipe = redis::pipe();
        for inv in &invs {
            pipe.invoke_script(inv);
        }
        let r = self
            .obj
            .conn
            .run(timeout, Retry::Once, |s| s.pipeline::<Vec<i64>>(&pipe));
        match r {
            Err(Error::Server { message, .. }) if message.contains("NOSCRIPT") => {
                // Not loaded (first use, or the server restarted): nothing ran.
                self.obj
                    .conn
                    .query::<String>(
                        redis::cmd("SCRIPT").arg("LOAD").arg(scripts::PUT),
                        timeout,
                        Retry::Idempotent,
                    )
                    .map_err(|e| self.obj.err(e))?;
                self.obj
                    .conn
                    .run(timeout, Retry::Once, |s| s.pipeline::<Vec<i64>>(&pipe))
                    .map_err(|e| self.obj.err(e))
            }
            other => other.map_err(|e| self.obj.err(e)),
        }
    }

    /// Puts `msgs` in order, waiting for room until `dl` (`try_` when `nowait`).
    pub(super) fn put_encoded(
        &self,
        msgs: &[Vec<u8>],
        nowait: bool,
        dl: Option<Instant>,
        waited: Duration,
    ) -> Result<()> {
        let mut rest = msgs;
        let mut round = 0;
        if self.maxsize == 0 && rest.len() > CHUNK {
            let chunks: Vec<&[Vec<u8>]> = rest.chunks(CHUNK).collect();
            let ns = self.put_chunks(&chunks, self.obj.call_timeout(dl))?;
            for (n, c) in ns.iter().zip(&chunks) {
                if *n < 0 {
                    return Err(Error::Closed { name: self.name() });
                }
                if *n as usize != c.len() {
                    return Err(self
                        .obj
                        .corrupted(format!("an unbounded queue put {n} of {} values", c.len())));
                }
            }
            return Ok(());
        }
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(CHUNK)];
            let n = self.put_chunks(&[chunk], self.obj.call_timeout(dl))?[0];
            if n < 0 {
                return Err(Error::Closed { name: self.name() });
            }
            let n = (n as usize).min(chunk.len());
            rest = &rest[n..];
            if n == 0 && !rest.is_empty() {
                if nowait || !pause(&mut round, dl, None) {
                    return Err(self.full(waited));
                }
            } else {
                round = 0;
            }
        }
        Ok(())
    }

    pub(super) fn put<T: Message>(
        &self,
        v: &T,
        nowait: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let m = self.encode(v)?;
        let dl = if nowait {
            None
        } else {
            timeout.and_then(deadline)
        };
        self.put_encoded(
            std::slice::from_ref(&m),
            nowait,
            dl,
            timeout.unwrap_or(Duration::ZERO),
        )
    }

    pub(super) fn put_many<T: Message>(&self, values: &[T]) -> Result<()> {
        let msgs = values
            .iter()
            .map(|v| self.encode(v))
            .collect::<Result<Vec<_>>>()?;
        self.put_encoded(&msgs, false, None, Duration::ZERO)
    }

    /// One GET script: up to `n` entries.
    pub(super) fn get_once(
        &self,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<(bool, Vec<Entry>)> {
        let ack: &[u8] = if self.joinable { b"0" } else { b"1" };
        let count = n.to_string();
        let lease = self.lease.as_millis().to_string();
        let reply = array(
            &self.obj,
            self.obj.run(
                &GET,
                &[self.obj.data(), &self.conf],
                &[
                    self.consumer.as_bytes(),
                    count.as_bytes(),
                    ack,
                    lease.as_bytes(),
                ],
                timeout,
            )?,
        )?;
        let closed = int(&self.obj, reply.first())? == 1;
        let mut out = Vec::with_capacity((reply.len().saturating_sub(1)) / 3);
        let mut it = reply.into_iter().skip(1);
        while let Some(id) = it.next() {
            let id = match id {
                Value::BulkString(b) => String::from_utf8(b)
                    .map_err(|_| self.obj.corrupted("a stream id that is not UTF-8"))?,
                other => {
                    return Err(self
                        .obj
                        .corrupted(format!("expected a stream id, found {other:?}")));
                }
            };
            let d = int(&self.obj, it.next().as_ref())?;
            let payload = match it.next() {
                Some(Value::BulkString(b)) => Some(b),
                Some(Value::Nil) => None,
                other => {
                    return Err(self
                        .obj
                        .corrupted(format!("expected a payload, found {other:?}")));
                }
            };
            out.push((id, u64::try_from(d).unwrap_or(1), payload));
        }
        Ok((closed, out))
    }

    pub(super) fn start_keeper(&self) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let obj = self.obj.clone();
        let taken = self.taken.clone();
        let consumer = self.consumer.clone();
        self.keeper.add(Arc::new(move || {
            let ids: Vec<String> = lock(&taken).iter().cloned().collect();
            if ids.is_empty() {
                return Ok(());
            }
            let mut args: Vec<&[u8]> = vec![consumer.as_bytes()];
            args.extend(ids.iter().map(|i| i.as_bytes()));
            obj.run(&RENEW, &[obj.data()], &args, obj.call_timeout(None))
                .map(drop)
        }));
    }

    /// Acknowledges `ids` (and deletes them).
    pub(super) fn ack(&self, ids: &[&str]) -> Result<i64> {
        let args: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes()).collect();
        let v = self.obj.call(&ACK, &[self.obj.data()], &args)?;
        int(&self.obj, Some(&v))
    }

    /// Decodes what a get took; records the good ids of a joinable queue; acks the ones
    /// that do not decode.
    pub(super) fn decode<T: Message>(&self, entries: Vec<Entry>) -> Result<Vec<Delivery<T>>> {
        let mut good = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        let mut first_err = None;
        for (id, deliveries, payload) in entries {
            let Some(p) = payload else { continue };
            match shm_collections::codec::decode::<T>(&p) {
                Ok(value) => good.push(Delivery {
                    value,
                    id,
                    deliveries,
                }),
                Err(e) => {
                    first_err.get_or_insert_with(|| {
                        self.obj.corrupted(format!(
                            "message {id} does not decode as {}: {e}",
                            self.type_name
                        ))
                    });
                    bad.push(id);
                }
            }
        }
        if self.joinable {
            if !bad.is_empty() {
                let ids: Vec<&str> = bad.iter().map(String::as_str).collect();
                let _ = self.ack(&ids);
            }
            if !good.is_empty() {
                lock(&self.taken).extend(good.iter().map(|d| d.id.clone()));
                self.start_keeper();
            }
        }
        match (good.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(good),
        }
    }

    /// Takes up to `max` messages, waiting for the first until `dl` (or not at all
    /// when `nowait`).
    pub(super) fn get<T: Message>(
        &self,
        max: usize,
        nowait: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<Delivery<T>>> {
        let max = max.max(1);
        let dl = if nowait {
            None
        } else {
            timeout.and_then(deadline)
        };
        let waited = timeout.unwrap_or(Duration::ZERO);
        let mut round = 0;
        loop {
            let (closed, entries) = self.get_once(max.min(CHUNK), self.obj.call_timeout(dl))?;
            if !entries.is_empty() {
                let full = entries.len() == max.min(CHUNK);
                let mut got = self.decode::<T>(entries)?;
                // get_many: more in further round trips while chunks come back full.
                while full && got.len() < max {
                    let (_, more) =
                        self.get_once((max - got.len()).min(CHUNK), self.obj.call_timeout(dl))?;
                    let n = more.len();
                    got.extend(self.decode::<T>(more)?);
                    if n < CHUNK {
                        break;
                    }
                }
                if !got.is_empty() {
                    return Ok(got);
                }
                continue;
            }
            if closed {
                return Err(Error::Closed { name: self.name() });
            }
            if nowait || !pause(&mut round, dl, None) {
                let _ = waited;
                return Err(Error::Empty { name: self.name() });
            }
        }
    }

    pub(super) fn sizes(&self) -> Result<(u64, u64, bool, u64)> {
        let v = array(
            &self.obj,
            self.obj.run_with(
                &SIZES,
                &[self.obj.data(), &self.conf],
                &[],
                self.obj.ro.patience(),
                Retry::Idempotent,
            )?,
        )?;
        let f = |i: usize| -> Result<u64> {
            let n = int(&self.obj, v.get(i))?;
            u64::try_from(n).map_err(|_| {
                self.obj
                    .corrupted(format!("expected a count >= 0, found {n}"))
            })
        };
        Ok((f(0)?, f(1)?, f(2)? == 1, f(3)?))
    }

    pub(super) fn qsize(&self) -> Result<usize> {
        Ok(self.core_queued()? as usize)
    }

    pub(super) fn core_queued(&self) -> Result<u64> {
        Ok(self.sizes()?.0)
    }

    /// Messages put and not acknowledged: waiting plus taken-and-pending.
    pub(super) fn unfinished(&self) -> Result<u64> {
        let (queued, pending, _, _) = self.sizes()?;
        Ok(queued.saturating_add(pending))
    }

    pub(super) fn close(&self) -> Result<()> {
        self.obj
            .conn
            .query::<()>(
                redis::cmd("HSET").arg(&self.conf).arg("closed").arg("1"),
                self.obj.ro.patience(),
                Retry::Idempotent,
            )
            .map_err(|e| self.obj.err(e))
    }
}
