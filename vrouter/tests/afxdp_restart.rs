//! A restart that takes over the last run's AF_XDP state (systemd's fd store): the UMEM
//! memfd, the bound socket and the attached XDP program outlive the process that made
//! them (here: copies of their fds, as systemd holds them), frames that arrive while no
//! process runs wait in the socket's RX ring, and the next `AfXdpIo::open_kept` /
//! `XdpProgram::adopt` receive them, send again, and lose or double no frame.
//!
//! Needs root (BPF, AF_XDP, namespaces), `ip` and `socat`; FAILS saying so without them.

use std::net::Ipv4Addr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vrouter::burst::{Action, DropReason};
use vrouter::io::afxdp::adopt::Kept;
use vrouter::io::afxdp::AfXdpIo;
use vrouter::io::{Io, PortSpec};
use vrouter::nexthop::PortId;
use vrouter::xdp::{AttachMode, PrefixClass, XdpProgram, XdpRole};

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (needs root, iproute2 and socat)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth pair: `host` here (our sockets), `peer` in namespace `ns` (sends datagrams).
struct Pair {
    ns: String,
    host: String,
    peer: String,
    host_addr: Ipv4Addr,
}

impl Pair {
    fn new() -> Pair {
        static COUNTER: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let k = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let p = Pair {
            ns: format!("vr-restart-{pid}-{k}"),
            host: format!("vrr{pid}h{k}"),
            peer: format!("vrr{pid}p{k}"),
            host_addr: Ipv4Addr::new(198, 19, (pid % 250) as u8, 4 * k + 1),
        };
        let peer_addr = Ipv4Addr::new(198, 19, (pid % 250) as u8, 4 * k + 2);
        run(&["ip", "netns", "add", &p.ns]);
        run(&[
            "ip", "link", "add", &p.host, "type", "veth", "peer", "name", &p.peer, "netns", &p.ns,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", p.host_addr),
            "dev",
            &p.host,
        ]);
        run(&["ip", "link", "set", &p.host, "up"]);
        let n = |a: &[&str]| {
            let mut v = vec!["ip", "-n", p.ns.as_str()];
            v.extend_from_slice(a);
            run(&v);
        };
        n(&["addr", "add", &format!("{peer_addr}/30"), "dev", &p.peer]);
        n(&["link", "set", &p.peer, "up"]);
        // No ARP: every frame from the peer is a datagram the test counts.
        n(&[
            "neigh",
            "replace",
            &p.host_addr.to_string(),
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            &p.peer,
            "nud",
            "permanent",
        ]);
        p
    }

