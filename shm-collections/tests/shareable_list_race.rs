//! A reader racing a writer in another process sees only values that were written,
//! for writes that keep the item's type: `set` writes a `str`/`bytes` together with its
//! NUL padding in one copy, so a reader never sees a new short value over the end of
//! an old long one ("aaaaa" over "bbbbbbbbbb" read as "aaaaabbbbb").
//!
//! The slots are 16 bytes at a 16-byte-aligned offset: one copy is then one store, so
//! the assertion is exact (wider slots take several stores; see `ShareableList`'s
//! "Concurrent use" docs).

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use shm_collections::{Item, ShareableList};
use shm_core::testing::{UnlinkGuard, child_command, child_role, pythons, unique_name};

const SHORT: &str = "aaaaa";
const LONG: &str = "bbbbbbbbbb";
const SHORT_B: &[u8] = b"AAAAA";
const LONG_B: &[u8] = b"BBBBBBBBBB";

/// Item 2: the parent sets it to 1 to stop the writer. Item 3: the writer's progress.
const STOP: usize = 2;
const WRITES: usize = 3;

/// `[LONG, LONG_B, 0, 0]`: N = 4, so the data area starts at 8 * (4 + 2) = 48, and
/// items 0 and 1 have 16-byte slots at 48 and 64.
fn racing_list(name: &str) -> ShareableList {
    let sl = ShareableList::create_named(
        name,
        [Item::from(LONG), Item::from(LONG_B), 0.into(), 0.into()],
    )
    .unwrap();
    assert_eq!(sl.slot_capacity(0).unwrap(), 16);
    assert_eq!(sl.slot_capacity(1).unwrap(), 16);
    sl
}

/// One round of the writer: both slots to their short value, then to their long one.
fn write_round(sl: &mut ShareableList) {
    sl.set_str(0, SHORT).unwrap();
    sl.set_bytes(1, SHORT_B).unwrap();
    sl.set_str(0, LONG).unwrap();
    sl.set_bytes(1, LONG_B).unwrap();
}

/// The child: alternates the two values in items 0 and 1 until told to stop (or for
/// at most a minute), publishing how many rounds it made.
fn writer_child() {
    let name = std::env::var("SL_RACE_NAME").unwrap();
    let mut sl = ShareableList::open(&name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds: i64 = 0;
    while sl.get(STOP).unwrap() != Item::Int(1) && Instant::now() < deadline {
        for _ in 0..64 {
            write_round(&mut sl);
        }
        rounds += 64;
        sl.set(WRITES, rounds).unwrap();
    }
}

#[derive(Default)]
struct Seen {
    short: u64,
    long: u64,
    other: Vec<Item>,
}

impl Seen {
    fn record(&mut self, item: Item, short: &Item, long: &Item) {
        if item == *short {
            self.short += 1;
        } else if item == *long {
            self.long += 1;
        } else if self.other.len() < 20 {
            self.other.push(item);
        }
    }
}

#[test]
fn rust_reader_racing_a_writer_process_sees_only_written_values() {
    if child_role().as_deref() == Some("sl-race-writer") {
        writer_child();
        return;
    }
    let name = unique_name("sl-race");
    let _guard = UnlinkGuard::new(&name);
    let sl = racing_list(&name);
    let mut child = child_command(
        "rust_reader_racing_a_writer_process_sees_only_written_values",
        "sl-race-writer",
    )
    .env("SL_RACE_NAME", &name)
    .spawn()
    .unwrap();
    let (short, long) = (Item::from(SHORT), Item::from(LONG));
    let (short_b, long_b) = (Item::from(SHORT_B), Item::from(LONG_B));
    let (mut text, mut bytes) = (Seen::default(), Seen::default());
    let start = Instant::now();
    let mut reads = 0u64;
    // Read until the writer has visibly been busy and both values were seen often,
    // at least 200,000 times, at most 30 s.
    while (reads < 200_000
        || text.short.min(text.long) < 1000
        || bytes.short.min(bytes.long) < 1000)
        && start.elapsed() < Duration::from_secs(30)
    {
        text.record(sl.get(0).unwrap(), &short, &long);
        bytes.record(sl.get(1).unwrap(), &short_b, &long_b);
        reads += 1;
    }
    sl.set(STOP, 1).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "writer child failed: {status}");
    let rounds = sl.get(WRITES).unwrap().as_int().unwrap();
    eprintln!(
        "{reads} reads over {rounds} writer rounds: str {}/{}, bytes {}/{}",
        text.short, text.long, bytes.short, bytes.long
    );
    assert!(rounds > 0, "the writer child never ran");
    assert!(
        text.other.is_empty(),
        "str values nobody wrote: {:?}",
        text.other
    );
    assert!(
        bytes.other.is_empty(),
        "bytes values nobody wrote: {:?}",
        bytes.other
    );
    // The race really happened: the reader saw both values of each item change.
    assert!(text.short > 0 && text.long > 0, "str: {reads} reads");
    assert!(bytes.short > 0 && bytes.long > 0, "bytes: {reads} reads");
}

/// CPython reads in a loop while this process writes; it reports every value that is
/// neither of the two written.
const PY_READER: &str = r#"
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList
sl = ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
want = {0: ('aaaaa', 'bbbbbbbbbb'), 1: (b'AAAAA', b'BBBBBBBBBB')}
counts = {0: [0, 0], 1: [0, 0]}
bad = []
sl[4] = 1  # started
for _ in range(int(sys.argv[2])):
    for i in (0, 1):
        try:
            v = sl[i]
        except Exception as e:
            v = e
        if v == want[i][0]:
            counts[i][0] += 1
        elif v == want[i][1]:
            counts[i][1] += 1
        elif len(bad) < 20:
            bad.append((i, v))
print(counts[0][0], counts[0][1], counts[1][0], counts[1][1])
print(repr(bad))
sl.shm.close()
"#;

#[test]
fn cpython_reader_racing_a_rust_writer_sees_only_written_values() {
    for python in pythons() {
        let who = python.display();
        let name = unique_name("sl-race-py");
        let _guard = UnlinkGuard::new(&name);
        let mut sl = ShareableList::create_named(
            &name,
            [
                Item::from(LONG),
                Item::from(LONG_B),
                0.into(),
                0.into(),
                0.into(),
                0.into(),
            ],
        )
        .unwrap();
        let mut child = std::process::Command::new(&python)
            .args(["-c", PY_READER, &name, "100000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Write until CPython has read its fill and exited (at most 60 s).
        let start = Instant::now();
        let mut rounds = 0u64;
        let status = loop {
            for _ in 0..64 {
                write_round(&mut sl);
            }
            rounds += 64;
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("{who}: the CPython reader did not finish in 60 s");
            }
        };
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{who}: {status}\n{err}");
        assert_eq!(sl.get(4).unwrap(), Item::Int(1), "{who}: reader never ran");
        let mut lines = out.lines();
        let counts: Vec<u64> = lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        let bad = lines.next().unwrap();
        eprintln!("{who}: {rounds} writer rounds, CPython saw {counts:?}, other: {bad}");
        assert_eq!(bad, "[]", "{who}: CPython read values nobody wrote");
        assert_eq!(counts.iter().sum::<u64>(), 200_000, "{who}");
        assert!(
            counts.iter().all(|&c| c > 0),
            "{who}: the race did not happen: {counts:?}"
        );
    }
}
