//! The gRPC API's edge: each call (from `control::api`, answered on the control loop)
//! is parsed into the node's own types, carried out by `NodeState`, and its domain
//! error turned into a gRPC status here and nowhere else.

use crate::config::{AssignmentMode, BgpPeer, EncapMode, EndpointKind, Pool, StaticRoute, Via};
use crate::node::endpoints::EndpointRequest;
use crate::node::error::{invalid, NodeError, NodeResult};
use crate::node::NodeState;
use control::api::{pb, Call};
use ipnet::IpNet;
use std::net::IpAddr;
use tonic::Status;

use crate::cluster::{endpoint_handle, texts, Cluster, ClusterEvent};
use crate::node::cluster_state::DatastoreStatus;
use crate::node::handles::check_handle;
use datastore::ipam::IpamPool;

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::Invalid(m) => Status::invalid_argument(m),
            NodeError::NotFound(m) => Status::not_found(m),
            NodeError::AlreadyExists(m) => Status::already_exists(m),
            NodeError::Precondition(m) => Status::failed_precondition(m),
            NodeError::Exhausted(m) => Status::resource_exhausted(m),
            NodeError::Internal(m) => Status::internal(m),
        }
    }
}

fn reply<T>(r: NodeResult<T>) -> Result<T, Status> {
    r.map_err(Status::from)
}

/// In cluster mode a pool applied to one node would be that node's alone.
const CLUSTER_POOLS: &str = "this node's pools are the cluster's: apply them to the datastore \
     (vrouterctl --etcd-endpoints URL pool apply -f FILE, or ETCD_ENDPOINTS)";

