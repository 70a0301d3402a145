//! The parameters of the kv domain's operations.

use super::super::model::{format_time, Payload, Replica, SecretMeta};
use super::super::params;
use super::labels::validate_label;
use coffer_core::error::{CoreError, Result};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Which version an operation addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// Vault's version number; 0 = not given.
    pub number: u64,
    /// The version's UUID, hyphenated or 32 hex digits.
    pub version_id: Option<String>,
    pub label: Option<String>,
}

impl Selector {
    pub fn latest() -> Self {
        Selector::default()
    }
    pub fn number(n: u64) -> Self {
        Selector {
            number: n,
            ..Default::default()
        }
    }
    pub fn is_latest(&self) -> bool {
        self.number == 0 && self.version_id.is_none() && self.label.is_none()
    }

    /// The version number this selects in `meta`. With several criteria, they must agree.
    /// Nothing given = the version holding `AWSCURRENT`: the latest (highest-numbered) version
    /// unless staging labels say otherwise.
    pub fn resolve(&self, meta: &SecretMeta) -> Result<u64> {
        let mut found: Option<u64> = None;
        let mut agree = |n: u64| -> Result<()> {
            match found {
                Some(f) if f != n => Err(CoreError::invalid(
                    "the version number, version id and staging label name different versions",
                )),
                _ => {
                    found = Some(n);
                    Ok(())
                }
            }
        };
        if self.number != 0 {
            agree(self.number)?;
        }
        if let Some(id) = &self.version_id {
            let id = normalize_version_id(id)?;
            let n = meta
                .version_with_id(&id)
                .ok_or_else(|| CoreError::not_found(format!("no version with id {id}")))?;
            agree(n)?;
        }
        if let Some(label) = &self.label {
            validate_label(label)?;
            // a secret written only through Vault carries no labels: its AWSCURRENT is the
            // latest version
            let unlabelled = meta.versions.values().all(|v| v.staging_labels.is_empty());
            let n = match meta.version_with_label(label) {
                Some(n) => n,
                None if unlabelled && label == super::super::model::AWSCURRENT => {
                    meta.current_version
                }
                None => {
                    return Err(CoreError::not_found(format!(
                        "no version holds the staging label {label}"
                    )))
                }
            };
            agree(n)?;
        }
        // nothing given: the version holding AWSCURRENT, so that a version staged under
        // AWSPENDING (a rotation in progress) is never handed out as the latest
        Ok(found.unwrap_or_else(|| {
            meta.version_with_label(super::super::model::AWSCURRENT)
                .unwrap_or(meta.current_version)
        }))
    }
}

/// A version id as stored: the UUID hyphenated, lowercase. Accepts the hyphenated and the
/// 32-hex-digit forms.
pub fn normalize_version_id(id: &str) -> Result<String> {
    uuid::Uuid::try_parse(id.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            CoreError::invalid("a version id must be a UUID (hyphenated or 32 hex digits)")
        })
}

/// What to do when the selected version is soft-deleted or destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfGone {
    /// Fail with `NotFound`.
    Fail,
    /// Answer the version's view without a payload (`deleted` / `destroyed` say why).
    Describe,
}

/// Changes to the custom metadata (Vault's `custom_metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomMetadataChange {
    Replace(BTreeMap<String, String>),
    /// `None` removes the key.
    Merge(BTreeMap<String, Option<String>>),
}

/// Settings of a secret and attributes of one of its versions; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub description: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    /// Tags set (added or overwritten) after `tags` is applied.
    pub add_tags: Option<BTreeMap<String, String>>,
    /// Tag keys removed after `tags` is applied.
    pub remove_tags: Option<Vec<String>>,
    /// Refuse the change if the secret would end up with more tags than this.
    pub max_tags: Option<usize>,
    pub kms_key_id: Option<String>,
    pub resource_policy: Option<String>,
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<u64>,
    pub custom_metadata: Option<CustomMetadataChange>,
    pub recovery_level: Option<String>,
    pub retention_days: Option<u32>,
    /// Set only when the secret has none yet (the region it was created in).
    pub primary_region: Option<String>,
    /// Replaces the list of replicas.
    pub replicas: Option<Vec<Replica>>,
    /// Replicas added; a region already replicated is refused unless `overwrite_replicas`.
    pub add_replicas: Option<Vec<Replica>>,
    pub overwrite_replicas: bool,
    /// Regions whose replica is removed; each must be a replica.
    pub remove_replicas: Option<Vec<String>>,
    /// The version the version attributes below apply to (default: the latest).
    pub version: Selector,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it.
    pub not_before: Option<Option<i64>>,
    pub expires: Option<Option<i64>>,
    pub content_type: Option<Option<String>>,
    pub version_tags: Option<BTreeMap<String, String>>,
}

impl Attributes {
    pub(super) fn has_version_changes(&self) -> bool {
        self.enabled.is_some()
            || self.not_before.is_some()
            || self.expires.is_some()
            || self.content_type.is_some()
            || self.version_tags.is_some()
    }

