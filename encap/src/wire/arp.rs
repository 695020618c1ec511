//! ARP for IPv4 over Ethernet (RFC 826).

pub mod field {
    use crate::wire::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    /// Hardware and protocol types and lengths together.
    pub const FORMAT: Field = HTYPE.start..PLEN + 1;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Packet length for Ethernet / IPv4.
pub const PACKET_LEN: usize = field::TPA.end;
/// `FORMAT` for Ethernet / IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
pub const FORMAT_ETHERNET_IPV4: [u8; 6] = {
    let [p0, p1] = crate::wire::ethernet::ethertype::IPV4.to_be_bytes();
    let [h0, h1] = HTYPE_ETHERNET.to_be_bytes();
    [h0, h1, p0, p1, 6, 4]
};
pub const HTYPE_ETHERNET: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

#[inline(always)]
pub fn oper(arp: &[u8]) -> u16 {
    super::be16(arp, field::OPER.start)
}
