//! Who created or holds something, and whether that process or thread still lives.
//!
//! An [`Identity`] is a pid (or tid) *in its own PID namespace*, a start-time token
//! (the low 32 bits of the task's start time, field 22 of `/proc/<id>/stat`, with bit 0
//! forced on, so that a reused id is told apart) and the inode of that PID namespace.
//!
//! [`Identity::liveness`] says [`Liveness::Dead`] only when it can prove it: the
//! identity lives in the caller's own PID namespace, the caller's `/proc` belongs to
//! that namespace, and `/proc/<id>/stat` shows a zombie, an exiting task or another
//! start time, or the task is gone (`kill(id, 0)` says `ESRCH`). An identity from
//! another PID namespace (containers sharing `/dev/shm`, `docker --ipc=host`) names a
//! task that the caller's `/proc` cannot show, so it is [`Liveness::Unknown`], never
//! `Dead`.
//!
//! Limit: `/proc` shows start times shifted by the reader's *time namespace* boot-time
//! offset, and an [`Identity`] records no time namespace, so an identity recorded in
//! another time namespace of the same PID namespace (rare: CRIU, some sandboxes) can
//! read as `Dead`. Identities that travel as a registry index (the lock words of
//! shm-sync) do not have this limit: the index stands for both namespaces.
//!
//! ## The namespace registry
//!
//! Lock words have 8 bits for the namespace, not 32, so namespaces get small *exact*
//! indexes (no hash collisions) from a registry file shared by every process of the
//! user: `/dev/shm/shm-rs-pidns-<euid>`, 4096 bytes, mode 0600. Its first 8 bytes are
//! a magic number; entry `i` (1..=254) is the 8-byte little-endian word at offset
//! `8 * i`: `st_dev` (low 32 bits) `<< 32 | st_ino` of `/proc/self/ns/pid`, or 0 when
//! free. A process claims the first free entry with one compare-and-swap (or finds its
//! namespace already there). Entries are never freed: the file is tiny and
//! intentionally persists (a namespace inode reused by a later namespace finds its old
//! entry, which is harmless: every task of the earlier namespace is gone).
//!
//! The registry is opened with `O_NOFOLLOW` and used only if it is a regular file of
//! exactly 4096 bytes owned by the effective user with no group or other permissions
//! and the right magic; otherwise (and when all 254 entries are taken) the index is 0,
//! "namespace unknown", and identities carrying it are never declared dead. Bytes in
//! the file are untrusted: a garbage entry can make an index unknown, never cause
//! undefined behaviour or a panic. If the file is deleted and recreated while
//! processes use it, a process that still maps the old file sees the path change and
//! treats every index as unknown.
//!
//! ## Forks
//!
//! The cached identities and namespace data are reset in a forked child (a
//! `pthread_atfork` handler), so a child computes its own on first use.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

mod owner;
pub use owner::OwnerWord;

/// Who created / holds something: a process or thread, with its start-time token and
/// the PID namespace it lives in.
///
/// ```
/// use shm_core::identity::{Identity, Liveness};
/// let me = Identity::current_process();
/// assert_eq!(me.id, std::process::id());
/// assert_ne!(me.token, 0);
/// assert_eq!(me.liveness(), Liveness::Alive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The pid (or tid) in its own PID namespace.
    pub id: u32,
    /// Low 32 bits of the start time (clock ticks since boot) with bit 0 set, or
    /// [`TOKEN_UNKNOWN`] when `/proc` could not be read. Never 0.
    pub token: u32,
    /// Inode of the PID namespace `id` belongs to; 0 = unknown.
    pub pidns: u32,
}

