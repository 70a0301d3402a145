//! The mount-relative `domain/` paths through which every dialect reaches the kv domain with
//! neutral JSON parameters. They cannot collide with Vault's kv v2 paths (`data/`,
//! `metadata/`, `delete/`, `undelete/`, `destroy/`, `subkeys/`, `config`). `<name>` is the
//! secret's path below the mount (the same name Vault's `data/<name>` uses).
//!
//! | path                     | operation       | does                        | answers (`kind`) |
//! |--------------------------|-----------------|-----------------------------|------------------|
//! | `domain/secrets/<name>`  | read            | describe                    | `kv.secret`      |
//! | `domain/secrets/<name>`  | create / update | set settings and attributes | `kv.secret`      |
//! | `domain/secrets/<name>`  | delete          | schedule deletion           | `kv.secret`      |
//! | `domain/secrets/<prefix>`| list            | a page of names             | `kv.list`        |
//! | `domain/versions/<name>` | read            | read a version              | `kv.version`     |
//! | `domain/versions/<name>` | create / update | put a version               | `kv.version`     |
//! | `domain/labels/<name>`   | create / update | move a staging label        | `kv.secret`      |
//! | `domain/restore/<name>`  | create / update | cancel a scheduled deletion | `kv.secret`      |
//! | `domain/purge/<name>`    | create / update / delete | purge a deleted secret | none        |
//! | `domain/destroy/<name>`  | create / update | destroy versions            | `kv.secret`      |
//! | `domain/backup/<name>`   | read            | a sealed backup             | `backup` (base64) |
//! | `domain/restore-backup/<name>` | create / update | restore a backup (`backup`, base64) | `kv.secret` |
//! | `domain/rotation/<name>` | read            | the rotation's state        | `kv.rotation`    |
//! | `domain/rotation/<name>` | create / update | turn rotation on (or off: `cancel`) | `kv.rotation` |
//! | `domain/rotation-run/<name>` | create / update | the scheduler: `action` `start` / `record` (root only) | run / `kv.secret` |
//! | `domain/rotations`       | list            | the secrets whose rotation is due (`all`: every one scheduled, running or failed; root only) | `kv.list` |
//!
//! Parameters (all optional unless said otherwise; `null` = not given):
//!
//! - version selectors — `version` (number), `version_id` (UUID, hyphenated or 32 hex),
//!   `label` (staging label); several must agree; none = the latest version. `domain/labels`
//!   takes them prefixed `to_` and `from_`.
//! - read: the selectors; `if_gone`: `"fail"` (default: a deleted or destroyed version is
//!   `NotFound`) or `"describe"` (answered without payload); `as_text` (bool: a JSON payload
//!   comes back in `value` as the exact text it was stored as, not parsed into `data`);
//!   `even_unusable` (bool, root only: also a disabled, not-yet-valid or expired version).
//! - payload mapping: text that is a JSON object is stored as JSON (Vault reads the object);
//!   other text is Vault's `{"value": "<text>"}`; binary is `{"value": "<base64>"}`.
//! - put: exactly one of `data` (JSON object), `text` (string), `binary` (base64); then
//!   `version_id`, `idempotency_token`, `staging_labels` (list; absent = `["AWSCURRENT"]`),
//!   `must_create` (bool: `AlreadyExists` if the secret exists, unless this retries the put
//!   that created it), `must_exist` (bool: `NotFound` if it does not), `cas` (number) and any settings/attributes below (they apply to the
//!   new version).
//! - settings/attributes: `description`, `tags` (object of strings, replaces), `add_tags`
//!   (object: set these), `remove_tags` (list of keys), `max_tags` (refuse a change leaving
//!   more tags than this), `kms_key_id`, `resource_policy`, `max_versions`,
//!   `cas_required`, `delete_version_after` (seconds or duration), `custom_metadata` (object,
//!   replaces), `recovery_level`, `retention_days`, `primary_region` (kept only when the secret
//!   has none), `replicas` (list of `{region, kms_key_id, status, status_message}`, replaces),
//!   `add_replicas` (same form; a region replicated already is refused unless
//!   `overwrite_replicas`), `remove_replicas` (list of regions, each must be a replica); version attributes (on the selected
//!   version): `enabled`, `not_before` / `expires` (unix seconds; null clears),
//!   `content_type` (null clears), `version_tags` (object); `must_create` (bool: create the
//!   secret without versions; `AlreadyExists` if it exists); `create` (bool: create a missing
//!   secret instead of `NotFound`).
//! - delete: `recovery_window_secs` (absent = kept until purged), `recovery_id`.
//! - list: `recursive` (bool), `page_size` (1..=1000, default 100), `next_token`, `deleted`
//!   (bool: list only secrets scheduled for deletion; default lists only the others),
//!   `describe` (bool: each secret's `kv.secret` view too, in `secrets`). Only secrets whose
//!   `metadata/<name>` the caller may read are listed.
//! - labels: `label` (required), `to_*` and/or `from_*` selectors.
//! - destroy: `versions` (list of numbers) and/or `version_ids` (list).
//! - `fold_case` (bool, on any path naming one secret): the name ignores case (Azure's rule;
//!   see [`super::fold`]).
//! - rotation: `rotator_id`, `rules` (`{automatically_after_days, schedule_expression,
//!   duration}`), `rotate_immediately` (bool, default true), `version_id` (UUID of the new
//!   version), `cancel` (bool: turn rotation off, dropping a run in progress). The run records
//!   who asked (the caller's display name).
//! - rotation-run: `action` `start` (answers the run: `version_id`, `steps_done`, …) or `record`
//!   with `version_id` and one of `step` (a step done), `error` (the run failed), `finished`.

