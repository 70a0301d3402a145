//! The Vault dialect: `/v1/...` with `X-Vault-Token`, JSON envelopes and `{"errors": [...]}`.

use crate::MAX_REQUEST_SIZE;
use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use coffer_core::request::{Dialect, Operation, Request, Response};
use coffer_core::seal::InitParams;
use coffer_core::util::value_as_bool;
use coffer_core::Core;
use futures_util::FutureExt as _;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// The peer address of a connection, attached to each request by the listener.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

/// The Vault-dialect router: everything under `/v1/`.
pub fn router(core: Arc<Core>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(core)
}

/// Render a JSON body with `Content-Type` exactly `application/json` (hvac depends on it).
pub fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = HttpResponse::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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
        ErrorCode::Sealed => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::AuditFailed => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn core_error(e: &CoreError) -> HttpResponse {
    let status = vault_status(e.code);
    if e.code == ErrorCode::Sealed {
        // Vault's own wording, which clients match on
        return error_response(status, &["Vault is sealed"]);
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

/// Read the body, refusing more than [`MAX_REQUEST_SIZE`].
async fn read_body(mut body: Body) -> Result<Bytes, CoreError> {
    let mut buf = bytes::BytesMut::new();
    let mut too_large = false;
    let mut discarded = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| CoreError::invalid("failed to read request body"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if too_large {
            // read (and drop) a bounded rest, so the client gets to read our 413 instead of a
            // reset connection; beyond that the connection is simply closed
            discarded += data.len();
            if discarded > MAX_DRAIN {
                break;
            }
        } else if buf.len() + data.len() > MAX_REQUEST_SIZE {
            too_large = true;
            buf = bytes::BytesMut::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        return Err(CoreError::new(
            ErrorCode::PayloadTooLarge,
            "http: request body too large",
        ));
    }
    Ok(buf.freeze())
}

/// How much of an oversized body is read and dropped before answering 413.
const MAX_DRAIN: usize = 8 * 1024 * 1024;

/// Parse a JSON object body; an empty body is an empty object.
fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, CoreError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(CoreError::invalid(
            "failed to parse JSON input: request body must be a JSON object",
        )),
        // serde's message names the position, never the content
        Err(e) => Err(CoreError::invalid(format!(
            "failed to parse JSON input: {}",
            e.classify_message()
        ))),
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        match self.classify() {
            serde_json::error::Category::Eof => "unexpected EOF".into(),
            serde_json::error::Category::Syntax => format!(
                "invalid character at line {} column {}",
                self.line(),
                self.column()
            ),
            serde_json::error::Category::Data => "invalid data".into(),
            serde_json::error::Category::Io => "read error".into(),
        }
    }
}

fn query_map(query: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded_pairs(q) {
            m.insert(k, Value::String(v));
        }
    }
    m
}

/// Minimal `application/x-www-form-urlencoded` query parsing (percent-decoding, `+` as space).
fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_part(k), decode_query_part(v))
        })
        .collect()
}

/// Decode a query-string component (`+` is a space there).
fn decode_query_part(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Percent-decode a URL path (a `+` stays a `+`: it is only a space in query strings).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// The Vault response envelope.
fn envelope(req_id: &str, resp: &Response) -> Value {
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
    if resp.data_at_top_level {
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

fn code_param(q: &Map<String, Value>, key: &str, default: u16) -> StatusCode {
    q.get(key)
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::from_u16(default).unwrap_or(StatusCode::OK))
}

async fn health(core: &Core, method: &Method, q: &Map<String, Value>) -> HttpResponse {
    let initialized = match core.initialized().await {
        Ok(i) => i,
        Err(e) => return core_error(&e),
    };
    let sealed = core.is_sealed();
    let status = if !initialized {
        code_param(q, "uninitcode", 501)
    } else if sealed {
        code_param(q, "sealedcode", 503)
    } else {
        code_param(q, "activecode", 200)
    };
    let _ = flag(q, "standbyok");
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
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": coffer_core::util::unix_now() as i64,
        "version": coffer_core::core::VERSION,
        "enterprise": false,
        "cluster_name": if sealed { Value::Null } else { "coffer-cluster".into() },
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

async fn handle(State(core): State<Arc<Core>>, req: HttpRequest) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let Some(path) = parts.uri.path().strip_prefix("/v1/") else {
        return error_response(StatusCode::NOT_FOUND, &[]);
    };
    let path = percent_decode(path.trim_start_matches('/'));
    let method = parts.method.clone();
    let query = query_map(parts.uri.query());

    let bytes = match read_body(body).await {
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
    let mut data = match parse_body(&bytes) {
        Ok(d) => d,
        Err(e) => return core_error(&e),
    };

    // endpoints that work while sealed
    match path.as_str() {
        "sys/health" => return health(&core, &method, &query).await,
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
    let mut creq = Request::new(operation, path);
    creq.data = data;
    creq.token = token_from(&parts.headers);
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
            let status = resp
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(rendered);
            json_response(status, &envelope(&req_id, &resp))
        }
        Err(e) => core_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b+c");
        assert_eq!(decode_query_part("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("x%20"), "x ");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let q = query_map(Some("standbyok=True&list=true"));
        assert!(flag(&q, "standbyok"));
        assert!(flag(&q, "list"));
    }
}
