//! The `shm` command against real managers made by child processes: registry keys in
//! `ls` (text and JSON, arena objects as `ARENA@OFFSET` rows), `inspect` of a root and
//! of an arena, and `gc` of a manager whose owner was killed with SIGKILL while its
//! tracker was off.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};

mod common;

use common::{shm, shm_json, shm_ok};
use serde_json::Value as Json;
use shm_core::testing::{child_command, child_role, unique_name};
use shm_manager::ManagerOptions;

const NAME_VAR: &str = "SHM_CLI_MANAGER_NAME";

/// The `shm ls --json` rows whose name starts with `prefix`.
fn ls_rows(prefix: &str) -> Vec<Json> {
    shm_json(&["ls", "--json"])["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with(prefix))
        .cloned()
        .collect()
}

/// Names in /dev/shm starting with `prefix`.
fn segments(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// A child process owning a manager (tracker off); kills and reaps it when dropped and
/// removes whatever the manager left.
struct Owner {
    child: Child,
    stdin: Option<ChildStdin>,
    // Kept open: the child's harness writes its summary there when the role ends.
    stdout: BufReader<std::process::ChildStdout>,
    root: String,
}

impl Owner {
    fn spawn(test: &str, name: &str) -> Owner {
        let mut cmd = child_command(test, "own_manager");
        cmd.env(NAME_VAR, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The harness may print before the role's output: read up to our marker.
        while !line.contains("ready") {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended early");
        }
        Owner {
            child,
            stdin,
            stdout: out,
            root: format!("shm-rs.m.{name}"),
        }
    }

    /// SIGKILL: with the tracker off, everything the manager made stays behind.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Closing stdin makes a live owner shut down (and unlink) itself.
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"\n");
        }
        let _ = std::io::copy(&mut self.stdout, &mut std::io::sink());
        let _ = self.child.wait();
        for n in segments(&self.root) {
            let _ = shm_core::unlink(&n);
        }
    }
}

