//! `coffer token create|lookup|renew|revoke` and `coffer login`.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::client::{
    parse_go_bool, store_token_at, token_env_var, token_file_path, Client, ClientOpts,
};
use super::data::{key_values_to_map, parse_key_value, read_secret};
use super::error::{CliError, CliResult};
use super::output::{
    field_text, is_wrapped, print_out, print_raw, print_warnings, raw_field, render_secret, Format,
};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct TokenCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token
    Create(TokenCreate),
    /// Show a token's properties (your own if none is given)
    Lookup(TokenLookup),
    /// Renew a token's lease (your own if none is given)
    Renew(TokenRenew),
    /// Revoke a token and, unless -mode=orphan, its children
    Revoke(TokenRevoke),
}

#[derive(Args, Debug)]
pub struct TokenCreate {
    /// Policy to attach (repeatable, or comma-separated)
    #[arg(long = "policy", value_delimiter = ',', value_name = "NAME")]
    pub policies: Vec<String>,
    /// Initial TTL (e.g. 1h, 30m)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Hard limit on the token's lifetime, renewals included
    #[arg(long, value_name = "DURATION")]
    pub explicit_max_ttl: Option<String>,
    /// Make a periodic token, renewable indefinitely for this period
    #[arg(long, value_name = "DURATION")]
    pub period: Option<String>,
    /// Number of uses after which the token is revoked (0: unlimited)
    #[arg(long, value_name = "N")]
    pub use_limit: Option<u64>,
    /// Create a token with no parent, not revoked with its creator
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub orphan: bool,
    /// Whether the token can be renewed (default true)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_go_bool, value_name = "BOOL")]
    pub renewable: Option<bool>,
    /// Do not attach the default policy
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub no_default_policy: bool,
    /// Display name of the token
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// Metadata key=value (repeatable)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// Create the token from this token role
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
    /// Token type: service or batch
    #[arg(long = "type", value_name = "TYPE")]
    pub token_type: Option<String>,
    /// Explicit token ID (root tokens only)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenLookup {
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub accessor: bool,
    /// Token (or accessor) to look up; your own if not given
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenRenew {
    /// Requested lease extension (e.g. 1h)
    #[arg(long, short = 'i', value_name = "DURATION")]
    pub increment: Option<String>,
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub accessor: bool,
    /// Token to renew; your own if not given
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenRevoke {
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub accessor: bool,
    /// Revoke the token in use
    #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub revoke_self: bool,
    /// orphan: revoke only this token, leaving its children orphaned
    #[arg(long, value_parser = ["orphan"], value_name = "MODE")]
    pub mode: Option<String>,
    /// Token (or accessor) to revoke
    pub token: Option<String>,
}

pub fn run(cmd: TokenCmd) -> CliResult {
    let format = cmd.client.format()?;
    let field = cmd.client.field.clone();
    let client = Client::from_opts(&cmd.client)?;
    let out = Out {
        format,
        field: field.as_deref(),
    };
    match cmd.command {
        TokenCommand::Create(args) => create(&client, out, &args),
        TokenCommand::Lookup(args) => lookup(&client, out, &args),
        TokenCommand::Renew(args) => renew(&client, out, &args),
        TokenCommand::Revoke(args) => revoke(&client, &args),
    }
}

#[derive(Clone, Copy)]
struct Out<'a> {
    format: Format,
    field: Option<&'a str>,
}

impl Out<'_> {
    /// Prints a response: one field, or the whole response as a table or JSON.
    fn secret(&self, secret: &Value) -> CliResult {
        if let Some(field) = self.field {
            return match raw_field(secret, field) {
                Some(v) => {
                    print_raw(&field_text(&v, self.format));
                    Ok(0)
                }
                None => Err(CliError::failure(format!(
                    "Field {field:?} not present in secret"
                ))),
            };
        }
        if self.format == Format::Table {
            print_warnings(secret);
        }
        if let Some(text) = render_secret(secret, self.format) {
            print_out(&text);
        }
        Ok(0)
    }
}

