//! `shm rm` and `shm gc`: removing segments by name, and removing what provably dead
//! owners left behind.

use std::collections::HashMap;

use serde::Serialize;
use shm_core::Segment;
use shm_manager::is_tracked_by;

use crate::scan::{self, Class, Entry, MANAGER_PREFIX};

/// What `rm` did (what `shm rm --json` prints; field names are stable): the names
/// removed, and one failure per name that could not be removed.
#[derive(Debug, Default, Serialize)]
pub struct RmOutcome {
    /// Names unlinked.
    pub removed: Vec<String>,
    /// Names that could not be removed, with a clear message each.
    pub failed: Vec<Failure>,
}

/// Removes each name: a segment of ours or CPython's; for a growable collection also
/// its `NAME.g<hex>.<16 hex>` data segments; for a manager root `shm-rs.m.NAME` everything under
/// `shm-rs.m.NAME.`. Foreign, unreadable segments, the PID-namespace registry and a
/// manager root whose owner is not provably dead only with `force`. A name this same
/// command already removed (a manager's segment named after its root) is no failure.
pub fn rm(names: &[String], force: bool) -> RmOutcome {
    let mut out = RmOutcome::default();
    let listing = scan::scan().unwrap_or_default();
    for name in names {
        if let Err(error) = rm_one(name, force, &listing, &mut out.removed) {
            out.failed.push(Failure {
                name: name.clone(),
                error,
            });
        }
    }
    out
}

fn rm_one(
    name: &str,
    force: bool,
    listing: &[Entry],
    removed: &mut Vec<String>,
) -> Result<(), String> {
    if name.contains(shm_core::OFFSET_SEPARATOR) {
        return Err(format!(
            "{name}: names an object inside an arena; only whole segments can be removed (its arena's owner frees it)"
        ));
    }
    let seg = shm_core::normalize_name(name).map_err(|e| e.to_string())?;
    let size = match Segment::open(seg) {
        Ok(s) => s.len() as u64,
        // Gone because this command removed it already (with its root or control).
        Err(shm_core::Error::NotFound { .. }) if removed.iter().any(|r| r == seg) => {
            return Ok(());
        }
        Err(shm_core::Error::NotFound { .. }) => {
            return Err(format!("no segment named {seg:?} in /dev/shm"));
        }
        // Not a regular file, another user's: shm_unlink may still be what the user
        // wants, but only when asked for explicitly.
        Err(e) if !force => return Err(format!("{seg}: {e} (use --force to unlink it anyway)")),
        Err(_) => 0,
    };
    let entry = scan::classify(seg, size);
    if !force {
        match entry.class {
            Class::PidnsRegistry => {
                return Err(format!(
                    "{seg}: is the PID-namespace registry of shm-core, shared by every process of this user (use --force to remove it anyway)"
                ));
            }
            Class::Foreign => {
                return Err(format!(
                    "{seg}: foreign segment, neither an shm-rs object nor CPython's (use --force to remove it anyway)"
                ));
            }
            Class::Error => {
                return Err(format!(
                    "{seg}: unreadable ({}) (use --force to remove it anyway)",
                    entry.error.as_deref().unwrap_or("unknown error")
                ));
            }
            _ => {}
        }
    }
    let is_root = scan::manager_of(seg).is_some_and(|m| scan::manager_root(m) == seg);
    if is_root && !force && entry.class == Class::Object {
        // Removing a live manager's root takes every object of a running program.
        let owner = entry.creator.expect("objects have creators");
        if owner.alive != "dead" {
            return Err(format!(
                "{seg}: is the root of a manager whose owner pid {} is {} (shut the manager down, or use --force to remove it and all its segments anyway)",
                owner.pid,
                if owner.alive == "alive" {
                    "alive"
                } else {
                    "not provably dead (liveness unknown)"
                }
            ));
        }
    }
    let mut extra: Vec<&str> = Vec::new();
    if entry.class == Class::Object {
        extra.extend(
            listing
                .iter()
                .filter(|e| {
                    (e.kind_id == Some(scan::GROWTH_DATA) || e.class == Class::Pending)
                        && scan::data_control(&e.name) == Some(seg)
                })
                .map(|e| e.name.as_str()),
        );
    }
    if is_root {
        let prefix = format!("{seg}.");
        extra.extend(
            listing
                .iter()
                .filter(|e| e.name.starts_with(&prefix))
                .map(|e| e.name.as_str()),
        );
    }
    extra.sort_unstable();
    extra.dedup();
    // Children first: a root that outlives them keeps judging them for a later gc.
    for x in extra {
        match shm_core::unlink(x) {
            Ok(()) => removed.push(x.to_owned()),
            Err(shm_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("{x}: {e}")),
        }
    }
    match shm_core::unlink(seg) {
        Ok(()) => {
            removed.push(seg.to_owned());
            Ok(())
        }
        Err(e) => Err(format!("{seg}: {e}")),
    }
}

