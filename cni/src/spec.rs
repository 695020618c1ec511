//! The CNI specification's side of the plugin (containernetworking/cni SPEC.md, 1.1.0):
//! the environment a runtime sets, the network configuration on stdin, the error JSON
//! with its well-known codes, and results in each supported version's shape.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::path::PathBuf;

/// Versions we accept and answer in (0.2.0 and older results differ too much to matter).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST: &str = "1.1.0";

/// Well-known error codes (SPEC.md "Error"); 100 and up are the plugin's own.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADDs now (CNI 1.1).
    pub const NOT_AVAILABLE: u32 = 50;
    /// CHECK found the container's network not as ADD left it.
    pub const CHECK_FAILED: u32 = 100;
    /// vrouterd refused the request (e.g. no address left, a name already taken).
    pub const REFUSED: u32 = 101;
}

/// The error a plugin prints on stdout (and exits non-zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, d: impl Into<String>) -> CniError {
        self.details = d.into();
        self
    }

    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({ "cniVersion": version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = Value::String(self.details.clone());
        }
        v
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

pub type CniResult<T> = Result<T, CniError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

/// What the runtime said in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// CNI_ARGS: `K=V;K=V`.
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Read the environment through `var` (the process's, or a test's map).
    pub fn read(var: impl Fn(&str) -> Option<String>) -> CniResult<Env> {
        let bad = |m: String| CniError::new(code::INVALID_ENVIRONMENT, m);
        let command = match var("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("GC") => Command::Gc,
            Some("STATUS") => Command::Status,
            Some(other) => return Err(bad(format!("unknown CNI_COMMAND {other:?}"))),
            None => return Err(bad("CNI_COMMAND is not set".into())),
        };
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let needs = |k: &str| -> CniResult<String> {
            get(k).ok_or_else(|| bad(format!("{k} is required for {command:?}")))
        };
        let (mut container_id, mut ifname, mut netns) = (String::new(), String::new(), None);
        match command {
            Command::Add | Command::Check => {
                container_id = needs("CNI_CONTAINERID")?;
                ifname = needs("CNI_IFNAME")?;
                netns = Some(PathBuf::from(needs("CNI_NETNS")?));
            }
            // DEL may come after the namespace is gone.
            Command::Del => {
                container_id = needs("CNI_CONTAINERID")?;
                ifname = needs("CNI_IFNAME")?;
                netns = get("CNI_NETNS").map(PathBuf::from);
            }
            Command::Version | Command::Gc | Command::Status => {}
        }
        if !ifname.is_empty() && !valid_ifname(&ifname) {
            return Err(bad(format!(
                "CNI_IFNAME {ifname:?} is not an interface name"
            )));
        }
        let args = get("CNI_ARGS")
            .unwrap_or_default()
            .split(';')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(bad(format!("CNI_ARGS: {kv:?} is not KEY=VALUE"))),
            })
            .collect::<CniResult<_>>()?;
        let path = get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Linux's rule for interface names: 1 to 15 bytes, no '/', ':' or white space, not . or ..
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// The network configuration (stdin), with the fields this plugin reads; the rest of
/// what runtimes send (capabilities, runtimeConfig...) is kept in `other`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConf>,
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    /// vrouterd's API socket (default: vrouterd's own default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrouter_socket: Option<String>,
    /// Ask for an IPv6 address too (from vrouterd's IPv6 pool).
    #[serde(default)]
    pub ipv6: bool,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct IpamConf {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The IPAM types vrouterd serves itself (the address comes with the endpoint).
pub const OWN_IPAM: &[&str] = &["vrouter-ipam", "calico-ipam"];

impl NetConf {
    pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
        let c: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                "the network configuration is not JSON",
            )
            .details(e.to_string())
        })?;
        Ok(c)
    }

    /// The checks every command but VERSION makes.
    pub fn validate(&self) -> CniResult<()> {
        if self.cni_version.is_empty() {
            return Err(CniError::new(code::INVALID_CONFIG, "cniVersion is missing"));
        }
        if !SUPPORTED_VERSIONS.contains(&self.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cniVersion {} is not supported", self.cni_version),
            )
            .details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        }
        if self.name.is_empty() {
            return Err(CniError::new(code::INVALID_CONFIG, "name is missing"));
        }
        if let Some(i) = &self.ipam {
            if i.kind.is_empty() {
                return Err(CniError::new(code::INVALID_CONFIG, "ipam.type is missing"));
            }
        }
        Ok(())
    }

    /// Whether vrouterd allocates the addresses (no IPAM section, or ours).
    pub fn own_ipam(&self) -> bool {
        self.ipam
            .as_ref()
            .is_none_or(|i| OWN_IPAM.contains(&i.kind.as_str()))
    }

    /// Labels from the CNI "args" convention: `args.cni.labels: [{key, value}]`.
    pub fn labels(&self) -> Vec<(String, String)> {
        let Some(list) = self
            .other
            .get("args")
            .and_then(|a| a.get("cni"))
            .and_then(|c| c.get("labels"))
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|l| {
                Some((
                    l.get("key")?.as_str()?.to_string(),
                    l.get("value")?.as_str()?.to_string(),
                ))
            })
            .collect()
    }
}