/// Answer one API call (`cluster`: the datastore's driver, in cluster mode).
pub fn answer(node: &mut NodeState, call: Call, cluster: Option<&Cluster>) {
    match call {
        Call::NodeStatus(_, tx) => {
            let _ = tx.send(Ok(node.node_status()));
        }
        Call::ListPeers(_, tx) => {
            let _ = tx.send(Ok(pb::ListPeersReply {
                peers: node.peers(),
            }));
        }
        Call::ListEndpoints(_, tx) => {
            let _ = tx.send(Ok(pb::ListEndpointsReply {
                endpoints: node
                    .ports
                    .endpoints
                    .iter()
                    .map(|e| node.endpoint_pb(e))
                    .collect(),
            }));
        }
        Call::AddEndpoint(e, tx) if cluster.is_some() && e.addresses.is_empty() => {
            // Addresses from the shared IPAM first (off this thread); the endpoint is
            // added when they come back (`cluster_event`).
            match (endpoint_request(e), cluster) {
                (Ok(req), Some(c)) if node.endpoint(&req.name).is_none() => {
                    let handle = endpoint_handle(&node.config.node_name, &req.name);
                    c.allocate(req, handle, ipam_pools(node), tx);
                }
                (Ok(req), _) => {
                    let _ = tx.send(Err(Status::already_exists(format!(
                        "endpoint {} exists",
                        req.name
                    ))));
                }
                (Err(e), _) => {
                    let _ = tx.send(Err(e.into()));
                }
            }
        }
        Call::AddEndpoint(e, tx) => {
            let r = endpoint_request(e)
                .and_then(|req| node.add_endpoint(req))
                .map(|ep| node.endpoint_pb(&ep));
            let _ = tx.send(reply(r));
        }
        Call::RemoveEndpoint(r, tx) => {
            let released = node.remove_endpoint(&r.name);
            if let (Ok(_), Some(c)) = (&released, cluster) {
                c.release(endpoint_handle(&node.config.node_name, &r.name));
            }
            let released = released.map(|a| pb::RemoveEndpointReply {
                released: texts(&a),
            });
            let _ = tx.send(reply(released));
        }
        Call::AllocateAddresses(r, tx) => match (cluster, check_handle(&r.handle)) {
            (_, Err(e)) => {
                let _ = tx.send(Err(e.into()));
            }
            (Some(c), Ok(())) => c.allocate_for_handle(r, ipam_pools(node), tx),
            (None, Ok(())) => {
                let got = if r.lookup {
                    node.handle_addresses(&r.handle)
                } else {
                    node.allocate_for_handle(&r.handle, r.ipv6)
                };
                let got = got.map(|a| pb::AllocateAddressesReply {
                    addresses: texts(&a),
                });
                let _ = tx.send(reply(got));
            }
        },
        Call::ReleaseAddresses(r, tx) => match (cluster, check_handle(&r.handle)) {
            (_, Err(e)) => {
                let _ = tx.send(Err(e.into()));
            }
            (Some(c), Ok(())) => c.release_handle(r.handle, tx),
            (None, Ok(())) => {
                let r = node
                    .release_handle(&r.handle)
                    .map(|a| pb::ReleaseAddressesReply {
                        released: texts(&a),
                    });
                let _ = tx.send(reply(r));
            }
        },
        Call::ListRoutes(r, tx) => {
            let _ = tx.send(reply(node.list_routes(&r)));
        }
        Call::AddRoute(r, tx) => {
            let r = static_route(r).and_then(|route| {
                let dst = route.dst.trunc();
                let nh = node.add_route(route)?;
                Ok(node.route_pb(dst, nh))
            });
            let _ = tx.send(reply(r));
        }
        Call::RemoveRoute(r, tx) => {
            let r = parse_net(&r.prefix, "prefix")
                .and_then(|dst| node.remove_route(dst))
                .map(|()| pb::RemoveRouteReply {});
            let _ = tx.send(reply(r));
        }
        Call::ApplyPool(_, tx) if cluster.is_some() => {
            let _ = tx.send(Err(Status::failed_precondition(CLUSTER_POOLS)));
        }
        Call::RemovePool(_, tx) if cluster.is_some() => {
            let _ = tx.send(Err(Status::failed_precondition(CLUSTER_POOLS)));
        }
        Call::ApplyPool(p, tx) => {
            let r = pool(p)
                .and_then(|p| node.apply_pool(p))
                .map(|p| node.pool_pb(&p));
            let _ = tx.send(reply(r));
        }
        Call::ListPools(_, tx) => {
            let _ = tx.send(Ok(pb::ListPoolsReply {
                pools: node.config.pools.iter().map(|p| node.pool_pb(p)).collect(),
            }));
        }
        Call::RemovePool(r, tx) => {
            let r = parse_net(&r.cidr, "cidr")
                .and_then(|cidr| node.remove_pool(cidr))
                .map(|()| pb::RemovePoolReply {});
            let _ = tx.send(reply(r));
        }
        Call::AddPeer(p, tx) => {
            let r = bgp_peer(&p).and_then(|peer| {
                let address = peer.address;
                node.add_peer(peer)?;
                Ok(pb::Peer {
                    address: address.to_string(),
                    asn: p.asn,
                    peer_type: "api".into(),
                    ..Default::default()
                })
            });
            let _ = tx.send(reply(r));
        }
        Call::RemovePeer(r, tx) => {
            let r = r
                .address
                .parse::<IpAddr>()
                .map_err(|e| invalid(format!("address {:?}: {e}", r.address)))
                .and_then(|a| node.remove_peer(a))
                .map(|()| pb::RemovePeerReply {});
            let _ = tx.send(reply(r));
        }
        Call::LogLevel(r, tx) => {
            let answer = if r.level.is_empty() {
                Ok(pb::LogLevelReply {
                    level: crate::logging::level(),
                    previous: String::new(),
                })
            } else {
                crate::logging::set_level(&r.level)
                    .map(|previous| {
                        tracing::info!(level = %r.level, %previous, "log level changed");
                        pb::LogLevelReply {
                            level: r.level.clone(),
                            previous,
                        }
                    })
                    .map_err(Status::invalid_argument)
            };
            let _ = tx.send(answer);
        }
        Call::GetPeer(r, tx) => {
            let found = node.peers().into_iter().find(|p| p.address == r.address);
            let _ = tx.send(
                found.ok_or_else(|| Status::not_found(format!("{} is not a peer", r.address))),
            );
        }
        Call::ResetPeer(r, tx) => {
            let done = r
                .address
                .parse::<IpAddr>()
                .map_err(|e| invalid(format!("address {:?}: {e}", r.address)))
                .and_then(|a| node.reset_peer(a, r.soft))
                .map(|done| pb::ResetPeerReply { done });
            let _ = tx.send(reply(done));
        }
        Call::GetStats(_, tx) => {
            let _ = tx.send(Ok(node.stats()));
        }
        Call::ListFlows(r, tx) => {
            let _ = tx.send(reply(node.list_flows(r)));
        }
        Call::FlushFlows(r, tx) => {
            let _ = tx.send(reply(node.flush_flows(r)));
        }
        Call::ApplyPolicies(r, tx) => {
            let _ = tx.send(reply(node.apply_policies(r)));
        }
        Call::ListPolicies(_, tx) => {
            let _ = tx.send(Ok(node.list_policies()));
        }
        Call::RemovePolicy(r, tx) => {
            let r = node
                .remove_policy(&r.key)
                .map(|()| pb::RemovePolicyReply {});
            let _ = tx.send(reply(r));
        }
        Call::ConntrackStats(_, tx) => {
            let _ = tx.send(Ok(node.conntrack_stats()));
        }
        Call::Reload(_, tx) => {
            let _ = tx.send(reply(node.reload().map(|r| pb::ReloadReply {
                changes: r.applied,
                needs_restart: r.needs_restart,
            })));
        }
    }
}

