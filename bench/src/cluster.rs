//! clusterbench's cluster: a hub namespace with the underlay bridge (10.96.0.0/24) and a
//! 3-member etcd on the hub's bridge address (as tests/e2e/cluster.sh runs it), vrouterd
//! nodes in namespaces on that bridge with `[datastore]` and no `[[nodes]]`, and a BIRD 2
//! route reflector in a namespace of its own. Everything — processes, namespaces (with
//! their veths and taps), etcd's data and the scratch directory — goes when the
//! [`Cluster`] is dropped, after an error or Ctrl-C too.

use crate::netns::{self, Netns};
use crate::supervise::FdStore;
use control::api::pb;
use datastore::etcd_process::EtcdCluster;
use datastore::keys;
use datastore::store::Store;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The underlay: node i is 10.96.0.i/24.
pub const SUBNET: &str = "10.96.0";
/// etcd's members listen on the hub's bridge address.
pub const ETCD_HOST: &str = "10.96.0.250";
/// The route reflector (BIRD), in its own namespace on the bridge.
pub const RR_ADDR: &str = "10.96.0.251";
/// Calico's default AS: iBGP everywhere.
pub const ASN: u32 = 64512;
/// Calico's default IPv4 pool as calicoctl stores it (10.244.0.0/16, /26 blocks, VXLAN).
pub const CALICO_POOL: &str = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Always","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}"#;
/// How often each vrouterd rewrites its stats file (the join figure's resolution): 50 ms
/// up to 10 nodes, then 5 ms per node (250 ms at 50), so that N nodes' rewrites and our
/// reads of them stay a small share of 2 cores.
pub fn stats_interval_ms(nodes: usize) -> u64 {
    50.max(5 * nodes as u64)
}
/// Nodes on one /24 beside the hub and the reflector.
pub const MAX_NODES: usize = 240;

pub fn node_ip(i: usize) -> String {
    format!("{SUBNET}.{i}")
}

pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// One vrouterd node (1-based index) in namespace `<prefix>n<i>`.
pub struct Node {
    pub index: usize,
    pub ns: Netns,
    pub child: Option<Child>,
    pub stats: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub slots: usize,
    /// Its notify socket and file descriptor store (`n<i>.notify`), which outlive each
    /// vrouterd: as systemd's for a unit with `FileDescriptorStoreMax=` and
    /// `Restart=on-failure`, the next start gets what the last process stored.
    pub fds: FdStore,
}

impl Node {
    pub fn name(&self) -> String {
        node_name(self.index)
    }

    pub fn ip(&self) -> String {
        node_ip(self.index)
    }

