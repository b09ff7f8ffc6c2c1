//! `shm inspect` for people: the text of a [`Report`], and the one-line state of an
//! object that a registry's keys show.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::report::{Contents, KeyView, LockView, Report};
use crate::decode::show;
use crate::scan;

/// The report for people.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    kv("name", r.name.clone());
    kv("size", format!("{} bytes", r.size));
    match &r.header {
        Some(h) => {
            kv(
                "kind",
                format!(
                    "{} ({:#x}), layout version {}",
                    h.kind, h.kind_id, h.version
                ),
            );
            kv(
                "type",
                format!(
                    "{}{} (size {}, align {}, tag {})",
                    h.type_name,
                    // A name cut short by the header's field.
                    if h.type_name.matches('<').count() > h.type_name.matches('>').count() {
                        "…"
                    } else {
                        ""
                    },
                    h.elem_size,
                    h.elem_align,
                    h.type_tag
                ),
            );
            kv(
                "length",
                format!("{} bytes (header and payload)", h.total_len),
            );
            kv(
                "creator",
                format!(
                    "pid {} ({}), token {:#x}, pidns {}",
                    h.creator.pid, h.creator.alive, h.creator.token, h.creator.pidns
                ),
            );
            kv("created", format!("{} (Unix time)", h.created));
            kv(
                "flags",
                if h.flags.is_empty() {
                    "-".into()
                } else {
                    h.flags.join(",")
                },
            );
            kv("generation", h.generation.to_string());
            kv("initialised", h.initialised.to_string());
            if let Some(m) = &h.manager {
                kv("manager", m.clone());
            }
            if let Some(d) = &h.data_of {
                kv("data of", d.clone());
            }
        }
        None => kv("kind", r.kind.clone()),
    }
    if let Some(c) = &r.contents {
        render_contents(&mut o, c);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "error:        {e}");
    }
    o
}

fn render_contents(o: &mut String, c: &Contents) {
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(o, "{:<14}{v}", format!("{k}:"));
    };
    match c {
        Contents::Lock(l) => kv("state", lock_line(l)),
        Contents::Condition {
            lock,
            waiters,
            value,
            data_hex,
        } => {
            kv("lock", lock_line(lock));
            kv("waiting", waiters.to_string());
            if let Some(d) = data_part(value.as_ref(), data_hex).strip_prefix(", ") {
                kv("data", d.to_owned());
            }
        }
        Contents::RwLock {
            writer,
            readers,
            slots,
            value,
            data_hex,
        } => {
            kv("state", rw_line(writer, *readers));
            kv("slots", format!("{readers} of {slots} reader slots held"));
            if let Some(d) = data_part(value.as_ref(), data_hex).strip_prefix(", ") {
                kv("data", d.to_owned());
            }
        }
        Contents::Event { set } => kv("state", if *set { "set".into() } else { "clear".into() }),
        Contents::Semaphore { value, max } => kv(
            "value",
            match max {
                Some(m) => format!("{value} (bound {m})"),
                None => value.to_string(),
            },
        ),
        Contents::Barrier {
            parties,
            waiting,
            broken,
        } => kv(
            "parties",
            format!(
                "{parties}, {waiting} waiting{}",
                if *broken { ", broken" } else { "" }
            ),
        ),
        Contents::Queue {
            depth,
            capacity,
            max_message_len,
            closed,
            bytes_used,
            puts,
            gets,
            recovered,
            lost,
            unfinished_tasks,
        } => {
            kv(
                "depth",
                format!("{depth} of {capacity} messages ({bytes_used} ring bytes used)"),
            );
            kv("max message", format!("{max_message_len} bytes"));
            kv("closed", closed.to_string());
            kv(
                "stats",
                format!("{puts} puts, {gets} gets, {recovered} recovered, {lost} lost"),
            );
            if let Some(n) = unfinished_tasks {
                kv("unfinished", n.to_string());
            }
        }
        Contents::Collection {
            entries,
            bytes_used,
            capacity,
            slots,
            generation,
            garbage,
            shown,
        } => {
            kv("entries", entries.to_string());
            kv(
                "storage",
                format!(
                    "{bytes_used} of {capacity} bytes used, {garbage} garbage, {slots} slots, generation {generation}"
                ),
            );
            for (i, r) in shown.iter().enumerate() {
                let v = r
                    .value
                    .as_ref()
                    .map_or_else(|| format!("0x{}", r.value_hex), show);
                let v = match &r.value_type {
                    Some(t) => format!("{v}: {t}"),
                    None => v,
                };
                let line = if r.key_hex.is_empty() && r.key.is_none() {
                    format!("  [{i}] {v}")
                } else {
                    let k = r
                        .key
                        .as_ref()
                        .map_or_else(|| format!("0x{}", r.key_hex), show);
                    format!("  {k} => {v}")
                };
                let _ = writeln!(o, "{line}");
            }
            if (shown.len() as u64) < *entries {
                let _ = writeln!(o, "  ... ({} more)", entries - shown.len() as u64);
            }
        }
        Contents::Cell {
            len,
            elem_size,
            values,
            data_hex,
            lock,
        } => {
            kv("elements", format!("{len} of {elem_size} bytes"));
            match values {
                Some(v) => kv("value", v.iter().map(show).collect::<Vec<_>>().join(", ")),
                None => kv("bytes", format!("0x{data_hex}")),
            }
            if let Some(l) = lock {
                kv("lock", lock_line(l));
            }
        }
        Contents::ShareableList { items } => {
            kv("items", items.len().to_string());
            for (i, it) in items.iter().enumerate() {
                let _ = writeln!(o, "  [{i}] {} ({})", it.repr, it.type_name);
            }
        }
        Contents::Data { control } => kv(
            "data of",
            control
                .clone()
                .unwrap_or_else(|| "(name does not follow X.g<hex>.<16 hex>)".into()),
        ),
        Contents::Registry {
            owner,
            keys,
            entries,
            ..
        } => {
            // The header's lines already name the manager.
            kv("owner", format!("pid {} ({})", owner.pid, owner.alive));
            kv("keys", keys.to_string());
            for k in entries {
                let _ = writeln!(o, "{}", key_line(k));
            }
        }
        Contents::Arena {
            used,
            capacity,
            objects,
        } => {
            kv("used", format!("{used} of {capacity} bytes"));
            kv("objects", format!("{} registered", objects.len()));
            for k in objects {
                let _ = writeln!(o, "{}", key_line(k));
            }
        }
        Contents::None { reason } => kv("contents", reason.clone()),
    }
}

