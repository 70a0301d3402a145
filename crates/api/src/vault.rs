//! The Vault dialect: `/v1/...` with `X-Vault-Token`, JSON envelopes and `{"errors": [...]}`.

use crate::common::{
    bearer_token, body_limit, expects_continue, json_with_type, parse_json_object, percent_decode,
    query_map, read_body, RemoteAddr,
};
use axum::body::{Body, HttpBody};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use coffer_core::request::{Credential, Dialect, Operation, Request, Response};
use coffer_core::seal::InitParams;
use coffer_core::util::value_as_bool;
use coffer_core::Core;
use futures_util::FutureExt as _;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The Vault-dialect router: everything under `/v1/`.
pub fn router(core: Arc<Core>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(core)
}

/// Render a JSON body with `Content-Type` exactly `application/json` (hvac depends on it).
pub fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    json_with_type(status, body, "application/json")
}

pub fn error_response(status: StatusCode, messages: &[&str]) -> HttpResponse {
    json_response(status, &json!({ "errors": messages }))
}

/// The HTTP status Vault answers for an error code.
pub fn vault_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest
        | ErrorCode::CasMismatch
        | ErrorCode::AlreadyExists
        | ErrorCode::InvalidState
        | ErrorCode::Disabled
        | ErrorCode::NotInitialized
        | ErrorCode::AlreadyInitialized => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated | ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Sealed | ErrorCode::Standby => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::AuditFailed => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn core_error(e: &CoreError) -> HttpResponse {
    let status = vault_status(e.code);
    // Vault's own wording for the server's state, which clients match on
    match e.code {
        ErrorCode::Sealed => return error_response(status, &["Vault is sealed"]),
        ErrorCode::NotInitialized => return error_response(status, &["Vault is not initialized"]),
        ErrorCode::AlreadyInitialized => {
            return error_response(status, &["Vault is already initialized"])
        }
        _ => {}
    }
    if e.message.is_empty() {
        return error_response(status, &[]);
    }
    match e.code {
        // internal details (storage keys, record names) stay in the server log
        ErrorCode::Internal => {
            tracing::error!(error = %e.message, "request failed");
            error_response(status, &["internal error; see the server log"])
        }
        ErrorCode::AuditFailed => {
            tracing::error!(error = %e.message, "request refused: audit failed");
            error_response(status, &[e.message.as_str()])
        }
        _ => error_response(status, &[e.message.as_str()]),
    }
}

fn no_content() -> HttpResponse {
    let mut resp = HttpResponse::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The Vault token: `X-Vault-Token`, else `Authorization: Bearer`.
fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string());
    }
    bearer_token(headers)
}

/// Vault's legacy system endpoints that also copy `data`'s fields to the top level of the body
/// (clients of older Vault versions read them there).
fn data_at_top_level(path: &str, op: Operation) -> bool {
    let path = path.trim_end_matches('/');
    match path {
        "sys/mounts" | "sys/auth" | "sys/audit" | "sys/leader" => op == Operation::Read,
        "sys/policy" => matches!(op, Operation::Read | Operation::List),
        "sys/capabilities" | "sys/capabilities-self" | "sys/capabilities-accessor" => true,
        _ => {
            op == Operation::Read
                && path
                    .get(..11)
                    .is_some_and(|p| p.eq_ignore_ascii_case("sys/policy/"))
        }
    }
}

/// Vault's rekey, root-generation and decode-token endpoints answer their data as the whole body,
/// without the envelope.
fn answers_without_envelope(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "sys/rekey/init"
            | "sys/rekey/update"
            | "sys/rekey/verify"
            | "sys/generate-root/attempt"
            | "sys/generate-root/update"
            | "sys/decode-token"
    )
}

