//! Mounts and routing: engines are mounted at paths; a request goes to the longest matching
//! mount. The table is swapped atomically, so the read path takes no lock.

use crate::barrier::View;
use crate::error::{CoreError, Result};
pub use crate::paths::{Captures, Ops, PathEntry, PathFlags, PathLookup, PathTable, RouteMatch};
use crate::request::{Operation, Response};
use crate::token::TokenEntry;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Tunable settings of a mount (`sys/mounts/<path>/tune`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountConfig {
    /// Seconds; 0 = system default.
    #[serde(default)]
    pub default_lease_ttl: u64,
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_request_headers: Vec<String>,
}

/// One entry of the mount table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With trailing slash, e.g. `secret/` (auth mounts: `auth/approle/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub plugin_version: String,
}

impl MountEntry {
    /// Storage prefix of this mount's data under the barrier.
    pub fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }
}

/// What an engine sees of a request.
pub struct EngineRequest<'a> {
    pub operation: Operation,
    /// Path relative to the mount, e.g. `data/apps/payment`.
    pub path: &'a str,
    pub data: &'a Map<String, Value>,
    /// The mount's private storage.
    pub storage: &'a View,
    pub mount: &'a MountEntry,
    /// The authenticated caller (None for unauthenticated paths).
    pub token: Option<&'a TokenEntry>,
    /// The raw client token as sent (needed by `auth/token/lookup-self` and friends).
    pub client_token: Option<&'a str>,
    pub request_id: &'a str,
    pub remote_addr: Option<std::net::IpAddr>,
    /// The caller's ACL when the request was authorized by one (`None`: an unauthenticated
    /// path, or one any valid token may use).
    pub acl: Option<&'a crate::policy::Acl>,
}

impl EngineRequest<'_> {
    /// Whether the caller's policies allow `op` on `rel` (a path below this request's mount),
    /// for handlers that answer about several items at once (e.g. a listing that shows only
    /// what the caller may read). Without an ACL (see [`Self::acl`]) nothing is filtered.
    pub fn allows(&self, op: crate::request::Operation, rel: &str) -> bool {
        match self.acl {
            None => true,
            Some(acl) => {
                let path = format!("{}{rel}", self.mount.path);
                acl.check(op, &path, None).allowed
            }
        }
    }
}

/// A secrets engine or auth method mounted at a path. Engines never see encryption: they read
/// and write plaintext through their [`View`].
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Handle one request. `Ok(None)` means success with nothing to return (HTTP 204).
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>>;

    /// For writes: whether the target exists, to tell `create` from `update` for the ACL check.
    /// `None` means the engine makes no distinction (writes are `update`).
    async fn exists(&self, _req: &EngineRequest<'_>) -> Result<Option<bool>> {
        Ok(None)
    }

    /// The canonical spelling of a mount-relative path: the names of the objects the engine
    /// keeps (roles, users) in the one form it stores them, or a 400 for a name that has none.
    /// The core calls this before the ACL check, and the ACL, the audit entry and the handler
    /// all see the result (see [`crate::names`]).
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        Ok(std::borrow::Cow::Borrowed(rel))
    }

    /// Whether this engine issues signing keys (then the core asks it [`Self::resolve_signed`]).
    fn issues_signing_keys(&self) -> bool {
        false
    }

    /// For auth methods that issue signing keys (AWS SigV4 access keys): check a signed
    /// request's proof against the key's secret kept in `storage`, and answer who it is.
    /// `Ok(None)`: this engine does not know the key (the core asks the next one; nobody
    /// knowing it is an unauthenticated request).
    async fn resolve_signed(
        &self,
        _storage: &View,
        _proof: &crate::request::SignedProof,
    ) -> Result<Option<crate::request::SignedIdentity>> {
        Ok(None)
    }

    /// The engine's declarative path table ([`crate::paths`]): the core matches a request's
    /// path against it once, takes `unauthenticated`, `sudo` and the existence check from the
    /// match, and hands the match to [`Engine::handle_route`]. `None`: an engine without a
    /// table (no path is unauthenticated or root-protected, every write gets an existence
    /// check, [`Engine::handle`] routes by itself).
    fn paths(&self) -> Option<&'static dyn PathLookup> {
        None
    }

    /// Handle a request whose path the core matched against [`Engine::paths`] (`route` is that
    /// match, made on `req.path`). The default routes again through [`Engine::handle`].
    async fn handle_route(
        &self,
        req: &EngineRequest<'_>,
        _route: &RouteMatch,
    ) -> Result<Option<Response>> {
        self.handle(req).await
    }

    /// Called before a token this auth method issued at login is renewed: refuse when the login
    /// it came from no longer holds (role or user deleted, policies changed). `req.token` is the
    /// token being renewed and `req.path` the login path relative to the mount.
    async fn renew_check(&self, _req: &EngineRequest<'_>) -> Result<()> {
        Ok(())
    }

    /// Revoke a secret this engine handed out under a lease ([`crate::request::SecretLease`]):
    /// called when the lease is revoked or expires; `internal` is what the engine attached. An
    /// error keeps the lease, and the revocation is tried again later.
    async fn revoke_secret(
        &self,
        _storage: &crate::barrier::View,
        _internal: &Map<String, Value>,
    ) -> Result<()> {
        Ok(())
    }

    /// Extend a leased secret until `expire_time` (unix seconds) where it lives (e.g. a
    /// database user's validity). An error refuses the renewal.
    async fn renew_secret(
        &self,
        _storage: &crate::barrier::View,
        _internal: &Map<String, Value>,
        _expire_time: f64,
    ) -> Result<()> {
        Ok(())
    }

    /// Called when the mount is disabled, after its storage has been removed.
    async fn cleanup(&self) -> Result<()> {
        Ok(())
    }
}

