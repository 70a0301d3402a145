//! Tokens: stored hashed (SHA-256 of the token), looked up through a cache that is updated
//! before any revocation or change returns, so a cache never outlives a revocation.

use crate::barrier::{random_bytes, View};
use crate::error::{CoreError, Result};
use crate::lease::{token_lease_id, Lease, Leases};
use crate::util::unix_now;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Most token entries kept in memory.
const TOKEN_CACHE_MAX: usize = 65_536;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random base62 string of `len` characters from the OS CSPRNG.
pub fn random_base62(len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf)?;
        for b in buf {
            // 248 = 62 * 4: reject the tail to keep the distribution uniform
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// SHA-256 of a token, hex; the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    crate::util::to_hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    )
}

/// A stored token. It never contains the token itself.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// SHA-256 of the token (hex).
    pub hash: String,
    pub accessor: String,
    pub policies: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub meta: Map<String, Value>,
    #[serde(default)]
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    #[serde(default)]
    pub num_uses: u64,
    pub creation_time: f64,
    /// Seconds; 0 = no expiry.
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub period: u64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub path: String,
    /// Unix time after which the token no longer works.
    #[serde(default)]
    pub expire_time: Option<f64>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// Renewal cap in seconds for this token (0 = the system's max lease TTL).
    #[serde(default)]
    pub max_ttl: u64,
    /// The TTL the token was created with (renewals without an increment extend by this).
    #[serde(default)]
    pub creation_ttl: u64,
}

impl TokenEntry {
    /// A token context that exists only for one request: the identity behind a signed request
    /// (an access key). It is never stored, cannot be looked up, renewed or spent, and carries
    /// the credential's id as its accessor so the audit log can name the caller.
    pub fn ephemeral(
        accessor: String,
        policies: Vec<String>,
        display_name: String,
        meta: serde_json::Map<String, serde_json::Value>,
        path: String,
    ) -> TokenEntry {
        TokenEntry {
            hash: String::new(),
            accessor,
            policies,
            parent: None,
            meta,
            display_name,
            num_uses: 0,
            creation_time: crate::util::unix_now(),
            ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            renewable: false,
            orphan: true,
            path,
            expire_time: None,
            role: None,
            entity_id: String::new(),
            bound_cidrs: Vec::new(),
            max_ttl: 0,
            creation_ttl: 0,
        }
    }
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
    pub fn expired(&self, now: f64) -> bool {
        self.expire_time.is_some_and(|t| now >= t)
    }
    /// Seconds left, 0 when it does not expire.
    pub fn ttl_left(&self, now: f64) -> u64 {
        match self.expire_time {
            Some(t) if t > now => (t - now).ceil() as u64,
            Some(_) => 0,
            None => 0,
        }
    }
}

/// Parameters for a new token.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// Use this id instead of a random one (root may choose; `-dev-root-token-id`).
    pub id: Option<String>,
    pub policies: Vec<String>,
    pub parent: Option<String>,
    pub meta: Map<String, Value>,
    pub display_name: String,
    pub num_uses: u64,
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
    pub path: String,
    pub role: Option<String>,
    pub bound_cidrs: Vec<String>,
    /// Renewal cap (0 = system max).
    pub max_ttl: u64,
}

/// The token store, on its own barrier view (`sys/token/`).
/// The token store, on the system view (`sys/`): tokens under `token/`, their leases under
/// `expire/id/`, their cubbyholes under `cubbyhole/<hash>/`.
pub struct TokenStore {
    view: View,
    cache: RwLock<HashMap<String, Arc<TokenEntry>>>,
    leases: Arc<Leases>,
    /// Bumped before and after every revocation: an entry read from storage while one was in
    /// progress is not cached, so a cache never outlives a revocation.
    revocations: std::sync::atomic::AtomicU64,
}

/// Storage key (under the system view) of a token's lease.
fn lease_key(e: &TokenEntry) -> String {
    format!("expire/id/{}", token_lease_id(&e.path, &e.hash))
}

fn lease_of(e: &TokenEntry) -> Option<Lease> {
    e.expire_time.map(|expire_time| Lease {
        lease_id: token_lease_id(&e.path, &e.hash),
        issue_time: e.creation_time,
        expire_time,
        last_renewal: None,
        renewable: e.renewable,
        token_hash: Some(e.hash.clone()),
        secret: None,
    })
}

impl TokenStore {
    /// Revoke one lease: a token's lease revokes the token (and its children); any other lease
    /// is deleted. Revoking an unknown lease succeeds, as in Vault.
    pub async fn revoke_lease(&self, id: &str) -> Result<()> {
        match self.leases.get(id).await? {
            Some(l) => match &l.token_hash {
                Some(h) => self.revoke_tree(h).await,
                None => self.leases.delete(id).await,
            },
            None => Ok(()),
        }
    }

