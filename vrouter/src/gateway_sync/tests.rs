use super::*;
use crate::nexthop::PortId;

/// The kernel as the tests set it: its table, and the addresses it was asked to
/// resolve.
#[derive(Default)]
struct FakeKernel {
    table: Vec<Neighbour>,
    resolves: Vec<IpAddr>,
}

impl NeighbourTable for FakeKernel {
    fn dump(&mut self) -> io::Result<Vec<Neighbour>> {
        Ok(self.table.clone())
    }
    fn resolve(&mut self, _ifindex: u32, ip: IpAddr) -> io::Result<()> {
        self.resolves.push(ip);
        Ok(())
    }
}

const UPLINK: u32 = 2;
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn entry(via: &str, mac: Option<[u8; 6]>) -> Neighbour {
    Neighbour {
        ifindex: UPLINK,
        ip: ip(via),
        mac,
    }
}

fn gateway(nh: u32, via: &str) -> Gateway {
    Gateway {
        nh,
        port: PortId(0),
        ifindex: UPLINK,
        via: ip(via),
    }
}

fn forward(mac: [u8; 6]) -> Option<Adjacency> {
    Some(Adjacency::Forward {
        port: PortId(0),
        mac,
    })
}

fn updated(via: &str, mac: Option<[u8; 6]>) -> WatchEvent {
    WatchEvent::Changes(vec![NeighbourChange::Updated(entry(via, mac))])
}

/// A sync over `table` after its first pass over `gateways`, as it is with a watch:
/// no further dump due (the tests feed the watch's events by hand).
fn synced(table: Vec<Neighbour>, gateways: &[Gateway]) -> (GatewaySync<FakeKernel>, NextHopTable) {
    let kernel = FakeKernel {
        table,
        ..FakeKernel::default()
    };
    let mut s = GatewaySync::new(kernel, None);
    let nexthops = NextHopTable::new(4);
    s.sync(gateways, 1, &nexthops);
    s.dump_at = None;
    (s, nexthops)
}

#[test]
fn the_table_is_dumped_once_then_changes_alone_move_next_hops() {
    let gws = [gateway(1, "10.99.0.254")];
    let (mut s, nexthops) = synced(vec![entry("10.99.0.254", Some(MAC_A))], &gws);
    assert_eq!(nexthops.get(1), forward(MAC_A));
    s.kernel.table.clear();
    s.sync(&gws, 1, &nexthops);
    assert_eq!(
        nexthops.get(1),
        forward(MAC_A),
        "an empty table was read again"
    );
    s.on_event(updated("10.99.0.254", Some(MAC_B)));
    s.sync(&gws, 1, &nexthops);
    assert_eq!(nexthops.get(1), forward(MAC_B));
    assert_eq!(
        s.counts,
        SyncCounts {
            changes: 1,
            dumps: 1,
            overruns: 0
        }
    );
    assert!(s.kernel.resolves.is_empty());
}

/// Changes lost to an overrun are found by the dump that follows it, and with a watch
/// (a real one here, its events unread) that dump is the last.
#[test]
fn an_overrun_is_resynced_by_a_dump() {
    let gws = [gateway(1, "10.99.0.254"), gateway(2, "10.99.0.253")];
    let (mut s, nexthops) = synced(Vec::new(), &gws);
    s.watch = Some(NeighbourWatch::start().expect("a netlink socket in RTNLGRP_NEIGH"));
    assert_eq!(nexthops.get(1), Some(Adjacency::Incomplete));
    // Both gateways resolve in the kernel, but the announcements are lost.
    s.kernel.table = vec![
        entry("10.99.0.254", Some(MAC_A)),
        entry("10.99.0.253", Some(MAC_B)),
    ];
    s.sync(&gws, 1, &nexthops);
    assert_eq!(nexthops.get(1), Some(Adjacency::Incomplete));
    s.on_event(WatchEvent::Overrun);
    s.on_event(updated("10.99.0.253", Some(MAC_A)));
    s.sync(&gws, 1, &nexthops);
    assert_eq!(nexthops.get(1), forward(MAC_A));
    // The dump is read after the change announced since the overrun: it is the newer.
    assert_eq!(nexthops.get(2), forward(MAC_B));
    assert_eq!((s.counts.dumps, s.counts.overruns), (2, 1));
    assert_eq!(s.dump_at, None, "a watch needs no further dumps");
}

/// An unresolved gateway is asked of the kernel once per RETRY, however many changes
/// come meanwhile; its next hop is set as soon as an announcement carries its MAC.
#[test]
fn an_unresolved_gateway_is_asked_once_a_second_and_set_on_its_announcement() {
    let gws = [gateway(1, "10.99.0.254")];
    let (mut s, nexthops) = synced(Vec::new(), &gws);
    assert_eq!(s.kernel.resolves, vec![ip("10.99.0.254")]);
    s.on_event(updated("10.99.0.254", None));
    s.on_event(updated("10.99.0.7", Some(MAC_B)));
    s.sync(&gws, 1, &nexthops);
    assert_eq!(s.kernel.resolves.len(), 1, "asked again within a second");
    assert_eq!(nexthops.get(1), Some(Adjacency::Incomplete));
    s.on_event(updated("10.99.0.254", Some(MAC_A)));
    s.sync(&gws, 1, &nexthops);
    assert_eq!(nexthops.get(1), forward(MAC_A));
    assert!(s.resolved);
}

/// A deleted or failed entry leaves the next hop on its last MAC (frames still go
/// out while the kernel re-resolves) and the kernel is asked again.
#[test]
fn a_deleted_entry_keeps_the_last_mac_and_is_asked_again() {
    let gws = [gateway(1, "10.99.0.254")];
    let (mut s, nexthops) = synced(vec![entry("10.99.0.254", Some(MAC_A))], &gws);
    s.on_event(WatchEvent::Changes(vec![NeighbourChange::Deleted {
        ifindex: UPLINK,
        ip: ip("10.99.0.254"),
    }]));
    s.sync(&gws, 1, &nexthops);
    assert_eq!(nexthops.get(1), forward(MAC_A));
    assert_eq!(s.kernel.resolves, vec![ip("10.99.0.254")]);
    assert!(!s.resolved);
}

/// A new gateway the kernel already knows is set at once, from the copy of the table
/// (no dump, no request).
#[test]
fn a_new_gateway_is_looked_up_in_the_copy_at_once() {
    let (mut s, nexthops) = synced(vec![entry("10.99.0.9", Some(MAC_B))], &[]);
    s.sync(&[gateway(3, "10.99.0.9")], 2, &nexthops);
    assert_eq!(nexthops.get(3), forward(MAC_B));
    assert_eq!(s.counts.dumps, 1);
    assert!(s.kernel.resolves.is_empty());
}

/// With no watch, the table is dumped again after RETRY.
#[test]
fn without_a_watch_the_table_is_dumped_each_retry() {
    let mut s = GatewaySync::new(FakeKernel::default(), None);
    let nexthops = NextHopTable::new(1);
    s.sync(&[], 0, &nexthops);
    let next = s.dump_at.expect("no next dump without a watch");
    let wait = next.saturating_duration_since(Instant::now());
    assert!(wait > RETRY / 2 && wait <= RETRY, "{wait:?}");
}
