//! The `sys/` API that runs through the router: mounts, policies, capabilities, keys, seal.
//! (`sys/init`, `sys/unseal`, `sys/seal-status` and `sys/health` work while sealed and are
//! served by the dialect from [`Core`]'s seal methods directly.)

use crate::auth_token::keys_map;
use crate::core::{new_mount_entry, Active, Core};
use crate::error::{CoreError, Result};
use crate::request::{Operation, Request, Response};
use crate::router::{MountConfig, MountEntry};
use crate::token::TokenEntry;
use crate::util::{parse_duration_value, value_as_bool, value_as_string_list};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Paths under `sys/` that need `sudo` (Vault's root-protected sys paths).
pub(crate) fn needs_sudo(rest: &str, op: Operation) -> bool {
    rest == "rotate"
        || rest == "seal"
        || rest == "step-down"
        || rest.starts_with("raw")
        || rest.starts_with("audit")
        || (rest.starts_with("auth/") && !rest.ends_with("/tune") && op != Operation::Read)
        || rest.starts_with("leases/revoke-prefix/")
        || rest.starts_with("leases/revoke-force/")
        || (rest.starts_with("leases/lookup") && op == Operation::List)
}

/// Paths under `sys/` open to any valid token without an ACL check. As in Vault, a client may
/// ask which mount serves a path and how (`coffer kv` and `vault kv` use it to find the kv
/// version); the data itself stays behind the ACL.
pub(crate) fn any_valid_token(rest: &str) -> bool {
    rest.starts_with("internal/ui/mounts/")
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

/// Paths under `sys/` answered without a token.
pub(crate) fn unauthenticated(rest: &str) -> bool {
    matches!(
        rest,
        "leader"
            | "health"
            | "seal-status"
            | "init"
            | "wrapping/unwrap"
            | "wrapping/lookup"
            | "wrapping/rewrap"
    )
}

/// Run a `sys/` request that the core has already authenticated, authorized and audited.
pub(crate) async fn dispatch(
    core: &Core,
    active: &Active,
    req: &Request,
    rest: &str,
    op: Operation,
    caller: Option<Arc<TokenEntry>>,
) -> Result<Response> {
    let d = &req.data;
    match (rest, op) {
        ("leader", Operation::Read) => Ok(top_level_value(json!({
            "ha_enabled": false,
            "is_self": false,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0
        }))),
        ("mounts", Operation::Read) => Ok(top_level(list_mounts(active, false))),
        ("auth", Operation::Read) => Ok(top_level(list_mounts(active, true))),
        (p, _) if p.starts_with("mounts/") => {
            mounts_path(core, active, &p["mounts/".len()..], op, d, false).await
        }
        (p, _) if p.starts_with("auth/") => {
            mounts_path(core, active, &p["auth/".len()..], op, d, true).await
        }
        ("policy", Operation::Read | Operation::List) => {
            let names = active.policies.list().await?;
            let mut r = Response::from_value(json!({"policies": names, "keys": names}));
            r.data_at_top_level = true;
            Ok(r)
        }
        ("policies/acl", Operation::Read | Operation::List) => {
            let names = active.policies.list().await?;
            Ok(Response::data(keys_map(names)))
        }
        (p, _) if p.starts_with("policy/") => {
            policy_path(active, &p["policy/".len()..], op, d, "rules").await
        }
        (p, _) if p.starts_with("policies/acl/") => {
            policy_path(active, &p["policies/acl/".len()..], op, d, "policy").await
        }
        ("capabilities" | "capabilities-self" | "capabilities-accessor", Operation::Update) => {
            let target = match rest {
                "capabilities-self" => caller.ok_or_else(CoreError::denied)?,
                "capabilities" => {
                    let t = str_param(d, "token")?
                        .ok_or_else(|| CoreError::invalid("missing token"))?;
                    active
                        .tokens
                        .lookup(t)
                        .await?
                        .ok_or_else(|| CoreError::invalid("invalid token"))?
                }
                _ => {
                    let a = str_param(d, "accessor")?
                        .ok_or_else(|| CoreError::invalid("missing accessor"))?;
                    active
                        .tokens
                        .lookup_accessor(a)
                        .await?
                        .ok_or_else(|| CoreError::invalid("invalid accessor"))?
                }
            };
            let mut paths = match d.get("paths") {
                Some(v) => value_as_string_list(v)
                    .ok_or_else(|| CoreError::invalid("\"paths\" must be a list of strings"))?,
                None => vec![],
            };
            if let Some(p) = str_param(d, "path")? {
                paths.push(p.to_string());
            }
            if paths.is_empty() {
                return Err(CoreError::invalid("missing paths"));
            }
            let acl = active.policies.acl_for(&target.policies).await?;
            let mut out = Map::new();
            let mut all: Vec<&'static str> = Vec::new();
            for p in &paths {
                let caps = acl.capabilities(p.trim_start_matches('/'));
                for c in &caps {
                    if !all.contains(c) {
                        all.push(c);
                    }
                }
                out.insert(p.clone(), json!(caps));
            }
            if paths.len() == 1 {
                out.insert("capabilities".into(), json!(all));
            }
            let mut r = Response::data(out);
            r.data_at_top_level = true;
            Ok(r)
        }
        ("audit", Operation::Read) => Ok(top_level(active.audit.list())),
        (p, Operation::Update) if p.starts_with("audit/") => {
            let kind = match d.get("type") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(CoreError::invalid(
                        "audit device type must be specified as a string",
                    ))
                }
            };
            let description = str_param(d, "description")?.unwrap_or("").to_string();
            let options = match d.get("options") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(CoreError::invalid("\"options\" must be an object")),
            };
            let local = match d.get("local") {
                None | Some(Value::Null) => false,
                Some(v) => value_as_bool(v)
                    .ok_or_else(|| CoreError::invalid("\"local\" must be a boolean"))?,
            };
            active
                .audit
                .enable(&p["audit/".len()..], &kind, description, options, local)
                .await?;
            Ok(Response::default())
        }
        (p, Operation::Delete) if p.starts_with("audit/") => {
            active.audit.disable(&p["audit/".len()..]).await?;
            Ok(Response::default())
        }
        (p, Operation::Update) if p.starts_with("audit-hash/") => {
            let input =
                str_param(d, "input")?.ok_or_else(|| CoreError::invalid("missing input"))?;
            let hash = active.audit.hash(&p["audit-hash/".len()..], input)?;
            Ok(Response::from_value(json!({ "hash": hash })))
        }
        (p, Operation::Read) if p.starts_with("audit-chain/") => Ok(Response::data(
            active.audit.chain_info(&p["audit-chain/".len()..])?,
        )),
        ("wrapping/unwrap" | "wrapping/lookup" | "wrapping/rewrap", Operation::Update)
        | ("wrapping/lookup", Operation::Read) => {
            // the wrapping token is the credential: from the body, else the request's token
            let token = match str_param(d, "token")? {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => req
                    .token()
                    .map(str::to_string)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CoreError::invalid("no wrapping token given"))?,
            };
            match rest {
                "wrapping/unwrap" => crate::wrapping::unwrap(active, &token).await,
                "wrapping/rewrap" => crate::wrapping::rewrap(active, &token).await,
                _ => crate::wrapping::lookup(active, &token).await,
            }
        }
        ("wrapping/wrap", Operation::Update) => {
            let ttl = req
                .wrap_ttl
                .as_deref()
                .filter(|w| !w.is_empty())
                .ok_or_else(|| {
                    CoreError::invalid(
                        "wrapping requested but no wrap TTL given (X-Vault-Wrap-TTL)",
                    )
                })?;
            let ttl = crate::wrapping::parse_wrap_ttl(ttl)?;
            if d.is_empty() {
                return Err(CoreError::invalid("empty data to wrap"));
            }
            crate::wrapping::wrap(active, Response::data(d.clone()), "sys/wrapping/wrap", ttl).await
        }
        ("leases/lookup", Operation::Update) => {
            let id = lease_id_param(d)?;
            let lease = active
                .leases
                .get(&id)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid lease"))?;
            Ok(Response::data(lease.lookup_data()))
        }
        (p, Operation::List) if p == "leases/lookup" || p.starts_with("leases/lookup/") => {
            let prefix = p
                .trim_start_matches("leases/lookup")
                .trim_start_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            crate::lease::validate_lease_id(if prefix.is_empty() { "x" } else { &prefix })?;
            let keys = active.leases.view().list(&prefix).await?;
            if keys.is_empty() {
                return Err(CoreError::not_found(""));
            }
            Ok(Response::data(keys_map(keys)))
        }
        ("leases/renew" | "renew", Operation::Update) => {
            let id = lease_id_param(d)?;
            let lease = active
                .leases
                .get(&id)
                .await?
                .ok_or_else(|| CoreError::invalid("lease not found"))?;
            if let Some(v) = d.get("increment").filter(|v| !v.is_null()) {
                parse_duration_value(v)?;
            }
            match &lease.token_hash {
                // as in Vault: a token is renewed through auth/token/renew*, which asks the auth
                // method that issued it
                Some(_) => Err(CoreError::invalid(
                    "tokens cannot be renewed through this endpoint",
                )),
                None => Err(CoreError::invalid("lease is not renewable")),
            }
        }
        ("leases/revoke" | "revoke", Operation::Update) => {
            let id = lease_id_param(d)?;
            revoke_lease(active, &id).await?;
            Ok(Response::default())
        }
        (p, Operation::Update) if p.starts_with("leases/revoke/") => {
            let id = p["leases/revoke/".len()..].to_string();
            crate::lease::validate_lease_id(&id)?;
            revoke_lease(active, &id).await?;
            Ok(Response::default())
        }
        (p, Operation::Update)
            if p.starts_with("leases/revoke-prefix/") || p.starts_with("leases/revoke-force/") =>
        {
            let force = p.starts_with("leases/revoke-force/");
            let prefix = p.splitn(3, '/').nth(2).unwrap_or("").trim_end_matches('/');
            crate::lease::validate_lease_id(prefix)?;
            // the prefix may itself be a lease id (Vault revokes it first)
            let mut ids = active.leases.ids_under(&format!("{prefix}/")).await?;
            if active.leases.get(prefix).await?.is_some() {
                ids.insert(0, prefix.to_string());
            }
            for id in ids {
                match revoke_lease(active, &id).await {
                    Ok(()) => {}
                    Err(_) if force => active.leases.delete(&id).await?,
                    Err(e) => return Err(e),
                }
            }
            Ok(Response::default())
        }
        ("leases/tidy", Operation::Update) => {
            let mut removed = 0u64;
            for id in active.leases.ids_under("").await? {
                if let Some(l) = active.leases.get(&id).await? {
                    if let Some(h) = &l.token_hash {
                        if active.tokens.lookup_hash(h).await?.is_none() {
                            active.leases.delete(&id).await?;
                            removed += 1;
                        }
                    }
                }
            }
            Ok(Response::default().with_warning(format!(
                "Tidy operation completed: removed {removed} leases whose tokens no longer exist."
            )))
        }
        ("rotate", Operation::Update) => {
            core.rotate().await?;
            Ok(Response::default())
        }
        ("key-status", Operation::Read) => {
            let st = core.barrier().key_status()?;
            Ok(Response::from_value(json!({
                "term": st.term,
                "install_time": st.install_time,
                "encryptions": 0
            })))
        }
        // the core seals once this request's response entry is written (see Core::handle)
        ("seal", Operation::Update) => Ok(Response::default()),
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
        (
            "leader"
            | "audit"
            | "mounts"
            | "auth"
            | "policy"
            | "policies/acl"
            | "capabilities"
            | "capabilities-self"
            | "capabilities-accessor"
            | "rotate"
            | "key-status"
            | "seal"
            | "internal/ui/mounts",
            _,
        ) => Err(CoreError::unsupported_operation()),
        _ => Err(CoreError::unsupported_path(&req.path)),
    }
}

