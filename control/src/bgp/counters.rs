//! Per-session message and prefix counters (`vrouterctl peer show`, `/metrics`), as
//! `gobgp neighbor ADDR` and `birdc show protocols all` report them.

use super::wire::{self, Capabilities, HEADER_LEN};

/// BGP messages of one direction, by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl MessageCounts {
    pub fn total(&self) -> u64 {
        self.open + self.update + self.notification + self.keepalive + self.route_refresh
    }

    /// One message of BGP type `t` (a type we do not know is not counted: the
    /// session fails on it before it is counted).
    pub fn count(&mut self, t: u8) {
        match t {
            wire::OPEN => self.open += 1,
            wire::UPDATE => self.update += 1,
            wire::NOTIFICATION => self.notification += 1,
            wire::KEEPALIVE => self.keepalive += 1,
            wire::ROUTE_REFRESH => self.route_refresh += 1,
            _ => {}
        }
    }

    /// Every whole message in `bytes`, back-to-back messages as we send them.
    pub fn count_all(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while bytes.len() - at >= HEADER_LEN {
            let len = u16::from_be_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            if len < HEADER_LEN || at + len > bytes.len() {
                return;
            }
            self.count(bytes[at + 18]);
            at += len;
        }
    }

    pub fn add(&mut self, o: &MessageCounts) {
        self.open += o.open;
        self.update += o.update;
        self.notification += o.notification;
        self.keepalive += o.keepalive;
        self.route_refresh += o.route_refresh;
    }
}

/// What a session received: messages, and the prefixes in its UPDATEs (before any
/// treat-as-withdraw).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: MessageCounts,
    pub announced: u64,
    pub withdrawn: u64,
}

impl Received {
    pub fn add(&mut self, o: &Received) {
        self.messages.add(&o.messages);
        self.announced += o.announced;
        self.withdrawn += o.withdrawn;
    }
}

/// A peer's counters since it was configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    pub received: Received,
    pub sent: MessageCounts,
}

/// Capabilities as operators read them: `ipv4-unicast`, `4-octet-as`, …
pub fn capabilities_text(c: &Capabilities) -> Vec<String> {
    let mut out: Vec<String> = c
        .families
        .iter()
        .map(|f| match f {
            wire::Family::Ipv4 => "ipv4-unicast".to_string(),
            wire::Family::Ipv6 => "ipv6-unicast".to_string(),
        })
        .collect();
    if c.four_octet_as {
        out.push("4-octet-as".into());
    }
    if c.route_refresh {
        out.push("route-refresh".into());
    }
    if let Some(g) = &c.graceful_restart {
        let mut s = format!("graceful-restart (restart time {} s", g.restart_time);
        if g.restarting {
            s.push_str(", restarting");
        }
        let kept: Vec<&str> = g
            .families
            .iter()
            .filter(|(_, forwarding)| *forwarding)
            .map(|(f, _)| match f {
                wire::Family::Ipv4 => "ipv4",
                wire::Family::Ipv6 => "ipv6",
            })
            .collect();
        if !kept.is_empty() {
            s.push_str(&format!(", forwarding kept: {}", kept.join(" ")));
        }
        s.push(')');
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::wire::Family;

    #[test]
    fn sent_messages_are_counted_by_type_and_a_torn_tail_is_not() {
        let mut c = MessageCounts::default();
        let mut bytes = wire::keepalive();
        bytes.extend(wire::route_refresh(Family::Ipv4));
        bytes.extend(wire::end_of_rib(Family::Ipv4));
        bytes.extend(wire::keepalive());
        c.count_all(&bytes);
        assert_eq!(
            c,
            MessageCounts {
                keepalive: 2,
                route_refresh: 1,
                update: 1,
                ..Default::default()
            }
        );
        assert_eq!(c.total(), 4);
        let mut torn = MessageCounts::default();
        torn.count_all(&bytes[..bytes.len() - 1]);
        assert_eq!(torn.total(), 3);
        let mut junk = MessageCounts::default();
        junk.count_all(&[0xff; 40]);
        assert_eq!(junk.total(), 0);
    }
}
