//! Ethernet II header (no VLAN tag).

pub mod field {
    use crate::wire::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

/// Header length.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;

/// The EtherType values the dataplane handles.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
}

/// The EtherType of `frame` (at least `HEADER_LEN` bytes).
#[inline(always)]
pub fn ethertype(frame: &[u8]) -> u16 {
    super::be16(frame, field::ETHERTYPE.start)
}

#[inline(always)]
pub fn set_ethertype(frame: &mut [u8], value: u16) {
    super::set_be16(frame, field::ETHERTYPE, value);
}

/// The source address.
#[inline(always)]
pub fn source(frame: &[u8]) -> [u8; 6] {
    frame[field::SOURCE].try_into().unwrap()
}

/// Write the destination and source addresses.
#[inline(always)]
pub fn set_addrs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    frame[field::DESTINATION].copy_from_slice(&dst);
    frame[field::SOURCE].copy_from_slice(&src);
}

/// A group (multicast or broadcast) address: the I/G bit of the first byte.
#[inline(always)]
pub fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}
