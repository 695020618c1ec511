//! The real sides of the plugin's seams: vrouterd's gRPC API, the kernel's links, and
//! IPAM plugins run from CNI_PATH as libcni runs them.

use crate::link::{in_netns, Rtnl};
use crate::plugin::{ApiError, Delegate, Host, PodView, Vrouter, GATEWAY_V4, GATEWAY_V6};
use crate::spec::{code, CniError, CniResult};
use control::api::pb;
use ipnet::IpNet;
use serde_json::Value;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one API call may take before vrouterd is taken as away.
const API_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ApiClient {
    rt: tokio::runtime::Runtime,
    socket: String,
    client: Option<pb::vrouter_client::VrouterClient<tonic::transport::Channel>>,
}

impl ApiClient {
    pub fn new(socket: &str) -> io::Result<ApiClient> {
        Ok(ApiClient {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            socket: socket.to_string(),
            client: None,
        })
    }

    fn call<T, F, Fut>(&mut self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(pb::vrouter_client::VrouterClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let socket = self.socket.clone();
        let client = self.client.clone();
        let result = self.rt.block_on(async move {
            let c = match client {
                Some(c) => c,
                None => tokio::time::timeout(API_TIMEOUT, control::api::connect(&socket))
                    .await
                    .map_err(|_| ApiError::Unreachable(format!("{socket}: no answer")))?
                    .map_err(ApiError::Unreachable)?,
            };
            let r = tokio::time::timeout(API_TIMEOUT, f(c.clone()))
                .await
                .map_err(|_| ApiError::Unreachable(format!("{socket}: no answer in time")))?;
            Ok::<_, ApiError>((c, r))
        });
        let (c, r) = result?;
        self.client = Some(c);
        r.map(tonic::Response::into_inner)
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => ApiError::NotFound(s.message().to_string()),
                tonic::Code::Unavailable | tonic::Code::Unknown => {
                    ApiError::Unreachable(s.message().to_string())
                }
                _ => ApiError::Refused(s.message().to_string()),
            })
    }
}

impl Vrouter for ApiClient {
    fn add(&mut self, ep: pb::Endpoint) -> Result<pb::Endpoint, ApiError> {
        self.call(|mut c| async move { c.add_endpoint(ep).await })
    }
    fn remove(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        let req = pb::RemoveEndpointRequest { name: name.into() };
        self.call(|mut c| async move { c.remove_endpoint(req).await })
            .map(|r| r.released)
    }
    fn list(&mut self) -> Result<Vec<pb::Endpoint>, ApiError> {
        self.call(|mut c| async move { c.list_endpoints(pb::ListEndpointsRequest {}).await })
            .map(|r| r.endpoints)
    }
    fn allocate(&mut self, handle: &str, v6: bool, lookup: bool) -> Result<Vec<String>, ApiError> {
        let req = pb::AllocateAddressesRequest {
            handle: handle.into(),
            ipv6: v6,
            lookup,
        };
        self.call(|mut c| async move { c.allocate_addresses(req).await })
            .map(|r| r.addresses)
    }
    fn release_handle(&mut self, handle: &str) -> Result<Vec<String>, ApiError> {
        let req = pb::ReleaseAddressesRequest {
            handle: handle.into(),
        };
        self.call(|mut c| async move { c.release_addresses(req).await })
            .map(|r| r.released)
    }
}

/// Links in the host's namespace and the pod's.
pub struct KernelHost;

impl Host for KernelHost {
    fn create(
        &mut self,
        host: &str,
        netns: &Path,
        pod: &str,
        pod_mac: [u8; 6],
    ) -> io::Result<[u8; 6]> {
        let ns = std::fs::File::open(netns)?;
        let mut nl = Rtnl::new()?;
        nl.create_veth(host, pod, pod_mac, &ns)?;
        let done = (|| {
            let (index, mac) = nl
                .link(host)?
                .ok_or_else(|| io::Error::other("the new veth is gone"))?;
            crate::offload::disable(host)?;
            nl.set_up(index)?;
            let pod = pod.to_string();
            in_netns(netns, move || crate::offload::disable(&pod))?;
            Ok(mac)
        })();
        if done.is_err() {
            let _ = nl.delete(host);
        }
        done
    }

    fn configure_pod(&mut self, netns: &Path, pod: &str, ips: &[IpNet]) -> io::Result<()> {
        let (pod, ips) = (pod.to_string(), ips.to_vec());
        in_netns(netns, move || {
            let mut nl = Rtnl::new()?;
            if let Some((lo, _)) = nl.link("lo")? {
                nl.set_up(lo)?;
            }
            let (index, _) = nl
                .link(&pod)?
                .ok_or_else(|| io::Error::other(format!("no {pod} in the pod")))?;
            nl.set_up(index)?;
            for ip in &ips {
                nl.add_address(index, *ip)?;
            }
            // As Calico: the gateway on the link, the default route through it.
            if ips.iter().any(|i| i.addr().is_ipv4()) {
                let gw: IpAddr = GATEWAY_V4.parse().unwrap();
                nl.add_route(IpNet::from(gw), None, index)?;
                nl.add_route("0.0.0.0/0".parse().unwrap(), Some(gw), index)?;
            }
            if ips.iter().any(|i| i.addr().is_ipv6()) {
                let gw: IpAddr = GATEWAY_V6.parse().unwrap();
                nl.add_route("::/0".parse().unwrap(), Some(gw), index)?;
            }
            Ok(())
        })
    }

    fn delete(&mut self, host: &str) -> io::Result<bool> {
        Rtnl::new()?.delete(host)
    }

    fn inspect_pod(&mut self, netns: &Path, pod: &str) -> io::Result<Option<PodView>> {
        let pod = pod.to_string();
        in_netns(netns, move || {
            let mut nl = Rtnl::new()?;
            let Some((index, _)) = nl.link(&pod)? else {
                return Ok(None);
            };
            Ok(Some(PodView {
                addresses: nl.addresses(index)?,
                routes: nl.routes(index)?,
            }))
        })
    }
}

/// IPAM plugins found in CNI_PATH, run with our environment (CNI_COMMAND set to ADD or
/// DEL) and the network configuration on stdin, as libcni runs them.
pub struct ExecDelegate {
    pub path: Vec<PathBuf>,
}

impl Delegate for ExecDelegate {
    fn run(&mut self, kind: &str, add: bool, conf: &[u8]) -> CniResult<Option<Value>> {
        if kind.contains('/') {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("ipam.type {kind:?} is not a plugin name"),
            ));
        }
        let bin = self
            .path
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!("IPAM plugin {kind} is not in CNI_PATH"),
                )
            })?;
        let mut child = Command::new(&bin)
            .env("CNI_COMMAND", if add { "ADD" } else { "DEL" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                CniError::new(code::IO_FAILURE, format!("running {}", bin.display()))
                    .details(e.to_string())
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(conf);
        }
        let out = child.wait_with_output().map_err(|e| {
            CniError::new(code::IO_FAILURE, format!("running {}", bin.display()))
                .details(e.to_string())
        })?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            let p = parsed.unwrap_or_default();
            return Err(CniError::new(
                p.get("code")
                    .and_then(Value::as_u64)
                    .unwrap_or(code::IO_FAILURE as u64) as u32,
                format!(
                    "IPAM plugin {kind}: {}",
                    p.get("msg").and_then(Value::as_str).unwrap_or("failed")
                ),
            )
            .details(
                p.get("details")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        if add && parsed.is_none() {
            return Err(CniError::new(
                code::DECODE_FAILURE,
                format!("IPAM plugin {kind} printed no result"),
            ));
        }
        Ok(parsed)
    }
}
