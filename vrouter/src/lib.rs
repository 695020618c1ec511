//! The vrouter dataplane. Today: the proxy-ARP and proxy-ND responders pods need for
//! their gateway (`arp`, `nd`), the validated configuration (`config`), and the next-hop
//! table that FIB leaves index into (`nexthop`). Workers, AF_XDP I/O and endpoints
//! arrive with the rest of the dataplane issue.

pub mod arp;
pub mod config;
pub mod counters;
pub mod nd;
pub mod nexthop;
pub mod pipeline;
