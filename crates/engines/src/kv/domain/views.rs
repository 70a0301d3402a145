//! The neutral typed results of the kv domain. An engine answers with one of these serialized
//! into `Response.data` and names it in `Response.kind`; each dialect deserializes it and renders
//! its own wire shape. Serialized field names are part of the contract between the engine and
//! the dialects: add fields with serde defaults, never rename.
//!
//! Payload values only appear in [`VersionView::data`] / [`VersionView::value`] (and the
//! structure-only [`SubkeysView::subkeys`]); `Debug` never prints them.

use super::super::model::{
    KvConfig, Replica, RotationSettings, SecretMeta, VersionMeta, CONTENT_TYPE_BINARY,
    CONTENT_TYPE_JSON,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// `Response.kind` of a [`VersionView`].
pub const KIND_VERSION: &str = "kv.version";
/// `Response.kind` of a [`SecretView`].
pub const KIND_SECRET: &str = "kv.secret";
/// `Response.kind` of a [`ListPage`].
pub const KIND_LIST: &str = "kv.list";
/// `Response.kind` of a [`KvConfig`] (the mount's settings).
pub const KIND_CONFIG: &str = "kv.config";
/// `Response.kind` of a [`SubkeysView`].
pub const KIND_SUBKEYS: &str = "kv.subkeys";
/// `Response.kind` of a [`RotationView`].
pub const KIND_ROTATION: &str = "kv.rotation";
/// `Response.kind` of a kv v1 entry: `data` is the stored JSON object itself.
pub const KIND_ENTRY: &str = "kv.entry";

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// A JSON object (Vault writes): in [`VersionView::data`].
    #[default]
    Json,
    /// UTF-8 text: in [`VersionView::value`].
    Text,
    /// Raw bytes: base64 (standard, padded) in [`VersionView::value`].
    Binary,
}

impl Encoding {
    pub fn is_json(&self) -> bool {
        *self == Encoding::Json
    }

    pub fn from_mime(mime: &str) -> Self {
        match mime {
            CONTENT_TYPE_JSON => Encoding::Json,
            CONTENT_TYPE_BINARY => Encoding::Binary,
            _ => Encoding::Text,
        }
    }
}

/// One version of a secret. Answered (kind `kv.version`) by reads (with the payload), by writes
/// (without), and listed without payload in [`SecretView::versions`].
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// The secret's name (its path below the mount). Empty (and not serialized) in Vault's
    /// compact form ([`VersionView::compact`]), as are `secret_id`, `version_id` and the labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The secret's id (changes when a secret is deleted and created again).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    /// Vault's version number (1, 2, ...).
    pub number: u64,
    /// The version's UUID, hyphenated lowercase (AWS `VersionId`); Azure shows it as 32 hex
    /// digits ([`VersionView::id_hex`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version_id: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339: last change of the version's attributes or labels; `None`: never changed since
    /// `created_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<String>,
    /// RFC 3339; soft-deleted from then on (may be in the future: `delete_version_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<String>,
    /// The deletion time has passed: no payload is handed out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// The payload was removed for good.
    #[serde(default, skip_serializing_if = "is_false")]
    pub destroyed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging_labels: Vec<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Not-before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// The user's content type (Azure `contentType`), apart from [`Self::encoding`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Per-version tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The secret's custom metadata, in `kv.version` results only (empty in
    /// [`SecretView::versions`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Encoding::is_json")]
    pub encoding: Encoding,
    /// The payload when it is a JSON object (encoding `json`), if the result carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// The payload otherwise: the text (encoding `text`, or `json` text that is not an object),
    /// or base64 of the bytes (encoding `binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl fmt::Debug for VersionView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionView")
            .field("name", &self.name)
            .field("number", &self.number)
            .field("version_id", &self.version_id)
            .field("deleted", &self.deleted)
            .field("destroyed", &self.destroyed)
            .field("staging_labels", &self.staging_labels)
            .field("has_payload", &self.has_payload())
            .finish_non_exhaustive()
    }
}

impl VersionView {
    /// The view of version `n` of `meta`, without payload. `at` decides `deleted`.
    pub fn of(meta: &SecretMeta, n: u64, vm: &VersionMeta, at: time::OffsetDateTime) -> Self {
        VersionView {
            name: meta.path.clone(),
            secret_id: meta.stable_id(),
            number: n,
            version_id: vm.uuid.clone(),
            created_time: vm.created_time.clone(),
            updated_time: vm.updated_time.clone(),
            deletion_time: vm.deletion_time.clone(),
            deleted: vm.is_deleted_at(at),
            destroyed: vm.destroyed,
            staging_labels: labels_of(meta, n, vm),
            enabled: vm.azure.enabled,
            not_before: vm.azure.nbf,
            expires: vm.azure.exp,
            content_type: vm.content_type.clone(),
            tags: vm.tags.clone(),
            custom_metadata: meta.custom_metadata.clone(),
            encoding: Encoding::from_mime(&vm.encoding),
            data: None,
            value: None,
        }
    }

    /// Only what Vault's kv v2 answers show (number, times, state, custom metadata, payload):
    /// the rest is left out, so the audit log records no more than Vault's answer holds.
    pub fn compact(mut self) -> Self {
        self.name.clear();
        self.secret_id.clear();
        self.version_id.clear();
        self.staging_labels.clear();
        self.tags.clear();
        self.content_type = None;
        self.updated_time = None;
        self
    }