    /// Apply the secret-level settings.
    pub(super) fn apply_secret(&self, meta: &mut SecretMeta) -> Result<()> {
        if let Some(d) = &self.description {
            meta.description = d.clone();
        }
        if let Some(t) = &self.tags {
            meta.tags = t.clone();
        }
        for (k, v) in self.add_tags.iter().flatten() {
            meta.tags.insert(k.clone(), v.clone());
        }
        for k in self.remove_tags.iter().flatten() {
            meta.tags.remove(k);
        }
        if let Some(max) = self.max_tags {
            if meta.tags.len() > max {
                return Err(CoreError::invalid(format!(
                    "a secret can have at most {max} tags"
                )));
            }
        }
        if let Some(k) = &self.kms_key_id {
            meta.kms_key_id = Some(k.clone());
        }
        if let Some(p) = &self.resource_policy {
            meta.resource_policy = Some(p.clone());
        }
        if let Some(m) = self.max_versions {
            meta.max_versions = m;
        }
        if let Some(b) = self.cas_required {
            meta.cas_required = b;
        }
        if let Some(d) = self.delete_version_after {
            meta.delete_version_after = d;
        }
        if let Some(l) = &self.recovery_level {
            meta.recovery_level = Some(l.clone());
        }
        if let Some(d) = self.retention_days {
            meta.retention_days = Some(d);
        }
        if let (Some(r), None) = (&self.primary_region, &meta.primary_region) {
            meta.primary_region = Some(r.clone());
        }
        if let Some(r) = &self.replicas {
            meta.replicas = r.clone();
        }
        for r in self.add_replicas.iter().flatten() {
            match meta.replicas.iter_mut().find(|x| x.region == r.region) {
                Some(x) if self.overwrite_replicas => *x = r.clone(),
                Some(_) => {
                    return Err(CoreError::invalid(format!(
                        "the secret is already replicated to {}",
                        r.region
                    )))
                }
                None => meta.replicas.push(r.clone()),
            }
        }
        for region in self.remove_replicas.iter().flatten() {
            if !meta.replicas.iter().any(|x| &x.region == region) {
                return Err(CoreError::invalid(format!(
                    "the secret has no replica in {region}"
                )));
            }
            meta.replicas.retain(|x| &x.region != region);
        }
        match &self.custom_metadata {
            None => {}
            Some(CustomMetadataChange::Replace(m)) => meta.custom_metadata = m.clone(),
            Some(CustomMetadataChange::Merge(p)) => {
                for (k, v) in p {
                    match v {
                        None => meta.custom_metadata.remove(k),
                        Some(v) => meta.custom_metadata.insert(k.clone(), v.clone()),
                    };
                }
                params::validate_custom_metadata(&meta.custom_metadata)?;
            }
        }
        Ok(())
    }

    pub(super) fn apply_version(
        &self,
        meta: &mut SecretMeta,
        n: u64,
        at: OffsetDateTime,
    ) -> Result<()> {
        let vm = meta
            .versions
            .get_mut(&n)
            .ok_or_else(|| CoreError::not_found(format!("version {n} does not exist")))?;
        if let Some(e) = self.enabled {
            vm.azure.enabled = e;
        }
        if let Some(t) = self.not_before {
            vm.azure.nbf = t;
        }
        if let Some(t) = self.expires {
            vm.azure.exp = t;
        }
        if let Some(c) = &self.content_type {
            vm.content_type = c.clone();
        }
        if let Some(t) = &self.version_tags {
            vm.tags = t.clone();
        }
        vm.updated_time = Some(format_time(at));
        Ok(())
    }
}

/// A new version.
#[derive(Debug, Clone)]
pub struct PutVersion {
    pub payload: Payload,
    /// The version's UUID chosen by the caller (either form); random if `None`.
    pub version_id: Option<String>,
    /// Makes the put idempotent (AWS `ClientRequestToken`). Without one, a caller-chosen
    /// `version_id` serves as the token.
    pub idempotency_token: Option<String>,
    /// `None` = `[AWSCURRENT]`; `Some(vec![])` = no label.
    pub staging_labels: Option<Vec<String>>,
    /// Vault's check-and-set: the current version number the caller expects (0 = none yet).
    pub cas: Option<u64>,
    /// Fail with `AlreadyExists` if the secret exists (AWS `CreateSecret`), unless this is a
    /// retry of the put that created it (same idempotency token and payload).
    pub must_create: bool,
    /// Fail with `NotFound` if the secret does not exist (AWS `PutSecretValue`).
    pub must_exist: bool,
    /// Settings and version attributes applied in the same commit (`attributes.version` is
    /// ignored: they apply to the new version).
    pub attributes: Attributes,
}

impl PutVersion {
    pub fn new(payload: Payload) -> Self {
        PutVersion {
            payload,
            version_id: None,
            idempotency_token: None,
            staging_labels: None,
            cas: None,
            must_create: false,
            must_exist: false,
            attributes: Attributes::default(),
        }
    }
}

/// Whole-secret soft deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteSecret {
    /// Seconds until the purge; `None` = kept until purged explicitly.
    pub recovery_window_secs: Option<u64>,
    pub recovery_id: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Every secret below the prefix (full names relative to it) instead of one level.
    pub recursive: bool,
    /// 0 = the default page size.
    pub page_size: usize,
    pub next_token: Option<String>,
    /// `false`: secrets scheduled for deletion are left out; `true`: only those are listed.
    pub deleted: bool,
    /// Describe each secret of the page as well ([`super::views::ListPage::secrets`]).
    pub describe: bool,
}

impl PutVersion {
    pub(super) fn validate(&self) -> Result<()> {
        for l in self.staging_labels.iter().flatten() {
            validate_label(l)?;
        }
        if let Some(id) = &self.version_id {
            normalize_version_id(id)?;
        }
        if let Some(CustomMetadataChange::Replace(m)) = &self.attributes.custom_metadata {
            params::validate_custom_metadata(m)?;
        }
        Ok(())
    }
}
