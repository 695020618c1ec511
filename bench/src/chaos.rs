//! chaosbench's testbed: clusterbench's cluster (a 3-member etcd in the hub, vrouterd
//! nodes on the datastore, a BIRD 2 route reflector with graceful restart) with veth pods
//! wired as Calico wires them (gateway 169.254.1.1, host side ee:ee:ee:ee:ee:ee) and
//! added through each node's API, and the faults chaosbench injects: vrouterd killed or
//! stopped and started again, BIRD killed and restarted, an uplink flapped, SIGHUP, an
//! etcd member killed. Also an iperf3 TCP stream whose per-interval throughput is read
//! as it runs. Everything goes when the [`Testbed`] is dropped.

use crate::cluster::{self, client, Client, Cluster, RR_ADDR};
use crate::netns::{self, Netns};
use control::api::pb;
use std::io::{self, BufRead};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A pod: its namespace (eth0, one IPv4 address) and the node it hangs off.
pub struct Pod {
    pub name: String,
    pub ns: Netns,
    pub node: usize,
    pub ip: Ipv4Addr,
}

pub struct Testbed {
    pub c: Cluster,
    pub rt: Runtime,
    pub pods: Vec<Pod>,
    /// Time everything is measured from (the probes' epoch).
    pub epoch: Instant,
}

impl Testbed {
    /// etcd, Calico's records (reflector, no mesh), BIRD and `nodes` vrouterd nodes,
    /// each Established with the reflector.
    pub fn start(vrouterd: &Path, nodes: usize) -> io::Result<Testbed> {
        let mut c = Cluster::start_as(vrouterd, 3, "chaosbench", "ch")?;
        c.stats_interval_ms = 100;
        let (rt, store) = cluster::runtime_and_store(&mut c)?;
        rt.block_on(cluster::write_calico(&store, true))?;
        c.start_reflector(nodes)?;
        let all: Vec<usize> = (1..=nodes).collect();
        for &i in &all {
            c.add_node(i, 8)?;
            c.spawn_node(i)?;
        }
        c.wait_started(&all, Duration::from_secs(60))?;
        let mut t = Testbed {
            c,
            rt,
            pods: Vec::new(),
            epoch: Instant::now(),
        };
        for &i in &all {
            t.wait_rr(i, Duration::from_secs(60))?;
        }
        Ok(t)
    }

