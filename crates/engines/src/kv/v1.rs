//! KV v1: one JSON object per path, replaced whole on write. A read answers the object itself
//! (kind `kv.entry`), a list a [`ListPage`] (kind `kv.list`).

use super::domain::{routes::typed, ListPage, KIND_ENTRY, KIND_LIST};
use super::store::v1_key;
use super::{not_found, KvEngine};
use coffer_core::error::{CoreError, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::{EngineRequest, Ops, PathEntry, PathTable, RouteMatch};
use coffer_core::util;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The `ttl` (or legacy `lease`) field of a v1 entry, in seconds.
fn ttl_field(data: &Map<String, Value>) -> Option<&Value> {
    data.get("ttl")
        .or_else(|| data.get("lease"))
        .filter(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
}

/// The endpoints of a kv v1 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V1Path {
    List,
    Read,
    Write,
    Delete,
}

/// KV v1: every path is a key (a list of the mount's root is the empty path); a write asks
/// whether the key exists (create vs update).
pub(super) static V1_PATHS: PathTable<V1Path> = PathTable::new(&[PathEntry::new(
    "{path*}",
    &[
        (Ops::LIST, V1Path::List),
        (Ops::READ, V1Path::Read),
        (Ops::WRITE, V1Path::Write),
        (Ops::DELETE, V1Path::Delete),
    ],
)
.existence_check()]);

impl KvEngine {
    pub(super) async fn exists_v1(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        match req.operation {
            Operation::Create | Operation::Update if !req.path.is_empty() => {
                Ok(Some(req.storage.get(&v1_key(req.path)).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn handle_v1(
        &self,
        req: &EngineRequest<'_>,
        route: &RouteMatch,
    ) -> Result<Option<Response>> {
        let path = route.captures(req.path).get("path")?;
        match V1_PATHS.handler(route, req.operation)? {
            V1Path::List => {
                let prefix = if path.is_empty() || path.ends_with('/') {
                    path.to_string()
                } else {
                    format!("{path}/")
                };
                let keys = req.storage.list(&v1_key(&prefix)).await?;
                if keys.is_empty() {
                    return Err(not_found());
                }
                typed(
                    KIND_LIST,
                    &ListPage {
                        keys,
                        next_token: None,
                        ..Default::default()
                    },
                )
            }
            V1Path::Read => {
                if path.is_empty() || path.ends_with('/') {
                    return Err(not_found());
                }
                let data: Map<String, Value> = req
                    .storage
                    .get_json(&v1_key(path))
                    .await?
                    .ok_or_else(not_found)?;
                let lease = ttl_field(&data)
                    .and_then(|v| util::parse_duration_value(v).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(self.default_ttl_secs);
                let mut resp = Response::data(data);
                resp.kind = Some(KIND_ENTRY.into());
                resp.lease_duration = lease;
                Ok(Some(resp))
            }
            V1Path::Write => {
                if path.is_empty() || path.ends_with('/') {
                    return Err(CoreError::invalid("cannot write to a path ending in '/'"));
                }
                if req.data.is_empty() {
                    return Err(CoreError::invalid("missing data fields"));
                }
                if let Some(v) = ttl_field(req.data) {
                    util::parse_duration_value(v)
                        .map_err(|_| CoreError::invalid("failed to parse ttl"))?;
                }
                let bytes = Zeroizing::new(
                    serde_json::to_vec(req.data)
                        .map_err(|_| CoreError::internal("could not encode secret data"))?,
                );
                req.storage.put(&v1_key(path), &bytes).await?;
                Ok(None)
            }
            V1Path::Delete => {
                if !path.is_empty() {
                    req.storage.delete(&v1_key(path)).await?;
                }
                Ok(None)
            }
        }
    }
}
