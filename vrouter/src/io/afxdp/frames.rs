//! A UMEM frame as bytes: lent to the pipeline for a burst, its length set for TX.

use super::xsk::{Desc, Umem};
use crate::burst::BURST;

/// The whole buffer of a frame we own (lent to the pipeline), from its data address to
/// the frame's end. The slice lives no longer than the borrows of the UMEM and of the
/// frame's descriptor: within the burst (or the retry) that holds the descriptor.
#[inline]
pub fn buffer<'a>(umem: &'a Umem, desc: &'a mut Desc) -> &'a mut [u8] {
    // SAFETY: `desc` is a frame of this UMEM that we own (off every ring), so nothing
    // else reads or writes it, and no other slice of it is live (each frame is lent
    // once per burst, and the `&mut desc` borrow is held as long as the slice).
    unsafe { umem.data(desc.addr) }
}

/// Record that these frames are now in the rings of port `i` (`None`: with us).
#[inline]
pub fn mark(owner: &mut [u16], frame_size: usize, descs: &[Desc], ring: Option<usize>) {
    let v = ring.map_or(0, |i| (i + 1) as u16);
    for d in descs {
        if let Some(o) = owner.get_mut(d.addr as usize / frame_size) {
            *o = v;
        }
    }
}

/// Frames handed over by other workers that wait for `rx_handoffs` at most.
pub const HANDOFF_ROOM: usize = 4 * BURST;

pub fn letter_room<T>(arrived: &[T]) -> usize {
    HANDOFF_ROOM.saturating_sub(arrived.len())
}
