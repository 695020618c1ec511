//! UDP header (RFC 768).

pub mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

#[inline(always)]
pub fn dst_port(udp: &[u8]) -> u16 {
    super::be16(udp, field::DST_PORT.start)
}

/// The length field (header and payload).
#[inline(always)]
pub fn len(udp: &[u8]) -> usize {
    super::be16(udp, field::LENGTH.start) as usize
}

#[inline(always)]
pub fn set_src_port(udp: &mut [u8], port: u16) {
    super::set_be16(udp, field::SRC_PORT, port);
}

#[inline(always)]
pub fn set_dst_port(udp: &mut [u8], port: u16) {
    super::set_be16(udp, field::DST_PORT, port);
}

#[inline(always)]
pub fn set_len(udp: &mut [u8], len: u16) {
    super::set_be16(udp, field::LENGTH, len);
}

#[inline(always)]
pub fn set_checksum(udp: &mut [u8], sum: u16) {
    super::set_be16(udp, field::CHECKSUM, sum);
}
