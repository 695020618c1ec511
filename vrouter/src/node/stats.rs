//! Counters out of the node: the API's stats, the Prometheus page, the stats file.

use super::plan::EndpointPlan;
use super::NodeState;
use crate::burst::DropReason;
use crate::counters::{Counters, TALLY};
use crate::nexthop::{Adjacency, NextHopTable};
use control::api::pb;

impl NodeState {
    /// The stats file: counters, endpoints and, with BGP, peers and the FIB's figures.
    pub fn stats_file_json(&self) -> serde_json::Value {
        let mut json = stats_json(&self.counters, &self.ports.endpoints, &self.tables.nexthops);
        json["conntrack"] = self.conntrack_json();
        if let Some(sp) = &self.speaker {
            json["bgp"] = bgp_json(&sp.status.lock().unwrap(), self.bgp.len());
            // The FIB's share of memory: lookup structure and its writer's store.
            json["bgp"]["fib_bytes"] = self.tables.fib_bytes().into();
            // When the last batch reached the FIB (benchmarks time convergence).
            json["bgp"]["last_install_unix_ms"] = self
                .last_install
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
                .into();
        }
        json
    }

    pub fn stats(&self) -> pb::Stats {
        let counter = |name: &str, value: u64| pb::Counter {
            name: name.into(),
            value,
        };
        let tally = |t: &crate::counters::Tally| {
            (
                TALLY
                    .iter()
                    .zip(t.values())
                    .map(|(c, v)| counter(c.key, v))
                    .collect::<Vec<_>>(),
                DropReason::ALL
                    .iter()
                    .map(|&d| counter(d.name(), t.dropped(d)))
                    .collect::<Vec<_>>(),
            )
        };
        let (total, drops) = tally(&self.counters.total());
        let workers = (0..self.counters.workers())
            .map(|w| {
                let (counters, drops) = tally(&self.counters.worker(w));
                pb::WorkerStats {
                    worker: w as u32,
                    counters,
                    drops,
                }
            })
            .collect();
        let endpoints = self
            .ports
            .endpoints
            .iter()
            .map(|e| {
                let mut counters: Vec<pb::Counter> = [
                    "rx_packets",
                    "tx_packets",
                    "rx_bytes",
                    "tx_bytes",
                    "rx_dropped",
                    "tx_dropped",
                ]
                .iter()
                .map(|k| {
                    counter(
                        &format!("interface_{k}"),
                        self.host.interface_counter(&e.interface, k),
                    )
                })
                .collect();
                counters.push(counter(
                    "resolved",
                    matches!(
                        self.tables.nexthops.get(e.nh),
                        Some(Adjacency::Forward { .. })
                    ) as u64,
                ));
                pb::EndpointStats {
                    name: e.name.clone(),
                    counters,
                }
            })
            .collect();
        pb::Stats {
            total,
            drops,
            workers,
            endpoints,
            fib_bytes: self.tables.fib_bytes() as u64,
            routes4: self.tables.fib4.len() as u64,
            routes6: self.tables.fib6.len() as u64,
        }
    }

