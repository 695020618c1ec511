//! Loading and attaching the vRouter's XDP program (`vrouter::xdp`) on real veth pairs.
//!
//! These tests need root (BPF, network namespaces), iproute2's `ip` and `socat`. They FAIL, with a
//! message saying what is missing, when run without them: they never skip silently.
//!
//! Each test builds its own veth pair with a unique name (pid + counter): one end stays in the
//! root namespace (where this process lives and attaches the program), the other goes into a new
//! namespace. A guard deletes both, even when the test fails.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::num::NonZeroU32;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use vrouter::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};
use xsk_rs::config::{BindFlags, LibxdpFlags, SocketConfig, UmemConfig};
use xsk_rs::{RxQueue, Socket, Umem};

/// Env var telling the helper test (run in a child process) which interface to attach to.
const CHILD_IF_ENV: &str = "VROUTER_XDP_TEST_CHILD_IF";

// ---------------------------------------------------------------------------------------------
// Environment checks and command helpers
// ---------------------------------------------------------------------------------------------

/// Panics with a clear message unless we are root and every tool in `tools` runs.
fn require(tools: &[&str]) {
    let status = fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("no Uid line in /proc/self/status");
    assert_eq!(
        euid, "0",
        "\n\nxdp_attach tests need root (BPF program loading, network namespaces, veth pairs): \
         run them as root, e.g. `sudo -E cargo test -p vrouter --test xdp_attach`.\n"
    );
    for tool in tools {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            ok,
            "\n\nxdp_attach tests need `{tool}` in PATH (Debian: `apt-get install {}`).\n",
            match *tool {
                "ip" => "iproute2",
                other => other,
            }
        );
    }
}