/// Builds an engine for a mount entry (`type` → factory). Lives in the binary's wiring, so the
/// core does not depend on engine crates.
pub type EngineFactory = Arc<dyn Fn(&MountEntry) -> Result<Arc<dyn Engine>> + Send + Sync>;

/// Registry of engine factories by mount type.
#[derive(Clone, Default)]
pub struct EngineRegistry {
    factories: HashMap<String, EngineFactory>,
}

impl EngineRegistry {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn register(&mut self, kind: &str, factory: EngineFactory) {
        self.factories.insert(kind.to_string(), factory);
    }
    pub fn build(&self, entry: &MountEntry) -> Result<Arc<dyn Engine>> {
        let f = self.factories.get(&entry.kind).ok_or_else(|| {
            CoreError::invalid(format!("plugin not found in the catalog: {}", entry.kind))
        })?;
        f(entry)
    }
    pub fn knows(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }
}

/// A live mount: its entry, engine and storage view.
#[derive(Clone)]
pub struct Mount {
    pub entry: Arc<MountEntry>,
    pub engine: Arc<dyn Engine>,
    pub view: View,
}

/// The routing table: mounts sorted by path length, longest first.
#[derive(Default)]
pub struct Router {
    table: ArcSwap<Vec<Mount>>,
}

impl Router {
    pub fn new() -> Self {
        Router {
            table: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// Find the mount serving `path` and the path relative to it.
    pub fn route<'p>(&self, path: &'p str) -> Option<(Mount, &'p str)> {
        let table = self.table.load();
        for m in table.iter() {
            let mp = m.entry.path.as_str();
            if let Some(rest) = path.strip_prefix(mp) {
                return Some((m.clone(), rest));
            }
            // `secret` (no trailing slash) addresses the mount root
            if path == &mp[..mp.len() - 1] {
                return Some((m.clone(), ""));
            }
        }
        None
    }

    pub fn mounts(&self) -> Vec<Mount> {
        self.table.load().as_ref().clone()
    }

    /// The current table, shared (no copy of the mounts).
    pub fn snapshot(&self) -> Arc<Vec<Mount>> {
        self.table.load_full()
    }

    pub fn get(&self, path: &str) -> Option<Mount> {
        self.table
            .load()
            .iter()
            .find(|m| m.entry.path == path)
            .cloned()
    }

    /// Replace the whole table (after any mount change).
    pub fn set(&self, mut mounts: Vec<Mount>) {
        mounts.sort_by(|a, b| {
            b.entry
                .path
                .len()
                .cmp(&a.entry.path.len())
                .then(a.entry.path.cmp(&b.entry.path))
        });
        self.table.store(Arc::new(mounts));
    }
}
