//! The vrouter dataplane. Today: the proxy-ARP and proxy-ND responders pods need for
//! their gateway (`arp`, `nd`) and the validated configuration (`config`); workers, AF_XDP I/O and endpoints arrive with the rest of the dataplane issue.

pub mod arp;
pub mod config;
pub mod nd;
