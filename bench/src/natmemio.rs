//! `fwdbench --memio`'s connection tracking and NAT figures (issue 17): one pipeline on
//! in-memory frames, a pod sending 64-byte UDP over `flows` flows to destinations
//! across the full IPv4 table, three ways over the same frames in the same run:
//!
//! ```text
//!  plain      the pod's pool without natOutgoing: lookup, rewrite (the baseline)
//!  conntrack  plain, then each packet tracked in a flow table of `flows` established
//!             flows (classify + FlowTable::track; the pipeline's conntrack-only stage
//!             comes with policy, so it is measured beside the pipeline)
//!  nat        natOutgoing: classify, flow lookup, source rewrite with checksums
//! ```
//! The first NAT pass over all flows makes them: `new_flows_per_s` is that pass (each
//! packet a new flow, the whole pipeline included). Flows are drawn at random per
//! frame, so the table is visited as traffic would (cache misses at 100K flows).

use crate::Tsc;
use fib::synth::{self, Rng};
use fib::{Fib4, Fib6, NextHopId};
use std::sync::Arc;
use vrouter::burst::{Action, BURST};
use vrouter::conntrack::classify::{classify, Seen};
use vrouter::conntrack::{FlowTable, Tracked};
use vrouter::counters::Counters;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port};
use vrouter::test_support::pipeline::{pod_port, uplink_port};
use vrouter::tunnel::{Overlay, TunnelTable};

const NODE: [u8; 4] = [10, 98, 0, 1];
const POD: [u8; 4] = [10, 244, 0, 1];
const POOL: (u32, u8) = (0x0af4_0000, 16);
const UPLINK: PortId = PortId(0);
const POD_PORT: PortId = PortId(1);
/// Frames per refill of the ring (refilled outside the timed region).
const RING: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct NatMemio {
    pub flows: usize,
    pub plain_cycles_per_pkt: f64,
    pub conntrack_cycles_per_pkt: f64,
    pub nat_cycles_per_pkt: f64,
    pub new_flows_per_s: f64,
    pub bytes_per_flow: usize,
    /// Of the NAT run's packets, the share translated (must be 1).
    pub translated_ratio: f64,
}

struct Setup {
    fib4: Fib4,
    fib6: Fib6,
    nexthops: Arc<NextHopTable>,
    ports: Arc<[Port]>,
    /// Per flow: destination, source port.
    flows: Vec<([u8; 4], u16)>,
}

fn setup(routes: usize, flows: usize) -> Setup {
    let nexthops = Arc::new(NextHopTable::new(4));
    nexthops.set(
        0,
        Adjacency::Forward {
            port: UPLINK,
            mac: [0x52, 0x54, 0, 0, 0, 0xfe],
        },
    );
    let table = synth::dpdk_v4(routes, synth::DEFAULT_SEED);
    let mut rng = Rng::new(synth::DEFAULT_SEED + 17);
    let flows = (0..flows)
        .map(|k| {
            // An address inside a random route (never the pool: those are not NATed).
            loop {
                let r = table[rng.below(table.len() as u64) as usize];
                let span = 1u64 << (32 - r.prefix_len());
                let a = u32::from(r.network()) + rng.below(span) as u32;
                if a >> 16 != POOL.0 >> 16 {
                    break (a.to_be_bytes(), 1024 + (k % 60_000) as u16);
                }
            }
        })
        .collect();
    let fib4 = Fib4::from_routes(table.into_iter().map(|n| (n, NextHopId(0))));
    let ports: Arc<[Port]> = vec![uplink_port([0x02, 0, 0, 0, 0, 1]), pod_port(&[POD], &[])].into();
    Setup {
        fib4,
        fib6: Fib6::new(),
        nexthops,
        ports,
        flows,
    }
}

fn pipeline(s: &Setup, nat: bool, max_flows: usize, counters: &Arc<Counters>) -> Pipeline {
    let overlay = Overlay {
        local_v4: vec![u32::from_be_bytes(NODE)],
        pools_v4: vec![POOL],
        nat_v4: if nat { vec![POOL] } else { vec![] },
        vni: 4096,
        ..Overlay::default()
    };
    Pipeline::new(
        s.fib4.reader(),
        s.fib6.reader(),
        s.nexthops.clone(),
        s.ports.clone(),
        counters.clone(),
        0,
    )
    .with_overlay(Arc::new(TunnelTable::new(1)), overlay)
    .with_conntrack(max_flows, 40_000..=65_535, 1)
}

/// The pod's 64-byte UDP frame of flow `(dst, sport)` to port 53.
fn frame(into: &mut [u8], (dst, sport): ([u8; 4], u16)) {
    pod_udp64(into, POD, dst, sport, 53);
}

/// A pod's 64-byte UDP frame `src:sport → dst:dport` into `into` (to the pod gateway's
/// MAC; UDP checksum 0: none, as IPv4 allows; the IP header's is right).
pub(crate) fn pod_udp64(into: &mut [u8], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) {
    into[..64].fill(0);
    into[..6].copy_from_slice(&vrouter::arp::HOST_SIDE_MAC);
    into[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0a]);
    into[12..14].copy_from_slice(&[0x08, 0x00]);
    into[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, src[0], src[1], src[2], src[3], dst[0],
        dst[1], dst[2], dst[3],
    ]);
    let c = encap::rewrite::ipv4_checksum(&into[14..34]);
    into[24..26].copy_from_slice(&c.to_be_bytes());
    into[34..36].copy_from_slice(&sport.to_be_bytes());
    into[36..38].copy_from_slice(&dport.to_be_bytes());
    into[38..40].copy_from_slice(&30u16.to_be_bytes());
}

