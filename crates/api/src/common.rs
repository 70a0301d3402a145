//! Plumbing every dialect shares: body limits and reading, JSON object bodies, query and path
//! decoding, bearer tokens, the peer address, JSON responses.

use crate::MAX_REQUEST_SIZE;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use tokio::sync::Semaphore;

/// The peer address of a connection, attached to each request by the listener.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

/// The id a dialect answers for an operation (AWS's `x-amzn-RequestId`, Azure's
/// `x-ms-request-id`): given to the first core request the operation makes, so that the answer's
/// id finds its entries in the audit log.
pub struct FirstRequestId {
    id: String,
    used: std::sync::atomic::AtomicBool,
}

impl FirstRequestId {
    /// A new random id.
    pub fn new() -> Self {
        FirstRequestId {
            id: uuid::Uuid::new_v4().to_string(),
            used: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Give `req` the id, if it is the operation's first core request.
    pub fn stamp(&self, req: &mut coffer_core::request::Request) {
        if !self.used.swap(true, std::sync::atomic::Ordering::AcqRel) {
            req.id = self.id.clone();
        }
    }
}

impl Default for FirstRequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// Attached to each request that came over a TLS connection.
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// Largest body read for a request that is not authenticated yet: no token, or a token that does
/// not resolve (logins, init and unseal bodies are tiny). Larger ones get 413 before any buffering.
pub const MAX_UNAUTHENTICATED_BODY: usize = 1024 * 1024;

/// Request body bytes buffered at once across all requests (every listener); a request waits
/// for its share before its body is read.
pub const MAX_BODY_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

static BODY_BUDGET: Semaphore = Semaphore::const_new(MAX_BODY_BYTES_IN_FLIGHT);

/// How much of an oversized body is read (beyond the limit) and dropped before answering 413.
const MAX_DRAIN: usize = 8 * 1024 * 1024;

fn body_too_large() -> CoreError {
    CoreError::new(ErrorCode::PayloadTooLarge, "http: request body too large")
}

/// The body size limit for a request: the full [`MAX_REQUEST_SIZE`] only when its body may be
/// larger than [`MAX_UNAUTHENTICATED_BODY`] and `authenticated` (checked lazily: only then)
/// says its credential is live.
pub async fn body_limit<F>(declared: Option<u64>, authenticated: F) -> usize
where
    F: std::future::Future<Output = bool>,
{
    if declared.is_some_and(|n| n <= MAX_UNAUTHENTICATED_BODY as u64) {
        return MAX_UNAUTHENTICATED_BODY;
    }
    if authenticated.await {
        MAX_REQUEST_SIZE
    } else {
        MAX_UNAUTHENTICATED_BODY
    }
}

/// Whether the client waits for `100 Continue` before sending its body.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Read the body, refusing more than `limit` bytes, holding a share of [`BODY_BUDGET`] while
/// buffering. A body declared larger than `limit` is never buffered: 413 at once when the client
/// waits for `100 Continue`, otherwise after reading and dropping a bounded amount of it.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
    expects_continue: bool,
) -> Result<Bytes, CoreError> {
    let mut too_large = declared.is_some_and(|n| n > limit as u64);
    if too_large && expects_continue {
        return Err(body_too_large());
    }
    // a body of known length reserves what it declared, any other the whole limit
    let reserve = match declared {
        _ if too_large => 0,
        Some(n) => usize::try_from(n).unwrap_or(limit).min(limit),
        None => limit,
    };
    let _permit = match u32::try_from(reserve) {
        Ok(0) => None,
        Ok(n) => Some(
            BODY_BUDGET
                .acquire_many(n)
                .await
                .map_err(|_| CoreError::internal("request body budget closed"))?,
        ),
        Err(_) => return Err(body_too_large()),
    };
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| CoreError::invalid("failed to read request body"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if too_large {
            // read (and drop) a bounded rest, so the client gets to read our 413 instead of a
            // reset connection; beyond that the connection is simply closed
            if seen > limit.saturating_add(MAX_DRAIN) {
                break;
            }
        } else if seen > limit {
            too_large = true;
            buf = bytes::BytesMut::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        return Err(body_too_large());
    }
    Ok(buf.freeze())
}

/// Parse a JSON object body; an empty body is an empty object.
pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, CoreError> {
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

pub fn query_map(query: Option<&str>) -> Map<String, Value> {
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
pub fn decode_query_part(s: &str) -> String {
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

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// A JSON body with exactly this `Content-Type` and `Cache-Control: no-store` (answers may carry
/// secrets).
pub fn json_with_type(
    status: StatusCode,
    body: &Value,
    content_type: &'static str,
) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = HttpResponse::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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
        assert_eq!(q["standbyok"], "True");
        assert_eq!(q["list"], "true");
    }

    #[test]
    fn bearer() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
    }
}
