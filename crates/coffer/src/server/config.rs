//! Vault-style server configuration, in HCL or JSON (both parse to the same tree).

use anyhow::{anyhow, bail, Context};
use coffer_api::{ListenerConfig, TlsFiles};
use coffer_core::barrier::SecretKey;
use coffer_core::seal::StaticSeal;
use coffer_core::util::parse_duration_value;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Inmem,
    File { path: PathBuf },
    Postgresql(coffer_storage::PostgresConfig),
    Etcd(coffer_storage::EtcdConfig),
}

impl StorageConfig {
    /// The stanza's label.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageConfig::Inmem => "inmem",
            StorageConfig::File { .. } => "file",
            StorageConfig::Postgresql(_) => "postgresql",
            StorageConfig::Etcd(_) => "etcd",
        }
    }

    pub fn ha_enabled(&self) -> bool {
        match self {
            StorageConfig::Postgresql(c) => c.ha_enabled,
            StorageConfig::Etcd(c) => c.ha_enabled,
            _ => false,
        }
    }
}

/// One `storage` (or `storage_source` / `storage_destination`) block: its label and body.
pub(crate) fn storage_block(
    kind: &str,
    body: &Map<String, Value>,
) -> anyhow::Result<StorageConfig> {
    let opt = |k: &str| -> anyhow::Result<Option<String>> {
        body.get(k).map(|v| as_string(v, k)).transpose()
    };
    let flag = |k: &str| -> anyhow::Result<bool> {
        Ok(body
            .get(k)
            .map(|v| as_bool(v, k))
            .transpose()?
            .unwrap_or(false))
    };
    let count = |k: &str, default: usize| -> anyhow::Result<usize> {
        match body.get(k) {
            None => Ok(default),
            Some(v) => coffer_core::util::value_as_i64(v)
                .filter(|n| *n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| anyhow!("{k} must be a positive integer")),
        }
    };
    Ok(match kind {
        "inmem" => {
            check_keys("storage \"inmem\"", body, &[])?;
            StorageConfig::Inmem
        }
        "file" => {
            check_keys("storage \"file\"", body, &["path"])?;
            let path = opt("path")?.ok_or_else(|| anyhow!("storage \"file\" needs a path"))?;
            StorageConfig::File { path: path.into() }
        }
        "postgresql" => {
            check_keys(
                "storage \"postgresql\"",
                body,
                &[
                    "connection_url",
                    "table",
                    "ha_enabled",
                    "ha_table",
                    "max_parallel",
                    "max_idle_connections",
                ],
            )?;
            let url = opt("connection_url")?
                .ok_or_else(|| anyhow!("storage \"postgresql\" needs a connection_url"))?;
            let mut c = coffer_storage::PostgresConfig::new(url);
            if let Some(t) = opt("table")? {
                c.table = t;
            }
            if let Some(t) = opt("ha_table")? {
                c.ha_table = t;
            }
            c.ha_enabled = flag("ha_enabled")?;
            c.max_parallel = count("max_parallel", c.max_parallel)?;
            count("max_idle_connections", 1)?;
            // the table names are checked here, not only when connecting
            c.schema_sql()
                .map_err(|e| anyhow!("storage \"postgresql\": {e}"))?;
            StorageConfig::Postgresql(c)
        }
        "etcd" => {
            check_keys(
                "storage \"etcd\"",
                body,
                &[
                    "address",
                    "path",
                    "ha_enabled",
                    "etcd_api",
                    "sync",
                    "username",
                    "password",
                    "tls_ca_file",
                    "tls_cert_file",
                    "tls_key_file",
                    "tls_server_name",
                    "request_timeout",
                    "lock_timeout",
                    "max_receive_size",
                    "max_request_bytes",
                    "max_txn_ops",
                ],
            )?;
            if let Some(api) = opt("etcd_api")? {
                if api != "v3" {
                    bail!("storage \"etcd\": only etcd_api = \"v3\" is supported");
                }
            }
            let address = opt("address")?.unwrap_or_else(|| "http://127.0.0.1:2379".into());
            let endpoints: Vec<String> = address
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
            if endpoints.is_empty()
                || endpoints
                    .iter()
                    .any(|e| !(e.starts_with("http://") || e.starts_with("https://")))
            {
                bail!("storage \"etcd\": address must be a comma-separated list of http:// or https:// URLs");
            }
            let mut c = coffer_storage::EtcdConfig::new(
                endpoints,
                &opt("path")?.unwrap_or_else(|| "/coffer/".into()),
            );
            c.ha_enabled = flag("ha_enabled")?;
            c.username = opt("username")?;
            c.password = opt("password")?;
            if c.username.is_some() != c.password.is_some() {
                bail!("storage \"etcd\": username and password go together");
            }
            c.tls_ca_file = opt("tls_ca_file")?;
            c.tls_cert_file = opt("tls_cert_file")?;
            c.tls_key_file = opt("tls_key_file")?;
            c.tls_server_name = opt("tls_server_name")?;
            c.max_request_bytes = count("max_request_bytes", c.max_request_bytes)?;
            c.max_txn_ops = count("max_txn_ops", c.max_txn_ops)?;
            for k in ["request_timeout", "lock_timeout"] {
                if let Some(v) = body.get(k) {
                    parse_duration_value(v).map_err(|e| anyhow!("{k}: {e}"))?;
                }
            }
            flag("sync")?;
            StorageConfig::Etcd(c)
        }
        other => {
            bail!("unsupported storage type \"{other}\" (supported: inmem, file, postgresql, etcd)")
        }
    })
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listeners: Vec<ListenerConfig>,
    pub storage: StorageConfig,
    pub static_seal: Option<StaticSeal>,
    pub api_addr: Option<String>,
    /// Vault's `cluster_addr`: advertised in `sys/leader` (Coffer forwards over `api_addr`).
    pub cluster_addr: Option<String>,
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
    pub ui: bool,
    pub log_level: Option<String>,
    /// The dialects' settings (the `aws` and `azure` stanzas).
    pub dialects: coffer_api::DialectSettings,
    /// Automatic rotation (the `rotation` stanza).
    pub rotation: crate::rotation::RotationSettings,
}

