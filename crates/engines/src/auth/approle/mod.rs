//! The AppRole auth method, wire-compatible with Vault's (`/v1/auth/approle/...`).
//!
//! Storage layout (under the mount's view; every secret ID and accessor is stored only as an
//! HMAC-SHA256 under the mount's random key, so storage never holds a usable credential):
//!
//! | key | record |
//! |---|---|
//! | `hmac_key` | the mount's HMAC key (32 random bytes, base64) |
//! | `role/<name>` | role settings, `role_id`, and a random `uuid` per creation |
//! | `role_id/<hmac(role_id)>` | `{"name": <role>}`: the unique role_id → role index |
//! | `secret_id/<role uuid>/<hmac(secret_id)>` | the secret ID's properties (no secret in it) |
//! | `accessor/<hmac(accessor)>` | `{"secret_id_hmac", "role_uuid"}` |
//! | `lockout/<hmac(role_id)>` | failed-login state of a role_id (see below) |
//!
//! Secret IDs live under the role's `uuid`, which is new each time a role is created, so the
//! secret IDs of a deleted role can never log in to a new role of the same name (tidy removes
//! them). Every change that must not race (use counts, role_id uniqueness, creation of a secret
//! ID) is a single `View::transaction` with `Check`s on what was read, retried on conflict.
//!
//! User lockout (Vault's, on by default): logins with an existing role_id and a wrong (or
//! expired, or used up) secret ID count as failures of that role_id; 5 within 15 minutes lock it
//! for 15 minutes, during which every login with it gets `403 permission denied` before the
//! secret ID is looked at (so nothing is spent). A successful login resets the count. Unknown
//! role_ids are never counted, so they cannot create state. The mount option
//! `user_lockout_config` changes the settings, as for userpass.

#[cfg(test)]
mod tests;

use super::common::{
    bool_param, cidr_param, cidrs_subset, display_source, duration_param, int_param,
    is_cas_failure, is_write, list_param, load, mount_max_ttl, non_negative_duration, not_found,
    op_check, op_delete, op_put, parse_policies, present, random_uuid, secret_param, string_param,
    too_much_contention, unsupported_path, upgrade_legacy, valid_name, Clock, MountHmacKey,
    TokenParams, MAX_CAS_RETRIES, MAX_HMAC_INPUT,
};
use super::lockout::{Lockout, LockoutConfig};
use async_trait::async_trait;
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::{Engine, EngineFactory, EngineRequest, MountEntry};
use coffer_core::util::{self, cidrs_allow, format_duration};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const INVALID_CREDENTIALS: &str = "invalid role or secret ID";
const NO_CONSTRAINT: &str = "at least one constraint should be enabled on the role";
const ACCESSOR_NOT_FOUND: &str = "failed to find accessor entry for secret_id_accessor";
/// What Vault prints for "no expiration" (Go's zero time).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The AppRole engine of one mount.
pub struct AppRoleEngine {
    hmac: MountHmacKey,
    clock: Clock,
    tidy_running: AtomicBool,
    lockout: Lockout,
}

impl std::fmt::Debug for AppRoleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRoleEngine").finish_non_exhaustive()
    }
}

impl Default for AppRoleEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl AppRoleEngine {
    pub fn new() -> Self {
        AppRoleEngine {
            hmac: MountHmacKey::default(),
            clock: Clock::default(),
            tidy_running: AtomicBool::new(false),
            lockout: Lockout::default(),
        }
    }
}

/// Factory for mount type `approle`.
pub fn approle_factory() -> EngineFactory {
    Arc::new(|_entry: &MountEntry| -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(AppRoleEngine::new()))
    })
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}
fn role_id_key(hmac: &str) -> String {
    format!("role_id/{hmac}")
}
fn secret_dir(role_uuid: &str) -> String {
    format!("secret_id/{role_uuid}/")
}
fn secret_key(role_uuid: &str, hmac: &str) -> String {
    format!("secret_id/{role_uuid}/{hmac}")
}
fn accessor_key(hmac: &str) -> String {
    format!("accessor/{hmac}")
}

/// A stored role. `role_id` is an identifier, not a secret (as in Vault).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Role {
    name: String,
    uuid: String,
    role_id: String,
    bind_secret_id: bool,
    #[serde(default)]
    secret_id_bound_cidrs: Vec<String>,
    #[serde(default)]
    secret_id_num_uses: u64,
    #[serde(default)]
    secret_id_ttl: u64,
    #[serde(default)]
    local_secret_ids: bool,
    #[serde(flatten)]
    token: TokenParams,
    /// Legacy `policies` (mirrors `token_policies` when it was used).
    #[serde(default)]
    policies: Vec<String>,
    /// Legacy `period` in seconds.
    #[serde(default)]
    period: u64,
}

impl Role {
    fn new(name: &str) -> Result<Self> {
        Ok(Role {
            name: name.to_string(),
            uuid: random_uuid()?,
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenParams::new(),
            policies: Vec::new(),
            period: 0,
        })
    }

    fn has_constraint(&self) -> bool {
        self.bind_secret_id
            || !self.secret_id_bound_cidrs.is_empty()
            || !self.token.token_bound_cidrs.is_empty()
    }

