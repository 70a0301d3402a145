//! `storage "etcd"` (etcd v3): every entry is the key `<path><key>`; a write is one etcd
//! transaction; HA is a key bound to a lease.
//!
//! A write is acknowledged once etcd has committed it (a quorum of members has it in its log).
//! Compare-and-set checks are compares of the same transaction. With HA in use, every write
//! also compares the lock key's create revision with the one this node created: a node whose
//! lease expired (its key vanished) or that released the lock cannot write, whatever it
//! believes. The lock and the nodes' check-ins live beside the data, under `<path>.ha/`
//! (outside `<path>`), so they are neither listed nor migrated.
//!
//! etcd refuses requests above its `--max-request-bytes` (1.5 MiB by default) and
//! transactions of more than `--max-txn-ops` operations (128): such writes are refused here
//! first, with an error that says so ([`StorageError::TooLarge`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp as ETxnOp,
    TxnOpResponse,
};

pub use crate::etcd_config::EtcdConfig;
use crate::ha::{decode_node, encode_node, HaLock, Member, NodeInfo, HA_MEMBER_TTL, HA_TTL};
use crate::{collapse_list, timed, validate_ops, Backend, StorageError, TxnOp};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Room left in a request for etcd's own framing.
const REQUEST_OVERHEAD: usize = 4096;
const OP_TIMEOUT: Duration = Duration::from_secs(10);
const LOCK_OP_TIMEOUT: Duration = Duration::from_millis(900);

fn etcd_err(context: &str, e: etcd_client::Error) -> StorageError {
    let msg = e.to_string();
    if msg.contains("request is too large") || msg.contains("too many operations in txn") {
        return StorageError::TooLarge(format!("etcd refused the write: {msg}"));
    }
    StorageError::Io(format!("etcd: {context}: {msg}"))
}

struct Fence {
    on: AtomicBool,
    /// The create revision of this node's lock key; 0 while it holds none.
    lock_rev: AtomicI64,
}

/// The etcd backend. See the module documentation.
pub struct EtcdBackend {
    client: Client,
    config: EtcdConfig,
    fence: Arc<Fence>,
    lock_key: String,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("config", &self.config)
            .finish()
    }
}

fn read_file(path: &str, what: &str) -> Result<Vec<u8>, StorageError> {
    std::fs::read(path).map_err(|e| StorageError::Config(format!("reading {what} {path}: {e}")))
}

