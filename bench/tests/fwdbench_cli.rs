//! fwdbench keeps its interface: `--memio` alone, the namespace scenario (root), and
//! loud failures for what does not exist.

use std::process::{Command, Stdio};

#[test]
fn memio_reports_the_documented_keys() {
    let v = json_with_issue_keys(&small_memio("l3"));
    assert_eq!(v["scenario"], "l3");
    assert!(v["memio_cycles_per_pkt"].as_f64().unwrap() > 0.0);
    assert!(v["memio_worker_cycles_per_pkt"].as_f64().unwrap() > 0.0);
    // 16 repetitions: the minimum beside the median (memio_cycles_per_pkt).
    let reps = &v["memio_cycles_reps"];
    assert_eq!(reps["reps"], 16, "{v}");
    let (min, median, max) = (
        reps["min"].as_f64().unwrap(),
        reps["median"].as_f64().unwrap(),
        reps["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{reps}");
    let min_key = v["memio_cycles_per_pkt_min"].as_f64().unwrap();
    assert!((min_key - min).abs() < 1e-3, "{v}");
}

/// `--memio` with encapsulation: routes to VXLAN / IPIP tunnels, frames from a pod.
#[test]
fn memio_with_encapsulation_reports_cycles() {
    for scenario in ["vxlan", "ipip"] {
        let v = json_with_issue_keys(&small_memio(scenario));
        assert_eq!(v["scenario"], scenario);
        assert!(v["memio_cycles_per_pkt"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["memio_forwarded_ratio"].as_f64().unwrap() > 0.0, "{v}");
    }
}

#[test]
fn bad_arguments_fail_loudly() {
    for args in [
        &["--scenario", "gre"][..],
        &["--scenario", "gre", "--memio"][..],
        &["--scenario", "l3", "--windows", "2"][..],
        &["--scenario", "vxlan", "--windows", "2"][..],
        &["--scenario", "l3", "--rounds", "0"][..],
        &["--scenario", "l3", "--windows", "3", "--rounds", "4"][..],
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
    let child = run_namespace_scenario("l3");
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
    // Three rounds (the default) of one window each: a median per round and candidate,
    // vrouterd's ratios per round.
    assert_eq!(v["rounds"], 3, "{v}");
    for k in [
        "vrouter_round_medians_mpps",
        "bare_afxdp_round_medians_mpps",
        "kernel_round_medians_mpps",
        "ratio_vs_bare_per_round",
        "ratio_vs_kernel_per_round",
    ] {
        let a = v[k]
            .as_array()
            .unwrap_or_else(|| panic!("{k} missing: {v}"));
        assert_eq!(a.len(), 3, "{k}: {v}");
        assert!(
            a.iter().all(|x| x.as_f64().is_some_and(|x| x > 0.0)),
            "{k}: {v}"
        );
    }
    for k in ["vrouter_spread", "bare_afxdp_spread", "kernel_spread"] {
        assert!(v[k].as_f64().is_some_and(|x| x >= 0.0), "{k}: {v}");
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

/// The VXLAN scenario (vrouterd encapsulating vs the kernel's vxlan.calico) with short
/// windows. Needs root and vrouterd built next to fwdbench.
#[test]
fn vxlan_scenario_reports_rates() {
    let out = run_namespace_scenario("vxlan").wait_with_output().unwrap();
    let v = json_with_issue_keys(&out);
    assert_eq!(v["scenario"], "vxlan");
    for k in [
        "vrouter_mpps",
        "bare_afxdp_mpps",
        "kernel_vxlan_mpps",
        "ratio_vs_kernel_vxlan",
        "kernel_vxlan_mpps_min",
        "kernel_vxlan_mpps_max",
        "vrouter_sink_frame_bytes",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k} not > 0: {v}");
    }
    assert_eq!(v["kernel_vxlan_windows_mpps"].as_array().unwrap().len(), 3);
    // fwdbench itself checks the sink got the outer headers: 50 B more than unencapsulated.
    let extra = v["vrouter_sink_frame_bytes"].as_f64().unwrap()
        - v["bare_afxdp_sink_frame_bytes"].as_f64().unwrap();
    assert!((extra - 50.0).abs() < 1.0, "{v}");
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

/// Run the namespace scenario `scenario` briefly (3 windows of 0.5 s, no memio, JSON);
/// needs root (checked loudly).
#[allow(unsafe_code)] // geteuid(2) through libc
fn run_namespace_scenario(scenario: &str) -> std::process::Child {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test builds network namespaces: run it as root"
    );
    Command::new(env!("CARGO_BIN_EXE_fwdbench"))
        .args([
            "--scenario",
            scenario,
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
        .unwrap()
}

/// `--memio` on a small table, quickly.
fn small_memio(scenario: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fwdbench"))
        .args([
            "--scenario",
            scenario,
            "--memio",
            "--routes",
            "2000",
            "--packets",
            "20000",
            "--json",
        ])
        .output()
        .unwrap()
}
