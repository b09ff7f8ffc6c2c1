//! The edges of growth (issue 17, items 1-5, 9, 12, 13): data segments belong to one
//! incarnation of one object, growth never removes what it did not make, the last
//! handle of an unlinked object removes its data, a failed growth leaves nothing and
//! `salvage` recovers from a broken record, names that could not grow are refused at
//! create, writers wait at most their patience, forged counters are `Corrupted`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use shm_collections::region::{
    MAX_CONTROL_NAME_LEN, current_data_segment, data_segment_name, parse_data_segment_name,
};
use shm_collections::{Namespace, RegionError, ShareableDict, ShareableVec, Value};
use shm_core::testing::{UnlinkGuard, child_command, child_role, unique_name};
use shm_core::{HEADER_LEN, Segment};

type D = ShareableDict<u64, u64>;

/// Data header words (payload offsets) of a data segment.
const D_LIVE: usize = 32;
const D_DEAD: usize = 48;
/// Bytes of the data header (the index follows).
const DATA_HDR: usize = 128;

/// Names in /dev/shm that start with `prefix`.
fn names_with(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Inserts keys from `next` on until the dict reaches `generation`.
fn grow_to(d: &D, next: &mut u64, generation: u64) {
    for _ in 0..10_000_000 {
        if d.stats().unwrap().generation >= generation {
            return;
        }
        d.insert(*next, *next).unwrap();
        *next += 1;
    }
    panic!("never reached generation {generation}");
}

/// Removes every data segment of `name` (guards for tests whose objects were damaged).
struct DataGuard(String);

impl Drop for DataGuard {
    fn drop(&mut self) {
        for n in names_with(&format!("{}.g", self.0)) {
            if parse_data_segment_name(&n).is_some_and(|p| p.control == self.0) {
                let _ = shm_core::unlink(&n);
            }
        }
    }
}

/// A unique name with guards that remove it and its data segments even when the test
/// fails (declared before the object, so dropped after it).
fn guarded(tag: &str) -> (String, UnlinkGuard, DataGuard) {
    let name = unique_name(tag);
    (
        name.clone(),
        UnlinkGuard::new(name.as_str()),
        DataGuard(name),
    )
}

/// Item 1: dict R reaches generation 3 and is unlinked with a handle open; a new dict
/// R grows to generation 4; the old handle then grows to generation 4 as well. A fresh
/// open of R still sees the new dict (it used to see the old one's keys: the old
/// handle's growth had replaced the new dict's data segment).
#[test]
fn a_reused_name_never_meets_the_old_incarnations_segments() {
    let (name, _g, _gd) = guarded("reuse");
    let old = D::create_named(&name).unwrap();
    let mut next_old = 0;
    grow_to(&old, &mut next_old, 3);
    old.unlink().unwrap();

    let new = D::create_named(&name).unwrap();
    let mut next_new = 1 << 40;
    grow_to(&new, &mut next_new, 4);
    grow_to(&old, &mut next_old, 4);
    assert_eq!(old.stats().unwrap().generation, 4);

    let fresh = D::open(&name).unwrap();
    assert_eq!(fresh.get(&(1 << 40)).unwrap(), Some(1 << 40));
    assert_eq!(
        fresh.get(&0).unwrap(),
        None,
        "the old dict's key in the new one"
    );
    assert_eq!(fresh.len().unwrap(), new.len().unwrap());
    // Both keep working, each on its own segments.
    assert_eq!(old.get(&0).unwrap(), Some(0));
    assert_eq!(old.get(&(1 << 40)).unwrap(), None);
    drop(fresh);
    drop(new);
    drop(old);
    assert_eq!(names_with(&name), Vec::<String>::new());
}

/// Item 2: a `Value` named like an old-style data segment (`F.g1`) survives dict F's
/// growth (it used to be unlinked by it).
#[test]
fn growth_leaves_an_unrelated_object_under_a_data_like_name_alone() {
    let name = unique_name("F");
    let value_name = format!("{name}.g1");
    let _gv = UnlinkGuard::new(value_name.as_str());
    let value = Value::create_named(&value_name, 77u64).unwrap();
    let d = D::create_named(&name).unwrap();
    let mut next = 0;
    grow_to(&d, &mut next, 3);
    let again = Value::<u64>::open(&value_name).unwrap();
    assert_eq!(again.get().unwrap(), 77);
    drop(again);
    drop(value);
}

/// Item 2, as an attacker would: objects created under the exact names of the next
/// data segments (incarnation included) are skipped, never removed; after 8 taken
/// names the growth is a typed error naming them, and the dict still reads.
#[test]
fn growth_skips_taken_names_and_never_removes_them() {
    let d = D::create().unwrap();
    let name = d.name().unwrap().to_owned();
    let _gd = DataGuard(name.clone());
    let inc = parse_data_segment_name(&current_data_segment(&name).unwrap())
        .unwrap()
        .incarnation;
    // Generation 1 taken: growth publishes generation 2.
    let squat1 = data_segment_name(&name, inc, 1);
    let _g1 = UnlinkGuard::new(squat1.as_str());
    let v1 = Value::create_named(&squat1, 1u64).unwrap();
    let mut next = 0;
    grow_to(&d, &mut next, 2);
    assert_eq!(d.stats().unwrap().generation, 2);
    assert_eq!(Value::<u64>::open(&squat1).unwrap().get().unwrap(), 1);
    assert_eq!(D::open(&name).unwrap().get(&0).unwrap(), Some(0));

    // Generations 3..=10 taken: the growth fails with NameTaken, nothing is removed.
    let squats: Vec<_> = (3..=10)
        .map(|g| {
            let n = data_segment_name(&name, inc, g);
            (
                UnlinkGuard::new(n.as_str()),
                Value::create_named(&n, g).unwrap(),
            )
        })
        .collect();
    let err = loop {
        match d.insert(next, next) {
            Ok(_) => next += 1,
            Err(e) => break e,
        }
        assert!(next < 1_000_000);
    };
    assert!(
        matches!(&err, RegionError::NameTaken { segments, .. } if segments.len() == 8),
        "{err}"
    );
    for (g, (guard, _)) in (3..).zip(&squats) {
        assert_eq!(Value::<u64>::open(&guard.0).unwrap().get().unwrap(), g);
    }
    assert_eq!(d.get(&0).unwrap(), Some(0));
    drop(v1);
}

/// Item 3 (cross-process): the creator drops the dict (unlinking it); another process
/// that has it open inserts until it grows twice and exits. Nothing of the object may
/// remain: the last handle of an unlinked object removes the segments it grew.
#[test]
fn the_last_handle_of_an_unlinked_dict_removes_its_data() {
    if child_role().as_deref() == Some("grower") {
        let d = D::open(&std::env::var("DICT_NAME").unwrap()).unwrap();
        eprintln!("READY");
        let name = std::env::var("DICT_NAME").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Segment::open(&name).is_ok() {
            assert!(Instant::now() < deadline, "the creator never dropped");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut next = 0;
        grow_to(&d, &mut next, 2);
        return;
    }
    let (name, _g, _gd) = guarded("last-handle");
    let d = D::create_named(&name).unwrap();
    d.insert(u64::MAX, 1).unwrap();
    let mut child = child_command(
        "the_last_handle_of_an_unlinked_dict_removes_its_data",
        "grower",
    )
    .env("DICT_NAME", &name)
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert_eq!(shm_core::testing::stderr_line(&mut child), "READY");
    drop(d);
    assert!(child.wait().unwrap().success());
    assert_eq!(names_with(&name), Vec::<String>::new(), "left in /dev/shm");
}

/// Two handles in one process: dropping the last one after an unlink removes the
/// data; dropping the first does not (the other still uses it).
#[test]
fn only_the_last_handle_removes_the_data() {
    let (name, _g, _gd) = guarded("last-of-two");
    let d = D::create_named(&name).unwrap();
    let a = D::open(&name).unwrap();
    let b = D::open(&name).unwrap();
    drop(d);
    let mut next = 0;
    grow_to(&a, &mut next, 1);
    drop(a);
    assert_eq!(names_with(&name).len(), 1, "b still has the data");
    assert_eq!(b.get(&0).unwrap(), Some(0));
    drop(b);
    assert_eq!(names_with(&name), Vec::<String>::new());
}

/// Flips a byte of the checksum of the first record in the current data segment.
fn break_first_record(name: &str, slots: u64) {
    let data = Segment::open(&current_data_segment(name).unwrap()).unwrap();
    // Payload, data header, index; the record area's first 8 bytes are unused; a
    // record's checksum is its second word.
    let at = HEADER_LEN + DATA_HDR + slots as usize * 8 + 8 + 8;
    let mut b = [0u8; 1];
    data.read_at(at, &mut b).unwrap();
    data.write_at(at, &[!b[0]]).unwrap();
}

/// Item 4: with one record's checksum broken, a growing insert fails with
/// `Corrupted` and removes the segment it had begun; reads of the other keys keep
/// working; after the creator drops nothing is left.
#[test]
fn a_failed_growth_removes_its_half_made_segment() {
    let (name, _g, _gd) = guarded("failed-growth");
    let d = D::create_named(&name).unwrap();
    for k in 0..8 {
        d.insert(k, k).unwrap();
    }
    break_first_record(&name, d.stats().unwrap().slots);
    let current = current_data_segment(&name).unwrap();
    let mut failed = 0;
    for k in 100..10_000 {
        match d.insert(k, k) {
            Ok(_) => {}
            Err(RegionError::Corrupted { .. }) => {
                failed += 1;
                assert_eq!(
                    names_with(&format!("{name}.")),
                    std::slice::from_ref(&current)
                );
                if failed == 3 {
                    break;
                }
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(failed, 3, "growth never failed");
    let readable = (0..8)
        .filter(|k| d.get(k).is_ok_and(|v| v == Some(*k)))
        .count();
    assert_eq!(readable, 7);
    drop(d);
    assert_eq!(names_with(&name), Vec::<String>::new(), "left in /dev/shm");
}

/// Item 4: `salvage` copies every intact record into a fresh generation and reports
/// the broken one; growth works again afterwards.
#[test]
fn salvage_keeps_the_intact_records_and_reports_the_broken_one() {
    let (name, _g, _gd) = guarded("salvage");
    let d = D::create_named(&name).unwrap();
    for k in 0..8 {
        d.insert(k, k * 10).unwrap();
    }
    let before = d.stats().unwrap();
    break_first_record(&name, before.slots);
    let report = d.salvage().unwrap();
    assert_eq!(report.kept, 7);
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert!(report.dropped[0].1.contains("checksum"), "{report:?}");
    assert!(report.generation > before.generation);
    assert_eq!(d.len().unwrap(), 7);
    let mut next = 100;
    grow_to(&d, &mut next, report.generation + 2);
    let kept = (0..8).filter(|k| d.get(k).unwrap() == Some(k * 10)).count();
    assert_eq!(kept, 7);
    drop(d);
    assert_eq!(names_with(&name), Vec::<String>::new());
}

/// `salvage` of a vec drops the broken element (later ones move down) and of a
/// namespace the broken attribute.
#[test]
fn salvage_works_for_vec_and_namespace() {
    let v = ShareableVec::<u64>::create().unwrap();
    let vname = v.name().unwrap().to_owned();
    let _gv = DataGuard(vname.clone());
    v.extend(0..5).unwrap();
    break_first_record(&vname, v.stats().unwrap().slots);
    assert!(v.get(0).is_err());
    let report = v.salvage().unwrap();
    assert_eq!((report.kept, report.dropped.len()), (4, 1));
    assert_eq!(report.dropped[0].0, 0);
    assert_eq!(v.iter().unwrap().collect::<Vec<_>>(), [1, 2, 3, 4]);

    let ns = Namespace::create().unwrap();
    let nname = ns.name().unwrap().to_owned();
    let _gn = DataGuard(nname.clone());
    ns.set("a", &1u8).unwrap();
    ns.set("b", &2u8).unwrap();
    break_first_record(&nname, ns.stats().unwrap().slots);
    let report = ns.salvage().unwrap();
    assert_eq!((report.kept, report.dropped.len()), (1, 1));
    assert_eq!(ns.len().unwrap(), 1);
}

/// Item 5: a name whose data segment names could pass 253 bytes is refused at create
/// (a 250-byte dict used to fail on its 393,216th insert); the longest accepted name
/// grows past generation 0x10 and its longest derivable name fits.
#[test]
fn names_too_long_to_grow_are_refused_at_create() {
    let long = format!("{}-{}", unique_name("n"), "x".repeat(250));
    let long = &long[..250];
    let err = D::create_named(long).unwrap_err();
    assert!(
        matches!(&err, RegionError::Shm(shm_core::Error::InvalidName { reason, .. }) if reason.contains("218")),
        "{err}"
    );
    assert!(Segment::open(long).is_err(), "nothing made");
    assert!(ShareableVec::<u8>::create_named(long).is_err());
    assert!(Namespace::create_named(long).is_err());

    let base = unique_name("n");
    let longest = format!("{base}{}", "y".repeat(MAX_CONTROL_NAME_LEN - base.len()));
    let _g = UnlinkGuard::new(longest.as_str());
    let _gd = DataGuard(longest.clone());
    assert_eq!(
        data_segment_name(&longest, u64::MAX, u64::MAX).len(),
        shm_core::MAX_NAME_LEN
    );
    let d = D::create_named(&longest).unwrap();
    // Every clear publishes a generation: past 0x10 quickly.
    for i in 0..20 {
        d.insert(i, i).unwrap();
        d.clear().unwrap();
    }
    assert!(d.stats().unwrap().generation > 0x10);
    d.insert(1, 2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

/// Item 9 (cross-process): a writer holds the lock in another process; this handle's
/// writes give up after its patience with a typed timeout, instead of waiting for ever.
#[test]
fn writes_wait_at_most_their_patience() {
    if child_role().as_deref() == Some("holder") {
        let d = D::open(&std::env::var("DICT_NAME").unwrap()).unwrap();
        d.update(1, |v| {
            eprintln!("READY");
            std::thread::sleep(Duration::from_secs(120));
            v.unwrap_or(0)
        })
        .unwrap();
        return;
    }
    let d = D::create().unwrap();
    let name = d.name().unwrap().to_owned();
    let _gd = DataGuard(name.clone());
    let mut child = child_command("writes_wait_at_most_their_patience", "holder")
        .env("DICT_NAME", &name)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(shm_core::testing::stderr_line(&mut child), "READY");
    d.set_patience(Some(Duration::from_millis(200)));
    let t = Instant::now();
    let err = d.insert(2, 2).unwrap_err();
    assert!(
        matches!(
            &err,
            RegionError::Lock {
                source: shm_sync::RawError::Timeout,
                ..
            }
        ),
        "{err}"
    );
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    assert!(d.remove(&1).is_err() && d.clear().is_err());
    // Reads never wait.
    assert_eq!(d.get(&1).unwrap(), None);
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead holder's lock is recovered (no patience needed for that).
    d.insert(2, 2).unwrap();
    assert_eq!(d.get(&2).unwrap(), Some(2));
}

/// Items 12 and 13: forged counters give `Corrupted`, not an overflow panic or a
/// length of 2^64 - 1.
#[test]
fn forged_counters_are_corrupted() {
    let d = D::create().unwrap();
    let name = d.name().unwrap().to_owned();
    let _gd = DataGuard(name.clone());
    d.insert(1, 1).unwrap();
    d.insert(2, 2).unwrap();
    let data = Segment::open(&current_data_segment(&name).unwrap()).unwrap();
    data.write_at(HEADER_LEN + D_LIVE, &u64::MAX.to_ne_bytes())
        .unwrap();
    assert!(
        matches!(d.len(), Err(RegionError::Corrupted { .. })),
        "{:?}",
        d.len()
    );
    data.write_at(HEADER_LEN + D_LIVE, &2u64.to_ne_bytes())
        .unwrap();
    assert_eq!(d.len().unwrap(), 2);
    data.write_at(HEADER_LEN + D_DEAD, &u64::MAX.to_ne_bytes())
        .unwrap();
    assert!(matches!(d.remove(&1), Err(RegionError::Corrupted { .. })));
    assert_eq!(d.get(&1).unwrap(), Some(1), "nothing changed");

    let v = ShareableVec::<u64>::create().unwrap();
    let vname = v.name().unwrap().to_owned();
    let _gv = DataGuard(vname.clone());
    v.push(1).unwrap();
    let data = Segment::open(&current_data_segment(&vname).unwrap()).unwrap();
    data.write_at(HEADER_LEN + D_LIVE, &u64::MAX.to_ne_bytes())
        .unwrap();
    assert!(
        matches!(v.len(), Err(RegionError::Corrupted { .. })),
        "{:?}",
        v.len()
    );
}

/// A creator whose data segment was overwritten still removes it when it drops: the
/// handle has that very file mapped (same inode), whatever its header says now.
#[test]
fn a_damaged_data_segment_is_still_removed_by_its_creator() {
    let name = unique_name("damaged-drop");
    let _gd = DataGuard(name.clone());
    let d = D::create_named(&name).unwrap();
    d.insert(1, 2).unwrap();
    let data = Segment::open(&current_data_segment(&name).unwrap()).unwrap();
    data.fill_at(HEADER_LEN, data.len() - HEADER_LEN, 0xff)
        .unwrap();
    drop(data);
    assert_ne!(d.get(&1).ok(), Some(Some(2)));
    drop(d);
    assert_eq!(names_with(&name), Vec::<String>::new(), "left in /dev/shm");
}