/// The request body of `token create`: only the options that were given.
fn create_body(args: &TokenCreate) -> Value {
    let mut body = Map::new();
    if !args.policies.is_empty() {
        let policies: Vec<&str> = args
            .policies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .collect();
        body.insert("policies".into(), json!(policies));
    }
    let strings = [
        ("ttl", &args.ttl),
        ("explicit_max_ttl", &args.explicit_max_ttl),
        ("period", &args.period),
        ("display_name", &args.display_name),
        ("type", &args.token_type),
        ("id", &args.id),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    if let Some(n) = args.use_limit {
        body.insert("num_uses".into(), json!(n));
    }
    if args.orphan {
        body.insert("no_parent".into(), json!(true));
    }
    if let Some(r) = args.renewable {
        body.insert("renewable".into(), json!(r));
    }
    if args.no_default_policy {
        body.insert("no_default_policy".into(), json!(true));
    }
    if !args.metadata.is_empty() {
        body.insert(
            "meta".into(),
            Value::Object(key_values_to_map(&args.metadata)),
        );
    }
    Value::Object(body)
}

/// The endpoint of `token create`, as Vault's CLI chooses it.
fn create_path(args: &TokenCreate) -> String {
    match (&args.role, args.orphan) {
        (Some(role), _) => format!("auth/token/create/{}", role.trim_matches('/')),
        (None, true) => "auth/token/create-orphan".to_string(),
        (None, false) => "auth/token/create".to_string(),
    }
}

fn create(client: &Client, out: Out<'_>, args: &TokenCreate) -> CliResult {
    let body = create_body(args);
    let response = client
        .call("POST", &create_path(args), Some(&body))
        .map_err(|e| e.context("creating token"))?
        .unwrap_or(Value::Null);
    out.secret(&response)
}

fn lookup(client: &Client, out: Out<'_>, args: &TokenLookup) -> CliResult {
    let (method, path, body) = match (&args.token, args.accessor) {
        (None, true) => return Err(CliError::usage("-accessor needs an accessor argument")),
        (None, false) => ("GET", "auth/token/lookup-self", None),
        (Some(t), false) => ("POST", "auth/token/lookup", Some(json!({ "token": t }))),
        (Some(a), true) => (
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": a })),
        ),
    };
    let response = client
        .call(method, path, body.as_ref())
        .map_err(|e| e.context("looking up token"))?
        .unwrap_or(Value::Null);
    out.secret(&response)
}

fn renew(client: &Client, out: Out<'_>, args: &TokenRenew) -> CliResult {
    let mut body = Map::new();
    if let Some(inc) = &args.increment {
        body.insert("increment".into(), json!(inc));
    }
    let path = match (&args.token, args.accessor) {
        (None, true) => return Err(CliError::usage("-accessor needs an accessor argument")),
        (None, false) => "auth/token/renew-self",
        (Some(t), false) => {
            body.insert("token".into(), json!(t));
            "auth/token/renew"
        }
        (Some(a), true) => {
            body.insert("accessor".into(), json!(a));
            "auth/token/renew-accessor"
        }
    };
    let response = client
        .call("PUT", path, Some(&Value::Object(body)))
        .map_err(|e| e.context("renewing token"))?
        .unwrap_or(Value::Null);
    out.secret(&response)
}

/// The endpoint and body of `token revoke`, or a usage error.
fn revoke_request(args: &TokenRevoke) -> Result<(&'static str, Option<Value>), CliError> {
    let orphan = args.mode.as_deref() == Some("orphan");
    if args.revoke_self {
        if args.token.is_some() {
            return Err(CliError::usage("Tokens cannot be specified with -self"));
        }
        if args.accessor || orphan {
            return Err(CliError::usage(
                "-self cannot be combined with -accessor or -mode",
            ));
        }
        return Ok(("auth/token/revoke-self", None));
    }
    let Some(token) = &args.token else {
        return Err(CliError::usage(
            "Not enough arguments: a token (or -self) is required",
        ));
    };
    match (args.accessor, orphan) {
        (true, true) => Err(CliError::usage(
            "-mode=orphan cannot be used with -accessor",
        )),
        (true, false) => Ok((
            "auth/token/revoke-accessor",
            Some(json!({ "accessor": token })),
        )),
        (false, true) => Ok(("auth/token/revoke-orphan", Some(json!({ "token": token })))),
        (false, false) => Ok(("auth/token/revoke", Some(json!({ "token": token })))),
    }
}

fn revoke(client: &Client, args: &TokenRevoke) -> CliResult {
    let (path, body) = revoke_request(args)?;
    client
        .call("PUT", path, body.as_ref())
        .map_err(|e| e.context("revoking token"))?;
    print_out("Success! Revoked token (if it existed)");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LoginCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Auth method: token (default), userpass or approle
    #[arg(long, default_value = "token", value_name = "METHOD")]
    pub method: String,
    /// Mount path of the auth method (default: the method's name)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Do not store the token in ~/.coffer-token
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub no_store: bool,
    /// Do not print the token information
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub no_print: bool,
    /// Print only the token, and do not store it (shortcut for -field=token -no-store)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub token_only: bool,
    /// token method: the token (or token=..., or - for stdin; prompted for if absent);
    /// other methods: key=value credentials (username=bob [password=...], role_id=...
    /// secret_id=...); a value may be @file or - (stdin)
    #[arg(value_name = "TOKEN | K=V")]
    pub args: Vec<String>,
}

/// Where credential values written as `-` and `@file` are read from; injectable for tests.
struct CredentialSources<'a> {
    stdin: &'a mut dyn FnMut() -> Result<Zeroizing<String>, String>,
    read_file: &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
}

