//! The node's kernel routes to its pods: `<pod-ip>/32 dev <host-veth> scope link` (and
//! `/128`), so the node's own processes reach the pods and the kernel answers them
//! (issue 16). They are marked with our route protocol, [`RTPROT_VROUTER`] (`ip route`
//! shows `proto 118`), so a restarted vrouterd finds the ones an earlier run left and
//! deletes those alone: routes of other owners (the operator's, Calico's) are never
//! touched, though ours replace one to the same address.

use crate::rtnl::Rtnl;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::IpAddr;

/// The route protocol (`rtm_protocol`) marking vrouterd's routes. Values above
/// RTPROT_STATIC (4) are the owners' own; 118 ('v') is in no registry we know of
/// (iproute2's rt_protos, Linux's rtnetlink.h: BIRD 12, BGP 186, ...).
pub const RTPROT_VROUTER: u8 = 118;

/// The message adding (or replacing) or deleting our route to `prefix` out of `ifindex`.
pub fn route_message(ifindex: u32, prefix: IpNet) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = match prefix {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    m.header.destination_prefix_length = prefix.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Other(RTPROT_VROUTER);
    // IPv6 has no route scopes: its routes are all "universe".
    m.header.scope = match prefix {
        IpNet::V4(_) => RouteScope::Link,
        IpNet::V6(_) => RouteScope::Universe,
    };
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Destination(match prefix.trunc().addr() {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
    m.attributes.push(RouteAttribute::Oif(ifindex));
    m
}

/// A route of a dump, if it is ours in the main table: its interface and prefix.
pub fn ours(m: &RouteMessage) -> Option<(u32, IpNet)> {
    if m.header.protocol != RouteProtocol::Other(RTPROT_VROUTER)
        || m.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let mut dst = None;
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => dst = Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => dst = Some(IpAddr::V6(*v6)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let prefix = IpNet::new(dst?, m.header.destination_prefix_length).ok()?;
    Some((oif?, prefix))
}

pub struct KernelRoutes {
    rtnl: Rtnl,
}

impl KernelRoutes {
    pub fn new() -> io::Result<KernelRoutes> {
        Ok(KernelRoutes { rtnl: Rtnl::new()? })
    }

    /// Add our route to `prefix` out of `ifindex`, replacing any to the same prefix.
    pub fn replace(&mut self, ifindex: u32, prefix: IpNet) -> io::Result<()> {
        self.rtnl.request(
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewRoute(route_message(ifindex, prefix)),
            |_| {},
        )
    }

    /// Delete our route to `prefix` out of `ifindex` (gone already is fine; one of
    /// another protocol is not ours and stays).
    pub fn remove(&mut self, ifindex: u32, prefix: IpNet) -> io::Result<()> {
        match self.rtnl.request(
            NLM_F_REQUEST | NLM_F_ACK,
            RouteNetlinkMessage::DelRoute(route_message(ifindex, prefix)),
            |_| {},
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Our routes in the main table (IPv4 and IPv6): interface and prefix.
    pub fn list(&mut self) -> io::Result<Vec<(u32, IpNet)>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut get = RouteMessage::default();
            get.header.address_family = family;
            let get = RouteNetlinkMessage::GetRoute(get);
            self.rtnl.request(NLM_F_REQUEST | NLM_F_DUMP, get, |m| {
                if let RouteNetlinkMessage::NewRoute(m) = m {
                    out.extend(ours(&m));
                }
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The bytes `ip route replace 10.244.1.2/32 dev <7> scope link proto 118` sends.
    #[test]
    fn an_ipv4_route_is_a_scope_link_host_route_of_our_protocol_in_main() {
        let m = route_message(7, net("10.244.1.2/32"));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type.
        assert_eq!(&buf[..8], &[2, 32, 0, 0, 254, 118, 253, 1]);
        // RTA_DST (1): 10.244.1.2; RTA_OIF (4): 7.
        assert_eq!(&buf[12..20], &[8, 0, 1, 0, 10, 244, 1, 2]);
        assert_eq!(&buf[20..28], &[8, 0, 4, 0, 7, 0, 0, 0]);
        assert_eq!(buf.len(), 28);
    }

    #[test]
    fn an_ipv6_route_is_a_host_route_of_our_protocol_in_main() {
        let m = route_message(9, net("fd10::2/128"));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        assert_eq!(&buf[..8], &[10, 128, 0, 0, 254, 118, 0, 1]);
        assert_eq!(ours(&m), Some((9, net("fd10::2/128"))));
    }

    /// What a dump gives back is recognised as ours only with our protocol, in main.
    #[test]
    fn only_our_protocol_in_the_main_table_is_ours() {
        let round_trip = |m: RouteMessage| {
            let mut msg = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::from(RouteNetlinkMessage::NewRoute(m)),
            );
            msg.finalize();
            let mut buf = vec![0; msg.header.length as usize];
            msg.serialize(&mut buf);
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
                .unwrap()
                .payload
            {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        let m = route_message(3, net("10.244.1.2/32"));
        assert_eq!(
            ours(&round_trip(m.clone())),
            Some((3, net("10.244.1.2/32")))
        );
        let mut boot = m.clone();
        boot.header.protocol = RouteProtocol::Boot;
        assert_eq!(ours(&round_trip(boot)), None);
        let mut other_table = m;
        other_table.header.table = 100;
        assert_eq!(ours(&round_trip(other_table)), None);
    }
}
