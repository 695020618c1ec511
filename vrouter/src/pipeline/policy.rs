//! Network policy in the pipeline: a flow's first packet is judged by the classifiers
//! of the endpoints it leaves (egress) and enters (ingress); the rest pass on its
//! connection-tracking entry, which remembers the policy generation that admitted it.
//!
//! ```text
//!  routed packet ─ no local endpoint on either side, or no policy anywhere: untouched
//!    owner: the worker of the endpoint (of both: the lower port) ≠ us → Action::Handoff
//!    Seen::Flow    ─ entry of this generation → pass (state advanced)
//!                  ├ entry of an older one → judged again as its first packet:
//!                  │   allowed → entry takes the generation; denied → entry cut, drop
//!                  └ no entry → judged: denied → drop `policy`; allowed → entry made
//!                      (a NAT outgoing packet's entry is NAT's to make)
//!    Seen::Related ─ an ICMP error about a tracked flow passes; else judged as ICMP
//!    Untrackable   ─ judged, every packet
//! ```
//! Both sides' flows live in one worker's table so that a reply always finds its
//! flow: the owner rule is symmetric (the same endpoint whichever way a packet goes).

use super::nat::NatStage;
use crate::burst::{Action, DropReason, BURST};
use crate::conntrack::classify::{classify, Seen};
use crate::conntrack::{Admitted, Dir, FlowTable, Refused, Tracked, Tuple, ICMP, ICMPV6};
use crate::counters::Tally;
use crate::icmp::RateLimit;
use crate::nexthop::PortId;
use crate::policy::set::{PolicySet, PortPolicy};
use crate::policy::Compiled;
use datastore::policy::{Decision, Packet};
use encap::nat::layout;
use encap::rewrite::ETH_HDR_LEN;
use std::sync::Arc;
use tracing::info;

/// Log lines for Log rules: at most this many per second per worker (bursts of 20).
const LOG_PER_SECOND: u32 = 10;

/// A worker's view of the policies.
pub struct PolicyStage {
    set: Option<Arc<PolicySet>>,
    log: RateLimit,
    /// The burst's routed packets as conntrack reads them (`prepare`), by frame index;
    /// kept between bursts so that none is initialised per burst.
    seen: Vec<Seen>,
    tuples: Vec<Tuple>,
}

impl Default for PolicyStage {
    fn default() -> Self {
        PolicyStage {
            set: None,
            log: RateLimit::new(LOG_PER_SECOND, 20),
            seen: Vec::new(),
            tuples: Vec::new(),
        }
    }
}

/// The sides of a packet that are local endpoints.
#[derive(Clone, Copy)]
struct Sides<'a> {
    src: Option<&'a PortPolicy>,
    dst: Option<&'a PortPolicy>,
}

impl PolicyStage {
    /// A new set from the node: used from the next packet on.
    pub fn set(&mut self, set: Arc<PolicySet>) {
        self.set = Some(set);
    }

    /// Whether packets are checked at all.
    #[inline]
    pub fn active(&self) -> bool {
        self.set.as_ref().is_some_and(|s| s.active())
    }

    /// Read the burst's routed packets `picks` (index, next hop, IPv6) once, and bring
    /// their flows into the cache together (as the NAT stage does).
    pub fn prepare(
        &mut self,
        nat: &NatStage,
        frames: &[&mut [u8]],
        lens: &[usize],
        picks: impl Iterator<Item = (u8, u32, bool)>,
    ) {
        if !self.active() {
            return;
        }
        if self.seen.len() < BURST {
            self.seen = vec![Seen::Untrackable; BURST];
            self.tuples = Vec::with_capacity(BURST);
        }
        self.tuples.clear();
        for (i, _, _) in picks {
            let i = i as usize;
            let (Some(f), Some(&len)) = (frames.get(i), lens.get(i)) else {
                continue;
            };
            let seen = classify(&f[ETH_HDR_LEN.min(len)..len.min(f.len())]);
            if let Seen::Flow { tuple, .. } = seen {
                self.tuples.push(tuple);
            }
            self.seen[i] = seen;
        }
        nat.warm(&self.tuples);
    }

