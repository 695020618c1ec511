//! Memory for blocks and the direct table: 2 MiB slabs advised as transparent huge pages,
//! carved by the writer into cache-line-friendly pieces.
//!
//! Why not the system allocator: a full IPv4 table is ~250K small blocks spread over
//! ~20 MB. With 4 KiB pages nearly every lookup misses the TLB twice; with glibc's 16-byte
//! alignment and chunk headers, a block's node and its leaves often straddle two cache
//! lines. Here a block of up to 64 bytes never crosses a line, larger ones start on a line,
//! and the whole table sits in a few huge pages. Only the writer allocates and frees
//! (frees come after QSBR), so there is no locking.

// The FIB's memory: hugepage-backed, 64-byte aligned blocks handed out as raw pointers
// that lock-free readers follow (the reason the lookup is a few loads). Each block
// says why its pointer is live.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;

const SLAB: usize = 2 << 20;
const UNIT: usize = 16;
const LINE: usize = 64;
/// Blocks above this go to the system allocator (rare: chunks with thousands of routes).
const MAX_SMALL: usize = 64 << 10;

/// A zero-filled, huge-page-advised allocation that is freed on drop.
pub(crate) struct HugeBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: HugeBuf owns its memory exclusively, like a Box<[u8]>.
unsafe impl Send for HugeBuf {}
// SAFETY: shared access only hands out raw pointers; synchronisation is the user's.
unsafe impl Sync for HugeBuf {}

