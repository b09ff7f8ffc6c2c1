//! `shm rm` and `shm gc`: removing segments by name, and removing what provably dead
//! owners left behind.

use std::collections::HashMap;

use serde::Serialize;
use shm_core::{Object, Segment};

use crate::scan::{self, Class, Entry, MANAGER_PREFIX};

/// What `rm` did: the names removed, and one message per failure.
#[derive(Debug, Default)]
pub struct RmOutcome {
    /// Names unlinked.
    pub removed: Vec<String>,
    /// Clear messages for names that could not be removed.
    pub errors: Vec<String>,
}

/// Removes each name: a segment of ours or CPython's; for a growable collection also
/// its `NAME.g<hex>` data segments; for a manager root `shm-rs.m.NAME` everything under
/// `shm-rs.m.NAME.`. Foreign, unreadable segments and the PID-namespace registry only
/// with `force`.
pub fn rm(names: &[String], force: bool) -> RmOutcome {
    let mut out = RmOutcome::default();
    let listing = scan::scan().unwrap_or_default();
    for name in names {
        if let Err(e) = rm_one(name, force, &listing, &mut out.removed) {
            out.errors.push(e);
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
    let mut extra: Vec<&str> = Vec::new();
    if entry.class == Class::Object {
        extra.extend(
            listing
                .iter()
                .filter(|e| {
                    e.kind_id == Some(scan::GROWTH_DATA) && scan::data_control(&e.name) == Some(seg)
                })
                .map(|e| e.name.as_str()),
        );
    }
    if scan::manager_of(seg).is_some_and(|m| scan::manager_root(m) == seg) {
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
}

/// Whether to remove `e` (`Ok(reason)`) or keep it (`Err(reason)`).
fn judge(e: &Entry, all: &HashMap<&str, &Entry>, depth: u32) -> Result<String, String> {
    if e.is_keep() {
        return Err("KEEP: outlives its creator on purpose".into());
    }
    // Everything under a manager's prefix is the manager's, whatever its format: the
    // root's creator (the owner) decides, never the segment's own header.
    if let Some(m) = scan::manager_of(&e.name).filter(|_| e.name.starts_with(MANAGER_PREFIX)) {
        let root = scan::manager_root(m);
        match all.get(root.as_str()) {
            Some(r) if r.class == Class::Object => {
                let c = r.creator.expect("objects have creators");
                return owner_verdict(&format!("manager {m}: owner pid {}", c.pid), c.alive);
            }
            Some(_) => return Err(format!("manager {m}: its root {root} is unreadable")),
            // No root (being created, or already half removed): judged as any object.
            None => {}
        }
    }
    match e.class {
        Class::Object => {}
        Class::ShareableList | Class::Cpython => {
            return Err("CPython segment: no creator recorded".into());
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
/// as controls and roots of those inside).
pub fn gc(dry_run: bool, prefix: &str) -> std::io::Result<GcReport> {
    let entries = scan::scan()?;
    let all: HashMap<&str, &Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let mut doomed = Vec::new();
    for e in entries.iter().filter(|e| e.name.starts_with(prefix)) {
        match judge(e, &all, 0) {
            Ok(reason) => doomed.push((e, reason)),
            Err(reason) if e.class == Class::Object => report.kept.push(Verdict {
                name: e.name.clone(),
                reason,
            }),
            Err(_) => {}
        }
    }
    // Manager roots and control objects last: while they exist they keep judging the
    // rest (for a gc running at the same time, or after this one is interrupted).
    doomed.sort_by_key(|(e, _)| {
        let is_root = scan::manager_of(&e.name).is_some_and(|m| scan::manager_root(m) == e.name);
        (is_root, e.data_of.is_none(), e.name.clone())
    });
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
    Ok(report)
}

/// Unlinks `e` unless its header changed since the scan (a new object under the name).
fn remove_checked(e: &Entry) -> Result<(), String> {
    let same = match Object::inspect(&e.name) {
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
