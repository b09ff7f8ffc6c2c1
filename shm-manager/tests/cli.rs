//! The `shm` command against real segments made here, by child processes and by
//! CPython, in text and JSON.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

mod common;

use common::{shm, shm_json, shm_ok};
use serde_json::Value as Json;
use shm_collections::{Queue, ShareableDict, Value};
use shm_core::testing::{UnlinkGuard, child_command, child_role, pythons, run_child, unique_name};
use shm_core::{Segment, SegmentOptions, SharedObject};
use shm_sync::Lock;

const NAME_VAR: &str = "SHM_CLI_TEST_NAME";

/// The `shm ls --json` row of `name`.
fn ls_entry(name: &str) -> Json {
    let all = shm_json(&["ls", "--json"]);
    all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in shm ls --json"))
        .clone()
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Kills and reaps a child when dropped (also when the test fails).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Child roles, run by re-running this test binary (never fork in the harness).
fn child_work(role: &str) {
    let name = std::env::var(NAME_VAR).expect("name for the child");
    match role {
        "hold_lock" => {
            let lock = Lock::open(&name).unwrap();
            let _g = lock.lock().unwrap();
            println!("locked");
            // Hold it until the parent closes our stdin (or kills us).
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "die_holding_lock" => {
            let lock = Lock::open(&name).unwrap();
            std::mem::forget(lock.lock().unwrap());
        }
        "create_value_and_exit" => {
            let mut v = Value::create_named(&name, 7u64).unwrap();
            v.set_unlink_on_drop(false);
        }
        "create_kept_value_and_exit" => {
            let mut v = Value::create_named(&name, 8u64).unwrap();
            v.object().set_flags(shm_core::Flags::KEEP, true);
            v.set_unlink_on_drop(false);
        }
        "create_manager_root_and_exit" => {
            let mut d = ShareableDict::<String, String>::create_named(&name).unwrap();
            d.insert("counter".into(), "o1".into()).unwrap();
            d.set_unlink_on_drop(false);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn value_in_text_and_json() {
    let name = unique_name("cli-value");
    let _v = Value::create_named(&name, 42u64).unwrap();
    let text = shm_ok(&["ls"]);
    let row = text.lines().find(|l| l.starts_with(&name)).expect("a row");
    assert!(row.contains("Value") && row.contains("alive"), "{row}");
    assert!(text.lines().next().unwrap().starts_with("NAME"));

    // This process used a lock (the Value's), so the namespace registry exists.
    let all = shm_json(&["ls", "--json"]);
    let registry = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().starts_with("shm-rs-pidns-"));
    if shm_core::identity::pidns_index() != 0 {
        assert_eq!(registry.expect("the registry")["class"], "pidns_registry");
    }

    let e = ls_entry(&name);
    assert_eq!(e["class"], "object");
    assert_eq!(e["kind"], "Value");
    assert_eq!(e["type"], "Value<u64>");
    assert_eq!(e["creator"]["pid"], std::process::id());
    assert_eq!(e["creator"]["alive"], "alive");
    assert_eq!(e["generation"], 0);

    let r = shm_json(&["inspect", &name, "--json"]);
    assert_eq!(r["header"]["kind"], "Value");
    assert_eq!(r["contents"]["view"], "cell");
    assert_eq!(r["contents"]["values"][0], 42);
    assert_eq!(r["contents"]["lock"]["locked"], false);
    let text = shm_ok(&["inspect", &name]);
    assert!(text.contains("value:") && text.contains("42"), "{text}");
}

#[test]
fn lock_held_by_a_live_child() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    let name = unique_name("cli-lock-live");
    let lock = Lock::create_named(&name).unwrap();
    let mut cmd = child_command("lock_held_by_a_live_child", "hold_lock");
    cmd.env(NAME_VAR, &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    // The harness may print before the role's output: read up to our marker.
    while !line.contains("locked") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended early");
    }
    let r = shm_json(&["inspect", &name, "--json"]);
    let c = &r["contents"];
    assert_eq!(c["view"], "lock");
    assert_eq!(c["locked"], true);
    assert_eq!(c["owner_died"], false);
    assert_eq!(c["holder"]["alive"], "alive");
    assert_eq!(c["holder"]["pid"], child.0.id());
    let text = shm_ok(&["inspect", &name]);
    assert!(text.contains("locked by tid"), "{text}");
    assert!(text.contains("(alive)"), "{text}");
    drop(child);
    drop(lock);
}

#[test]
fn lock_whose_holder_died() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    let name = unique_name("cli-lock-dead");
    let _lock = Lock::create_named(&name).unwrap();
    run_child(
        "lock_whose_holder_died",
        "die_holding_lock",
        &[(NAME_VAR, &name)],
    );
    let r = shm_json(&["inspect", &name, "--json"]);
    let c = &r["contents"];
    assert_eq!(c["locked"], true);
    if shm_core::identity::pidns_index() != 0 {
        assert_eq!(c["holder"]["alive"], "dead");
        assert!(shm_ok(&["inspect", &name]).contains("(dead)"));
    }
    assert_eq!(c["holder"]["pid"], Json::Null, "no pid for a dead holder");
}

#[test]
fn dict_with_entries() {
    let name = unique_name("cli-dict");
    let d = ShareableDict::<String, u64>::create_named(&name).unwrap();
    d.extend([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)])
        .unwrap();
    let r = shm_json(&["inspect", &name, "--json"]);
    let c = &r["contents"];
    assert_eq!(c["view"], "collection");
    assert_eq!(c["entries"], 3);
    let shown = c["shown"].as_array().unwrap();
    assert_eq!(shown.len(), 3);
    let b = shown.iter().find(|e| e["key"] == "b").expect("key b");
    assert_eq!(b["value"], 2);
    let text = shm_ok(&["inspect", &name]);
    assert!(text.contains("\"b\" => 2"), "{text}");
    let limited = shm_json(&["inspect", &name, "--json", "--max", "1"]);
    assert_eq!(limited["contents"]["shown"].as_array().unwrap().len(), 1);
    // A namespace's attributes carry their type names: values decode by them.
    let ns_name = unique_name("cli-ns");
    let ns = shm_collections::Namespace::create_named(&ns_name).unwrap();
    ns.set("answer", &42u64).unwrap();
    ns.set("greeting", &"hi").unwrap();
    let shown = shm_json(&["inspect", &ns_name, "--json"])["contents"]["shown"].clone();
    let answer = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "answer")
        .unwrap();
    assert_eq!(
        (answer["value"].as_u64(), answer["value_type"].as_str()),
        (Some(42), Some("u64"))
    );
    let greeting = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "greeting")
        .unwrap();
    assert_eq!(greeting["value"], "hi");
    // Its data segment is listed as belonging to it.
    let data = ls_entry(&shm_collections::region::current_data_segment(&name).unwrap());
    assert_eq!(data["data_of"], name.as_str());
}

