//! Named header fields, in the style of smoltcp's `wire`: per header, a `field` module
//! of byte offsets (a `usize` for one byte, a [`Field`] range for more) relative to the
//! start of that header, its length, the constants its fields take, and small inlined
//! accessors over byte slices. The accessors index like the code they replace (they
//! panic on a slice too short for the field): callers check lengths first, as before.
//! Constants and `#[inline(always)]` functions only, so the machine code is that of the
//! raw offsets: with plain `#[inline]` LLVM inlined them later and merged or vectorised
//! differently (a larger OuterTemplate::encapsulate); with `always` the pipeline's and
//! the template's functions disassemble to the same instructions as with raw offsets.

/// The bytes of a multi-byte field.
pub type Field = core::ops::Range<usize>;

/// The big-endian 16-bit value at `at`.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Write the big-endian 16-bit `field`.
#[inline(always)]
pub(crate) fn set_be16(b: &mut [u8], field: Field, value: u16) {
    b[field].copy_from_slice(&value.to_be_bytes());
}

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod udp;
pub mod vxlan;

#[cfg(test)]
mod tests;
