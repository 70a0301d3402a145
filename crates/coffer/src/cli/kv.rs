//! `coffer kv …`: the key/value engine, versions 1 and 2, as Vault's `vault kv` does it. The
//! mount and its version are found with `GET sys/internal/ui/mounts/<path>`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{parse_go_bool, Client, ClientOpts, RequestError};
use super::data::{key_values_to_map, parse_data_args_from_env, parse_key_value};
use super::error::{CliError, CliResult, EXIT_USAGE};
use super::output::{
    field_text, header_for_map, is_wrapped, json_pretty, map_table, path_section, print_out,
    print_raw, print_warnings, raw_field, render_list, render_secret, Format,
};

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct KvCmd {
    #[command(flatten)]
    pub client: ClientOpts,

    /// Mount path of the kv engine; PATH is then relative to it (e.g. -mount=secret foo)
    #[arg(long, global = true, value_name = "MOUNT")]
    pub mount: Option<String>,

    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Read a secret (the latest version, or -version=N)
    Get(KvGet),
    /// Write a secret: key=value, key=@file, key=- (stdin), @file.json or - (a JSON object)
    Put(KvPut),
    /// Update some keys of a secret, keeping the others (kv v2)
    Patch(KvPatch),
    /// Delete the latest version of a secret, or -versions=1,2 (kv v2: soft delete)
    Delete(KvDelete),
    /// Restore soft-deleted versions (kv v2)
    Undelete(KvVersions),
    /// Permanently destroy versions (kv v2)
    Destroy(KvVersions),
    /// List the keys under a path
    List(KvPath),
    /// Metadata of a secret (kv v2)
    #[command(subcommand)]
    Metadata(KvMetadataCommand),
}

#[derive(Subcommand, Debug)]
pub enum KvMetadataCommand {
    /// Read a secret's metadata and version history
    Get(KvPath),
    /// Set a secret's metadata
    Put(KvMetadataPut),
    /// Delete a secret's metadata and all of its versions
    Delete(KvPath),
}

#[derive(Args, Debug)]
pub struct KvPath {
    /// Path of the secret, including the mount (e.g. secret/foo)
    pub path: String,
}

#[derive(Args, Debug)]
pub struct KvGet {
    /// Version to read (kv v2); the latest if not given
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    pub path: String,
}

#[derive(Args, Debug)]
pub struct KvPut {
    /// Check-and-set: write only if the current version is N (0: only if absent)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cas: Option<i64>,
    pub path: String,
    /// Data: key=value, key=@file, key=-, @file.json or -
    #[arg(value_name = "K=V", required = true)]
    pub data: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KvPatch {
    /// Check-and-set: patch only if the current version is N
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cas: Option<i64>,
    /// patch (HTTP PATCH) or rw (read, merge, write); default: patch, falling back to rw
    #[arg(long, value_parser = ["patch", "rw"])]
    pub method: Option<String>,
    pub path: String,
    #[arg(value_name = "K=V", required = true)]
    pub data: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KvDelete {
    /// Versions to delete (comma-separated); the latest if not given
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub versions: Vec<String>,
    pub path: String,
}

#[derive(Args, Debug)]
pub struct KvVersions {
    /// Versions to act on (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "N,...", required = true)]
    pub versions: Vec<String>,
    pub path: String,
}

#[derive(Args, Debug)]
pub struct KvMetadataPut {
    /// Number of versions to keep (0: the mount's setting)
    #[arg(long, value_name = "N")]
    pub max_versions: Option<u64>,
    /// Require check-and-set on every write
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = parse_go_bool, value_name = "BOOL")]
    pub cas_required: Option<bool>,
    /// Delete versions this long after they are written (e.g. 1h, 30m; 0s: never)
    #[arg(long, value_name = "DURATION")]
    pub delete_version_after: Option<String>,
    /// Custom metadata key=value (repeatable)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub custom_metadata: Vec<(String, String)>,
    pub path: String,
}

