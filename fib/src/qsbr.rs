//! Quiescent-state-based reclamation (QSBR), in the manner of DPDK's rte_rcu_qsbr.
//!
//! The writer owns a token. A reader, once per burst, loads the token (Acquire) and
//! stores it into its own cache-padded slot (Release): "I hold nothing from before this".
//! A block unlinked while the token was `t` is freed once the writer has bumped the token
//! to `t + 1` and every online reader's slot shows at least `t + 1`. Offline readers
//! (slot = `OFFLINE`) are skipped; coming back online takes a SeqCst fence so the writer
//! either sees the reader or the reader sees the unlink.

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
            token: CachePadded::new(AtomicU64::new(1)),
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
        self.readers.lock().unwrap().retain(|s| !Arc::ptr_eq(s, slot));
    }

    pub(crate) fn reader_count(&self) -> usize {
        self.readers.lock().unwrap().len()
    }

    /// Reader side, once per burst: announce a quiescent point. Returns the token seen.
    #[inline(always)]
    pub(crate) fn quiescent(&self, slot: &AtomicU64, online: &mut bool, last: &mut u64) {
        let t = self.token.load(Ordering::Acquire);
        if !*online {
            slot.store(t, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            *online = true;
            *last = t;
        } else if t != *last {
            slot.store(t, Ordering::Release);
            *last = t;
        }
    }

    pub(crate) fn offline(&self, slot: &AtomicU64, online: &mut bool) {
        slot.store(OFFLINE, Ordering::Release);
        *online = false;
    }

    /// Writer side: the token now current (blocks unlinked now are tagged `current + 1`).
    pub(crate) fn current(&self) -> u64 {
        self.token.load(Ordering::Relaxed)
    }

    /// Writer side: advance the token so readers can prove they passed the unlinks so far.
    pub(crate) fn advance(&self) -> u64 {
        let t = self.token.fetch_add(1, Ordering::SeqCst) + 1;
        fence(Ordering::SeqCst);
        t
    }

    /// Writer side: the smallest token any online reader has announced (OFFLINE if none).
    pub(crate) fn min_seen(&self) -> u64 {
        let readers = self.readers.lock().unwrap();
        readers
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(OFFLINE)
    }
}