impl ServerConfig {
    pub fn dev(address: &str) -> Self {
        ServerConfig {
            listeners: vec![ListenerConfig::new(address, None)],
            storage: StorageConfig::Inmem,
            static_seal: None,
            api_addr: None,
            cluster_addr: None,
            default_lease_ttl: None,
            max_lease_ttl: None,
            ui: false,
            log_level: None,
            dialects: coffer_api::DialectSettings {
                aws: Default::default(),
                // not auth/approle/: dev servers are where Vault's tutorials enable that
                azure: coffer_api::azure::AzureSettings {
                    approle_mount: super::dev_azure::DEV_AZURE_MOUNT.to_string(),
                    ..Default::default()
                },
            },
            rotation: crate::rotation::RotationSettings::dev(),
        }
    }
}

/// `coffer operator migrate`'s configuration: Vault's `storage_source` and
/// `storage_destination` blocks (inmem refused on either side: nothing would remain).
pub fn load_migrate_config(path: &Path) -> anyhow::Result<(StorageConfig, StorageConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading migration config {}", path.display()))?;
    let tree = parse_text(&text, path)
        .with_context(|| format!("parsing migration config {}", path.display()))?;
    check_keys(
        "migration configuration",
        &tree,
        &["storage_source", "storage_destination", "cluster_addr"],
    )?;
    let side = |key: &str| -> anyhow::Result<StorageConfig> {
        let v = tree
            .get(key)
            .ok_or_else(|| anyhow!("the migration config needs a {key} block"))?;
        let mut blocks = labelled_blocks(v)?;
        if blocks.len() != 1 {
            bail!("exactly one {key} block is required");
        }
        let (kind, body) = blocks.remove(0);
        let c = storage_block(&kind, &body).with_context(|| format!("in {key}"))?;
        if c == StorageConfig::Inmem {
            bail!("{key}: inmem storage cannot be migrated from or to");
        }
        Ok(c)
    };
    let (src, dst) = (side("storage_source")?, side("storage_destination")?);
    if src == dst {
        bail!("storage_source and storage_destination are the same storage");
    }
    Ok((src, dst))
}

