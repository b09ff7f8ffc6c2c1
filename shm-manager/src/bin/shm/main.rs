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
mod registry;
mod scan;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const JSON_HELP: &str = "\
JSON output (--json; field names are stable, absent values are null):

shm ls --json: {\"entries\": [ENTRY...]}, ENTRY = {
  name, size (bytes), class (object | shareable_list | cpython | raw (a segment without
  header under a manager's prefix: m.segment()) | pending (a growable collection's data
  segment being made, no header yet) | pidns_registry | foreign | error),
  kind (header kind name, or a description), kind_id, type (element type name, module
  paths dropped: Dict<String, u64>), version,
  initialised, creator: {pid, token, pidns, alive: alive | dead | unknown} (an object
  inside an arena: its manager's owner, as its compact header records no creator),
  flags: [tracked | keep | in_arena], generation, created (Unix seconds),
  manager (NAME of shm-rs.m.NAME / shm-rs.k.NAME names), data_of (control X of a data
  segment X.g<hex>.<16 hex>), items (ShareableList length), key (the registry key it is
  registered under), keys (a manager root: number of registry keys), owner (segments
  under shm-rs.m.NAME: the manager's owner {pid, token, pidns, alive}, who decides gc),
  arena and offset (rows ARENA@OFFSET: objects inside a manager's arena, listed right
  after their arena), error (why the entry, or a root's registry, is unreadable)}

shm inspect NAME --json: {name, class, kind, size, header, contents, error}
  (types are short, as in ls; header.creator of an arena object is its manager's owner)
  header = {kind, kind_id, version, type, type_tag, elem_size, elem_align, total_len,
            flags, generation, initialised, created, creator, manager, data_of}
  contents = {view: lock, locked, owner_died, waiters, holder: {tid, pid, alive}}
           | {view: condition, lock: {locked, owner_died, waiters, holder}, waiters,
              value, data_hex}
           | {view: rw_lock, writer: {locked, owner_died, waiters, holder}, readers, slots,
              value, data_hex}
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

shm rm --json: {removed: [name...], failed: [{name, error}]}
  (a name already removed by the same command, with its root or control, is no failure)

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
    /// Lists every entry of /dev/shm: name, size, kind and element type, creator
    /// (PID) and whether it lives, flags (FL: t tracked, k keep, a in an arena),
    /// generation and registry key. A manager's segments follow its root, named by
    /// their suffix (`  .a0`), objects inside an arena as `  .a0@OFFSET` after it, a
    /// data segment as `    .g<gen>.<id>` after its collection; `--json` gives full
    /// names.
    Ls {
        /// Only names starting with this (e.g. one manager's `shm-rs.m.NAME`).
        prefix: Option<String>,
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
        /// Also remove foreign or unreadable segments, the PID-namespace registry and
        /// the root of a manager whose owner is alive (or whose liveness is unknown).
        #[arg(long)]
        force: bool,
        /// Print JSON (see `shm --help`).
        #[arg(long)]
        json: bool,
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

/// Set (to anything) to print how many registry reads a command made, on stderr: the
/// tests check that a listing reads each registry once.
const REGISTRY_READS_VAR: &str = "SHM_DEBUG_REGISTRY_READS";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shm: error: {e}");
            ExitCode::FAILURE
        }
    };
    if std::env::var_os(REGISTRY_READS_VAR).is_some() {
        eprintln!(
            "shm: registry reads: {}",
            registry::REGISTRY_READS.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    code
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
        Command::Ls {
            prefix,
            json: as_json,
        } => {
            let mut entries =
                scan::scan().map_err(|e| format!("reading {}: {e}", scan::SHM_DIR))?;
            managers::enrich(&mut entries);
            if let Some(p) = prefix {
                entries.retain(|e| e.name.starts_with(&p));
            }
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
        Command::Rm {
            names,
            force,
            json: as_json,
        } => {
            let out = ops::rm(&names, force);
            if as_json {
                emit(&json(&out)?);
            } else {
                for n in &out.removed {
                    emit(&format!("removed {n}"));
                }
            }
            for f in &out.failed {
                eprintln!("shm: error: {}", f.error);
            }
            Ok(if out.failed.is_empty() {
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

/// The KIND column: the kind with its short element type (`Dict<String, u64>`,
/// `Mutex<u32>`, `Lock` for a `Mutex<()>`), or a short description.
fn kind_cell(e: &scan::Entry) -> String {
    if e.class == scan::Class::ShareableList {
        return "ShareableList".into();
    }
    // A root is a dict of registry entries; its data segment too.
    let is_root = |n: &str| scan::manager_of(n).is_some_and(|m| scan::manager_root(m) == n);
    if e.class == scan::Class::Object
        && (is_root(&e.name) || e.data_of.as_deref().is_some_and(is_root))
    {
        return "Manager root".into();
    }
    scan::kind_with_type(&e.kind, e.type_name.as_deref().unwrap_or_default())
}

/// Bytes for people: exact below 10 000, else K/M/G (binary) with one decimal.
fn size_cell(n: u64) -> String {
    if n < 10_000 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    for unit in ["K", "M", "G"] {
        if v < 1024.0 || unit == "G" {
            return format!("{v:.1}{unit}");
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at G")
}

/// Flags as letters: `t` tracked, `k` keep, `a` in an arena.
fn flags_cell(flags: &[&str]) -> String {
    let s: String = flags
        .iter()
        .filter_map(|f| match *f {
            "tracked" => Some('t'),
            "keep" => Some('k'),
            "in_arena" => Some('a'),
            _ => None,
        })
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// The NAME column: a segment under a manager root listed above it shows as the
/// suffix after the root (`  .a0@64`, `  .o1f...`), and a data segment right after
/// its control object as `    .g<gen>.<incarnation>`, so that the table fits a
/// terminal (`--json` and `inspect` take the full names).
fn name_cells(entries: &[scan::Entry]) -> Vec<String> {
    let mut root: Option<&str> = None;
    let mut prev_control: Option<&str> = None;
    entries
        .iter()
        .map(|e| {
            let name = e.name.as_str();
            let data_suffix = e
                .data_of
                .as_deref()
                .filter(|c| Some(*c) == prev_control)
                .and_then(|c| name.strip_prefix(c));
            if e.data_of.is_none() {
                prev_control = Some(name);
            }
            if scan::manager_of(name).is_some_and(|m| scan::manager_root(m) == name) {
                root = Some(name);
                return name.to_owned();
            }
            let under_root = root
                .and_then(|r| name.strip_prefix(r))
                .filter(|rest| rest.starts_with('.'));
            match (data_suffix, under_root) {
                (Some(d), Some(_)) => format!("    {d}"),
                (_, Some(rest)) => format!("  {rest}"),
                (Some(d), None) => format!("  {d}"),
                (None, None) => name.to_owned(),
            }
        })
        .collect()
}

/// The listing as aligned columns (`entries` in listing order: see
/// [`managers::enrich`]).
fn render_ls(entries: &[scan::Entry]) -> String {
    let header = [
        "NAME", "SIZE", "KIND", "PID", "ALIVE", "FL", "GEN", "KEY", "NOTE",
    ];
    let names = name_cells(entries);
    let rows: Vec<[String; 9]> = entries
        .iter()
        .zip(names)
        .map(|(e, name)| {
            let dash = || "-".to_owned();
            let note = match (&e.data_of, &e.error) {
                (_, Some(err)) => format!("error: {err}"),
                (Some(_), None) if name.starts_with(' ') => "data".into(),
                (Some(x), None) => format!("data of {x}"),
                (None, None) => match (e.keys, e.initialised, e.items) {
                    (Some(n), _, _) => format!("{n} keys"),
                    (None, Some(false), _) => "not initialised".into(),
                    (None, _, Some(n)) => format!("{n} items, CPython format"),
                    _ => String::new(),
                },
            };
            [
                name,
                size_cell(e.size),
                kind_cell(e),
                e.creator.map_or_else(dash, |c| c.pid.to_string()),
                e.creator.map_or_else(dash, |c| c.alive.to_owned()),
                flags_cell(&e.flags),
                e.generation.map_or_else(dash, |g| g.to_string()),
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
            // `{:<w$}` pads by chars, as the widths count them.
            if i == 1 || i == 3 || i == 6 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(size_cell(9999), "9999");
        assert_eq!(size_cell(1 << 20), "1.0M");
        assert_eq!(size_cell(12_700), "12.4K");
        assert_eq!(flags_cell(&["tracked", "in_arena"]), "ta");
        assert_eq!(flags_cell(&[]), "-");
        let mut e = scan::Entry::bare("x", 1, scan::Class::Object, "Mutex");
        e.type_name = Some("()".into());
        assert_eq!(kind_cell(&e), "Lock");
        e.type_name = Some("u32".into());
        assert_eq!(kind_cell(&e), "Mutex<u32>");
        e.kind = "Dict".into();
        e.type_name = Some("Dict<String, my_cr".into());
        assert_eq!(kind_cell(&e), "Dict<String, my_cr…");
    }

    #[test]
    fn names_under_a_root_and_data_under_their_control() {
        let rows: Vec<scan::Entry> = [
            "shm-rs.m.app",
            "shm-rs.m.app.a0",
            "shm-rs.m.app.o1f",
            "shm-rs.m.app.o1f.g1.0123456789abcdef",
            "d",
            "d.g2.0123456789abcdef",
            "e.g2.0123456789abcdef",
        ]
        .iter()
        .map(|n| {
            let mut e = scan::Entry::bare(n, 1, scan::Class::Object, "k");
            e.data_of = scan::data_control(n).map(str::to_owned);
            e
        })
        .collect();
        assert_eq!(
            name_cells(&rows),
            [
                "shm-rs.m.app",
                "  .a0",
                "  .o1f",
                "    .g1.0123456789abcdef",
                "d",
                "  .g2.0123456789abcdef",
                "e.g2.0123456789abcdef",
            ]
        );
    }
}
