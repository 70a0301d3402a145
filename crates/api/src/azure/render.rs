//! Key Vault's shapes built from the kv domain's neutral views: SecretBundle, SecretItem,
//! DeletedSecretBundle / DeletedSecretItem. Times are unix seconds; ids carry the request's
//! scheme and host and the stored spelling of the name.

use super::error::AzureError;
use super::Ctx;
use coffer_core::error::CoreError;
use coffer_core::request::Response;
use coffer_engines::kv::domain::{SecretView, VersionView};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// What a secret deleted through Key Vault is kept for, and what that is called.
pub const RECOVERABLE_DAYS: u32 = 90;
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
const CUSTOMIZED_LEVEL: &str = "CustomizedRecoverable+Purgeable";

/// A typed kv answer.
pub fn view<T: DeserializeOwned>(resp: Response) -> Result<T, AzureError> {
    let data = resp.data.unwrap_or_default();
    serde_json::from_value(Value::Object(data))
        .map_err(|_| AzureError::from_core(&CoreError::internal("unexpected kv answer")))
}

/// RFC 3339 → unix seconds.
pub fn unix(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// How long a secret stays recoverable, in days.
pub fn recoverable_days(secret: Option<&SecretView>) -> u32 {
    secret
        .and_then(|s| s.retention_days)
        .filter(|d| (7..=90).contains(d))
        .unwrap_or(RECOVERABLE_DAYS)
}

/// A version's `attributes`.
pub fn attributes(v: &VersionView, secret: Option<&SecretView>) -> Value {
    let mut a = Map::new();
    a.insert("enabled".into(), Value::from(v.enabled));
    if let Some(nbf) = v.not_before {
        a.insert("nbf".into(), Value::from(nbf));
    }
    if let Some(exp) = v.expires {
        a.insert("exp".into(), Value::from(exp));
    }
    let created = unix(&v.created_time);
    let updated = v.updated_time.as_deref().and_then(unix).or(created);
    if let Some(c) = created {
        a.insert("created".into(), Value::from(c));
    }
    if let Some(u) = updated {
        a.insert("updated".into(), Value::from(u));
    }
    let days = recoverable_days(secret);
    let level = if days == RECOVERABLE_DAYS {
        RECOVERY_LEVEL
    } else {
        CUSTOMIZED_LEVEL
    };
    a.insert("recoveryLevel".into(), Value::from(level));
    a.insert("recoverableDays".into(), Value::from(days));
    Value::Object(a)
}

/// `contentType` and `tags` of a version, when it has them.
fn content_type_and_tags(v: &VersionView, out: &mut Map<String, Value>) {
    if let Some(ct) = &v.content_type {
        out.insert("contentType".into(), Value::from(ct.clone()));
    }
    if !v.tags.is_empty() {
        out.insert("tags".into(), json!(v.tags));
    }
}

impl Ctx<'_> {
    /// `https://<host>/secrets/<Name>[/<version>]`.
    pub fn secret_id(&self, name: &str, version: Option<&VersionView>) -> String {
        match version {
            Some(v) => format!("{}/secrets/{name}/{}", self.base, v.id_hex()),
            None => format!("{}/secrets/{name}", self.base),
        }
    }

    /// A SecretBundle; `value` only for set and get.
    pub fn bundle(
        &self,
        name: &str,
        v: &VersionView,
        secret: Option<&SecretView>,
        value: Option<String>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(value) = value {
            out.insert("value".into(), Value::from(value));
        }
        out.insert("id".into(), Value::from(self.secret_id(name, Some(v))));
        content_type_and_tags(v, &mut out);
        out.insert("attributes".into(), attributes(v, secret));
        out
    }

    /// A SecretItem of a secret (its latest version's properties; the id has no version).
    pub fn item(&self, s: &SecretView) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), Value::from(self.secret_id(&s.name, None)));
        match latest(s) {
            Some(v) => {
                content_type_and_tags(v, &mut out);
                out.insert("attributes".into(), attributes(v, Some(s)));
            }
            None => {
                // a secret created without a version (through AWS)
                let v = VersionView {
                    created_time: s.created_time.clone(),
                    updated_time: Some(s.updated_time.clone()),
                    enabled: true,
                    ..Default::default()
                };
                out.insert("attributes".into(), attributes(&v, Some(s)));
            }
        }
        out
    }

    /// A SecretItem of one version (the id has the version).
    pub fn version_item(&self, s: &SecretView, v: &VersionView) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), Value::from(self.secret_id(&s.name, Some(v))));
        content_type_and_tags(v, &mut out);
        out.insert("attributes".into(), attributes(v, Some(s)));
        out
    }

    /// `recoveryId`, `deletedDate` and `scheduledPurgeDate` of a deleted secret.
    pub fn deletion_fields(&self, s: &SecretView, out: &mut Map<String, Value>) {
        out.insert(
            "recoveryId".into(),
            Value::from(format!("{}/deletedsecrets/{}", self.base, s.name)),
        );
        if let Some(d) = &s.deletion {
            if let Some(t) = unix(&d.deleted_time) {
                out.insert("deletedDate".into(), Value::from(t));
            }
            if let Some(t) = d.scheduled_purge_time.as_deref().and_then(unix) {
                out.insert("scheduledPurgeDate".into(), Value::from(t));
            }
        }
    }

    /// A DeletedSecretBundle (the latest version's id and properties).
    pub fn deleted_bundle(&self, s: &SecretView) -> Map<String, Value> {
        let mut out = match latest(s) {
            Some(v) => self.bundle(&s.name, v, Some(s), None),
            None => self.item(s),
        };
        self.deletion_fields(s, &mut out);
        out
    }

    /// A DeletedSecretItem.
    pub fn deleted_item(&self, s: &SecretView) -> Map<String, Value> {
        let mut out = self.item(s);
        self.deletion_fields(s, &mut out);
        out
    }
}

/// The latest version of a secret: the one holding `AWSCURRENT` (its highest number unless
/// staging labels say otherwise, e.g. during a rotation).
pub fn latest(s: &SecretView) -> Option<&VersionView> {
    s.versions
        .iter()
        .find(|v| v.staging_labels.iter().any(|l| l == "AWSCURRENT"))
        .or_else(|| s.versions.iter().find(|v| v.number == s.current_version))
        .or_else(|| s.versions.last())
}
