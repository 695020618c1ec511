//! A node on a fake host (no root, no workers): what `node`'s unit tests and the `api`
//! and `datastore_json` fuzz targets run their node on. Each brings its own `Host` (the
//! tests' records what the kernel would hold; the fuzz targets' only answers), and says
//! which endpoint interfaces exist; the uplink and the way a node is started are the same.

use crate::arp::HOST_SIDE_MAC;
use crate::config::Config;
use crate::counters::Counters;
use crate::node::host::Host;
use crate::node::interface::IfInfo;
use crate::node::origins::Origins;
use crate::node::persist::open_ipam;
use crate::node::plan::Plan;
use crate::node::tables::{Capacity, Tables};
use crate::node::{Dataplane, NodeState};
use std::io;
use std::sync::Arc;

/// The fake host's interface `name`: its uplink `eth0`, a pod's host side for every name
/// `is_endpoint` accepts, and no other.
pub fn fake_interface(name: &str, is_endpoint: impl Fn(&str) -> bool) -> io::Result<IfInfo> {
    match name {
        "eth0" => Ok(IfInfo {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 9000,
            ifindex: 7,
        }),
        n if is_endpoint(n) => Ok(IfInfo {
            mac: HOST_SIDE_MAC,
            mtu: 1500,
            ifindex: 8,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {name}"),
        )),
    }
}

/// A node started from `config` as vrouterd starts one (its endpoints installed into
/// their slots), on `host`: the plan is made from the interfaces `host` answers for.
/// Panics where vrouterd would fail to start.
pub fn node_on_fake_host(config: &Config, host: Box<dyn Host>) -> NodeState {
    let ipam = open_ipam(config).expect("IPAM opens");
    let plan = Plan::new(config, &|name| host.interface(name)).expect("the plan is made");
    let tables = Tables::new(&plan, Capacity::for_start(&plan, config));
    let workers = config.workers.count;
    let mut node = NodeState::new(
        config.clone(),
        Origins::default(),
        plan,
        tables,
        ipam,
        Dataplane {
            host,
            counters: Arc::new(Counters::new(workers)),
            endpoint_mtu_limit: 9000,
        },
    );
    node.start(config).expect("the node starts");
    node
}
