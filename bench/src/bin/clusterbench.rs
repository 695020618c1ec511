//! `clusterbench`: a vrouterd cluster on the shared datastore, measured.
//!
//! A 3-member etcd on the hub's bridge address, Calico's IPv4 pool (10.244.0.0/16,
//! vxlanMode Always) and BGPConfiguration written as Calico JSON, then N-1 vrouterd
//! nodes in namespaces on one bridge (adaptive polling, the default; no `[[nodes]]`):
//!   1. join: once the N-1 are meshed, node N starts; `join_to_mesh_s` runs from its
//!      vrouterd's start (and `join_from_registration_s` from its Node resource
//!      appearing in etcd) until every other node has its session with it Established
//!      and it holds BGP routes to every other node's block (with `--rr`: until it is
//!      Established with the BIRD 2 reflector and every other node holds a BGP route to
//!      its block). Sessions are read from the nodes' stats files (rewritten every
//!      50 ms, 5 ms per node above 10 nodes), routes through their gRPC API;
//!   2. allocation: M endpoint adds (taps) spread over 5 nodes, one API client per node,
//!      all at once: M / wall time and the p99 of the calls; every address distinct and
//!      `ipam check`'s problems none, or the run fails;
//!   3. one etcd member killed (SIGKILL): a smaller burst, failures counted, the member
//!      restarted;
//!   4. the mean RSS of the vrouterd processes after the allocations.
//!
//! `cargo build --release -p vrouter -p control -p bench && sudo target/release/clusterbench
//! --nodes 10 [--rr] [--json]` (as root; needs etcd, etcdctl and, with --rr, bird2).

use bench::cluster::{self, bgp_routes, client, write_calico, Client, Cluster, EtcdDisk, RR_ADDR};
use bench::netns;
use clap::Parser;
use control::api::pb;
use datastore::ipam::IpamSnapshot;
use datastore::keys;
use datastore::store::Store;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

#[derive(Parser)]
#[command(
    about = "A vrouterd cluster on etcd: join time, shared-IPAM allocation, etcd member loss, RSS"
)]
struct Opts {
    /// Nodes in all (the last one joins a meshed cluster of the others).
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Endpoint adds in the allocation burst.
    #[arg(long, default_value_t = 500)]
    endpoints: usize,
    /// No node-to-node mesh: every node peers with a BIRD 2 route reflector.
    #[arg(long)]
    rr: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// vrouterd binary (default: release/vrouterd in the target directory of this one).
    #[arg(long)]
    vrouterd: Option<PathBuf>,
    /// Nodes allocating at once, one API client each.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Endpoint adds while one etcd member is down.
    #[arg(long, default_value_t = 50)]
    loss_burst: usize,
    /// Endpoint slots of the nodes that allocate nothing (~5 MiB of frames each).
    #[arg(long, default_value_t = 2)]
    idle_slots: usize,
    /// Copy the nodes' (and BIRD's) logs and configurations here at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    nodes: usize,
    endpoints: usize,
    mode: &'static str,
    /// Seconds from node N's vrouterd start to the join condition (see the file's doc).
    join_to_mesh_s: f64,
    join_measured_from: &'static str,
    /// The same end, from node N's Node resource appearing in etcd.
    join_from_registration_s: f64,
    /// Other nodes' blocks the new node had to hold (mesh), or nodes that had to hold
    /// the new node's block (rr).
    join_routes_checked: usize,
    /// The N-1 first nodes: from the first start to all sessions Established.
    initial_mesh_s: f64,
    alloc_per_s: f64,
    alloc_p50_ms: f64,
    alloc_p99_ms: f64,
    /// The baseline: the shared IPAM alone (datastore::ipam on the same etcd, no vrouterd,
    /// no tap), as many clients at once.
    ipam_alloc_per_s: f64,
    ipam_alloc_p99_ms: f64,
    /// etcd's disk during the burst (all members): mean WAL fsync and backend commit,
    /// and WAL fsyncs per address handed out. Every write waits for a quorum's fsync.
    etcd_wal_fsync_mean_ms: f64,
    etcd_backend_commit_mean_ms: f64,
    etcd_wal_fsyncs_per_alloc: f64,
    alloc_clients: usize,
    alloc_errors: usize,
    alloc_duplicates: usize,
    /// Addresses the API returned that etcd's blocks do not hold.
    alloc_missing_from_ipam: usize,
    ipam_problems: usize,
    etcd_members: usize,
    etcd_member_loss_allocs: usize,
    /// Whether the member killed (m0) was the Raft leader at the time.
    etcd_killed_member_was_leader: bool,
    etcd_member_loss_alloc_errors: usize,
    etcd_member_loss_alloc_per_s: f64,
    rss_bytes_per_node: f64,
    rss_bytes_max: usize,
    rss_bytes_allocating_node: f64,
    /// None when every node allocates (no idle node to measure).
    rss_bytes_idle_node: Option<f64>,
    endpoint_slots_allocating: usize,
    endpoint_slots_idle: usize,
    /// Established sessions: node pairs (mesh) or nodes with the reflector (rr).
    mesh_sessions: usize,
    mesh_sessions_expected: usize,
    /// Share of all CPUs busy (from /proc/stat) while the new node joined / during the
    /// allocation burst: near 1 means the run was CPU-bound.
    cpu_busy_join: f64,
    cpu_busy_alloc: f64,
    cpus: usize,
    stats_interval_ms: u64,
    setup_s: f64,
    total_s: f64,
    /// What missed a target, and the evidence of why.
    limits: Vec<String>,
    /// Failures beside the figures (errors quoted).
    errors_seen: Vec<String>,
}

