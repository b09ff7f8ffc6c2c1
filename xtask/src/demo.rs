//! `cargo xtask demo`: the tour. A `SharedMemoryManager` owns every object; worker
//! processes, started with `shm_process::Process` (Python's `Process(target=f,
//! args=(jobs, results))`), get the job `Queue` and the results `Queue` as arguments,
//! connect to the manager by name and find by key a `Value` counter, an `Array`
//! histogram, a `ShareableDict` of word counts, a `ShareableVec` log, a `Namespace` of
//! settings, an `Event` and a `Lock`, and a `ShareableList` that CPython reads too.
//! `shm ls` shows them while the workers run; one worker is killed with SIGKILL (its
//! exit code -9) while it holds the histogram's lock, the others take the lock over and
//! finish its job; every count is checked against a count made
//! in this process. A CPython worker with the package `shm` (built from shm-py into
//! `target/py-venv` when missing or stale) takes jobs from a `shm.Queue` made here, counts
//! words into a `ShareableDict<String, i64>` made here and puts its results on another
//! queue, which this process checks. After the manager shuts down nothing is left in
//! `/dev/shm`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shm_collections::{Dynamic, Item, Namespace, Queue, ShareableDict, ShareableVec};
use shm_manager::SharedMemoryManager;
use shm_process::{Builder, Process, Shared};
use shm_sync::LockError;

use crate::{Result, target_dir};

/// Jobs in the tour: chunks of the generated text.
const JOBS: u32 = 96;
/// Lines per job.
const LINES_PER_JOB: usize = 12;
/// Longest word length counted in the histogram (longer ones count in the last bin).
const BINS: usize = 16;
/// How long anyone waits for anything in the tour before giving up with an error.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the job queue carries.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) enum Job {
    /// Count the words of these lines.
    Count { id: u32, text: String },
    /// No more work: exit.
    Stop,
}

/// What the results queue carries.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Done {
    id: u32,
    worker: u32,
    words: u64,
}

const VOCABULARY: &[&str] = &[
    "shared",
    "memory",
    "process",
    "lock",
    "queue",
    "value",
    "array",
    "list",
    "dict",
    "namespace",
    "event",
    "segment",
    "worker",
    "crash",
    "kill",
    "python",
    "rust",
    "fast",
    "copy",
    "zero",
    "futex",
    "atomic",
    "owner",
    "recovered",
    "manager",
    "tracker",
    "arena",
    "registry",
    "key",
    "grow",
    "read",
    "write",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "never",
    "leaks",
    "nothing",
];

/// The text of job `id`: deterministic pseudo-random lines over the vocabulary.
fn job_text(id: u32) -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(id).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut text = String::new();
    for _ in 0..LINES_PER_JOB {
        let words = 6 + next() % 10;
        for w in 0..words {
            if w > 0 {
                text.push(' ');
            }
            text.push_str(VOCABULARY[(next() % VOCABULARY.len() as u64) as usize]);
        }
        text.push('\n');
    }
    text
}

fn count_words(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_owned()).or_insert(0) += 1;
    }
    counts
}

const PY_LIST: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
# Attached, not created: keep CPython's resource tracker from unlinking it (gh-82300).
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(repr(list(sl)))
sl[0] = "read by CPython %d.%d" % sys.version_info[:2]
sl.shm.close()
"#;

