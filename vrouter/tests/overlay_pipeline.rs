//! Golden tests of the pipeline with tunnels: pods' packets to remote blocks leave as
//! VXLAN or IPIP toward the block's node, tunnel packets to the node are unwrapped and
//! delivered, inner packets not for our pools are dropped, and a packet too big for the
//! tunnel gets frag-needed with the tunnel's MTU (1450 VXLAN, 1480 IPIP).

use encap::tunnel::{OuterEth, Underlay};
use encap::vxlan::{self, SourcePort, Vxlan, CALICO_VNI};
use etherparse::{IpNumber, Ipv4Header, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use fib::{Fib4, Fib6, NextHopId};
use std::sync::Arc;
use vrouter::arp::HOST_SIDE_MAC;
use vrouter::burst::Action;
use vrouter::burst::DropReason;
use vrouter::counters::Counters;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port, PortKind};
use vrouter::tunnel::{Encap, Overlay, Tunnel, TunnelTable};

const NODE_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];
const POD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const UPLINK: PortId = PortId(0);
const POD: PortId = PortId(1);
const POD_IP: [u8; 4] = [10, 244, 1, 2];
const NODE_A: [u8; 4] = [10, 0, 0, 1];
const NODE_B: [u8; 4] = [10, 0, 0, 2];
const NODE_C: [u8; 4] = [10, 0, 0, 3];

struct Setup {
    pipeline: Pipeline,
    counters: Arc<Counters>,
    _fibs: (Fib4, Fib6),
}

fn setup() -> Setup {
    let nexthops = Arc::new(NextHopTable::new(8));
    nexthops.set(
        0,
        Adjacency::Forward {
            port: POD,
            mac: POD_MAC,
        },
    );
    nexthops.set(
        1,
        Adjacency::Forward {
            port: UPLINK,
            mac: ROUTER_MAC,
        },
    );
    nexthops.set(2, Adjacency::Tunnel { id: 0 });
    nexthops.set(3, Adjacency::Tunnel { id: 1 });
    let tunnels = Arc::new(TunnelTable::new(4));
    let blank = OuterEth {
        dst: [0; 6],
        src: [0; 6],
    };
    tunnels.set(
        0,
        Tunnel::new(
            Encap::Vxlan(Vxlan {
                vni: CALICO_VNI,
                local_vtep_mac: vxlan::vtep_mac("node-a"),
                remote_vtep_mac: vxlan::vtep_mac("node-b"),
                underlay: Underlay::V4 {
                    src: NODE_A.into(),
                    dst: NODE_B.into(),
                },
                eth: blank,
                source_port: SourcePort::FlowHash,
            }),
            1,
        ),
    );
    tunnels.set(
        1,
        Tunnel::new(
            Encap::Ipip(encap::ipip::Ipip {
                underlay: Underlay::V4 {
                    src: NODE_A.into(),
                    dst: NODE_C.into(),
                },
                eth: blank,
            }),
            1,
        ),
    );
    let mut fib4 = Fib4::new();
    fib4.insert("10.244.1.2/32".parse().unwrap(), NextHopId(0));
    fib4.insert("10.244.2.0/26".parse().unwrap(), NextHopId(2));
    fib4.insert("10.244.3.0/26".parse().unwrap(), NextHopId(3));
    let fib6 = Fib6::new();
    let ports: Arc<[Port]> = vec![
        Port {
            mac: NODE_MAC,
            mtu: 1500,
            kind: PortKind::Uplink,
        },
        Port {
            mac: HOST_SIDE_MAC,
            mtu: 1500,
            kind: PortKind::Endpoint {
                v4: vec![u32::from_be_bytes(POD_IP)],
                v6: vec![],
            },
        },
    ]
    .into();
    let counters = Arc::new(Counters::new(1));
    let overlay = Overlay {
        local_v4: vec![u32::from_be_bytes(NODE_A)],
        local_v6: vec![],
        pools_v4: vec![(0x0af4_0000, 16)],
        pools_v6: vec![],
        vni: CALICO_VNI,
        // The nodes tunnels may come from (sorted).
        nodes_v4: vec![u32::from_be_bytes(NODE_B), u32::from_be_bytes(NODE_C)],
        ..Overlay::default()
    };
    let pipeline = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops,
        ports,
        counters.clone(),
        0,
    )
    .with_icmp(NODE_A.into(), "fd00::1".parse().unwrap(), 1000)
    .with_overlay(tunnels, overlay);
    Setup {
        pipeline,
        counters,
        _fibs: (fib4, fib6),
    }
}