/// The Vault response envelope.
fn envelope(req_id: &str, resp: &Response, data_at_top_level: bool) -> Value {
    let mut body = Map::new();
    body.insert("request_id".into(), req_id.into());
    body.insert("lease_id".into(), resp.lease_id.clone().into());
    body.insert("renewable".into(), resp.renewable.into());
    body.insert("lease_duration".into(), resp.lease_duration.into());
    body.insert(
        "data".into(),
        resp.data.clone().map(Value::Object).unwrap_or(Value::Null),
    );
    body.insert(
        "wrap_info".into(),
        resp.wrap_info
            .as_ref()
            .and_then(|w| serde_json::to_value(w).ok())
            .unwrap_or(Value::Null),
    );
    body.insert(
        "warnings".into(),
        if resp.warnings.is_empty() {
            Value::Null
        } else {
            json!(resp.warnings)
        },
    );
    body.insert(
        "auth".into(),
        resp.auth
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(Value::Null),
    );
    body.insert("mount_type".into(), "".into());
    if data_at_top_level {
        if let Some(d) = &resp.data {
            for (k, v) in d {
                body.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Value::Object(body)
}

fn flag(q: &Map<String, Value>, key: &str) -> bool {
    q.get(key).and_then(value_as_bool).unwrap_or(false)
}

/// The status-code parameters of `sys/health` (Vault's names; those Coffer never uses are still
/// validated, as Vault does).
const HEALTH_CODE_PARAMS: &[&str] = &[
    "activecode",
    "standbycode",
    "drsecondarycode",
    "haunhealthycode",
    "performancestandbycode",
    "removedcode",
    "sealedcode",
    "uninitcode",
];

/// A caller-chosen health status: only final status codes 200–599 are honoured (a 1xx would turn
/// the answer into an interim response, and codes above 599 are not HTTP); any other value is a
/// 400 rather than a silent fallback, so a monitoring typo is noticed.
fn code_param(
    q: &Map<String, Value>,
    key: &str,
    default: StatusCode,
) -> Result<StatusCode, String> {
    let Some(v) = q.get(key) else {
        return Ok(default);
    };
    v.as_str()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| format!("invalid {key}: must be an HTTP status code from 200 to 599"))
}

async fn health(core: &Core, method: &Method, q: &Map<String, Value>) -> HttpResponse {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = error_response(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    // a bad code is refused even when another one would be used
    for key in HEALTH_CODE_PARAMS {
        if let Err(msg) = code_param(q, key, StatusCode::OK) {
            return error_response(StatusCode::BAD_REQUEST, &[msg.as_str()]);
        }
    }
    let code = |key: &str, default: StatusCode| code_param(q, key, default).unwrap_or(default);
    let initialized = match core.initialized().await {
        Ok(i) => i,
        Err(e) => return core_error(&e),
    };
    let sealed = core.is_sealed();
    let standby = !sealed && core.is_standby();
    let status = if !initialized {
        code("uninitcode", StatusCode::NOT_IMPLEMENTED)
    } else if sealed {
        code("sealedcode", StatusCode::SERVICE_UNAVAILABLE)
    } else if standby && !flag(q, "standbyok") {
        code("standbycode", StatusCode::TOO_MANY_REQUESTS)
    } else {
        code("activecode", StatusCode::OK)
    };
    if method == Method::HEAD {
        let mut resp = HttpResponse::new(Body::empty());
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    let body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": coffer_core::util::unix_now() as i64,
        "version": coffer_core::core::VERSION,
        "enterprise": false,
        "cluster_name": if sealed { Value::Null } else { "coffer-cluster".into() },
        "cluster_id": if sealed {
            Value::Null
        } else {
            core.seal_status()
                .await
                .ok()
                .and_then(|s| s.cluster_id)
                .map(Value::from)
                .unwrap_or(Value::Null)
        },
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    });
    json_response(status, &body)
}

fn usize_param(d: &Map<String, Value>, key: &str) -> Result<usize, CoreError> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => coffer_core::util::value_as_i64(v)
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| CoreError::invalid(format!("\"{key}\" must be a non-negative integer"))),
    }
}

async fn init(core: &Core, method: &Method, body: &Map<String, Value>) -> HttpResponse {
    match *method {
        Method::GET => match core.initialized().await {
            Ok(i) => json_response(StatusCode::OK, &json!({ "initialized": i })),
            Err(e) => core_error(&e),
        },
        Method::PUT | Method::POST => {
            for key in ["pgp_keys", "recovery_pgp_keys"] {
                if matches!(body.get(key), Some(Value::Array(a)) if !a.is_empty()) {
                    let msg = format!("{key} is not supported by Coffer");
                    return error_response(StatusCode::BAD_REQUEST, &[msg.as_str()]);
                }
            }
            if matches!(body.get("root_token_pgp_key"), Some(Value::String(s)) if !s.is_empty()) {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &["root_token_pgp_key is not supported by Coffer"],
                );
            }
            let params = match (|| -> Result<InitParams, CoreError> {
                Ok(InitParams {
                    secret_shares: usize_param(body, "secret_shares")?,
                    secret_threshold: usize_param(body, "secret_threshold")?,
                    recovery_shares: usize_param(body, "recovery_shares")?,
                    recovery_threshold: usize_param(body, "recovery_threshold")?,
                    root_token_id: None,
                })
            })() {
                Ok(p) => p,
                Err(e) => return core_error(&e),
            };
            match core.init(params).await {
                Ok(result) => json_response(StatusCode::OK, &json!(result)),
                Err(e) => core_error(&e),
            }
        }
        _ => error_response(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
    }
}

