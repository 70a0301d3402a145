//! KV v2: versioned secrets with Vault's `config`, `data/`, `metadata/`, `delete/`,
//! `undelete/`, `destroy/` and `subkeys/` endpoints.

use super::model::{self, KvConfig, Payload, SecretMeta, CONTENT_TYPE_JSON};
use super::params;
use super::store::{self, Change, SecretStore};
use super::{not_found, unsupported_path, KvEngine};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use zeroize::Zeroizing;

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
const CAS_REQUIRED: &str = "check-and-set parameter required for this call";
const CAS_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// The endpoint a relative path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Config,
    Data(&'a str),
    /// May be empty or end with `/` (lists).
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    if path == "config" {
        return Some(Route::Config);
    }
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    if head == "metadata" {
        return Some(Route::Metadata(rest));
    }
    if rest.is_empty() || rest.ends_with('/') {
        return None;
    }
    Some(match head {
        "data" => Route::Data(rest),
        "delete" => Route::Delete(rest),
        "undelete" => Route::Undelete(rest),
        "destroy" => Route::Destroy(rest),
        "subkeys" => Route::Subkeys(rest),
        _ => return None,
    })
}

/// Vault's answer for a deleted or destroyed version: 404 with the version's metadata.
fn gone_response(key: &str, block: Map<String, Value>) -> Response {
    let mut m = Map::new();
    m.insert(key.to_string(), Value::Null);
    m.insert("metadata".to_string(), Value::Object(block));
    Response {
        data: Some(m),
        status: Some(404),
        ..Default::default()
    }
}

fn check_cas(cas: Option<u64>, config: &KvConfig, meta: &SecretMeta) -> Result<()> {
    match cas {
        Some(c) if c != meta.current_version => {
            Err(CoreError::new(ErrorCode::CasMismatch, CAS_MISMATCH))
        }
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => Err(CoreError::invalid(CAS_REQUIRED)),
        None => Ok(()),
    }
}

/// Add a version holding `encoded` and build the commit (payload put, pruned payloads deleted).
fn new_version(
    path: &str,
    mut meta: SecretMeta,
    at: OffsetDateTime,
    encoded: Zeroizing<Vec<u8>>,
    config: &KvConfig,
) -> Result<Change<Map<String, Value>>> {
    let (n, pruned) = meta.add_version(at, CONTENT_TYPE_JSON, config);
    let block = meta
        .versions
        .get(&n)
        .map(|vm| meta.vault_version_block(n, vm))
        .ok_or_else(|| CoreError::internal("new version missing from metadata"))?;
    Ok(Change::Commit {
        puts: vec![(store::version_key(path, n), encoded)],
        deletes: pruned
            .into_iter()
            .map(|v| store::version_key(path, v))
            .collect(),
        meta: Some(meta),
        result: block,
    })
}

fn metadata_changes(data: &Map<String, Value>) -> Result<(Option<u32>, Option<bool>, Option<u64>)> {
    Ok((
        params::opt_u32(data, "max_versions")?,
        params::opt_bool(data, "cas_required")?,
        params::opt_duration_secs(data, "delete_version_after")?,
    ))
}

fn cas_warning(cas_required: Option<bool>, config: &KvConfig) -> Option<Response> {
    (cas_required == Some(false) && config.cas_required)
        .then(|| Response::default().with_warning(CAS_WARNING))
}