/// Parses `key=value` login credentials as Vault's login does: `key=-` reads stdin (once),
/// `key=@file` a file (`key=\@x` is the literal `@x`); values read are stripped of a trailing
/// newline. Errors never quote a value.
fn credentials_from(
    args: &[String],
    sources: CredentialSources<'_>,
) -> Result<Map<String, Value>, CliError> {
    let mut map = Map::new();
    let mut stdin_used = false;
    for (i, raw) in args.iter().enumerate() {
        let position = i + 1;
        let Some((k, v)) = raw.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(CliError::usage(format!(
                "Argument {position} is not in key=value form"
            )));
        };
        let value = if v == "-" {
            if stdin_used {
                return Err(CliError::usage(
                    "Only one credential can be read from stdin",
                ));
            }
            stdin_used = true;
            let text = (sources.stdin)()
                .map_err(|e| CliError::failure(format!("Error reading {k} from stdin: {e}")))?;
            text.as_str().to_string()
        } else if let Some(path) = v.strip_prefix('@') {
            let bytes =
                Zeroizing::new((sources.read_file)(Path::new(path)).map_err(|e| {
                    CliError::failure(format!("Error reading {k} from {path}: {e}"))
                })?);
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                CliError::failure(format!("Error reading {k} from {path}: not valid UTF-8"))
            })?;
            text.trim_end_matches(['\n', '\r']).to_string()
        } else if let Some(rest) = v.strip_prefix("\\@") {
            format!("@{rest}")
        } else {
            v.to_string()
        };
        map.insert(k.to_string(), json!(value));
    }
    Ok(map)
}

