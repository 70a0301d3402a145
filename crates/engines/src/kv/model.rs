//! The shared secret model: one versioned secret that serves the Vault, AWS and Azure dialects.
//!
//! Stored as JSON records under the mount's view (see [`super::store`] for the layout). Every
//! record carries a `format` number so the representation can evolve; fields added later must
//! have serde defaults so older records keep loading.
//!
//! Nothing in this module prints a secret value: [`Payload`]'s `Debug` shows only its length and
//! content type.

use coffer_core::error::{CoreError, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Current format of the secret metadata records. 2 added the shared-model fields (version id
/// index, idempotency, secret id, access/change times, per-version tags and content type,
/// typed rotation, Azure recovery settings); format-1 records load with their defaults.
pub const FORMAT: u32 = 2;
/// Format of the mount config record.
pub const CONFIG_FORMAT: u32 = 1;
/// Format of a stored payload's header line.
pub const PAYLOAD_FORMAT: u32 = 1;

/// Vault's effective `max_versions` when neither the mount config nor the secret sets one.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// Encoding of payloads written through Vault (a JSON object).
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Encoding of plain-text payloads (AWS `SecretString` that is not a JSON object, Azure).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// Encoding of raw bytes (AWS `SecretBinary`).
pub const CONTENT_TYPE_BINARY: &str = "application/octet-stream";

/// The staging label of the version clients get by default (AWS).
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The label moved to the version that held [`AWSCURRENT`] when it moves on.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The label of a version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";

fn format_v1() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

fn default_encoding() -> String {
    CONTENT_TYPE_JSON.to_string()
}

/// Deserialize an optional field, treating a value of an older or foreign shape as absent
/// instead of failing the whole record.
fn lenient<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

/// Current time (UTC).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// RFC 3339 with nanoseconds, the way Vault prints times.
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Parse a stored RFC 3339 time.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Mount-wide settings of a kv v2 mount (`<mount>/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    #[serde(default = "format_v1")]
    pub format: u32,
    /// 0 = Vault's default (10).
    #[serde(default)]
    pub max_versions: u32,
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds; 0 = not set; negative = disabled for every secret of the mount.
    #[serde(default)]
    pub delete_version_after: i64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            format: CONFIG_FORMAT,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
        }
    }
}

/// Whole-secret soft deletion (AWS `DeleteSecret` with a recovery window, Azure soft delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDeletion {
    /// When the secret was deleted (RFC 3339).
    pub deleted_time: String,
    /// When it is purged for good (RFC 3339); `None` = never (until purged explicitly).
    #[serde(default)]
    pub scheduled_purge_time: Option<String>,
    /// Azure's `recoveryId` of the deleted secret (an opaque id chosen by the dialect).
    #[serde(default)]
    pub recovery_id: Option<String>,
}

/// One entry of the index of deleted secrets (`deleted/<path>`), so they can be listed
/// without reading every secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedEntry {
    #[serde(default = "format_v1")]
    pub format: u32,
    pub secret_id: String,
    pub deleted_time: String,
    #[serde(default)]
    pub scheduled_purge_time: Option<String>,
}

/// Azure Key Vault attributes of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureAttributes {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Not-before, unix seconds.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Expiry, unix seconds.
    #[serde(default)]
    pub exp: Option<i64>,
}

impl AzureAttributes {
    fn is_default(&self) -> bool {
        *self == AzureAttributes::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for AzureAttributes {
    fn default() -> Self {
        AzureAttributes {
            enabled: true,
            nbf: None,
            exp: None,
        }
    }
}

/// Why a version's payload may not be handed out although it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Disabled,
    NotYetValid(i64),
    Expired(i64),
}

impl AzureAttributes {
    /// Whether the version may be read at `at`: enabled, past its not-before, before its expiry.
    pub fn check_usable(&self, at: OffsetDateTime) -> std::result::Result<(), Unusable> {
        let now = at.unix_timestamp();
        if !self.enabled {
            return Err(Unusable::Disabled);
        }
        if let Some(nbf) = self.nbf {
            if now < nbf {
                return Err(Unusable::NotYetValid(nbf));
            }
        }
        if let Some(exp) = self.exp {
            if now >= exp {
                return Err(Unusable::Expired(exp));
            }
        }
        Ok(())
    }
}

/// Metadata of one version. The payload itself is stored separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// UUID, hyphenated lowercase. AWS `VersionId`; Azure's version is the same UUID as 32
    /// lowercase hex digits. Random unless the caller chose it.
    pub uuid: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339; last change of the version's attributes, labels or state (`None`: never
    /// changed since it was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<String>,
    /// RFC 3339; a time in the past means soft-deleted (may be in the future with
    /// `delete_version_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<String>,
    /// The payload has been removed for good.
    #[serde(default, skip_serializing_if = "is_false")]
    pub destroyed: bool,
    /// How the payload is encoded ([`CONTENT_TYPE_JSON`], [`CONTENT_TYPE_TEXT`] or
    /// [`CONTENT_TYPE_BINARY`]). Stored as `content_type` (its name in format 1).
    #[serde(rename = "content_type", default = "default_encoding")]
    pub encoding: String,
    /// The content type the user gave (Azure `contentType`), apart from the encoding.
    #[serde(
        rename = "user_content_type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    /// AWS staging labels (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`, custom). A label is on at
    /// most one version of a secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "AzureAttributes::is_default")]
    pub azure: AzureAttributes,
    /// Per-version tags (Azure).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl VersionMeta {
    pub fn new(created: OffsetDateTime, deletion: Option<OffsetDateTime>, encoding: &str) -> Self {
        VersionMeta {
            uuid: uuid::Uuid::new_v4().to_string(),
            created_time: format_time(created),
            updated_time: None,
            deletion_time: deletion.map(format_time),
            destroyed: false,
            encoding: encoding.to_string(),
            content_type: None,
            staging_labels: Vec::new(),
            azure: AzureAttributes::default(),
            tags: BTreeMap::new(),
        }
    }

    /// Whether the version reads as deleted at `at` (its deletion time has passed).
    pub fn is_deleted_at(&self, at: OffsetDateTime) -> bool {
        match &self.deletion_time {
            None => false,
            // an unparsable time is treated as deleted: never hand out data we cannot judge
            Some(t) => parse_time(t).is_none_or(|t| t <= at),
        }
    }

    /// Whether the payload is still stored and not soft-deleted at `at`.
    pub fn is_readable_at(&self, at: OffsetDateTime) -> bool {
        !self.destroyed && !self.is_deleted_at(at)
    }

    pub fn has_label(&self, label: &str) -> bool {
        self.staging_labels.iter().any(|l| l == label)
    }
}

/// When a secret is rotated (AWS `RotationRules`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<u32>,
    /// `rate(...)` or `cron(...)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    /// The rotation window, e.g. `3h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Rotation settings of a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub rules: RotationRules,
    /// What performs the rotation (AWS `RotationLambdaARN`; a Coffer rotator name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotator_id: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_time: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<String>,
    /// The rotation in progress (or waiting to retry), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RotationRun>,
    /// Why the last rotation failed (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One rotation, from its start to its end; kept in the secret's record so that it survives a
/// restart (the scheduler resumes it with the same version id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRun {
    /// The new version's id (AWS's `ClientRequestToken`): the rotator stores the new value under
    /// it, labelled `AWSPENDING`.
    pub version_id: String,
    /// RFC 3339.
    pub started_time: String,
    /// Who asked: `schedule`, or the caller who asked for an immediate rotation.
    pub requested_by: String,
    /// The steps done (`createSecret`, `setSecret`, `testSecret`, `finishSecret`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps_done: Vec<String>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// RFC 3339: when the run is (re)tried.
    pub next_attempt_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A copy of a secret kept in another region (AWS replication): where, and how it is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `InSync`, `InProgress` or `Failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// RFC 3339, day granularity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<String>,
}

/// What an idempotency token was used for: the version it created and a digest of the payload
/// it carried (SHA-256, hex), so a retry with the same payload is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub version: u64,
    pub digest: String,
}

/// One secret: its settings and the metadata of every retained version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretMeta {
    #[serde(default = "format_v1")]
    pub format: u32,
    /// Path of the secret relative to the mount's `data/` (the secret's name).
    pub path: String,
    /// A random UUID given when the secret is created; a secret deleted and created again gets
    /// a new one (the AWS ARN suffix). Empty in format-1 records until their next write (see
    /// [`SecretMeta::stable_id`]).
    #[serde(default)]
    pub secret_id: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339; time of the last version written.
    pub updated_time: String,
    /// RFC 3339; time of the last change of any kind (version, settings, labels, attributes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_time: Option<String>,
    /// RFC 3339, truncated to the day (as AWS reports it): the last day a payload was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<String>,
    #[serde(default)]
    pub current_version: u64,
    /// Vault's `oldest_version` (0 until versions have been pruned).
    #[serde(default)]
    pub oldest_version: u64,
    /// 0 = use the mount's setting.
    #[serde(default)]
    pub max_versions: u32,
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds; 0 = use the mount's setting.
    #[serde(default)]
    pub delete_version_after: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionMeta>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The key the secret is encrypted with, as the caller named it (AWS `KmsKeyId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<SecretDeletion>,
    /// Azure's `recoveryLevel` (e.g. `Recoverable+Purgeable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_level: Option<String>,
    /// Azure's `recoverableDays`: how long a deleted secret is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Rotation settings. A format-1 record held an untyped value here (never written in
    /// practice); one that does not fit the type loads as `None`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub rotation: Option<RotationSettings>,
    /// AWS resource policy document (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
    /// The region the secret was created in, when a dialect with regions created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// Copies kept in other regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// Idempotency tokens (and caller-chosen version ids) → what they created.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idempotency: BTreeMap<String, IdempotencyRecord>,
}

impl SecretMeta {
    /// A secret with no versions yet.
    pub fn new(path: &str, at: OffsetDateTime) -> Self {
        let t = format_time(at);
        SecretMeta {
            format: FORMAT,
            path: path.to_string(),
            secret_id: uuid::Uuid::new_v4().to_string(),
            created_time: t.clone(),
            updated_time: t.clone(),
            last_changed_time: Some(t),
            last_accessed_date: None,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: BTreeMap::new(),
            versions: BTreeMap::new(),
            description: String::new(),
            tags: BTreeMap::new(),
            kms_key_id: None,
            deletion: None,
            recovery_level: None,
            retention_days: None,
            rotation: None,
            resource_policy: None,
            primary_region: None,
            replicas: Vec::new(),
            idempotency: BTreeMap::new(),
        }
    }

    /// The secret id; for a format-1 record that has none yet, one derived from its path and
    /// creation time (the same on every read, and stored on the next write).
    pub fn stable_id(&self) -> String {
        if !self.secret_id.is_empty() {
            return self.secret_id.clone();
        }
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("coffer-kv-secret-id\0{}\0{}", self.path, self.created_time).as_bytes(),
        );
        let mut b = [0u8; 16];
        b.copy_from_slice(&d.as_ref()[..16]);
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }

    /// Bring an older record up to the current format before it is written back.
    pub fn upgrade(&mut self) {
        if self.secret_id.is_empty() {
            self.secret_id = self.stable_id();
        }
        self.format = FORMAT;
    }

    /// Record a change made at `at`.
    pub fn touch(&mut self, at: OffsetDateTime) {
        self.last_changed_time = Some(format_time(at));
    }

    /// The number of versions kept: the larger of the secret's and the mount's setting, or
    /// Vault's default of 10 when neither is set.
    pub fn effective_max_versions(&self, config: &KvConfig) -> u32 {
        match self.max_versions.max(config.max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            n => n,
        }
    }

    /// Seconds after creation at which a new version is soft-deleted: the smaller non-zero of
    /// the mount's and the secret's `delete_version_after`; `None` when neither applies or the
    /// mount disables it.
    pub fn effective_delete_after(&self, config: &KvConfig) -> Option<u64> {
        if config.delete_version_after < 0 {
            return None;
        }
        let mount = config.delete_version_after.unsigned_abs();
        match (mount, self.delete_version_after) {
            (0, 0) => None,
            (0, m) => Some(m),
            (c, 0) => Some(c),
            (c, m) => Some(c.min(m)),
        }
    }

    /// The deletion deadline of a version created (or undeleted) at `at`.
    pub fn deletion_deadline(&self, at: OffsetDateTime, config: &KvConfig) -> Option<String> {
        self.effective_delete_after(config)
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| at.checked_add(time::Duration::seconds(secs)))
            .map(format_time)
    }

    /// Append a version created at `at` (no labels yet). Returns its number.
    pub fn add_version(&mut self, at: OffsetDateTime, encoding: &str, config: &KvConfig) -> u64 {
        let mut vm = VersionMeta::new(at, None, encoding);
        vm.deletion_time = self.deletion_deadline(at, config);
        self.current_version += 1;
        let n = self.current_version;
        self.versions.insert(n, vm);
        self.updated_time = format_time(at);
        self.touch(at);
        n
    }

    /// Slide the max-versions window: versions below it are dropped, except those holding a
    /// staging label. Returns the numbers dropped (their payloads must be deleted in the same
    /// transaction); idempotency records of dropped versions go with them.
    pub fn prune(&mut self, config: &KvConfig) -> Vec<u64> {
        let max = u64::from(self.effective_max_versions(config));
        if self.current_version.saturating_sub(self.oldest_version) < max {
            return Vec::new();
        }
        let floor = self.current_version - max + 1;
        let dropped: Vec<u64> = self
            .versions
            .range(..floor)
            .filter(|(_, vm)| vm.staging_labels.is_empty())
            .map(|(n, _)| *n)
            .collect();
        for n in &dropped {
            self.versions.remove(n);
        }
        self.idempotency
            .retain(|_, r| self.versions.contains_key(&r.version));
        self.oldest_version = floor;
        dropped
    }

    /// The number of the version holding `label`.
    pub fn version_with_label(&self, label: &str) -> Option<u64> {
        self.versions
            .iter()
            .find(|(_, vm)| vm.has_label(label))
            .map(|(n, _)| *n)
    }

    /// The number of the version with this (normalized, hyphenated) UUID.
    pub fn version_with_id(&self, id: &str) -> Option<u64> {
        self.versions
            .iter()
            .find(|(_, vm)| vm.uuid == id)
            .map(|(n, _)| *n)
    }

    /// Whether the secret is scheduled for deletion (whole-secret soft delete).
    pub fn is_deleted(&self) -> bool {
        self.deletion.is_some()
    }

    /// Whether a scheduled purge time has passed: the secret is gone, whatever is still stored.
    pub fn is_expired_deletion(&self, at: OffsetDateTime) -> bool {
        self.deletion
            .as_ref()
            .and_then(|d| d.scheduled_purge_time.as_deref())
            .is_some_and(|t| parse_time(t).is_none_or(|t| t <= at))
    }
}

