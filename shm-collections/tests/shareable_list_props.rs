//! ShareableList against a `Vec<Item>` model: random operation sequences in one
//! process, and split between this process and a child (the test binary re-run in a
//! role) that applies the second half of the operations to the same list.

use proptest::prelude::*;
use shm_collections::{Item, ListError, ShareableList};
use shm_core::testing::{UnlinkGuard, child_role, run_child, unique_name};

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Item),
    SetAt(isize, Item),
    Get(usize),
    At(isize),
    GetStrInto(usize),
    Count(Item),
}

fn arb_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        any::<i64>().prop_map(Item::Int),
        any::<f64>()
            .prop_filter("NaN != NaN", |x| !x.is_nan())
            .prop_map(Item::Float),
        any::<bool>().prop_map(Item::Bool),
        // Short and long, ASCII and not, and now and then a trailing NUL.
        "[a-zé日\\x00]{0,20}".prop_map(Item::Str),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Item::Bytes),
        Just(Item::None),
    ]
}

fn arb_op(len: usize) -> impl Strategy<Value = Op> {
    let idx = 0..len + 2;
    let sidx = -(len as isize) - 2..len as isize + 2;
    prop_oneof![
        4 => (idx.clone(), arb_item()).prop_map(|(i, v)| Op::Set(i, v)),
        1 => (sidx.clone(), arb_item()).prop_map(|(i, v)| Op::SetAt(i, v)),
        2 => idx.clone().prop_map(Op::Get),
        1 => sidx.prop_map(Op::At),
        1 => idx.prop_map(Op::GetStrInto),
        1 => arb_item().prop_map(Op::Count),
    ]
}

fn arb_case() -> impl Strategy<Value = (Vec<Item>, Vec<Op>)> {
    prop::collection::vec(arb_item(), 0..10).prop_flat_map(|items| {
        let ops = prop::collection::vec(arb_op(items.len()), 0..40);
        (Just(items), ops)
    })
}

/// Whether CPython's format holds a str/bytes faithfully (no trailing NUL).
fn blob(item: &Item) -> Option<&[u8]> {
    match item {
        Item::Str(s) => Some(s.as_bytes()),
        Item::Bytes(b) => Some(b),
        _ => None,
    }
}

fn storable(item: &Item) -> bool {
    blob(item).is_none_or(|b| b.last() != Some(&0))
}

/// The model: items and each slot's capacity.
struct Model {
    items: Vec<Item>,
    caps: Vec<usize>,
}

impl Model {
    fn new(items: &[Item]) -> Self {
        let caps = items
            .iter()
            .map(|v| blob(v).map_or(8, |b| 8 * (b.len() / 8 + 1)))
            .collect();
        Self {
            items: items.to_vec(),
            caps,
        }
    }