pub fn run(workers: usize) -> Result {
    if !(2..=32).contains(&workers) {
        return Err(
            format!("--workers must be 2..=32 (one of them is killed), got {workers}").into(),
        );
    }
    // Built before the clock starts: the first run builds the wheel (minutes).
    let python = crate::py::python_with_shm()?;
    let started = Instant::now();
    let shm_cli = build_shm_cli()?;

    let mgr = SharedMemoryManager::new()?;
    let name = mgr.name().to_owned();
    println!(
        "manager {name}: owns every segment named {}*; a tracker process removes them if this process dies",
        mgr.root_name()
    );
    let mut summary_items = vec![Item::from(
        "written by Rust workers, not yet read by CPython",
    )];
    summary_items.extend((0..workers).map(|_| Item::Int(0)));
    let Tour {
        jobs,
        results,
        processed,
        takeovers,
        histogram,
        counts,
        log,
        config,
        go,
        stdout: _stdout,
        summary,
    } = Tour::by_key(&mgr, summary_items)?;
    config.set("workers", &(workers as u64))?;
    config.set("jobs", &JOBS)?;
    config.set("vocabulary", &(VOCABULARY.len() as u64))?;
    println!(
        "created by key: 2 queues, 2 Values, an Array, a ShareableDict, a ShareableVec, a Namespace, an Event, a Lock, a ShareableList"
    );

    // Daemons: should this process die, its workers die with it.
    let mut children = Vec::with_capacity(workers);
    for i in 0..workers {
        let args = (
            name.clone(),
            i,
            workers,
            Shared::of(&jobs)?,
            Shared::of(&results)?,
        );
        children.push(
            Builder::new()
                .name(format!("worker {i}"))
                .daemon(true)
                .spawn(worker, args)?,
        );
    }
    let outcome = tour(
        &mgr,
        &shm_cli,
        &mut children,
        workers,
        &jobs,
        &results,
        &config,
        &go,
    );
    if outcome.is_err() {
        for c in &mut children {
            let _ = c.kill();
            let _ = c.join();
        }
    }
    outcome?;

    // Every count, checked against a count made here.
    let mut expected: HashMap<String, u64> = HashMap::new();
    let mut lengths = [0u64; BINS];
    for id in 0..JOBS {
        for (w, c) in count_words(&job_text(id)) {
            lengths[w.len().min(BINS - 1)] += c;
            *expected.entry(w).or_insert(0) += c;
        }
    }
    let total: u64 = expected.values().sum();
    let shared: HashMap<String, u64> = counts.iter()?.collect();
    if shared != expected {
        return Err(format!(
            "the shared dict has {} words, expected {}",
            shared.len(),
            expected.len()
        )
        .into());
    }
    let hist = histogram.lock().map_err(|e| e.to_string())?.to_vec();
    if hist != lengths {
        return Err(format!("histogram {hist:?}, expected {lengths:?}").into());
    }
    if processed.get()? != u64::from(JOBS) || log.len()? != JOBS as usize {
        return Err(format!(
            "{} jobs counted and {} logged, expected {JOBS}",
            processed.get()?,
            log.len()?
        )
        .into());
    }
    let mut top: Vec<_> = shared.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "verified: {total} words in {JOBS} jobs, {} distinct; the dict, the histogram, the counter and the log agree with a count made here",
        top.len()
    );
    println!(
        "  top words: {}",
        top.iter()
            .take(5)
            .map(|(w, c)| format!("{w}={c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  word lengths: {hist:?}");
    println!("  log[0]: {}", log.get(0)?.unwrap_or_default());
    println!(
        "  lock takeovers after the kill: {} (the next locker of the dead worker's lock was told, and went on)",
        takeovers.get()?
    );

    let summary_name = summary.name().expect("named").to_owned();
    let out = Command::new("python3")
        .args(["-c", PY_LIST, &summary_name])
        .output()?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    println!(
        "CPython read the ShareableList {summary_name} (jobs per worker):\n  {}",
        String::from_utf8(out.stdout)?.trim()
    );
    let back = summary.get(0)?;
    if !back
        .as_str()
        .is_some_and(|s| s.starts_with("read by CPython"))
    {
        return Err(format!("CPython's write did not arrive: item 0 is {back}").into());
    }
    let per_worker: i64 = (1..=workers)
        .map(|i| summary.get(i).map(|v| v.as_int().unwrap_or(0)))
        .sum::<std::result::Result<i64, _>>()?;
    if per_worker != i64::from(JOBS) {
        return Err(format!("workers report {per_worker} jobs, expected {JOBS}").into());
    }
    println!("Rust reads CPython's write back: item 0 = {back}");
    python_worker(&mgr, &python)?;

    let prefix = mgr.root_name().to_owned();
    drop((
        jobs, results, processed, takeovers, histogram, counts, log, config, go, summary,
    ));
    let shutdown_started = Instant::now();
    let removed = mgr.shutdown()?;
    let shutdown_took = shutdown_started.elapsed();
    let left: Vec<String> = std::fs::read_dir("/dev/shm")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        return Err(format!("left in /dev/shm after shutdown: {left:?}").into());
    }
    println!(
        "manager shut down in {shutdown_took:.1?}: {removed} segments unlinked; /dev/shm holds nothing of the demo"
    );
    println!("the whole tour took {:.1?}", started.elapsed());
    Ok(())
}