    /// Check routed packet `i` of the burst `prepare` saw (`nh` its next hop, received
    /// on `rx`): `Err` with what to do instead of forwarding it. `masq`: NAT outgoing
    /// will translate it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn check(
        &mut self,
        i: usize,
        nat: &mut NatStage,
        worker: usize,
        (rx, from_pod): (PortId, bool),
        nh: u32,
        frame: &[u8],
        len: usize,
        masq: bool,
        t: &mut Tally,
    ) -> Result<(), Action> {
        let PolicyStage { set, log, seen, .. } = self;
        let Some(set) = set.as_deref() else {
            return Ok(());
        };
        let rx = rx.0 as usize;
        let dst_port = set.port_of_nh(nh);
        let sides = Sides {
            src: if from_pod { set.port(rx) } else { None },
            dst: dst_port.and_then(|p| set.port(p)),
        };
        let owner = match (sides.src, sides.dst) {
            (None, None) => return Ok(()),
            (Some(s), Some(d)) => {
                if dst_port.is_some_and(|d| d < rx) {
                    d.worker
                } else {
                    s.worker
                }
            }
            (Some(s), None) => s.worker,
            (None, Some(d)) => d.worker,
        };
        if usize::from(owner) != worker {
            t.handed_off += 1;
            return Err(Action::Handoff { worker: owner, len });
        }
        let ip = &frame[ETH_HDR_LEN.min(len)..len.min(frame.len())];
        let seen = seen.get(i).copied().unwrap_or_else(|| classify(ip));
        let deny = Err(Action::Drop(DropReason::Policy));
        let verdict = |ok: bool| if ok { Ok(()) } else { deny };
        let Some((table, now)) = nat.table() else {
            // No flow table (no [conntrack]): every packet is judged.
            return verdict(judge(log, &packet_of(ip, None), sides));
        };
        let generation = set.generation;
        match seen {
            Seen::Flow { tuple, tcp_flags } => {
                match table.admitted(&tuple, tcp_flags, now, generation) {
                    Admitted::Current => Ok(()),
                    Admitted::Older { id, dir, orig } => {
                        let sides = match dir {
                            Dir::Orig => sides,
                            Dir::Reply => Sides {
                                src: sides.dst,
                                dst: sides.src,
                            },
                        };
                        if !judge(log, &packet_of_tuple(&orig), sides) {
                            table.remove(id);
                            return deny;
                        }
                        table.set_policy(id, generation);
                        table.touch(id, dir, tcp_flags, now);
                        Ok(())
                    }
                    Admitted::Missing => new_flow(
                        log,
                        table,
                        now,
                        generation,
                        (&tuple, tcp_flags),
                        ip,
                        sides,
                        masq,
                    ),
                }
            }
            Seen::Related { quoted } => {
                if table.lookup(&quoted).is_some() {
                    return Ok(());
                }
                verdict(judge(log, &packet_of(ip, None), sides))
            }
            Seen::Untrackable => verdict(judge(log, &packet_of(ip, None), sides)),
        }
    }
}

/// A packet with no flow: judged; if allowed, its flow is made (a NAT outgoing
/// packet's by NAT).
#[allow(clippy::too_many_arguments)]
#[cold]
#[inline(never)]
fn new_flow(
    log: &mut RateLimit,
    table: &mut FlowTable,
    now: u32,
    generation: u32,
    (tuple, tcp_flags): (&Tuple, u8),
    ip: &[u8],
    sides: Sides,
    masq: bool,
) -> Result<(), Action> {
    if !judge(log, &packet_of(ip, Some(tuple)), sides) {
        return Err(Action::Drop(DropReason::Policy));
    }
    if masq {
        return Ok(());
    }
    match table.track(tuple, tcp_flags, now) {
        Tracked::New(id) | Tracked::Known(id, _) => {
            table.set_policy(id, generation);
            Ok(())
        }
        Tracked::Untracked | Tracked::Refused(Refused::Exists) => Ok(()),
        Tracked::Refused(Refused::Full) => Err(Action::Drop(DropReason::ConntrackFull)),
    }
}