    fn resolve(&self, i: isize) -> Option<usize> {
        let len = self.items.len() as isize;
        let i = if i < 0 { i + len } else { i };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Applies `op` to the list and the model and checks they agree.
    fn apply(&mut self, sl: &mut ShareableList, op: &Op) {
        let snapshot = |sl: &ShareableList| {
            let mut buf = vec![0; sl.segment().len()];
            sl.segment().read_at(0, &mut buf).unwrap();
            buf
        };
        match op {
            Op::Set(_, v) | Op::SetAt(_, v) => {
                let index = match op {
                    Op::Set(i, _) => (*i < self.items.len()).then_some(*i),
                    Op::SetAt(i, _) => self.resolve(*i),
                    _ => unreachable!(),
                };
                let before = snapshot(sl);
                let result = match op {
                    Op::Set(i, v) => sl.set(*i, v.clone()),
                    Op::SetAt(i, v) => sl.set_at(*i, v.clone()),
                    _ => unreachable!(),
                };
                let failed = result.is_err();
                match (index, result) {
                    (None, Err(ListError::IndexOutOfRange { len, .. })) => {
                        assert_eq!(len, self.items.len())
                    }
                    (Some(_), Err(ListError::TrailingNul { .. })) => assert!(!storable(v)),
                    (
                        Some(i),
                        Err(ListError::SlotTooSmall {
                            capacity, needed, ..
                        }),
                    ) => {
                        assert_eq!(capacity, self.caps[i]);
                        assert_eq!(Some(needed), blob(v).map(<[u8]>::len));
                        assert!(needed > capacity);
                    }
                    (Some(i), Ok(())) => {
                        assert!(storable(v));
                        assert!(blob(v).is_none_or(|b| b.len() <= self.caps[i]));
                        self.items[i] = v.clone();
                    }
                    (index, result) => panic!("{op:?} at {index:?}: {result:?}"),
                }
                if failed {
                    assert_eq!(snapshot(sl), before, "{op:?} wrote despite an error");
                }
            }
            Op::Get(i) => match sl.get(*i) {
                Ok(v) => assert_eq!(Some(&v), self.items.get(*i)),
                Err(ListError::IndexOutOfRange { .. }) => assert!(*i >= self.items.len()),
                Err(e) => panic!("{e}"),
            },
            Op::At(i) => match (self.resolve(*i), sl.at(*i)) {
                (Some(j), Ok(v)) => assert_eq!(v, self.items[j]),
                (None, Err(ListError::IndexOutOfRange { index, .. })) => assert_eq!(index, *i),
                (j, r) => panic!("at({i}) -> {j:?}: {r:?}"),
            },
            Op::GetStrInto(i) => {
                let mut s = String::from("junk");
                match (self.items.get(*i), sl.get_str_into(*i, &mut s)) {
                    (Some(Item::Str(want)), Ok(())) => assert_eq!(&s, want),
                    (Some(_), Err(ListError::TypeMismatch { .. })) => {}
                    (None, Err(ListError::IndexOutOfRange { .. })) => {}
                    (m, r) => panic!("get_str_into({i}) on {m:?}: {r:?}"),
                }
            }
            Op::Count(v) => {
                let want = self.items.iter().filter(|x| x.py_eq(v)).count();
                assert_eq!(sl.count(v).unwrap(), want);
                match sl.index(v) {
                    Ok(i) => assert!(self.items[i].py_eq(v) && want > 0),
                    Err(ListError::ValueNotFound { .. }) => assert_eq!(want, 0),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    /// Applies `op` to the model alone (the other process applied it to the list).
    fn apply_model(&mut self, op: &Op) {
        let (index, v) = match op {
            Op::Set(i, v) => ((*i < self.items.len()).then_some(*i), v),
            Op::SetAt(i, v) => (self.resolve(*i), v),
            _ => return,
        };
        if let Some(i) = index {
            if storable(v) && blob(v).is_none_or(|b| b.len() <= self.caps[i]) {
                self.items[i] = v.clone();
            }
        }
    }

    fn check(&self, sl: &ShareableList) {
        assert_eq!(sl.to_vec().unwrap(), self.items);
        for (i, cap) in self.caps.iter().enumerate() {
            assert_eq!(sl.slot_capacity(i).unwrap(), *cap);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn single_process_matches_vec_model((items, ops) in arb_case()) {
        let created = ShareableList::create(items.clone());
        if !items.iter().all(storable) {
            let refused = matches!(created, Err(ListError::TrailingNul { .. }));
            prop_assert!(refused);
            return Ok(());
        }
        let mut sl = created.unwrap();
        let mut model = Model::new(&items);
        for op in &ops {
            model.apply(&mut sl, op);
        }
        model.check(&sl);
        let reopened = ShareableList::open(sl.name().unwrap()).unwrap();
        model.check(&reopened);
    }
}

// ---- across processes: ops serialised for the child ----

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn enc_item(v: &Item) -> String {
    match v {
        Item::Int(x) => format!("i{x}"),
        Item::Float(x) => format!("f{}", x.to_bits()),
        Item::Bool(x) => format!("b{}", u8::from(*x)),
        Item::Str(s) => format!("s{}", hex(s.as_bytes())),
        Item::Bytes(b) => format!("y{}", hex(b)),
        Item::None => "n".into(),
    }
}

fn dec_item(s: &str) -> Item {
    let (tag, rest) = s.split_at(1);
    match tag {
        "i" => Item::Int(rest.parse().unwrap()),
        "f" => Item::Float(f64::from_bits(rest.parse().unwrap())),
        "b" => Item::Bool(rest == "1"),
        "s" => Item::Str(String::from_utf8(unhex(rest)).unwrap()),
        "y" => Item::Bytes(unhex(rest)),
        _ => Item::None,
    }
}

fn enc_ops(items: &[Item], ops: &[Op]) -> String {
    let items: Vec<String> = items.iter().map(enc_item).collect();
    let ops: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::Set(i, v) => format!("S {i} {}", enc_item(v)),
            Op::SetAt(i, v) => format!("T {i} {}", enc_item(v)),
            Op::Get(i) => format!("G {i}"),
            Op::At(i) => format!("A {i}"),
            Op::GetStrInto(i) => format!("R {i}"),
            Op::Count(v) => format!("C {}", enc_item(v)),
        })
        .collect();
    format!("{}|{}", items.join(" "), ops.join(";"))
}

fn dec_ops(s: &str) -> (Vec<Item>, Vec<Op>) {
    let (items, ops) = s.split_once('|').unwrap();
    let items = items.split_whitespace().map(dec_item).collect();
    let ops = ops
        .split(';')
        .filter(|o| !o.is_empty())
        .map(|o| {
            let mut p = o.split(' ');
            let (tag, a, b) = (p.next().unwrap(), p.next().unwrap(), p.next());
            match tag {
                "S" => Op::Set(a.parse().unwrap(), dec_item(b.unwrap())),
                "T" => Op::SetAt(a.parse().unwrap(), dec_item(b.unwrap())),
                "G" => Op::Get(a.parse().unwrap()),
                "A" => Op::At(a.parse().unwrap()),
                "R" => Op::GetStrInto(a.parse().unwrap()),
                _ => Op::Count(dec_item(a)),
            }
        })
        .collect();
    (items, ops)
}

const TEST: &str = "cross_process_matches_vec_model";

/// The child: replays the first half on the model only, checks the list the parent
/// left, applies the second half to the list.
fn child() {
    let name = std::env::var("SL_NAME").unwrap();
    let (items, ops) = dec_ops(&std::env::var("SL_OPS").unwrap());
    let half = ops.len() / 2;
    let mut sl = ShareableList::open(&name).unwrap();
    let mut model = Model::new(&items);
    for op in &ops[..half] {
        model.apply_model(op);
    }
    model.check(&sl);
    for op in &ops[half..] {
        model.apply(&mut sl, op);
    }
    model.check(&sl);
    // Tell the parent this role really ran (a filter typo would run no test at all).
    let done = shm_core::Segment::open(&std::env::var("SL_DONE").unwrap()).unwrap();
    done.write_at(0, &((ops.len() - half) as u64 + 1).to_ne_bytes())
        .unwrap();
}

#[test]
fn cross_process_matches_vec_model() {
    if child_role().as_deref() == Some("sl-child") {
        child();
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = arb_case().prop_filter("storable", |(items, _)| items.iter().all(storable));
    runner
        .run(&strategy, |(items, ops)| {
            let name = unique_name("sl-prop");
            let _guard = UnlinkGuard::new(&name);
            let mut sl = ShareableList::create_named(&name, items.clone()).unwrap();
            let mut model = Model::new(&items);
            let half = ops.len() / 2;
            for op in &ops[..half] {
                model.apply(&mut sl, op);
            }
            let encoded = enc_ops(&items, &ops);
            let done = shm_core::Segment::create(8).unwrap();
            run_child(
                TEST,
                "sl-child",
                &[
                    ("SL_NAME", name.as_str()),
                    ("SL_OPS", encoded.as_str()),
                    ("SL_DONE", done.name().unwrap()),
                ],
            );
            let mut applied = [0u8; 8];
            done.read_at(0, &mut applied).unwrap();
            let applied = u64::from_ne_bytes(applied);
            assert_eq!(
                applied,
                (ops.len() - half) as u64 + 1,
                "the child did not run its half"
            );
            // The child's writes, seen through this process's handle.
            for op in &ops[half..] {
                model.apply_model(op);
            }
            model.check(&sl);
            Ok(())
        })
        .unwrap();
}

#[test]
fn ops_encoding_round_trips() {
    let items = vec![
        Item::Int(-3),
        Item::from("é x"),
        Item::None,
        Item::Float(-0.0),
    ];
    let ops = vec![
        Op::Set(1, Item::Bytes(vec![0, 1])),
        Op::At(-1),
        Op::Count(Item::Bool(true)),
    ];
    let (i2, o2) = dec_ops(&enc_ops(&items, &ops));
    assert_eq!(i2, items);
    assert_eq!(format!("{o2:?}"), format!("{ops:?}"));
}