/// Cycles per packet of `packets` frames of random flows through `p`, with `extra` run
/// on each burst after the pipeline (timed too).
fn timed(
    s: &Setup,
    p: &mut Pipeline,
    packets: usize,
    tsc: &Tsc,
    order: &mut dyn FnMut() -> usize,
    extra: &mut dyn FnMut(&[Vec<u8>]),
) -> f64 {
    let mut ring: Vec<Vec<u8>> = vec![vec![0u8; 2048]; RING];
    let lens = [64usize; BURST];
    let mut actions = [Action::Kernel; BURST];
    let (mut cycles, mut done) = (0u64, 0usize);
    while done < packets {
        for f in ring.iter_mut() {
            frame(f, s.flows[order()]);
        }
        for chunk in ring.chunks_mut(BURST) {
            let n = chunk.len();
            let c0 = tsc.now();
            {
                let mut refs: Vec<&mut [u8]> = chunk.iter_mut().map(|f| &mut f[..]).collect();
                p.process(POD_PORT, &mut refs, &lens[..n], &mut actions[..n]);
            }
            extra(chunk);
            cycles += tsc.now() - c0;
            done += n;
        }
    }
    cycles as f64 / done as f64
}

/// Room for `flows` at least, a power of two (the index is 4 slots per flow, so it then
/// has no slack beyond the table's own).
pub(crate) fn capacity(flows: usize) -> usize {
    (flows + flows / 2).next_power_of_two()
}

pub fn run(routes: usize, flows: usize, packets: usize, tsc: &Tsc) -> NatMemio {
    let s = setup(routes, flows);
    let mut rng = Rng::new(synth::DEFAULT_SEED + 23);
    let n = s.flows.len() as u64;
    let mut random = || rng.below(n) as usize;

    // Plain: the pod's pool does not ask for NAT.
    let counters = Arc::new(Counters::new(1));
    let mut plain = pipeline(&s, false, 1, &counters);
    timed(&s, &mut plain, packets / 4, tsc, &mut random, &mut |_| {});
    let plain_cycles = timed(&s, &mut plain, packets, tsc, &mut random, &mut |_| {});

    // Conntrack beside the same pipeline: every flow established first (out and back).
    let mut table = FlowTable::new(capacity(flows), 7);
    let mut buf = vec![0u8; 2048];
    for &f in &s.flows {
        frame(&mut buf, f);
        if let Seen::Flow { tuple, .. } = classify(&buf[14..64]) {
            table.track(&tuple, 0, 1);
            table.track(&tuple.reversed(), 0, 1);
        }
    }
    let mut misses = 0usize;
    let mut tuples = Vec::with_capacity(BURST);
    let mut track = |chunk: &[Vec<u8>]| {
        // As a burst stage does it: classify all, warm the table, then track each.
        tuples.clear();
        for f in chunk {
            // The pipeline rewrote TTL and MACs only: the tuple is the pod's.
            match classify(&f[14..64]) {
                Seen::Flow { tuple, .. } => tuples.push(tuple),
                _ => misses += 1,
            }
        }
        table.warm(&tuples);
        for t in &tuples {
            if !matches!(table.track(t, 0, 2), Tracked::Known(..)) {
                misses += 1;
            }
        }
    };
    let conntrack_cycles = timed(&s, &mut plain, packets, tsc, &mut random, &mut track);
    if misses > 0 {
        panic!("conntrack memio: {misses} packets found no established flow");
    }
    let bytes_per_flow = table.bytes_per_flow();
    drop(table);

    // NAT: the first pass over every flow makes it (timed as new flows), then the
    // established flows at random.
    let counters = Arc::new(Counters::new(1));
    let mut nat = pipeline(&s, true, capacity(flows), &counters);
    let mut k = 0usize;
    let mut in_order = || {
        k += 1;
        (k - 1) % s.flows.len()
    };
    let t0 = std::time::Instant::now();
    timed(&s, &mut nat, flows, tsc, &mut in_order, &mut |_| {});
    let elapsed = t0.elapsed().as_secs_f64();
    // (The last refill of the ring may revisit a few flows: count those made.)
    let made = nat.nat_mut().figures().map_or(0, |f| f[2]);
    let new_flows_per_s = made as f64 / elapsed;
    let before = counters.total();
    let nat_cycles = timed(&s, &mut nat, packets, tsc, &mut random, &mut |_| {});
    let after = counters.total();
    let translated = (after.nat_translated - before.nat_translated) as f64;
    let rx = (after.rx - before.rx).max(1) as f64;
    assert!(
        made as usize >= flows,
        "NAT memio: {made} of {flows} new flows translated"
    );
    NatMemio {
        flows,
        plain_cycles_per_pkt: plain_cycles,
        conntrack_cycles_per_pkt: conntrack_cycles,
        nat_cycles_per_pkt: nat_cycles,
        new_flows_per_s,
        bytes_per_flow,
        translated_ratio: translated / rx,
    }
}