/// What [`Identity::liveness`] could establish.
///
/// ```
/// use shm_core::identity::{Identity, Liveness};
/// let gone = Identity { id: 0, token: 1, pidns: 0 };
/// assert_eq!(gone.liveness(), Liveness::Dead); // id 0 names nobody
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The task exists and its start time matches the token.
    Alive,
    /// Provably dead: gone, a zombie, exiting, its id reused, or an identity no task
    /// can have (id 0 or token 0).
    Dead,
    /// Cannot tell (another PID namespace, an unreadable `/proc`, an unknown start
    /// time, or an id outside `1..pid_max` that no task can have, i.e. a damaged word:
    /// see [`is_valid_pid`]): treat as alive.
    Unknown,
}

/// The token of an identity whose start time could not be read (no readable `/proc`).
/// [`Identity::liveness`] then checks only that the id exists. A real start time that
/// would give this value is mapped to `TOKEN_UNKNOWN - 2`.
///
/// ```
/// use shm_core::identity::{Identity, TOKEN_UNKNOWN};
/// assert_ne!(Identity::current_thread().token, 0);
/// assert_eq!(TOKEN_UNKNOWN & 1, 1); // as every token: bit 0 set, never 0
/// ```
pub const TOKEN_UNKNOWN: u32 = u32::MAX;

/// Where the registry lives (`<euid>` is appended): `/dev/shm/` and
/// `crate::name::PIDNS_PREFIX`, spelt out
/// here so that identity does not import the name grammar (which imports the header,
/// which imports identity); a test in `name` pins the two together.
pub(crate) const REGISTRY_PREFIX: &str = "/dev/shm/shm-rs-pidns-";
/// Size of the registry file.
const REGISTRY_LEN: usize = 4096;
/// First word of a valid registry: `shmpidn1`.
const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"shmpidn1");
/// Highest index handed out; 0 and 255 mean "unknown".
const MAX_INDEX: u8 = 254;

/// `PF_EXITING` in the `flags` field: the task is in `do_exit` and will never run user
/// code again.
const PF_EXITING: u64 = 0x4;

impl Identity {
    /// The calling process: its pid, start-time token and PID namespace. Cached (reset
    /// in a forked child).
    ///
    /// ```
    /// use shm_core::identity::{Identity, current_pidns};
    /// let p = Identity::current_process();
    /// assert_eq!(p, Identity::current_process());
    /// assert_eq!(p.pidns, current_pidns());
    /// ```
    pub fn current_process() -> Identity {
        register_atfork();
        let mut v = PROCESS.load(Ordering::Relaxed);
        if v == 0 {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
            let token = own_token("/proc/self/stat");
            v = OwnerWord::from_id(pid, token).raw();
            PROCESS.store(v, Ordering::Relaxed);
        }
        OwnerWord::from_raw(v).identity(current_pidns())
    }

    /// The calling thread: its tid, start-time token and PID namespace. Cached per
    /// thread (reset in a forked child).
    ///
    /// ```
    /// use shm_core::identity::Identity;
    /// let t = Identity::current_thread();
    /// let other = std::thread::spawn(Identity::current_thread).join().unwrap();
    /// assert_ne!(t.id, other.id);
    /// assert_eq!(t.pidns, other.pidns);
    /// ```
    pub fn current_thread() -> Identity {
        register_atfork();
        let mut v = THREAD.get();
        if v == 0 {
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            let token = own_token("/proc/thread-self/stat");
            v = OwnerWord::from_id(tid, token).raw();
            THREAD.set(v);
        }
        OwnerWord::from_raw(v).identity(current_pidns())
    }

    /// `id | token << 32` of the calling thread: what
    /// [`current_thread`](Self::current_thread) gives without the namespace lookup, for
    /// the key of a per-thread cache that must miss in a forked child (whose cache is
    /// reset). A few instructions once computed.
    ///
    /// ```
    /// use shm_core::identity::Identity;
    /// let t = Identity::current_thread();
    /// assert_eq!(Identity::current_thread_word(), u64::from(t.id) | u64::from(t.token) << 32);
    /// ```
    #[inline]
    pub fn current_thread_word() -> u64 {
        // Non-zero only after `current_thread` ran in this thread, which registered
        // the fork handler that resets it.
        let v = THREAD.get();
        if v != 0 {
            return v;
        }
        let t = Self::current_thread();
        OwnerWord::from_id(t.id, t.token).raw()
    }