/// A one-line summary of contents (for the keys of a registry).
pub fn one_line(c: &Contents) -> String {
    match c {
        Contents::Lock(l) => lock_line(l),
        Contents::Condition {
            lock,
            waiters,
            value,
            data_hex,
        } => format!(
            "{}, {waiters} waiting{}",
            lock_line(lock),
            data_part(value.as_ref(), data_hex)
        ),
        Contents::RwLock {
            writer,
            readers,
            value,
            data_hex,
            ..
        } => format!(
            "{}{}",
            rw_line(writer, *readers),
            data_part(value.as_ref(), data_hex)
        ),
        Contents::Event { set } => if *set { "set" } else { "clear" }.into(),
        Contents::Semaphore { value, max } => match max {
            Some(m) => format!("value {value} (bound {m})"),
            None => format!("value {value}"),
        },
        Contents::Barrier {
            parties,
            waiting,
            broken,
        } => format!(
            "{waiting} of {parties} waiting{}",
            if *broken { ", broken" } else { "" }
        ),
        Contents::Queue {
            depth,
            capacity,
            closed,
            ..
        } => format!(
            "{depth} of {capacity} messages{}",
            if *closed { ", closed" } else { "" }
        ),
        Contents::Collection { entries, .. } => format!("{entries} entries"),
        Contents::Cell {
            len,
            values,
            data_hex,
            lock,
            ..
        } => {
            let v = match values {
                Some(v) if *len == 1 => v.first().map_or_else(String::new, show),
                Some(v) => {
                    let shown: Vec<String> = v.iter().map(show).collect();
                    let more = if (v.len() as u64) < *len { ", ..." } else { "" };
                    format!("[{}{more}] ({len} elements)", shown.join(", "))
                }
                None => format!("0x{data_hex}"),
            };
            match lock {
                Some(l) => format!("{v}, lock {}", lock_line(l)),
                None => v,
            }
        }
        Contents::ShareableList { items } => format!("{} items", items.len()),
        Contents::Data { .. } => "data segment".into(),
        Contents::Registry { keys, .. } => format!("{keys} keys"),
        Contents::Arena { used, capacity, .. } => format!("{used} of {capacity} bytes used"),
        Contents::None { reason } => reason.clone(),
    }
}

/// `, value V` (or the bytes) of a lock's data; nothing for no data.
fn data_part(value: Option<&Json>, data_hex: &str) -> String {
    match value {
        Some(v) => format!(", value {}", show(v)),
        None if data_hex.is_empty() => String::new(),
        None => format!(", data 0x{data_hex}"),
    }
}

/// An RwLock's state in words.
fn rw_line(writer: &LockView, readers: u32) -> String {
    if writer.locked && readers == 0 {
        format!("write-{}", lock_line(writer))
    } else if writer.locked {
        // The writers' mutex is held by a writer waiting for the readers to leave.
        format!(
            "{readers} readers, a writer waiting ({})",
            lock_line(writer)
        )
    } else {
        format!("{readers} readers")
    }
}

fn key_line(k: &KeyView) -> String {
    let state = match (&k.state, &k.error) {
        (_, Some(e)) => format!("error: {e}"),
        (Some(s), None) => s.clone(),
        (None, None) => String::new(),
    };
    let keep = if k.keep { " (keep)" } else { "" };
    format!(
        "  {:?}: {} at {}{keep}: {state}",
        k.key,
        scan::kind_with_type(&k.kind, &k.type_name),
        k.location
    )
}

fn lock_line(l: &LockView) -> String {
    let mut s = if l.locked {
        "locked".to_owned()
    } else {
        "unlocked".to_owned()
    };
    if let Some(h) = &l.holder {
        let pid = h.pid.map_or(String::new(), |p| format!(" of pid {p}"));
        let _ = write!(s, " by tid {}{pid} ({})", h.tid, h.alive);
    }
    if l.owner_died {
        s.push_str(", owner died (inconsistent)");
    }
    if l.waiters {
        s.push_str(", waiters");
    }
    s
}