/// Read every `-config` argument (files, or directories of `.hcl`/`.json` files) and merge them.
pub fn load_config(paths: &[PathBuf]) -> anyhow::Result<ServerConfig> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading config directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("hcl" | "json")))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    let mut merged = Map::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading config file {}", f.display()))?;
        let tree =
            parse_text(&text, f).with_context(|| format!("parsing config file {}", f.display()))?;
        for (k, v) in tree {
            match (merged.get_mut(&k), v) {
                (Some(Value::Array(existing)), Value::Array(more)) => existing.extend(more),
                (Some(existing @ Value::Array(_)), other) => {
                    if let Value::Array(a) = existing {
                        a.push(other)
                    }
                }
                (Some(existing), other) if k == "listener" => {
                    let prev = existing.take();
                    *existing = Value::Array(vec![prev, other]);
                }
                (_, v) => {
                    merged.insert(k, v);
                }
            }
        }
    }
    from_tree(&merged)
}

fn parse_text(text: &str, path: &Path) -> anyhow::Result<Map<String, Value>> {
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json")
        || text.trim_start().starts_with('{');
    let v: Value = if is_json {
        serde_json::from_str(text).map_err(|e| anyhow!("invalid JSON: {e}"))?
    } else {
        hcl::from_str(text).map_err(|e| anyhow!("invalid HCL: {e}"))?
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => bail!("configuration must be an object"),
    }
}

/// Flatten a block value into (label, body) pairs. Accepts `{"tcp": {...}}`, `{"tcp": [{...}]}`
/// and `[{"tcp": {...}}, ...]` (HCL and Vault's JSON forms).
pub(crate) fn labelled_blocks(v: &Value) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for i in items {
                out.extend(labelled_blocks(i)?);
            }
        }
        Value::Object(m) => {
            for (label, body) in m {
                match body {
                    Value::Object(b) => out.push((label.clone(), b.clone())),
                    Value::Array(bs) => {
                        for b in bs {
                            match b {
                                Value::Object(b) => out.push((label.clone(), b.clone())),
                                _ => bail!("block \"{label}\" must be an object"),
                            }
                        }
                    }
                    _ => bail!("block \"{label}\" must be an object"),
                }
            }
        }
        _ => bail!("expected a block"),
    }
    Ok(out)
}

pub(crate) fn check_keys(
    what: &str,
    body: &Map<String, Value>,
    allowed: &[&str],
) -> anyhow::Result<()> {
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !unknown.is_empty() {
        bail!("unknown key(s) in {what}: {}", unknown.join(", "));
    }
    Ok(())
}

pub(crate) fn as_string(v: &Value, what: &str) -> anyhow::Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => bail!("{what} must be a string"),
    }
}

fn as_bool(v: &Value, what: &str) -> anyhow::Result<bool> {
    coffer_core::util::value_as_bool(v).ok_or_else(|| anyhow!("{what} must be a boolean"))
}