    /// The role as `GET role/<name>` shows it.
    fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("bind_secret_id".into(), Value::from(self.bind_secret_id));
        m.insert(
            "secret_id_bound_cidrs".into(),
            Value::from(self.secret_id_bound_cidrs.clone()),
        );
        m.insert(
            "secret_id_num_uses".into(),
            Value::from(self.secret_id_num_uses),
        );
        m.insert("secret_id_ttl".into(), Value::from(self.secret_id_ttl));
        m.insert(
            "local_secret_ids".into(),
            Value::from(self.local_secret_ids),
        );
        self.token.populate(&mut m);
        if self.period != 0 {
            m.insert("period".into(), Value::from(self.period));
        }
        if !self.policies.is_empty() {
            m.insert("policies".into(), Value::from(self.policies.clone()));
        }
        m
    }
}

#[derive(Serialize, Deserialize)]
struct RoleIdIndex {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct AccessorIndex {
    secret_id_hmac: String,
    role_uuid: String,
}

/// A stored secret ID: its properties only, never the secret ID itself.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SecretIdEntry {
    secret_id_accessor: String,
    /// Uses left; 0 = unlimited.
    secret_id_num_uses: u64,
    /// Seconds; 0 = never expires.
    secret_id_ttl: u64,
    creation_time: f64,
    /// Unix seconds; 0 = never.
    expiration_time: f64,
    last_updated_time: f64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    cidr_list: Vec<String>,
    #[serde(default)]
    token_bound_cidrs: Vec<String>,
}

fn go_time(t: f64) -> Value {
    if t <= 0.0 {
        Value::from(ZERO_TIME)
    } else {
        Value::from(util::format_unix(t))
    }
}

impl SecretIdEntry {
    fn expired(&self, now: f64) -> bool {
        self.expiration_time > 0.0 && now >= self.expiration_time
    }

    /// As `secret-id/lookup` shows it.
    fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "secret_id_accessor".into(),
            Value::from(self.secret_id_accessor.clone()),
        );
        m.insert(
            "secret_id_num_uses".into(),
            Value::from(self.secret_id_num_uses),
        );
        m.insert("secret_id_ttl".into(), Value::from(self.secret_id_ttl));
        m.insert("creation_time".into(), go_time(self.creation_time));
        m.insert("expiration_time".into(), go_time(self.expiration_time));
        m.insert("last_updated_time".into(), go_time(self.last_updated_time));
        m.insert(
            "metadata".into(),
            Value::Object(
                self.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            ),
        );
        m.insert("cidr_list".into(), Value::from(self.cidr_list.clone()));
        m.insert(
            "token_bound_cidrs".into(),
            Value::from(self.token_bound_cidrs.clone()),
        );
        m
    }
}

/// `role/<name>[/<rest>]` → (lowercased name, rest).
fn parse_role_path(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("role/")?;
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_name(name) {
        return None;
    }
    Some((name.to_ascii_lowercase(), sub))
}

/// The per-field endpoints `role/<name>/<field>`: the parameters each accepts (the first is the
/// one named in "missing ..." errors).
fn field_keys(sub: &str) -> Option<&'static [&'static str]> {
    Some(match sub {
        "policies" => &["token_policies", "policies"],
        "secret-id-num-uses" => &["secret_id_num_uses"],
        "secret-id-ttl" => &["secret_id_ttl"],
        "token-ttl" => &["token_ttl"],
        "token-max-ttl" => &["token_max_ttl"],
        "token-num-uses" => &["token_num_uses"],
        "bind-secret-id" => &["bind_secret_id"],
        "secret-id-bound-cidrs" => &["secret_id_bound_cidrs"],
        "bound-cidr-list" => &["bound_cidr_list"],
        "token-bound-cidrs" => &["token_bound_cidrs"],
        "period" => &["token_period", "period"],
        "local-secret-ids" => &["local_secret_ids"],
        _ => return None,
    })
}

/// Reset one field to its default (`DELETE role/<name>/<field>`).
fn reset_field(role: &mut Role, sub: &str) -> Result<()> {
    match sub {
        "policies" => {
            role.policies.clear();
            role.token.token_policies.clear();
        }
        "secret-id-num-uses" => role.secret_id_num_uses = 0,
        "secret-id-ttl" => role.secret_id_ttl = 0,
        "token-ttl" => role.token.token_ttl = 0,
        "token-max-ttl" => role.token.token_max_ttl = 0,
        "token-num-uses" => role.token.token_num_uses = 0,
        "bind-secret-id" => role.bind_secret_id = true,
        "secret-id-bound-cidrs" | "bound-cidr-list" => role.secret_id_bound_cidrs.clear(),
        "token-bound-cidrs" => role.token.token_bound_cidrs.clear(),
        "period" => {
            role.period = 0;
            role.token.token_period = 0;
        }
        _ => return Err(CoreError::unsupported_operation()),
    }
    Ok(())
}

