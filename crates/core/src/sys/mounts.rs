//! `sys/mounts*`, `sys/auth*` (enable, disable, read, tune) and `sys/internal/ui/mounts*`.

use crate::core::{new_mount_entry, Active, Core};
use crate::error::{CoreError, Result};
use crate::request::{Operation, Response};
use crate::router::{MountConfig, MountEntry};
use crate::token::TokenEntry;
use crate::util::{parse_duration_value, value_as_bool, value_as_string_list};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    matches!(rest, "mounts" | "auth" | "internal/ui/mounts" | "remount")
        || rest.starts_with("remount/status/")
        || rest.starts_with("mounts/")
        || rest.starts_with("auth/")
        || rest.starts_with("internal/ui/mounts/")
}

pub(super) async fn dispatch(
    core: &Core,
    active: &Active,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    caller: Option<Arc<TokenEntry>>,
    full_path: &str,
) -> Result<Response> {
    match (rest, op) {
        ("mounts", Operation::Read) => Ok(Response::data(list_mounts(active, false))),
        ("remount", Operation::Update) => {
            let path = |k: &str| match d.get(k) {
                Some(Value::String(s)) => Ok(s.as_str()),
                None | Some(Value::Null) => Ok(""),
                Some(_) => Err(CoreError::invalid(
                    "both 'from' and 'to' path must be specified as a string",
                )),
            };
            let id = core.remount(path("from")?, path("to")?).await?;
            Ok(Response::from_value(json!({ "migration_id": id })))
        }
        (p, Operation::Read) if p.starts_with("remount/status/") => {
            let id = &p["remount/status/".len()..];
            match core.remount_status(id).await? {
                Some(info) => Ok(Response::from_value(json!({
                    "migration_id": id,
                    "migration_info": info,
                }))),
                None => Err(CoreError::not_found("")),
            }
        }
        ("auth", Operation::Read) => Ok(Response::data(list_mounts(active, true))),
        (p, _) if p.starts_with("mounts/") => {
            mounts_path(core, active, &p["mounts/".len()..], op, d, false).await
        }
        (p, _) if p.starts_with("auth/") => {
            mounts_path(core, active, &p["auth/".len()..], op, d, true).await
        }
        ("internal/ui/mounts", Operation::Read) => Ok(Response::from_value(json!({
            "secret": Value::Object(list_mounts(active, false)),
            "auth": Value::Object(list_mounts(active, true)),
        }))),
        (p, Operation::Read) if p.starts_with("internal/ui/mounts/") => {
            let target = &p["internal/ui/mounts/".len()..];
            let (mount, _) = active.router.route(target).ok_or_else(|| {
                CoreError::invalid(format!("no mount found for path \"{target}\""))
            })?;
            // like Vault, only to a token that can reach something under that mount
            if let Some(c) = &caller {
                if !may_see_mount(active, c, &mount.entry.path).await? {
                    return Err(CoreError::denied());
                }
            }
            let mut m = mount_json(&mount.entry, false);
            m.insert("path".into(), mount.entry.path.clone().into());
            Ok(Response::data(m))
        }
        ("mounts" | "auth" | "internal/ui/mounts" | "remount", _) => {
            Err(CoreError::unsupported_operation())
        }
        _ => Err(CoreError::unsupported_path(full_path)),
    }
}

