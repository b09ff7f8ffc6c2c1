//! The `shm` command's listings at scale and in what they say: `ls` and `inspect`
//! read each manager's registry once (linear in arena objects), short type names
//! that fit a terminal, arena rows judged by the manager's owner, and `rm` of a
//! manager.

use std::time::{Duration, Instant};

mod common;

use common::{PrefixGuard, shm, shm_json, shm_ok};
use serde_json::Value as Json;
use shm_core::testing::unique_name;
use shm_manager::{ManagerOptions, SharedMemoryManager};

/// A manager of this process with its tracker off, and a guard that removes what it
/// leaves even when the test fails.
fn manager(tag: &str) -> (SharedMemoryManager, PrefixGuard) {
    let m = ManagerOptions::new()
        .name(unique_name(tag))
        .tracker(false)
        .create()
        .unwrap();
    let guard = PrefixGuard(m.root_name().to_owned());
    (m, guard)
}

/// Runs `shm args` counting registry reads; returns its stdout and the count.
fn shm_counting(args: &[&str]) -> (String, usize) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .env("SHM_DEBUG_REGISTRY_READS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "shm {args:?}: {err}\n{out}");
    let reads = err
        .lines()
        .find_map(|l| l.strip_prefix("shm: registry reads: "))
        .unwrap_or_else(|| panic!("no count on stderr: {err}"))
        .parse()
        .unwrap();
    (out, reads)
}

/// Whether `name` is a manager root (`shm-rs.m.NAME`, no further dot).
fn is_root(name: &str) -> bool {
    name.strip_prefix("shm-rs.m.")
        .is_some_and(|m| !m.is_empty() && !m.contains('.'))
}

#[test]
fn ls_and_inspect_read_each_registry_once_at_ten_thousand_objects() {
    const N: usize = 10_000;
    let (m, _guard) = manager("cli-scale");
    let keep: Vec<_> = (0..N)
        .map(|i| m.value(&format!("v{i}"), i as u64).unwrap())
        .collect();

    let start = Instant::now();
    let (out, reads) = shm_counting(&["ls", "--json"]);
    let took = start.elapsed();
    let v: Json = serde_json::from_str(&out).unwrap();
    let rows = v["entries"].as_array().unwrap();
    let ours = rows
        .iter()
        .filter(|e| {
            e["arena"]
                .as_str()
                .is_some_and(|a| a.starts_with(m.root_name()))
        })
        .count();
    assert_eq!(ours, N, "one row per arena object");
    // Other tests' managers may be listed too: one read per root listed, none per object.
    let roots = rows
        .iter()
        .filter(|e| e["class"] == "object" && is_root(e["name"].as_str().unwrap()))
        .count();
    assert_eq!(reads, roots, "ls reads each registry once");
    assert!(took < Duration::from_secs(20), "ls took {took:?}");

    let start = Instant::now();
    let (out, reads) = shm_counting(&["inspect", m.root_name(), "--json"]);
    let took = start.elapsed();
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["contents"]["keys"], N);
    assert_eq!(reads, 1, "inspect of a root reads its registry once");
    assert!(took < Duration::from_secs(20), "inspect took {took:?}");
    let arena = format!("{}.a0", m.root_name());
    let (_, reads) = shm_counting(&["inspect", &arena, "--json"]);
    assert_eq!(reads, 1, "inspect of an arena reads the registry once");
    drop(keep);
    m.shutdown().unwrap();
}

/// A manager named as a user would (short), with one object of each common kind.
fn typical_manager() -> (SharedMemoryManager, PrefixGuard) {
    let name = format!("w{:08x}", shm_core::testing::random_u32());
    let m = ManagerOptions::new()
        .name(&name)
        .tracker(false)
        .create()
        .unwrap();
    let guard = PrefixGuard(m.root_name().to_owned());
    m.value("counter", 7u64).unwrap();
    m.lock("db").unwrap();
    m.rlock("re").unwrap();
    m.mutex("guarded", 1u32).unwrap();
    m.event("go").unwrap();
    m.condition("cond", 0u32).unwrap();
    m.rwlock("table", 0u64).unwrap();
    let d = m.dict::<String, u64>("scores").unwrap();
    d.insert("ann".into(), 3).unwrap();
    m.vec::<String>("names")
        .unwrap()
        .push("bo".to_owned())
        .unwrap();
    m.queue::<String>("jobs", 64, 4096).unwrap();
    (m, guard)
}

