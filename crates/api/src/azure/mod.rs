//! The Azure Key Vault dialect: the secrets REST API (`/secrets…`, `/deletedsecrets…`) with
//! bearer tokens, and the Entra-ID-compatible token endpoints that issue them ([`identity`]).
//! It is a translator only: each operation becomes core requests on the kv mount's neutral
//! `domain/` paths (so the ACL, audit, versions and soft deletion are the ones every dialect
//! shares), and the kv domain's typed answers are rendered in Key Vault's shapes ([`render`]).
//!
//! - A request without a live bearer token gets 401 with the challenge (`WWW-Authenticate:
//!   Bearer authorization="https://<host>/<tenant>", resource="https://<host minus its first
//!   label>"`) before its body or names are looked at: the SDKs probe that way.
//! - The bearer token is a Coffer token (the token endpoints log in with AppRole).
//! - The vault is the request host's first label; [`AzureSettings::vault_mounts`] maps vault
//!   names to kv mounts, every other host (and IP literals) is served by `secret/`.

pub mod error;
pub mod identity;
mod list;
pub mod names;
mod ops;
pub mod render;

use crate::common::{
    bearer_token, json_with_type, parse_json_object, percent_decode, query_map, read_body,
    FirstRequestId, OverTls, RemoteAddr,
};
use axum::extract::Request as HttpRequest;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::CoreError;
use coffer_core::request::{Credential, Dialect, Operation, Request, Response};
use coffer_core::Core;
use error::AzureError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The kv mount every vault is served by (unless mapped).
pub const DEFAULT_MOUNT: &str = "secret/";
/// The tenant the challenge names by default: the SDKs ask no particular tenant for it, so any
/// `AZURE_TENANT_ID` works with it.
pub const DEFAULT_TENANT: &str = "adfs";
/// The AppRole method the token endpoints log in with by default.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// How the dialect is set up (the server configuration's `azure` stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// The tenant in the challenge's `authorization` URL.
    pub tenant: String,
    /// The AppRole auth mount (below `auth/`) the token endpoints log in with.
    pub approle_mount: String,
    /// Vault name (lowercase) → kv mount path (ending with `/`).
    pub vault_mounts: BTreeMap<String, String>,
}

impl Default for AzureSettings {
    fn default() -> Self {
        AzureSettings {
            tenant: DEFAULT_TENANT.to_string(),
            approle_mount: DEFAULT_APPROLE_MOUNT.to_string(),
            vault_mounts: BTreeMap::new(),
        }
    }
}

impl AzureSettings {
    /// The kv mount serving the vault a host names.
    pub fn mount_for(&self, host: &str) -> &str {
        names::vault_name(host)
            .and_then(|v| self.vault_mounts.get(&v))
            .map(String::as_str)
            .unwrap_or(DEFAULT_MOUNT)
    }

    /// The challenge for a request to `host`.
    pub fn challenge(&self, host: &str) -> String {
        format!(
            "Bearer authorization=\"https://{host}/{}\", resource=\"{}\"",
            self.tenant,
            names::resource(host)
        )
    }
}

/// One Key Vault request on its way.
pub struct Ctx<'a> {
    core: &'a Core,
    token: String,
    remote: Option<IpAddr>,
    /// The operation's audit name (`secrets.get`).
    pub op: &'static str,
    /// `https://<host>` as the caller reached Coffer (ids and links start with it).
    pub base: String,
    /// The kv mount (with its trailing `/`).
    pub mount: String,
    /// `x-ms-request-id`: the id of the first core request, so the answer finds its entries in
    /// the audit log.
    request_id: &'a FirstRequestId,
}

impl Ctx<'_> {
    /// Run one core request on the kv mount (`path` below it) as the caller.
    pub async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Response, CoreError> {
        let mut req = Request::new(operation, format!("{}{path}", self.mount));
        req.data = data;
        self.request_id.stamp(&mut req);
        req.credential = Credential::Token(self.token.clone());
        req.remote_addr = self.remote;
        req.dialect = Dialect::Azure;
        req.operation_name = Some(self.op.to_string());
        self.core.handle(req).await
    }
}

/// A successful answer.
pub enum Answer {
    Json(Map<String, Value>),
    /// 204 (purge).
    NoContent,
}

type OpResult = Result<Answer, AzureError>;