/// Jobs the CPython worker does.
const PY_JOBS: u32 = 8;

/// The CPython worker: opens by name a dict and two queues made by the Rust side.
const PY_WORKER: &str = r#"
import sys
import shm
counts = shm.ShareableDict(name=sys.argv[1])  # a ShareableDict<String, i64> made in Rust
jobs, results = shm.Queue(name=sys.argv[2]), shm.Queue(name=sys.argv[3])
while (job := jobs.get(timeout=30)) is not None:
    job_id, text = job
    words = text.split()
    for w in words:
        counts.increment(w)  # atomic: another process could count into the same dict
    results.put((job_id, len(words), "CPython %d.%d" % sys.version_info[:2]))
"#;

/// Runs [`PY_WORKER`] with the venv's `python` on [`PY_JOBS`] jobs and checks its dict
/// and its results against counts made here.
fn python_worker(mgr: &SharedMemoryManager, python: &Path) -> Result {
    let counts: ShareableDict<String, i64> = mgr.dict("py-word-counts")?;
    let jobs: Queue<Dynamic> = mgr.queue("py-jobs", 64, 1 << 20)?;
    let results: Queue<Dynamic> = mgr.queue("py-results", 64, 1 << 16)?;
    let mut expected: HashMap<String, i64> = HashMap::new();
    for id in 0..PY_JOBS {
        let text = job_text(id);
        for (w, c) in count_words(&text) {
            *expected.entry(w).or_insert(0) += c as i64;
        }
        jobs.put(&Dynamic::Tuple(vec![Dynamic::Int(id.into()), text.into()]))?;
    }
    jobs.put(&Dynamic::None)?;
    let names = [counts.name(), jobs.name(), results.name()]
        .map(|n| n.map(str::to_owned).ok_or("a manager's object has a name"));
    let [counts_name, jobs_name, results_name] = names;
    let out = Command::new(python)
        .current_dir(target_dir())
        .args(["-c", PY_WORKER, &counts_name?, &jobs_name?, &results_name?])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "the CPython worker failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut words = 0;
    let mut by = String::new();
    for id in 0..PY_JOBS {
        let got = results.get_timeout(PATIENCE)?;
        let want = job_text(id).split_whitespace().count() as i64;
        match &got {
            Dynamic::Tuple(t)
                if t.len() == 3
                    && t[0] == Dynamic::Int(id.into())
                    && t[1] == Dynamic::Int(want) =>
            {
                words += want;
                if let Dynamic::Str(s) = &t[2] {
                    by = s.clone();
                }
            }
            _ => {
                return Err(format!(
                    "CPython's result {id}: expected ({id}, {want}, by), found {got:?}"
                )
                .into());
            }
        }
    }
    let shared: HashMap<String, i64> = counts.iter()?.collect();
    if shared != expected {
        return Err(format!(
            "CPython's dict has {} words, expected {}",
            shared.len(),
            expected.len()
        )
        .into());
    }
    let mut top: Vec<_> = shared.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "{by} with the package shm: took {PY_JOBS} jobs from a shm.Queue made here, counted {words} words into a ShareableDict<String, i64> made here, put {PY_JOBS} results on another queue"
    );
    println!(
        "  verified here: CPython's counts agree with a count made in Rust; top: {}",
        top.iter()
            .take(3)
            .map(|(w, c)| format!("{w}={c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The objects of the tour, found by key (created by the first to ask: the parent).
struct Tour {
    jobs: Queue<Job>,
    results: Queue<Done>,
    processed: shm_collections::Value<u64>,
    takeovers: shm_collections::Value<u64>,
    histogram: shm_collections::Array<u64>,
    counts: ShareableDict<String, u64>,
    log: ShareableVec<String>,
    config: Namespace,
    go: shm_sync::Event,
    stdout: shm_sync::Lock,
    summary: shm_collections::ShareableList,
}

impl Tour {
    /// `summary_items`: the list's items if this call creates it.
    fn by_key(mgr: &SharedMemoryManager, summary_items: Vec<Item>) -> Result<Tour> {
        Ok(Tour {
            jobs: mgr.queue("jobs", 256, 1 << 20)?,
            results: mgr.queue("results", 256, 1 << 16)?,
            processed: mgr.value("processed", 0u64)?,
            takeovers: mgr.value("lock-takeovers", 0u64)?,
            histogram: mgr.array("word-lengths", BINS)?,
            counts: mgr.dict("word-counts")?,
            log: mgr.list("log")?,
            config: mgr.namespace("config")?,
            go: mgr.event("go")?,
            stdout: mgr.lock("stdout")?,
            summary: mgr.shareable_list("summary", summary_items)?,
        })
    }
}

/// Starts the workers, kills one mid-job, collects every job's result once.
#[allow(clippy::too_many_arguments)]
fn tour(
    mgr: &SharedMemoryManager,
    shm_cli: &Path,
    children: &mut [Process],
    workers: usize,
    jobs: &Queue<Job>,
    results: &Queue<Done>,
    config: &Namespace,
    go: &shm_sync::Event,
) -> Result {
    for id in 0..JOBS {
        jobs.put(&Job::Count {
            id,
            text: job_text(id),
        })?;
    }
    go.set();
    println!("{JOBS} jobs queued; {workers} worker processes connected by name and started");

    // Worker 0 takes a job, then the histogram's lock, and stalls: kill it there.
    let deadline = Instant::now() + PATIENCE;
    let victim_job = loop {
        if let Some(id) = config.get::<u32>("victim-job")? {
            break id;
        }
        if Instant::now() > deadline {
            return Err("worker 0 never took a job".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };

    let listing = Command::new(shm_cli).arg("ls").output()?;
    println!("`shm ls` while the workers run (this manager's rows):");
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        if line.starts_with("NAME") || line.contains(mgr.name()) {
            println!("  {line}");
        }
    }

    children[0].kill()?; // SIGKILL, holding the histogram's lock mid-job
    let killed = Instant::now();
    let code = children[0].join()?;
    if code != -9 {
        return Err(format!("worker 0 exit code {code}, expected -9 (SIGKILL)").into());
    }
    println!(
        "worker 0 (pid {}) killed with SIGKILL holding the histogram's lock mid-job {victim_job} (exit code {code}); the job goes back on the queue",
        children[0].pid()
    );
    jobs.put(&Job::Count {
        id: victim_job,
        text: job_text(victim_job),
    })?;

    let mut seen = vec![false; JOBS as usize];
    let mut first_after_kill = None;
    let mut by_worker = vec![0u32; workers];
    while seen.iter().any(|s| !s) {
        let done = results.get_timeout(PATIENCE)?;
        let slot = seen
            .get_mut(done.id as usize)
            .ok_or_else(|| format!("a result for job {} of {JOBS}", done.id))?;
        if *slot {
            return Err(format!("job {} was reported twice", done.id).into());
        }
        *slot = true;
        if let Some(n) = by_worker.get_mut(done.worker as usize) {
            *n += 1;
        }
        first_after_kill.get_or_insert_with(|| killed.elapsed());
    }
    println!(
        "all {JOBS} results collected once each (jobs per worker {by_worker:?}); work resumed {:.1?} after the kill",
        first_after_kill.unwrap_or_default()
    );
    for _ in 1..workers {
        jobs.put(&Job::Stop)?;
    }
    for (i, c) in children.iter_mut().enumerate().skip(1) {
        // A worker's error is a panic: `join` returns it with its message.
        let code = c.join()?;
        if code != 0 {
            return Err(format!("worker {i} exited with code {code}").into());
        }
    }
    Ok(())
}

/// Builds the `shm` command of shm-manager (once) and returns its path.
fn build_shm_cli() -> Result<std::path::PathBuf> {
    crate::cargo(
        &["build", "--quiet", "-p", "shm-manager", "--bin", "shm"],
        &[],
    )?;
    Ok(target_dir().join("debug").join("shm"))
}

/// A worker's arguments: the manager's name, its index, the worker count, and the two
/// queues.
pub(crate) type WorkerArgs = (
    String,
    usize,
    usize,
    Shared<Queue<Job>>,
    Shared<Queue<Done>>,
);

/// A worker process's function (registered in `main` with `shm_process::main!`); an
/// error ends it with a panic, whose message the parent's `join` returns.
pub fn worker(args: WorkerArgs) {
    let index = args.1;
    if let Err(e) = work(args) {
        panic!("demo worker {index}: {e}");
    }
}

fn work((name, index, workers, jobs, results): WorkerArgs) -> Result {
    let mgr = SharedMemoryManager::connect_timeout(&name, PATIENCE)?;
    let Tour {
        // The queues came as arguments (the same objects as by key).
        jobs: _,
        results: _,
        processed,
        takeovers,
        histogram,
        counts,
        log,
        config,
        go,
        stdout,
        summary,
    } = Tour::by_key(&mgr, Vec::new())?;
    if config.get::<u64>("workers")? != Some(workers as u64) {
        return Err("the config names another worker count".into());
    }
    go.wait_timeout(PATIENCE)?;

    let mut done_here = 0i64;
    loop {
        let (id, text) = match jobs.get_timeout(PATIENCE)? {
            Job::Stop => break,
            Job::Count { id, text } => (id, text),
        };
        let words = count_words(&text);
        if index == 0 {
            // The victim: hold the histogram's lock and stall until killed.
            let _held = histogram.lock().map_err(|e| e.to_string())?;
            config.set("victim-job", &id)?;
            std::thread::sleep(PATIENCE * 2);
            return Err("worker 0 was not killed".into());
        }
        for (w, c) in &words {
            counts.update(w.clone(), |old| old.unwrap_or(0) + c)?;
        }
        {
            let mut hist = match histogram.lock() {
                Ok(g) => g,
                Err(LockError::OwnerDied(g)) => {
                    // The dead worker changed nothing under this lock: consistent.
                    g.mark_consistent();
                    takeovers.update(|n| *n += 1)?;
                    let _out = stdout.lock().map_err(|e| e.to_string())?;
                    println!(
                        "  worker {index} (pid {}): took over the histogram's lock from the killed worker",
                        std::process::id()
                    );
                    g
                }
                Err(e) => return Err(e.to_string().into()),
            };
            for (w, c) in &words {
                hist[w.len().min(BINS - 1)] += c;
            }
        }
        let n: u64 = words.values().sum();
        processed.update(|p| *p += 1)?;
        log.push(format!(
            "job {id}: {n} words, by worker {index} (pid {})",
            std::process::id()
        ))?;
        done_here += 1;
        summary.set(1 + index, done_here)?;
        results.put(&Done {
            id,
            worker: index as u32,
            words: n,
        })?;
    }
    Ok(())
}