    /// Whether this identity's task still lives: [`Liveness::Dead`] only when provably
    /// dead (see the module docs); another PID namespace is [`Liveness::Unknown`].
    ///
    /// ```
    /// use shm_core::identity::{Identity, Liveness};
    /// let me = Identity::current_thread();
    /// assert_eq!(me.liveness(), Liveness::Alive);
    /// let elsewhere = Identity { pidns: me.pidns ^ 1, ..me };
    /// assert_eq!(elsewhere.liveness(), Liveness::Unknown);
    /// ```
    pub fn liveness(&self) -> Liveness {
        if self.id == 0 || self.token == 0 {
            return Liveness::Dead;
        }
        // Before any syscall: an id from shared memory may be anything, and one of 2^31
        // or more would turn `kill(id, 0)` into a process-group probe. An id no task can
        // have says the word is damaged, not that its task died: `Unknown`, so that no
        // tracker or `shm gc` removes a live object because of a forged creator.
        if !is_valid_pid(self.id) {
            return Liveness::Unknown;
        }
        let ours = current_pidns();
        if self.pidns == 0 || ours == 0 || self.pidns != ours || !proc_is_own() {
            return Liveness::Unknown;
        }
        proc_liveness(self.id, self.token)
    }
}

/// Where the kernel publishes `pid_max`.
const PID_MAX_PATH: &str = "/proc/sys/kernel/pid_max";

/// `pid_max` when `/proc/sys/kernel/pid_max` cannot be read: the kernel's `PID_MAX_LIMIT` on
/// 64-bit targets (2^22), the highest value `pid_max` may take there.
///
/// ```
/// use shm_core::identity::{PID_MAX_FALLBACK, pid_max};
/// assert_eq!(PID_MAX_FALLBACK, 4_194_304);
/// assert!(pid_max() > 1); // the kernel's value, or this fallback
/// ```
pub const PID_MAX_FALLBACK: u32 = 1 << 22;

/// The highest `pid_max` this process has read; 0 until first read.
static PID_MAX: AtomicU32 = AtomicU32::new(0);

/// `pid_max` as the kernel says now, or [`PID_MAX_FALLBACK`]. Values beyond
/// `i32::MAX` are not believed (ids must stay positive `pid_t`s).
fn read_pid_max() -> u32 {
    std::fs::read_to_string(PID_MAX_PATH)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|v| (1..=i32::MAX as u32).contains(v))
        .unwrap_or(PID_MAX_FALLBACK)
}

/// The kernel's `pid_max` (`/proc/sys/kernel/pid_max`, read on first use, or
/// [`PID_MAX_FALLBACK`] if unreadable): every pid and tid is below it.
///
/// ```
/// let max = shm_core::identity::pid_max();
/// assert!(std::process::id() < max);
/// assert!(max <= i32::MAX as u32);
/// ```
pub fn pid_max() -> u32 {
    match PID_MAX.load(Ordering::Relaxed) {
        0 => {
            PID_MAX.fetch_max(read_pid_max(), Ordering::Relaxed);
            PID_MAX.load(Ordering::Relaxed)
        }
        v => v,
    }
}

