//! The per-thread mapping cache of the lock-free read path.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::layout::Mapped;

/// Handles met so far in this process: names a handle in the [`ReadCache`] (an
/// address could be reused by the next handle).
pub(super) static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// Handles per thread whose mapping the [`ReadCache`] keeps.
const CACHE_WAYS: usize = 4;

/// Each thread's most recently used data-segment mappings, by handle id: the lock-free
/// read path runs on one of these instead of taking the handle's `RwLock` and cloning
/// its `Arc` (two read-modify-writes per read on a line every reading thread of the
/// process shares).
///
/// Why this is sound: an entry holds an `Arc`, so the mapping it names lives while the
/// entry does, whatever the handle or other threads do; a read borrows the entry
/// (`RefCell`, this thread only) for the time it runs on it. An entry is used only
/// when its generation is the one the control object names (the same check as with
/// the handle's own mapping: id and generation name one segment). Replacing an entry
/// needs the cell mutably; a read that finds it borrowed (a decoder re-entering a
/// read on this thread) or the thread-local gone (thread exit) uses the handle's
/// mapping directly, as before.
///
/// The cost: a thread keeps the last mapping it read of up to [`CACHE_WAYS`] handles
/// alive until it reads through other handles or exits, even after the handle is
/// dropped (the dropping thread's own entry goes with the handle). The memory of an
/// unlinked, published-over segment is thus freed late, never leaked: each thread holds
/// at most `CACHE_WAYS` mappings.
pub(super) struct ReadCache {
    ways: [Option<(u64, Arc<Mapped>)>; CACHE_WAYS],
    /// The way the next miss replaces (round robin).
    next: usize,
}

impl ReadCache {
    #[inline]
    pub(super) fn find(&self, id: u64) -> Option<&Arc<Mapped>> {
        self.ways
            .iter()
            .flatten()
            .find(|(h, _)| *h == id)
            .map(|(_, m)| m)
    }

    pub(super) fn put(&mut self, id: u64, m: Arc<Mapped>) {
        if let Some(way) = self.ways.iter_mut().flatten().find(|(h, _)| *h == id) {
            way.1 = m;
            return;
        }
        self.ways[self.next % CACHE_WAYS] = Some((id, m));
        self.next = self.next.wrapping_add(1);
    }

    pub(super) fn forget(&mut self, id: u64) {
        for way in &mut self.ways {
            if way.as_ref().is_some_and(|(h, _)| *h == id) {
                *way = None;
            }
        }
    }
}

thread_local! {
    pub(super) static READ_CACHE: RefCell<ReadCache> = const {
        RefCell::new(ReadCache {
            ways: [None, None, None, None],
            next: 0,
        })
    };
}
