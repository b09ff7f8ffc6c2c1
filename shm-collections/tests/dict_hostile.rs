//! Random bytes written into every part of a dict's segments (control payload past
//! its lock, the generation, the data segment's header, index and records): every
//! operation returns a value or a typed error; none panics or hangs.

use shm_collections::ShareableDict;
use shm_core::Segment;

fn rng(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn exercise(d: &ShareableDict<String, Vec<u64>>) -> usize {
    let mut errors = 0;
    let mut count = |ok: bool| errors += usize::from(!ok);
    for k in 0..20 {
        count(d.get(&format!("k{k}")).is_ok());
    }
    count(d.len().is_ok());
    count(d.iter().is_ok());
    count(d.stats().is_ok());
    count(d.insert("new".into(), vec![1, 2, 3]).is_ok());
    count(d.update("k3".into(), |v| v.unwrap_or_default()).is_ok());
    count(d.remove("k4").is_ok());
    errors
}

#[test]
fn random_bytes_give_errors_only() {
    let mut next = rng(0x1234_5678 ^ u64::from(std::process::id()));
    let mut errors = 0;
    for round in 0..300u64 {
        let d = ShareableDict::<String, Vec<u64>>::create().unwrap();
        for k in 0..40u64 {
            d.insert(format!("k{k}"), (0..k).collect()).unwrap();
        }
        let name = d.name().unwrap().to_owned();
        let generation = d.stats().unwrap().generation;
        let ctrl = Segment::open(&name).unwrap();
        let data_name = shm_collections::region::current_data_segment(&name).unwrap();
        let inc = shm_collections::region::parse_data_segment_name(&data_name)
            .unwrap()
            .incarnation;
        let data = Segment::open(&data_name).unwrap();
        let hits = 1 + next() % 8;
        for _ in 0..hits {
            let (seg, lo) = match round % 4 {
                // Control: the header's generation word (offset 64) and the limits
                // (payload 16..64); the lock word belongs to shm-sync's own tests.
                0 => (&ctrl, if next() % 2 == 0 { 64 } else { 128 + 16 }),
                // Data: object header, data header and index.
                1 => (&data, 0),
                _ => (&data, 128 + 64),
            };
            // The control object's lock word (payload bytes 0..16) is left alone: a
            // forged word can name a live holder (one in another PID namespace counts as
            // live), and untimed writers then rightly wait for it.
            let span = match (round % 4, lo) {
                (0, 64) => 8,
                (0, _) => 48,
                (1, _) => 256,
                _ => seg.len() - lo,
            };
            let at = lo + (next() as usize % span);
            let len = (1 + next() % 8) as usize;
            let len = len.min(seg.len() - at);
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            seg.write_at(at, &bytes).unwrap();
        }
        errors += exercise(&d);
        if let Ok(again) = ShareableDict::<String, Vec<u64>>::open(&name) {
            errors += exercise(&again);
        }
        // Leave /dev/shm clean whatever the damage did to the generation.
        drop(d);
        for g in generation..generation + 3 {
            let _ = shm_core::unlink(&shm_collections::region::data_segment_name(&name, inc, g));
        }
    }
    assert!(errors > 0, "some damage was detected");
}
