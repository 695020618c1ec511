//! A UMEM frame as bytes: lent to the pipeline for a burst, its length set for TX.

use crate::burst::BURST;
use xsk_rs::{FrameDesc, Umem};

/// The whole buffer of a frame we own (lent to the pipeline), from offset 0. The slice
/// lives no longer than the borrows of the UMEM and of the frame's descriptor: within
/// the burst (or the retry) that holds the descriptor.
#[inline]
pub fn buffer<'a>(umem: &'a Umem, desc: &'a mut FrameDesc) -> &'a mut [u8] {
    // SAFETY: `desc` is a frame of this UMEM that we own (off every ring), so nothing
    // else reads or writes it, and no other slice of it is live (each frame is lent
    // once per burst); the slice cannot outlive the borrow of the mapped UMEM.
    unsafe {
        let mut data = umem.data_mut(desc);
        let mut cursor = data.cursor();
        let cap = cursor.buf_len();
        cursor.set_pos(cap);
        let s = data.contents_mut();
        std::slice::from_raw_parts_mut(s.as_mut_ptr(), s.len())
    }
}

#[inline]
pub fn set_len(umem: &Umem, desc: &mut FrameDesc, len: usize) {
    // SAFETY: as in `buffer`: we own the frame.
    unsafe { umem.data_mut(desc).cursor().set_pos(len) };
}

/// Record that these frames are now in the rings of port `i` (`None`: with us).
#[inline]
pub fn mark(owner: &mut [u16], frame_size: usize, descs: &[FrameDesc], ring: Option<usize>) {
    let v = ring.map_or(0, |i| (i + 1) as u16);
    for d in descs {
        if let Some(o) = owner.get_mut(d.addr() / frame_size) {
            *o = v;
        }
    }
}

/// Frames handed over by other workers that wait for `rx_handoffs` at most.
pub const HANDOFF_ROOM: usize = 4 * BURST;

pub fn letter_room<T>(arrived: &[T]) -> usize {
    HANDOFF_ROOM.saturating_sub(arrived.len())
}