    pub fn new(view: View, leases: Arc<Leases>) -> Self {
        TokenStore {
            view,
            cache: RwLock::new(HashMap::new()),
            leases,
            revocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cache `entry` unless a revocation ran since `generation` was read. The cache is bounded:
    /// when full it starts over (a miss only costs a storage read), so millions of issued tokens
    /// do not pin memory.
    fn cache_insert_if(&self, hash: String, entry: Arc<TokenEntry>, generation: u64) {
        let mut cache = self.cache.write();
        if self.generation() != generation {
            return;
        }
        if cache.len() >= TOKEN_CACHE_MAX && !cache.contains_key(&hash) {
            cache.clear();
        }
        cache.insert(hash, entry);
    }

    /// The cubbyhole of a token (its private storage, destroyed with it).
    pub fn cubbyhole(&self, hash: &str) -> View {
        self.view.sub(&format!("cubbyhole/{hash}/"))
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// Create and persist a token; returns the token string and its entry.
    pub async fn create(&self, p: NewToken) -> Result<(String, Arc<TokenEntry>)> {
        let token = match p.id {
            Some(id) => {
                if id.is_empty() || id.len() > 512 || id.contains(char::is_whitespace) {
                    return Err(CoreError::invalid("invalid token id"));
                }
                id
            }
            None => format!("hvs.{}", random_base62(24)?),
        };
        let hash = hash_token(&token);
        if self.view.get(&format!("token/id/{hash}")).await?.is_some() {
            return Err(CoreError::invalid(
                "cannot create a token with a duplicate ID",
            ));
        }
        let now = unix_now();
        let mut ttl = p.ttl;
        if p.period > 0 {
            ttl = p.period;
        }
        if p.explicit_max_ttl > 0 && (ttl == 0 || ttl > p.explicit_max_ttl) {
            ttl = p.explicit_max_ttl;
        }
        let entry = TokenEntry {
            hash: hash.clone(),
            accessor: random_base62(24)?,
            policies: p.policies,
            orphan: p.parent.is_none(),
            parent: p.parent,
            meta: p.meta,
            display_name: p.display_name,
            num_uses: p.num_uses,
            creation_time: now,
            ttl,
            explicit_max_ttl: p.explicit_max_ttl,
            period: p.period,
            renewable: p.renewable && ttl > 0,
            path: p.path,
            expire_time: (ttl > 0).then_some(now + ttl as f64),
            role: p.role,
            entity_id: String::new(),
            bound_cidrs: p.bound_cidrs,
            max_ttl: p.max_ttl,
            creation_ttl: ttl,
        };
        let generation = self.generation();
        let mut ops = vec![
            // the id must still be free when the transaction commits (custom ids)
            crate::barrier::BarrierOp::Check {
                key: format!("token/id/{hash}"),
                expected: None,
            },
            put_json(format!("token/id/{hash}"), &entry)?,
            crate::barrier::BarrierOp::Put {
                key: format!("token/accessor/{}", entry.accessor),
                value: zeroize::Zeroizing::new(hash.clone().into_bytes()),
            },
        ];
        let lease = lease_of(&entry);
        if let Some(l) = &lease {
            ops.push(put_json(lease_key(&entry), l)?);
        }
        if let Some(parent) = &entry.parent {
            // a child is created only while its parent still exists, so a revocation of the
            // parent (which deletes the parent's record first) can never miss it
            let parent_key = format!("token/id/{parent}");
            let parent_record = self.view.get(&parent_key).await?.ok_or_else(|| {
                CoreError::new(
                    crate::error::ErrorCode::PermissionDenied,
                    "parent token was revoked",
                )
            })?;
            ops.push(crate::barrier::BarrierOp::Check {
                key: parent_key,
                expected: Some(parent_record),
            });
            ops.push(crate::barrier::BarrierOp::Put {
                key: format!("token/parent/{parent}/{hash}"),
                value: zeroize::Zeroizing::new(Vec::new()),
            });
        }
        self.view.transaction(ops).await.map_err(|e| match e.code {
            crate::error::ErrorCode::Conflict => CoreError::new(
                crate::error::ErrorCode::PermissionDenied,
                "parent token was revoked",
            ),
            _ => e,
        })?;
        if let Some(l) = &lease {
            self.leases.schedule.push(l.expire_time, &l.lease_id);
        }
        let entry = Arc::new(entry);
        self.cache_insert_if(hash, entry.clone(), generation);
        Ok((token, entry))
    }

    /// Look a token up by its hash; expired tokens are revoked and reported absent.
    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        let cached = self.cache.read().get(hash).cloned();
        let generation = self.generation();
        let entry = match cached {
            Some(e) => e,
            None => match self
                .view
                .get_json::<TokenEntry>(&format!("token/id/{hash}"))
                .await?
            {
                Some(e) => {
                    let e = Arc::new(e);
                    self.cache_insert_if(hash.to_string(), e.clone(), generation);
                    e
                }
                None => return Ok(None),
            },
        };
        if entry.expired(unix_now()) {
            self.revoke_tree(hash).await?;
            return Ok(None);
        }
        Ok(Some(entry))
    }

    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        if token.is_empty() || token.len() > 1024 {
            return Ok(None);
        }
        self.lookup_hash(&hash_token(token)).await
    }

    pub async fn hash_for_accessor(&self, accessor: &str) -> Result<Option<String>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        Ok(self
            .view
            .get(&format!("token/accessor/{accessor}"))
            .await?
            .and_then(|b| String::from_utf8(b.to_vec()).ok()))
    }

    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<Arc<TokenEntry>>> {
        match self.hash_for_accessor(accessor).await? {
            Some(h) => self.lookup_hash(&h).await,
            None => Ok(None),
        }
    }