    /// vrouterd's pid (`ip netns exec` execs it, or a shell that execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails when vrouterd exited, with the end of its log.
    pub fn alive(&mut self) -> io::Result<()> {
        let Some(c) = self.child.as_mut() else {
            return Err(io::Error::other(format!("{} not started", self.name())));
        };
        if let Some(st) = c.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            return Err(io::Error::other(format!(
                "vrouterd of {} exited ({st}); its log ends:\n{}",
                self.name(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(())
    }

    /// The node's BGP peers from its stats file: (address, state). None while the file
    /// is absent or half-written.
    pub fn peers(&self) -> Option<Vec<(String, String)>> {
        let text = std::fs::read_to_string(&self.stats).ok()?;
        let j: serde_json::Value = serde_json::from_str(&text).ok()?;
        j["bgp"]["peers"]
            .as_array()?
            .iter()
            .map(|p| Some((p["address"].as_str()?.into(), p["state"].as_str()?.into())))
            .collect()
    }

    /// Close what its vrouterd stored: the node stopped for good (`systemctl stop`), not
    /// restarted. The next start gets no fds.
    pub fn clear_fds(&mut self) {
        self.fds.clear();
    }

    /// Whether the node's session with `addr` is Established (per its stats file).
    pub fn established_with(&self, addr: &str) -> bool {
        self.peers()
            .is_some_and(|ps| ps.iter().any(|(a, s)| a == addr && s == "Established"))
    }

    /// Established sessions (per its stats file).
    pub fn established(&self) -> usize {
        self.peers().map_or(0, |ps| {
            ps.iter().filter(|(_, s)| s == "Established").count()
        })
    }
}

/// The whole bench cluster; dropping it tears everything down.
pub struct Cluster {
    pub dir: PathBuf,
    pub prefix: String,
    pub vrouterd: PathBuf,
    pub nodes: Vec<Node>,
    pub etcd: Option<EtcdCluster>,
    pub bird: Option<Child>,
    pub rr_ns: Option<Netns>,
    pub hub: Option<Netns>,
    /// The namespace the calling thread left for the hub: it goes back there before the
    /// hub is deleted (deleting a namespace kills what runs in it, and that would be us).
    home: Option<std::fs::File>,
    /// Where to copy the logs (vrouterd's, etcd's, BIRD's) before the scratch directory goes.
    pub keep_logs: Option<PathBuf>,
    pub stats_interval_ms: u64,
    /// Last: the host's limits come back once the namespaces are gone.
    _neigh: NeighLimits,
}

impl Cluster {
    /// The hub and its bridge, and a 3-member etcd on the bridge address. The calling
    /// thread is moved into the hub namespace so that its etcd clients (and the threads
    /// it starts later, which inherit the namespace) reach the members.
    pub fn start(vrouterd: &Path, members: usize) -> io::Result<Cluster> {
        Self::start_as(vrouterd, members, "clusterbench", "cb")
    }

    /// [`Cluster::start`] for benchmark `bench`: its scratch directory `<bench>-<pid>`,
    /// its namespaces `<tag><pid>-*` (`netns::remove_stale(tag)` finds them).
    pub fn start_as(
        vrouterd: &Path,
        members: usize,
        bench: &str,
        tag: &str,
    ) -> io::Result<Cluster> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("{bench}-{pid}"));
        std::fs::create_dir_all(&dir)?;
        let mut c = Cluster {
            dir,
            prefix: format!("{tag}{pid}-"),
            vrouterd: vrouterd.to_path_buf(),
            nodes: Vec::new(),
            etcd: None,
            bird: None,
            rr_ns: None,
            hub: None,
            home: None,
            keep_logs: None,
            stats_interval_ms: 50,
            _neigh: NeighLimits::raise()?,
        };
        let hub = Netns::add(&format!("{}hub", c.prefix))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        hub.ip(&["addr", "add", &format!("{ETCD_HOST}/24"), "dev", "br0"])?;
        c.home = Some(netns::current()?);
        c.hub = Some(hub);
        netns::enter(c.hub_name())?;
        c.etcd = Some(EtcdCluster::start_in(members, c.hub_name(), ETCD_HOST)?);
        Ok(c)
    }

    pub fn hub_name(&self) -> &str {
        self.hub.as_ref().expect("the hub exists").name()
    }

    pub fn etcd(&mut self) -> &mut EtcdCluster {
        self.etcd.as_mut().expect("etcd started")
    }

    /// A namespace `<prefix><suffix>` with `up0` on the bridge at `addr`/24.
    fn attach(&self, suffix: &str, addr: &str) -> io::Result<Netns> {
        let ns = Netns::add(&format!("{}{suffix}", self.prefix))?;
        let port = format!("p-{suffix}");
        netns::veth("up0", ns.name(), &port, self.hub_name())?;
        let hub = self.hub.as_ref().expect("the hub exists");
        hub.ip(&["link", "set", &port, "master", "br0", "up"])?;
        ns.ip(&["link", "set", "up0", "up"])?;
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "up0"])?;
        no_offloads(&ns, "up0");
        Ok(ns)
    }

