//! The writer (`Fib`), the data-plane `Reader`, and the per-burst `View`.
//!
//! ```text
//!  control thread                         worker threads (one Reader each)
//!  ┌──────────────────────────┐           ┌───────────────────────────────┐
//!  │ Fib (one writer)         │  direct   │ reader.burst() -> View         │
//!  │  short-prefix maps       │  table of │   1 atomic load (QSBR token)   │
//!  │  per-chunk route lists   ├─AtomicU64─▶   lookup / lookup_batch        │
//!  │  BlockBuilder scratch    │  entries  │   (loads only, never waits)    │
//!  │  retired blocks ─► QSBR  │◀─ slots ──┤ quiescent point per burst     │
//!  └──────────────────────────┘           └───────────────────────────────┘
//! ```
//!
//! A direct entry is either a leaf (bit 0 set, next hop in the high 32 bits) or a
//! pointer to an immutable [`Block`]. Every update rebuilds the blocks it touches and
//! swaps each in with one store, so a lookup sees a chunk entirely before or entirely
//! after an update.

// Lookups follow the arena's raw block pointers (see arena.rs) under QSBR: each block
// says why the pointer is live.
#![allow(unsafe_code)]

use crate::arena::{prefetch, Arena, HugeBuf};
use crate::block::{node_addr, step, walk, Block, BlockBuilder, Route};
use crate::cpu::{self, Path};
use crate::family::Family;
use crate::qsbr::{Domain, OFFLINE};
use crate::NextHopId;
use crossbeam_utils::CachePadded;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Leaf value meaning "no route". Not a valid [`NextHopId`].
pub(crate) const NO_ROUTE: u32 = u32::MAX;
/// Direct-source marker: no short prefix covers this entry.
const NO_SRC: u8 = u8::MAX;
/// Above this much table memory, IPv6 batch lookups walk level by level (lanes): once
/// the table no longer fits in the part of L3 a core gets, overlapping every level's
/// misses wins; below it the software pipeline's lower overhead wins. Measured on the
/// project machines (32 MiB L3): pipeline better up to 9.8 MB, lanes from 12.9 MB.
const DEEP_WALK_BYTES: usize = 11 << 20;
/// Hysteresis: back to the pipeline below this.
const SHALLOW_WALK_BYTES: usize = 10 << 20;
/// Whatever the table's size, IPv6 batches also walk level by level when the average
/// block is this big: real tables crowd into a few chunks (167,903 real prefixes in 197
/// of the 262,144 entries, 5.1 MB, ~16 KB per block) whose walks are deep, and the
/// pipeline, which prefetches only a walk's first node, lost to the lanes there in three
/// interleaved pairs (batch medians 183 / 116 / 170 against 96 / 91 / 71 cycles).
/// Synthetic tables' blocks average under 100 bytes.
const BUSHY_BLOCK_BYTES: usize = 2 << 10;
/// Try to free retired blocks once this many are waiting.
const RECLAIM_BATCH: usize = 64;

#[inline(always)]
const fn leaf_entry(nh: u32) -> u64 {
    (nh as u64) << 32 | 1
}

#[inline(always)]
fn to_opt(v: u32) -> Option<NextHopId> {
    if v == NO_ROUTE {
        None
    } else {
        Some(NextHopId(v))
    }
}

/// The direct-indexed table, in huge pages.
struct Direct {
    buf: HugeBuf,
    len: usize,
}

impl Direct {
    fn new(len: usize) -> Direct {
        let buf = HugeBuf::new(len * 8);
        let direct = Direct { buf, len };
        for e in direct.entries() {
            e.store(leaf_entry(NO_ROUTE), Ordering::Relaxed);
        }
        direct
    }

    #[inline(always)]
    fn entries(&self) -> &[AtomicU64] {
        // SAFETY: the buffer holds `len` zero-initialised u64s, 2 MiB aligned, and
        // AtomicU64 has the layout of u64. It lives as long as `self`.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr() as *const AtomicU64, self.len) }
    }

    fn bytes(&self) -> usize {
        self.buf.len()
    }
}

/// What readers and the writer share: the direct table and the QSBR domain.
struct Shared<F: Family> {
    direct: Direct,
    qsbr: Domain,
    /// The arena of a dropped writer: blocks still reachable by readers live in it,
    /// so it goes only with the last reader.
    graveyard: Mutex<Option<Arena>>,
    _f: PhantomData<F>,
}

#[inline(always)]
fn lookup_key<F: Family>(direct: &[AtomicU64], key: F::Key) -> u32 {
    let e = direct[F::direct_index(key)].load(Ordering::Acquire);
    if e & 1 != 0 {
        return (e >> 32) as u32;
    }
    // SAFETY: a non-leaf entry points to a live block: the writer frees a block only after
    // every reader passed a quiescent point after it was unlinked (QSBR), and callers hold
    // either the writer or a View, which is between two quiescent points.
    unsafe { walk::<F>(e as *const u64, key) }
}

/// The lookup bodies compiled for the fast path's CPU features (see cpu.rs); the
/// bodies are `#[inline(always)]`, so each wrapper is a whole copy built for them.
#[cfg(target_arch = "x86_64")]
mod fast {
    use super::*;