use super::super::model::{self, Payload, Replica, RotationRules};
use super::super::params::{self, present};
use super::super::KvEngine;
use super::ops::Domain;
use super::rotation::{RotationConfig, RunOutcome};
use super::types::{
    Attributes, CustomMetadataChange, DeleteSecret, IfGone, ListOptions, PutVersion, Selector,
};
use super::views::{ListPage, RotationView, KIND_LIST, KIND_ROTATION, KIND_SECRET, KIND_VERSION};
use coffer_core::error::{CoreError, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use coffer_core::util;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The prefix of every domain path.
pub const PREFIX: &str = "domain/";

/// The domain endpoints (the kv v2 path table maps `domain/…` paths to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainPath {
    ListSecrets,
    Describe,
    SetAttributes,
    DeleteSecret,
    ReadVersion,
    PutVersion,
    MoveLabel,
    Restore,
    Purge,
    Destroy,
    Backup,
    RestoreBackup,
    ReadRotation,
    SetRotation,
    RotationRun,
    DueRotations,
}

/// A typed result as a response: the neutral JSON in `data`, its schema in `kind`.
pub fn typed<T: Serialize>(kind: &'static str, value: &T) -> Result<Option<Response>> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(Some(Response {
            data: Some(m),
            kind: Some(kind.into()),
            ..Default::default()
        })),
        _ => Err(CoreError::internal("could not encode a kv result")),
    }
}

/// A `kv.version` result as a response, moving the payload in rather than copying it (the read
/// path is hot).
pub fn typed_version(mut view: super::views::VersionView) -> Result<Option<Response>> {
    let payload = view.data.take();
    let mut resp = typed(KIND_VERSION, &view)?;
    if let (Some(p), Some(r)) = (payload, resp.as_mut()) {
        if let Some(d) = r.data.as_mut() {
            d.insert("data".into(), Value::Object(p));
        }
    }
    Ok(resp)
}

fn opt_string(d: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match present(d, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CoreError::invalid(format!("{key} must be a string"))),
    }
}

/// `Some(None)` when given as null (clears), `None` when absent.
fn clearable<T>(
    d: &Map<String, Value>,
    key: &str,
    parse: impl Fn(&Map<String, Value>, &str) -> Result<Option<T>>,
) -> Result<Option<Option<T>>> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(_) => Ok(Some(parse(d, key)?)),
    }
}

fn opt_i64(d: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    present(d, key)
        .map(|v| {
            util::value_as_i64(v)
                .ok_or_else(|| CoreError::invalid(format!("{key} must be an integer")))
        })
        .transpose()
}

fn string_map(d: &Map<String, Value>, key: &str) -> Result<Option<BTreeMap<String, String>>> {
    let bad = || CoreError::invalid(format!("{key} must be an object of strings"));
    match present(d, key) {
        None => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(bad()),
            })
            .collect::<Result<_>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