    /// Namespace and configuration of node `i` (1-based), with `slots` endpoint slots.
    pub fn add_node(&mut self, i: usize, slots: usize) -> io::Result<()> {
        let ns = self.attach(&format!("n{i}"), &node_ip(i))?;
        let d = self.dir.display();
        let endpoints = self
            .etcd
            .as_ref()
            .expect("etcd started")
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            self.dir.join(format!("n{i}.toml")),
            format!(
                r#"node_name = "{name}"
state_dir = "{d}/state-n{i}"
api = {{ socket = "{d}/api-n{i}.sock" }}
node_ips = ["{ip}/24"]
[[uplinks]]
name = "up0"
[workers]
cores = [{core}]
endpoint_slots = {slots}
[bgp]
restart_marker = "{d}/n{i}.restart"
[datastore]
type = "etcdv3"
endpoints = [{endpoints}]
"#,
                name = node_name(i),
                ip = node_ip(i),
                core = i % 2,
            ),
        )?;
        self.nodes.push(Node {
            index: i,
            ns,
            child: None,
            stats: self.dir.join(format!("n{i}.json")),
            socket: self.dir.join(format!("api-n{i}.sock")),
            log: self.dir.join(format!("n{i}.log")),
            slots,
            fds: FdStore::bind(&self.dir.join(format!("n{i}.notify")))?,
        });
        Ok(())
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.index == i)
            .expect("node added")
    }

    /// Start vrouterd on node `i` (adaptive polling: the default) under the node's
    /// [`FdStore`]: `NOTIFY_SOCKET`, and whatever an earlier vrouterd stored as fds 3, ...
    pub fn spawn_node(&mut self, i: usize) -> io::Result<()> {
        let bin = self.vrouterd.clone();
        let every = self.stats_interval_ms.to_string();
        let config = self.dir.join(format!("n{i}.toml"));
        let n = self.node(i);
        let _ = std::fs::remove_file(&n.stats);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let child = n
            .fds
            .command(&["ip", "netns", "exec", n.ns.name()], &bin)?
            .arg("--config")
            .arg(&config)
            .arg("--stats-file")
            .arg(&n.stats)
            .args(["--stats-interval-ms", &every])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        n.child = Some(child);
        Ok(())
    }

    /// Wait until every node in `which` wrote its stats file (its API is up by then).
    pub fn wait_started(&mut self, which: &[usize], within: Duration) -> io::Result<()> {
        let end = Instant::now() + within;
        for &i in which {
            loop {
                let n = self.node(i);
                n.alive()?;
                if n.peers().is_some() && n.socket.exists() {
                    break;
                }
                if Instant::now() > end {
                    return Err(io::Error::other(format!(
                        "vrouterd of {} did not start within {within:?} (log: {})",
                        n.name(),
                        n.log.display()
                    )));
                }
                netns::sleep_interruptible(Duration::from_millis(20))?;
            }
        }
        Ok(())
    }

    /// BIRD 2 as a route reflector at [`RR_ADDR`], every node 1..=`nodes` an `rr client`
    /// (iBGP; reflected routes keep the originating node's next hop).
    pub fn start_reflector(&mut self, nodes: usize) -> io::Result<()> {
        let ns = self.attach("rr", RR_ADDR)?;
        let conf = self.dir.join("bird.conf");
        let mut text = format!(
            r#"router id {RR_ADDR};
log "{log}" {{ warning, error, fatal }};
protocol device {{ scan time 10; }}
template bgp rrc {{
  local {RR_ADDR} as {ASN};
  strict bind yes;
  rr client;
  rr cluster id {RR_ADDR};
  # Its clients keep its routes while it restarts (RFC 4724), and it theirs.
  graceful restart on;
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"#,
            log = self.dir.join("bird.log").display()
        );
        for i in 1..=nodes {
            text.push_str(&format!(
                "protocol bgp n{i} from rrc {{ neighbor {} as {ASN}; }}\n",
                node_ip(i)
            ));
        }
        std::fs::write(&conf, text)?;
        self.rr_ns = Some(ns);
        self.spawn_reflector()
    }

    /// Start BIRD (again) from the configuration [`Cluster::start_reflector`] wrote.
    pub fn spawn_reflector(&mut self) -> io::Result<()> {
        let ns = self.rr_ns.as_ref().expect("start_reflector ran");
        let _ = std::fs::remove_file(self.dir.join("bird.ctl"));
        // -f: BIRD stays in the foreground, so the child is BIRD itself.
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
            .arg(self.dir.join("bird.conf"))
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("bird.stderr"))?)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("bird: {e} (Debian: apt install bird2)"))
            })?;
        self.bird = Some(child);
        std::thread::sleep(Duration::from_millis(300));
        if let Some(st) = self.bird.as_mut().expect("just set").try_wait()? {
            let err = std::fs::read_to_string(self.dir.join("bird.stderr")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "bird exited ({st}): {}",
                err.trim()
            )));
        }
        Ok(())
    }
}

