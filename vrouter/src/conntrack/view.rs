//! Flows as `vrouterctl conntrack` shows them, and the filter that picks them: read
//! by the owning worker between bursts (a command), never concurrently with it.

use super::tcp::TcpState;
use super::{Flow, FlowState, FlowTable, ICMP, ICMPV6, TCP, UDP};
use std::net::IpAddr;

/// One flow, as shown: both directions, what state, idle for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowView {
    pub worker: usize,
    pub proto: &'static str,
    pub orig: (IpAddr, u16, IpAddr, u16),
    pub reply: (IpAddr, u16, IpAddr, u16),
    pub state: &'static str,
    pub idle_s: u32,
    /// The reply is not the original reversed: NAT rewrote it.
    pub translated: bool,
}

/// Which flows: every given field must match either direction's source or destination
/// (`src=`, `dst=`, `addr=`, `port=`, `proto=`). Text like conntrack(8)'s:
/// "proto=udp addr=10.244.1.2 port=53".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub proto: Option<u8>,
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => "tcp",
        UDP => "udp",
        ICMP => "icmp",
        ICMPV6 => "icmpv6",
        _ => "other",
    }
}

fn state_name(s: FlowState) -> &'static str {
    match s {
        FlowState::Tcp(t) => match t {
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait(_) => "FIN_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
        },
        FlowState::Other { replied: true } => "REPLIED",
        FlowState::Other { replied: false } => "UNREPLIED",
    }
}

impl FlowFilter {
    pub fn parse(text: &str) -> Result<FlowFilter, String> {
        let mut f = FlowFilter::default();
        for word in text.split_whitespace() {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?}: want key=value (src, dst, addr, port, proto)"))?;
            let addr = || v.parse::<IpAddr>().map_err(|e| format!("{k}={v}: {e}"));
            match k {
                "src" => f.src = Some(addr()?),
                "dst" => f.dst = Some(addr()?),
                "addr" => f.addr = Some(addr()?),
                "port" => f.port = Some(v.parse().map_err(|e| format!("port={v}: {e}"))?),
                "proto" => {
                    f.proto = Some(match v {
                        "tcp" => TCP,
                        "udp" => UDP,
                        "icmp" => ICMP,
                        "icmpv6" => ICMPV6,
                        _ => return Err(format!("proto={v}: tcp, udp, icmp or icmpv6")),
                    })
                }
                _ => {
                    return Err(format!(
                        "{k}: not a filter key (src, dst, addr, port, proto)"
                    ))
                }
            }
        }
        Ok(f)
    }

    pub fn matches(&self, f: &Flow) -> bool {
        let ends = [
            (
                f.orig.src_addr(),
                f.orig.sport,
                f.orig.dst_addr(),
                f.orig.dport,
            ),
            (
                f.reply.src_addr(),
                f.reply.sport,
                f.reply.dst_addr(),
                f.reply.dport,
            ),
        ];
        self.proto.is_none_or(|p| p == f.orig.proto)
            && self.src.is_none_or(|a| ends.iter().any(|e| e.0 == a))
            && self.dst.is_none_or(|a| ends.iter().any(|e| e.2 == a))
            && self
                .addr
                .is_none_or(|a| ends.iter().any(|e| e.0 == a || e.2 == a))
            && self
                .port
                .is_none_or(|p| ends.iter().any(|e| e.1 == p || e.3 == p))
    }
}

impl FlowTable {
    /// Up to `limit` flows that `filter` picks, as shown, and how many it picks in all.
    pub fn views(
        &self,
        filter: &FlowFilter,
        limit: usize,
        worker: usize,
        now: u32,
    ) -> (Vec<FlowView>, usize) {
        let mut out = Vec::new();
        let mut n = 0;
        for (_, f) in self.iter().filter(|(_, f)| filter.matches(f)) {
            n += 1;
            if out.len() < limit {
                let t = |t: &super::Tuple| (t.src_addr(), t.sport, t.dst_addr(), t.dport);
                out.push(FlowView {
                    worker,
                    proto: proto_name(f.orig.proto),
                    orig: t(&f.orig),
                    reply: t(&f.reply),
                    state: state_name(f.state),
                    idle_s: now.saturating_sub(f.last_seen),
                    translated: f.reply != f.orig.reversed(),
                });
            }
        }
        (out, n)
    }

    /// Remove the flows `filter` picks; how many went.
    pub fn flush_matching(&mut self, filter: &FlowFilter) -> usize {
        let ids: Vec<u32> = self
            .iter()
            .filter(|(_, f)| filter.matches(f))
            .map(|(id, _)| id)
            .collect();
        for &id in &ids {
            self.remove(id);
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FlowState, FlowTable, Tuple, UDP};
    use super::*;

    #[test]
    fn filters_pick_by_either_direction() {
        let mut t = FlowTable::new(16, 1);
        let pod = "10.244.1.2".parse().unwrap();
        let world = "8.8.8.8".parse().unwrap();
        let node = "10.0.0.1".parse().unwrap();
        let orig = Tuple::v4(pod, world, 1000, 53, UDP);
        let reply = Tuple::v4(world, node, 53, 61000, UDP);
        t.insert(orig, reply, FlowState::Other { replied: false }, 5)
            .unwrap();
        t.insert(
            Tuple::v4(pod, world, 1001, 80, TCP),
            Tuple::v4(world, pod, 80, 1001, TCP),
            FlowState::Tcp(TcpState::Established),
            7,
        )
        .unwrap();
        let pick = |s: &str| t.views(&FlowFilter::parse(s).unwrap(), 10, 0, 10);
        assert_eq!(pick("").1, 2);
        assert_eq!(pick("proto=udp").1, 1);
        assert_eq!(pick("port=61000 dst=10.0.0.1").1, 1);
        assert_eq!(pick("addr=8.8.8.8").1, 2);
        assert_eq!(pick("src=10.0.0.1").1, 0);
        let (v, _) = pick("proto=tcp");
        assert_eq!(
            (v[0].state, v[0].idle_s, v[0].translated),
            ("ESTABLISHED", 3, false)
        );
        let (v, _) = pick("proto=udp");
        assert_eq!(
            (v[0].state, v[0].translated, v[0].reply.3),
            ("UNREPLIED", true, 61000)
        );
        // The limit cuts the list, not the count.
        let (v, n) = t.views(&FlowFilter::default(), 1, 0, 10);
        assert_eq!((v.len(), n), (1, 2));
        for bad in ["port", "port=x", "proto=sctp", "src=1.2.3", "color=red"] {
            assert!(FlowFilter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            t.flush_matching(&FlowFilter::parse("proto=udp").unwrap()),
            1
        );
        assert_eq!(t.len(), 1);
    }
}
