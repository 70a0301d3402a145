//! Token endpoints that azure-identity / MSAL accept, issuing Coffer tokens through AppRole:
//!
//! | request | answers |
//! |---|---|
//! | `GET /<authority>/.well-known/openid-configuration` (`/adfs`, `/<tenant>/v2.0`, …) | issuer, token and authorization endpoints |
//! | `POST /<authority>/oauth2/v2.0/token` (client credentials) | a token: `client_id` = role_id, `client_secret` = secret_id |
//! | `GET /common/discovery/instance` | MSAL's instance discovery |
//! | `GET /msi/token?resource=…` with `X-IDENTITY-HEADER: <role_id>:<secret_id>` | App Service managed identity |
//!
//! Each token request is one AppRole login through the core (audited, lockout applies); the
//! access token is the Coffer token it issues, with the role's policies. Refusals use the
//! shapes the SDKs parse (OAuth's `{"error", "error_description"}`; App Service's
//! `{"statusCode", "message"}`), always below 500 so clients do not retry them.

use super::AzureSettings;
use crate::common::{json_with_type, query_map, read_body, RemoteAddr};
use axum::extract::Request as HttpRequest;
use axum::http::{Method, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use coffer_core::request::{Dialect, Operation, Request};
use coffer_core::Core;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Token request bodies are small forms.
const MAX_FORM: usize = 64 * 1024;
/// What an access token's lifetime is shown as when the token never expires.
const NO_EXPIRY_SHOWN: u64 = 24 * 3600;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    json_with_type(
        status,
        &json!({"error": error, "error_description": description, "error_codes": []}),
        CONTENT_TYPE,
    )
}

fn msi_error(status: StatusCode, message: &str) -> HttpResponse {
    json_with_type(
        status,
        &json!({"statusCode": status.as_u16(), "message": message}),
        CONTENT_TYPE,
    )
}

/// A tenant path segment as MSAL and azure-identity accept it.
fn is_tenant(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Handle one identity request.
pub async fn handle(core: &Core, settings: &AzureSettings, req: HttpRequest) -> HttpResponse {
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(super::names::check_host)
        .map(str::to_string);
    let Some(host) = host else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing or invalid Host",
        );
    };
    if let Some(authority) = path.strip_suffix("/.well-known/openid-configuration") {
        return openid_configuration(&host, authority);
    }
    if path == "/common/discovery/instance" {
        return instance_discovery(&host, req.uri().query());
    }
    if path == "/msi/token" {
        return managed_identity(core, settings, &host, req).await;
    }
    if let Some(authority) = path
        .strip_suffix("/oauth2/v2.0/token")
        .or_else(|| path.strip_suffix("/oauth2/token"))
    {
        return token(core, settings, &host, authority.to_string(), req).await;
    }
    oauth_error(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "no such identity endpoint",
    )
}

/// The segments of an authority path (`/adfs`, `/<tenant>/v2.0`, `/adfs/<tenant>`), checked.
fn authority_ok(authority: &str) -> bool {
    let segs: Vec<&str> = authority.trim_start_matches('/').split('/').collect();
    !segs.is_empty() && segs.len() <= 3 && segs.iter().all(|s| is_tenant(s))
}

fn openid_configuration(host: &str, authority: &str) -> HttpResponse {
    if !authority_ok(authority) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_tenant", "invalid tenant");
    }
    let base = authority.strip_suffix("/v2.0").unwrap_or(authority);
    let root = format!("https://{host}{base}");
    json_with_type(
        StatusCode::OK,
        &json!({
            "issuer": root,
            "token_endpoint": format!("{root}/oauth2/v2.0/token"),
            "authorization_endpoint": format!("{root}/oauth2/v2.0/authorize"),
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
        }),
        CONTENT_TYPE,
    )
}

fn instance_discovery(host: &str, query: Option<&str>) -> HttpResponse {
    // the tenant is the first path segment of the authorization endpoint asked about
    let q = query_map(query);
    let tenant = q
        .get("authorization_endpoint")
        .and_then(Value::as_str)
        .and_then(|u| u.split("://").nth(1))
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|t| is_tenant(t))
        .unwrap_or("common")
        .to_string();
    json_with_type(
        StatusCode::OK,
        &json!({
            "tenant_discovery_endpoint":
                format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [],
        }),
        CONTENT_TYPE,
    )
}

/// An issued token: (access token, lifetime in seconds).
struct Issued {
    token: Zeroizing<String>,
    ttl: u64,
}

/// Why a login failed, as the endpoints answer it.
enum LoginError {
    /// Unknown client or wrong secret (never told apart).
    Refused,
    /// Anything else (sealed, throttled, audit failure): (status, message).
    Other(StatusCode, String),
}

/// One AppRole login through the core.
async fn login(
    core: &Core,
    settings: &AzureSettings,
    role_id: &str,
    secret_id: &str,
    remote: Option<std::net::IpAddr>,
    operation: &str,
) -> Result<Issued, LoginError> {
    let mut req = Request::new(
        Operation::Update,
        format!(
            "auth/{}/login",
            settings.approle_mount.trim_end_matches('/')
        ),
    );
    req.data = Map::from_iter([
        ("role_id".to_string(), Value::from(role_id)),
        ("secret_id".to_string(), Value::from(secret_id)),
    ]);
    req.remote_addr = remote;
    req.dialect = Dialect::Azure;
    req.operation_name = Some(operation.to_string());
    match core.handle(req).await {
        Ok(resp) => match resp.auth {
            Some(auth) => Ok(Issued {
                ttl: if auth.lease_duration == 0 {
                    NO_EXPIRY_SHOWN
                } else {
                    auth.lease_duration
                },
                token: Zeroizing::new(auth.client_token),
            }),
            None => Err(LoginError::Other(
                StatusCode::BAD_REQUEST,
                "the login answered no token".into(),
            )),
        },
        Err(e) => Err(login_error(&e)),
    }
}