    // The same list as cpu::FAST_FEATURES (an attribute takes only a literal).
    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,movbe,avx2")]
    pub(super) fn lookup_key<F: Family>(direct: &[AtomicU64], key: F::Key) -> u32 {
        super::lookup_key::<F>(direct, key)
    }

    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,movbe,avx2")]
    pub(super) fn lookup_batch_with<F: Family>(
        direct: &[AtomicU64],
        deep: bool,
        n: usize,
        key: impl Fn(usize) -> F::Key,
        put: impl FnMut(usize, u32),
    ) {
        super::lookup_batch_with::<F>(direct, deep, n, key, put)
    }
}

/// `lookup_key` on the chosen path. `cpu` is `Path::Fast` only if the CPU has the
/// features: `cpu::path()` and `force_cpu_path` check it.
#[inline(always)]
fn lookup_key_on<F: Family>(cpu: Path, direct: &[AtomicU64], key: F::Key) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if cpu == Path::Fast {
        // SAFETY: the CPU has every feature `fast` is compiled for (see above).
        return unsafe { fast::lookup_key::<F>(direct, key) };
    }
    let _ = cpu;
    lookup_key::<F>(direct, key)
}

/// `lookup_batch_with` on the chosen path (as `lookup_key_on`): one test per batch.
#[inline(always)]
fn lookup_batch_on<F: Family>(
    cpu: Path,
    direct: &[AtomicU64],
    deep: bool,
    n: usize,
    key: impl Fn(usize) -> F::Key,
    put: impl FnMut(usize, u32),
) {
    #[cfg(target_arch = "x86_64")]
    if cpu == Path::Fast {
        // SAFETY: the CPU has every feature `fast` is compiled for (see lookup_key_on).
        return unsafe { fast::lookup_batch_with::<F>(direct, deep, n, key, put) };
    }
    let _ = cpu;
    lookup_batch_with::<F>(direct, deep, n, key, put)
}

/// Refuse a path this CPU cannot run (running it would be an illegal instruction).
fn checked(path: Path) -> Path {
    assert!(
        path.supported(),
        "CPU path {:?}: this CPU lacks {}",
        path.name(),
        cpu::missing_fast_feature().unwrap_or("?")
    );
    path
}

/// Distance, in keys, between the stages of the pipelined batch lookup.
const PIPE: usize = 16;

/// Software-pipelined batch lookup (as DPDK l3fwd does): while key i's direct entry is
/// being prefetched, key i-PIPE's entry is read and its first node prefetched, and key
/// i-2*PIPE is resolved from lines that are by now in L1.
///
/// The steps i = 0 .. n + 2*PIPE are cut into runs where the same stages are active, so
/// no step tests which stages run (callgrind, memio l3: those three tests per step were
/// 70% of the pipeline's mispredicted branches).
#[inline(always)]
fn lookup_batch_pipelined<F: Family>(
    direct: &[AtomicU64],
    n: usize,
    key: impl Fn(usize) -> F::Key,
    mut put: impl FnMut(usize, u32),
) {
    // Entries wait PIPE steps between stage 2 and stage 3: a ring of 2 * PIPE.
    let mut entries = [0u64; 2 * PIPE];
    let ring = |i: usize| i % (2 * PIPE);
    let prefetch_entry = |i: usize| prefetch(&direct[F::direct_index(key(i))]);
    let read_entry = |entries: &mut [u64; 2 * PIPE], j: usize| {
        let e = direct[F::direct_index(key(j))].load(Ordering::Acquire);
        entries[ring(j)] = e;
        if e & 1 == 0 {
            prefetch(node_addr(e as *const u64, 0));
        }
    };
    let mut resolve = |entries: &[u64; 2 * PIPE], m: usize| {
        let e = entries[ring(m)];
        put(
            m,
            if e & 1 != 0 {
                (e >> 32) as u32
            } else {
                // SAFETY: blocks are live for the View's lifetime (see lookup_key).
                unsafe { walk::<F>(e as *const u64, key(m)) }
            },
        );
    };
    // Stage 1 runs at steps [0, n), stage 2 at [PIPE, n + PIPE), stage 3 at
    // [2 PIPE, n + 2 PIPE): every boundary, sorted, splits the steps into runs.
    let mut cuts = [0, PIPE, 2 * PIPE, n, n + PIPE, n + 2 * PIPE];
    cuts.sort_unstable();
    for w in cuts.windows(2) {
        let (from, to) = (w[0], w[1]);
        let first = from < n;
        let second = from >= PIPE && from < n + PIPE;
        let third = from >= 2 * PIPE;
        match (first, second, third) {
            (true, true, true) => {
                for i in from..to {
                    prefetch_entry(i);
                    read_entry(&mut entries, i - PIPE);
                    resolve(&entries, i - 2 * PIPE);
                }
            }
            (true, true, false) => {
                for i in from..to {
                    prefetch_entry(i);
                    read_entry(&mut entries, i - PIPE);
                }
            }
            (true, false, _) => (from..to).for_each(prefetch_entry),
            (false, true, true) => {
                for i in from..to {
                    read_entry(&mut entries, i - PIPE);
                    resolve(&entries, i - 2 * PIPE);
                }
            }
            (false, true, false) => (from..to).for_each(|i| read_entry(&mut entries, i - PIPE)),
            (false, false, true) => (from..to).for_each(|i| resolve(&entries, i - 2 * PIPE)),
            (false, false, false) => {}
        }
    }
}