#[test]
fn ls_fits_a_terminal_with_short_type_names() {
    let (m, _guard) = typical_manager();
    let text = shm_ok(&["ls", m.root_name()]);
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 100, "{widest} columns:\n{text}");
    let row = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().any(|w| w == key))
            .unwrap_or_else(|| panic!("no row for {key}:\n{text}"))
            .to_owned()
    };
    assert!(row("scores").contains("Dict<String, u64>"), "{text}");
    assert!(row("names").contains("Vec<String>"), "{text}");
    assert!(row("counter").contains("Value<u64>"), "{text}");
    assert!(row("db").contains("Lock "), "{text}");
    assert!(!row("db").contains("Mutex"), "{text}");
    assert!(row("guarded").contains("Mutex<u32>"), "{text}");
    assert!(!text.contains("alloc::"), "{text}");
    // Arena rows are judged by the manager's owner: this process, alive.
    for key in ["counter", "db", "go", "cond"] {
        let r = row(key);
        assert!(r.contains(&std::process::id().to_string()), "{r}");
        assert!(r.contains(" alive "), "{r}");
    }
    let v = shm_json(&["ls", m.root_name(), "--json"]);
    let rows = v["entries"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|e| e["name"].as_str().unwrap().starts_with(m.root_name()))
    );
    let scores = rows.iter().find(|e| e["key"] == "scores").unwrap();
    assert_eq!(scores["type"], "Dict<String, u64>");
    for e in rows.iter().filter(|e| e["arena"].is_string()) {
        assert_eq!(e["creator"]["alive"], "alive", "{e}");
    }
    let r = shm_json(&["inspect", scores["name"].as_str().unwrap(), "--json"]);
    assert_eq!(r["header"]["type"], "Dict<String, u64>");
    let counter = rows.iter().find(|e| e["key"] == "counter").unwrap();
    let r = shm_json(&["inspect", counter["name"].as_str().unwrap(), "--json"]);
    assert_eq!(r["header"]["creator"]["alive"], "alive", "{r}");
    assert_eq!(r["header"]["creator"]["pid"], std::process::id());
    m.shutdown().unwrap();
}

const MANAGER_VAR: &str = "SHM_CLI_LISTING_MANAGER";

/// Child role: makes a manager (tracker off) with a raw segment and a dict, then
/// exits without shutting it down, leaving a manager whose owner is dead.
fn leave_manager() {
    let name = std::env::var(MANAGER_VAR).unwrap();
    let m = ManagerOptions::new()
        .name(&name)
        .tracker(false)
        .create()
        .unwrap();
    m.value("v", 1u8).unwrap();
    let s = m.segment(4096).unwrap();
    println!("{}", s.name().unwrap());
    std::mem::forget(m);
    std::process::exit(0);
}

#[test]
fn rm_of_a_manager_needs_force_while_its_owner_lives() {
    if shm_core::testing::child_role().is_some() {
        return leave_manager();
    }
    let (m, _guard) = manager("cli-rm-live");
    let root = m.root_name().to_owned();
    let raw = m.segment(4096).unwrap();
    let raw_name = raw.name().unwrap().to_owned();
    let o = shm(&["rm", &root]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("alive") && err.contains("--force"), "{err}");
    assert!(common::tracked(&root).contains(&root), "nothing removed");
    // The root takes its segments first; naming one of them too is no failure.
    let v = shm_json(&["rm", "--force", "--json", &root, &raw_name]);
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        removed.contains(&root.as_str()) && removed.contains(&raw_name.as_str()),
        "{v}"
    );
    assert_eq!(v["failed"], serde_json::json!([]));
    assert_eq!(common::tracked(&root), Vec::<String>::new());
    drop(raw);
    std::mem::forget(m);

    // A dead owner's manager goes without --force.
    let name = unique_name("cli-rm-dead");
    let dead_root = format!("shm-rs.m.{name}");
    let _dead_guard = PrefixGuard(dead_root.clone());
    let out = shm_core::testing::child_command(
        "rm_of_a_manager_needs_force_while_its_owner_lives",
        "leave",
    )
    .env(MANAGER_VAR, &name)
    .status()
    .unwrap();
    assert!(out.success());
    assert!(common::tracked(&dead_root).len() >= 3);
    let text = shm_ok(&["rm", &dead_root]);
    assert!(text.contains(&format!("removed {dead_root}")), "{text}");
    assert_eq!(common::tracked(&dead_root), Vec::<String>::new());
}

