//! The node's operations on a fake host: endpoints, pools, static routes against BGP's,
//! the reload diff and what persists. No root, no workers: the fake host keeps what the
//! workers and the kernel would (open ports, XDP programs, uplink prefixes) and refuses
//! what the kernel refuses (a second XDP program on an interface).

use super::{config, node_with, state_dir, Machine};
use crate::config::{Endpoint, EndpointKind, Pool, StaticRoute, Via};
use crate::nexthop::Adjacency;
use crate::node::endpoints::EndpointRequest;
use crate::node::error::NodeError;
use crate::node::persist::{open_ipam, ApiState};
use crate::node::{NodeState, Origin};
use control::speaker::RouteChange;
use ipnet::IpNet;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

pub(super) const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
queues = [0, 1]
[[pools]]
cidr = "10.244.0.0/16"
[[pools]]
cidr = "fd10::/48"
[workers]
count = 2
endpoint_slots = 4
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32"]
[[endpoints]]
name = "b"
kind = "veth"
interface = "cali-b"
ips = ["10.244.1.3/32"]
[[routes]]
dst = "0.0.0.0/0"
via = "10.0.0.254"
[bgp]
"#;

fn node() -> (NodeState, Rc<RefCell<Machine>>, PathBuf) {
    let dir = state_dir();
    let (n, m) = node_with(CONFIG, &dir);
    (n, m, dir)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn request(name: &str, interface: &str) -> EndpointRequest {
    EndpointRequest {
        name: name.into(),
        kind: EndpointKind::Veth,
        interface: interface.into(),
        ips: Vec::new(),
        mac: None,
        ipv6: true,
        labels: Default::default(),
        container_id: None,
        workload: None,
    }
}

#[test]
fn an_endpoint_added_and_removed_through_the_api() {
    let (mut node, machine, dir) = node();
    let slots = node.ports.free_slots.len();
    let ep = node.add_endpoint(request("c", "cali-c")).unwrap();
    // Addresses from IPAM, one per family, in our pools' blocks.
    let v4 = IpNet::from(std::net::IpAddr::V4(ep.v4.unwrap()));
    let v6 = IpNet::from(std::net::IpAddr::V6(ep.v6.unwrap()));
    assert!(net("10.244.0.0/16").contains(&v4) && net("fd10::/48").contains(&v6));
    // Its port is open on its worker, steered by its own program, and routed.
    assert_eq!(
        machine.borrow().open.get(&ep.port.0).map(String::as_str),
        Some("cali-c")
    );
    assert!(machine.borrow().xdp.contains("cali-c"));
    assert_eq!(node.tables.get(v4), Some(ep.nh));
    assert_eq!(node.tables.get(v6), Some(ep.nh));
    assert_eq!(node.tables.nexthops.get(ep.nh), Some(Adjacency::Incomplete));
    assert!(machine.borrow().steered.contains(&v4));
    assert_eq!(node.ports.free_slots.len(), slots - 1);
    assert!(node.origins.endpoints.contains("c"));
    assert_eq!(
        node.add_endpoint(request("c", "cali-d")).unwrap_err(),
        NodeError::AlreadyExists("endpoint c exists".into())
    );
    // File endpoints go by editing the file.
    assert!(matches!(
        node.remove_endpoint("a"),
        Err(NodeError::Precondition(_))
    ));
    let released = node.remove_endpoint("c").unwrap();
    assert_eq!(released.len(), 2);
    assert_eq!(node.tables.get(v4), None);
    assert!(!machine.borrow().xdp.contains("cali-c"), "program detached");
    assert!(
        !machine.borrow().open.contains_key(&ep.port.0),
        "socket closed"
    );
    assert_eq!(
        machine.borrow().ports[&ep.port.0],
        crate::node::plan::idle_port(),
        "the port sends nothing any more"
    );
    assert_eq!(node.ports.free_slots.len(), slots);
    assert!(node.ipam.addresses_of("c").is_empty());
    assert_eq!(
        node.remove_endpoint("c").unwrap_err(),
        NodeError::NotFound("no endpoint c".into())
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_open_leaves_nothing_behind() {
    let (mut node, machine, dir) = node();
    let slots = node.ports.free_slots.len();
    // An interface in use by another endpoint is refused by validation.
    let err = node.add_endpoint(request("x", "cali-a")).unwrap_err();
    assert!(err.message().contains("cali-a used twice"), "{err}");
    // A program left on cali-c (what the reload bug left): the kernel refuses a second.
    machine.borrow_mut().xdp.insert("cali-c".into());
    let err = node.add_endpoint(request("x", "cali-c")).unwrap_err();
    assert!(err.message().contains("File exists"), "{err}");
    assert_eq!(node.ports.free_slots.len(), slots);
    assert!(
        node.ipam.addresses_of("x").is_empty(),
        "addresses given back"
    );
    assert!(node.endpoint("x").is_none());
    assert_eq!(machine.borrow().open.len(), 2, "only the file's endpoints");
    // No such interface: not found, nothing taken.
    assert!(matches!(
        node.add_endpoint(request("y", "cali-zz")),
        Err(NodeError::NotFound(_))
    ));
    assert!(node.ipam.addresses_of("y").is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn endpoint_slots_run_out_with_a_clear_error() {
    let (mut node, _machine, dir) = node();
    for (i, ifname) in ["t0", "t1", "t2", "t3"].iter().enumerate() {
        let mut r = request(&format!("tap{i}"), ifname);
        r.kind = EndpointKind::Tap;
        node.add_endpoint(r).unwrap();
    }
    let mut r = request("tap4", "t4");
    r.kind = EndpointKind::Tap;
    let err = node.add_endpoint(r).unwrap_err();
    assert!(matches!(err, NodeError::Exhausted(_)), "{err:?}");
    assert!(node.ipam.addresses_of("tap4").is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pools_applied_and_removed() {
    let (mut node, machine, dir) = node();
    let pool = Pool {
        block_size: Some(28),
        vxlan_mode: crate::config::EncapMode::Always,
        nat_outgoing: true,
        ..Pool::new(net("10.250.0.0/16"))
    };
    node.apply_pool(pool.clone()).unwrap();
    assert!(machine.borrow().steered.contains(&pool.cidr));
    let overlay = machine.borrow().overlays.last().cloned().unwrap();
    assert_eq!(overlay.pools_v4.len(), 2, "workers decapsulate toward it");
    assert!(node.origins.pools.contains(&pool.cidr));
    // Host bits, and the file's own pools, are refused.
    let mut bad = pool.clone();
    bad.cidr = net("10.251.0.1/16");
    assert!(matches!(node.apply_pool(bad), Err(NodeError::Invalid(_))));
    let mut file_pool = pool.clone();
    file_pool.cidr = net("10.244.0.0/16");
    assert!(matches!(
        node.apply_pool(file_pool),
        Err(NodeError::Precondition(_))
    ));
    // In use: refused; unused: gone.
    let mut r = request("c", "cali-c");
    r.ips = vec![net("10.250.0.5/32")];
    r.ipv6 = false;
    node.add_endpoint(r).unwrap();
    assert!(matches!(
        node.remove_pool(pool.cidr),
        Err(NodeError::Precondition(_))
    ));
    node.remove_endpoint("c").unwrap();
    node.remove_pool(pool.cidr).unwrap();
    assert!(!machine.borrow().steered.contains(&pool.cidr));
    assert_eq!(machine.borrow().overlays.last().unwrap().pools_v4.len(), 1);
    assert!(matches!(
        node.remove_pool(pool.cidr),
        Err(NodeError::NotFound(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_static_route_shadows_bgp_and_gives_way_when_it_goes() {
    let (mut node, _machine, dir) = node();
    let prefix = net("192.168.0.0/16");
    node.apply_bgp(&[RouteChange {
        prefix,
        next_hops: ["10.0.0.9".parse::<std::net::IpAddr>().unwrap()].into(),
    }]);
    let bgp_nh = node.tables.get(prefix).expect("BGP's route installed");
    assert_eq!(node.source_of(prefix, bgp_nh), "bgp");
    let route = StaticRoute {
        dst: prefix,
        via: Some(Via::One("10.0.0.254".parse().unwrap())),
        node: None,
        uplink: None,
    };
    let nh = node.install_route(route.clone(), Origin::Api).unwrap();
    assert_ne!(nh, bgp_nh);
    assert_eq!(node.tables.get(prefix), Some(nh), "the static route wins");
    assert_eq!(node.source_of(prefix, nh), "static");
    // BGP changes under a static route are kept aside, not installed.
    node.apply_bgp(&[RouteChange {
        prefix,
        next_hops: ["10.0.0.8".parse::<std::net::IpAddr>().unwrap()].into(),
    }]);
    assert_eq!(node.tables.get(prefix), Some(nh));
    assert!(matches!(
        node.install_route(route, Origin::Api),
        Err(NodeError::AlreadyExists(_))
    ));
    node.remove_route(prefix).unwrap();
    let back = node.tables.get(prefix).expect("BGP's route is back");
    let Some(gw) = node.alloc.gateways.iter().find(|g| g.nh == back) else {
        panic!("BGP's latest next hop, a gateway")
    };
    assert_eq!(gw.via, "10.0.0.8".parse::<std::net::IpAddr>().unwrap());
    // The file's routes stay.
    assert!(matches!(
        node.remove_route(net("0.0.0.0/0")),
        Err(NodeError::Precondition(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn our_blocks_follow_our_endpoints() {
    let (mut node, _machine, dir) = node();
    let block = net("10.244.1.0/26");
    assert_eq!(node.own_blocks, vec![block]);
    let blackhole = node.blackhole.unwrap();
    assert_eq!(node.tables.get(block), Some(blackhole));
    let mut r = request("c", "cali-c");
    r.ips = vec![net("10.244.9.1/32")];
    node.add_endpoint(r).unwrap();
    assert!(node.own_blocks.contains(&net("10.244.9.0/26")));
    assert_eq!(node.tables.get(net("10.244.9.0/26")), Some(blackhole));
    node.remove_endpoint("c").unwrap();
    assert_eq!(node.own_blocks, vec![block]);
    assert_eq!(node.tables.get(net("10.244.9.0/26")), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reload_applies_the_diff_and_unchanged_pods_lose_nothing() {
    let (mut node, machine, dir) = node();
    let a = node.endpoint("a").cloned().unwrap();
    let a_route = node.tables.get(net("10.244.1.2/32"));
    machine.borrow_mut().port_updates.clear();
    // b leaves the file, c comes, a stays as it was.
    let text = CONFIG.replace(
        "name = \"b\"\nkind = \"veth\"\ninterface = \"cali-b\"\nips = [\"10.244.1.3/32\"]",
        "name = \"c\"\nkind = \"veth\"\ninterface = \"cali-c\"\nips = [\"10.244.1.4/32\"]",
    );
    let changes = node.apply_file(config(&text, &dir)).unwrap();
    assert_eq!(changes.applied, ["endpoint b removed", "endpoint c added"]);
    assert!(changes.needs_restart.is_empty());
    assert!(
        !machine.borrow().xdp.contains("cali-b"),
        "b's program detached"
    );
    assert!(
        !machine.borrow().open.values().any(|i| i == "cali-b"),
        "b's socket closed"
    );
    assert_eq!(node.tables.get(net("10.244.1.3/32")), None);
    let c = node.endpoint("c").cloned().unwrap();
    assert_eq!(node.tables.get(net("10.244.1.4/32")), Some(c.nh));
    // a: same port, next hop and route; its port never touched.
    assert_eq!(node.endpoint("a"), Some(&a));
    assert_eq!(node.tables.get(net("10.244.1.2/32")), a_route);
    assert!(!machine.borrow().port_updates.contains(&a.port.0));
    assert!(machine.borrow().open.contains_key(&a.port.0));
    // b back in the file: it comes up again (its interface is free of our program).
    let changes = node.apply_file(config(CONFIG, &dir)).unwrap();
    assert_eq!(changes.applied, ["endpoint c removed", "endpoint b added"]);
    assert!(machine.borrow().xdp.contains("cali-b"));
    assert!(node.endpoint("b").is_some());
    // Settings that need a restart are named apart, not counted as applied, and keep
    // their running value.
    let changed = CONFIG.replace("endpoint_slots = 4", "endpoint_slots = 8");
    let changes = node.apply_file(config(&changed, &dir)).unwrap();
    assert!(changes.applied.is_empty(), "{changes:?}");
    assert_eq!(
        changes.needs_restart,
        ["workers changed: needs a restart (running value kept)"]
    );
    assert_eq!(node.config.workers.endpoint_slots, 4);
    // Nothing changed: nothing done.
    assert_eq!(
        node.apply_file(config(CONFIG, &dir)).unwrap(),
        Default::default()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reload_and_the_api_share_one_path_and_keep_apart() {
    let (mut node, _machine, dir) = node();
    let mut r = request("c", "cali-c");
    r.ips = vec![net("10.244.1.9/32")];
    node.add_endpoint(r).unwrap();
    // The file now names an endpoint c too: the API's stays, the reload says why.
    let text = format!(
        "{CONFIG}\n[[endpoints]]\nname = \"c\"\nkind = \"veth\"\ninterface = \"cali-d\"\nips = [\"10.244.1.10/32\"]\n"
    );
    let text = text.replace("[bgp]\n", "");
    let err = node.apply_file(config(&text, &dir)).unwrap_err();
    assert!(
        err.message()
            .contains("endpoint c: added through the API already"),
        "{err}"
    );
    assert_eq!(node.endpoint("c").unwrap().interface, "cali-c");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn what_the_api_added_survives_a_restart() {
    let (mut node, _machine, dir) = node();
    let mut r = request("c", "cali-c");
    r.ips = vec![net("10.244.1.9/32")];
    node.add_endpoint(r).unwrap();
    let pool = Pool {
        disable_bgp_export: true,
        node_selector: Some("!all()".into()),
        allowed_uses: Some(vec!["Workload".into()]),
        assignment_mode: crate::config::AssignmentMode::Manual,
        ..Pool::new(net("10.250.0.0/16"))
    };
    node.apply_pool(pool.clone()).unwrap();
    let route = StaticRoute {
        dst: net("172.16.0.0/12"),
        via: Some(Via::One("10.0.0.254".parse().unwrap())),
        node: None,
        uplink: None,
    };
    node.add_route(route.clone()).unwrap();
    drop(node);
    // What vrouterd does at start: the file plus api.json.
    let state = ApiState::load(&dir).unwrap();
    assert_eq!(state.endpoints.len(), 1);
    assert_eq!(state.pools, vec![pool]);
    assert_eq!(state.routes, vec![route]);
    let file = config(CONFIG, &dir);
    let mut merged = file.clone();
    state.merge_into(&mut merged);
    merged.validate().unwrap();
    let origins = state.origins(&file);
    assert_eq!(origins.endpoints.iter().collect::<Vec<_>>(), ["c"]);
    assert_eq!(origins.routes.len(), 1);
    let text = std::fs::read_to_string(dir.join("api.json")).unwrap();
    let again: ApiState = serde_json::from_str(&text).unwrap();
    assert_eq!(again, state, "api.json round trips");
    let ipam = open_ipam(&merged).unwrap();
    assert_eq!(
        ipam.owner("10.244.1.9".parse().unwrap()),
        Some("c"),
        "IPAM agrees with the configuration"
    );
    // An endpoint taken out of the configuration loses its addresses at the next start.
    let ipam = open_ipam(&file).unwrap();
    assert_eq!(ipam.owner("10.244.1.9".parse().unwrap()), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn endpoint_file_shape_is_the_apis() {
    // The same Endpoint from the file or the API installs the same way.
    let (mut node, machine, dir) = node();
    let e = Endpoint {
        name: "c".into(),
        kind: EndpointKind::Veth,
        interface: "cali-c".into(),
        ips: vec![net("10.244.1.9/32")],
        mac: Some("52:54:00:00:00:01".into()),
        labels: Default::default(),
        container_id: None,
        workload: None,
    };
    let ep = node.install_endpoint(e, Origin::File).unwrap();
    assert_eq!(
        node.tables.nexthops.get(ep.nh),
        Some(Adjacency::Forward {
            port: ep.port,
            mac: [0x52, 0x54, 0, 0, 0, 1]
        })
    );
    assert!(machine.borrow().xdp.contains("cali-c"));
    assert!(
        !node.origins.endpoints.contains("c"),
        "the file's, not kept in api.json"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn peers_added_and_removed_through_the_api() {
    let dir = state_dir();
    let text = format!(
        "{CONFIG}listen = \"127.0.0.1:0\"\n[[bgp.peers]]\naddress = \"127.0.0.2\"\nasn = 64513\npassive = true\n"
    );
    let (mut node, _machine) = node_with(&text, &dir);
    let peer = |a: &str| crate::config::BgpPeer {
        address: a.parse().unwrap(),
        asn: Some(64514),
        password: None,
        password_file: None,
        rr_client: false,
        hold_time: 90,
        keepalive: None,
        port: 179,
        passive: true,
        enforce_first_as: true,
        max_prefixes: None,
        max_prefixes_warning: 75,
        ttl_security: None,
    };
    // No speaker: BGP is off for this node's API.
    assert!(matches!(
        node.install_peer(peer("127.0.0.3"), Origin::Api),
        Err(NodeError::Precondition(_))
    ));
    let cfg = crate::node::bgp_config::speaker_config(&node.config, &node.own_blocks).unwrap();
    let (tx, _rx) = crossbeam_channel::unbounded();
    node.speaker = Some(control::speaker::spawn(cfg, tx).unwrap());
    // The file's peer comes in as vrouterd adds it at start.
    node.start_peers(&config(&text, &dir)).unwrap();
    assert!(node
        .speaker
        .as_ref()
        .unwrap()
        .status
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.address == "127.0.0.2".parse::<std::net::IpAddr>().unwrap()));
    assert!(!node.origins.peers.contains(&"127.0.0.2".parse().unwrap()));
    node.add_peer(peer("127.0.0.3")).unwrap();
    assert!(node.origins.peers.contains(&"127.0.0.3".parse().unwrap()));
    assert!(matches!(
        node.install_peer(peer("127.0.0.3"), Origin::Api),
        Err(NodeError::Invalid(_) | NodeError::AlreadyExists(_))
    ));
    // Kept for the next start.
    let state = ApiState::load(&dir).unwrap();
    assert_eq!(state.peers, vec![peer("127.0.0.3")]);
    // The file's peer stays; an unknown one is not found.
    assert!(matches!(
        node.remove_peer("127.0.0.2".parse().unwrap()),
        Err(NodeError::Precondition(_))
    ));
    assert!(matches!(
        node.remove_peer("127.0.0.9".parse().unwrap()),
        Err(NodeError::NotFound(_))
    ));
    node.remove_peer("127.0.0.3".parse().unwrap()).unwrap();
    assert!(ApiState::load(&dir).unwrap().peers.is_empty());
    assert!(node
        .config
        .bgp
        .as_ref()
        .unwrap()
        .peers
        .iter()
        .all(|p| p.address != "127.0.0.3".parse::<std::net::IpAddr>().unwrap()));
    node.speaker = None;
    let _ = std::fs::remove_dir_all(dir);
}
