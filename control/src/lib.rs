//! The control plane: the embedded BGP speaker (`bgp`), later the RIB's sync into the
//! FIB, IPAM, metrics and the gRPC API (`api`, client `vrouterctl`). Never imports the
//! dataplane.

pub mod api;
pub mod bgp;
pub mod ctl;
pub mod ipam;
pub mod metrics;
pub mod rib;
pub mod speaker;
pub mod tcp_md5;
