//! `shm`: list, inspect, remove and garbage-collect shared-memory segments of the shm
//! workspace (and CPython's `psm_*` ones) in `/dev/shm`.
//!
//! Install with `cargo install --path shm-manager`; `shm --help` documents the
//! commands and their `--json` output.

mod decode;
mod inspect;
mod kinds;
mod managers;
mod ops;
mod scan;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const JSON_HELP: &str = "\
JSON output (--json; field names are stable, absent values are null):

shm ls --json: {\"entries\": [ENTRY...]}, ENTRY = {
  name, size (bytes), class (object | shareable_list | cpython | pidns_registry | foreign | error),
  kind (header kind name, or a description), kind_id, type (element type name), version,
  initialised, creator: {pid, token, pidns, alive: alive | dead | unknown},
  flags: [tracked | keep | in_arena], generation, created (Unix seconds),
  manager (NAME of shm-rs.m.NAME / shm-rs.k.NAME names), data_of (control X of a data
  segment X.g<hex>.<16 hex>), items (ShareableList length), key (the registry key it is
  registered under), keys (a manager root: number of registry keys), owner (segments
  under shm-rs.m.NAME: the manager's owner {pid, token, pidns, alive}, who decides gc),
  arena and offset (rows ARENA@OFFSET: objects inside a manager's arena, listed right
  after their arena), error (why the entry, or a root's registry, is unreadable)}

shm inspect NAME --json: {name, class, kind, size, header, contents, error}
  header = {kind, kind_id, version, type, type_tag, elem_size, elem_align, total_len,
            flags, generation, initialised, created, creator, manager, data_of}
  contents = {view: lock, locked, owner_died, waiters, holder: {tid, pid, alive}}
           | {view: event, set} | {view: semaphore, value, max}
           | {view: barrier, parties, waiting, broken}
           | {view: queue, depth, capacity, max_message_len, closed, bytes_used, puts,
              gets, recovered, lost, unfinished_tasks}
           | {view: collection, entries, bytes_used, capacity, slots, generation, garbage,
              shown: [{key, key_hex, value, value_hex, value_type}]}
           | {view: cell, len, elem_size, values, data_hex, lock}
           | {view: shareable_list, items: [{type, value, repr}]}
           | {view: data, control} | {view: none, reason}
           | {view: registry, manager, owner, keys, entries: [KEY...]}
           | {view: arena, used, capacity, objects: [KEY...]}
  KEY = {key, kind, kind_id, type, location, keep, in_arena, state (one line), error}
  (keys and values decode when the header's type name is String or a primitive number;
   otherwise they are null and only the *_hex fields carry the bytes)

shm gc --json: {dry_run, removed: [{name, reason}], kept: [{name, reason}],
                failed: [{name, error}],
                managers: [{name, root, owner_pid, segments: [name...]}]}
  (managers: dead managers removed as one unit, root and every shm-rs.m.NAME.* segment)

Exit status: 0 on success, 1 on any error (unknown name, foreign or corrupted segment,
a removal that failed).";

/// Shared-memory segments of shm (and CPython's) in /dev/shm.
#[derive(Debug, Parser)]
#[command(name = "shm", version, about, after_long_help = JSON_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists every entry of /dev/shm: kind, size, type, creator and whether it lives,
    /// flags, generation, manager and registry key (objects inside a manager's arenas
    /// as rows ARENA@OFFSET after their arena).
    Ls {
        /// Print JSON (see `shm --help`).
        #[arg(long)]
        json: bool,
    },
    /// Shows an object's header and contents (NAME or NAME@OFFSET inside an arena).
    Inspect {
        /// The segment (or `segment@offset`).
        name: String,
        /// Print JSON (see `shm --help`).
        #[arg(long)]
        json: bool,
        /// How many entries / elements of a collection to show.
        #[arg(long, default_value_t = 20)]
        max: usize,
    },
    /// Unlinks segments; a growable collection's data segments and a manager's whole
    /// prefix go with them.
    Rm {
        /// Segment names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove foreign or unreadable segments and the PID-namespace registry.
        #[arg(long)]
        force: bool,
    },
    /// Removes objects whose owner is provably dead (never KEEP ones, never when the
    /// owner's liveness is unknown, never CPython's or foreign segments). A manager whose
    /// owner is dead goes as one unit: its root and every `shm-rs.m.NAME.*` segment.
    Gc {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Only consider names starting with this (e.g. one manager's `shm-rs.m.NAME`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Print JSON (see `shm --help`).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `text` and a newline; a closed stdout (`shm ls | head`) ends quietly, never
/// with a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Ls { json: as_json } => {
            let mut entries =
                scan::scan().map_err(|e| format!("reading {}: {e}", scan::SHM_DIR))?;
            managers::enrich(&mut entries);
            if as_json {
                emit(&json(&serde_json::json!({ "entries": entries }))?);
            } else {
                emit(render_ls(&entries).trim_end());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect {
            name,
            json: as_json,
            max,
        } => {
            let report = inspect::inspect(&name, max)?;
            if as_json {
                emit(&json(&report)?);
            } else {
                emit(inspect::render(&report).trim_end());
            }
            Ok(match &report.error {
                Some(e) => {
                    eprintln!("shm: error: {name}: {e}");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            })
        }
        Command::Rm { names, force } => {
            let out = ops::rm(&names, force);
            for n in &out.removed {
                emit(&format!("removed {n}"));
            }
            for e in &out.errors {
                eprintln!("shm: error: {e}");
            }
            Ok(if out.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Gc {
            dry_run,
            prefix,
            json: as_json,
        } => {
            let report =
                ops::gc(dry_run, &prefix).map_err(|e| format!("reading {}: {e}", scan::SHM_DIR))?;
            if as_json {
                emit(&json(&report)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                let in_unit = |n: &str| {
                    report
                        .managers
                        .iter()
                        .any(|m| m.segments.iter().any(|s| s == n))
                };
                for v in report.removed.iter().filter(|v| !in_unit(&v.name)) {
                    emit(&format!("{verb} {}  ({})", v.name, v.reason));
                }
                for m in &report.managers {
                    emit(&format!(
                        "{verb} manager {} (owner pid {} dead): {} segments",
                        m.name,
                        m.owner_pid,
                        m.segments.len()
                    ));
                    for s in &m.segments {
                        emit(&format!("  {s}"));
                    }
                }
                if report.removed.is_empty() {
                    emit("nothing to remove");
                }
            }
            for f in &report.failed {
                eprintln!("shm: error: {}: {}", f.name, f.error);
            }
            Ok(if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The listing as aligned columns.
fn render_ls(entries: &[scan::Entry]) -> String {
    let header = [
        "NAME", "SIZE", "KIND", "TYPE", "CREATOR", "ALIVE", "FLAGS", "GEN", "MANAGER", "KEY",
        "NOTE",
    ];
    let rows: Vec<[String; 11]> = entries
        .iter()
        .map(|e| {
            let dash = || "-".to_owned();
            let note = match (&e.data_of, &e.error) {
                (_, Some(err)) => format!("error: {err}"),
                (Some(x), None) => format!("data of {x}"),
                (None, None) => match (e.keys, e.initialised) {
                    (Some(n), _) => {
                        let owner = e.creator.map_or_else(String::new, |c| {
                            format!(", owner pid {} {}", c.pid, c.alive)
                        });
                        format!("manager root: {n} keys{owner}")
                    }
                    (None, Some(false)) => "not initialised".into(),
                    _ => String::new(),
                },
            };
            [
                e.name.clone(),
                e.size.to_string(),
                e.kind.clone(),
                e.type_name
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(dash),
                e.creator.map_or_else(dash, |c| c.pid.to_string()),
                e.creator.map_or_else(dash, |c| c.alive.to_owned()),
                if e.flags.is_empty() {
                    dash()
                } else {
                    e.flags.join(",")
                },
                e.generation.map_or_else(dash, |g| g.to_string()),
                e.manager.clone().unwrap_or_else(dash),
                e.key.clone().unwrap_or_else(dash),
                note,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 1 {
                s.push_str(&format!("{c:>w$}  "));
            } else if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for r in &rows {
        line(r);
    }
    out
}
