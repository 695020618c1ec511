//! IP address management as Calico does it on a node: pools are split into blocks
//! (/26 for IPv4, /122 for IPv6 by default) that the node claims, and endpoints get
//! addresses from the node's blocks, a new block being claimed when they are full.
//! Released addresses go back; a block left empty is given up (its route withdrawn).
//!
//! The state is one JSON file written atomically (temporary file, fsync, rename), so a
//! crash leaves the old state or the new one, never half of either; it is reloaded at
//! start. Claims are this node's own: sharing a pool between nodes needs them to agree
//! on blocks (Calico's datastore), which the API issue's callers provide.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A pool as IPAM needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub cidr: IpNet,
    pub block_size: u8,
    /// No new blocks from it (existing allocations stay).
    pub disabled: bool,
    /// Addresses are handed out from it without being asked for: Calico's
    /// assignmentMode Automatic, Workload among its allowedUses, and its nodeSelector
    /// matching this node. Otherwise only addresses asked for (`assign`) come from it.
    #[serde(default = "yes")]
    pub automatic: bool,
}

fn yes() -> bool {
    true
}

impl Pool {
    pub fn new(cidr: IpNet) -> Pool {
        let block_size = if cidr.addr().is_ipv4() { 26 } else { 122 };
        Pool {
            cidr: cidr.trunc(),
            block_size: block_size.max(cidr.prefix_len()),
            disabled: false,
            automatic: true,
        }
    }

    /// Whether `allocate` may hand out its addresses (from blocks held or new ones).
    fn allocates(&self) -> bool {
        !self.disabled && self.automatic
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// No pool of that family has a free address (or a free block).
    Exhausted,
    /// The address is in no pool.
    NotInPool(IpAddr),
    /// The address belongs to another endpoint.
    Taken(IpAddr, String),
}

impl std::fmt::Display for IpamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpamError::Exhausted => write!(f, "no free address in the pools"),
            IpamError::NotInPool(a) => write!(f, "{a} is in no pool"),
            IpamError::Taken(a, e) => write!(f, "{a} is already allocated to {e}"),
        }
    }
}

impl std::error::Error for IpamError {}

/// What is persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Claimed blocks and, in each, the allocated addresses and their endpoint.
    blocks: BTreeMap<IpNet, BTreeMap<IpAddr, String>>,
}

pub struct Ipam {
    pools: Vec<Pool>,
    state: State,
    path: Option<PathBuf>,
}

fn block_of(pool: &Pool, a: IpAddr) -> IpNet {
    IpNet::new(a, pool.block_size)
        .expect("block size within the family")
        .trunc()
}

/// The `i`-th address of `net`.
fn nth(net: IpNet, i: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + i as u32)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + i)),
    }
}

fn size(net: IpNet) -> u128 {
    1u128 << (net.max_prefix_len() - net.prefix_len())
}

