//! # shm-bench
//!
//! Benchmarks of the shm workspace and the anchors they are compared with. Not a
//! library to depend on: run `cargo xtask bench`, which runs, in one command, the
//! criterion benches in `benches/` (ids `core/...`, `sync/...`, `collections/...`),
//! the same operations in CPython (`python/*.py`, ids `py/...`), and prints a table of
//! ns/op and the ratios listed in `comparisons/*.json` (ratio = anchor / rust, so above
//! 1 means the Rust side is faster). It writes `target/shm-bench/report.json` and
//! `report.svg`.
//!
//! Two-core figures move between launches: compare only figures of the same run.

use std::time::Duration;

/// The criterion configuration of every bench binary here: half a second of warm-up
/// and two seconds of measurement per bench (enough on two cores, and the whole
/// `cargo xtask bench` stays within minutes), then the command line's options.
///
/// ```no_run
/// let mut c = shm_bench::criterion();
/// c.bench_function("add", |b| b.iter(|| std::hint::black_box(1) + 1));
/// c.final_summary();
/// ```
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// The `main` of a bench binary whose benches spawn [`Kid`]s: in a child (when
/// [`ROLE`] is set) runs `child(role)`; otherwise runs `benches` with [`criterion()`] and
/// prints criterion's summary.
///
/// ```no_run
/// fn child(role: &str) { panic!("unknown bench role {role}") }
/// fn add(c: &mut criterion::Criterion) {
///     c.bench_function("add", |b| b.iter(|| std::hint::black_box(1) + 1));
/// }
/// shm_bench::main(child, &[add]);
/// ```
pub fn main(child: fn(&str), benches: &[fn(&mut criterion::Criterion)]) {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let mut c = criterion();
    for bench in benches {
        bench(&mut c);
    }
    c.final_summary();
}

/// Environment variable naming the role a bench binary re-runs itself in ([`Kid`]).
pub const ROLE: &str = "SHM_BENCH_ROLE";
/// Environment variable with the first name a [`Kid`] is given.
pub const NAME_A: &str = "SHM_BENCH_A";
/// Environment variable with the second name a [`Kid`] is given.
pub const NAME_B: &str = "SHM_BENCH_B";

/// A child process running a role of this bench binary ([`ROLE`], with [`NAME_A`] and
/// [`NAME_B`] set); SIGKILLed and reaped on drop.
///
/// ```no_run
/// // In a bench's `main`: `if let Ok(role) = std::env::var(shm_bench::ROLE) { ... }`.
/// let _kid = shm_bench::Kid::spawn("echo", "psm_a", "");
/// ```
pub struct Kid(pub std::process::Child);

impl Kid {
    /// The command that runs `role` with names `a` and `b` (stdin and stdout null).
    pub fn command(role: &str, a: &str, b: &str) -> std::process::Command {
        let mut cmd =
            std::process::Command::new(std::env::current_exe().expect("bench binary path"));
        cmd.env(ROLE, role)
            .env(NAME_A, a)
            .env(NAME_B, b)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        cmd
    }

    /// Spawns [`Kid::command`].
    pub fn spawn(role: &str, a: &str, b: &str) -> Kid {
        Kid(Self::command(role, a, b)
            .spawn()
            .expect("spawn bench child"))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child of a cache-line ping-pong: maps segment `name` and answers every odd
/// value of its first word with the next even one, spinning; returns once
/// `orphaned()` (checked every 2^20 idle spins) says its parent is gone.
///
/// ```no_run
/// let parent = std::os::unix::process::parent_id();
/// shm_bench::echo_cacheline("psm_a", || std::os::unix::process::parent_id() != parent);
/// ```
pub fn echo_cacheline(name: &str, orphaned: impl Fn() -> bool) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let seg = shm_core::Segment::open(name).expect("open segment");
    // SAFETY: page aligned, mapped while `seg` lives, accessed only atomically.
    let line = unsafe { &*seg.as_ptr().cast::<AtomicU64>() };
    let mut spins = 0u32;
    loop {
        let v = line.load(Ordering::Acquire);
        if v % 2 == 1 {
            line.store(v + 1, Ordering::Release);
            spins = 0;
        } else {
            spins = spins.wrapping_add(1);
            if spins % (1 << 20) == 0 && orphaned() {
                return;
            }
            std::hint::spin_loop();
        }
    }
}
