//! Every seed and every crash found once (`corpus/`, `regressions/`) through its fuzz
//! target with the plain toolchain: none may panic.

fn replay(name: &str) {
    let files = vrouter_fuzz::replay_files(name);
    assert!(
        !files.is_empty(),
        "corpus/{name}/ is empty: `cargo run -p vrouter-fuzz --bin seeds -- fuzz/corpus`"
    );
    let bad = vrouter_fuzz::replay(name, &files);
    assert!(bad.is_empty(), "{name}: {bad:?} panicked");
}

#[test]
fn pipeline() {
    replay("pipeline");
}

#[test]
fn bgp_message() {
    replay("bgp_message");
}

#[test]
fn bgp_session() {
    replay("bgp_session");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn api() {
    replay("api");
}

#[test]
fn cni_stdin() {
    replay("cni_stdin");
}

#[test]
fn datastore_json() {
    replay("datastore_json");
}

#[test]
fn every_target_is_replayed_here() {
    assert_eq!(
        vrouter_fuzz::TARGETS.len(),
        7,
        "a new target needs its test above"
    );
}