fn parse_net(s: &str, field: &str) -> NodeResult<IpNet> {
    crate::config::parse_net(s).map_err(|e| invalid(format!("{field} {e}")))
}

fn endpoint_request(req: pb::Endpoint) -> NodeResult<EndpointRequest> {
    let kind = match req.kind.as_str() {
        "" | "veth" => EndpointKind::Veth,
        "tap" => EndpointKind::Tap,
        k => return Err(invalid(format!("kind {k:?}: veth or tap"))),
    };
    let mac = match req.mac.as_str() {
        "" => None,
        m => Some(
            crate::config::parse_mac(m)
                .map(|_| m.to_string())
                .ok_or_else(|| invalid(format!("mac {m:?}: not aa:bb:cc:dd:ee:ff")))?,
        ),
    };
    let ips = req
        .addresses
        .iter()
        .map(|a| parse_host(a))
        .collect::<NodeResult<_>>()?;
    Ok(EndpointRequest {
        name: req.name,
        kind,
        interface: req.interface,
        ips,
        mac,
        ipv6: req.ipv6,
        labels: req.labels.into_iter().collect(),
        container_id: (!req.container_id.is_empty()).then_some(req.container_id),
        workload: match req.workload {
            None => None,
            Some(w) if w.orchestrator.is_empty() || w.endpoint.is_empty() => {
                return Err(invalid("workload: orchestrator and endpoint are needed"))
            }
            Some(w) => Some(crate::config::WorkloadIdentity {
                orchestrator: w.orchestrator,
                namespace: w.namespace,
                pod: w.pod,
                endpoint: w.endpoint,
                profiles: w.profiles,
            }),
        },
    })
}

fn static_route(r: pb::AddRouteRequest) -> NodeResult<StaticRoute> {
    let dst = parse_net(&r.prefix, "prefix")?;
    let via: Vec<IpAddr> = r
        .via
        .iter()
        .map(|v| v.parse().map_err(|e| invalid(format!("via {v:?}: {e}"))))
        .collect::<NodeResult<_>>()?;
    Ok(StaticRoute {
        dst,
        via: match via.len() {
            0 => None,
            1 => Some(Via::One(via[0])),
            _ => Some(Via::Many(via)),
        },
        node: (!r.node.is_empty()).then(|| r.node.clone()),
        uplink: (!r.uplink.is_empty()).then(|| r.uplink.clone()),
    })
}

fn pool(req: pb::Pool) -> NodeResult<Pool> {
    let assignment_mode = match req.assignment_mode.as_str() {
        "" | "Automatic" => AssignmentMode::Automatic,
        "Manual" => AssignmentMode::Manual,
        m => {
            return Err(invalid(format!(
                "assignmentMode {m:?}: must be Automatic or Manual"
            )))
        }
    };
    // The node's validation (config::validate) checks the selector and the uses.
    Ok(Pool {
        cidr: parse_net(&req.cidr, "cidr")?,
        block_size: (req.block_size != 0).then_some(req.block_size.min(255) as u8),
        ipip_mode: parse_mode(&req.ipip_mode, "ipipMode")?,
        vxlan_mode: parse_mode(&req.vxlan_mode, "vxlanMode")?,
        nat_outgoing: req.nat_outgoing,
        disabled: req.disabled,
        node_selector: (!req.node_selector.is_empty()).then_some(req.node_selector),
        disable_bgp_export: req.disable_bgp_export,
        allowed_uses: (!req.allowed_uses.is_empty()).then_some(req.allowed_uses),
        assignment_mode,
    })
}

