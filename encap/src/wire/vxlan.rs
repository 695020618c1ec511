//! VXLAN header (RFC 7348), after the UDP header.

pub mod field {
    use crate::wire::Field;
    pub const FLAGS: usize = 0;
    /// The VNI (high 24 bits) and a reserved byte.
    pub const VNI: Field = 4..8;
}

pub const HEADER_LEN: usize = field::VNI.end;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// The VNI field's bytes for `vni`.
#[inline(always)]
pub fn vni_bytes(vni: u32) -> [u8; 4] {
    (vni << 8).to_be_bytes()
}

#[inline(always)]
pub fn vni(h: &[u8]) -> u32 {
    u32::from_be_bytes(h[field::VNI].try_into().unwrap()) >> 8
}
