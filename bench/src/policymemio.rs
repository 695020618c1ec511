//! `fwdbench --memio --scenario policy`'s figures (issue 18): one pipeline on in-memory
//! frames, pod S sending 64-byte UDP to pod D on the same node over `flows` flows, with
//! N rules on D's ingress (none matching the traffic but the last, an Allow), against
//! the same traffic with no policy, in the same run:
//!
//! ```text
//!  no policy    S → D: lookup, rewrite (the baseline; the policy stage is skipped)
//!  established  N rules; every flow admitted first, then packets of random flows
//!               (the conntrack entry answers; the classifier is not asked)
//!  new          N rules; a fresh flow table, every packet a new flow (the classifier
//!               and an insertion per packet)
//!  compile      PolicySet::build of the N rules for D (what a policy change costs
//!               before the workers swap the set in)
//! ```
//! The rules are what a large Calico policy holds: Deny UDP / TCP from a /24 to a port
//! or a 101-port range, all different, and none matching S's traffic.

use crate::natmemio::{capacity, pod_udp64};
use crate::Tsc;
use datastore::policy::{parse_policies, Decision, Packet, Policy};
use fib::synth::{self, Rng};
use fib::{Fib4, Fib6, NextHopId};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use vrouter::burst::{Action, BURST};
use vrouter::counters::Counters;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port};
use vrouter::policy::set::PolicySet;
use vrouter::test_support::pipeline::{pod_port, policy_set, uplink_port, LocalPod};

const SRC: [u8; 4] = [10, 244, 0, 1];
const DST: [u8; 4] = [10, 244, 0, 2];
const SRC_PORT: PortId = PortId(1);
const DST_PORT: PortId = PortId(2);
const DST_NH: u32 = 1;
/// Frames per refill of the ring (refilled outside the timed region).
const RING: usize = 4096;
/// Flows made in the new-flow pass.
pub const NEW_FLOWS: usize = 50_000;

#[derive(Debug, Clone, Copy)]
pub struct PolicyMemio {
    pub rules: usize,
    pub flows: usize,
    pub no_policy_cycles_per_pkt: f64,
    pub established_cycles_per_pkt: f64,
    pub new_cycles_per_pkt: f64,
    /// Building the set (compiling the rules), milliseconds.
    pub compile_ms: f64,
    /// The sink's ingress classifier alone, per packet (of the flows' first packets).
    pub classify_cycles_per_pkt: f64,
    /// Of the policy runs' packets, the share forwarded to D (must be 1).
    pub forwarded_ratio: f64,
}

/// The YAML of a policy with `n` rules on D's ingress: n - 1 Deny rules that never
/// match S's traffic, then Allow.
pub fn policy_yaml(n: usize) -> String {
    let mut y = String::from(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: many}\nspec:\n  selector: app == 'sink'\n  types: [Ingress]\n  ingress:\n",
    );
    for i in 0..n.saturating_sub(1) {
        let proto = if i % 2 == 0 { "UDP" } else { "TCP" };
        let net = format!("172.{}.{}.0/24", 16 + (i >> 8) % 16, i & 255);
        let p = 1000 + (i % 50_000);
        let port = if i % 5 == 0 {
            format!("\"{p}:{}\"", p + 100)
        } else {
            p.to_string()
        };
        y.push_str(&format!(
            "  - action: Deny\n    protocol: {proto}\n    source: {{nets: [{net}]}}\n    destination: {{ports: [{port}]}}\n"
        ));
    }
    y.push_str("  - action: Allow\n");
    y
}

struct Setup {
    fib4: Fib4,
    fib6: Fib6,
    nexthops: Arc<NextHopTable>,
    ports: Arc<[Port]>,
    /// Per flow: source port, destination port.
    flows: Vec<(u16, u16)>,
}

fn setup(routes: usize, flows: usize) -> Setup {
    let nexthops = Arc::new(NextHopTable::new(4));
    nexthops.set(
        0,
        Adjacency::Forward {
            port: PortId(0),
            mac: [0x52, 0x54, 0, 0, 0, 0xfe],
        },
    );
    nexthops.set(
        DST_NH,
        Adjacency::Forward {
            port: DST_PORT,
            mac: [0x02, 0, 0, 0, 0, 0x0d],
        },
    );
    let table = synth::dpdk_v4(routes, synth::DEFAULT_SEED);
    let mut fib4 = Fib4::from_routes(table.into_iter().map(|n| (n, NextHopId(0))));
    fib4.insert(
        ipnet::Ipv4Net::new(DST.into(), 32).expect("a /32"),
        NextHopId(DST_NH),
    );
    let ports: Arc<[Port]> = vec![
        uplink_port([0x02, 0, 0, 0, 0, 1]),
        pod_port(&[SRC], &[]),
        pod_port(&[DST], &[]),
    ]
    .into();
    let flows = (0..flows.max(NEW_FLOWS))
        .map(|k| (1024 + (k % 60_000) as u16, 53 + (k / 60_000) as u16))
        .collect();
    Setup {
        fib4,
        fib6: Fib6::new(),
        nexthops,
        ports,
        flows,
    }
}

fn pipeline(s: &Setup, max_flows: usize, counters: &Arc<Counters>) -> Pipeline {
    Pipeline::new(
        s.fib4.reader(),
        s.fib6.reader(),
        s.nexthops.clone(),
        s.ports.clone(),
        counters.clone(),
        0,
    )
    .with_conntrack(max_flows, 40_000..=65_535, 1)
}

