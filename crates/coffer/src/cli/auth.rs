//! `coffer auth enable|disable|list|tune`: auth method mounts at `sys/auth`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{parse_go_bool, Client, ClientOpts};
use super::data::{key_values_to_map, parse_key_value};
use super::error::{CliError, CliResult};
use super::generic::print_secret;
use super::output::{is_wrapped, json_pretty, print_out, print_warnings, Format};
use super::secrets::{mount_name, mounts_of, mounts_table};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct AuthCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: AuthCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enable an auth method: approle, userpass or aws-access-keys
    Enable(AuthEnable),
    /// Disable the auth method at PATH, revoking the tokens it issued
    Disable(AuthPath),
    /// List the enabled auth methods
    List(AuthList),
    /// Change an auth method's settings
    Tune(AuthTune),
}

#[derive(Args, Debug)]
pub struct AuthEnable {
    /// Mount path under auth/ (default: the method type)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Human-readable description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Default TTL of the tokens it issues (e.g. 1h)
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum TTL of the tokens it issues (e.g. 24h)
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Whether the UI lists the method on its login page: unauth or hidden
    #[arg(long, value_name = "VISIBILITY")]
    pub listing_visibility: Option<String>,
    /// Method option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    /// Mount only on this cluster (not replicated)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub local: bool,
    /// Auth method type
    #[arg(value_name = "TYPE")]
    pub method: String,
}

#[derive(Args, Debug)]
pub struct AuthPath {
    #[arg(value_name = "PATH")]
    pub path: String,
}

#[derive(Args, Debug)]
pub struct AuthList {
    /// Show more columns (TTLs, options, …)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub detailed: bool,
}

#[derive(Args, Debug)]
pub struct AuthTune {
    /// Default TTL of the tokens it issues (e.g. 1h)
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum TTL of the tokens it issues (e.g. 24h)
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Human-readable description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Whether the UI lists the method on its login page: unauth or hidden
    #[arg(long, value_name = "VISIBILITY")]
    pub listing_visibility: Option<String>,
    /// Method option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    #[arg(value_name = "PATH")]
    pub path: String,
}

/// A mount path given with or without its `auth/` prefix (`auth/approle` and `approle` alike).
fn auth_mount(path: &str) -> Result<String, CliError> {
    let name = mount_name(path)?;
    match name.strip_prefix("auth/") {
        Some(rest) => mount_name(rest),
        None => Ok(name),
    }
}

pub fn run(cmd: AuthCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        AuthCommand::Enable(args) => enable(&client, &args),
        AuthCommand::Disable(args) => {
            let mount = auth_mount(&args.path)?;
            client
                .call("DELETE", &format!("sys/auth/{mount}"), None)
                .map_err(|e| e.context(&format!("disabling auth method at {mount}/")))?;
            print_out(&format!(
                "Success! Disabled the auth method (if it existed) at: {mount}/"
            ));
            Ok(0)
        }
        AuthCommand::List(args) => list(&client, format, cmd.client.field.as_deref(), &args),
        AuthCommand::Tune(args) => {
            let mount = auth_mount(&args.path)?;
            client
                .call(
                    "POST",
                    &format!("sys/auth/{mount}/tune"),
                    Some(&tune_body(&args)),
                )
                .map_err(|e| e.context(&format!("tuning auth method {mount}/")))?;
            print_out(&format!("Success! Tuned the auth method at: {mount}/"));
            Ok(0)
        }
    }
}

