//! The HTTP client of the client commands: address, token and TLS resolution (flags, then
//! `COFFER_*`, then `VAULT_*` environment variables), and a request helper that returns the
//! status with the parsed JSON body.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::blocking::Client as HttpClient;
use reqwest::{Method, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use super::error::CliError;
use super::output::Format;

pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8200";
/// Name of the token file in the home directory, written by `coffer login`.
pub const TOKEN_FILE_NAME: &str = ".coffer-token";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses a boolean the way Go's `strconv.ParseBool` does (Vault flags and env vars).
pub fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {text:?} (use true or false)")),
    }
}

/// Options shared by every client command. They are global, so they may follow the subcommand
/// (`coffer kv get -format=json secret/x`).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTP and output options")]
pub struct ClientOpts {
    /// Address of the server [env: COFFER_ADDR, VAULT_ADDR] [default: http://127.0.0.1:8200]
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,

    /// PEM file of the CA that signed the server's certificate [env: COFFER_CACERT, VAULT_CACERT]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Directory of PEM CA certificates [env: COFFER_CAPATH, VAULT_CAPATH]
    #[arg(long, global = true, value_name = "DIR")]
    pub ca_path: Option<PathBuf>,

    /// Do not verify the server's TLS certificate (insecure) [env: COFFER_SKIP_VERIFY, VAULT_SKIP_VERIFY]
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub tls_skip_verify: Option<bool>,

    /// Namespace sent as X-Vault-Namespace [env: COFFER_NAMESPACE, VAULT_NAMESPACE]
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,

    /// Output format: table or json [env: COFFER_FORMAT, VAULT_FORMAT]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub format: Option<String>,

    /// Print only this field of the response, raw
    #[arg(long, global = true, value_name = "NAME")]
    pub field: Option<String>,

    /// Wrap the response in a single-use token valid this long (e.g. 5m); prints only the
    /// wrapping token, for `coffer unwrap` [env: COFFER_WRAP_TTL, VAULT_WRAP_TTL]
    #[arg(long, global = true, value_name = "DURATION")]
    pub wrap_ttl: Option<String>,
}

impl ClientOpts {
    /// The output format: `-format`, else `COFFER_FORMAT`, else `VAULT_FORMAT`, else table.
    pub fn format(&self) -> Result<Format, CliError> {
        let chosen = self
            .format
            .clone()
            .or_else(|| first_env(&env_nonempty, &["COFFER_FORMAT", "VAULT_FORMAT"]));
        match chosen {
            None => Ok(Format::Table),
            Some(text) => Format::parse(&text).ok_or_else(|| {
                CliError::usage(format!("Invalid output format: {text} (use table or json)"))
            }),
        }
    }

    /// The wrap TTL: `-wrap-ttl`, else `COFFER_WRAP_TTL`, else `VAULT_WRAP_TTL`; checked for
    /// duration syntax here, for range by the server.
    pub fn wrap_ttl(&self) -> Result<Option<String>, CliError> {
        let chosen = self
            .wrap_ttl
            .clone()
            .or_else(|| first_env(&env_nonempty, &["COFFER_WRAP_TTL", "VAULT_WRAP_TTL"]));
        match chosen.map(|t| t.trim().to_string()) {
            None => Ok(None),
            Some(text) if is_duration(&text) => Ok(Some(text)),
            Some(text) => Err(CliError::usage(format!(
                "Invalid wrap TTL {text:?}: expected a duration such as 300, 30s, 5m or 1h"
            ))),
        }
    }
}

/// Whether `text` is a duration as Vault's flags take it: whole seconds (`300`) or Go duration
/// syntax (`30s`, `1h30m`, `1.5h`).
pub fn is_duration(text: &str) -> bool {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[number_len..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h", "d"]
            .into_iter()
            .find(|u| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// Reads an environment variable; unset, empty and non-UTF-8 values all count as unset.
pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn first_env(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| env(name))
}

/// `-address`, else `COFFER_ADDR`, else `VAULT_ADDR`, else the default.
pub fn resolve_address(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    flag.map(str::to_string)
        .or_else(|| first_env(env, &["COFFER_ADDR", "VAULT_ADDR"]))
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_string())
}

/// `COFFER_TOKEN`, else `VAULT_TOKEN`, else the stored token file.
pub fn resolve_token(
    env: &dyn Fn(&str) -> Option<String>,
    stored: &dyn Fn() -> Option<String>,
) -> Option<String> {
    first_env(env, &["COFFER_TOKEN", "VAULT_TOKEN"])
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(stored)
}

/// The name of the environment variable that supplies the token, if one does.
pub fn token_env_var() -> Option<&'static str> {
    ["COFFER_TOKEN", "VAULT_TOKEN"]
        .into_iter()
        .find(|name| env_nonempty(name).is_some())
}

