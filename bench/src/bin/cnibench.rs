//! `cnibench`: pods plugged in and out through `vrouter-cni`, beside the reference pair
//! Debian's containernetworking-plugins ship (`bridge` + `host-local`, which keep no
//! cluster state), in the same invocation and the same way.
//!
//! One vrouterd node in a namespace on a 3-member etcd (Calico's IPv4 pool in it: the
//! addresses come from the shared IPAM, one transaction each), then for N pods:
//!   1. sequentially: ADD (namespace made beforehand, not timed), then DEL, each call
//!      timed as a runtime sees it (`ip netns exec <node> <plugin>` with the CNI
//!      environment and the configuration on stdin);
//!   2. 8 at a time: the same N ADDs, then the N DELs; `pods_per_s` is N over the two
//!      phases' wall time;
//!   3. the same two phases with `bridge` + `host-local`.
//!
//! Every ADD must print a result with an address, every DEL succeed, or the run fails.
//!
//! `cargo build --release -p vrouter -p control -p cni -p bench && sudo
//! target/release/cnibench --pods 200 [--json]` (as root; needs etcd and
//! containernetworking-plugins).

use bench::cluster::Cluster;
use bench::netns::{self, Netns};
use clap::Parser;
use datastore::keys;
use datastore::store::{EtcdSettings, Store};
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "vrouter-cni ADD / DEL latency and throughput beside bridge + host-local")]
struct Opts {
    /// Pods plugged in and out in each phase.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// Invocations at once in the parallel phase.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    #[arg(long)]
    json: bool,
    /// Directory with vrouterd and vrouter-cni (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The reference plugins' directory.
    #[arg(long, default_value = "/usr/lib/cni")]
    ref_dir: PathBuf,
    /// Keep vrouterd's and etcd's logs in this directory.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    pods: usize,
    parallel: usize,
    ipam: &'static str,
    add_p50_ms: f64,
    add_p99_ms: f64,
    del_p50_ms: f64,
    del_p99_ms: f64,
    add_p99_ms_parallel: f64,
    pods_per_s: f64,
    ref_add_p50_ms: f64,
    ref_add_p99_ms: f64,
    ref_del_p50_ms: f64,
    ref_pods_per_s: f64,
    ratio_vs_ref: f64,
    limits: Vec<String>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn say(msg: &str) {
    eprintln!("cnibench: {msg}");
}

/// One plugin under test: its binary, its configuration, the node namespace it runs in.
struct Plugin {
    binary: PathBuf,
    conf: String,
    node_ns: String,
    cni_path: String,
    pod_prefix: String,
}

impl Plugin {
    /// Run one command for pod `i`; the time it took.
    fn call(&self, command: &str, i: usize) -> io::Result<Duration> {
        let pod = format!("{}{i}", self.pod_prefix);
        let start = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node_ns])
            .arg(&self.binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("ctr-{pod}"))
            .env("CNI_NETNS", format!("/run/netns/{pod}"))
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod}"),
            )
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(self.conf.as_bytes())?;
        let out = child.wait_with_output()?;
        let took = start.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(other(format!(
                "{} {command} {pod}: {text} {}",
                self.binary.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        if command == "ADD" {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| other(format!("{command} {pod}: not JSON ({e}): {text}")))?;
            if v["ips"][0]["address"].as_str().is_none() {
                return Err(other(format!("{command} {pod}: no address in {text}")));
            }
        }
        Ok(took)
    }
}

/// The pods' namespaces, made before and removed after the timed calls.
fn make_pods(prefix: &str, n: usize) -> io::Result<Vec<Netns>> {
    (0..n)
        .map(|i| Netns::add(&format!("{prefix}{i}")))
        .collect()
}

struct Phase {
    add: Vec<u64>,
    del: Vec<u64>,
    wall: Duration,
}

/// ADD every pod, then DEL every pod, `parallel` calls at once.
fn phase(p: &Plugin, n: usize, parallel: usize) -> io::Result<Phase> {
    let mut phase = Phase {
        add: Vec::new(),
        del: Vec::new(),
        wall: Duration::ZERO,
    };
    for command in ["ADD", "DEL"] {
        let next = AtomicUsize::new(0);
        let times = Mutex::new(Vec::with_capacity(n));
        let failed: Mutex<Option<io::Error>> = Mutex::new(None);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..parallel {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || failed.lock().unwrap().is_some() {
                        return;
                    }
                    match p.call(command, i) {
                        Ok(t) => times.lock().unwrap().push(t.as_micros() as u64),
                        Err(e) => *failed.lock().unwrap() = Some(e),
                    }
                });
            }
        });
        phase.wall += start.elapsed();
        if let Some(e) = failed.into_inner().unwrap() {
            return Err(e);
        }
        let mut t = times.into_inner().unwrap();
        t.sort_unstable();
        if command == "ADD" {
            phase.add = t;
        } else {
            phase.del = t;
        }
    }
    Ok(phase)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Sequential then parallel phases of one plugin; (sequential, parallel).
fn measure(p: &Plugin, o: &Opts, name: &str) -> io::Result<(Phase, Phase)> {
    let pods = make_pods(&p.pod_prefix, o.pods)?;
    let seq = phase(p, o.pods, 1)?;
    say(&format!(
        "{name}: sequential ADD p50 {:.1} ms, DEL p50 {:.1} ms",
        ms(bench::percentile(&seq.add, 50.0)),
        ms(bench::percentile(&seq.del, 50.0))
    ));
    let par = phase(p, o.pods, o.parallel)?;
    say(&format!(
        "{name}: {} at once: {:.0} pods/s",
        o.parallel,
        o.pods as f64 / par.wall.as_secs_f64()
    ));
    drop(pods);
    Ok((seq, par))
}