/// The stored bytes of one version, with their encoding. `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Payload {
    /// [`CONTENT_TYPE_JSON`], [`CONTENT_TYPE_TEXT`] or [`CONTENT_TYPE_BINARY`].
    pub encoding: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Payload({}, <{} bytes>)",
            self.encoding,
            self.bytes.len()
        )
    }
}

#[derive(Serialize, Deserialize)]
struct PayloadHeader {
    format: u32,
    #[serde(rename = "content_type")]
    encoding: String,
}

impl Payload {
    /// A Vault write: the JSON object, serialized.
    pub fn from_json_object(data: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let bytes = serde_json::to_vec(data)
            .map_err(|_| CoreError::internal("could not encode secret data"))?;
        Ok(Payload {
            encoding: CONTENT_TYPE_JSON.to_string(),
            bytes: Zeroizing::new(bytes),
        })
    }

    /// Text. Text that is a JSON object is kept as written but encoded as JSON, so every dialect
    /// sees it as that object (Vault's `data` is the object itself, not `{"value": …}`).
    pub fn text(s: &str) -> Self {
        let object = s.trim_start().starts_with('{')
            && matches!(
                serde_json::from_str::<serde_json::Value>(s),
                Ok(serde_json::Value::Object(_))
            );
        Payload {
            encoding: if object {
                CONTENT_TYPE_JSON
            } else {
                CONTENT_TYPE_TEXT
            }
            .to_string(),
            bytes: Zeroizing::new(s.as_bytes().to_vec()),
        }
    }

