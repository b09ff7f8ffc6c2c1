//! Values, arrays and the `ShareableList` of shm-collections.

use shm_collections::{Array, AtomicValue, Item, RawArray, RawValue, ShareableList, Value};
use shm_core::SharedObject;

use super::{T, Target, e, snapshot};

/// Values and arrays.
pub(super) fn cells() -> Vec<Target> {
    vec![
        Target::fresh::<Value<u64>>("Value<u64>", 7, |s| {
            // Only timed waits: a forged word can name a live holder (or one in
            // another PID namespace, which counts as live), and untimed calls such as
            // `get` then wait as long as that holder seems to live.
            let v = Value::<u64>::from_segment(s).map_err(e)?;
            if let Ok(mut g) = v.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                *g = g.wrapping_add(1);
            }
            Ok(())
        }),
        Target::fresh::<RawValue<u64>>("RawValue<u64>", 7, |s| {
            let v = RawValue::<u64>::from_segment(s).map_err(e)?;
            v.set(v.get().wrapping_add(1));
            Ok(())
        }),
        Target::fresh::<AtomicValue<u64>>("AtomicValue<u64>", 7, |s| {
            let v = AtomicValue::<u64>::from_segment(s).map_err(e)?;
            v.fetch_add(1);
            Ok(())
        }),
        Target::fresh::<Array<u32>>("Array<u32>", 5, |s| {
            let a = Array::<u32>::from_segment(s).map_err(e)?;
            if let Ok(g) = a.lock_timeout(T).or_else(|err| err.into_guard().ok_or(())) {
                let n = g.len();
                let _ = g.get(n.saturating_sub(1));
                let _ = g.to_vec();
            }
            Ok(())
        }),
        Target::fresh::<RawArray<u32>>("RawArray<u32>", 5, |s| {
            let a = RawArray::<u32>::from_segment(s).map_err(e)?;
            let n = a.len();
            let _ = a.get(n.saturating_sub(1));
            let _ = a.set(n, 1);
            let _ = a.to_vec();
            Ok(())
        }),
    ]
}

/// The CPython-compatible `ShareableList` (a foreign layout: no header).
pub(super) fn list() -> Vec<Target> {
    let list_items = [
        Item::from("howdy"),
        Item::Int(-7),
        Item::Float(2.5),
        Item::Bool(true),
        Item::None,
        Item::Bytes(b"\x00\x01".to_vec()),
    ];
    let list = <ShareableList as SharedObject>::anonymous(list_items.to_vec()).unwrap();
    vec![Target {
        kind: "ShareableList",
        pristine: snapshot(&list),
        hot: Vec::new(),
        exercise: |s| {
            let l = ShareableList::from_segment(s).map_err(e)?;
            for i in 0..l.len().min(64) {
                let _ = l.get(i);
            }
            let _ = l.format();
            let _ = l.to_vec();
            Ok(())
        },
    }]
}