#[test]
fn queue_with_messages() {
    let name = unique_name("cli-queue");
    let q: Queue<String> = <Queue<String> as SharedObject>::create_with(
        &SegmentOptions::new().name(&name),
        shm_collections::QueueSize {
            messages: 8,
            bytes: 1024,
        },
    )
    .unwrap();
    for m in ["x", "y", "z"] {
        q.put(&m.to_string()).unwrap();
    }
    let c = shm_json(&["inspect", &name, "--json"])["contents"].clone();
    assert_eq!(c["view"], "queue");
    assert_eq!(
        (c["depth"].as_u64(), c["capacity"].as_u64()),
        (Some(3), Some(8))
    );
    assert_eq!(c["closed"], false);
    assert_eq!(c["puts"], 3);
    q.close();
    let c = shm_json(&["inspect", &name, "--json"])["contents"].clone();
    assert_eq!(c["closed"], true);
    assert!(shm_ok(&["inspect", &name]).contains("3 of 8 messages"));
}

#[test]
fn shareable_list_made_by_cpython() {
    let python = pythons().remove(0); // panics when python3 is missing: fail, not skip
    let name = unique_name("cli-pylist");
    let _guard = UnlinkGuard::new(&name);
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(["héllo", 42, 2.5, None, True, b"\x01\x02"], name=sys.argv[1])
# Keep the segment after exit: the resource tracker would unlink what we created.
resource_tracker.unregister(sl.shm._name, "shared_memory")
sl.shm.close()
"#;
    shm_core::testing::run_python(&python, script, &[&name]);
    let e = ls_entry(&name);
    assert_eq!(e["class"], "shareable_list");
    assert_eq!(e["items"], 6);
    assert_eq!(e["kind"], "ShareableList (CPython), 6 items");
    let r = shm_json(&["inspect", &name, "--json"]);
    let items = r["contents"]["items"].as_array().unwrap();
    assert_eq!(r["contents"]["view"], "shareable_list");
    assert_eq!(items[0]["value"], "héllo");
    assert_eq!(
        (items[1]["type"].as_str(), items[1]["value"].as_i64()),
        (Some("int"), Some(42))
    );
    assert_eq!(items[2]["value"], 2.5);
    assert_eq!(items[3]["type"], "NoneType");
    assert_eq!(items[4]["value"], true);
    assert_eq!(items[5]["value"], "0102");
    let text = shm_ok(&["inspect", &name]);
    assert!(text.contains("[0] 'héllo' (str)"), "{text}");

    // A raw psm_ segment is CPython's too, but no list; a non-psm_ one is foreign.
    let raw = Segment::create(64).unwrap();
    raw.write_at(0, &[0xff; 64]).unwrap();
    let raw_name = raw.name().unwrap().to_owned();
    assert_eq!(ls_entry(&raw_name)["class"], "cpython");
    // All zeros would parse as an empty list: still a raw segment.
    let zeros = Segment::create(64).unwrap();
    assert_eq!(ls_entry(zeros.name().unwrap())["class"], "cpython");
    let foreign = unique_name("cli-foreign");
    let seg = Segment::create_named(&foreign, 64).unwrap();
    seg.write_at(0, &[0xff; 64]).unwrap();
    assert_eq!(ls_entry(&foreign)["class"], "foreign");
    let o = shm(&["inspect", &foreign]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("foreign segment"));
    // gc leaves CPython's and foreign segments alone.
    for n in [&name, &raw_name, &foreign] {
        shm_ok(&["gc", "--prefix", n]);
        assert!(exists(n), "{n} was removed by gc");
    }
}

