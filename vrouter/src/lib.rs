//! The vrouter dataplane. Today: the proxy-ARP and proxy-ND responders pods need for
//! their gateway (`arp`, `nd`); workers, AF_XDP I/O and endpoints arrive with the rest of the dataplane issue.

pub mod arp;
pub mod nd;