impl HugeBuf {
    pub(crate) fn new(bytes: usize) -> HugeBuf {
        let align = if bytes >= SLAB / 4 { SLAB } else { LINE };
        let size = bytes.max(1).next_multiple_of(align);
        let layout = Layout::from_size_align(size, align).expect("valid layout");
        // SAFETY: layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        if align == SLAB {
            // SAFETY: [ptr, ptr + size) is our own mapping; MADV_HUGEPAGE is only advice.
            unsafe { libc::madvise(ptr.as_ptr() as *mut libc::c_void, size, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: we own `size` writable bytes at ptr.
        unsafe { ptr.as_ptr().write_bytes(0, size) };
        HugeBuf { ptr, layout }
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The writer's block allocator.
#[derive(Default)]
pub(crate) struct Arena {
    slabs: Vec<HugeBuf>,
    /// Next free byte in the last slab; always a multiple of LINE.
    bump: usize,
    /// Free pieces by size in 16-byte units.
    free: Vec<Vec<NonNull<u8>>>,
    large: HashMap<usize, Layout>,
    /// Bytes handed out and not freed (after rounding).
    in_use: usize,
    large_bytes: usize,
}

// SAFETY: the arena owns its slabs; the raw pointers in free lists point into them.
unsafe impl Send for Arena {}

/// Size in units that a request of `bytes` is rounded to.
fn units_for(bytes: usize) -> usize {
    let units = bytes.div_ceil(UNIT);
    if units <= LINE / UNIT {
        units
    } else {
        units.next_multiple_of(LINE / UNIT)
    }
}

impl Arena {
    /// Memory the arena holds: slabs (their touched part) plus large blocks.
    pub(crate) fn bytes(&self) -> usize {
        let slabs = self.slabs.len().saturating_sub(1) * SLAB
            + if self.slabs.is_empty() { 0 } else { self.bump };
        slabs + self.large_bytes
    }

    /// Bytes handed out to live blocks (rounded sizes).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Hint that a piece of about `bytes` bytes will be wanted soon: start fetching the
    /// line it will come from, so the miss overlaps the caller's other work.
    #[inline]
    pub(crate) fn prefetch_for(&self, bytes: usize) {
        let units = units_for(bytes.max(1));
        if let Some(p) = self.free.get(units).and_then(|f| f.last()) {
            prefetch(p.as_ptr() as *const u8);
        }
    }

    /// Room for `bytes` bytes, aligned to 16 (to 64 when larger than a line) and never
    /// crossing a cache line when it fits in one. Contents are unspecified.
    pub(crate) fn alloc(&mut self, bytes: usize) -> NonNull<u8> {
        if bytes > MAX_SMALL {
            let layout = Layout::from_size_align(bytes, LINE).expect("valid layout");
            // SAFETY: non-zero size.
            let p = NonNull::new(unsafe { alloc(layout) })
                .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
            self.large.insert(p.as_ptr() as usize, layout);
            self.large_bytes += bytes;
            return p;
        }
        let units = units_for(bytes);
        self.in_use += units * UNIT;
        if self.free.len() <= units {
            self.free.resize_with(units + 1, Vec::new);
        }
        if let Some(p) = self.free[units].pop() {
            return p;
        }
        if units * UNIT >= LINE {
            return self.bump(units * UNIT);
        }
        // Carve one line into pieces of this size; the rest goes to the free lists.
        let line = self.bump(LINE);
        let mut off = units * UNIT;
        while off + units * UNIT <= LINE {
            // SAFETY: within the line we just took.
            self.free[units].push(unsafe { line.add(off) });
            off += units * UNIT;
        }
        if off < LINE {
            let rest = (LINE - off) / UNIT;
            if self.free.len() <= rest {
                self.free.resize_with(rest + 1, Vec::new);
            }
            // SAFETY: within the line we just took.
            self.free[rest].push(unsafe { line.add(off) });
        }
        line
    }

    /// Give back a piece from `alloc(bytes)`. The caller guarantees no reader can reach it.
    pub(crate) fn free(&mut self, p: NonNull<u8>, bytes: usize) {
        if cfg!(debug_assertions) {
            // Poison in tests so a reader touching freed memory gets wrong answers
            // (caught by the stress test) instead of stale right ones.
            // SAFETY: the piece is ours and `bytes` long.
            unsafe { p.as_ptr().write_bytes(0x5A, bytes) };
        }
        if bytes > MAX_SMALL {
            let layout = self
                .large
                .remove(&(p.as_ptr() as usize))
                .expect("large block known");
            self.large_bytes -= bytes;
            // SAFETY: allocated in `alloc` with this layout.
            unsafe { dealloc(p.as_ptr(), layout) };
            return;
        }
        let units = units_for(bytes);
        self.in_use -= units * UNIT;
        self.free[units].push(p);
    }

    fn bump(&mut self, bytes: usize) -> NonNull<u8> {
        if self.slabs.is_empty() || self.bump + bytes > SLAB {
            // Keep the unused tail of the old slab as free lines.
            if let Some(last) = self.slabs.last() {
                let base = last.as_ptr();
                if self.free.len() <= LINE / UNIT {
                    self.free.resize_with(LINE / UNIT + 1, Vec::new);
                }
                while self.bump + LINE <= SLAB {
                    // SAFETY: inside the slab.
                    self.free[LINE / UNIT]
                        .push(unsafe { NonNull::new_unchecked(base.add(self.bump)) });
                    self.bump += LINE;
                }
            }
            self.slabs.push(HugeBuf::new(SLAB));
            self.bump = 0;
        }
        let base = self.slabs.last().unwrap().as_ptr();
        // SAFETY: bump + bytes <= SLAB, inside the slab.
        let p = unsafe { NonNull::new_unchecked(base.add(self.bump)) };
        self.bump += bytes;
        p
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (p, layout) in self.large.drain() {
            // SAFETY: allocated in `alloc` with this layout and never freed.
            unsafe { dealloc(p as *mut u8, layout) };
        }
    }
}

/// A hint to bring the cache line holding `p` closer; never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint and never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_never_cross_a_line_and_do_not_overlap() {
        let mut a = Arena::default();
        let mut got = Vec::new();
        for bytes in [8, 16, 24, 40, 48, 56, 64, 72, 130, 500, 70_000] {
            for _ in 0..50 {
                let p = a.alloc(bytes).as_ptr() as usize;
                if bytes <= LINE {
                    assert_eq!(
                        p / LINE,
                        (p + bytes - 1) / LINE,
                        "{bytes} bytes cross a line"
                    );
                } else {
                    assert_eq!(p % LINE, 0);
                }
                got.push((p, bytes));
            }
        }
        got.sort();
        for w in got.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "overlap {w:?}");
        }
        for (p, bytes) in got {
            a.free(NonNull::new(p as *mut u8).unwrap(), bytes);
        }
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.large_bytes, 0);
    }
}
