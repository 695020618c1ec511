//! Measures the XDP loader (`vrouter::xdp`): the cost of attaching to one interface
//! (preload, attach through a BPF link, detach) and the rate of prefix updates (10,000 adds and removes).
//!
//! Ignored: run it as root, `cargo test -p vrouter --test xdp_loader_bench -- --ignored
//! --nocapture`. `VROUTER_BENCH_LABEL` names the loader in the output, so two builds (the
//! old loader and the new) run back to back print comparable lines; see docs/decisions.md,
//! "XDP loader on libbpf-rs, measured". Fails, never skips, without root or `ip`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use vrouter::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};

const CYCLES: usize = 50;
const ROUNDS: u32 = 5;
const PER_FAMILY: u32 = 1_000;

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e} (needs root and iproute2)"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair whose peer lives in a namespace of its own; deleted on drop.
struct Veth {
    ns: String,
    host: String,
}

impl Veth {
    fn new() -> Veth {
        let pid = std::process::id();
        let v = Veth {
            ns: format!("vr-xdpbench-{pid}"),
            host: format!("vxb{pid}h"),
        };
        let peer = format!("vxb{pid}p");
        ip(&["netns", "add", &v.ns]);
        ip(&[
            "link", "add", &v.host, "type", "veth", "peer", "name", &peer, "netns", &v.ns,
        ]);
        ip(&["link", "set", &v.host, "up"]);
        ip(&["-n", &v.ns, "link", "set", &peer, "up"]);
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// "median / mean / max" in microseconds.
fn summary(samples: &mut [Duration]) -> String {
    assert!(!samples.is_empty(), "no samples measured");
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    format!(
        "median {:.0} us, mean {mean:.0} us, max {:.0} us",
        us(samples[samples.len() / 2]),
        us(samples[samples.len() - 1])
    )
}

fn attach_cycles(label: &str, veth: &Veth, mode: AttachMode) {
    let (mut preload, mut attach, mut detach) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CYCLES {
        let t0 = Instant::now();
        let pre = XdpProgram::preload(XdpRole::Endpoint).expect("preload");
        let t1 = Instant::now();
        let prog = XdpProgram::attach_preloaded(&veth.host, pre, mode)
            .unwrap_or_else(|(e, _)| panic!("attach {mode:?}: {e}"));
        let t2 = Instant::now();
        drop(prog);
        let t3 = Instant::now();
        preload.push(t1 - t0);
        attach.push(t2 - t1);
        detach.push(t3 - t2);
    }
    let mut total: Vec<Duration> = (0..CYCLES).map(|i| preload[i] + attach[i]).collect();
    println!(
        "BENCH {label} {mode:?} x{CYCLES}: preload+attach {}",
        summary(&mut total)
    );
    println!("BENCH {label} {mode:?}   preload {}", summary(&mut preload));
    println!("BENCH {label} {mode:?}   attach  {}", summary(&mut attach));
    println!("BENCH {label} {mode:?}   detach  {}", summary(&mut detach));
}

/// 10,000 adds and removes: five rounds of 1,000 IPv4 and 1,000 IPv6 host prefixes (the
/// tries hold 4,096 entries each), listed back after each round's adds.
fn prefix_rate(label: &str, veth: &Veth) {
    let prog = XdpProgram::attach(&veth.host, XdpRole::Uplink, AttachMode::Generic)
        .expect("attach for the prefix updates");
    let (mut added, mut listing, mut removed) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let base = round * PER_FAMILY;
        let v4 = (base..base + PER_FAMILY).map(|i| IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)));
        let v6 = (base..base + PER_FAMILY)
            .map(|i| IpAddr::from(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i))));
        let nets: Vec<IpNet> = v4.chain(v6).map(IpNet::from).collect();
        let t0 = Instant::now();
        for n in &nets {
            prog.add_prefix(*n, PrefixClass::Ours).expect("add_prefix");
        }
        let t1 = Instant::now();
        let listed = prog.prefixes().expect("listing the prefixes");
        let t2 = Instant::now();
        assert_eq!(listed.len(), nets.len(), "prefixes listed back");
        for n in &nets {
            prog.remove_prefix(*n).expect("remove_prefix");
        }
        added += t1 - t0;
        listing += t2 - t1;
        removed += t2.elapsed();
    }
    let updates = ROUNDS * PER_FAMILY * 2;
    let rate = |d: Duration| f64::from(updates) / d.as_secs_f64();
    println!(
        "BENCH {label} prefixes x{updates}: add {:.0}/s, remove {:.0}/s, list {:.2} ms per {}",
        rate(added),
        rate(removed),
        listing.as_secs_f64() * 1e3 / f64::from(ROUNDS),
        PER_FAMILY * 2
    );
}

#[test]
#[ignore = "measurement: run as root with --ignored --nocapture"]
fn xdp_loader_attach_and_prefix_rates() {
    let label = std::env::var("VROUTER_BENCH_LABEL").unwrap_or_else(|_| "this-build".into());
    let veth = Veth::new();
    for mode in [AttachMode::Generic, AttachMode::Native] {
        attach_cycles(&label, &veth, mode);
    }
    prefix_rate(&label, &veth);
}