impl EtcdBackend {
    pub async fn open(mut config: EtcdConfig) -> Result<EtcdBackend, StorageError> {
        if config.endpoints.is_empty() {
            return Err(StorageError::Config(
                "etcd needs at least one address".into(),
            ));
        }
        if !config.path.starts_with('/') {
            config.path.insert(0, '/');
        }
        if !config.path.ends_with('/') {
            config.path.push('/');
        }
        let tls = config.endpoints.iter().any(|e| e.starts_with("https://"));
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(OP_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_require_leader(true);
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            opts = opts.with_user(u.clone(), p.clone());
        }
        if tls {
            let mut t = etcd_client::TlsOptions::new();
            if let Some(ca) = &config.tls_ca_file {
                t = t.ca_certificate(etcd_client::Certificate::from_pem(read_file(
                    ca,
                    "tls_ca_file",
                )?));
            }
            match (&config.tls_cert_file, &config.tls_key_file) {
                (Some(c), Some(k)) => {
                    t = t.identity(etcd_client::Identity::from_pem(
                        read_file(c, "tls_cert_file")?,
                        read_file(k, "tls_key_file")?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(StorageError::Config(
                        "tls_cert_file and tls_key_file go together".into(),
                    ))
                }
            }
            if let Some(name) = &config.tls_server_name {
                t = t.domain_name(name.clone());
            }
            opts = opts.with_tls(t);
        } else if config.tls_ca_file.is_some() || config.tls_cert_file.is_some() {
            return Err(StorageError::Config(
                "TLS files are set but the addresses are http://; use https:// addresses".into(),
            ));
        }
        let client = timed("etcd", Duration::from_secs(15), "connect", async {
            let mut c = Client::connect(config.endpoints.clone(), Some(opts))
                .await
                .map_err(|e| etcd_err("connect", e))?;
            // a first request, so a wrong address or credentials fail at start
            c.get(format!("{}core/", config.path), None)
                .await
                .map_err(|e| etcd_err("connect", e))?;
            Ok(c)
        })
        .await?;
        let lock_key = format!("{}.ha/lock", config.path.trim_end_matches('/'));
        Ok(EtcdBackend {
            client,
            config,
            fence: Arc::new(Fence {
                on: AtomicBool::new(false),
                lock_rev: AtomicI64::new(0),
            }),
            lock_key,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.config.path)
    }

    async fn write(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        validate_ops(&ops)?;
        let rev = if self.fence.on.load(Ordering::Acquire) {
            let rev = self.fence.lock_rev.load(Ordering::Acquire);
            if rev == 0 {
                return Err(StorageError::Fenced);
            }
            Some(rev)
        } else {
            None
        };
        let mut compares = Vec::new();
        let mut checks: Vec<(&str, Option<&Vec<u8>>)> = Vec::new();
        let mut size = 0usize;
        if let Some(rev) = rev {
            compares.push(Compare::create_revision(
                self.lock_key.clone(),
                CompareOp::Equal,
                rev,
            ));
        }
        let mut last: BTreeMap<&str, Option<&Vec<u8>>> = BTreeMap::new();
        for op in &ops {
            size += op.key().len() + self.config.path.len() + 16;
            match op {
                TxnOp::Check { key, expected } => {
                    checks.push((key, expected.as_ref()));
                    compares.push(match expected {
                        Some(v) => {
                            size += v.len();
                            Compare::value(self.full(key), CompareOp::Equal, v.clone())
                        }
                        None => Compare::version(self.full(key), CompareOp::Equal, 0),
                    });
                }
                TxnOp::Put { key, value } => {
                    size += value.len();
                    last.insert(key, Some(value));
                }
                TxnOp::Delete { key } => {
                    last.insert(key, None);
                }
            }
        }
        if size + REQUEST_OVERHEAD > self.config.max_request_bytes {
            return Err(StorageError::TooLarge(format!(
                "the write is about {size} bytes; etcd accepts at most {} bytes per request (its --max-request-bytes; set max_request_bytes here to match a larger one)",
                self.config.max_request_bytes
            )));
        }
        if last.len() > self.config.max_txn_ops || compares.len() > self.config.max_txn_ops {
            return Err(StorageError::TooLarge(format!(
                "the write has {} operations; etcd accepts at most {} per transaction (its --max-txn-ops; set max_txn_ops here to match a larger one)",
                last.len().max(compares.len()),
                self.config.max_txn_ops
            )));
        }
        let then: Vec<ETxnOp> = last
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => ETxnOp::put(self.full(k), v.clone(), None),
                None => ETxnOp::delete(self.full(k), None),
            })
            .collect();
        // on failure: the lock key (was it the fence?) and each checked key (which check?)
        let mut otherwise = Vec::new();
        if rev.is_some() {
            otherwise.push(ETxnOp::get(self.lock_key.clone(), None));
        }
        for (k, _) in &checks {
            otherwise.push(ETxnOp::get(self.full(k), None));
        }
        let txn = Txn::new().when(compares).and_then(then).or_else(otherwise);
        let mut client = self.client.clone();
        let resp = timed("etcd", OP_TIMEOUT, "write", async {
            client.txn(txn).await.map_err(|e| etcd_err("write", e))
        })
        .await?;
        if resp.succeeded() {
            return Ok(());
        }
        let mut found = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .map(|kv| (kv.create_revision(), kv.value().to_vec())),
            _ => None,
        });
        if let Some(rev) = rev {
            let lock = found.next().flatten();
            if lock.map(|(r, _)| r) != Some(rev) {
                self.fence.lock_rev.store(0, Ordering::Release);
                return Err(StorageError::Fenced);
            }
        }
        for ((key, expected), current) in checks.iter().zip(found) {
            if current.map(|(_, v)| v).as_ref() != *expected {
                return Err(StorageError::CasFailed((*key).to_string()));
            }
        }
        // every check passes again: a concurrent change came and went, a conflict still
        Err(StorageError::CasFailed(
            checks
                .first()
                .map(|(k, _)| (*k).to_string())
                .unwrap_or_default(),
        ))
    }

    async fn range_keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let full = self.full(prefix);
        let mut client = self.client.clone();
        let resp = timed("etcd", OP_TIMEOUT, "list", async {
            client
                .get(full, Some(GetOptions::new().with_prefix().with_keys_only()))
                .await
                .map_err(|e| etcd_err("list", e))
        })
        .await?;
        let plen = self.config.path.len();
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok())
            .filter_map(|k| k.get(plen..).map(str::to_string))
            .collect())
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut client = self.client.clone();
        let full = self.full(key);
        let resp = timed("etcd", OP_TIMEOUT, "get", async {
            client.get(full, None).await.map_err(|e| etcd_err("get", e))
        })
        .await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let keys = self.range_keys(prefix).await?;
        Ok(collapse_list(prefix, keys.iter().map(String::as_str)))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops).await
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn ha_lock(&self, node: NodeInfo) -> Option<Arc<dyn HaLock>> {
        if !self.config.ha_enabled {
            return None;
        }
        let base = self.config.path.trim_end_matches('/');
        Some(Arc::new(EtcdLock {
            client: self.client.clone(),
            lock_key: self.lock_key.clone(),
            nodes_prefix: format!("{base}.ha/nodes/"),
            node,
            auth: parking_lot::Mutex::new(String::new()),
            fence: self.fence.clone(),
            lease: tokio::sync::Mutex::new(None),
        }))
    }

    async fn keys(&self) -> Result<Vec<String>, StorageError> {
        self.range_keys("").await
    }
}

