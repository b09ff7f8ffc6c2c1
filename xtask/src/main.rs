//! `cargo xtask <command>`: the developer commands of the shm workspace.
//!
//! - `ci`: runs `.ci/run`, what CI checks (fmt, clippy with warnings denied, tests, docs, demo, loom).
//! - `demo`: worker processes fill shared memory, CPython reads the same bytes.
//! - `bench`: criterion benches, the CPython anchors, a table of ratios, report files;
//!   `bench remote`: the Redis backend against redis-benchmark and Python's manager.
//! - `chaos`: the full kill -9 trial counts, with a tally.
//! - `fuzz`: the hostile-memory fuzz harness at full count (10^6 cases), with a tally.
//! - `test`: `cargo test --workspace`, then the Python package built into
//!   `target/py-venv`, its pytest suite, and the abi3 wheel on every CPython 3.9+.

mod bench;
mod demo;
mod fuzz;
mod py;
mod remote_bench;

/// Counts allocations, so that the fuzz harness catches one sized by a forged length.
#[global_allocator]
static ALLOC: fuzz::CountingAlloc = fuzz::CountingAlloc;

use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Developer commands of the shm workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs `.ci/run`: fmt check, clippy (warnings denied), the tests, docs, demo, loom.
    Ci,
    /// `cargo test --workspace`, then the Python package: maturin build into
    /// `target/py-venv`, pytest, and the abi3 wheel imported on every CPython 3.9+.
    Test {
        /// Only the Python half (skip `cargo test --workspace`).
        #[arg(long)]
        python_only: bool,
    },
    /// Worker processes fill a shared segment and a ShareableList; CPython reads them.
    Demo {
        /// Number of worker processes.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Runs the benchmarks and CPython's figures; prints ns/op and ratios.
    /// `cargo xtask bench py`: the Python package's benchmarks (shm-py/bench) instead;
    /// `bench remote`: the Redis backend against redis-benchmark and Python's manager over TCP.
    Bench {
        /// Only benches whose id contains this text (criterion filter).
        filter: Option<String>,
        /// Skip the CPython anchors.
        #[arg(long)]
        no_python: bool,
    },
    /// Runs the kill -9 trials at full count and prints the tally.
    Chaos {
        /// Trials per scenario.
        #[arg(long, default_value_t = 1000)]
        trials: u32,
    },
    /// Runs the hostile-memory fuzz harness at full count with a tally: an optimised
    /// build with debug assertions and overflow checks on (so an arithmetic overflow
    /// on a hostile word is a panic that the tally counts), in `target/fuzz`.
    Fuzz {
        /// Cases (round-robin over every object kind).
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
        /// Seed of the first case.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Internal: runs the fuzz cases in this process.
    #[command(hide = true)]
    FuzzRun {
        /// Cases.
        cases: u64,
        /// Seed.
        seed: u64,
        /// Run only the cases from this one on (to reproduce a reported case).
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Print each case's bytes.
        #[arg(long)]
        trace: bool,
    },
}

fn main() -> ExitCode {
    // The demo's workers are this binary re-executed by `shm_process::Process`.
    shm_process::main!(demo::worker);
    let result = match Cli::parse().command {
        Cmd::Ci => ci(),
        Cmd::Demo { workers } => demo::run(workers),
        Cmd::Test { python_only } => test(python_only),
        Cmd::Bench { filter, .. } if filter.as_deref() == Some("py") => py::bench(),
        // `bench remote`: the Redis backend against redis-benchmark and Python's manager.
        Cmd::Bench { filter, .. } if filter.as_deref() == Some("remote") => remote_bench::run(),
        Cmd::Bench { filter, no_python } => bench::run(filter.as_deref(), !no_python),
        Cmd::Chaos { trials } => chaos(trials),
        Cmd::Fuzz { cases, seed } => cargo(
            &[
                "run",
                "--quiet",
                "--release",
                "-p",
                "xtask",
                "--",
                "fuzz-run",
                &cases.to_string(),
                &seed.to_string(),
            ],
            &[
                ("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true"),
                ("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true"),
                (
                    "CARGO_TARGET_DIR",
                    target_dir().join("fuzz").to_str().unwrap_or("target/fuzz"),
                ),
            ],
        ),
        Cmd::FuzzRun {
            cases,
            seed,
            first,
            trace,
        } => {
            let tally = fuzz::run_from(cases, seed, first, trace, true);
            print!("{tally}");
            if tally.clean() {
                Ok(())
            } else {
                Err("the fuzz harness found panics, hangs or oversized allocations".into())
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs `cargo args...` in the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(workspace_root());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    eprintln!("$ cargo {}", args.join(" "));
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("cargo {} failed: {status}", args.join(" ")).into());
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// What CI runs: `.ci/run` itself (one list of steps, not two that drift apart).
fn ci() -> Result {
    eprintln!("$ bash .ci/run");
    let status = Command::new("bash")
        .arg(workspace_root().join(".ci/run"))
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        return Err(format!(".ci/run failed: {status}").into());
    }
    Ok(())
}

fn test(python_only: bool) -> Result {
    if !python_only {
        ensure_redis_tools()?;
        cargo(&["test", "--workspace"], &[])?;
    }
    py::test()
}

/// shm-remote's tests start their own `redis-server` (and make TLS certificates with
/// `openssl`); they fail, never skip, without them. On a fresh Debian machine the test
/// command installs the packages (as root, or through sudo) rather than fail after
/// building everything; elsewhere it says what to install.
fn ensure_redis_tools() -> Result {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = ["redis-server", "openssl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() || std::env::var_os("SHM_REDIS_SERVER").is_some() {
        return Ok(());
    }
    let packages = missing.join(" ");
    if !have("apt-get") {
        return Err(format!(
            "expected {packages} on PATH for shm-remote's tests (they start their own \
             server on 127.0.0.1), found none and no apt-get to install it"
        )
        .into());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let sudo = if root { "" } else { "sudo " };
    let script = format!(
        "{sudo}env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
         {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages} && \
         ({sudo}service redis-server stop >/dev/null 2>&1 || true)"
    );
    eprintln!("$ {script}   # shm-remote's tests need {packages}");
    let status = Command::new("sh").args(["-c", &script]).status()?;
    if !status.success() {
        return Err(format!(
            "expected to install {packages} for shm-remote's tests ({status}); \
             install them (apt-get install {packages}) and run again"
        )
        .into());
    }
    Ok(())
}

fn chaos(trials: u32) -> Result {
    let trials = trials.to_string();
    let mut tally = Vec::new();
    // Every crash-trial test, each at `trials` per scenario (primitive, queue, ...).
    for (package, test) in CHAOS_TESTS {
        cargo_tally(
            &[
                "test",
                "-p",
                package,
                "--release",
                "--test",
                test,
                "--",
                "--nocapture",
                "--test-threads=1",
            ],
            &[("SHM_CHAOS_TRIALS", &trials)],
            &mut tally,
        )?;
    }
    // The recovery times against the design's targets, which the tests themselves only
    // bound loosely (busy machines): the figures to read.
    println!("\nchaos tally ({trials} trials per scenario):");
    for line in &tally {
        println!("  {line}");
    }
    Ok(())
}

/// Like [`cargo`], but echoes the command's stdout while collecting the lines the
/// crash-trial tests print for the tally (`chaos tally: ...`, see
/// `shm_core::testing::Tally`), without their prefix.
fn cargo_tally(args: &[&str], envs: &[(&str, &str)], tally: &mut Vec<String>) -> Result {
    use std::io::BufRead;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args)
        .current_dir(workspace_root())
        .stdout(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix(TALLY_PREFIX) {
            tally.push(rest.to_owned());
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("cargo {} failed: {status}", args.join(" ")).into());
    }
    Ok(())
}

/// What a tally line starts with: `shm_core::testing::Tally::PREFIX` (a test checks).
const TALLY_PREFIX: &str = "chaos tally: ";

/// The kill -9 trial tests that `cargo xtask chaos` runs at full count.
const CHAOS_TESTS: &[(&str, &str)] = &[
    ("shm-sync", "chaos"),
    ("shm-collections", "queue_chaos"),
    ("shm-collections", "dict_chaos"),
    ("shm-collections", "vec"),
    ("shm-manager", "manager_chaos"),
    ("shm-manager", "sweep_chaos"),
    ("shm-manager", "root_chaos"),
    ("shm-process", "pool_chaos"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_chaos_tally_looks_for_what_the_tests_print() {
        assert_eq!(super::TALLY_PREFIX, shm_core::testing::Tally::PREFIX);
        let mut t = shm_core::testing::Tally::new("x", std::time::Duration::from_millis(1));
        t.record(std::time::Duration::from_millis(2));
        assert!(t.line().strip_prefix(super::TALLY_PREFIX).is_some());
    }
}