/// Whether `id`, read from shared memory as a pid or tid, can name a task at all:
/// `1..pid_max` (the kernel hands out ids below `pid_max`). The one check every
/// liveness test of the workspace makes before any syscall on such an id
/// ([`Identity::liveness`], the lock words of shm-sync, the manager's owners): an id of
/// 2^31 or more would otherwise become a negative `pid_t`, and `kill(-id, 0)` probes a
/// process *group*.
///
/// `pid_max` is read once; an id at or above it makes this re-read the file (only
/// damaged words and ids handed out after an administrator raised `pid_max` get
/// there), and the highest value seen is kept, so that a live task never turns
/// invalid because the limit moved.
///
/// What an invalid id means is the caller's to say: [`Identity::liveness`] answers
/// [`Liveness::Unknown`] (a damaged header proves nobody dead, so nothing is removed
/// because of it); a lock word holding one is recovered like the other values no
/// holder writes (shm-sync).
///
/// ```
/// use shm_core::identity::is_valid_pid;
/// assert!(is_valid_pid(std::process::id()));
/// assert!(!is_valid_pid(0));
/// assert!(!is_valid_pid(1 << 31)); // would be a negative pid_t
/// assert!(!is_valid_pid(u32::MAX)); // as a pid_t -1: kill(-1, 0) reaches every process
/// ```
pub fn is_valid_pid(id: u32) -> bool {
    if id == 0 {
        return false;
    }
    if id < pid_max() {
        return true;
    }
    // Slow path: pid_max may have been raised since we read it.
    let now = read_pid_max();
    PID_MAX.fetch_max(now, Ordering::Relaxed);
    id < PID_MAX.load(Ordering::Relaxed)
}

/// This process's PID namespace inode (0 if unknown), from `stat("/proc/self/ns/pid")`.
/// Cached (reset in a forked child, which may live in a new namespace).
///
/// ```
/// let ns = shm_core::identity::current_pidns();
/// assert_eq!(ns, shm_core::identity::current_pidns());
/// assert_ne!(ns, 0); // /proc is mounted here
/// ```
pub fn current_pidns() -> u32 {
    (own_ns_key() & 0xffff_ffff) as u32
}

/// This process's index in the namespace registry (1..=254), or 0 when unknown (no
/// usable registry, or all entries taken). Computed once (reset in a forked child).
///
/// ```
/// use shm_core::identity::{current_pidns, pidns_index, pidns_of_index};
/// let i = pidns_index();
/// if i != 0 {
///     assert_eq!(pidns_of_index(i), Some(current_pidns()));
/// }
/// ```
pub fn pidns_index() -> u8 {
    register_atfork();
    let v = INDEX.load(Ordering::Relaxed);
    if v != 0 {
        return v as u8;
    }
    let idx = registry().map_or(0, |r| r.register(own_ns_key()));
    INDEX.store(0x100 | u64::from(idx), Ordering::Relaxed);
    idx
}

/// The PID namespace inode registered under `index`, if the registry is usable and
/// the entry is taken (by processes of our time namespace).
///
/// ```
/// use shm_core::identity::pidns_of_index;
/// assert_eq!(pidns_of_index(0), None);   // "unknown"
/// assert_eq!(pidns_of_index(255), None); // never handed out
/// ```
pub fn pidns_of_index(index: u8) -> Option<u32> {
    match index_entry(index) {
        IndexEntry::Namespace(ns) => Some(ns),
        _ => None,
    }
}

/// What the registry says about an index (finer than [`pidns_of_index`]): lets a lock
/// tell an index no process can have written (garbage) from one it cannot check.
///
/// ```
/// use shm_core::identity::{IndexEntry, index_entry};
/// assert_eq!(index_entry(0), IndexEntry::Unknown);
/// assert_eq!(index_entry(255), IndexEntry::Unused);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexEntry {
    /// Index 0, or the registry is unusable or was replaced: no conclusion possible.
    Unknown,
    /// No process was ever given this index (255, or a free entry).
    Unused,
    /// A namespace holds the index: its PID namespace inode, or 0 when the entry's
    /// time namespace differs from ours (start times are then not comparable, so the
    /// entry must not be taken for our namespace).
    Namespace(u32),
}