    pub async fn list_accessors(&self) -> Result<Vec<String>> {
        self.view.list("token/accessor/").await
    }

    /// Persist a changed entry (renewal, use count) and refresh the cache.
    pub async fn save(&self, entry: TokenEntry) -> Result<Arc<TokenEntry>> {
        self.save_inner(entry, false).await
    }

    async fn save_inner(&self, entry: TokenEntry, renewed: bool) -> Result<Arc<TokenEntry>> {
        let generation = self.generation();
        let key = format!("token/id/{}", entry.hash);
        // only update a token that still exists: a revocation in between must not be undone
        let current = self.view.get(&key).await?.ok_or_else(|| {
            CoreError::new(crate::error::ErrorCode::PermissionDenied, "bad token")
        })?;
        let mut ops = vec![
            crate::barrier::BarrierOp::Check {
                key: key.clone(),
                expected: Some(current),
            },
            put_json(key, &entry)?,
        ];
        let lease = lease_of(&entry).map(|mut l| {
            if renewed {
                l.last_renewal = Some(unix_now());
            }
            l
        });
        if let Some(l) = &lease {
            ops.push(put_json(lease_key(&entry), l)?);
        }
        self.view.transaction(ops).await.map_err(|e| match e.code {
            crate::error::ErrorCode::Conflict => {
                CoreError::invalid("the token changed or was revoked concurrently; retry")
            }
            _ => e,
        })?;
        if let Some(l) = &lease {
            self.leases.schedule.push(l.expire_time, &l.lease_id);
        }
        let entry = Arc::new(entry);
        self.cache_insert_if(entry.hash.clone(), entry.clone(), generation);
        Ok(entry)
    }

    /// Count one use of a limited-use token. Returns false when the token is used up (it has then
    /// been revoked and the request must be refused).
    pub async fn use_token(&self, entry: &TokenEntry) -> Result<bool> {
        if entry.num_uses == 0 {
            return Ok(true);
        }
        let key = format!("token/id/{}", entry.hash);
        // compare-and-set on the stored record, so concurrent requests never spend one use twice
        for _ in 0..32 {
            let Some(raw) = self.view.get(&key).await? else {
                return Ok(false);
            };
            let current: TokenEntry = serde_json::from_slice(&raw)
                .map_err(|_| CoreError::internal("stored token is corrupted"))?;
            if current.num_uses == 0 {
                return Ok(true);
            }
            let claim = crate::barrier::BarrierOp::Check {
                key: key.clone(),
                expected: Some(raw),
            };
            let ops = if current.num_uses == 1 {
                // the last use: whoever deletes the record owns it; children and cubbyhole
                // are cleaned up below
                let mut ops = vec![claim];
                ops.extend(record_deletes(&current));
                ops
            } else {
                let mut next = current.clone();
                next.num_uses -= 1;
                vec![claim, put_json(key.clone(), &next)?]
            };
            self.revocations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.cache.write().remove(&entry.hash);
            match self.view.transaction(ops).await {
                Ok(()) => {
                    if current.num_uses == 1 {
                        self.revoke_tree(&entry.hash).await?;
                    }
                    return Ok(true);
                }
                Err(e) if e.code == crate::error::ErrorCode::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::internal("token use count is contended; retry"))
    }

    /// Revoke a token and all its descendants.
    pub async fn revoke_tree(&self, hash: &str) -> Result<()> {
        let mut roots = vec![hash.to_string()];
        while let Some(root) = roots.pop() {
            let mut stack = vec![root];
            let mut order = Vec::new();
            while let Some(h) = stack.pop() {
                for child in self.view.list(&format!("token/parent/{h}/")).await? {
                    stack.push(child.trim_end_matches('/').to_string());
                }
                order.push(h);
            }
            // children first, so a crash midway never leaves an orphaned live child; a child
            // created while we worked is returned by revoke_one and revoked in turn
            for h in order.into_iter().rev() {
                roots.extend(self.revoke_one(&h).await?);
            }
        }
        Ok(())
    }

    /// Revoke only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<()> {
        for child in self.view.list(&format!("token/parent/{hash}/")).await? {
            let child = child.trim_end_matches('/').to_string();
            if let Some(mut e) = self
                .view
                .get_json::<TokenEntry>(&format!("token/id/{child}"))
                .await?
            {
                e.parent = None;
                e.orphan = true;
                self.save(e).await?;
            }
            self.view
                .delete(&format!("token/parent/{hash}/{child}"))
                .await?;
        }
        let late_children = self.revoke_one(hash).await?;
        for child in late_children {
            if let Some(mut e) = self
                .view
                .get_json::<TokenEntry>(&format!("token/id/{child}"))
                .await?
            {
                e.parent = None;
                e.orphan = true;
                self.save(e).await?;
            }
        }
        Ok(())
    }

