//! `coffer rotate start|cancel|show|status`: automatic rotation of kv secrets, through the kv
//! mount's rotation paths (`<mount>/domain/rotation/<name>`; the listing
//! `<mount>/domain/rotations` needs root).

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{Client, ClientOpts};
use super::error::{CliError, CliResult};
use super::output::{columns, json_pretty, map_table, print_out, Format};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct RotateCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: RotateCommand,
}

#[derive(Subcommand, Debug)]
pub enum RotateCommand {
    /// Turn rotation on for a secret (and rotate it now, unless -no-now)
    Start(StartArgs),
    /// Turn rotation off (a run in progress is dropped)
    Cancel(SecretArg),
    /// Show a secret's rotation: settings, run in progress, last error
    Show(SecretArg),
    /// List the rotations that are scheduled, running or failed (root)
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct SecretArg {
    /// The secret, as MOUNT/NAME (e.g. secret/apps/api-key)
    pub path: String,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The secret, as MOUNT/NAME (e.g. secret/apps/api-key)
    pub path: String,
    /// The rotator: coffer:password[?fields=a,b&length=N], a hook URL, or a Lambda ARN
    #[arg(long)]
    pub rotator: Option<String>,
    /// The schedule: rate(N hours) (N >= 4) or rate(N days)
    #[arg(long)]
    pub schedule: Option<String>,
    /// Rotate every N days (instead of -schedule)
    #[arg(long, value_name = "N")]
    pub after_days: Option<u32>,
    /// The window a scheduled rotation starts in, e.g. 3h
    #[arg(long)]
    pub window: Option<String>,
    /// Only schedule: do not rotate now
    #[arg(long)]
    pub no_now: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The kv mounts to look at (default: secret)
    pub mounts: Vec<String>,
}

/// (mount, name) of `MOUNT/NAME`.
fn split(path: &str) -> Result<(String, String), CliError> {
    let path = path.trim().trim_start_matches('/');
    match path.split_once('/') {
        Some((m, n)) if !m.is_empty() && !n.is_empty() && !n.ends_with('/') => {
            Ok((m.to_string(), n.to_string()))
        }
        _ => Err(CliError::usage(format!(
            "{path:?} is not MOUNT/NAME (e.g. secret/apps/api-key)"
        ))),
    }
}

fn rotation_path(path: &str) -> Result<String, CliError> {
    let (mount, name) = split(path)?;
    Ok(format!("{mount}/domain/rotation/{name}"))
}

pub fn run(cmd: RotateCmd) -> CliResult {
    let format = cmd.client.format()?;
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        RotateCommand::Start(args) => {
            let body = start_body(&args);
            let out = client
                .call("PUT", &rotation_path(&args.path)?, Some(&body))
                .map_err(|e| e.context(&format!("starting the rotation of {}", args.path)))?;
            show_rotation(out, format)
        }
        RotateCommand::Cancel(args) => {
            let out = client
                .call(
                    "PUT",
                    &rotation_path(&args.path)?,
                    Some(&json!({"cancel": true})),
                )
                .map_err(|e| e.context(&format!("cancelling the rotation of {}", args.path)))?;
            show_rotation(out, format)
        }
        RotateCommand::Show(args) => {
            let out = client
                .call("GET", &rotation_path(&args.path)?, None)
                .map_err(|e| e.context(&format!("reading the rotation of {}", args.path)))?;
            show_rotation(out, format)
        }
        RotateCommand::Status(args) => status(&client, format, &args),
    }
}

fn start_body(args: &StartArgs) -> Value {
    let mut body = Map::new();
    if let Some(r) = &args.rotator {
        body.insert("rotator_id".into(), json!(r));
    }
    let mut rules = Map::new();
    if let Some(s) = &args.schedule {
        rules.insert("schedule_expression".into(), json!(s));
    }
    if let Some(d) = args.after_days {
        rules.insert("automatically_after_days".into(), json!(d));
    }
    if let Some(w) = &args.window {
        rules.insert("duration".into(), json!(w));
    }
    if !rules.is_empty() {
        body.insert("rules".into(), Value::Object(rules));
    }
    body.insert("rotate_immediately".into(), json!(!args.no_now));
    Value::Object(body)
}