/// Whether a token has any capability on some path under `mount_path` (root always does).
async fn may_see_mount(active: &Active, token: &TokenEntry, mount_path: &str) -> Result<bool> {
    if token.is_root() {
        return Ok(true);
    }
    for name in &token.policies {
        if let Some((policy, _)) = active.policies.get(name).await? {
            let grants = policy.rules().iter().any(|r| {
                let pattern = r.path.trim_end_matches('*');
                let overlaps = pattern.starts_with(mount_path) || mount_path.starts_with(pattern);
                overlaps && !r.capabilities.contains(crate::policy::Capabilities::DENY)
            });
            if grants {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn mount_json(e: &MountEntry, auth: bool) -> Map<String, Value> {
    let mut config = json!({
        "default_lease_ttl": e.config.default_lease_ttl,
        "max_lease_ttl": e.config.max_lease_ttl,
        "force_no_cache": e.config.force_no_cache,
    });
    if !auth {
        config["force_no_cache"] = e.config.force_no_cache.into();
    }
    if let Some(v) = &e.config.listing_visibility {
        config["listing_visibility"] = v.clone().into();
    }
    let v = json!({
        "accessor": e.accessor,
        "config": config,
        "description": e.description,
        "external_entropy_access": false,
        "local": e.local,
        "options": if e.options.is_empty() { Value::Null } else { Value::Object(e.options.clone()) },
        "plugin_version": e.plugin_version,
        "running_plugin_version": format!("v{}+builtin.coffer", crate::core::VERSION),
        "running_sha256": "",
        "seal_wrap": e.seal_wrap,
        "type": e.kind,
        "uuid": e.uuid,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn list_mounts(active: &Active, auth: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for m in active.router.mounts() {
        let is_auth = m.entry.path.starts_with("auth/");
        if is_auth != auth {
            continue;
        }
        let key = if auth {
            m.entry.path["auth/".len()..].to_string()
        } else {
            m.entry.path.clone()
        };
        out.insert(key, Value::Object(mount_json(&m.entry, auth)));
    }
    if !auth {
        let sys = MountEntry {
            path: "sys/".into(),
            kind: "system".into(),
            description: "system endpoints used for control, policy and debugging".into(),
            uuid: String::new(),
            accessor: "system".into(),
            config: MountConfig::default(),
            options: Map::new(),
            local: false,
            seal_wrap: true,
            plugin_version: String::new(),
        };
        out.insert("sys/".into(), Value::Object(mount_json(&sys, false)));
    }
    out
}

fn apply_config(cfg: &mut MountConfig, v: &Value) -> Result<()> {
    let Value::Object(m) = v else {
        if v.is_null() {
            return Ok(());
        }
        return Err(CoreError::invalid("\"config\" must be an object"));
    };
    for (k, val) in m {
        match k.as_str() {
            "default_lease_ttl" => cfg.default_lease_ttl = parse_duration_value(val)?.as_secs(),
            "max_lease_ttl" => cfg.max_lease_ttl = parse_duration_value(val)?.as_secs(),
            "force_no_cache" => {
                cfg.force_no_cache = value_as_bool(val)
                    .ok_or_else(|| CoreError::invalid("\"force_no_cache\" must be a boolean"))?
            }
            "listing_visibility" => cfg.listing_visibility = val.as_str().map(str::to_string),
            "audit_non_hmac_request_keys" => {
                cfg.audit_non_hmac_request_keys = value_as_string_list(val)
                    .ok_or_else(|| CoreError::invalid("invalid audit_non_hmac_request_keys"))?
            }
            "audit_non_hmac_response_keys" => {
                cfg.audit_non_hmac_response_keys = value_as_string_list(val)
                    .ok_or_else(|| CoreError::invalid("invalid audit_non_hmac_response_keys"))?
            }
            "passthrough_request_headers" => {
                cfg.passthrough_request_headers = value_as_string_list(val)
                    .ok_or_else(|| CoreError::invalid("invalid passthrough_request_headers"))?
            }
            "description"
            | "options"
            | "plugin_version"
            | "allowed_response_headers"
            | "token_type"
            | "user_lockout_config"
            | "allowed_managed_keys"
            | "delegated_auth_accessors" => {}
            other => {
                return Err(CoreError::invalid(format!(
                    "unknown mount config key \"{other}\""
                )))
            }
        }
    }
    if cfg.max_lease_ttl > 0 && cfg.default_lease_ttl > cfg.max_lease_ttl {
        return Err(CoreError::invalid(
            "default lease TTL cannot be greater than max lease TTL",
        ));
    }
    Ok(())
}

/// `user_lockout_config` (tune or enable) is kept in the mount's options as JSON text, where
/// the auth methods read it.
fn lockout_option(v: Option<&Value>) -> Result<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(Value::String(Value::Object(m.clone()).to_string()))),
        Some(Value::String(s)) => {
            serde_json::from_str::<Map<String, Value>>(s)
                .map_err(|_| CoreError::invalid("user_lockout_config must be an object"))?;
            Ok(Some(Value::String(s.clone())))
        }
        Some(_) => Err(CoreError::invalid("user_lockout_config must be an object")),
    }
}

fn apply_options(options: &mut Map<String, Value>, v: &Value) -> Result<()> {
    match v {
        Value::Null => Ok(()),
        Value::Object(m) => {
            for (k, val) in m {
                let s = match val {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(CoreError::invalid(format!(
                            "option \"{k}\" must be a string"
                        )))
                    }
                };
                options.insert(k.clone(), Value::String(s));
            }
            Ok(())
        }
        _ => Err(CoreError::invalid("\"options\" must be an object")),
    }
}

async fn mounts_path(
    core: &Core,
    active: &Active,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    auth: bool,
) -> Result<Response> {
    let (path, tune) = match rest.strip_suffix("/tune") {
        Some(p) => (p, true),
        None => (rest, false),
    };
    if path.is_empty() {
        return Err(CoreError::invalid("missing mount path"));
    }
    let full = if auth {
        format!("auth/{path}/")
    } else {
        format!("{path}/")
    };
    if !auth && (path == "auth" || path.starts_with("auth/")) {
        return Err(CoreError::invalid(
            "auth methods are mounted through sys/auth, not sys/mounts",
        ));
    }
    if tune {
        let mount = active.router.get(&full).ok_or_else(|| {
            CoreError::invalid(format!("cannot fetch sysview for path \"{full}\""))
        })?;
        return match op {
            Operation::Read => {
                let e = &mount.entry;
                let sys_default = core.config().default_lease_ttl;
                let sys_max = core.config().max_lease_ttl;
                let mut m = Map::new();
                m.insert("description".into(), e.description.clone().into());
                m.insert(
                    "default_lease_ttl".into(),
                    (if e.config.default_lease_ttl > 0 {
                        e.config.default_lease_ttl
                    } else {
                        sys_default
                    })
                    .into(),
                );
                m.insert(
                    "max_lease_ttl".into(),
                    (if e.config.max_lease_ttl > 0 {
                        e.config.max_lease_ttl
                    } else {
                        sys_max
                    })
                    .into(),
                );
                m.insert("force_no_cache".into(), e.config.force_no_cache.into());
                if !e.options.is_empty() {
                    m.insert("options".into(), Value::Object(e.options.clone()));
                }
                Ok(Response::data(m))
            }
            Operation::Update => {
                let mut cfg_changes = d.clone();
                let description = match d.get("description") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err(CoreError::invalid("\"description\" must be a string")),
                };
                let options = d.get("options").cloned();
                let lockout = lockout_option(d.get("user_lockout_config"))?;
                cfg_changes.remove("description");
                cfg_changes.remove("options");
                cfg_changes.remove("user_lockout_config");
                let cfg_value = Value::Object(cfg_changes);
                core.update_mount(&full, |e| {
                    apply_config(&mut e.config, &cfg_value)?;
                    if let Some(l) = &lockout {
                        e.options.insert("user_lockout_config".into(), l.clone());
                    }
                    if let Some(desc) = description {
                        e.description = desc;
                    }
                    if let Some(o) = &options {
                        let mut opts = e.options.clone();
                        apply_options(&mut opts, o)?;
                        if e.kind == "kv"
                            && opts.get("version").and_then(Value::as_str) == Some("1")
                            && e.options.get("version").and_then(Value::as_str) == Some("2")
                        {
                            return Err(CoreError::invalid(
                                "cannot downgrade mount from KV version 2 to 1",
                            ));
                        }
                        if e.kind == "kv"
                            && opts.get("version").and_then(Value::as_str) == Some("2")
                            && e.options.get("version").and_then(Value::as_str) != Some("2")
                        {
                            return Err(CoreError::invalid(
                                "upgrading a kv mount from version 1 to 2 is not supported: mount a new kv-v2 engine and copy the secrets",
                            ));
                        }
                        e.options = opts;
                    }
                    Ok(())
                })
                .await?;
                Ok(Response::default())
            }
            _ => Err(CoreError::unsupported_operation()),
        };
    }
    match op {
        Operation::Read => {
            let mount = active
                .router
                .get(&full)
                .ok_or_else(|| CoreError::invalid(format!("no matching mount at \"{full}\"")))?;
            Ok(Response::data(mount_json(&mount.entry, auth)))
        }
        Operation::Update => {
            let kind = match d.get("type") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    return Err(CoreError::invalid(
                        "backend type must be specified as a string",
                    ))
                }
                Some(_) => return Err(CoreError::invalid("\"type\" must be a string")),
            };
            let description = match d.get("description") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(CoreError::invalid("\"description\" must be a string")),
            };
            let mut options = Map::new();
            if let Some(o) = d.get("options") {
                apply_options(&mut options, o)?;
            }
            let (kind, options) = match kind.as_str() {
                "kv-v2" => {
                    options.insert("version".into(), "2".into());
                    ("kv".to_string(), options)
                }
                "kv" | "generic" => {
                    let v = options
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or("1")
                        .to_string();
                    if v != "1" && v != "2" {
                        return Err(CoreError::invalid(format!("invalid kv version \"{v}\"")));
                    }
                    options.insert("version".into(), v.into());
                    ("kv".to_string(), options)
                }
                _ => (kind, options),
            };
            let mut entry = new_mount_entry(&full, &kind, &description, options)?;
            if let Some(c) = d.get("config") {
                if let Some(l) = lockout_option(c.get("user_lockout_config"))? {
                    entry.options.insert("user_lockout_config".into(), l);
                }
                apply_config(&mut entry.config, c)?;
            }
            if let Some(v) = d.get("local") {
                entry.local = value_as_bool(v)
                    .ok_or_else(|| CoreError::invalid("\"local\" must be a boolean"))?;
            }
            if let Some(v) = d.get("seal_wrap") {
                entry.seal_wrap = value_as_bool(v)
                    .ok_or_else(|| CoreError::invalid("\"seal_wrap\" must be a boolean"))?;
            }
            core.mount(entry).await?;
            Ok(Response::default())
        }
        Operation::Delete => {
            core.unmount(&full).await?;
            Ok(Response::default())
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}
