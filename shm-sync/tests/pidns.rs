//! Lock holders in other PID namespaces are never declared dead; holders in the same
//! namespace still are; lock words that no holder writes are recovered.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use shm_core::identity::{IndexEntry, index_entry, pidns_index};
use shm_core::testing::{ROLE_VAR, UnlinkGuard, child_command, child_role, env, unique_name};
use shm_sync::{Acquired, LockError, Mutex, RawError, RawMutex};

const HOLD: Duration = Duration::from_millis(1000);
const TRY: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(20);

/// Whether `unshare --pid --fork --mount-proc` works here; prints why not.
fn unshare_works() -> bool {
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipped: unshare refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            false
        }
    }
}

/// A child running `test` as `role` with `SHM_NAME = name`, in a new PID namespace if
/// `new_pidns`; its stdout lines arrive on the receiver.
fn spawn(test: &str, role: &str, name: &str, new_pidns: bool) -> (Child, Receiver<String>) {
    let mut cmd = if new_pidns {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc"])
            .arg(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_VAR, role);
        c
    } else {
        child_command(test, role)
    };
    let mut child = cmd
        .env("SHM_NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &Receiver<String>, want: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == want => return,
            Ok(_) => {}
            Err(e) => panic!("child printed no {want:?}: {e}"),
        }
    }
}

fn wait_ok(mut child: Child) {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "child did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Child roles shared by the tests below.
fn role(role: &str) {
    let m = Mutex::<u64>::open(&env("SHM_NAME")).unwrap();
    match role {
        "hold" => {
            let g = m.lock().unwrap();
            println!("HOLDING");
            std::thread::sleep(HOLD);
            drop(g);
        }
        "hold-forever" => {
            let g = m.lock().unwrap_or_else(|e| e.into_guard().unwrap());
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(60));
            drop(g);
        }
        "try" => match m.lock_timeout(TRY) {
            Err(LockError::Timeout { .. }) => println!("TIMEOUT"),
            other => panic!("expected Timeout, got {:?}", other.map(|_| ())),
        },
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn holder_in_another_pidns_is_waited_for() {
    if let Some(r) = child_role() {
        return role(&r);
    }
    if !unshare_works() {
        return;
    }
    let name = unique_name("pidns-hold");
    let _guard = UnlinkGuard::new(name.clone());
    let m = Mutex::create_named(&name, 0u64).unwrap();
    let (child, rx) = spawn("holder_in_another_pidns_is_waited_for", "hold", &name, true);
    wait_line(&rx, "HOLDING");
    let t = Instant::now();
    match m.lock_timeout(TRY) {
        Err(LockError::Timeout { .. }) => {}
        other => panic!(
            "a live holder in another PID namespace: expected Timeout, got {:?}",
            other.map(|_| ())
        ),
    }
    assert!(t.elapsed() >= TRY);
    wait_ok(child);
    // Released properly by its holder: clean.
    assert!(m.lock_timeout(LONG).is_ok());
}

#[test]
fn waiter_in_another_pidns_waits_for_us() {
    if let Some(r) = child_role() {
        return role(&r);
    }
    if !unshare_works() {
        return;
    }
    let name = unique_name("pidns-try");
    let _guard = UnlinkGuard::new(name.clone());
    let m = Mutex::create_named(&name, 0u64).unwrap();
    // Held by this test thread (a non-leader thread: its TID is in no /proc the child sees).
    let g = m.lock().unwrap();
    let (child, rx) = spawn("waiter_in_another_pidns_waits_for_us", "try", &name, true);
    wait_line(&rx, "TIMEOUT");
    wait_ok(child);
    drop(g);
    assert!(m.lock().is_ok(), "nobody took the lock over");
}

#[test]
fn killed_holder_in_same_pidns_is_recovered() {
    if let Some(r) = child_role() {
        if r == "nested" {
            // In a fresh namespace: the holder and the waiter share it.
            return recover_killed_holder("killed_holder_in_same_pidns_is_recovered");
        }
        return role(&r);
    }
    recover_killed_holder("killed_holder_in_same_pidns_is_recovered");
    if !unshare_works() {
        return;
    }
    let name = unique_name("pidns-nested");
    let (child, _rx) = spawn(
        "killed_holder_in_same_pidns_is_recovered",
        "nested",
        &name,
        true,
    );
    wait_ok(child);
}

/// A holder in our own namespace, killed with SIGKILL: OwnerDied, quickly.
fn recover_killed_holder(test: &str) {
    let name = unique_name("pidns-kill");
    let _guard = UnlinkGuard::new(name.clone());
    let m = Mutex::create_named(&name, 0u64).unwrap();
    let (mut child, rx) = spawn(test, "hold-forever", &name, false);
    wait_line(&rx, "HOLDING");
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    match m.lock_timeout(Duration::from_secs(10)) {
        Err(LockError::OwnerDied(g)) => g.mark_consistent(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    assert!(
        pidns_index() == 0 || t.elapsed() < Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

/// Runs `lock()` (untimed) on a private mutex whose owner word is `word`, with a
/// watchdog: a regression fails the test instead of hanging it.
fn untimed_lock_on(word: u64) -> Result<Acquired, RawError> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mem = [AtomicU64::new(word), AtomicU64::new(0)];
        // SAFETY: `mem` is 16 bytes, 8-aligned, lives through the calls below and is
        // accessed only atomically through the view.
        let m = unsafe { RawMutex::from_ptr(mem.as_ptr().cast()) };
        let r = m.lock();
        if r.is_ok() {
            m.unlock().unwrap();
        }
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("lock() on {word:#x} hung"))
}

#[test]
fn words_no_holder_writes_are_recovered() {
    let pid = u64::from(std::process::id());
    let index = u64::from(pidns_index());
    let token = 0xabcd_0001u64 << 32;
    // A live thread (our main thread, or init) with token 0: no real holder writes it.
    for word in [pid | index << 22, pid, 1] {
        assert_eq!(untimed_lock_on(word), Ok(Acquired::OwnerDied), "{word:#x}");
    }
    // Namespace index 255: never handed out.
    assert_eq!(
        untimed_lock_on(token | 255 << 22 | pid),
        Ok(Acquired::OwnerDied)
    );
    // A free entry of the registry: no process ever had that index.
    if let Some(free) = (1..=254u8)
        .rev()
        .find(|&i| index_entry(i) == IndexEntry::Unused)
    {
        assert_eq!(
            untimed_lock_on(token | u64::from(free) << 22 | pid),
            Ok(Acquired::OwnerDied)
        );
    } else {
        eprintln!("registry unusable or full: free-index case not checked");
    }
}

#[test]
fn unknown_namespace_holder_is_waited_for() {
    // Index 0 ("namespace unknown") naming a dead TID: cannot be proved dead.
    let mem = [
        AtomicU64::new((0x1234_5677 << 32) | 0x3f_fff0),
        AtomicU64::new(0),
    ];
    // SAFETY: as in `untimed_lock_on`.
    let m = unsafe { RawMutex::from_ptr(mem.as_ptr().cast()) };
    assert_eq!(
        m.lock_timeout(Duration::from_millis(50)),
        Err(RawError::Timeout)
    );
}
