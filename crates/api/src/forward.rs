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
use coffer_core::Core;
use http_body_util::BodyExt;
use std::sync::OnceLock;
use std::time::Duration;

/// Marks a forwarded request: a node never forwards a request twice (two standbys with stale
/// views of the leader cannot bounce a request between them).
pub const FORWARDED_HEADER: &str = "x-coffer-forwarded-by";
/// The client's address as the standby saw it, when it forwards; the active node uses it (for
/// CIDR-bound tokens and logins) only with a valid [`FORWARDED_MAC`] at most
/// [`FORWARDED_MAX_AGE`] seconds old.
pub const FORWARDED_FOR: &str = "x-coffer-forwarded-for";
pub const FORWARDED_AT: &str = "x-coffer-forwarded-at";
/// HMAC-SHA256, under a key derived from the cluster's root key (every unsealed node has it,
/// no client does), of the forwarding node, client address, time, method and path.
pub const FORWARDED_MAC: &str = "x-coffer-forwarded-mac";
const FORWARDED_MAX_AGE: i64 = 30;
const MAC_PURPOSE: &str = "ha-forwarding";

fn forwarding_message(node: &str, ip: &str, at: &str, method: &str, path: &str) -> Vec<u8> {
    format!("{node}\n{ip}\n{at}\n{method}\n{path}").into_bytes()
}

fn now_secs() -> i64 {
    coffer_core::util::unix_now() as i64
}

/// On the active node: replace the connection's address with the client's, when a standby
/// forwarded the request and vouched for the address; drop the forwarding headers in any case
/// (a client cannot set them to any effect).
pub fn accept_forwarded(core: &Core, req: &mut HttpRequest) {
    let h = req.headers();
    if !h.contains_key(FORWARDED_HEADER)
        && !h.contains_key(FORWARDED_FOR)
        && !h.contains_key(FORWARDED_MAC)
    {
        return;
    }
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let claimed = (
        text(FORWARDED_HEADER),
        text(FORWARDED_FOR),
        text(FORWARDED_AT),
        text(FORWARDED_MAC).and_then(|m| hex::decode(m).ok()),
    );
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().as_str().to_string();
    for name in [FORWARDED_FOR, FORWARDED_AT, FORWARDED_MAC] {
        req.headers_mut().remove(name);
    }
    // from here on the request claims to come through a standby: its address is the client's
    // as vouched for, or unknown (never the standby's own, which CIDR bindings could match)
    let (Some(node), Some(ip), Some(at), Some(tag)) = claimed else {
        tracing::debug!("HA: incomplete forwarding headers: the client address is unknown");
        req.extensions_mut().remove::<crate::common::RemoteAddr>();
        return;
    };
    let fresh = at
        .parse::<i64>()
        .is_ok_and(|t| (now_secs() - t).abs() <= FORWARDED_MAX_AGE);
    let msg = forwarding_message(&node, &ip, &at, &method, &path);
    let (Ok(addr), true, true) = (
        ip.parse::<std::net::IpAddr>(),
        fresh,
        core.barrier().verify_mac(MAC_PURPOSE, &msg, &tag),
    ) else {
        tracing::warn!(node = %node, "HA: forwarding headers that do not verify: the client address is unknown");
        req.extensions_mut().remove::<crate::common::RemoteAddr>();
        return;
    };
    req.extensions_mut()
        .insert(crate::common::RemoteAddr(std::net::SocketAddr::new(
            addr, 0,
        )));
}
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
pub async fn forward(
    core: &Core,
    route: Route,
    target: &str,
    node_id: &str,
    req: HttpRequest,
) -> HttpResponse {
    if req.headers().contains_key(FORWARDED_HEADER) {
        return standby_error(
            route,
            "local node not active but active cluster node not found",
        );
    }
    let (parts, body) = req.into_parts();
    let client_ip = parts
        .extensions
        .get::<crate::common::RemoteAddr>()
        .map(|r| r.0.ip().to_string());
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = match reqwest::Url::parse(&format!("{}{}", target.trim_end_matches('/'), path)) {
        Ok(u) => u,
        Err(_) => {
            return standby_error(route, "the request's path cannot be forwarded");
        }
    };
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
    // what the active node will see as the path: the URL's, as the client library writes it
    let sent_path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let build = |url: reqwest::Url| {
        let mut out = client().request(parts.method.clone(), url);
        for (name, value) in &parts.headers {
            // a client's own forwarding headers never pass
            if !hop_by_hop(name)
                && ![FORWARDED_FOR, FORWARDED_AT, FORWARDED_MAC].contains(&name.as_str())
            {
                out = out.header(name, value);
            }
        }
        out = out.header(FORWARDED_HEADER, node_id);
        if let Some(ip) = &client_ip {
            let at = now_secs().to_string();
            let msg = forwarding_message(node_id, ip, &at, parts.method.as_str(), &sent_path);
            if let Ok(tag) = core.barrier().mac(MAC_PURPOSE, &msg) {
                out = out
                    .header(FORWARDED_FOR, ip.as_str())
                    .header(FORWARDED_AT, at)
                    .header(FORWARDED_MAC, hex::encode(tag));
            }
        }
        out.body(body.clone())
    };
    let mut sent = build(url.clone()).send().await;
    // the active node this standby knew is gone (a failover): ask the storage who leads now
    // and send once more, to the new active node (nothing reached the old one)
    if matches!(&sent, Err(e) if e.is_connect()) {
        core.refresh_leader().await;
        if let coffer_core::ha::ForwardTarget::Node(next) = core.forward_target() {
            if next != target {
                if let Ok(next_url) =
                    reqwest::Url::parse(&format!("{}{}", next.trim_end_matches('/'), sent_path))
                {
                    sent = build(next_url).send().await;
                }
            }
        }
    }
    let resp = match sent {
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
