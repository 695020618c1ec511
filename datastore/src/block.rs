//! One IPAM block's bookkeeping, pure: take and free ordinals as `calico-ipam` does
//! (`lib/ipam/ipam_block.go`): the next ordinal comes from the front of `unallocated`,
//! a freed one goes to its back; allocations point into `attributes`, which are shared
//! by equal (handle, secondary) pairs and dropped, re-indexed, once unused. Every change
//! bumps `sequenceNumber`.

use crate::model::{AllocationAttribute, AllocationBlock};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses in a block (`u128::MAX` for all of IPv6, one more than a `u128` holds: a
/// "block" read from etcd may say `::/0`).
pub fn size(cidr: IpNet) -> u128 {
    let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// The `i`-th address of `net`.
pub fn nth(net: IpNet, i: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + i as u32)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + i)),
    }
}

/// Where `ip` lies in `net`, if it does.
pub fn ordinal(net: IpNet, ip: IpAddr) -> Option<u32> {
    if !net.contains(&ip) {
        return None;
    }
    let off = match (net, ip) {
        (IpNet::V4(n), IpAddr::V4(a)) => (u32::from(a) - u32::from(n.network())) as u128,
        (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
        _ => return None,
    };
    u32::try_from(off).ok()
}

/// The `i`-th block of size `prefix` in `pool`.
pub fn nth_block(pool: IpNet, prefix: u8, i: u128) -> IpNet {
    let step = 1u128 << (pool.max_prefix_len() - prefix);
    IpNet::new(nth(pool, i * step), prefix).expect("a prefix within the family")
}

/// How many blocks of size `prefix` a pool holds.
pub fn block_count(pool: IpNet, prefix: u8) -> u128 {
    1u128 << (prefix - pool.prefix_len()).min(127)
}

/// A new block with every address free, affine to `host` (None: no affinity).
pub fn new_block(cidr: IpNet, host: Option<&str>, now_nanos: u64) -> AllocationBlock {
    let n = size(cidr) as u32;
    AllocationBlock {
        cidr: cidr.to_string(),
        affinity: host.map(|h| format!("host:{h}")),
        allocations: vec![None; n as usize],
        unallocated: (0..n).collect(),
        attributes: Vec::new(),
        sequence_number: now_nanos,
        sequence_number_for_allocation: Some(BTreeMap::new()),
        deleted: false,
        host_affinity: None,
    }
}

/// Whether a block read from etcd is internally consistent enough to allocate from:
/// one allocation slot per address, free ordinals in range and really free.
pub fn well_formed(b: &AllocationBlock, cidr: IpNet) -> bool {
    let n = size(cidr) as usize;
    b.allocations.len() == n
        && b.unallocated
            .iter()
            .all(|&o| (o as usize) < n && b.allocations[o as usize].is_none())
        && b.allocations
            .iter()
            .flatten()
            .all(|&i| (i as usize) < b.attributes.len())
}

fn attribute(handle: &str, secondary: &BTreeMap<String, String>) -> AllocationAttribute {
    AllocationAttribute {
        handle_id: Some(handle.to_string()),
        secondary: (!secondary.is_empty()).then(|| secondary.clone()),
    }
}

fn point_at(b: &mut AllocationBlock, ord: u32, handle: &str, secondary: &BTreeMap<String, String>) {
    let a = attribute(handle, secondary);
    let idx = match b.attributes.iter().position(|x| *x == a) {
        Some(i) => i,
        None => {
            b.attributes.push(a);
            b.attributes.len() - 1
        }
    };
    b.allocations[ord as usize] = Some(idx as u32);
    b.sequence_number += 1;
    b.sequence_number_for_allocation
        .get_or_insert_with(BTreeMap::new)
        .insert(ord.to_string(), b.sequence_number);
}

/// Take the next free ordinal for `handle`.
pub fn take_next(
    b: &mut AllocationBlock,
    handle: &str,
    secondary: &BTreeMap<String, String>,
) -> Option<u32> {
    if b.unallocated.is_empty() {
        return None;
    }
    let ord = b.unallocated.remove(0);
    point_at(b, ord, handle, secondary);
    Some(ord)
}

/// Take a given ordinal; `Err(holder)` if it is taken (by that handle, if known).
pub fn take(
    b: &mut AllocationBlock,
    ord: u32,
    handle: &str,
    secondary: &BTreeMap<String, String>,
) -> Result<(), Option<String>> {
    if let Some(Some(i)) = b.allocations.get(ord as usize) {
        return Err(b
            .attributes
            .get(*i as usize)
            .and_then(|a| a.handle_id.clone()));
    }
    let Some(pos) = b.unallocated.iter().position(|&o| o == ord) else {
        return Err(None);
    };
    b.unallocated.remove(pos);
    point_at(b, ord, handle, secondary);
    Ok(())
}

/// The handle holding `ord`, if it is allocated.
pub fn holder(b: &AllocationBlock, ord: u32) -> Option<Option<String>> {
    let i = (*b.allocations.get(ord as usize)?)?;
    Some(
        b.attributes
            .get(i as usize)
            .and_then(|a| a.handle_id.clone()),
    )
}

/// Free `ord`; returns its handle. Unused attributes go and the others are re-indexed.
pub fn free(b: &mut AllocationBlock, ord: u32) -> Option<Option<String>> {
    let idx = b.allocations.get_mut(ord as usize)?.take()?;
    let handle = b
        .attributes
        .get(idx as usize)
        .and_then(|a| a.handle_id.clone());
    b.unallocated.push(ord);
    if let Some(m) = b.sequence_number_for_allocation.as_mut() {
        m.remove(&ord.to_string());
    }
    if !b.allocations.contains(&Some(idx)) && (idx as usize) < b.attributes.len() {
        b.attributes.remove(idx as usize);
        for a in b.allocations.iter_mut().flatten() {
            if *a > idx {
                *a -= 1;
            }
        }
    }
    b.sequence_number += 1;
    Some(handle)
}

/// The ordinals `handle` holds in the block.
pub fn ordinals_of(b: &AllocationBlock, handle: &str) -> Vec<u32> {
    b.allocations
        .iter()
        .enumerate()
        .filter_map(|(o, a)| {
            let i = (*a)? as usize;
            (b.attributes.get(i)?.handle_id.as_deref() == Some(handle)).then_some(o as u32)
        })
        .collect()
}

/// Allocated addresses with their handle and the `node` attribute.
pub fn allocated(
    b: &AllocationBlock,
    cidr: IpNet,
) -> Vec<(IpAddr, Option<String>, Option<String>)> {
    b.allocations
        .iter()
        .enumerate()
        .filter_map(|(o, a)| {
            let attr = b.attributes.get((*a)? as usize);
            Some((
                nth(cidr, o as u128),
                attr.and_then(|x| x.handle_id.clone()),
                attr.and_then(|x| x.secondary.as_ref()?.get("node").cloned()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr() -> IpNet {
        "10.0.0.0/28".parse().unwrap()
    }

    /// The plain model: ordinal → handle.
    type Model = BTreeMap<u32, String>;

    proptest! {
        #[test]
        fn block_matches_a_map(ops in prop::collection::vec((0u8..3, 0u32..16, 0u8..4), 1..200)) {
            let mut b = new_block(cidr(), Some("n"), 1);
            let mut model = Model::new();
            let sec = BTreeMap::new();
            for (op, ord, h) in ops {
                let handle = format!("h{h}");
                match op {
                    0 => {
                        let got = take_next(&mut b, &handle, &sec);
                        if model.len() == 16 {
                            prop_assert_eq!(got, None);
                        } else {
                            let o = got.unwrap();
                            prop_assert!(!model.contains_key(&o));
                            model.insert(o, handle);
                        }
                    }
                    1 => {
                        let r = take(&mut b, ord, &handle, &sec);
                        match model.get(&ord) {
                            Some(hold) => prop_assert_eq!(r, Err(Some(hold.clone()))),
                            None => { prop_assert!(r.is_ok()); model.insert(ord, handle); }
                        }
                    }
                    _ => {
                        let r = free(&mut b, ord);
                        prop_assert_eq!(r, model.remove(&ord).map(Some));
                    }
                }
                prop_assert!(well_formed(&b, cidr()));
                prop_assert_eq!(b.unallocated.len() + model.len(), 16);
                for (o, h) in &model {
                    prop_assert_eq!(holder(&b, *o), Some(Some(h.clone())));
                }
                // Attributes are shared and never left unused.
                let used: std::collections::BTreeSet<u32> = b.allocations.iter().flatten().copied().collect();
                prop_assert_eq!(used.len(), b.attributes.len());
            }
        }
    }

    /// Found by the `datastore_json` fuzz target (fuzz/regressions/datastore_json/): a
    /// block record for `::/0` overflowed the shift (a panic in a debug build, a size
    /// of 1 in a release one); it is now simply not well formed.
    #[test]
    fn a_block_of_all_ipv6_is_not_well_formed() {
        let all: IpNet = "::/0".parse().unwrap();
        assert_eq!(size(all), u128::MAX);
        assert_eq!(size("::/1".parse().unwrap()), 1 << 127);
        let b: AllocationBlock = serde_json::from_str(
            r#"{"cidr":"::/0","affinity":null,"allocations":[null],"unallocated":[0],"attributes":[],"sequenceNumber":1}"#,
        )
        .unwrap();
        assert!(!well_formed(&b, all));
    }

    #[test]
    fn block_arithmetic() {
        let p: IpNet = "10.244.0.0/16".parse().unwrap();
        assert_eq!(block_count(p, 26), 1024);
        assert_eq!(nth_block(p, 26, 3).to_string(), "10.244.0.192/26");
        let p6: IpNet = "fd00::/48".parse().unwrap();
        assert_eq!(nth_block(p6, 122, 1).to_string(), "fd00::40/122");
        assert_eq!(ordinal(cidr(), "10.0.0.5".parse().unwrap()), Some(5));
        assert_eq!(ordinal(cidr(), "10.0.1.5".parse().unwrap()), None);
    }
}