/// Apply the parameters of a role write (Vault's `pathRoleCreateUpdate`). Returns warnings.
fn apply_role_params(
    role: &mut Role,
    data: &Map<String, Value>,
    creating: bool,
    max_ttl: u64,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    // backwards compatibility of token_type
    let adjusted;
    let data = match data.get("token_type").and_then(Value::as_str) {
        Some(t @ ("default-service" | "default-batch")) => {
            let to = if t == "default-service" {
                "service"
            } else {
                "batch"
            };
            warnings.push(format!("{t} has no useful meaning; adjusting to {to}"));
            let mut d = data.clone();
            d.insert("token_type".into(), Value::from(to));
            adjusted = d;
            &adjusted
        }
        _ => data,
    };

    role.token.parse(data)?;

    if let Some(local) = bool_param(data, "local_secret_ids")? {
        if !creating {
            return Err(CoreError::invalid(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        role.local_secret_ids = local;
    }

    match string_param(data, "role_id")? {
        Some(id) => role.role_id = id,
        None if creating => role.role_id = random_uuid()?,
        None => {}
    }
    if role.role_id.is_empty() {
        return Err(CoreError::invalid(
            "invalid role_id supplied, or failed to generate a role_id",
        ));
    }

    if let Some(b) = bool_param(data, "bind_secret_id")? {
        role.bind_secret_id = b;
    }

    let cidrs = match cidr_param(data, "secret_id_bound_cidrs", "invalid CIDR blocks")? {
        Some(c) => Some(c),
        None => cidr_param(data, "bound_cidr_list", "invalid CIDR blocks")?,
    };
    if let Some(c) = cidrs {
        role.secret_id_bound_cidrs = c;
    }

    if let Some(n) = int_param(data, "secret_id_num_uses")? {
        role.secret_id_num_uses = u64::try_from(n)
            .map_err(|_| CoreError::invalid("secret_id_num_uses cannot be negative"))?;
    }
    if let Some(n) = duration_param(data, "secret_id_ttl")? {
        role.secret_id_ttl =
            u64::try_from(n).map_err(|_| CoreError::invalid("secret_id_ttl cannot be negative"))?;
    }

    // legacy fields
    let legacy_policies = list_param(data, "policies")?
        .map(parse_policies)
        .transpose()?;
    upgrade_legacy(
        present(data, "token_policies").is_some(),
        legacy_policies,
        &mut role.policies,
        &mut role.token.token_policies,
    );
    let legacy_period = non_negative_duration(data, "period")?;
    upgrade_legacy(
        present(data, "token_period").is_some(),
        legacy_period,
        &mut role.period,
        &mut role.token.token_period,
    );

    if role.period > max_ttl {
        return Err(CoreError::invalid(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            format_duration(Duration::from_secs(role.period)),
            format_duration(Duration::from_secs(max_ttl)),
        )));
    }
    if role.token.token_max_ttl > max_ttl {
        warnings.push(
            "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into(),
        );
    }
    Ok(warnings)
}

/// Vault's `strutil.ParseArbitraryKeyValues` for `metadata`: a JSON object (possibly base64
/// encoded) or `k1=v1,k2=v2`; a JSON object is also accepted as is.
fn parse_metadata(data: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    use base64::Engine as _;
    let err = |why: &str| CoreError::invalid(format!("failed to parse metadata: {why}"));
    let strings = |m: &Map<String, Value>| -> Option<BTreeMap<String, String>> {
        m.iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    };
    let text = match present(data, "metadata") {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => return strings(m).ok_or_else(|| err("values must be strings")),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(err("metadata must be a string")),
    };
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    let text = match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| err("invalid encoding"))?,
        Err(_) => text,
    };
    let out = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => strings(&m).ok_or_else(|| err("values must be strings"))?,
        _ => {
            let mut out = BTreeMap::new();
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let mut parts = pair.split('=');
                let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(err("invalid <key,value> format"));
                };
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(err("invalid <key,value> pair"));
                }
                out.insert(k.to_string(), v.to_string());
            }
            out
        }
    };
    if out.iter().any(|(k, v)| !k.is_empty() && v.is_empty()) {
        return Err(err("empty value"));
    }
    Ok(out)
}

fn role_missing(name: &str) -> CoreError {
    CoreError::invalid(format!("role {name:?} does not exist"))
}

fn cidr_refused(addr: Option<std::net::IpAddr>, what: &str) -> CoreError {
    match addr {
        Some(a) => CoreError::invalid(format!(
            "source address \"{a}\" unauthorized by CIDR restrictions on the {what}"
        )),
        None => CoreError::invalid("failed to get connection information"),
    }
}

async fn load_role(storage: &View, name: &str) -> Result<Option<(Role, Zeroizing<Vec<u8>>)>> {
    load(storage, &role_key(name), "role").await
}

fn response(data: Map<String, Value>) -> Option<Response> {
    Some(Response::data(data))
}

fn warnings_response(warnings: Vec<String>) -> Option<Response> {
    if warnings.is_empty() {
        None
    } else {
        Some(Response {
            warnings,
            ..Default::default()
        })
    }
}

