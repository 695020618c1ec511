//! fwdbench: forwarding figures for vrouterd.
//!
//! Today only `--memio` runs: the pipeline's own cost per packet on in-memory frames with
//! the full IPv4 table (1.08M routes), which is what decides throughput on zero-copy
//! NICs. The namespace scenarios (vrouterd vs a bare AF_XDP forwarder vs the kernel)
//! need the AF_XDP backend and fail loudly until it lands.

use bench::Tsc;
use clap::Parser;
use fib::synth::{self, Rng};
use fib::{Fib4, Fib6, NextHopId};
use serde::Serialize;
use std::sync::Arc;
use vrouter::counters::Counters;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Action, Pipeline, Port, PortKind, BURST};

#[derive(Parser, Debug)]
#[command(about = "Forwarding benchmarks for vrouterd")]
struct Opts {
    /// Scenario: l3 (plain routing); vxlan and ipip come with the overlay.
    #[arg(long, default_value = "l3")]
    scenario: String,
    /// Measure only the pipeline on in-memory frames (cycles per packet).
    #[arg(long)]
    memio: bool,
    /// Routes in the FIB for --memio (default: DPDK's 1,076,806).
    #[arg(long, default_value_t = synth::DPDK_V4_TOTAL)]
    routes: usize,
    /// Packets measured.
    #[arg(long, default_value_t = 20_000_000)]
    packets: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    scenario: String,
    vrouter_mpps: Option<f64>,
    bare_afxdp_mpps: Option<f64>,
    kernel_mpps: Option<f64>,
    ratio_vs_bare: Option<f64>,
    ratio_vs_kernel: Option<f64>,
    memio_cycles_per_pkt: Option<f64>,
    memio_routes: usize,
    memio_packets: usize,
    memio_forwarded_ratio: f64,
}

fn main() {
    let opts = Opts::parse();
    if opts.scenario != "l3" {
        eprintln!(
            "fwdbench: scenario {:?} needs the overlay (issue 4); only l3 exists",
            opts.scenario
        );
        std::process::exit(2);
    }
    if !opts.memio {
        eprintln!("fwdbench: the namespace run (vrouterd vs bare AF_XDP vs kernel) needs the AF_XDP backend, not built yet; use --memio");
        std::process::exit(2);
    }
    let tsc = Tsc::calibrate();
    let (cycles, forwarded) = memio(&opts, &tsc);
    let r = Report {
        scenario: opts.scenario.clone(),
        vrouter_mpps: None,
        bare_afxdp_mpps: None,
        kernel_mpps: None,
        ratio_vs_bare: None,
        ratio_vs_kernel: None,
        memio_cycles_per_pkt: Some(cycles),
        memio_routes: opts.routes,
        memio_packets: opts.packets,
        memio_forwarded_ratio: forwarded,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
    } else {
        println!(
            "fwdbench {} --memio: {} routes, {} packets of 64 B from the uplink",
            r.scenario, r.memio_routes, r.memio_packets
        );
        println!(
            "pipeline cost: {cycles:.1} cycles/packet ({:.1}% forwarded, rest to the kernel)",
            forwarded * 100.0
        );
    }
}

/// Cycles per packet of `Pipeline::process` on 64-byte UDP frames from the uplink with
/// uniformly random destinations, bursts of 64. Frames are rewritten from a template
/// between bursts (outside the timed region), as live frames are.
fn memio(opts: &Opts, tsc: &Tsc) -> (f64, f64) {
    const PORTS: u16 = 8;
    let nexthops = Arc::new(NextHopTable::new(64));
    for i in 0..64u32 {
        let port = PortId(1 + (i % (PORTS as u32 - 1)) as u16);
        nexthops.set(
            i,
            Adjacency::Forward {
                port,
                mac: [0x02, 0, 0, 0, 0, i as u8],
            },
        );
    }
    let mut rng = Rng::new(synth::DEFAULT_SEED);
    let fib4 = Fib4::from_routes(
        synth::dpdk_v4(opts.routes, synth::DEFAULT_SEED)
            .into_iter()
            .map(|n| (n, NextHopId(rng.below(64) as u32))),
    );
    let fib6 = Fib6::new();
    let mut ports = vec![Port {
        mac: [0x52, 0x54, 0, 0, 0, 1],
        mtu: 1500,
        kind: PortKind::Uplink,
    }];
    for p in 1..PORTS {
        ports.push(Port {
            mac: [0xee; 6],
            mtu: 1500,
            kind: PortKind::Endpoint {
                v4: vec![0x0af4_0000 + p as u32],
                v6: vec![],
            },
        });
    }
    let counters = Arc::new(Counters::new(1));
    let mut pipeline = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops,
        ports.into(),
        counters.clone(),
        0,
    );

    // A 64-byte frame: Ethernet + IPv4 (TTL 64) + UDP + payload.
    let mut template = vec![0u8; 64];
    template[12..14].copy_from_slice(&[0x08, 0x00]);
    template[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 9, 0, 0, 0, 0,
    ]);
    let ring = 4096;
    let mut dsts: Vec<[u8; 4]> = (0..ring).map(|_| rng.next_u32().to_be_bytes()).collect();
    let mut frames: Vec<Vec<u8>> = vec![vec![0u8; 2048]; ring];
    let reset = |frames: &mut [Vec<u8>], dsts: &[[u8; 4]]| {
        for (f, d) in frames.iter_mut().zip(dsts) {
            f[..64].copy_from_slice(&template);
            f[30..34].copy_from_slice(d);
            let c = encap::rewrite::ipv4_checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
    };
    let lens = [64usize; BURST];
    let mut actions = [Action::Kernel; BURST];
    let (mut cycles, mut done) = (0u64, 0usize);
    while done < opts.packets {
        reset(&mut frames, &dsts);
        for chunk in frames.chunks_mut(BURST) {
            let mut refs: Vec<&mut [u8]> = chunk.iter_mut().map(|f| &mut f[..]).collect();
            let n = refs.len();
            let c0 = tsc.now();
            pipeline.process(PortId(0), &mut refs, &lens[..n], &mut actions[..n]);
            cycles += tsc.now() - c0;
            done += n;
        }
        dsts.iter_mut()
            .for_each(|d| *d = rng.next_u32().to_be_bytes());
    }
    let t = counters.total();
    (
        cycles as f64 / done as f64,
        t.tx as f64 / t.rx.max(1) as f64,
    )
}
