//! Runs of one operation sequence split between this process and child processes
//! (the dict and vec model tests): [`Replay`] checks an object against a std model
//! through such a run.

use std::ops::Range;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shm_core::Segment;
use shm_core::testing::run_child;

/// Runs `ops` on the object named `object` in four quarters: here, in a child, here,
/// in a child. Each child is a fresh process (test `test`, role `role`) that maps
/// whatever the previous writer left and runs its quarter through [`child_share`].
/// `step(range, by_child)` applies a quarter here (`false`), or brings the model up to
/// date after a child ran it (`true`).
pub fn run_split<Op: Serialize>(
    test: &str,
    role: &str,
    object: &str,
    ops: &[Op],
    mut step: impl FnMut(Range<usize>, bool),
) {
    let mut encoded = Vec::new();
    shm_collections::codec::encode(ops, &mut encoded).unwrap();
    let ops_seg = Segment::create(8 + encoded.len()).unwrap();
    ops_seg
        .write_at(0, &(encoded.len() as u64).to_ne_bytes())
        .unwrap();
    ops_seg.write_at(8, &encoded).unwrap();
    let done = Segment::create(8).unwrap();
    let n = ops.len();
    let cuts = [0, n / 4, n / 2, 3 * n / 4, n];
    for (part, w) in cuts.windows(2).enumerate() {
        let (start, end) = (w[0], w[1]);
        if part % 2 == 0 {
            step(start..end, false);
            continue;
        }
        let (s, e) = (start.to_string(), end.to_string());
        run_child(
            test,
            role,
            &[
                ("SPLIT_OBJECT", object),
                ("SPLIT_OPS", ops_seg.name().unwrap()),
                ("SPLIT_DONE", done.name().unwrap()),
                ("SPLIT_START", s.as_str()),
                ("SPLIT_END", e.as_str()),
            ],
        );
        let mut got = [0u8; 8];
        done.read_at(0, &mut got).unwrap();
        assert_eq!(
            u64::from_ne_bytes(got),
            end as u64,
            "the child did not run its share"
        );
        step(start..end, true);
    }
}

/// A child's share of a [`run_split`]: the object's name, all the operations and the
/// range this child runs. Call [`Share::done`] once it ran them.
pub struct Share<Op> {
    pub object: String,
    pub ops: Vec<Op>,
    pub range: Range<usize>,
    done: String,
}

/// The share of the child this process is.
pub fn child_share<Op: DeserializeOwned>() -> Share<Op> {
    let var = |k: &str| std::env::var(k).unwrap();
    let ops_seg = Segment::open(&var("SPLIT_OPS")).unwrap();
    let mut len = [0u8; 8];
    ops_seg.read_at(0, &mut len).unwrap();
    let mut bytes = vec![0u8; u64::from_ne_bytes(len) as usize];
    ops_seg.read_at(8, &mut bytes).unwrap();
    Share {
        object: var("SPLIT_OBJECT"),
        ops: shm_collections::codec::decode(&bytes).unwrap(),
        range: var("SPLIT_START").parse().unwrap()..var("SPLIT_END").parse().unwrap(),
        done: var("SPLIT_DONE"),
    }
}

impl<Op> Share<Op> {
    /// Reports the share run (the parent checks it).
    pub fn done(self) {
        let done = Segment::open(&self.done).unwrap();
        done.write_at(0, &(self.range.end as u64).to_ne_bytes())
            .unwrap();
    }
}

/// A model test's three steps, for [`Replay::child`] and [`Replay::run`]: apply an
/// operation to the model only, to the object and the model, and check that the
/// object agrees with the model.
pub struct Replay<O, Op, M> {
    pub apply_model: fn(&mut M, &Op),
    pub apply: fn(&O, &mut M, &Op),
    pub check: fn(&O, &M),
}

impl<O, Op: Serialize + DeserializeOwned, M: Default> Replay<O, Op, M> {
    /// A child's share of [`Replay::run`]: replays the ops before its range on a
    /// model, checks that the object (`open`ed by name, written by the parent and
    /// earlier children) agrees, applies its range to object and model, checks again
    /// and reports back.
    pub fn child(&self, open: impl FnOnce(&str) -> O) {
        let share = child_share::<Op>();
        let object = open(&share.object);
        let mut model = M::default();
        for op in &share.ops[..share.range.start] {
            (self.apply_model)(&mut model, op);
        }
        (self.check)(&object, &model);
        for op in &share.ops[share.range.clone()] {
            (self.apply)(&object, &mut model, op);
        }
        (self.check)(&object, &model);
        share.done();
    }

    /// Runs `ops` on `object` (named `name`) in four quarters: parent, child, parent,
    /// child (each child a fresh process of test `test` in `role` that maps whatever
    /// generation the previous writer left), then checks object and model agree here.
    pub fn run(&self, test: &str, role: &str, object: &O, name: &str, ops: &[Op]) {
        let mut model = M::default();
        run_split(test, role, name, ops, |range, by_child| {
            for op in &ops[range] {
                if by_child {
                    (self.apply_model)(&mut model, op);
                } else {
                    (self.apply)(object, &mut model, op);
                }
            }
        });
        (self.check)(object, &model);
    }
}
