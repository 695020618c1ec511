//! Connection tracking out of the node: `vrouterctl conntrack list / flush / stats`
//! (flows read by their workers, between bursts), and the figures the workers publish.

use super::error::{invalid, NodeResult};
use super::NodeState;
use crate::conntrack::view::{FlowFilter, FlowView};
use crate::counters::{Tally, CONNTRACK};
use control::api::pb;

/// Flows listed when the request names no limit.
const DEFAULT_LIMIT: usize = 1000;

fn filter(text: &str) -> NodeResult<FlowFilter> {
    FlowFilter::parse(text).map_err(|e| invalid(format!("filter: {e}")))
}

fn end((src, sport, dst, dport): (std::net::IpAddr, u16, std::net::IpAddr, u16)) -> pb::FlowEnd {
    pb::FlowEnd {
        src: src.to_string(),
        sport: sport.into(),
        dst: dst.to_string(),
        dport: dport.into(),
    }
}

fn flow_pb(f: FlowView) -> pb::Flow {
    pb::Flow {
        worker: f.worker as u32,
        proto: f.proto.into(),
        orig: Some(end(f.orig)),
        reply: Some(end(f.reply)),
        state: f.state.into(),
        idle_s: f.idle_s,
        translated: f.translated,
    }
}

/// NAT's own counts beside the table's: packets translated, and the drops.
fn nat_counts(t: &Tally) -> [(&'static str, u64); 5] {
    use crate::burst::DropReason as D;
    [
        ("nat_translated", t.nat_translated),
        ("nat_handed_off", t.handed_off),
        ("nat_no_port", t.dropped(D::NatNoPort)),
        ("conntrack_full", t.dropped(D::ConntrackFull)),
        ("nat_untranslatable", t.dropped(D::NatUntranslatable)),
    ]
}

fn counters(table: [u64; CONNTRACK.len()], t: &Tally) -> Vec<pb::Counter> {
    let table = CONNTRACK.iter().map(|c| c.key).zip(table);
    table
        .chain(nat_counts(t))
        .map(|(name, value)| pb::Counter {
            name: name.into(),
            value,
        })
        .collect()
}

impl NodeState {
    pub fn list_flows(&mut self, r: pb::ListFlowsRequest) -> NodeResult<pb::ListFlowsReply> {
        let limit = match r.limit {
            0 => DEFAULT_LIMIT,
            n => n as usize,
        };
        let (mut flows, matched) = self.host.flows(&filter(&r.filter)?, limit, false)?;
        flows.sort_by_key(|f| (f.worker, f.idle_s));
        flows.truncate(limit);
        Ok(pb::ListFlowsReply {
            flows: flows.into_iter().map(flow_pb).collect(),
            matched: matched as u64,
        })
    }

    pub fn flush_flows(&mut self, r: pb::FlushFlowsRequest) -> NodeResult<pb::FlushFlowsReply> {
        let (_, flushed) = self.host.flows(&filter(&r.filter)?, 0, true)?;
        Ok(pb::FlushFlowsReply {
            flushed: flushed as u64,
        })
    }

    pub fn conntrack_stats(&self) -> pb::ConntrackStatsReply {
        let workers = (0..self.counters.workers())
            .map(|w| pb::ConntrackWorker {
                worker: w as u32,
                counters: counters(self.counters.conntrack(w), &self.counters.worker(w)),
            })
            .collect();
        pb::ConntrackStatsReply {
            total: counters(self.counters.conntrack_total(), &self.counters.total()),
            workers,
            nat_ports: self
                .host
                .nat_ports()
                .map_or(String::new(), |r| format!("{}-{}", r.start(), r.end())),
        }
    }

    /// The stats file's "conntrack" object: the tables' figures summed over workers.
    pub fn conntrack_json(&self) -> serde_json::Value {
        let m: serde_json::Map<String, serde_json::Value> = CONNTRACK
            .iter()
            .zip(self.counters.conntrack_total())
            .map(|(c, v)| (c.key.to_string(), v.into()))
            .collect();
        m.into()
    }

    /// The Prometheus families of `CONNTRACK`, per worker.
    pub fn conntrack_metrics(&self, x: &mut control::metrics::Exposition) {
        use control::metrics::Kind;
        for (k, c) in CONNTRACK.iter().enumerate() {
            let kind = if c.metric.ends_with("_total") {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            x.family(c.metric, c.help, kind);
            for w in 0..self.counters.workers() {
                let v = self.counters.conntrack(w)[k];
                x.sample(&[("worker", &w.to_string())], v as f64);
            }
        }
    }
}