/// Runs a command, panicking with its output if it fails; returns stdout.
fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command for cleanup: failures are reported on stderr, never panic.
fn run_quiet(cmd: &[&str]) {
    match Command::new(cmd[0]).args(&cmd[1..]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "cleanup {cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("cleanup {cmd:?}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Topology: veth pair, host end in the root namespace, peer end in a fresh namespace
// ---------------------------------------------------------------------------------------------

struct Topology {
    ns: String,
    host_if: String,
    peer_if: String,
    host_addr: Ipv4Addr,
    peer_addr: Ipv4Addr,
    host_addr6: Ipv6Addr,
    peer_addr6: Ipv6Addr,
}

impl Topology {
    /// Creates the namespace and the veth pair, addressed with a unique /30 and up.
    fn new() -> Topology {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        assert!(n < 64, "too many topologies for the /30 numbering");
        let pid = std::process::id();
        // 198.18.0.0/15 is reserved for benchmarking: no clash with real networks.
        let base = 4 * n as u8;
        let third = (pid % 250) as u8;
        // The guard exists before anything is created, so a failure half-way still cleans up.
        let topo = Topology {
            ns: format!("vrouter-test-{pid}-{n}"),
            host_if: format!("vx{pid}h{n}"),
            peer_if: format!("vx{pid}p{n}"),
            host_addr: Ipv4Addr::new(198, 18, third, base + 1),
            peer_addr: Ipv4Addr::new(198, 18, third, base + 2),
            // fd00::/8 ULA, unique per (pid, n).
            host_addr6: Ipv6Addr::new(0xfd00, 0x5318, pid as u16, n as u16, 0, 0, 0, 1),
            peer_addr6: Ipv6Addr::new(0xfd00, 0x5318, pid as u16, n as u16, 0, 0, 0, 2),
        };
        assert!(topo.host_if.len() <= 15 && topo.peer_if.len() <= 15);
        let (ns, host, peer) = (&topo.ns, &topo.host_if, &topo.peer_if);
        run(&["ip", "netns", "add", ns]);
        run(&[
            "ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns,
        ]);
        let host_cidr = format!("{}/30", topo.host_addr);
        let peer_cidr = format!("{}/30", topo.peer_addr);
        let host_cidr6 = format!("{}/64", topo.host_addr6);
        let peer_cidr6 = format!("{}/64", topo.peer_addr6);
        run(&["ip", "addr", "add", &host_cidr, "dev", host]);
        run(&["ip", "addr", "add", &host_cidr6, "dev", host, "nodad"]);
        run(&["ip", "link", "set", host, "up"]);
        run(&["ip", "-n", ns, "addr", "add", &peer_cidr, "dev", peer]);
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &peer_cidr6,
            "dev",
            peer,
            "nodad",
        ]);
        run(&["ip", "-n", ns, "link", "set", peer, "up"]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        topo
    }

    fn host_link(&self) -> String {
        run(&["ip", "-d", "link", "show", "dev", &self.host_if])
    }

    /// Permanent neighbour entries on both ends (v4 and v6), so traffic needs no ARP / ND: with
    /// the endpoint role, ARP and ND go to the (test's) socket like everything else.
    fn static_neighbours(&self) {
        let mac = |out: String| -> String {
            let at = out.find("link/ether ").expect("no link/ether") + "link/ether ".len();
            out[at..].split_whitespace().next().unwrap().to_string()
        };
        let host_mac = mac(run(&["ip", "-o", "link", "show", "dev", &self.host_if]));
        let peer_mac = mac(run(&[
            "ip",
            "-n",
            &self.ns,
            "-o",
            "link",
            "show",
            "dev",
            &self.peer_if,
        ]));
        for (addr, lladdr) in [
            (self.peer_addr.to_string(), &peer_mac),
            (self.peer_addr6.to_string(), &peer_mac),
        ] {
            run(&[
                "ip",
                "neigh",
                "replace",
                &addr,
                "lladdr",
                lladdr,
                "dev",
                &self.host_if,
                "nud",
                "permanent",
            ]);
        }
        for (addr, lladdr) in [
            (self.host_addr.to_string(), &host_mac),
            (self.host_addr6.to_string(), &host_mac),
        ] {
            run(&[
                "ip",
                "-n",
                &self.ns,
                "neigh",
                "replace",
                &addr,
                "lladdr",
                lladdr,
                "dev",
                &self.peer_if,
                "nud",
                "permanent",
            ]);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; deleting the namespace would too, but be explicit.
        run_quiet(&["ip", "link", "del", "dev", &self.host_if]);
        run_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

// ---------------------------------------------------------------------------------------------
// Observing the attachment
// ---------------------------------------------------------------------------------------------

/// The id of the XDP program `ip -d link show` reports, if any.
fn xdp_prog_id(link: &str) -> Option<u32> {
    let at = link.find("prog/xdp id ")?;
    link[at + "prog/xdp id ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The (link_id, prog_id) of the BPF XDP link on `ifindex` held by one of our fds, if any:
/// proof the program is attached through a BPF link, not netlink.
fn our_xdp_link(ifindex: u32) -> Option<(u32, u32)> {
    for entry in fs::read_dir("/proc/self/fdinfo").ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(info) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("link_type:").as_deref() != Some("xdp") {
            continue;
        }
        if field("ifindex:").and_then(|v| v.parse::<u32>().ok()) != Some(ifindex) {
            continue;
        }
        let link_id = field("link_id:")?.parse().ok()?;
        let prog_id = field("prog_id:")?.parse().ok()?;
        return Some((link_id, prog_id));
    }
    None
}

fn assert_attached(topo: &Topology, prog: &XdpProgram, mode: AttachMode) {
    let link = topo.host_link();
    let prog_id = xdp_prog_id(&link)
        .unwrap_or_else(|| panic!("no XDP program on {} after attach:\n{link}", topo.host_if));
    let mode_word = match mode {
        AttachMode::Native => "xdp ",
        AttachMode::Generic => "xdpgeneric",
    };
    let first_line = link.lines().next().unwrap_or_default();
    assert!(
        first_line.contains(mode_word),
        "expected {mode_word:?} ({mode:?} mode) in `ip link` for {}:\n{link}",
        topo.host_if
    );
    let (link_id, link_prog_id) = our_xdp_link(prog.ifindex()).unwrap_or_else(|| {
        panic!(
            "no BPF link of type xdp for ifindex {} among our fds: not attached through a link?",
            prog.ifindex()
        )
    });
    assert_eq!(
        link_prog_id, prog_id,
        "our BPF link {link_id} holds program {link_prog_id}, but {} runs program {prog_id}",
        topo.host_if
    );
}

fn assert_detached(topo: &Topology, ifindex: u32) {
    // A link is released when its last fd closes; allow the kernel a moment anyway.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let link = topo.host_link();
        let xdp_word = link
            .split_whitespace()
            .any(|w| w.starts_with("xdp") || w.starts_with("prog/xdp"));
        if xdp_prog_id(&link).is_none() && !xdp_word {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "XDP program still on {} after drop:\n{link}",
            topo.host_if
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        our_xdp_link(ifindex).is_none(),
        "a BPF xdp link fd for ifindex {ifindex} is still open after drop"
    );
}

fn ifindex_of(ifname: &str) -> u32 {
    fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
        .unwrap_or_else(|e| panic!("ifindex of {ifname}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Traffic: a TCP exchange from the namespace (socat) to a listener on the host end
// ---------------------------------------------------------------------------------------------

/// Connects from the namespace to a listener on `host` (an address of the host end), sends a
/// line and expects the reply. Exercises TCP in both directions through the attached program (and
/// ARP / ND unless the neighbours are static).
fn tcp_exchange(topo: &Topology, host: IpAddr, timeout: Duration) -> Result<(), String> {
    let listener = TcpListener::bind((host, 0)).expect("bind on the host end");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let server_deadline = Instant::now() + timeout + Duration::from_secs(1);
    let server = thread::spawn(move || -> Result<String, String> {
        let (mut stream, peer) = loop {
            match listener.accept() {
                Ok(conn) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > server_deadline {
                        return Err("no connection arrived".into());
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&mut stream)
            .read_line(&mut line)
            .map_err(|e| format!("read from {peer}: {e}"))?;
        stream
            .write_all(b"pong\n")
            .map_err(|e| format!("write to {peer}: {e}"))?;
        Ok(line)
    });

    let target = match SocketAddr::new(host, port) {
        SocketAddr::V4(addr) => format!("TCP4:{addr}"),
        SocketAddr::V6(addr) => format!("TCP6:{addr}"),
    };
    let target = format!("{target},connect-timeout={}", timeout.as_secs_f32());
    let mut client = Command::new("ip")
        .args(["netns", "exec", &topo.ns, "socat", "-T", "5", "-", &target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning socat in the namespace");
    // The write fails with EPIPE if socat already gave up: its status says why.
    let _ = client.stdin.take().unwrap().write_all(b"ping\n");
    let mut reply = String::new();
    let _ = client.stdout.take().unwrap().read_to_string(&mut reply);
    let status = client.wait().unwrap();
    let mut client_err = String::new();
    if let Some(mut err) = client.stderr.take() {
        let _ = err.read_to_string(&mut client_err);
    }
    let served = server.join().expect("server thread panicked");

    match served {
        Ok(line) if line == "ping\n" && reply == "pong\n" => Ok(()),
        Ok(line) => Err(format!(
            "host end got {line:?}, namespace got {reply:?} (socat {status}: {})",
            client_err.trim()
        )),
        Err(e) => Err(format!(
            "host end: {e} (socat {status}: {})",
            client_err.trim()
        )),
    }
}

fn assert_tcp_exchange(topo: &Topology, what: &str) {
    for host in [IpAddr::V4(topo.host_addr), IpAddr::V6(topo.host_addr6)] {
        if let Err(e) = tcp_exchange(topo, host, Duration::from_secs(5)) {
            panic!("{what}: TCP from the namespace to {host} failed: {e}");
        }
    }
}

/// Sends one datagram from the namespace to `host`: UDP to `port`, or with `raw`, a raw IP packet
/// with protocol / next header `port` (4 = IPIP, 41 = IPv6-in-IP).
fn send_datagram(topo: &Topology, host: IpAddr, port: u16, raw: bool) {
    let target = match (SocketAddr::new(host, port), raw) {
        (SocketAddr::V4(addr), false) => format!("UDP4-SENDTO:{addr}"),
        (SocketAddr::V6(addr), false) => format!("UDP6-SENDTO:{addr}"),
        (SocketAddr::V4(addr), true) => format!("IP4-SENDTO:{}:{port}", addr.ip()),
        (SocketAddr::V6(addr), true) => format!("IP6-SENDTO:[{}]:{port}", addr.ip()),
    };
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.ns, "socat", "-u", "STDIN", &target])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"datagram")?;
            child.wait_with_output()
        })
        .expect("running socat in the namespace");
    assert!(
        out.status.success(),
        "socat {target} in the namespace: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An AF_XDP socket on queue 0 of an interface that never gives the kernel frames to fill: every
/// frame redirected to it is dropped and counted, which is what the tests observe. Created with
/// libxdp's program loading inhibited (our program is the one attached).
struct CountingSocket {
    rx: RxQueue,
    // Keeps the socket's fill / completion rings (and with them the binding) alive.
    _rings: Option<(xsk_rs::FillQueue, xsk_rs::CompQueue)>,
    _tx: xsk_rs::TxQueue,
    _umem: Umem,
}

impl CountingSocket {
    fn new(ifname: &str) -> CountingSocket {
        let (umem, _frames) = Umem::new(
            UmemConfig::builder().build().unwrap(),
            NonZeroU32::new(64).unwrap(),
            false,
        )
        .expect("creating a UMEM");
        let config = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        // SAFETY: the UMEM is fresh, not shared: `Socket::new`'s shared-UMEM contract does not
        // apply (and program loading is inhibited anyway).
        #[allow(unsafe_code)]
        let (tx, rx, rings) = unsafe { Socket::new(config, &umem, &ifname.parse().unwrap(), 0) }
            .unwrap_or_else(|e| panic!("creating an AF_XDP socket on {ifname} queue 0: {e}"));
        CountingSocket {
            rx,
            _rings: rings,
            _tx: tx,
            _umem: umem,
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.rx.fd().as_raw_fd()
    }

    /// Frames the kernel tried to deliver to this socket (all dropped: the fill ring is empty).
    fn delivered(&self) -> u64 {
        let stats = self.rx.fd().xdp_statistics().expect("XDP_STATISTICS");
        stats.rx_dropped() + stats.rx_fill_ring_empty_descs() + stats.rx_ring_full()
    }

    /// Waits up to 2 s for the count to pass `before`; returns the new count.
    fn wait_for_more_than(&self, before: u64, what: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let now = self.delivered();
            if now > before {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: nothing was redirected to the AF_XDP socket (count stays {now})"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn host_net(addr: impl Into<IpAddr>) -> IpNet {
    IpNet::from(addr.into())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn embedded_object_passes_the_verifier_for_both_roles() {
    require(&[]);
    for role in [XdpRole::Uplink, XdpRole::Endpoint] {
        XdpProgram::check_load(role)
            .unwrap_or_else(|e| panic!("loading the embedded object as {role:?}: {e}"));
    }
}

/// Attach, check `ip link` and the BPF link, pass traffic with no socket registered (first with
/// no prefixes, then with the host end's address classed so the program takes its redirect
/// path and falls back to XDP_PASS), drop, check it is gone.
fn attach_pass_traffic_detach(role: XdpRole, mode: AttachMode) {
    require(&["ip", "socat"]);
    let topo = Topology::new();
    let what = format!("{role:?}/{mode:?}");
    let prog = XdpProgram::attach(&topo.host_if, role, mode)
        .unwrap_or_else(|e| panic!("{what}: attach: {e}"));
    let ifindex = prog.ifindex();
    assert_eq!(ifindex, ifindex_of(&topo.host_if));
    assert_attached(&topo, &prog, mode);

    assert_tcp_exchange(&topo, &format!("{what}, no prefixes"));

    // Uplink: OURS → redirect (no socket → pass). Endpoint: a non-LOCAL destination → redirect
    // (no socket → pass); ARP is redirected too.
    for class in [PrefixClass::Ours, PrefixClass::Local] {
        prog.add_prefix(host_net(topo.host_addr), class).unwrap();
        prog.add_prefix(host_net(topo.host_addr6), class).unwrap();
        assert_tcp_exchange(&topo, &format!("{what}, destination {class:?}, no socket"));
    }

    drop(prog);
    assert_detached(&topo, ifindex);
    assert_tcp_exchange(&topo, &format!("{what}, after detach"));
}

#[test]
fn uplink_generic_attach_passes_traffic_and_detaches_on_drop() {
    attach_pass_traffic_detach(XdpRole::Uplink, AttachMode::Generic);
}

#[test]
fn uplink_native_attach_passes_traffic_and_detaches_on_drop() {
    attach_pass_traffic_detach(XdpRole::Uplink, AttachMode::Native);
}

#[test]
fn endpoint_generic_attach_passes_traffic_and_detaches_on_drop() {
    attach_pass_traffic_detach(XdpRole::Endpoint, AttachMode::Generic);
}

#[test]
fn endpoint_native_attach_passes_traffic_and_detaches_on_drop() {
    attach_pass_traffic_detach(XdpRole::Endpoint, AttachMode::Native);
}

#[test]
fn prefixes_round_trip_and_bad_sockets_are_errors() {
    require(&["ip"]);
    let topo = Topology::new();
    let prog = XdpProgram::attach(&topo.host_if, XdpRole::Uplink, AttachMode::Generic)
        .unwrap_or_else(|e| panic!("attach: {e}"));

    for (prefix, class) in [
        ("10.244.0.0/16", PrefixClass::Ours),
        ("10.244.1.7/32", PrefixClass::Ours),
        ("192.168.1.10/32", PrefixClass::Local),
        ("0.0.0.0/0", PrefixClass::Local),
        ("fd00:10:244::/56", PrefixClass::Ours),
        ("2001:db8::1/128", PrefixClass::Local),
        ("::/0", PrefixClass::Ours),
    ] {
        let net = prefix.parse().unwrap();
        prog.add_prefix(net, class)
            .unwrap_or_else(|e| panic!("add {prefix}: {e}"));
        // Reclassifying is an update, not an error.
        prog.add_prefix(net, PrefixClass::Local)
            .unwrap_or_else(|e| panic!("re-add {prefix}: {e}"));
        prog.remove_prefix(net)
            .unwrap_or_else(|e| panic!("remove {prefix}: {e}"));
        let again = prog
            .remove_prefix(net)
            .expect_err("removing a prefix twice must fail");
        assert_eq!(again.kind(), std::io::ErrorKind::NotFound, "{again}");
        assert!(again.to_string().contains(&topo.host_if), "{again}");
    }
    // Host bits are ignored: added with them, removed without.
    prog.add_prefix("10.1.2.3/24".parse().unwrap(), PrefixClass::Ours)
        .unwrap();
    prog.remove_prefix("10.1.2.0/24".parse().unwrap()).unwrap();

    // Not a socket fd, a socket that is not AF_XDP, a negative fd, a queue out of range.
    let file = fs::File::open("/dev/null").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    use std::os::fd::AsRawFd;
    for (queue, fd, what) in [
        (0, file.as_raw_fd(), "/dev/null"),
        (0, udp.as_raw_fd(), "UDP socket"),
        (0, -1, "fd -1"),
        (0, 999_999, "closed fd"),
        (64, udp.as_raw_fd(), "queue 64"),
    ] {
        let err = prog
            .register_socket(queue, fd)
            .expect_err(&format!("register_socket with {what} must fail"));
        let msg = err.to_string();
        assert!(msg.contains(&topo.host_if), "{what}: {msg}");
        eprintln!("register_socket({queue}, {what}) -> {msg}");
    }
    prog.unregister_socket(0)
        .expect("unregistering an empty queue is fine");
    assert!(prog.unregister_socket(64).is_err());
}

#[test]
fn attach_errors_name_the_interface() {
    require(&["ip"]);
    let missing = format!("vxnone{}", std::process::id());
    let err = XdpProgram::attach(&missing, XdpRole::Uplink, AttachMode::Generic)
        .expect_err("attaching to a missing interface must fail");
    assert!(err.to_string().contains(&missing), "{err}");

    // A second program on the same interface: the kernel refuses (one XDP link per device/mode).
    let topo = Topology::new();
    let first = XdpProgram::attach(&topo.host_if, XdpRole::Uplink, AttachMode::Generic).unwrap();
    let err = XdpProgram::attach(&topo.host_if, XdpRole::Endpoint, AttachMode::Generic)
        .expect_err("a second XDP link on the same interface must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&topo.host_if) && msg.contains("attach"),
        "{msg}"
    );
    eprintln!("second attach -> {msg}");
    drop(first);
    assert_detached(&topo, ifindex_of(&topo.host_if));
}

/// Run only as a child process by `sigkill_detaches_the_program`.
#[test]
#[ignore = "helper: run in a child process by sigkill_detaches_the_program"]
fn child_attach_and_sleep() {
    let Ok(ifname) = std::env::var(CHILD_IF_ENV) else {
        eprintln!("helper, not a test: does nothing unless run by sigkill_detaches_the_program");
        return;
    };
    let _prog = XdpProgram::attach(&ifname, XdpRole::Uplink, AttachMode::Native)
        .unwrap_or_else(|e| panic!("child attach: {e}"));
    println!("CHILD-ATTACHED");
    std::io::stdout().flush().unwrap();
    thread::sleep(Duration::from_secs(60));
}

/// The point of BPF links: the program goes away with the process, even on SIGKILL.
#[test]
fn sigkill_detaches_the_program() {
    require(&["ip"]);
    let topo = Topology::new();
    let exe = std::env::current_exe().unwrap();
    assert!(Path::new(&exe).exists());
    let mut child = Command::new(&exe)
        .args([
            "child_attach_and_sleep",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_IF_ENV, &topo.host_if)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the child test process");
    // Kill the child even if an assertion below fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let mut attached = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("CHILD-ATTACHED") {
            attached = true;
            break;
        }
    }
    assert!(
        attached,
        "the child exited without attaching (see its stderr)"
    );
    let link = topo.host_link();
    assert!(
        xdp_prog_id(&link).is_some(),
        "child attached but `ip link` shows no program:\n{link}"
    );

    child.0.kill().unwrap(); // SIGKILL: no destructor runs in the child.
    let status = child.0.wait().unwrap();
    assert!(!status.success());
    assert_detached(&topo, ifindex_of(&topo.host_if));
}

/// Uplink role with a socket registered: what goes to the vRouter, what stays with the kernel.
fn uplink_redirect_decisions(mode: AttachMode) {
    require(&["ip", "socat"]);
    let topo = Topology::new();
    topo.static_neighbours();
    let what = format!("uplink/{mode:?}");
    let xsk = CountingSocket::new(&topo.host_if);
    let prog = XdpProgram::attach(&topo.host_if, XdpRole::Uplink, mode)
        .unwrap_or_else(|e| panic!("{what}: attach: {e}"));
    prog.register_socket(0, xsk.fd())
        .unwrap_or_else(|e| panic!("{what}: register_socket: {e}"));
    let hosts = [IpAddr::V4(topo.host_addr), IpAddr::V6(topo.host_addr6)];

    // Unclassified destinations belong to the kernel.
    assert_tcp_exchange(&topo, &format!("{what}, unclassified, socket registered"));

    // OURS: the vRouter's; the kernel never sees the connection.
    for host in hosts {
        prog.add_prefix(host_net(host), PrefixClass::Ours).unwrap();
        let before = xsk.delivered();
        let result = tcp_exchange(&topo, host, Duration::from_secs(1));
        assert!(
            result.is_err(),
            "{what}: TCP to OURS {host} reached the kernel despite the registered socket"
        );
        xsk.wait_for_more_than(before, &format!("{what}, TCP to OURS {host}"));
    }

    // LOCAL: the node's own traffic stays with the kernel; tunnels go to the vRouter.
    for host in hosts {
        prog.add_prefix(host_net(host), PrefixClass::Local).unwrap();
    }
    assert_tcp_exchange(&topo, &format!("{what}, LOCAL"));
    for host in hosts {
        let sock = UdpSocket::bind((host, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let port = sock.local_addr().unwrap().port();
        send_datagram(&topo, host, port, false);
        let mut buf = [0u8; 64];
        let (n, _) = sock.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!("{what}: UDP to LOCAL {host}:{port} did not reach the host: {e}")
        });
        assert_eq!(&buf[..n], b"datagram");

        let tunnels: &[(u16, bool, &str)] = match host {
            IpAddr::V4(_) => &[
                (4789, false, "VXLAN"),
                (4, true, "IPIP"),
                (41, true, "IPv6-in-IPv4"),
            ],
            IpAddr::V6(_) => &[
                (4789, false, "VXLAN"),
                (4, true, "IPv4-in-IPv6"),
                (41, true, "IPv6-in-IPv6"),
            ],
        };
        for &(port, raw, kind) in tunnels {
            let before = xsk.delivered();
            send_datagram(&topo, host, port, raw);
            xsk.wait_for_more_than(before, &format!("{what}, {kind} to LOCAL {host}"));
        }
    }

    // Without a socket, OURS falls back to the kernel again.
    for host in hosts {
        prog.add_prefix(host_net(host), PrefixClass::Ours).unwrap();
    }
    prog.unregister_socket(0).unwrap();
    assert_tcp_exchange(&topo, &format!("{what}, OURS after unregister_socket"));
}

#[test]
fn uplink_generic_redirects_ours_and_local_tunnels_only() {
    uplink_redirect_decisions(AttachMode::Generic);
}

#[test]
fn uplink_native_redirects_ours_and_local_tunnels_only() {
    uplink_redirect_decisions(AttachMode::Native);
}

/// Endpoint role with a socket registered: everything but LOCAL goes to the vRouter.
fn endpoint_redirect_decisions(mode: AttachMode) {
    require(&["ip", "socat"]);
    let topo = Topology::new();
    topo.static_neighbours();
    let what = format!("endpoint/{mode:?}");
    let xsk = CountingSocket::new(&topo.host_if);
    let prog = XdpProgram::attach(&topo.host_if, XdpRole::Endpoint, mode)
        .unwrap_or_else(|e| panic!("{what}: attach: {e}"));
    prog.register_socket(0, xsk.fd())
        .unwrap_or_else(|e| panic!("{what}: register_socket: {e}"));
    let hosts = [IpAddr::V4(topo.host_addr), IpAddr::V6(topo.host_addr6)];

    // Unclassified (and OURS): the vRouter's.
    for class in [None, Some(PrefixClass::Ours)] {
        for host in hosts {
            if let Some(class) = class {
                prog.add_prefix(host_net(host), class).unwrap();
            }
            let before = xsk.delivered();
            let result = tcp_exchange(&topo, host, Duration::from_secs(1));
            assert!(
                result.is_err(),
                "{what}: TCP to {class:?} {host} reached the kernel despite the registered socket"
            );
            xsk.wait_for_more_than(before, &format!("{what}, TCP to {class:?} {host}"));
        }
    }

    // LOCAL: the pod talks to the host's own services.
    for host in hosts {
        prog.add_prefix(host_net(host), PrefixClass::Local).unwrap();
    }
    assert_tcp_exchange(&topo, &format!("{what}, LOCAL"));

    // ARP goes to the vRouter even when the target address is LOCAL.
    let host_v4 = topo.host_addr.to_string();
    run(&[
        "ip",
        "-n",
        &topo.ns,
        "neigh",
        "del",
        &host_v4,
        "dev",
        &topo.peer_if,
    ]);
    let before = xsk.delivered();
    send_datagram(&topo, IpAddr::V4(topo.host_addr), 9, false);
    xsk.wait_for_more_than(before, &format!("{what}, ARP request for LOCAL {host_v4}"));
}

#[test]
fn endpoint_generic_redirects_all_but_local() {
    endpoint_redirect_decisions(AttachMode::Generic);
}

#[test]
fn endpoint_native_redirects_all_but_local() {
    endpoint_redirect_decisions(AttachMode::Native);
}

/// Whether the kernel of the root namespace resolved `addr` on `dev` (an `lladdr` in its entry),
/// after `ping` (run from the root namespace, whatever its outcome) made it ask.
fn kernel_resolves(dev: &str, addr: &str) -> bool {
    let _ = Command::new("ip")
        .args(["neigh", "flush", "to", addr, "dev", dev])
        .status();
    let _ = Command::new("ping")
        .args(["-c", "2", "-i", "0.3", "-W", "1", "-I", dev, addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    run(&["ip", "neigh", "show", "to", addr, "dev", dev]).contains("lladdr")
}

/// Endpoint role: the pod's answers to the kernel's own ARP / ND requests reach the kernel once
/// `answers_to_kernel` is set (the vRouter knows the pod's MAC), and the vRouter before.
fn endpoint_answers_to_kernel(mode: AttachMode) {
    require(&["ip", "ping"]);
    let topo = Topology::new();
    let what = format!("endpoint/{mode:?}");
    // Link-local addresses of our own, usable at once: neighbour advertisements answering the
    // kernel go to its link-local source, which no class names.
    run(&[
        "ip",
        "addr",
        "add",
        "fe80::5318:1/64",
        "dev",
        &topo.host_if,
        "nodad",
    ]);
    let peer_ll = "fe80::5318:2";
    run(&[
        "ip",
        "-n",
        &topo.ns,
        "addr",
        "add",
        &format!("{peer_ll}/64"),
        "dev",
        &topo.peer_if,
        "nodad",
    ]);
    let xsk = CountingSocket::new(&topo.host_if);
    let prog = XdpProgram::attach(&topo.host_if, XdpRole::Endpoint, mode)
        .unwrap_or_else(|e| panic!("{what}: attach: {e}"));
    prog.register_socket(0, xsk.fd())
        .unwrap_or_else(|e| panic!("{what}: register_socket: {e}"));
    prog.add_prefix(host_net(topo.host_addr), PrefixClass::Local)
        .unwrap();
    let peer_v4 = topo.peer_addr.to_string();

    for addr in [peer_v4.as_str(), peer_ll] {
        let before = xsk.delivered();
        assert!(
            !kernel_resolves(&topo.host_if, addr),
            "{what}: the pod's answer for {addr} reached the kernel before answers_to_kernel"
        );
        xsk.wait_for_more_than(before, &format!("{what}, the pod's answer for {addr}"));
    }
    prog.answers_to_kernel(true).unwrap();
    for addr in [peer_v4.as_str(), peer_ll] {
        assert!(
            kernel_resolves(&topo.host_if, addr),
            "{what}: the pod's answer for {addr} did not reach the kernel after answers_to_kernel"
        );
    }
    // Other traffic from the pod still goes to the vRouter.
    let before = xsk.delivered();
    let _ = tcp_exchange(&topo, IpAddr::V6(topo.host_addr6), Duration::from_secs(1));
    xsk.wait_for_more_than(
        before,
        &format!("{what}, TCP to unclassified {}", topo.host_addr6),
    );
}

#[test]
fn endpoint_generic_hands_the_pods_answers_to_the_kernel() {
    endpoint_answers_to_kernel(AttachMode::Generic);
}

#[test]
fn endpoint_native_hands_the_pods_answers_to_the_kernel() {
    endpoint_answers_to_kernel(AttachMode::Native);
}

/// A program loaded ahead attaches later like a fresh one; a refused attach (an interface that
/// does not exist) gives it back, and it still attaches afterwards.
#[test]
fn a_preloaded_program_attaches_later_and_survives_a_refusal() {
    require(&["ip", "socat"]);
    let topo = Topology::new();
    let pre = XdpProgram::preload(XdpRole::Endpoint).expect("preloading");
    let (err, pre) = XdpProgram::attach_preloaded("no-such-if0", pre, AttachMode::Generic)
        .expect_err("no such interface");
    assert!(err.to_string().contains("no-such-if0"), "{err}");
    let prog = XdpProgram::attach_preloaded(&topo.host_if, pre, AttachMode::Generic)
        .unwrap_or_else(|(e, _)| panic!("attaching the preloaded program: {e}"));
    assert_attached(&topo, &prog, AttachMode::Generic);
    assert_tcp_exchange(&topo, "preloaded endpoint program");
    let ifindex = prog.ifindex();
    drop(prog);
    assert_detached(&topo, ifindex);
}
