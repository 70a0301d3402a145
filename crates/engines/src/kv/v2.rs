//! KV v2: Vault's `config`, `data/`, `metadata/`, `delete/`, `undelete/`, `destroy/` and
//! `subkeys/` paths, translated to kv domain operations ([`super::domain`]). Answers are the
//! domain's neutral results (`Response.kind`); the Vault dialect renders Vault's bodies
//! (`coffer_api::vault_kv`). What stays here is Vault's request side: its paths, its parameter
//! spellings (`options.cas`, `versions`, `custom_metadata`), and its quiet successes.

use super::domain::{
    self,
    routes::{typed, typed_version, DomainPath},
    CustomMetadataChange, IfGone, ListPage, Selector, SubkeysView, KIND_CONFIG, KIND_LIST,
    KIND_SECRET, KIND_SUBKEYS, KIND_VERSION,
};
use super::model::Payload;
use super::params;
use super::{not_found, unsupported_path, KvEngine};
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::{EngineRequest, Ops, PathEntry, PathTable, RouteMatch};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const CAS_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// The endpoints of a kv v2 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V2Path {
    ReadConfig,
    WriteConfig,
    ReadData,
    WriteData,
    PatchData,
    DeleteData,
    /// `metadata` and `metadata/<path>`: `path` may be empty or end with `/` (lists).
    ListMetadata,
    ReadMetadata,
    WriteMetadata,
    PatchMetadata,
    DeleteMetadata,
    DeleteVersions,
    UndeleteVersions,
    DestroyVersions,
    Subkeys,
    /// `domain/...`: the neutral operations (see [`domain::routes`]).
    Domain(DomainPath),
}

const METADATA: &[(Ops, V2Path)] = &[
    (Ops::LIST, V2Path::ListMetadata),
    (Ops::READ, V2Path::ReadMetadata),
    (Ops::WRITE, V2Path::WriteMetadata),
    (Ops::PATCH, V2Path::PatchMetadata),
    (Ops::DELETE, V2Path::DeleteMetadata),
];
const SECRETS: &[(Ops, V2Path)] = &[
    (Ops::LIST, V2Path::Domain(DomainPath::ListSecrets)),
    (Ops::READ, V2Path::Domain(DomainPath::Describe)),
    (
        Ops::WRITE.or(Ops::PATCH),
        V2Path::Domain(DomainPath::SetAttributes),
    ),
    (Ops::DELETE, V2Path::Domain(DomainPath::DeleteSecret)),
];
const VERSIONS: &[(Ops, V2Path)] = &[
    (Ops::READ, V2Path::Domain(DomainPath::ReadVersion)),
    (Ops::WRITE, V2Path::Domain(DomainPath::PutVersion)),
];
const LABELS: &[(Ops, V2Path)] = &[(Ops::WRITE, V2Path::Domain(DomainPath::MoveLabel))];
const RESTORE: &[(Ops, V2Path)] = &[(Ops::WRITE, V2Path::Domain(DomainPath::Restore))];
const PURGE: &[(Ops, V2Path)] = &[(
    Ops::WRITE.or(Ops::DELETE),
    V2Path::Domain(DomainPath::Purge),
)];
const DESTROY: &[(Ops, V2Path)] = &[(Ops::WRITE, V2Path::Domain(DomainPath::Destroy))];
const BACKUP: &[(Ops, V2Path)] = &[(Ops::READ, V2Path::Domain(DomainPath::Backup))];
const ROTATION: &[(Ops, V2Path)] = &[
    (Ops::READ, V2Path::Domain(DomainPath::ReadRotation)),
    (Ops::WRITE, V2Path::Domain(DomainPath::SetRotation)),
];
const ROTATION_RUN: &[(Ops, V2Path)] = &[(Ops::WRITE, V2Path::Domain(DomainPath::RotationRun))];
const ROTATIONS: &[(Ops, V2Path)] = &[(Ops::LIST, V2Path::Domain(DomainPath::DueRotations))];
const RESTORE_BACKUP: &[(Ops, V2Path)] = &[(Ops::WRITE, V2Path::Domain(DomainPath::RestoreBackup))];