    /// The version id as 32 lowercase hex digits (Azure's form).
    pub fn id_hex(&self) -> String {
        self.version_id.replace('-', "")
    }

    /// Whether the result carries the payload.
    pub fn has_payload(&self) -> bool {
        self.data.is_some() || self.value.is_some()
    }
}

/// Soft deletion of a whole secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionView {
    pub deleted_time: String,
    #[serde(default)]
    pub scheduled_purge_time: Option<String>,
    #[serde(default)]
    pub recovery_id: Option<String>,
}

/// A secret and its retained versions (kind `kv.secret`): what describe answers, and what
/// changes of settings, labels or deletion state answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretView {
    pub name: String,
    pub secret_id: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339: when the last version was written.
    pub updated_time: String,
    /// RFC 3339: the last change of any kind.
    pub last_changed_time: String,
    /// RFC 3339 at day granularity: the last day a payload was read.
    #[serde(default)]
    pub last_accessed_date: Option<String>,
    pub current_version: u64,
    pub oldest_version: u64,
    /// 0 = the mount's setting.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 = the mount's setting.
    pub delete_version_after_secs: u64,
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub rotation: Option<RotationSettings>,
    #[serde(default)]
    pub resource_policy: Option<String>,
    /// Set while the secret is scheduled for deletion.
    #[serde(default)]
    pub deletion: Option<DeletionView>,
    #[serde(default)]
    pub recovery_level: Option<String>,
    #[serde(default)]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// Every retained version, oldest first, without payloads.
    #[serde(default)]
    pub versions: Vec<VersionView>,
}

impl SecretView {
    pub fn of(meta: &SecretMeta, at: time::OffsetDateTime) -> Self {
        SecretView {
            name: meta.path.clone(),
            secret_id: meta.stable_id(),
            created_time: meta.created_time.clone(),
            updated_time: meta.updated_time.clone(),
            last_changed_time: meta
                .last_changed_time
                .clone()
                .unwrap_or_else(|| meta.updated_time.clone()),
            last_accessed_date: meta.last_accessed_date.clone(),
            current_version: meta.current_version,
            oldest_version: meta.oldest_version,
            max_versions: meta.max_versions,
            cas_required: meta.cas_required,
            delete_version_after_secs: meta.delete_version_after,
            custom_metadata: meta.custom_metadata.clone(),
            description: meta.description.clone(),
            tags: meta.tags.clone(),
            kms_key_id: meta.kms_key_id.clone(),
            rotation: meta.rotation.clone(),
            resource_policy: meta.resource_policy.clone(),
            deletion: meta.deletion.as_ref().map(|d| DeletionView {
                deleted_time: d.deleted_time.clone(),
                scheduled_purge_time: d.scheduled_purge_time.clone(),
                recovery_id: d.recovery_id.clone(),
            }),
            recovery_level: meta.recovery_level.clone(),
            retention_days: meta.retention_days,
            primary_region: meta.primary_region.clone(),
            replicas: meta.replicas.clone(),
            versions: meta
                .versions
                .iter()
                .map(|(n, vm)| {
                    let mut v = VersionView::of(meta, *n, vm, at);
                    v.custom_metadata = BTreeMap::new();
                    v
                })
                .collect(),
        }
    }
}

/// A secret's rotation (kind `kv.rotation`): its settings, the run in progress, the last
/// error, and the version under `AWSPENDING`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RotationView {
    pub name: String,
    pub secret_id: String,
    #[serde(flatten)]
    pub settings: RotationSettings,
    /// The version holding `AWSPENDING`, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_version_id: Option<String>,
}

impl RotationView {
    pub fn of(s: &SecretView) -> Self {
        RotationView {
            name: s.name.clone(),
            secret_id: s.secret_id.clone(),
            settings: s.rotation.clone().unwrap_or_default(),
            pending_version_id: s
                .versions
                .iter()
                .find(|v| {
                    v.staging_labels
                        .iter()
                        .any(|l| l == super::super::model::AWSPENDING)
                })
                .map(|v| v.version_id.clone()),
        }
    }
}

/// One page of secret names (kind `kv.list`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListPage {
    /// Names relative to the listed prefix, sorted; a folder ends with `/` (not recursive).
    pub keys: Vec<String>,
    /// Pass as `next_token` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// With `describe`: each secret of `keys` (folders left out), in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretView>,
}

/// The structure of a version's JSON payload without its values (kind `kv.subkeys`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubkeysView {
    pub version: VersionView,
    /// `None` when the version is deleted or destroyed.
    #[serde(default)]
    pub subkeys: Option<Map<String, Value>>,
}

/// The mount's settings as answered (kind `kv.config`).
pub type ConfigView = KvConfig;

/// A version's labels as every dialect sees them: a secret written only through Vault holds
/// none, and its current version holds `AWSCURRENT` implicitly (reads by that label answer it).
fn labels_of(meta: &SecretMeta, n: u64, vm: &VersionMeta) -> Vec<String> {
    if !vm.staging_labels.is_empty() || n != meta.current_version {
        return vm.staging_labels.clone();
    }
    if meta.versions.values().all(|v| v.staging_labels.is_empty()) {
        return vec![super::super::model::AWSCURRENT.to_string()];
    }
    Vec::new()
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}
