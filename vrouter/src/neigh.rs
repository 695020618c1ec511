//! Next hops on the uplink are resolved by the host kernel's neighbour table, read and
//! prodded through rtnetlink (see docs/decisions.md: the kernel already owns ARP / ND
//! on the uplink, since our XDP program passes them to it, and it keeps the node's
//! gateway and peers resolved for its own traffic anyway).
//!
//! `Neighbours::dump` reads the table; `resolve` asks the kernel to resolve an address
//! now and to keep it resolved (NTF_USE starts ARP / ND at once; the "managed" flag,
//! Linux 5.16+, makes the kernel re-probe it although it never sees our traffic).

use crate::rtnl::Rtnl;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::IpAddr;

/// One entry of the kernel's neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    /// Known link-layer address (reachable, stale, delay, probe or permanent entries).
    pub mac: Option<[u8; 6]>,
}

/// A change the kernel announces to RTNLGRP_NEIGH: an entry added or updated
/// (RTM_NEWNEIGH, also sent when it fails), or deleted (RTM_DELNEIGH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighbourChange {
    Updated(Neighbour),
    Deleted { ifindex: u32, ip: IpAddr },
}

/// The entry a neighbour message describes, as a dump gives it; `None` for one with no
/// IP destination (a bridge's FDB entry, say).
pub fn entry(m: &NeighbourMessage) -> Option<Neighbour> {
    let usable = matches!(
        m.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 && usable => {
                mac = Some(l[..6].try_into().unwrap())
            }
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac,
    })
}

/// The change a multicast message announces; `None` for anything but a neighbour's.
pub fn change(m: &RouteNetlinkMessage) -> Option<NeighbourChange> {
    match m {
        RouteNetlinkMessage::NewNeighbour(m) => entry(m).map(NeighbourChange::Updated),
        RouteNetlinkMessage::DelNeighbour(m) => entry(m).map(|e| NeighbourChange::Deleted {
            ifindex: e.ifindex,
            ip: e.ip,
        }),
        _ => None,
    }
}

pub struct Neighbours {
    rtnl: Rtnl,
}

impl Neighbours {
    pub fn new() -> io::Result<Neighbours> {
        Ok(Neighbours { rtnl: Rtnl::new()? })
    }

    /// The kernel's IPv4 and IPv6 neighbours.
    pub fn dump(&mut self) -> io::Result<Vec<Neighbour>> {
        let mut out = Vec::new();
        let get = RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default());
        self.rtnl.request(NLM_F_REQUEST | NLM_F_DUMP, get, |m| {
            if let RouteNetlinkMessage::NewNeighbour(m) = m {
                out.extend(entry(&m));
            }
        })?;
        Ok(out)
    }

    /// Ask the kernel to resolve `ip` on `ifindex` now and keep it resolved.
    pub fn resolve(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = ifindex;
        m.header.flags = NeighbourFlags::Use;
        m.header.state = NeighbourState::None;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        let mut managed = m.clone();
        self.rtnl.request(
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            RouteNetlinkMessage::NewNeighbour(m),
            |_| {},
        )?;
        // Best effort: older kernels refuse the managed flag; the entry then simply ages
        // to STALE, whose MAC stays valid, and is re-solicited by `resolve` when lost.
        managed.header.flags = NeighbourFlags::empty();
        managed.header.state = NeighbourState::Incomplete;
        managed
            .attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        let _ = self.rtnl.request(
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewNeighbour(managed),
            |_| {},
        );
        Ok(())
    }
}
