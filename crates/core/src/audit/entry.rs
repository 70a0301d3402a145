//! Building audit entries in Vault's shape, with every secret value HMAC'd.

use super::device::Device;
use crate::request::{Operation, Request, Response};
use crate::token::TokenEntry;
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

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

#[cfg(test)]
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

#[cfg(test)]
fn data_value(d: &Device, m: &Map<String, Value>) -> Value {
    let v = Value::Object(m.clone());
    if d.log_raw() {
        v
    } else {
        hmac_tree(d, &v)
    }
}

#[cfg(test)]
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

#[cfg(test)]
fn accessor(d: &Device, s: &str) -> Value {
    if d.hmac_accessor() {
        secret(d, s)
    } else {
        Value::String(s.to_string())
    }
}

#[cfg(test)]
fn auth_block(
    d: &Device,
    input: &AuditInput<'_>,
    client_token: &Value,
    token_accessor: &Value,
) -> Value {
    match input.token {
        None => json!({
            "client_token": client_token,
            "credential_type": credential_type(input.request),
            "token_type": "",
        }),
        Some(t) => {
            let mut policies = t.policies.clone();
            policies.sort();
            json!({
                "client_token": client_token,
                "credential_type": credential_type(input.request),
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

/// Build the entry for one device as a JSON map (without `seq`, `prev_hash`, `hash`). This is
/// the reference form of an entry: [`write_body`] must produce exactly its serialization.
#[cfg(test)]
pub(super) fn build(
    input: &AuditInput<'_>,
    response: bool,
    d: &Device,
    time: &str,
) -> Map<String, Value> {
    let r = input.request;
    // each secret is HMAC'd once per entry, however often it appears
    let client_token = secret(d, r.token().unwrap_or(""));
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
    if let Some(name) = &r.operation_name {
        request["operation_name"] = Value::String(name.clone());
    }
    if let Some(w) = &r.wrap_ttl {
        request["wrap_ttl"] = Value::String(w.clone());
    }
    let mut e = Map::new();
    e.insert(
        "type".into(),
        if response { "response" } else { "request" }.into(),
    );
    e.insert("time".into(), time.into());
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
            if out.accepted {
                resp.insert("accepted".into(), true.into());
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

/// What kind of credential the caller presented.
fn credential_type(r: &Request) -> &'static str {
    match r.credential {
        crate::request::Credential::None => "none",
        crate::request::Credential::Token(_) => "token",
        crate::request::Credential::Signed(_) => "signed",
        crate::request::Credential::Internal(_) => "internal",
    }
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

// ---- the writer: the same entry, written straight into bytes -------------------------------
//
// Keys are written in the order serde_json's `Map` keeps them (sorted), values with serde_json's
// own escaping, so the bytes equal `serde_json::to_vec(&build(..))` (tested below). That is what
// `coffer audit verify` re-serializes and hashes.

fn put_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Start a key: a comma unless it is the object's first key.
fn put_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    put_str(out, key);
    out.push(b':');
}

fn put_hmac(out: &mut Vec<u8>, d: &Device, s: &str) {
    let tag = aws_lc_rs::hmac::sign(d.salt(), s.as_bytes());
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\"hmac-sha256:");
    for b in tag.as_ref() {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0x0f) as usize]);
    }
    out.push(b'"');
}

/// A secret string: empty stays empty, else its HMAC (or itself with `log_raw`).
fn put_secret(out: &mut Vec<u8>, d: &Device, s: &str) {
    if s.is_empty() || d.log_raw() {
        put_str(out, s);
    } else {
        put_hmac(out, d, s);
    }
}

fn put_accessor(out: &mut Vec<u8>, d: &Device, s: &str) {
    if d.hmac_accessor() {
        put_secret(out, d, s);
    } else {
        put_str(out, s);
    }
}

/// A data value with every string HMAC'd (unless `log_raw`).
fn put_data(out: &mut Vec<u8>, d: &Device, v: &Value) {
    match v {
        Value::String(s) if !d.log_raw() => put_hmac(out, d, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                put_data(out, d, item);
            }
            out.push(b']');
        }
        Value::Object(m) => put_data_map(out, d, m),
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

fn put_data_map(out: &mut Vec<u8>, d: &Device, m: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in m {
        put_key(out, &mut first, k);
        put_data(out, d, v);
    }
    out.push(b'}');
}

fn put_str_list<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, s.as_ref());
    }
    out.push(b']');
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Write the entry for one device (without `seq`, `prev_hash`, `hash`) as compact JSON.
pub(super) fn write_body(
    input: &AuditInput<'_>,
    response: bool,
    d: &Device,
    time: &str,
    out: &mut Vec<u8>,
) {
    let r = input.request;
    let token = r.token().unwrap_or("");
    // each secret is HMAC'd once per entry, however often it appears
    let mut client_token = Vec::with_capacity(80);
    put_secret(&mut client_token, d, token);
    let mut token_accessor = Vec::with_capacity(80);
    match input.token {
        Some(t) => put_accessor(&mut token_accessor, d, &t.accessor),
        None => put_str(&mut token_accessor, ""),
    }

    out.push(b'{');
    let mut first = true;
    // auth
    put_key(out, &mut first, "auth");
    out.push(b'{');
    let mut f = true;
    match input.token {
        None => {
            put_key(out, &mut f, "client_token");
            out.extend_from_slice(&client_token);
            put_key(out, &mut f, "credential_type");
            put_str(out, credential_type(r));
            put_key(out, &mut f, "token_type");
            put_str(out, "");
        }
        Some(t) => {
            let mut policies = t.policies.clone();
            policies.sort();
            put_key(out, &mut f, "accessor");
            out.extend_from_slice(&token_accessor);
            put_key(out, &mut f, "client_token");
            out.extend_from_slice(&client_token);
            put_key(out, &mut f, "credential_type");
            put_str(out, credential_type(r));
            put_key(out, &mut f, "display_name");
            put_str(out, &t.display_name);
            put_key(out, &mut f, "entity_id");
            put_str(out, &t.entity_id);
            put_key(out, &mut f, "metadata");
            if t.meta.is_empty() {
                out.extend_from_slice(b"null");
            } else {
                put_data_map(out, d, &t.meta);
            }
            put_key(out, &mut f, "policies");
            put_str_list(out, &policies);
            put_key(out, &mut f, "token_issue_time");
            put_str(out, &crate::util::format_unix(t.creation_time));
            put_key(out, &mut f, "token_policies");
            put_str_list(out, &policies);
            put_key(out, &mut f, "token_ttl");
            put_u64(out, t.ttl);
            put_key(out, &mut f, "token_type");
            put_str(out, "service");
        }
    }
    out.push(b'}');
    put_key(out, &mut first, "dialect");
    put_str(out, dialect_name(r));
    if let Some(err) = input.error {
        put_key(out, &mut first, "error");
        put_str(out, err);
    }
    // request
    put_key(out, &mut first, "request");
    out.push(b'{');
    let mut f = true;
    put_key(out, &mut f, "client_token");
    out.extend_from_slice(&client_token);
    put_key(out, &mut f, "client_token_accessor");
    out.extend_from_slice(&token_accessor);
    if !r.data.is_empty() {
        put_key(out, &mut f, "data");
        put_data_map(out, d, &r.data);
    }
    put_key(out, &mut f, "id");
    put_str(out, &r.id);
    put_key(out, &mut f, "mount_accessor");
    put_str(out, input.mount_accessor);
    put_key(out, &mut f, "mount_type");
    put_str(out, input.mount_type);
    put_key(out, &mut f, "namespace");
    out.extend_from_slice(b"{\"id\":\"root\"}");
    put_key(out, &mut f, "operation");
    put_str(out, input.operation.as_str());
    if let Some(name) = &r.operation_name {
        put_key(out, &mut f, "operation_name");
        put_str(out, name);
    }
    put_key(out, &mut f, "path");
    put_str(out, &r.path);
    put_key(out, &mut f, "remote_address");
    put_str(
        out,
        &r.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
    );
    if let Some(w) = &r.wrap_ttl {
        put_key(out, &mut f, "wrap_ttl");
        put_str(out, w);
    }
    out.push(b'}');
    // response
    if response {
        put_key(out, &mut first, "response");
        out.push(b'{');
        let mut f = true;
        let resp = input.response;
        if resp.is_some_and(|o| o.accepted) {
            put_key(out, &mut f, "accepted");
            out.extend_from_slice(b"true");
        }
        if let Some(a) = resp.and_then(|o| o.auth.as_ref()) {
            put_key(out, &mut f, "auth");
            out.push(b'{');
            let mut g = true;
            put_key(out, &mut g, "accessor");
            put_accessor(out, d, &a.accessor);
            put_key(out, &mut g, "client_token");
            put_secret(out, d, &a.client_token);
            put_key(out, &mut g, "metadata");
            match &a.metadata {
                Some(m) => put_data_map(out, d, m),
                None => out.extend_from_slice(b"null"),
            }
            put_key(out, &mut g, "policies");
            put_str_list(out, &a.policies);
            put_key(out, &mut g, "token_policies");
            put_str_list(out, &a.token_policies);
            put_key(out, &mut g, "token_ttl");
            put_u64(out, a.lease_duration);
            put_key(out, &mut g, "token_type");
            put_str(out, &a.token_type);
            out.push(b'}');
        }
        if let Some(data) = resp.and_then(|o| o.data.as_ref()) {
            put_key(out, &mut f, "data");
            if d.elide_list_responses() && input.operation == Operation::List {
                put_data_map(out, d, &elide(data));
            } else {
                put_data_map(out, d, data);
            }
        }
        put_key(out, &mut f, "mount_accessor");
        put_str(out, input.mount_accessor);
        put_key(out, &mut f, "mount_type");
        put_str(out, input.mount_type);
        if let Some(o) = resp {
            if !o.warnings.is_empty() {
                put_key(out, &mut f, "warnings");
                put_str_list(out, &o.warnings);
            }
            if let Some(w) = &o.wrap_info {
                put_key(out, &mut f, "wrap_info");
                out.push(b'{');
                let mut g = true;
                put_key(out, &mut g, "accessor");
                put_accessor(out, d, &w.accessor);
                put_key(out, &mut g, "creation_path");
                put_str(out, &w.creation_path);
                put_key(out, &mut g, "creation_time");
                put_str(out, &w.creation_time);
                put_key(out, &mut g, "token");
                put_secret(out, d, &w.token);
                put_key(out, &mut g, "ttl");
                put_u64(out, w.ttl);
                put_key(out, &mut g, "wrapped_accessor");
                put_accessor(out, d, &w.wrapped_accessor);
                out.push(b'}');
            }
        }
        out.push(b'}');
    }
    put_key(out, &mut first, "time");
    put_str(out, time);
    put_key(out, &mut first, "type");
    put_str(out, if response { "response" } else { "request" });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DeviceConfig;
    use crate::request::{AuthInfo, Dialect, WrapInfo};
    use serde_json::json;

    fn device(options: Value) -> Device {
        let Value::Object(options) = options else {
            unreachable!()
        };
        Device::broken(
            DeviceConfig {
                path: "t/".into(),
                kind: "file".into(),
                description: String::new(),
                options,
                local: false,
                salt: "33".repeat(32),
                chain_key: "44".repeat(32),
                seq: 0,
                last_hash: String::new(),
            },
            "test".into(),
        )
    }

    fn token() -> TokenEntry {
        serde_json::from_value(json!({
            "hash": "h", "accessor": "acc-123", "policies": ["zeta", "default"],
            "meta": {"app": "web", "n": "1"}, "display_name": "token-x", "creation_time": 1700000000.25,
            "ttl": 3600, "path": "auth/token/create"
        }))
        .unwrap()
    }

    /// The byte writer and the reference map agree for every shape an entry takes.
    #[test]
    fn writer_matches_reference_serialization() {
        let mut req = Request::new(Operation::Update, "secret/data/a\"b\\c/ü");
        req.credential = crate::request::Credential::Token("hvs.secret-token".into());
        req.data = json!({
            "data": {"pw": "s3cr3t\n\"quoted\"", "n": 5, "f": 1.5, "b": true, "z": null, "e": "",
                     "list": ["x", 2, {"k": "v"}]},
            "options": {"cas": 3}
        })
        .as_object()
        .cloned()
        .unwrap();
        req.remote_addr = Some("127.0.0.1".parse().unwrap());
        req.wrap_ttl = Some("60s".into());
        let tok = token();
        let full = Response {
            data: json!({"keys": ["a", "b/"], "key_info": {"a": {}}, "t": "2024-01-01T00:00:00Z"})
                .as_object()
                .cloned(),
            auth: Some(AuthInfo {
                client_token: "hvs.child".into(),
                accessor: "acc-child".into(),
                policies: vec!["b".into(), "a".into()],
                token_policies: vec!["b".into(), "a".into()],
                metadata: json!({"role_name": "web"}).as_object().cloned(),
                lease_duration: 60,
                token_type: "service".into(),
                ..Default::default()
            }),
            warnings: vec!["careful".into()],
            accepted: true,
            wrap_info: Some(WrapInfo {
                token: "hvs.wrap".into(),
                accessor: "wacc".into(),
                ttl: 60,
                creation_time: "2024".into(),
                creation_path: "p".into(),
                wrapped_accessor: "".into(),
            }),
            ..Default::default()
        };
        let devices = [
            device(json!({})),
            device(json!({"log_raw": "true"})),
            device(json!({"hmac_accessor": false, "elide_list_responses": true})),
        ];
        for d in &devices {
            for (operation, token, response, error, dialect) in [
                (
                    Operation::Update,
                    Some(&tok),
                    Some(&full),
                    None,
                    Dialect::Vault,
                ),
                (Operation::List, Some(&tok), Some(&full), None, Dialect::Aws),
                (
                    Operation::Read,
                    None,
                    None,
                    Some("permission denied"),
                    Dialect::Azure,
                ),
                (
                    Operation::Read,
                    Some(&tok),
                    Some(&Response::default()),
                    None,
                    Dialect::Internal,
                ),
            ] {
                let mut r = req.clone();
                r.dialect = dialect;
                if dialect == Dialect::Aws {
                    // a signed request, with the dialect's own operation name
                    r.credential =
                        crate::request::Credential::Signed(crate::request::SignedProof {
                            access_key_id: "AKIAEXAMPLE".into(),
                            string_to_sign: "AWS4-HMAC-SHA256\n...".into(),
                            signature: "00ff".into(),
                            scope: crate::request::SigningScope {
                                date: "20261201".into(),
                                region: "us-east-1".into(),
                                service: "secretsmanager".into(),
                            },
                            security_token: None,
                        });
                    r.operation_name = Some("secretsmanager.GetSecretValue".into());
                }
                if dialect == Dialect::Internal {
                    r.credential = crate::request::Credential::None;
                }
                let input = AuditInput {
                    request: &r,
                    operation,
                    token,
                    mount_type: "kv",
                    mount_accessor: "kv_1234",
                    response,
                    error,
                };
                for resp in [false, true] {
                    let reference = serde_json::to_vec(&build(&input, resp, d, "T")).unwrap();
                    let mut written = Vec::new();
                    write_body(&input, resp, d, "T", &mut written);
                    assert_eq!(
                        String::from_utf8(written).unwrap(),
                        String::from_utf8(reference).unwrap()
                    );
                }
            }
        }
    }
}
