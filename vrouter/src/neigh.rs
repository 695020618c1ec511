//! Next hops on the uplink are resolved by the host kernel's neighbour table, read and
//! prodded through rtnetlink (see docs/decisions.md: the kernel already owns ARP / ND
//! on the uplink, since our XDP program passes them to it, and it keeps the node's
//! gateway and peers resolved for its own traffic anyway).
//!
//! `Neighbours::dump` reads the table; `resolve` asks the kernel to resolve an address
//! now and to keep it resolved (NTF_USE starts ARP / ND at once; the "managed" flag,
//! Linux 5.16+, makes the kernel re-probe it although it never sees our traffic).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
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

pub struct Neighbours {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Neighbours {
    pub fn new() -> io::Result<Neighbours> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Neighbours {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    fn send(&mut self, flags: u16, msg: RouteNetlinkMessage) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.header.length as usize];
        req.serialize(&mut buf[..]);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Receive until the reply to `seq` is complete (DONE, or the ACK / error).
    fn receive(&mut self, seq: u32, mut each: impl FnMut(NeighbourMessage)) -> io::Result<()> {
        loop {
            let size = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[offset..size])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                let ours = msg.header.sequence_number == seq;
                match msg.payload {
                    NetlinkPayload::Done(_) if ours => return Ok(()),
                    NetlinkPayload::Error(e) if ours => {
                        return match e.code {
                            None => Ok(()),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) if ours => {
                        each(m)
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// The kernel's IPv4 and IPv6 neighbours.
    pub fn dump(&mut self) -> io::Result<Vec<Neighbour>> {
        let seq = self.send(
            NLM_F_REQUEST | NLM_F_DUMP,
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        )?;
        let mut out = Vec::new();
        self.receive(seq, |m| {
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
            if let Some(ip) = ip {
                out.push(Neighbour {
                    ifindex: m.header.ifindex,
                    ip,
                    mac,
                });
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
        let seq = self.send(
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            RouteNetlinkMessage::NewNeighbour(m),
        )?;
        self.receive(seq, |_| {})?;
        // Best effort: older kernels refuse the managed flag; the entry then simply ages
        // to STALE, whose MAC stays valid, and is re-solicited by `resolve` when lost.
        managed.header.flags = NeighbourFlags::empty();
        managed.header.state = NeighbourState::Incomplete;
        managed
            .attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        if let Ok(seq) = self.send(
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewNeighbour(managed),
        ) {
            let _ = self.receive(seq, |_| {});
        }
        Ok(())
    }
}
