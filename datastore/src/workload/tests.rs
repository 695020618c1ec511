use super::*;
use proptest::prelude::*;

// As Calico's CNI plugin stores a Kubernetes pod's endpoint (compact JSON, Go order).
const CALICO_WEP: &str = r#"{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node--1-k8s-web--0-eth0","namespace":"shop","uid":"3f2a9c1e-7d41-4e0b-9a55-0c1d2e3f4a5b","creationTimestamp":"2026-11-30T10:02:03Z","labels":{"app":"web","projectcalico.org/namespace":"shop","projectcalico.org/orchestrator":"k8s","projectcalico.org/serviceaccount":"default"}},"spec":{"orchestrator":"k8s","node":"node-1","containerID":"4f1c9e","pod":"web-0","endpoint":"eth0","serviceAccountName":"default","ipNetworks":["10.244.3.2/32"],"profiles":["kns.shop","ksa.shop.default"],"interfaceName":"cali8d1e9f0a2b3","mac":"5a:1b:2c:3d:4e:5f"}}"#;

fn pod() -> Workload {
    Workload {
        orchestrator: "k8s".into(),
        namespace: "shop".into(),
        pod: "web-0".into(),
        container_id: "4f1c9e".into(),
        endpoint: "eth0".into(),
        interface: "cali8d1e9f0a2b3".into(),
        mac: "5a:1b:2c:3d:4e:5f".into(),
        ip_networks: vec!["10.244.3.2/32".parse().unwrap()],
        profiles: vec!["kns.shop".into(), "ksa.shop.default".into()],
        labels: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    }
}

#[test]
fn names_as_libcalico_go_makes_them() {
    assert_eq!(name("node-1", &pod()).unwrap(), "node--1-k8s-web--0-eth0");
    let cni = Workload {
        orchestrator: "cni".into(),
        container_id: "a1b2-c3".into(),
        endpoint: "net1".into(),
        ..Default::default()
    };
    assert_eq!(name("n1", &cni).unwrap(), "n1-cni-a1b2--c3-net1");
    let other = Workload {
        orchestrator: "vrouter".into(),
        workload: "vm.blue".into(),
        endpoint: "tap0".into(),
        ..Default::default()
    };
    assert_eq!(name("n1", &other).unwrap(), "n1-vrouter-vm.blue-tap0");
    for bad in ["-web", "web-", ""] {
        let w = Workload {
            pod: bad.into(),
            ..pod()
        };
        assert!(name("n1", &w).is_err(), "{bad:?}");
    }
    assert_eq!(
        name_parts("node--1-k8s-web--0-eth0"),
        ["node-1", "k8s", "web-0", "eth0"]
    );
}

#[test]
fn what_we_write_is_what_calico_writes() {
    let (key, mut r) = resource("/calico", "node-1", &pod()).unwrap();
    assert_eq!(
        key,
        "/calico/resources/v3/projectcalico.org/workloadendpoints/shop/node--1-k8s-web--0-eth0"
    );
    // The fields the first write makes, and the one we cannot know (the pod's service
    // account: it comes from Kubernetes' API, not from CNI_ARGS).
    r.metadata.uid = "3f2a9c1e-7d41-4e0b-9a55-0c1d2e3f4a5b".into();
    r.metadata.creation_timestamp = "2026-11-30T10:02:03Z".into();
    r.metadata
        .labels
        .insert("projectcalico.org/serviceaccount".into(), "default".into());
    r.spec.service_account_name = "default".into();
    assert_eq!(String::from_utf8(encode(&r)).unwrap(), CALICO_WEP);
    // And Calico's parses, ports and NATs included.
    let with_ports = CALICO_WEP.replace(
        r#""mac":"5a:1b:2c:3d:4e:5f""#,
        r#""mac":"5a:1b:2c:3d:4e:5f","ports":[{"name":"http","protocol":"TCP","port":80,"hostPort":0,"hostIP":""}]"#,
    );
    let back: Resource<WorkloadEndpointSpec> = serde_json::from_str(&with_ports).unwrap();
    assert_eq!(back.spec.ports.len(), 1);
    assert_eq!(back.spec.ip_networks, ["10.244.3.2/32"]);
}

#[test]
fn a_non_kubernetes_endpoint_lives_in_default() {
    let w = Workload {
        orchestrator: "cni".into(),
        container_id: "c0ffee".into(),
        endpoint: "eth0".into(),
        profiles: vec!["vrouter".into()],
        ..Default::default()
    };
    let (key, r) = resource("/calico", "n1", &w).unwrap();
    assert!(
        key.ends_with("/workloadendpoints/default/n1-cni-c0ffee-eth0"),
        "{key}"
    );
    assert_eq!(r.metadata.namespace, "default");
    assert_eq!(r.metadata.labels["projectcalico.org/orchestrator"], "cni");
}

proptest! {
    #[test]
    fn names_split_back_into_their_parts(
        parts in proptest::collection::vec("[a-z0-9]([a-z0-9.-]{0,12}[a-z0-9])?", 3)
    ) {
        let w = Workload {
            orchestrator: "k8s".into(),
            pod: parts[1].clone(),
            endpoint: parts[2].clone(),
            ..Default::default()
        };
        let n = name(&parts[0], &w).unwrap();
        prop_assert_eq!(
            name_parts(&n),
            vec![parts[0].clone(), "k8s".to_string(), parts[1].clone(), parts[2].clone()]
        );
    }
}