fn pod_udp(dst: [u8; 4], payload: usize, df: bool) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(POD_MAC, HOST_SIDE_MAC)
        .ipv4(POD_IP, dst, 64)
        .udp(1000, 2000)
        .write(&mut v, &vec![7u8; payload])
        .unwrap();
    if !df {
        // etherparse sets DF.
        v[20] &= !0x40;
        let c = encap::rewrite::ipv4_checksum(&v[14..34]);
        v[24..26].copy_from_slice(&c.to_be_bytes());
    }
    v
}

/// Run one frame through the pipeline in a 2 KiB buffer; the action and the buffer.
fn run(s: &mut Setup, rx: PortId, frame: &[u8]) -> (Action, Vec<u8>) {
    let mut buf = vec![0u8; 2048];
    buf[..frame.len()].copy_from_slice(frame);
    let mut actions = [Action::Kernel];
    {
        let mut frames: [&mut [u8]; 1] = [&mut buf[..]];
        s.pipeline
            .process(rx, &mut frames, &[frame.len()], &mut actions);
    }
    (actions[0], buf)
}

#[test]
fn a_pods_packet_to_a_vxlan_block_leaves_wrapped_toward_its_node() {
    let mut s = setup();
    let inner = pod_udp([10, 244, 2, 5], 20, true);
    let (a, buf) = run(&mut s, POD, &inner);
    let Action::Tx { port, len } = a else {
        panic!("{a:?}")
    };
    assert_eq!((port, len), (UPLINK, inner.len() + 50));
    let out = &buf[..len];
    assert_eq!(&out[0..6], &ROUTER_MAC);
    assert_eq!(&out[6..12], &NODE_MAC);
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), NODE_A);
    assert_eq!(ip.header().destination(), NODE_B);
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!()
    };
    assert_eq!(udp.destination_port(), 4789);
    let v = udp.payload();
    assert_eq!(&v[..8], &[0x08, 0, 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(&v[8..14], &vxlan::vtep_mac("node-b"));
    assert_eq!(&v[14..20], &vxlan::vtep_mac("node-a"));
    let inner_out = SlicedPacket::from_ethernet(&v[8..]).unwrap();
    let Some(NetSlice::Ipv4(iip)) = &inner_out.net else {
        panic!()
    };
    assert_eq!(iip.header().ttl(), 63, "routed once");
    assert_eq!(&v[8 + 14 + 20..], &inner[14 + 20..], "inner payload intact");
}

#[test]
fn a_pods_packet_to_an_ipip_block_leaves_as_protocol_4() {
    let mut s = setup();
    let inner = pod_udp([10, 244, 3, 9], 20, true);
    let (a, buf) = run(&mut s, POD, &inner);
    let Action::Tx { port, len } = a else {
        panic!("{a:?}")
    };
    assert_eq!((port, len), (UPLINK, inner.len() + 20));
    let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().protocol(), IpNumber(4));
    assert_eq!(ip.header().destination(), NODE_C);
    assert!(ip.header().dont_fragment(), "DF follows the inner packet");
    let inner_out = SlicedPacket::from_ip(ip.payload().payload).unwrap();
    let Some(NetSlice::Ipv4(iip)) = &inner_out.net else {
        panic!()
    };
    assert_eq!(iip.header().ttl(), 63);
}

/// A VXLAN packet from node B for `inner_dst`, built with etherparse (not our encoder).
fn vxlan_from_b(inner_dst: [u8; 4], vni: u32) -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2(vxlan::vtep_mac("node-b"), vxlan::vtep_mac("node-a"))
        .ipv4([10, 244, 2, 5], inner_dst, 63)
        .udp(5000, 6000)
        .write(&mut inner, b"from b")
        .unwrap();
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(&inner);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, NODE_MAC)
        .ipv4(NODE_B, NODE_A, 64)
        .udp(40000, 4789)
        .write(&mut v, &payload)
        .unwrap();
    v
}