/// One decision of `gc`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The segment.
    pub name: String,
    /// Why it is (or would be) removed, or kept.
    pub reason: String,
}

/// One failure of `gc`.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The segment.
    pub name: String,
    /// What went wrong.
    pub error: String,
}

/// What `shm gc --json` prints (field names are stable).
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Segments removed (or, with `dry_run`, that would be).
    pub removed: Vec<Verdict>,
    /// Objects of ours that stay, and why.
    pub kept: Vec<Verdict>,
    /// Segments that should have gone but could not be removed.
    pub failed: Vec<Failure>,
    /// Dead managers removed (or, with `dry_run`, that would be) as one unit.
    pub managers: Vec<DeadManager>,
}

/// A manager whose owner is provably dead: its root and every segment under its
/// prefix go together.
#[derive(Debug, Clone, Serialize)]
pub struct DeadManager {
    /// The manager NAME.
    pub name: String,
    /// Its root segment `shm-rs.m.NAME`.
    pub root: String,
    /// The owner's pid (in the owner's PID namespace).
    pub owner_pid: u32,
    /// The segments removed (or that would be), the root last.
    pub segments: Vec<String>,
}

/// Whether to remove `e` (`Ok(reason)`) or keep it (`Err(reason)`).
fn judge(e: &Entry, all: &HashMap<&str, &Entry>, depth: u32) -> Result<String, String> {
    // Kept objects are named shm-rs.k.*: under a manager's shm-rs.m. prefix a KEEP flag
    // is damage or a mistake, and the manager and its tracker remove the segment anyway.
    if e.is_keep() && !e.name.starts_with(MANAGER_PREFIX) {
        return Err("KEEP: outlives its creator on purpose".into());
    }
    // Everything under a manager's prefix is the manager's, whatever its format: the
    // root's creator (the owner) decides, never the segment's own header.
    if let Some(m) = scan::manager_of(&e.name).filter(|_| e.name.starts_with(MANAGER_PREFIX)) {
        let root = scan::manager_root(m);
        match all.get(root.as_str()) {
            Some(r) if r.class == Class::Object => {
                let c = r.creator.expect("objects have creators");
                return match c.alive {
                    "dead" => Ok(format!("manager {m} (owner pid {} dead)", c.pid)),
                    alive => owner_verdict(&format!("manager {m}: owner pid {}", c.pid), alive),
                };
            }
            Some(_) => return Err(format!("manager {m}: its root {root} is unreadable")),
            // An orphan: its root is gone (a sweep interrupted after the root, or an
            // attacher's late write). Roots are created before anything under them and
            // removed last, so nothing legitimate lives under a missing root.
            None if e.name != root => {
                return Ok(format!("orphan of manager {m}: its root {root} is gone"));
            }
            None => {}
        }
    }
    match e.class {
        Class::Object => {}
        Class::ShareableList | Class::Cpython => {
            return Err("CPython segment: no creator recorded".into());
        }
        Class::Raw => return Err("raw segment: no creator recorded".into()),
        // Being made for its control object, which decides (a growth whose writer died
        // before writing the header leaves it behind).
        Class::Pending => {
            return match e.data_of.as_deref().map(|c| (c, all.get(c))) {
                Some((ctrl, Some(c))) if depth < 2 => judge(c, all, depth + 1)
                    .map(|r| format!("data segment being made for {ctrl}: {r}"))
                    .map_err(|r| format!("data segment being made for {ctrl}: {r}")),
                _ => Err("data segment being made".into()),
            };
        }
        Class::PidnsRegistry => return Err("PID-namespace registry".into()),
        Class::Foreign => return Err("foreign segment".into()),
        Class::Error => return Err("unreadable".into()),
    }
    if e.kind_id == Some(scan::GROWTH_DATA) {
        if let Some(ctrl) = e.data_of.as_deref() {
            return match all.get(ctrl) {
                None => Ok(format!(
                    "orphan data segment: its control object {ctrl} is gone"
                )),
                Some(c) if depth < 2 => judge(c, all, depth + 1)
                    .map(|r| format!("data of {ctrl}: {r}"))
                    .map_err(|r| format!("data of {ctrl}: {r}")),
                Some(_) => Err(format!("data of {ctrl}")),
            };
        }
    }
    let c = e.creator.expect("objects have creators");
    owner_verdict(&format!("creator pid {}", c.pid), c.alive)
}

