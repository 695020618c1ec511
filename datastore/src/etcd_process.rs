//! Real etcd members for tests and benchmarks (Debian's `etcd-server`, installed by
//! scripts/setup.sh): on loopback, or on an address inside a network namespace (as a
//! real cluster's etcd sits on the network), in a scratch directory, stopped and removed
//! when dropped. A missing `etcd` binary is an error naming the fix, never a skip.

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdCluster {
    dir: PathBuf,
    members: Vec<Member>,
    initial_cluster: String,
    /// The address members listen on (127.0.0.1 unless started with [`EtcdCluster::start_in`]).
    host: String,
    /// The network namespace (`/run/netns/NAME`) members and health checks run in.
    netns: Option<String>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdCluster {
    /// Start `n` members on loopback and wait until the cluster answers.
    pub fn start(n: usize) -> io::Result<EtcdCluster> {
        EtcdCluster::start_on(n, None, "127.0.0.1")
    }

    /// Start `n` members in network namespace `netns`, listening on `host` (an address
    /// of that namespace), and wait until the cluster answers. Ports are picked free on
    /// this namespace's loopback: a fresh namespace has them all free.
    pub fn start_in(n: usize, netns: &str, host: &str) -> io::Result<EtcdCluster> {
        EtcdCluster::start_on(n, Some(netns), host)
    }

    fn start_on(n: usize, netns: Option<&str>, host: &str) -> io::Result<EtcdCluster> {
        let found = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "etcd not found: scripts/setup.sh installs Debian's etcd-server",
            ));
        }
        let dir = std::env::temp_dir().join(format!(
            "vrouter-etcd-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)?;
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client: free_port()?,
                peer: free_port()?,
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{host}:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            dir,
            members,
            initial_cluster,
            host: host.to_string(),
            netns: netns.map(str::to_string),
        };
        for i in 0..n {
            c.spawn(i, "new")?;
        }
        c.wait_healthy(Duration::from_secs(20))?;
        Ok(c)
    }

    /// `prog`, run inside the cluster's namespace when it has one (`ip netns exec`
    /// execs it: the child's pid is the program's).
    fn command(&self, prog: &str) -> Command {
        match &self.netns {
            None => Command::new(prog),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, prog]);
                c
            }
        }
    }

    fn url(&self, port: u16) -> String {
        format!("http://{}:{port}", self.host)
    }

    fn spawn(&mut self, i: usize, state: &str) -> io::Result<()> {
        let m = &self.members[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", m.name)))?;
        let child = self
            .command("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .args([
                "--listen-client-urls",
                &self.url(m.client),
                "--advertise-client-urls",
                &self.url(m.client),
                "--listen-peer-urls",
                &self.url(m.peer),
                "--initial-advertise-peer-urls",
                &self.url(m.peer),
                "--initial-cluster",
                &self.initial_cluster,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "vrouter-test",
                // Short elections: a killed member is replaced in about a second.
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Client URLs of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| self.url(m.client)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.url(self.members[i].client)
    }

    /// The process id of a running member.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Kill one member (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start a killed member again, from its data.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        if self.members[i].child.is_none() {
            self.spawn(i, "existing")?;
        }
        Ok(())
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    pub fn start_all(&mut self) -> io::Result<()> {
        for i in 0..self.members.len() {
            self.restart(i)?;
        }
        self.wait_healthy(Duration::from_secs(20))
    }

    /// Wait until a quorum answers a write on some running member.
    pub fn wait_healthy(&self, within: Duration) -> io::Result<()> {
        let t = Instant::now();
        while t.elapsed() < within {
            for m in self.members.iter().filter(|m| m.child.is_some()) {
                let ok = self
                    .command("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints",
                        &self.url(m.client),
                        "--command-timeout=1s",
                        "put",
                        "/vrouter-health",
                        "1",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if ok.is_ok_and(|s| s.success()) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "etcd cluster not healthy within {within:?} (logs in {})",
                self.dir.display()
            ),
        ))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