/// `~/.coffer-token`.
pub fn token_file_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(TOKEN_FILE_NAME))
}

/// The token stored by `coffer login`, trimmed; `None` if there is none.
pub fn read_stored_token() -> Option<String> {
    let path = token_file_path()?;
    let text = Zeroizing::new(std::fs::read_to_string(path).ok()?);
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Stores a token in `path` with mode 0600 (written to a temporary file, then renamed).
pub fn store_token_at(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| TOKEN_FILE_NAME.to_string());
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A failed request: either the server answered with an error status, or it could not be reached.
#[derive(Debug)]
pub enum RequestError {
    Status {
        method: String,
        url: String,
        status: u16,
        errors: Vec<String>,
    },
    Transport {
        method: String,
        url: String,
        detail: String,
    },
}

impl RequestError {
    /// `Error <action>: <details>`, exit code 1.
    pub fn context(self, action: &str) -> CliError {
        CliError::failure(format!("Error {action}: {self}"))
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Status {
                method,
                url,
                status,
                errors,
            } => {
                write!(
                    f,
                    "Error making API request.\n\nURL: {method} {url}\nCode: {status}. Errors:\n"
                )?;
                for e in errors {
                    write!(f, "\n* {e}")?;
                }
                Ok(())
            }
            RequestError::Transport {
                method,
                url,
                detail,
            } => write!(f, "{method} {url}: {detail}"),
        }
    }
}

/// A response: status and JSON body (`None` when empty or not JSON).
pub struct ApiResponse {
    pub status: u16,
    pub body: Option<Value>,
    raw: String,
    method: String,
    url: String,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a successful response, or the error.
    pub fn into_result(self) -> Result<Option<Value>, RequestError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.into_error())
        }
    }

    /// The response as an error, with the server's `errors` lines.
    pub fn into_error(self) -> RequestError {
        let mut errors: Vec<String> = self
            .body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if errors.is_empty() && self.body.is_none() {
            let text = self.raw.trim();
            if !text.is_empty() {
                errors.push(text.chars().take(500).collect());
            }
        }
        RequestError::Status {
            method: self.method,
            url: self.url,
            status: self.status,
            errors,
        }
    }
}

/// A client of the server's Vault-dialect API.
pub struct Client {
    http: HttpClient,
    base: Url,
    token: Option<Zeroizing<String>>,
    namespace: Option<String>,
    /// Sent as `X-Vault-Wrap-TTL` on every request but the internal ones (see
    /// [`Client::request_unwrapped`]).
    wrap_ttl: Option<String>,
}