/// Looks `index` up in the registry: see [`IndexEntry`].
///
/// ```
/// use shm_core::identity::{IndexEntry, current_pidns, index_entry, pidns_index};
/// let i = pidns_index();
/// if i != 0 {
///     assert_eq!(index_entry(i), IndexEntry::Namespace(current_pidns()));
/// }
/// ```
pub fn index_entry(index: u8) -> IndexEntry {
    match index {
        0 => return IndexEntry::Unknown,
        255 => return IndexEntry::Unused,
        _ => {}
    }
    let Some(reg) = registry() else {
        return IndexEntry::Unknown;
    };
    if !reg.still_at_path() {
        return IndexEntry::Unknown;
    }
    match reg.slot(usize::from(index)).load(Ordering::Acquire) {
        0 => IndexEntry::Unused,
        e => {
            let ours = own_ns_key();
            // Another time namespace: its start times cannot be compared with ours.
            if ours != 0 && e >> 32 == ours >> 32 {
                IndexEntry::Namespace(e as u32)
            } else {
                IndexEntry::Namespace(0)
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Caches, reset after fork.

thread_local! {
    /// The calling thread's `token << 32 | tid`; 0 until computed.
    static THREAD: Cell<u64> = const { Cell::new(0) };
}
/// The process's `token << 32 | pid`; 0 until computed.
static PROCESS: AtomicU64 = AtomicU64::new(0);
/// [`own_ns_key`]; 0 until computed, `u64::MAX` if unknown.
static NS_KEY: AtomicU64 = AtomicU64::new(0);
/// `0x100 | index`; 0 until computed.
static INDEX: AtomicU64 = AtomicU64::new(0);
/// 1 = our `/proc` shows our own PID namespace, 2 = it does not; 0 until computed.
static PROC_OWN: AtomicU64 = AtomicU64::new(0);

extern "C" fn reset_in_child() {
    // Only stores into atomics and const-initialised Cells: async-signal-safe. The
    // forked child's only thread has a new TID: forget the parent thread's words.
    THREAD.set(0);
    owner::THREAD_OWNER.set(0);
    PROCESS.store(0, Ordering::Relaxed);
    owner::PROCESS_OWNER.store(0, Ordering::Relaxed);
    NS_KEY.store(0, Ordering::Relaxed);
    INDEX.store(0, Ordering::Relaxed);
    PROC_OWN.store(0, Ordering::Relaxed);
}

fn register_atfork() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no captured state that
        // only stores into atomics and const-initialised thread-local `Cell<u64>`s
        // (no destructor, no allocation), which is safe between fork and return.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(reset_in_child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
}

/// `time_ns_ino << 32 | pid_ns_ino` of our namespaces, 0 if the PID namespace is
/// unknown. The time namespace is part of the key because `/proc` shows start times
/// shifted by the reader's boot-time offset: only tasks sharing both namespaces can
/// compare start times (without time namespaces, before Linux 5.6, it is 0).
fn own_ns_key() -> u64 {
    register_atfork();
    let v = NS_KEY.load(Ordering::Relaxed);
    if v != 0 {
        return if v == u64::MAX { 0 } else { v };
    }
    let ino = |path: &str| match rustix::fs::stat(path) {
        Ok(st) if st.st_ino <= u64::from(u32::MAX) => st.st_ino,
        _ => 0,
    };
    let pid = ino("/proc/self/ns/pid");
    let key = if pid == 0 {
        0
    } else {
        ino("/proc/self/ns/time") << 32 | pid
    };
    NS_KEY.store(if key == 0 { u64::MAX } else { key }, Ordering::Relaxed);
    key
}

/// Whether the mounted `/proc` belongs to our own PID namespace, so that
/// `/proc/<id>` names the task that `id` means to us. `NSpid` lists our pid in every
/// namespace from the one of the `/proc` mount down to ours: one entry means the same.
fn proc_is_own() -> bool {
    match PROC_OWN.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let own = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => match status.lines().find_map(|l| l.strip_prefix("NSpid:")) {
            Some(ids) => {
                let ids: Vec<&str> = ids.split_ascii_whitespace().collect();
                ids.len() == 1 && ids[0].parse() == Ok(pid)
            }
            // Kernels before 4.1: the `/proc/self` link names our pid as `/proc` sees it.
            None => {
                std::fs::read_link("/proc/self")
                    .ok()
                    .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
                    == Some(pid)
            }
        },
        Err(_) => false,
    };
    PROC_OWN.store(if own { 1 } else { 2 }, Ordering::Relaxed);
    own
}

/// Our own start-time token from a `stat` file of ours, or [`TOKEN_UNKNOWN`].
fn own_token(path: &str) -> u32 {
    std::fs::read(path)
        .ok()
        .and_then(|b| parse_stat(&b))
        .map_or(TOKEN_UNKNOWN, |st| token_of(st.start))
}

/// The liveness token of a task that started at `start` (clock ticks since boot):
/// never 0 (bit 0 set) and never [`TOKEN_UNKNOWN`].
fn token_of(start: u64) -> u32 {
    let t = (start as u32) | 1;
    if t == TOKEN_UNKNOWN { t - 2 } else { t }
}

/// What `/proc/<id>/stat` says about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    state: u8,
    /// Field 9: kernel `PF_*` flags.
    flags: u64,
    /// Field 20: threads in the task's thread group.
    threads: u64,
    /// Field 22: start time in clock ticks since boot.
    start: u64,
}

/// Parses a `stat` line. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after the LAST `)`.
fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let close = bytes.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 was the state; field 9 is 6 further on, 20 another 11, 22 another 2.
    let flags = fields.nth(5)?.parse().ok()?;
    let threads = fields.nth(10)?.parse().ok()?;
    let start = fields.nth(1)?.parse().ok()?;
    Some(Stat {
        state,
        flags,
        threads,
        start,
    })
}

