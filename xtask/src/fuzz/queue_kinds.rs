//! Queues: a typed queue and a byte queue damaged anywhere, and the same queues with
//! only their ring words forged (positions, sequence words, intents).

use shm_collections::{ByteQueue, Queue, QueueSize};
use shm_core::SharedObject;

use super::{T, Target, e, snapshot};

/// Queues: typed and byte queues, and their ring words forged.
pub(super) fn targets() -> Vec<Target> {
    vec![
        Target {
            kind: "Queue<u64>",
            pristine: {
                let size = QueueSize {
                    messages: 8,
                    bytes: 256,
                };
                let q = <Queue<u64> as SharedObject>::anonymous(size).unwrap();
                for i in 0..5u64 {
                    q.put(&i).unwrap();
                }
                let _ = q.get();
                snapshot(&q)
            },
            hot: Vec::new(),
            exercise: |s| {
                let q = Queue::<u64>::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats(), q.empty(), q.full());
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.put_timeout(&7, T);
                let _ = q.get_nowait();
                let _ = q.put_nowait(&8);
                let _ = q.get_many_timeout(4, T);
                Ok(())
            },
        },
        Target {
            // Messages of one and of three slots (40 payload bytes each), a wrapped ring
            // (positions past the slot count), so that sequence words, frame headers and
            // continuation slots are all in the bytes being damaged.
            kind: "ByteQueue",
            pristine: {
                let size = QueueSize {
                    messages: 8,
                    bytes: 256,
                };
                let q = <ByteQueue as SharedObject>::anonymous(size).unwrap();
                for _ in 0..6 {
                    q.put(b"wrap").unwrap();
                    q.get().unwrap();
                }
                q.put(b"hello").unwrap();
                q.put(&[7u8; 100]).unwrap();
                snapshot(&q)
            },
            hot: Vec::new(),
            exercise: |s| {
                // Timed calls only: a blocking get on a damaged, effectively empty
                // queue rightly waits for a put.
                let q = ByteQueue::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats());
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.put_timeout(b"again", T);
                let _ = q.put_timeout(&[1u8; 90], T);
                let _ = q.get_nowait();
                let _ = q.get_nowait();
                Ok(())
            },
        },
        Target {
            // The ByteQueue above with its ring words forged (positions and sequence
            // words out of range, see `forge_word`), blocking puts included: a forged
            // ring must say `Corrupted` (or time out), never block for ever.
            kind: "ByteQueue ring words",
            pristine: snapshot(&ring_queue()),
            hot: ring_words(&ring_queue(), 8, 64),
            exercise: |s| {
                let q = ByteQueue::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.stats());
                let _ = q.get_timeout(T);
                let _ = q.get_nowait();
                let _ = q.put_nowait(b"x");
                let _ = q.put_timeout(&[1u8; 90], T);
                for _ in 0..3 {
                    let _ = q.get_timeout(T);
                }
                let _ = q.get_nowait();
                Ok(())
            },
        },
        Target {
            // A typed queue, drained and wrapped, forged the same way.
            kind: "Queue<u64> ring words",
            pristine: snapshot(&ring_typed_queue()),
            hot: ring_words(&ring_typed_queue(), 8, 64),
            exercise: |s| {
                let q = Queue::<u64>::from_segment(s).map_err(e)?;
                let _ = (q.qsize(), q.empty(), q.full());
                let _ = q.put_timeout(&7, T);
                let _ = q.put_nowait(&8);
                let _ = q.get_nowait();
                let _ = q.get_many_timeout(4, T);
                let _ = q.drain();
                Ok(())
            },
        },
    ]
}

/// The ring words of a queue whose ring starts at payload offset 0: tail, head, the
/// first entry's intents (producer and consumer position and count) and every slot's
/// sequence word (slots from the control block, which these pristine objects own).
fn ring_words<T: SharedObject>(obj: &T, slots: usize, stride: usize) -> Vec<usize> {
    let o = obj.object();
    let base = o.payload_ptr() as usize - o.segment().as_ptr() as usize;
    let (table, slot0) = (base + 256, base + 256 + 64 * 64);
    let mut hot = vec![
        base,
        base + 64,
        table + 16,
        table + 24,
        table + 32,
        table + 40,
    ];
    hot.extend((0..slots).map(|i| slot0 + i * stride));
    hot
}

/// The ByteQueue of the ring-word target: 8 slots of 40 bytes, wrapped (head and tail
/// at 13), with a one-slot and a three-slot message queued.
fn ring_queue() -> ByteQueue {
    let size = QueueSize {
        messages: 8,
        bytes: 256,
    };
    let q = <ByteQueue as SharedObject>::anonymous(size).expect("a fresh queue");
    for _ in 0..13 {
        q.put(b"wrap").expect("room");
        q.get().expect("a message");
    }
    q.put(b"hello").expect("room");
    q.put(&[7u8; 100]).expect("room");
    q
}

/// The typed queue of the ring-word target: wrapped, two values queued.
fn ring_typed_queue() -> Queue<u64> {
    let size = QueueSize {
        messages: 8,
        bytes: 256,
    };
    let q = <Queue<u64> as SharedObject>::anonymous(size).expect("a fresh queue");
    for i in 0..21u64 {
        q.put(&i).expect("room");
        q.get().expect("a value");
    }
    q.put(&1).expect("room");
    q.put(&2).expect("room");
    q
}