fn owner_verdict(who: &str, alive: &str) -> Result<String, String> {
    match alive {
        "dead" => Ok(format!("{who} is dead")),
        "alive" => Err(format!("{who} is alive")),
        _ => Err(format!(
            "{who}: liveness unknown (another PID namespace?), never removed"
        )),
    }
}

/// Removes (or with `dry_run` lists) the objects whose owner is provably dead, among
/// the names that start with `prefix` (all with `""`; objects outside it still count
/// as controls and roots of those inside). A dead manager is one unit: when any of its
/// segments is among those names, its root and every segment under its prefix go.
pub fn gc(dry_run: bool, prefix: &str) -> std::io::Result<GcReport> {
    let entries = scan::scan()?;
    let all: HashMap<&str, &Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let mut doomed = Vec::new();
    // Dead managers by NAME: (root entry, reason), each removed once as a unit.
    let mut dead: Vec<(&str, &Entry, String)> = Vec::new();
    for e in entries.iter().filter(|e| e.name.starts_with(prefix)) {
        match judge(e, &all, 0) {
            Ok(reason) => match dead_manager(e, &all) {
                Some((m, root)) => {
                    if !dead.iter().any(|(n, _, _)| *n == m) {
                        dead.push((m, root, reason));
                    }
                }
                None => doomed.push((e, reason)),
            },
            Err(reason) if e.class == Class::Object => report.kept.push(Verdict {
                name: e.name.clone(),
                reason,
            }),
            Err(_) => {}
        }
    }
    // Control objects last: while they exist they keep judging their data segments
    // (for a gc running at the same time, or after this one is interrupted).
    doomed.sort_by_key(|(e, _)| (e.data_of.is_none(), e.name.clone()));
    for (e, reason) in doomed {
        if !dry_run {
            if let Err(error) = remove_checked(e) {
                report.failed.push(Failure {
                    name: e.name.clone(),
                    error,
                });
                continue;
            }
        }
        report.removed.push(Verdict {
            name: e.name.clone(),
            reason,
        });
    }
    for (m, root, reason) in dead {
        let owner_pid = root.creator.map_or(0, |c| c.pid);
        let result = if dry_run {
            Ok(unit_members(&root.name, &entries))
        } else {
            remove_manager(root)
        };
        match result {
            Ok(segments) => {
                report.removed.extend(segments.iter().map(|n| Verdict {
                    name: n.clone(),
                    reason: reason.clone(),
                }));
                report.managers.push(DeadManager {
                    name: m.to_owned(),
                    root: root.name.clone(),
                    owner_pid,
                    segments,
                });
            }
            Err(error) => report.failed.push(Failure {
                name: root.name.clone(),
                error: format!("manager {m}: {error}"),
            }),
        }
    }
    Ok(report)
}