/// Lanes walked side by side in a batch lookup.
const LANES: usize = 16;

/// Batch lookup of `n` keys given by `key(i)`, answers delivered by `put(i, value)`:
/// no intermediate arrays, so callers convert types on the fly.
#[inline(always)]
fn lookup_batch_with<F: Family>(
    direct: &[AtomicU64],
    deep: bool,
    n: usize,
    key: impl Fn(usize) -> F::Key,
    put: impl FnMut(usize, u32),
) {
    if F::PIPELINED_BATCH || !deep {
        lookup_batch_pipelined::<F>(direct, n, key, put)
    } else {
        lookup_batch_levels::<F>(direct, n, key, put)
    }
}

/// Level-synchronous batch lookup: 16 keys walk the trie one level at a time, each
/// prefetching its next node, so deep (IPv6) walks overlap their misses.
#[inline(always)]
fn lookup_batch_levels<F: Family>(
    direct: &[AtomicU64],
    n: usize,
    key: impl Fn(usize) -> F::Key,
    mut put: impl FnMut(usize, u32),
) {
    let mut keys = [F::Key::default(); LANES];
    for start in (0..n).step_by(LANES) {
        let lanes_n = LANES.min(n - start);
        for (i, k) in keys.iter_mut().enumerate().take(lanes_n) {
            *k = key(start + i);
            prefetch(&direct[F::direct_index(*k)]);
        }
        let mut blocks = [core::ptr::null::<u64>(); LANES];
        let mut nodes = [0usize; LANES];
        let mut leaves = [core::ptr::null::<u32>(); LANES];
        let mut active = 0u32;
        for i in 0..lanes_n {
            let e = direct[F::direct_index(keys[i])].load(Ordering::Acquire);
            if e & 1 != 0 {
                put(start + i, (e >> 32) as u32);
            } else {
                blocks[i] = e as *const u64;
                prefetch(node_addr(blocks[i], 0));
                active |= 1 << i;
            }
        }
        let mut pending_leaves = active;
        let mut offs = [F::DIRECT_BITS as u32; LANES];
        while active != 0 {
            let mut lanes = active;
            while lanes != 0 {
                let i = lanes.trailing_zeros() as usize;
                lanes &= lanes - 1;
                // SAFETY: blocks are live for the View's lifetime (see lookup_key).
                match unsafe { step::<F>(blocks[i], nodes[i], &mut offs[i], keys[i]) } {
                    Ok(next) => {
                        nodes[i] = next;
                        prefetch(node_addr(blocks[i], next));
                    }
                    Err(leaf) => {
                        leaves[i] = leaf;
                        prefetch(leaf);
                        active &= !(1 << i);
                    }
                }
            }
        }
        while pending_leaves != 0 {
            let i = pending_leaves.trailing_zeros() as usize;
            pending_leaves &= pending_leaves - 1;
            // SAFETY: the leaf pointer was computed inside a live block.
            put(start + i, unsafe { *leaves[i] });
        }
    }
}

/// What the writer keeps per direct entry: 32 bytes, aligned, so an update's first
/// miss fetches exactly one line.
#[repr(align(32))]
struct Chunk<K> {
    /// Routes longer than DIRECT_BITS inside this entry, sorted by (key, len).
    routes: Vec<Route<K>>,
    /// Value of the best short prefix covering the entry (NO_ROUTE if none).
    default: u32,
    /// Size in words of the entry's block (0 when the entry is a leaf).
    words: u32,
}

impl<K> Default for Chunk<K> {
    fn default() -> Self {
        Chunk {
            routes: Vec::new(),
            default: NO_ROUTE,
            words: 0,
        }
    }
}

/// One route change for [`Fib::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<N> {
    Insert(N, NextHopId),
    Remove(N),
}

/// How many chunks ahead `paint_short` / `unpaint_short` start fetching route lists.
const PAINT_AHEAD: usize = 4;
/// How many items ahead `apply` and `get_many` start their cache misses.
const BATCH_AHEAD: usize = 8;

