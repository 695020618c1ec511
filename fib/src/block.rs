//! One chunk's compressed trie, frozen into a single allocation (a "block").
//!
//! Everything below one direct-table entry lives in one block, so an update rebuilds
//! one block and publishes it with one pointer store. Layout, in `u64` words:
//!
//! ```text
//! [3i .. 3i+3]   node i: vector, leafvec, bases (leaf_base: u32 | child_base: u32 << 32)
//! [after nodes]  leaves: u32 next-hop values, indexed in u32 units from the block start
//! ```
//!
//! A node covers 6 bits (64 slots). `vector` has a bit per slot that continues in a
//! child node; children are contiguous, so child = child_base + popcount(vector below
//! the slot). Leaf slots are run-length compressed as in Poptrie: `leafvec` marks each
//! leaf slot whose value differs from the previous leaf slot's, so
//! leaf = leaf_base + popcount(leafvec up to and including the slot) - 1.
//! A one-node block with up to 10 distinct leaves is 64 bytes: one cache line.

// The lookup walks raw block pointers from the arena (see arena.rs); each block says
// why the pointer is live for the walk.
#![allow(unsafe_code)]

use crate::arena::Arena;

use crate::family::{Family, STRIDE};
use core::ptr::NonNull;

/// A route stored in the writer's per-chunk list (longer than the direct bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route<K> {
    pub key: K,
    pub len: u8,
    pub nh: u32,
}

/// An immutable block living in the writer's [`Arena`]; freed through it after QSBR.
pub(crate) struct Block {
    pub ptr: NonNull<u64>,
    pub words: u32,
}

impl Block {
    pub(crate) fn bytes(&self) -> usize {
        self.words as usize * 8
    }

    pub(crate) fn free(self, arena: &mut Arena) {
        arena.free(self.ptr.cast(), self.bytes());
    }
}

/// Writer-side scratch space, reused across builds so updates allocate only the block.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    nodes: Vec<[u64; 3]>,
    leaves: Vec<u32>,
}

impl BlockBuilder {
    /// Build the block for one chunk. `routes` are sorted by (key, len), all longer than
    /// the direct bits and inside the chunk; `default` is the value where none matches.
    pub(crate) fn build<F: Family>(
        &mut self,
        arena: &mut Arena,
        routes: &[Route<F::Key>],
        default: u32,
    ) -> Block {
        debug_assert!(!routes.is_empty());
        self.nodes.clear();
        self.leaves.clear();
        self.nodes.push([0; 3]);
        self.build_node::<F>(routes, F::DIRECT_BITS as u32, default, 0);

        let node_words = 3 * self.nodes.len();
        let leaf_start = (node_words * 2) as u64;
        let words = node_words + self.leaves.len().div_ceil(2);
        let ptr = arena.alloc(words * 8).cast::<u64>();
        // SAFETY: the arena gave us `words` writable words, 16-byte aligned, not shared yet.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), words) };
        for (i, n) in self.nodes.iter().enumerate() {
            let bases = if n[2] & SKIP != 0 {
                n[2]
            } else {
                n[2] + leaf_start
            };
            buf[3 * i..3 * i + 3].copy_from_slice(&[n[0], n[1], bases]);
        }
        for (w, pair) in buf[node_words..].iter_mut().zip(self.leaves.chunks(2)) {
            let lo = pair[0] as u64;
            let hi = pair.get(1).copied().unwrap_or(0) as u64;
            // The u32 view reads the first leaf from the low half on little-endian.
            *w = if cfg!(target_endian = "little") {
                lo | hi << 32
            } else {
                hi | lo << 32
            };
        }
        Block {
            ptr,
            words: words as u32,
        }
    }

