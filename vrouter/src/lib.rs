//! The vrouter dataplane. Today: the proxy-ARP responder pods need for their gateway
//! (`arp`); workers, AF_XDP I/O and endpoints arrive with the rest of the dataplane issue.

pub mod arp;