/// The mount path and `sys/auth` body of `auth enable`.
fn enable_request(args: &AuthEnable) -> Result<(String, Value), CliError> {
    let method = args.method.trim();
    if method.is_empty() {
        return Err(CliError::usage("Auth method type must not be empty"));
    }
    let mount = auth_mount(args.path.as_deref().unwrap_or(method))?;
    let mut body = Map::new();
    body.insert("type".into(), json!(method));
    body.insert(
        "description".into(),
        json!(args.description.as_deref().unwrap_or_default()),
    );
    let mut config = Map::new();
    let settings = [
        ("default_lease_ttl", &args.default_lease_ttl),
        ("max_lease_ttl", &args.max_lease_ttl),
        ("listing_visibility", &args.listing_visibility),
    ];
    for (key, value) in settings {
        if let Some(v) = value {
            config.insert(key.into(), json!(v));
        }
    }
    if !config.is_empty() {
        body.insert("config".into(), Value::Object(config));
    }
    if !args.options.is_empty() {
        body.insert(
            "options".into(),
            Value::Object(key_values_to_map(&args.options)),
        );
    }
    if args.local {
        body.insert("local".into(), json!(true));
    }
    Ok((mount, Value::Object(body)))
}

fn enable(client: &Client, args: &AuthEnable) -> CliResult {
    let (mount, body) = enable_request(args)?;
    let method = args.method.trim();
    client
        .call("POST", &format!("sys/auth/{mount}"), Some(&body))
        .map_err(|e| e.context(&format!("enabling {method} auth")))?;
    print_out(&format!(
        "Success! Enabled {method} auth method at: {mount}/"
    ));
    Ok(0)
}

/// The body of `auth tune`: only the settings that were given.
fn tune_body(args: &AuthTune) -> Value {
    let mut body = Map::new();
    let settings = [
        ("default_lease_ttl", &args.default_lease_ttl),
        ("max_lease_ttl", &args.max_lease_ttl),
        ("description", &args.description),
        ("listing_visibility", &args.listing_visibility),
    ];
    for (key, value) in settings {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    if !args.options.is_empty() {
        body.insert(
            "options".into(),
            Value::Object(key_values_to_map(&args.options)),
        );
    }
    Value::Object(body)
}

fn list(client: &Client, format: Format, field: Option<&str>, args: &AuthList) -> CliResult {
    let body = client
        .call("GET", "sys/auth", None)
        .map_err(|e| e.context("listing enabled authentications"))?
        .unwrap_or(Value::Null);
    if is_wrapped(&body) {
        return print_secret(&body, format, field);
    }
    let mounts = mounts_of(&body);
    match format {
        Format::Json => print_out(&json_pretty(&Value::Object(mounts))),
        Format::Table => {
            print_warnings(&body);
            print_out(&mounts_table(&mounts, args.detailed));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable_args(method: &str) -> AuthEnable {
        AuthEnable {
            path: None,
            description: None,
            default_lease_ttl: None,
            max_lease_ttl: None,
            listing_visibility: None,
            options: vec![],
            local: false,
            method: method.into(),
        }
    }

    #[test]
    fn enable_requests() {
        let req = |a: &AuthEnable| enable_request(a).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(
            req(&enable_args("approle")),
            (
                "approle".to_string(),
                json!({"type": "approle", "description": ""})
            )
        );
        let args = AuthEnable {
            path: Some("auth/people/".into()),
            description: Some("humans".into()),
            max_lease_ttl: Some("8h".into()),
            local: true,
            ..enable_args("userpass")
        };
        assert_eq!(
            req(&args),
            (
                "people".to_string(),
                json!({"type": "userpass", "description": "humans",
                       "config": {"max_lease_ttl": "8h"}, "local": true})
            )
        );
        assert_eq!(
            enable_request(&enable_args(" ")).err().map(|e| e.code),
            Some(2)
        );
        assert_eq!(
            auth_mount("/auth/approle/").ok().as_deref(),
            Some("approle")
        );
        assert_eq!(auth_mount("/").err().map(|e| e.code), Some(2));
    }

    #[test]
    fn tune_bodies() {
        let args = AuthTune {
            default_lease_ttl: Some("1h".into()),
            max_lease_ttl: None,
            description: Some("d".into()),
            listing_visibility: None,
            options: vec![],
            path: "approle".into(),
        };
        assert_eq!(
            tune_body(&args),
            json!({"default_lease_ttl": "1h", "description": "d"})
        );
    }
}
