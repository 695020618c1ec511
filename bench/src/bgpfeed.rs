//! A BGP feed for the benchmarks: a full IPv4 table (DPDK's length distribution) packed
//! into pre-encoded UPDATEs, and a minimal sender session (OPEN, KEEPALIVE, then the
//! bytes as fast as TCP takes them; a thread answers keepalives). Used by bgpbench and
//! by fwdbench's `fullfib` scenario.

use crate::netns;
use control::bgp::wire::{self, Family, Message, Open, PathAttrs, Session};
use ipnet::{IpNet, Ipv4Net};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The sender's AS (eBGP to the device under test).
pub const SENDER_AS: u32 = 65000;

/// vrouterd's `[bgp]` table for the feed: AS `asn` listening on `listen`, the sender at
/// `sender` as a passive eBGP peer; no mesh, no graceful restart.
pub fn vrouterd_bgp(asn: u32, listen: &str, sender: &str) -> String {
    format!(
        r#"[bgp]
asn = {asn}
mesh = false
graceful_restart = 0
listen = "{listen}"
[[bgp.peers]]
address = "{sender}"
asn = {SENDER_AS}
passive = true
hold_time = 240
"#
    )
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The table: `n` distinct prefixes with DPDK's length distribution, none of them a
/// network no BGP speaker or kernel takes as unicast (0/8, 127/8, multicast and above,
/// shorter than /8), nor in 10/8 (the benchmarks' own networks). DPDK's own draw repeats
/// prefixes (few /8–/16 exist) and some fall
/// in those networks, so a larger draw is made and `n` of its valid distinct prefixes
/// are taken evenly across it (it is ordered by length: each length keeps its share).
/// Returns the table and how many prefixes were drawn.
pub fn table(n: usize, seed: u64) -> (Vec<Ipv4Net>, usize) {
    let mut drawn = n;
    loop {
        let mut seen = HashSet::new();
        let valid: Vec<Ipv4Net> = fib::synth::dpdk_v4(drawn, seed)
            .into_iter()
            .map(|p| p.trunc())
            .filter(|p| {
                let first = p.network().octets()[0];
                first != 0 && first != 10 && first != 127 && first < 224 && p.prefix_len() >= 8
            })
            .filter(|p| seen.insert(*p))
            .collect();
        if valid.len() >= n {
            let step = valid.len() as f64 / n as f64;
            let table = (0..n).map(|i| valid[(i as f64 * step) as usize]).collect();
            return (table, drawn);
        }
        drawn = (drawn as f64 * n as f64 / valid.len().max(1) as f64 * 1.02) as usize + 1;
    }
}

/// UPDATEs announcing `prefixes` from AS 65000 with next hop `next_hop`.
pub fn encode_announce(prefixes: &[Ipv4Net], next_hop: Ipv4Addr) -> Vec<u8> {
    let attrs = PathAttrs {
        origin: 0,
        as_path: vec![SENDER_AS],
        as_path_len: 1,
        ..PathAttrs::default()
    };
    let nets: Vec<IpNet> = prefixes.iter().map(|&p| IpNet::V4(p)).collect();
    wire::announce(&nets, &attrs, next_hop.into(), false).concat()
}

pub fn encode_withdraw(prefixes: &[Ipv4Net]) -> Vec<u8> {
    let nets: Vec<IpNet> = prefixes.iter().map(|&p| IpNet::V4(p)).collect();
    wire::withdraw(&nets).concat()
}

/// Read one whole BGP message.
pub fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    loop {
        if let Ok(Some(len)) = wire::frame_len(buf) {
            if buf.len() >= len {
                let m = buf[..len].to_vec();
                buf.drain(..len);
                return Ok(m);
            }
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn open_message(asn: u32, id: Ipv4Addr) -> Vec<u8> {
    wire::open(&Open {
        asn,
        hold_time: 240,
        router_id: id,
        caps: wire::Capabilities {
            four_octet_as: true,
            families: vec![Family::Ipv4],
            route_refresh: true,
            graceful_restart: None,
        },
    })
}

/// The sender's session: connected and Established (OPENs and KEEPALIVEs exchanged);
/// a thread keeps reading (and answering keepalives) so the peer never blocks.
pub struct SenderSession {
    pub stream: TcpStream,
    pub established_us: u64,
}

/// Connect from namespace `ns` to the speaker at `to` as AS 65000 with router id `id`.
pub fn connect(ns: &str, to: SocketAddr, id: Ipv4Addr) -> io::Result<SenderSession> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match netns::in_netns(ns, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1))
        }) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nodelay(true)?;
    stream.write_all(&open_message(SENDER_AS, id))?;
    let mut buf = Vec::new();
    let session = Session {
        four_octet_as: true,
    };
    loop {
        let m = read_message(&mut stream, &mut buf)?;
        match wire::decode(&m, session) {
            Ok(Message::Open(_)) => stream.write_all(&wire::keepalive())?,
            Ok(Message::Keepalive) => break,
            Ok(Message::Notification(n)) => {
                return Err(io::Error::other(format!(
                    "NOTIFICATION {}/{}",
                    n.code, n.subcode
                )))
            }
            _ => {}
        }
    }
    let established_us = now_us();
    let mut reader = stream.try_clone()?;
    let mut writer = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        while let Ok(m) = read_message(&mut reader, &mut buf) {
            if m.get(18) == Some(&wire::KEEPALIVE) {
                let _ = writer.write_all(&wire::keepalive());
            }
        }
    });
    Ok(SenderSession {
        stream,
        established_us,
    })
}

/// vrouterd's BGP view in its stats file (`--stats-file`): (routes installed, last
/// install ms since the Unix epoch).
pub fn vrouter_stats(path: &Path) -> Option<(usize, u64)> {
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let b = j.get("bgp")?;
    Some((
        b["routes_installed"].as_u64()? as usize,
        b["last_install_unix_ms"].as_u64()?,
    ))
}

/// Poll vrouterd's stats file until it reports `want` routes installed; the time of
/// the last install (µs since the Unix epoch). `alive` fails when vrouterd died.
pub fn wait_installed(
    path: &Path,
    want: usize,
    within: Duration,
    alive: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<u64> {
    let end = Instant::now() + within;
    loop {
        alive()?;
        if let Some((n, at)) = vrouter_stats(path) {
            if n == want {
                return Ok(at * 1000);
            }
        }
        if Instant::now() > end || netns::interrupted() {
            let got = vrouter_stats(path).map_or(0, |s| s.0);
            return Err(io::Error::other(format!(
                "{got} of {want} routes installed"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