    /// Paint one node's 64 slots: the value each leaf slot resolves to, and which slots
    /// continue in a child.
    fn analyze<F: Family>(routes: &[Route<F::Key>], off: u32, default: u32) -> ([u32; 64], u64) {
        let end = off + STRIDE;
        let mut slots = [default; 64];
        let mut vector = 0u64;
        // Sorted by (key, len): a covering prefix comes before what it covers, so painting
        // in order lets the longest match win.
        for r in routes.iter().filter(|r| r.len as u32 > off) {
            let first = F::stride_bits(r.key, off) as usize;
            if r.len as u32 <= end {
                let count = 1usize << (end - r.len as u32);
                slots[first..first + count].fill(r.nh);
            } else {
                vector |= 1 << first;
            }
        }
        (slots, vector)
    }

    /// If a node has exactly one child and every other slot holds the same value,
    /// return (child slot, that value).
    fn pass_through(slots: &[u32; 64], vector: u64) -> Option<(u32, u32)> {
        if vector.count_ones() != 1 {
            return None;
        }
        let child = vector.trailing_zeros();
        let value = slots[if child == 0 { 1 } else { 0 }];
        let uniform = slots
            .iter()
            .enumerate()
            .all(|(s, &v)| s as u32 == child || v == value);
        uniform.then_some((child, value))
    }

    /// The Poptrie leaf vector: a bit at each leaf slot whose value differs from the
    /// previous leaf slot's (child slots are skipped), and at the first leaf slot.
    #[inline]
    fn leaf_runs(slots: &[u32; 64], vector: u64) -> u64 {
        // Carry each leaf value forward over child slots so they never start a run;
        // then one branch-free pass (vectorisable) finds where values change.
        let mut filled = *slots;
        let mut children = vector & !1;
        while children != 0 {
            let s = children.trailing_zeros() as usize;
            filled[s] = filled[s - 1];
            children &= children - 1;
        }
        let mut change = 0u64;
        for s in 1..64 {
            change |= ((filled[s] != filled[s - 1]) as u64) << s;
        }
        let leaf_slots = !vector;
        if leaf_slots == 0 {
            return 0;
        }
        (change & leaf_slots) | (1 << leaf_slots.trailing_zeros())
    }

    fn build_node<F: Family>(
        &mut self,
        routes: &[Route<F::Key>],
        off: u32,
        default: u32,
        at: usize,
    ) {
        let (slots, vector) = Self::analyze::<F>(routes, off, default);

        // Path compression: a run of pass-through nodes (one child, all else one value)
        // becomes one skip node that compares up to 60 key bits at once. Sparse IPv6
        // subtrees (a lone /48 under a /18 chunk) shrink from 5 levels to 3.
        let pass = if F::PATH_COMPRESSION {
            Self::pass_through(&slots, vector)
        } else {
            None
        };
        if let Some((child, value)) = pass {
            let mut expected = child as u64;
            let mut bits = STRIDE;
            let mut next_default = slots[child as usize];
            while bits + STRIDE <= SKIP_MAX_BITS {
                let (s2, v2) = Self::analyze::<F>(routes, off + bits, next_default);
                match Self::pass_through(&s2, v2) {
                    Some((c2, v)) if v == value => {
                        expected = expected << STRIDE | c2 as u64;
                        bits += STRIDE;
                        next_default = s2[c2 as usize];
                    }
                    _ => break,
                }
            }
            let next = self.nodes.len();
            self.nodes[at] = [
                expected,
                value as u64 | (bits as u64) << 32,
                SKIP | next as u64,
            ];
            self.nodes.push([0; 3]);
            self.build_node::<F>(routes, off + bits, next_default, next);
            return;
        }

        let end = off + STRIDE;
        let leaf_base = self.leaves.len() as u64;
        let leafvec = Self::leaf_runs(&slots, vector);
        let mut bits = leafvec;
        while bits != 0 {
            self.leaves.push(slots[bits.trailing_zeros() as usize]);
            bits &= bits - 1;
        }

        let child_base = self.nodes.len();
        self.nodes[at] = [vector, leafvec, leaf_base | (child_base as u64) << 32];
        self.nodes
            .resize(child_base + vector.count_ones() as usize, [0; 3]);

        // Each child's routes are the contiguous run whose slot bits match it.
        let mut child = child_base;
        let mut i = 0;
        while i < routes.len() {
            let r = routes[i];
            if (r.len as u32) <= end {
                i += 1;
                continue;
            }
            let slot = F::stride_bits(r.key, off);
            let mut j = i + 1;
            while j < routes.len() && F::stride_bits(routes[j].key, off) == slot {
                j += 1;
            }
            self.build_node::<F>(&routes[i..j], end, slots[slot as usize], child);
            child += 1;
            i = j;
        }
        debug_assert_eq!(child, child_base + vector.count_ones() as usize);
    }
}

