//! The control plane: the embedded BGP speaker (`bgp` on the wire and per session,
//! `speaker` running them, `rib` choosing routes), IPAM, metrics and the gRPC API (`api`,
//! client `vrouterctl`). Never imports the dataplane: route changes leave as
//! `speaker::RouteChange`s for the daemon to install.
//!
//! No `unsafe` but the one `setsockopt` in `tcp_md5`, allowed and justified there.
#![deny(unsafe_code)]

pub mod api;
pub mod api_tls;
pub mod bgp;
pub mod clidocs;
pub mod ctl;
pub mod ctl_cluster;
pub mod ctl_conntrack;
pub mod ctl_policy;
pub mod histogram;
pub mod ipam;
pub mod metrics;
pub mod process_metrics;
pub mod rib;
mod sockopt;
pub mod speaker;
pub mod tcp_md5;
pub mod ttl_security;