impl Client {
    /// Builds a client from the flags and environment.
    pub fn from_opts(opts: &ClientOpts) -> Result<Client, CliError> {
        let address = resolve_address(opts.address.as_deref(), &env_nonempty);
        let base = Url::parse(address.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "Invalid address {address:?}: expected http(s)://host:port"
                ))
            })?;
        let token = resolve_token(&env_nonempty, &read_stored_token).map(Zeroizing::new);
        let namespace = opts
            .namespace
            .clone()
            .or_else(|| first_env(&env_nonempty, &["COFFER_NAMESPACE", "VAULT_NAMESPACE"]));
        let wrap_ttl = opts.wrap_ttl()?;
        let http = build_http(opts)?;
        Ok(Client {
            http,
            base,
            token,
            namespace,
            wrap_ttl,
        })
    }

    /// Uses `token` instead of the configured one.
    pub fn set_token(&mut self, token: &str) {
        self.token = Some(Zeroizing::new(token.to_string()));
    }

    /// Sends no token at all (logins with a method other than `token`, as Vault's CLI does).
    pub fn clear_token(&mut self) {
        self.token = None;
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Stops requesting wrapped responses (e.g. after a wrapped login was unwrapped).
    pub fn stop_wrapping(&mut self) {
        self.wrap_ttl = None;
    }

    /// The URL of an API path (`secret/data/x` → `<address>/v1/secret/data/x`), each segment
    /// percent-encoded; a trailing slash is kept.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1");
            segments.extend(path.trim_start_matches('/').split('/'));
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends a request (wrapped if `-wrap-ttl` was given); any HTTP status is `Ok`, only
    /// transport failures are `Err`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<ApiResponse, RequestError> {
        self.send(method, path, query, body, self.wrap_ttl.as_deref())
    }

    /// Like [`Client::request`], never wrapped: for the CLI's own lookups (a kv mount's version,
    /// a token's properties) whose answers it must read itself.
    pub fn request_unwrapped(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<ApiResponse, RequestError> {
        self.send(method, path, query, body, None)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        wrap_ttl: Option<&str>,
    ) -> Result<ApiResponse, RequestError> {
        let url = self.url(path, query);
        let url_text = url.to_string();
        let transport = |detail: String| RequestError::Transport {
            method: method.to_string(),
            url: url_text.clone(),
            detail,
        };
        let http_method = Method::from_bytes(method.as_bytes())
            .map_err(|_| transport("invalid HTTP method".into()))?;
        let mut request = self
            .http
            .request(http_method, url.clone())
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token.as_str());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.as_str());
        }
        if let Some(ttl) = wrap_ttl {
            request = request.header("X-Vault-Wrap-TTL", ttl);
        }
        if let Some(body) = body {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            let bytes =
                serde_json::to_vec(body).map_err(|e| transport(format!("encoding body: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = request.send().map_err(|e| transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let raw = response.text().map_err(|e| transport(error_chain(&e)))?;
        let body = if raw.trim().is_empty() {
            None
        } else {
            serde_json::from_str(&raw).ok()
        };
        Ok(ApiResponse {
            status,
            body,
            raw,
            method: method.to_string(),
            url: url_text,
        })
    }

    /// Sends a request and fails on a non-2xx status; returns the JSON body, if any.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, RequestError> {
        self.request(method, path, &[], body)?.into_result()
    }

    /// [`Client::call`] without wrapping.
    pub fn call_unwrapped(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, RequestError> {
        self.request_unwrapped(method, path, &[], body)?
            .into_result()
    }
}

/// An error with its causes (`error sending request: … : connection refused`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn build_http(opts: &ClientOpts) -> Result<HttpClient, CliError> {
    let mut builder = HttpClient::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("coffer-cli/", env!("CARGO_PKG_VERSION")))
        // Follow only method- and body-preserving redirects (a standby pointing at the active
        // node), never a 301/302/303 that would turn a write into a GET.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let preserving = matches!(attempt.status().as_u16(), 307 | 308);
            if preserving && attempt.previous().len() < 10 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }));

    let ca_cert = opts.ca_cert.clone().or_else(|| {
        first_env(&env_nonempty, &["COFFER_CACERT", "VAULT_CACERT"]).map(PathBuf::from)
    });
    let ca_path = opts.ca_path.clone().or_else(|| {
        first_env(&env_nonempty, &["COFFER_CAPATH", "VAULT_CAPATH"]).map(PathBuf::from)
    });
    let mut roots = Vec::new();
    if let Some(file) = &ca_cert {
        roots.extend(load_pem_file(file)?);
    } else if let Some(dir) = &ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            CliError::failure(format!("Error reading CA directory {}: {e}", dir.display()))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            roots.extend(load_pem_file(&file)?);
        }
    }
    if !roots.is_empty() {
        // As Vault does, a configured CA replaces the system roots.
        builder = builder.tls_certs_only(roots);
    }

    let skip_verify = match opts.tls_skip_verify {
        Some(flag) => flag,
        None => match first_env(&env_nonempty, &["COFFER_SKIP_VERIFY", "VAULT_SKIP_VERIFY"]) {
            Some(text) => parse_go_bool(&text).map_err(|e| {
                CliError::usage(format!("Invalid VAULT_SKIP_VERIFY/COFFER_SKIP_VERIFY: {e}"))
            })?,
            None => false,
        },
    };
    if skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| {
        CliError::failure(format!(
            "Error building the HTTP client: {}",
            error_chain(&e)
        ))
    })
}

