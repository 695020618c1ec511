//! NAT outgoing in the pipeline: which packets go to `conntrack::nat::Nat`, and the
//! worker that owns a returning packet's flow.
//!
//! ```text
//!  pod → outside (Overlay::masquerades_*) ─ after the FIB lookup, before forward():
//!        outbound() rewrites the source to node:port; an ICMP error we then make about
//!        it (TTL, too big) goes through own_error() so the pod sees its own addresses
//!  uplink → a node address ─ the NAT port names the owner (snat::owner_of): another
//!        worker's → Action::Handoff; ours → inbound(): a reply or an error about what
//!        we sent is rewritten to the pod before the FIB lookup; else the kernel's
//! ```
//! A flow lives in the table of the worker that saw its first packet (the pod's side);
//! its port is from that worker's slice, so the reply finds it whichever queue it lands
//! on: one mailbox copy for replies that RSS puts on another worker (VPP's handoff).

use crate::burst::BURST;
use crate::burst::{Action, DropReason};
use crate::conntrack::classify::{classify, Seen};
use crate::conntrack::nat::{nat_port, Nat, NatDrop, NatOutcome};
use crate::conntrack::snat::{owner_of, worker_ports};
use crate::conntrack::view::{FlowFilter, FlowView};
use crate::conntrack::FlowTable;
use crate::conntrack::Tuple;
use crate::counters::Tally;
use crate::tunnel::Overlay;
use encap::rewrite::ETH_HDR_LEN;
use std::ops::RangeInclusive;

/// Slots of the flow table the clock hand looks at per housekeeping round.
const EXPIRE_BUDGET: usize = 256;

/// A worker's connection tracking and NAT outgoing.
#[derive(Default)]
pub struct NatStage {
    /// Flows at most, the node-wide NAT range, workers, this worker (None: no
    /// conntrack configured).
    config: Option<(usize, RangeInclusive<u16>, usize, usize)>,
    /// The flows, made when a pool first asks for NAT.
    pub nat: Option<Box<Nat>>,
    /// Whether a pool asks for NAT now.
    on: bool,
    /// The flow tables' clock, in seconds (set once per loop).
    now_s: u32,
    /// The burst's packets to masquerade, classified (`prepare`), kept between bursts
    /// so that none is initialised per burst.
    seen: Vec<Seen>,
    tuples: Vec<Tuple>,
}

fn nat_drop(d: NatDrop) -> DropReason {
    match d {
        NatDrop::NoPort => DropReason::NatNoPort,
        NatDrop::TableFull => DropReason::ConntrackFull,
        NatDrop::Untranslatable => DropReason::NatUntranslatable,
    }
}

impl NatStage {
    /// Worker `w` of `workers`: `max_flows` flows, its slice of `range`.
    pub fn configure(
        &mut self,
        max_flows: usize,
        range: RangeInclusive<u16>,
        workers: usize,
        w: usize,
    ) {
        self.config = Some((max_flows, range, workers.max(1), w));
    }

    /// The overlay changed: NAT on or off, the node's addresses. Memory is taken when a
    /// pool first asks for NAT; flows already made stay when it goes off (their
    /// replies still come back).
    pub fn sync(&mut self, o: &Overlay) {
        let wanted = o.nat_wanted();
        if wanted {
            self.make_table();
        }
        if let Some(n) = &mut self.nat {
            let v4 = o.local_v4.first().map(|a| a.to_be_bytes());
            let v6 = o.local_v6.first().map(|a| a.to_be_bytes());
            n.set_node(v4, v6);
        }
        self.on = wanted && self.nat.is_some();
    }

    /// The flow table, made now if it is not yet (memory taken once).
    fn make_table(&mut self) {
        if self.nat.is_none() {
            if let Some((max, range, workers, w)) = &self.config {
                let table = FlowTable::new(*max, 0x9e37_79b9_7f4a_7c15 ^ *w as u64);
                let ports = worker_ports(range, *w, *workers);
                self.nat = Some(Box::new(Nat::new(table, ports, None, None)));
            }
        }
    }

    /// Policy applies to some endpoint: every pod flow is tracked from now on.
    pub fn track_all(&mut self) {
        self.make_table();
    }

    /// Bring these tuples' flows into the cache (see `FlowTable::warm`).
    #[inline]
    pub fn warm(&self, tuples: &[Tuple]) {
        if let Some(n) = &self.nat {
            n.table.warm(tuples);
        }
    }

    /// The flow table and the clock, when there is a table.
    #[inline]
    pub fn table(&mut self) -> Option<(&mut FlowTable, u32)> {
        let now = self.now_s;
        self.nat.as_mut().map(|n| (&mut n.table, now))
    }

    /// The figures `counters::CONNTRACK` names (None: no flow table yet).
    pub fn figures(&self) -> Option<[u64; 6]> {
        let t = &self.nat.as_ref()?.table;
        let s = t.stats;
        Some([
            t.len() as u64,
            t.capacity() as u64,
            s.created,
            s.expired,
            s.evicted,
            s.refused_full,
        ])
    }

    /// Up to `limit` flows that `filter` picks and how many it picks; or, with
    /// `flush`, remove them (nothing listed).
    pub fn flows(
        &mut self,
        filter: &FlowFilter,
        limit: usize,
        flush: bool,
    ) -> (Vec<FlowView>, usize) {
        let worker = self.config.as_ref().map_or(0, |c| c.3);
        match &mut self.nat {
            None => (Vec::new(), 0),
            Some(n) if flush => (Vec::new(), n.table.flush_matching(filter)),
            Some(n) => n.table.views(filter, limit, worker, self.now_s),
        }
    }

