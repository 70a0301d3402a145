//! `coffer policy write|read|list|delete`: ACL policies at `sys/policies/acl/<name>`.

use std::io::Read;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{Client, ClientOpts};
use super::error::{CliError, CliResult, EXIT_USAGE};
use super::kv::list_keys;
use super::output::{json_pretty, print_out, Format};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct PolicyCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Upload a policy from a file (or - for stdin)
    Write(PolicyWrite),
    /// Print a policy's text
    Read(PolicyName),
    /// List the policies
    List,
    /// Delete a policy
    Delete(PolicyName),
}

#[derive(Args, Debug)]
pub struct PolicyWrite {
    pub name: String,
    /// File with the policy (HCL or JSON), or - for stdin
    pub file: String,
}

#[derive(Args, Debug)]
pub struct PolicyName {
    pub name: String,
}

fn policy_path(name: &str) -> Result<String, CliError> {
    let name = name.trim().trim_matches('/');
    if name.is_empty() {
        return Err(CliError::usage("Policy name must not be empty"));
    }
    Ok(format!("sys/policies/acl/{name}"))
}

pub fn run(cmd: PolicyCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        PolicyCommand::Write(args) => write(&client, &args),
        PolicyCommand::Read(args) => read(&client, format, &args.name),
        PolicyCommand::List => list_keys(&client, "sys/policies/acl", format),
        PolicyCommand::Delete(args) => {
            let path = policy_path(&args.name)?;
            client
                .call("DELETE", &path, None)
                .map_err(|e| e.context(&format!("deleting {}", args.name)))?;
            print_out(&format!("Success! Deleted policy: {}", args.name));
            Ok(0)
        }
    }
}

fn write(client: &Client, args: &PolicyWrite) -> CliResult {
    let path = policy_path(&args.name)?;
    let text = if args.file == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| CliError::failure(format!("Error reading policy from stdin: {e}")))?;
        buf
    } else {
        std::fs::read_to_string(&args.file).map_err(|e| {
            CliError::failure(format!("Error reading policy file {}: {e}", args.file))
        })?
    };
    client
        .call("PUT", &path, Some(&json!({ "policy": text })))
        .map_err(|e| e.context(&format!("uploading policy {}", args.name)))?;
    print_out(&format!("Success! Uploaded policy: {}", args.name));
    Ok(0)
}

fn read(client: &Client, format: Format, name: &str) -> CliResult {
    let path = policy_path(name)?;
    let response = client
        .request("GET", &path, &[], None)
        .map_err(|e| e.context(&format!("reading policy {name}")))?;
    if response.status == 404 {
        return Err(CliError::with_code(
            EXIT_USAGE,
            format!("No policy named: {name}"),
        ));
    }
    let body = response
        .into_result()
        .map_err(|e| e.context(&format!("reading policy {name}")))?
        .unwrap_or(Value::Null);
    if format == Format::Json {
        print_out(&json_pretty(&body));
        return Ok(0);
    }
    let text = policy_text(&body)
        .ok_or_else(|| CliError::with_code(EXIT_USAGE, format!("No policy named: {name}")))?;
    print_out(&text);
    Ok(0)
}

/// The policy text of a read answer (`data.policy`, or Vault's older `rules`).
fn policy_text(body: &Value) -> Option<String> {
    let data = body.get("data").filter(|d| d.is_object()).unwrap_or(body);
    ["policy", "rules"]
        .iter()
        .find_map(|k| data.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_text() {
        assert_eq!(
            policy_path("/web/").ok().as_deref(),
            Some("sys/policies/acl/web")
        );
        assert_eq!(policy_path(" ").err().map(|e| e.code), Some(2));
        let body = json!({"data": {"name": "web", "policy": "path \"x\" {}"}});
        assert_eq!(policy_text(&body).as_deref(), Some("path \"x\" {}"));
        assert_eq!(policy_text(&json!({"rules": "r"})).as_deref(), Some("r"));
        assert_eq!(policy_text(&json!({"data": {}})), None);
    }
}