fn from_tree(tree: &Map<String, Value>) -> anyhow::Result<ServerConfig> {
    check_keys(
        "configuration",
        tree,
        &[
            "listener",
            "storage",
            "backend",
            "seal",
            "api_addr",
            "cluster_addr",
            "cluster_name",
            "default_lease_ttl",
            "max_lease_ttl",
            "disable_mlock",
            "ui",
            "log_level",
            "pid_file",
            "aws",
            "azure",
            "rotation",
            "disable_clustering",
            "ha_storage",
        ],
    )?;
    if tree.contains_key("ha_storage") {
        bail!("a separate ha_storage is not supported: set ha_enabled = \"true\" in the postgresql or etcd storage block");
    }
    if let Some(v) = tree.get("disable_clustering") {
        as_bool(v, "disable_clustering")?;
    }
    let mut listeners = Vec::new();
    if let Some(l) = tree.get("listener") {
        for (kind, body) in labelled_blocks(l)? {
            if kind != "tcp" {
                bail!("unsupported listener type \"{kind}\" (only \"tcp\")");
            }
            listeners.push(listener(&body)?);
        }
    }
    if listeners.is_empty() {
        bail!("no listener configured: add a listener \"tcp\" block");
    }
    let storage_tree = match (tree.get("storage"), tree.get("backend")) {
        (Some(_), Some(_)) => {
            bail!("configure either \"storage\" or the legacy \"backend\", not both")
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => bail!("no storage configured: add a storage block (\"inmem\" or \"file\")"),
    };
    let mut storages = labelled_blocks(storage_tree)?;
    if storages.len() != 1 {
        bail!("exactly one storage block is required");
    }
    let (skind, sbody) = storages.remove(0);
    let storage = storage_block(&skind, &sbody)?;
    let static_seal = match tree.get("seal") {
        None => None,
        Some(s) => {
            let mut seals = labelled_blocks(s)?;
            if seals.len() != 1 {
                bail!("at most one seal block is supported");
            }
            let (kind, body) = seals.remove(0);
            match kind.as_str() {
                "static" => Some(static_seal(&body)?),
                "shamir" => None,
                other => bail!("unsupported seal type \"{other}\" (supported: static, shamir)"),
            }
        }
    };
    let duration = |k: &str| -> anyhow::Result<Option<u64>> {
        tree.get(k)
            .map(|v| {
                parse_duration_value(v)
                    .map(|d| d.as_secs())
                    .map_err(|e| anyhow!("{k}: {e}"))
            })
            .transpose()
    };
    if let Some(v) = tree.get("disable_mlock") {
        as_bool(v, "disable_mlock")?;
    }
    let log_level = tree
        .get("log_level")
        .map(|v| as_string(v, "log_level"))
        .transpose()?;
    if let Some(l) = &log_level {
        if !matches!(
            l.to_ascii_lowercase().as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            bail!("log_level must be one of trace, debug, info, warn, error");
        }
    }
    Ok(ServerConfig {
        listeners,
        storage,
        static_seal,
        api_addr: tree
            .get("api_addr")
            .map(|v| as_string(v, "api_addr"))
            .transpose()?,
        cluster_addr: tree
            .get("cluster_addr")
            .map(|v| as_string(v, "cluster_addr"))
            .transpose()?,
        default_lease_ttl: duration("default_lease_ttl")?,
        max_lease_ttl: duration("max_lease_ttl")?,
        ui: tree
            .get("ui")
            .map(|v| as_bool(v, "ui"))
            .transpose()?
            .unwrap_or(false),
        log_level: log_level.map(|l| l.to_ascii_lowercase()),
        dialects: coffer_api::DialectSettings {
            aws: match tree.get("aws") {
                None => Default::default(),
                Some(v) => aws_settings(v)?,
            },
            azure: match tree.get("azure") {
                None => Default::default(),
                Some(v) => azure_settings(v)?,
            },
        },
        rotation: {
            let mut r = crate::rotation::RotationSettings::default();
            if let Some(v) = tree.get("rotation") {
                r.merge_stanza(v)?;
            }
            r
        },
    })
}

/// The bodies of a block given once or several times.
pub(crate) fn block_bodies(v: &Value, what: &str) -> anyhow::Result<Vec<Map<String, Value>>> {
    match v {
        Value::Object(m) => Ok(vec![m.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(m) => Ok(m.clone()),
                _ => Err(anyhow!("the {what} block must be an object")),
            })
            .collect(),
        _ => bail!("the {what} block must be an object"),
    }
}

/// A kv mount named in a dialect's block, normalized to end with `/`.
fn kv_mount(mount: &Value, what: &str) -> anyhow::Result<String> {
    let mount = as_string(mount, what)?;
    let mount = format!("{}/", mount.trim_matches('/'));
    if mount == "/" || mount.starts_with("sys/") || mount.starts_with("auth/") {
        bail!("{what} must name a kv v2 mount");
    }
    Ok(mount)
}

/// `azure { tenant = "adfs"  approle_mount = "approle"  vault "payments" { mount = "kv-pay" } }`.
fn azure_settings(v: &Value) -> anyhow::Result<coffer_api::azure::AzureSettings> {
    let mut out = coffer_api::azure::AzureSettings::default();
    for body in block_bodies(v, "azure")? {
        check_keys("azure", &body, &["tenant", "approle_mount", "vault"])?;
        if let Some(t) = body.get("tenant") {
            let t = as_string(t, "azure.tenant")?;
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                bail!("azure.tenant must be letters, digits, '-' and '.' (e.g. adfs or a GUID)");
            }
            out.tenant = t;
        }
        if let Some(m) = body.get("approle_mount") {
            let m = as_string(m, "azure.approle_mount")?;
            let m = m.trim_matches('/').trim_start_matches("auth/").to_string();
            if m.is_empty() {
                bail!("azure.approle_mount must name an AppRole auth mount");
            }
            out.approle_mount = m;
        }
        if let Some(vaults) = body.get("vault") {
            for (vault, vbody) in labelled_blocks(vaults)? {
                check_keys(&format!("azure vault \"{vault}\""), &vbody, &["mount"])?;
                if !coffer_api::azure::names::is_legal(&vault) || vault.len() > 24 {
                    bail!("azure vault \"{vault}\": a vault name is 1-24 letters, digits and '-'");
                }
                let mount = vbody
                    .get("mount")
                    .ok_or_else(|| anyhow!("azure vault \"{vault}\" needs a mount"))
                    .and_then(|m| kv_mount(m, &format!("azure vault \"{vault}\" mount")))?;
                if out
                    .vault_mounts
                    .insert(vault.to_ascii_lowercase(), mount)
                    .is_some()
                {
                    bail!("azure vault \"{vault}\" is configured twice");
                }
            }
        }
    }
    Ok(out)
}

