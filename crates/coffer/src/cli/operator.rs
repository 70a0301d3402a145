//! `coffer operator init|unseal|seal|status` and `coffer status`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{parse_go_bool, Client, ClientOpts};
use super::data::read_secret;
use super::error::{CliError, CliResult, EXIT_USAGE};
use super::output::{go_display, json_pretty, key_value_table, print_out, Format};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct OperatorCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Initialise a new server: generate the unseal key shares and the root token
    Init(InitArgs),
    /// Provide one unseal key share (prompted for if not given; - reads stdin)
    Unseal(UnsealArgs),
    /// Seal the server
    Seal,
    /// Show the seal status (exit code 2 when sealed)
    Status,
    /// Copy every entry from one storage backend to another, offline (-config=migrate.hcl
    /// with storage_source and storage_destination blocks)
    Migrate(MigrateArgs),
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The migration configuration file (storage_source and storage_destination blocks)
    #[arg(long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Copy only the keys sorting at or after this one (to resume an interrupted migration)
    #[arg(long, value_name = "KEY")]
    pub start: Option<String>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Number of key shares to split the root key into
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub key_shares: u32,
    /// Number of shares needed to unseal
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub key_threshold: u32,
    /// Number of recovery key shares (auto-unseal only)
    #[arg(long, value_name = "N")]
    pub recovery_shares: Option<u32>,
    /// Recovery key threshold (auto-unseal only)
    #[arg(long, value_name = "N")]
    pub recovery_threshold: Option<u32>,
    /// Only report whether the server is initialised (exit code 0 yes, 2 no)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub status: bool,
}

#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// Discard the unseal keys given so far
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub reset: bool,
    /// The unseal key share; - reads it from stdin; prompted for if absent
    pub key: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatusCmd {
    #[command(flatten)]
    pub client: ClientOpts,
}

pub fn run(cmd: OperatorCmd) -> CliResult {
    if let OperatorCommand::Migrate(args) = &cmd.command {
        return super::migrate::run(args);
    }
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        OperatorCommand::Init(args) => init(&client, format, &args),
        OperatorCommand::Unseal(args) => unseal(&client, format, &args),
        OperatorCommand::Seal => seal(&client),
        OperatorCommand::Status => status(&client, format),
        OperatorCommand::Migrate(args) => super::migrate::run(&args),
    }
}

pub fn run_status(cmd: StatusCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    status(&client, format)
}