/// A Key Vault operation, from the method and the decoded path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    List,
    Set(String),
    Get(String, String),
    ListVersions(String),
    Update(String, String),
    Delete(String),
    Backup(String),
    Restore,
    ListDeleted,
    GetDeleted(String),
    Recover(String),
    Purge(String),
    /// Keys and certificates: not served.
    NotServed,
    /// No such operation.
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let n = |x: &str| x.to_string();
        let first = s
            .first()
            .map(|f| f.to_ascii_lowercase())
            .unwrap_or_default();
        let is = |m: Method| *method == m;
        match (first.as_str(), &s[1..]) {
            ("secrets", [] | [""]) if is(Method::GET) => Route::List,
            ("secrets", ["restore"]) if is(Method::POST) => Route::Restore,
            ("secrets", [name]) if is(Method::PUT) => Route::Set(n(name)),
            ("secrets", [name] | [name, ""]) if is(Method::GET) => Route::Get(n(name), n("")),
            ("secrets", [name, "versions"]) if is(Method::GET) => Route::ListVersions(n(name)),
            ("secrets", [name, v]) if is(Method::GET) => Route::Get(n(name), n(v)),
            ("secrets", [name]) if is(Method::PATCH) => Route::Update(n(name), n("")),
            ("secrets", [name, v]) if is(Method::PATCH) => Route::Update(n(name), n(v)),
            ("secrets", [name]) if is(Method::DELETE) => Route::Delete(n(name)),
            ("secrets", [name, "backup"]) if is(Method::POST) => Route::Backup(n(name)),
            ("deletedsecrets", [] | [""]) if is(Method::GET) => Route::ListDeleted,
            ("deletedsecrets", [name]) if is(Method::GET) => Route::GetDeleted(n(name)),
            ("deletedsecrets", [name]) if is(Method::DELETE) => Route::Purge(n(name)),
            ("deletedsecrets", [name, "recover"]) if is(Method::POST) => Route::Recover(n(name)),
            ("secrets" | "deletedsecrets", _) => Route::Unknown,
            _ => Route::NotServed,
        }
    }

    /// The audit name.
    fn op_name(&self) -> &'static str {
        match self {
            Route::List => "secrets.list",
            Route::Set(_) => "secrets.set",
            Route::Get(..) => "secrets.get",
            Route::ListVersions(_) => "secrets.list_versions",
            Route::Update(..) => "secrets.update",
            Route::Delete(_) => "secrets.delete",
            Route::Backup(_) => "secrets.backup",
            Route::Restore => "secrets.restore",
            Route::ListDeleted => "secrets.list_deleted",
            Route::GetDeleted(_) => "secrets.get_deleted",
            Route::Recover(_) => "secrets.recover",
            Route::Purge(_) => "secrets.purge",
            Route::NotServed | Route::Unknown => "unknown",
        }
    }

    fn has_body(&self) -> bool {
        matches!(self, Route::Set(_) | Route::Update(..) | Route::Restore)
    }
}

/// The host the caller used: `Host`, else the URI's authority.
fn request_host(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
}

/// Handle one Key Vault request.
pub async fn handle(core: &Core, settings: &AzureSettings, req: HttpRequest) -> HttpResponse {
    let request_id = FirstRequestId::new();
    let host = request_host(req.headers(), req.uri());
    let Some(host) = host
        .as_deref()
        .and_then(names::check_host)
        .map(str::to_string)
    else {
        return AzureError::bad_parameter("The request has a missing or invalid Host header.")
            .response(None);
    };
    let challenge = settings.challenge(&host);
    let mut resp = match answer(core, settings, req, &host, &request_id).await {
        Ok(Answer::Json(v)) => {
            json_with_type(StatusCode::OK, &Value::Object(v), error::CONTENT_TYPE)
        }
        Ok(Answer::NoContent) => {
            let mut r = HttpResponse::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => e.response(Some(&challenge)),
    };
    if let Ok(id) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert("x-ms-request-id", id);
    }
    resp
}

const MISSING_TOKEN: &str = "AKV10000: Request is missing a Bearer or PoP token.";
const BAD_TOKEN: &str =
    "AKV10022: Invalid audience or token: the token is unknown, expired or revoked.";