fn fail(msg: &str) -> ! {
    eprintln!("clusterbench: {msg}");
    std::process::exit(1);
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn say(msg: &str) {
    eprintln!("clusterbench: {msg}");
}

/// (busy, total) jiffies of all CPUs.
fn cpu_jiffies() -> io::Result<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let f: Vec<u64> = s
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| other("/proc/stat: no cpu line"))?
        .split_whitespace()
        .map(|x| x.parse().map_err(other))
        .collect::<io::Result<_>>()?;
    if f.len() < 5 {
        return Err(other("/proc/stat: short cpu line"));
    }
    let total: u64 = f.iter().take(8).sum();
    Ok((total - f[3] - f[4], total))
}

fn busy_since(start: (u64, u64)) -> io::Result<f64> {
    let now = cpu_jiffies()?;
    let total = now.1.saturating_sub(start.1);
    if total == 0 {
        return Err(other("/proc/stat did not advance"));
    }
    Ok(now.0.saturating_sub(start.0) as f64 / total as f64)
}

/// Until every node of `which` has its sessions up: with every other node of `which`
/// (mesh) or with the reflector (rr).
fn wait_sessions(c: &mut Cluster, which: &[usize], rr: bool, within: Duration) -> io::Result<()> {
    let end = Instant::now() + within;
    loop {
        let mut missing = Vec::new();
        for &i in which {
            let n = c.node(i);
            n.alive()?;
            let want: Vec<String> = if rr {
                vec![RR_ADDR.to_string()]
            } else {
                which
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| cluster::node_ip(j))
                    .collect()
            };
            let up = want.iter().filter(|a| n.established_with(a)).count();
            if up < want.len() {
                missing.push(format!("{}: {up}/{}", n.name(), want.len()));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(other(format!(
                "sessions not Established within {within:?} ({} node(s) short: {})",
                missing.len(),
                missing
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        netns::sleep_interruptible(Duration::from_millis(200))?;
    }
}

struct Join {
    from_start_s: f64,
    from_registration_s: f64,
    routes_checked: usize,
    cpu_busy: f64,
}

/// Start node `n` and wait for the join condition (see the file's doc).
fn join(c: &mut Cluster, rt: &Runtime, store: &Store, n: usize, rr: bool) -> io::Result<Join> {
    let me = cluster::node_name(n);
    let me_ip = cluster::node_ip(n);
    let others: Vec<usize> = (1..n).collect();
    // Mesh: the other nodes' blocks, as etcd's affinities say (every node holds at
    // least its VXLAN tunnel address's block).
    let snap = rt.block_on(IpamSnapshot::read(store)).map_err(other)?;
    let their_blocks: BTreeSet<String> = snap
        .affinities
        .iter()
        .filter(|(h, _, _)| *h != me)
        .map(|(_, b, _)| b.to_string())
        .collect();
    let hosts: BTreeSet<&String> = snap.affinities.iter().map(|(h, _, _)| h).collect();
    if !rr && hosts.len() < others.len() {
        return Err(other(format!(
            "only {} of {} nodes hold a block before the join",
            hosts.len(),
            others.len()
        )));
    }
    let node_key = keys::resource(&store.prefix, "nodes", &me);
    let aff_prefix = keys::affinities(&store.prefix, &me, false);
    let cpu0 = cpu_jiffies()?;
    let t0 = Instant::now();
    c.spawn_node(n)?;
    let mut registered: Option<Instant> = None;
    let mut sessions: BTreeSet<usize> = BTreeSet::new();
    let mut routed: BTreeSet<usize> = BTreeSet::new();
    let mut my_block: Option<String> = None;
    let mut clients: HashMap<usize, Client> = HashMap::new();
    let within = Duration::from_secs(60 + 2 * n as u64);
    let mut missing_blocks = their_blocks.len();
    loop {
        c.node(n).alive()?;
        if registered.is_none() && matches!(rt.block_on(store.get(&node_key)), Ok(Some(_))) {
            registered = Some(Instant::now());
        }
        let done = if !rr {
            for &i in &others {
                if !sessions.contains(&i) && c.node(i).established_with(&me_ip) {
                    sessions.insert(i);
                }
            }
            if c.node(n).socket.exists() {
                let sock = c.node(n).socket.clone();
                let got = rt.block_on(async {
                    if let std::collections::hash_map::Entry::Vacant(v) = clients.entry(n) {
                        v.insert(client(&sock).await?);
                    }
                    bgp_routes(clients.get_mut(&n).expect("inserted"), "").await
                });
                if let Ok(have) = got {
                    missing_blocks = their_blocks.difference(&have).count();
                }
            }
            sessions.len() == others.len() && missing_blocks == 0
        } else {
            if my_block.is_none() {
                if let Ok((list, _)) = rt.block_on(store.list(&aff_prefix)) {
                    my_block = list
                        .iter()
                        .find_map(|e| keys::cidr_of_key(&e.key))
                        .map(|b| b.to_string());
                }
            }
            if let Some(block) = &my_block {
                for &i in &others {
                    if routed.contains(&i) {
                        continue;
                    }
                    let sock = c.node(i).socket.clone();
                    let got = rt.block_on(async {
                        if let std::collections::hash_map::Entry::Vacant(v) = clients.entry(i) {
                            v.insert(client(&sock).await?);
                        }
                        bgp_routes(clients.get_mut(&i).expect("inserted"), block).await
                    })?;
                    if got.contains(block) {
                        routed.insert(i);
                    }
                }
            }
            c.node(n).established_with(RR_ADDR) && routed.len() == others.len()
        };
        if done {
            break;
        }
        if t0.elapsed() > within {
            return Err(other(if rr {
                format!(
                    "node {n} did not join within {within:?}: reflector session {}, its block {:?}, routed on {} of {} other nodes",
                    if c.node(n).established_with(RR_ADDR) { "Established" } else { "not Established" },
                    my_block,
                    routed.len(),
                    others.len()
                )
            } else {
                format!(
                    "node {n} did not join within {within:?}: {} of {} nodes Established with it, {missing_blocks} of {} blocks not routed on it",
                    sessions.len(),
                    others.len(),
                    their_blocks.len()
                )
            }));
        }
        netns::sleep_interruptible(Duration::from_millis(10))?;
    }
    let end = Instant::now();
    let registered = registered
        .ok_or_else(|| other(format!("{me}: no Node resource in etcd after the join")))?;
    Ok(Join {
        from_start_s: (end - t0).as_secs_f64(),
        from_registration_s: (end - registered).as_secs_f64(),
        routes_checked: if rr { routed.len() } else { their_blocks.len() },
        cpu_busy: busy_since(cpu0)?,
    })
}

struct Burst {
    wall_s: f64,
    /// Per call, successful or not (µs).
    latencies_us: Vec<u64>,
    addresses: Vec<String>,
    errors: Vec<String>,
    cpu_busy: f64,
}

/// Endpoints `first..first + count` added at once: endpoint k on the (k mod clients)-th
/// node of `sockets`, each node's adds one after another through its own client.
fn burst(rt: &Runtime, sockets: &[PathBuf], first: usize, count: usize) -> io::Result<Burst> {
    rt.block_on(async {
        let mut clients = Vec::new();
        for s in sockets {
            clients.push(client(s).await?);
        }
        let n = clients.len();
        let cpu0 = cpu_jiffies()?;
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (j, mut cl) in clients.into_iter().enumerate() {
            let ks: Vec<usize> = (first..first + count).filter(|k| k % n == j).collect();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for k in ks {
                    let t = Instant::now();
                    let r = cl
                        .add_endpoint(pb::Endpoint {
                            name: format!("cb-{k}"),
                            kind: "tap".into(),
                            interface: format!("t{k}"),
                            ..Default::default()
                        })
                        .await;
                    let r = match r {
                        Ok(e) if e.get_ref().addresses.is_empty() => {
                            Err(format!("cb-{k}: no address returned"))
                        }
                        Ok(e) => Ok(e.into_inner().addresses),
                        Err(s) => Err(format!("cb-{k}: {}", s.message())),
                    };
                    out.push((t.elapsed().as_micros() as u64, r));
                }
                out
            }));
        }
        let mut b = Burst {
            wall_s: 0.0,
            latencies_us: Vec::new(),
            addresses: Vec::new(),
            errors: Vec::new(),
            cpu_busy: 0.0,
        };
        for t in tasks {
            for (us, r) in t.await.map_err(other)? {
                b.latencies_us.push(us);
                match r {
                    Ok(a) => b.addresses.extend(a),
                    Err(e) => b.errors.push(e),
                }
            }
        }
        b.wall_s = t0.elapsed().as_secs_f64();
        b.cpu_busy = busy_since(cpu0)?;
        Ok(b)
    })
}

/// The baseline in the same invocation: the shared IPAM alone (no vrouterd, no tap),
/// `clients` simulated nodes allocating `count` addresses at once straight through
/// `datastore::ipam` on the same etcd, then releasing them and their blocks.
/// (addresses per second, p99 ms).
fn ipam_baseline(
    rt: &Runtime,
    store: &Store,
    clients: usize,
    count: usize,
) -> io::Result<(f64, f64)> {
    use datastore::ipam::{Ipam, IpamPool};
    rt.block_on(async {
        let pools = [IpamPool {
            cidr: "10.244.0.0/16".parse().expect("a CIDR"),
            block_size: 26,
        }];
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for j in 0..clients {
            let ipam = Ipam::new(store.clone(), &format!("cb-ipam-{j}"));
            let ks: Vec<usize> = (0..count).filter(|k| k % clients == j).collect();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for k in ks {
                    let t = Instant::now();
                    ipam.auto_assign(&format!("cb-ipam.{k}"), &Default::default(), &pools, false)
                        .await
                        .map_err(|e| other(format!("baseline allocation {k}: {e}")))?;
                    lat.push(t.elapsed().as_micros() as u64);
                }
                Ok::<_, io::Error>((ipam, lat))
            }));
        }
        let mut lat = Vec::new();
        let mut ipams = Vec::new();
        for t in tasks {
            let (ipam, l) = t.await.map_err(other)??;
            lat.extend(l);
            ipams.push(ipam);
        }
        let rate = count as f64 / t0.elapsed().as_secs_f64();
        // Leave nothing behind: the addresses, then the simulated nodes' empty blocks.
        for k in 0..count {
            ipams[k % clients]
                .release_handle(&format!("cb-ipam.{k}"))
                .await
                .map_err(other)?;
        }
        for ipam in &ipams {
            for b in ipam.affine_blocks(None).await.map_err(other)? {
                ipam.release_block(b).await.map_err(other)?;
            }
        }
        lat.sort_unstable();
        Ok((rate, ms(bench::percentile(&lat, 99.0))))
    })
}