/// Where a kv path lives: its mount, the path within it and the engine version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTarget {
    /// The mount with a trailing slash (`secret/`).
    pub mount: String,
    /// The path within the mount, without a leading slash (may be empty).
    pub relative: String,
    pub v2: bool,
}

impl KvTarget {
    /// The API path of a kv v2 sub-tree (`data`, `metadata`, `delete`, …) for this secret.
    pub fn v2_path(&self, tree: &str) -> String {
        format!("{}{}/{}", self.mount, tree, self.relative)
    }

    /// The API path of a kv v1 secret.
    pub fn v1_path(&self) -> String {
        format!("{}{}", self.mount, self.relative)
    }

    /// The path a read or write goes to: `mount/data/rel` (v2) or `mount/rel` (v1).
    pub fn data_path(&self) -> String {
        if self.v2 {
            self.v2_path("data")
        } else {
            self.v1_path()
        }
    }
}

fn normalize_mount(mount: &str) -> String {
    format!("{}/", mount.trim_matches('/'))
}

/// Works out the target from a path argument, an optional `-mount`, and the answer of the
/// mount lookup (`data.path`, `data.options.version`), or `None` if the lookup failed.
pub fn resolve_target(path: &str, mount_flag: Option<&str>, lookup: Option<&Value>) -> KvTarget {
    let path = path.trim_start_matches('/');
    let looked_up_mount = lookup
        .and_then(|d| d.get("path"))
        .and_then(Value::as_str)
        .filter(|m| !m.trim_matches('/').is_empty())
        .map(normalize_mount);
    let v2 = match lookup {
        Some(data) => data
            .get("options")
            .and_then(|o| o.get("version"))
            .map(|v| match v {
                Value::String(s) => s == "2",
                Value::Number(n) => n.as_u64() == Some(2),
                _ => false,
            })
            .unwrap_or(false),
        None => true,
    };
    if let Some(flag) = mount_flag {
        let mount = looked_up_mount.unwrap_or_else(|| normalize_mount(flag));
        return KvTarget {
            mount,
            relative: path.to_string(),
            v2,
        };
    }
    if let Some(mount) = looked_up_mount {
        let with_slash = format!("{path}/");
        if let Some(relative) = path.strip_prefix(mount.as_str()) {
            return KvTarget {
                mount,
                relative: relative.to_string(),
                v2,
            };
        }
        if with_slash == mount {
            return KvTarget {
                mount,
                relative: String::new(),
                v2,
            };
        }
    }
    // No usable lookup: the first segment is the mount, and kv v2 is assumed.
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    KvTarget {
        mount: normalize_mount(first),
        relative: rest.to_string(),
        v2: lookup.is_none() || v2,
    }
}

/// Looks up the mount of `path` (or of `-mount`). A refused lookup falls back to the first
/// segment and kv v2; an unreachable server is an error. The lookup is never wrapped: only the
/// kv request itself is, with `-wrap-ttl`.
fn lookup_target(client: &Client, path: &str, mount: Option<&str>) -> Result<KvTarget, CliError> {
    let probe = mount.unwrap_or(path).trim_matches('/');
    if probe.is_empty() {
        return Err(CliError::usage("Missing path (e.g. secret/foo)"));
    }
    let response = client
        .request_unwrapped("GET", &format!("sys/internal/ui/mounts/{probe}"), &[], None)
        .map_err(|e| e.context(&format!("looking up the mount of {probe}")))?;
    let data = if response.is_success() {
        response
            .body
            .as_ref()
            .and_then(|b| b.get("data"))
            .filter(|d| d.is_object())
            .cloned()
    } else {
        None
    };
    Ok(resolve_target(path, mount, data.as_ref()))
}

fn parse_versions(raw: &[String]) -> Result<Vec<u64>, CliError> {
    raw.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                CliError::usage(format!("Invalid version {s:?}: expected a positive number"))
            })
        })
        .collect()
}