/// A flow's first packet: the source endpoint's egress, then the destination's
/// ingress. Counts the deciding rules; logs the first Log rule met.
#[cold]
fn judge(log: &mut RateLimit, pkt: &Packet, sides: Sides) -> bool {
    let egress = sides
        .src
        .map(|s| (&s.policies.egress, &s.policies.name, "egress"));
    let ingress = sides
        .dst
        .map(|d| (&d.policies.ingress, &d.policies.name, "ingress"));
    egress
        .into_iter()
        .chain(ingress)
        .all(|(c, name, dir)| one(log, c, name, dir, pkt))
}

fn one(log: &mut RateLimit, c: &Compiled, name: &str, dir: &str, pkt: &Packet) -> bool {
    let v = c.classify(pkt);
    if let Some(i) = v.rule() {
        c.hit(i);
    }
    if let Some(l) = v.logged {
        c.hit(l);
        if log.allow() {
            let at = &c.rule(l).at;
            info!(
                "policy log: {} rule {} ({dir} of endpoint {name}): proto {} {}:{} -> {}:{}",
                at.policy, at.rule, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport
            );
        }
    }
    v.decision == Decision::Allow
}

/// A flow's first packet as its original tuple says (ICMP: an echo request).
fn packet_of_tuple(t: &Tuple) -> Packet {
    let icmp = match t.proto {
        ICMP => Some((8, 0)),
        ICMPV6 => Some((128, 0)),
        _ => None,
    };
    Packet {
        src: t.src_addr(),
        dst: t.dst_addr(),
        proto: t.proto,
        sport: if icmp.is_some() { 0 } else { t.sport },
        dport: if icmp.is_some() { 0 } else { t.dport },
        icmp,
    }
}

/// The packet at `ip` (its tuple if conntrack read one): addresses, protocol, ports or
/// ICMP type and code. What cannot be read is left zero (no port matches it).
fn packet_of(ip: &[u8], tuple: Option<&Tuple>) -> Packet {
    // A tuple conntrack read says it all, but for ICMP's type and code: no second parse.
    if let Some(t) = tuple.filter(|t| t.proto != ICMP && t.proto != ICMPV6) {
        return packet_of_tuple(t);
    }
    let Ok(l) = layout(ip, true) else {
        return Packet {
            src: std::net::Ipv4Addr::UNSPECIFIED.into(),
            dst: std::net::Ipv4Addr::UNSPECIFIED.into(),
            proto: 0,
            sport: 0,
            dport: 0,
            icmp: None,
        };
    };
    let mut t = Tuple {
        v6: l.v6,
        proto: l.proto,
        ..Tuple::default()
    };
    t.src[..l.src.len()].copy_from_slice(&ip[l.src.clone()]);
    t.dst[..l.dst.len()].copy_from_slice(&ip[l.dst.clone()]);
    let mut p = packet_of_tuple(tuple.unwrap_or(&t));
    p.icmp = None;
    match l.proto {
        ICMP | ICMPV6 => {
            let h = ip.get(l.l4..l.l4 + 2);
            p.icmp = h.map(|h| (h[0], h[1]));
            (p.sport, p.dport) = (0, 0);
        }
        _ if tuple.is_none() => {
            let ports = ip.get(l.l4..l.l4 + 4);
            if let (Some(h), true) = (ports, datastore::policy::has_ports(l.proto)) {
                p.sport = u16::from_be_bytes([h[0], h[1]]);
                p.dport = u16::from_be_bytes([h[2], h[3]]);
            }
        }
        _ => {}
    }
    p
}
