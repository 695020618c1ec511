//! IPPool files as Calico writes them, what is refused and why, and the YAML round trip.

use super::*;

/// Calico's documented sample (docs.tigera.io reference/resources/ippool), with every
/// spec field vrouterd takes written out.
const CALICO_POOL: &str = r#"apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: my.ippool-1
spec:
  cidr: 10.1.0.0/16
  blockSize: 24
  ipipMode: CrossSubnet
  vxlanMode: Never
  natOutgoing: true
  disabled: false
  disableBGPExport: true
  nodeSelector: zone == 'eu' && !has(edge)
  namespaceSelector: ""
  allowedUses:
    - Workload
    - Tunnel
  assignmentMode: Manual
"#;

#[test]
fn a_calico_ippool_with_every_field() {
    let p = parse_pool_file("p.yaml", CALICO_POOL).unwrap();
    assert_eq!(
        p,
        vec![pb::Pool {
            cidr: "10.1.0.0/16".into(),
            block_size: 24,
            ipip_mode: "CrossSubnet".into(),
            vxlan_mode: "Never".into(),
            nat_outgoing: true,
            disabled: false,
            disable_bgp_export: true,
            node_selector: "zone == 'eu' && !has(edge)".into(),
            allowed_uses: vec!["Workload".into(), "Tunnel".into()],
            assignment_mode: "Manual".into(),
            ..Default::default()
        }]
    );
    // Calico's v1 `nat-outgoing: false` and `ipip: null` are "unset": accepted.
    let v1_unset = CALICO_POOL.replace(
        "  natOutgoing",
        "  nat-outgoing: false\n  ipip: null\n  natOutgoing",
    );
    assert_eq!(parse_pool_file("p.yaml", &v1_unset).unwrap(), p);
}

#[test]
fn calico_ippool_yaml_and_toml() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.65.0.0/16\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Always\n  natOutgoing: true\n  nodeSelector: all()\n";
    let p = parse_pool_file("p.yaml", yaml).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].cidr, "10.65.0.0/16");
    assert_eq!(p[0].block_size, 26);
    assert_eq!(p[0].vxlan_mode, "Always");
    assert_eq!(p[0].node_selector, "all()");
    assert!(p[0].nat_outgoing);
    let toml = "apiVersion = \"projectcalico.org/v3\"\nkind = \"IPPool\"\n[metadata]\nname = \"p\"\n[spec]\ncidr = \"fd00:10::/48\"\nipipMode = \"Always\"\ndisableBGPExport = true\nallowedUses = [\"Tunnel\"]\n";
    let p = parse_pool_file("p.toml", toml).unwrap();
    assert_eq!(p[0].cidr, "fd00:10::/48");
    assert_eq!(p[0].ipip_mode, "Always");
    assert!(p[0].disable_bgp_export);
    assert_eq!(p[0].allowed_uses, ["Tunnel"]);
    let two = format!("{yaml}---\n{}", yaml.replace("10.65", "10.66"));
    let p = parse_pool_file("p.yaml", &two).unwrap();
    assert_eq!(
        p.iter().map(|p| p.cidr.as_str()).collect::<Vec<_>>(),
        ["10.65.0.0/16", "10.66.0.0/16"]
    );
    assert!(
        parse_pool_file("p.yaml", "kind: BGPPeer\nspec:\n  cidr: x\n")
            .unwrap_err()
            .contains("only IPPool")
    );
    assert!(
        parse_pool_file("p.yaml", "spec:\n  cidr: 10.0.0.0/8\n  bogus: 1\n")
            .unwrap_err()
            .contains("bogus")
    );
}

#[test]
fn what_vrouterd_does_not_implement_is_refused_by_name() {
    let spec = |extra: &str| format!("kind: IPPool\nspec:\n  cidr: 10.1.0.0/16\n{extra}");
    let cases = [
        // Calico spells it disableBGPExport: the camel-case guess is no field.
        ("  disableBgpExport: true\n", "unknown field `disableBgpExport`"),
        ("  ipip:\n    enabled: true\n", "pool 10.1.0.0/16: ipip is Calico's v1 field: use ipipMode"),
        ("  nat-outgoing: true\n", "pool 10.1.0.0/16: nat-outgoing is Calico's v1 field: use natOutgoing"),
        (
            "  namespaceSelector: team == 'a'\n",
            "pool 10.1.0.0/16: namespaceSelector \"team == 'a'\": vrouterd does not implement namespace selection",
        ),
        ("  nodeSelector: zone = 'a'\n", "pool 10.1.0.0/16: nodeSelector \"zone = 'a'\": selector: at position 5: expected =="),
        ("  nodeSelector: [a]\n", "nodeSelector"),
        ("  ipamConfig: {}\n", "unknown field `ipamConfig`"),
        // Values Calico's validation refuses are refused here, by field.
        ("  vxlanMode: Sometimes\n", "pool 10.1.0.0/16: vxlanMode \"Sometimes\" is not one of Always, CrossSubnet, Never"),
        ("  ipipMode: always\n", "pool 10.1.0.0/16: ipipMode \"always\" is not one of"),
        ("  assignmentMode: Auto\n", "pool 10.1.0.0/16: assignmentMode \"Auto\" is not one of Automatic, Manual"),
        ("  allowedUses: [Workload, Pods]\n", "pool 10.1.0.0/16: allowedUses \"Pods\" is not one of Workload, Tunnel, LoadBalancer"),
        ("  allowedUses: []\n", "pool 10.1.0.0/16: allowedUses is empty"),
        ("  allowedUses: [LoadBalancer, Workload]\n", "LoadBalancer cannot be combined"),
    ];
    for (extra, want) in cases {
        let e = parse_pool_file("p.yaml", &spec(extra)).expect_err(extra);
        assert!(e.starts_with("p.yaml: "), "{e}");
        assert!(e.contains(want), "{extra:?}: {e} does not say {want:?}");
    }
}

