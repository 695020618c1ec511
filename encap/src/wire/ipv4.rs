//! IPv4 header (RFC 791).

pub mod field {
    use crate::wire::Field;
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN (the old TOS byte).
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    /// Source and destination together (what the pseudo-header and flow hash read).
    pub const ADDRS: Field = SRC_ADDR.start..DST_ADDR.end;
}

/// Header length without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
pub const VERSION: u8 = 4;
/// Version 4, header length 5 words: a header without options.
pub const VER_IHL_NO_OPTIONS: u8 = VERSION << 4 | (HEADER_LEN / 4) as u8;
/// The TTL of packets we originate.
pub const DEFAULT_TTL: u8 = 64;

/// Don't fragment (in the `FLG_OFF` word).
pub const FLAG_DF: u16 = 0x4000;
/// More fragments.
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits.
pub const FRAG_OFFSET: u16 = 0x1fff;
/// Nonzero for a fragment (MF set or an offset): not the whole packet.
pub const FRAGMENT: u16 = FLAG_MF | FRAG_OFFSET;
/// DF within the first byte of `FLG_OFF`.
const DF_BYTE: u8 = (FLAG_DF >> 8) as u8;

#[inline(always)]
pub fn version(ip: &[u8]) -> u8 {
    ip[field::VER_IHL] >> 4
}

/// Header length in bytes (options included).
#[inline(always)]
pub fn header_len(ip: &[u8]) -> usize {
    (ip[field::VER_IHL] & 0x0f) as usize * 4
}

#[inline(always)]
pub fn total_len(ip: &[u8]) -> usize {
    super::be16(ip, field::LENGTH.start) as usize
}

/// The flags and fragment offset word.
#[inline(always)]
pub fn flg_off(ip: &[u8]) -> u16 {
    super::be16(ip, field::FLG_OFF.start)
}

#[inline(always)]
pub fn dont_frag(ip: &[u8]) -> bool {
    ip[field::FLG_OFF.start] & DF_BYTE != 0
}

/// DF of the IPv4 header at `ip_at` in `frame`, if the frame reaches its flags byte.
#[inline(always)]
pub fn dont_frag_at(frame: &[u8], ip_at: usize) -> Option<bool> {
    frame
        .get(ip_at + field::FLG_OFF.start)
        .map(|&b| b & DF_BYTE != 0)
}

#[inline(always)]
pub fn checksum(ip: &[u8]) -> u16 {
    super::be16(ip, field::CHECKSUM.start)
}

#[inline(always)]
pub fn set_checksum(ip: &mut [u8], sum: u16) {
    super::set_be16(ip, field::CHECKSUM, sum);
}

#[inline(always)]
pub fn set_total_len(ip: &mut [u8], len: u16) {
    super::set_be16(ip, field::LENGTH, len);
}

#[inline(always)]
pub fn set_flg_off(ip: &mut [u8], value: u16) {
    super::set_be16(ip, field::FLG_OFF, value);
}

#[inline(always)]
pub fn src_addr(ip: &[u8]) -> [u8; 4] {
    ip[field::SRC_ADDR].try_into().unwrap()
}

#[inline(always)]
pub fn dst_addr(ip: &[u8]) -> [u8; 4] {
    ip[field::DST_ADDR].try_into().unwrap()
}