#[test]
fn vxlan_to_the_node_is_unwrapped_and_delivered_to_the_pod() {
    let mut s = setup();
    let (a, buf) = run(&mut s, UPLINK, &vxlan_from_b(POD_IP, CALICO_VNI));
    let Action::Tx { port, len } = a else {
        panic!("{a:?}")
    };
    assert_eq!(port, POD);
    let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
    assert_eq!(&buf[0..6], &POD_MAC);
    assert_eq!(&buf[6..12], &HOST_SIDE_MAC);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), [10, 244, 2, 5]);
    assert_eq!(ip.header().ttl(), 62);
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!()
    };
    assert_eq!(udp.payload(), b"from b");
    assert_eq!(s.counters.total().decapsulated, 1);
}

#[test]
fn ipip_to_the_node_is_unwrapped_and_delivered_to_the_pod() {
    let mut s = setup();
    let mut inner = Vec::new();
    PacketBuilder::ipv4([10, 244, 3, 9], POD_IP, 63)
        .udp(5000, 6000)
        .write(&mut inner, b"from c")
        .unwrap();
    let mut outer = Ipv4Header::new(inner.len() as u16, 64, IpNumber(4), NODE_C, NODE_A).unwrap();
    outer.header_checksum = outer.calc_header_checksum();
    let mut f = [&ROUTER_MAC[..], &NODE_MAC[..], &[8, 0]].concat();
    outer.write(&mut f).unwrap();
    f.extend_from_slice(&inner);
    let (a, buf) = run(&mut s, UPLINK, &f);
    let Action::Tx { port, len } = a else {
        panic!("{a:?}")
    };
    assert_eq!((port, len), (POD, 14 + inner.len()));
    let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!()
    };
    assert_eq!(udp.payload(), b"from c");
}

#[test]
fn no_open_relay_and_other_vnis_are_dropped() {
    let mut s = setup();
    let (a, _) = run(&mut s, UPLINK, &vxlan_from_b([8, 8, 8, 8], CALICO_VNI));
    assert_eq!(a, Action::Drop(DropReason::NotOurPool));
    let (a, _) = run(&mut s, UPLINK, &vxlan_from_b(POD_IP, 4097));
    assert_eq!(a, Action::Drop(DropReason::BadTunnel));
    let t = s.counters.total();
    assert_eq!(
        (
            t.dropped(DropReason::NotOurPool),
            t.dropped(DropReason::BadTunnel)
        ),
        (1, 1)
    );
}

#[test]
fn too_big_for_the_tunnel_gets_frag_needed_with_the_tunnel_mtu() {
    for (dst, mtu) in [([10, 244, 2, 5], 1450u16), ([10, 244, 3, 9], 1480)] {
        let mut s = setup();
        // 1500-byte IP packet with DF.
        let inner = pod_udp(dst, 1500 - 28, true);
        let (a, buf) = run(&mut s, POD, &inner);
        let Action::Tx { port, len } = a else {
            panic!("{a:?}")
        };
        assert_eq!(port, POD, "the error goes back to the pod");
        let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!()
        };
        assert_eq!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: mtu
                }
            )
        );
        // Exactly the tunnel MTU passes.
        let fits = pod_udp(dst, mtu as usize - 28, true);
        let (a, _) = run(&mut s, POD, &fits);
        assert!(matches!(a, Action::Tx { port: UPLINK, .. }), "{a:?}");
    }
}

proptest::proptest! {
    /// Random and mutated tunnel frames never panic: each gets an action.
    #[test]
    fn mutated_tunnel_frames_never_panic(
        flips in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..8),
        cut in 0usize..140,
        ipip in proptest::prelude::any::<bool>(),
    ) {
        let mut s = setup();
        let mut f = vxlan_from_b(POD_IP, CALICO_VNI);
        if ipip {
            f[14 + 9] = 4;
        }
        for (at, b) in flips {
            if at < f.len() {
                f[at] = b;
            }
        }
        f.truncate(cut.max(1));
        let _ = run(&mut s, UPLINK, &f);
        let _ = run(&mut s, POD, &f);
    }
}