/// AF_XDP in copy mode carries frames as bytes: no partial checksums or TSO on `dev`.
pub fn no_offloads(ns: &Netns, dev: &str) {
    let _ = ns.exec(&[
        "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
    ]);
}

/// A tokio runtime (its threads live in the hub namespace, as the calling thread does
/// after [`Cluster::start`]) and a client of the cluster's etcd.
pub fn runtime_and_store(c: &mut Cluster) -> io::Result<(tokio::runtime::Runtime, Store)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let settings = datastore::store::EtcdSettings::new(c.etcd().endpoints());
    let store = rt.block_on(Store::connect(&settings)).map_err(other)?;
    Ok((rt, store))
}

/// A client of a node's gRPC API.
pub type Client = pb::vrouter_client::VrouterClient<tonic::transport::Channel>;

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub async fn client(socket: &Path) -> io::Result<Client> {
    control::api::connect(&socket.to_string_lossy())
        .await
        .map_err(other)
}

/// The node's BGP routes (prefixes), inside `filter` (empty: all).
pub async fn bgp_routes(c: &mut Client, filter: &str) -> io::Result<BTreeSet<String>> {
    let r = c
        .list_routes(pb::ListRoutesRequest {
            filter: filter.to_string(),
            limit: 0,
            detail: false,
        })
        .await
        .map_err(|s| other(format!("list_routes: {}", s.message())))?
        .into_inner();
    Ok(r.routes
        .into_iter()
        .filter(|r| r.source == "bgp")
        .map(|r| r.prefix)
        .collect())
}

/// Calico's records as calicoctl stores them: the pool, the BGP configuration and, with
/// a reflector, a global BGPPeer.
pub async fn write_calico(store: &Store, rr: bool) -> io::Result<()> {
    let p = store.prefix.clone();
    let mut records = vec![
        (
            keys::resource(&p, "ippools", "default-ipv4-ippool"),
            CALICO_POOL.to_string(),
        ),
        (
            keys::resource(&p, "bgpconfigurations", "default"),
            format!(
                r#"{{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{{"name":"default"}},"spec":{{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":{},"asNumber":{}}}}}"#,
                !rr, ASN
            ),
        ),
    ];
    if rr {
        records.push((
            keys::resource(&p, "bgppeers", "rr"),
            format!(
                r#"{{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{{"name":"rr"}},"spec":{{"peerIP":"{RR_ADDR}","asNumber":{}}}}}"#,
                ASN
            ),
        ));
    }
    for (k, v) in records {
        if !store.create(&k, v.into_bytes()).await.map_err(other)? {
            return Err(other(format!("{k} already in etcd")));
        }
    }
    Ok(())
}

/// The kernel's neighbour tables are one per host, shared by every namespace: their
/// limit (`gc_thresh3`, 1,024 by default) is for one machine's neighbours. N nodes in
/// namespaces on one kernel hold about N² entries (every node resolves every other), and
/// past the limit the kernel refuses new ones ("neighbor table overflow!"): at 50 nodes
/// BGP sessions could not form (stop 23's failed full mesh). Each node of a real cluster
/// has its own kernel, so the run raises the limits (never lowers them) and puts the
/// host's values back at the end.
pub struct NeighLimits {
    saved: Vec<(String, String)>,
}