/// (duplicates, addresses not in etcd's blocks, ipam check's problems).
fn verify(
    rt: &Runtime,
    store: &Store,
    addresses: &[String],
    nodes: usize,
) -> io::Result<(usize, usize, Vec<String>)> {
    let mut ips = Vec::new();
    for a in addresses {
        // "10.244.1.2" or "10.244.1.2/32".
        let ip = match a.parse::<IpNet>() {
            Ok(net) => net.addr(),
            Err(_) => a
                .parse::<IpAddr>()
                .map_err(|e| other(format!("address {a:?}: {e}")))?,
        };
        ips.push(ip);
    }
    let distinct: BTreeSet<IpAddr> = ips.iter().copied().collect();
    let snap = rt.block_on(IpamSnapshot::read(store)).map_err(other)?;
    let held: BTreeSet<IpAddr> = snap.allocations().into_iter().map(|(a, ..)| a).collect();
    let missing = distinct.iter().filter(|a| !held.contains(a)).count();
    let names: BTreeSet<String> = (1..=nodes).map(cluster::node_name).collect();
    Ok((ips.len() - distinct.len(), missing, snap.problems(&names)))
}

/// Whether the member at `endpoint` is the Raft leader (`etcdctl endpoint status`, run
/// from this thread's namespace, the hub's).
fn is_leader(endpoint: &str) -> io::Result<bool> {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "endpoint", "status", "-w", "json"])
        .output()?;
    if !out.status.success() {
        return Err(other(format!(
            "etcdctl endpoint status {endpoint}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(other)?;
    let s = &j[0]["Status"];
    match (s["header"]["member_id"].as_u64(), s["leader"].as_u64()) {
        (Some(me), Some(leader)) => Ok(me == leader),
        _ => Err(other(format!(
            "etcdctl endpoint status {endpoint}: no member_id / leader in {j}"
        ))),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn run(o: &Opts, bin: &Path) -> io::Result<Report> {
    let t_start = Instant::now();
    const MEMBERS: usize = 3;
    let mut c = Cluster::start(bin, MEMBERS)?;
    c.keep_logs = o.keep_logs.clone();
    c.stats_interval_ms = cluster::stats_interval_ms(o.nodes);
    let (rt, store) = cluster::runtime_and_store(&mut c)?;
    rt.block_on(write_calico(&store, o.rr))?;
    let allocators = o.clients.min(o.nodes);
    let busy_slots = (o.endpoints + o.loss_burst).div_ceil(allocators) + 2;
    if o.rr {
        c.start_reflector(o.nodes)?;
    }
    for i in 1..=o.nodes {
        c.add_node(
            i,
            if i <= allocators {
                busy_slots
            } else {
                o.idle_slots
            },
        )?;
    }
    let first: Vec<usize> = (1..o.nodes).collect();
    say(&format!(
        "starting {} nodes ({} mode)",
        first.len(),
        if o.rr { "rr" } else { "mesh" }
    ));
    let t_mesh = Instant::now();
    for &i in &first {
        c.spawn_node(i)?;
    }
    let within = Duration::from_secs(120 + 6 * o.nodes as u64);
    c.wait_started(&first, within)?;
    wait_sessions(&mut c, &first, o.rr, within)?;
    let initial_mesh_s = t_mesh.elapsed().as_secs_f64();
    say(&format!(
        "{} nodes meshed in {initial_mesh_s:.1} s",
        first.len()
    ));
    let setup_s = t_start.elapsed().as_secs_f64();

    let j = join(&mut c, &rt, &store, o.nodes, o.rr)?;
    say(&format!(
        "node {} joined in {:.2} s",
        o.nodes, j.from_start_s
    ));
    let all: Vec<usize> = (1..=o.nodes).collect();
    wait_sessions(&mut c, &all, o.rr, within)?;

    let (ipam_alloc_per_s, ipam_alloc_p99_ms) =
        ipam_baseline(&rt, &store, allocators, o.endpoints)?;
    say(&format!(
        "baseline: the shared IPAM alone, {allocators} clients: {ipam_alloc_per_s:.0} allocations/s"
    ));
    let sockets: Vec<PathBuf> = (1..=allocators).map(|i| c.node(i).socket.clone()).collect();
    let disk0 = EtcdDisk::read(&c.etcd().endpoints())?;
    let b = burst(&rt, &sockets, 0, o.endpoints)?;
    let (wal_fsync_ms, commit_ms, fsyncs) = disk0.since(&EtcdDisk::read(&c.etcd().endpoints())?)?;
    say(&format!(
        "{} adds over {allocators} nodes in {:.2} s ({} failed)",
        o.endpoints,
        b.wall_s,
        b.errors.len()
    ));
    let (dup1, miss1, prob1) = verify(&rt, &store, &b.addresses, o.nodes)?;

    let was_leader = is_leader(&c.etcd().endpoint(0))?;
    c.etcd().kill(0);
    let lb = burst(&rt, &sockets, o.endpoints, o.loss_burst)?;
    say(&format!(
        "member m0 down: {} adds, {} failed",
        o.loss_burst,
        lb.errors.len()
    ));
    c.etcd().restart(0)?;
    c.etcd().wait_healthy(Duration::from_secs(20))?;
    let mut every: Vec<String> = b.addresses.clone();
    every.extend(lb.addresses.iter().cloned());
    let (dup2, miss2, prob2) = verify(&rt, &store, &every, o.nodes)?;

    let mut rss = Vec::new();
    for i in 1..=o.nodes {
        let n = c.node(i);
        n.alive()?;
        let pid = n.pid().ok_or_else(|| other("no pid"))?;
        let r = bench::rss_bytes_of(&format!("/proc/{pid}/status"));
        if r == 0 {
            return Err(other(format!(
                "no VmRSS in /proc/{pid}/status ({})",
                n.name()
            )));
        }
        rss.push((i <= allocators, r));
    }
    let mean = |v: &[usize]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<usize>() as f64 / v.len() as f64
        }
    };
    let all_rss: Vec<usize> = rss.iter().map(|r| r.1).collect();
    let busy_rss: Vec<usize> = rss.iter().filter(|r| r.0).map(|r| r.1).collect();
    let idle_rss: Vec<usize> = rss.iter().filter(|r| !r.0).map(|r| r.1).collect();
    let established: usize = all.iter().map(|&i| c.node(i).established()).sum();
    let (mesh_sessions, expected) = if o.rr {
        (
            all.iter()
                .filter(|&&i| c.node(i).established_with(RR_ADDR))
                .count(),
            o.nodes,
        )
    } else {
        (established / 2, o.nodes * (o.nodes - 1) / 2)
    };

    let mut lat = b.latencies_us.clone();
    lat.sort_unstable();
    let alloc_per_s = b.addresses.len() as f64 / b.wall_s;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut limits = Vec::new();
    if j.from_start_s > 5.0 {
        limits.push(format!(
            "join_to_mesh_s {:.2} > 5 (CPU {:.0}% busy during the join; {:.2} s of it after the Node resource appeared)",
            j.from_start_s,
            j.cpu_busy * 100.0,
            j.from_registration_s
        ));
    }
    if alloc_per_s < 500.0 {
        limits.push(format!(
            "alloc_per_s {alloc_per_s:.0} < 500 (CPU {:.0}% busy during the burst; p50 {:.1} ms, p99 {:.1} ms per call, {allocators} clients; etcd WAL fsync {wal_fsync_ms:.1} ms mean)",
            b.cpu_busy * 100.0,
            ms(bench::percentile(&lat, 50.0)),
            ms(bench::percentile(&lat, 99.0))
        ));
    }
    if !lb.errors.is_empty() {
        limits.push(format!(
            "etcd_member_loss_alloc_errors {} > 0 (member m0 killed, {}the leader; first error: {})",
            lb.errors.len(),
            if was_leader { "" } else { "not " },
            lb.errors[0]
        ));
    }
    let mut errors_seen: Vec<String> = b.errors.iter().take(5).cloned().collect();
    errors_seen.extend(
        lb.errors
            .iter()
            .take(5)
            .map(|e| format!("member down: {e}")),
    );
    errors_seen.extend(
        prob1
            .iter()
            .chain(&prob2)
            .take(10)
            .map(|p| format!("ipam: {p}")),
    );
    Ok(Report {
        nodes: o.nodes,
        endpoints: o.endpoints,
        mode: if o.rr { "rr" } else { "mesh" },
        join_to_mesh_s: j.from_start_s,
        join_measured_from: "vrouterd start",
        join_from_registration_s: j.from_registration_s,
        join_routes_checked: j.routes_checked,
        initial_mesh_s,
        alloc_per_s,
        alloc_p50_ms: ms(bench::percentile(&lat, 50.0)),
        alloc_p99_ms: ms(bench::percentile(&lat, 99.0)),
        ipam_alloc_per_s,
        ipam_alloc_p99_ms,
        etcd_wal_fsync_mean_ms: wal_fsync_ms,
        etcd_backend_commit_mean_ms: commit_ms,
        etcd_wal_fsyncs_per_alloc: fsyncs as f64 / b.addresses.len().max(1) as f64,
        alloc_clients: allocators,
        alloc_errors: b.errors.len(),
        alloc_duplicates: dup1.max(dup2),
        alloc_missing_from_ipam: miss1.max(miss2),
        ipam_problems: prob1.len() + prob2.len(),
        etcd_members: MEMBERS,
        etcd_member_loss_allocs: o.loss_burst,
        etcd_killed_member_was_leader: was_leader,
        etcd_member_loss_alloc_errors: lb.errors.len(),
        etcd_member_loss_alloc_per_s: lb.addresses.len() as f64 / lb.wall_s,
        rss_bytes_per_node: mean(&all_rss),
        rss_bytes_max: all_rss.iter().copied().max().unwrap_or(0),
        rss_bytes_allocating_node: mean(&busy_rss),
        rss_bytes_idle_node: (!idle_rss.is_empty()).then(|| mean(&idle_rss)),
        endpoint_slots_allocating: busy_slots,
        endpoint_slots_idle: o.idle_slots,
        mesh_sessions,
        mesh_sessions_expected: expected,
        cpu_busy_join: j.cpu_busy,
        cpu_busy_alloc: b.cpu_busy,
        cpus,
        stats_interval_ms: c.stats_interval_ms,
        setup_s,
        total_s: t_start.elapsed().as_secs_f64(),
        limits,
        errors_seen,
    })
}

/// release/vrouterd in the target directory holding this binary (target/release/vrouterd
/// for target/{debug,release}/clusterbench), else target/release/vrouterd.
fn default_vrouterd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(|t| t.join("release/vrouterd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/vrouterd"))
}

fn print_table(r: &Report) {
    println!(
        "clusterbench: {} vrouterd nodes ({}), {} etcd members, {} endpoint adds over {} nodes",
        r.nodes, r.mode, r.etcd_members, r.endpoints, r.alloc_clients
    );
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| join_to_mesh_s (from vrouterd start; from Node in etcd) | {:.2} ({:.2}) | <= 5 at 50 nodes |",
        r.join_to_mesh_s, r.join_from_registration_s
    );
    println!(
        "| initial mesh of {} nodes | {:.1} s | — |",
        r.nodes - 1,
        r.initial_mesh_s
    );
    println!(
        "| BGP sessions Established | {} of {} | all |",
        r.mesh_sessions, r.mesh_sessions_expected
    );
    println!(
        "| alloc_per_s ({} clients at once) | {:.0} | >= 500 |",
        r.alloc_clients, r.alloc_per_s
    );
    println!(
        "| alloc latency p50 / p99 | {:.1} / {:.1} ms | — |",
        r.alloc_p50_ms, r.alloc_p99_ms
    );
    println!(
        "| baseline: shared IPAM alone, allocations/s (p99) | {:.0} ({:.1} ms) | — |",
        r.ipam_alloc_per_s, r.ipam_alloc_p99_ms
    );
    println!(
        "| etcd during the burst: WAL fsync / backend commit mean, fsyncs per address | {:.1} ms / {:.1} ms, {:.1} | — |",
        r.etcd_wal_fsync_mean_ms, r.etcd_backend_commit_mean_ms, r.etcd_wal_fsyncs_per_alloc
    );
    println!(
        "| alloc errors / duplicates / ipam problems | {} / {} / {} | 0 |",
        r.alloc_errors, r.alloc_duplicates, r.ipam_problems
    );
    println!(
        "| etcd member down ({}): errors in {} adds | {} | 0 |",
        if r.etcd_killed_member_was_leader {
            "the leader"
        } else {
            "a follower"
        },
        r.etcd_member_loss_allocs,
        r.etcd_member_loss_alloc_errors
    );
    println!(
        "| RSS per node (mean; allocating / idle nodes) | {} ({} / {}) | — |",
        bench::mb(r.rss_bytes_per_node as usize),
        bench::mb(r.rss_bytes_allocating_node as usize),
        r.rss_bytes_idle_node
            .map_or("no idle node".into(), |b| bench::mb(b as usize))
    );
    println!(
        "| CPU busy during join / allocation ({} CPUs) | {:.0}% / {:.0}% | — |",
        r.cpus,
        r.cpu_busy_join * 100.0,
        r.cpu_busy_alloc * 100.0
    );
    for l in &r.limits {
        println!("limit: {l}");
    }
    for e in &r.errors_seen {
        println!("error: {e}");
    }
}

fn main() {
    let o = Opts::parse();
    if o.nodes < 2 || o.nodes > cluster::MAX_NODES {
        fail(&format!("--nodes must be 2..={}", cluster::MAX_NODES));
    }
    if o.endpoints == 0 || o.clients == 0 {
        fail("--endpoints and --clients must be at least 1");
    }
    if !netns::is_root() {
        fail("must run as root (namespaces)");
    }
    let bin = o.vrouterd.clone().unwrap_or_else(default_vrouterd);
    if !bin.exists() {
        fail(&format!(
            "{} not found: cargo build --release -p vrouter (or --vrouterd PATH)",
            bin.display()
        ));
    }
    netns::install_interrupt_handler().unwrap_or_else(|e| fail(&e.to_string()));
    netns::remove_stale("cb");
    // The cluster is torn down inside `run`, before anything is printed or exits.
    let r = run(&o, &bin).unwrap_or_else(|e| fail(&e.to_string()));
    if o.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
    } else {
        print_table(&r);
    }
    let mut bad = Vec::new();
    if r.alloc_errors > 0 {
        bad.push(format!("{} allocation(s) failed", r.alloc_errors));
    }
    if r.alloc_duplicates > 0 {
        bad.push(format!("{} duplicate address(es)", r.alloc_duplicates));
    }
    if r.alloc_missing_from_ipam > 0 {
        bad.push(format!(
            "{} address(es) not held in etcd's blocks",
            r.alloc_missing_from_ipam
        ));
    }
    if r.ipam_problems > 0 {
        bad.push(format!("{} IPAM problem(s)", r.ipam_problems));
    }
    if !bad.is_empty() {
        fail(&format!("FAIL: {}", bad.join("; ")));
    }
}
