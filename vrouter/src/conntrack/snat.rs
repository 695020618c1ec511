//! Source NAT's port choice (NAT outgoing), endpoint-dependent as VPP's NAT44-ED: a
//! flow's translated port only has to be unique for its destination, so the flow table
//! itself is the allocation state — a port is free for a flow when the reply tuple it
//! would make is in no flow. Each worker draws from its own slice of the NAT range, so
//! workers never collide and a returning packet's port names the worker that owns it.
//!
//! The NAT range sits above the kernel's ephemeral ports (Linux's default
//! `ip_local_port_range` is 32768–60999): the node's own connections and ours never
//! share a 5-tuple. `kernel_ports_clear` is what vrouterd checks at start.

use super::{FlowState, FlowTable, Refused, Tuple, ICMP, ICMPV6};
use std::ops::RangeInclusive;

/// The node-wide NAT range: above the kernel's default ephemeral ports.
pub const NAT_PORTS: RangeInclusive<u16> = 61000..=65535;

/// Ports tried for one new flow before giving up ("no port free").
const PROBES: u32 = 128;

/// Worker `w`'s slice of `range` among `workers`.
pub fn worker_ports(range: &RangeInclusive<u16>, w: usize, workers: usize) -> RangeInclusive<u16> {
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let n = (hi - lo + 1) / workers.max(1) as u32;
    let start = lo + n * w as u32;
    let end = if w + 1 == workers { hi } else { start + n - 1 };
    start as u16..=end as u16
}

/// Which worker owns a translated port (the inverse of `worker_ports`).
pub fn owner_of(range: &RangeInclusive<u16>, port: u16, workers: usize) -> Option<usize> {
    if !range.contains(&port) {
        return None;
    }
    let n = (u32::from(*range.end()) - u32::from(*range.start()) + 1) / workers.max(1) as u32;
    let w = (u32::from(port) - u32::from(*range.start())) / n.max(1);
    Some((w as usize).min(workers.max(1) - 1))
}

/// Whether the kernel's ephemeral ports (`lo`–`hi`) stay clear of `range`.
pub fn kernel_ports_clear(kernel: (u16, u16), range: &RangeInclusive<u16>) -> bool {
    kernel.1 < *range.start() || kernel.0 > *range.end()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnatRefused {
    /// Every port tried is taken for this destination.
    NoPort,
    /// The flow table is full of flows that may not be evicted.
    TableFull,
}

/// The flow of `orig` translated to `node` (its address bytes as in `Tuple`) and a port
/// of `ports`: the existing one if `orig` is tracked, else a new flow. Returns the flow
/// and the translated port (the echo identifier for ICMP echo).
pub fn snat(
    table: &mut FlowTable,
    orig: &Tuple,
    node: [u8; 16],
    ports: &RangeInclusive<u16>,
    state: FlowState,
    now: u32,
) -> Result<(u32, u16), SnatRefused> {
    if let Some((id, _)) = table.lookup(orig) {
        let f = table.get(id).expect("a live flow");
        return Ok((id, f.reply.dport));
    }
    let len = u32::from(*ports.end()) - u32::from(*ports.start()) + 1;
    // Start where the tuple hashes, so flows spread over the range.
    let start = (orig.hash(0x5eed) >> 16) as u32 % len;
    let echo = orig.proto == ICMP || orig.proto == ICMPV6;
    for i in 0..PROBES.min(len) {
        let port = (u32::from(*ports.start()) + (start + i) % len) as u16;
        let reply = Tuple {
            src: orig.dst,
            dst: node,
            sport: if echo { port } else { orig.dport },
            dport: port,
            ..*orig
        };
        if table.lookup(&reply).is_some() {
            continue;
        }
        return match table.insert(*orig, reply, state, now) {
            Ok(id) => Ok((id, port)),
            Err(Refused::Full) => Err(SnatRefused::TableFull),
            // Another flow holds this reply tuple after all: try the next port.
            Err(Refused::Exists) => continue,
        };
    }
    Err(SnatRefused::NoPort)
}

#[cfg(test)]
mod tests {
    use super::super::{Dir, UDP};
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    const NODE: [u8; 16] = [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn pod_flow(pod: u8, sport: u16, dst: u8, dport: u16) -> Tuple {
        Tuple::v4(
            Ipv4Addr::new(10, 244, 0, pod),
            Ipv4Addr::new(198, 51, 100, dst),
            sport,
            dport,
            UDP,
        )
    }

    #[test]
    fn worker_slices_cover_the_range_without_overlap() {
        for workers in 1..=8 {
            let mut seen = HashSet::new();
            for w in 0..workers {
                for p in worker_ports(&NAT_PORTS, w, workers) {
                    assert!(seen.insert(p), "{p} twice with {workers} workers");
                    assert_eq!(owner_of(&NAT_PORTS, p, workers), Some(w));
                }
            }
            assert_eq!(seen.len(), NAT_PORTS.len());
        }
        assert_eq!(owner_of(&NAT_PORTS, 60999, 2), None);
        assert!(kernel_ports_clear((32768, 60999), &NAT_PORTS));
        assert!(!kernel_ports_clear((1024, 65535), &NAT_PORTS));
    }

    proptest! {
        /// Many pods' flows, several to the same destination: each translated flow's
        /// reply tuple is unique, lookups of it find the flow, and an existing flow keeps
        /// its port.
        #[test]
        fn translated_flows_never_share_a_reply_tuple(
            flows in proptest::collection::vec((0u8..8, 1000u16..1010, 0u8..2, 53u16..55), 1..400)
        ) {
            let mut table = FlowTable::new(1024, 9);
            let ports = worker_ports(&NAT_PORTS, 0, 2);
            let mut replies = HashSet::new();
            for (pod, sp, dst, dp) in flows {
                let t = pod_flow(pod, sp, dst, dp);
                let known = table.lookup(&t).map(|(id, _)| table.get(id).unwrap().reply.dport);
                let (id, port) = snat(&mut table, &t, NODE, &ports, FlowState::Other { replied: false }, 0)
                    .expect("room");
                prop_assert!(ports.contains(&port));
                if let Some(p) = known {
                    prop_assert_eq!(p, port, "an existing flow keeps its port");
                } else {
                    let reply = table.get(id).unwrap().reply;
                    prop_assert!(replies.insert(reply), "reply tuple reused");
                    prop_assert_eq!(table.lookup(&reply), Some((id, Dir::Reply)));
                }
            }
        }
    }

    #[test]
    fn a_destination_full_of_flows_is_refused_and_ports_come_back() {
        let mut table = FlowTable::new(64, 1);
        let ports = 61000..=61003;
        for sp in 0..4 {
            snat(
                &mut table,
                &pod_flow(1, sp, 7, 53),
                NODE,
                &ports,
                FlowState::Other { replied: true },
                0,
            )
            .unwrap();
        }
        // Four ports, four flows to 198.51.100.7:53: a fifth has none...
        let fifth = pod_flow(1, 99, 7, 53);
        assert_eq!(
            snat(
                &mut table,
                &fifth,
                NODE,
                &ports,
                FlowState::Other { replied: true },
                0
            ),
            Err(SnatRefused::NoPort)
        );
        // ...but another destination has them all,
        assert!(snat(
            &mut table,
            &pod_flow(1, 99, 8, 53),
            NODE,
            &ports,
            FlowState::Other { replied: true },
            0
        )
        .is_ok());
        // and once the first flows expire, the fifth gets one.
        table.expire(1000, 64);
        assert!(snat(
            &mut table,
            &fifth,
            NODE,
            &ports,
            FlowState::Other { replied: true },
            1000
        )
        .is_ok());
    }
}
