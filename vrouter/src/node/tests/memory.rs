//! The node's state driving a real worker on the in-memory I/O backend (no root): the
//! commands an endpoint's install and removal send reach the worker the way vrouterd's
//! channels deliver them, and frames then follow the routes the node installed.

use super::{config, info, state_dir};
use crate::arp::HOST_SIDE_MAC;
use crate::config::{EndpointKind, PollMode};
use crate::counters::Counters;
use crate::host::open_command;
use crate::io::memory::MemoryIo;
use crate::nexthop::PortId;
use crate::node::endpoints::EndpointRequest;
use crate::node::error::{NodeError, NodeResult};
use crate::node::host::Host;
use crate::node::interface::IfInfo;
use crate::node::origins::Origins;
use crate::node::persist::open_ipam;
use crate::node::plan::{EndpointPlan, Plan};
use crate::node::tables::{Capacity, Tables};
use crate::node::{Dataplane, NodeState};
use crate::pipeline::Port;
use crate::startup::worker_pipeline;
use crate::tunnel::Overlay;
use crate::worker::{Worker, WorkerCmd};
use etherparse::PacketBuilder;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::{mpsc, Arc};

type SharedWorker = Rc<RefCell<Worker<MemoryIo>>>;

/// A Host whose one worker runs inline: each command goes to `Worker::command`, as the
/// worker's own loop takes them from its channel.
struct MemoryHost(SharedWorker);

impl MemoryHost {
    fn tell(&self, cmd: WorkerCmd) {
        self.0.borrow_mut().command(cmd);
    }
}

impl Host for MemoryHost {
    fn interface(&self, name: &str) -> io::Result<IfInfo> {
        info(name)
    }
    fn interface_counter(&self, _name: &str, _key: &str) -> u64 {
        0
    }
    fn set_port(&mut self, id: PortId, port: &Port) {
        self.tell(WorkerCmd::SetPort(id, port.clone()));
    }
    fn set_overlay(&mut self, overlay: &Overlay) {
        self.tell(WorkerCmd::SetOverlay(overlay.clone()));
    }
    fn set_policy(&mut self, set: &std::sync::Arc<crate::policy::set::PolicySet>) {
        self.tell(WorkerCmd::SetPolicy(set.clone()));
    }
    fn open_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let (done, answer) = mpsc::channel();
        self.tell(open_command(ep, None, None, done));
        answer
            .recv()
            .map_err(|_| NodeError::Internal("no answer".into()))?
            .map_err(|e| NodeError::Precondition(format!("opening {}: {e}", ep.interface)))
    }
    fn close_endpoint(&mut self, ep: &EndpointPlan) -> NodeResult<()> {
        let (done, answer) = mpsc::channel();
        self.tell(WorkerCmd::Close {
            id: ep.port,
            steer: None,
            done,
        });
        answer
            .recv()
            .map(drop)
            .map_err(|_| NodeError::Internal("no answer".into()))
    }
    fn steer_to_us(&mut self, _prefix: ipnet::IpNet, _on: bool) {}
    fn host_routes(&mut self, _: &str, _: &[ipnet::IpNet], _: bool) -> NodeResult<()> {
        Ok(())
    }
    fn prune_host_routes(&mut self, _keep: &[(String, ipnet::IpNet)]) -> NodeResult<usize> {
        Ok(0)
    }
}

const CONFIG: &str = r#"
node_name = "n1"
node_ips = ["10.0.0.1/24"]
[[uplinks]]
name = "eth0"
queues = [0]
[[pools]]
cidr = "10.244.0.0/16"
[workers]
count = 1
endpoint_slots = 2
poll_mode = "busy"
[[endpoints]]
name = "a"
kind = "veth"
interface = "cali-a"
ips = ["10.244.1.2/32"]
mac = "52:54:00:00:00:0a"
"#;

const B_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0b];

fn udp(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, HOST_SIDE_MAC)
        .ipv4(src, dst, 64)
        .udp(4000, 5000);
    let mut v = Vec::new();
    b.write(&mut v, &[7u8; 32]).unwrap();
    v
}

#[test]
fn an_endpoint_added_through_the_node_forwards_on_its_worker_and_stops_when_removed() {
    let dir = state_dir();
    let config = config(CONFIG, &dir);
    let plan = Plan::new(&config, &info).unwrap();
    let tables = Tables::new(&plan, Capacity::for_start(&plan, &config));
    let counters = Arc::new(Counters::new(1));
    let ports: Arc<[Port]> = plan.ports.ports.clone().into();
    let mut pipeline = worker_pipeline(&config, &plan, &tables, &ports, &counters, 0);
    pipeline.offline();
    let io = MemoryIo::new(plan.ports.ports.len(), 256);
    let worker: SharedWorker = Rc::new(RefCell::new(Worker::new(
        io,
        pipeline,
        tables.nexthops.clone(),
        Vec::new(),
        PollMode::Busy,
    )));
    let mut node = NodeState::new(
        config.clone(),
        Origins::default(),
        plan,
        tables,
        open_ipam(&config).unwrap(),
        Dataplane {
            host: Box::new(MemoryHost(worker.clone())),
            counters: counters.clone(),
            endpoint_mtu_limit: 1500,
        },
    );
    node.start(&config).unwrap();
    let a = node.endpoint("a").unwrap().port;
    let b = node
        .add_endpoint(EndpointRequest {
            name: "b".into(),
            kind: EndpointKind::Tap,
            interface: "tap-b".into(),
            ips: vec!["10.244.1.20/32".parse().unwrap()],
            mac: Some("52:54:00:00:00:0b".into()),
            ipv6: false,
            labels: Default::default(),
            container_id: None,
            workload: None,
        })
        .unwrap()
        .port;
    // Frames in on a port, one loop of the worker, what it sent.
    let exchange = |port: PortId, frames: &[&[u8]]| {
        let mut w = worker.borrow_mut();
        for f in frames {
            assert!(w.io.inject(port, f));
        }
        w.poll_once();
        // Between loops the worker is offline for the FIB (as when idle).
        w.pipeline.offline();
        w.io.take_sent()
    };
    // A frame from pod a to pod b goes out of b's port, to b's MAC.
    let frame = udp(
        [0x52, 0x54, 0, 0, 0, 0x0a],
        [10, 244, 1, 2],
        [10, 244, 1, 20],
    );
    let sent = exchange(a, &[&frame]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, b);
    assert_eq!(sent[0].1[..6], B_MAC);
    // b sends from its own address only: its port took the node's addresses for it.
    let spoofed = udp(B_MAC, [10, 244, 1, 99], [10, 244, 1, 2]);
    let own = udp(B_MAC, [10, 244, 1, 20], [10, 244, 1, 2]);
    let sent = exchange(b, &[&spoofed, &own]);
    assert_eq!(sent.len(), 1, "only b's own address passes: {sent:?}");
    assert_eq!((sent[0].0, &sent[0].1[30..34]), (a, &[10u8, 244, 1, 2][..]));
    // Removed: its route goes, nothing reaches its port any more.
    node.remove_endpoint("b").unwrap();
    let sent = exchange(a, &[&frame]);
    assert!(sent.iter().all(|(p, _)| *p != b), "{sent:?}");
    assert_eq!(node.tables.get("10.244.1.20/32".parse().unwrap()), None);
    let _ = std::fs::remove_dir_all(dir);
}
