//! KV v2: Vault's `config`, `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/` and
//! `subkeys/` paths, translated to kv domain operations ([`super::domain`]). Answers are the
//! domain's neutral results (`Response.kind`); the Vault dialect renders Vault's bodies
//! (`coffer_api::vault_kv`). What stays here is Vault's request side: its paths, its parameter
//! spellings (`options.cas`, `versions`, `custom_metadata`), and its quiet successes.

use super::domain::{
    self, routes::typed, CustomMetadataChange, Domain, IfGone, ListPage, Selector, SubkeysView,
    KIND_CONFIG, KIND_LIST, KIND_SECRET, KIND_SUBKEYS, KIND_VERSION,
};
use super::model::Payload;
use super::params;
use super::{not_found, unsupported_path, KvEngine};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    /// `domain/...`: the neutral operations (see [`domain::routes`]).
    Domain(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    if path == "config" {
        return Some(Route::Config);
    }
    if let Some(rest) = path.strip_prefix(domain::routes::PREFIX) {
        return Some(Route::Domain(rest));
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

/// Vault answers a missing secret or version with a bare 404.
fn bare_not_found(e: CoreError) -> CoreError {
    if e.code == ErrorCode::NotFound {
        not_found()
    } else {
        e
    }
}

fn metadata_settings(data: &Map<String, Value>) -> Result<domain::Attributes> {
    Ok(domain::Attributes {
        max_versions: params::opt_u32(data, "max_versions")?,
        cas_required: params::opt_bool(data, "cas_required")?,
        delete_version_after: params::opt_duration_secs(data, "delete_version_after")?,
        ..Default::default()
    })
}

fn cas_warning(cas_required: Option<bool>, config_requires: bool) -> Option<Response> {
    (cas_required == Some(false) && config_requires)
        .then(|| Response::default().with_warning(CAS_WARNING))
}

fn version_selectors(data: &Map<String, Value>) -> Result<Vec<Selector>> {
    Ok(params::versions_param(data)?
        .into_iter()
        .map(Selector::number)
        .collect())
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
                let domain = Domain::new(req.storage, &self.locks);
                Ok(Some(domain.exists(p).await?))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn handle_v2(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        use Operation::*;
        let Some(route) = route(req.path) else {
            return Err(unsupported_path(req));
        };
        if let Route::Domain(rest) = route {
            return self.handle_domain(req, rest).await;
        }
        let domain = Domain::new(req.storage, &self.locks);
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
        let result = match (route, req.operation) {
            (Route::Config, Read) => typed(KIND_CONFIG, &domain.config().await?),
            (Route::Config, Create | Update) => {
                let max_versions = params::opt_u32(data, "max_versions")?;
                let cas_required = params::opt_bool(data, "cas_required")?;
                let dva = params::opt_signed_duration_secs(data, "delete_version_after")?;
                if max_versions.is_some() || cas_required.is_some() || dva.is_some() {
                    domain.set_config(max_versions, cas_required, dva).await?;
                }
                Ok(None)
            }
            (Route::Data(p), Read) => {
                let sel = Selector::number(params::version_param(data)?);
                typed(KIND_VERSION, &domain.read(p, &sel, IfGone::Describe).await?)
            }
            (Route::Subkeys(p), Read) => {
                let sel = Selector::number(params::version_param(data)?);
                let depth = params::depth_param(data)?;
                let mut version = domain.read(p, &sel, IfGone::Describe).await?;
                let subkeys = version.has_payload().then(|| {
                    let body = version.data.take().unwrap_or_else(|| {
                        // a payload that is not a JSON object reads as {"value": ...}
                        let mut m = Map::new();
                        m.insert("value".into(), Value::Null);
                        m
                    });
                    params::subkeys(&body, depth)
                });
                version.value = None;
                typed(KIND_SUBKEYS, &SubkeysView { version, subkeys })
            }
            (Route::Data(p), Create | Update) => {
                let object = params::data_object(data)?;
                let mut put = domain::PutVersion::new(Payload::from_json_object(object)?);
                put.cas = params::cas_option(data)?;
                typed(KIND_VERSION, &domain.put(p, put).await?)
            }
            (Route::Data(p), Patch) => {
                let patch = Value::Object(params::data_object(data)?.clone());
                let cas = params::cas_option(data)?;
                typed(KIND_VERSION, &domain.patch_latest(p, &patch, cas).await?)
            }
            (Route::Data(p), Delete) => {
                domain
                    .set_versions_deleted(p, &[Selector::latest()], true)
                    .await?;
                Ok(None)
            }
            (Route::Metadata(p), List) => {
                let keys = domain.list_level(p).await?;
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
            (Route::Metadata(p), Read) => typed(KIND_SECRET, &domain.describe(p).await?),
            (Route::Metadata(p), Create | Update) => self.write_metadata(&domain, p, data).await,
            (Route::Metadata(p), Patch) => self.patch_metadata(&domain, p, data).await,
            (Route::Metadata(p), Delete) => {
                domain.remove(p).await?;
                Ok(None)
            }
            (Route::Delete(p), Create | Update) => {
                let versions = version_selectors(data)?;
                domain.set_versions_deleted(p, &versions, true).await?;
                Ok(None)
            }
            (Route::Undelete(p), Create | Update) => {
                let versions = version_selectors(data)?;
                domain.set_versions_deleted(p, &versions, false).await?;
                Ok(None)
            }
            (Route::Destroy(p), Create | Update) => {
                let versions = version_selectors(data)?;
                domain.destroy(p, &versions).await?;
                Ok(None)
            }
            _ => Err(CoreError::unsupported_operation()),
        };
        result.map_err(bare_not_found)
    }

    async fn write_metadata(
        &self,
        domain: &Domain<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let mut attrs = metadata_settings(data)?;
        if let Some(v) = params::present(data, "custom_metadata") {
            let m: BTreeMap<String, String> = params::custom_metadata(v, false)?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect();
            params::validate_custom_metadata(&m)?;
            attrs.custom_metadata = Some(CustomMetadataChange::Replace(m));
        }
        if attrs == domain::Attributes::default() {
            return Ok(None);
        }
        let config = domain.config().await?;
        domain.set_attributes(path, &attrs, true).await?;
        Ok(cas_warning(attrs.cas_required, config.cas_required))
    }

    async fn patch_metadata(
        &self,
        domain: &Domain<'_>,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>> {
        let mut attrs = metadata_settings(data)?;
        attrs.custom_metadata = match data.get("custom_metadata") {
            None => None,
            // `"custom_metadata": null` clears it
            Some(Value::Null) => Some(CustomMetadataChange::Replace(BTreeMap::new())),
            Some(v) => {
                let p = params::custom_metadata(v, true)?;
                let given: BTreeMap<String, String> = p
                    .iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect();
                params::validate_custom_metadata(&given)?;
                Some(CustomMetadataChange::Merge(p))
            }
        };
        let config = domain.config().await?;
        domain.set_attributes(path, &attrs, false).await?;
        Ok(cas_warning(attrs.cas_required, config.cas_required))
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
        assert_eq!(route("domain/secrets/a"), Some(Route::Domain("secrets/a")));
        assert_eq!(route("foo/bar"), None);
        assert_eq!(route(""), None);
        assert_eq!(route("config/x"), None);
    }
}
