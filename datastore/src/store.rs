//! etcd as libcalico-go's etcdv3 backend uses it: a create is a transaction on the key's
//! version being 0, an update or a delete a transaction on its mod revision (compare
//! and swap), values plain JSON. A lost race is `Ok(false)`, never an error: callers
//! re-read and retry. Errors name the datastore, so an allocation failing while etcd is
//! away says so.

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;

/// How to reach etcd (`[datastore]` in vrouterd's configuration, `ETCD_*` for
/// vrouterctl, as Calico names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub ca_cert_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Key prefix, `/calico` by default.
    pub prefix: String,
    /// Per request.
    pub timeout: Duration,
}

impl EtcdSettings {
    pub fn new(endpoints: Vec<String>) -> EtcdSettings {
        EtcdSettings {
            endpoints,
            ca_cert_file: None,
            cert_file: None,
            key_file: None,
            prefix: "/calico".into(),
            timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// etcd did not answer (or has no quorum): the message names the endpoints.
    Unavailable(String),
    /// A stored value that is not what its key says it is.
    Decode { key: String, error: String },
    /// Anything else the datastore refused.
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "datastore unreachable: {m}"),
            StoreError::Decode { key, error } => write!(f, "datastore: {key}: {error}"),
            StoreError::Other(m) => write!(f, "datastore: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whether a transaction's writes were made, and at which revision if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    No,
    At(i64),
    Unknown,
}

/// One stored key: its value and the revision it was last written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

impl Entry {
    pub fn decode<T: DeserializeOwned>(&self) -> StoreResult<T> {
        serde_json::from_slice(&self.value).map_err(|e| StoreError::Decode {
            key: self.key.clone(),
            error: e.to_string(),
        })
    }
}

/// Go's json.Marshal output for our model types (compact, struct order).
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types always serialize")
}

/// A connection to the cluster's etcd. Cheap to clone (one channel underneath).
#[derive(Clone)]
pub struct Store {
    client: Client,
    endpoints: String,
    pub prefix: String,
}

impl Store {
    /// Connect (lazily: an absent etcd makes requests fail, not this).
    pub async fn connect(s: &EtcdSettings) -> StoreResult<Store> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            .with_timeout(s.timeout)
            .with_keep_alive(Duration::from_secs(5), s.timeout);
        if s.ca_cert_file.is_some() || s.cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &s.ca_cert_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    StoreError::Other(format!("ca_cert_file {}: {e}", ca.display()))
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            match (&s.cert_file, &s.key_file) {
                (Some(c), Some(k)) => {
                    let read = |p: &PathBuf| {
                        std::fs::read(p)
                            .map_err(|e| StoreError::Other(format!("{}: {e}", p.display())))
                    };
                    tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
                }
                (None, None) => {}
                _ => {
                    return Err(StoreError::Other(
                        "cert_file and key_file go together".into(),
                    ))
                }
            }
            options = options.with_tls(tls);
        }
        let endpoints = s.endpoints.join(",");
        let client = Client::connect(&s.endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Unavailable(format!("etcd {endpoints}: {e}")))?;
        Ok(Store {
            client,
            endpoints,
            prefix: s.prefix.clone(),
        })
    }

    fn err_ref(&self, e: &etcd_client::Error) -> StoreError {
        match e {
            etcd_client::Error::GRpcStatus(s)
                // tonic reports its own request timeout as Cancelled ("Timeout
                // expired"): as unsure as a broken connection, so retried likewise.
                if !matches!(
                    s.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
                ) =>
            {
                StoreError::Other(format!("etcd {}: {}", self.endpoints, s.message()))
            }
            e => StoreError::Unavailable(format!("etcd {}: {e}", self.endpoints)),
        }
    }

    fn err(&self, e: etcd_client::Error) -> StoreError {
        self.err_ref(&e)
    }

    /// Run `op`, again when it failed before reaching etcd (a member that is down
    /// refuses the connection; the client's balancer then picks another). A request
    /// that may have reached etcd is never repeated: a compare-and-swap that went
    /// through must not be taken for a lost race.
    async fn run<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.run_with(op, never_sent).await
    }

    /// A read: tried again on any failure of the connection (it changes nothing).
    async fn read<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.run_with(op, |e| {
            matches!(self.err_ref(e), StoreError::Unavailable(_))
        })
        .await
    }

    async fn run_with<T, F, Fut>(
        &self,
        mut op: F,
        again: impl Fn(&etcd_client::Error) -> bool,
    ) -> StoreResult<T>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut wait = Duration::from_millis(20);
        for attempt in 0.. {
            match op(self.client.kv_client()).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < 6 && again(&e) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        unreachable!("the loop returns")
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Entry>> {
        let key = key.to_string();
        let r = self
            .read(|mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(r.kvs().first().map(entry))
    }

    /// Every key under `prefix`, and the revision the list was taken at (a watch from
    /// the next one misses nothing).
    pub async fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, i64)> {
        let prefix = prefix.to_string();
        let r = self
            .read(|mut kv| {
                let prefix = prefix.clone();
                async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        Ok((r.kvs().iter().map(entry).collect(), rev))
    }

    /// Create `key` if it does not exist; `Ok(false)` if it does.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<bool> {
        self.txn(
            key,
            Compare::version(key, CompareOp::Equal, 0),
            TxnOp::put(key, value.clone(), None),
            Some(value),
        )
        .await
    }

    /// Replace `key` if it is still at `mod_revision`; `Ok(false)` if someone wrote it.
    pub async fn update(&self, key: &str, value: Vec<u8>, mod_revision: i64) -> StoreResult<bool> {
        self.txn(
            key,
            Compare::mod_revision(key, CompareOp::Equal, mod_revision),
            TxnOp::put(key, value.clone(), None),
            Some(value),
        )
        .await
    }

    /// Delete `key` if it is still at `mod_revision`.
    pub async fn delete(&self, key: &str, mod_revision: i64) -> StoreResult<bool> {
        self.txn(
            key,
            Compare::mod_revision(key, CompareOp::Equal, mod_revision),
            TxnOp::delete(key, None),
            None,
        )
        .await
    }

    /// Delete every key under `prefix` (test and benchmark set-up only).
    pub async fn delete_prefix(&self, prefix: &str) -> StoreResult<()> {
        let mut kv = self.client.kv_client();
        kv.delete(prefix, Some(DeleteOptions::new().with_prefix()))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// One compare-and-swap. When the connection broke with the request perhaps sent (a
    /// member killed under it), it is sent again and a failed compare then checked
    /// against what is stored: our value there (values carry a sequence number or a
    /// count, written by one writer) or the key gone after a delete means the first one
    /// went through.
    async fn txn(
        &self,
        key: &str,
        when: Compare,
        then: TxnOp,
        value: Option<Vec<u8>>,
    ) -> StoreResult<bool> {
        self.txn_all(vec![when], vec![then], vec![(key.to_string(), value)])
            .await
    }

    /// Several compare-and-swaps as one transaction (one raft commit): all compares
    /// hold and every write is made, or nothing is. `wrote` is what each key holds after
    /// (None: deleted), checked as in `txn` when the connection broke after sending.
    pub async fn txn_all(
        &self,
        when: Vec<Compare>,
        then: Vec<TxnOp>,
        wrote: Vec<(String, Option<Vec<u8>>)>,
    ) -> StoreResult<bool> {
        Ok(self.txn_at(when, then, wrote).await? != Committed::No)
    }

    /// `txn_all`, saying at which revision the writes were made when that is known
    /// (the keys' new mod revision, which a cache of them compares on next time).
    pub async fn txn_at(
        &self,
        when: Vec<Compare>,
        then: Vec<TxnOp>,
        wrote: Vec<(String, Option<Vec<u8>>)>,
    ) -> StoreResult<Committed> {
        let send = || {
            self.run(|mut kv| {
                let t = Txn::new().when(when.clone()).and_then(then.clone());
                async move { kv.txn(t).await }
            })
        };
        let at = |r: &etcd_client::TxnResponse| match (r.succeeded(), r.header()) {
            (false, _) => Committed::No,
            (true, Some(h)) => Committed::At(h.revision()),
            (true, None) => Committed::Unknown,
        };
        let first = send().await;
        let Err(StoreError::Unavailable(why)) = first else {
            return first.map(|r| at(&r));
        };
        // A member lost (the leader, perhaps) means an election: ~2 s of patience in
        // all, each send after a longer wait, before etcd is called unreachable.
        let mut last = why;
        let mut wait = Duration::from_millis(100);
        for _ in 0..5 {
            tokio::time::sleep(wait).await;
            wait *= 2;
            match send().await {
                Ok(r) if r.succeeded() => return Ok(at(&r)),
                Ok(_) => {
                    for (key, value) in &wrote {
                        let now = self.get(key).await?;
                        let ours = match (value, now) {
                            (Some(v), Some(e)) => e.value == *v,
                            (None, None) => true,
                            _ => false,
                        };
                        if !ours {
                            return Ok(Committed::No);
                        }
                    }
                    // The first send went through, at a revision not seen.
                    return Ok(Committed::Unknown);
                }
                Err(StoreError::Unavailable(w)) => last = w,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(last))
    }

    /// A compare that `key` is still at `mod_revision` (0: that it does not exist).
    pub fn unchanged(key: &str, mod_revision: i64) -> Compare {
        if mod_revision == 0 {
            Compare::version(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, mod_revision)
        }
    }

    pub fn put(key: &str, value: Vec<u8>) -> TxnOp {
        TxnOp::put(key, value, None)
    }

    /// Watch every key under `prefix` from `revision` on (with the previous values, so a
    /// delete says what went).
    pub async fn watch(&self, prefix: &str, revision: i64) -> StoreResult<WatchStream> {
        let mut w = self.client.watch_client();
        w.watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision)
                    .with_prev_key(),
            ),
        )
        .await
        .map_err(|e| self.err(e))
    }

    /// Whether etcd answers now (a quorum read of one key).
    pub async fn ping(&self) -> StoreResult<()> {
        self.get(&format!("{}/ping", self.prefix)).await.map(|_| ())
    }
}

/// Whether a request failed before it was sent: the connection itself was refused or
/// could not be made (tonic reports those as "tcp connect error" / "connection refused").
fn never_sent(e: &etcd_client::Error) -> bool {
    let text = match e {
        etcd_client::Error::GRpcStatus(s) if s.code() == Code::Unavailable => {
            format!("{} {:?}", s.message(), std::error::Error::source(s))
        }
        etcd_client::Error::TransportError(t) => format!("{t} {t:?}"),
        _ => return false,
    };
    let t = text.to_ascii_lowercase();
    t.contains("connect error") || t.contains("connection refused")
}

fn entry(kv: &etcd_client::KeyValue) -> Entry {
    Entry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}
