//! Names as Calico gives them, so tools that know Calico's find ours: the host side of a
//! pod's veth is `cali` + the first 11 hex digits of sha1("<namespace>.<pod>") for a
//! Kubernetes pod (else of the container id); the endpoint is `<namespace>/<pod>`.

use crate::spec::Env;
use sha1::{Digest, Sha1};

pub const VETH_PREFIX: &str = "cali";

/// The pod a runtime names in CNI_ARGS (Kubernetes' K8S_POD_NAMESPACE / K8S_POD_NAME).
fn pod(env: &Env) -> Option<(&str, &str)> {
    match (env.arg("K8S_POD_NAMESPACE"), env.arg("K8S_POD_NAME")) {
        (Some(ns), Some(p)) if !ns.is_empty() && !p.is_empty() => Some((ns, p)),
        _ => None,
    }
}

fn hex11(text: &str) -> String {
    let digest = Sha1::digest(text.as_bytes());
    let mut s = String::with_capacity(40);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(11);
    s
}

/// The host side of the pod's veth. A second interface of the same pod (CNI_IFNAME
/// other than eth0) hashes its name in too.
pub fn host_veth(env: &Env) -> String {
    let mut key = match pod(env) {
        Some((ns, p)) => format!("{ns}.{p}"),
        None => env.container_id.clone(),
    };
    if env.ifname != "eth0" {
        key.push('.');
        key.push_str(&env.ifname);
    }
    format!("{VETH_PREFIX}{}", hex11(&key))
}

/// The endpoint's name in vrouterd.
pub fn endpoint(env: &Env) -> String {
    let mut name = match pod(env) {
        Some((ns, p)) => format!("{ns}/{p}"),
        None => env.container_id.clone(),
    };
    if env.ifname != "eth0" {
        name.push('/');
        name.push_str(&env.ifname);
    }
    name
}

/// Calico's identity of the endpoint (its WorkloadEndpoint): a Kubernetes pod's
/// (orchestrator "k8s", profile "kns.<namespace>") or a bare container's ("cni", the
/// network's name as its profile).
pub fn workload(env: &Env, network: &str) -> control::api::pb::Workload {
    let (orchestrator, namespace, pod, profile) = match pod(env) {
        Some((ns, p)) => ("k8s", ns, p, format!("kns.{ns}")),
        None => ("cni", "", "", network.to_string()),
    };
    control::api::pb::Workload {
        orchestrator: orchestrator.into(),
        namespace: namespace.into(),
        pod: pod.into(),
        endpoint: env.ifname.clone(),
        profiles: vec![profile],
    }
}

/// A locally administered unicast MAC for the pod's side, from the container id (stable
/// across retries of one ADD, distinct between containers).
pub fn pod_mac(env: &Env) -> [u8; 6] {
    let d = Sha1::digest(format!("{}/{}", env.container_id, env.ifname).as_bytes());
    [(d[0] & 0xfe) | 0x02, d[1], d[2], d[3], d[4], d[5]]
}

pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Command;

    fn env(args: &[(&str, &str)], id: &str, ifname: &str) -> Env {
        Env {
            command: Command::Add,
            container_id: id.into(),
            netns: None,
            ifname: ifname.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            path: vec![],
        }
    }

    #[test]
    fn calico_names() {
        // The reference: coreutils' sha1sum of the same text.
        let k8s = env(
            &[("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-1")],
            "c0ffee",
            "eth0",
        );
        let expect = format!("cali{}", &sha1_hex("default.web-1")[..11]);
        assert_eq!(host_veth(&k8s), expect);
        assert_eq!(host_veth(&k8s).len(), 15);
        assert_eq!(endpoint(&k8s), "default/web-1");
        let plain = env(&[], "c0ffee", "eth0");
        assert_eq!(
            host_veth(&plain),
            format!("cali{}", &sha1_hex("c0ffee")[..11])
        );
        assert_eq!(endpoint(&plain), "c0ffee");
        let second = env(&[], "c0ffee", "net1");
        assert_ne!(host_veth(&second), host_veth(&plain));
        assert_eq!(endpoint(&second), "c0ffee/net1");
        let w = workload(&plain, "net-a");
        assert_eq!((w.orchestrator.as_str(), w.pod.as_str()), ("cni", ""));
        assert_eq!(
            w.profiles,
            ["net-a"],
            "a bare container's profile is the network"
        );
        let m = pod_mac(&plain);
        assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
        assert_eq!(mac_text(&[0xee; 6]), "ee:ee:ee:ee:ee:ee");
    }

    fn sha1_hex(s: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s '{s}' | sha1sum")])
            .output()
            .expect("sha1sum");
        String::from_utf8(out.stdout).unwrap()[..40].to_string()
    }
}
