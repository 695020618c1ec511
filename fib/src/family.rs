//! Address families: how a key is cut into the direct index and 6-bit strides.

use core::fmt::Debug;
use core::hash::Hash;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bits consumed per trie level below the direct table (a node holds 64 slots).
pub const STRIDE: u32 = 6;

/// An IP family the FIB can hold. Implemented by [`V4`] and [`V6`] only.
pub trait Family: Send + Sync + 'static {
    type Addr: Copy + Debug + Send + Sync;
    type Net: Copy + Debug + Send + Sync;
    /// The address as an unsigned integer, most significant bit first.
    type Key: Copy + Eq + Ord + Hash + Debug + Default + Send + Sync;
    /// Address width in bits.
    const BITS: u8;
    /// Bits resolved by the direct-indexed table.
    const DIRECT_BITS: u8;
    const NAME: &'static str;
    /// Batch lookups always use the software pipeline (shallow tries); otherwise they use
    /// it only while the table fits in cache and walk level by level (lanes) beyond.
    /// Chosen by measurement (docs/decisions.md).
    const PIPELINED_BATCH: bool;
    /// Runs of one-child nodes become skip nodes (deep, sparse IPv6 tries); costs a
    /// branch per level, so shallow IPv4 tries go without. Measured in docs/decisions.md.
    const PATH_COMPRESSION: bool;

    fn addr_key(addr: Self::Addr) -> Self::Key;
    fn key_addr(key: Self::Key) -> Self::Addr;
    /// Network key (host bits cleared) and prefix length.
    fn net_parts(net: &Self::Net) -> (Self::Key, u8);
    fn make_net(key: Self::Key, len: u8) -> Self::Net;
    /// Index into the direct table: the top `DIRECT_BITS` bits.
    fn direct_index(key: Self::Key) -> usize;
    /// The `STRIDE` bits starting at bit `off` (0 = most significant), zero-padded past the end.
    fn stride_bits(key: Self::Key, off: u32) -> u32;
    /// The `n` bits (1..=60) starting at bit `off`, zero-padded past the end.
    fn bits(key: Self::Key, off: u32, n: u32) -> u64;
    /// `key` with every bit from `len` on cleared.
    fn mask(key: Self::Key, len: u8) -> Self::Key;
    /// The key of the first address of direct chunk `index`.
    fn chunk_key(index: usize) -> Self::Key;
}

/// IPv4: 2^18 direct entries (2 MiB), then at most 3 trie levels.
#[derive(Debug, Clone, Copy)]
pub enum V4 {}

/// IPv6: 2^18 direct entries (2 MiB), then up to 19 trie levels (5 for a /48).
#[derive(Debug, Clone, Copy)]
pub enum V6 {}

impl Family for V4 {
    type Addr = Ipv4Addr;
    type Net = Ipv4Net;
    type Key = u32;
    const BITS: u8 = 32;
    const DIRECT_BITS: u8 = 18;
    const NAME: &'static str = "v4";
    const PIPELINED_BATCH: bool = true;
    const PATH_COMPRESSION: bool = false;

    #[inline(always)]
    fn addr_key(addr: Ipv4Addr) -> u32 {
        u32::from(addr)
    }
    fn key_addr(key: u32) -> Ipv4Addr {
        Ipv4Addr::from(key)
    }
    fn net_parts(net: &Ipv4Net) -> (u32, u8) {
        let len = net.prefix_len();
        (Self::mask(u32::from(net.addr()), len), len)
    }
    fn make_net(key: u32, len: u8) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(key), len).expect("prefix length <= 32")
    }
    #[inline(always)]
    fn direct_index(key: u32) -> usize {
        (key >> (32 - Self::DIRECT_BITS as u32)) as usize
    }
    #[inline(always)]
    fn stride_bits(key: u32, off: u32) -> u32 {
        // Widen so that bits past /32 read as zero; off <= 30 here.
        (((key as u64) << 32 << off) >> (64 - STRIDE)) as u32
    }
    #[inline(always)]
    fn bits(key: u32, off: u32, n: u32) -> u64 {
        ((key as u64) << 32 << off) >> (64 - n)
    }
    #[inline(always)]
    fn mask(key: u32, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            key & (u32::MAX << (32 - len as u32))
        }
    }
    fn chunk_key(index: usize) -> u32 {
        (index as u32) << (32 - Self::DIRECT_BITS as u32)
    }
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    type Net = Ipv6Net;
    type Key = u128;
    const BITS: u8 = 128;
    const DIRECT_BITS: u8 = 18;
    const NAME: &'static str = "v6";
    const PIPELINED_BATCH: bool = false;
    const PATH_COMPRESSION: bool = true;

    #[inline(always)]
    fn addr_key(addr: Ipv6Addr) -> u128 {
        u128::from(addr)
    }
    fn key_addr(key: u128) -> Ipv6Addr {
        Ipv6Addr::from(key)
    }
    fn net_parts(net: &Ipv6Net) -> (u128, u8) {
        let len = net.prefix_len();
        (Self::mask(u128::from(net.addr()), len), len)
    }
    fn make_net(key: u128, len: u8) -> Ipv6Net {
        Ipv6Net::new(Ipv6Addr::from(key), len).expect("prefix length <= 128")
    }
    #[inline(always)]
    fn direct_index(key: u128) -> usize {
        (key >> (128 - Self::DIRECT_BITS as u32)) as usize
    }
    #[inline(always)]
    fn stride_bits(key: u128, off: u32) -> u32 {
        // off <= 126 here; the shift pads with zeros past /128.
        ((key << off) >> (128 - STRIDE)) as u32
    }
    #[inline(always)]
    fn bits(key: u128, off: u32, n: u32) -> u64 {
        ((key << off) >> (128 - n)) as u64
    }
    #[inline(always)]
    fn mask(key: u128, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            key & (u128::MAX << (128 - len as u32))
        }
    }
    fn chunk_key(index: usize) -> u128 {
        (index as u128) << (128 - Self::DIRECT_BITS as u32)
    }
}