fn init(client: &Client, format: Format, args: &InitArgs) -> CliResult {
    if args.status {
        let body = client
            .call("GET", "sys/init", None)
            .map_err(|e| e.context("checking initialization status"))?;
        let initialized = body
            .as_ref()
            .and_then(|b| b.get("initialized"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if initialized {
            print_out("Coffer is initialized");
            return Ok(0);
        }
        print_out("Coffer is not initialized");
        return Ok(EXIT_USAGE);
    }
    if args.key_threshold == 0 || args.key_threshold > args.key_shares {
        return Err(CliError::usage(
            "-key-threshold must be at least 1 and at most -key-shares",
        ));
    }
    let mut request = json!({
        "secret_shares": args.key_shares,
        "secret_threshold": args.key_threshold,
    });
    if let Some(n) = args.recovery_shares {
        request["recovery_shares"] = json!(n);
    }
    if let Some(n) = args.recovery_threshold {
        request["recovery_threshold"] = json!(n);
    }
    let body = client
        .call("PUT", "sys/init", Some(&request))
        .map_err(|e| e.context("initializing"))?
        .unwrap_or(Value::Null);
    match format {
        Format::Json => print_out(&json_pretty(&init_json(&body, args))),
        Format::Table => print_out(&init_text(&body, args)),
    }
    Ok(0)
}

fn string_list(body: &Value, key: &str) -> Vec<Value> {
    body.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The JSON of `operator init -format=json`: the server's answer plus the field names Vault's CLI
/// prints (`unseal_keys_b64`, `root_token`, …), so scripts written for either keep working.
fn init_json(body: &Value, args: &InitArgs) -> Value {
    let mut out = match body {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let keys_b64 = string_list(body, "keys_base64");
    let keys_hex = string_list(body, "keys");
    let recovery_b64 = string_list(body, "recovery_keys_base64");
    let recovery_hex = string_list(body, "recovery_keys");
    let extra = json!({
        "unseal_keys_b64": keys_b64,
        "unseal_keys_hex": keys_hex,
        "unseal_shares": args.key_shares,
        "unseal_threshold": args.key_threshold,
        "recovery_keys_b64": recovery_b64,
        "recovery_keys_hex": recovery_hex,
        "recovery_keys_shares": args.recovery_shares.unwrap_or(0),
        "recovery_keys_threshold": args.recovery_threshold.unwrap_or(0),
        "root_token": body.get("root_token").cloned().unwrap_or(Value::Null),
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            out.entry(k).or_insert(v);
        }
    }
    Value::Object(out)
}

fn init_text(body: &Value, args: &InitArgs) -> String {
    let mut keys = string_list(body, "keys_base64");
    if keys.is_empty() {
        keys = string_list(body, "keys");
    }
    let mut out = String::new();
    for (i, key) in keys.iter().enumerate() {
        out.push_str(&format!("Unseal Key {}: {}\n", i + 1, go_display(key)));
    }
    let recovery = string_list(body, "recovery_keys_base64");
    for (i, key) in recovery.iter().enumerate() {
        out.push_str(&format!("Recovery Key {}: {}\n", i + 1, go_display(key)));
    }
    let root = body.get("root_token").map(go_display).unwrap_or_default();
    out.push_str(&format!("\nInitial Root Token: {root}\n\n"));
    if keys.is_empty() {
        out.push_str("Coffer initialized; no unseal keys were returned (auto-unseal).\n");
    } else {
        out.push_str(&format!(
            "Coffer initialized with {} key shares and a key threshold of {}. Please securely\n\
             distribute the key shares printed above. When Coffer is re-sealed, restarted,\n\
             or stopped, you must supply at least {} of these keys to unseal it before it\n\
             can start servicing requests.\n\n\
             Coffer does not store the generated root key. Without at least {} keys to\n\
             reconstruct the root key, Coffer will remain permanently sealed!\n",
            args.key_shares, args.key_threshold, args.key_threshold, args.key_threshold
        ));
    }
    out
}

fn unseal(client: &Client, format: Format, args: &UnsealArgs) -> CliResult {
    let request = if args.reset {
        if args.key.is_some() {
            return Err(CliError::usage("Cannot give an unseal key with -reset"));
        }
        json!({ "reset": true })
    } else {
        let key = read_secret(args.key.as_deref(), "Unseal Key (will be hidden): ")
            .map_err(|e| CliError::failure(format!("Error reading unseal key: {e}")))?;
        json!({ "key": key.as_str() })
    };
    let body = client
        .call("PUT", "sys/unseal", Some(&request))
        .map_err(|e| e.context("unsealing"))?
        .unwrap_or(Value::Null);
    print_seal_status(&body, format);
    Ok(0)
}

fn seal(client: &Client) -> CliResult {
    client
        .call("PUT", "sys/seal", None)
        .map_err(|e| e.context("sealing"))?;
    print_out("Success! Coffer is sealed.");
    Ok(0)
}

fn status(client: &Client, format: Format) -> CliResult {
    let body = client
        .call("GET", "sys/seal-status", None)
        .map_err(|e| e.context("checking seal status"))?
        .unwrap_or(Value::Null);
    print_seal_status(&body, format);
    let sealed = body.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    Ok(if sealed { EXIT_USAGE } else { 0 })
}

fn print_seal_status(body: &Value, format: Format) {
    match format {
        Format::Json => print_out(&json_pretty(body)),
        Format::Table => print_out(&key_value_table(&seal_status_rows(body))),
    }
}

/// Vault's seal-status table rows, for the fields the server reported.
pub fn seal_status_rows(body: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut add = |label: &str, key: &str| {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            rows.push((label.to_string(), go_display(v)));
        }
    };
    add("Seal Type", "type");
    add("Recovery Seal Type", "recovery_seal_type");
    add("Initialized", "initialized");
    add("Sealed", "sealed");
    add("Total Shares", "n");
    add("Threshold", "t");
    let sealed = body.get("sealed").and_then(Value::as_bool).unwrap_or(false);
    if sealed {
        let progress = body
            .get("progress")
            .map(go_display)
            .unwrap_or_else(|| "0".into());
        let threshold = body.get("t").map(go_display).unwrap_or_else(|| "?".into());
        rows.push(("Unseal Progress".into(), format!("{progress}/{threshold}")));
        let nonce = body
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        rows.push(("Unseal Nonce".into(), nonce.to_string()));
    }
    let mut add = |label: &str, key: &str| {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            rows.push((label.to_string(), go_display(v)));
        }
    };
    add("Version", "version");
    add("Build Date", "build_date");
    add("Storage Type", "storage_type");
    add("Cluster Name", "cluster_name");
    add("Cluster ID", "cluster_id");
    add("HA Enabled", "ha_enabled");
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_args() -> InitArgs {
        InitArgs {
            key_shares: 1,
            key_threshold: 1,
            recovery_shares: None,
            recovery_threshold: None,
            status: false,
        }
    }

    #[test]
    fn sealed_status_rows() {
        let body = json!({"type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
                          "progress": 1, "nonce": "abc", "version": "0.1.0"});
        let rows = seal_status_rows(&body);
        let labels: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "Unseal Progress",
                "Unseal Nonce",
                "Version"
            ]
        );
        assert_eq!(rows[5].1, "1/3");
    }

    #[test]
    fn unsealed_status_rows_have_no_progress() {
        let rows = seal_status_rows(&json!({"sealed": false, "t": 1, "n": 1, "cluster_name": "c"}));
        assert!(rows.iter().all(|(k, _)| k != "Unseal Progress"));
        assert!(rows.iter().any(|(k, v)| k == "Cluster Name" && v == "c"));
    }

    #[test]
    fn init_outputs() {
        let body = json!({"keys": ["aa"], "keys_base64": ["qg=="], "root_token": "root"});
        let out = init_json(&body, &init_args());
        assert_eq!(out["unseal_keys_b64"], json!(["qg=="]));
        assert_eq!(out["unseal_keys_hex"], json!(["aa"]));
        assert_eq!(out["keys"], json!(["aa"]));
        assert_eq!(out["root_token"], "root");
        assert_eq!(out["unseal_threshold"], 1);
        let text = init_text(&body, &init_args());
        assert!(text.starts_with("Unseal Key 1: qg==\n"));
        assert!(text.contains("Initial Root Token: root"));
    }
}