impl Ipam {
    /// IPAM over `pools`, persisted at `path` (loaded if it exists).
    pub fn open(pools: Vec<Pool>, path: Option<PathBuf>) -> io::Result<Ipam> {
        let state = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                serde_json::from_str(&text).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
                })?
            }
            _ => State::default(),
        };
        Ok(Ipam { pools, state, path })
    }

    /// Replace the pools (blocks already held stay held; new ones come from these).
    pub fn set_pools(&mut self, pools: Vec<Pool>) {
        self.pools = pools;
    }

    /// Every endpoint holding an address.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .blocks
            .values()
            .flat_map(|b| b.values().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The blocks this node holds (what it announces).
    pub fn blocks(&self) -> Vec<IpNet> {
        self.state.blocks.keys().copied().collect()
    }

    /// Addresses allocated to `endpoint`.
    pub fn addresses_of(&self, endpoint: &str) -> Vec<IpAddr> {
        self.state
            .blocks
            .values()
            .flat_map(|b| b.iter().filter(|(_, e)| *e == endpoint).map(|(a, _)| *a))
            .collect()
    }

    /// Who holds `addr`.
    pub fn owner(&self, addr: IpAddr) -> Option<&str> {
        self.state
            .blocks
            .values()
            .find_map(|b| b.get(&addr))
            .map(String::as_str)
    }

    fn pool_of(&self, a: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.cidr.contains(&a))
    }

    /// A free address for `endpoint` in a pool of `v6`'s family: from a block we hold,
    /// else from a newly claimed block.
    pub fn allocate(&mut self, endpoint: &str, v6: bool) -> Result<IpAddr, IpamError> {
        let held = self
            .state
            .blocks
            .iter()
            // A disabled (or manual, or unselected) pool gives nothing new, even from
            // blocks already held.
            .filter(|(b, _)| {
                b.addr().is_ipv6() == v6 && self.pool_of(b.addr()).is_some_and(Pool::allocates)
            })
            .find_map(|(b, used)| {
                (0..size(*b))
                    .map(|i| nth(*b, i))
                    .find(|a| !used.contains_key(a))
            });
        let addr = match held {
            Some(a) => a,
            None => self.claim_block(v6).ok_or(IpamError::Exhausted)?,
        };
        self.take(addr, endpoint);
        Ok(addr)
    }

    /// The lowest block of an enabled, automatic pool of the family that nobody here
    /// holds: its first address.
    fn claim_block(&self, v6: bool) -> Option<IpAddr> {
        for p in self
            .pools
            .iter()
            .filter(|p| p.allocates() && p.cidr.addr().is_ipv6() == v6)
        {
            let blocks = size(p.cidr) >> (p.cidr.max_prefix_len() - p.block_size);
            let step = 1u128 << (p.cidr.max_prefix_len() - p.block_size);
            for i in 0..blocks.min(1 << 20) {
                let first = nth(p.cidr, i * step);
                if !self.state.blocks.contains_key(&block_of(p, first)) {
                    return Some(first);
                }
            }
        }
        None
    }

    /// Give `endpoint` exactly `addr` (an address asked for).
    pub fn assign(&mut self, endpoint: &str, addr: IpAddr) -> Result<(), IpamError> {
        if self.pool_of(addr).is_none() {
            return Err(IpamError::NotInPool(addr));
        }
        match self.owner(addr) {
            Some(e) if e == endpoint => Ok(()),
            Some(e) => Err(IpamError::Taken(addr, e.to_string())),
            None => {
                self.take(addr, endpoint);
                Ok(())
            }
        }
    }

    fn take(&mut self, addr: IpAddr, endpoint: &str) {
        let pool = self
            .pool_of(addr)
            .expect("allocations are in pools")
            .clone();
        self.state
            .blocks
            .entry(block_of(&pool, addr))
            .or_default()
            .insert(addr, endpoint.to_string());
    }

    /// Free every address of `endpoint`; blocks left empty are given up. Returns the
    /// addresses freed.
    pub fn release(&mut self, endpoint: &str) -> Vec<IpAddr> {
        let mut freed = Vec::new();
        for used in self.state.blocks.values_mut() {
            used.retain(|a, e| {
                let mine = e == endpoint;
                if mine {
                    freed.push(*a);
                }
                !mine
            });
        }
        self.state.blocks.retain(|_, used| !used.is_empty());
        freed
    }

    /// Free one address, whoever holds it; a block left empty is given up. Returns who
    /// held it.
    pub fn release_address(&mut self, addr: IpAddr) -> Option<String> {
        let block = *self
            .state
            .blocks
            .iter()
            .find(|(_, used)| used.contains_key(&addr))?
            .0;
        let used = self.state.blocks.get_mut(&block)?;
        let owner = used.remove(&addr);
        if used.is_empty() {
            self.state.blocks.remove(&block);
        }
        owner
    }

    /// Every allocation: address and holder.
    pub fn allocations(&self) -> Vec<(IpAddr, String)> {
        self.state
            .blocks
            .values()
            .flat_map(|b| b.iter().map(|(a, e)| (*a, e.clone())))
            .collect()
    }

    /// Write the state (atomically: a crash leaves the old file or the new one).
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        save_atomically(path, &serde_json::to_vec_pretty(&self.state)?)
    }
}

/// Write a file so a crash leaves the old content or the new, never half of either.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    save_atomically(path, bytes)
}

fn save_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    // State files may hold secrets (a peer's password): the owner's alone.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself reaches the disk with the directory.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
