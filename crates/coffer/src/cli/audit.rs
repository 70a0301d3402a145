//! `coffer audit list|enable|disable|verify`: audit devices and offline log verification.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{env_nonempty, Client, ClientOpts};
use super::data::parse_key_value;
use super::error::{CliError, CliResult, EXIT_FAILURE};
use super::generic::print_secret;
use super::output::{is_wrapped, json_pretty, print_out, Format};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct AuditCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List the enabled audit devices
    List,
    /// Enable an audit device: `coffer audit enable file file_path=/var/log/coffer-audit.log`
    Enable(AuditEnable),
    /// Disable the audit device at PATH
    Disable(AuditPath),
    /// Verify the hash chain of audit log files (a rotated set oldest first)
    Verify(AuditVerify),
}

#[derive(Args, Debug)]
pub struct AuditEnable {
    /// Where to mount the device (default: the type)
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Device type: file, socket or syslog
    pub kind: String,
    /// Options as key=value
    pub options: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AuditPath {
    pub path: String,
}

#[derive(Args, Debug)]
pub struct AuditVerify {
    /// The device's chain key (hex). Without it the key and the device's last position are
    /// fetched from the server (`sys/audit-chain/<device>`, needs sudo), which also detects a
    /// truncated tail. [env: COFFER_AUDIT_CHAIN_KEY]
    #[arg(long)]
    pub key: Option<String>,
    /// The audit device the files come from (default: the only enabled device)
    #[arg(long)]
    pub device: Option<String>,
    /// Log files, oldest first
    #[arg(required = true)]
    pub files: Vec<String>,
}

pub fn run(cmd: AuditCmd) -> CliResult {
    let format = cmd.client.format()?;
    match cmd.command {
        AuditCommand::Verify(args) => verify(&cmd.client, &args),
        AuditCommand::List => {
            let client = Client::from_opts(&cmd.client)?;
            let body = client
                .call("GET", "sys/audit", None)
                .map_err(|e| e.context("listing audit devices"))?
                .unwrap_or(Value::Null);
            if is_wrapped(&body) {
                return print_secret(&body, format, cmd.client.field.as_deref());
            }
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            if format == Format::Json {
                print_out(&json_pretty(&data));
                return Ok(0);
            }
            let Some(devices) = data.as_object().filter(|m| !m.is_empty()) else {
                print_out("No audit devices are enabled.");
                return Ok(0);
            };
            let mut lines = vec!["Path    Type    Description".to_string()];
            for (path, d) in devices {
                lines.push(format!(
                    "{path}    {}    {}",
                    d.get("type").and_then(Value::as_str).unwrap_or(""),
                    d.get("description").and_then(Value::as_str).unwrap_or("")
                ));
            }
            print_out(&lines.join("\n"));
            Ok(0)
        }
        AuditCommand::Enable(args) => {
            let client = Client::from_opts(&cmd.client)?;
            let mut options = Map::new();
            for raw in &args.options {
                let (k, v) = parse_key_value(raw).map_err(CliError::usage)?;
                options.insert(k, Value::String(v));
            }
            let path = args.path.clone().unwrap_or_else(|| args.kind.clone());
            let path = path.trim_matches('/').to_string();
            client
                .call(
                    "PUT",
                    &format!("sys/audit/{path}"),
                    Some(&json!({"type": args.kind, "description": args.description.clone().unwrap_or_default(), "options": options})),
                )
                .map_err(|e| e.context("enabling audit device"))?;
            print_out(&format!(
                "Success! Enabled the {} audit device at: {path}/",
                args.kind
            ));
            Ok(0)
        }
        AuditCommand::Disable(args) => {
            let client = Client::from_opts(&cmd.client)?;
            let path = args.path.trim_matches('/');
            client
                .call("DELETE", &format!("sys/audit/{path}"), None)
                .map_err(|e| e.context("disabling audit device"))?;
            print_out(&format!(
                "Success! Disabled audit device (if it was enabled) at: {path}/"
            ));
            Ok(0)
        }
    }
}

fn verify(opts: &ClientOpts, args: &AuditVerify) -> CliResult {
    let (key, tail) = match args
        .key
        .clone()
        .or_else(|| env_nonempty("COFFER_AUDIT_CHAIN_KEY"))
    {
        Some(k) => (k, None),
        None => {
            let client = Client::from_opts(opts)?;
            let device = match &args.device {
                Some(d) => d.trim_matches('/').to_string(),
                None => {
                    let body = client
                        .call_unwrapped("GET", "sys/audit", None)
                        .map_err(|e| e.context("listing audit devices"))?
                        .unwrap_or(Value::Null);
                    let names: Vec<String> = body
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    match names.as_slice() {
                        [one] => one.trim_matches('/').to_string(),
                        [] => {
                            return Err(CliError::failure("No audit device is enabled; pass -key"))
                        }
                        _ => {
                            return Err(CliError::usage(
                                "Several audit devices are enabled; pass -device=PATH",
                            ))
                        }
                    }
                }
            };
            // the CLI's own lookups: never wrapped, even with -wrap-ttl
            let body = client
                .call_unwrapped("GET", &format!("sys/audit-chain/{device}"), None)
                .map_err(|e| e.context("reading the audit chain key"))?
                .unwrap_or(Value::Null);
            let data = body.get("data").cloned().unwrap_or(Value::Null);
            let key = data
                .get("chain_key")
                .and_then(Value::as_str)
                .ok_or_else(|| CliError::failure("The server did not return a chain key"))?
                .to_string();
            let seq = data.get("seq").and_then(Value::as_u64).unwrap_or(0);
            let hash = data
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (key, Some((seq, hash)))
        }
    };
    // the files are read after the device's position was fetched, so they hold at least that
    // much unless their tail was cut
    let mut files = Vec::new();
    for f in &args.files {
        let bytes =
            std::fs::read(f).map_err(|e| CliError::failure(format!("Error reading {f}: {e}")))?;
        files.push((f.clone(), bytes));
    }
    let outcome = coffer_core::audit::verify(&key, &files, tail);
    if outcome.ok {
        print_out(&outcome.message);
        Ok(0)
    } else {
        Err(CliError::with_code(
            EXIT_FAILURE,
            format!("FAILED: {}", outcome.message),
        ))
    }
}