impl KvEngine {
    pub(super) async fn exists_v2(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Ok(None);
        }
        match route(req.path) {
            Some(Route::Data(p)) | Some(Route::Metadata(p))
                if !p.is_empty() && !p.ends_with('/') =>
            {
                let store = SecretStore::new(req.storage);
                Ok(Some(store.meta(p).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn handle_v2(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        use Operation::*;
        let Some(route) = route(req.path) else {
            return Err(unsupported_path(req));
        };
        let store = SecretStore::new(req.storage);
        let data = req.data;
        if let Route::Metadata(p) = route {
            if req.operation != List {
                if p.is_empty() {
                    return Err(match req.operation {
                        Create | Update | Patch => CoreError::invalid("missing path"),
                        _ => not_found(),
                    });
                }
                if p.ends_with('/') {
                    return Err(unsupported_path(req));
                }
            }
        }
        match (route, req.operation) {
            (Route::Config, Read) => self.read_config(&store).await,
            (Route::Config, Create | Update) => self.write_config(&store, data).await,
            (Route::Data(p), Read) => self.read_version(&store, p, data, "data").await,
            (Route::Data(p), Create | Update) => self.write_data(&store, p, data).await,
            (Route::Data(p), Patch) => self.patch_data(&store, p, data).await,
            (Route::Data(p), Delete) => self.delete_latest(&store, p).await,
            (Route::Subkeys(p), Read) => self.read_version(&store, p, data, "subkeys").await,
            (Route::Metadata(p), List) => self.list_metadata(&store, p).await,
            (Route::Metadata(p), Read) => {
                let meta = store.meta(p).await?.ok_or_else(not_found)?;
                Ok(Some(Response::data(meta.vault_metadata())))
            }
            (Route::Metadata(p), Create | Update) => self.write_metadata(&store, p, data).await,
            (Route::Metadata(p), Patch) => self.patch_metadata(&store, p, data).await,
            (Route::Metadata(p), Delete) => self.delete_metadata(&store, p).await,
            (Route::Delete(p), Create | Update) => self.delete_versions(&store, p, data).await,
            (Route::Undelete(p), Create | Update) => self.undelete_versions(&store, p, data).await,
            (Route::Destroy(p), Create | Update) => self.destroy_versions(&store, p, data).await,
            _ => Err(CoreError::unsupported_operation()),
        }
    }

    async fn read_config(&self, store: &SecretStore<'_>) -> Result<Option<Response>> {
        let config = store.config().await?;
        let mut m = Map::new();
        m.insert("cas_required".into(), Value::Bool(config.cas_required));
        m.insert(
            "delete_version_after".into(),
            Value::String(model::go_duration(config.delete_version_after)),
        );
        m.insert("max_versions".into(), Value::from(config.max_versions));
        Ok(Some(Response::data(m)))
    }

    async fn write_config(
        &self,
        store: &SecretStore<'_>,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let max_versions = params::opt_u32(data, "max_versions")?;
        let cas_required = params::opt_bool(data, "cas_required")?;
        let dva = params::opt_signed_duration_secs(data, "delete_version_after")?;
        if max_versions.is_none() && cas_required.is_none() && dva.is_none() {
            return Ok(None);
        }
        store
            .update_config(|c| {
                if let Some(m) = max_versions {
                    c.max_versions = m;
                }
                if let Some(b) = cas_required {
                    c.cas_required = b;
                }
                if let Some(d) = dva {
                    // any negative value disables delete_version_after mount-wide (stored as -1s)
                    c.delete_version_after = if d < 0 { -1 } else { d };
                }
            })
            .await?;
        Ok(None)
    }

    /// `data/<path>` and `subkeys/<path>` reads.
    async fn read_version(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Response>> {
        let version = params::version_param(data)?;
        let depth = if key == "subkeys" {
            params::depth_param(data)?
        } else {
            0
        };
        // Readers take no lock; if a destroy or prune removes the payload between the two
        // reads, look again (the version then reads as gone).
        for _ in 0..3 {
            let meta = store.meta(path).await?.ok_or_else(not_found)?;
            let n = if version == 0 {
                meta.current_version
            } else {
                version
            };
            let vm = meta.versions.get(&n).ok_or_else(not_found)?;
            let block = meta.vault_version_block(n, vm);
            if !vm.is_readable_at(model::now()) {
                return Ok(Some(gone_response(key, block)));
            }
            let Some(payload) = store.payload(path, n).await? else {
                continue;
            };
            let body = payload.to_vault_data();
            let body = if key == "subkeys" {
                params::subkeys(&body, depth)
            } else {
                body
            };
            let mut m = Map::new();
            m.insert(key.to_string(), Value::Object(body));
            m.insert("metadata".to_string(), Value::Object(block));
            return Ok(Some(Response::data(m)));
        }
        Err(CoreError::internal("could not find version data"))
    }

    async fn write_data(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let object = params::data_object(data)?;
        let cas = params::cas_option(data)?;
        let encoded = Payload::from_json_object(object)?.encode()?;
        let config = store.config().await?;
        let config = &config;
        let block = store
            .update(&self.locks, path, |meta| {
                let encoded = encoded.clone();
                async move {
                    let at = model::now();
                    let meta = meta.unwrap_or_else(|| SecretMeta::new(path, at));
                    check_cas(cas, config, &meta)?;
                    new_version(path, meta, at, encoded, config)
                }
            })
            .await?;
        Ok(Some(Response::data(block)))
    }

    async fn patch_data(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let patch = Value::Object(params::data_object(data)?.clone());
        let cas = params::cas_option(data)?;
        let config = store.config().await?;
        let (config, patch) = (&config, &patch);
        let resp = store
            .update(&self.locks, path, |meta| async move {
                let meta = meta.ok_or_else(not_found)?;
                check_cas(cas, config, &meta)?;
                let n = meta.current_version;
                let vm = meta.versions.get(&n).ok_or_else(not_found)?;
                if !vm.is_readable_at(model::now()) {
                    // Vault answers a patch of a deleted/destroyed latest version with 404 and
                    // the version's metadata at the top level.
                    return Ok(Change::None(Response {
                        data: Some(meta.vault_version_block(n, vm)),
                        status: Some(404),
                        ..Default::default()
                    }));
                }
                let payload = store
                    .payload(path, n)
                    .await?
                    .ok_or_else(|| CoreError::internal("could not find version data"))?;
                let mut current = Value::Object(payload.to_vault_data());
                params::merge_patch(&mut current, patch);
                let Value::Object(merged) = current else {
                    return Err(CoreError::internal("patched data is not an object"));
                };
                let encoded = Payload::from_json_object(&merged)?.encode()?;
                match new_version(path, meta, model::now(), encoded, config)? {
                    Change::Commit {
                        meta,
                        puts,
                        deletes,
                        result,
                    } => Ok(Change::Commit {
                        meta,
                        puts,
                        deletes,
                        result: Response::data(result),
                    }),
                    Change::None(m) => Ok(Change::None(Response::data(m))),
                }
            })
            .await?;
        Ok(Some(resp))
    }

    async fn delete_latest(&self, store: &SecretStore<'_>, path: &str) -> Result<Option<Response>> {
        store
            .update(&self.locks, path, |meta| async move {
                let Some(mut meta) = meta else {
                    return Ok(Change::None(()));
                };
                let now = model::now();
                let n = meta.current_version;
                match meta.versions.get_mut(&n) {
                    Some(vm) if vm.is_readable_at(now) => {
                        vm.deletion_time = Some(model::format_time(now))
                    }
                    _ => return Ok(Change::None(())),
                }
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes: vec![],
                    result: (),
                })
            })
            .await?;
        Ok(None)
    }

    async fn delete_versions(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let versions = params::versions_param(data)?;
        let versions = &versions;
        store
            .update(&self.locks, path, |meta| async move {
                let Some(mut meta) = meta else {
                    return Ok(Change::None(()));
                };
                let now = model::now();
                let mut changed = false;
                for v in versions {
                    if let Some(vm) = meta.versions.get_mut(v) {
                        if vm.is_readable_at(now) {
                            vm.deletion_time = Some(model::format_time(now));
                            changed = true;
                        }
                    }
                }
                Ok(Change::metadata_if(changed, meta))
            })
            .await?;
        Ok(None)
    }

    async fn undelete_versions(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let versions = params::versions_param(data)?;
        let config = store.config().await?;
        let (versions, config) = (&versions, &config);
        store
            .update(&self.locks, path, |meta| async move {
                let Some(mut meta) = meta else {
                    return Ok(Change::None(()));
                };
                let now = model::now();
                // like Vault, an undeleted version gets a fresh delete_version_after deadline
                let deletion = meta
                    .effective_delete_after(config)
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| now.checked_add(time::Duration::seconds(s)))
                    .map(model::format_time);
                let mut changed = false;
                for v in versions {
                    if let Some(vm) = meta.versions.get_mut(v) {
                        if !vm.destroyed && vm.deletion_time != deletion {
                            vm.deletion_time = deletion.clone();
                            changed = true;
                        }
                    }
                }
                Ok(Change::metadata_if(changed, meta))
            })
            .await?;
        Ok(None)
    }

    async fn destroy_versions(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let versions = params::versions_param(data)?;
        let versions = &versions;
        store
            .update(&self.locks, path, |meta| async move {
                let Some(mut meta) = meta else {
                    return Ok(Change::None(()));
                };
                let mut deletes = Vec::new();
                for v in versions {
                    if let Some(vm) = meta.versions.get_mut(v) {
                        if !vm.destroyed {
                            vm.destroyed = true;
                            deletes.push(store::version_key(path, *v));
                        }
                    }
                }
                Ok(if deletes.is_empty() {
                    Change::None(())
                } else {
                    Change::Commit {
                        meta: Some(meta),
                        puts: vec![],
                        deletes,
                        result: (),
                    }
                })
            })
            .await?;
        Ok(None)
    }

    async fn list_metadata(
        &self,
        store: &SecretStore<'_>,
        prefix: &str,
    ) -> Result<Option<Response>> {
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        let keys = store.view.list(&store::meta_key(&prefix)).await?;
        if keys.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(Some(Response::data(m)))
    }

    async fn write_metadata(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let (max_versions, cas_required, dva) = metadata_changes(data)?;
        let custom = match params::present(data, "custom_metadata") {
            None => None,
            Some(v) => {
                let m: BTreeMap<String, String> = params::custom_metadata(v, false)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
                params::validate_custom_metadata(&m)?;
                Some(m)
            }
        };
        if max_versions.is_none() && cas_required.is_none() && dva.is_none() && custom.is_none() {
            return Ok(None);
        }
        let config = store.config().await?;
        let custom = &custom;
        store
            .update(&self.locks, path, |meta| async move {
                let mut meta = meta.unwrap_or_else(|| SecretMeta::new(path, model::now()));
                if let Some(m) = max_versions {
                    meta.max_versions = m;
                }
                if let Some(b) = cas_required {
                    meta.cas_required = b;
                }
                if let Some(d) = dva {
                    meta.delete_version_after = d;
                }
                if let Some(c) = custom {
                    meta.custom_metadata = c.clone();
                }
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes: vec![],
                    result: (),
                })
            })
            .await?;
        Ok(cas_warning(cas_required, &config))
    }

