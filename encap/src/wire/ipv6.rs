//! IPv6 fixed header (RFC 8200).

pub mod field {
    use crate::wire::Field;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    /// Payload length (what follows the fixed header).
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    /// Source and destination together (what the pseudo-header and flow hash read).
    pub const ADDRS: Field = SRC_ADDR.start..DST_ADDR.end;
}

/// Fixed header length.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
pub const VERSION: u8 = 6;
/// The hop limit of packets we originate.
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// The flow label bits of `VER_TC_FLOW`.
pub const FLOW_LABEL: u32 = 0x000f_ffff;
/// First byte of a multicast address (ff00::/8).
pub const MULTICAST_PREFIX: u8 = 0xff;

#[inline(always)]
pub fn version(ip: &[u8]) -> u8 {
    ip[field::VER_TC_FLOW.start] >> 4
}

/// The first word: version 6, traffic class `tc`, flow label `flow` (its low 20 bits).
#[inline(always)]
pub fn ver_tc_flow(tc: u8, flow: u32) -> u32 {
    (VERSION as u32) << 28 | (tc as u32) << 20 | (flow & FLOW_LABEL)
}

/// The traffic class (straddles the first two bytes).
#[inline(always)]
pub fn traffic_class(ip: &[u8]) -> u8 {
    (ip[0] << 4) | (ip[1] >> 4)
}

#[inline(always)]
pub fn payload_len(ip: &[u8]) -> usize {
    super::be16(ip, field::LENGTH.start) as usize
}

#[inline(always)]
pub fn set_payload_len(ip: &mut [u8], len: u16) {
    super::set_be16(ip, field::LENGTH, len);
}

#[inline(always)]
pub fn src_addr(ip: &[u8]) -> [u8; 16] {
    ip[field::SRC_ADDR].try_into().unwrap()
}