impl AppRoleEngine {
    /// Persist `role` atomically: fails with a CAS error if the role changed since `prev` was
    /// read, and keeps the role_id index unique.
    async fn save_role(
        &self,
        storage: &View,
        role: &Role,
        prev: Option<(&Zeroizing<Vec<u8>>, &str)>,
    ) -> Result<()> {
        let key = role_key(&role.name);
        let mut ops = vec![op_check(key.clone(), prev.map(|p| p.0)), op_put(key, role)?];
        let old_id = prev.map(|p| p.1);
        if old_id != Some(role.role_id.as_str()) {
            let new_hmac = self.hmac.hmac(storage, role.role_id.as_bytes()).await?;
            let idx_key = role_id_key(&new_hmac);
            let current = load::<RoleIdIndex>(storage, &idx_key, "role_id index").await?;
            if let Some((idx, _)) = &current {
                if idx.name != role.name {
                    return Err(CoreError::invalid("role_id already in use"));
                }
            }
            ops.push(op_check(idx_key.clone(), current.as_ref().map(|c| &c.1)));
            ops.push(op_put(
                idx_key,
                &RoleIdIndex {
                    name: role.name.clone(),
                },
            )?);
            if let Some(old) = old_id {
                let old_hmac = self.hmac.hmac(storage, old.as_bytes()).await?;
                if old_hmac != new_hmac {
                    ops.push(op_delete(role_id_key(&old_hmac)));
                }
            }
        }
        storage.transaction(ops).await
    }

    async fn list_roles(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let keys = req.storage.list("role/").await?;
        if keys.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(response(m))
    }

