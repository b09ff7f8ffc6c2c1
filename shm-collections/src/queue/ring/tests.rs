//! The ring in one process: order, wrapping, threads, and crashes simulated by
//! leaving an entry's intents behind.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm_core::identity::Identity;
use shm_core::{Kind, Object, ObjectSpec, SegmentOptions};

use super::get::AFTER_NOT_READY;
use super::layout::{NONE, free, published};
use super::*;

fn ring_object(messages: usize, bytes: usize) -> (Object, Geometry) {
    let spec = ObjectSpec::new(Kind::new(Kind::USER.start + 77, "RingTest"), 1);
    let dims = Dims::new(messages, bytes).unwrap();
    let obj = Object::create(&SegmentOptions::new(), &spec, dims.ring_len(), |o| {
        Geometry::init(o, 0, dims);
        Ok::<_, shm_core::Error>(())
    })
    .unwrap();
    let geo = Geometry::attach(&obj, 0, "t").unwrap();
    (obj, geo)
}

fn is_empty(r: &QueueResult<()>) -> bool {
    matches!(r, Err(QueueError::Empty { .. }))
}

#[test]
fn a_spinner_sees_a_publish_made_right_after_its_look() {
    let (obj, geo) = ring_object(4, 256);
    let r = Ring::new(&obj, geo, "t");
    AFTER_NOT_READY.set(Some(|r: &Ring<'_>| {
        r.put(b"late", Deadline::Try, 0).unwrap()
    }));
    // Without a message the spinner would spin ~forever: a watchdog closes the ring
    // after 5 s, so a missed publish fails as `Closed` instead of hanging.
    let mut out = Vec::new();
    let o = &obj;
    let got = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        s.spawn(move || {
            if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                Ring::new(o, geo, "t").close();
            }
        });
        let got = r.get(&mut out, Deadline::Forever, u32::MAX);
        tx.send(()).unwrap();
        got
    });
    assert!(got.is_ok(), "the spinner missed the publish: {got:?}");
    assert_eq!(out, b"late");
}

#[test]
fn wraps_and_keeps_order_across_slots() {
    // 5 slots (not a power of two) of 40 bytes.
    let (obj, geo) = ring_object(5, 200);
    let r = Ring::new(&obj, geo, "t");
    assert_eq!(r.max_message_len(), 200);
    let mut out = Vec::new();
    for i in 0..60u8 {
        let a = vec![i; (i as usize * 7) % 130];
        let b = vec![!i; 3];
        r.put(&a, Deadline::Try, 0).unwrap();
        r.put(&b, Deadline::Try, 0).unwrap();
        assert_eq!(r.len(), 2);
        r.get(&mut out, Deadline::Try, 0).unwrap();
        assert_eq!(out, a);
        r.get(&mut out, Deadline::Try, 0).unwrap();
        assert_eq!(out, b);
    }
    assert!(matches!(
        r.put(&[0; 201], Deadline::Try, 0),
        Err(QueueError::TooLarge {
            len: 201,
            max: 200,
            ..
        })
    ));
    r.put(&[1; 200], Deadline::Try, 0).unwrap();
    assert!(matches!(
        r.put(b"", Deadline::Try, 0),
        Err(QueueError::Full { .. })
    ));
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, [1; 200]);
    assert_eq!(r.stats().puts, 121);
    assert_eq!(r.stats().gets, 121);
}

#[test]
fn one_slot_ring_alternates() {
    let (obj, geo) = ring_object(1, 16);
    let r = Ring::new(&obj, geo, "t");
    let mut out = Vec::new();
    for i in 0..10u8 {
        r.put(&[i], Deadline::Try, 0).unwrap();
        assert!(matches!(
            r.put(&[i], Deadline::Try, 0),
            Err(QueueError::Full { .. })
        ));
        r.get(&mut out, Deadline::Try, 0).unwrap();
        assert_eq!(out, [i]);
        assert!(is_empty(&r.get(&mut out, Deadline::Try, 0)));
    }
}

