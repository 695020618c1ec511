//! vrouter-ipam against the in-memory vrouterd: calico-ipam's handle, an idempotent ADD,
//! DEL exactly once, CHECK, errors by code, and when the binary answers as it.

use super::*;
use crate::fake::FakeApi;
use crate::spec::{Command, IpamConf};
use serde_json::json;

fn env(command: Command, id: &str) -> Env {
    Env {
        command,
        container_id: id.into(),
        netns: None,
        ifname: "eth0".into(),
        args: vec![],
        path: vec![],
    }
}

fn conf(v6: bool) -> NetConf {
    let mut c = NetConf {
        cni_version: "1.0.0".into(),
        name: "mynet".into(),
        kind: "bridge".into(),
        ..Default::default()
    };
    let mut other = serde_json::Map::new();
    other.insert("ipv6".into(), json!(v6));
    other.insert("vrouter_socket".into(), json!("/run/x.sock"));
    c.ipam = Some(IpamConf {
        kind: "vrouter-ipam".into(),
        other,
    });
    c
}

fn run<T>(api: &mut FakeApi, e: &Env, c: &NetConf, f: impl FnOnce(&mut IpamPlugin) -> T) -> T {
    let mut p = IpamPlugin {
        env: e,
        conf: c,
        api,
    };
    f(&mut p)
}

#[test]
fn add_is_idempotent_del_releases_once_check_compares() {
    let mut api = FakeApi::default();
    let c = conf(true);
    let add = env(Command::Add, "c1");
    let out = run(&mut api, &add, &c, |p| p.add()).unwrap();
    let ips: Vec<String> = out.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(ips, ["10.65.0.1/32", "fd65::1/128"]);
    assert!(api.handles.contains_key("mynet.c1"), "calico-ipam's handle");
    // A retried ADD gets the same addresses.
    let again = run(&mut api, &add, &c, |p| p.add()).unwrap();
    assert_eq!(again, out);
    // The 1.0.0 result: addresses, no interfaces.
    let j = out.to_json("1.0.0");
    assert_eq!(j["ips"][0]["address"], "10.65.0.1/32");
    assert!(j
        .get("interfaces")
        .is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)));
    // CHECK: held, and prevResult's addresses among them.
    let mut chk = c.clone();
    chk.prev_result = Some(j);
    run(&mut api, &env(Command::Check, "c1"), &chk, |p| p.check()).unwrap();
    let e = run(&mut api, &env(Command::Check, "c2"), &chk, |p| p.check()).unwrap_err();
    assert_eq!(e.code, code::CHECK_FAILED);
    // DEL, twice: one release.
    let del = env(Command::Del, "c1");
    run(&mut api, &del, &c, |p| p.del()).unwrap();
    run(&mut api, &del, &c, |p| p.del()).unwrap();
    assert_eq!(api.released, ["10.65.0.1", "fd65::1"]);
    assert!(api.handles.is_empty());
}

#[test]
fn errors_by_code() {
    let mut api = FakeApi {
        down: true,
        ..Default::default()
    };
    let c = conf(false);
    for cmd in [Command::Add, Command::Del, Command::Check] {
        let e = run(&mut api, &env(cmd, "c1"), &c, |p| match cmd {
            Command::Add => p.add().map(drop),
            Command::Del => p.del(),
            _ => p.check(),
        })
        .unwrap_err();
        assert_eq!(e.code, code::TRY_AGAIN_LATER, "{cmd:?}: vrouterd away");
    }
    let e = run(&mut api, &env(Command::Status, "c1"), &c, |p| p.status()).unwrap_err();
    assert_eq!(e.code, code::NOT_AVAILABLE);
    api.down = false;
    api.refuse_add = true;
    let e = run(&mut api, &env(Command::Add, "c1"), &c, |p| p.add()).unwrap_err();
    assert_eq!(e.code, code::REFUSED, "no address left");
    assert!(api.handles.is_empty(), "nothing held after a refused ADD");
}

#[test]
fn when_the_binary_answers_as_the_ipam_plugin() {
    let c = conf(false);
    assert!(invoked_as_ipam("/opt/cni/bin/vrouter-ipam", &c));
    assert!(
        invoked_as_ipam("vrouter-cni", &c),
        "bridge's config names our IPAM"
    );
    let mut ours = c.clone();
    ours.kind = "vrouter-cni".into();
    assert!(!invoked_as_ipam("/opt/cni/bin/vrouter-cni", &ours));
    assert!(invoked_as_ipam("/opt/cni/bin/vrouter-ipam", &ours));
    assert_eq!(socket(&c).as_deref(), Some("/run/x.sock"));
    assert_eq!(handle(&c, &env(Command::Add, "abc")), "mynet.abc");
}
