//! The kv secrets engine: the shared secret model ([`model`]) and its domain operations
//! ([`domain`]) that every dialect uses, reached through Vault's KV v2 paths ([`v2`]) or the
//! neutral `domain/` paths ([`domain::routes`]); and Vault's KV v1 (plain key/value).
//!
//! Answers are neutral typed results ([`domain::views`]) named by `Response.kind`; no wire shape
//! of any dialect lives here.

pub mod domain;
pub mod model;
pub mod params;
pub mod store;
mod v1;
mod v2;

use async_trait::async_trait;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::Response;
use coffer_core::router::{
    Engine, EngineFactory, EngineRequest, MountEntry, PathLookup, RouteMatch,
};
use serde_json::Value;
use std::sync::Arc;
use store::PathLocks;

pub use domain::{ListPage, SecretView, VersionView};
pub use model::{
    AzureAttributes, KvConfig, Payload, RotationRules, RotationSettings, SecretDeletion,
    SecretMeta, VersionMeta,
};
pub use store::SecretStore;

/// Which API a kv mount speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    V2,
}

impl KvVersion {
    /// From a mount entry: type `kv-v2` is version 2; type `kv` reads `options.version`
    /// (`"1"`/`"2"` or a number; absent or empty = 1).
    pub fn from_mount(entry: &MountEntry) -> Result<Self> {
        if entry.kind == "kv-v2" {
            return Ok(KvVersion::V2);
        }
        let v = match entry.options.get("version") {
            None | Some(Value::Null) => return Ok(KvVersion::V1),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => String::from("?"),
        };
        match v.as_str() {
            "" | "1" => Ok(KvVersion::V1),
            "2" => Ok(KvVersion::V2),
            _ => Err(CoreError::invalid(format!(
                "invalid kv version {v:?}: must be 1 or 2"
            ))),
        }
    }
}

/// The kv engine of one mount.
pub struct KvEngine {
    version: KvVersion,
    /// Vault's system default lease TTL, reported as `lease_duration` of kv v1 reads without a
    /// `ttl` field (the mount's `default_lease_ttl` when set).
    default_ttl_secs: u64,
    locks: PathLocks,
    /// Held on a lowercased name while a case-folding write decides whether it creates a
    /// secret ([`domain::fold`]).
    fold_locks: PathLocks,
}

impl std::fmt::Debug for KvEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvEngine")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Vault's default `default_lease_ttl` (768h).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 768 * 3600;

impl KvEngine {
    pub fn new(version: KvVersion) -> Self {
        KvEngine {
            version,
            default_ttl_secs: DEFAULT_LEASE_TTL_SECS,
            locks: PathLocks::default(),
            fold_locks: PathLocks::default(),
        }
    }

    pub fn from_mount(entry: &MountEntry) -> Result<Self> {
        let mut e = KvEngine::new(KvVersion::from_mount(entry)?);
        if entry.config.default_lease_ttl > 0 {
            e.default_ttl_secs = entry.config.default_lease_ttl;
        }
        Ok(e)
    }

    pub fn version(&self) -> KvVersion {
        self.version
    }
}

/// Factory for mount types `kv` and `kv-v2`.
pub fn kv_factory() -> EngineFactory {
    Arc::new(|entry: &MountEntry| -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(KvEngine::from_mount(entry)?))
    })
}

/// Vault answers a missing item with a bare 404 (`{"errors":[]}`): no message.
pub(crate) fn not_found() -> CoreError {
    CoreError::not_found("")
}

pub(crate) fn unsupported_path(req: &EngineRequest<'_>) -> CoreError {
    CoreError::unsupported_path(&format!("{}{}", req.mount.path, req.path))
}

#[async_trait]
impl Engine for KvEngine {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        coffer_core::util::validate_path(req.path)?;
        let route = match self.version {
            KvVersion::V1 => v1::V1_PATHS.find_for(req)?,
            KvVersion::V2 => v2::V2_PATHS.find_for(req)?,
        };
        self.handle_route(req, &route).await
    }

    fn paths(&self) -> Option<&'static dyn PathLookup> {
        Some(match self.version {
            KvVersion::V1 => &v1::V1_PATHS,
            KvVersion::V2 => &v2::V2_PATHS,
        })
    }

    async fn handle_route(
        &self,
        req: &EngineRequest<'_>,
        route: &RouteMatch,
    ) -> Result<Option<Response>> {
        coffer_core::util::validate_path(req.path)?;
        match self.version {
            KvVersion::V1 => self.handle_v1(req, route).await,
            KvVersion::V2 => self.handle_v2(req, route).await,
        }
    }

    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        coffer_core::util::validate_path(req.path)?;
        match self.version {
            KvVersion::V1 => self.exists_v1(req).await,
            KvVersion::V2 => self.exists_v2(req).await,
        }
    }
}
