//! HA standbys: every request a standby cannot answer itself is forwarded, as it came (method,
//! path, query, headers including `Host`, so AWS signatures still verify, and body), to the
//! active node's API address, and its answer is returned as the active node gave it. The
//! active node authenticates, authorizes, audits and serves it: a standby holds no token,
//! policy or audit state of its own.
//!
//! Answered by every node itself: `sys/health`, `sys/leader`, `sys/seal-status`, `sys/init`
//! and `sys/unseal` (Vault's standbys do the same).

use crate::dispatch::Route;
use axum::body::Body;
use axum::extract::Request as HttpRequest;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use http_body_util::BodyExt;
use std::sync::OnceLock;
use std::time::Duration;

/// Marks a forwarded request: a node never forwards a request twice (two standbys with stale
/// views of the leader cannot bounce a request between them).
pub const FORWARDED_HEADER: &str = "x-coffer-forwarded-by";
/// The largest body a standby forwards (Vault's default `max_request_size`).
const MAX_FORWARD_BODY: usize = 32 * 1024 * 1024;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
static EXTRA_ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();

/// Certificates (PEM) a standby also trusts when the active node's API address is `https://`:
/// the server passes its listeners' certificates (the nodes of a cluster share a CA, or a
/// certificate). Call before serving; later calls are ignored.
pub fn trust_for_forwarding(pems: Vec<Vec<u8>>) {
    let _ = EXTRA_ROOTS.set(pems);
}

fn client() -> &'static reqwest::Client {
    CLIENT.get_or_init(|| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FORWARD_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30));
        for pem in EXTRA_ROOTS.get().into_iter().flatten() {
            if let Ok(certs) = reqwest::Certificate::from_pem_bundle(pem) {
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
        }
        b.build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "HA: the forwarding client could not be built with the listeners' certificates");
            reqwest::Client::new()
        })
    })
}

/// Whether a Vault-dialect path is answered by every node itself.
pub fn local_path(route: Route, path: &str) -> bool {
    if route != Route::Vault {
        return false;
    }
    let p = path.strip_prefix("/v1/").unwrap_or("").trim_matches('/');
    matches!(
        p,
        "sys/health" | "sys/leader" | "sys/seal-status" | "sys/init" | "sys/unseal"
    )
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// The error a standby answers in the request's dialect when it cannot forward.
pub fn standby_error(route: Route, message: &str) -> HttpResponse {
    let e = CoreError::new(ErrorCode::Standby, message);
    match route {
        Route::Aws => crate::aws::error::AwsError::from_core(&e).response(),
        Route::Azure | Route::Identity => {
            crate::azure::error::AzureError::from_core(&e).response(None)
        }
        Route::Vault | Route::Unknown => {
            crate::vault::error_response(StatusCode::SERVICE_UNAVAILABLE, &[message])
        }
    }
}

/// Forward `req` to the active node at `target` (its API address) on behalf of `node_id`.
pub async fn forward(route: Route, target: &str, node_id: &str, req: HttpRequest) -> HttpResponse {
    if req.headers().contains_key(FORWARDED_HEADER) {
        return standby_error(
            route,
            "local node not active but active cluster node not found",
        );
    }
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{}", target.trim_end_matches('/'), path);
    let body = match http_body_util::Limited::new(body, MAX_FORWARD_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = CoreError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than a standby forwards",
            );
            return match route {
                Route::Aws => crate::aws::error::AwsError::from_core(&e).response(),
                Route::Azure | Route::Identity => {
                    crate::azure::error::AzureError::from_core(&e).response(None)
                }
                _ => crate::vault::error_response(StatusCode::PAYLOAD_TOO_LARGE, &[&e.message]),
            };
        }
    };
    let mut out = client().request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    out = out.header(FORWARDED_HEADER, node_id).body(body);
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, target, "HA: forwarding to the active node failed");
            return standby_error(
                route,
                "the active node could not be reached (a failover may be under way); retry the request",
            );
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "HA: reading the active node's answer failed");
            return standby_error(
                route,
                "the active node's answer was cut off; retry the request",
            );
        }
    };
    let mut answer = HttpResponse::new(Body::from(bytes));
    *answer.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer.headers_mut().remove(header::CONTENT_LENGTH);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths() {
        for p in [
            "/v1/sys/health",
            "/v1/sys/leader",
            "/v1/sys/seal-status",
            "/v1/sys/init",
            "/v1/sys/unseal",
            "/v1//sys/leader/",
        ] {
            assert!(local_path(Route::Vault, p), "{p}");
        }
        for p in [
            "/v1/sys/step-down",
            "/v1/sys/ha-status",
            "/v1/secret/data/x",
            "/v1/sys/seal",
            "/v1/sys/healthz",
        ] {
            assert!(!local_path(Route::Vault, p), "{p}");
        }
        assert!(!local_path(Route::Aws, "/v1/sys/health"));
    }
}
