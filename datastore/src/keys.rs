//! Where Calico keeps each record in etcd (libcalico-go `lib/backend/model`: resource.go,
//! block.go `BlockKey.defaultPath`, block_affinity.go, ipam_handle.go). Every key starts
//! with the configured prefix, `/calico` by default.

use ipnet::IpNet;

/// The v3 resources of one kind: `<prefix>/resources/v3/projectcalico.org/<plural>/`.
pub fn resources(prefix: &str, plural: &str) -> String {
    format!("{prefix}/resources/v3/projectcalico.org/{plural}/")
}

pub fn resource(prefix: &str, plural: &str, name: &str) -> String {
    format!("{}{name}", resources(prefix, plural))
}

/// A namespaced resource (WorkloadEndpoint): `.../<plural>/<namespace>/<name>`.
pub fn namespaced(prefix: &str, plural: &str, namespace: &str, name: &str) -> String {
    format!("{}{namespace}/{name}", resources(prefix, plural))
}

/// Every v3 resource (one watch covers nodes, pools, peers and BGP configuration).
pub fn all_resources(prefix: &str) -> String {
    format!("{prefix}/resources/v3/projectcalico.org/")
}

fn version(net: IpNet) -> u8 {
    if net.addr().is_ipv4() {
        4
    } else {
        6
    }
}

/// A CIDR as a key element: "10.244.1.0-26" (the first '/' becomes '-').
pub fn cidr_element(net: IpNet) -> String {
    net.to_string().replacen('/', "-", 1)
}

/// The CIDR of a key element, if it is one.
pub fn parse_cidr_element(s: &str) -> Option<IpNet> {
    s.replacen('-', "/", 1).parse().ok()
}

/// Blocks of one family: `<prefix>/ipam/v2/assignment/ipv4/block/`.
pub fn blocks(prefix: &str, v6: bool) -> String {
    format!(
        "{prefix}/ipam/v2/assignment/ipv{}/block/",
        if v6 { 6 } else { 4 }
    )
}

pub fn block(prefix: &str, cidr: IpNet) -> String {
    format!(
        "{}{}",
        blocks(prefix, version(cidr) == 6),
        cidr_element(cidr)
    )
}

/// A host's affinities of one family: `<prefix>/ipam/v2/host/<node>/ipv4/block/`.
pub fn affinities(prefix: &str, node: &str, v6: bool) -> String {
    format!(
        "{prefix}/ipam/v2/host/{node}/ipv{}/block/",
        if v6 { 6 } else { 4 }
    )
}

pub fn affinity(prefix: &str, node: &str, cidr: IpNet) -> String {
    format!(
        "{}{}",
        affinities(prefix, node, version(cidr) == 6),
        cidr_element(cidr)
    )
}

/// Every affinity of every host.
pub fn all_affinities(prefix: &str) -> String {
    format!("{prefix}/ipam/v2/host/")
}

pub fn handle(prefix: &str, id: &str) -> String {
    format!("{prefix}/ipam/v2/handle/{id}")
}

pub fn handles(prefix: &str) -> String {
    format!("{prefix}/ipam/v2/handle/")
}

/// The CIDR at the end of a block or affinity key.
pub fn cidr_of_key(key: &str) -> Option<IpNet> {
    parse_cidr_element(key.rsplit('/').next()?)
}

/// The name at the end of a resource key.
pub fn name_of_key(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_calico_writes_them() {
        let b: IpNet = "10.244.7.0/26".parse().unwrap();
        assert_eq!(
            block("/calico", b),
            "/calico/ipam/v2/assignment/ipv4/block/10.244.7.0-26"
        );
        assert_eq!(
            affinity("/calico", "node-a", b),
            "/calico/ipam/v2/host/node-a/ipv4/block/10.244.7.0-26"
        );
        let b6: IpNet = "fd00:10:244::/122".parse().unwrap();
        assert_eq!(
            block("/calico", b6),
            "/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::-122"
        );
        assert_eq!(cidr_of_key(&block("/calico", b6)), Some(b6));
        assert_eq!(
            resource("/calico", "ippools", "default-ipv4-ippool"),
            "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"
        );
        assert_eq!(
            handle("/calico", "k8s-pod-network.abc"),
            "/calico/ipam/v2/handle/k8s-pod-network.abc"
        );
    }
}