    pub fn binary(bytes: Vec<u8>) -> Self {
        Payload {
            encoding: CONTENT_TYPE_BINARY.to_string(),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// SHA-256 (hex) of the encoding and the bytes, bound to one secret: what an idempotency
    /// record compares.
    pub fn digest(&self, secret_id: &str) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"coffer-kv-payload\0");
        ctx.update(secret_id.as_bytes());
        ctx.update(b"\0");
        ctx.update(self.encoding.as_bytes());
        ctx.update(b"\0");
        ctx.update(&self.bytes);
        hex::encode(ctx.finish().as_ref())
    }

    /// Stored form: a one-line JSON header, `\n`, then the raw bytes.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        let header = serde_json::to_vec(&PayloadHeader {
            format: PAYLOAD_FORMAT,
            encoding: self.encoding.clone(),
        })
        .map_err(|_| CoreError::internal("could not encode payload header"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(header.len() + 1 + self.bytes.len()));
        out.extend_from_slice(&header);
        out.push(b'\n');
        out.extend_from_slice(&self.bytes);
        Ok(out)
    }

    pub fn decode(raw: &[u8]) -> Result<Self> {
        let corrupted = || CoreError::internal("stored secret version is corrupted");
        let nl = raw.iter().position(|b| *b == b'\n').ok_or_else(corrupted)?;
        let header: PayloadHeader = serde_json::from_slice(&raw[..nl]).map_err(|_| corrupted())?;
        if header.format != PAYLOAD_FORMAT {
            return Err(CoreError::internal(
                "stored secret version has an unknown format",
            ));
        }
        Ok(Payload {
            encoding: header.encoding,
            bytes: Zeroizing::new(raw[nl + 1..].to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    #[test]
    fn payload_roundtrip_and_debug() {
        let mut m = Map::new();
        m.insert("password".into(), Value::String("hunter2".into()));
        let p = Payload::from_json_object(&m).unwrap();
        let raw = p.encode().unwrap();
        // the header keeps its format-1 spelling
        assert!(raw.starts_with(br#"{"format":1,"content_type":"application/json"}"#));
        let back = Payload::decode(&raw).unwrap();
        assert_eq!(back.encoding, CONTENT_TYPE_JSON);
        assert_eq!(&*back.bytes, &*p.bytes);
        assert!(!format!("{back:?}").contains("hunter2"));
        assert_ne!(back.digest("a"), back.digest("b"));
        assert_eq!(back.digest("a"), p.digest("a"));
        assert_ne!(
            Payload::text("x").digest("a"),
            Payload::binary(b"x".to_vec()).digest("a")
        );
    }

    #[test]
    fn old_records_load_with_defaults() {
        let rec = r#"{"path":"a","created_time":"2024-01-01T00:00:00Z","updated_time":"2024-01-01T00:00:00Z",
            "rotation":{"some":"blob","enabled":"yes"},
            "versions":{"1":{"uuid":"u","created_time":"2024-01-01T00:00:00Z","content_type":"text/plain; charset=utf-8"}}}"#;
        let mut m: SecretMeta = serde_json::from_str(rec).unwrap();
        assert_eq!(m.format, 1);
        assert!(m.rotation.is_none());
        assert!(m.idempotency.is_empty());
        let v = &m.versions[&1];
        assert!(v.azure.enabled);
        assert_eq!(v.encoding, CONTENT_TYPE_TEXT);
        assert_eq!(v.content_type, None);
        assert!(v.staging_labels.is_empty() && v.tags.is_empty());
        // a derived secret id is stable until stored
        let id = m.stable_id();
        assert_eq!(id, m.stable_id());
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        m.upgrade();
        assert_eq!((m.format, m.secret_id.as_str()), (FORMAT, id.as_str()));
        let again: SecretMeta = serde_json::from_value(json!(m)).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn pruning_window_keeps_labelled_versions() {
        let cfg = KvConfig {
            max_versions: 3,
            ..Default::default()
        };
        let mut m = SecretMeta::new("a", now());
        let mut dropped = Vec::new();
        for _ in 0..5 {
            m.add_version(now(), CONTENT_TYPE_JSON, &cfg);
            dropped.extend(m.prune(&cfg));
        }
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(dropped, vec![1, 2]);
        assert_eq!(m.oldest_version, 3);
        // a labelled version outside the window stays
        m.versions.get_mut(&3).unwrap().staging_labels = vec!["keep".into()];
        m.idempotency.insert(
            "t3".into(),
            IdempotencyRecord {
                version: 3,
                digest: String::new(),
            },
        );
        m.idempotency.insert(
            "t4".into(),
            IdempotencyRecord {
                version: 4,
                digest: String::new(),
            },
        );
        for _ in 0..2 {
            m.add_version(now(), CONTENT_TYPE_JSON, &cfg);
            m.prune(&cfg);
        }
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            vec![3, 5, 6, 7]
        );
        assert_eq!(m.oldest_version, 5);
        assert!(m.idempotency.contains_key("t3") && !m.idempotency.contains_key("t4"));
    }

    #[test]
    fn usable_window() {
        let t = OffsetDateTime::from_unix_timestamp(1000).unwrap();
        let mut a = AzureAttributes::default();
        assert_eq!(a.check_usable(t), Ok(()));
        a.nbf = Some(1001);
        assert_eq!(a.check_usable(t), Err(Unusable::NotYetValid(1001)));
        a.nbf = Some(1000);
        a.exp = Some(1000);
        assert_eq!(a.check_usable(t), Err(Unusable::Expired(1000)));
        a.exp = None;
        a.enabled = false;
        assert_eq!(a.check_usable(t), Err(Unusable::Disabled));
    }
}
