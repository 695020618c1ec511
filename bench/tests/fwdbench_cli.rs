//! fwdbench keeps its interface; the namespace scenarios fail loudly until they exist.

use std::process::Command;

#[test]
fn memio_reports_the_documented_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_fwdbench"))
        .args([
            "--scenario",
            "l3",
            "--memio",
            "--routes",
            "2000",
            "--packets",
            "20000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "scenario",
        "vrouter_mpps",
        "bare_afxdp_mpps",
        "kernel_mpps",
        "ratio_vs_bare",
        "ratio_vs_kernel",
        "memio_cycles_per_pkt",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["scenario"], "l3");
    assert!(v["memio_cycles_per_pkt"].as_f64().unwrap() > 0.0);
}

#[test]
fn unbuilt_scenarios_fail_loudly() {
    for args in [
        &["--scenario", "l3"][..],
        &["--scenario", "vxlan", "--memio"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_fwdbench"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}