/// The single writer of a FIB. Also answers lookups itself (always consistent).
pub struct Fib<F: Family> {
    shared: Arc<Shared<F>>,
    /// Short prefixes (length <= DIRECT_BITS), one map per length.
    short: Vec<HashMap<F::Key, u32>>,
    /// Per direct entry, everything the writer keeps about it (one cache miss per update).
    chunks: Vec<Chunk<F::Key>>,
    /// Per direct entry: length of the short prefix that painted its default, or NO_SRC.
    /// Apart from `chunks` because only short-prefix updates need it.
    src: Vec<u8>,
    builder: BlockBuilder,
    arena: Arena,
    /// Unlinked blocks waiting for readers, each tagged with the token readers must reach.
    retired: Vec<(u64, Block)>,
    /// Next `retired.len()` at which to try reclaiming.
    reclaim_at: usize,
    /// The hint last published to readers (see DEEP_WALK_BYTES).
    deep_walk: bool,
    /// Tests and benchmarks: a batch method chosen by hand.
    walk_override: Option<bool>,
    /// The lookup code for this writer and its new readers (see cpu.rs).
    cpu: Path,
    prefixes: usize,
    block_bytes: usize,
    /// Chunks holding a block (for the average block size in the walk hint).
    blocks: usize,
    /// Sum of the chunks' route capacities, kept as they change: `rib_bytes` is read
    /// for stats far more often than routes change, and summing 2^16 chunks each time
    /// cost a clusterbench node ~4% of all CPU.
    route_slots: usize,
    /// Inside `apply`: chunks changed by the batch, rebuilt once at its end (a bit per
    /// chunk, and the list in the order first touched).
    deferring: bool,
    dirty_bits: Vec<u64>,
    dirty: Vec<usize>,
}

/// IPv4 FIB writer.
pub type Fib4 = Fib<crate::V4>;
/// IPv6 FIB writer.
pub type Fib6 = Fib<crate::V6>;

impl<F: Family> Default for Fib<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Family> Fib<F> {
    /// An empty table: every lookup misses.
    pub fn new() -> Self {
        let size = 1usize << F::DIRECT_BITS;
        Fib {
            shared: Arc::new(Shared {
                direct: Direct::new(size),
                qsbr: Domain::new(),
                graveyard: Mutex::new(None),
                _f: PhantomData,
            }),
            short: (0..=F::DIRECT_BITS).map(|_| HashMap::new()).collect(),
            chunks: (0..size).map(|_| Chunk::default()).collect(),
            src: vec![NO_SRC; size],
            builder: BlockBuilder::default(),
            arena: Arena::default(),
            retired: Vec::new(),
            reclaim_at: RECLAIM_BATCH,
            deep_walk: false,
            walk_override: None,
            cpu: cpu::path(),
            prefixes: 0,
            block_bytes: 0,
            route_slots: 0,
            blocks: 0,
            deferring: false,
            dirty_bits: vec![0; size.div_ceil(64)],
            dirty: Vec::new(),
        }
    }

    /// Build a table from `(prefix, next hop)` pairs; a later duplicate replaces an earlier one.
    /// Each chunk is built once, so this is much faster than inserting one by one.
    pub fn from_routes<I: IntoIterator<Item = (F::Net, NextHopId)>>(routes: I) -> Self {
        let mut fib = Self::new();
        fib.extend(routes);
        fib
    }

    /// Add many routes; chunks are rebuilt once at the end, not per route.
    pub fn extend<I: IntoIterator<Item = (F::Net, NextHopId)>>(&mut self, routes: I) {
        let mut long: Vec<(F::Key, u8, u32)> = Vec::new();
        let mut short_changed: Vec<(F::Key, u8)> = Vec::new();
        for (net, nh) in routes {
            check_nh(nh);
            let (key, len) = F::net_parts(&net);
            if len <= F::DIRECT_BITS {
                let old = self.short[len as usize].insert(key, nh.0);
                if old.is_none() {
                    self.prefixes += 1;
                }
                if old != Some(nh.0) {
                    short_changed.push((key, len));
                }
            } else {
                long.push((key, len, nh.0));
            }
        }
        // Paint only what changed. A prefix takes the entries whose painter is no longer
        // than itself, so the order of painting does not matter.
        let mut touched: Vec<usize> = Vec::new();
        for &(key, len) in &short_changed {
            let nh = self.short[len as usize][&key];
            let first = F::direct_index(key);
            let range = first..first + (1usize << (F::DIRECT_BITS - len));
            for (c, (chunk, src)) in range.clone().zip(
                self.chunks[range.clone()]
                    .iter_mut()
                    .zip(&mut self.src[range]),
            ) {
                if *src == NO_SRC || *src <= len {
                    if chunk.default != nh || *src != len {
                        touched.push(c);
                    }
                    *src = len;
                    chunk.default = nh;
                }
            }
        }
        // Merge long routes per chunk: stable sort keeps the last duplicate last.
        long.sort_by(|a, b| {
            (F::direct_index(a.0), a.0, a.1).cmp(&(F::direct_index(b.0), b.0, b.1))
        });
        let mut i = 0;
        while i < long.len() {
            let (key, len, nh) = long[i];
            // Skip to the last of equal prefixes (the later insert wins).
            if i + 1 < long.len() && long[i + 1].0 == key && long[i + 1].1 == len {
                i += 1;
                continue;
            }
            let c = F::direct_index(key);
            let routes = &mut self.chunks[c].routes;
            let before = routes.capacity();
            match routes.binary_search_by(|r| (r.key, r.len).cmp(&(key, len))) {
                Ok(at) => routes[at].nh = nh,
                Err(at) => {
                    routes.insert(at, Route { key, len, nh });
                    self.prefixes += 1;
                }
            }
            self.route_slots = self.route_slots + routes.capacity() - before;
            touched.push(c);
            i += 1;
        }
        touched.sort_unstable();
        touched.dedup();
        for c in touched {
            self.rebuild_chunk(c);
        }
        self.try_reclaim();
    }