fn credentials(args: &[String]) -> Result<Map<String, Value>, CliError> {
    credentials_from(
        args,
        CredentialSources {
            stdin: &mut || read_secret(Some("-"), ""),
            read_file: &|path| std::fs::read(path),
        },
    )
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Authenticates and returns the response, shaped as Vault's `auth` envelope (or, with
/// `-wrap-ttl`, the wrapped response).
fn authenticate(client: &mut Client, cmd: &LoginCmd) -> Result<Value, CliError> {
    let method = cmd.method.trim().to_ascii_lowercase();
    let mount = cmd.path.clone().unwrap_or_else(|| method.clone());
    let mount = mount.trim().trim_matches('/');
    let mount = mount.strip_prefix("auth/").unwrap_or(mount);
    if mount.is_empty() {
        return Err(CliError::usage("-path must not be empty"));
    }
    if method != "token" {
        // As Vault's CLI does: a stale stored token must not get in the way of a login.
        client.clear_token();
    }
    match method.as_str() {
        "token" => {
            let arg = match cmd.args.as_slice() {
                [] => None,
                [one] => Some(one.strip_prefix("token=").unwrap_or(one).to_string()),
                _ => {
                    return Err(CliError::usage(
                        "Too many arguments: expected at most one token",
                    ))
                }
            };
            let token = read_secret(arg.as_deref(), "Token (will be hidden): ")
                .map_err(|e| CliError::failure(format!("Error reading token: {e}")))?;
            client.set_token(&token);
            // The lookup only validates the token: it is never wrapped.
            let lookup = client
                .call_unwrapped("GET", "auth/token/lookup-self", None)
                .map_err(|e| e.context("looking up token"))?
                .unwrap_or(Value::Null);
            Ok(token_lookup_as_auth(&lookup, &token))
        }
        "userpass" => {
            let mut creds = credentials(&cmd.args)?;
            let username = take_string(&mut creds, "username")
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| CliError::usage("Missing username=..."))?;
            if username.contains('/') {
                return Err(CliError::usage("The username must not contain \"/\""));
            }
            if !creds.contains_key("password") {
                let password = read_secret(None, "Password (will be hidden): ")
                    .map_err(|e| CliError::failure(format!("Error reading password: {e}")))?;
                creds.insert("password".into(), json!(password.as_str()));
            }
            let path = format!("auth/{mount}/login/{username}");
            login_call(client, &path, creds)
        }
        "approle" => {
            let creds = credentials(&cmd.args)?;
            if !creds.contains_key("role_id") {
                return Err(CliError::usage("Missing role_id=..."));
            }
            login_call(client, &format!("auth/{mount}/login"), creds)
        }
        other => Err(CliError::usage(format!(
            "Unsupported login method: {other} (supported: token, userpass, approle)"
        ))),
    }
}

fn has_auth(secret: &Value) -> bool {
    secret.get("auth").is_some_and(Value::is_object)
}

fn login_call(client: &Client, path: &str, creds: Map<String, Value>) -> Result<Value, CliError> {
    client
        .call("POST", path, Some(&Value::Object(creds)))
        .map_err(|e| e.context("authenticating"))?
        .filter(|b| has_auth(b) || is_wrapped(b))
        .ok_or_else(|| {
            CliError::failure("Error authenticating: no authentication information in the response")
        })
}

/// Unwraps a wrapped login response with its wrapping token, as `coffer unwrap` would.
fn unwrap_login(client: &mut Client, wrapped: &Value) -> Result<Value, CliError> {
    let token = wrapped
        .get("wrap_info")
        .and_then(|w| w.get("token"))
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::failure("Error unwrapping: no wrapping token in the response"))?;
    let token = Zeroizing::new(token.to_string());
    client.set_token(&token);
    client
        .call_unwrapped("POST", "sys/wrapping/unwrap", None)
        .map_err(|e| e.context("unwrapping the login response"))?
        .filter(has_auth)
        .ok_or_else(|| {
            CliError::failure(
                "Error unwrapping: no authentication information in the wrapped response",
            )
        })
}

