//! Encapsulation and header rewrites for the dataplane, done in place on frame buffers:
//! TTL / hop-limit decrement with incremental checksums and MAC rewrites (`rewrite`),
//! IPv4 fragmentation (`fragment`), IPIP and VXLAN in the forms Calico nodes speak, and
//! their IPv6 variants (`ipip`, `vxlan`, with `tunnel` for what they share and `template`
//! for the per-packet fast path), and the
//! flow hash that picks ECMP next hops and VXLAN source ports (`flow`); address and
//! port translation with its checksums, ICMP errors' quotes included (`nat`). The header fields
//! all of these (and the pipeline, ICMP, ARP and ND) read and write are named in `wire`.

#![forbid(unsafe_code)]

pub mod flow;
pub mod fragment;
pub mod ipip;
pub mod nat;
pub mod rewrite;
pub mod template;
pub mod tunnel;
pub mod vxlan;
pub mod wire;
