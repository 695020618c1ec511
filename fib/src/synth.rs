//! Deterministic synthetic route tables for tests and benchmarks.
//!
//! IPv4 follows DPDK's lpm_perf_autotest: exactly its count of prefixes per length,
//! each a uniformly random address masked to the length, drawn with replacement (so
//! duplicates occur and the unique count is lower). IPv6 draws lengths from a mix shaped
//! like today's global table (most between /32 and /48, a peak at /48) inside 2000::/3.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// SplitMix64: tiny, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    pub fn next_u128(&mut self) -> u128 {
        (self.next_u64() as u128) << 64 | self.next_u64() as u128
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The seed every default table uses.
pub const DEFAULT_SEED: u64 = 0x7672_6f75_7465_7221; // "vrouter!"

/// DPDK lpm_perf_autotest's prefixes per length (total 1,076,806).
pub const DPDK_V4_LENGTHS: &[(u8, u32)] = &[
    (3, 1),
    (5, 3),
    (6, 2),
    (7, 4),
    (8, 201),
    (9, 37),
    (10, 55),
    (11, 97),
    (12, 381),
    (13, 775),
    (14, 2104),
    (15, 3712),
    (16, 69319),
    (17, 12983),
    (18, 23667),
    (19, 69068),
    (20, 62354),
    (21, 48531),
    (22, 72355),
    (23, 85427),
    (24, 583900),
    (25, 2654),
    (26, 5650),
    (27, 6467),
    (28, 7127),
    (29, 12936),
    (30, 5999),
    (31, 13),
    (32, 984),
];

/// Default size of the IPv4 table (DPDK's).
pub const DPDK_V4_TOTAL: usize = 1_076_806;
/// Default size of the IPv6 table.
pub const DEFAULT_V6_TOTAL: usize = 200_000;

/// Relative weights of IPv6 prefix lengths, shaped like the public table (2025):
/// /48 about half, then /32, /44, /40, /29, /36, /46-/47, a few /64 and /128.
pub const V6_LENGTH_WEIGHTS: &[(u8, u32)] = &[
    (16, 1),
    (19, 1),
    (20, 2),
    (22, 2),
    (24, 3),
    (28, 5),
    (29, 35),
    (30, 6),
    (31, 4),
    (32, 110),
    (33, 14),
    (34, 14),
    (35, 8),
    (36, 30),
    (37, 5),
    (38, 10),
    (39, 6),
    (40, 45),
    (41, 4),
    (42, 12),
    (43, 5),
    (44, 90),
    (45, 10),
    (46, 25),
    (47, 20),
    (48, 500),
    (52, 3),
    (56, 10),
    (60, 2),
    (64, 18),
    (96, 1),
    (128, 9),
];

/// `n` IPv4 prefixes with DPDK's length distribution scaled to `n` (exact at the default).
pub fn dpdk_v4(n: usize, seed: u64) -> Vec<Ipv4Net> {
    let mut rng = Rng::new(seed);
    let counts = scale(DPDK_V4_LENGTHS, n);
    let mut out = Vec::with_capacity(n);
    for (len, count) in counts {
        for _ in 0..count {
            let addr = rng.next_u32();
            out.push(Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc());
        }
    }
    out
}

/// `n` IPv6 prefixes inside 2000::/3 with lengths drawn from [`V6_LENGTH_WEIGHTS`].
pub fn realistic_v6(n: usize, seed: u64) -> Vec<Ipv6Net> {
    let mut rng = Rng::new(seed);
    let total: u32 = V6_LENGTH_WEIGHTS.iter().map(|w| w.1).sum();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut pick = rng.below(total as u64) as u32;
        let mut len = 48;
        for &(l, w) in V6_LENGTH_WEIGHTS {
            if pick < w {
                len = l;
                break;
            }
            pick -= w;
        }
        let addr = (rng.next_u128() >> 3) | (1u128 << 125); // 2000::/3
        out.push(Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc());
    }
    out
}

/// Per-length counts scaled to `n` by largest remainder, so they sum to `n` exactly.
fn scale(weights: &[(u8, u32)], n: usize) -> Vec<(u8, usize)> {
    let total: u64 = weights.iter().map(|w| w.1 as u64).sum();
    let mut counts: Vec<(u8, usize, u64)> = weights
        .iter()
        .map(|&(l, w)| {
            let exact = w as u64 * n as u64;
            (l, (exact / total) as usize, exact % total)
        })
        .collect();
    let mut short = n - counts.iter().map(|c| c.1).sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].2.cmp(&counts[a].2).then(a.cmp(&b)));
    for i in order {
        if short == 0 {
            break;
        }
        counts[i].1 += 1;
        short -= 1;
    }
    counts.into_iter().map(|(l, c, _)| (l, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpdk_default_counts_match_dpdk() {
        let total: u32 = DPDK_V4_LENGTHS.iter().map(|w| w.1).sum();
        assert_eq!(total as usize, DPDK_V4_TOTAL);
        let scaled = scale(DPDK_V4_LENGTHS, DPDK_V4_TOTAL);
        for (a, b) in scaled.iter().zip(DPDK_V4_LENGTHS.iter()) {
            assert_eq!((a.0, a.1), (b.0, b.1 as usize));
        }
        assert_eq!(
            scale(DPDK_V4_LENGTHS, 1000)
                .iter()
                .map(|c| c.1)
                .sum::<usize>(),
            1000
        );
    }
}
