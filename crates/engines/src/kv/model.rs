//! The shared secret model: one versioned secret that serves the Vault, AWS and Azure dialects.
//!
//! Stored as JSON records under the mount's view (see [`super::store`] for the layout). Every
//! record carries a `format` number so the representation can evolve; fields added later must
//! have serde defaults so older records keep loading.
//!
//! Nothing in this module prints a secret value: [`Payload`]'s `Debug` shows only its length and
//! content type.

use coffer_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Current format of the stored records.
pub const FORMAT: u32 = 1;

/// Vault's effective `max_versions` when neither the mount config nor the secret sets one.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// Content type of payloads written through Vault (a JSON object).
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Content type of plain-text payloads (AWS `SecretString` that is not a JSON object, Azure).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// Content type of raw bytes (AWS `SecretBinary`).
pub const CONTENT_TYPE_BINARY: &str = "application/octet-stream";

fn format_v1() -> u32 {
    FORMAT
}

fn default_true() -> bool {
    true
}

fn default_content_type() -> String {
    CONTENT_TYPE_JSON.to_string()
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

/// A whole number of seconds as Go's `time.Duration.String()` prints it: `0s`, `30s`, `1m30s`,
/// `1h0m0s`, `-1s`.
pub fn go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
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
            format: FORMAT,
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

impl Default for AzureAttributes {
    fn default() -> Self {
        AzureAttributes {
            enabled: true,
            nbf: None,
            exp: None,
        }
    }
}

/// Metadata of one version. The payload itself is stored separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// UUID v4, hyphenated. AWS `VersionId`; Azure's version is the same UUID as 32 hex digits.
    pub uuid: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339; a time in the past means soft-deleted (may be in the future with
    /// `delete_version_after`).
    #[serde(default)]
    pub deletion_time: Option<String>,
    /// The payload has been removed for good.
    #[serde(default)]
    pub destroyed: bool,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// AWS staging labels (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`, custom).
    #[serde(default)]
    pub staging_labels: Vec<String>,
    #[serde(default)]
    pub azure: AzureAttributes,
}

impl VersionMeta {
    pub fn new(
        created: OffsetDateTime,
        deletion: Option<OffsetDateTime>,
        content_type: &str,
    ) -> Self {
        VersionMeta {
            uuid: uuid::Uuid::new_v4().to_string(),
            created_time: format_time(created),
            deletion_time: deletion.map(format_time),
            destroyed: false,
            content_type: content_type.to_string(),
            staging_labels: Vec::new(),
            azure: AzureAttributes::default(),
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

    /// Whether the payload can be read at `at`.
    pub fn is_readable_at(&self, at: OffsetDateTime) -> bool {
        !self.destroyed && !self.is_deleted_at(at)
    }

    /// The version's fields as Vault shows them in `versions` of a metadata read.
    pub fn vault_summary(&self) -> Value {
        serde_json::json!({
            "created_time": self.created_time,
            "deletion_time": self.deletion_time.clone().unwrap_or_default(),
            "destroyed": self.destroyed,
        })
    }
}

/// One secret: its settings and the metadata of every retained version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretMeta {
    #[serde(default = "format_v1")]
    pub format: u32,
    /// Path of the secret relative to the mount's `data/` (the secret's name).
    pub path: String,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339; time of the last version written.
    pub updated_time: String,
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
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionMeta>,
    // --- shared-model fields not (yet) shown through Vault ---
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub deletion: Option<SecretDeletion>,
    /// Rotation settings (schedule, rotation hook, last rotated...); shape defined by the dialect
    /// that introduces rotation.
    #[serde(default)]
    pub rotation: Option<Value>,
    /// AWS resource policy document (JSON text).
    #[serde(default)]
    pub resource_policy: Option<String>,
}

impl SecretMeta {
    /// A secret with no versions yet.
    pub fn new(path: &str, at: OffsetDateTime) -> Self {
        let t = format_time(at);
        SecretMeta {
            format: FORMAT,
            path: path.to_string(),
            created_time: t.clone(),
            updated_time: t,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: BTreeMap::new(),
            versions: BTreeMap::new(),
            description: String::new(),
            tags: BTreeMap::new(),
            deletion: None,
            rotation: None,
            resource_policy: None,
        }
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

    /// Append a version created at `at` and slide the max-versions window. Returns the new
    /// version number and the numbers of the versions dropped (their payloads must be deleted
    /// in the same transaction).
    pub fn add_version(
        &mut self,
        at: OffsetDateTime,
        content_type: &str,
        config: &KvConfig,
    ) -> (u64, Vec<u64>) {
        let deletion = self
            .effective_delete_after(config)
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| at.checked_add(time::Duration::seconds(secs)));
        self.current_version += 1;
        let n = self.current_version;
        self.versions
            .insert(n, VersionMeta::new(at, deletion, content_type));
        self.updated_time = format_time(at);
        let max = u64::from(self.effective_max_versions(config));
        let mut pruned = Vec::new();
        if self.current_version.saturating_sub(self.oldest_version) >= max {
            let last_dropped = self.current_version - max;
            let keep = self.versions.split_off(&(last_dropped + 1));
            pruned = std::mem::replace(&mut self.versions, keep)
                .into_keys()
                .collect();
            self.oldest_version = last_dropped + 1;
        }
        (n, pruned)
    }

    /// `custom_metadata` as Vault renders it: `null` when empty.
    pub fn custom_metadata_value(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            Value::Object(
                self.custom_metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        }
    }

    /// The per-version metadata block of Vault's data read / write responses.
    pub fn vault_version_block(&self, n: u64, vm: &VersionMeta) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "created_time".into(),
            Value::String(vm.created_time.clone()),
        );
        m.insert("custom_metadata".into(), self.custom_metadata_value());
        m.insert(
            "deletion_time".into(),
            Value::String(vm.deletion_time.clone().unwrap_or_default()),
        );
        m.insert("destroyed".into(), Value::Bool(vm.destroyed));
        m.insert("version".into(), Value::from(n));
        m
    }

    /// The body of a Vault `metadata/<path>` read.
    pub fn vault_metadata(&self) -> Map<String, Value> {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, vm)| (n.to_string(), vm.vault_summary()))
            .collect();
        let mut m = Map::new();
        m.insert("cas_required".into(), Value::Bool(self.cas_required));
        m.insert(
            "created_time".into(),
            Value::String(self.created_time.clone()),
        );
        m.insert("current_version".into(), Value::from(self.current_version));
        m.insert("custom_metadata".into(), self.custom_metadata_value());
        m.insert(
            "delete_version_after".into(),
            Value::String(go_duration(
                i64::try_from(self.delete_version_after).unwrap_or(i64::MAX),
            )),
        );
        m.insert("max_versions".into(), Value::from(self.max_versions));
        m.insert("oldest_version".into(), Value::from(self.oldest_version));
        m.insert(
            "updated_time".into(),
            Value::String(self.updated_time.clone()),
        );
        m.insert("versions".into(), Value::Object(versions));
        m
    }
}

