//! The growable collections' kinds: a dict's control object and data segment are
//! named segments, so the damaged bytes are written into a fixture dict's segments
//! (restored to their pristine state first, segments made by earlier cases removed),
//! and the dict is opened by name and used, growth included: the fixture dict is one
//! insert short of its first growth.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use shm_collections::region::{current_data_segment, data_segment_name};
use shm_collections::{ShareableDict, Value};
use shm_core::{HEADER_LEN, Segment};

use super::{Outcome, T, Target, damaged, e, put};

type D = ShareableDict<u64, u64>;

/// Where the control payload keeps the incarnation id (shm-collections'
/// `region/layout.rs`, `CtrlHeader::incarnation`).
const CTRL_INC: usize = 32;
/// Where the data header keeps it (`DataHeader::incarnation`).
const D_INC: usize = 64;

/// Which segment of the fixture dict a target damages.
#[derive(Clone, Copy)]
pub(super) enum Part {
    /// The control object (lock, limits, incarnation id, generation word).
    Control,
    /// The current data segment (data header, counters, index, records).
    Data,
}

struct Fixture {
    name: String,
    data: String,
    control_bytes: Vec<u8>,
    data_bytes: Vec<u8>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        remove_made(&self.name, &[]);
        let _ = shm_core::unlink(&self.name);
    }
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn read_all(name: &str) -> Vec<u8> {
    let seg = Segment::open(name).expect("a fixture segment opens");
    let mut bytes = vec![0u8; seg.len()];
    seg.read_at(0, &mut bytes).expect("a fixture segment reads");
    bytes
}

fn fixture() -> Fixture {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "fuzz-g-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut d = D::create_named(&name).expect("the fuzz fixture dict");
    d.set_unlink_on_drop(false);
    // 11 entries in 16 slots: the 12th needs a growth.
    for k in 0..11 {
        d.insert(k, k * 3).unwrap();
    }
    drop(d);
    let data = current_data_segment(&name).unwrap();
    Fixture {
        control_bytes: read_all(&name),
        data_bytes: read_all(&data),
        name,
        data,
    }
}

fn with<R>(f: impl FnOnce(&Fixture) -> R) -> R {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        f(slot.get_or_insert_with(fixture))
    })
}

/// Removes this thread's fixture dict and every segment the cases made.
pub(super) fn teardown() {
    FIXTURE.with(|cell| drop(cell.borrow_mut().take()));
}

pub(super) fn pristine(part: Part) -> Vec<u8> {
    with(|f| match part {
        Part::Control => f.control_bytes.clone(),
        Part::Data => f.data_bytes.clone(),
    })
}

/// Unlinks every `<name>.*` segment but `keep`.
fn remove_made(name: &str, keep: &[&str]) {
    let prefix = format!("{name}.");
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for n in dir.filter_map(|d| d.ok()?.file_name().into_string().ok()) {
        if n.starts_with(&prefix) && !keep.contains(&n.as_str()) {
            let _ = shm_core::unlink(&n);
        }
    }
}

fn reset(f: &Fixture) -> Result<(), String> {
    remove_made(&f.name, &[&f.data]);
    put(&f.name, &f.control_bytes)?;
    put(&f.data, &f.data_bytes)
}

/// Opens the dict and uses it with bounded waits (a forged lock word can name a
/// live holder): reads, growing writes, removal, a snapshot and a salvage.
fn use_dict(name: &str) -> Outcome {
    // No wait for an unpublished header (a bounded wait for its creator, not a
    // parse of hostile bytes): reported at once so that 1 s waits do not dominate.
    let d = D::open_timeout(name, std::time::Duration::ZERO).map_err(e)?;
    d.set_patience(Some(T));
    let _ = (d.len(), d.stats(), d.iter());
    for k in 0..4 {
        let _ = d.get(&k);
    }
    for k in 100..104 {
        let _ = d.insert(k, k);
    }
    let _ = d.remove(&1);
    let _ = d.salvage();
    let _ = d.insert(200, 1);
    let _ = (d.len(), d.keys());
    Ok(())
}

/// Random bytes in the control object (lock, limits, incarnation id, generation).
pub(super) fn control(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        put(&f.name, &bytes)?;
        use_dict(&f.name)
    })
}

/// Random bytes in the current data segment (data header, counters, index,
/// records).
pub(super) fn data(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        put(&f.data, &bytes)?;
        use_dict(&f.name)
    })
}

/// A damaged control object, with the names its growth would use taken by others:
/// a `Value` under the next data segment's name, a data segment of another
/// incarnation under the one after, and a user object under the old-style name
/// `<name>.g1`. Growth must skip them or fail with a typed error; removing one is a
/// failure (a panic here).
pub(super) fn names(s: Segment) -> Outcome {
    let bytes = damaged(&s)?;
    with(|f| {
        reset(f)?;
        put(&f.name, &bytes)?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            for (j, b) in w.iter_mut().enumerate() {
                *b = bytes.get(at + j).copied().unwrap_or(0);
            }
            u64::from_ne_bytes(w)
        };
        let inc = word(HEADER_LEN + CTRL_INC);
        // The generation word of the object header (shm-core: at offset 64).
        let generation = word(64);
        let squat_value = data_segment_name(&f.name, inc, generation.wrapping_add(1));
        let squat_data = data_segment_name(&f.name, inc, generation.wrapping_add(2));
        let old_style = format!("{}.g1", f.name);
        let mut made = Vec::new();
        for n in [&squat_value, &old_style] {
            if let Ok(mut v) = Value::create_named(n, 5u64) {
                v.set_unlink_on_drop(false);
                made.push(n.clone());
            }
        }
        // Another incarnation's data segment: the pristine one, incarnation changed.
        let mut other = f.data_bytes.clone();
        let at = HEADER_LEN + D_INC;
        let forged = (word(HEADER_LEN + CTRL_INC) ^ 1).to_ne_bytes();
        other[at..at + 8].copy_from_slice(&forged);
        if squat_data != squat_value && put(&squat_data, &other).is_ok() {
            made.push(squat_data.clone());
        }
        let outcome = use_dict(&f.name);
        for n in &made {
            assert!(
                Segment::open(n).is_ok(),
                "growth removed {n}, a segment it did not make"
            );
        }
        outcome
    })
}

/// A growable dict's control object, its data segment, and its growth names.
pub(super) fn targets() -> Vec<Target> {
    vec![
        Target::new("Growable control", pristine(Part::Control), control),
        Target::new("Growable data", pristine(Part::Data), data),
        Target::new("Growth names", pristine(Part::Control), names),
    ]
}
