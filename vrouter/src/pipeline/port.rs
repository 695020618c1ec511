//! The pipeline's ports: what each is (uplink or a pod's), and the checks on a port
//! that need nothing else of the pipeline.

use crate::burst::{Action, DropReason};
use crate::nexthop::{Adjacency, NextHopTable, PortId};
use encap::rewrite::ETH_HDR_LEN;
use encap::wire::{arp, icmp, ipv4, ipv6};

use super::headers::{is_link_local, rewrite_hop};
use crate::arp::{ArpOutcome, HOST_SIDE_MAC, POD_GATEWAY_V4};
use crate::counters::Tally;
use crate::nd::POD_GATEWAY_V6;

/// What a port is.
#[derive(Debug, Clone, PartialEq)]
pub enum PortKind {
    /// Toward the network. Traffic that is not ours goes to the kernel.
    Uplink,
    /// A pod. It may send only from these addresses.
    Endpoint { v4: Vec<u32>, v6: Vec<u128> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// Our MAC on this port (source of what we send out of it).
    pub mac: [u8; 6],
    /// The largest IP packet this port carries (1500 on a plain Ethernet link).
    pub mtu: u16,
    pub kind: PortKind,
}

/// The common case of forwarding, taken inline: a plain next hop on a port the frame
/// fits (TTL / hop limit and MACs rewritten). `None` for everything else (no route,
/// tunnels, groups, holding, oversize), which `Pipeline::forward` takes out of line: as
/// one recursive function, its call alone cost ~60 instructions per packet (callgrind,
/// memio l3: prologue, epilogue and the Action passed back).
#[inline(always)]
pub(super) fn plain_hop(
    nexthops: &NextHopTable,
    ports: &[Port],
    frame: &mut [u8],
    len: usize,
    nh: u32,
    v6: bool,
) -> Option<Action> {
    // NO_ROUTE is no table index: `get` answers None for it.
    let Some(Adjacency::Forward { port, mac }) = nexthops.get(nh) else {
        return None;
    };
    let out = ports.get(port.0 as usize)?;
    let len = len.min(frame.len());
    if len.saturating_sub(ETH_HDR_LEN) > out.mtu as usize {
        return None;
    }
    Some(match rewrite_hop(frame, len, v6, mac, out.mac) {
        Ok(()) => Action::Tx { port, len },
        Err(why) => Action::Drop(why),
    })
}

/// A packet larger than its egress MTU (the rare path, kept out of the loop): IPv6 and
/// IPv4 with DF are dropped (frag-needed / packet-too-big follow); IPv4 without DF is
/// rewritten and left to the backend to fragment.
#[cold]
#[inline(never)]
pub(super) fn oversize(
    frame: &mut [u8],
    len: usize,
    v6: bool,
    port: PortId,
    mac: [u8; 6],
    out: &Port,
) -> Action {
    if v6 || ipv4::dont_frag_at(frame, ETH_HDR_LEN).unwrap_or(true) {
        return Action::Drop(DropReason::TooBig);
    }
    match rewrite_hop(frame, len, v6, mac, out.mac) {
        Ok(()) => Action::Fragment {
            port,
            len,
            mtu: out.mtu,
        },
        Err(why) => Action::Drop(why),
    }
}

// Inlined: called for every IPv4 packet, and out of line its call cost more than the
// check (callgrind, memio l3: ~10 instructions per packet).
#[inline]
pub(super) fn may_send_v4(kind: &PortKind, src: u32) -> bool {
    match kind {
        PortKind::Uplink => true,
        PortKind::Endpoint { v4, .. } => v4.contains(&src),
    }
}

/// An ARP packet from a pod whose sender address is neither the pod's own nor 0.0.0.0
/// (a probe): the pod claims its gateway or a neighbour's address. Such a claim could
/// only mislead; it is dropped (and its MAC not learnt) rather than ignored.
pub(super) fn arp_claims_foreign(kind: &PortKind, frame: &[u8]) -> bool {
    let spa = frame
        .get(ETH_HDR_LEN..)
        .and_then(|a| a.get(arp::field::SPA));
    match spa.and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        Some(b) => {
            let spa = u32::from_be_bytes(b);
            spa != 0 && !may_send_v4(kind, spa)
        }
        None => false,
    }
}

/// A neighbour advertisement from a pod for the gateway's address or for a global
/// address that is not the pod's (its own link-local answers are fine).
pub(super) fn nd_claims_foreign(kind: &PortKind, frame: &[u8]) -> bool {
    let icmp_at = ETH_HDR_LEN + ipv6::HEADER_LEN;
    if frame.get(icmp_at + icmp::field::TYPE) != Some(&icmp::v6::NEIGHBOR_ADVERT) {
        return false;
    }
    let target = frame
        .get(icmp_at..)
        .and_then(|m| m.get(icmp::nd::field::TARGET));
    match target.and_then(|b| <[u8; 16]>::try_from(b).ok()) {
        Some(b) => {
            let target = u128::from_be_bytes(b);
            target == u128::from(POD_GATEWAY_V6) || !may_send_v6(kind, target)
        }
        None => false,
    }
}

#[inline]
pub(super) fn may_send_v6(kind: &PortKind, src: u128) -> bool {
    match kind {
        PortKind::Uplink => true,
        // Link-local sources (ND, router solicitations) are the pod's own too.
        PortKind::Endpoint { v6, .. } => v6.contains(&src) || is_link_local(src),
    }
}

/// A pod's ARP that claims nothing: the gateway answered in place, anything else ignored.
pub(super) fn answer_pod_arp(rx: PortId, frame: &mut [u8], tally: &mut Tally) -> Action {
    match crate::arp::answer_gateway(frame, POD_GATEWAY_V4, HOST_SIDE_MAC) {
        ArpOutcome::Replied => {
            tally.replies += 1;
            Action::Tx {
                port: rx,
                len: frame.len(),
            }
        }
        ArpOutcome::Malformed | ArpOutcome::NotArp => Action::Drop(DropReason::Malformed),
        ArpOutcome::Ignored => Action::Drop(DropReason::NotForUs),
    }
}
