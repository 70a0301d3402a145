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

mod login;
mod role;
mod secret_id;

#[cfg(test)]
mod tests;

use super::common::{
    is_write, load, random_uuid, unsupported_path, valid_name, Clock, MountHmacKey, TokenParams,
};
use super::lockout::Lockout;
use async_trait::async_trait;
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::Response;
use coffer_core::router::{
    Engine, EngineFactory, EngineRequest, MountEntry, Ops, PathEntry, PathLookup, PathTable,
    RouteMatch,
};
use coffer_core::util;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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

/// The endpoints of an AppRole mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Login,
    Tidy,
    ListRoles,
    ReadRole,
    WriteRole,
    DeleteRole,
    ReadRoleId,
    WriteRoleId,
    ListSecretIds,
    CreateSecretId,
    CustomSecretId,
    LookupSecretId,
    DestroySecretId,
    LookupAccessor,
    DestroyAccessor,
    /// `role/<name>/<field>`: the per-field endpoints ([`field_keys`]).
    Field,
}

/// Vault's AppRole paths (`login` is unauthenticated; a role's existence decides create vs
/// update). Sub-paths of a role ignore trailing slashes (Vault's CLI lists
/// `role/<name>/secret-id/`).
static PATHS: PathTable<Path> = PathTable::new(&[
    PathEntry::new("login", &[(Ops::WRITE, Path::Login)]).unauthenticated(),
    PathEntry::new("tidy/secret-id", &[(Ops::WRITE, Path::Tidy)]),
    PathEntry::new("role/?", &[(Ops::LIST, Path::ListRoles)]),
    PathEntry::new(
        "role/{role_name}/?",
        &[
            (Ops::READ, Path::ReadRole),
            (Ops::WRITE, Path::WriteRole),
            (Ops::DELETE, Path::DeleteRole),
        ],
    )
    .existence_check(),
    PathEntry::new(
        "role/{role_name}/role-id/?",
        &[
            (Ops::READ, Path::ReadRoleId),
            (Ops::WRITE, Path::WriteRoleId),
        ],
    ),
    PathEntry::new(
        "role/{role_name}/secret-id/?",
        &[
            (Ops::LIST, Path::ListSecretIds),
            (Ops::WRITE, Path::CreateSecretId),
        ],
    ),
    PathEntry::new(
        "role/{role_name}/custom-secret-id/?",
        &[(Ops::WRITE, Path::CustomSecretId)],
    ),
    PathEntry::new(
        "role/{role_name}/secret-id/lookup/?",
        &[(Ops::WRITE, Path::LookupSecretId)],
    ),
    PathEntry::new(
        "role/{role_name}/secret-id/destroy/?",
        &[(Ops::WRITE.or(Ops::DELETE), Path::DestroySecretId)],
    ),
    PathEntry::new(
        "role/{role_name}/secret-id-accessor/lookup/?",
        &[(Ops::WRITE, Path::LookupAccessor)],
    ),
    PathEntry::new(
        "role/{role_name}/secret-id-accessor/destroy/?",
        &[(Ops::WRITE.or(Ops::DELETE), Path::DestroyAccessor)],
    ),
    // the literal sub-paths above win over this one; an unknown field is an unsupported path
    PathEntry::new("role/{role_name}/{field}/?", &[(Ops::ALL, Path::Field)]),
]);

/// A role name from a path: lowercased; `None` when it is not a valid name.
fn role_name(raw: &str) -> Option<String> {
    valid_name(raw).then(|| raw.to_ascii_lowercase())
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

async fn load_role(storage: &View, name: &str) -> Result<Option<(Role, Zeroizing<Vec<u8>>)>> {
    load(storage, &role_key(name), "role").await
}

fn response(data: Map<String, Value>) -> Option<Response> {
    Some(Response::data(data))
}

#[async_trait]
impl Engine for AppRoleEngine {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let route = PATHS.find_for(req)?;
        self.handle_route(req, &route).await
    }

    fn paths(&self) -> Option<&'static dyn PathLookup> {
        Some(&PATHS)
    }

    async fn handle_route(
        &self,
        req: &EngineRequest<'_>,
        route: &RouteMatch,
    ) -> Result<Option<Response>> {
        let caps = route.captures(req.path);
        // an invalid role name is an unknown path, whatever the operation
        let name = match caps.opt("role_name") {
            Some(raw) => Some(role_name(raw).ok_or_else(|| unsupported_path(req))?),
            None => None,
        };
        let path = PATHS.handler(route, req.operation)?;
        match path {
            Path::Login => return self.login(req).await,
            Path::Tidy => return self.tidy(req).await,
            Path::ListRoles => return self.list_roles(req).await,
            _ => {}
        }
        let name = name
            .as_deref()
            .ok_or_else(|| CoreError::internal("a role path without a role name"))?;
        match path {
            Path::ReadRole => self.read_role(req, name).await,
            Path::WriteRole => self.write_role(req, name).await,
            Path::DeleteRole => self.delete_role(req, name).await,
            Path::ReadRoleId => self.read_role_id(req, name).await,
            Path::WriteRoleId => self.write_role_id(req, name).await,
            Path::ListSecretIds => self.list_secret_ids(req, name).await,
            Path::CreateSecretId => self.create_secret_id(req, name, false).await,
            Path::CustomSecretId => self.create_secret_id(req, name, true).await,
            Path::LookupSecretId => self.lookup_secret_id(req, name).await,
            Path::DestroySecretId => self.destroy_secret_id(req, name).await,
            Path::LookupAccessor => self.lookup_accessor(req, name).await,
            Path::DestroyAccessor => self.destroy_accessor(req, name).await,
            Path::Field => {
                let field = caps.get("field")?;
                match field_keys(field) {
                    Some(keys) => self.field_endpoint(req, name, field, keys).await,
                    None => Err(unsupported_path(req)),
                }
            }
            Path::Login | Path::Tidy | Path::ListRoles => Err(CoreError::unsupported_operation()),
        }
    }

    /// Asked only for the paths the table flags (a role).
    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        if !is_write(req.operation) {
            return Ok(None);
        }
        let Some(route) = PATHS.lookup(req.path).filter(|r| r.flags.existence_check) else {
            return Ok(None);
        };
        match route
            .captures(req.path)
            .opt("role_name")
            .and_then(role_name)
        {
            Some(name) => Ok(Some(load_role(req.storage, &name).await?.is_some())),
            None => Ok(None),
        }
    }

    /// `role/<name>`: one lowercase spelling for the ACL and the handler.
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        coffer_core::names::canonical_segment(rel, &["role/"], |n| {
            coffer_core::names::object_name("role", n)
        })
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
