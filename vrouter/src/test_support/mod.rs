//! Setup shared by the tests, the benchmarks (`bench`) and the fuzz targets (`fuzz`):
//! a node on a fake host, and the ports and policy set an in-memory pipeline is built
//! from. It lives here, not in each of them, so that the places which set up the same
//! thing do it one way and cannot drift apart; `#[cfg(test)]` code is not visible to the
//! other crates, hence a public module.
//!
//! Nothing in the router uses it (it is outside the dataplane's path), and it needs no
//! dependency the router does not already have, so no cargo feature gates it.

pub mod fake_host;
pub mod pipeline;