    async fn read_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
        let mut resp = Response::data(role.data());
        if !role.has_constraint() {
            resp.warnings.push(
                "Role does not have any constraints set on it. Updates to this role will require a constraint to be set".into(),
            );
        }
        Ok(Some(resp))
    }

    async fn write_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        if name.len() > MAX_HMAC_INPUT {
            return Err(CoreError::invalid(format!(
                "role_name is longer than maximum of {MAX_HMAC_INPUT} bytes"
            )));
        }
        let max_ttl = mount_max_ttl(req);
        for _ in 0..MAX_CAS_RETRIES {
            let existing = load_role(req.storage, name).await?;
            let (mut role, prev) = match existing {
                Some((role, bytes)) => {
                    let id = role.role_id.clone();
                    (role, Some((bytes, id)))
                }
                None => (Role::new(name)?, None),
            };
            let warnings = apply_role_params(&mut role, req.data, prev.is_none(), max_ttl)?;
            if !role.has_constraint() {
                return Err(CoreError::invalid(NO_CONSTRAINT));
            }
            let prev_ref = prev.as_ref().map(|(b, id)| (b, id.as_str()));
            match self.save_role(req.storage, &role, prev_ref).await {
                Ok(()) => return Ok(warnings_response(warnings)),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    /// Load an existing role, change it with `f`, check the constraints and save it; retried
    /// when a concurrent change wins. A missing role is a 404.
    async fn modify_role<F>(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        mut f: F,
    ) -> Result<Vec<String>>
    where
        F: FnMut(&mut Role) -> Result<Vec<String>>,
    {
        for _ in 0..MAX_CAS_RETRIES {
            let (mut role, bytes) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
            let old_id = role.role_id.clone();
            let warnings = f(&mut role)?;
            if !role.has_constraint() {
                return Err(CoreError::invalid(NO_CONSTRAINT));
            }
            match self
                .save_role(req.storage, &role, Some((&bytes, old_id.as_str())))
                .await
            {
                Ok(()) => return Ok(warnings),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    async fn delete_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let storage = req.storage;
        for _ in 0..MAX_CAS_RETRIES {
            let Some((role, bytes)) = load_role(storage, name).await? else {
                return Ok(None);
            };
            // the role and its role_id index go first and together: logins stop at once
            let mut ops = vec![
                op_check(role_key(name), Some(&bytes)),
                op_delete(role_key(name)),
            ];
            let id_hmac = self.hmac.hmac(storage, role.role_id.as_bytes()).await?;
            if let Some(idx) = storage
                .get_json::<RoleIdIndex>(&role_id_key(&id_hmac))
                .await?
            {
                if idx.name == role.name {
                    ops.push(op_delete(role_id_key(&id_hmac)));
                }
            }
            match storage.transaction(ops).await {
                Ok(()) => {}
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
            // then its secret IDs (unreachable already: they live under the role's uuid)
            self.flush_secret_ids(storage, &role.uuid).await?;
            return Ok(None);
        }
        Err(too_much_contention())
    }

    async fn flush_secret_ids(&self, storage: &View, role_uuid: &str) -> Result<()> {
        for h in storage.list(&secret_dir(role_uuid)).await? {
            let key = secret_key(role_uuid, &h);
            if let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? {
                let acc = self
                    .hmac
                    .hmac(storage, entry.secret_id_accessor.as_bytes())
                    .await?;
                storage.delete(&accessor_key(&acc)).await?;
            }
            storage.delete(&key).await?;
        }
        Ok(())
    }

    async fn field_endpoint(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        sub: &str,
        keys: &'static [&'static str],
    ) -> Result<Option<Response>> {
        match req.operation {
            Operation::Read => {
                let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
                let mut all = role.data();
                all.insert(
                    "bound_cidr_list".into(),
                    Value::from(role.secret_id_bound_cidrs.clone()),
                );
                let m: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                Ok(response(m))
            }
            op if is_write(op) => {
                if sub == "local-secret-ids" {
                    return Err(CoreError::unsupported_operation());
                }
                let filtered: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| present(req.data, k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                if filtered.is_empty() {
                    return Err(CoreError::invalid(format!("missing {}", keys[0])));
                }
                let max_ttl = mount_max_ttl(req);
                let warnings = self
                    .modify_role(req, name, |role| {
                        apply_role_params(role, &filtered, false, max_ttl)
                    })
                    .await?;
                Ok(warnings_response(warnings))
            }
            Operation::Delete => {
                self.modify_role(req, name, |role| reset_field(role, sub).map(|_| Vec::new()))
                    .await?;
                Ok(None)
            }
            _ => Err(CoreError::unsupported_operation()),
        }
    }

    async fn read_role_id(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
        let mut m = Map::new();
        m.insert("role_id".into(), Value::from(role.role_id));
        Ok(response(m))
    }

    async fn write_role_id(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let id = string_param(req.data, "role_id")?.unwrap_or_default();
        if id.is_empty() {
            return Err(CoreError::invalid("missing role_id"));
        }
        self.modify_role(req, name, |role| {
            role.role_id = id.clone();
            Ok(Vec::new())
        })
        .await?;
        Ok(None)
    }

    /// `secret-id` (generated) and `custom-secret-id`.
    async fn create_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        custom: bool,
    ) -> Result<Option<Response>> {
        let storage = req.storage;
        let secret: Zeroizing<String> = if custom {
            let s = secret_param(req.data, "secret_id")?.unwrap_or_default();
            if s.is_empty() {
                return Err(CoreError::invalid("missing secret_id"));
            }
            if s.len() > MAX_HMAC_INPUT {
                return Err(CoreError::invalid(format!(
                    "secret_id is longer than maximum of {MAX_HMAC_INPUT} bytes"
                )));
            }
            s
        } else {
            Zeroizing::new(random_uuid()?)
        };
        // parse everything before looking at storage: bad input changes nothing
        let cidr_list = cidr_param(req.data, "cidr_list", "failed to validate CIDR blocks")?
            .unwrap_or_default();
        let token_cidrs = cidr_param(
            req.data,
            "token_bound_cidrs",
            "failed to validate token CIDR blocks",
        )?
        .unwrap_or_default();
        let num_uses = int_param(req.data, "num_uses")?;
        if num_uses.is_some_and(|n| n < 0) {
            return Err(CoreError::invalid("num_uses cannot be negative"));
        }
        let ttl = duration_param(req.data, "ttl")?;
        if ttl.is_some_and(|n| n < 0) {
            return Err(CoreError::invalid("ttl cannot be negative"));
        }
        let metadata = parse_metadata(req.data)?;
        let secret_hmac = self.hmac.hmac(storage, secret.as_bytes()).await?;
        let max_ttl = mount_max_ttl(req);

        for _ in 0..MAX_CAS_RETRIES {
            let (role, role_bytes) = load_role(storage, name)
                .await?
                .ok_or_else(|| CoreError::not_found(format!("role {name:?} does not exist")))?;
            if !role.bind_secret_id {
                return Err(CoreError::invalid("bind_secret_id is not set on the role"));
            }
            if !cidrs_subset(&cidr_list, &role.secret_id_bound_cidrs) {
                return Err(CoreError::invalid(
                    "failed to verify subset relationship between CIDR blocks on the role and CIDR blocks on the secret ID",
                ));
            }
            if !cidrs_subset(&token_cidrs, &role.token.token_bound_cidrs) {
                return Err(CoreError::invalid(
                    "failed to verify subset relationship between token CIDR blocks on the role and token CIDR blocks on the secret ID",
                ));
            }
            let uses = match num_uses.map(|n| n.unsigned_abs()) {
                Some(n) => {
                    let limit = role.secret_id_num_uses;
                    if limit > 0 && (n == 0 || n > limit) {
                        return Err(CoreError::invalid(
                            "num_uses cannot be higher than the role's secret_id_num_uses",
                        ));
                    }
                    n
                }
                None => role.secret_id_num_uses,
            };
            let ttl = match ttl.map(|n| n.unsigned_abs()) {
                Some(t) => {
                    let limit = role.secret_id_ttl;
                    if limit > 0 && (t == 0 || t > limit) {
                        return Err(CoreError::invalid(
                            "ttl cannot be longer than the role's secret_id_ttl",
                        ));
                    }
                    t
                }
                None => role.secret_id_ttl,
            };
            // capped by the mount's max lease TTL, as Vault does
            let ttl = ttl.min(max_ttl);
            let now = self.clock.now();
            let accessor = random_uuid()?;
            let entry = SecretIdEntry {
                secret_id_accessor: accessor.clone(),
                secret_id_num_uses: uses,
                secret_id_ttl: ttl,
                creation_time: now,
                expiration_time: if ttl > 0 { now + ttl as f64 } else { 0.0 },
                last_updated_time: now,
                metadata: metadata.clone(),
                cidr_list: cidr_list.clone(),
                token_bound_cidrs: token_cidrs.clone(),
            };
            let acc_hmac = self.hmac.hmac(storage, accessor.as_bytes()).await?;
            let skey = secret_key(&role.uuid, &secret_hmac);
            let akey = accessor_key(&acc_hmac);
            let ops = vec![
                op_check(role_key(name), Some(&role_bytes)),
                op_check(skey.clone(), None),
                op_put(skey.clone(), &entry)?,
                op_check(akey.clone(), None),
                op_put(
                    akey,
                    &AccessorIndex {
                        secret_id_hmac: secret_hmac.clone(),
                        role_uuid: role.uuid.clone(),
                    },
                )?,
            ];
            match storage.transaction(ops).await {
                Ok(()) => {
                    let mut m = Map::new();
                    m.insert("secret_id".into(), Value::from(secret.as_str()));
                    m.insert("secret_id_accessor".into(), Value::from(accessor));
                    m.insert("secret_id_ttl".into(), Value::from(ttl));
                    m.insert("secret_id_num_uses".into(), Value::from(uses));
                    return Ok(response(m));
                }
                Err(e) if is_cas_failure(&e) => {
                    if storage.get(&skey).await?.is_some() {
                        return Err(CoreError::invalid("SecretID is already registered"));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    async fn list_secret_ids(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let mut accessors = Vec::new();
        for h in req.storage.list(&secret_dir(&role.uuid)).await? {
            if let Some(e) = req
                .storage
                .get_json::<SecretIdEntry>(&secret_key(&role.uuid, &h))
                .await?
            {
                accessors.push(e.secret_id_accessor);
            }
        }
        if accessors.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(accessors));
        Ok(response(m))
    }

    /// The storage key of the secret ID given in `secret_id`, for a role that must exist.
    async fn secret_key_from_param(&self, req: &EngineRequest<'_>, name: &str) -> Result<String> {
        let secret = secret_param(req.data, "secret_id")?.unwrap_or_default();
        if secret.is_empty() {
            return Err(CoreError::invalid("missing secret_id"));
        }
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let h = self.hmac.hmac(req.storage, secret.as_bytes()).await?;
        Ok(secret_key(&role.uuid, &h))
    }

    /// The storage key of the secret ID given by `secret_id_accessor`; `None` if unknown.
    async fn secret_key_from_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<(String, Option<String>)> {
        let accessor = string_param(req.data, "secret_id_accessor")?.unwrap_or_default();
        if accessor.is_empty() {
            return Err(CoreError::invalid("missing secret_id_accessor"));
        }
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let acc_key = accessor_key(&self.hmac.hmac(req.storage, accessor.as_bytes()).await?);
        let idx = req.storage.get_json::<AccessorIndex>(&acc_key).await?;
        Ok((
            acc_key,
            idx.filter(|i| i.role_uuid == role.uuid)
                .map(|i| secret_key(&role.uuid, &i.secret_id_hmac)),
        ))
    }

    async fn lookup_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let key = self.secret_key_from_param(req, name).await?;
        match req.storage.get_json::<SecretIdEntry>(&key).await? {
            None => Ok(None),
            Some(e) => Ok(response(e.data())),
        }
    }

    async fn lookup_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (_, key) = self.secret_key_from_accessor(req, name).await?;
        let key = key.ok_or_else(|| CoreError::not_found(ACCESSOR_NOT_FOUND))?;
        match req.storage.get_json::<SecretIdEntry>(&key).await? {
            None => Ok(None),
            Some(e) => Ok(response(e.data())),
        }
    }

    /// Delete the secret ID at `key` and its accessor; false if it was not there.
    async fn destroy_at(&self, storage: &View, key: &str) -> Result<bool> {
        for _ in 0..MAX_CAS_RETRIES {
            let Some((entry, bytes)) = load::<SecretIdEntry>(storage, key, "secret ID").await?
            else {
                return Ok(false);
            };
            let acc = self
                .hmac
                .hmac(storage, entry.secret_id_accessor.as_bytes())
                .await?;
            let ops = vec![
                op_check(key, Some(&bytes)),
                op_delete(key),
                op_delete(accessor_key(&acc)),
            ];
            match storage.transaction(ops).await {
                Ok(()) => return Ok(true),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    async fn destroy_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let key = self.secret_key_from_param(req, name).await?;
        self.destroy_at(req.storage, &key).await?;
        Ok(None)
    }

    async fn destroy_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (acc_key, key) = self.secret_key_from_accessor(req, name).await?;
        let key = key.ok_or_else(|| CoreError::not_found(ACCESSOR_NOT_FOUND))?;
        if !self.destroy_at(req.storage, &key).await? {
            // a dangling accessor: drop it
            req.storage.delete(&acc_key).await?;
        }
        Ok(None)
    }

    async fn login(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let storage = req.storage;
        let invalid = || CoreError::invalid(INVALID_CREDENTIALS);
        let role_id = string_param(req.data, "role_id")?.unwrap_or_default();
        let role_id = role_id.trim();
        if role_id.is_empty() {
            return Err(CoreError::invalid("missing role_id"));
        }
        let id_hmac = self.hmac.hmac(storage, role_id.as_bytes()).await?;
        let idx = storage
            .get_json::<RoleIdIndex>(&role_id_key(&id_hmac))
            .await?
            .ok_or_else(invalid)?;
        let (role, _) = load_role(storage, &idx.name).await?.ok_or_else(invalid)?;
        if !bool::from(role.role_id.as_bytes().ct_eq(role_id.as_bytes())) {
            return Err(invalid());
        }
        // the role_id is known from here on: it is the name that gets locked out
        let lockout = LockoutConfig::from_mount(req.mount);
        let Some(attempt) = self
            .lockout
            .reserve(storage, &id_hmac, &lockout, self.clock.now(), true)
            .await?
        else {
            return Err(CoreError::denied());
        };
        let remote = req.remote_addr;
        let role_cidr_refused = !role.secret_id_bound_cidrs.is_empty()
            && !cidrs_allow(&role.secret_id_bound_cidrs, remote);
        let role_cidr_check = || {
            if role_cidr_refused {
                Err(cidr_refused(remote, "role"))
            } else {
                Ok(())
            }
        };

        let mut metadata = Map::new();
        let mut token_cidrs = Vec::new();
        if role.bind_secret_id {
            let secret = secret_param(req.data, "secret_id")?.unwrap_or_default();
            let secret = secret.trim();
            if secret.is_empty() {
                return Err(CoreError::invalid("missing secret_id"));
            }
            let entry = if secret.len() > MAX_HMAC_INPUT {
                None
            } else {
                let secret_hmac = self.hmac.hmac(storage, secret.as_bytes()).await?;
                let key = secret_key(&role.uuid, &secret_hmac);
                self.consume_secret_id(storage, &key, remote, role_cidr_check)
                    .await?
            };
            let Some(entry) = entry else {
                if attempt.failed(storage, self.clock.now()).await? {
                    tracing::warn!(
                        mount = %req.mount.path,
                        role = %role.name,
                        "approle: too many failed logins, locking the role_id out"
                    );
                }
                return Err(invalid());
            };
            metadata = entry
                .metadata
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect();
            token_cidrs = entry.token_bound_cidrs;
        } else {
            role_cidr_check()?;
        }
        attempt.succeeded(storage).await;

        metadata.insert("role_name".into(), Value::from(role.name.clone()));
        let display = display_source(&req.mount.path)
            .trim_end_matches('-')
            .to_string();
        let mut auth = role.token.login_auth(display, metadata);
        if !token_cidrs.is_empty() {
            auth.bound_cidrs = token_cidrs;
        }
        Ok(Some(Response {
            login: Some(auth),
            ..Default::default()
        }))
    }

    /// Validate the secret ID at `key` and count one use, atomically: every check runs before
    /// anything is written, and the write is conditional on the record being unchanged since
    /// it was read (a concurrent login makes this one re-read and re-check). `None`: no such
    /// secret ID (unknown, expired or used up), i.e. invalid credentials.
    async fn consume_secret_id(
        &self,
        storage: &View,
        key: &str,
        remote: Option<std::net::IpAddr>,
        role_cidr_check: impl Fn() -> Result<()>,
    ) -> Result<Option<SecretIdEntry>> {
        for _ in 0..MAX_CAS_RETRIES {
            let Some((entry, bytes)) = load::<SecretIdEntry>(storage, key, "secret ID").await?
            else {
                return Ok(None);
            };
            let now = self.clock.now();
            if entry.expired(now) {
                return Ok(None);
            }
            if !entry.cidr_list.is_empty() && !cidrs_allow(&entry.cidr_list, remote) {
                return Err(match remote {
                    Some(a) => CoreError::invalid(format!(
                        "source address \"{a}\" unauthorized through CIDR restrictions on the secret ID"
                    )),
                    None => CoreError::invalid("failed to get connection information"),
                });
            }
            role_cidr_check()?;
            let ops = match entry.secret_id_num_uses {
                0 => return Ok(Some(entry)),
                1 => {
                    let acc = self
                        .hmac
                        .hmac(storage, entry.secret_id_accessor.as_bytes())
                        .await?;
                    vec![
                        op_check(key, Some(&bytes)),
                        op_delete(key),
                        op_delete(accessor_key(&acc)),
                    ]
                }
                n => {
                    let mut updated = entry.clone();
                    updated.secret_id_num_uses = n - 1;
                    updated.last_updated_time = now;
                    vec![op_check(key, Some(&bytes)), op_put(key, &updated)?]
                }
            };
            match storage.transaction(ops).await {
                Ok(()) => return Ok(Some(entry)),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    /// `tidy/secret-id`: remove expired secret IDs, those of deleted roles, and accessors
    /// without a secret ID. Runs to completion before answering (with Vault's 202 + warning).
    async fn tidy(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        if self.tidy_running.swap(true, Ordering::AcqRel) {
            return Ok(Some(
                Response::default().with_warning("Tidy operation already in progress."),
            ));
        }
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.tidy_running);
        let removed = self.tidy_inner(req.storage).await?;
        tracing::info!(
            mount = %req.mount.path,
            removed,
            "approle tidy of secret IDs finished"
        );
        let mut resp = Response::default().with_warning(
            "Tidy operation successfully started. Any information from the operation will be printed to the server's logs.",
        );
        resp.status = Some(202);
        Ok(Some(resp))
    }

    async fn tidy_inner(&self, storage: &View) -> Result<usize> {
        let now = self.clock.now();
        let mut live_roles = HashSet::new();
        for name in storage.list("role/").await? {
            if let Some(r) = storage.get_json::<Role>(&role_key(&name)).await? {
                live_roles.insert(r.uuid);
            }
        }
        let mut removed = 0;
        for dir in storage.list("secret_id/").await? {
            let Some(role_uuid) = dir.strip_suffix('/') else {
                continue;
            };
            let orphan = !live_roles.contains(role_uuid);
            for h in storage.list(&secret_dir(role_uuid)).await? {
                let key = secret_key(role_uuid, &h);
                let Some((entry, bytes)) =
                    load::<SecretIdEntry>(storage, &key, "secret ID").await?
                else {
                    continue;
                };
                if !orphan && !entry.expired(now) {
                    continue;
                }
                let acc = self
                    .hmac
                    .hmac(storage, entry.secret_id_accessor.as_bytes())
                    .await?;
                let ops = vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_delete(key),
                    op_delete(accessor_key(&acc)),
                ];
                match storage.transaction(ops).await {
                    Ok(()) => removed += 1,
                    // changed meanwhile (a login used it): leave it for the next tidy
                    Err(e) if is_cas_failure(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for h in storage.list("accessor/").await? {
            let akey = accessor_key(&h);
            let Some((idx, bytes)) = load::<AccessorIndex>(storage, &akey, "accessor").await?
            else {
                continue;
            };
            let skey = secret_key(&idx.role_uuid, &idx.secret_id_hmac);
            if storage.get(&skey).await?.is_none() {
                let ops = vec![op_check(akey.clone(), Some(&bytes)), op_delete(akey)];
                match storage.transaction(ops).await {
                    Ok(()) => {}
                    Err(e) if is_cas_failure(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Engine for AppRoleEngine {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let op = req.operation;
        match req.path {
            "login" => {
                return if is_write(op) {
                    self.login(req).await
                } else {
                    Err(CoreError::unsupported_operation())
                }
            }
            "tidy/secret-id" => {
                return if is_write(op) {
                    self.tidy(req).await
                } else {
                    Err(CoreError::unsupported_operation())
                }
            }
            "role" | "role/" => {
                return if op == Operation::List {
                    self.list_roles(req).await
                } else {
                    Err(CoreError::unsupported_operation())
                }
            }
            _ => {}
        }
        let Some((name, sub)) = parse_role_path(req.path) else {
            return Err(unsupported_path(req));
        };
        let sub = sub.trim_end_matches('/');
        let name = name.as_str();
        match (sub, op) {
            ("", Operation::Read) => self.read_role(req, name).await,
            ("", op) if is_write(op) => self.write_role(req, name).await,
            ("", Operation::Delete) => self.delete_role(req, name).await,
            ("role-id", Operation::Read) => self.read_role_id(req, name).await,
            ("role-id", op) if is_write(op) => self.write_role_id(req, name).await,
            ("secret-id", Operation::List) => self.list_secret_ids(req, name).await,
            ("secret-id", op) if is_write(op) => self.create_secret_id(req, name, false).await,
            ("custom-secret-id", op) if is_write(op) => {
                self.create_secret_id(req, name, true).await
            }
            ("secret-id/lookup", op) if is_write(op) => self.lookup_secret_id(req, name).await,
            ("secret-id/destroy", op) if is_write(op) || op == Operation::Delete => {
                self.destroy_secret_id(req, name).await
            }
            ("secret-id-accessor/lookup", op) if is_write(op) => {
                self.lookup_accessor(req, name).await
            }
            ("secret-id-accessor/destroy", op) if is_write(op) || op == Operation::Delete => {
                self.destroy_accessor(req, name).await
            }
            (
                ""
                | "role-id"
                | "secret-id"
                | "custom-secret-id"
                | "secret-id/lookup"
                | "secret-id/destroy"
                | "secret-id-accessor/lookup"
                | "secret-id-accessor/destroy",
                _,
            ) => Err(CoreError::unsupported_operation()),
            (sub, _) => match field_keys(sub) {
                Some(keys) => self.field_endpoint(req, name, sub, keys).await,
                None => Err(unsupported_path(req)),
            },
        }
    }

    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        if !is_write(req.operation) {
            return Ok(None);
        }
        match parse_role_path(req.path) {
            Some((name, "")) => Ok(Some(load_role(req.storage, &name).await?.is_some())),
            _ => Ok(None),
        }
    }

    /// `role/<name>`: one lowercase spelling for the ACL and the handler.
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        coffer_core::names::canonical_segment(rel, &["role/"], |n| {
            coffer_core::names::object_name("role", n)
        })
    }

    fn unauthenticated_paths(&self) -> &'static [&'static str] {
        &["login"]
    }

    /// Vault's `pathLoginRenew`: a token is renewed only while the role it logged in with
    /// exists.
    async fn renew_check(&self, req: &EngineRequest<'_>) -> Result<()> {
        let Some(token) = req.token else {
            return Ok(());
        };
        let name = token
            .meta
            .get("role_name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CoreError::invalid("failed to fetch role_name during renewal"))?;
        let name = name.to_ascii_lowercase();
        if !valid_name(&name) || load_role(req.storage, &name).await?.is_none() {
            return Err(CoreError::invalid(format!(
                "role {name:?} does not exist during renewal"
            )));
        }
        Ok(())
    }
}
