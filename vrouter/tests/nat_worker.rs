//! `vrouterctl conntrack` against a worker that is forwarding: the flow table has one
//! owner, and readers go through it (a command carried out between bursts). Lists taken
//! while 6,000 NAT flows are being made are each a consistent picture, growing, and the
//! last holds every flow, each with its own port toward its destination; a flush takes
//! what its filter picks and nothing else.

use etherparse::PacketBuilder;
use fib::{Fib4, Fib6, NextHopId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use vrouter::arp::HOST_SIDE_MAC;
use vrouter::config::PollMode;
use vrouter::conntrack::view::FlowFilter;
use vrouter::counters::Counters;
use vrouter::io::memory::MemoryIo;
use vrouter::nexthop::{Adjacency, NextHopTable, PortId};
use vrouter::pipeline::{Pipeline, Port, PortKind};
use vrouter::tunnel::{Overlay, TunnelTable};
use vrouter::worker::{Worker, WorkerCmd};

const POD: [u8; 4] = [10, 244, 1, 2];
const NODE: [u8; 4] = [10, 0, 0, 1];
const FLOWS: u16 = 6000;

fn frame(sport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], HOST_SIDE_MAC)
        .ipv4(POD, [198, 51, 100, (sport % 200) as u8], 64)
        .udp(sport, 53);
    let mut f = Vec::new();
    b.write(&mut f, b"q").unwrap();
    f
}

fn ask(
    tx: &mpsc::Sender<WorkerCmd>,
    filter: &str,
    flush: bool,
) -> (Vec<vrouter::conntrack::view::FlowView>, usize) {
    let (done, answer) = mpsc::channel();
    tx.send(WorkerCmd::Flows {
        filter: FlowFilter::parse(filter).unwrap(),
        limit: usize::MAX,
        flush,
        done,
    })
    .unwrap();
    answer.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn lists_taken_while_the_worker_forwards_are_consistent() {
    let nexthops = Arc::new(NextHopTable::new(4));
    nexthops.set(
        0,
        Adjacency::Forward {
            port: PortId(0),
            mac: [0x52, 0x54, 0, 0, 0, 0xfe],
        },
    );
    let mut fib4 = Fib4::new();
    fib4.insert("0.0.0.0/0".parse().unwrap(), NextHopId(0));
    let fib6 = Fib6::new();
    let ports: Arc<[Port]> = vec![
        Port {
            mac: [0x02, 0, 0, 0, 0, 1],
            mtu: 1500,
            kind: PortKind::Uplink,
        },
        Port {
            mac: HOST_SIDE_MAC,
            mtu: 1500,
            kind: PortKind::Endpoint {
                v4: vec![u32::from_be_bytes(POD)],
                v6: vec![],
            },
        },
    ]
    .into();
    let overlay = Overlay {
        local_v4: vec![u32::from_be_bytes(NODE)],
        pools_v4: vec![(0x0af4_0000, 16)],
        nat_v4: vec![(0x0af4_0000, 16)],
        vni: 4096,
        ..Overlay::default()
    };
    let counters = Arc::new(Counters::new(1));
    let pipeline = Pipeline::new(
        fib4.reader(),
        fib6.reader(),
        nexthops.clone(),
        ports,
        counters.clone(),
        0,
    )
    .with_overlay(Arc::new(TunnelTable::new(1)), overlay)
    .with_conntrack(8192, 61000..=65535, 1);
    let mut io = MemoryIo::new(2, FLOWS as usize + 64);
    for sport in 0..FLOWS {
        assert!(io.inject(PortId(1), &frame(1024 + sport)));
    }
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut w =
                Worker::new(io, pipeline, nexthops, Vec::new(), PollMode::Busy).with_commands(rx);
            // Slowly, so that lists land in the middle: a burst at a time.
            while !stop.load(Ordering::Relaxed) {
                w.poll_once();
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (flows, n) = ask(&tx, "", false);
        assert_eq!(flows.len(), n);
        for f in &flows {
            assert!(f.translated, "{f:?}");
            assert_eq!(f.reply.2, std::net::IpAddr::from(NODE), "{f:?}");
            assert!((61000..=65535).contains(&f.reply.3), "{f:?}");
            assert_eq!(f.state, "UNREPLIED");
        }
        seen.push(n);
        if n == FLOWS as usize || Instant::now() > end {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(*seen.last().unwrap(), FLOWS as usize, "lists: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "lists: {seen:?}");
    assert!(
        seen.iter().any(|&n| n > 0 && n < FLOWS as usize),
        "no list was taken mid-way: {seen:?}"
    );
    // Ports are endpoint-dependent: distinct among the flows to one destination.
    let (flows, _) = ask(&tx, "", false);
    let mut by_dst: Vec<(std::net::IpAddr, u16)> =
        flows.iter().map(|f| (f.reply.0, f.reply.3)).collect();
    by_dst.sort_unstable();
    by_dst.dedup();
    assert_eq!(by_dst.len(), FLOWS as usize);

    let (_, flushed) = ask(&tx, "dst=198.51.100.7", true);
    assert_eq!(flushed, 30);
    assert_eq!(ask(&tx, "", false).1, FLOWS as usize - 30);
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert_eq!(counters.total().nat_translated, u64::from(FLOWS));
}