#[test]
fn rm_removes_segments_and_data_segments() {
    let v = unique_name("cli-rm-value");
    let d = unique_name("cli-rm-dict");
    let _g = [v.as_str(), d.as_str()].map(UnlinkGuard::new);
    let mut value = Value::create_named(&v, 1u32).unwrap();
    value.set_unlink_on_drop(false);
    let mut dict = ShareableDict::<u64, u64>::create_named(&d).unwrap();
    dict.set_unlink_on_drop(false);
    let data = shm_collections::region::current_data_segment(&d).unwrap();
    let _gd = UnlinkGuard::new(data.as_str());
    assert!(exists(&data));
    let out = shm_ok(&["rm", &v, &d]);
    assert!(out.contains(&format!("removed {v}")), "{out}");
    assert!(!exists(&v) && !exists(&d) && !exists(&data));

    let o = shm(&["rm", "shm-cli-test-no-such-segment"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no segment named"));
    let o = shm(&["rm", "somearena@64"]);
    assert_eq!(o.status.code(), Some(1));
    let o = shm(&["inspect", "shm-cli-test-no-such-segment", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no JSON for an error");
}

#[test]
fn gc_removes_only_what_a_dead_creator_left() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    let prefix = unique_name("cli-gc");
    let dead = format!("{prefix}-dead");
    let live = format!("{prefix}-live");
    let kept = format!("{prefix}-kept");
    let _g = [dead.as_str(), live.as_str(), kept.as_str()].map(UnlinkGuard::new);
    run_child(
        "gc_removes_only_what_a_dead_creator_left",
        "create_value_and_exit",
        &[(NAME_VAR, &dead)],
    );
    run_child(
        "gc_removes_only_what_a_dead_creator_left",
        "create_kept_value_and_exit",
        &[(NAME_VAR, &kept)],
    );
    let k = ls_entry(&kept);
    assert_eq!(k["flags"], serde_json::json!(["keep"]));
    assert_eq!(k["creator"]["alive"], "dead");
    let _live = Value::create_named(&live, 1u8).unwrap();
    assert_eq!(ls_entry(&dead)["creator"]["alive"], "dead");

    let r = shm_json(&["gc", "--dry-run", "--json", "--prefix", &prefix]);
    assert_eq!(r["dry_run"], true);
    let removed: Vec<&str> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [dead.as_str()]);
    assert!(
        r["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == live.as_str())
    );
    assert!(exists(&dead), "a dry run removes nothing");
    let text = shm_ok(&["gc", "--dry-run", "--prefix", &prefix]);
    assert!(text.contains(&format!("would remove {dead}")), "{text}");

    let text = shm_ok(&["gc", "--prefix", &prefix]);
    assert!(text.contains(&format!("removed {dead}")), "{text}");
    assert!(!exists(&dead));
    assert!(exists(&live), "a live creator's object stays");
    assert!(
        exists(&kept),
        "a KEEP object stays although its creator died"
    );
}

#[test]
fn gc_removes_a_dead_managers_segments_together() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    // A manager NAME is [A-Za-z0-9_-]: unique_name gives shmtest-<pid>-<n>-<tag>.
    let manager = unique_name("cli-mgr");
    let root = format!("shm-rs.m.{manager}");
    let arena = format!("{root}.a0");
    let object = format!("{root}.o1");
    let _g = [&root, &arena, &object].map(|n| UnlinkGuard::new(n.as_str()));
    run_child(
        "gc_removes_a_dead_managers_segments_together",
        "create_manager_root_and_exit",
        &[(NAME_VAR, &root)],
    );
    let data = shm_collections::region::current_data_segment(&root).unwrap();
    let _gd = UnlinkGuard::new(data.as_str());
    // Made by this (live) process, yet judged by the dead owner of the root.
    let mut seg = Segment::create_named(&arena, 4096).unwrap();
    seg.set_unlink_on_drop(false);
    let mut obj = Value::create_named(&object, 5u64).unwrap();
    obj.set_unlink_on_drop(false);

    for n in [&root, &data, &arena, &object] {
        assert_eq!(ls_entry(n)["manager"], manager.as_str(), "{n}");
    }
    let root_view = shm_json(&["inspect", &root, "--json"]);
    assert_eq!(root_view["contents"]["shown"][0]["key"], "counter");

    let r = shm_json(&["gc", "--dry-run", "--json", "--prefix", &root]);
    let mut removed: Vec<&str> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    removed.sort_unstable();
    let mut expected = [
        root.as_str(),
        data.as_str(),
        arena.as_str(),
        object.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(removed, expected);
    assert!(
        r["removed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("owner pid")
    );
    for n in [&root, &data, &arena, &object] {
        assert!(exists(n), "dry run removed {n}");
    }
    shm_ok(&["gc", "--prefix", &root]);
    for n in [&root, &data, &arena, &object] {
        assert!(!exists(n), "gc left {n}");
    }
}

#[test]
fn sync_objects_and_an_arena_object() {
    use shm_sync::{Barrier, Event, RLock, Semaphore};
    let ev_name = unique_name("cli-event");
    let ev = Event::create_named(&ev_name).unwrap();
    ev.set();
    let c = shm_json(&["inspect", &ev_name, "--json"])["contents"].clone();
    assert_eq!(
        (c["view"].as_str(), c["set"].as_bool()),
        (Some("event"), Some(true))
    );

    let sem_name = unique_name("cli-sem");
    let _sem = Semaphore::create_named(&sem_name, 3).unwrap();
    let c = shm_json(&["inspect", &sem_name, "--json"])["contents"].clone();
    assert_eq!(
        (c["view"].as_str(), c["value"].as_u64()),
        (Some("semaphore"), Some(3))
    );

    let bar_name = unique_name("cli-barrier");
    let _bar = Barrier::create_named(&bar_name, 4).unwrap();
    let c = shm_json(&["inspect", &bar_name, "--json"])["contents"].clone();
    assert_eq!(
        (c["parties"].as_u64(), c["broken"].as_bool()),
        (Some(4), Some(false))
    );

    let rl_name = unique_name("cli-rlock");
    let rl = RLock::create_named(&rl_name).unwrap();
    let _held = rl.acquire().unwrap();
    let c = shm_json(&["inspect", &rl_name, "--json"])["contents"].clone();
    assert_eq!(c["locked"], true);
    assert_eq!(c["holder"]["pid"], std::process::id());

    // An object inside an arena is named segment@offset.
    let arena = unique_name("cli-arena");
    let seg = std::sync::Arc::new(SegmentOptions::new().name(&arena).create(4096).unwrap());
    // SAFETY: a fresh arena; this range is handed out once and nothing else uses it.
    let _v = unsafe { Value::<u64>::create_at(seg.clone(), 512, 99) }.unwrap();
    let at = format!("{arena}@512");
    let r = shm_json(&["inspect", &at, "--json"]);
    // A compact arena header stores the kind's number, not names: the kind is named
    // from the known kinds, and the bytes shown raw (no registry names the type).
    assert_eq!(r["header"]["kind"], "Value");
    assert_eq!(r["contents"]["data_hex"], "6300000000000000");
    let o = shm(&["rm", &at]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside an arena"));
    assert!(exists(&arena));
}

#[test]
fn corrupted_collection_is_an_error_not_a_panic() {
    let name = unique_name("cli-corrupt");
    let d = ShareableDict::<u64, u64>::create_named(&name).unwrap();
    d.insert(1, 2).unwrap();
    let data =
        Segment::open(&shm_collections::region::current_data_segment(&name).unwrap()).unwrap();
    data.fill_at(128, data.len() - 128, 0xff).unwrap();
    let o = shm(&["inspect", &name, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["header"]["kind"], "Dict");
    assert!(r["error"].is_string(), "{r}");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&name));
    // ls still lists everything, this one included.
    assert_eq!(ls_entry(&name)["class"], "object");
}

#[test]
fn rm_of_a_manager_root_removes_its_prefix() {
    let manager = unique_name("cli-rm-mgr");
    let root = format!("shm-rs.m.{manager}");
    let _gr = UnlinkGuard::new(root.as_str());
    let mut d = ShareableDict::<String, String>::create_named(&root).unwrap();
    d.set_unlink_on_drop(false);
    let names = [
        root.clone(),
        shm_collections::region::current_data_segment(&root).unwrap(),
        format!("{root}.a0"),
        format!("{root}.o1"),
    ];
    let _g = names.clone().map(UnlinkGuard::new);
    let mut a = Segment::create_named(&names[2], 4096).unwrap();
    a.set_unlink_on_drop(false);
    let mut o = Value::create_named(&names[3], 1u8).unwrap();
    o.set_unlink_on_drop(false);
    let out = shm_ok(&["rm", &root]);
    for n in &names {
        assert!(out.contains(&format!("removed {n}")), "{out}");
        assert!(!exists(n), "{n} left");
    }
}
