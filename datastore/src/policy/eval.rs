//! The reference evaluator: Calico's policy semantics written as plainly as possible,
//! every policy and rule looked at for every packet. It is slow on purpose; it is the
//! oracle the dataplane's classifier is tested against.
//!
//! - The policies that apply to an endpoint in a direction are those whose
//!   [`EndpointMatch`] selects it and that have rules for that direction. None: the
//!   profile decides, and Calico's namespace profiles allow.
//! - Otherwise they are walked by (order, [`Policy::key`]); in each, the first matching
//!   rule decides: Allow allows, Deny denies, Pass ends the tier (one tier here, so the
//!   profile allows), Log is recorded and the walk goes on with the next rule. A policy
//!   with no matching rule hands over to the next; past the last one, the packet is
//!   denied.

use super::model::{
    has_ports, Action, Decision, Direction, Endpoint, EndpointMatch, IcmpMatch, Packet, Peer,
    Policy, PortRange, Reason, Rule, RuleRef, Verdict,
};
use std::net::IpAddr;

impl EndpointMatch {
    /// Whether the policy with this match applies to `ep`.
    pub fn matches(&self, ep: &Endpoint) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == ep.namespace)
            && self
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(&ep.namespace_selector_labels()))
            && self.selector.matches(&ep.selector_labels())
    }
}

/// The verdict for `pkt` at endpoint `ep`, going in `dir`; `peer` is the other end when
/// it is a known workload endpoint (selectors match only those).
pub fn verdict(
    policies: &[Policy],
    ep: &Endpoint,
    dir: Direction,
    pkt: &Packet,
    peer: Option<&Endpoint>,
) -> Verdict {
    let mut applying: Vec<(&Policy, &[Rule])> = policies
        .iter()
        .filter(|p| p.applies_to.matches(ep))
        .filter_map(|p| p.rules(dir).map(|r| (p, r)))
        .collect();
    let mut logged = Vec::new();
    if applying.is_empty() {
        return Verdict {
            decision: Decision::Allow,
            reason: Reason::NoPolicy,
            logged,
        };
    }
    applying.sort_by(|(a, _), (b, _)| {
        a.order
            .total_cmp(&b.order)
            .then_with(|| a.key().cmp(&b.key()))
    });
    for (p, rules) in applying {
        for (i, r) in rules.iter().enumerate() {
            if !rule_matches(r, ep, dir, pkt, peer) {
                continue;
            }
            let at = RuleRef {
                policy: p.key(),
                rule: i,
            };
            let (decision, reason) = match r.action {
                Action::Log => {
                    logged.push(at);
                    continue;
                }
                Action::Allow => (Decision::Allow, Reason::Rule(at)),
                Action::Deny => (Decision::Deny, Reason::Rule(at)),
                Action::Pass => (Decision::Allow, Reason::Pass(at)),
            };
            return Verdict {
                decision,
                reason,
                logged,
            };
        }
    }
    Verdict {
        decision: Decision::Deny,
        reason: Reason::EndOfPolicies,
        logged,
    }
}

/// Whether every field `r` gives matches.
pub fn rule_matches(
    r: &Rule,
    ep: &Endpoint,
    dir: Direction,
    pkt: &Packet,
    peer: Option<&Endpoint>,
) -> bool {
    let version = match pkt.src {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    };
    if r.ip_version.is_some_and(|v| v != version)
        || r.protocol.is_some_and(|p| p != pkt.proto)
        || r.not_protocol.is_some_and(|p| p == pkt.proto)
        || r.icmp.is_some_and(|m| !icmp_matches(m, pkt.icmp))
        || r.not_icmp.is_some_and(|m| icmp_matches(m, pkt.icmp))
        || (r.matches_ports() && !has_ports(pkt.proto))
    {
        return false;
    }
    let (src_ep, dst_ep) = match dir {
        Direction::Ingress => (peer, Some(ep)),
        Direction::Egress => (Some(ep), peer),
    };
    side_matches(&r.src, pkt.src, pkt.sport, src_ep)
        && side_matches(&r.dst, pkt.dst, pkt.dport, dst_ep)
}

fn icmp_matches((t, code): IcmpMatch, pkt: Option<(u8, u8)>) -> bool {
    pkt.is_some_and(|(pt, pc)| pt == t && code.is_none_or(|c| c == pc))
}

fn in_ranges(ranges: &[PortRange], port: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
}

/// One side of a rule against the packet's address and port on that side and the
/// workload endpoint there, if any.
fn side_matches(p: &Peer, addr: IpAddr, port: u16, who: Option<&Endpoint>) -> bool {
    if !p.nets.is_empty() && !p.nets.iter().any(|n| n.contains(&addr)) {
        return false;
    }
    if p.not_nets.iter().any(|n| n.contains(&addr)) {
        return false;
    }
    if !p.ports.is_empty() && !in_ranges(&p.ports, port) {
        return false;
    }
    if in_ranges(&p.not_ports, port) {
        return false;
    }
    if p.needs_endpoint() {
        let Some(w) = who else {
            return false;
        };
        if p.namespace.as_ref().is_some_and(|ns| *ns != w.namespace)
            || p.namespace_selector
                .as_ref()
                .is_some_and(|s| !s.matches(&w.namespace_selector_labels()))
            || p.selector
                .as_ref()
                .is_some_and(|s| !s.matches(&w.selector_labels()))
        {
            return false;
        }
    }
    if let Some(s) = &p.not_selector {
        if who.is_some_and(|w| s.matches(&w.selector_labels())) {
            return false;
        }
    }
    true
}
