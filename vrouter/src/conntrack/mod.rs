//! Connection tracking: one flow table per worker, read and written by that worker alone
//! (no lock, no atomic on the hot path), sized once (bounded memory, no allocation after
//! start).
//!
//! A flow is its two tuples — the original direction and what a reply looks like (the
//! reverse of the original, translated when NAT rewrote it) — its protocol state and
//! when it was last seen. Both tuples are in one open-addressing index (linear probing,
//! backward-shift deletion, no tombstones) whose entries name the flow and the direction.
//!
//! ```text
//!  index: [tag:32 | dir:1 | slot:31] × 4 per flow ──▶ flows: [Flow] (~88 bytes each)
//!  track(tuple, flags, now) ─ found: state advanced, last_seen = now
//!                           └ new: inserted; full: an unreplied or closing flow evicted
//!                             (bounded scan), established flows never; else refused
//!  expire(now, budget) ─ a clock hand over the slots, `budget` per call (per burst)
//! ```
//!
//! Timeouts are the kernel's defaults (`tcp::TcpState::timeout_s`; UDP 30 s, 120 s once
//! replied; ICMP 30 s), on a coarse clock in seconds that the worker keeps.

pub mod classify;
pub mod nat;
pub mod snat;
pub mod tcp;
pub mod view;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tcp::TcpState;

pub use encap::wire::ip::protocol::{ICMP, ICMPV6, TCP, UDP};

/// One direction of a flow. IPv4 addresses sit in the first 4 bytes. For ICMP echo the
/// identifier is both ports (a reply carries the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
}

/// An IPv4 address as a tuple holds it (in the first 4 bytes).
pub fn v4_bytes(a: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a.octets());
    b
}

impl Tuple {
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, proto: u8) -> Tuple {
        Tuple {
            src: v4_bytes(src),
            dst: v4_bytes(dst),
            sport,
            dport,
            proto,
            v6: false,
        }
    }

    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, proto: u8) -> Tuple {
        Tuple {
            src: src.octets(),
            dst: dst.octets(),
            sport,
            dport,
            proto,
            v6: true,
        }
    }

    /// The tuple of the other direction, untranslated.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    fn addr(&self, b: &[u8; 16]) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(*b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
    }

    pub fn src_addr(&self) -> IpAddr {
        self.addr(&self.src)
    }

    pub fn dst_addr(&self) -> IpAddr {
        self.addr(&self.dst)
    }

    /// A 64-bit hash (multiply-xorshift over the fields; the seed varies per table so a
    /// flood crafted against one table's layout is not one against another's).
    fn hash(&self, seed: u64) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let mix = |h: u64, w: u64| {
            let h = (h ^ w).wrapping_mul(K);
            h ^ (h >> 29)
        };
        let mut h = seed;
        if self.v6 {
            for w in [
                &self.src[..8],
                &self.src[8..],
                &self.dst[..8],
                &self.dst[8..],
            ] {
                h = mix(h, word(w));
            }
        } else {
            // IPv4 addresses fill the first 4 bytes: one word holds both.
            let a = |b: &[u8; 16]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            h = mix(h, a(&self.src) | a(&self.dst) << 32);
        }
        h = mix(
            h,
            u64::from(self.sport)
                | u64::from(self.dport) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.v6) << 40,
        );
        h ^= h >> 32;
        h.wrapping_mul(K)
    }
}

/// A flow's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    Tcp(TcpState),
    /// UDP, ICMP echo and other protocols: whether a reply was seen.
    Other {
        replied: bool,
    },
}

impl FlowState {
    fn timeout_s(self, proto: u8) -> u32 {
        match self {
            FlowState::Tcp(s) => s.timeout_s(),
            FlowState::Other { replied } if proto == UDP => {
                if replied {
                    120
                } else {
                    30
                }
            }
            FlowState::Other { .. } => 30,
        }
    }