async fn seal_status(core: &Core) -> HttpResponse {
    match core.seal_status().await {
        Ok(s) => json_response(StatusCode::OK, &json!(s)),
        Err(e) => core_error(&e),
    }
}

async fn unseal(core: &Core, body: &Map<String, Value>) -> HttpResponse {
    let reset = body.get("reset").and_then(value_as_bool).unwrap_or(false);
    let key = match body.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return error_response(StatusCode::BAD_REQUEST, &["'key' must be a string"]),
    };
    match core.unseal(key, reset).await {
        Ok(s) => json_response(StatusCode::OK, &json!(s)),
        Err(e) => core_error(&e),
    }
}

pub(crate) async fn handle(State(core): State<Arc<Core>>, req: HttpRequest) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let Some(path) = parts.uri.path().strip_prefix("/v1/") else {
        return error_response(StatusCode::NOT_FOUND, &[]);
    };
    let path = percent_decode(path.trim_start_matches('/'));
    let method = parts.method.clone();
    let query = query_map(parts.uri.query());

    // health reads no body and works in every state
    if path == "sys/health" {
        return health(&core, &method, &query).await;
    }
    // every node answers who leads (a standby included), with no token
    if path.trim_end_matches('/') == "sys/leader" {
        if method != Method::GET {
            return error_response(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]);
        }
        return json_response(StatusCode::OK, &coffer_core::leader_json(&core));
    }

    let declared = body.size_hint().exact();
    let limit = body_limit(declared, async {
        match token_from(&parts.headers) {
            Some(t) if !t.is_empty() => core.token_is_valid(&t).await,
            _ => false,
        }
    })
    .await;
    let expects_continue = expects_continue(&parts.headers);
    let bytes = match read_body(body, limit, declared, expects_continue).await {
        Ok(b) => b,
        Err(e) => {
            // the rest of the body was not read: the connection cannot be reused
            let mut resp = core_error(&e);
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    let is_patch = method == Method::PATCH;
    if is_patch {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &["PATCH requires Content-Type application/merge-patch+json"],
            );
        }
    }
    let mut data = match parse_json_object(&bytes) {
        Ok(d) => d,
        Err(e) => return core_error(&e),
    };

    // endpoints that work while sealed
    match path.as_str() {
        "sys/seal-status" if method == Method::GET => return seal_status(&core).await,
        "sys/init" => return init(&core, &method, &data).await,
        "sys/unseal" if method == Method::PUT || method == Method::POST => {
            return unseal(&core, &data).await
        }
        _ => {}
    }

    let operation = match method.as_str() {
        "GET" if flag(&query, "list") => Operation::List,
        "GET" => Operation::Read,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        "LIST" => Operation::List,
        _ => return error_response(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
    };
    if matches!(
        operation,
        Operation::Read | Operation::List | Operation::Delete
    ) {
        for (k, v) in query {
            if k != "list" {
                data.entry(k).or_insert(v);
            }
        }
    }
    let path_for_shape = path.clone();
    let mut creq = Request::new(operation, path);
    creq.data = data;
    if let Some(t) = token_from(&parts.headers) {
        creq.credential = Credential::Token(t);
    }
    creq.remote_addr = parts.extensions.get::<RemoteAddr>().map(|r| r.0.ip());
    creq.dialect = Dialect::Vault;
    creq.wrap_ttl = parts
        .headers
        .get("x-vault-wrap-ttl")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let req_id = creq.id.clone();
    let handled = std::panic::AssertUnwindSafe(core.handle(creq))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(CoreError::internal("request handling panicked")));
    match handled {
        Ok(mut resp) => {
            // typed kv results are rendered in Vault's shapes
            let rendered = match resp.kind.as_deref() {
                Some(k) if k.starts_with("kv.") => crate::vault_kv::render(&mut resp, operation),
                _ => StatusCode::OK,
            };
            if rendered == StatusCode::INTERNAL_SERVER_ERROR {
                return error_response(rendered, &["internal error; see the server log"]);
            }
            if resp.is_empty() && rendered == StatusCode::OK {
                return no_content();
            }
            let status = if resp.accepted {
                StatusCode::ACCEPTED
            } else {
                rendered
            };
            if answers_without_envelope(&path_for_shape) {
                // Vault's rekey and root generation endpoints answer without an envelope
                let body = Value::Object(resp.data.unwrap_or_default());
                return json_response(status, &body);
            }
            let top = data_at_top_level(&path_for_shape, operation);
            json_response(status, &envelope(&req_id, &resp, top))
        }
        Err(e) => core_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let q = crate::common::query_map(Some("standbyok=True&list=true&x=0"));
        assert!(flag(&q, "standbyok"));
        assert!(flag(&q, "list"));
        assert!(!flag(&q, "x"));
    }
}