struct HeldLease {
    id: i64,
    keeper: etcd_client::LeaseKeeper,
    stream: etcd_client::LeaseKeepAliveStream,
    /// The keep-alive stream failed or timed out: open a new one before the next renewal.
    broken: bool,
}

struct EtcdLock {
    client: Client,
    lock_key: String,
    nodes_prefix: String,
    node: NodeInfo,
    auth: parking_lot::Mutex<String>,
    fence: Arc<Fence>,
    lease: tokio::sync::Mutex<Option<HeldLease>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckIn {
    node: NodeInfo,
    seen: i64,
}

impl EtcdLock {
    fn advert(&self) -> NodeInfo {
        NodeInfo {
            auth: self.auth.lock().clone(),
            ..self.node.clone()
        }
    }

    async fn lock_value(&self) -> Result<Option<(i64, Vec<u8>)>, StorageError> {
        let mut c = self.client.clone();
        let key = self.lock_key.clone();
        let resp = timed("etcd", LOCK_OP_TIMEOUT, "lock read", async {
            c.get(key, None).await.map_err(|e| etcd_err("lock read", e))
        })
        .await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.create_revision(), kv.value().to_vec())))
    }

    fn lost(&self) {
        self.fence.lock_rev.store(0, Ordering::Release);
    }
}

#[async_trait]
impl HaLock for EtcdLock {
    fn set_advert_auth(&self, auth: String) {
        *self.auth.lock() = auth;
    }

