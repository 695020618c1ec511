//! The commands against in-memory sides: a vrouterd that allocates from a tiny pool,
//! a kernel of named links, an IPAM plugin; failures injected at each step.

use super::*;
use crate::fake::FakeApi;
use crate::spec::{Command, IpamConf};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
struct FakeHost {
    /// host veth → pod interface name
    veths: BTreeMap<String, String>,
    pod_ifs: BTreeMap<String, PodView>,
    fail_configure: bool,
    pod_if_exists: bool,
}

impl Host for FakeHost {
    fn create(&mut self, host: &str, _: &Path, pod: &str, _: [u8; 6]) -> io::Result<[u8; 6]> {
        if self.veths.contains_key(host) || self.pod_if_exists {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.veths.insert(host.into(), pod.into());
        Ok([0xee; 6])
    }
    fn configure_pod(&mut self, _: &Path, pod: &str, ips: &[IpNet]) -> io::Result<()> {
        if self.fail_configure {
            return Err(io::Error::other("injected"));
        }
        let mut routes = vec![];
        if ips.iter().any(|i| i.addr().is_ipv4()) {
            routes.push((
                "0.0.0.0/0".parse().unwrap(),
                Some(GATEWAY_V4.parse().unwrap()),
            ));
        }
        self.pod_ifs.insert(
            pod.into(),
            PodView {
                addresses: ips.to_vec(),
                routes,
            },
        );
        Ok(())
    }
    fn delete(&mut self, host: &str) -> io::Result<bool> {
        match self.veths.remove(host) {
            Some(pod) => {
                self.pod_ifs.remove(&pod);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn inspect_pod(&mut self, _: &Path, pod: &str) -> io::Result<Option<PodView>> {
        Ok(self.pod_ifs.get(pod).cloned())
    }
}

#[derive(Default)]
struct FakeIpam {
    held: Vec<String>,
    calls: Vec<(String, bool)>,
}

impl Delegate for FakeIpam {
    fn run(&mut self, kind: &str, add: bool, _: &[u8]) -> CniResult<Option<Value>> {
        self.calls.push((kind.into(), add));
        if add {
            self.held.push("192.168.9.7".into());
            Ok(Some(
                serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"192.168.9.7/24"}]}),
            ))
        } else {
            self.held.clear();
            Ok(None)
        }
    }
}

fn env(command: Command, id: &str) -> Env {
    Env {
        command,
        container_id: id.into(),
        netns: Some(std::env::temp_dir()),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAMESPACE".into(), "default".into()),
            ("K8S_POD_NAME".into(), "web".into()),
        ],
        path: vec![PathBuf::from("/nonexistent")],
    }
}

fn conf() -> NetConf {
    NetConf {
        cni_version: "1.0.0".into(),
        name: "vrouter".into(),
        kind: "vrouter-cni".into(),
        ..Default::default()
    }
}

#[derive(Default)]
struct World {
    api: FakeApi,
    host: FakeHost,
    ipam: FakeIpam,
}

impl World {
    fn run<T>(&mut self, e: &Env, c: &NetConf, f: impl FnOnce(&mut Plugin) -> T) -> T {
        let mut p = Plugin {
            env: e,
            conf: c,
            raw: b"{}",
            api: &mut self.api,
            host: &mut self.host,
            ipam: &mut self.ipam,
        };
        f(&mut p)
    }
}

#[test]
fn add_check_del() {
    let mut w = World::default();
    let (add, c) = (env(Command::Add, "c1"), conf());
    let out = w.run(&add, &c, |p| p.add()).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "10.65.0.1/32");
    let ns = std::env::temp_dir().display().to_string();
    assert_eq!(out.interfaces[1].sandbox.as_deref(), Some(ns.as_str()));
    assert_eq!(out.routes[0].gw, Some(GATEWAY_V4.parse().unwrap()));
    let ep = &w.api.endpoints["default/web"];
    assert_eq!(ep.container_id, "c1");
    assert!(ep.interface.starts_with("cali"));
    // Who it is for, as Calico's WorkloadEndpoint says it.
    let wl = ep
        .workload
        .as_ref()
        .expect("the pod's identity goes with the endpoint");
    assert_eq!(
        (
            wl.orchestrator.as_str(),
            wl.namespace.as_str(),
            wl.pod.as_str()
        ),
        ("k8s", "default", "web")
    );
    assert_eq!(
        (wl.endpoint.as_str(), wl.profiles.clone()),
        ("eth0", vec!["kns.default".to_string()])
    );
    let mut chk = conf();
    chk.prev_result = Some(out.to_json("1.0.0"));
    w.run(&env(Command::Check, "c1"), &chk, |p| p.check())
        .unwrap();
    // CHECK sees a pod that lost its address.
    w.host.pod_ifs.get_mut("eth0").unwrap().addresses.clear();
    let e = w
        .run(&env(Command::Check, "c1"), &chk, |p| p.check())
        .unwrap_err();
    assert_eq!(e.code, code::CHECK_FAILED);
    let del = env(Command::Del, "c1");
    w.run(&del, &c, |p| p.del()).unwrap();
    assert_eq!(w.api.released, vec!["10.65.0.1"]);
    assert!(w.host.veths.is_empty());
    // Again: still success, nothing released twice.
    w.run(&del, &c, |p| p.del()).unwrap();
    assert_eq!(w.api.released.len(), 1);
}