/// `aws { max_clock_skew = "15m"  region "eu-west-1" { mount = "secret-eu" } }`.
fn aws_settings(v: &Value) -> anyhow::Result<coffer_api::aws::AwsSettings> {
    let mut out = coffer_api::aws::AwsSettings::default();
    for body in block_bodies(v, "aws")? {
        check_keys("aws", &body, &["max_clock_skew", "region"])?;
        if let Some(d) = body.get("max_clock_skew") {
            let d = parse_duration_value(d).map_err(|e| anyhow!("aws.max_clock_skew: {e}"))?;
            if d.as_secs() == 0 || d.as_secs() > 24 * 3600 {
                bail!("aws.max_clock_skew must be between 1s and 24h");
            }
            out.max_clock_skew = d;
        }
        if let Some(r) = body.get("region") {
            for (region, rbody) in labelled_blocks(r)? {
                check_keys(&format!("aws region \"{region}\""), &rbody, &["mount"])?;
                if region.is_empty()
                    || !region
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    bail!("aws region \"{region}\": not a region name");
                }
                let mount = rbody
                    .get("mount")
                    .ok_or_else(|| anyhow!("aws region \"{region}\" needs a mount"))
                    .and_then(|m| kv_mount(m, &format!("aws region \"{region}\": mount")))?;
                if out.region_mounts.insert(region.clone(), mount).is_some() {
                    bail!("aws region \"{region}\" is configured twice");
                }
            }
        }
    }
    Ok(out)
}