/// The policy set: D (app=sink) with `policies`; S (app=source) with none.
fn build(policies: &[Policy]) -> PolicySet {
    policy_set(
        "bench",
        policies,
        &[
            LocalPod::new("bench/source", "source", SRC_PORT, 0, 0),
            LocalPod::new("bench/sink", "sink", DST_PORT, DST_NH, 0),
        ],
        &[(IpAddr::from(SRC), "source"), (IpAddr::from(DST), "sink")],
    )
}

/// S's 64-byte UDP frame of flow `(sport, dport)`.
fn frame(into: &mut [u8], (sport, dport): (u16, u16)) {
    pod_udp64(into, SRC, DST, sport, dport);
}

/// Cycles per packet of `packets` frames of flows `order` picks through `p`.
fn timed(
    s: &Setup,
    p: &mut Pipeline,
    packets: usize,
    tsc: &Tsc,
    order: &mut dyn FnMut() -> usize,
) -> f64 {
    let mut ring: Vec<Vec<u8>> = vec![vec![0u8; 2048]; RING.min(packets.max(BURST))];
    let lens = [64usize; BURST];
    let mut actions = [Action::Kernel; BURST];
    let (mut cycles, mut done) = (0u64, 0usize);
    while done < packets {
        for f in ring.iter_mut() {
            frame(f, s.flows[order()]);
        }
        for chunk in ring.chunks_mut(BURST) {
            let n = chunk.len().min(packets - done);
            if n == 0 {
                break;
            }
            let c0 = tsc.now();
            {
                let mut refs: Vec<&mut [u8]> = chunk.iter_mut().map(|f| &mut f[..]).collect();
                p.process(SRC_PORT, &mut refs[..n], &lens[..n], &mut actions[..n]);
            }
            cycles += tsc.now() - c0;
            done += n;
        }
    }
    cycles as f64 / done as f64
}

pub fn run(routes: usize, rules: usize, flows: usize, packets: usize, tsc: &Tsc) -> PolicyMemio {
    let s = setup(routes, flows);
    let policies = parse_policies("bench", &policy_yaml(rules)).expect("the bench's policy");
    let t0 = Instant::now();
    let set = Arc::new(build(&policies));
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert!(set.active(), "the sink's policy applies");

    // The classifier alone, on the flows' packets.
    let sink = set
        .port(DST_PORT.0 as usize)
        .expect("the sink")
        .policies
        .clone();
    let pkts: Vec<Packet> = s
        .flows
        .iter()
        .map(|&(sport, dport)| Packet {
            src: IpAddr::from(SRC),
            dst: IpAddr::from(DST),
            proto: 17,
            sport,
            dport,
            icmp: None,
        })
        .collect();
    let c0 = tsc.now();
    let mut allowed = 0usize;
    for p in &pkts {
        allowed +=
            usize::from(sink.ingress.classify(std::hint::black_box(p)).decision == Decision::Allow);
    }
    let classify_cycles = (tsc.now() - c0) as f64 / pkts.len() as f64;
    assert_eq!(allowed, pkts.len(), "the last rule allows every flow");

    let mut rng = Rng::new(synth::DEFAULT_SEED + 29);
    let n = flows as u64;
    let mut random = || rng.below(n) as usize;

    // No policy: the same traffic, the stage skipped.
    let counters = Arc::new(Counters::new(1));
    let mut plain = pipeline(&s, capacity(flows), &counters);
    timed(&s, &mut plain, packets / 4, tsc, &mut random);
    let no_policy = timed(&s, &mut plain, packets, tsc, &mut random);

    // Established: every flow admitted in a first pass, then at random.
    let counters = Arc::new(Counters::new(1));
    let mut p = pipeline(&s, capacity(flows), &counters);
    p.set_policy(set.clone());
    let mut k = 0usize;
    let mut in_order = || {
        k += 1;
        (k - 1) % flows
    };
    timed(&s, &mut p, flows, tsc, &mut in_order);
    let before = counters.total();
    let established = timed(&s, &mut p, packets, tsc, &mut random);
    let after = counters.total();
    let forwarded = (after.tx - before.tx) as f64 / (after.rx - before.rx).max(1) as f64;

    // New: a fresh table; each packet a flow not seen before.
    let counters = Arc::new(Counters::new(1));
    let mut fresh = pipeline(&s, capacity(NEW_FLOWS), &counters);
    fresh.set_policy(set.clone());
    let mut k = 0usize;
    let all = s.flows.len();
    let mut each_new = || {
        k += 1;
        (k - 1) % all
    };
    let new = timed(&s, &mut fresh, NEW_FLOWS, tsc, &mut each_new);
    let made = fresh.nat_mut().figures().map_or(0, |f| f[2]);
    assert!(
        made as usize >= NEW_FLOWS,
        "policy memio: {made} of {NEW_FLOWS} new flows admitted"
    );
    PolicyMemio {
        rules,
        flows,
        no_policy_cycles_per_pkt: no_policy,
        established_cycles_per_pkt: established,
        new_cycles_per_pkt: new,
        compile_ms,
        classify_cycles_per_pkt: classify_cycles,
        forwarded_ratio: forwarded,
    }
}