#[test]
fn too_big_without_df_is_fragmented_then_each_piece_encapsulated() {
    for (dst, over) in [([10, 244, 2, 5], 50usize), ([10, 244, 3, 9], 20)] {
        let mut s = setup();
        let inner = pod_udp(dst, 1500 - 28, false);
        let (a, _) = run(&mut s, POD, &inner);
        assert_eq!(a, Action::Consumed);
        let mut pieces = Vec::new();
        s.pipeline
            .drain_extra(&mut |port, f| pieces.push((port, f.to_vec())));
        assert_eq!(pieces.len(), 2, "1500 bytes through a 1450 / 1480 tunnel");
        let mut payload = vec![0u8; 1500 - 20];
        for (port, f) in &pieces {
            assert_eq!(*port, UPLINK);
            assert!(f.len() <= 14 + 1500, "each wrapped piece fits the underlay");
            // Unwrap with the independent parser, then place the fragment.
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let inner_ip: &[u8] = match (&p.net, &p.transport) {
                (_, Some(TransportSlice::Udp(u))) if over == 50 => &u.payload()[8 + 14..],
                (Some(NetSlice::Ipv4(ip)), _) => ip.payload().payload,
                other => panic!("{other:?}"),
            };
            let h = Ipv4Header::from_slice(inner_ip).unwrap().0;
            assert_eq!(h.time_to_live, 63);
            let off = h.fragment_offset.byte_offset() as usize;
            let data = &inner_ip[20..h.total_len as usize];
            payload[off..off + data.len()].copy_from_slice(data);
        }
        assert_eq!(&payload[..], &inner[14 + 20..], "reassembled");
        assert_eq!(s.counters.total().fragmented, 1);
        let mut again = Vec::new();
        s.pipeline.drain_extra(&mut |p, f| again.push((p, f.len())));
        assert!(again.is_empty(), "drained once");
    }
}

#[test]
fn tunnels_from_unknown_sources_and_from_pods_are_dropped() {
    let mut s = setup();
    // VXLAN to the node from 10.0.0.9 (no known node): refused, counted.
    let mut f = vxlan_from_b(POD_IP, CALICO_VNI);
    f[26..30].copy_from_slice(&[10, 0, 0, 9]);
    let sum = {
        let h = Ipv4Header::from_slice(&f[14..]).unwrap().0;
        h.calc_header_checksum()
    };
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    let (a, _) = run(&mut s, UPLINK, &f);
    assert_eq!(a, Action::Drop(DropReason::TunnelUnknownSource));
    // A pod sending VXLAN or IP in IP (to anyone), a DHCP server reply: refused.
    let pod_vxlan = {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(POD_MAC, HOST_SIDE_MAC)
            .ipv4(POD_IP, NODE_B, 64)
            .udp(40000, 4789)
            .write(&mut v, &[8, 0, 0, 0, 0, 16, 0, 0])
            .unwrap();
        v
    };
    let pod_dhcp = {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(POD_MAC, HOST_SIDE_MAC)
            .ipv4(POD_IP, [10, 244, 2, 5], 64)
            .udp(67, 68)
            .write(&mut v, b"offer")
            .unwrap();
        v
    };
    let pod_ipip = {
        let mut inner = Vec::new();
        PacketBuilder::ipv4([10, 244, 3, 9], POD_IP, 63)
            .udp(5000, 6000)
            .write(&mut inner, b"x")
            .unwrap();
        let mut outer =
            Ipv4Header::new(inner.len() as u16, 64, IpNumber(4), POD_IP, NODE_C).unwrap();
        outer.header_checksum = outer.calc_header_checksum();
        let mut f = [&HOST_SIDE_MAC[..], &POD_MAC[..], &[8, 0]].concat();
        outer.write(&mut f).unwrap();
        f.extend_from_slice(&inner);
        f
    };
    for f in [pod_vxlan, pod_dhcp, pod_ipip] {
        let (a, _) = run(&mut s, POD, &f);
        assert_eq!(a, Action::Drop(DropReason::PodForbidden));
    }
    let t = s.counters.total();
    assert_eq!(
        (
            t.dropped(DropReason::TunnelUnknownSource),
            t.dropped(DropReason::PodForbidden)
        ),
        (1, 3)
    );
}