fn listener(body: &Map<String, Value>) -> anyhow::Result<ListenerConfig> {
    check_keys(
        "listener \"tcp\"",
        body,
        &[
            "address",
            "tls_disable",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "tls_require_and_verify_client_cert",
            "tls_min_version",
            "cluster_address",
            "http_read_header_timeout",
            "http_idle_timeout",
            "max_connections",
        ],
    )?;
    let address = body
        .get("address")
        .map(|v| as_string(v, "listener address"))
        .transpose()?
        .unwrap_or_else(|| "127.0.0.1:8200".to_string());
    let tls_disable = body
        .get("tls_disable")
        .map(|v| as_bool(v, "tls_disable"))
        .transpose()?
        .unwrap_or(false);
    let tls = if tls_disable {
        None
    } else {
        let cert = body
            .get("tls_cert_file")
            .map(|v| as_string(v, "tls_cert_file"))
            .transpose()?;
        let key = body
            .get("tls_key_file")
            .map(|v| as_string(v, "tls_key_file"))
            .transpose()?;
        match (cert, key) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert_file: c.into(),
                key_file: k.into(),
                client_ca_file: body
                    .get("tls_client_ca_file")
                    .map(|v| as_string(v, "tls_client_ca_file"))
                    .transpose()?
                    .map(PathBuf::from),
                require_client_cert: body
                    .get("tls_require_and_verify_client_cert")
                    .map(|v| as_bool(v, "tls_require_and_verify_client_cert"))
                    .transpose()?
                    .unwrap_or(false),
            }),
            _ => bail!("listener: TLS is enabled but tls_cert_file and tls_key_file are not both set (set tls_disable = true for plain HTTP)"),
        }
    };
    let mut cfg = ListenerConfig::new(address, tls);
    let duration = |k: &str| -> anyhow::Result<Option<std::time::Duration>> {
        body.get(k)
            .map(|v| parse_duration_value(v).map_err(|e| anyhow!("listener {k}: {e}")))
            .transpose()
    };
    if let Some(d) = duration("http_read_header_timeout")? {
        cfg.read_header_timeout = d;
    }
    if let Some(d) = duration("http_idle_timeout")? {
        cfg.idle_timeout = d;
    }
    if let Some(v) = body.get("max_connections") {
        cfg.max_connections = as_string(v, "max_connections")?
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CONNECTIONS_LIMIT).contains(n))
            .ok_or_else(|| {
                anyhow!(
                    "listener max_connections must be an integer from 1 to {MAX_CONNECTIONS_LIMIT}"
                )
            })?;
    }
    Ok(cfg)
}

/// Largest accepted `max_connections`.
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

fn static_seal(body: &Map<String, Value>) -> anyhow::Result<StaticSeal> {
    check_keys("seal \"static\"", body, &["current_key_id", "current_key"])?;
    let key_id = body
        .get("current_key_id")
        .map(|v| as_string(v, "current_key_id"))
        .transpose()?
        .unwrap_or_else(|| "static".to_string());
    let source = body
        .get("current_key")
        .map(|v| as_string(v, "current_key"))
        .transpose()?
        .ok_or_else(|| {
            anyhow!("seal \"static\" needs current_key (\"file:///path\" or \"env://VAR\")")
        })?;
    let raw: zeroize::Zeroizing<Vec<u8>> = if let Some(path) = source.strip_prefix("file://") {
        zeroize::Zeroizing::new(
            std::fs::read(path).with_context(|| format!("reading static seal key file {path}"))?,
        )
    } else if let Some(var) = source.strip_prefix("env://") {
        zeroize::Zeroizing::new(
            std::env::var(var)
                .map_err(|_| anyhow!("static seal key variable {var} is not set"))?
                .into_bytes(),
        )
    } else {
        bail!("seal \"static\": current_key must be \"file:///path\" or \"env://VAR\"");
    };
    let key = decode_seal_key(&raw).ok_or_else(|| {
        anyhow!("static seal key must be 32 bytes: raw, 64 hex characters or base64")
    })?;
    Ok(StaticSeal { key_id, key })
}