fn show_rotation(out: Option<Value>, format: Format) -> CliResult {
    let data = out
        .as_ref()
        .and_then(|b| b.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    match format {
        Format::Json => print_out(&json_pretty(&data)),
        Format::Table => {
            if let Value::Object(m) = &data {
                print_out(&map_table(m));
            }
        }
    }
    Ok(0)
}

/// One row of `status`: name, state, next, last rotated, last error.
fn status_row(name: &str, r: &Value) -> Vec<String> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let run = r.get("run").filter(|v| v.is_object());
    let state = match run {
        Some(run) if run.get("attempts").and_then(Value::as_u64).unwrap_or(0) > 0 => "retrying",
        Some(_) => "running",
        None if r.get("last_error").is_some_and(|e| e.is_string()) => "failed",
        None if r.get("enabled").and_then(Value::as_bool) == Some(true) => "scheduled",
        None => "off",
    };
    let next = run
        .and_then(|run| run.get("next_attempt_time"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| s("next_rotation_time"));
    vec![
        name.to_string(),
        state.to_string(),
        next,
        s("last_rotated_time"),
        s("last_error"),
    ]
}

fn status(client: &Client, format: Format, args: &StatusArgs) -> CliResult {
    let mounts = if args.mounts.is_empty() {
        vec!["secret".to_string()]
    } else {
        args.mounts.clone()
    };
    let mut rows = vec![vec![
        "Secret".to_string(),
        "State".to_string(),
        "Next".to_string(),
        "Last rotated".to_string(),
        "Last error".to_string(),
    ]];
    let mut all = Map::new();
    for mount in mounts {
        let mount = mount.trim_matches('/').to_string();
        let list = client
            .request(
                "LIST",
                &format!("{mount}/domain/rotations"),
                &[("all", "true".to_string())],
                None,
            )
            .map_err(|e| e.context(&format!("listing the rotations of {mount}/")))?
            .into_result()
            .map_err(|e| e.context(&format!("listing the rotations of {mount}/")))?;
        let keys: Vec<String> = list
            .as_ref()
            .and_then(|b| b.pointer("/data/keys"))
            .cloned()
            .and_then(|k| serde_json::from_value(k).ok())
            .unwrap_or_default();
        for name in keys {
            let r = client
                .call("GET", &format!("{mount}/domain/rotation/{name}"), None)
                .map_err(|e| e.context(&format!("reading the rotation of {mount}/{name}")))?
                .and_then(|b| b.get("data").cloned())
                .unwrap_or(Value::Null);
            rows.push(status_row(&format!("{mount}/{name}"), &r));
            all.insert(format!("{mount}/{name}"), r);
        }
    }
    match format {
        Format::Json => print_out(&json_pretty(&Value::Object(all))),
        Format::Table if rows.len() == 1 => {
            print_out("No rotations are scheduled, running or failed.")
        }
        Format::Table => print_out(&columns(&rows)),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_bodies_and_rows() {
        assert_eq!(
            rotation_path("secret/apps/key").unwrap(),
            "secret/domain/rotation/apps/key"
        );
        assert!(rotation_path("secret").is_err());
        assert!(rotation_path("secret/").is_err());
        let body = start_body(&StartArgs {
            path: "secret/k".into(),
            rotator: Some("coffer:password".into()),
            schedule: Some("rate(4 hours)".into()),
            after_days: None,
            window: Some("2h".into()),
            no_now: true,
        });
        assert_eq!(
            body,
            json!({"rotator_id": "coffer:password",
                   "rules": {"schedule_expression": "rate(4 hours)", "duration": "2h"},
                   "rotate_immediately": false})
        );
        let failed =
            json!({"enabled": true, "last_error": "testSecret: no", "next_rotation_time": "t"});
        assert_eq!(status_row("secret/k", &failed)[1], "failed");
        let retrying = json!({"enabled": true, "run": {"attempts": 2, "next_attempt_time": "n"}});
        assert_eq!(
            status_row("secret/k", &retrying)[1..3],
            ["retrying".to_string(), "n".to_string()]
        );
    }
}
