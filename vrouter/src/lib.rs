//! vrouter: the dataplane and `vrouterd`.
//!
//! Dataplane: poll-mode `worker`s move bursts through the `pipeline` (proxy ARP / ND for
//! the pods' gateway in `arp` / `nd`, ICMP errors in `icmp`, next hops, tunnels and ECMP
//! groups in `nexthop` / `tunnel` / `ecmp`, per-worker `counters`, flow tables in
//! `conntrack`) over an `io` backend
//! (AF_XDP, tap, in memory); `xdp` is our XDP program and its loader.
//!
//! Control side: `control_loop` runs the node; `startup` builds and spawns the workers;
//! `node` owns the node's state and its operations; `api` is the gRPC edge; `host` carries
//! the node's changes to the workers and the kernel; `gateway_sync` keeps uplink next hops
//! on the kernel's neighbours (`neigh`, and `neigh_watch` for its announcements).
//! `config` is the validated file.

pub mod api;
pub mod arp;
pub mod burst;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conntrack;
pub mod control_loop;
pub mod counters;
pub mod ecmp;
pub mod fdstore;
pub mod gateway_sync;
pub mod host;
pub mod icmp;
pub mod io;
pub mod kroute;
pub mod logging;
pub mod nat_ports;
pub mod nd;
pub mod neigh;
pub mod neigh_watch;
pub mod nexthop;
pub mod node;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod restart;
pub mod rtnl;
pub mod startup;
// Setup for tests, benchmarks and fuzz targets only; not part of the router's API.
#[doc(hidden)]
pub mod test_support;
pub mod tunnel;
pub mod worker;
pub mod xdp;