/// Child roles, run by re-running this test binary (never fork in the harness).
fn child_work(role: &str) {
    let name = std::env::var(NAME_VAR).expect("name for the child");
    match role {
        "own_manager" => {
            let m = ManagerOptions::new()
                .name(&name)
                .tracker(false)
                .create()
                .unwrap();
            m.value("counter", 7u64).unwrap();
            let db = m.lock("db").unwrap();
            let held = db.lock().unwrap();
            m.event("go").unwrap().set();
            let scores = m.dict::<String, u64>("scores").unwrap();
            scores.insert("ann".into(), 3).unwrap();
            println!("ready");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            drop(held);
            m.shutdown().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn ls_and_inspect_show_registry_keys() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    let name = unique_name("cli-keys");
    let owner = Owner::spawn("ls_and_inspect_show_registry_keys", &name);
    let root = owner.root.clone();
    let arena = format!("{root}.a0");
    let pid = owner.child.id();

    let rows = ls_rows(&root);
    let row = |n: &str| {
        rows.iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("{n} not listed: {rows:#?}"))
    };
    let r = row(&root);
    assert_eq!(r["keys"], 4);
    assert_eq!(r["creator"]["pid"], pid);
    assert_eq!(r["owner"]["alive"], "alive");
    assert!(r["error"].is_null(), "{r}");
    // Every registered object shows its key, those inside the arena as rows ARENA@OFFSET
    // right after the arena.
    let keyed: Vec<(&str, &str)> = rows
        .iter()
        .filter_map(|e| Some((e["key"].as_str()?, e["name"].as_str()?)))
        .collect();
    let mut keys: Vec<&str> = keyed.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["counter", "db", "go", "scores"]);
    let counter = keyed.iter().find(|(k, _)| *k == "counter").unwrap().1;
    assert!(counter.starts_with(&format!("{arena}@")), "{counter}");
    let c = row(counter);
    assert_eq!(c["kind"], "Value");
    assert_eq!(c["type"], "Value<u64>");
    assert_eq!(c["arena"], arena.as_str());
    assert_eq!(c["owner"]["pid"], pid);
    let pos = |n: &str| rows.iter().position(|e| e["name"] == n).unwrap();
    assert_eq!(
        pos(counter),
        pos(&arena) + 1,
        "arena objects follow their arena"
    );
    let scores = keyed.iter().find(|(k, _)| *k == "scores").unwrap().1;
    assert!(scores.starts_with(&format!("{root}.o")), "{scores}");
    assert_eq!(row(scores)["kind"], "Dict");

    let text = shm_ok(&["ls"]);
    assert!(text.lines().next().unwrap().contains("KEY"), "{text}");
    let root_line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(root.as_str()))
        .expect("the root's row");
    assert!(
        root_line.contains(&format!("manager root: 4 keys, owner pid {pid} alive")),
        "{root_line}"
    );
    let counter_line = text.lines().find(|l| l.starts_with(counter)).unwrap();
    assert!(counter_line.contains("counter"), "{counter_line}");

    // inspect of the root: its keys with kind, type, location and state.
    let v = shm_json(&["inspect", &root, "--json"]);
    let c = &v["contents"];
    assert_eq!(c["view"], "registry");
    assert_eq!(c["keys"], 4);
    assert_eq!(c["owner"]["pid"], pid);
    let entry = |k: &str| {
        c["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("counter")["location"], counter);
    assert_eq!(entry("counter")["in_arena"], true);
    assert!(
        entry("counter")["state"]
            .as_str()
            .unwrap()
            .starts_with("7, lock unlocked"),
        "{c}"
    );
    assert!(
        entry("db")["state"]
            .as_str()
            .unwrap()
            .starts_with("locked by tid"),
        "{c}"
    );
    assert_eq!(entry("go")["state"], "set");
    assert_eq!(entry("scores")["state"], "1 entries");
    assert_eq!(entry("scores")["in_arena"], false);
    let text = shm_ok(&["inspect", &root]);
    assert!(
        text.contains(&format!("owner:        pid {pid} (alive)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"counter\": Value Value<u64> at {counter}: 7")),
        "{text}"
    );

    // inspect of the arena: used/capacity and the objects in it.
    let v = shm_json(&["inspect", &arena, "--json"]);
    let c = &v["contents"];
    assert_eq!(c["view"], "arena");
    let used = c["used"].as_u64().unwrap();
    assert!(
        used >= 3 * 128 && used <= c["capacity"].as_u64().unwrap(),
        "{c}"
    );
    let in_arena: Vec<&str> = c["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(in_arena.len(), 3, "{c}");
    for k in ["counter", "db", "go"] {
        assert!(in_arena.contains(&k), "{k} missing: {c}");
    }
    let text = shm_ok(&["inspect", &arena]);
    assert!(text.contains("objects:      3 registered"), "{text}");
    drop(owner);
}

#[test]
fn gc_removes_a_killed_owners_manager_as_one_unit() {
    if let Some(role) = child_role() {
        return child_work(&role);
    }
    const TEST: &str = "gc_removes_a_killed_owners_manager_as_one_unit";
    let base = unique_name("cli-gcm");
    let mut dead = Owner::spawn(TEST, &format!("{base}-dead"));
    let live = Owner::spawn(TEST, &format!("{base}-live"));
    let dead_pid = dead.child.id();
    dead.kill();
    let dead_segments = segments(&dead.root);
    // Root, arena, the dict and its data segment: all survive (no tracker).
    assert!(dead_segments.len() >= 4, "{dead_segments:?}");
    let live_segments = segments(&live.root);
    // A KEEP flag under the shm-rs.m. prefix (kept objects are shm-rs.k.*) does not hold
    // a segment of the unit back.
    let spec = shm_core::ObjectSpec::new(shm_manager::kinds::ARENA, 1);
    shm_core::Object::open(&format!("{}.a0", dead.root), &spec)
        .unwrap()
        .set_flags(shm_core::Flags::KEEP, true);
    let r = ls_rows(&dead.root);
    assert!(r.iter().all(|e| e["owner"]["alive"] == "dead"), "{r:#?}");

    let all = format!("shm-rs.m.{base}");
    let report = shm_json(&["gc", "--dry-run", "--json", "--prefix", &all]);
    let managers = report["managers"].as_array().unwrap();
    assert_eq!(managers.len(), 1, "{report}");
    let m = &managers[0];
    assert_eq!(m["name"], format!("{base}-dead"));
    assert_eq!(m["owner_pid"], dead_pid);
    let mut listed: Vec<String> = m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.last(), Some(&dead.root), "the root goes last");
    listed.sort();
    assert_eq!(listed, dead_segments);
    assert_eq!(
        segments(&dead.root),
        dead_segments,
        "a dry run removes nothing"
    );

    let text = shm_ok(&["gc", "--prefix", &all]);
    assert!(
        text.contains(&format!(
            "removed manager {base}-dead (owner pid {dead_pid} dead): {} segments",
            dead_segments.len()
        )),
        "{text}"
    );
    assert_eq!(segments(&dead.root), Vec::<String>::new());
    assert_eq!(
        segments(&live.root),
        live_segments,
        "a live manager is left alone"
    );
    let again = shm_json(&["gc", "--json", "--prefix", &all]);
    assert_eq!(again["managers"], serde_json::json!([]));
    assert!(
        again["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == live.root.as_str()),
        "{again}"
    );
    drop(live);
}

#[test]
fn corrupted_registries_are_errors_in_their_rows() {
    // A forged entry naming a segment outside the manager.
    let m = ManagerOptions::new()
        .name(unique_name("cli-forged"))
        .tracker(false)
        .create()
        .unwrap();
    m.value("ok", 1u32).unwrap();
    let mut forged = m.entry("ok").unwrap().unwrap();
    forged.location = "psm_not_ours".into();
    m.registry().insert("evil".into(), forged).unwrap();
    let rows = ls_rows(m.root_name());
    let root = rows.iter().find(|e| e["name"] == m.root_name()).unwrap();
    assert!(
        root["error"]
            .as_str()
            .unwrap()
            .contains("outside the manager"),
        "{root}"
    );
    assert!(rows.iter().any(|e| e["key"] == "ok"), "{rows:#?}");
    let v = shm_json(&["inspect", m.root_name(), "--json"]);
    let evil = v["contents"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "evil")
        .unwrap()
        .clone();
    assert!(
        evil["state"].is_null() && evil["error"].is_string(),
        "{evil}"
    );

    // Random bytes over the registry's data segment: ls still lists everything.
    let other = ManagerOptions::new()
        .name(unique_name("cli-garbled"))
        .tracker(false)
        .create()
        .unwrap();
    other.lock("l").unwrap();
    let data = shm_core::Segment::open(
        &shm_collections::region::current_data_segment(other.root_name()).unwrap(),
    )
    .unwrap();
    data.fill_at(128, data.len() - 128, 0xa5).unwrap();
    let rows = ls_rows(other.root_name());
    let root = rows
        .iter()
        .find(|e| e["name"] == other.root_name())
        .unwrap();
    assert!(root["error"].is_string(), "{root}");
    assert!(root["keys"].is_null(), "{root}");
    assert!(
        rows.iter()
            .any(|e| e["name"] == format!("{}.a0", other.root_name()))
    );
    let text = shm_ok(&["ls"]);
    assert!(text.contains(other.root_name()), "{text}");
    let o = shm(&["inspect", other.root_name(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["error"].is_string(), "{r}");
    drop(other);
    drop(m);
}