    /// May go to make room for a new flow (never an established one).
    fn evictable(self) -> bool {
        match self {
            FlowState::Tcp(s) => s.evictable(),
            FlowState::Other { replied } => !replied,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub orig: Tuple,
    /// What a reply looks like (NAT: to the translated address and port).
    pub reply: Tuple,
    pub state: FlowState,
    pub last_seen: u32,
    /// The policy generation the flow was admitted under (0: none yet); a flow of an
    /// older one is judged again on its next packet.
    pub policy: u32,
}

/// Which of a flow's tuples a packet matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Orig,
    Reply,
}

/// What [`FlowTable::admitted`] found for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A flow admitted under this generation: advanced, nothing else to do.
    Current,
    /// A flow admitted under another: to be judged again (its original tuple).
    Older { id: u32, dir: Dir, orig: Tuple },
    /// No live flow.
    Missing,
}

/// Why a flow was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot holds a flow that may not be evicted.
    Full,
    /// One of its tuples belongs to another flow already.
    Exists,
}

/// What tracking one packet found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// A flow made by this packet.
    New(u32),
    /// A packet of a known flow, in that direction.
    Known(u32, Dir),
    /// A packet that makes no flow (a lone TCP RST).
    Untracked,
    Refused(Refused),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtStats {
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    pub refused_full: u64,
    pub removed: u64,
}

/// Slots looked at for a flow to evict when the table is full.
const EVICT_SCAN: usize = 64;
const EMPTY: u64 = 0;
const REPLY_BIT: u32 = 1 << 31;

/// A worker's flows.
pub struct FlowTable {
    flows: Vec<Flow>,
    /// Which slots hold a flow.
    live: Vec<bool>,
    free: Vec<u32>,
    /// `tag << 32 | dir << 31 | slot`; 0 is empty (tags are never 0).
    index: Vec<u64>,
    mask: usize,
    seed: u64,
    hand: usize,
    pub stats: CtStats,
}