/// Liveness of task `id` (checked by [`is_valid_pid`]) with `token` through our own
/// `/proc`.
fn proc_liveness(id: u32, token: u32) -> Liveness {
    match std::fs::read(format!("/proc/{id}/stat")) {
        Ok(bytes) => {
            let Some(st) = parse_stat(&bytes) else {
                return Liveness::Unknown;
            };
            if matches!(st.state, b'Z' | b'X' | b'x') || st.flags & PF_EXITING != 0 {
                // A group leader that ended while other threads run shows as a zombie:
                // dead as a thread, alive as a process. The identity does not say which
                // it means, so only a lone task (or a non-leader thread) is dead.
                if st.threads <= 1 || !is_group_leader(id) {
                    return Liveness::Dead;
                }
                return Liveness::Unknown;
            }
            if token == TOKEN_UNKNOWN {
                Liveness::Unknown
            } else if token_of(st.start) == token {
                Liveness::Alive
            } else {
                Liveness::Dead
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // `liveness` checked `is_valid_pid`: 1..pid_max, a positive i32.
            let Some(pid) = i32::try_from(id)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return Liveness::Unknown;
            };
            // Gone from /proc, or hidden (hidepid): ask the kernel directly.
            match rustix::process::test_kill_process(pid) {
                Err(Errno::SRCH) => Liveness::Dead,
                _ => Liveness::Unknown,
            }
        }
        Err(_) => Liveness::Unknown,
    }
}

/// Whether task `id` leads its thread group (`Tgid` equals its id); true if unsure.
fn is_group_leader(id: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{id}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .is_none_or(|t| t.trim().parse() == Ok(id))
}

// ---------------------------------------------------------------------------------
// The registry file.

/// An open, mapped registry (leaked: lives as long as the process).
struct Registry {
    map: NonNull<AtomicU64>,
    dev: u64,
    ino: u64,
    path: String,
}

// SAFETY: `map` points to a shared mapping that is never unmapped and is accessed
// only through atomics.
unsafe impl Send for Registry {}
// SAFETY: as above: only atomic accesses through a shared reference.
unsafe impl Sync for Registry {}