fn decode_seal_key(raw: &[u8]) -> Option<SecretKey> {
    use base64::Engine;
    if raw.len() == 32 {
        return SecretKey::from_slice(raw).ok();
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    if let Ok(b) = hex::decode(text) {
        let b = zeroize::Zeroizing::new(b);
        return SecretKey::from_slice(&b).ok();
    }
    let b = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
    );
    SecretKey::from_slice(&b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn hcl_and_json_agree() {
        let d = tempfile::tempdir().unwrap();
        let h = write(
            d.path(),
            "a.hcl",
            r#"
storage "file" { path = "/tmp/x" }
listener "tcp" {
  address = "127.0.0.1:9999"
  tls_disable = true
}
default_lease_ttl = "1h"
max_lease_ttl = "768h"
disable_mlock = true
ui = true
"#,
        );
        let j = write(
            d.path(),
            "b.json",
            r#"{"backend":{"file":{"path":"/tmp/x"}},"listener":{"tcp":{"address":"127.0.0.1:9999","tls_disable":"true"}},
               "default_lease_ttl":"1h","max_lease_ttl":"768h","disable_mlock":true,"ui":true}"#,
        );
        let a = load_config(&[h]).unwrap();
        let b = load_config(&[j]).unwrap();
        assert_eq!(
            a.storage,
            StorageConfig::File {
                path: "/tmp/x".into()
            }
        );
        assert_eq!(a.storage, b.storage);
        assert_eq!(a.listeners[0].address, "127.0.0.1:9999");
        assert_eq!(b.listeners[0].address, "127.0.0.1:9999");
        assert!(a.listeners[0].tls.is_none() && b.listeners[0].tls.is_none());
        assert_eq!(a.default_lease_ttl, Some(3600));
        assert_eq!(b.max_lease_ttl, Some(768 * 3600));
    }

    #[test]
    fn azure_stanza() {
        let d = tempfile::tempdir().unwrap();
        let base = "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n}\n";
        let f = write(
            d.path(),
            "azure.hcl",
            &format!(
                "{base}azure {{\n  tenant = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n  approle_mount = \"auth/apps/\"\n  vault \"Payments\" {{\n    mount = \"/kv-pay/\"\n  }}\n}}\n"
            ),
        );
        let az = load_config(&[f]).unwrap().dialects.azure;
        assert_eq!(az.tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_eq!(az.approle_mount, "apps");
        assert_eq!(az.mount_for("payments.vault.example:8443"), "kv-pay/");
        assert_eq!(az.mount_for("other.vault.example:8443"), "secret/");
        let f = write(d.path(), "none.hcl", base);
        assert_eq!(
            load_config(&[f]).unwrap().dialects.azure,
            coffer_api::azure::AzureSettings::default()
        );
        for (bad, says) in [
            ("azure {\n  tenant = \"a b\"\n}\n", "tenant"),
            ("azure {\n  tenant = \"a\\\", x=\\\"\"\n}\n", "tenant"),
            ("azure {\n  approle_mount = \"/\"\n}\n", "approle_mount"),
            (
                "azure {\n  vault \"a_b\" {\n    mount = \"x\"\n  }\n}\n",
                "vault name",
            ),
            ("azure {\n  vault \"a\" {}\n}\n", "needs a mount"),
            (
                "azure {\n  vault \"a\" {\n    mount = \"sys/\"\n  }\n}\n",
                "kv v2 mount",
            ),
            ("azure {\n  vaults = 1\n}\n", "vaults"),
        ] {
            let f = write(d.path(), "bad.hcl", &format!("{base}{bad}"));
            let err = format!("{:#}", load_config(&[f]).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn aws_stanza() {
        let d = tempfile::tempdir().unwrap();
        let base = "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n}\n";
        let f = write(
            d.path(),
            "aws.hcl",
            &format!(
                "{base}aws {{\n  max_clock_skew = \"5m\"\n  region \"eu-west-1\" {{\n    mount = \"/secret-eu/\"\n  }}\n  region \"us-west-2\" {{\n    mount = \"kv-usw2\"\n  }}\n}}\n"
            ),
        );
        let c = load_config(&[f]).unwrap();
        assert_eq!(
            c.dialects.aws.max_clock_skew,
            std::time::Duration::from_secs(300)
        );
        assert_eq!(c.dialects.aws.mount_for("eu-west-1"), "secret-eu/");
        assert_eq!(c.dialects.aws.mount_for("us-west-2"), "kv-usw2/");
        assert_eq!(c.dialects.aws.mount_for("us-east-1"), "secret/");
        // no stanza: AWS's defaults
        let f = write(d.path(), "none.hcl", base);
        assert_eq!(load_config(&[f]).unwrap().dialects, Default::default());
        for (bad, says) in [
            ("aws {\n  max_clock_skew = \"0s\"\n}\n", "max_clock_skew"),
            ("aws {\n  max_clock_skew = \"48h\"\n}\n", "max_clock_skew"),
            ("aws {\n  skew = \"1m\"\n}\n", "skew"),
            (
                "aws {\n  region \"eu west\" {\n    mount = \"x\"\n  }\n}\n",
                "region name",
            ),
            ("aws {\n  region \"eu-west-1\" {}\n}\n", "needs a mount"),
            (
                "aws {\n  region \"eu-west-1\" {\n    mount = \"sys\"\n  }\n}\n",
                "kv v2 mount",
            ),
            (
                "aws {\n  region \"eu-west-1\" {\n    mount = \"x\"\n    extra = 1\n  }\n}\n",
                "extra",
            ),
        ] {
            let f = write(d.path(), "bad.hcl", &format!("{base}{bad}"));
            let err = format!("{:#}", load_config(&[f]).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "c.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n}\nfrobnicate = true\n",
        );
        let err = format!("{:#}", load_config(&[f]).unwrap_err());
        assert!(err.contains("frobnicate"), "{err}");
        let f = write(
            d.path(),
            "d.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n bogus_opt = 1\n}\n",
        );
        let err = format!("{:#}", load_config(&[f]).unwrap_err());
        assert!(err.contains("bogus_opt"), "{err}");
    }

    #[test]
    fn listener_limits() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "l.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n}\n",
        );
        let l = &load_config(&[f]).unwrap().listeners[0];
        assert_eq!(l.read_header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(l.idle_timeout, std::time::Duration::from_secs(300));
        assert_eq!(l.max_connections, 4096);
        let f = write(
            d.path(),
            "m.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n http_read_header_timeout = \"1.5s\"\n http_idle_timeout = \"0\"\n max_connections = 8\n}\n",
        );
        let l = &load_config(&[f]).unwrap().listeners[0];
        assert_eq!(
            l.read_header_timeout,
            std::time::Duration::from_millis(1500)
        );
        assert!(l.idle_timeout.is_zero());
        assert_eq!(l.max_connections, 8);
        for bad in [
            "http_read_header_timeout = \"soon\"",
            "http_idle_timeout = \"-1s\"",
            "max_connections = 0",
            "max_connections = \"many\"",
        ] {
            let f = write(
                d.path(),
                "n.hcl",
                &format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n tls_disable = true\n {bad}\n}}\n"),
            );
            let key = bad.split_whitespace().next().unwrap();
            let err = format!("{:#}", load_config(&[f]).unwrap_err());
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn static_seal_from_env() {
        let d = tempfile::tempdir().unwrap();
        let keyfile = write(d.path(), "k", &"ab".repeat(32));
        let f = write(
            d.path(),
            "s.hcl",
            &format!(
                "storage \"inmem\" {{}}\nlistener \"tcp\" {{ tls_disable = true }}\nseal \"static\" {{\n current_key_id = \"k1\"\n current_key = \"file://{}\"\n}}\n",
                keyfile.display()
            ),
        );
        let c = load_config(&[f]).unwrap();
        assert_eq!(c.static_seal.unwrap().key.as_bytes(), &[0xab; 32]);
    }
}