    async fn patch_metadata(
        &self,
        store: &SecretStore<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let (max_versions, cas_required, dva) = metadata_changes(data)?;
        // None: untouched; Some(None): cleared (`"custom_metadata": null`); Some(Some(p)): merged
        let custom_patch = match data.get("custom_metadata") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => {
                let p = params::custom_metadata(v, true)?;
                let given: BTreeMap<String, String> = p
                    .iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect();
                params::validate_custom_metadata(&given)?;
                Some(Some(p))
            }
        };
        let config = store.config().await?;
        let custom_patch = &custom_patch;
        store
            .update(&self.locks, path, |meta| async move {
                let mut meta = meta.ok_or_else(not_found)?;
                if let Some(m) = max_versions {
                    meta.max_versions = m;
                }
                if let Some(b) = cas_required {
                    meta.cas_required = b;
                }
                if let Some(d) = dva {
                    meta.delete_version_after = d;
                }
                match custom_patch {
                    None => {}
                    Some(None) => meta.custom_metadata.clear(),
                    Some(Some(p)) => {
                        for (k, v) in p {
                            match v {
                                None => {
                                    meta.custom_metadata.remove(k);
                                }
                                Some(v) => {
                                    meta.custom_metadata.insert(k.clone(), v.clone());
                                }
                            }
                        }
                        params::validate_custom_metadata(&meta.custom_metadata)?;
                    }
                }
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes: vec![],
                    result: (),
                })
            })
            .await?;
        Ok(cas_warning(cas_required, &config))
    }

    async fn delete_metadata(
        &self,
        store: &SecretStore<'_>,
        path: &str,
    ) -> Result<Option<Response>> {
        store
            .update(&self.locks, path, |meta| async move {
                let Some(meta) = meta else {
                    return Ok(Change::None(()));
                };
                let deletes = meta
                    .versions
                    .iter()
                    .filter(|(_, vm)| !vm.destroyed)
                    .map(|(n, _)| store::version_key(path, *n))
                    .collect();
                Ok(Change::Commit {
                    meta: None,
                    puts: vec![],
                    deletes,
                    result: (),
                })
            })
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("config"), Some(Route::Config));
        assert_eq!(route("data/a/b"), Some(Route::Data("a/b")));
        assert_eq!(route("data/"), None);
        assert_eq!(route("data/a/"), None);
        assert_eq!(route("data"), None);
        assert_eq!(route("metadata"), Some(Route::Metadata("")));
        assert_eq!(route("metadata/a/"), Some(Route::Metadata("a/")));
        assert_eq!(route("foo/bar"), None);
        assert_eq!(route(""), None);
        assert_eq!(route("config/x"), None);
    }
}