    /// Insert or update a prefix. Returns the previous next hop if the prefix was present.
    ///
    /// Panics if `nh` is `NextHopId(u32::MAX)`, which is reserved for "no route".
    pub fn insert(&mut self, net: F::Net, nh: NextHopId) -> Option<NextHopId> {
        check_nh(nh);
        let (key, len) = F::net_parts(&net);
        let old = if len <= F::DIRECT_BITS {
            let old = self.short[len as usize].insert(key, nh.0);
            if old != Some(nh.0) {
                self.paint_short(key, len, nh.0);
            }
            old
        } else {
            let c = F::direct_index(key);
            self.prefetch_chunk(c);
            let routes = &mut self.chunks[c].routes;
            let before = routes.capacity();
            let old = match routes.binary_search_by(|r| (r.key, r.len).cmp(&(key, len))) {
                Ok(at) => Some(core::mem::replace(&mut routes[at].nh, nh.0)),
                Err(at) => {
                    routes.insert(at, Route { key, len, nh: nh.0 });
                    None
                }
            };
            self.route_slots = self.route_slots + routes.capacity() - before;
            if old != Some(nh.0) {
                self.rebuild_chunk(c);
            }
            old
        };
        if old.is_none() {
            self.prefixes += 1;
        }
        old.map(NextHopId)
    }

    /// Apply a batch of updates in order, as the control plane delivers them. Same result
    /// as calling insert/remove one by one, but the writer's cache misses for update i+8
    /// (its chunk record) and i+4 (its route list and direct entry) are started while
    /// update i is applied. Returns how many updates changed the table.
    pub fn apply(&mut self, updates: &[Update<F::Net>]) -> usize {
        let net = |u: &Update<F::Net>| match *u {
            Update::Insert(n, _) | Update::Remove(n) => n,
        };
        let mut changed = 0;
        // A chunk a batch touches many times (a /16 withdrawn repaints its four chunks,
        // then the chunks' own routes go) is built once, after the last change: churn
        // spent most of its time rebuilding the same chunks.
        self.deferring = true;
        for (i, u) in updates.iter().enumerate() {
            if let Some(c) = self.prefetch_ahead(updates, i, net) {
                self.prefetch_chunk(c);
            }
            changed += match *u {
                Update::Insert(net, nh) => self.insert(net, nh) != Some(nh),
                Update::Remove(net) => self.remove(net).is_some(),
            } as usize;
        }
        self.deferring = false;
        let mut dirty = core::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        for (i, &c) in dirty.iter().enumerate() {
            if let Some(&next) = dirty.get(i + 2) {
                prefetch(self.chunks[next].routes.as_ptr());
            }
            self.dirty_bits[c / 64] &= !(1 << (c % 64));
            self.rebuild_chunk(c);
        }
        dirty.clear();
        self.dirty = dirty;
        changed
    }

    /// Change the next hop of a prefix that is present; `None` (and no change) if absent.
    pub fn replace(&mut self, net: F::Net, nh: NextHopId) -> Option<NextHopId> {
        if self.get(net).is_some() {
            self.insert(net, nh)
        } else {
            None
        }
    }

    /// Remove a prefix. Returns its next hop if it was present.
    pub fn remove(&mut self, net: F::Net) -> Option<NextHopId> {
        let (key, len) = F::net_parts(&net);
        let old = if len <= F::DIRECT_BITS {
            let old = self.short[len as usize].remove(&key)?;
            let (parent_len, parent_nh) = self.best_short_parent(key, len);
            self.unpaint_short(key, len, parent_len, parent_nh);
            old
        } else {
            let c = F::direct_index(key);
            self.prefetch_chunk(c);
            let routes = &mut self.chunks[c].routes;
            let at = routes
                .binary_search_by(|r| (r.key, r.len).cmp(&(key, len)))
                .ok()?;
            let old = routes.remove(at).nh;
            if routes.is_empty() {
                // Give the memory back: a full table has many chunks that empty out.
                self.route_slots -= routes.capacity();
                routes.shrink_to_fit();
            }
            self.rebuild_chunk(c);
            old
        };
        self.prefixes -= 1;
        Some(NextHopId(old))
    }

    /// The next hop stored for exactly this prefix (not a longest-prefix match).
    pub fn get(&self, net: F::Net) -> Option<NextHopId> {
        let (key, len) = F::net_parts(&net);
        if len <= F::DIRECT_BITS {
            self.short[len as usize].get(&key).copied().map(NextHopId)
        } else {
            let routes = &self.chunks[F::direct_index(key)].routes;
            routes
                .binary_search_by(|r| (r.key, r.len).cmp(&(key, len)))
                .ok()
                .map(|at| NextHopId(routes[at].nh))
        }
    }

