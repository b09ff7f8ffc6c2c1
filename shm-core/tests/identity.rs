//! `shm_core::identity` across real processes and PID namespaces.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use shm_core::identity::{
    Identity, IndexEntry, Liveness, current_pidns, index_entry, pidns_index, pidns_of_index,
};
use shm_core::testing::{ROLE_VAR, child_command, child_role};

/// Child role: print our identity and registry index, then live until stdin closes.
fn report_and_wait() {
    let me = Identity::current_process();
    println!(
        "ID {} {} {} {} {}",
        me.id,
        me.token,
        me.pidns,
        pidns_index(),
        current_pidns()
    );
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

struct Reported {
    id: Identity,
    index: u8,
}

fn read_report(child: &mut Child) -> Reported {
    // The child's test harness prints its own lines too: skip to ours.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("ID ") {
        line.clear();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "child printed no ID"
        );
    }
    // Keep draining, so the child never blocks on or fails writing to a full pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let f: Vec<u64> = line[3..]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(f.len(), 5, "{line:?}");
    Reported {
        id: Identity {
            id: f[0] as u32,
            token: f[1] as u32,
            pidns: f[2] as u32,
        },
        index: f[3] as u8,
    }
}

/// `unshare --pid --fork --mount-proc` running `test` as `role`, or `None` (with the
/// reason printed) where this machine refuses new PID namespaces.
fn in_new_pidns(test: &str, role: &str) -> Option<Command> {
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: unshare refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return None;
        }
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role);
    Some(cmd)
}

#[test]
fn own_process_and_thread_are_alive() {
    assert_eq!(Identity::current_process().liveness(), Liveness::Alive);
    assert_eq!(Identity::current_thread().liveness(), Liveness::Alive);
    assert_ne!(current_pidns(), 0);
}

#[test]
fn exited_child_is_dead() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    // Reaped: the pid names nobody (reuse within this instant is implausible; the
    // token would tell a reuser apart anyway).
    let gone = Identity {
        id: pid,
        token: 1,
        pidns: current_pidns(),
    };
    assert_eq!(gone.liveness(), Liveness::Dead);
}

#[test]
fn reported_child_is_alive_then_dead() {
    if child_role().is_some() {
        return report_and_wait();
    }
    let mut child = child_command("reported_child_is_alive_then_dead", "report")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let r = read_report(&mut child);
    assert_eq!(r.id.id, child.id());
    assert_eq!(r.id.pidns, current_pidns());
    assert_eq!(r.index, pidns_index(), "same namespace, same index");
    assert_eq!(r.id.liveness(), Liveness::Alive);
    let wrong = Identity {
        token: r.id.token ^ 2,
        ..r.id
    };
    assert_eq!(wrong.liveness(), Liveness::Dead, "another start time");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(r.id.liveness(), Liveness::Dead);
}

#[test]
fn identity_of_another_namespace_is_unknown() {
    if child_role().is_some() {
        return report_and_wait();
    }
    let me = Identity::current_process();
    assert_eq!(
        Identity {
            pidns: me.pidns.wrapping_add(1),
            ..me
        }
        .liveness(),
        Liveness::Unknown
    );
    assert_eq!(Identity { pidns: 0, ..me }.liveness(), Liveness::Unknown);
    let Some(mut cmd) = in_new_pidns("identity_of_another_namespace_is_unknown", "report") else {
        return;
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let r = read_report(&mut child);
    assert_eq!(r.id.id, 1, "the child is init of its namespace");
    assert_ne!(r.id.pidns, 0);
    assert_ne!(r.id.pidns, current_pidns());
    // Our pid 1 is alive too, with another start time: that must not read as "dead".
    assert_eq!(r.id.liveness(), Liveness::Unknown);
    if r.index != 0 && pidns_index() != 0 {
        assert_ne!(r.index, pidns_index());
        assert_eq!(pidns_of_index(r.index), Some(r.id.pidns));
        assert_eq!(index_entry(r.index), IndexEntry::Namespace(r.id.pidns));
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Its namespace is gone with it, but we still cannot see that from here.
    assert_eq!(r.id.liveness(), Liveness::Unknown);
}
