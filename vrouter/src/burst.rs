//! What a burst is, shared by the pipeline, the I/O backends and the counters (a leaf:
//! it imports none of them): at most `BURST` frames, each given an `Action`, drops
//! counted by `DropReason`, and the counts a backend keeps itself (`BackendStats`).

use crate::nexthop::PortId;

/// Most frames handled per call.
pub const BURST: usize = 64;

/// What to do with a frame after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the first `len` bytes out of `port`.
    Tx {
        port: PortId,
        len: usize,
    },
    /// Hand the frame to the host's kernel unchanged.
    Kernel,
    /// An IPv4 packet without DF, larger than `port`'s MTU (already rewritten): send it
    /// as fragments of at most `mtu` IP bytes.
    Fragment {
        port: PortId,
        len: usize,
        mtu: u16,
    },
    /// The packet was sent in pieces the pipeline built itself (IPv4 without DF, too big
    /// for a tunnel: fragmented, then each fragment encapsulated; see
    /// [`Pipeline::drain_extra`]). The frame itself is done with.
    Consumed,
    /// The next hop `nh` is not resolved yet: keep the frame (`len` bytes) briefly and
    /// pass it to [`Pipeline::resume`] once it is, or drop it as `Unresolved`.
    Hold {
        nh: u32,
        len: usize,
    },
    /// A NAT flow's packet that worker `worker` owns (its flow table, its ports): pass
    /// the frame (`len` bytes, as received) to that worker to process.
    Handoff {
        worker: u16,
        len: usize,
    },
    Drop(DropReason),
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Truncated or garbage frame, bad IP header.
    Malformed,
    /// No route for the destination (from a pod).
    NoRoute,
    /// TTL / hop limit reached zero.
    TtlExpired,
    /// A pod sent from an address that is not its own.
    Spoofed,
    /// To an unused address of one of our own blocks.
    Blackhole,
    /// The next hop's MAC is not resolved yet.
    Unresolved,
    /// A protocol we do not handle from a pod (neither IPv4, IPv6 nor ARP).
    Unsupported,
    /// ARP / ND not for the gateway.
    NotForUs,
    /// Larger than the egress port's MTU (frag-needed / packet-too-big sent if allowed).
    TooBig,
    /// A tunnel packet to the node whose inner packet is not for our pools (no relay).
    NotOurPool,
    /// A tunnel packet to the node that is malformed or carries another VNI.
    BadTunnel,
    /// NAT outgoing: every port of the worker's slice is taken for this destination.
    NatNoPort,
    /// A new flow refused: the flow table is full of flows that may not be evicted.
    ConntrackFull,
    /// NAT outgoing could not translate it (a fragment, no node address of the family,
    /// a lone RST, an ICMP error from a pod, unreadable headers).
    NatUntranslatable,
    /// Network policy denied it (a new flow, or an established one a policy change
    /// now denies).
    Policy,
    /// A pod sent what only the network may: a DHCP server reply, a router
    /// advertisement or redirect, a tunnel packet (VXLAN, IP in IP).
    PodForbidden,
    /// A tunnel packet to the node from an address that is no known node's.
    TunnelUnknownSource,
}

impl DropReason {
    pub const ALL: [DropReason; 17] = [
        DropReason::Malformed,
        DropReason::NoRoute,
        DropReason::TtlExpired,
        DropReason::Spoofed,
        DropReason::Blackhole,
        DropReason::Unresolved,
        DropReason::Unsupported,
        DropReason::NotForUs,
        DropReason::TooBig,
        DropReason::NotOurPool,
        DropReason::BadTunnel,
        DropReason::NatNoPort,
        DropReason::ConntrackFull,
        DropReason::NatUntranslatable,
        DropReason::Policy,
        DropReason::PodForbidden,
        DropReason::TunnelUnknownSource,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Spoofed => "spoofed",
            DropReason::Blackhole => "blackhole",
            DropReason::Unresolved => "unresolved",
            DropReason::Unsupported => "unsupported",
            DropReason::NotForUs => "not_for_us",
            DropReason::TooBig => "too_big",
            DropReason::NotOurPool => "not_our_pool",
            DropReason::BadTunnel => "bad_tunnel",
            DropReason::NatNoPort => "nat_no_port",
            DropReason::ConntrackFull => "conntrack_full",
            DropReason::NatUntranslatable => "nat_untranslatable",
            DropReason::Policy => "policy",
            DropReason::PodForbidden => "pod_forbidden",
            DropReason::TunnelUnknownSource => "tunnel_unknown_source",
        }
    }
}

/// Counts kept by a backend, beside the pipeline's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackendStats {
    /// Frames dropped because a TX ring was full.
    pub tx_ring_full: u64,
    /// Frames not received or sent for want of a free buffer.
    pub no_free_frame: u64,
    /// Frames dropped because the hold queue was full (also in the `unresolved` drops).
    pub hold_full: u64,
    /// Frames for a port no worker owns.
    pub not_our_port: u64,
    /// Frames for another worker's port that its full mailbox refused.
    pub mailbox_full: u64,
    /// Frames other workers passed us, sent.
    pub mailbox_delivered: u64,
    /// The kernel's AF_XDP statistics, summed over sockets: frames dropped on receive
    /// (e.g. longer than a frame), because the RX ring was full, and times the fill
    /// ring was found empty.
    pub xdp_rx_dropped: u64,
    pub xdp_rx_ring_full: u64,
    pub xdp_fill_ring_empty: u64,
}

impl BackendStats {
    /// How many counts a backend keeps.
    pub const COUNT: usize = 9;

    pub const NAMES: [&'static str; Self::COUNT] = [
        "tx_ring_full",
        "no_free_frame",
        "hold_full",
        "not_our_port",
        "mailbox_full",
        "mailbox_delivered",
        "xdp_rx_dropped",
        "xdp_rx_ring_full",
        "xdp_fill_ring_empty",
    ];

    pub fn values(&self) -> [u64; Self::COUNT] {
        [
            self.tx_ring_full,
            self.no_free_frame,
            self.hold_full,
            self.not_our_port,
            self.mailbox_full,
            self.mailbox_delivered,
            self.xdp_rx_dropped,
            self.xdp_rx_ring_full,
            self.xdp_fill_ring_empty,
        ]
    }
}