    /// Revoke this token's own records. Returns the children that were linked to it after its
    /// subtree was listed (they must be revoked or orphaned by the caller).
    async fn revoke_one(&self, hash: &str) -> Result<Vec<String>> {
        // drop from the cache first: no request may succeed with it after this point
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cache.write().remove(hash);
        if let Some(e) = self
            .view
            .get_json::<TokenEntry>(&format!("token/id/{hash}"))
            .await?
        {
            let ops = record_deletes(&e);
            self.view.transaction(ops).await?;
        }
        self.view
            .delete_prefix(&format!("cubbyhole/{hash}/"))
            .await?;
        // the record is gone, so no new child can appear; collect the ones that raced in
        let late: Vec<String> = self
            .view
            .list(&format!("token/parent/{hash}/"))
            .await?
            .into_iter()
            .map(|c| c.trim_end_matches('/').to_string())
            .collect();
        self.view
            .delete_prefix(&format!("token/parent/{hash}/"))
            .await?;
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cache.write().remove(hash);
        Ok(late)
    }

    /// Extend a token's lease. `increment` of 0 means "by its original TTL".
    pub async fn renew(&self, hash: &str, increment: u64, max_ttl: u64) -> Result<Arc<TokenEntry>> {
        let entry = self
            .lookup_hash(hash)
            .await?
            .ok_or_else(|| CoreError::invalid("invalid token"))?;
        if entry.expire_time.is_none() {
            // non-expiring tokens (root) renew as a no-op
            return Ok(entry);
        }
        if !entry.renewable {
            return Err(CoreError::invalid("lease is not renewable"));
        }
        let now = unix_now();
        let mut e = (*entry).clone();
        let mut ttl = if e.period > 0 {
            e.period
        } else if increment > 0 {
            increment
        } else if e.creation_ttl > 0 {
            e.creation_ttl
        } else {
            e.ttl
        };
        let max_ttl = if e.max_ttl > 0 { e.max_ttl } else { max_ttl };
        if e.period == 0 && max_ttl > 0 {
            let max_expire = e.creation_time + max_ttl as f64;
            ttl = ttl.min(((max_expire - now).max(0.0)) as u64);
        }
        if e.explicit_max_ttl > 0 {
            let max_expire = e.creation_time + e.explicit_max_ttl as f64;
            ttl = ttl.min(((max_expire - now).max(0.0)) as u64);
        }
        e.expire_time = Some(now + ttl as f64);
        e.ttl = ttl;
        self.save_inner(e, true).await
    }

    /// Forget all cached entries (on seal).
    pub fn clear_cache(&self) {
        self.cache.write().clear();
    }
}

/// The deletes that remove a token's own records: entry, accessor, parent link, lease.
fn record_deletes(e: &TokenEntry) -> Vec<crate::barrier::BarrierOp> {
    let mut ops = vec![
        crate::barrier::BarrierOp::Delete {
            key: format!("token/id/{}", e.hash),
        },
        crate::barrier::BarrierOp::Delete {
            key: format!("token/accessor/{}", e.accessor),
        },
        crate::barrier::BarrierOp::Delete { key: lease_key(e) },
    ];
    if let Some(p) = &e.parent {
        ops.push(crate::barrier::BarrierOp::Delete {
            key: format!("token/parent/{p}/{}", e.hash),
        });
    }
    ops
}

fn put_json<T: Serialize>(key: String, v: &T) -> Result<crate::barrier::BarrierOp> {
    Ok(crate::barrier::BarrierOp::Put {
        key,
        value: zeroize::Zeroizing::new(
            serde_json::to_vec(v).map_err(|e| CoreError::internal(e.to_string()))?,
        ),
    })
}