/// The manager `e` belongs to and its root, when `e` is under a manager's prefix
/// whose root is an object (judged dead by the caller).
fn dead_manager<'a>(e: &'a Entry, all: &HashMap<&str, &'a Entry>) -> Option<(&'a str, &'a Entry)> {
    let m = scan::manager_of(&e.name).filter(|_| e.name.starts_with(MANAGER_PREFIX))?;
    let root = all.get(scan::manager_root(m).as_str())?;
    (root.class == Class::Object).then_some((m, *root))
}

/// The segments of the unit of root `root` in a listing, root last.
fn unit_members(root: &str, entries: &[Entry]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .filter(|e| e.name != root && is_tracked_by(&e.name, root))
        .map(|e| e.name.clone())
        .collect();
    v.push(root.to_owned());
    v
}

/// Removes a dead manager as a unit: checks that its root is still the one judged
/// dead, unlinks every segment under its prefix (also those made since the scan: they
/// are the dead owner's too), then the root, then what a process still attached added
/// behind the sweep (only while no new manager has taken the name).
fn remove_manager(root: &Entry) -> Result<Vec<String>, String> {
    let same_root = match crate::kinds::inspect(&root.name) {
        Ok(info) => {
            root.creator.is_some_and(|c| {
                (c.pid, c.token, c.pidns)
                    == (info.creator.id, info.creator.token, info.creator.pidns)
            }) && root.created == Some(info.created)
        }
        Err(shm_core::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    if !same_root {
        return Err("a new manager took the name since the scan: left alone".into());
    }
    let mut removed = Vec::new();
    let sweep = |removed: &mut Vec<String>, while_root_absent: bool| -> Result<usize, String> {
        let mut n = 0;
        // Names only: every segment under the prefix goes, whatever its header says.
        let dir = std::fs::read_dir(scan::SHM_DIR).map_err(|e| e.to_string())?;
        for name in dir.filter_map(|d| d.ok()?.file_name().into_string().ok()) {
            if name == root.name || !is_tracked_by(&name, &root.name) {
                continue;
            }
            let root_path = std::path::Path::new(scan::SHM_DIR).join(&root.name);
            if while_root_absent && root_path.symlink_metadata().is_ok() {
                break;
            }
            match shm_core::unlink(&name) {
                Ok(()) => {
                    removed.push(name);
                    n += 1;
                }
                Err(shm_core::Error::NotFound { .. }) => {}
                Err(err) => return Err(format!("{name}: {err}")),
            }
        }
        Ok(n)
    };
    sweep(&mut removed, false)?;
    match shm_core::unlink(&root.name) {
        Ok(()) => removed.push(root.name.clone()),
        Err(shm_core::Error::NotFound { .. }) => {}
        Err(e) => return Err(format!("{}: {e}", root.name)),
    }
    for _ in 0..8 {
        if sweep(&mut removed, true)? == 0 {
            break;
        }
    }
    // The root last in the report, as it was removed after its segments.
    if let Some(i) = removed.iter().position(|n| *n == root.name) {
        let r = removed.remove(i);
        removed.push(r);
    }
    Ok(removed)
}

/// Unlinks `e` unless its header changed since the scan (a new object under the name).
fn remove_checked(e: &Entry) -> Result<(), String> {
    let same = match crate::kinds::inspect(&e.name) {
        Ok(info) => {
            e.creator.is_some_and(|c| {
                (c.pid, c.token, c.pidns)
                    == (info.creator.id, info.creator.token, info.creator.pidns)
            }) && e.created == Some(info.created)
        }
        Err(shm_core::Error::NotFound { .. }) => return Ok(()),
        // A segment without our header (under a manager's prefix): it had none at the
        // scan either.
        Err(_) => e.creator.is_none(),
    };
    if !same {
        return Err("a new object took the name since the scan: left alone".into());
    }
    match shm_core::unlink(&e.name) {
        Ok(()) | Err(shm_core::Error::NotFound { .. }) => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}
