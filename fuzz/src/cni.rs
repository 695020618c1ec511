//! `cni_stdin`: bytes given as the CNI plugin's stdin (the network configuration), for
//! the command the first byte picks, run as `vrouter-cni` or as `vrouter-ipam` over
//! in-memory seams (a vrouterd holding one endpoint, a host whose links always work, a
//! delegated IPAM plugin): what `cni::run` does once the API client is made.

use cni::plugin::{ApiError, Delegate, Host, Plugin, PodView, Vrouter};
use cni::spec::{self, CniResult, Command, Env, NetConf, Outcome};
use control::api::pb;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

#[derive(Default)]
struct Api {
    endpoints: BTreeMap<String, pb::Endpoint>,
    handles: BTreeMap<String, Vec<String>>,
    next: u8,
}

impl Vrouter for Api {
    fn add(&mut self, mut ep: pb::Endpoint) -> Result<pb::Endpoint, ApiError> {
        if self.endpoints.contains_key(&ep.name) {
            return Err(ApiError::Refused("exists".into()));
        }
        if ep.addresses.is_empty() {
            self.next = self.next.wrapping_add(1);
            ep.addresses.push(format!("10.65.0.{}", self.next));
        }
        self.endpoints.insert(ep.name.clone(), ep.clone());
        Ok(ep)
    }
    fn remove(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        self.endpoints
            .remove(name)
            .map(|e| e.addresses)
            .ok_or_else(|| ApiError::NotFound(name.into()))
    }
    fn list(&mut self) -> Result<Vec<pb::Endpoint>, ApiError> {
        Ok(self.endpoints.values().cloned().collect())
    }
    fn allocate(&mut self, handle: &str, v6: bool, lookup: bool) -> Result<Vec<String>, ApiError> {
        if lookup {
            return Ok(self.handles.get(handle).cloned().unwrap_or_default());
        }
        let mut got = vec!["10.65.1.1".to_string()];
        if v6 {
            got.push("fd65::1".into());
        }
        Ok(self.handles.entry(handle.into()).or_insert(got).clone())
    }
    fn release_handle(&mut self, handle: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.handles.remove(handle).unwrap_or_default())
    }
}

#[derive(Default)]
struct Links {
    pod: Vec<IpNet>,
}

impl Host for Links {
    fn create(&mut self, _: &str, _: &Path, _: &str, _: [u8; 6]) -> io::Result<[u8; 6]> {
        Ok([0xee; 6])
    }
    fn configure_pod(&mut self, _: &Path, _: &str, ips: &[IpNet]) -> io::Result<()> {
        self.pod = ips.to_vec();
        Ok(())
    }
    fn delete(&mut self, _: &str) -> io::Result<bool> {
        Ok(true)
    }
    fn inspect_pod(&mut self, _: &Path, _: &str) -> io::Result<Option<PodView>> {
        Ok(Some(PodView {
            addresses: self.pod.clone(),
            routes: vec![(
                "0.0.0.0/0".parse().unwrap(),
                Some(cni::plugin::GATEWAY_V4.parse().unwrap()),
            )],
        }))
    }
}

/// A delegated IPAM plugin: its ADD result is the configuration's `fuzzIpamResult`, or
/// a fixed one.
struct Ipam;

impl Delegate for Ipam {
    fn run(&mut self, _kind: &str, add: bool, conf: &[u8]) -> CniResult<Option<Value>> {
        if !add {
            return Ok(None);
        }
        let given = serde_json::from_slice::<Value>(conf)
            .ok()
            .and_then(|v| v.get("fuzzIpamResult").cloned());
        Ok(Some(given.unwrap_or_else(|| {
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.66.0.9/24", "gateway": "10.66.0.1"}]})
        })))
    }
}

const COMMANDS: [&str; 6] = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];

pub fn run(data: &[u8]) {
    let Some((&sel, stdin)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[((sel & 0x7f) % 6) as usize];
    let program = if sel & 0x80 != 0 {
        "/opt/cni/bin/vrouter-ipam"
    } else {
        "/opt/cni/bin/vrouter-cni"
    };
    let vars: BTreeMap<&str, &str> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "4f1c2d"),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;IgnoreUnknown=1",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into();
    let env = Env::read(|k| vars.get(k).map(|v| v.to_string())).expect("the environment reads");
    if env.command == Command::Version {
        let requested = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string));
        let _ = spec::version_json(requested.as_deref());
        return;
    }
    let conf = match NetConf::parse(stdin).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_json(spec::LATEST);
            return;
        }
    };
    let _ = (conf.own_ipam(), conf.labels());
    let _ = (cni::ipam::socket(&conf), cni::ipam::handle(&conf, &env));
    let _ = (cni::naming::endpoint(&env), cni::naming::host_veth(&env));
    let _ = cni::naming::workload(&env, &conf.name);
    if let Some(prev) = &conf.prev_result {
        if let Ok(o) = Outcome::from_json(prev) {
            for v in spec::SUPPORTED_VERSIONS {
                let _ = o.to_json(v);
            }
        }
    }
    let mut api = Api::default();
    let result = if cni::ipam::invoked_as_ipam(program, &conf) {
        let mut p = cni::ipam::IpamPlugin {
            env: &env,
            conf: &conf,
            api: &mut api,
        };
        match env.command {
            Command::Add => p.add().map(Some),
            Command::Del => p.del().map(|_| None),
            Command::Check => p.check().map(|_| None),
            Command::Status => p.status().map(|_| None),
            _ => Ok(None),
        }
    } else {
        let (mut links, mut ipam) = (Links::default(), Ipam);
        let mut p = Plugin {
            env: &env,
            conf: &conf,
            raw: stdin,
            api: &mut api,
            host: &mut links,
            ipam: &mut ipam,
        };
        match env.command {
            Command::Add => {
                // ADD, then CHECK and DEL of what it made.
                let r = p.add();
                let _ = p.check();
                let _ = p.del();
                r.map(Some)
            }
            Command::Del => p.del().map(|_| None),
            Command::Check => p.check().map(|_| None),
            Command::Gc => p.gc().map(|_| None),
            Command::Status => p.status().map(|_| None),
            Command::Version => Ok(None),
        }
    };
    if crate::debug() {
        eprintln!("{command}: {result:?}");
    }
    match result {
        Ok(Some(o)) => {
            let v = o.to_json(&conf.cni_version);
            // What we print parses back as a result of the same version.
            Outcome::from_json(&v).expect("our own result parses");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_json(&conf.cni_version);
        }
    }
}