fn run(o: &Opts) -> io::Result<Report> {
    if !netns::is_root() {
        return Err(other("cnibench needs root (namespaces, veths, AF_XDP)"));
    }
    let dir = match &o.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| other("no directory for this binary"))?
            .to_path_buf(),
    };
    let (vrouterd, cni) = (dir.join("vrouterd"), dir.join("vrouter-cni"));
    for b in [
        &vrouterd,
        &cni,
        &o.ref_dir.join("bridge"),
        &o.ref_dir.join("host-local"),
    ] {
        if !b.is_file() {
            return Err(other(format!(
                "{} is missing (build it, or run scripts/setup.sh for the reference plugins)",
                b.display()
            )));
        }
    }
    let mut c = Cluster::start(&vrouterd, 3)?;
    c.keep_logs = o.keep_logs.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = rt
        .block_on(Store::connect(&EtcdSettings::new(c.etcd().endpoints())))
        .map_err(other)?;
    let key = keys::resource(&store.prefix, "ippools", "default-ipv4-ippool");
    if !rt
        .block_on(store.create(&key, bench::cluster::CALICO_POOL.as_bytes().to_vec()))
        .map_err(other)?
    {
        return Err(other(format!("{key} already in etcd")));
    }
    c.add_node(1, o.pods + 2)?;
    c.spawn_node(1)?;
    c.wait_started(&[1], Duration::from_secs(30))?;
    let node_ns = c.node(1).ns.name().to_string();
    let socket = c.node(1).socket.clone();
    let ours = Plugin {
        binary: cni,
        conf: format!(
            r#"{{"cniVersion":"1.0.0","name":"vrouter","type":"vrouter-cni","vrouter_socket":"{}","ipam":{{"type":"vrouter-ipam"}}}}"#,
            socket.display()
        ),
        node_ns: node_ns.clone(),
        cni_path: o.ref_dir.display().to_string(),
        pod_prefix: format!("{}pa", c.prefix),
    };
    let state = c.dir.join("host-local");
    let reference = Plugin {
        binary: o.ref_dir.join("bridge"),
        conf: format!(
            r#"{{"cniVersion":"1.0.0","name":"refnet","type":"bridge","bridge":"cnibr0","isGateway":true,"ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.98.0.0/16"}}]],"dataDir":"{}"}}}}"#,
            state.display()
        ),
        node_ns,
        cni_path: o.ref_dir.display().to_string(),
        pod_prefix: format!("{}pr", c.prefix),
    };
    let (seq, par) = measure(&ours, o, "vrouter-cni (etcd IPAM)")?;
    let (rseq, rpar) = measure(&reference, o, "bridge + host-local")?;
    drop(c);
    let pods_per_s = o.pods as f64 / par.wall.as_secs_f64();
    let ref_pods_per_s = o.pods as f64 / rpar.wall.as_secs_f64();
    let p = |v: &[u64], q: f64| ms(bench::percentile(v, q));
    let mut limits = Vec::new();
    let add_p99_ms = p(&seq.add, 99.0);
    if add_p99_ms > 100.0 {
        limits.push(format!("add_p99_ms {add_p99_ms:.1} > 100"));
    }
    let ratio = pods_per_s / ref_pods_per_s;
    if ratio < 0.7 {
        limits.push(format!(
            "pods_per_s {pods_per_s:.0} < 0.7 x the reference's {ref_pods_per_s:.0}"
        ));
    }
    Ok(Report {
        pods: o.pods,
        parallel: o.parallel,
        ipam: "etcd (calico-ipam blocks)",
        add_p50_ms: p(&seq.add, 50.0),
        add_p99_ms,
        del_p50_ms: p(&seq.del, 50.0),
        del_p99_ms: p(&seq.del, 99.0),
        add_p99_ms_parallel: p(&par.add, 99.0),
        pods_per_s,
        ref_add_p50_ms: p(&rseq.add, 50.0),
        ref_add_p99_ms: p(&rseq.add, 99.0),
        ref_del_p50_ms: p(&rseq.del, 50.0),
        ref_pods_per_s,
        ratio_vs_ref: ratio,
        limits,
    })
}

fn table(r: &Report) {
    println!(
        "cnibench: {} pods, sequential then {} at once; IPAM: {}\n",
        r.pods, r.parallel, r.ipam
    );
    println!("| figure | vrouter-cni | bridge + host-local | target |");
    println!("|---|---|---|---|");
    println!(
        "| ADD p50 / p99 (sequential) | {:.1} / {:.1} ms | {:.1} / {:.1} ms | p99 <= 100 ms |",
        r.add_p50_ms, r.add_p99_ms, r.ref_add_p50_ms, r.ref_add_p99_ms
    );
    println!(
        "| DEL p50 (sequential) | {:.1} ms | {:.1} ms | — |",
        r.del_p50_ms, r.ref_del_p50_ms
    );
    println!(
        "| pods/s ({} at once, ADD + DEL) | {:.0} | {:.0} | >= 0.7x ({:.2}x) |",
        r.parallel, r.pods_per_s, r.ref_pods_per_s, r.ratio_vs_ref
    );
    for l in &r.limits {
        println!("limit: {l}");
    }
}

fn main() {
    let o = Opts::parse();
    match run(&o) {
        Ok(r) if o.json => println!("{}", serde_json::to_string_pretty(&r).unwrap()),
        Ok(r) => table(&r),
        Err(e) => {
            eprintln!("cnibench: FAIL: {e}");
            std::process::exit(1);
        }
    }
}
