//! Prefix helpers for the classifier: port ranges as prefixes, addresses as
//! (family, bits) and masking a value to a prefix length. A leaf module.

use std::net::IpAddr;

/// A port prefix: the port's top `len` bits equal `value` (already shifted right by
/// `16 - len`). `len == 0` is every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPrefix {
    pub value: u16,
    pub len: u8,
}

/// The minimal set of prefixes covering exactly the inclusive range `lo..=hi` (none
/// when `lo > hi`): at most 30 for a 16-bit range.
pub fn range_to_prefixes(lo: u16, hi: u16) -> Vec<PortPrefix> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        // The largest aligned block starting at `lo`...
        let mut size: u32 = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        // ...that does not go past `hi`.
        while lo + size - 1 > hi {
            size >>= 1;
        }
        let len = 16 - size.trailing_zeros();
        out.push(PortPrefix {
            value: (lo >> (16 - len)) as u16,
            len: len as u8,
        });
        lo += size;
    }
    out
}

/// The top `len` bits of a `width`-bit value held in the low bits of `v`.
pub fn top_bits(v: u128, width: u8, len: u8) -> u128 {
    v.checked_shr(u32::from(width - len)).unwrap_or(0)
}

/// An address as (IP version, value, width in bits).
pub fn addr_bits(a: IpAddr) -> (u8, u128, u8) {
    match a {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (6, u128::from(v6), 128),
    }
}

/// The classifier tables' hasher: the masked key's words folded by multiply and xor,
/// finished with murmur3's fmix64. SipHash (std's default) costs several times more
/// per probe, and a packet probes one table per tuple; the keys are the operator's
/// rules, not what packets choose, so flooding resistance buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn mix(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(31);
    }
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.mix(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A map keyed by classifier keys.
pub type KeyMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;