#[test]
fn lists_and_raw_segments_of_a_manager_are_recognised() {
    use shm_collections::{Item, ShareableList};
    let (m, _guard) = manager("cli-lists");
    // CPython-format lists (`m.list()`, to be named `m.shareable_list()`).
    let row: ShareableList = m
        .get_or_create("row", (0..8).map(Item::Int).collect::<Vec<_>>())
        .unwrap();
    let empty: ShareableList = m.get_or_create("empty", Vec::new()).unwrap();
    let raw = m.segment(4096).unwrap();
    let raw_name = raw.name().unwrap().to_owned();
    let row_name = row.name().unwrap().to_owned();
    let empty_name = empty.name().unwrap().to_owned();

    // inspect of the root: the lists' states, no error.
    let v = shm_json(&["inspect", m.root_name(), "--json"]);
    let entries = v["contents"]["entries"].as_array().unwrap();
    let entry = |k: &str| entries.iter().find(|e| e["key"] == k).unwrap().clone();
    assert!(entry("row")["error"].is_null(), "{v}");
    assert_eq!(
        entry("row")["state"],
        "8 items (ShareableList, CPython format)"
    );
    assert_eq!(
        entry("empty")["state"],
        "0 items (ShareableList, CPython format)"
    );
    assert!(!shm_ok(&["inspect", m.root_name()]).contains("error"));

    // ls: the empty list is a list, the raw segment the manager's.
    let v = shm_json(&["ls", m.root_name(), "--json"]);
    let rows = v["entries"].as_array().unwrap();
    let by_name = |n: &str| rows.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(by_name(&row_name)["class"], "shareable_list");
    assert_eq!(by_name(&empty_name)["class"], "shareable_list");
    assert_eq!(by_name(&empty_name)["items"], 0);
    assert_eq!(by_name(&raw_name)["class"], "raw");
    assert_eq!(by_name(&raw_name)["owner"]["alive"], "alive");
    // inspect succeeds on each.
    for n in [&row_name, &empty_name, &raw_name] {
        let o = shm(&["inspect", n]);
        assert!(
            o.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let r = shm_json(&["inspect", &raw_name, "--json"]);
    assert_eq!(r["class"], "raw");
    assert!(
        r["contents"]["reason"]
            .as_str()
            .unwrap()
            .contains("raw segment of manager"),
        "{r}"
    );
    // An all-zero segment of another length is still no list.
    let zeros = shm_core::SegmentOptions::new()
        .name(unique_name("cli-zeros"))
        .create(64)
        .unwrap();
    let o = shm(&["inspect", zeros.name().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    drop((row, empty, raw, zeros));
    m.shutdown().unwrap();
}

#[test]
fn condition_and_rwlock_show_their_state_and_data() {
    let (m, _guard) = manager("cli-locks");
    let cond = m.condition("cond", 41u32).unwrap();
    let table = m.rwlock("table", 7u64).unwrap();
    let lock = m.lock("db").unwrap();
    let at = |key: &str| m.entry(key).unwrap().unwrap().location;

    let c = shm_json(&["inspect", &at("cond"), "--json"])["contents"].clone();
    assert_eq!(c["view"], "condition", "{c}");
    assert_eq!(c["lock"]["locked"], false);
    assert_eq!(c["waiters"], 0);
    assert_eq!(c["value"], 41);
    let held = cond.lock().unwrap();
    let c = shm_json(&["inspect", &at("cond"), "--json"])["contents"].clone();
    assert_eq!(c["lock"]["locked"], true, "{c}");
    assert_eq!(c["lock"]["holder"]["pid"], std::process::id());
    drop(held);

    let r = shm_json(&["inspect", &at("table"), "--json"])["contents"].clone();
    assert_eq!(r["view"], "rw_lock", "{r}");
    assert_eq!(
        (r["readers"].as_u64(), r["value"].as_u64()),
        (Some(0), Some(7))
    );
    assert_eq!(r["slots"], 64);
    let g1 = table.read().unwrap();
    let g2 = table.read().unwrap();
    let r = shm_json(&["inspect", &at("table"), "--json"])["contents"].clone();
    assert_eq!(r["readers"], 2, "{r}");
    drop((g1, g2));
    let w = table.write().unwrap();
    let text = shm_ok(&["inspect", &at("table")]);
    assert!(text.contains("write-locked by tid"), "{text}");
    drop(w);

    // The root's keys: one line of state each, a Lock named Lock.
    let text = shm_ok(&["inspect", m.root_name()]);
    assert!(text.contains("Condition<u32> at"), "{text}");
    assert!(text.contains("unlocked, 0 waiting, value 41"), "{text}");
    assert!(text.contains("0 readers, value 7"), "{text}");
    assert!(text.contains("\"db\": Lock at"), "{text}");
    drop((cond, table, lock));
    m.shutdown().unwrap();
}

#[test]
fn a_listing_during_growth_shows_the_dicts_segments_as_its_own() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (m, _guard) = manager("cli-grow");
    let d = m.dict::<String, u64>("big").unwrap();
    let control = m.entry("big").unwrap().unwrap().location;
    // A data segment being made under the O_EXCL fallback: named, no header yet.
    let current = shm_collections::region::current_data_segment(&control).unwrap();
    let parsed = shm_collections::region::parse_data_segment_name(&current).unwrap();
    let pending_name = shm_collections::region::data_segment_name(
        &control,
        parsed.incarnation,
        parsed.generation + 1000,
    );
    let pending = shm_core::SegmentOptions::new()
        .name(pending_name.as_str())
        .create(4096)
        .unwrap();

    let stop = AtomicBool::new(false);
    let mut listings = 0;
    let mut bad = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Keys grow the dict, overwrites make garbage: growth after growth.
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                d.insert(format!("k{}", i % 20_000), i).unwrap();
                i += 1;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline || listings < 10 {
            let v = shm_json(&["ls", m.root_name(), "--json"]);
            listings += 1;
            for e in v["entries"].as_array().unwrap() {
                let name = e["name"].as_str().unwrap();
                if name.starts_with(&control) && name != control {
                    let ok = e["data_of"] == control.as_str()
                        && (e["class"] == "object" || e["class"] == "pending");
                    if !ok {
                        bad.push(e.clone());
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        bad.is_empty(),
        "{} listings, not the dict's: {bad:#?}",
        listings
    );
    assert!(d.len().unwrap() > 1000, "the dict grew");
    let v = shm_json(&["ls", &pending_name, "--json"]);
    assert_eq!(v["entries"][0]["class"], "pending", "{v}");
    assert_eq!(v["entries"][0]["data_of"], control.as_str());
    drop(pending);
    drop(d);
    m.shutdown().unwrap();
}

#[test]
fn type_errors_print_short_type_names() {
    use shm_collections::ShareableDict;
    let name = unique_name("cli-typeerr");
    let _guard = PrefixGuard(name.clone());
    let d = ShareableDict::<String, u64>::create_named(&name).unwrap();
    let e = ShareableDict::<String, Option<Vec<u8>>>::open(&name)
        .map(|_| ())
        .expect_err("another type")
        .to_string();
    assert!(!e.contains("alloc::") && !e.contains("core::"), "{e}");
    assert!(e.contains("Dict<String, u64>"), "{e}");
    assert!(e.contains("Dict<String, Option<Vec<u8>>>"), "{e}");
    drop(d);
}

const DICT_VAR: &str = "SHM_CLI_LISTING_DICT";

#[test]
fn gc_removes_a_dead_dicts_half_made_data_segment() {
    if shm_core::testing::child_role().is_some() {
        // A dict whose creator exits without removing it.
        let name = std::env::var(DICT_VAR).unwrap();
        let mut d = shm_collections::ShareableDict::<u64, u64>::create_named(&name).unwrap();
        d.set_unlink_on_drop(false);
        std::mem::forget(d);
        std::process::exit(0);
    }
    let name = unique_name("cli-halfmade");
    let _guard = PrefixGuard(name.clone());
    let out =
        shm_core::testing::child_command("gc_removes_a_dead_dicts_half_made_data_segment", "dict")
            .env(DICT_VAR, &name)
            .status()
            .unwrap();
    assert!(out.success());
    let current = shm_collections::region::current_data_segment(&name).unwrap();
    let parsed = shm_collections::region::parse_data_segment_name(&current).unwrap();
    // The next generation, created (O_EXCL) by a writer killed before its header.
    let half = shm_collections::region::data_segment_name(
        &name,
        parsed.incarnation,
        parsed.generation + 1,
    );
    let mut seg = shm_core::SegmentOptions::new()
        .name(half.as_str())
        .create(4096)
        .unwrap();
    seg.set_unlink_on_drop(false);
    let v = shm_json(&["gc", "--dry-run", "--json", "--prefix", &name]);
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(removed.contains(&half.as_str()), "{v}");
    assert!(removed.contains(&name.as_str()), "{v}");
    shm_ok(&["gc", "--prefix", &name]);
    assert_eq!(common::tracked(&name), Vec::<String>::new());
}