impl NeighLimits {
    const WANT: [(&'static str, u64); 2] = [("gc_thresh2", 8192), ("gc_thresh3", 16384)];

    /// Call from the host's own namespace (the limits are only writable there).
    pub fn raise() -> io::Result<NeighLimits> {
        let mut saved = Vec::new();
        for fam in ["ipv4", "ipv6"] {
            for (name, want) in Self::WANT {
                let path = format!("/proc/sys/net/{fam}/neigh/default/{name}");
                let old = std::fs::read_to_string(&path)?.trim().to_string();
                let now: u64 = old
                    .parse()
                    .map_err(|e| other(format!("{path}: {old:?}: {e}")))?;
                if now < want {
                    std::fs::write(&path, want.to_string())
                        .map_err(|e| other(format!("raising {path}: {e}")))?;
                    saved.push((path, old));
                }
            }
        }
        Ok(NeighLimits { saved })
    }
}

impl Drop for NeighLimits {
    fn drop(&mut self) {
        // thresh3 first: thresh2 may not exceed it.
        for (path, old) in self.saved.iter().rev() {
            if let Err(e) = std::fs::write(path, old) {
                eprintln!("cannot restore {path} to {old}: {e}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut b) = self.bird.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        if let Some(home) = self.home.take() {
            if let Err(e) = netns::restore(&home) {
                // Deleting the hub would kill this process: leave it to the next run's
                // remove_stale.
                eprintln!("cannot leave the hub namespace ({e}): it stays");
                std::mem::forget(self.hub.take());
            }
        }
        // Namespaces (and whatever still runs in them, their veths and taps), then etcd
        // (its members run in the hub), then the scratch directory.
        self.nodes.clear();
        self.rr_ns = None;
        if let Some(to) = &self.keep_logs {
            let _ = std::fs::create_dir_all(to);
            for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") || name.starts_with("bird.") || name.ends_with(".toml") {
                    let _ = std::fs::copy(e.path(), to.join(&name));
                }
            }
        }
        self.etcd = None;
        self.hub = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// etcd's own disk figures, summed over the members (from their `/metrics`): WAL
/// fsyncs and backend commits, each as (total seconds, count). Every commit of a
/// write waits for a WAL fsync on a quorum, so these bound the allocation rate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EtcdDisk {
    pub wal_fsync: (f64, u64),
    pub backend_commit: (f64, u64),
}

impl EtcdDisk {
    /// Read every member's metrics; an unreachable member or a missing figure is an
    /// error (never a zero).
    pub fn read(endpoints: &[String]) -> io::Result<EtcdDisk> {
        let mut d = EtcdDisk::default();
        for e in endpoints {
            let text = http_get(e, "/metrics")?;
            let figure = |name: &str| -> io::Result<f64> {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                    .ok_or_else(|| other(format!("{e}/metrics has no {name}")))
            };
            d.wal_fsync.0 += figure("etcd_disk_wal_fsync_duration_seconds_sum")?;
            d.wal_fsync.1 += figure("etcd_disk_wal_fsync_duration_seconds_count")? as u64;
            d.backend_commit.0 += figure("etcd_disk_backend_commit_duration_seconds_sum")?;
            d.backend_commit.1 += figure("etcd_disk_backend_commit_duration_seconds_count")? as u64;
        }
        Ok(d)
    }

    /// Mean WAL fsync and backend commit (ms) and WAL fsyncs between `self` and `later`.
    /// No fsync or commit in between (the burst wrote nothing, or the counters did not
    /// move) is an error: a mean of nothing is not a zero.
    pub fn since(&self, later: &EtcdDisk) -> io::Result<(f64, f64, u64)> {
        let mean = |what: &str, a: (f64, u64), b: (f64, u64)| match b
            .1
            .checked_sub(a.1)
            .filter(|&n| n > 0)
        {
            Some(n) => Ok((b.0 - a.0) / n as f64 * 1e3),
            None => Err(other(format!("etcd counted no {what} over the burst"))),
        };
        Ok((
            mean("WAL fsync", self.wal_fsync, later.wal_fsync)?,
            mean("backend commit", self.backend_commit, later.backend_commit)?,
            later.wal_fsync.1 - self.wal_fsync.1,
        ))
    }
}

/// A plain HTTP/1.0 GET of `path` at `base` (`http://host:port`): the body.
fn http_get(base: &str, path: &str) -> io::Result<String> {
    use std::io::{Read, Write};
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| other(format!("{base}: not an http:// URL")))?;
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    match out.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(other(format!(
            "GET {base}{path}: {}",
            out.lines().next().unwrap_or("no answer")
        ))),
    }
}