fn login_error(e: &CoreError) -> LoginError {
    match e.code {
        ErrorCode::InvalidRequest
        | ErrorCode::Unauthenticated
        | ErrorCode::PermissionDenied
        | ErrorCode::NotFound => LoginError::Refused,
        ErrorCode::Throttled => LoginError::Other(StatusCode::TOO_MANY_REQUESTS, e.message.clone()),
        ErrorCode::Sealed | ErrorCode::NotInitialized => LoginError::Other(
            StatusCode::SERVICE_UNAVAILABLE,
            "Coffer is sealed".to_string(),
        ),
        // below 500: clients would retry a 5xx several times
        _ => LoginError::Other(
            StatusCode::BAD_REQUEST,
            "the login could not be completed; the server's log has the details".into(),
        ),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn remote(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.extensions().get::<RemoteAddr>().map(|r| r.0.ip())
}

async fn form(req: HttpRequest) -> Result<Map<String, Value>, HttpResponse> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = read_body(body, MAX_FORM, declared, false)
        .await
        .map_err(|e| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.message))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the form is not UTF-8",
        )
    })?;
    Ok(query_map(Some(text)))
}

/// POST …/oauth2/v2.0/token.
async fn token(
    core: &Core,
    settings: &AzureSettings,
    host: &str,
    authority: String,
    req: HttpRequest,
) -> HttpResponse {
    if req.method() != Method::POST {
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use POST",
        );
    }
    if !authority_ok(&authority) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_tenant", "invalid tenant");
    }
    let remote = remote(&req);
    let f = match form(req).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let get = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: only the client_credentials grant is supported",
        );
    }
    let (client_id, secret) = (
        get("client_id"),
        Zeroizing::new(get("client_secret").to_string()),
    );
    if client_id.is_empty() || secret.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: client_id and client_secret are required",
        );
    }
    // the resource: the scope without "/.default" (or Azure AD v1's `resource`), else the one
    // the Key Vault challenge names for this host
    let resource = match (get("scope"), get("resource")) {
        (s, _) if !s.is_empty() => s
            .split(' ')
            .next()
            .unwrap_or(s)
            .trim_end_matches("/.default")
            .to_string(),
        (_, r) if !r.is_empty() => r.to_string(),
        _ => super::names::resource(host),
    };
    match login(core, settings, client_id, &secret, remote, "oauth2.token").await {
        Ok(issued) => json_with_type(
            StatusCode::OK,
            &json!({
                "token_type": "Bearer",
                "expires_in": issued.ttl,
                "ext_expires_in": issued.ttl,
                "expires_on": now().saturating_add(i64::try_from(issued.ttl).unwrap_or(i64::MAX / 2)),
                "resource": resource,
                "access_token": issued.token.as_str(),
            }),
            CONTENT_TYPE,
        ),
        Err(LoginError::Refused) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided, or the client (AppRole role_id) is \
             unknown.",
        ),
        Err(LoginError::Other(status, message)) => {
            oauth_error(status, "temporarily_unavailable", &message)
        }
    }
}

/// GET /msi/token (App Service managed identity).
async fn managed_identity(
    core: &Core,
    settings: &AzureSettings,
    host: &str,
    req: HttpRequest,
) -> HttpResponse {
    if req.method() != Method::GET {
        return msi_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let header = req
        .headers()
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(|v| Zeroizing::new(v.to_string()));
    let Some(header) = header else {
        return msi_error(StatusCode::UNAUTHORIZED, "X-IDENTITY-HEADER is missing");
    };
    let Some((role_id, secret_id)) = header.split_once(':') else {
        return msi_error(
            StatusCode::UNAUTHORIZED,
            "X-IDENTITY-HEADER must be <role_id>:<secret_id>",
        );
    };
    let q = query_map(req.uri().query());
    let resource = q
        .get("resource")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| super::names::resource(host));
    match login(
        core,
        settings,
        role_id,
        secret_id,
        remote(&req),
        "msi.token",
    )
    .await
    {
        Ok(issued) => json_with_type(
            StatusCode::OK,
            &json!({
                "access_token": issued.token.as_str(),
                "expires_on": now()
                    .saturating_add(i64::try_from(issued.ttl).unwrap_or(i64::MAX / 2))
                    .to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": role_id,
            }),
            CONTENT_TYPE,
        ),
        Err(LoginError::Refused) => msi_error(
            StatusCode::UNAUTHORIZED,
            "The identity header does not name a valid AppRole role_id and secret_id.",
        ),
        Err(LoginError::Other(status, message)) => msi_error(status, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for ok in ["/adfs", "/tenant-1/v2.0", "/adfs/0000-1111", "/common"] {
            assert!(authority_ok(ok), "{ok}");
        }
        for bad in ["", "/", "/a/b/c/d", "/a b", "/a_b", "/a\"b"] {
            assert!(!authority_ok(bad), "{bad}");
        }
    }
}