#[test]
fn a_failed_add_leaves_nothing() {
    // The pod side cannot be set up: endpoint removed (address back), veth gone.
    let mut w = World::default();
    w.host.fail_configure = true;
    let e = w
        .run(&env(Command::Add, "c1"), &conf(), |p| p.add())
        .unwrap_err();
    assert_eq!(e.code, code::IO_FAILURE);
    assert!(w.api.endpoints.is_empty() && w.host.veths.is_empty());
    assert_eq!(w.api.released, vec!["10.65.0.1"]);
    // vrouterd away: try again later, no veth left.
    let mut w = World::default();
    w.api.down = true;
    let e = w
        .run(&env(Command::Add, "c1"), &conf(), |p| p.add())
        .unwrap_err();
    assert_eq!(e.code, code::TRY_AGAIN_LATER);
    assert!(w.host.veths.is_empty());
    // vrouterd refuses (no address left): the veth goes.
    let mut w = World::default();
    w.api.refuse_add = true;
    let e = w
        .run(&env(Command::Add, "c1"), &conf(), |p| p.add())
        .unwrap_err();
    assert_eq!(e.code, code::REFUSED);
    assert!(w.host.veths.is_empty());
    // The interface name is taken in the pod: an error naming it, nothing held.
    let mut w = World::default();
    w.host.pod_if_exists = true;
    let e = w
        .run(&env(Command::Add, "c1"), &conf(), |p| p.add())
        .unwrap_err();
    assert!(e.msg.contains("eth0 exists"), "{e}");
    assert!(w.api.endpoints.is_empty() && w.api.released.is_empty());
}

#[test]
fn add_after_a_crash_then_del() {
    // An ADD that died after registering the endpoint (no result printed): the
    // runtime's DEL cleans everything, and a new ADD works.
    let mut w = World::default();
    let c = conf();
    w.run(&env(Command::Add, "c1"), &c, |p| p.add()).unwrap();
    w.host.pod_ifs.clear(); // the crash came before the pod side
    w.run(&env(Command::Del, "c1"), &c, |p| p.del()).unwrap();
    assert!(w.api.endpoints.is_empty() && w.host.veths.is_empty());
    // Or the runtime retries ADD straight away: the leftover is replaced.
    w.run(&env(Command::Add, "c1"), &c, |p| p.add()).unwrap();
    w.host.pod_ifs.clear();
    let out = w.run(&env(Command::Add, "c1"), &c, |p| p.add()).unwrap();
    assert_eq!(w.api.endpoints.len(), 1);
    assert_eq!(w.host.veths.len(), 1);
    assert_eq!(out.ips.len(), 1);
    // vrouterd away at DEL: try again later (the address is released once, later).
    w.api.down = true;
    let e = w
        .run(&env(Command::Del, "c1"), &c, |p| p.del())
        .unwrap_err();
    assert_eq!(e.code, code::TRY_AGAIN_LATER);
    w.api.down = false;
    w.run(&env(Command::Del, "c1"), &c, |p| p.del()).unwrap();
    assert!(w.api.endpoints.is_empty());
}

#[test]
fn an_old_containers_del_spares_the_new_one() {
    let mut w = World::default();
    let c = conf();
    w.run(&env(Command::Add, "old"), &c, |p| p.add()).unwrap();
    // The pod is recreated (same name, new container) before the old DEL arrives.
    w.run(&env(Command::Add, "new"), &c, |p| p.add()).unwrap();
    w.run(&env(Command::Del, "old"), &c, |p| p.del()).unwrap();
    assert_eq!(w.api.endpoints["default/web"].container_id, "new");
    assert_eq!(w.host.veths.len(), 1);
}

#[test]
fn delegated_ipam_and_gc() {
    let mut w = World::default();
    let mut c = conf();
    c.ipam = Some(IpamConf {
        kind: "host-local".into(),
        ..Default::default()
    });
    let out = w.run(&env(Command::Add, "c1"), &c, |p| p.add()).unwrap();
    assert_eq!(out.ips[0].address.to_string(), "192.168.9.7/32");
    assert_eq!(
        w.api.endpoints["default/web"].addresses,
        vec!["192.168.9.7"]
    );
    w.run(&env(Command::Del, "c1"), &c, |p| p.del()).unwrap();
    assert!(w.ipam.held.is_empty());
    // A failure after the delegate's ADD gives its address back.
    w.host.fail_configure = true;
    w.run(&env(Command::Add, "c2"), &c, |p| p.add())
        .unwrap_err();
    assert!(w.ipam.held.is_empty());
    assert_eq!(
        w.ipam.calls.last(),
        Some(&("host-local".to_string(), false))
    );
    // GC: endpoints of containers the runtime no longer lists go.
    let mut w = World::default();
    let c = conf();
    w.run(&env(Command::Add, "c1"), &c, |p| p.add()).unwrap();
    let mut other = env(Command::Add, "c2");
    other.args[1].1 = "db".into();
    w.run(&other, &c, |p| p.add()).unwrap();
    let mut gc = conf();
    gc.other.insert(
        "cni.dev/valid-attachments".into(),
        serde_json::json!([{"containerID":"c2","ifname":"eth0"}]),
    );
    w.run(&env(Command::Gc, ""), &gc, |p| p.gc()).unwrap();
    assert_eq!(
        w.api.endpoints.keys().collect::<Vec<_>>(),
        vec!["default/db"]
    );
    assert_eq!(w.host.veths.len(), 1);
    w.run(&env(Command::Status, ""), &c, |p| p.status())
        .unwrap();
    w.api.down = true;
    let e = w
        .run(&env(Command::Status, ""), &c, |p| p.status())
        .unwrap_err();
    assert_eq!(e.code, code::NOT_AVAILABLE);
}
