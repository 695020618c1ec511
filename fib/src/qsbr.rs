//! Quiescent-state-based reclamation (QSBR), in the manner of DPDK's rte_rcu_qsbr.
//!
//! The writer owns a token. A reader, once per burst, loads the token (Acquire) and
//! stores it into its own cache-padded slot (Release): "I hold nothing from before this".
//! A block unlinked while the token was `t` is freed once the writer has bumped the token
//! to `t + 1` and every online reader's slot shows at least `t + 1`. Offline readers
//! (slot = `OFFLINE`) are skipped; coming back online takes a SeqCst fence so the writer
//! either sees the reader or the reader sees the unlink.
//!
//! The token's low bit is not part of the epoch: it carries a hint from the writer
//! (which batch-lookup method suits the table's size), so readers get it with the one
//! atomic load they already do per burst. Epoch = token >> 1.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) const OFFLINE: u64 = u64::MAX;

pub(crate) struct Domain {
    token: CachePadded<AtomicU64>,
    /// Registered readers. Locked only to register, unregister and scan (writer side).
    readers: Mutex<Vec<Arc<CachePadded<AtomicU64>>>>,
}

impl Domain {
    pub(crate) fn new() -> Domain {
        Domain {
            token: CachePadded::new(AtomicU64::new(1 << 1)),
            readers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn register(&self) -> Arc<CachePadded<AtomicU64>> {
        let slot = Arc::new(CachePadded::new(AtomicU64::new(OFFLINE)));
        self.readers.lock().unwrap().push(slot.clone());
        slot
    }

    pub(crate) fn unregister(&self, slot: &Arc<CachePadded<AtomicU64>>) {
        slot.store(OFFLINE, Ordering::Release);
        self.readers
            .lock()
            .unwrap()
            .retain(|s| !Arc::ptr_eq(s, slot));
    }

    pub(crate) fn reader_count(&self) -> usize {
        self.readers.lock().unwrap().len()
    }

    /// Reader side, once per burst: announce a quiescent point. Returns the writer's hint.
    #[inline(always)]
    pub(crate) fn quiescent(&self, slot: &AtomicU64, online: &mut bool, last: &mut u64) -> bool {
        let t = self.token.load(Ordering::Acquire);
        let epoch = t >> 1;
        if !*online {
            slot.store(epoch, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            *online = true;
            *last = epoch;
        } else if epoch != *last {
            slot.store(epoch, Ordering::Release);
            *last = epoch;
        }
        t & 1 != 0
    }

    pub(crate) fn offline(&self, slot: &AtomicU64, online: &mut bool) {
        slot.store(OFFLINE, Ordering::Release);
        *online = false;
    }

    /// Writer side: the epoch now current (blocks unlinked now are tagged `current + 1`).
    pub(crate) fn current(&self) -> u64 {
        self.token.load(Ordering::Relaxed) >> 1
    }

    /// Writer side: advance the epoch so readers can prove they passed the unlinks so far.
    pub(crate) fn advance(&self) -> u64 {
        let t = self.token.fetch_add(2, Ordering::SeqCst) + 2;
        fence(Ordering::SeqCst);
        t >> 1
    }

    /// Writer side: set the hint readers receive with the token.
    pub(crate) fn set_hint(&self, on: bool) {
        if on {
            self.token.fetch_or(1, Ordering::Release);
        } else {
            self.token.fetch_and(!1, Ordering::Release);
        }
    }

    /// Writer side: the smallest epoch any online reader has announced (OFFLINE if none).
    pub(crate) fn min_seen(&self) -> u64 {
        let readers = self.readers.lock().unwrap();
        readers
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(OFFLINE)
    }
}