/// The stored bytes of one version, with their content type. `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Payload {
    pub content_type: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Payload({}, <{} bytes>)",
            self.content_type,
            self.bytes.len()
        )
    }
}

#[derive(Serialize, Deserialize)]
struct PayloadHeader {
    format: u32,
    content_type: String,
}

impl Payload {
    /// A Vault write: the JSON object, serialized.
    pub fn from_json_object(data: &Map<String, Value>) -> Result<Self> {
        let bytes = serde_json::to_vec(data)
            .map_err(|_| CoreError::internal("could not encode secret data"))?;
        Ok(Payload {
            content_type: CONTENT_TYPE_JSON.to_string(),
            bytes: Zeroizing::new(bytes),
        })
    }

    pub fn text(s: &str) -> Self {
        Payload {
            content_type: CONTENT_TYPE_TEXT.to_string(),
            bytes: Zeroizing::new(s.as_bytes().to_vec()),
        }
    }

    pub fn binary(bytes: Vec<u8>) -> Self {
        Payload {
            content_type: CONTENT_TYPE_BINARY.to_string(),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// How the payload reads through Vault: a JSON object as itself; any other text (including
    /// JSON that is not an object) as `{"value": "<text>"}`; raw bytes as
    /// `{"value": "<base64>"}`.
    pub fn to_vault_data(&self) -> Map<String, Value> {
        if self.content_type != CONTENT_TYPE_BINARY {
            if self.content_type == CONTENT_TYPE_JSON {
                if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&self.bytes) {
                    return m;
                }
            }
            if let Ok(s) = std::str::from_utf8(&self.bytes) {
                let mut m = Map::new();
                m.insert("value".into(), Value::String(s.to_string()));
                return m;
            }
        }
        use base64::Engine as _;
        let mut m = Map::new();
        m.insert(
            "value".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&*self.bytes)),
        );
        m
    }

    /// Stored form: a one-line JSON header, `\n`, then the raw bytes.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        let header = serde_json::to_vec(&PayloadHeader {
            format: FORMAT,
            content_type: self.content_type.clone(),
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
        if header.format != FORMAT {
            return Err(CoreError::internal(
                "stored secret version has an unknown format",
            ));
        }
        Ok(Payload {
            content_type: header.content_type,
            bytes: Zeroizing::new(raw[nl + 1..].to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(-1), "-1s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(12600), "3h30m0s");
    }

    #[test]
    fn payload_roundtrip_and_debug() {
        let mut m = Map::new();
        m.insert("password".into(), Value::String("hunter2".into()));
        let p = Payload::from_json_object(&m).unwrap();
        let raw = p.encode().unwrap();
        let back = Payload::decode(&raw).unwrap();
        assert_eq!(back.to_vault_data(), m);
        assert!(!format!("{back:?}").contains("hunter2"));
        assert_eq!(Payload::text("plain").to_vault_data()["value"], "plain");
        assert_eq!(Payload::text("[1,2]").to_vault_data()["value"], "[1,2]");
        assert_eq!(
            Payload::binary(vec![0xff, 0]).to_vault_data()["value"],
            "/wA="
        );
    }

    #[test]
    fn old_records_load_with_defaults() {
        let rec = r#"{"path":"a","created_time":"2024-01-01T00:00:00Z","updated_time":"2024-01-01T00:00:00Z",
            "versions":{"1":{"uuid":"u","created_time":"2024-01-01T00:00:00Z"}}}"#;
        let m: SecretMeta = serde_json::from_str(rec).unwrap();
        assert_eq!(m.format, FORMAT);
        let v = &m.versions[&1];
        assert!(v.azure.enabled);
        assert_eq!(v.content_type, CONTENT_TYPE_JSON);
        assert!(v.staging_labels.is_empty());
    }

    #[test]
    fn pruning_window() {
        let cfg = KvConfig {
            max_versions: 3,
            ..Default::default()
        };
        let mut m = SecretMeta::new("a", now());
        let mut dropped = Vec::new();
        for _ in 0..5 {
            dropped.extend(m.add_version(now(), CONTENT_TYPE_JSON, &cfg).1);
        }
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(dropped, vec![1, 2]);
        assert_eq!(m.oldest_version, 3);
    }
}