    /// The clock, and some ageing: once per loop.
    pub fn housekeep(&mut self, now_s: u32) {
        self.now_s = now_s;
        // An empty table has nothing to age (and an idle worker loops often).
        if let Some(n) = self.nat.as_mut().filter(|n| !n.table.is_empty()) {
            n.table.expire(now_s, EXPIRE_BUDGET);
        }
    }

    /// Of a pod's burst's packets `picks` (index, next hop, IPv6), those to masquerade:
    /// a bit per frame. Each is classified once, and the flow table warmed for all.
    pub fn prepare(
        &mut self,
        from_pod: bool,
        o: Option<&Overlay>,
        frames: &[&mut [u8]],
        lens: &[usize],
        picks: impl Iterator<Item = (u8, u32, bool)>,
    ) -> u64 {
        if !from_pod || !self.on {
            return 0;
        }
        if self.seen.len() < BURST {
            self.seen = vec![Seen::Untrackable; BURST];
            self.tuples = Vec::with_capacity(BURST);
        }
        self.tuples.clear();
        let mut bits = 0u64;
        for (i, _, v6) in picks {
            let i = i as usize;
            if i < BURST && self.masquerades(o, frames[i], lens[i], v6) {
                bits |= 1 << i;
                let seen = classify(&frames[i][ETH_HDR_LEN..lens[i]]);
                if let Seen::Flow { tuple, .. } = seen {
                    self.tuples.push(tuple);
                }
                self.seen[i] = seen;
            }
        }
        if let Some(n) = &self.nat {
            n.table.warm(&self.tuples);
        }
        bits
    }

    /// Is this pod's IPv4 / IPv6 packet to be masqueraded?
    #[inline]
    pub fn masquerades(&self, o: Option<&Overlay>, frame: &[u8], len: usize, v6: bool) -> bool {
        let (Some(o), true) = (o, self.on) else {
            return false;
        };
        let ip = &frame[ETH_HDR_LEN.min(len)..len];
        if v6 {
            super::headers::ipv6_addrs(ip).is_some_and(|(s, d)| o.masquerades_v6(s, d))
        } else {
            super::headers::ipv4_addrs(ip).is_some_and(|(s, d)| o.masquerades_v4(s, d))
        }
    }

    /// Is `dst` one of the node's addresses (where NAT replies come)?
    #[inline]
    pub fn to_node(&self, o: Option<&Overlay>, dst: u128, v6: bool) -> bool {
        self.nat.is_some()
            && o.is_some_and(|o| {
                if v6 {
                    o.local_v6.contains(&dst)
                } else {
                    o.local_v4.contains(&(dst as u32))
                }
            })
    }

    /// A pod's packet for the outside (frame `i` of the burst `prepare` saw), its route
    /// found: source → node:port.
    #[inline(never)]
    pub fn outbound(
        &mut self,
        i: usize,
        frame: &mut [u8],
        len: usize,
        t: &mut Tally,
    ) -> Result<(), DropReason> {
        let (Some(n), Some(&seen)) = (&mut self.nat, self.seen.get(i)) else {
            return Err(DropReason::NatUntranslatable);
        };
        match n.outbound_seen(&mut frame[ETH_HDR_LEN..len], seen, self.now_s) {
            NatOutcome::Translated => {
                t.nat_translated += 1;
                Ok(())
            }
            NatOutcome::Drop(d) => Err(nat_drop(d)),
            NatOutcome::NotOurs => Err(DropReason::NatUntranslatable),
        }
    }

    /// A packet to a node address on the uplink: None when it was a NAT reply (or an
    /// ICMP error about what we sent), now rewritten toward its pod; else what to do
    /// with it: the owning worker's, a drop, or the kernel's (SSH, BGP: the node's own,
    /// never routed on).
    #[inline(never)]
    pub fn inbound(
        &mut self,
        worker: usize,
        frame: &mut [u8],
        len: usize,
        t: &mut Tally,
    ) -> Option<Action> {
        let (Some(n), Some((_, range, workers, _))) = (&mut self.nat, &self.config) else {
            return Some(Action::Kernel);
        };
        let ip = &mut frame[ETH_HDR_LEN..len];
        let seen = classify(ip);
        let owner = nat_port(&seen).and_then(|port| owner_of(range, port, *workers));
        match owner {
            None => return Some(Action::Kernel),
            Some(w) if w != worker => {
                t.handed_off += 1;
                let worker = w as u16;
                return Some(Action::Handoff { worker, len });
            }
            Some(_) => {}
        }
        match n.inbound_seen(ip, seen, self.now_s) {
            NatOutcome::Translated => {
                t.nat_translated += 1;
                None
            }
            NatOutcome::NotOurs => Some(Action::Kernel),
            NatOutcome::Drop(d) => Some(Action::Drop(nat_drop(d))),
        }
    }

    /// An ICMP error we made about a packet we had translated (it is addressed to the
    /// node now): translate it back so that the pod recognises its own packet.
    #[cold]
    #[inline(never)]
    pub fn own_error(&mut self, frame: &mut [u8], len: usize) -> bool {
        let Some(n) = &mut self.nat else {
            return false;
        };
        let len = len.min(frame.len());
        n.inbound(&mut frame[ETH_HDR_LEN..len], self.now_s) == NatOutcome::Translated
    }
}