/// Vault's kv v2 paths and the neutral `domain/` ones. A write to a secret's data or metadata
/// asks whether the secret exists (create vs update). A bare collection (`metadata`,
/// `domain/secrets`) answers as its empty name does.
///
/// The ACL checks each `domain/` path as the Vault path a policy author writes rules for, so one
/// policy governs every dialect: reading or putting a version is `data/<name>`; describing,
/// listing, changing settings or labels and scheduling deletion are `metadata/<name>` (purging
/// is its `delete`); restoring is `undelete/<name>`; destroying is `destroy/<name>`; a backup
/// (it holds every payload) is a read of `data/<name>`, restoring one a create of it; a
/// secret's rotation settings are its `metadata/<name>` (the scheduler's own paths,
/// `domain/rotation-run/` and `domain/rotations`, additionally need root).
pub(super) static V2_PATHS: PathTable<V2Path> = PathTable::new(&[
    PathEntry::new(
        "config",
        &[
            (Ops::READ, V2Path::ReadConfig),
            (Ops::WRITE, V2Path::WriteConfig),
        ],
    ),
    PathEntry::new(
        "data/{path+}",
        &[
            (Ops::READ, V2Path::ReadData),
            (Ops::WRITE, V2Path::WriteData),
            (Ops::PATCH, V2Path::PatchData),
            (Ops::DELETE, V2Path::DeleteData),
        ],
    )
    .existence_check(),
    PathEntry::new("metadata", METADATA),
    PathEntry::new("metadata/{path*}", METADATA).existence_check(),
    PathEntry::new("delete/{path+}", &[(Ops::WRITE, V2Path::DeleteVersions)]),
    PathEntry::new(
        "undelete/{path+}",
        &[(Ops::WRITE, V2Path::UndeleteVersions)],
    ),
    PathEntry::new("destroy/{path+}", &[(Ops::WRITE, V2Path::DestroyVersions)]),
    PathEntry::new("subkeys/{path+}", &[(Ops::READ, V2Path::Subkeys)]),
    PathEntry::new("domain/secrets", SECRETS).acl_as("metadata/"),
    PathEntry::new("domain/secrets/{path*}", SECRETS)
        .existence_check()
        .acl_as("metadata/"),
    PathEntry::new("domain/versions", VERSIONS).acl_as("data/"),
    PathEntry::new("domain/versions/{path*}", VERSIONS)
        .existence_check()
        .acl_as("data/"),
    PathEntry::new("domain/labels", LABELS).acl_as("metadata/"),
    PathEntry::new("domain/labels/{path*}", LABELS).acl_as("metadata/"),
    PathEntry::new("domain/restore", RESTORE).acl_as("undelete/"),
    PathEntry::new("domain/restore/{path*}", RESTORE).acl_as("undelete/"),
    PathEntry::new("domain/purge", PURGE).acl_as_op("metadata/", Operation::Delete),
    PathEntry::new("domain/purge/{path*}", PURGE).acl_as_op("metadata/", Operation::Delete),
    PathEntry::new("domain/destroy", DESTROY).acl_as("destroy/"),
    PathEntry::new("domain/destroy/{path*}", DESTROY).acl_as("destroy/"),
    PathEntry::new("domain/backup/{path+}", BACKUP).acl_as("data/"),
    PathEntry::new("domain/restore-backup/{path+}", RESTORE_BACKUP)
        .acl_as_op("data/", Operation::Create),
    PathEntry::new("domain/rotation/{path+}", ROTATION).acl_as("metadata/"),
    PathEntry::new("domain/rotation-run/{path+}", ROTATION_RUN).acl_as("metadata/"),
    PathEntry::new("domain/rotations", ROTATIONS).acl_as("metadata/"),
    PathEntry::new("domain/rotations/", ROTATIONS).acl_as("metadata/"),
]);

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
        let Some(route) = V2_PATHS
            .lookup(req.path)
            .filter(|r| r.flags.existence_check)
        else {
            return Ok(None);
        };
        match route.captures(req.path).opt("path") {
            Some(p) if !p.is_empty() && !p.ends_with('/') => {
                let domain = domain::Domain::new(req.storage, &self.locks);
                if params::opt_bool(req.data, "fold_case")?.unwrap_or(false) {
                    return Ok(Some(domain.exists_folded(p).await?));
                }
                Ok(Some(domain.exists(p).await?))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn handle_v2(
        &self,
        req: &EngineRequest<'_>,
        route: &RouteMatch,
    ) -> Result<Option<Response>> {
        use V2Path::*;
        let p = route.captures(req.path).opt("path").unwrap_or("");
        let handler = V2_PATHS.handler(route, req.operation)?;
        if let Domain(op) = handler {
            if params::opt_bool(req.data, "fold_case")?.unwrap_or(false) {
                return self.handle_folded(req, op, p, &self.fold_locks).await;
            }
            return self.handle_domain(req, op, p).await;
        }
        let domain = domain::Domain::new(req.storage, &self.locks);
        let data = req.data;
        if matches!(
            handler,
            ReadMetadata | WriteMetadata | PatchMetadata | DeleteMetadata
        ) {
            if p.is_empty() {
                return Err(match handler {
                    WriteMetadata | PatchMetadata => CoreError::invalid("missing path"),
                    _ => not_found(),
                });
            }
            if p.ends_with('/') {
                return Err(unsupported_path(req));
            }
        }
        let result = match handler {
            ReadConfig => typed(KIND_CONFIG, &domain.config().await?),
            WriteConfig => {
                let max_versions = params::opt_u32(data, "max_versions")?;
                let cas_required = params::opt_bool(data, "cas_required")?;
                let dva = params::opt_signed_duration_secs(data, "delete_version_after")?;
                if max_versions.is_some() || cas_required.is_some() || dva.is_some() {
                    domain.set_config(max_versions, cas_required, dva).await?;
                }
                Ok(None)
            }
            ReadData => {
                let sel = Selector::number(params::version_param(data)?);
                typed_version(domain.read(p, &sel, IfGone::Describe).await?.compact())
            }
            Subkeys => {
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
            WriteData => {
                let object = params::data_object(data)?;
                let mut put = domain::PutVersion::new(Payload::from_json_object(object)?);
                put.cas = params::cas_option(data)?;
                typed(KIND_VERSION, &domain.put(p, put).await?.compact())
            }
            PatchData => {
                let patch = Value::Object(params::data_object(data)?.clone());
                let cas = params::cas_option(data)?;
                typed(
                    KIND_VERSION,
                    &domain.patch_latest(p, &patch, cas).await?.compact(),
                )
            }
            DeleteData => {
                domain
                    .set_versions_deleted(p, &[Selector::latest()], true)
                    .await?;
                Ok(None)
            }
            ListMetadata => {
                let keys = domain.list_level(p).await?;
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
            ReadMetadata => typed(KIND_SECRET, &domain.describe(p).await?),
            WriteMetadata => self.write_metadata(&domain, p, data).await,
            PatchMetadata => self.patch_metadata(&domain, p, data).await,
            DeleteMetadata => {
                domain.remove(p).await?;
                Ok(None)
            }
            DeleteVersions => {
                let versions = version_selectors(data)?;
                domain.set_versions_deleted(p, &versions, true).await?;
                Ok(None)
            }
            UndeleteVersions => {
                let versions = version_selectors(data)?;
                domain.set_versions_deleted(p, &versions, false).await?;
                Ok(None)
            }
            DestroyVersions => {
                let versions = version_selectors(data)?;
                domain.destroy(p, &versions).await?;
                Ok(None)
            }
            Domain(_) => Err(CoreError::unsupported_operation()),
        };
        result.map_err(bare_not_found)
    }

    async fn write_metadata(
        &self,
        domain: &domain::Domain<'_>,
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
        domain: &domain::Domain<'_>,
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

    /// The path (capture `path`) a kv v2 path routes to, `None` for an unknown path.
    fn route(path: &str) -> Option<(V2Path, &str)> {
        let m = V2_PATHS.lookup(path)?;
        let h = V2_PATHS.handler(&m, Operation::Read).ok();
        let h = h.or_else(|| V2_PATHS.handler(&m, Operation::Update).ok())?;
        Some((h, m.captures(path).opt("path").unwrap_or("")))
    }

    #[test]
    fn routes() {
        use V2Path::*;
        assert!(V2_PATHS.problems().is_empty(), "{:?}", V2_PATHS.problems());
        assert_eq!(route("config"), Some((ReadConfig, "")));
        assert_eq!(route("data/a/b"), Some((ReadData, "a/b")));
        assert_eq!(route("data/"), None);
        assert_eq!(route("data/a/"), None);
        assert_eq!(route("data"), None);
        assert_eq!(route("metadata"), Some((ReadMetadata, "")));
        assert_eq!(route("metadata/a/"), Some((ReadMetadata, "a/")));
        assert_eq!(
            route("domain/secrets/a"),
            Some((Domain(DomainPath::Describe), "a"))
        );
        assert_eq!(route("foo/bar"), None);
        assert_eq!(route(""), None);
        assert_eq!(route("config/x"), None);
    }

    /// Vault's kv v2 has no unauthenticated or root-protected paths; the existence check is on
    /// `data/` and `metadata/` (Vault's `dataExistenceCheck`, `metadataExistenceCheck`).
    #[test]
    fn path_flags_are_vaults() {
        let all = V2_PATHS.entries();
        assert!(all
            .iter()
            .all(|e| !e.flags.unauthenticated && !e.flags.sudo));
        let checked: Vec<&str> = all
            .iter()
            .filter(|e| e.flags.existence_check)
            .map(|e| e.pattern)
            .collect();
        assert_eq!(
            checked,
            [
                "data/{path+}",
                "metadata/{path*}",
                "domain/secrets/{path*}",
                "domain/versions/{path*}"
            ]
        );
        // every neutral path is checked by the ACL as a Vault path
        for e in all.iter().filter(|e| e.pattern.starts_with("domain/")) {
            let alias = e.flags.acl.expect("domain paths have an ACL alias");
            assert!(
                ["data/", "metadata/", "undelete/", "destroy/"].contains(&alias.prefix),
                "{}",
                e.pattern
            );
        }
        assert!(all
            .iter()
            .filter(|e| !e.pattern.starts_with("domain/"))
            .all(|e| e.flags.acl.is_none()));
        let v1 = super::super::v1::V1_PATHS.entries();
        assert!(v1.iter().all(|e| !e.flags.unauthenticated && !e.flags.sudo));
        assert!(v1.iter().all(|e| e.flags.existence_check));
    }
}