fn not_found(path: &str) -> CliError {
    CliError::with_code(EXIT_USAGE, format!("No value found at {path}"))
}

fn v2_only(what: &str) -> CliError {
    CliError::failure(format!("{what} not supported on KV Version 1"))
}

pub fn run(cmd: KvCmd) -> CliResult {
    let KvCmd {
        client: opts,
        mount,
        command,
    } = cmd;
    let format = opts.format()?;
    let client = Client::from_opts(&opts)?;
    let ctx = Ctx {
        client: &client,
        format,
        field: opts.field.as_deref(),
        mount: mount.as_deref(),
    };
    match command {
        KvCommand::Get(args) => ctx.get(args),
        KvCommand::Put(args) => ctx.put(args),
        KvCommand::Patch(args) => ctx.patch(args),
        KvCommand::Delete(args) => ctx.delete(args),
        KvCommand::Undelete(args) => ctx.versions_op(args, "undelete"),
        KvCommand::Destroy(args) => ctx.versions_op(args, "destroy"),
        KvCommand::List(args) => ctx.list(args),
        KvCommand::Metadata(KvMetadataCommand::Get(args)) => ctx.metadata_get(args),
        KvCommand::Metadata(KvMetadataCommand::Put(args)) => ctx.metadata_put(args),
        KvCommand::Metadata(KvMetadataCommand::Delete(args)) => ctx.metadata_delete(args),
    }
}

struct Ctx<'a> {
    client: &'a Client,
    format: Format,
    field: Option<&'a str>,
    mount: Option<&'a str>,
}

