//! Tunnels toward remote nodes (IPIP or VXLAN, over IPv4 or IPv6) and what the node
//! accepts when it decapsulates. A next hop that is `Adjacency::Tunnel { id }` names an
//! entry here; the entry's own `underlay_nh` is an ordinary next hop (uplink port and the
//! underlay neighbour's MAC, resolved by the kernel), so a neighbour change is still one
//! store and tunnel entries themselves never change once set.

use encap::ipip::Ipip;
use encap::template::OuterTemplate;
use encap::tunnel::{EncapError, Encapsulation, OuterEth};
use encap::vxlan::Vxlan;
use std::ops::Range;
use std::sync::OnceLock;

/// How packets are wrapped toward one remote node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    Vxlan(Vxlan),
    Ipip(Ipip),
}

impl Encap {
    pub fn overhead(&self) -> usize {
        match self {
            Encap::Vxlan(v) => v.overhead(),
            Encap::Ipip(i) => i.overhead(),
        }
    }

    /// Wrap `buf[start..start + len]` with the outer Ethernet addresses `eth`.
    #[inline]
    pub fn encapsulate(
        &self,
        eth: OuterEth,
        buf: &mut [u8],
        start: usize,
        len: usize,
        ident: u16,
    ) -> Result<Range<usize>, EncapError> {
        match self {
            Encap::Vxlan(v) => v.encapsulate_with(&eth, buf, start, len, ident),
            Encap::Ipip(i) => i.encapsulate_with(&eth, buf, start, len, ident),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub encap: Encap,
    /// The next hop toward the remote node's underlay address.
    pub underlay_nh: u32,
    /// `encap`'s outer headers, prepared for the per-packet path.
    template: OuterTemplate,
}

impl Tunnel {
    pub fn new(encap: Encap, underlay_nh: u32) -> Tunnel {
        let template = match &encap {
            Encap::Vxlan(v) => OuterTemplate::vxlan(v),
            Encap::Ipip(i) => OuterTemplate::ipip(i),
        };
        Tunnel {
            encap,
            underlay_nh,
            template,
        }
    }

    /// Bytes the tunnel adds in front of a frame.
    #[inline]
    pub fn overhead(&self) -> usize {
        self.template.overhead()
    }

    /// The per-packet encapsulation (the frame moves up in its buffer).
    #[inline]
    pub fn template(&self) -> &OuterTemplate {
        &self.template
    }
}

/// Tunnels by id, each set once (by the control thread) and then read by workers.
pub struct TunnelTable {
    entries: Box<[OnceLock<Tunnel>]>,
}

impl TunnelTable {
    pub fn new(capacity: usize) -> TunnelTable {
        TunnelTable {
            entries: (0..capacity).map(|_| OnceLock::new()).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Set tunnel `id`; false if it was already set (or out of range).
    pub fn set(&self, id: u32, tunnel: Tunnel) -> bool {
        self.entries
            .get(id as usize)
            .is_some_and(|e| e.set(tunnel).is_ok())
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<&Tunnel> {
        self.entries.get(id as usize)?.get()
    }
}

/// What the node decapsulates: tunnel packets to its own addresses, whose inner packet
/// is for one of our pools (anything else is dropped: no open relay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub local_v4: Vec<u32>,
    pub local_v6: Vec<u128>,
    /// Pools as (network, prefix length), per family.
    pub pools_v4: Vec<(u32, u8)>,
    pub pools_v6: Vec<(u128, u8)>,
    pub vni: u32,
    /// NAT outgoing (Calico's natOutgoing): the pools whose pods' packets to the outside
    /// leave from the node's address.
    pub nat_v4: Vec<(u32, u8)>,
    pub nat_v6: Vec<(u128, u8)>,
    /// The cluster's other nodes' addresses, sorted: never "the outside".
    pub nodes_v4: Vec<u32>,
    pub nodes_v6: Vec<u128>,
}

fn in_v4(nets: &[(u32, u8)], a: u32) -> bool {
    nets.iter()
        .any(|&(n, l)| l == 0 || (a ^ n) >> (32 - l as u32) == 0)
}

fn in_v6(nets: &[(u128, u8)], a: u128) -> bool {
    nets.iter()
        .any(|&(n, l)| l == 0 || (a ^ n) >> (128 - l as u32) == 0)
}

impl Overlay {
    pub fn in_pools_v4(&self, a: u32) -> bool {
        in_v4(&self.pools_v4, a)
    }

    pub fn in_pools_v6(&self, a: u128) -> bool {
        in_v6(&self.pools_v6, a)
    }

    /// Does any pool ask for NAT outgoing?
    pub fn nat_wanted(&self) -> bool {
        !self.nat_v4.is_empty() || !self.nat_v6.is_empty()
    }

    /// Calico's rule: from a natOutgoing pool to outside every pool, and not to a node
    /// of the cluster (nor this one).
    pub fn masquerades_v4(&self, src: u32, dst: u32) -> bool {
        in_v4(&self.nat_v4, src)
            && !self.in_pools_v4(dst)
            && !self.local_v4.contains(&dst)
            && self.nodes_v4.binary_search(&dst).is_err()
    }

    pub fn masquerades_v6(&self, src: u128, dst: u128) -> bool {
        in_v6(&self.nat_v6, src)
            && !self.in_pools_v6(dst)
            && !self.local_v6.contains(&dst)
            && self.nodes_v6.binary_search(&dst).is_err()
    }
}