    async fn try_acquire(&self) -> Result<bool, StorageError> {
        self.fence.on.store(true, Ordering::Release);
        let rev = self.fence.lock_rev.load(Ordering::Acquire);
        if rev != 0 {
            if !self.renew().await? {
                return Ok(false);
            }
            // held already (since an init, say): advertise what this node advertises now
            let lease = self.lease.lock().await.as_ref().map(|h| h.id);
            if let Some(lease) = lease {
                let txn = Txn::new()
                    .when(vec![Compare::create_revision(
                        self.lock_key.clone(),
                        CompareOp::Equal,
                        rev,
                    )])
                    .and_then(vec![ETxnOp::put(
                        self.lock_key.clone(),
                        encode_node(&self.advert()),
                        Some(PutOptions::new().with_lease(lease)),
                    )]);
                let mut c = self.client.clone();
                let resp = timed("etcd", LOCK_OP_TIMEOUT, "lock advert", async {
                    c.txn(txn).await.map_err(|e| etcd_err("lock advert", e))
                })
                .await?;
                if !resp.succeeded() {
                    self.lost();
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        // cheap check first: no lease is granted while another node holds the lock
        if self.lock_value().await?.is_some() {
            return Ok(false);
        }
        let mut slot = self.lease.lock().await;
        let mut c = self.client.clone();
        let ttl = HA_TTL.as_secs() as i64;
        let key = self.lock_key.clone();
        let value = encode_node(&self.advert());
        let won = timed("etcd", LOCK_OP_TIMEOUT, "lock acquisition", async {
            let lease = c
                .lease_grant(ttl, None)
                .await
                .map_err(|e| etcd_err("lease grant", e))?
                .id();
            let txn = Txn::new()
                .when(vec![Compare::create_revision(
                    key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then(vec![ETxnOp::put(
                    key,
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            let resp = c.txn(txn).await.map_err(|e| etcd_err("lock", e))?;
            if !resp.succeeded() {
                let _ = c.lease_revoke(lease).await;
                return Ok(None);
            }
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            let (keeper, stream) = c
                .lease_keep_alive(lease)
                .await
                .map_err(|e| etcd_err("lease keep-alive", e))?;
            Ok(Some((lease, rev, keeper, stream)))
        })
        .await?;
        match won {
            Some((id, rev, keeper, stream)) if rev > 0 => {
                *slot = Some(HeldLease {
                    id,
                    keeper,
                    stream,
                    broken: false,
                });
                self.fence.lock_rev.store(rev, Ordering::Release);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn renew(&self) -> Result<bool, StorageError> {
        let rev = self.fence.lock_rev.load(Ordering::Acquire);
        if rev == 0 {
            return Ok(false);
        }
        let mut slot = self.lease.lock().await;
        let Some(held) = slot.as_mut() else {
            self.lost();
            return Ok(false);
        };
        let mut client = self.client.clone();
        let alive = timed("etcd", LOCK_OP_TIMEOUT, "lease keep-alive", async {
            if held.broken {
                // the stream failed or timed out last time: a fresh one for the same lease
                let (keeper, stream) = client
                    .lease_keep_alive(held.id)
                    .await
                    .map_err(|e| etcd_err("lease keep-alive", e))?;
                held.keeper = keeper;
                held.stream = stream;
                held.broken = false;
            }
            held.keeper
                .keep_alive()
                .await
                .map_err(|e| etcd_err("lease keep-alive", e))?;
            let msg = held
                .stream
                .message()
                .await
                .map_err(|e| etcd_err("lease keep-alive", e))?;
            Ok(matches!(msg, Some(m) if m.ttl() > 0))
        })
        .await;
        // only a definite answer decides: an error or a timeout says nothing about the hold
        // (the runner stops serving once no renewal succeeded in time)
        let alive = match alive {
            Ok(a) => a,
            Err(e) => {
                held.broken = true;
                return Err(e);
            }
        };
        let ours = if alive {
            match self.lock_value().await? {
                Some((r, _)) => r == rev,
                None => false,
            }
        } else {
            false
        };
        if !ours {
            self.lost();
            *slot = None;
        }
        Ok(ours)
    }

    async fn release(&self) -> Result<(), StorageError> {
        self.lost();
        let held = self.lease.lock().await.take();
        if let Some(h) = held {
            let mut c = self.client.clone();
            timed("etcd", LOCK_OP_TIMEOUT, "lease revoke", async {
                c.lease_revoke(h.id)
                    .await
                    .map(|_| ())
                    .map_err(|e| etcd_err("lease revoke", e))
            })
            .await?;
        }
        Ok(())
    }

    async fn leader(&self) -> Result<Option<NodeInfo>, StorageError> {
        Ok(self.lock_value().await?.and_then(|(_, v)| decode_node(&v)))
    }

    async fn check_in(&self) -> Result<(), StorageError> {
        let entry = CheckIn {
            node: self.advert(),
            seen: unix_now(),
        };
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        let mut c = self.client.clone();
        let key = format!("{}{}", self.nodes_prefix, self.node.id);
        timed("etcd", LOCK_OP_TIMEOUT, "check-in", async {
            c.put(key, value, None)
                .await
                .map(|_| ())
                .map_err(|e| etcd_err("check-in", e))
        })
        .await
    }

    async fn members(&self) -> Result<Vec<Member>, StorageError> {
        let mut c = self.client.clone();
        let prefix = self.nodes_prefix.clone();
        let resp = timed("etcd", LOCK_OP_TIMEOUT, "members", async {
            c.get(prefix, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| etcd_err("members", e))
        })
        .await?;
        let now = unix_now();
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let Ok(entry) = serde_json::from_slice::<CheckIn>(kv.value()) else {
                continue;
            };
            if now - entry.seen <= HA_MEMBER_TTL.as_secs() as i64 {
                out.push(Member {
                    node: entry.node,
                    last_seen: entry.seen,
                });
            } else if now - entry.seen > 3600 {
                // forget nodes long gone
                let mut c = self.client.clone();
                let _ = c.delete(kv.key().to_vec(), None).await;
            }
        }
        Ok(out)
    }
}