fn load_pem_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CliError> {
    let pem = std::fs::read(path).map_err(|e| {
        CliError::failure(format!(
            "Error reading CA certificate {}: {e}",
            path.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        CliError::failure(format!(
            "Error parsing CA certificate {}: {}",
            path.display(),
            error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(CliError::failure(format!(
            "Error parsing CA certificate {}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn address_precedence() {
        let env = env_of(&[("COFFER_ADDR", "http://c:1"), ("VAULT_ADDR", "http://v:1")]);
        assert_eq!(resolve_address(Some("http://f:1"), &env), "http://f:1");
        assert_eq!(resolve_address(None, &env), "http://c:1");
        assert_eq!(
            resolve_address(None, &env_of(&[("VAULT_ADDR", "http://v:1")])),
            "http://v:1"
        );
        assert_eq!(resolve_address(None, &env_of(&[])), DEFAULT_ADDRESS);
    }

    #[test]
    fn token_precedence() {
        let stored = || Some("stored".to_string());
        let env = env_of(&[("COFFER_TOKEN", "c"), ("VAULT_TOKEN", "v")]);
        assert_eq!(resolve_token(&env, &stored).as_deref(), Some("c"));
        assert_eq!(
            resolve_token(&env_of(&[("VAULT_TOKEN", " v\n")]), &stored).as_deref(),
            Some("v")
        );
        assert_eq!(
            resolve_token(&env_of(&[]), &stored).as_deref(),
            Some("stored")
        );
        assert_eq!(resolve_token(&env_of(&[]), &|| None), None);
    }

    #[test]
    fn durations() {
        for ok in ["300", "30s", "5m", "1h30m", "1.5h", "100ms", "2d"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "5x", "m", "1h-", "1..5h", "-5m", "5 m"] {
            assert!(!is_duration(bad), "{bad}");
        }
        let opts = ClientOpts {
            wrap_ttl: Some("soon".into()),
            ..ClientOpts::default()
        };
        assert_eq!(opts.wrap_ttl().err().map(|e| e.code), Some(2));
        let opts = ClientOpts {
            wrap_ttl: Some(" 5m ".into()),
            ..ClientOpts::default()
        };
        assert_eq!(opts.wrap_ttl().ok().flatten().as_deref(), Some("5m"));
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("true"), Ok(true));
        assert_eq!(parse_go_bool("1"), Ok(true));
        assert_eq!(parse_go_bool("F"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
    }

    fn test_client(address: &str) -> Client {
        let opts = ClientOpts {
            address: Some(address.to_string()),
            ..ClientOpts::default()
        };
        match Client::from_opts(&opts) {
            Ok(c) => c,
            Err(e) => panic!("client: {}", e.message),
        }
    }

    #[test]
    fn urls() {
        let client = test_client("http://127.0.0.1:8200");
        assert_eq!(
            client
                .url("secret/data/a b", &[("version", "2".into())])
                .as_str(),
            "http://127.0.0.1:8200/v1/secret/data/a%20b?version=2"
        );
        assert_eq!(
            client.url("/secret/metadata/", &[]).as_str(),
            "http://127.0.0.1:8200/v1/secret/metadata/"
        );
        let prefixed = test_client("https://h/prefix/");
        assert_eq!(
            prefixed.url("sys/seal-status", &[]).as_str(),
            "https://h/prefix/v1/sys/seal-status"
        );
    }

    #[test]
    fn bad_address_is_a_usage_error() {
        let opts = ClientOpts {
            address: Some("not a url".into()),
            ..ClientOpts::default()
        };
        assert_eq!(Client::from_opts(&opts).err().map(|e| e.code), Some(2));
    }

    #[test]
    fn error_display_lists_server_errors() {
        let err = ApiResponse {
            status: 403,
            body: Some(serde_json::json!({"errors": ["permission denied"]})),
            raw: String::new(),
            method: "GET".into(),
            url: "http://h/v1/x".into(),
        }
        .into_error();
        assert!(matches!(err, RequestError::Status { status: 403, .. }));
        assert_eq!(
            err.context("reading x").message,
            "Error reading x: Error making API request.\n\nURL: GET http://h/v1/x\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Port 9 (discard) on localhost is essentially never listening.
        let client = test_client("http://127.0.0.1:9");
        match client.request("GET", "sys/health", &[], None) {
            Err(e @ RequestError::Transport { .. }) => {
                assert!(e.to_string().contains("127.0.0.1:9"))
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(r) => panic!("unexpected status {}", r.status),
        }
    }

    #[test]
    fn token_file_is_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(TOKEN_FILE_NAME);
        store_token_at(&path, "tok").unwrap_or_else(|e| panic!("{e}"));
        store_token_at(&path, "tok2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "tok2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