/// Shapes a `lookup-self` answer like a login response (`auth` with the token's properties).
fn token_lookup_as_auth(lookup: &Value, token: &str) -> Value {
    let data = lookup.get("data").cloned().unwrap_or(Value::Null);
    let get = |k: &str| data.get(k).cloned().unwrap_or(Value::Null);
    let policies = get("policies");
    json!({
        "request_id": lookup.get("request_id").cloned().unwrap_or(Value::Null),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": lookup.get("warnings").cloned().unwrap_or(Value::Null),
        "auth": {
            "client_token": token,
            "accessor": get("accessor"),
            "policies": policies,
            "token_policies": policies,
            "identity_policies": get("identity_policies"),
            "metadata": get("meta"),
            "lease_duration": get("ttl"),
            "renewable": get("renewable"),
        },
    })
}

pub fn run_login(cmd: LoginCmd) -> CliResult {
    let format = cmd.client.format()?;
    let no_store = cmd.no_store || cmd.token_only;
    let field = if cmd.token_only {
        Some("token")
    } else {
        cmd.client.field.as_deref()
    };
    let mut client = Client::from_opts(&cmd.client)?;
    let mut secret = authenticate(&mut client, &cmd)?;
    if is_wrapped(&secret) {
        if no_store {
            // As Vault does: with nowhere to store it, the wrapped token is printed, not unwrapped.
            let field = if cmd.token_only {
                Some("wrapping_token")
            } else {
                field
            };
            if cmd.no_print && field.is_none() {
                return Ok(0);
            }
            return Out { format, field }.secret(&secret);
        }
        client.stop_wrapping();
        secret = unwrap_login(&mut client, &secret)?;
    }
    let token = secret
        .get("auth")
        .and_then(|a| a.get("client_token"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let token = Zeroizing::new(token);
    if token.is_empty() {
        return Err(CliError::failure(
            "Error authenticating: the server returned no token",
        ));
    }
    if !no_store {
        let path = token_file_path().ok_or_else(|| {
            CliError::failure("Error storing token: HOME is not set (use -no-store)")
        })?;
        store_token_at(&path, &token).map_err(|e| {
            CliError::failure(format!("Error storing token in {}: {e}", path.display()))
        })?;
    }
    if let Some(var) = token_env_var().filter(|_| !no_store) {
        eprintln!(
            "WARNING! The {var} environment variable is set! It takes precedence over the\n\
             token stored by login; unset it or update its value if that is unwanted.\n"
        );
    }
    if let Some(field) = field {
        return Out {
            format,
            field: Some(field),
        }
        .secret(&secret);
    }
    if cmd.no_print {
        return Ok(0);
    }
    if format == Format::Table {
        if no_store {
            print_out(
                "Success! You are now authenticated. The token information displayed below is\n\
                 NOT stored; export it as COFFER_TOKEN (or pass it on) to use it.\n\n",
            );
        } else {
            print_out(
                "Success! You are now authenticated. The token information displayed below\n\
                 is already stored in ~/.coffer-token. You do NOT need to run \"coffer login\"\n\
                 again. Future requests will automatically use this token.\n\n",
            );
        }
    }
    Out {
        format,
        field: None,
    }
    .secret(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_args() -> TokenCreate {
        TokenCreate {
            policies: vec![],
            ttl: None,
            explicit_max_ttl: None,
            period: None,
            use_limit: None,
            orphan: false,
            renewable: None,
            no_default_policy: false,
            display_name: None,
            metadata: vec![],
            role: None,
            token_type: None,
            id: None,
        }
    }

    #[test]
    fn create_body_only_has_given_options() {
        assert_eq!(create_body(&create_args()), json!({}));
        let args = TokenCreate {
            policies: vec!["a".into(), "b".into()],
            ttl: Some("1h".into()),
            explicit_max_ttl: Some("24h".into()),
            period: Some("30m".into()),
            use_limit: Some(3),
            orphan: true,
            renewable: Some(false),
            display_name: Some("ci".into()),
            metadata: vec![("team".into(), "ops".into())],
            ..create_args()
        };
        assert_eq!(
            create_body(&args),
            json!({"policies": ["a", "b"], "ttl": "1h", "explicit_max_ttl": "24h", "period": "30m",
                   "num_uses": 3, "no_parent": true, "renewable": false, "display_name": "ci",
                   "meta": {"team": "ops"}})
        );
        assert_eq!(create_path(&args), "auth/token/create-orphan");
        let role = TokenCreate {
            role: Some("web".into()),
            ..create_args()
        };
        assert_eq!(create_path(&role), "auth/token/create/web");
        assert_eq!(create_path(&create_args()), "auth/token/create");
    }

    fn revoke_args(
        token: Option<&str>,
        accessor: bool,
        revoke_self: bool,
        mode: Option<&str>,
    ) -> TokenRevoke {
        TokenRevoke {
            accessor,
            revoke_self,
            mode: mode.map(str::to_string),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn revoke_endpoints() {
        let path = |a: TokenRevoke| revoke_request(&a).map(|(p, _)| p).map_err(|e| e.code);
        assert_eq!(
            path(revoke_args(Some("t"), false, false, None)),
            Ok("auth/token/revoke")
        );
        assert_eq!(
            path(revoke_args(Some("a"), true, false, None)),
            Ok("auth/token/revoke-accessor")
        );
        assert_eq!(
            path(revoke_args(Some("t"), false, false, Some("orphan"))),
            Ok("auth/token/revoke-orphan")
        );
        assert_eq!(
            path(revoke_args(None, false, true, None)),
            Ok("auth/token/revoke-self")
        );
        assert_eq!(path(revoke_args(Some("t"), false, true, None)), Err(2));
        assert_eq!(path(revoke_args(None, false, false, None)), Err(2));
    }

    #[test]
    fn lookup_becomes_auth() {
        let lookup = json!({"data": {"accessor": "acc", "policies": ["root"], "ttl": 0, "renewable": false}});
        let secret = token_lookup_as_auth(&lookup, "tok");
        assert_eq!(raw_field(&secret, "token"), Some(json!("tok")));
        assert_eq!(raw_field(&secret, "token_accessor"), Some(json!("acc")));
        assert_eq!(raw_field(&secret, "policies"), Some(json!(["root"])));
    }

    #[test]
    fn login_credentials() {
        let creds = credentials(&["username=bob".into(), "password=p=w".into()]).ok();
        assert_eq!(
            creds.map(Value::Object),
            Some(json!({"username": "bob", "password": "p=w"}))
        );
        let err = credentials(&["s3cret".into()]).err();
        assert!(err.is_some_and(|e| e.code == 2 && !e.message.contains("s3cret")));
    }

    #[test]
    fn login_credentials_from_stdin_and_files() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let mut stdin = || Ok(Zeroizing::new("from-stdin".to_string()));
            let read_file = |path: &Path| {
                if path == Path::new("/sid") {
                    Ok(b"from-file\n".to_vec())
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::NotFound, "nope"))
                }
            };
            credentials_from(
                &args,
                CredentialSources {
                    stdin: &mut stdin,
                    read_file: &read_file,
                },
            )
            .map(Value::Object)
            .map_err(|e| (e.code, e.message))
        };
        assert_eq!(
            parse(&["role_id=r", "secret_id=@/sid", "x=-", "lit=\\@at"]),
            Ok(json!({"role_id": "r", "secret_id": "from-file", "x": "from-stdin", "lit": "@at"}))
        );
        assert!(matches!(parse(&["a=-", "b=-"]), Err((2, _))));
        assert!(matches!(parse(&["a=@/missing"]), Err((1, m)) if m.contains("/missing")));
    }

    #[test]
    fn wrapped_login_responses_pass() {
        let wrapped = json!({"wrap_info": {"token": "wt"}, "auth": null});
        assert!(is_wrapped(&wrapped) && !has_auth(&wrapped));
        assert!(has_auth(&json!({"auth": {"client_token": "t"}})));
    }
}