/// A result, held version-free; `to_json` gives it the requested version's shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The namespace path, for interfaces inside the container.
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

impl Outcome {
    pub fn to_json(&self, version: &str) -> Value {
        // 0.3.x and 0.4.0 say each address's family; 1.0.0 dropped the field.
        let with_family = version.starts_with("0.");
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = json!({ "name": i.name, "mac": i.mac });
                if let Some(s) = &i.sandbox {
                    v["sandbox"] = json!(s);
                }
                v
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = json!({ "address": ip.address.to_string() });
                if with_family {
                    v["version"] = json!(if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    });
                }
                if let Some(g) = ip.gateway {
                    v["gateway"] = json!(g.to_string());
                }
                if let Some(i) = ip.interface {
                    v["interface"] = json!(i);
                }
                v
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut v = json!({ "dst": r.dst.to_string() });
                if let Some(g) = r.gw {
                    v["gw"] = json!(g.to_string());
                }
                v
            })
            .collect();
        json!({
            "cniVersion": version,
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
            "dns": {},
        })
    }

    /// Read a result of any supported version (a prevResult, or a delegated IPAM
    /// plugin's answer).
    pub fn from_json(v: &Value) -> CniResult<Outcome> {
        let bad = |m: String| CniError::new(code::DECODE_FAILURE, m);
        let text = |v: &Value, k: &str| -> Option<String> {
            v.get(k).and_then(Value::as_str).map(str::to_string)
        };
        let list = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut out = Outcome::default();
        for i in list("interfaces") {
            out.interfaces.push(Interface {
                name: text(&i, "name").ok_or_else(|| bad("an interface without a name".into()))?,
                mac: text(&i, "mac").unwrap_or_default(),
                sandbox: text(&i, "sandbox"),
            });
        }
        for ip in list("ips") {
            let a = text(&ip, "address").ok_or_else(|| bad("an ip without address".into()))?;
            out.ips.push(IpConfig {
                address: a
                    .parse()
                    .map_err(|e| bad(format!("ips: address {a:?}: {e}")))?,
                gateway: text(&ip, "gateway").and_then(|g| g.parse().ok()),
                interface: ip
                    .get("interface")
                    .and_then(Value::as_u64)
                    .map(|i| i as usize),
            });
        }
        for r in list("routes") {
            let d = text(&r, "dst").ok_or_else(|| bad("a route without dst".into()))?;
            out.routes.push(Route {
                dst: d
                    .parse()
                    .map_err(|e| bad(format!("routes: dst {d:?}: {e}")))?,
                gw: text(&r, "gw").and_then(|g| g.parse().ok()),
            });
        }
        Ok(out)
    }
}

