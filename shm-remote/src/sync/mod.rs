//! [`Lock`], [`RLock`], [`Event`], [`Semaphore`] and [`Barrier`] on a Redis server:
//! `shm_sync`'s primitives for processes on several machines, with the same method
//! names, timeouts and error kinds (traits in [`crate::api`]).
//!
//! # Semantics, per operation
//!
//! Every state change is one Lua script (fixed strings of this crate), atomic on the
//! server. Times in scripts are the server's clock (`TIME`), so clients need no
//! synchronised clocks. Waits poll (1 ms, doubling to 20 ms, never past the deadline
//! nor past the end of a lease they wait for), except [`Event::wait`], which
//! subscribes.
//!
//! **Lock** (`SET NX PX` with a token): the holder is the token stored at the lock's
//! key with a *lease* as its expiry (10 s by default, [`Lock::set_lease`]). While a
//! guard lives, a keeper thread of the handle renews the lease every third of it.
//! Release is a script that deletes the key only if it still holds the holder's
//! token. Each acquisition increments a *fencing token* ([`LockGuard::fencing_token`]):
//! hand it to what the lock protects so that it can refuse a holder whose lease ran
//! out (a frozen process that wakes up after its lease). A holder that dies (or is cut
//! off from the server for longer than its lease) loses the lock when the lease runs
//! out, and the next locker gets [`LockError::OwnerDied`](crate::api::LockError::OwnerDied)
//! with the guard, as with a dead local holder; the lock stays *inconsistent*
//! ([`LockError::Inconsistent`](crate::api::LockError::Inconsistent)) until a holder
//! calls [`LockGuard::mark_consistent`]. The calling thread locking again is
//! `WouldDeadlock`. What survives: a server restart with append-only persistence keeps
//! the holder and the counter; without it, the lock is free and the fencing counter
//! starts again from 0.
//!
//! **RLock**: the same with a per-thread token and a depth: the thread that holds it
//! may lock again (through any handle) and must release as often.
//!
//! **Event**: a flag key (`0`/`1`). `set` writes it and publishes on the event's
//! channel in one script; `wait` *subscribes first, then reads the flag*, so a `set`
//! between the two is seen in the flag and one after it arrives as a message: no lost
//! wake-up. The waiter also re-reads the flag every 200 ms (a message lost with a
//! connection is late, not lost).
//!
//! **Semaphore**: a hash with the free `count` (and `max` for a bounded one) and a
//! sorted set of the permits held, each with a lease renewed by the keeper of the
//! handle that took it. Acquire first gives back the permits whose lease ran out (a
//! dead holder's), never above `max`, and tells the acquirer how many came back. A
//! release by a handle that holds none adds a permit (a semaphore used as a signal),
//! refused past a bounded semaphore's `max`.
//!
//! **Barrier**: a hash (`parties`, round number, arrived count, broken flag, the
//! outcome of recent rounds) and a sorted set of registered parties with leases. A
//! party registers at its first `wait` and leaves when its handle drops; its keeper
//! renews its lease between rounds and its polls while waiting. A registered party
//! whose lease runs out (dead) breaks the barrier for the waiting parties, like a dead
//! local party; a timeout breaks it too (that party gets [`Error::Timeout`](crate::Error::Timeout), the others
//! a broken barrier); `reset` makes it usable again.
//!
//! **Faults**: a call while the server is down returns [`Error::Disconnected`](crate::Error::Disconnected) (or
//! [`Error::Timeout`](crate::Error::Timeout) when the server does not answer), and the next call reconnects.
//! A state change whose reply was lost is not sent again (it may have been applied:
//! a lock taken that way is released by its lease). No call waits past its timeout
//! by more than one call's patience.

pub(crate) mod scripts;

mod barrier;
mod event;
mod lock;
mod semaphore;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::Script;

pub use barrier::Barrier;
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock};
pub use semaphore::Semaphore;

use crate::common::{Obj, deadline};
use crate::keeper::Lease;

static ZSET_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ZSET_RENEW));

/// Makes `lease`'s keeper renew, every tick, the leases of the members that
/// `members` lists in the sorted set `key` (a semaphore's permits, a barrier's
/// party): one script per tick, nothing when the list is empty.
fn renew_members(
    lease: &Lease,
    obj: &Obj,
    key: &str,
    members: impl Fn() -> Vec<String> + Send + Sync + 'static,
) {
    let obj = obj.clone();
    let key = key.to_owned();
    let ms = lease.get().as_millis().to_string();
    lease.keeper.add(Arc::new(move || {
        let members = members();
        if members.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = vec![ms.as_bytes()];
        args.extend(members.iter().map(|m| m.as_bytes()));
        obj.run(&ZSET_RENEW, &[&key], &args, obj.call_timeout(None))
            .map(drop)
    }));
}
pub use crate::keeper::{DEFAULT_LEASE, MIN_LEASE};

/// How a call waits.
#[derive(Clone, Copy)]
enum Wait {
    Try,
    /// Until the deadline (`None`: as long as it takes).
    Until(Option<Instant>),
}

impl Wait {
    fn timeout(t: Duration) -> Wait {
        Wait::Until(deadline(t))
    }
    /// The deadline of the wait (`Try` does not wait: its one call has the handle's
    /// patience).
    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Try => None,
            Wait::Until(d) => d,
        }
    }
}