fn string_list(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    let bad = || CoreError::invalid(format!("{key} must be a list of strings"));
    match present(d, key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

fn selector(d: &Map<String, Value>, prefix: &str) -> Result<Option<Selector>> {
    let key = |k: &str| format!("{prefix}{k}");
    let number = opt_i64(d, &key("version"))?
        .map(|n| u64::try_from(n).map_err(|_| CoreError::invalid("a version number must be >= 1")))
        .transpose()?
        .filter(|n| *n > 0);
    let version_id = opt_string(d, &key("version_id"))?;
    let label = opt_string(d, &key("label"))?;
    if number.is_none() && version_id.is_none() && label.is_none() {
        return Ok(None);
    }
    Ok(Some(Selector {
        number: number.unwrap_or(0),
        version_id,
        label,
    }))
}

fn rotation_rules(d: &Map<String, Value>) -> Result<Option<RotationRules>> {
    let rules = match present(d, "rules") {
        None => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(CoreError::invalid("rules must be an object")),
    };
    Ok(Some(RotationRules {
        automatically_after_days: params::opt_u32(rules, "automatically_after_days")?,
        schedule_expression: opt_string(rules, "schedule_expression")?,
        duration: opt_string(rules, "duration")?,
    }))
}

/// The scheduler's paths are root's only.
fn require_root(req: &EngineRequest<'_>) -> Result<()> {
    let root = req.token.is_some_and(|t| {
        t.policies
            .iter()
            .any(|p| p == coffer_core::names::ROOT_POLICY)
    });
    if root {
        Ok(())
    } else {
        Err(CoreError::new(
            coffer_core::error::ErrorCode::PermissionDenied,
            "permission denied",
        ))
    }
}

fn replicas(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<Replica>>> {
    match present(d, key) {
        None => Ok(None),
        Some(v) => serde_json::from_value::<Vec<Replica>>(v.clone())
            .map(Some)
            .map_err(|_| {
                CoreError::invalid(format!(
                    "{key} must be a list of {{region, kms_key_id, status}}"
                ))
            }),
    }
}

fn attributes(d: &Map<String, Value>) -> Result<Attributes> {
    let custom_metadata = match present(d, "custom_metadata") {
        None => None,
        Some(v) => Some(CustomMetadataChange::Replace(
            params::custom_metadata(v, false)?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        )),
    };
    Ok(Attributes {
        description: opt_string(d, "description")?,
        tags: string_map(d, "tags")?,
        add_tags: string_map(d, "add_tags")?,
        remove_tags: string_list(d, "remove_tags")?,
        max_tags: params::opt_u32(d, "max_tags")?.and_then(|n| usize::try_from(n).ok()),
        kms_key_id: opt_string(d, "kms_key_id")?,
        resource_policy: opt_string(d, "resource_policy")?,
        max_versions: params::opt_u32(d, "max_versions")?,
        cas_required: params::opt_bool(d, "cas_required")?,
        delete_version_after: params::opt_duration_secs(d, "delete_version_after")?,
        custom_metadata,
        recovery_level: opt_string(d, "recovery_level")?,
        retention_days: params::opt_u32(d, "retention_days")?,
        primary_region: opt_string(d, "primary_region")?,
        replicas: replicas(d, "replicas")?,
        add_replicas: replicas(d, "add_replicas")?,
        overwrite_replicas: params::opt_bool(d, "overwrite_replicas")?.unwrap_or(false),
        remove_replicas: string_list(d, "remove_replicas")?,
        version: selector(d, "")?.unwrap_or_default(),
        enabled: params::opt_bool(d, "enabled")?,
        not_before: clearable(d, "not_before", opt_i64)?,
        expires: clearable(d, "expires", opt_i64)?,
        content_type: clearable(d, "content_type", opt_string)?,
        version_tags: string_map(d, "version_tags")?,
    })
}

fn payload(d: &Map<String, Value>) -> Result<Payload> {
    let given = ["data", "text", "binary"]
        .iter()
        .filter(|k| present(d, k).is_some())
        .count();
    if given != 1 {
        return Err(CoreError::invalid(
            "give exactly one of data (JSON object), text (string) or binary (base64)",
        ));
    }
    if let Some(v) = present(d, "data") {
        return match v {
            Value::Object(m) => Payload::from_json_object(m),
            _ => Err(CoreError::invalid("data must be a JSON object")),
        };
    }
    if let Some(t) = opt_string(d, "text")? {
        return Ok(Payload::text(&t));
    }
    use base64::Engine as _;
    let b = opt_string(d, "binary")?.unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(b.as_bytes())
        .map(Payload::binary)
        .map_err(|_| CoreError::invalid("binary must be base64"))
}

fn number_list(d: &Map<String, Value>, key: &str) -> Result<Vec<u64>> {
    let bad = || CoreError::invalid(format!("{key} must be a list of version numbers"));
    match present(d, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                util::value_as_i64(v)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(bad)
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// One name (no trailing slash, not empty).
fn name<'p>(rest: &'p str, req: &EngineRequest<'_>) -> Result<&'p str> {
    if rest.is_empty() || rest.ends_with('/') {
        return Err(super::super::unsupported_path(req));
    }
    Ok(rest)
}

impl KvEngine {
    /// Requests to `domain/<collection>/<rest>`, routed by the kv v2 path table to `op`.
    pub(crate) async fn handle_domain(
        &self,
        req: &EngineRequest<'_>,
        op: DomainPath,
        rest: &str,
    ) -> Result<Option<Response>> {
        let d = req.data;
        let domain = Domain::new(req.storage, &self.locks);
        match op {
            DomainPath::ListSecrets => {
                let page_size = params::opt_u32(d, "page_size")?.unwrap_or(0);
                let opts = ListOptions {
                    recursive: params::opt_bool(d, "recursive")?.unwrap_or(false),
                    page_size: usize::try_from(page_size).unwrap_or(usize::MAX),
                    next_token: opt_string(d, "next_token")?,
                    deleted: params::opt_bool(d, "deleted")?.unwrap_or(false),
                    describe: params::opt_bool(d, "describe")?.unwrap_or(false),
                };
                // only the secrets whose metadata the caller may read
                let visible = |name: &str| req.allows(Operation::Read, &format!("metadata/{name}"));
                typed(KIND_LIST, &domain.list(rest, &opts, visible).await?)
            }
            DomainPath::Describe => typed(KIND_SECRET, &domain.describe(name(rest, req)?).await?),
            DomainPath::SetAttributes => {
                let create = params::opt_bool(d, "create")?.unwrap_or(false);
                let must_create = params::opt_bool(d, "must_create")?.unwrap_or(false);
                let attrs = attributes(d)?;
                let n = name(rest, req)?;
                let view = if must_create {
                    domain.create_empty(n, &attrs).await?
                } else {
                    domain.set_attributes(n, &attrs, create).await?
                };
                typed(KIND_SECRET, &view)
            }
            DomainPath::DeleteSecret => {
                let del = DeleteSecret {
                    recovery_window_secs: params::opt_duration_secs(d, "recovery_window_secs")?,
                    recovery_id: opt_string(d, "recovery_id")?,
                };
                typed(
                    KIND_SECRET,
                    &domain.delete_secret(name(rest, req)?, &del).await?,
                )
            }
            DomainPath::ReadVersion => {
                let sel = selector(d, "")?.unwrap_or_default();
                let if_gone = match opt_string(d, "if_gone")?.as_deref() {
                    None | Some("fail") => IfGone::Fail,
                    Some("describe") => IfGone::Describe,
                    Some(_) => return Err(CoreError::invalid("if_gone must be fail or describe")),
                };
                let as_text = params::opt_bool(d, "as_text")?.unwrap_or(false);
                // Coffer's rotators read the value they replace even when it has expired
                let any = params::opt_bool(d, "even_unusable")?.unwrap_or(false);
                if any {
                    require_root(req)?;
                }
                typed_version(
                    domain
                        .read_checked(name(rest, req)?, &sel, if_gone, as_text, !any)
                        .await?,
                )
            }
            DomainPath::PutVersion => {
                let mut put = PutVersion::new(payload(d)?);
                put.version_id = opt_string(d, "version_id")?;
                put.idempotency_token = opt_string(d, "idempotency_token")?;
                put.staging_labels = string_list(d, "staging_labels")?;
                put.must_create = params::opt_bool(d, "must_create")?.unwrap_or(false);
                put.must_exist = params::opt_bool(d, "must_exist")?.unwrap_or(false);
                put.cas = opt_i64(d, "cas")?
                    .map(|c| u64::try_from(c).map_err(|_| CoreError::invalid("cas must be >= 0")))
                    .transpose()?;
                put.attributes = attributes(d)?;
                typed(KIND_VERSION, &domain.put(name(rest, req)?, put).await?)
            }
            DomainPath::MoveLabel => {
                let label = opt_string(d, "label")?
                    .ok_or_else(|| CoreError::invalid("label is required"))?;
                let to = selector(d, "to_")?;
                let from = selector(d, "from_")?;
                let view = domain
                    .move_label(name(rest, req)?, &label, to.as_ref(), from.as_ref())
                    .await?;
                typed(KIND_SECRET, &view)
            }
            DomainPath::Restore => typed(KIND_SECRET, &domain.restore(name(rest, req)?).await?),
            DomainPath::Purge => {
                domain.purge(name(rest, req)?).await?;
                Ok(None)
            }
            DomainPath::Backup => {
                use base64::Engine as _;
                let blob = domain.backup(name(rest, req)?).await?;
                let mut data = Map::new();
                data.insert(
                    "backup".into(),
                    Value::from(base64::engine::general_purpose::STANDARD.encode(blob)),
                );
                Ok(Some(Response {
                    data: Some(data),
                    ..Default::default()
                }))
            }
            DomainPath::RestoreBackup => {
                use base64::Engine as _;
                let b64 = opt_string(d, "backup")?
                    .ok_or_else(|| CoreError::invalid("backup is required"))?;
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| CoreError::invalid("backup must be base64"))?;
                typed(
                    KIND_SECRET,
                    &domain.restore_backup(name(rest, req)?, &blob).await?,
                )
            }
            DomainPath::ReadRotation => typed(
                KIND_ROTATION,
                &RotationView::of(&domain.describe(name(rest, req)?).await?),
            ),
            DomainPath::SetRotation => {
                let n = name(rest, req)?;
                if params::opt_bool(d, "cancel")?.unwrap_or(false) {
                    let s = domain.cancel_rotation(n).await?;
                    return typed(KIND_ROTATION, &RotationView::of(&s));
                }
                let cfg = RotationConfig {
                    rotator_id: opt_string(d, "rotator_id")?,
                    rules: rotation_rules(d)?,
                    rotate_immediately: params::opt_bool(d, "rotate_immediately")?.unwrap_or(true),
                    version_id: opt_string(d, "version_id")?,
                    requested_by: req
                        .token
                        .map(|t| t.display_name.clone())
                        .unwrap_or_default(),
                };
                let s = domain.configure_rotation(n, &cfg).await?;
                typed(KIND_ROTATION, &RotationView::of(&s))
            }
            DomainPath::RotationRun => {
                require_root(req)?;
                let n = name(rest, req)?;
                match opt_string(d, "action")?.as_deref() {
                    Some("start") => {
                        let who = req
                            .token
                            .map(|t| t.display_name.clone())
                            .unwrap_or_default();
                        let run = domain.start_run(n, &who).await?;
                        match serde_json::to_value(&run) {
                            Ok(Value::Object(m)) => Ok(Some(Response {
                                data: Some(m),
                                ..Default::default()
                            })),
                            _ => Err(CoreError::internal("could not encode the run")),
                        }
                    }
                    Some("record") => {
                        let version_id = opt_string(d, "version_id")?
                            .ok_or_else(|| CoreError::invalid("version_id is required"))?;
                        let outcome = if let Some(step) = opt_string(d, "step")? {
                            RunOutcome::Step(step)
                        } else if let Some(e) = opt_string(d, "error")? {
                            RunOutcome::Failed(e)
                        } else if params::opt_bool(d, "finished")?.unwrap_or(false) {
                            RunOutcome::Finished
                        } else {
                            return Err(CoreError::invalid("give step, error or finished"));
                        };
                        typed(
                            KIND_SECRET,
                            &domain.record_run(n, &version_id, &outcome).await?,
                        )
                    }
                    _ => Err(CoreError::invalid("action must be start or record")),
                }
            }
            DomainPath::DueRotations => {
                require_root(req)?;
                // all: every secret the scheduler will look at; else the due ones
                let at = if params::opt_bool(d, "all")?.unwrap_or(false) {
                    None
                } else {
                    Some(model::now())
                };
                let keys = domain.due_rotations(at).await?;
                typed(
                    KIND_LIST,
                    &ListPage {
                        keys,
                        ..Default::default()
                    },
                )
            }
            DomainPath::Destroy => {
                let n = name(rest, req)?;
                let mut sels: Vec<Selector> = number_list(d, "versions")?
                    .into_iter()
                    .map(Selector::number)
                    .collect();
                for id in string_list(d, "version_ids")?.unwrap_or_default() {
                    sels.push(Selector {
                        version_id: Some(id),
                        ..Default::default()
                    });
                }
                if sels.is_empty() {
                    return Err(CoreError::invalid("No version number provided"));
                }
                domain.destroy(n, &sels).await?;
                typed(KIND_SECRET, &domain.describe(n).await?)
            }
        }
    }
}