    /// Until node `i` is Established with the reflector (per its stats file).
    pub fn wait_rr(&mut self, i: usize, within: Duration) -> io::Result<()> {
        let end = Instant::now() + within;
        loop {
            let n = self.c.node(i);
            n.alive()?;
            if n.established_with(RR_ADDR) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(other(format!(
                    "{} not Established with the reflector within {within:?}",
                    n.name()
                )));
            }
            netns::sleep_interruptible(Duration::from_millis(100))?;
        }
    }

    pub fn api(&self, node: usize) -> io::Result<Client> {
        let sock = self
            .c
            .nodes
            .iter()
            .find(|n| n.index == node)
            .ok_or_else(|| other(format!("no node {node}")))?
            .socket
            .clone();
        self.rt.block_on(client(&sock))
    }

    /// A veth pod `name` on `node`: the address comes from the node's API (shared IPAM).
    pub fn add_pod(&mut self, name: &str, node: usize) -> io::Result<Ipv4Addr> {
        let ns = Netns::add(&format!("{}{name}", self.c.prefix))?;
        let host_if = format!("cali{name}");
        let node_ns = self.c.node(node).ns.name().to_string();
        netns::veth("eth0", ns.name(), &host_if, &node_ns)?;
        let n = &self.c.node(node).ns;
        n.ip(&[
            "link",
            "set",
            &host_if,
            "address",
            "ee:ee:ee:ee:ee:ee",
            "up",
        ])?;
        cluster::no_offloads(n, &host_if);
        // The pod's MAC is given with the endpoint, as vrouter-cni gives the one it set:
        // a restarted vrouterd then forwards to the pod without asking for it again.
        let mac = format!("02:00:00:00:{:02x}:{:02x}", node, self.pods.len());
        ns.ip(&["link", "set", "eth0", "address", &mac])?;
        let mut api = self.api(node)?;
        let ep = self
            .rt
            .block_on(api.add_endpoint(pb::Endpoint {
                name: name.to_string(),
                kind: "veth".into(),
                interface: host_if.clone(),
                mac,
                ..Default::default()
            }))
            .map_err(|s| other(format!("endpoint add {name}: {}", s.message())))?
            .into_inner();
        let ip: Ipv4Addr = ep
            .addresses
            .first()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| other(format!("endpoint add {name}: no IPv4 address: {ep:?}")))?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        ns.ip(&[
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ])?;
        cluster::no_offloads(&ns, "eth0");
        self.pods.push(Pod {
            name: name.to_string(),
            ns,
            node,
            ip,
        });
        Ok(ip)
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .expect("pod added")
    }

    pub fn pid(&mut self, node: usize) -> io::Result<u32> {
        let n = self.c.node(node);
        n.alive()?;
        n.pid()
            .ok_or_else(|| other(format!("{} not running", n.name())))
    }

    /// Stop vrouterd on `node` with `sig` (SIGKILL: as a crash; SIGTERM: a planned
    /// stop) and wait for it to exit. The node's fd store is kept either way, for
    /// [`Testbed::start_node`]: systemd keeps it across `Restart=on-failure` after a
    /// crash and across `systemctl restart` (FileDescriptorStorePreserve=restart, the
    /// default). For a stop for good, follow with `self.c.node(node).clear_fds()`.
    pub fn stop_node(&mut self, node: usize, sig: libc::c_int) -> io::Result<()> {
        let pid = self.pid(node)?;
        netns::signal(pid, sig)?;
        let n = self.c.node(node);
        let mut child = n.child.take().expect("running");
        let end = Instant::now() + Duration::from_secs(15);
        while child.try_wait()?.is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(other(format!(
                    "{} did not exit within 15 s of signal {sig}",
                    n.name()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Start vrouterd on `node` again, with the fds its last process stored, and wait for
    /// its stats file and API.
    pub fn start_node(&mut self, node: usize) -> io::Result<()> {
        self.c.spawn_node(node)?;
        self.c.wait_started(&[node], Duration::from_secs(60))
    }

    pub fn kill_reflector(&mut self) -> io::Result<()> {
        let mut b = self
            .c
            .bird
            .take()
            .ok_or_else(|| other("BIRD not running"))?;
        b.kill()?;
        b.wait()?;
        Ok(())
    }

    /// `birdc show protocols`' line of node `i`'s session.
    pub fn bird_protocol(&self, i: usize) -> io::Result<String> {
        let ns = self.c.rr_ns.as_ref().ok_or_else(|| other("no reflector"))?;
        let ctl = self.c.dir.join("bird.ctl");
        let out = ns.exec_output(&["birdc", "-s", &ctl.to_string_lossy(), "show", "protocols"])?;
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(format!("n{i}").as_str()))
            .map(str::to_string)
            .ok_or_else(|| other(format!("no protocol n{i} in birdc's answer: {out}")))
    }

    /// The BGP routes node `node` holds inside `prefix`.
    pub fn bgp_routes(&self, node: usize, prefix: &str) -> io::Result<Vec<String>> {
        let mut api = self.api(node)?;
        let r = self.rt.block_on(cluster::bgp_routes(&mut api, prefix))?;
        Ok(r.into_iter().collect())
    }

    pub fn uplink(&mut self, node: usize, up: bool) -> io::Result<()> {
        let state = if up { "up" } else { "down" };
        self.c.node(node).ns.ip(&["link", "set", "up0", state])
    }
}

/// The /26 block holding `ip` (Calico's default block size).
pub fn block_of(ip: Ipv4Addr) -> String {
    let b = u32::from(ip) & !((1 << 6) - 1);
    format!("{}/26", Ipv4Addr::from(b))
}

/// An iperf3 TCP stream between two pods, its intervals read as they are printed.
pub struct Iperf {
    server: Child,
    client: Child,
    /// Seconds since the epoch at which the client started.
    started_s: f64,
    /// (interval start, end) in seconds since the client started, Mbit/s.
    intervals: Arc<Mutex<Vec<(f64, f64, f64)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// iperf3's intervals over one window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IperfWindow {
    pub intervals: usize,
    pub min_mbps: f64,
    pub mean_mbps: f64,
    /// Intervals with nothing acknowledged.
    pub zero_intervals: usize,
    /// Mbit/s of each 0.5 s interval overlapping the window.
    pub mbps: Vec<f64>,
}

impl Iperf {
    /// Start the server in `server_ns`, wait until it listens, then the client in
    /// `client_ns`; [`Iperf::wait_first_interval`] says whether it connected.
    pub fn start(
        server_ns: &str,
        client_ns: &str,
        dst: Ipv4Addr,
        mbps: u32,
        secs: u64,
        epoch: Instant,
    ) -> io::Result<Iperf> {
        let server = Command::new("ip")
            .args(["netns", "exec", server_ns, "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| other(format!("iperf3: {e} (Debian: apt install iperf3)")))?;
        // A client started before the server listens is refused and exits at once
        // (CI saw a whole run without one interval after a fixed 300 ms wait).
        wait_listening(server_ns, 5201, Duration::from_secs(10))?;
        let mut client = Command::new("ip")
            .args(["netns", "exec", client_ns, "iperf3", "-c"])
            .arg(dst.to_string())
            .args(["-t", &secs.to_string(), "-b", &format!("{mbps}M")])
            .args(["-i", "0.5", "--forceflush", "-f", "m"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let started_s = epoch.elapsed().as_secs_f64();
        let intervals = Arc::new(Mutex::new(Vec::new()));
        let out = client.stdout.take().expect("piped");
        let sink = intervals.clone();
        let reader = std::thread::spawn(move || {
            for line in io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(iv) = parse_interval(&line) {
                    sink.lock().expect("iperf lock").push(iv);
                }
            }
        });
        Ok(Iperf {
            server,
            client,
            started_s,
            intervals,
            reader: Some(reader),
        })
    }

    /// Wait until the client has printed an interval; an error (with what the client
    /// said) when it exits first or `within` passes.
    pub fn wait_first_interval(&mut self, within: Duration) -> io::Result<()> {
        let t = Instant::now();
        while self.intervals.lock().expect("iperf lock").is_empty() {
            if let Ok(Some(status)) = self.client.try_wait() {
                let mut said = String::new();
                if let Some(mut e) = self.client.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut said);
                }
                return Err(other(format!(
                    "iperf3 client exited ({status}) before its first interval: {}",
                    said.trim()
                )));
            }
            if t.elapsed() > within {
                return Err(other(format!(
                    "iperf3 printed no interval within {within:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Whether the client still runs (it exits when its connection breaks).
    pub fn running(&mut self) -> bool {
        matches!(self.client.try_wait(), Ok(None))
    }

    /// The intervals overlapping `[from_s, to_s]` (seconds since the epoch).
    pub fn window(&self, from_s: f64, to_s: f64) -> IperfWindow {
        let iv = self.intervals.lock().expect("iperf lock");
        let mbps: Vec<f64> = iv
            .iter()
            .filter(|(a, b, _)| self.started_s + b > from_s && self.started_s + a < to_s)
            .map(|x| x.2)
            .collect();
        IperfWindow {
            intervals: mbps.len(),
            min_mbps: if mbps.is_empty() {
                0.0
            } else {
                mbps.iter().copied().fold(f64::INFINITY, f64::min)
            },
            mean_mbps: if mbps.is_empty() {
                0.0
            } else {
                mbps.iter().sum::<f64>() / mbps.len() as f64
            },
            zero_intervals: mbps.iter().filter(|&&m| m == 0.0).count(),
            mbps,
        }
    }

    /// Stop both ends; the intervals printed so far.
    pub fn stop(mut self) -> usize {
        let _ = self.client.kill();
        let _ = self.client.wait();
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let n = self.intervals.lock().expect("iperf lock").len();
        n
    }
}

impl Drop for Iperf {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Wait until something listens on TCP `port` in namespace `ns` (`ss`, iproute2).
fn wait_listening(ns: &str, port: u16, within: Duration) -> io::Result<()> {
    let t = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hltn"])
            .arg(format!("sport = :{port}"))
            .output()?;
        if out.status.success() && !out.stdout.is_empty() {
            return Ok(());
        }
        if t.elapsed() > within {
            return Err(other(format!(
                "nothing listens on TCP port {port} in {ns} after {within:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One interval line of iperf3's client (`-f m`): (start, end, Mbit/s); None for the
/// header, the summary and anything else.
fn parse_interval(line: &str) -> Option<(f64, f64, f64)> {
    if line.contains("sender") || line.contains("receiver") || !line.starts_with('[') {
        return None;
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = f.iter().position(|&w| w == "sec")?;
    let (a, b) = f.get(at.checked_sub(1)?)?.split_once('-')?;
    let unit = f.iter().position(|&w| w == "Mbits/sec")?;
    Some((
        a.parse().ok()?,
        b.parse().ok()?,
        f.get(unit - 1)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_interval_lines_are_parsed() {
        let l = "[  5]   1.50-2.00   sec  1.88 MBytes  31.5 Mbits/sec    0   79.2 KBytes       ";
        assert_eq!(parse_interval(l), Some((1.5, 2.0, 31.5)));
        let s = "[  5]   0.00-10.00  sec  37.6 MBytes  31.5 Mbits/sec    0             sender";
        assert_eq!(parse_interval(s), None);
        assert_eq!(
            parse_interval("[ ID] Interval           Transfer     Bitrate         Retr  Cwnd"),
            None
        );
    }

    #[test]
    fn blocks_are_26() {
        assert_eq!(block_of("10.244.3.77".parse().unwrap()), "10.244.3.64/26");
    }
}