fn bgp_peer(p: &pb::Peer) -> NodeResult<BgpPeer> {
    let address: IpAddr = p
        .address
        .parse()
        .map_err(|e| invalid(format!("address {:?}: {e}", p.address)))?;
    // Through the API, never loopback (a file may name a feeder on the node itself).
    crate::config::check_peer_address(address, &[], false).map_err(|e| invalid(e.0))?;
    let password_file = match p.password_file.as_str() {
        "" => None,
        f if !p.password.is_empty() => {
            return Err(invalid(format!(
                "password and password_file {f:?}: give one, not both"
            )))
        }
        f => {
            let path = std::path::PathBuf::from(f);
            if !path.is_absolute() {
                return Err(invalid(format!("password_file {f:?}: an absolute path")));
            }
            // Read now (refused here rather than a session without its key later);
            // only the path is kept.
            crate::config::read_password_file(&path).map_err(invalid)?;
            Some(path)
        }
    };
    if p.asn == 0 {
        return Err(invalid("asn is needed"));
    }
    if p.hold_time > 65535 || p.port > 65535 {
        return Err(invalid("hold_time and port: at most 65535"));
    }
    Ok(BgpPeer {
        address,
        asn: Some(p.asn),
        password: (!p.password.is_empty()).then(|| p.password.clone()),
        password_file,
        rr_client: p.rr_client,
        hold_time: if p.hold_time == 0 {
            90
        } else {
            p.hold_time as u16
        },
        keepalive: None,
        port: if p.port == 0 { 179 } else { p.port as u16 },
        passive: p.passive,
        enforce_first_as: true,
        max_prefixes: None,
        max_prefixes_warning: 75,
        ttl_security: None,
    })
}

fn parse_mode(s: &str, field: &str) -> NodeResult<EncapMode> {
    match s {
        "" | "Never" => Ok(EncapMode::Never),
        "Always" => Ok(EncapMode::Always),
        "CrossSubnet" => Ok(EncapMode::CrossSubnet),
        _ => Err(invalid(format!(
            "{field} {s:?}: must be Always, CrossSubnet or Never"
        ))),
    }
}

/// A host address (`10.0.0.1` or `10.0.0.1/32`).
fn parse_host(s: &str) -> NodeResult<IpNet> {
    let net = if s.contains('/') {
        s.parse::<IpNet>()
            .map_err(|e| invalid(format!("address {s:?}: {e}")))?
    } else {
        IpNet::from(
            s.parse::<IpAddr>()
                .map_err(|e| invalid(format!("address {s:?}: {e}")))?,
        )
    };
    if net.prefix_len() != net.max_prefix_len() {
        return Err(invalid(format!("address {s}: must be a host address")));
    }
    Ok(net)
}

/// The pools the shared IPAM may hand endpoint addresses from unasked (enabled,
/// Automatic, for workloads, selecting this node).
pub fn ipam_pools(node: &NodeState) -> Vec<IpamPool> {
    crate::node::persist::ipam_pools(&node.config)
        .into_iter()
        .filter(|p| p.automatic && !p.disabled)
        .map(|p| IpamPool {
            cidr: p.cidr,
            block_size: p.block_size,
        })
        .collect()
}

/// Apply what the datastore's driver reports.
pub fn cluster_event(node: &mut NodeState, cluster: &Cluster, event: ClusterEvent) {
    match event {
        ClusterEvent::View(v) => node.apply_cluster(&v),
        ClusterEvent::Unreachable { since, error } => {
            if let Some(cs) = node.cluster.as_mut() {
                if !matches!(cs.status, DatastoreStatus::Unreachable { .. }) {
                    tracing::warn!(%error, "datastore unreachable: forwarding goes on");
                    cs.status = DatastoreStatus::Unreachable { since, error };
                }
            }
        }
        ClusterEvent::Allocated {
            mut request,
            handle,
            result,
            reply,
        } => {
            let r = match result {
                Err(m) if m.contains("datastore") => Err(Status::unavailable(m)),
                Err(m) => Err(Status::resource_exhausted(m)),
                Ok(ips) => {
                    request.ips = ips.into_iter().map(IpNet::from).collect();
                    match node.add_endpoint(*request) {
                        Ok(ep) => Ok(node.endpoint_pb(&ep)),
                        Err(e) => {
                            cluster.release(handle);
                            Err(e.into())
                        }
                    }
                }
            };
            let _ = reply.send(r);
        }
    }
}