    /// `get` of each of `nets`, in order. A batch's lookups are cache misses (chunk
    /// record, then its route list): as in `apply`, those of later nets are started
    /// while earlier ones are answered, so they overlap.
    pub fn get_many(&self, nets: &[F::Net]) -> Vec<Option<NextHopId>> {
        let mut out = Vec::with_capacity(nets.len());
        for (i, &net) in nets.iter().enumerate() {
            self.prefetch_ahead(nets, i, |n| *n);
            out.push(self.get(net));
        }
        out
    }

    /// For item `i` of a batch: start the cache misses of the item `BATCH_AHEAD` on (its
    /// chunk record) and `BATCH_AHEAD / 2` on (its route list), so that they overlap
    /// the work on earlier items. Returns the nearer one's chunk, if it has one.
    #[inline]
    fn prefetch_ahead<T>(
        &self,
        items: &[T],
        i: usize,
        net: impl Fn(&T) -> F::Net,
    ) -> Option<usize> {
        let chunk_of = |t: &T| {
            let (key, len) = F::net_parts(&net(t));
            (len > F::DIRECT_BITS).then(|| F::direct_index(key))
        };
        if let Some(c) = items.get(i + BATCH_AHEAD).and_then(chunk_of) {
            prefetch(&self.chunks[c]);
        }
        let near = items.get(i + BATCH_AHEAD / 2).and_then(chunk_of);
        if let Some(c) = near {
            prefetch(self.chunks[c].routes.as_ptr());
        }
        near
    }

    /// Longest-prefix match, from the writer's side.
    pub fn lookup(&self, addr: F::Addr) -> Option<NextHopId> {
        to_opt(lookup_key_on::<F>(
            self.cpu,
            self.shared.direct.entries(),
            F::addr_key(addr),
        ))
    }

    /// Tests and benchmarks: run this writer's lookups, and those of readers it makes
    /// from now on, on `path` (panics if this CPU cannot run it).
    #[doc(hidden)]
    pub fn force_cpu_path(&mut self, path: Path) {
        self.cpu = checked(path);
    }

    /// Number of distinct prefixes held.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Bytes the lookup structure holds: the direct table plus the block arena
    /// (live blocks, blocks waiting for readers, and free pieces kept for reuse).
    pub fn memory_bytes(&self) -> usize {
        self.shared.direct.bytes() + self.arena.bytes()
    }

