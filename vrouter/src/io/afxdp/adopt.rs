//! Taking over a previous run's AF_XDP sockets and UMEM (kept in systemd's fd store):
//! which frames their rings still hold, so that every other frame is free again.
//!
//! A frame of an adopted socket is the kernel's, or ours to take, when it sits in:
//! - the fill ring between consumer and producer (the kernel's shared consumer index
//!   lags what it took, so some of these may also be in the RX ring: counted once);
//! - the RX ring between consumer and producer (received while nobody ran);
//! - the TX ring between consumer and producer (queued, not yet sent);
//! - the TX ring just below the consumer: read by the kernel, not completed yet (one
//!   completion per TX descriptor, so `tx consumer − completion producer` of them; we
//!   wait for these to drain first and assume in-order completion for the rest);
//! - the completion ring between consumer and producer (sent, not yet taken back).
//!
//! Frames the last run had in its free list, hold queue or pending TX are on no ring:
//! free. The rings' indexes are in shared memory, so they say where the last run stopped.

use super::xsk::{Socket, Umem};
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// What a previous run left of one worker: its UMEM's memfd and its bound sockets by
/// interface and queue.
pub struct Kept {
    pub umem: OwnedFd,
    pub sockets: KeptSockets,
}

/// Bound sockets by interface and queue.
pub type KeptSockets = Vec<(String, u32, OwnedFd)>;

impl Kept {
    /// The kept UMEM and sockets, when the UMEM is usable and holds at least what
    /// `need(sockets)` says (else a new UMEM: None); `frames` is what a new one would have.
    pub fn take_umem(
        self,
        frame_size: usize,
        frames: usize,
        need: impl Fn(usize) -> usize,
    ) -> Option<(Umem, KeptSockets)> {
        match Umem::adopt(self.umem, frame_size) {
            Ok(u) if u.frames() >= need(self.sockets.len()) => {
                if u.frames() < frames {
                    tracing::info!(
                        kept = u.frames(),
                        frames,
                        "the kept UMEM has less room for endpoints added later than asked"
                    );
                }
                Some((u, self.sockets))
            }
            Ok(u) => {
                tracing::info!(
                    kept = u.frames(),
                    frames,
                    "the kept UMEM is too small; a new one"
                );
                None
            }
            Err(e) => {
                tracing::info!(error = %e, "the kept UMEM is unusable; a new one");
                None
            }
        }
    }
}

/// Frames (by index in the UMEM) an adopted socket holds.
#[derive(Debug, Default)]
pub struct Held {
    /// In its fill or RX ring: they count toward its fill target.
    pub fill_or_rx: HashSet<usize>,
    /// In its TX ring, in the kernel's hands, or in its completion ring.
    pub sending: HashSet<usize>,
}

/// TX descriptors the kernel has read from `s` and not completed yet.
fn in_kernel(s: &Socket) -> u32 {
    s.tx.consumer_index()
        .wrapping_sub(s.comp.producer_index())
        .min(s.tx.size())
}

/// Kick every socket until the TX the last run queued has completed, for at most
/// `patience` (copy-mode TX completes within the kick; a pod that stopped reading can
/// hold a frame longer).
pub fn drain_tx(sockets: &[&Socket], patience: Duration) {
    let start = Instant::now();
    loop {
        let busy: Vec<&&Socket> = sockets
            .iter()
            .filter(|s| in_kernel(s) > 0 || !s.tx.outstanding().is_empty())
            .collect();
        if busy.is_empty() || start.elapsed() >= patience {
            tracing::debug!(
                waited_ms = start.elapsed().as_secs_f64() * 1e3,
                in_kernel = ?sockets.iter().map(|s| in_kernel(s)).collect::<Vec<_>>(),
                queued = ?sockets.iter().map(|s| s.tx.outstanding().len()).collect::<Vec<_>>(),
                "the last run's TX drained"
            );
            return;
        }
        for s in busy {
            s.kick();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The frames `s` holds (see the module's comment), as frame indexes.
pub fn held_frames(s: &Socket, frame_size: usize) -> Held {
    let index = |addr: u64| addr as usize / frame_size;
    let mut held = Held::default();
    held.fill_or_rx
        .extend(s.fill.outstanding().into_iter().map(index));
    held.fill_or_rx
        .extend(s.rx.outstanding().into_iter().map(|d| index(d.addr)));
    held.sending
        .extend(s.tx.outstanding().into_iter().map(|d| index(d.addr)));
    let cons = s.tx.consumer_index();
    for k in 1..=in_kernel(s) {
        held.sending
            .insert(index(s.tx.entry(cons.wrapping_sub(k)).addr));
    }
    held.sending
        .extend(s.comp.outstanding().into_iter().map(index));
    held
}