    /// One UDP datagram with `payload` from the namespace to our address.
    fn send(&self, payload: &str) {
        let target = format!("UDP4-SENDTO:{}:9", self.host_addr);
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "socat", "-u", "STDIN", &target])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(payload.as_bytes())?;
                child.wait_with_output()
            })
            .expect("running socat in the namespace");
        assert!(
            out.status.success(),
            "socat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn peer_rx_packets(&self) -> u64 {
        let path = format!("/sys/class/net/{}/statistics/rx_packets", self.peer);
        let out = run(&["ip", "netns", "exec", &self.ns, "cat", &path]);
        out.trim().parse().expect("rx_packets")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Payloads of the datagrams received on port 0 until `n` came or 3 s passed.
fn receive(io: &mut AfXdpIo, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while got.len() < n && Instant::now() < end {
        io.rx_burst(PortId(0), &mut |frames, lens, actions| {
            for ((f, &len), a) in frames.iter().zip(lens).zip(actions.iter_mut()) {
                // Ethernet 14 + IPv4 20 + UDP 8, to port 9 (not the peer's IPv6 chatter).
                if len > 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0, 9] {
                    got.push(String::from_utf8_lossy(&f[42..len]).into_owned());
                }
                *a = Action::Drop(DropReason::Malformed);
            }
        });
        io.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

fn dup(fd: BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().expect("dup")
}

#[test]
fn a_restart_takes_over_the_rings_and_receives_what_came_meanwhile() {
    let pair = Pair::new();
    let ports = [(
        PortId(0),
        PortSpec::Xsk {
            ifname: pair.host.clone(),
            queue: 0,
            uplink: false,
        },
    )];
    let prog = XdpProgram::attach(&pair.host, XdpRole::Endpoint, AttachMode::Generic)
        .expect("attaching the endpoint program");
    let mut io = AfXdpIo::open_for_mtu(&ports, 1500).expect("opening the socket");
    prog.register_socket(0, io.socket_fd(PortId(0)).unwrap())
        .expect("steering queue 0");
    let total = io.frame_count();
    for i in 0..3 {
        pair.send(&format!("before-{i}"));
    }
    assert_eq!(receive(&mut io, 3), ["before-0", "before-1", "before-2"]);
    io.check_frames().expect("frames before the restart");

    // The crash: our fds close, the copies "systemd" holds keep everything alive.
    let (umem, sockets) = io.keepable();
    let kept_umem = dup(umem);
    let kept_sockets: Vec<(String, u32, OwnedFd)> = sockets
        .into_iter()
        .map(|(i, q, fd)| (i.to_string(), q, dup(fd)))
        .collect();
    let kept_prog: Vec<OwnedFd> = prog.keepable().into_iter().map(dup).collect();
    drop(io);
    drop(prog);
    for i in 0..5 {
        pair.send(&format!("meanwhile-{i}"));
    }

    let prog = XdpProgram::adopt(&pair.host, kept_prog).expect("adopting the program");
    let mut io = AfXdpIo::open_kept(
        &ports,
        1500,
        0,
        Some(Kept {
            umem: kept_umem,
            sockets: kept_sockets,
        }),
        Default::default(),
    )
    .expect("adopting the socket and UMEM");
    assert_eq!(io.frame_count(), total, "the same UMEM");
    io.check_frames().expect("frames right after adoption");
    let got = receive(&mut io, 5);
    assert_eq!(
        got,
        (0..5).map(|i| format!("meanwhile-{i}")).collect::<Vec<_>>(),
        "what came while no process ran waits in the RX ring"
    );
    // Steering goes on through the adopted program, and TX through the adopted ring.
    pair.send("after");
    assert_eq!(receive(&mut io, 1), ["after"]);
    let before = pair.peer_rx_packets();
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for _ in 0..4 {
        assert!(io.send(PortId(0), &frame));
    }
    let end = Instant::now() + Duration::from_secs(3);
    while pair.peer_rx_packets() < before + 4 && Instant::now() < end {
        io.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        pair.peer_rx_packets() >= before + 4,
        "frames sent after adoption arrive"
    );
    io.flush();
    io.check_frames().expect("frames after sending");
    drop(prog);
}

#[test]
fn a_kept_socket_whose_interface_went_is_not_taken_over() {
    let (stays, goes) = (Pair::new(), Pair::new());
    let spec = |ifname: &str| PortSpec::Xsk {
        ifname: ifname.to_string(),
        queue: 0,
        uplink: false,
    };
    let ports = [
        (PortId(0), spec(&stays.host)),
        (PortId(1), spec(&goes.host)),
    ];
    let io = AfXdpIo::open_for_mtu(&ports, 1500).expect("opening both sockets");
    let (umem, sockets) = io.keepable();
    let kept = Kept {
        umem: dup(umem),
        sockets: sockets
            .into_iter()
            .map(|(i, q, fd)| (i.to_string(), q, dup(fd)))
            .collect(),
    };
    drop(io);
    // The pod of `goes` is deleted while no process runs: the kernel unbinds its socket.
    let gone = goes.host.clone();
    drop(goes);
    let io = AfXdpIo::open_kept(&ports[..1], 1500, 0, Some(kept), Default::default())
        .expect("the start goes on without the gone interface");
    assert_eq!(io.not_taken_over, [(gone, 0)]);
    io.check_frames().expect("its frames are free again");
}

#[test]
fn a_taken_over_program_sheds_the_prefixes_this_run_did_not_set() {
    let pair = Pair::new();
    let prog =
        XdpProgram::attach(&pair.host, XdpRole::Uplink, AttachMode::Generic).expect("attaching");
    let net = |s: &str| -> ipnet::IpNet { s.parse().unwrap() };
    for p in ["10.244.1.0/26", "10.244.2.0/26", "fd00:1::/122"] {
        prog.add_prefix(net(p), PrefixClass::Ours).unwrap();
    }
    let kept: Vec<OwnedFd> = prog.keepable().into_iter().map(dup).collect();
    drop(prog);
    let prog = XdpProgram::adopt(&pair.host, kept).expect("adopting");
    let mut before = prog.prefixes().unwrap();
    before.sort();
    assert_eq!(
        before.len(),
        3,
        "the last run's prefixes are still there: {before:?}"
    );
    // This run still wants one of them, and one new one.
    prog.add_prefix(net("10.244.1.0/26"), PrefixClass::Ours)
        .unwrap();
    prog.add_prefix(net("10.244.3.0/26"), PrefixClass::Ours)
        .unwrap();
    let mut gone = prog.sweep_stale().unwrap();
    gone.sort();
    assert_eq!(gone, [net("10.244.2.0/26"), net("fd00:1::/122")]);
    let mut left = prog.prefixes().unwrap();
    left.sort();
    assert_eq!(left, [net("10.244.1.0/26"), net("10.244.3.0/26")]);
    // A program attached by this run has nothing to sweep.
    drop(prog);
}

#[test]
fn a_program_kept_for_another_interface_is_refused() {
    let pair = Pair::new();
    let prog =
        XdpProgram::attach(&pair.host, XdpRole::Endpoint, AttachMode::Generic).expect("attaching");
    let kept: Vec<OwnedFd> = prog.keepable().into_iter().map(dup).collect();
    let err = XdpProgram::adopt("lo", kept).expect_err("lo is not where it is attached");
    assert!(err.to_string().contains("attached to ifindex"), "{err}");
    let err = XdpProgram::adopt(&pair.host, Vec::new()).expect_err("no fds");
    assert!(err.to_string().contains("not 6"), "{err}");
}