    /// How batch lookups walk this table now: "pipeline" (software-pipelined, one level
    /// at a time per key) or "levels" (16 keys side by side, level by level; IPv6 tables
    /// larger than the cache, or whose blocks are big: deep walks).
    pub fn batch_method(&self) -> &'static str {
        if F::PIPELINED_BATCH || !self.deep_walk {
            "pipeline"
        } else {
            "levels"
        }
    }

    /// Tests and benchmarks: make batch lookups walk by "levels" or "pipeline" whatever
    /// the table, or (None) choose by the table again.
    #[doc(hidden)]
    pub fn force_batch_method(&mut self, method: Option<&str>) {
        self.walk_override = method.map(|m| match m {
            "levels" => true,
            "pipeline" => false,
            _ => panic!("batch method {m:?}: \"levels\" or \"pipeline\""),
        });
        self.update_walk_hint();
    }

    /// Bytes of live blocks only (what the current routes need below the direct table).
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Bytes of the writer's private route store (not touched by lookups), estimated.
    pub fn rib_bytes(&self) -> usize {
        self.rib_bytes_for(self.route_slots)
    }

    /// `rib_bytes` with the route capacity summed afresh over every chunk (tests: the
    /// kept sum must agree).
    #[doc(hidden)]
    pub fn rib_bytes_recounted(&self) -> usize {
        self.rib_bytes_for(self.chunks.iter().map(|c| c.routes.capacity()).sum())
    }

    fn rib_bytes_for(&self, route_slots: usize) -> usize {
        let route = core::mem::size_of::<Route<F::Key>>();
        let entry = core::mem::size_of::<(F::Key, u32)>() + 8; // key, value, hash control + slack
        self.chunks.len() * core::mem::size_of::<Chunk<F::Key>>()
            + self.src.len()
            + route_slots * route
            + self
                .short
                .iter()
                .map(|m| m.capacity() * entry)
                .sum::<usize>()
    }

    /// Every prefix held, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (F::Net, NextHopId)> + '_ {
        let short = self.short.iter().enumerate().flat_map(|(len, m)| {
            m.iter()
                .map(move |(&k, &nh)| (F::make_net(k, len as u8), NextHopId(nh)))
        });
        let long = self
            .chunks
            .iter()
            .flat_map(|c| c.routes.iter())
            .map(|r| (F::make_net(r.key, r.len), NextHopId(r.nh)));
        short.chain(long)
    }

    /// A new data-plane reader. Each worker thread takes its own.
    pub fn reader(&self) -> Reader<F> {
        let slot = self.shared.qsbr.register();
        Reader {
            shared: self.shared.clone(),
            slot,
            online: false,
            last: 0,
            cpu: self.cpu,
        }
    }

    /// Blocks retired but not yet freed (waiting for readers to pass a quiescent point).
    pub fn retired_blocks(&self) -> usize {
        self.retired.len()
    }

    /// Free what readers no longer can see. Never waits; called automatically.
    pub fn try_reclaim(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let q = &self.shared.qsbr;
        if self.retired.last().map(|r| r.0) > Some(q.current()) {
            q.advance();
        }
        let seen = q.min_seen();
        let done = self.retired.partition_point(|r| r.0 <= seen);
        for (_, block) in self.retired.drain(..done) {
            block.free(&mut self.arena);
        }
    }

    /// Wait until every retired block is freed. Needs every online reader to keep
    /// calling `burst()` (or go offline); data-plane code never needs this.
    pub fn synchronize(&mut self) {
        while !self.retired.is_empty() {
            self.try_reclaim();
            if !self.retired.is_empty() {
                std::thread::yield_now();
            }
        }
    }

    /// Paint a newly inserted or changed short prefix over the entries it wins.
    fn paint_short(&mut self, key: F::Key, len: u8, nh: u32) {
        let first = F::direct_index(key);
        let span = 1usize << (F::DIRECT_BITS - len);
        for c in first..first + span {
            self.prefetch_routes(c + PAINT_AHEAD, first + span);
            let src = self.src[c];
            if src == NO_SRC || src <= len {
                self.src[c] = len;
                if self.chunks[c].default != nh {
                    self.chunks[c].default = nh;
                    self.rebuild_chunk(c);
                }
            }
        }
    }

    /// Entries painted by the removed prefix fall back to its best shorter parent.
    fn unpaint_short(&mut self, key: F::Key, len: u8, parent_len: u8, parent_nh: u32) {
        let first = F::direct_index(key);
        let span = 1usize << (F::DIRECT_BITS - len);
        for c in first..first + span {
            self.prefetch_routes(c + PAINT_AHEAD, first + span);
            if self.src[c] == len {
                self.src[c] = parent_len;
                if self.chunks[c].default != parent_nh {
                    self.chunks[c].default = parent_nh;
                    self.rebuild_chunk(c);
                }
            }
        }
    }

    /// Painting a short prefix rebuilds the chunks it covers, each a cache miss on its
    /// route list (bgpbench's churn spent a third of its time there): start the miss of
    /// a chunk a few ahead of the one being rebuilt.
    #[inline]
    fn prefetch_routes(&self, c: usize, end: usize) {
        if c < end {
            prefetch(self.chunks[c].routes.as_ptr());
        }
    }

    fn best_short_parent(&self, key: F::Key, len: u8) -> (u8, u32) {
        for l in (0..len).rev() {
            if let Some(&nh) = self.short[l as usize].get(&F::mask(key, l)) {
                return (l, nh);
            }
        }
        (NO_SRC, NO_ROUTE)
    }

    /// Tell readers (through the QSBR token) whether the table has outgrown the cache.
    #[inline]
    fn update_walk_hint(&mut self) {
        let bytes = self.memory_bytes();
        let bushy = self.blocks > 0 && self.block_bytes / self.blocks >= BUSHY_BLOCK_BYTES;
        let deep = self.walk_override.unwrap_or(
            bushy
                || if self.deep_walk {
                    bytes >= SHALLOW_WALK_BYTES
                } else {
                    bytes > DEEP_WALK_BYTES
                },
        );
        if deep != self.deep_walk {
            self.deep_walk = deep;
            self.shared.qsbr.set_hint(deep);
        }
    }

    /// Start the cache misses an update of chunk `c` will take, so they overlap: the
    /// direct entry (written last) and the arena piece the new block will likely use.
    #[inline]
    fn prefetch_chunk(&self, c: usize) {
        prefetch(&self.shared.direct.entries()[c]);
        self.arena.prefetch_for(self.chunks[c].words as usize * 8);
    }

    /// Rebuild chunk `c` from the route store and swap it in with one store.
    fn rebuild_chunk(&mut self, c: usize) {
        if self.deferring {
            let bit = 1u64 << (c % 64);
            if self.dirty_bits[c / 64] & bit == 0 {
                self.dirty_bits[c / 64] |= bit;
                self.dirty.push(c);
            }
            return;
        }
        let routes = &self.chunks[c].routes;
        let (new, words) = if routes.is_empty() {
            (leaf_entry(self.chunks[c].default), 0)
        } else {
            let block = self
                .builder
                .build::<F>(&mut self.arena, routes, self.chunks[c].default);
            self.block_bytes += block.bytes();
            (block.ptr.as_ptr() as u64, block.words)
        };
        // Release: a reader that sees the new pointer sees the block's contents.
        // One writer: a plain load and a Release store, no locked exchange needed.
        let entry = &self.shared.direct.entries()[c];
        let old = entry.load(Ordering::Relaxed);
        entry.store(new, Ordering::Release);
        let old_words = core::mem::replace(&mut self.chunks[c].words, words);
        self.blocks = self.blocks + (words != 0) as usize - (old_words != 0) as usize;
        self.update_walk_hint();
        if old & 1 == 0 {
            let block = Block {
                // SAFETY: a non-leaf entry always holds a block pointer (never null).
                ptr: unsafe { core::ptr::NonNull::new_unchecked(old as *mut u64) },
                words: old_words,
            };
            self.block_bytes -= block.bytes();
            let tag = self.shared.qsbr.current() + 1;
            self.retired.push((tag, block));
            if self.retired.len() >= self.reclaim_at {
                self.try_reclaim();
                // Amortise: a lagging reader must not make every update scan the readers
                // and bump the token (which bounces its cache line to every reader).
                self.reclaim_at = self.retired.len() + RECLAIM_BATCH;
            }
        }
    }
}

