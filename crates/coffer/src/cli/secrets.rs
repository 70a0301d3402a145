//! `coffer secrets enable|disable|list|tune`: secrets engine mounts at `sys/mounts`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{parse_go_bool, Client, ClientOpts};
use super::data::{key_values_to_map, parse_key_value};
use super::error::{CliError, CliResult};
use super::output::{
    as_seconds, columns, go_display, is_wrapped, json_pretty, print_out, print_warnings,
    render_secret, sorted_entries, Format,
};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct SecretsCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Mount a secrets engine: kv (version 1 or 2) or kv-v2
    Enable(SecretsEnable),
    /// Unmount a secrets engine, deleting its data
    Disable(MountPath),
    /// List the mounted secrets engines
    List(SecretsList),
    /// Change a mount's settings
    Tune(SecretsTune),
}

#[derive(Args, Debug)]
pub struct SecretsEnable {
    /// Mount path (default: the engine type)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Engine version (for kv: 1 or 2)
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
    /// Human-readable description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Default lease TTL (e.g. 1h)
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL (e.g. 24h)
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Engine option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    /// Do not cache responses of this engine
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub force_no_cache: bool,
    /// Mount only on this cluster (not replicated)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub local: bool,
    /// Engine type
    #[arg(value_name = "TYPE")]
    pub engine: String,
}

#[derive(Args, Debug)]
pub struct MountPath {
    pub path: String,
}

#[derive(Args, Debug)]
pub struct SecretsList {
    /// Show more columns (TTLs, options, …)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub detailed: bool,
}

#[derive(Args, Debug)]
pub struct SecretsTune {
    /// Default lease TTL (e.g. 1h)
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL (e.g. 24h)
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Human-readable description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Engine option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    /// Engine version (for kv: upgrade 1 to 2)
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
    pub path: String,
}

pub(super) fn mount_name(path: &str) -> Result<String, CliError> {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Err(CliError::usage("Mount path must not be empty"));
    }
    Ok(trimmed.to_string())
}

pub fn run(cmd: SecretsCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        SecretsCommand::Enable(args) => enable(&client, &args),
        SecretsCommand::Disable(args) => {
            let mount = mount_name(&args.path)?;
            client
                .call("DELETE", &format!("sys/mounts/{mount}"), None)
                .map_err(|e| e.context(&format!("disabling secrets engine at {mount}/")))?;
            print_out(&format!(
                "Success! Disabled the secrets engine (if it existed) at: {mount}/"
            ));
            Ok(0)
        }
        SecretsCommand::List(args) => list(&client, format, args.detailed),
        SecretsCommand::Tune(args) => tune(&client, &args),
    }
}