#[test]
fn threads_deliver_the_exact_multiset() {
    // 3 producers and 3 consumers, messages of 1 to 3 slots through 7 slots.
    let (obj, geo) = ring_object(7, 7 * 40);
    const PER: u32 = 3000;
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for p in 0..3u32 {
            let obj = &obj;
            s.spawn(move || {
                let r = Ring::new(obj, geo, "t");
                for i in 0..PER {
                    let mut m = vec![0u8; 8 + (i as usize * 13) % 100];
                    m[..4].copy_from_slice(&p.to_le_bytes());
                    m[4..8].copy_from_slice(&i.to_le_bytes());
                    r.put(&m, Deadline::Forever, 50).unwrap();
                }
            });
        }
        for _ in 0..3 {
            let (obj, seen) = (&obj, &seen);
            s.spawn(move || {
                let r = Ring::new(obj, geo, "t");
                let mut out = Vec::new();
                let mut mine = Vec::new();
                loop {
                    match r.get(&mut out, Deadline::timeout(Duration::from_millis(500)), 50) {
                        Ok(()) => {
                            let p = u32::from_le_bytes(out[..4].try_into().unwrap());
                            let i = u32::from_le_bytes(out[4..8].try_into().unwrap());
                            assert_eq!(out.len(), 8 + (i as usize * 13) % 100);
                            mine.push((p, i));
                        }
                        Err(QueueError::Empty { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                // FIFO per producer within one consumer.
                for p in 0..3 {
                    let v: Vec<u32> = mine.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                    assert!(v.windows(2).all(|w| w[0] < w[1]));
                }
                seen.lock().unwrap().extend(mine);
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    let want: Vec<(u32, u32)> = (0..3).flat_map(|p| (0..PER).map(move |i| (p, i))).collect();
    assert_eq!(seen, want);
    let r = Ring::new(&obj, geo, "t");
    assert_eq!(
        (r.stats().puts, r.stats().gets, r.stats().lost),
        (9000, 9000, 0)
    );
}

/// A thread claims `k` slots at the tail as a producer, writes a header in each,
/// publishes the continuations if `continuations`, and ends (dies) without
/// publishing the first. Returns the position.
fn die_mid_put(obj: &Object, geo: Geometry, k: u64, continuations: bool) -> u64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = Ring::new(obj, geo, "t");
            let me = r.me().unwrap();
            let t = r.ctl.tail.load(Ordering::Relaxed);
            me.prod_k.store(k, Ordering::Relaxed);
            me.prod_pos.store(t, Ordering::Release);
            r.ctl.tail.store(t + k, Ordering::Release);
            for j in 0..k {
                r.word(t + j, 1).store(t, Ordering::Relaxed);
                r.word(t + j, 2)
                    .store((40 * k) | (k << 32), Ordering::Relaxed);
            }
            if continuations {
                for j in 1..k {
                    r.seq(t + j).store(published(t + j), Ordering::Release);
                }
            }
            t
        })
        .join()
        .unwrap()
    })
}

#[test]
fn a_dead_producers_half_written_message_is_never_delivered() {
    let (obj, geo) = ring_object(8, 8 * 40);
    let r = Ring::new(&obj, geo, "t");
    r.put(b"before", Deadline::Try, 0).unwrap();
    die_mid_put(&obj, geo, 3, true);
    die_mid_put(&obj, geo, 2, false);
    r.put(b"after", Deadline::Try, 0).unwrap();
    let mut out = Vec::new();
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, b"before");
    // The dead producers' slots are tombstoned (or skipped as orphans), never read.
    r.get(&mut out, Deadline::timeout(Duration::from_secs(5)), 0)
        .unwrap();
    assert_eq!(out, b"after");
    assert!(is_empty(&r.get(&mut out, Deadline::Try, 0)));
    // Its first slot and the unpublished continuation were buried (3), the published
    // continuations skipped; every slot is usable again.
    assert_eq!(r.stats().recovered, 3);
    assert_eq!(r.stats().lost, 0);
    for i in 0..8u8 {
        r.put(&[i], Deadline::Try, 0).unwrap();
    }
    for i in 0..8u8 {
        r.get(&mut out, Deadline::Try, 0).unwrap();
        assert_eq!(out, [i]);
    }
}

#[test]
fn a_live_producers_claim_is_waited_for_not_buried() {
    let (obj, geo) = ring_object(4, 4 * 40);
    let obj = &obj;
    let (claimed_tx, claimed_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let r = Ring::new(obj, geo, "t");
            let me = r.me().unwrap();
            me.prod_k.store(1, Ordering::Relaxed);
            me.prod_pos.store(0, Ordering::Release);
            r.ctl.tail.store(1, Ordering::Release);
            claimed_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            r.word(0, 1).store(0, Ordering::Relaxed);
            r.word(0, 2).store(1 | 1 << 32, Ordering::Relaxed);
            // SAFETY: the payload of slot 0 lies in the ring.
            unsafe { shm_core::copy_to_shared(b"x", r.slot(0).add(24)) };
            r.seq(0).store(published(0), Ordering::Release);
            me.prod_pos.store(NONE, Ordering::Release);
        });
        claimed_rx.recv().unwrap();
        let r = Ring::new(obj, geo, "t");
        let mut out = Vec::new();
        let got = r.get(&mut out, Deadline::timeout(Duration::from_millis(120)), 0);
        assert!(matches!(got, Err(QueueError::Empty { .. })), "{got:?}");
        assert_eq!(r.stats().recovered, 0);
        go_tx.send(()).unwrap();
        r.get(&mut out, Deadline::timeout(Duration::from_secs(5)), 0)
            .unwrap();
        assert_eq!(out, b"x");
    });
}