/// Marks a skip node in its third word: [expected bits, value | bits << 32, SKIP | next].
const SKIP: u64 = 1 << 63;
/// Most key bits one skip node compares.
const SKIP_MAX_BITS: u32 = 60;

/// Walk a block for `key` and return the leaf value.
///
/// # Safety
/// `block` must point to a live block built by [`BlockBuilder::build`] for family `F`.
#[inline(always)]
pub(crate) unsafe fn walk<F: Family>(block: *const u64, key: F::Key) -> u32 {
    let mut node = 0usize;
    let mut off = F::DIRECT_BITS as u32;
    loop {
        // SAFETY: node indices and leaf indices come from the builder and stay in bounds.
        unsafe {
            let p = block.add(3 * node);
            let vector = *p;
            let bases = *p.add(2);
            if F::PATH_COMPRESSION && bases & SKIP != 0 {
                let w1 = *p.add(1);
                let bits = (w1 >> 32) as u32;
                if F::bits(key, off, bits) != vector {
                    return w1 as u32;
                }
                node = bases as u32 as usize;
                off += bits;
                continue;
            }
            let bit = 1u64 << F::stride_bits(key, off);
            if vector & bit != 0 {
                node = (bases >> 32) as usize + (vector & (bit - 1)).count_ones() as usize;
                off += STRIDE;
                continue;
            }
            let leafvec = *p.add(1);
            let idx =
                (bases as u32) as usize + (leafvec & (bit | (bit - 1))).count_ones() as usize - 1;
            return *(block as *const u32).add(idx);
        }
    }
}

/// One level of a walk: `Ok(next node)` (with `off` advanced) or `Err(address of the leaf)`.
///
/// # Safety
/// As for [`walk`]; `node` must be a node index reached from node 0 at offset `off`.
#[inline(always)]
pub(crate) unsafe fn step<F: Family>(
    block: *const u64,
    node: usize,
    off: &mut u32,
    key: F::Key,
) -> Result<usize, *const u32> {
    // SAFETY: see walk.
    unsafe {
        let p = block.add(3 * node);
        let vector = *p;
        let bases = *p.add(2);
        if F::PATH_COMPRESSION && bases & SKIP != 0 {
            let bits = (*p.add(1) >> 32) as u32;
            if F::bits(key, *off, bits) != vector {
                // The mismatch value is the low half of word 1.
                let low = if cfg!(target_endian = "little") { 0 } else { 1 };
                return Err((p.add(1) as *const u32).add(low));
            }
            *off += bits;
            return Ok(bases as u32 as usize);
        }
        let bit = 1u64 << F::stride_bits(key, *off);
        if vector & bit != 0 {
            *off += STRIDE;
            Ok((bases >> 32) as usize + (vector & (bit - 1)).count_ones() as usize)
        } else {
            let leafvec = *p.add(1);
            let idx =
                (bases as u32) as usize + (leafvec & (bit | (bit - 1))).count_ones() as usize - 1;
            Err((block as *const u32).add(idx))
        }
    }
}

/// Address of node `node` in a block, for prefetching.
#[inline(always)]
pub(crate) fn node_addr(block: *const u64, node: usize) -> *const u64 {
    block.wrapping_add(3 * node)
}
