//! The per-burst forwarding pipeline, independent of how frames arrive (AF_XDP, tap, or
//! the in-memory backend of the tests and `--memio` benchmark).
//!
//! Per burst: classify every frame (ARP / ND for the pod gateway answered in place,
//! anti-spoofing on pod ports), one batch FIB lookup per family, then per packet the
//! TTL / hop-limit decrement (RFC 1624 checksum patch), MAC rewrite and the output port.
//! No allocation, lock or syscall: counts go to a stack tally, published once per burst.

use crate::arp::HOST_SIDE_MAC;
use crate::burst::{Action, BackendStats, DropReason, BURST};
use crate::counters::{Counters, Tally};
use crate::ecmp::GroupTable;
use crate::icmp::{self, IcmpError, RateLimit};
use crate::nd::{self, NdOutcome, POD_GATEWAY_V6};
use crate::nexthop::{Adjacency, NextHopTable, PortId};
use crate::tunnel::{Overlay, TunnelTable};
use encap::rewrite::ETH_HDR_LEN;
use encap::tunnel::{DecapError, OuterEth};
use encap::wire::ethernet::{self, ethertype::ARP, ethertype::IPV4, ethertype::IPV6};
use encap::wire::ipv4;
use fib::{Reader4, Reader6};
use headers::{
    decrement_hop, ethertype, ipv4_addrs, ipv6_addrs, is_icmpv6_nd, is_link_local, is_multicast_v6,
    pod_forbidden, rewrite_hop,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::sync::Arc;

const NO_ROUTE: u32 = u32::MAX;

/// One worker's pipeline.
pub struct Pipeline {
    fib4: Reader4,
    fib6: Reader6,
    nexthops: Arc<NextHopTable>,
    ports: Arc<[Port]>,
    counters: Arc<Counters>,
    worker: usize,
    icmp: Option<IcmpSource>,
    /// Per port: the next hop of the pod behind it, learnt from the source MAC of the
    /// pod's ARP / ND (a pod always asks for its gateway before it sends).
    pod_nexthops: Vec<Option<u32>>,
    /// Tunnels toward remote nodes, and what we decapsulate (none: plain routing only).
    tunnels: Option<Arc<TunnelTable>>,
    overlay: Option<Overlay>,
    /// Outer IPv4 identification of the next encapsulated packet.
    ident: u16,
    /// ECMP groups (next hops that are `Adjacency::Group`).
    groups: Option<Arc<GroupTable>>,
    /// Frames built during a burst beyond the received ones (encapsulated fragments),
    /// in preallocated buffers, for the worker to send.
    extra: ExtraFrames,
    /// Connection tracking and NAT outgoing.
    nat: nat::NatStage,
    /// Network policy (checked only while some policy applies to a local endpoint).
    policy: policy::PolicyStage,
}

/// Preallocated room for frames the pipeline builds itself.
struct ExtraFrames {
    bufs: Vec<Box<[u8]>>,
    /// (port, length) of each buffer in use, in order.
    used: Vec<(PortId, usize)>,
}

const EXTRA_FRAMES: usize = 32;
const EXTRA_FRAME_SIZE: usize = 2048;

impl ExtraFrames {
    fn new() -> ExtraFrames {
        ExtraFrames {
            bufs: (0..EXTRA_FRAMES)
                .map(|_| vec![0u8; EXTRA_FRAME_SIZE].into_boxed_slice())
                .collect(),
            used: Vec::with_capacity(EXTRA_FRAMES),
        }
    }
}

/// Where ICMP errors come from, and how many may be sent.
struct IcmpSource {
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    limit: RateLimit,
}

impl Pipeline {
    pub fn new(
        fib4: Reader4,
        fib6: Reader6,
        nexthops: Arc<NextHopTable>,
        ports: Arc<[Port]>,
        counters: Arc<Counters>,
        worker: usize,
    ) -> Pipeline {
        Pipeline {
            fib4,
            fib6,
            nexthops,
            ports,
            counters,
            worker,
            icmp: None,
            pod_nexthops: Vec::new(),
            tunnels: None,
            overlay: None,
            ident: 0,
            groups: None,
            extra: ExtraFrames::new(),
            nat: nat::NatStage::default(),
            policy: policy::PolicyStage::default(),
        }
    }

    /// Hand the frames built during the last burst (see [`Action::Consumed`]) to `send`.
    pub fn drain_extra(&mut self, send: &mut dyn FnMut(PortId, &[u8])) {
        for (i, &(port, len)) in self.extra.used.iter().enumerate() {
            send(port, &self.extra.bufs[i][..len]);
        }
        self.extra.used.clear();
    }

    /// Spread flows over the members of ECMP groups (`Adjacency::Group` next hops).
    pub fn with_groups(mut self, groups: Arc<GroupTable>) -> Pipeline {
        self.groups = Some(groups);
        self
    }

    /// Encapsulate toward `tunnels` (next hops that are `Adjacency::Tunnel`), and
    /// decapsulate tunnel packets arriving on the uplink for `overlay`.
    pub fn with_overlay(mut self, tunnels: Arc<TunnelTable>, overlay: Overlay) -> Pipeline {
        self.tunnels = Some(tunnels);
        self.nat.sync(&overlay);
        self.overlay = Some(overlay);
        self
    }

    /// Track flows and masquerade pods of natOutgoing pools: `max_flows` flows (memory
    /// taken when a pool first asks for NAT), this worker's share of `range`.
    pub fn with_conntrack(
        mut self,
        max_flows: usize,
        range: RangeInclusive<u16>,
        workers: usize,
    ) -> Pipeline {
        self.nat.configure(max_flows, range, workers, self.worker);
        if let Some(o) = &self.overlay {
            self.nat.sync(o);
        }
        self
    }

    /// Enforce these policies from the next packet on (the flow table is made when a
    /// policy first applies: every pod flow is then tracked).
    pub fn set_policy(&mut self, set: Arc<crate::policy::set::PolicySet>) {
        if set.active() {
            self.nat.track_all();
        }
        self.policy.set(set);
    }

    /// This worker's flows (`vrouterctl conntrack`, ageing in housekeeping).
    pub fn nat_mut(&mut self) -> &mut nat::NatStage {
        &mut self.nat
    }

    /// Publish the flow table's figures (a few times a second).
    pub fn publish_conntrack(&self) {
        if let Some(f) = self.nat.figures() {
            self.counters.publish_conntrack(self.worker, f);
        }
    }

    /// Learn pods' MACs: `by_port[p]` is the next hop to point at port `p` and the
    /// source MAC of the pod's ARP / ND frames.
    /// The pools changed (what tunnel packets to us may carry).
    pub fn set_overlay(&mut self, overlay: Overlay) {
        if self.overlay.is_some() {
            self.nat.sync(&overlay);
            self.overlay = Some(overlay);
        }
    }

    /// Port `id` changed (an endpoint added or removed while running). Rare: the table
    /// is copied, never touched in place while a burst might read it.
    pub fn set_port(&mut self, id: PortId, port: Port) {
        let mut ports = self.ports.to_vec();
        if let Some(p) = ports.get_mut(id.0 as usize) {
            *p = port;
            self.ports = ports.into();
        }
    }

    pub fn with_pod_nexthops(mut self, by_port: Vec<Option<u32>>) -> Pipeline {
        self.pod_nexthops = by_port;
        self
    }

    /// Go idle (adaptive poll mode): FIB writers stop waiting for this worker.
    pub fn offline(&mut self) {
        self.fib4.offline();
        self.fib6.offline();
    }

    /// Finish a frame that was held for next hop `nh` (see [`Action::Hold`]): still
    /// unresolved → `Hold` again; else what forwarding would have done.
    pub fn resume(&mut self, frame: &mut [u8], len: usize, nh: u32) -> Action {
        let v6 = ethertype(&frame[..len.min(frame.len())]) == Some(IPV6);
        let mut tally = Tally::default();
        let action = match self.forward(frame, len, nh, v6, true) {
            Action::Drop(why) => {
                tally.drop(why);
                Action::Drop(why)
            }
            Action::Tx { port, len } => {
                tally.tx += 1;
                Action::Tx { port, len }
            }
            Action::Fragment { port, len, mtu } => {
                tally.fragmented += 1;
                Action::Fragment { port, len, mtu }
            }
            other => other,
        };
        self.counters.publish(self.worker, &tally);
        action
    }

    /// Publish the I/O backend's own counts (totals) beside this worker's counters.
    pub fn publish_backend(&self, values: [u64; BackendStats::COUNT]) {
        self.counters.publish_backend(self.worker, values);
    }

    /// Count frames the backend dropped after holding them too long.
    pub fn count_unresolved(&self, n: u64) {
        let mut tally = Tally::default();
        tally.drops[DropReason::Unresolved as usize] = n;
        self.counters.publish(self.worker, &tally);
    }

    /// Remember the MAC of the pod on `port` (once per ARP / ND frame, not per packet).
    #[cold]
    #[inline(never)]
    fn learn_pod_mac(&self, port: PortId, frame: &[u8]) {
        let Some(Some(nh)) = self.pod_nexthops.get(port.0 as usize) else {
            return;
        };
        let mac = ethernet::source(frame);
        if !ethernet::is_group(&mac) && mac != [0; 6] {
            let want = Adjacency::Forward { port, mac };
            if self.nexthops.get(*nh) != Some(want) {
                self.nexthops.set(*nh, want);
            }
        }
    }

    /// Send ICMP / ICMPv6 errors (time exceeded, no route) from these node addresses,
    /// at most `per_second` per worker (bursts of up to 32).
    pub fn with_icmp(mut self, v4: Ipv4Addr, v6: Ipv6Addr, per_second: u32) -> Pipeline {
        self.icmp = Some(IcmpSource {
            v4,
            v6,
            limit: RateLimit::new(per_second, 32),
        });
        self
    }

    #[inline(always)] // Pipeline::process: pipeline/cpu.rs compiles it once per CPU path.
    fn process_body(
        &mut self,
        rx: PortId,
        frames: &mut [&mut [u8]],
        lens: &[usize],
        actions: &mut [Action],
    ) {
        let n = frames.len().min(lens.len()).min(actions.len()).min(BURST);
        let mut tally = Tally {
            rx: n as u64,
            ..Default::default()
        };
        let Some(port) = self.ports.get(rx.0 as usize) else {
            actions[..n].fill(Action::Drop(DropReason::Malformed));
            tally.drops[DropReason::Malformed as usize] += n as u64;
            self.counters.publish(self.worker, &tally);
            return;
        };
        let from_pod = matches!(port.kind, PortKind::Endpoint { .. });

        // 1. Classify; collect destinations per family.
        let mut keys4 = [0u32; BURST];
        let mut slot4 = [0u8; BURST];
        let mut keys6 = [0u128; BURST];
        let mut slot6 = [0u8; BURST];
        let (mut n4, mut n6) = (0, 0);
        // NAT replies translated back: established, policy does not look at them.
        let mut nat_back = 0u64;
        // Lengths as the pipeline sees them (a decapsulated frame is shorter).
        let mut lens_now = [0usize; BURST];
        for i in 0..n {
            let mut len = lens[i].min(frames[i].len());
            let frame = &mut *frames[i];
            if !from_pod && self.overlay.is_some() {
                match self.decapsulate(frame, len) {
                    Decap::NotTunnel => {}
                    Decap::Inner(inner) => {
                        tally.decapsulated += 1;
                        len = inner;
                    }
                    Decap::Drop(why) => {
                        lens_now[i] = len;
                        actions[i] = Action::Drop(why);
                        continue;
                    }
                }
            }
            lens_now[i] = len;
            actions[i] = match ethertype(&frame[..len]) {
                Some(IPV4) => match ipv4_addrs(&frame[ETH_HDR_LEN..len]) {
                    None => Action::Drop(DropReason::Malformed),
                    Some((src, _)) if !may_send_v4(&port.kind, src) => {
                        Action::Drop(DropReason::Spoofed)
                    }
                    Some(_) if from_pod && pod_forbidden(&frame[ETH_HDR_LEN..len], false) => {
                        Action::Drop(DropReason::PodForbidden)
                    }
                    Some((_, mut dst)) => {
                        let ov = self.overlay.as_ref();
                        if !from_pod && self.nat.to_node(ov, u128::from(dst), false) {
                            if let Some(a) = self.nat.inbound(self.worker, frame, len, &mut tally) {
                                actions[i] = a;
                                continue;
                            }
                            nat_back |= 1 << i;
                            dst = ipv4_addrs(&frame[ETH_HDR_LEN..len]).map_or(dst, |a| a.1);
                        }
                        keys4[n4] = dst;
                        slot4[n4] = i as u8;
                        n4 += 1;
                        continue;
                    }
                },
                Some(IPV6) => {
                    if from_pod {
                        if is_icmpv6_nd(&frame[..len]) {
                            if nd_claims_foreign(&port.kind, &frame[..len]) {
                                actions[i] = Action::Drop(DropReason::PodForbidden);
                                continue;
                            }
                            self.learn_pod_mac(rx, frame);
                        }
                        if let NdOutcome::Replied { len } =
                            nd::answer_gateway(frame, len, POD_GATEWAY_V6, HOST_SIDE_MAC)
                        {
                            tally.replies += 1;
                            actions[i] = Action::Tx { port: rx, len };
                            continue;
                        }
                    }
                    match ipv6_addrs(&frame[ETH_HDR_LEN..len]) {
                        None => Action::Drop(DropReason::Malformed),
                        Some(_) if from_pod && pod_forbidden(&frame[ETH_HDR_LEN..len], true) => {
                            Action::Drop(DropReason::PodForbidden)
                        }
                        // A pod's own link (multicast: MLD, DAD, solicitations; link-local
                        // unicast: its answers to our ND): never routed.
                        Some((_, dst))
                            if from_pod && (is_multicast_v6(dst) || is_link_local(dst)) =>
                        {
                            Action::Drop(DropReason::NotForUs)
                        }
                        Some((src, _)) if !may_send_v6(&port.kind, src) => {
                            Action::Drop(DropReason::Spoofed)
                        }
                        Some((_, mut dst)) => {
                            let ov = self.overlay.as_ref();
                            if !from_pod && self.nat.to_node(ov, dst, true) {
                                if let Some(a) =
                                    self.nat.inbound(self.worker, frame, len, &mut tally)
                                {
                                    actions[i] = a;
                                    continue;
                                }
                                nat_back |= 1 << i;
                                dst = ipv6_addrs(&frame[ETH_HDR_LEN..len]).map_or(dst, |a| a.1);
                            }
                            keys6[n6] = dst;
                            slot6[n6] = i as u8;
                            n6 += 1;
                            continue;
                        }
                    }
                }
                Some(ARP) if from_pod && arp_claims_foreign(&port.kind, &frame[..len]) => {
                    Action::Drop(DropReason::PodForbidden)
                }
                Some(ARP) if from_pod => {
                    self.learn_pod_mac(rx, frame);
                    answer_pod_arp(rx, &mut frame[..len], &mut tally)
                }
                None => Action::Drop(DropReason::Malformed),
                // The uplink's ARP and anything else not IP belong to the host.
                Some(_) if !from_pod => Action::Kernel,
                Some(_) => Action::Drop(DropReason::Unsupported),
            };
        }

        // 2. One batch lookup per family.
        let mut nh4 = [NO_ROUTE; BURST];
        let mut nh6 = [NO_ROUTE; BURST];
        if n4 > 0 || n6 > 0 {
            if n4 > 0 {
                self.fib4
                    .burst()
                    .lookup_batch_raw(&keys4[..n4], &mut nh4[..n4]);
            }
            if n6 > 0 {
                self.fib6
                    .burst()
                    .lookup_batch_raw(&keys6[..n6], &mut nh6[..n6]);
            }
        } else {
            // Still a quiescent point: the writer must not wait for an idle worker.
            self.fib4.quiescent();
            self.fib6.quiescent();
        }

        // 3. Rewrite and choose the port.
        let v4 = slot4[..n4]
            .iter()
            .zip(&nh4[..n4])
            .map(|(&i, &nh)| (i, nh, false));
        let v6 = slot6[..n6]
            .iter()
            .zip(&nh6[..n6])
            .map(|(&i, &nh)| (i, nh, true));
        // NAT outgoing for the packets with a route out: picked, their flows warmed.
        let routed = v4.clone().chain(v6.clone()).filter(|p| p.1 != NO_ROUTE);
        let masq_bits = (self.nat).prepare(
            from_pod,
            self.overlay.as_ref(),
            frames,
            &lens_now,
            routed.clone(),
        );
        self.policy.prepare(&self.nat, frames, &lens_now, routed);
        for (i, nh, v6) in v4.chain(v6) {
            let i = i as usize;
            let masq = masq_bits & 1 << i != 0;
            if nh != NO_ROUTE && self.policy.active() && nat_back & 1 << i == 0 {
                let (frame, len) = (&*frames[i], lens_now[i]);
                let at = (rx, from_pod);
                let (nat, w) = (&mut self.nat, self.worker);
                if let Err(a) = self
                    .policy
                    .check(i, nat, w, at, nh, frame, len, masq, &mut tally)
                {
                    actions[i] = a;
                    continue;
                }
            }
            if masq {
                if let Err(why) = self.nat.outbound(i, frames[i], lens_now[i], &mut tally) {
                    actions[i] = Action::Drop(why);
                    continue;
                }
            }
            let plain = plain_hop(&self.nexthops, &self.ports, frames[i], lens_now[i], nh, v6);
            let action = plain
                .unwrap_or_else(|| self.forward(&mut *frames[i], lens_now[i], nh, v6, from_pod));
            actions[i] = match action {
                Action::Drop(
                    why @ (DropReason::TtlExpired | DropReason::NoRoute | DropReason::TooBig),
                ) => match self.icmp_error(&mut *frames[i], lens_now[i], why, v6, rx, nh) {
                    // About a packet we translated: back to the pod's own addresses.
                    Some(Action::Tx { len, .. }) if masq && !self.nat.own_error(frames[i], len) => {
                        Action::Drop(why)
                    }
                    Some(action) => {
                        tally.drop(why);
                        tally.icmp_errors += 1;
                        action
                    }
                    None => Action::Drop(why),
                },
                action => action,
            };
        }

        for a in &actions[..n] {
            match *a {
                Action::Tx { .. } => tally.tx += 1,
                Action::Kernel => tally.to_kernel += 1,
                Action::Hold { .. } => tally.held += 1,
                Action::Fragment { .. } | Action::Consumed => tally.fragmented += 1,
                // Counted as handed off; the owner counts what becomes of it.
                Action::Handoff { .. } => {}
                Action::Drop(why) => tally.drop(why),
            }
        }
        self.counters.publish(self.worker, &tally);
    }

    /// Replace a dropped packet by the ICMP error for its sender, if allowed. A packet
    /// too big for its egress port gets frag-needed (IPv4 with DF set) or packet-too-big
    /// (IPv6) with that port's MTU (IPv4 without DF is fragmented instead).
    #[cold]
    #[inline(never)]
    fn icmp_error(
        &mut self,
        frame: &mut [u8],
        len: usize,
        why: DropReason,
        v6: bool,
        rx: PortId,
        nh: u32,
    ) -> Option<Action> {
        self.icmp.as_ref()?;
        let kind = match why {
            DropReason::TtlExpired => IcmpError::TimeExceeded,
            DropReason::TooBig => {
                if !v6 && !ipv4::dont_frag_at(frame, ETH_HDR_LEN)? {
                    return None;
                }
                IcmpError::TooBig {
                    mtu: self.egress_mtu(nh)?,
                }
            }
            _ => IcmpError::NoRoute,
        };
        let mac = self.ports.get(rx.0 as usize)?.mac;
        let src = self.icmp.as_mut()?;
        if !src.limit.allow() {
            return None;
        }
        let len = if v6 {
            icmp::ipv6_error(frame, len, kind, src.v6, mac)
        } else {
            icmp::ipv4_error(frame, len, kind, src.v4, mac)
        }?;
        Some(Action::Tx { port: rx, len })
    }

    /// The largest inner packet next hop `nh` carries (a tunnel's overhead taken off).
    fn egress_mtu(&self, nh: u32) -> Option<u16> {
        match self.nexthops.get(nh)? {
            Adjacency::Forward { port, .. } => Some(self.ports.get(port.0 as usize)?.mtu),
            Adjacency::Group { id } => {
                // The smallest MTU among the members: a flow may move to any of them.
                let b = self.groups.as_ref()?.buckets(id);
                let mut members: Vec<u32> = b.to_vec();
                members.sort_unstable();
                members.dedup();
                members
                    .into_iter()
                    .filter(|&m| !matches!(self.nexthops.get(m), Some(Adjacency::Group { .. })))
                    .filter_map(|m| self.egress_mtu(m))
                    .min()
            }
            Adjacency::Tunnel { id } => {
                let t = self.tunnels.as_ref()?.get(id)?;
                let Adjacency::Forward { port, .. } = self.nexthops.get(t.underlay_nh)? else {
                    return None;
                };
                let mtu = self.ports.get(port.0 as usize)?.mtu as usize;
                // VXLAN adds outer Ethernet (not in the MTU) and carries the inner one (in
                // it): either way the inner packet loses exactly the overhead; IPIP
                // replaces the Ethernet header and adds the outer IP header.
                Some(mtu.saturating_sub(t.encap.overhead()) as u16)
            }
            _ => None,
        }
    }

    /// Send toward a remote node through tunnel `id`: hop limit, then the frame moves
    /// up by the tunnel's overhead and the outer headers go in front (xsk-rs does not let
    /// a descriptor start earlier in its frame, so the headroom is made by a move).
    #[inline(never)]
    fn encapsulate(&mut self, frame: &mut [u8], len: usize, nh: u32, id: u32, v6: bool) -> Action {
        self.ident = self.ident.wrapping_add(1);
        let ident = self.ident;
        let Some(t) = self.tunnels.as_ref().and_then(|t| t.get(id)) else {
            return Action::Drop(DropReason::Unresolved);
        };
        let (port, mac) = match self.nexthops.get(t.underlay_nh) {
            Some(Adjacency::Forward { port, mac }) => (port, mac),
            Some(Adjacency::Incomplete) => return Action::Hold { nh, len },
            _ => return Action::Drop(DropReason::Unresolved),
        };
        let Some(out) = self.ports.get(port.0 as usize) else {
            return Action::Drop(DropReason::Unresolved);
        };
        let over = t.overhead();
        let len = len.min(frame.len());
        // What egress_mtu says, without looking the tunnel up again.
        let mtu = (out.mtu as usize).saturating_sub(over);
        if len.saturating_sub(ETH_HDR_LEN) > mtu {
            let df = v6 || ipv4::dont_frag_at(frame, ETH_HDR_LEN).unwrap_or(true);
            if df {
                return Action::Drop(DropReason::TooBig);
            }
            let t = *t;
            return self.fragment_into_tunnel(frame, len, mtu, &t, port, mac);
        }
        if len + over > frame.len() {
            return Action::Drop(DropReason::TooBig);
        }
        if let Err(why) = decrement_hop(frame, len, v6) {
            return Action::Drop(why);
        }
        let eth = OuterEth {
            dst: mac,
            src: out.mac,
        };
        match t.template().encapsulate(&eth, frame, len, ident) {
            Ok(len) => Action::Tx { port, len },
            Err(_) => Action::Drop(DropReason::Malformed),
        }
    }

    /// IPv4 without DF, too big for the tunnel: fragment it to the tunnel's MTU and
    /// encapsulate each piece into the extra frames (as Linux tunnels do).
    #[cold]
    #[inline(never)]
    fn fragment_into_tunnel(
        &mut self,
        frame: &mut [u8],
        len: usize,
        mtu: usize,
        t: &crate::tunnel::Tunnel,
        port: PortId,
        mac: [u8; 6],
    ) -> Action {
        if let Err(why) = decrement_hop(frame, len, false) {
            return Action::Drop(why);
        }
        let Some(out) = self.ports.get(port.0 as usize) else {
            return Action::Drop(DropReason::Unresolved);
        };
        let eth = OuterEth {
            dst: mac,
            src: out.mac,
        };
        let over = t.encap.overhead();
        let extra = &mut self.extra;
        let mut ident = self.ident;
        let mut failed = false;
        let made = encap::fragment::ipv4_fragments(&frame[..len], mtu, |piece| {
            let slot = extra.used.len();
            if slot >= extra.bufs.len() || piece.len() + over > EXTRA_FRAME_SIZE {
                failed = true;
                return;
            }
            let buf = &mut extra.bufs[slot];
            buf[over..over + piece.len()].copy_from_slice(piece);
            ident = ident.wrapping_add(1);
            match t.encap.encapsulate(eth, buf, over, piece.len(), ident) {
                Ok(r) => extra.used.push((port, r.end - r.start)),
                Err(_) => failed = true,
            }
        });
        self.ident = ident;
        match made {
            Ok(_) if !failed => Action::Consumed,
            _ => Action::Drop(DropReason::TooBig),
        }
    }

    /// A tunnel packet to one of our addresses: leave its inner frame at the start of
    /// `frame` (an IPIP packet gets an Ethernet header) if it is for our pools.
    #[inline(never)]
    fn decapsulate(&self, frame: &mut [u8], len: usize) -> Decap {
        let Some(o) = &self.overlay else {
            return Decap::NotTunnel;
        };
        let f = &frame[..len];
        // To us, and from a known node (a tunnel from anywhere else is refused once it
        // is seen to be one).
        let (to_us, known) = match ethertype(f) {
            Some(IPV4) => ipv4_addrs(&f[ETH_HDR_LEN..]).map_or((false, false), |(s, d)| {
                (
                    o.local_v4.contains(&d),
                    o.nodes_v4.binary_search(&s).is_ok(),
                )
            }),
            Some(IPV6) => ipv6_addrs(&f[ETH_HDR_LEN..]).map_or((false, false), |(s, d)| {
                (
                    o.local_v6.contains(&d),
                    o.nodes_v6.binary_search(&s).is_ok(),
                )
            }),
            _ => (false, false),
        };
        if !to_us {
            return Decap::NotTunnel;
        }
        let unknown = Decap::Drop(DropReason::TunnelUnknownSource);
        let inner_len = match encap::vxlan::decapsulate(f, o.vni) {
            Ok(_) if !known => return unknown,
            Ok(d) => {
                let l = d.inner.len();
                frame.copy_within(d.inner, 0);
                l
            }
            Err(DecapError::NotTunnel) => match encap::ipip::decapsulate(f) {
                Ok(_) if !known => return unknown,
                Ok(d) => {
                    let l = d.inner_ip.len();
                    frame.copy_within(d.inner_ip, ETH_HDR_LEN);
                    ethernet::set_ethertype(frame, if d.inner_v6 { IPV6 } else { IPV4 });
                    ETH_HDR_LEN + l
                }
                Err(DecapError::NotTunnel) => return Decap::NotTunnel,
                Err(_) => return Decap::Drop(DropReason::BadTunnel),
            },
            Err(_) => return Decap::Drop(DropReason::BadTunnel),
        };
        let inner = &frame[..inner_len];
        let ours = match ethertype(inner) {
            Some(IPV4) => ipv4_addrs(&inner[ETH_HDR_LEN..]).is_some_and(|(_, d)| o.in_pools_v4(d)),
            Some(IPV6) => ipv6_addrs(&inner[ETH_HDR_LEN..]).is_some_and(|(_, d)| o.in_pools_v6(d)),
            _ => false,
        };
        if ours {
            Decap::Inner(inner_len)
        } else {
            Decap::Drop(DropReason::NotOurPool)
        }
    }

    /// Everything but the common case `port::plain_hop` takes inline.
    #[inline(never)]
    fn forward(
        &mut self,
        frame: &mut [u8],
        len: usize,
        nh: u32,
        v6: bool,
        from_pod: bool,
    ) -> Action {
        if nh == NO_ROUTE {
            // Not ours: the host's own traffic arrives on the uplink too.
            return if from_pod {
                Action::Drop(DropReason::NoRoute)
            } else {
                Action::Kernel
            };
        }
        let (port, mac) = match self.nexthops.get(nh) {
            Some(Adjacency::Forward { port, mac }) => (port, mac),
            Some(Adjacency::Tunnel { id }) => return self.encapsulate(frame, len, nh, id, v6),
            Some(Adjacency::Group { id }) => {
                let Some(groups) = &self.groups else {
                    return Action::Drop(DropReason::Unresolved);
                };
                let ip = &frame[ETH_HDR_LEN.min(len)..len.min(frame.len())];
                let member = groups.pick(id, encap::flow::hash(ip));
                // Members are plain next hops or tunnels, never groups: one level.
                return match self.nexthops.get(member) {
                    Some(Adjacency::Group { .. }) | None => Action::Drop(DropReason::Unresolved),
                    _ => self.forward(frame, len, member, v6, from_pod),
                };
            }
            Some(Adjacency::Blackhole) => return Action::Drop(DropReason::Blackhole),
            Some(Adjacency::Incomplete) => return Action::Hold { nh, len },
            None => return Action::Drop(DropReason::Unresolved),
        };
        let Some(out) = self.ports.get(port.0 as usize) else {
            return Action::Drop(DropReason::Unresolved);
        };
        let len = len.min(frame.len());
        if len.saturating_sub(ETH_HDR_LEN) > out.mtu as usize {
            return oversize(frame, len, v6, port, mac, out);
        }
        match rewrite_hop(frame, len, v6, mac, out.mac) {
            Ok(()) => Action::Tx { port, len },
            Err(why) => Action::Drop(why),
        }
    }
}

/// What decapsulation found.
enum Decap {
    NotTunnel,
    /// The frame now holds the inner frame, this long.
    Inner(usize),
    Drop(DropReason),
}

mod cpu;
mod headers;
pub mod nat;
pub mod policy;
mod port;

use port::{
    answer_pod_arp, arp_claims_foreign, may_send_v4, may_send_v6, nd_claims_foreign, oversize,
    plain_hop,
};
pub use port::{Port, PortKind};
#[cfg(test)]
mod tests;
