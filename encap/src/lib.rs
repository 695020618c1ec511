//! Encapsulation and header rewrites for the dataplane, done in place on frame buffers.
//! Today: TTL / hop-limit decrement with incremental checksums and MAC rewrites
//! (`rewrite`); IPIP and VXLAN arrive with the overlay issue.

pub mod fragment;
pub mod rewrite;
