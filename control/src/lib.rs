//! The control plane: the embedded BGP speaker (`bgp`), later the RIB's sync into the
//! FIB and the gRPC API. Never imports the dataplane.

pub mod bgp;
pub mod ipam;
pub mod rib;
pub mod speaker;
pub mod tcp_md5;