impl FlowTable {
    /// Room for `max_flows` flows; memory is taken now, once.
    pub fn new(max_flows: usize, seed: u64) -> FlowTable {
        let max_flows = max_flows.clamp(1, (REPLY_BIT - 1) as usize);
        // Two entries per flow at a load of at most one half.
        let slots = (4 * max_flows).next_power_of_two();
        let empty = Flow {
            orig: Tuple::default(),
            reply: Tuple::default(),
            state: FlowState::Other { replied: false },
            last_seen: 0,
            policy: 0,
        };
        FlowTable {
            flows: vec![empty; max_flows],
            live: vec![false; max_flows],
            free: (0..max_flows as u32).rev().collect(),
            index: vec![EMPTY; slots],
            mask: slots - 1,
            seed: seed | 1,
            hand: 0,
            stats: CtStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.flows.len()
    }

    /// Bytes held per flow of capacity (flows, liveness, free list and index).
    pub fn bytes_per_flow(&self) -> usize {
        (self.flows.len() * std::mem::size_of::<Flow>()
            + self.live.len()
            + self.free.capacity() * 4
            + self.index.len() * 8)
            / self.flows.len()
    }

    fn tag(h: u64) -> u64 {
        (h >> 32).max(1)
    }

    /// The flow and direction `t` belongs to.
    pub fn lookup(&self, t: &Tuple) -> Option<(u32, Dir)> {
        let h = t.hash(self.seed);
        let tag = Self::tag(h);
        let mut i = h as usize & self.mask;
        loop {
            let e = self.index[i];
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag {
                let v = e as u32;
                let (id, dir) = (v & !REPLY_BIT, v & REPLY_BIT != 0);
                let f = &self.flows[id as usize];
                let stored = if dir { &f.reply } else { &f.orig };
                if stored == t {
                    return Some((id, if dir { Dir::Reply } else { Dir::Orig }));
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn get(&self, id: u32) -> Option<&Flow> {
        self.live
            .get(id as usize)
            .filter(|&&l| l)
            .map(|_| &self.flows[id as usize])
    }

    fn index_insert(&mut self, t: &Tuple, value: u32) {
        let h = t.hash(self.seed);
        let mut i = h as usize & self.mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = Self::tag(h) << 32 | u64::from(value);
    }

    /// Take `value`'s entry for `t` out, shifting later entries of the run back so that
    /// no lookup stops early at the hole.
    fn index_remove(&mut self, t: &Tuple, value: u32) {
        let h = t.hash(self.seed);
        let mut i = h as usize & self.mask;
        while self.index[i] as u32 != value || self.index[i] == EMPTY {
            if self.index[i] == EMPTY {
                return;
            }
            i = (i + 1) & self.mask;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            // The entry's home slot: it may move back into the hole only if the hole is
            // not before its home (cyclically).
            let v = e as u32;
            let f = &self.flows[(v & !REPLY_BIT) as usize];
            let key = if v & REPLY_BIT != 0 {
                &f.reply
            } else {
                &f.orig
            };
            let home = key.hash(self.seed) as usize & self.mask;
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = e;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Add a flow. When the table is full an evictable flow (unreplied, or closing) near
    /// the clock hand makes room; established ones never do.
    pub fn insert(
        &mut self,
        orig: Tuple,
        reply: Tuple,
        state: FlowState,
        now: u32,
    ) -> Result<u32, Refused> {
        if self.lookup(&orig).is_some() || self.lookup(&reply).is_some() || orig == reply {
            return Err(Refused::Exists);
        }
        if self.free.is_empty() && !self.evict_one(now) {
            self.stats.refused_full += 1;
            return Err(Refused::Full);
        }
        let id = self.free.pop().expect("a free slot after eviction");
        self.flows[id as usize] = Flow {
            orig,
            reply,
            state,
            last_seen: now,
            policy: 0,
        };
        self.live[id as usize] = true;
        self.index_insert(&orig, id);
        self.index_insert(&reply, id | REPLY_BIT);
        self.stats.created += 1;
        Ok(id)
    }

    /// Remove a flow (counted as `removed`; ageing and eviction count their own).
    pub fn remove(&mut self, id: u32) -> Option<Flow> {
        let f = self.unlink(id)?;
        self.stats.removed += 1;
        Some(f)
    }

    fn unlink(&mut self, id: u32) -> Option<Flow> {
        if !self.live.get(id as usize).copied().unwrap_or(false) {
            return None;
        }
        let f = self.flows[id as usize];
        self.index_remove(&f.orig, id);
        self.index_remove(&f.reply, id | REPLY_BIT);
        self.live[id as usize] = false;
        self.free.push(id);
        Some(f)
    }

    /// Whether flow `id` has been idle longer than its state allows (or is gone).
    pub fn is_stale(&self, id: u32, now: u32) -> bool {
        self.get(id).is_none_or(|f| self.expired(f, now))
    }

    fn expired(&self, f: &Flow, now: u32) -> bool {
        now.wrapping_sub(f.last_seen) > f.state.timeout_s(f.orig.proto)
    }

    fn evict_one(&mut self, now: u32) -> bool {
        let n = self.flows.len();
        for k in 0..EVICT_SCAN.min(n) {
            let i = (self.hand + k) % n;
            if self.live[i]
                && (self.flows[i].state.evictable() || self.expired(&self.flows[i], now))
            {
                self.unlink(i as u32);
                self.stats.evicted += 1;
                self.hand = (i + 1) % n;
                return true;
            }
        }
        self.hand = (self.hand + EVICT_SCAN) % n;
        false
    }

    /// Look at up to `budget` slots from the clock hand and remove the expired flows.
    /// Returns how many went.
    pub fn expire(&mut self, now: u32, budget: usize) -> usize {
        let n = self.flows.len();
        let mut gone = 0;
        for _ in 0..budget.min(n) {
            let i = self.hand;
            self.hand = (self.hand + 1) % n;
            if self.live[i] && self.expired(&self.flows[i], now) {
                self.unlink(i as u32);
                self.stats.expired += 1;
                gone += 1;
            }
        }
        gone
    }

    /// What one packet does: its flow found and advanced, or a new one made. `tcp_flags`
    /// is the TCP header's flags byte (ignored for other protocols).
    pub fn track(&mut self, t: &Tuple, tcp_flags: u8, now: u32) -> Tracked {
        if let Some((id, dir)) = self.lookup(t) {
            if self.expired(&self.flows[id as usize], now) {
                // Stale: as if it were not there.
                self.unlink(id);
                self.stats.expired += 1;
                return self.track(t, tcp_flags, now);
            }
            self.touch(id, dir, tcp_flags, now);
            return Tracked::Known(id, dir);
        }
        let state = if t.proto == TCP {
            match tcp::next(None, tcp_flags, false) {
                Some(s) => FlowState::Tcp(s),
                None => return Tracked::Untracked,
            }
        } else {
            FlowState::Other { replied: false }
        };
        match self.insert(*t, t.reversed(), state, now) {
            Ok(id) => Tracked::New(id),
            Err(r) => Tracked::Refused(r),
        }
    }

    /// A packet of flow `id` (found by `lookup`, not stale) in direction `dir`: its state
    /// advanced, last seen now. `track` without a second lookup.
    pub fn touch(&mut self, id: u32, dir: Dir, tcp_flags: u8, now: u32) {
        let Some(f) = self.flows.get_mut(id as usize) else {
            return;
        };
        let reply = dir == Dir::Reply;
        f.state = match f.state {
            FlowState::Tcp(s) => FlowState::Tcp(
                tcp::next(Some(s), tcp_flags, reply).expect("a known flow keeps a state"),
            ),
            FlowState::Other { replied } => FlowState::Other {
                replied: replied || reply,
            },
        };
        f.last_seen = now;
    }

    /// Policy's question for a packet's tuple, in one lookup: is its flow admitted
    /// under `generation`? If so the flow is advanced (`touch`).
    #[inline]
    pub fn admitted(&mut self, t: &Tuple, tcp_flags: u8, now: u32, generation: u32) -> Admitted {
        let Some((id, dir)) = self.lookup(t) else {
            return Admitted::Missing;
        };
        let f = &self.flows[id as usize];
        if self.expired(f, now) {
            return Admitted::Missing;
        }
        if f.policy != generation {
            return Admitted::Older {
                id,
                dir,
                orig: f.orig,
            };
        }
        self.touch(id, dir, tcp_flags, now);
        Admitted::Current
    }

    /// Record the policy generation flow `id` is admitted under.
    pub fn set_policy(&mut self, id: u32, generation: u32) {
        if let Some(f) = self.flows.get_mut(id as usize) {
            f.policy = generation;
        }
    }

    /// Bring the index slots and flows of these tuples into the cache before a burst's
    /// lookups (DPDK's bulk lookup): two tight loops of independent loads, so the
    /// misses overlap instead of each packet waiting for its own two in turn.
    pub fn warm(&self, tuples: &[Tuple]) {
        const MAX: usize = 64;
        let n = tuples.len().min(MAX);
        let mut slots = [0usize; MAX];
        for (s, t) in slots.iter_mut().zip(&tuples[..n]) {
            *s = t.hash(self.seed) as usize & self.mask;
        }
        let mut entries = [EMPTY; MAX];
        for (e, &s) in entries.iter_mut().zip(&slots[..n]) {
            *e = self.index[s];
        }
        let mut acc = 0u32;
        for &e in &entries[..n] {
            if e != EMPTY {
                acc ^= self.flows[((e as u32) & !REPLY_BIT) as usize].last_seen;
            }
        }
        std::hint::black_box(acc);
    }

    /// Every live flow.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Flow)> {
        self.flows
            .iter()
            .enumerate()
            .filter(|(i, _)| self.live[*i])
            .map(|(i, f)| (i as u32, f))
    }
}

#[cfg(test)]
mod tests;
