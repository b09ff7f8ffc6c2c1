//! The lease keeper: a thread per handle that renews the leases the handle holds
//! (a lock's token, semaphore permits, a barrier party, a joinable queue's pending
//! messages) every third of the lease, and the lease constants the lock, semaphore,
//! barrier and queue modules share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::{Obj, lock};
use crate::error::{Error, Result};

/// The default lease of a lock, a semaphore permit, a barrier party or a queue
/// message being worked on: a holder that stops renewing it (dead, frozen, cut off
/// from the server) loses it this long after its last renewal. The keeper renews
/// every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The shortest lease a handle accepts (renewals every third of it must get through).
pub const MIN_LEASE: Duration = Duration::from_millis(300);

/// How long a handle's drop waits for the server (a drop with the server down must
/// not hang).
pub(crate) const DROP_PATIENCE: Duration = Duration::from_secs(1);

/// A handle's lease and its keeper: [`set`](Self::set) checks a new lease and makes
/// the keeper renew at a third of it.
pub(crate) struct Lease {
    ms: AtomicU64,
    pub(crate) keeper: Keeper,
}

impl Lease {
    pub(crate) fn new() -> Lease {
        Lease {
            ms: AtomicU64::new(DEFAULT_LEASE.as_millis() as u64),
            keeper: Keeper::new(DEFAULT_LEASE),
        }
    }

    /// Sets the lease of later acquisitions (checked: [`MIN_LEASE`] to 24 h).
    pub(crate) fn set(&self, obj: &Obj, lease: Duration) -> Result<()> {
        let lease = check_lease(obj, lease)?;
        self.ms.store(lease.as_millis() as u64, Ordering::Relaxed);
        self.keeper.set_lease(lease);
        Ok(())
    }

    /// The lease.
    pub(crate) fn get(&self) -> Duration {
        Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }

    /// The lease in ms, as a script argument.
    pub(crate) fn arg(&self) -> Vec<u8> {
        ms(self.get())
    }
}

/// A renewal the keeper runs every third of the lease until it is removed.
pub(crate) type Renewal = Arc<dyn Fn() -> Result<()> + Send + Sync>;

struct KeeperState {
    items: HashMap<u64, Renewal>,
    stop: bool,
}

struct KeeperShared {
    state: Mutex<KeeperState>,
    cv: Condvar,
    /// Milliseconds between renewals.
    period_ms: AtomicU64,
}

/// The lease keeper of one handle: a thread, started at the first lease, that renews
/// every lease the handle holds each third of the lease, and stops when the handle
/// drops. A renewal that fails (server down) is tried again at the next tick; the
/// lease runs out if the server stays away longer than the lease.
pub(crate) struct Keeper {
    shared: Arc<KeeperShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next: AtomicU64,
}

impl Keeper {
    pub(crate) fn new(lease: Duration) -> Keeper {
        Keeper {
            shared: Arc::new(KeeperShared {
                state: Mutex::new(KeeperState {
                    items: HashMap::new(),
                    stop: false,
                }),
                cv: Condvar::new(),
                period_ms: AtomicU64::new(period(lease)),
            }),
            thread: Mutex::new(None),
            next: AtomicU64::new(1),
        }
    }

    /// Renews every third of `lease` from the next tick on.
    pub(crate) fn set_lease(&self, lease: Duration) {
        self.shared
            .period_ms
            .store(period(lease), Ordering::Relaxed);
    }

    /// Starts renewing; returns the id to [`remove`](Self::remove) it with.
    pub(crate) fn add(&self, renew: Renewal) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.state).items.insert(id, renew);
        let mut t = lock(&self.thread);
        if t.is_none() {
            let shared = self.shared.clone();
            *t = std::thread::Builder::new()
                .name("shm-remote-keeper".into())
                .spawn(move || keep(shared))
                .ok();
        }
        id
    }

    /// Stops renewing `id`.
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.shared.state).items.remove(&id);
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// A third of `lease`, in ms (at least 1).
fn period(lease: Duration) -> u64 {
    (lease.as_millis() / 3).clamp(1, u128::from(u32::MAX)) as u64
}

fn keep(shared: Arc<KeeperShared>) {
    let mut st = lock(&shared.state);
    loop {
        let period = Duration::from_millis(shared.period_ms.load(Ordering::Relaxed));
        let (g, _) = shared
            .cv
            .wait_timeout(st, period)
            .unwrap_or_else(|p| p.into_inner());
        st = g;
        if st.stop {
            return;
        }
        let items: Vec<Renewal> = st.items.values().cloned().collect();
        drop(st);
        for r in items {
            let _ = r();
        }
        st = lock(&shared.state);
    }
}

/// Checks a lease chosen for a handle.
pub(crate) fn check_lease(obj: &Obj, lease: Duration) -> Result<Duration> {
    if lease < MIN_LEASE || lease > Duration::from_secs(24 * 3600) {
        return Err(Error::InvalidAddress {
            address: obj.label.clone(),
            reason: format!("expected a lease between {MIN_LEASE:?} and 24 h, found {lease:?}"),
        });
    }
    Ok(lease)
}

/// Milliseconds of a lease, as a script argument.
pub(crate) fn ms(d: Duration) -> Vec<u8> {
    d.as_millis().to_string().into_bytes()
}