impl Ctx<'_> {
    fn target(&self, path: &str) -> Result<KvTarget, CliError> {
        lookup_target(self.client, path, self.mount)
    }

    fn print_field(&self, source: &Value, field: &str, from_map: bool) -> CliResult {
        let value = if from_map {
            source.get(field).filter(|v| !v.is_null()).cloned()
        } else {
            raw_field(source, field)
        };
        match value {
            Some(v) => {
                print_raw(&field_text(&v, self.format));
                Ok(0)
            }
            None => Err(CliError::failure(format!(
                "Field {field:?} not present in secret"
            ))),
        }
    }

    /// Prints a wrapped response: its `wrap_info`, or the `-field` of it.
    fn print_wrapped(&self, secret: &Value) -> CliResult {
        if let Some(field) = self.field {
            return self.print_field(secret, field, false);
        }
        print_warnings(secret);
        print_out(&render_secret(secret, self.format).unwrap_or_default());
        Ok(0)
    }

    /// Reads a secret (wrapped with `-wrap-ttl`); `None` for "no value" (a 404 without data).
    fn read(&self, path: &str, query: &[(&str, String)]) -> Result<Option<Value>, CliError> {
        self.read_as(path, query, true)
    }

    fn read_as(
        &self,
        path: &str,
        query: &[(&str, String)],
        wrap: bool,
    ) -> Result<Option<Value>, CliError> {
        let response = if wrap {
            self.client.request("GET", path, query, None)
        } else {
            self.client.request_unwrapped("GET", path, query, None)
        }
        .map_err(|e| e.context(&format!("reading {path}")))?;
        if response.status == 404 {
            // A deleted or destroyed v2 version answers 404 with its metadata.
            let body = response
                .body
                .filter(|b| b.get("data").is_some_and(|d| !d.is_null()));
            return Ok(body);
        }
        response
            .into_result()
            .map_err(|e| e.context(&format!("reading {path}")))
    }

    fn get(&self, args: KvGet) -> CliResult {
        let target = self.target(&args.path)?;
        let path = target.data_path();
        let mut query = Vec::new();
        if let Some(version) = args.version {
            if target.v2 {
                query.push(("version", version.to_string()));
            }
        }
        let Some(secret) = self.read(&path, &query)? else {
            return Err(not_found(&path));
        };
        if is_wrapped(&secret) {
            // Only the wrapping token came back: print it (`-field=wrapping_token` selects it).
            return self.print_wrapped(&secret);
        }
        if let Some(field) = self.field {
            if !target.v2 {
                return self.print_field(&secret, field, false);
            }
            let data = secret
                .get("data")
                .and_then(|d| d.get("data"))
                .filter(|d| !d.is_null());
            let Some(data) = data else {
                return Err(CliError::with_code(
                    EXIT_USAGE,
                    format!("No data found at {path}"),
                ));
            };
            if field == "data" && data.get("data").is_none() {
                return self.print_field(&secret, field, false);
            }
            return self.print_field(data, field, true);
        }
        if self.format == Format::Json {
            print_out(&render_secret(&secret, self.format).unwrap_or_default());
            return Ok(0);
        }
        print_warnings(&secret);
        if !target.v2 {
            if let Some(text) = render_secret(&secret, Format::Table) {
                print_out(&text);
            }
            return Ok(0);
        }
        let mut out = path_section("Secret Path", &path);
        let data = secret.get("data");
        if let Some(Value::Object(metadata)) = data.and_then(|d| d.get("metadata")) {
            out.push('\n');
            out.push_str(&header_for_map("Metadata", metadata));
            out.push('\n');
            out.push_str(&map_table(metadata));
        }
        if let Some(Value::Object(values)) = data.and_then(|d| d.get("data")) {
            out.push('\n');
            out.push_str(&header_for_map("Data", values));
            out.push('\n');
            out.push_str(&map_table(values));
        }
        print_out(&out);
        Ok(0)
    }

    /// Prints the answer of a v2 write (the new version's metadata) or a v1 success line.
    fn print_write_result(
        &self,
        target: &KvTarget,
        path: &str,
        response: Option<Value>,
    ) -> CliResult {
        let Some(secret) = response else {
            print_out(&format!("Success! Data written to: {path}"));
            return Ok(0);
        };
        if let Some(field) = self.field {
            return self.print_field(&secret, field, false);
        }
        match self.format {
            Format::Json => print_out(&json_pretty(&secret)),
            Format::Table => {
                print_warnings(&secret);
                match secret.get("data") {
                    Some(Value::Object(metadata)) if target.v2 => {
                        let mut out = path_section("Secret Path", path);
                        out.push('\n');
                        out.push_str(&header_for_map("Metadata", metadata));
                        out.push('\n');
                        out.push_str(&map_table(metadata));
                        print_out(&out);
                    }
                    _ => match render_secret(&secret, Format::Table) {
                        Some(text) => print_out(&text),
                        None => print_out(&format!("Success! Data written to: {path}")),
                    },
                }
            }
        }
        Ok(0)
    }

    fn put(&self, args: KvPut) -> CliResult {
        let data = parse_data_args_from_env(&args.data)
            .map_err(|e| CliError::usage(format!("Failed to parse K=V data: {e}")))?;
        if data.is_empty() {
            return Err(CliError::usage("Must supply data"));
        }
        let target = self.target(&args.path)?;
        let path = target.data_path();
        let body = if target.v2 {
            v2_write_body(data, args.cas)
        } else {
            Value::Object(data)
        };
        let response = self
            .client
            .call("PUT", &path, Some(&body))
            .map_err(|e| e.context(&format!("writing data to {path}")))?;
        self.print_write_result(&target, &path, response)
    }

    fn patch(&self, args: KvPatch) -> CliResult {
        let data = parse_data_args_from_env(&args.data)
            .map_err(|e| CliError::usage(format!("Failed to parse K=V data: {e}")))?;
        if data.is_empty() {
            return Err(CliError::usage("Must supply data"));
        }
        let target = self.target(&args.path)?;
        if !target.v2 {
            return Err(CliError::failure(
                "K/V engine mount must be version 2 for patch support",
            ));
        }
        let path = target.data_path();
        if args.method.as_deref() != Some("rw") {
            let body = v2_write_body(data.clone(), args.cas);
            let response = self
                .client
                .request("PATCH", &path, &[], Some(&body))
                .map_err(|e| e.context(&format!("writing data to {path}")))?;
            let fall_back = args.method.is_none() && response.status == 405;
            if !fall_back {
                if response.status == 404 {
                    return Err(not_found(&path));
                }
                let response = response
                    .into_result()
                    .map_err(|e| e.context(&format!("writing data to {path}")))?;
                return self.print_write_result(&target, &path, response);
            }
        }
        // Read, merge and write back with check-and-set on the version read (only the write
        // is wrapped).
        let Some(current) = self.read_as(&path, &[], false)? else {
            return Err(not_found(&path));
        };
        let Some(Value::Object(mut merged)) =
            current.get("data").and_then(|d| d.get("data")).cloned()
        else {
            return Err(CliError::with_code(
                EXIT_USAGE,
                format!("No data found at {path}"),
            ));
        };
        let version = current
            .get("data")
            .and_then(|d| d.get("metadata"))
            .and_then(|m| m.get("version"))
            .and_then(Value::as_i64);
        merged.extend(data);
        let body = v2_write_body(merged, args.cas.or(version));
        let response = self
            .client
            .call("PUT", &path, Some(&body))
            .map_err(|e| e.context(&format!("writing data to {path}")))?;
        self.print_write_result(&target, &path, response)
    }

    fn delete(&self, args: KvDelete) -> CliResult {
        let versions = parse_versions(&args.versions)?;
        let target = self.target(&args.path)?;
        let (method, path, body) = if versions.is_empty() {
            ("DELETE", target.data_path(), None)
        } else if target.v2 {
            (
                "POST",
                target.v2_path("delete"),
                Some(json!({ "versions": versions })),
            )
        } else {
            return Err(v2_only("Deleting specific versions is"));
        };
        self.client
            .call(method, &path, body.as_ref())
            .map_err(|e| e.context(&format!("deleting {path}")))?;
        print_out(&format!("Success! Data deleted (if it existed) at: {path}"));
        Ok(0)
    }

    fn versions_op(&self, args: KvVersions, operation: &str) -> CliResult {
        let versions = parse_versions(&args.versions)?;
        if versions.is_empty() {
            return Err(CliError::usage(
                "No versions provided, use the -versions flag",
            ));
        }
        let target = self.target(&args.path)?;
        if !target.v2 {
            let what = if operation == "destroy" {
                "Destroy"
            } else {
                "Undelete"
            };
            return Err(v2_only(what));
        }
        let path = target.v2_path(operation);
        let method = if operation == "destroy" {
            "PUT"
        } else {
            "POST"
        };
        self.client
            .call(method, &path, Some(&json!({ "versions": versions })))
            .map_err(|e| e.context(&format!("writing data to {path}")))?;
        print_out(&format!("Success! Data written to: {path}"));
        Ok(0)
    }

    fn list(&self, args: KvPath) -> CliResult {
        let target = self.target(&args.path)?;
        let path = if target.v2 {
            target.v2_path("metadata")
        } else {
            target.v1_path()
        };
        list_keys(self.client, &path, self.format)
    }

    fn metadata_target(&self, path: &str) -> Result<KvTarget, CliError> {
        let target = self.target(path)?;
        if !target.v2 {
            return Err(v2_only("Metadata"));
        }
        Ok(target)
    }

    fn metadata_get(&self, args: KvPath) -> CliResult {
        let target = self.metadata_target(&args.path)?;
        let path = target.v2_path("metadata");
        let Some(secret) = self.read(&path, &[])? else {
            return Err(not_found(&path));
        };
        if is_wrapped(&secret) {
            return self.print_wrapped(&secret);
        }
        if let Some(field) = self.field {
            return self.print_field(&secret, field, false);
        }
        if self.format == Format::Json {
            print_out(&json_pretty(&secret));
            return Ok(0);
        }
        print_warnings(&secret);
        let mut metadata = match secret.get("data") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let versions = metadata.remove("versions");
        let mut out = path_section("Metadata Path", &path);
        out.push('\n');
        out.push_str(&header_for_map("Metadata", &metadata));
        out.push('\n');
        out.push_str(&map_table(&metadata));
        if let Some(Value::Object(versions)) = versions {
            let mut numbered: Vec<(u64, &Value)> = versions
                .iter()
                .filter_map(|(k, v)| k.parse::<u64>().ok().map(|n| (n, v)))
                .collect();
            numbered.sort_by_key(|(n, _)| *n);
            for (number, version) in numbered {
                if let Value::Object(version) = version {
                    out.push('\n');
                    out.push_str(&header_for_map(&format!("Version {number}"), version));
                    out.push('\n');
                    out.push_str(&map_table(version));
                }
            }
        }
        print_out(&out);
        Ok(0)
    }

    fn metadata_put(&self, args: KvMetadataPut) -> CliResult {
        let body = metadata_body(&args);
        let target = self.metadata_target(&args.path)?;
        let path = target.v2_path("metadata");
        self.client
            .call("POST", &path, Some(&body))
            .map_err(|e| e.context(&format!("writing data to {path}")))?;
        print_out(&format!("Success! Data written to: {path}"));
        Ok(0)
    }

    fn metadata_delete(&self, args: KvPath) -> CliResult {
        let target = self.metadata_target(&args.path)?;
        let path = target.v2_path("metadata");
        self.client
            .call("DELETE", &path, None)
            .map_err(|e| e.context(&format!("deleting {path}")))?;
        print_out(&format!("Success! Data deleted (if it existed) at: {path}"));
        Ok(0)
    }
}