/// The process's registry, opened on first use; `None` when unusable (tried again on
/// the next call).
fn registry() -> Option<&'static Registry> {
    static REG: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());
    let p = REG.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a non-null value is a leaked `Box<Registry>`, never freed.
        return Some(unsafe { &*p });
    }
    let euid = rustix::process::geteuid().as_raw();
    let reg = Box::into_raw(Box::new(open_registry(&format!(
        "{REGISTRY_PREFIX}{euid}"
    ))?));
    match REG.compare_exchange(
        std::ptr::null_mut(),
        reg,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: just leaked, never freed.
        Ok(_) => Some(unsafe { &*reg }),
        Err(winner) => {
            // Another thread opened it first: drop (unmap) ours, use the winner's.
            // SAFETY: `reg` came from `Box::into_raw` above and was not published.
            drop(unsafe { Box::from_raw(reg) });
            // SAFETY: the winner is a leaked `Box<Registry>`, never freed.
            Some(unsafe { &*winner })
        }
    }
}

/// Opens (creating if needed) and maps the registry at `path`, checking that it is a
/// regular file of the effective user, private, of the right size and magic.
fn open_registry(path: &str) -> Option<Registry> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::RUSR | Mode::WUSR,
    )
    .ok()?;
    let mut st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_uid != rustix::process::geteuid().as_raw()
        || st.st_mode & 0o077 != 0
    {
        return None;
    }
    if st.st_size == 0 {
        // Just created (by us or a racing process): both size it the same way.
        rustix::fs::ftruncate(&fd, REGISTRY_LEN as u64).ok()?;
        st = rustix::fs::fstat(&fd).ok()?;
    }
    if st.st_size != REGISTRY_LEN as i64 {
        return None;
    }
    // SAFETY: a fresh shared mapping of 4096 bytes of a regular file we checked has that
    // size; the kernel picks the address. Nothing else aliases it in this process.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            REGISTRY_LEN,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .ok()?;
    let reg = Registry {
        map: NonNull::new(ptr.cast::<AtomicU64>())?,
        dev: st.st_dev,
        ino: st.st_ino,
        path: path.to_owned(),
    };
    let magic = reg.slot(0);
    let _ = magic.compare_exchange(0, REGISTRY_MAGIC, Ordering::AcqRel, Ordering::Acquire);
    (magic.load(Ordering::Acquire) == REGISTRY_MAGIC).then_some(reg)
}

