//! The pod's veth through rtnetlink (netlink-packet-route, as vrouterd's neighbour code
//! uses it; synchronous: a plugin run is a handful of requests), and the pod's side set
//! up from inside its network namespace (a thread that joined it: a netlink socket
//! opened there stays there).

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// What a dump request collects.
enum Reply {
    Link(LinkMessage),
    Address(AddressMessage),
    Route(RouteMessage),
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    fn request(&mut self, flags: u16, msg: RouteNetlinkMessage) -> io::Result<Vec<Reply>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        // Every request but a dump asks for an ACK: that (or an error) ends its reply.
        header.flags = NLM_F_REQUEST
            | flags
            | if flags & NLM_F_DUMP == 0 {
                NLM_F_ACK
            } else {
                0
            };
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out[..]);
        self.socket.send(&out, 0)?;
        let mut replies = Vec::new();
        loop {
            let size = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[offset..size])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(replies),
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            }
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                            replies.push(Reply::Link(m))
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
                            replies.push(Reply::Address(m))
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => {
                            replies.push(Reply::Route(m))
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// An interface by name: its index and MAC; None if there is none.
    pub fn link(&mut self, name: &str) -> io::Result<Option<(u32, [u8; 6])>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(0, RouteNetlinkMessage::GetLink(m)) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                Reply::Link(l) => {
                    let mac = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::Address(a) if a.len() == 6 => {
                            Some([a[0], a[1], a[2], a[3], a[4], a[5]])
                        }
                        _ => None,
                    });
                    Some((l.header.index, mac.unwrap_or_default()))
                }
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A veth pair: `host` here; `peer` created straight in the namespace `netns`
    /// (an open fd of it) under its final name, with `peer_mac`.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: [u8; 6],
        netns: &impl AsFd,
    ) -> io::Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        p.attributes
            .push(LinkAttribute::NetNsFd(netns.as_fd().as_raw_fd()));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        // Calico's host-side MAC (the pod never sees it: vrouterd answers for the gateway).
        m.attributes.push(LinkAttribute::Address(vec![0xee; 6]));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            RouteNetlinkMessage::NewLink(m),
        )
        .map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(NLM_F_ACK, RouteNetlinkMessage::SetLink(m))
            .map(drop)
    }

    /// Delete an interface (both ends of a veth go); false if there was none.
    pub fn delete(&mut self, name: &str) -> io::Result<bool> {
        let Some((index, _)) = self.link(name)? else {
            return Ok(false);
        };
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(NLM_F_ACK, RouteNetlinkMessage::DelLink(m)) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Add an address (host-sized prefixes carry no subnet route; no DAD for IPv6).
    pub fn add_address(&mut self, index: u32, net: IpNet) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = family(net.addr());
        m.header.prefix_len = net.prefix_len();
        m.header.index = index;
        m.header.scope = AddressScope::Universe;
        m.attributes.push(AddressAttribute::Local(net.addr()));
        m.attributes.push(AddressAttribute::Address(net.addr()));
        if net.addr().is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewAddress(m),
        )
        .map(drop)
    }

    /// The addresses of an interface.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<IpNet>> {
        let replies = self.request(
            NLM_F_DUMP,
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Address(a) if a.header.index == index => {
                    let ip = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })?;
                    IpNet::new(ip, a.header.prefix_len).ok()
                }
                _ => None,
            })
            .collect())
    }

    /// A route in the main table out of `oif`: `dst` on the link, or via `gw`.
    pub fn add_route(&mut self, dst: IpNet, gw: Option<IpAddr>, oif: u32) -> io::Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst.addr());
        m.header.destination_prefix_length = dst.prefix_len();
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.kind = RouteType::Unicast;
        m.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if dst.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(route_address(dst.addr())));
        }
        if let Some(g) = gw {
            m.attributes.push(RouteAttribute::Gateway(route_address(g)));
        }
        m.attributes.push(RouteAttribute::Oif(oif));
        self.request(
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewRoute(m),
        )
        .map(drop)
    }

    /// The main table's routes out of `oif`: (destination, gateway).
    pub fn routes(&mut self, oif: u32) -> io::Result<Vec<(IpNet, Option<IpAddr>)>> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut q = RouteMessage::default();
            q.header.address_family = fam;
            for r in self.request(NLM_F_DUMP, RouteNetlinkMessage::GetRoute(q))? {
                let Reply::Route(r) = r else { continue };
                if r.header.table != RouteHeader::RT_TABLE_MAIN
                    || !r.attributes.contains(&RouteAttribute::Oif(oif))
                {
                    continue;
                }
                let mut dst = None;
                let mut gw = None;
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(d) => dst = ip_of(d),
                        RouteAttribute::Gateway(g) => gw = ip_of(g),
                        _ => {}
                    }
                }
                let any = if fam == AddressFamily::Inet {
                    IpAddr::from([0u8; 4])
                } else {
                    IpAddr::from([0u16; 8])
                };
                if let Ok(net) = IpNet::new(dst.unwrap_or(any), r.header.destination_prefix_length)
                {
                    out.push((net, gw));
                }
            }
        }
        Ok(out)
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// Run `f` on a thread inside the network namespace at `path` (the runtime's netns
/// file); the caller's thread never changes namespace.
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = std::fs::File::open(path)?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}
