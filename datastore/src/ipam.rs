//! The shared block allocator, as `calico-ipam` keeps it in etcd. Every write is a
//! compare-and-swap on the key's revision and a lost race is retried from a fresh read,
//! so two nodes never own one block and one address is never given twice:
//! - a node claims a block by creating its affinity (`pending`), then the block (with
//!   `affinity: host:<node>`; whoever creates it first owns it), then confirming the
//!   affinity;
//! - an address is taken by rewriting its block at the revision it was read at, in the
//!   same transaction as its handle's raised count (both or neither);
//! - when no pool has a free block, an address is borrowed from another node's block
//!   (Calico's default, strictAffinity off), marked with our node name.
//!
//! A node allocates one address at a time (its own concurrent requests would only lose
//! races to each other) from what it last read or wrote of its affinities, blocks and
//! handles: a steady allocation is one transaction, no read. The cache is only a guess
//! the compare checks; a lost compare drops it and the retry reads afresh.

use crate::block::{self, block_count, nth_block};
use crate::keys;
use crate::model::{AllocationBlock, BlockAffinity, IpamHandle};
use crate::store::{encode, Committed, Entry, Store, StoreError};
use ipnet::IpNet;
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// A pool as the allocator needs it: where blocks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpamPool {
    pub cidr: IpNet,
    pub block_size: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// No free address in the usable pools of that family (nor one to borrow).
    Exhausted(&'static str),
    /// The address is held (by that handle, if known).
    Taken(IpAddr, Option<String>),
    /// The address is in no usable pool.
    NotInPool(IpAddr),
    /// Lost the race too many times in a row.
    Contended,
    Store(StoreError),
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpamError::Exhausted(fam) => write!(f, "no free {fam} address in the pools"),
            IpamError::Taken(a, Some(h)) => write!(f, "{a} is already allocated to {h}"),
            IpamError::Taken(a, None) => write!(f, "{a} is already allocated"),
            IpamError::NotInPool(a) => write!(f, "{a} is in no pool"),
            IpamError::Contended => write!(f, "datastore: too many conflicting writers"),
            IpamError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for IpamError {}

impl From<StoreError> for IpamError {
    fn from(e: StoreError) -> Self {
        IpamError::Store(e)
    }
}

pub type IpamResult<T> = Result<T, IpamError>;

/// Retries of one operation before giving up (each one after a fresh read).
const RETRIES: usize = 64;

/// The allocator of one node.
#[derive(Clone)]
pub struct Ipam {
    store: Store,
    node: String,
    cache: Arc<Mutex<Cache>>,
    /// Held by the allocation in progress.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// What this node last read or wrote, each with the mod revision it was at.
#[derive(Default)]
struct Cache {
    /// Our confirmed blocks, IPv4 and IPv6 (None: not read yet, or perhaps stale).
    affine: [Option<Vec<IpNet>>; 2],
    blocks: HashMap<IpNet, (AllocationBlock, i64)>,
    handles: HashMap<String, (IpamHandle, i64)>,
}

/// Handles remembered at most (one per endpoint; forgotten ones are read again).
const CACHED_HANDLES: usize = 4096;

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A stable per-node start among a pool's blocks, so nodes claiming at once mostly try
/// different blocks (Calico seeds its block order by host name likewise).
fn start_for(node: &str, count: u128) -> u128 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in node.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (h as u128) % count.max(1)
}

impl Ipam {
    pub fn new(store: Store, node: &str) -> Ipam {
        Ipam {
            store,
            node: node.to_string(),
            cache: Arc::default(),
            turn: Arc::default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn prefix(&self) -> &str {
        &self.store.prefix
    }

    /// Our confirmed blocks of one family (or both).
    pub async fn affine_blocks(&self, v6: Option<bool>) -> IpamResult<Vec<IpNet>> {
        let mut out = Vec::new();
        for fam in [false, true] {
            if v6.is_some_and(|f| f != fam) {
                continue;
            }
            let (entries, _) = self
                .store
                .list(&keys::affinities(self.prefix(), &self.node, fam))
                .await?;
            for e in entries {
                let Some(cidr) = keys::cidr_of_key(&e.key) else {
                    continue;
                };
                match e.decode::<BlockAffinity>() {
                    Ok(a) if a.state == "confirmed" && !a.deleted => out.push(cidr),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "skipping an affinity"),
                }
            }
        }
        Ok(out)
    }

    async fn read_block(&self, cidr: IpNet) -> IpamResult<Option<(AllocationBlock, i64)>> {
        let key = keys::block(self.prefix(), cidr);
        let Some(e) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let b: AllocationBlock = e.decode()?;
        if !block::well_formed(&b, cidr) {
            return Err(IpamError::Store(StoreError::Decode {
                key,
                error: "allocations do not match the block's size".into(),
            }));
        }
        Ok(Some((b, e.mod_revision)))
    }

    /// Add `delta` to `handle`'s count for `cidr` (the record goes when it reaches 0).
    async fn bump_handle(&self, handle: &str, cidr: IpNet, delta: i64) -> IpamResult<()> {
        let key = keys::handle(self.prefix(), handle);
        self.forget(None, Some(handle));
        for _ in 0..RETRIES {
            let cur = self.store.get(&key).await?;
            let (mut h, rev) = match &cur {
                Some(e) => (e.decode::<IpamHandle>()?, Some(e.mod_revision)),
                None => (IpamHandle::default(), None),
            };
            let c = h.block.entry(cidr.to_string()).or_insert(0);
            *c = (*c as i64 + delta).max(0) as u32;
            if *c == 0 {
                h.block.remove(&cidr.to_string());
            }
            let done = match (rev, h.block.is_empty()) {
                (Some(rev), true) => self.store.delete(&key, rev).await?,
                (Some(rev), false) => self.store.update(&key, encode(&h), rev).await?,
                (None, true) => true,
                (None, false) => self.store.create(&key, encode(&h)).await?,
            };
            if done {
                return Ok(());
            }
        }
        Err(IpamError::Contended)
    }

    /// Write a block with one more address for `handle` and the handle's raised count
    /// in one transaction (one commit: Calico makes two); `false` if either changed
    /// since it was read. The handle is read unless `cached` and we wrote it last.
    async fn write_taken(
        &self,
        cidr: IpNet,
        b: &AllocationBlock,
        rev: i64,
        handle: &str,
        cached: bool,
    ) -> IpamResult<bool> {
        let hkey = keys::handle(self.prefix(), handle);
        let known = cached
            .then(|| self.cache.lock().unwrap().handles.get(handle).cloned())
            .flatten();
        let (mut h, hrev) = match known {
            Some(k) => k,
            // A new endpoint's handle is not there yet: guess so, the compare checks.
            None if cached => (IpamHandle::default(), 0),
            None => match self.store.get(&hkey).await? {
                Some(e) => (e.decode::<IpamHandle>()?, e.mod_revision),
                None => (IpamHandle::default(), 0),
            },
        };
        *h.block.entry(cidr.to_string()).or_insert(0) += 1;
        let bkey = keys::block(self.prefix(), cidr);
        let (bval, hval) = (encode(b), encode(&h));
        let done = self
            .store
            .txn_at(
                vec![Store::unchanged(&bkey, rev), Store::unchanged(&hkey, hrev)],
                vec![
                    Store::put(&bkey, bval.clone()),
                    Store::put(&hkey, hval.clone()),
                ],
                vec![(bkey, Some(bval)), (hkey, Some(hval))],
            )
            .await?;
        let mut c = self.cache.lock().unwrap();
        match done {
            Committed::At(at) => {
                c.blocks.insert(cidr, (b.clone(), at));
                if c.handles.len() >= CACHED_HANDLES {
                    c.handles.clear();
                }
                c.handles.insert(handle.to_string(), (h, at));
            }
            Committed::No | Committed::Unknown => {
                c.blocks.remove(&cidr);
                c.handles.remove(handle);
            }
        }
        Ok(done != Committed::No)
    }

    /// Take the next free address of `cidr` if there is one; `Ok(None)` when it is full
    /// (or, with `own`, no longer ours), `Err(Contended)` only after many lost races.
    /// The first try works from the cache when `cached`.
    async fn take_in(
        &self,
        cidr: IpNet,
        handle: &str,
        secondary: &BTreeMap<String, String>,
        own: bool,
        cached: bool,
    ) -> IpamResult<Option<IpAddr>> {
        for attempt in 0..RETRIES {
            let from_cache = cached && attempt == 0;
            let known = from_cache
                .then(|| self.cache.lock().unwrap().blocks.get(&cidr).cloned())
                .flatten();
            let read = match known {
                Some(k) => Some(k),
                None => self.read_block(cidr).await?,
            };
            let Some((mut b, rev)) = read else {
                return Ok(None);
            };
            if own && b.host() != Some(self.node.as_str()) {
                let mut c = self.cache.lock().unwrap();
                c.affine = Default::default();
                c.blocks.remove(&cidr);
                return Ok(None);
            }
            let Some(ord) = block::take_next(&mut b, handle, secondary) else {
                return Ok(None);
            };
            if self.write_taken(cidr, &b, rev, handle, from_cache).await? {
                return Ok(Some(block::nth(cidr, ord as u128)));
            }
        }
        Err(IpamError::Contended)
    }

    /// Drop what a write other than an allocation has made stale.
    fn forget(&self, cidr: Option<IpNet>, handle: Option<&str>) {
        let mut c = self.cache.lock().unwrap();
        if let Some(cidr) = cidr {
            c.blocks.remove(&cidr);
        }
        if let Some(h) = handle {
            c.handles.remove(h);
        }
    }

    /// Our confirmed blocks of one family: remembered, or read when `fresh` or unknown.
    async fn own_blocks(&self, v6: bool, fresh: bool) -> IpamResult<Vec<IpNet>> {
        if !fresh {
            if let Some(known) = &self.cache.lock().unwrap().affine[v6 as usize] {
                return Ok(known.clone());
            }
        }
        let read = self.affine_blocks(Some(v6)).await?;
        self.cache.lock().unwrap().affine[v6 as usize] = Some(read.clone());
        Ok(read)
    }

    /// Claim a free block of one of `pools` for this node; `None` when every block of
    /// every pool has an owner.
    async fn claim_block(&self, pools: &[IpamPool], v6: bool) -> IpamResult<Option<IpNet>> {
        let (existing, _) = self.store.list(&keys::blocks(self.prefix(), v6)).await?;
        let taken: BTreeSet<IpNet> = existing
            .iter()
            .filter_map(|e| keys::cidr_of_key(&e.key))
            .collect();
        for p in pools.iter().filter(|p| p.cidr.addr().is_ipv6() == v6) {
            let count = block_count(p.cidr, p.block_size);
            let start = start_for(&self.node, count);
            // At most one candidate more than the blocks that exist is ever looked at.
            let tries = count.min(taken.len() as u128 + 1 + 64);
            for i in 0..tries {
                let cidr = nth_block(p.cidr, p.block_size, (start + i) % count);
                if taken.contains(&cidr) || taken.iter().any(|t| t.contains(&cidr.addr())) {
                    continue;
                }
                if self.claim(cidr).await? {
                    return Ok(Some(cidr));
                }
            }
        }
        Ok(None)
    }

    /// Claim one block: affinity pending, block created, affinity confirmed.
    pub async fn claim(&self, cidr: IpNet) -> IpamResult<bool> {
        let akey = keys::affinity(self.prefix(), &self.node, cidr);
        let pending = BlockAffinity {
            state: "pending".into(),
            deleted: false,
        };
        if !self.store.create(&akey, encode(&pending)).await? {
            // Ours from an interrupted claim: carry on with it.
        }
        let b = block::new_block(cidr, Some(&self.node), now_nanos());
        let bkey = keys::block(self.prefix(), cidr);
        if !self.store.create(&bkey, encode(&b)).await? {
            // Someone else's: our pending affinity goes.
            if let Some(e) = self.store.get(&akey).await? {
                self.store.delete(&akey, e.mod_revision).await?;
            }
            return Ok(false);
        }
        self.confirm(&akey).await?;
        Ok(true)
    }

    async fn confirm(&self, akey: &str) -> IpamResult<()> {
        let confirmed = BlockAffinity {
            state: "confirmed".into(),
            deleted: false,
        };
        for _ in 0..RETRIES {
            let rev = self.store.get(akey).await?.map(|e| e.mod_revision);
            let ok = match rev {
                Some(rev) => self.store.update(akey, encode(&confirmed), rev).await?,
                None => self.store.create(akey, encode(&confirmed)).await?,
            };
            if ok {
                return Ok(());
            }
        }
        Err(IpamError::Contended)
    }

    /// One address of the pools' family for `handle`: from our blocks, else a newly
    /// claimed one, else borrowed from another node's block.
    pub async fn auto_assign(
        &self,
        handle: &str,
        secondary: &BTreeMap<String, String>,
        pools: &[IpamPool],
        v6: bool,
    ) -> IpamResult<IpAddr> {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let pools: Vec<IpamPool> = pools
            .iter()
            .copied()
            .filter(|p| p.cidr.addr().is_ipv6() == v6)
            .collect();
        if pools.is_empty() {
            return Err(IpamError::Exhausted(family));
        }
        let mut secondary = secondary.clone();
        secondary
            .entry("node".into())
            .or_insert_with(|| self.node.clone());
        let _turn = self.turn.lock().await;
        for attempt in 0..RETRIES {
            // The first pass trusts the cache; a full or lost block sends us to etcd
            // before a new block is claimed.
            let cached = attempt == 0;
            let ours = self.own_blocks(v6, !cached).await?;
            for cidr in ours
                .iter()
                .filter(|b| pools.iter().any(|p| p.cidr.contains(*b)))
            {
                if let Some(a) = self
                    .take_in(*cidr, handle, &secondary, true, cached)
                    .await?
                {
                    return Ok(a);
                }
            }
            if cached {
                continue;
            }
            if self.claim_block(&pools, v6).await?.is_none() {
                return self.borrow(handle, &secondary, &pools, v6).await;
            }
            self.cache.lock().unwrap().affine[v6 as usize] = None;
        }
        Err(IpamError::Contended)
    }

    /// An address from any block of the pools with one free.
    async fn borrow(
        &self,
        handle: &str,
        secondary: &BTreeMap<String, String>,
        pools: &[IpamPool],
        v6: bool,
    ) -> IpamResult<IpAddr> {
        let (blocks, _) = self.store.list(&keys::blocks(self.prefix(), v6)).await?;
        for e in &blocks {
            let Some(cidr) = keys::cidr_of_key(&e.key) else {
                continue;
            };
            if !pools.iter().any(|p| p.cidr.contains(&cidr)) {
                continue;
            }
            if let Some(a) = self.take_in(cidr, handle, secondary, false, false).await? {
                return Ok(a);
            }
        }
        Err(IpamError::Exhausted(if v6 { "IPv6" } else { "IPv4" }))
    }

    /// Take `ip` for `handle` (an address asked for by name). Its block is claimed for
    /// us if nobody has it. Taking an address the same handle holds is not an error.
    pub async fn assign_ip(
        &self,
        ip: IpAddr,
        handle: &str,
        secondary: &BTreeMap<String, String>,
        pools: &[IpamPool],
    ) -> IpamResult<()> {
        let pool = pools
            .iter()
            .find(|p| p.cidr.contains(&ip))
            .ok_or(IpamError::NotInPool(ip))?;
        let cidr = IpNet::new(ip, pool.block_size)
            .expect("block size within the family")
            .trunc();
        let mut secondary = secondary.clone();
        secondary
            .entry("node".into())
            .or_insert_with(|| self.node.clone());
        let ord = block::ordinal(cidr, ip).expect("ip is in its block");
        for _ in 0..RETRIES {
            let Some((mut b, rev)) = self.read_block(cidr).await? else {
                self.claim(cidr).await?;
                continue;
            };
            match block::take(&mut b, ord, handle, &secondary) {
                Ok(()) => {}
                Err(Some(h)) if h == handle => return Ok(()),
                Err(h) => return Err(IpamError::Taken(ip, h)),
            }
            if self.write_taken(cidr, &b, rev, handle, false).await? {
                return Ok(());
            }
        }
        Err(IpamError::Contended)
    }

    /// The block holding `ip`, found among the stored ones.
    async fn block_of(&self, ip: IpAddr) -> IpamResult<Option<IpNet>> {
        let (blocks, _) = self
            .store
            .list(&keys::blocks(self.prefix(), ip.is_ipv6()))
            .await?;
        Ok(blocks
            .iter()
            .filter_map(|e| keys::cidr_of_key(&e.key))
            .find(|c| c.contains(&ip)))
    }

    /// Free `ip`; its handle if it was allocated.
    pub async fn release_ip(&self, ip: IpAddr) -> IpamResult<Option<String>> {
        let Some(cidr) = self.block_of(ip).await? else {
            return Ok(None);
        };
        let ord = block::ordinal(cidr, ip).expect("ip is in its block");
        self.forget(Some(cidr), None);
        for _ in 0..RETRIES {
            let Some((mut b, rev)) = self.read_block(cidr).await? else {
                return Ok(None);
            };
            let Some(handle) = block::free(&mut b, ord) else {
                return Ok(None);
            };
            if self
                .store
                .update(&keys::block(self.prefix(), cidr), encode(&b), rev)
                .await?
            {
                if let Some(h) = &handle {
                    self.bump_handle(h, cidr, -1).await?;
                }
                return Ok(handle);
            }
        }
        Err(IpamError::Contended)
    }

    /// The addresses `handle` holds.
    pub async fn addresses_of(&self, handle: &str) -> IpamResult<Vec<IpAddr>> {
        let key = keys::handle(self.prefix(), handle);
        let Some(e) = self.store.get(&key).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for cidr in e.decode::<IpamHandle>()?.block.keys() {
            let Ok(cidr) = cidr.parse::<IpNet>() else {
                continue;
            };
            if let Some((b, _)) = self.read_block(cidr).await? {
                out.extend(
                    block::ordinals_of(&b, handle)
                        .into_iter()
                        .map(|o| block::nth(cidr, o as u128)),
                );
            }
        }
        Ok(out)
    }

    /// Free every address `handle` holds; the addresses freed.
    pub async fn release_handle(&self, handle: &str) -> IpamResult<Vec<IpAddr>> {
        let key = keys::handle(self.prefix(), handle);
        let blocks: Vec<IpNet> = match self.store.get(&key).await? {
            Some(e) => e
                .decode::<IpamHandle>()?
                .block
                .keys()
                .filter_map(|c| c.parse().ok())
                .collect(),
            None => Vec::new(),
        };
        let mut freed = Vec::new();
        self.forget(None, Some(handle));
        for cidr in blocks {
            self.forget(Some(cidr), None);
            'retry: for _ in 0..RETRIES {
                let Some((mut b, rev)) = self.read_block(cidr).await? else {
                    break 'retry;
                };
                let ords = block::ordinals_of(&b, handle);
                for &o in &ords {
                    block::free(&mut b, o);
                }
                if ords.is_empty()
                    || self
                        .store
                        .update(&keys::block(self.prefix(), cidr), encode(&b), rev)
                        .await?
                {
                    freed.extend(ords.iter().map(|&o| block::nth(cidr, o as u128)));
                    break 'retry;
                }
            }
        }
        for _ in 0..RETRIES {
            match self.store.get(&key).await? {
                None => break,
                Some(e) => {
                    if self.store.delete(&key, e.mod_revision).await? {
                        break;
                    }
                }
            }
        }
        Ok(freed)
    }

    /// Give up an empty block of ours (its affinity and the block go together).
    pub async fn release_block(&self, cidr: IpNet) -> IpamResult<bool> {
        self.forget(Some(cidr), None);
        self.cache.lock().unwrap().affine = Default::default();
        let Some((b, rev)) = self.read_block(cidr).await? else {
            return Ok(false);
        };
        if b.allocations.iter().any(|a| a.is_some()) || b.host() != Some(self.node.as_str()) {
            return Ok(false);
        }
        if !self
            .store
            .delete(&keys::block(self.prefix(), cidr), rev)
            .await?
        {
            return Ok(false);
        }
        let akey = keys::affinity(self.prefix(), &self.node, cidr);
        if let Some(e) = self.store.get(&akey).await? {
            self.store.delete(&akey, e.mod_revision).await?;
        }
        Ok(true)
    }
}

/// Every IPAM record, read at one revision, for `ipam show` and `ipam check`.
#[derive(Debug, Clone, Default)]
pub struct IpamSnapshot {
    pub blocks: Vec<(IpNet, AllocationBlock)>,
    /// (host, block, state)
    pub affinities: Vec<(String, IpNet, String)>,
    pub handles: BTreeMap<String, IpamHandle>,
    /// Keys whose value did not parse.
    pub unreadable: Vec<String>,
}

impl IpamSnapshot {
    pub async fn read(store: &Store) -> Result<IpamSnapshot, StoreError> {
        let p = store.prefix.clone();
        let mut s = IpamSnapshot::default();
        let (all, _) = store.list(&format!("{p}/ipam/v2/")).await?;
        let blocks4 = keys::blocks(&p, false);
        let blocks6 = keys::blocks(&p, true);
        let hosts = keys::all_affinities(&p);
        let handles = keys::handles(&p);
        for e in &all {
            let bad = |s: &mut IpamSnapshot, e: &Entry| s.unreadable.push(e.key.clone());
            if e.key.starts_with(&blocks4) || e.key.starts_with(&blocks6) {
                match (keys::cidr_of_key(&e.key), e.decode::<AllocationBlock>()) {
                    (Some(c), Ok(b)) if block::well_formed(&b, c) => s.blocks.push((c, b)),
                    _ => bad(&mut s, e),
                }
            } else if let Some(rest) = e.key.strip_prefix(&hosts) {
                let host = rest.split('/').next().unwrap_or("").to_string();
                match (keys::cidr_of_key(&e.key), e.decode::<BlockAffinity>()) {
                    (Some(c), Ok(a)) => s.affinities.push((host, c, a.state)),
                    _ => bad(&mut s, e),
                }
            } else if let Some(id) = e.key.strip_prefix(&handles) {
                match e.decode::<IpamHandle>() {
                    Ok(h) => {
                        s.handles.insert(id.to_string(), h);
                    }
                    Err(_) => bad(&mut s, e),
                }
            }
        }
        Ok(s)
    }

    /// Allocated addresses: (address, block, handle, node attribute).
    pub fn allocations(&self) -> Vec<(IpAddr, IpNet, Option<String>, Option<String>)> {
        self.blocks
            .iter()
            .flat_map(|(c, b)| {
                block::allocated(b, *c)
                    .into_iter()
                    .map(move |(a, h, n)| (a, *c, h, n))
            })
            .collect()
    }

    /// What `ipam check` reports: each problem as one line. Changes nothing.
    pub fn problems(&self, nodes: &BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.unreadable {
            out.push(format!("{k}: unreadable record"));
        }
        // Overlapping blocks would let one address be given twice.
        for (i, (a, _)) in self.blocks.iter().enumerate() {
            for (b, _) in &self.blocks[i + 1..] {
                if a.contains(&b.addr()) || b.contains(&a.addr()) {
                    out.push(format!("blocks {a} and {b} overlap"));
                }
            }
        }
        // Handles' counts against the blocks.
        let mut counted: BTreeMap<(String, String), u32> = BTreeMap::new();
        for (ip, cidr, handle, node) in self.allocations() {
            match &handle {
                None => out.push(format!("{ip} (block {cidr}): allocated without a handle")),
                Some(h) => *counted.entry((h.clone(), cidr.to_string())).or_insert(0) += 1,
            }
            if let Some(n) = &node {
                if !nodes.is_empty() && !nodes.contains(n) {
                    out.push(format!(
                        "{ip} (block {cidr}): held for node {n}, which is not registered (leaked)"
                    ));
                }
            }
        }
        for ((h, cidr), n) in &counted {
            let recorded = self.handles.get(h).and_then(|r| r.block.get(cidr)).copied();
            if recorded != Some(*n) {
                out.push(format!(
                    "handle {h}: block {cidr} holds {n} address(es) for it, the handle records {}",
                    recorded.map_or("none".into(), |r| r.to_string())
                ));
            }
        }
        for (h, r) in &self.handles {
            for (cidr, n) in &r.block {
                if !counted.contains_key(&(h.clone(), cidr.clone())) {
                    out.push(format!(
                        "handle {h}: records {n} address(es) in block {cidr}, which holds none for it"
                    ));
                }
            }
        }
        for (c, b) in &self.blocks {
            if let Some(h) = b.host() {
                if !nodes.is_empty() && !nodes.contains(h) {
                    out.push(format!("block {c}: affine to {h}, which is not registered"));
                }
                if !self
                    .affinities
                    .iter()
                    .any(|(host, cidr, _)| host == h && cidr == c)
                {
                    out.push(format!(
                        "block {c}: affine to {h} without its affinity record"
                    ));
                }
            }
        }
        for (host, c, state) in &self.affinities {
            let owner = self
                .blocks
                .iter()
                .find(|(b, _)| b == c)
                .map(|(_, b)| b.host());
            if state == "confirmed" && owner != Some(Some(host.as_str())) {
                out.push(format!(
                    "affinity {host} → {c}: the block is {}",
                    match owner {
                        None => "missing".to_string(),
                        Some(o) => format!("affine to {}", o.unwrap_or("nobody")),
                    }
                ));
            }
        }
        out
    }
}
