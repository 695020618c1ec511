//! The machine's interfaces as /sys/class/net shows them.

use crate::config::parse_mac;
use std::io;

/// A network interface's MAC, MTU and index (from /sys/class/net).
#[derive(Debug, Clone, Copy)]
pub struct IfInfo {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub ifindex: u32,
}

pub fn if_info(name: &str) -> io::Result<IfInfo> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{f}"))
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {f}: {e}")))
    };
    let bad = |f: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("interface {name}: bad {f}"),
        )
    };
    Ok(IfInfo {
        mac: parse_mac(&read("address")?).ok_or_else(|| bad("address"))?,
        mtu: read("mtu")?.parse().map_err(|_| bad("mtu"))?,
        ifindex: read("ifindex")?.parse().map_err(|_| bad("ifindex"))?,
    })
}

/// A kernel counter of an interface (0 when it is gone).
pub fn interface_stat(ifname: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{key}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