fn lease_id_param(d: &Map<String, Value>) -> Result<String> {
    let id = str_param(d, "lease_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CoreError::invalid("lease_id must be specified"))?
        .to_string();
    crate::lease::validate_lease_id(&id)?;
    Ok(id)
}

/// Revoke one lease: a token's lease revokes the token (and its children).
pub(crate) async fn revoke_lease(active: &Active, id: &str) -> Result<()> {
    match active.leases.get(id).await? {
        Some(l) => match &l.token_hash {
            Some(h) => active.tokens.revoke_tree(h).await,
            None => active.leases.delete(id).await,
        },
        // revoking an unknown lease succeeds, as in Vault
        None => Ok(()),
    }
}

fn top_level_value(v: Value) -> Response {
    let mut r = Response::from_value(v);
    r.data_at_top_level = true;
    r
}

fn top_level(m: Map<String, Value>) -> Response {
    let mut r = Response::data(m);
    r.data_at_top_level = true;
    r
}

fn str_param<'a>(d: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CoreError::invalid(format!("\"{key}\" must be a string"))),
    }
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

async fn policy_path(
    active: &Active,
    name: &str,
    op: Operation,
    d: &Map<String, Value>,
    field: &str,
) -> Result<Response> {
    match op {
        Operation::Read => {
            if name == "root" {
                let mut m = Map::new();
                m.insert("name".into(), "root".into());
                m.insert(field.into(), "".into());
                return Ok(Response::data(m));
            }
            let (_, raw) = active
                .policies
                .get(name)
                .await?
                .ok_or_else(|| CoreError::not_found(""))?;
            let mut m = Map::new();
            m.insert(
                "name".into(),
                crate::policy_store::normalize_name(name)?.into(),
            );
            m.insert(field.into(), raw.to_string().into());
            let mut r = Response::data(m);
            if field == "rules" {
                r.data_at_top_level = true;
            }
            Ok(r)
        }
        Operation::Update => {
            let text = match d.get("policy").or_else(|| d.get("rules")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(_)) => d
                    .get("policy")
                    .or_else(|| d.get("rules"))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                None | Some(Value::Null) => {
                    return Err(CoreError::invalid(
                        "'policy' parameter not supplied or empty",
                    ))
                }
                Some(_) => return Err(CoreError::invalid("\"policy\" must be a string")),
            };
            active.policies.set(name, &text).await?;
            Ok(Response::default())
        }
        Operation::Delete => {
            active.policies.delete(name).await?;
            Ok(Response::default())
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}