impl<F: Family> Drop for Fib<F> {
    fn drop(&mut self) {
        // Readers may still use live and retired blocks: the arena goes with the last one.
        self.retired.clear();
        *self.shared.graveyard.lock().unwrap() = Some(core::mem::take(&mut self.arena));
    }
}

fn check_nh(nh: NextHopId) {
    assert!(
        nh.0 != NO_ROUTE,
        "NextHopId(u32::MAX) is reserved for 'no route'"
    );
}

/// A data-plane reader. Not shared between threads: each worker owns one.
///
/// QSBR contract: while online, a reader must keep calling [`Reader::burst`] (or
/// [`Reader::quiescent`]); every block retired after its last burst stays allocated until
/// it does. A worker that goes idle calls [`Reader::offline`] (the next burst brings it back).
pub struct Reader<F: Family> {
    shared: Arc<Shared<F>>,
    slot: Arc<CachePadded<AtomicU64>>,
    online: bool,
    last: u64,
    cpu: Path,
}

/// IPv4 reader.
pub type Reader4 = Reader<crate::V4>;
/// IPv6 reader.
pub type Reader6 = Reader<crate::V6>;

impl<F: Family> Reader<F> {
    /// Start a burst: announce a quiescent point (one atomic load, at most one store)
    /// and get a view valid until the next burst. The borrow stops a view outliving it.
    #[inline(always)]
    pub fn burst(&mut self) -> View<'_, F> {
        let deep = self
            .shared
            .qsbr
            .quiescent(&self.slot, &mut self.online, &mut self.last);
        View {
            direct: self.shared.direct.entries(),
            deep,
            cpu: self.cpu,
            _f: PhantomData,
        }
    }

    /// Announce a quiescent point without looking anything up (what `burst()` does first).
    #[inline]
    pub fn quiescent(&mut self) {
        self.shared
            .qsbr
            .quiescent(&self.slot, &mut self.online, &mut self.last);
    }

    /// Go idle: the writer stops waiting for this reader until its next `burst()`.
    pub fn offline(&mut self) {
        self.shared.qsbr.offline(&self.slot, &mut self.online);
    }

    /// One lookup in its own burst (convenience for tests and slow paths).
    pub fn lookup(&mut self, addr: F::Addr) -> Option<NextHopId> {
        self.burst().lookup(addr)
    }

    /// Tests and benchmarks: run this reader's lookups on `path` (panics if this CPU
    /// cannot run it).
    #[doc(hidden)]
    pub fn force_cpu_path(&mut self, path: Path) {
        self.cpu = checked(path);
    }

    /// The lookup code this reader runs.
    pub fn cpu_path(&self) -> Path {
        self.cpu
    }

    /// Readers currently registered on this table.
    pub fn reader_count(&self) -> usize {
        self.shared.qsbr.reader_count()
    }
}

impl<F: Family> Drop for Reader<F> {
    fn drop(&mut self) {
        self.shared.qsbr.unregister(&self.slot);
        debug_assert_eq!(self.slot.load(Ordering::Relaxed), OFFLINE);
    }
}

/// A reader's view for one burst: lookups that never lock, wait or allocate.
pub struct View<'a, F: Family> {
    direct: &'a [AtomicU64],
    /// The writer's hint: the table is too big for cache, walk batches level by level.
    deep: bool,
    cpu: Path,
    _f: PhantomData<F>,
}

impl<F: Family> View<'_, F> {
    #[inline(always)]
    pub fn lookup(&self, addr: F::Addr) -> Option<NextHopId> {
        to_opt(lookup_key_on::<F>(self.cpu, self.direct, F::addr_key(addr)))
    }

    /// Look up many addresses, overlapping their memory accesses (a software pipeline
    /// with prefetches, or 16 keys walking level by level on big IPv6 tables: see
    /// [`Fib::batch_method`]). `out` must be at least as long.
    #[inline]
    pub fn lookup_batch(&self, addrs: &[F::Addr], out: &mut [Option<NextHopId>]) {
        let out = &mut out[..addrs.len()];
        lookup_batch_on::<F>(
            self.cpu,
            self.direct,
            self.deep,
            addrs.len(),
            |i| F::addr_key(addrs[i]),
            |i, v| out[i] = to_opt(v),
        );
    }

    /// Raw batch form for hot loops: keys as integers, `u32::MAX` meaning no route.
    #[inline]
    pub fn lookup_batch_raw(&self, keys: &[F::Key], out: &mut [u32]) {
        let out = &mut out[..keys.len()];
        lookup_batch_on::<F>(
            self.cpu,
            self.direct,
            self.deep,
            keys.len(),
            |i| keys[i],
            |i, v| out[i] = v,
        );
    }
}
