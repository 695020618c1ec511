//! NAT outgoing as one worker does it, over IP packets in place (sans-IO: the pipeline
//! decides which packets come here and where they go after):
//!
//! ```text
//!  outbound(pod's packet to outside every pool) ─ classify ─ flow found, or snat() a new
//!      one on this worker's ports ─ encap::nat::translate(source → node:port)
//!  inbound(packet to the node's address) ─ classify ─ the reply tuple of a flow?
//!      translate(destination → pod:port); an ICMP error quoting what we sent: the same,
//!      its quote included; anything else: NotOurs, untouched (the node's own traffic)
//! ```

use super::classify::{classify, Seen};
use super::snat::{snat, SnatRefused};
use super::tcp;
use super::{v4_bytes, Dir, FlowState, FlowTable, Tuple, TCP};
use encap::nat::{translate, Side};
use std::ops::RangeInclusive;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatOutcome {
    /// Rewritten: send it on.
    Translated,
    /// Not a translated flow's (inbound): leave it to whoever else it is for.
    NotOurs,
    Drop(NatDrop),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatDrop {
    NoPort,
    TableFull,
    /// Unreadable, a fragment, no node address of the family, a lone RST, an ICMP
    /// error from a pod.
    Untranslatable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatCounters {
    pub out: u64,
    pub back: u64,
    pub no_port: u64,
    pub table_full: u64,
    pub untranslatable: u64,
}

pub struct Nat {
    pub table: FlowTable,
    ports: RangeInclusive<u16>,
    node_v4: Option<[u8; 4]>,
    node_v6: Option<[u8; 16]>,
    pub counters: NatCounters,
}

/// The NAT port a packet to the node names, if it may be a translated flow's: a reply's
/// destination port (an echo reply's identifier), or the source port of what an ICMP
/// error quotes (what we sent). It says which worker owns the flow (`snat::owner_of`).
pub fn nat_port(seen: &Seen) -> Option<u16> {
    match seen {
        Seen::Flow { tuple, .. } => Some(tuple.dport),
        Seen::Related { quoted } => Some(quoted.sport),
        Seen::Untrackable => None,
    }
}

impl Nat {
    /// The node's addresses changed (None: that family is not translated).
    pub fn set_node(&mut self, node_v4: Option<[u8; 4]>, node_v6: Option<[u8; 16]>) {
        self.node_v4 = node_v4;
        self.node_v6 = node_v6;
    }

    /// A worker's NAT: its flow table, its slice of the NAT ports, the node's addresses
    /// on the uplink (None: that family is not translated).
    pub fn new(
        table: FlowTable,
        ports: RangeInclusive<u16>,
        node_v4: Option<[u8; 4]>,
        node_v6: Option<[u8; 16]>,
    ) -> Nat {
        Nat {
            table,
            ports,
            node_v4,
            node_v6,
            counters: NatCounters::default(),
        }
    }

    fn drop(&mut self, why: NatDrop) -> NatOutcome {
        match why {
            NatDrop::NoPort => self.counters.no_port += 1,
            NatDrop::TableFull => self.counters.table_full += 1,
            NatDrop::Untranslatable => self.counters.untranslatable += 1,
        }
        NatOutcome::Drop(why)
    }

    /// A pod's packet for outside every pool: its source becomes the node's address and
    /// a port of this worker's.
    pub fn outbound(&mut self, ip: &mut [u8], now: u32) -> NatOutcome {
        let seen = classify(ip);
        self.outbound_seen(ip, seen, now)
    }

    /// `outbound` for a packet already classified (`seen` is `classify(ip)`).
    pub fn outbound_seen(&mut self, ip: &mut [u8], seen: Seen, now: u32) -> NatOutcome {
        let Seen::Flow { tuple, tcp_flags } = seen else {
            return self.drop(NatDrop::Untranslatable);
        };
        let node = match (tuple.v6, self.node_v4, self.node_v6) {
            (false, Some(a), _) => v4_bytes(a.into()),
            (true, _, Some(a)) => a,
            _ => return self.drop(NatDrop::Untranslatable),
        };
        let port = match self.table.lookup(&tuple) {
            Some((id, Dir::Orig)) if !self.table.is_stale(id, now) => {
                self.table.touch(id, Dir::Orig, tcp_flags, now);
                self.table.get(id).map_or(0, |f| f.reply.dport)
            }
            // Our reply tuple seen as an original: not a pod's own flow.
            Some((_, Dir::Reply)) => return self.drop(NatDrop::Untranslatable),
            stale => {
                if let Some((id, _)) = stale {
                    self.table.remove(id);
                }
                match self.new_flow(&tuple, tcp_flags, node, now) {
                    Ok(p) => p,
                    Err(d) => return self.drop(d),
                }
            }
        };
        let len = if tuple.v6 { 16 } else { 4 };
        match translate(ip, Side::Source, &node[..len], port) {
            Ok(()) => {
                self.counters.out += 1;
                NatOutcome::Translated
            }
            Err(_) => self.drop(NatDrop::Untranslatable),
        }
    }

    fn new_flow(&mut self, t: &Tuple, flags: u8, node: [u8; 16], now: u32) -> Result<u16, NatDrop> {
        let state = if t.proto == TCP {
            FlowState::Tcp(tcp::next(None, flags, false).ok_or(NatDrop::Untranslatable)?)
        } else {
            FlowState::Other { replied: false }
        };
        snat(&mut self.table, t, node, &self.ports, state, now)
            .map(|(_, port)| port)
            .map_err(|e| match e {
                SnatRefused::NoPort => NatDrop::NoPort,
                SnatRefused::TableFull => NatDrop::TableFull,
            })
    }

    /// A packet to the node's address: a translated flow's reply goes back to its pod,
    /// as does an ICMP error about a packet we translated. Anything else is not ours.
    pub fn inbound(&mut self, ip: &mut [u8], now: u32) -> NatOutcome {
        let seen = classify(ip);
        self.inbound_seen(ip, seen, now)
    }

    /// `inbound` for a packet already classified (`seen` is `classify(ip)`).
    pub fn inbound_seen(&mut self, ip: &mut [u8], seen: Seen, now: u32) -> NatOutcome {
        let (id, tracked) = match seen {
            Seen::Flow { tuple, tcp_flags } => match self.table.lookup(&tuple) {
                Some((id, Dir::Reply)) => (id, Some((tuple, tcp_flags))),
                _ => return NatOutcome::NotOurs,
            },
            // The quote is what we sent: the flow's reply tuple, reversed.
            Seen::Related { quoted } => match self.table.lookup(&quoted.reversed()) {
                Some((id, Dir::Reply)) => (id, None),
                _ => return NatOutcome::NotOurs,
            },
            Seen::Untrackable => return NatOutcome::NotOurs,
        };
        if self.table.is_stale(id, now) {
            // It had aged out: no longer a flow of ours.
            self.table.remove(id);
            return NatOutcome::NotOurs;
        }
        if let Some((_, flags)) = tracked {
            self.table.touch(id, Dir::Reply, flags, now);
        }
        let Some(f) = self.table.get(id) else {
            return NatOutcome::NotOurs;
        };
        let (pod, port, len) = (f.orig.src, f.orig.sport, if f.orig.v6 { 16 } else { 4 });
        match translate(ip, Side::Destination, &pod[..len], port) {
            Ok(()) => {
                self.counters.back += 1;
                NatOutcome::Translated
            }
            Err(_) => self.drop(NatDrop::Untranslatable),
        }
    }
}

#[cfg(test)]
mod tests;