impl Registry {
    /// Word `i` of the mapping (`i < 512`).
    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < REGISTRY_LEN / 8);
        // SAFETY: `i` is within the 4096-byte mapping (page-aligned, so every 8-byte
        // word is aligned); the mapping lives for the process and is shared memory that
        // other processes write, which atomics allow.
        unsafe { &*self.map.as_ptr().add(i) }
    }

    /// The index of namespace `key` (claiming the first free entry), 0 if unknown.
    fn register(&self, key: u64) -> u8 {
        if key == 0 {
            return 0;
        }
        for i in 1..=MAX_INDEX {
            let slot = self.slot(usize::from(i));
            let cur = match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return i,
                Err(cur) => cur,
            };
            if cur == key {
                return i;
            }
        }
        0
    }

    /// Whether the registry path still names the file we mapped (not deleted and
    /// recreated, where the indexes may mean other namespaces).
    fn still_at_path(&self) -> bool {
        rustix::fs::lstat(self.path.as_str())
            .is_ok_and(|st| st.st_dev == self.dev && st.st_ino == self.ino)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `open_registry` with this length and is not
        // used after drop (only unpublished registries are ever dropped).
        let _ = unsafe { rustix::mm::munmap(self.map.as_ptr().cast(), REGISTRY_LEN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_path(tag: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "/dev/shm/shm-rs-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn parses_stat_with_hostile_comm() {
        let line =
            b"1234 (a) b (c) d) S 1 2 3 4 5 4194560 7 8 9 10 11 12 13 14 15 16 3 18 98765 20 21\n";
        let st = Stat {
            state: b'S',
            flags: 4194560,
            threads: 3,
            start: 98765,
        };
        assert_eq!(parse_stat(line), Some(st));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) R 1 2"), None);
    }

    #[test]
    fn tokens_are_never_zero_or_unknown() {
        assert_eq!(token_of(0), 1);
        assert_eq!(token_of(u64::from(u32::MAX)), u32::MAX - 2);
        assert_eq!(token_of(u64::from(u32::MAX - 1)), u32::MAX - 2);
        assert_eq!(token_of(1 << 32), 1);
    }

    #[test]
    fn own_identities_are_alive_and_a_wrong_token_is_dead() {
        let p = Identity::current_process();
        let t = Identity::current_thread();
        assert_eq!(p.liveness(), Liveness::Alive);
        assert_eq!(t.liveness(), Liveness::Alive);
        assert!(proc_is_own());
        assert_eq!(
            Identity {
                token: t.token ^ 2,
                ..t
            }
            .liveness(),
            Liveness::Dead
        );
        assert_eq!(Identity { token: 0, ..t }.liveness(), Liveness::Dead);
        assert_eq!(
            Identity {
                token: TOKEN_UNKNOWN,
                ..t
            }
            .liveness(),
            Liveness::Unknown
        );
    }

    #[test]
    fn registry_round_trip_and_reuse() {
        let path = temp_path("reg");
        let _rm = Rm(path.clone());
        let reg = open_registry(&path).expect("fresh registry");
        assert_eq!(reg.register(7), 1);
        assert_eq!(reg.register(9), 2);
        assert_eq!(reg.register(7), 1);
        let again = open_registry(&path).expect("existing registry");
        assert_eq!(again.register(9), 2);
        assert!(again.still_at_path());
        // Full: every entry taken by others gives "unknown".
        for i in 3..=MAX_INDEX {
            assert_eq!(reg.register(1000 + u64::from(i)), i);
        }
        assert_eq!(reg.register(5), 0);
        // Deleted and recreated: the old mapping notices.
        std::fs::remove_file(&path).unwrap();
        let _fresh = open_registry(&path).unwrap();
        assert!(!reg.still_at_path());
    }

    #[test]
    fn hostile_registry_files_are_refused() {
        // Wrong magic.
        let path = temp_path("magic");
        let _rm = Rm(path.clone());
        std::fs::write(&path, [0xa5u8; REGISTRY_LEN]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(open_registry(&path).is_none());
        // Wrong size.
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert!(open_registry(&path).is_none());
        // Readable by others.
        std::fs::write(&path, [0u8; REGISTRY_LEN]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_registry(&path).is_none());
        // A directory.
        let dir = temp_path("dir");
        std::fs::create_dir(&dir).unwrap();
        assert!(open_registry(&dir).is_none());
        std::fs::remove_dir(&dir).unwrap();
        // A planted symlink to a file we own: refused, and the target is untouched.
        let target = temp_path("target");
        let _rm_t = Rm(target.clone());
        std::fs::write(&target, b"precious").unwrap();
        let link = temp_path("link");
        let _rm_l = Rm(link.clone());
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_registry(&link).is_none());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn garbage_entries_never_match_and_never_panic() {
        let path = temp_path("garbage");
        let _rm = Rm(path.clone());
        let mut bytes = vec![0u8; REGISTRY_LEN];
        bytes[..8].copy_from_slice(&REGISTRY_MAGIC.to_le_bytes());
        for (i, chunk) in bytes.chunks_mut(8).enumerate().skip(1) {
            let v = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let reg = open_registry(&path).expect("valid magic");
        // Every entry is taken by garbage: our namespace gets "unknown".
        assert_eq!(reg.register(own_ns_key()), 0);
    }
}
