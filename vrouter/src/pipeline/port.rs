//! The pipeline's ports: what each is (uplink or a pod's), and the checks on a port
//! that need nothing else of the pipeline.

use crate::burst::{Action, DropReason};
use crate::nexthop::PortId;
use encap::rewrite::ETH_HDR_LEN;
use encap::wire::ipv4;

use super::headers::{is_link_local, rewrite_hop};

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

pub(super) fn may_send_v4(kind: &PortKind, src: u32) -> bool {
    match kind {
        PortKind::Uplink => true,
        PortKind::Endpoint { v4, .. } => v4.contains(&src),
    }
}

pub(super) fn may_send_v6(kind: &PortKind, src: u128) -> bool {
    match kind {
        PortKind::Uplink => true,
        // Link-local sources (ND, router solicitations) are the pod's own too.
        PortKind::Endpoint { v6, .. } => v6.contains(&src) || is_link_local(src),
    }
}
