//! An in-memory vrouterd for the commands' unit tests: it allocates from a tiny pool
//! and can be made unreachable or to refuse.

use crate::plugin::{ApiError, Vrouter};
use control::api::pb;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct FakeApi {
    pub endpoints: BTreeMap<String, pb::Endpoint>,
    pub next: u8,
    pub released: Vec<String>,
    pub down: bool,
    pub refuse_add: bool,
    /// vrouter-ipam's handles and what they hold.
    pub handles: BTreeMap<String, Vec<String>>,
}

impl Vrouter for FakeApi {
    fn add(&mut self, mut ep: pb::Endpoint) -> Result<pb::Endpoint, ApiError> {
        if self.down {
            return Err(ApiError::Unreachable("connection refused".into()));
        }
        if self.refuse_add || self.endpoints.contains_key(&ep.name) {
            return Err(ApiError::Refused("no".into()));
        }
        if ep.addresses.is_empty() {
            self.next += 1;
            ep.addresses.push(format!("10.65.0.{}", self.next));
        }
        self.endpoints.insert(ep.name.clone(), ep.clone());
        Ok(ep)
    }
    fn remove(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        if self.down {
            return Err(ApiError::Unreachable("connection refused".into()));
        }
        let ep = self
            .endpoints
            .remove(name)
            .ok_or_else(|| ApiError::NotFound(name.into()))?;
        self.released.extend(ep.addresses.clone());
        Ok(ep.addresses)
    }
    fn list(&mut self) -> Result<Vec<pb::Endpoint>, ApiError> {
        if self.down {
            return Err(ApiError::Unreachable("connection refused".into()));
        }
        Ok(self.endpoints.values().cloned().collect())
    }
    fn allocate(&mut self, handle: &str, v6: bool, lookup: bool) -> Result<Vec<String>, ApiError> {
        if self.down {
            return Err(ApiError::Unreachable("connection refused".into()));
        }
        if lookup || self.handles.contains_key(handle) {
            return Ok(self.handles.get(handle).cloned().unwrap_or_default());
        }
        if self.refuse_add {
            return Err(ApiError::Refused(
                "no free IPv4 address in the pools".into(),
            ));
        }
        self.next += 1;
        let mut got = vec![format!("10.65.0.{}", self.next)];
        if v6 {
            got.push(format!("fd65::{}", self.next));
        }
        self.handles.insert(handle.into(), got.clone());
        Ok(got)
    }
    fn release_handle(&mut self, handle: &str) -> Result<Vec<String>, ApiError> {
        if self.down {
            return Err(ApiError::Unreachable("connection refused".into()));
        }
        let gone = self.handles.remove(handle).unwrap_or_default();
        self.released.extend(gone.clone());
        Ok(gone)
    }
}