/// The VERSION answer.
pub fn version_json(requested: Option<&str>) -> Value {
    json!({
        "cniVersion": requested.filter(|v| SUPPORTED_VERSIONS.contains(v)).unwrap_or(LATEST),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> CniResult<Env> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::read(|k| m.get(k).cloned())
    }

    #[test]
    fn environment_per_command() {
        let add = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;IgnoreUnknown=1",
            ),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(add.command, Command::Add);
        assert_eq!(add.arg("K8S_POD_NAME"), Some("web-1"));
        assert_eq!(add.path.len(), 2);
        // ADD without a netns, an unknown command, a bad interface name, bad CNI_ARGS.
        for bad in [
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![("CNI_COMMAND", "FOO")],
            vec![],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", "eth0/1"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "a"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "novalue"),
            ],
        ] {
            assert_eq!(
                env(&bad).unwrap_err().code,
                code::INVALID_ENVIRONMENT,
                "{bad:?}"
            );
        }
        // DEL needs no netns (it may be gone); VERSION needs nothing.
        let del = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "a"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(del.netns, None);
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn configuration_errors_have_their_codes() {
        assert_eq!(
            NetConf::parse(b"{not json").unwrap_err().code,
            code::DECODE_FAILURE
        );
        let conf = |s: &str| NetConf::parse(s.as_bytes()).unwrap().validate();
        assert_eq!(
            conf(r#"{"name":"n","type":"vrouter-cni"}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            conf(r#"{"cniVersion":"0.2.0","name":"n","type":"vrouter-cni"}"#)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            conf(r#"{"cniVersion":"1.0.0","type":"vrouter-cni"}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            conf(r#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{}}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        for v in SUPPORTED_VERSIONS {
            conf(&format!(
                r#"{{"cniVersion":"{v}","name":"n","type":"vrouter-cni"}}"#
            ))
            .unwrap();
        }
    }

    #[test]
    fn labels_and_ipam_choice() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"vrouter-cni",
                "ipam":{"type":"host-local","ranges":[]},
                "args":{"cni":{"labels":[{"key":"app","value":"web"},{"key":"bad"}]}}}"#,
        )
        .unwrap();
        assert_eq!(c.labels(), vec![("app".to_string(), "web".to_string())]);
        assert!(!c.own_ipam());
        assert_eq!(c.ipam.as_ref().unwrap().other["ranges"], json!([]));
        let own = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#).unwrap();
        assert!(own.own_ipam());
    }

    fn sample() -> Outcome {
        Outcome {
            interfaces: vec![
                Interface {
                    name: "cali0123456789a".into(),
                    mac: "aa:bb:cc:dd:ee:ff".into(),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    sandbox: Some("/run/netns/x".into()),
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.65.0.3/32".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::3/128".parse().unwrap(),
                    gateway: Some("fe80::ecee:eeff:feee:eeee".parse().unwrap()),
                    interface: Some(1),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
        }
    }

    #[test]
    fn results_per_version_round_trip() {
        let o = sample();
        for v in SUPPORTED_VERSIONS {
            let j = o.to_json(v);
            assert_eq!(j["cniVersion"], json!(v));
            assert_eq!(j["ips"][0]["address"], json!("10.65.0.3/32"));
            assert_eq!(j["interfaces"][1]["sandbox"], json!("/run/netns/x"));
            assert!(j["interfaces"][0].get("sandbox").is_none());
            let family = j["ips"][1].get("version").cloned();
            if v.starts_with("0.") {
                assert_eq!(family, Some(json!("6")), "{v}");
            } else {
                assert_eq!(family, None, "{v}");
            }
            assert_eq!(Outcome::from_json(&j).unwrap(), o, "{v}");
        }
        assert_eq!(
            Outcome::from_json(&json!({"ips":[{"address":"nope"}]}))
                .unwrap_err()
                .code,
            code::DECODE_FAILURE
        );
    }

    #[test]
    fn version_answer() {
        let v = version_json(Some("0.4.0"));
        assert_eq!(v["cniVersion"], json!("0.4.0"));
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
        assert_eq!(version_json(Some("9.9.9"))["cniVersion"], json!(LATEST));
        let e = CniError::new(code::TRY_AGAIN_LATER, "vrouterd is not running").details("x");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion":"1.0.0","code":11,"msg":"vrouterd is not running","details":"x"})
        );
    }
}
