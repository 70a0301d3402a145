//! Picks the dialect of a request by its path and headers. Every listener serves every dialect.
//!
//! | request | dialect |
//! |---|---|
//! | `/v1/…` | Vault |
//! | `POST /` with `X-Amz-Target` | AWS Secrets Manager (JSON 1.1, SigV4) |
//! | `/secrets…`, `/deletedsecrets…`, `/keys…`, `/certificates…` | Azure Key Vault |
//! | `…/oauth2/v2.0/token`, `…/.well-known/openid-configuration`, `/common/discovery/instance`, `/msi/…` | identity endpoints (Entra ID compatible) |
//!
//! The Azure Key Vault paths and the identity endpoints share every listener (the SDKs need
//! TLS, so in practice the HTTPS one).

use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::Core;
use std::sync::Arc;

/// Which dialect a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Vault,
    Aws,
    Azure,
    Identity,
    /// Nothing Coffer serves: Vault's bare 404.
    Unknown,
}

/// The dialects' settings (the server configuration's `aws` and `azure` stanzas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialectSettings {
    pub aws: crate::aws::AwsSettings,
    pub azure: crate::azure::AzureSettings,
}

/// What every dialect's handler needs: the core and the dialects' settings.
#[derive(Clone)]
pub struct Dialects {
    pub core: Arc<Core>,
    pub settings: Arc<DialectSettings>,
}

/// The router every listener serves, with default dialect settings.
pub fn router(core: Arc<Core>) -> axum::Router {
    router_with(core, DialectSettings::default())
}

/// The router every listener serves.
pub fn router_with(core: Arc<Core>, settings: DialectSettings) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(Dialects {
        core,
        settings: Arc::new(settings),
    })
}

/// Classify a request (pure: tested below).
pub fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Route {
    if path.starts_with("/v1/") {
        return Route::Vault;
    }
    if path == "/" && method == Method::POST && headers.contains_key("x-amz-target") {
        return Route::Aws;
    }
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if matches!(
        first.as_str(),
        "secrets"
            | "deletedsecrets"
            | "keys"
            | "deletedkeys"
            | "certificates"
            | "deletedcertificates"
    ) {
        return Route::Azure;
    }
    if path.ends_with("/oauth2/v2.0/token")
        || path.ends_with("/oauth2/token")
        || path.ends_with("/.well-known/openid-configuration")
        || path == "/common/discovery/instance"
        || path.starts_with("/msi/")
    {
        return Route::Identity;
    }
    Route::Unknown
}

async fn dispatch(State(d): State<Dialects>, mut req: HttpRequest) -> HttpResponse {
    let route = classify(req.method(), req.uri().path(), req.headers());
    // Vault's standbys refuse to seal (the active node is sealed through its own address)
    if route == Route::Vault
        && req.uri().path().trim_end_matches('/') == "/v1/sys/seal"
        && d.core.is_standby()
    {
        return crate::vault::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &["vault cannot seal when in standby mode; please restart instead"],
        );
    }
    if !crate::forward::local_path(route, req.uri().path()) {
        let mut target = d.core.forward_target();
        if target == coffer_core::ha::ForwardTarget::NoLeader {
            d.core.refresh_leader().await;
            target = d.core.forward_target();
        }
        match target {
            coffer_core::ha::ForwardTarget::Local => {}
            coffer_core::ha::ForwardTarget::Node(target) => {
                let id = d.core.ha().map(|h| h.node().id.clone()).unwrap_or_default();
                return crate::forward::forward(&d.core, route, &target, &id, req).await;
            }
            coffer_core::ha::ForwardTarget::NoLeader => {
                return crate::forward::standby_error(
                    route,
                    "local node not active but active cluster node not found",
                )
            }
        }
    }
    crate::forward::accept_forwarded(&d.core, &mut req);
    match route {
        Route::Vault => crate::vault::handle(State(d.core), req).await,
        Route::Aws => crate::aws::handle(&d.core, &d.settings.aws, req).await,
        Route::Azure => crate::azure::handle(&d.core, &d.settings.azure, req).await,
        Route::Identity => crate::azure::identity::handle(&d.core, &d.settings.azure, req).await,
        Route::Unknown => crate::vault::error_response(StatusCode::NOT_FOUND, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn route(method: Method, path: &str, target: bool) -> Route {
        let mut h = HeaderMap::new();
        if target {
            h.insert(
                "x-amz-target",
                HeaderValue::from_static("secretsmanager.GetSecretValue"),
            );
        }
        classify(&method, path, &h)
    }

    #[test]
    fn classification() {
        assert_eq!(route(Method::GET, "/v1/secret/data/x", false), Route::Vault);
        assert_eq!(route(Method::POST, "/v1/sys/init", true), Route::Vault);
        assert_eq!(route(Method::POST, "/", true), Route::Aws);
        assert_eq!(route(Method::GET, "/", true), Route::Unknown);
        assert_eq!(route(Method::POST, "/", false), Route::Unknown);
        assert_eq!(route(Method::GET, "/secrets/db", false), Route::Azure);
        assert_eq!(route(Method::GET, "/secrets", false), Route::Azure);
        assert_eq!(route(Method::GET, "/deletedsecrets", false), Route::Azure);
        assert_eq!(route(Method::GET, "/keys/k1", false), Route::Azure);
        assert_eq!(route(Method::GET, "/certificates/c", false), Route::Azure);
        assert_eq!(
            route(Method::POST, "/tenant-1/oauth2/v2.0/token", false),
            Route::Identity
        );
        assert_eq!(
            route(
                Method::GET,
                "/tenant-1/v2.0/.well-known/openid-configuration",
                false
            ),
            Route::Identity
        );
        assert_eq!(
            route(Method::GET, "/common/discovery/instance", false),
            Route::Identity
        );
        assert_eq!(route(Method::GET, "/favicon.ico", false), Route::Unknown);
        assert_eq!(route(Method::GET, "/v1", false), Route::Unknown);
    }
}
