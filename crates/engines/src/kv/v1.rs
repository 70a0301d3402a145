//! KV v1: one JSON object per path, replaced whole on write. A read answers the object itself
//! (kind `kv.entry`), a list a [`ListPage`] (kind `kv.list`).

use super::domain::{routes::typed, ListPage, KIND_ENTRY, KIND_LIST};
use super::store::v1_key;
use super::{not_found, KvEngine};
use coffer_core::error::{CoreError, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use coffer_core::util;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The `ttl` (or legacy `lease`) field of a v1 entry, in seconds.
fn ttl_field(data: &Map<String, Value>) -> Option<&Value> {
    data.get("ttl")
        .or_else(|| data.get("lease"))
        .filter(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
}

impl KvEngine {
    pub(super) async fn exists_v1(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        match req.operation {
            Operation::Create | Operation::Update if !req.path.is_empty() => {
                Ok(Some(req.storage.get(&v1_key(req.path)).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn handle_v1(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let path = req.path;
        match req.operation {
            Operation::List => {
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
                    },
                )
            }
            Operation::Read => {
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
            Operation::Create | Operation::Update => {
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
            Operation::Delete => {
                if !path.is_empty() {
                    req.storage.delete(&v1_key(path)).await?;
                }
                Ok(None)
            }
            Operation::Patch => Err(CoreError::unsupported_operation()),
        }
    }
}
