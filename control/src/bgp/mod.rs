//! The BGP speaker.
//!
//! ```text
//!   TCP (tokio driver, thin)          sans-IO, on a virtual clock in tests
//!   ┌────────────┐  Input::Bytes   ┌──────────────┐  Event::Update ┌──────┐
//!   │ connection ├────────────────►│ fsm::Session ├───────────────►│ RIB  │──► FIB sync
//!   │  per peer  │◄────────────────┤ (RFC 4271 §8)│◄───────────────┤      │
//!   └────────────┘  Event::Send    └──────────────┘  announce()    └──────┘
//!                   Event::Connect / Close; timers via poll_timeout()
//! ```
//! `wire` turns bytes into messages, or into a `DecodeError` naming the NOTIFICATION to
//! send; `error` holds the NOTIFICATION codes and RFC 7606's handling of malformed
//! UPDATEs; `fsm` is one session's state machine (`process(now, input) -> events`).

pub mod counters;
pub mod error;
pub mod fsm;
pub mod rfc7606;
pub mod wire;