#[test]
fn pool_names_from_cidrs() {
    assert_eq!(pool_name("10.65.0.0/16"), "pool-10-65-0-0-16");
    assert_eq!(pool_name("fd00:10::/48"), "pool-fd00-10---48");
}

#[test]
fn list_yaml_is_calicos_and_applies_back_to_the_same_pools() {
    // As the daemon reports them: defaults spelt out, blocks and origin set.
    let listed = vec![
        pb::Pool {
            cidr: "10.65.0.0/16".into(),
            block_size: 26,
            ipip_mode: "Never".into(),
            vxlan_mode: "Always".into(),
            nat_outgoing: true,
            node_selector: "kubernetes.io/hostname in {'a', 'b'}".into(),
            allowed_uses: vec!["Workload".into(), "Tunnel".into()],
            assignment_mode: "Automatic".into(),
            blocks: vec!["10.65.0.0/26".into()],
            origin: "api".into(),
            ..Default::default()
        },
        pb::Pool {
            cidr: "fd00:10::/48".into(),
            block_size: 122,
            ipip_mode: "Never".into(),
            vxlan_mode: "Never".into(),
            disabled: true,
            disable_bgp_export: true,
            node_selector: "!all()".into(),
            allowed_uses: vec!["LoadBalancer".into()],
            assignment_mode: "Manual".into(),
            origin: "config".into(),
            ..Default::default()
        },
    ];
    let yaml = pools_yaml(&listed);
    assert!(yaml.starts_with("apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata:\n    name: pool-10-65-0-0-16\n  spec:\n    cidr: 10.65.0.0/16\n"), "{yaml}");
    for field in [
        "disableBGPExport: true",
        "nodeSelector: '!all()'",
        "assignmentMode: Manual",
        "- LoadBalancer",
        "blockSize: 122",
        "vxlanMode: Always",
        "natOutgoing: true",
    ] {
        assert!(yaml.contains(field), "{field} missing from\n{yaml}");
    }
    let applied = parse_pool_file("list.yaml", &yaml).unwrap();
    let mut want = listed.clone();
    for p in &mut want {
        p.blocks.clear();
        p.origin.clear();
    }
    assert_eq!(applied, want);
    // Printed again, the same text: nothing drifts.
    assert_eq!(pools_yaml(&applied), yaml);
    // An unfilled pool gets Calico's defaults spelt out.
    let bare = pools_yaml(&[pb::Pool {
        cidr: "10.9.0.0/16".into(),
        ..Default::default()
    }]);
    for field in [
        "nodeSelector: all()",
        "assignmentMode: Automatic",
        "- Workload\n    - Tunnel",
        "ipipMode: Never",
    ] {
        assert!(bare.contains(field), "{field} missing from\n{bare}");
    }
}

#[test]
fn namespace_selector_all_is_the_default_and_accepted() {
    let text = "kind: IPPool\nspec:\n  cidr: 10.1.0.0/16\n  namespaceSelector: all()\n";
    assert_eq!(
        parse_pool_file("p.yaml", text).unwrap()[0].cidr,
        "10.1.0.0/16"
    );
}

#[test]
fn list_rows_show_every_calico_field() {
    let p = parse_pool_file("p.yaml", CALICO_POOL).unwrap().remove(0);
    let row = pool_row(&p);
    assert_eq!(row.len(), POOL_COLUMNS.len());
    let cells: Vec<(&str, &str)> = POOL_COLUMNS
        .iter()
        .copied()
        .zip(row.iter().map(String::as_str))
        .collect();
    assert_eq!(
        cells,
        [
            ("CIDR", "10.1.0.0/16"),
            ("BLOCK SIZE", "24"),
            ("IPIP", "CrossSubnet"),
            ("VXLAN", "Never"),
            ("NAT OUTGOING", "true"),
            ("DISABLED", "false"),
            ("DISABLE BGP EXPORT", "true"),
            ("NODE SELECTOR", "zone == 'eu' && !has(edge)"),
            ("ALLOWED USES", "Workload,Tunnel"),
            ("ASSIGNMENT", "Manual"),
        ]
    );
    // Unset: Calico's defaults.
    let bare = pool_row(&pb::Pool {
        cidr: "10.9.0.0/16".into(),
        ..Default::default()
    });
    assert_eq!(
        bare[1..],
        [
            "default",
            "Never",
            "Never",
            "false",
            "false",
            "false",
            "all()",
            "Workload,Tunnel",
            "Automatic"
        ]
    );
}
