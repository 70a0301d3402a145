//! Building audit entries in Vault's shape, with every secret value HMAC'd.

use super::device::Device;
use crate::request::{Operation, Request, Response};
use crate::token::TokenEntry;
use serde_json::{json, Map, Value};

/// What the core knows about one request when it audits it.
pub struct AuditInput<'a> {
    pub request: &'a Request,
    /// The operation after create/update resolution.
    pub operation: Operation,
    pub token: Option<&'a TokenEntry>,
    pub mount_type: &'a str,
    pub mount_accessor: &'a str,
    pub response: Option<&'a Response>,
    pub error: Option<&'a str>,
}

/// `hmac-sha256:<hex>` of `input` under `key`.
pub fn hmac_value(key: &aws_lc_rs::hmac::Key, input: &str) -> String {
    let tag = aws_lc_rs::hmac::sign(key, input.as_bytes());
    let mut out = String::with_capacity(12 + 64);
    out.push_str("hmac-sha256:");
    crate::util::push_hex(&mut out, tag.as_ref());
    out
}

/// Replace every string inside `v` with its HMAC (numbers, booleans and nulls stay).
fn hmac_tree(d: &Device, v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(d.hmac(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| hmac_tree(d, i)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), hmac_tree(d, v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn data_value(d: &Device, m: &Map<String, Value>) -> Value {
    let v = Value::Object(m.clone());
    if d.log_raw() {
        v
    } else {
        hmac_tree(d, &v)
    }
}

fn secret(d: &Device, s: &str) -> Value {
    if s.is_empty() {
        return Value::String(String::new());
    }
    if d.log_raw() {
        Value::String(s.to_string())
    } else {
        Value::String(d.hmac(s))
    }
}

fn accessor(d: &Device, s: &str) -> Value {
    if d.hmac_accessor() {
        secret(d, s)
    } else {
        Value::String(s.to_string())
    }
}

fn auth_block(
    d: &Device,
    input: &AuditInput<'_>,
    client_token: &Value,
    token_accessor: &Value,
) -> Value {
    match input.token {
        None => json!({
            "client_token": client_token,
            "token_type": "",
        }),
        Some(t) => {
            let mut policies = t.policies.clone();
            policies.sort();
            json!({
                "client_token": client_token,
                "accessor": token_accessor,
                "display_name": t.display_name,
                "policies": policies,
                "token_policies": policies,
                "metadata": if t.meta.is_empty() { Value::Null } else { data_value(d, &t.meta) },
                "entity_id": t.entity_id,
                "token_type": "service",
                "token_ttl": t.ttl,
                "token_issue_time": crate::util::format_unix(t.creation_time),
            })
        }
    }
}

/// Build the entry for one device (without `seq`, `prev_hash`, `hash`; the writer adds those).
pub(super) fn build(input: &AuditInput<'_>, response: bool, d: &Device) -> Map<String, Value> {
    let r = input.request;
    // each secret is HMAC'd once per entry, however often it appears
    let client_token = secret(d, r.token.as_deref().unwrap_or(""));
    let token_accessor = input
        .token
        .map(|t| accessor(d, &t.accessor))
        .unwrap_or(Value::String(String::new()));
    let mut request = json!({
        "id": r.id,
        "operation": input.operation.as_str(),
        "mount_type": input.mount_type,
        "mount_accessor": input.mount_accessor,
        "client_token": client_token,
        "client_token_accessor": token_accessor,
        "namespace": {"id": "root"},
        "path": r.path,
        "remote_address": r.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
    });
    if !r.data.is_empty() {
        request["data"] = data_value(d, &r.data);
    }
    if let Some(w) = &r.wrap_ttl {
        request["wrap_ttl"] = Value::String(w.clone());
    }
    let mut e = Map::new();
    e.insert(
        "type".into(),
        if response { "response" } else { "request" }.into(),
    );
    e.insert("time".into(), crate::util::now_rfc3339().into());
    e.insert(
        "auth".into(),
        auth_block(d, input, &client_token, &token_accessor),
    );
    e.insert("request".into(), request);
    e.insert("dialect".into(), dialect_name(r).into());
    if let Some(err) = input.error {
        e.insert("error".into(), err.into());
    }
    if response {
        let mut resp = Map::new();
        resp.insert("mount_type".into(), input.mount_type.into());
        resp.insert("mount_accessor".into(), input.mount_accessor.into());
        if let Some(out) = input.response {
            if let Some(data) = &out.data {
                let data = if d.elide_list_responses() && input.operation == Operation::List {
                    elide(data)
                } else {
                    data.clone()
                };
                resp.insert("data".into(), data_value(d, &data));
            }
            if let Some(a) = &out.auth {
                resp.insert(
                    "auth".into(),
                    json!({
                        "client_token": secret(d, &a.client_token),
                        "accessor": accessor(d, &a.accessor),
                        "policies": a.policies,
                        "token_policies": a.token_policies,
                        "metadata": a.metadata.as_ref().map(|m| data_value(d, m)).unwrap_or(Value::Null),
                        "token_type": a.token_type,
                        "token_ttl": a.lease_duration,
                    }),
                );
            }
            if !out.warnings.is_empty() {
                resp.insert("warnings".into(), json!(out.warnings));
            }
            if let Some(s) = out.status {
                resp.insert("status".into(), s.into());
            }
            if let Some(w) = &out.wrap_info {
                resp.insert(
                    "wrap_info".into(),
                    json!({
                        "token": secret(d, &w.token),
                        "accessor": accessor(d, &w.accessor),
                        "ttl": w.ttl,
                        "creation_time": w.creation_time,
                        "creation_path": w.creation_path,
                        "wrapped_accessor": accessor(d, &w.wrapped_accessor),
                    }),
                );
            }
        }
        e.insert("response".into(), Value::Object(resp));
    }
    e
}

fn dialect_name(r: &Request) -> &'static str {
    match r.dialect {
        crate::request::Dialect::Vault => "vault",
        crate::request::Dialect::Aws => "aws",
        crate::request::Dialect::Azure => "azure",
        crate::request::Dialect::Internal => "internal",
    }
}

/// `elide_list_responses`: replace list keys by their count.
fn elide(data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = data.clone();
    if let Some(Value::Array(keys)) = data.get("keys") {
        out.insert("keys".into(), keys.len().into());
    }
    if let Some(Value::Object(info)) = data.get("key_info") {
        out.insert("key_info".into(), info.len().into());
    }
    out
}