#[test]
fn a_dead_consumers_claimed_message_is_freed_and_counted_lost() {
    let (obj, geo) = ring_object(2, 80);
    let r = Ring::new(&obj, geo, "t");
    r.put(b"a", Deadline::Try, 0).unwrap();
    r.put(b"b", Deadline::Try, 0).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = Ring::new(&obj, geo, "t");
            let me = r.me().unwrap();
            me.cons_k.store(1, Ordering::Relaxed);
            me.cons_pos.store(0, Ordering::Release);
            r.ctl.head.store(1, Ordering::Release);
        })
        // join, not just the end of the scope: the OS thread must be gone.
        .join()
        .unwrap();
    });
    let mut out = Vec::new();
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, b"b");
    // Position 2 needs slot 0, which the dead consumer never released.
    r.put(b"c", Deadline::Try, 0).unwrap();
    r.put(b"d", Deadline::Try, 0).unwrap();
    assert_eq!(r.stats().lost, 1);
    assert_eq!(r.stats().recovered, 1);
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, b"c");
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, b"d");
}

#[test]
fn a_full_table_of_live_threads_is_a_typed_error_and_dead_entries_are_reused() {
    let (obj, geo) = ring_object(2, 80);
    let r = Ring::new(&obj, geo, "t");
    let p = Identity::current_process();
    for e in r.entries() {
        e.owner.store(
            u64::from(p.id) | u64::from(p.token) << 32,
            Ordering::Relaxed,
        );
        e.pidns.store(p.pidns, Ordering::Relaxed);
    }
    r.ctl.high_water.store(ENTRIES as u32, Ordering::Relaxed);
    let res = std::thread::scope(|s| {
        s.spawn(|| Ring::new(&obj, geo, "t").put(b"x", Deadline::Try, 0))
            .join()
            .unwrap()
    });
    assert!(
        matches!(
            res,
            Err(QueueError::TooManyParticipants { max: ENTRIES, .. })
        ),
        "{res:?}"
    );
    // An entry of a dead thread (id 0 names nobody) is taken over.
    r.entry(5).owner.store(1 << 32, Ordering::Relaxed);
    r.entry(5).puts.store(7, Ordering::Relaxed);
    std::thread::scope(|s| {
        s.spawn(|| Ring::new(&obj, geo, "t").put(b"x", Deadline::Try, 0))
            .join()
            .unwrap()
    })
    .unwrap();
    assert_eq!(r.stats().puts, 8, "the dead owner's count is kept");
}

#[test]
fn hostile_state_gives_errors_not_hangs() {
    let (obj, geo) = ring_object(4, 160);
    let r = Ring::new(&obj, geo, "t");
    let mut out = Vec::new();
    // A frame header that cannot be right: dropped with an error, the ring goes on.
    r.put(b"abc", Deadline::Try, 0).unwrap();
    r.put(b"def", Deadline::Try, 0).unwrap();
    r.word(0, 2).store(u64::MAX, Ordering::Relaxed);
    assert!(matches!(
        r.get(&mut out, Deadline::Try, 0),
        Err(QueueError::Corrupted { .. })
    ));
    assert_eq!(r.stats().lost, 1);
    r.get(&mut out, Deadline::Try, 0).unwrap();
    assert_eq!(out, b"def");
    // A sequence word ahead of the head and of the tail.
    let h = r.ctl.head.load(Ordering::Relaxed);
    r.seq(h).store(published(h + 40), Ordering::Relaxed);
    assert!(matches!(
        r.get(&mut out, Deadline::Try, 0),
        Err(QueueError::Corrupted { .. })
    ));
    assert!(matches!(
        r.put(b"x", Deadline::Try, 0),
        Err(QueueError::Corrupted { .. })
    ));
    // A tail far ahead of the head with nothing written: timed calls time out.
    r.seq(h).store(free(h), Ordering::Relaxed);
    r.ctl.tail.store(h + 3, Ordering::Relaxed);
    let t = Instant::now();
    let got = r.get(&mut out, Deadline::timeout(Duration::from_millis(60)), 10);
    assert!(!matches!(got, Ok(())), "{got:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // A forged high-water mark only bounds the scan.
    r.ctl.high_water.store(u32::MAX, Ordering::Relaxed);
    let _ = r.stats();
    let _ = r.len();
    // Dims that do not fit the payload are refused at attach.
    r.ctl.slots.store(1 << 40, Ordering::Relaxed);
    assert!(matches!(
        Geometry::attach(&obj, 0, "t"),
        Err(QueueError::Corrupted { .. })
    ));
}