async fn answer(
    core: &Core,
    settings: &AzureSettings,
    req: HttpRequest,
    host: &str,
    request_id: &FirstRequestId,
) -> OpResult {
    let (parts, body) = req.into_parts();
    // the challenge comes before anything else is looked at (the SDKs probe with an empty body)
    let token = match bearer_token(&parts.headers) {
        Some(t) if !t.is_empty() => t,
        _ => return Err(AzureError::unauthorized(MISSING_TOKEN)),
    };
    let route = Route::parse(&parts.method, parts.uri.path());
    let body = if route.has_body() {
        if !core.token_is_valid(&token).await {
            return Err(if core.is_sealed() {
                AzureError::from_core(&CoreError::sealed())
            } else {
                AzureError::unauthorized(BAD_TOKEN)
            });
        }
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = read_body(
            body,
            crate::MAX_REQUEST_SIZE,
            declared,
            crate::common::expects_continue(&parts.headers),
        )
        .await
        .map_err(|e| AzureError::from_core(&e))?;
        parse_json_object(&bytes).map_err(|e| {
            AzureError::bad_parameter(format!("The request body is not valid: {}", e.message))
        })?
    } else {
        Map::new()
    };
    let scheme = if parts.extensions.get::<OverTls>().is_some() {
        "https"
    } else {
        "http"
    };
    let ctx = Ctx {
        core,
        token,
        remote: parts.extensions.get::<RemoteAddr>().map(|r| r.0.ip()),
        op: route.op_name(),
        base: format!("{scheme}://{host}"),
        mount: settings.mount_for(host).to_string(),
        request_id,
    };
    let query = query_map(parts.uri.query());
    let q = |k: &str| query.get(k).and_then(Value::as_str).map(str::to_string);
    let paging = || list::Paging::from_query(q("maxresults"), q("$skiptoken"), q("api-version"));
    match route {
        Route::List => list::list_secrets(&ctx, &paging()?, false).await,
        Route::ListDeleted => list::list_secrets(&ctx, &paging()?, true).await,
        Route::ListVersions(name) => {
            let name = names::check_name(&name)?;
            list::list_versions(&ctx, name, &paging()?).await
        }
        Route::Set(name) => ops::set(&ctx, names::check_name(&name)?, &body).await,
        Route::Get(name, v) => {
            let name = names::check_name(&name)?;
            ops::get(&ctx, name, names::check_version(&v)?).await
        }
        Route::Update(name, v) => {
            let name = names::check_name(&name)?;
            ops::update(&ctx, name, names::check_version(&v)?, &body).await
        }
        Route::Delete(name) => ops::delete(&ctx, names::check_name(&name)?).await,
        Route::Backup(name) => ops::backup(&ctx, names::check_name(&name)?).await,
        Route::Restore => ops::restore(&ctx, &body).await,
        Route::GetDeleted(name) => ops::get_deleted(&ctx, names::check_name(&name)?).await,
        Route::Recover(name) => ops::recover(&ctx, names::check_name(&name)?).await,
        Route::Purge(name) => ops::purge(&ctx, names::check_name(&name)?).await,
        Route::NotServed => Err(AzureError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "Coffer serves the secrets API of Key Vault only (no keys, no certificates).",
        )),
        Route::Unknown => Err(AzureError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "The operation {} {} is not supported by Key Vault's secrets API.",
                parts.method,
                parts.uri.path()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, p: &str| Route::parse(&m, p);
        assert_eq!(r(Method::GET, "/secrets"), Route::List);
        assert_eq!(r(Method::GET, "/secrets/"), Route::List);
        assert_eq!(
            r(Method::GET, "/secrets/a/"),
            Route::Get("a".into(), "".into())
        );
        assert_eq!(
            r(Method::GET, "/secrets/a"),
            Route::Get("a".into(), "".into())
        );
        assert_eq!(
            r(Method::GET, "/secrets/a/v1"),
            Route::Get("a".into(), "v1".into())
        );
        assert_eq!(
            r(Method::GET, "/secrets/a/versions"),
            Route::ListVersions("a".into())
        );
        assert_eq!(r(Method::PUT, "/secrets/a%2Fb"), Route::Set("a/b".into()));
        assert_eq!(r(Method::POST, "/secrets/restore"), Route::Restore);
        assert_eq!(
            r(Method::GET, "/secrets/restore"),
            Route::Get("restore".into(), "".into())
        );
        assert_eq!(
            r(Method::POST, "/secrets/a/backup"),
            Route::Backup("a".into())
        );
        assert_eq!(
            r(Method::PATCH, "/secrets/a/"),
            Route::Update("a".into(), "".into())
        );
        assert_eq!(
            r(Method::DELETE, "/deletedsecrets/a"),
            Route::Purge("a".into())
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/a/recover"),
            Route::Recover("a".into())
        );
        assert_eq!(r(Method::POST, "/secrets/a"), Route::Unknown);
        assert_eq!(r(Method::GET, "/secrets/a/b/c"), Route::Unknown);
        assert_eq!(r(Method::GET, "/keys/k"), Route::NotServed);
    }

    #[test]
    fn vaults_and_challenge() {
        let mut s = AzureSettings::default();
        s.vault_mounts.insert("payments".into(), "kv-pay/".into());
        assert_eq!(s.mount_for("payments.example.test:8443"), "kv-pay/");
        assert_eq!(s.mount_for("PAYMENTS.example.test"), "kv-pay/");
        assert_eq!(s.mount_for("other.example.test"), "secret/");
        assert_eq!(s.mount_for("127.0.0.1:8443"), "secret/");
        assert_eq!(
            s.challenge("127.0.0.1:8443"),
            "Bearer authorization=\"https://127.0.0.1:8443/adfs\", resource=\"https://0.0.1:8443\""
        );
    }
}
