//! The generic commands `read`, `write`, `list` and `delete` on any API path (`/v1/<path>`),
//! and `unwrap`, which reads a wrapped response.

use clap::Args;
use serde_json::{json, Value};

use super::client::{parse_go_bool, Client, ClientOpts};
use super::data::{parse_data_args_from_env, read_secret};
use super::error::{CliError, CliResult, EXIT_USAGE};
use super::kv::list_keys;
use super::output::{
    field_text, normalize_secret, print_out, print_raw, print_warnings, raw_field, render_list,
    render_secret, Format,
};

#[derive(Args, Debug)]
pub struct ReadCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    pub path: String,
    /// Query parameters as key=value
    #[arg(value_name = "K=V")]
    pub params: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WriteCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Write even without data
    #[arg(long, short = 'f', num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub force: bool,
    pub path: String,
    /// Data: key=value, key=@file, key=- (stdin), @file.json or - (a JSON object)
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ListCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    pub path: String,
}

#[derive(Args, Debug)]
pub struct DeleteCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    pub path: String,
    /// Query parameters as key=value
    #[arg(value_name = "K=V")]
    pub params: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UnwrapCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    /// Wrapping token (- to read it from stdin); without it, the token in use is taken as the
    /// wrapping token
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
}

fn api_path(path: &str) -> Result<String, CliError> {
    let trimmed = path.trim().trim_start_matches('/');
    let trimmed = trimmed.strip_prefix("v1/").unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(CliError::usage("Missing path"));
    }
    Ok(trimmed.to_string())
}

fn query_params(params: &[String]) -> Result<Vec<(&str, String)>, CliError> {
    params
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            raw.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k, v.to_string()))
                .ok_or_else(|| {
                    CliError::usage(format!("Argument {} is not in key=value form", i + 2))
                })
        })
        .collect()
}

/// Prints a response (a `-field`, or the whole response) in the chosen format.
pub fn print_secret(secret: &Value, format: Format, field: Option<&str>) -> CliResult {
    if let Some(field) = field {
        return match raw_field(secret, field) {
            Some(v) => {
                print_raw(&field_text(&v, format));
                Ok(0)
            }
            None => Err(CliError::failure(format!(
                "Field {field:?} not present in secret"
            ))),
        };
    }
    if format == Format::Table {
        print_warnings(secret);
    }
    if let Some(text) = render_secret(secret, format) {
        print_out(&text);
    }
    Ok(0)
}

pub fn run_read(cmd: ReadCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    let path = api_path(&cmd.path)?;
    let query = query_params(&cmd.params)?;
    let response = client
        .request("GET", &path, &query, None)
        .map_err(|e| e.context(&format!("reading {path}")))?;
    let not_found = || CliError::with_code(EXIT_USAGE, format!("No value found at {path}"));
    if response.status == 404 {
        let has_data = response
            .body
            .as_ref()
            .and_then(|b| b.get("data"))
            .is_some_and(|d| !d.is_null());
        if !has_data {
            return Err(not_found());
        }
    }
    let status = response.status;
    let body = if status == 404 {
        response.body
    } else {
        response
            .into_result()
            .map_err(|e| e.context(&format!("reading {path}")))?
    };
    let Some(body) = body else {
        return Err(not_found());
    };
    print_secret(&normalize_secret(body), format, cmd.client.field.as_deref())
}

