//! The Vault dialect's rendering of the kv engine's typed results (`Response.kind` = `kv.*`):
//! the bodies Vault's KV v1 and v2 answer with. The engine decides; this only shapes.
//!
//! | kind         | Vault body (`data` of the envelope)                                      |
//! |--------------|--------------------------------------------------------------------------|
//! | `kv.version` | with a payload: `{data, metadata}`; soft-deleted or destroyed: 404 with    |
//! |              | `{data: null, metadata}` (a patch: 404 with the metadata block alone);    |
//! |              | otherwise (a write): the metadata block                                   |
//! | `kv.subkeys` | `{subkeys, metadata}`; gone: 404 with `{subkeys: null, metadata}`          |
//! | `kv.secret`  | the `metadata/<path>` body                                                |
//! | `kv.config`  | the `config` body                                                         |
//! | `kv.list`    | `{keys}`                                                                  |
//! | `kv.entry`   | the kv v1 object as stored                                                |

use axum::http::StatusCode;
use coffer_core::request::{Operation, Response};
use coffer_engines::kv::domain::{
    ConfigView, ListPage, SecretView, SubkeysView, VersionView, KIND_CONFIG, KIND_ENTRY, KIND_LIST,
    KIND_SECRET, KIND_SUBKEYS, KIND_VERSION,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Render `resp` (whose `kind` starts with `kv.`) in Vault's shape, in place; returns the HTTP
/// status to answer with. `operation` is the request's.
pub fn render(resp: &mut Response, operation: Operation) -> StatusCode {
    let kind = resp.kind.take();
    let Some(data) = resp.data.take() else {
        return StatusCode::OK;
    };
    let (status, body) = match kind.as_deref() {
        Some(KIND_VERSION) => version(data, operation),
        Some(KIND_SUBKEYS) => match parse::<SubkeysView>(data) {
            Ok(s) => subkeys(s),
            Err(e) => return failed(resp, e),
        },
        Some(KIND_SECRET) => match parse::<SecretView>(data) {
            Ok(s) => (StatusCode::OK, metadata(&s)),
            Err(e) => return failed(resp, e),
        },
        Some(KIND_CONFIG) => match parse::<ConfigView>(data) {
            Ok(c) => (StatusCode::OK, config(&c)),
            Err(e) => return failed(resp, e),
        },
        Some(KIND_LIST) => match parse::<ListPage>(data) {
            Ok(l) => {
                let mut m = Map::new();
                m.insert("keys".into(), Value::from(l.keys));
                (StatusCode::OK, m)
            }
            Err(e) => return failed(resp, e),
        },
        // kv v1: the entry is the body; unknown kv kinds pass through as they are
        Some(KIND_ENTRY) | Some(_) | None => (StatusCode::OK, data),
    };
    resp.data = Some(body);
    status
}

fn parse<T: DeserializeOwned>(data: Map<String, Value>) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::Object(data))
}

fn failed(resp: &mut Response, e: serde_json::Error) -> StatusCode {
    // the message names a field or position, never a value of the payload
    tracing::error!(error = %e.classify_kind(), "could not render a kv result");
    resp.data = None;
    resp.warnings.clear();
    StatusCode::INTERNAL_SERVER_ERROR
}

trait ClassifyKind {
    fn classify_kind(&self) -> &'static str;
}

impl ClassifyKind for serde_json::Error {
    fn classify_kind(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "the result does not match its kind",
            _ => "the result is not valid JSON",
        }
    }
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

