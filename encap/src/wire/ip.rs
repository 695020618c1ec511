//! What IPv4 and IPv6 share: the version nibble and the protocol / next-header numbers.

/// IP protocol (IPv4) and next-header (IPv6) numbers.
pub mod protocol {
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (IPIP).
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6 in IP.
    pub const IPV6: u8 = 41;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// The source and destination ports with which TCP, UDP, SCTP and UDP-Lite headers all
/// start, relative to the transport header.
pub const PORTS: crate::wire::Field = 0..4;

/// The version of the IP header starting `ip` (its first byte's high nibble), if any.
#[inline(always)]
pub fn version(ip: &[u8]) -> Option<u8> {
    ip.first().map(|b| b >> 4)
}
