//! fwdbench keeps its interface: `--memio` alone, the namespace scenario (root), and
//! loud failures for what does not exist.

use std::process::{Command, Stdio};

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
    let v = json_with_issue_keys(&out);
    assert_eq!(v["scenario"], "l3");
    assert!(v["memio_cycles_per_pkt"].as_f64().unwrap() > 0.0);
    assert!(v["memio_worker_cycles_per_pkt"].as_f64().unwrap() > 0.0);
}

#[test]
fn unbuilt_scenarios_fail_loudly() {
    for args in [
        &["--scenario", "vxlan"][..],
        &["--scenario", "vxlan", "--memio"][..],
        &["--scenario", "l3", "--windows", "2"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_fwdbench"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

/// The namespace run (vrouterd vs bare AF_XDP vs kernel) with short windows. Needs root
/// and vrouterd built next to fwdbench (`cargo build --workspace` builds both).
#[test]
fn namespace_scenario_reports_rates() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test builds network namespaces: run it as root"
    );
    let child = Command::new(env!("CARGO_BIN_EXE_fwdbench"))
        .args([
            "--scenario",
            "l3",
            "--windows",
            "3",
            "--window-secs",
            "0.5",
            "--no-memio",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let v = json_with_issue_keys(&out);
    for k in [
        "vrouter_mpps_min",
        "vrouter_mpps_max",
        "bare_afxdp_mpps_min",
        "bare_afxdp_mpps_max",
        "kernel_mpps_min",
        "kernel_mpps_max",
        "offered_mpps",
        "windows",
        "window_secs",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    for k in [
        "vrouter_mpps",
        "bare_afxdp_mpps",
        "kernel_mpps",
        "vrouter_mpps_min",
        "bare_afxdp_mpps_min",
        "kernel_mpps_min",
        "offered_mpps",
        "ratio_vs_bare",
        "ratio_vs_kernel",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k} not > 0: {v}");
    }
    assert_eq!(v["windows"], 3);
    assert!(v["memio_cycles_per_pkt"].is_null(), "{v}");
    for k in [
        "vrouter_windows_mpps",
        "bare_afxdp_windows_mpps",
        "kernel_windows_mpps",
    ] {
        assert_eq!(v[k].as_array().unwrap().len(), 3, "{k}: {v}");
    }
    // Nothing left behind.
    let left = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("fwb{pid}-"))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "namespaces left behind");
}

/// Parse fwdbench's JSON after a successful run and check the keys the issue names.
fn json_with_issue_keys(out: &std::process::Output) -> serde_json::Value {
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
    v
}