/// The mount path and `sys/mounts` body of `secrets enable`.
fn enable_request(args: &SecretsEnable) -> Result<(String, Value), CliError> {
    let (engine, implied_version) = match args.engine.as_str() {
        "kv-v2" => ("kv", Some(2)),
        "kv-v1" => ("kv", Some(1)),
        other => (other, None),
    };
    let mount = mount_name(args.path.as_deref().unwrap_or(&args.engine))?;
    let mut body = Map::new();
    body.insert("type".into(), json!(engine));
    if let Some(d) = &args.description {
        body.insert("description".into(), json!(d));
    }
    let mut config = Map::new();
    if let Some(t) = &args.default_lease_ttl {
        config.insert("default_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &args.max_lease_ttl {
        config.insert("max_lease_ttl".into(), json!(t));
    }
    if args.force_no_cache {
        config.insert("force_no_cache".into(), json!(true));
    }
    if !config.is_empty() {
        body.insert("config".into(), Value::Object(config));
    }
    let mut options = key_values_to_map(&args.options);
    if let Some(version) = args.version.or(implied_version) {
        options.insert("version".into(), json!(version.to_string()));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if args.local {
        body.insert("local".into(), json!(true));
    }
    Ok((mount, Value::Object(body)))
}

fn enable(client: &Client, args: &SecretsEnable) -> CliResult {
    let (mount, body) = enable_request(args)?;
    let engine = body.get("type").map(go_display).unwrap_or_default();
    client
        .call("POST", &format!("sys/mounts/{mount}"), Some(&body))
        .map_err(|e| e.context(&format!("enabling {engine}")))?;
    print_out(&format!(
        "Success! Enabled the {engine} secrets engine at: {mount}/"
    ));
    Ok(0)
}

/// The body of `secrets tune`: only the settings that were given.
fn tune_body(args: &SecretsTune) -> Value {
    let mut body = Map::new();
    if let Some(t) = &args.default_lease_ttl {
        body.insert("default_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &args.max_lease_ttl {
        body.insert("max_lease_ttl".into(), json!(t));
    }
    if let Some(d) = &args.description {
        body.insert("description".into(), json!(d));
    }
    let mut options = key_values_to_map(&args.options);
    if let Some(version) = args.version {
        options.insert("version".into(), json!(version.to_string()));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Value::Object(body)
}

fn tune(client: &Client, args: &SecretsTune) -> CliResult {
    let mount = mount_name(&args.path)?;
    client
        .call(
            "POST",
            &format!("sys/mounts/{mount}/tune"),
            Some(&tune_body(args)),
        )
        .map_err(|e| e.context(&format!("tuning secrets engine {mount}/")))?;
    print_out(&format!("Success! Tuned the secrets engine at: {mount}/"));
    Ok(0)
}

/// The mounts of a `GET sys/mounts` answer (under `data`, or at the top level).
pub(super) fn mounts_of(body: &Value) -> Map<String, Value> {
    let source = match body.get("data") {
        Some(Value::Object(m)) => m,
        _ => match body {
            Value::Object(m) => m,
            _ => return Map::new(),
        },
    };
    source
        .iter()
        .filter(|(k, v)| k.ends_with('/') && v.is_object())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn ttl_text(config: Option<&Value>, key: &str) -> String {
    match as_seconds(config.and_then(|c| c.get(key))) {
        Some(0) | None => "system".to_string(),
        Some(s) => super::output::human_duration(s),
    }
}

/// The table of `secrets list`.
pub(super) fn mounts_table(mounts: &Map<String, Value>, detailed: bool) -> String {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .filter(|x| !x.is_null())
            .map(go_display)
            .unwrap_or_default()
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    if detailed {
        rows.push(
            [
                "Path",
                "Plugin",
                "Accessor",
                "Default TTL",
                "Max TTL",
                "Force No Cache",
                "Local",
                "Options",
                "Description",
                "UUID",
            ]
            .map(String::from)
            .to_vec(),
        );
        rows.push(
            [
                "----",
                "------",
                "--------",
                "-----------",
                "-------",
                "--------------",
                "-----",
                "-------",
                "-----------",
                "----",
            ]
            .map(String::from)
            .to_vec(),
        );
    } else {
        rows.push(
            ["Path", "Type", "Accessor", "Description"]
                .map(String::from)
                .to_vec(),
        );
        rows.push(
            ["----", "----", "--------", "-----------"]
                .map(String::from)
                .to_vec(),
        );
    }
    for (path, mount) in sorted_entries(mounts) {
        let kind = text(mount, "type");
        if detailed {
            let config = mount.get("config");
            let plugin = mount
                .get("plugin_name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| kind.clone(), str::to_string);
            let options = mount
                .get("options")
                .filter(|o| !o.is_null())
                .map(go_display)
                .unwrap_or_default();
            let force_no_cache = config
                .and_then(|c| c.get("force_no_cache"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            rows.push(vec![
                path.clone(),
                plugin,
                text(mount, "accessor"),
                ttl_text(config, "default_lease_ttl"),
                ttl_text(config, "max_lease_ttl"),
                force_no_cache.to_string(),
                mount
                    .get("local")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                options,
                text(mount, "description"),
                text(mount, "uuid"),
            ]);
        } else {
            rows.push(vec![
                path.clone(),
                kind,
                text(mount, "accessor"),
                text(mount, "description"),
            ]);
        }
    }
    columns(&rows)
}

fn list(client: &Client, format: Format, detailed: bool) -> CliResult {
    let body = client
        .call("GET", "sys/mounts", None)
        .map_err(|e| e.context("listing secrets engines"))?
        .unwrap_or(Value::Null);
    if is_wrapped(&body) {
        print_warnings(&body);
        print_out(&render_secret(&body, format).unwrap_or_default());
        return Ok(0);
    }
    let mounts = mounts_of(&body);
    match format {
        Format::Json => print_out(&json_pretty(&Value::Object(mounts))),
        Format::Table => {
            print_warnings(&body);
            print_out(&mounts_table(&mounts, detailed));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable_args(engine: &str) -> SecretsEnable {
        SecretsEnable {
            path: None,
            version: None,
            description: None,
            default_lease_ttl: None,
            max_lease_ttl: None,
            options: vec![],
            force_no_cache: false,
            local: false,
            engine: engine.into(),
        }
    }

    #[test]
    fn enable_requests() {
        let (mount, body) =
            enable_request(&enable_args("transit")).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(mount, "transit");
        assert_eq!(body, json!({"type": "transit"}));

        let args = SecretsEnable {
            path: Some("secret/".into()),
            version: Some(2),
            description: Some("kv".into()),
            max_lease_ttl: Some("24h".into()),
            ..enable_args("kv")
        };
        let (mount, body) = enable_request(&args).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(mount, "secret");
        assert_eq!(
            body,
            json!({"type": "kv", "description": "kv", "config": {"max_lease_ttl": "24h"},
                   "options": {"version": "2"}})
        );

        let (mount, body) =
            enable_request(&enable_args("kv-v2")).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(mount, "kv-v2");
        assert_eq!(body, json!({"type": "kv", "options": {"version": "2"}}));
    }

    #[test]
    fn tune_body_passes_durations_through() {
        let args = SecretsTune {
            default_lease_ttl: Some("1h".into()),
            max_lease_ttl: Some("720h".into()),
            description: None,
            options: vec![("version".into(), "2".into())],
            version: None,
            path: "secret".into(),
        };
        assert_eq!(
            tune_body(&args),
            json!({"default_lease_ttl": "1h", "max_lease_ttl": "720h", "options": {"version": "2"}})
        );
    }

    #[test]
    fn mounts_list() {
        let body = json!({
            "request_id": "r",
            "data": {
                "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints", "config": {}},
                "secret/": {"type": "kv", "accessor": "kv_1", "description": "", "options": {"version": "2"},
                            "config": {"default_lease_ttl": 0, "max_lease_ttl": 3600}}
            }
        });
        let mounts = mounts_of(&body);
        assert_eq!(mounts.len(), 2);
        let table = mounts_table(&mounts, false);
        assert_eq!(
            table,
            "Path       Type      Accessor    Description\n\
             ----       ----      --------    -----------\n\
             secret/    kv        kv_1        n/a\n\
             sys/       system    system_1    system endpoints\n"
        );
        let detailed = mounts_table(&mounts, true);
        let secret_row = detailed
            .lines()
            .find(|l| l.starts_with("secret/"))
            .unwrap_or_default();
        let cells: Vec<&str> = secret_row.split_whitespace().collect();
        assert_eq!(
            cells[..6],
            ["secret/", "kv", "kv_1", "system", "1h", "false"],
            "{detailed}"
        );
        // Top-level (un-enveloped) answers work too.
        let bare = json!({"secret/": {"type": "kv"}, "request_id": "r"});
        assert_eq!(mounts_of(&bare).len(), 1);
    }
}
