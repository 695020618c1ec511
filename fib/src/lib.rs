//! Lock-free longest-prefix-match tables for the vrouter dataplane.
//!
//! ```
//! use fib::{Fib4, NextHopId};
//! let mut fib = Fib4::new();
//! fib.insert("10.0.0.0/8".parse().unwrap(), NextHopId(1));
//! fib.insert("10.1.2.0/24".parse().unwrap(), NextHopId(2));
//! let mut reader = fib.reader(); // one per worker thread
//! let view = reader.burst(); // once per burst: the quiescent point
//! assert_eq!(view.lookup("10.1.2.3".parse().unwrap()), Some(NextHopId(2)));
//! assert_eq!(view.lookup("10.9.9.9".parse().unwrap()), Some(NextHopId(1)));
//! assert_eq!(view.lookup("11.0.0.1".parse().unwrap()), None);
//! ```
//!
//! Structure and reclamation are described in `table.rs`, `block.rs` and `qsbr.rs`;
//! the measured reasons for them in docs/decisions.md.

mod arena;
mod block;
pub mod cpu;
pub mod family;
mod qsbr;
pub mod synth;
mod table;

pub use family::{Family, V4, V6};
pub use table::{Fib, Fib4, Fib6, Reader, Reader4, Reader6, Update, View};

/// Index into a next-hop table owned by the caller. `u32::MAX` is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHopId(pub u32);