/// `custom_metadata` as Vault renders it: `null` when empty.
fn custom_metadata(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// The per-version metadata block of Vault's data read / write responses.
pub fn version_block(v: &VersionView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("created_time".into(), Value::String(v.created_time.clone()));
    m.insert(
        "custom_metadata".into(),
        custom_metadata(&v.custom_metadata),
    );
    m.insert(
        "deletion_time".into(),
        Value::String(v.deletion_time.clone().unwrap_or_default()),
    );
    m.insert("destroyed".into(), Value::Bool(v.destroyed));
    m.insert("version".into(), Value::from(v.number));
    m
}

/// The metadata block from a `kv.version` answer's members (moved out of it).
fn version_block_of(m: &mut Map<String, Value>) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert(
        "created_time".into(),
        m.remove("created_time")
            .unwrap_or(Value::String(String::new())),
    );
    b.insert(
        "custom_metadata".into(),
        match m.remove("custom_metadata") {
            Some(Value::Object(c)) if !c.is_empty() => Value::Object(c),
            _ => Value::Null,
        },
    );
    b.insert(
        "deletion_time".into(),
        match m.remove("deletion_time") {
            Some(t @ Value::String(_)) => t,
            _ => Value::String(String::new()),
        },
    );
    b.insert(
        "destroyed".into(),
        Value::Bool(m.get("destroyed").and_then(Value::as_bool).unwrap_or(false)),
    );
    b.insert(
        "version".into(),
        m.get("number").cloned().unwrap_or(Value::from(0)),
    );
    b
}

/// A `kv.version` answer in Vault's shape, from its members (no typed round trip: reads are the
/// hot path, and the payload moves into the answer without a copy).
fn version(mut v: Map<String, Value>, operation: Operation) -> (StatusCode, Map<String, Value>) {
    let block = version_block_of(&mut v);
    let payload = match (v.remove("data"), v.remove("value")) {
        (Some(Value::Object(d)), _) => Some(d),
        (_, Some(value @ Value::String(_))) => {
            // anything that is not a JSON object reads as {"value": "<text or base64>"}
            let mut m = Map::new();
            m.insert("value".into(), value);
            Some(m)
        }
        _ => None,
    };
    if let Some(data) = payload {
        let mut m = Map::new();
        m.insert("data".into(), Value::Object(data));
        m.insert("metadata".into(), Value::Object(block));
        return (StatusCode::OK, m);
    }
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("deleted") || flag("destroyed") {
        if operation == Operation::Patch {
            return (StatusCode::NOT_FOUND, block);
        }
        let mut m = Map::new();
        m.insert("data".into(), Value::Null);
        m.insert("metadata".into(), Value::Object(block));
        return (StatusCode::NOT_FOUND, m);
    }
    (StatusCode::OK, block)
}

fn subkeys(s: SubkeysView) -> (StatusCode, Map<String, Value>) {
    let block = version_block(&s.version);
    let status = if s.subkeys.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut m = Map::new();
    m.insert(
        "subkeys".into(),
        s.subkeys.map(Value::Object).unwrap_or(Value::Null),
    );
    m.insert("metadata".into(), Value::Object(block));
    (status, m)
}

/// The body of a Vault `metadata/<path>` read.
pub fn metadata(s: &SecretView) -> Map<String, Value> {
    let versions: Map<String, Value> = s
        .versions
        .iter()
        .map(|v| {
            (
                v.number.to_string(),
                serde_json::json!({
                    "created_time": v.created_time,
                    "deletion_time": v.deletion_time.clone().unwrap_or_default(),
                    "destroyed": v.destroyed,
                }),
            )
        })
        .collect();
    let mut m = Map::new();
    m.insert("cas_required".into(), Value::Bool(s.cas_required));
    m.insert("created_time".into(), Value::String(s.created_time.clone()));
    m.insert("current_version".into(), Value::from(s.current_version));
    m.insert(
        "custom_metadata".into(),
        custom_metadata(&s.custom_metadata),
    );
    m.insert(
        "delete_version_after".into(),
        Value::String(go_duration(
            i64::try_from(s.delete_version_after_secs).unwrap_or(i64::MAX),
        )),
    );
    m.insert("max_versions".into(), Value::from(s.max_versions));
    m.insert("oldest_version".into(), Value::from(s.oldest_version));
    m.insert("updated_time".into(), Value::String(s.updated_time.clone()));
    m.insert("versions".into(), Value::Object(versions));
    m
}

fn config(c: &ConfigView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cas_required".into(), Value::Bool(c.cas_required));
    m.insert(
        "delete_version_after".into(),
        Value::String(go_duration(c.delete_version_after)),
    );
    m.insert("max_versions".into(), Value::from(c.max_versions));
    m
}

#[cfg(test)]
#[path = "vault_kv_tests.rs"]
mod tests;