/// `{"data": …, "options": {"cas": N}}`; a negative `cas` means "not set", as in Vault.
fn v2_write_body(data: Map<String, Value>, cas: Option<i64>) -> Value {
    let mut body = json!({ "data": data });
    if let Some(cas) = cas.filter(|c| *c >= 0) {
        body["options"] = json!({ "cas": cas });
    }
    body
}

/// The body of `kv metadata put`: only the settings that were given.
fn metadata_body(args: &KvMetadataPut) -> Value {
    let mut body = Map::new();
    if let Some(n) = args.max_versions {
        body.insert("max_versions".into(), json!(n));
    }
    if let Some(b) = args.cas_required {
        body.insert("cas_required".into(), json!(b));
    }
    if let Some(d) = &args.delete_version_after {
        body.insert("delete_version_after".into(), json!(d));
    }
    if !args.custom_metadata.is_empty() {
        body.insert(
            "custom_metadata".into(),
            Value::Object(key_values_to_map(&args.custom_metadata)),
        );
    }
    Value::Object(body)
}

/// `LIST path`, printing the keys (or, with `-wrap-ttl`, the wrapping token); 404 is
/// "No value found" (exit 2).
pub fn list_keys(client: &Client, path: &str, format: Format) -> CliResult {
    let response = client
        .request("LIST", path, &[], None)
        .map_err(|e| e.context(&format!("listing {path}")))?;
    if response.status == 404 {
        return Err(not_found(path));
    }
    let body = response
        .into_result()
        .map_err(|e: RequestError| e.context(&format!("listing {path}")))?;
    if let Some(body) = body.as_ref().filter(|b| is_wrapped(b)) {
        print_warnings(body);
        print_out(&render_secret(body, format).unwrap_or_default());
        return Ok(0);
    }
    let keys = body
        .as_ref()
        .and_then(|b| b.get("data"))
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array);
    match keys {
        Some(keys) if !keys.is_empty() => {
            if let Some(body) = &body {
                print_warnings(body);
            }
            print_out(&render_list(keys, format));
            Ok(0)
        }
        _ => Err(CliError::with_code(
            EXIT_USAGE,
            format!("No entries found at {path}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(path: &str, version: Option<&str>) -> Value {
        match version {
            Some(v) => json!({"path": path, "type": "kv", "options": {"version": v}}),
            None => json!({"path": path, "type": "kv", "options": null}),
        }
    }

    #[test]
    fn target_from_lookup() {
        let t = resolve_target("secret/foo/bar", None, Some(&lookup("secret/", Some("2"))));
        assert_eq!(
            t,
            KvTarget {
                mount: "secret/".into(),
                relative: "foo/bar".into(),
                v2: true
            }
        );
        assert_eq!(t.data_path(), "secret/data/foo/bar");
        assert_eq!(t.v2_path("metadata"), "secret/metadata/foo/bar");

        let t = resolve_target("kv1/foo", None, Some(&lookup("kv1/", None)));
        assert!(!t.v2);
        assert_eq!(t.data_path(), "kv1/foo");

        // Nested mounts come from the lookup, not from the first segment.
        let t = resolve_target("team/a/kv/x", None, Some(&lookup("team/a/kv/", Some("2"))));
        assert_eq!(t.mount, "team/a/kv/");
        assert_eq!(t.data_path(), "team/a/kv/data/x");
    }

    #[test]
    fn target_of_the_mount_itself() {
        let t = resolve_target("secret", None, Some(&lookup("secret/", Some("2"))));
        assert_eq!(t.relative, "");
        assert_eq!(t.v2_path("metadata"), "secret/metadata/");
        let t = resolve_target("secret/", None, Some(&lookup("secret/", Some("1"))));
        assert!(!t.v2);
        assert_eq!(t.v1_path(), "secret/");
    }

    #[test]
    fn target_fallback_is_first_segment_v2() {
        let t = resolve_target("/secret/foo", None, None);
        assert_eq!(
            t,
            KvTarget {
                mount: "secret/".into(),
                relative: "foo".into(),
                v2: true
            }
        );
    }

    #[test]
    fn target_with_mount_flag() {
        let t = resolve_target(
            "foo/bar",
            Some("secret"),
            Some(&lookup("secret/", Some("2"))),
        );
        assert_eq!(t.data_path(), "secret/data/foo/bar");
        let t = resolve_target("foo", Some("/kv/"), None);
        assert_eq!(t.data_path(), "kv/data/foo");
    }

    #[test]
    fn write_bodies() {
        let mut data = Map::new();
        data.insert("a".into(), json!("b"));
        assert_eq!(
            v2_write_body(data.clone(), None),
            json!({"data": {"a": "b"}})
        );
        assert_eq!(
            v2_write_body(data.clone(), Some(-1)),
            json!({"data": {"a": "b"}})
        );
        assert_eq!(
            v2_write_body(data, Some(0)),
            json!({"data": {"a": "b"}, "options": {"cas": 0}})
        );
    }

    #[test]
    fn metadata_body_passes_durations_through() {
        let args = KvMetadataPut {
            max_versions: Some(5),
            cas_required: Some(true),
            delete_version_after: Some("1h30m".into()),
            custom_metadata: vec![("owner".into(), "ops".into())],
            path: "secret/x".into(),
        };
        assert_eq!(
            metadata_body(&args),
            json!({"max_versions": 5, "cas_required": true, "delete_version_after": "1h30m",
                   "custom_metadata": {"owner": "ops"}})
        );
        let empty = KvMetadataPut {
            max_versions: None,
            cas_required: None,
            delete_version_after: None,
            custom_metadata: vec![],
            path: "secret/x".into(),
        };
        assert_eq!(metadata_body(&empty), json!({}));
    }

    #[test]
    fn versions_flag() {
        let parsed = parse_versions(&["1".into(), " 2".into(), String::new()]).ok();
        assert_eq!(parsed, Some(vec![1, 2]));
        assert_eq!(parse_versions(&["x".into()]).err().map(|e| e.code), Some(2));
    }
}