    pub fn metrics(&self) -> String {
        use control::metrics::{Exposition, Kind};
        let mut x = Exposition::new();
        let per_worker: Vec<crate::counters::Tally> = (0..self.counters.workers())
            .map(|w| self.counters.worker(w))
            .collect();
        for (k, c) in TALLY.iter().enumerate() {
            x.family(c.metric, c.help, Kind::Counter);
            for (w, t) in per_worker.iter().enumerate() {
                x.sample(&[("worker", &w.to_string())], t.values()[k] as f64);
            }
        }
        x.family(
            "vrouter_drops_total",
            "Frames dropped, by worker and reason.",
            Kind::Counter,
        );
        for (w, t) in per_worker.iter().enumerate() {
            for &d in DropReason::ALL.iter() {
                x.sample(
                    &[("worker", &w.to_string()), ("reason", d.name())],
                    t.dropped(d) as f64,
                );
            }
        }
        x.family(
            "vrouter_endpoint_interface_packets_total",
            "The endpoint interfaces' kernel packet counters (host side).",
            Kind::Counter,
        );
        for e in &self.ports.endpoints {
            for (dir, key) in [("rx", "rx_packets"), ("tx", "tx_packets")] {
                x.sample(
                    &[
                        ("endpoint", &e.name),
                        ("interface", &e.interface),
                        ("direction", dir),
                    ],
                    self.host.interface_counter(&e.interface, key) as f64,
                );
            }
        }
        x.family(
            "vrouter_endpoint_resolved",
            "1 once the pod's MAC is known.",
            Kind::Gauge,
        );
        for e in &self.ports.endpoints {
            let up = matches!(
                self.tables.nexthops.get(e.nh),
                Some(Adjacency::Forward { .. })
            );
            x.sample(&[("endpoint", &e.name)], up as u8 as f64);
        }
        x.family(
            "vrouter_routes",
            "Routes in the FIB by source.",
            Kind::Gauge,
        );
        let mut by_source: std::collections::BTreeMap<&str, u64> = Default::default();
        let endpoints_routes: usize = self.config.endpoints.iter().map(|e| e.ips.len()).sum();
        by_source.insert("connected", endpoints_routes as u64);
        by_source.insert("bgp", self.bgp.len() as u64);
        by_source.insert("blackhole", self.own_blocks.len() as u64);
        let total = (self.tables.fib4.len() + self.tables.fib6.len()) as u64;
        let static_routes = total.saturating_sub(by_source.values().sum());
        by_source.insert("static", static_routes);
        for (s, n) in &by_source {
            x.sample(&[("source", s)], *n as f64);
        }
        x.family(
            "vrouter_fib_bytes",
            "Memory of the FIB (lookup and writer's store).",
            Kind::Gauge,
        );
        x.sample(&[], self.tables.fib_bytes() as f64);
        x.family("vrouter_endpoints", "Endpoints served.", Kind::Gauge);
        x.sample(&[], self.ports.endpoints.len() as f64);
        x.family(
            "vrouter_endpoint_slots_free",
            "Endpoint slots left for endpoints added while running.",
            Kind::Gauge,
        );
        x.sample(&[], self.ports.free_slots.len() as f64);
        if let Some(sp) = &self.speaker {
            let peers = sp.status.lock().unwrap().clone();
            x.family(
                "vrouter_bgp_peer_up",
                "1 while the BGP session is Established.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(
                    &[("peer", &p.address.to_string())],
                    (p.state == "Established") as u8 as f64,
                );
            }
            x.family(
                "vrouter_bgp_prefixes_received",
                "Prefixes the peer sent us.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(
                    &[("peer", &p.address.to_string())],
                    p.prefixes_received as f64,
                );
            }
            x.family(
                "vrouter_bgp_prefixes_sent",
                "Prefixes we sent the peer.",
                Kind::Gauge,
            );
            for p in &peers {
                x.sample(&[("peer", &p.address.to_string())], p.prefixes_sent as f64);
            }
            bgp_message_metrics(&mut x, &peers);
            sp.update_seconds.write(
                &mut x,
                "vrouter_bgp_update_seconds",
                "Time the RIB takes to apply one UPDATE received.",
            );
        }
        self.fib_batch_seconds.write(
            &mut x,
            "vrouter_fib_batch_install_seconds",
            "Time to install one batch of BGP route changes in the FIB.",
        );
        self.conntrack_metrics(&mut x);
        x.family(
            "vrouter_uptime_seconds",
            "Seconds since vrouterd started.",
            Kind::Gauge,
        );
        x.sample(&[], self.started.elapsed().as_secs_f64());
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        control::process_metrics::write(
            &mut x,
            "vrouter",
            &[("version", env!("CARGO_PKG_VERSION")), ("profile", profile)],
        );
        x.finish()
    }
}
/// Per peer: messages in and out by type, and prefixes in the UPDATEs received.
fn bgp_message_metrics(
    x: &mut control::metrics::Exposition,
    peers: &[control::speaker::PeerStatus],
) {
    use control::bgp::counters::MessageCounts;
    use control::metrics::Kind;
    let by_type = |m: &MessageCounts| {
        [
            ("open", m.open),
            ("update", m.update),
            ("notification", m.notification),
            ("keepalive", m.keepalive),
            ("route_refresh", m.route_refresh),
        ]
    };
    for (name, help, sent) in [
        (
            "vrouter_bgp_messages_received_total",
            "BGP messages received from the peer, by type.",
            false,
        ),
        (
            "vrouter_bgp_messages_sent_total",
            "BGP messages sent to the peer, by type.",
            true,
        ),
    ] {
        x.family(name, help, Kind::Counter);
        for p in peers {
            let m = if sent {
                &p.counters.sent
            } else {
                &p.counters.received.messages
            };
            for (t, n) in by_type(m) {
                x.sample(&[("peer", &p.address.to_string()), ("type", t)], n);
            }
        }
    }
    for (name, help, announced) in [
        (
            "vrouter_bgp_prefixes_announced_total",
            "Prefixes announced in the UPDATEs received from the peer.",
            true,
        ),
        (
            "vrouter_bgp_prefixes_withdrawn_total",
            "Prefixes withdrawn in the UPDATEs received from the peer.",
            false,
        ),
    ] {
        x.family(name, help, Kind::Counter);
        for p in peers {
            let r = &p.counters.received;
            let n = if announced { r.announced } else { r.withdrawn };
            x.sample(&[("peer", &p.address.to_string())], n);
        }
    }
}

/// The speaker's peers (as `vrouterctl node status` shows them) and the routes learnt.
pub fn bgp_json(peers: &[control::speaker::PeerStatus], routes: usize) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "address": p.address.to_string(),
                "asn": p.asn,
                "type": if p.ibgp { "iBGP" } else { "eBGP" },
                "state": p.state,
                "since": p.since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "info": p.info,
                "prefixes_received": p.prefixes_received,
                "prefixes_sent": p.prefixes_sent,
            })
        })
        .collect();
    serde_json::json!({ "peers": peers, "routes_installed": routes })
}

/// The counters summed over workers, with per-reason drops.
pub fn stats_json(
    counters: &Counters,
    endpoints: &[EndpointPlan],
    nexthops: &NextHopTable,
) -> serde_json::Value {
    let t = counters.total();
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .map(|&r| (r.name().to_string(), t.dropped(r).into()))
        .collect();
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "interface": e.interface,
                "resolved": matches!(nexthops.get(e.nh), Some(Adjacency::Forward { .. })),
            })
        })
        .collect();
    let backend: serde_json::Map<String, serde_json::Value> = crate::burst::BackendStats::NAMES
        .iter()
        .zip(counters.backend_total())
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    let mut json: serde_json::Map<String, serde_json::Value> = TALLY
        .iter()
        .zip(t.values())
        .map(|(c, v)| (c.key.to_string(), v.into()))
        .collect();
    json.insert("drops".into(), drops.into());
    json.insert("backend".into(), backend.into());
    json.insert("endpoints".into(), endpoints.into());
    json.into()
}
