//! The vrouter dataplane. Today: the per-burst forwarding `pipeline` with its parts:
//! proxy ARP / ND for the pods' gateway (`arp`, `nd`), ICMP errors (`icmp`), the next-hop
//! table FIB leaves index into (`nexthop`), per-worker `counters`, and the validated
//! configuration (`config`). Workers, AF_XDP I/O, tap endpoints and `vrouterd` arrive
//! with the rest of the dataplane issue.

pub mod arp;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod ecmp;
pub mod icmp;
pub mod io;
pub mod manage;
pub mod nd;
pub mod neigh;
pub mod nexthop;
pub mod notify;
pub mod pipeline;
pub mod tunnel;
pub mod worker;
pub mod xdp;
