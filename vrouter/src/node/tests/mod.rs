//! Unit tests of the node's state, on a pretend host (no root, no workers).

mod bgp;
mod plan;
mod state;

use super::interface::IfInfo;
use crate::arp::HOST_SIDE_MAC;
use std::io;

/// Interfaces of the unit tests' pretend host.
pub(super) fn info(name: &str) -> io::Result<IfInfo> {
    match name {
        "eth0" => Ok(IfInfo {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 9000,
            ifindex: 7,
        }),
        "cali-a" | "cali-b" | "cali-c" | "cali-d" => Ok(IfInfo {
            mac: HOST_SIDE_MAC,
            mtu: 1500,
            ifindex: 8,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {name}"),
        )),
    }
}

pub(super) fn uplink_only(name: &str) -> io::Result<IfInfo> {
    match name {
        "eth0" => Ok(IfInfo {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            ifindex: 7,
        }),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, name.to_string())),
    }
}
