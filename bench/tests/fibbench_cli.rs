//! fibbench keeps its interface: flags and JSON keys that scripts rely on.
//! (Figures are not judged here: a benchmark is not a timed test.)

use std::process::Command;

const KEYS: [&str; 13] = [
    "family",
    "routes",
    "unique_prefixes",
    "lookup_ns",
    "lookup_cycles",
    "batch_lookup_ns",
    "batch_lookup_cycles",
    "build_s",
    "insert_cycles_p50",
    "insert_cycles_p99",
    "delete_cycles_p50",
    "delete_cycles_p99",
    "memory_bytes",
];

fn fibbench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fibbench"))
        .args(args)
        .output()
        .expect("run fibbench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = fibbench(args);
    assert!(ok, "fibbench {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn json_has_the_documented_keys_for_both_families() {
    for family in ["v4", "v6"] {
        let v = json(&[
            "--family",
            family,
            "--routes",
            "5000",
            "--lookups",
            "100000",
            "--updates",
            "500",
            "--json",
        ]);
        for k in KEYS {
            assert!(v.get(k).is_some(), "{family}: key {k} missing in {v}");
        }
        assert_eq!(v["family"], family);
        assert_eq!(v["routes"], 5000);
        let unique = v["unique_prefixes"].as_u64().unwrap();
        assert!(unique > 4000 && unique <= 5000, "{unique}");
        assert!(v["lookup_cycles"].as_f64().unwrap() > 0.0);
        assert!(v["batch_lookup_cycles"].as_f64().unwrap() > 0.0);
        // Lookups in 16 repetitions: the minimum beside the median (lookup_cycles).
        for what in ["lookup_cycles", "batch_lookup_cycles"] {
            let reps = &v[format!("{what}_reps")];
            assert_eq!(reps["reps"], 16, "{what}: {v}");
            let (min, median, max) = (
                reps["min"].as_f64().unwrap(),
                reps["median"].as_f64().unwrap(),
                reps["max"].as_f64().unwrap(),
            );
            assert!(
                0.0 < min && min <= median && median <= max,
                "{what}: {reps}"
            );
            assert_eq!(v[format!("{what}_min")].as_f64().unwrap(), min);
            assert_eq!(v[what].as_f64().unwrap(), median);
        }
        assert!(
            v["insert_cycles_p99"].as_u64().unwrap() >= v["insert_cycles_p50"].as_u64().unwrap()
        );
        assert!(
            v["memory_bytes"].as_u64().unwrap() >= 2 << 20,
            "at least the direct table"
        );
    }
}

#[test]
fn routes_file_is_read_and_counted_exactly() {
    let dir = std::env::temp_dir().join(format!("fibbench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.txt");
    // Duplicates, host bits, a second column, comments, blank lines and the other family.
    std::fs::write(
        &file,
        "# a tiny table\n10.0.0.0/8 via-a\n10.1.0.0/16\n10.1.2.0/24 x y\n10.1.2.3/24\n\n192.168.0.0/16\n2001:db8::/32\n0.0.0.0/0\n",
    )
    .unwrap();
    let v = json(&[
        "--routes-file",
        file.to_str().unwrap(),
        "--lookups",
        "10000",
        "--updates",
        "10",
        "--json",
    ]);
    assert_eq!(v["routes"], 6);
    assert_eq!(v["unique_prefixes"], 5);
    let v6 = json(&[
        "--family",
        "v6",
        "--routes-file",
        file.to_str().unwrap(),
        "--lookups",
        "10000",
        "--json",
    ]);
    assert_eq!(v6["unique_prefixes"], 1);
    std::fs::write(&file, "10.0.0.0/33\n").unwrap();
    let (ok, _, stderr) = fibbench(&["--routes-file", file.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains(":1:"),
        "a bad line is reported with its number: {stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn table_output_is_readable() {
    let (ok, stdout, stderr) =
        fibbench(&["--routes", "2000", "--lookups", "10000", "--updates", "100"]);
    assert!(ok, "{stderr}");
    for want in [
        "lookup single",
        "lookup batch",
        "insert",
        "delete",
        "memory",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
}

/// `--compare-dpdk` runs `dpdk-test` from PATH and prints its figures beside ours; a stand-in
/// script checks the plumbing (the real DPDK run is the benchmark's job, not a test's).
#[test]
fn compare_dpdk_reads_dpdk_test_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("fibbench-fake-dpdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("dpdk-test");
    std::fs::write(
        &fake,
        "#!/bin/sh\nread t\necho \"RTE>>$t\"\necho 'No. routes = 1000'\n\
         echo 'Average LPM Add: 300000 cycles'\necho 'Average LPM Lookup: 27.5 cycles (fails = 0.0%)'\n\
         echo 'BULK LPM Lookup: 22.5 cycles (fails = 0.0%)'\necho 'Average LPM Delete: 2500000 cycles'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fibbench"))
        .args([
            "--family",
            "v6",
            "--routes",
            "3000",
            "--lookups",
            "20000",
            "--updates",
            "100",
            "--compare-dpdk",
            "--json",
        ])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dpdk = v["dpdk"].as_array().expect("dpdk figures");
    assert_eq!(dpdk.len(), 2, "lpm6 and fib6: {v}");
    assert_eq!(dpdk[0]["test"], "lpm6_perf_autotest");
    assert_eq!(dpdk[0]["batch_lookup_cycles"], 22.5);
    assert_eq!(dpdk[0]["routes"], 1000);
    let ratio = dpdk[0]["ratio_batch_lookup"].as_f64().expect("ratio");
    let ours = v["at_dpdk_table_size"]["batch_lookup_cycles"]
        .as_f64()
        .unwrap();
    assert!(
        (ratio - 22.5 / ours).abs() < 1e-9,
        "ratio = theirs / ours at their size"
    );
    // DPDK's table is a third of ours: ours is measured again at its size.
    assert_eq!(v["at_dpdk_table_size"]["routes"], 1000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fewer_than_15_repetitions_are_refused() {
    let (ok, _, stderr) = fibbench(&["--routes", "1000", "--reps", "3", "--json"]);
    assert!(!ok);
    assert!(stderr.contains("--reps 3 (at least 15)"), "{stderr}");
}