pub fn run_write(cmd: WriteCmd) -> CliResult {
    let format = cmd.client.format()?;
    let path = api_path(&cmd.path)?;
    let data = parse_data_args_from_env(&cmd.data)
        .map_err(|e| CliError::usage(format!("Failed to parse K=V data: {e}")))?;
    if data.is_empty() && !cmd.force {
        return Err(CliError::usage("Must supply data or use -force"));
    }
    let client = Client::from_opts(&cmd.client)?;
    let body = client
        .call("PUT", &path, Some(&Value::Object(data)))
        .map_err(|e| e.context(&format!("writing data to {path}")))?;
    match body {
        None => {
            print_out(&format!("Success! Data written to: {path}"));
            Ok(0)
        }
        Some(body) => {
            let secret = normalize_secret(body);
            if cmd.client.field.is_none()
                && format == Format::Table
                && render_secret(&secret, Format::Table).is_none()
            {
                print_warnings(&secret);
                print_out(&format!("Success! Data written to: {path}"));
                return Ok(0);
            }
            print_secret(&secret, format, cmd.client.field.as_deref())
        }
    }
}

/// The body of an unwrap request: the wrapping token, if one was given (otherwise the request's
/// own token is the wrapping token).
fn unwrap_body(token: Option<&str>) -> Result<Option<Value>, CliError> {
    let Some(arg) = token.map(str::trim) else {
        return Ok(None);
    };
    let token = read_secret(Some(arg), "")
        .map_err(|e| CliError::failure(format!("Error reading the wrapping token: {e}")))?;
    if token.is_empty() {
        return Err(CliError::usage("The wrapping token must not be empty"));
    }
    Ok(Some(json!({ "token": token.as_str() })))
}

pub fn run_unwrap(cmd: UnwrapCmd) -> CliResult {
    let format = cmd.client.format()?;
    let body = unwrap_body(cmd.token.as_deref())?;
    let client = Client::from_opts(&cmd.client)?;
    if body.is_none() && !client.has_token() {
        return Err(CliError::usage(
            "No wrapping token: give it as an argument, or as the token in use (COFFER_TOKEN)",
        ));
    }
    let secret = client
        .call("POST", "sys/wrapping/unwrap", body.as_ref())
        .map_err(|e| e.context("unwrapping"))?
        .ok_or_else(|| CliError::with_code(EXIT_USAGE, "Could not find wrapped response"))?;
    let field = cmd.client.field.as_deref();
    // A wrapped list prints as a list, as `coffer list` would have.
    let keys = secret
        .get("data")
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array);
    match keys {
        Some(keys) if field.is_none() => {
            if format == Format::Table {
                print_warnings(&secret);
            }
            print_out(&render_list(keys, format));
            Ok(0)
        }
        _ => print_secret(&secret, format, field),
    }
}

pub fn run_list(cmd: ListCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    let path = api_path(&cmd.path)?;
    list_keys(&client, &path, format)
}

pub fn run_delete(cmd: DeleteCmd) -> CliResult {
    let path = api_path(&cmd.path)?;
    let query = query_params(&cmd.params)?;
    let client = Client::from_opts(&cmd.client)?;
    client
        .request("DELETE", &path, &query, None)
        .map_err(|e| e.context(&format!("deleting {path}")))?
        .into_result()
        .map_err(|e| e.context(&format!("deleting {path}")))?;
    print_out(&format!("Success! Data deleted (if it existed) at: {path}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(api_path("/v1/secret/x").ok().as_deref(), Some("secret/x"));
        assert_eq!(api_path("sys/mounts").ok().as_deref(), Some("sys/mounts"));
        assert_eq!(api_path("/").err().map(|e| e.code), Some(2));
    }

    #[test]
    fn query() {
        let params = vec!["version=2".to_string(), "list=true".to_string()];
        let parsed = query_params(&params).ok();
        assert_eq!(
            parsed,
            Some(vec![
                ("version", "2".to_string()),
                ("list", "true".to_string())
            ])
        );
        assert!(query_params(&["oops".to_string()]).is_err());
    }

    #[test]
    fn unwrap_bodies() {
        assert_eq!(unwrap_body(None).ok(), Some(None));
        assert_eq!(
            unwrap_body(Some(" wt ")).ok(),
            Some(Some(json!({"token": "wt"})))
        );
        assert_eq!(unwrap_body(Some("")).err().map(|e| e.code), Some(2));
    }
}
