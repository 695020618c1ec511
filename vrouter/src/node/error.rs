//! What a node operation can answer besides success: the kind decides how the API edge
//! reports it (a gRPC status), the text says what went wrong in the user's terms.

use crate::config::{Clash, Holder};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// The request itself is wrong (a bad address, a configuration it would break).
    Invalid(String),
    NotFound(String),
    AlreadyExists(String),
    /// Not possible in the node's present state (from the file, in use, BGP off...).
    Precondition(String),
    /// Out of room: addresses, endpoint slots, next hops.
    Exhausted(String),
    /// The node itself failed (a worker stopped, the state could not be saved).
    Internal(String),
}

impl NodeError {
    pub fn message(&self) -> &str {
        match self {
            NodeError::Invalid(m)
            | NodeError::NotFound(m)
            | NodeError::AlreadyExists(m)
            | NodeError::Precondition(m)
            | NodeError::Exhausted(m)
            | NodeError::Internal(m) => m,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for NodeError {}

pub type NodeResult<T> = Result<T, NodeError>;

pub fn invalid(m: impl Into<String>) -> NodeError {
    NodeError::Invalid(m.into())
}

/// An address another endpoint holds is AlreadyExists (naming the holder); the node's
/// own, or one listed twice, is a bad request.
impl From<Clash> for NodeError {
    fn from(c: Clash) -> NodeError {
        match c.holder {
            Holder::Endpoint(_) => NodeError::AlreadyExists(c.to_string()),
            Holder::Node | Holder::Itself => NodeError::Invalid(c.to_string()),
        }
    }
}
