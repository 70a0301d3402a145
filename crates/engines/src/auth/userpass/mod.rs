//! The userpass auth method, wire-compatible with Vault's (`/v1/auth/userpass/...`).
//!
//! Storage layout (under the mount's view):
//!
//! | key | record |
//! |---|---|
//! | `user/<username>` | token settings and an Argon2id PHC hash of the password |
//! | `lockout/<username>` | failed-login state: count, last failure, locked-until |
//!
//! Usernames are lowercased. A login never tells an unknown user from a wrong password: both
//! verify an Argon2id hash (a dummy one for unknown users), both count towards the user lockout
//! (Vault's defaults: 5 failures within 15 minutes lock the name for 15 minutes) and both get
//! `400 invalid username or password`. A locked name (known or not) gets `403 permission
//! denied` without any password check, as in Vault.

#[cfg(test)]
mod tests;

use super::common::{
    cidr_param, display_source, equivalent_policies, is_write, list_param, load,
    non_negative_duration, not_found, op_check, op_put, parse_policies, present, secret_param,
    unsupported_path, upgrade_legacy, valid_name, Clock, TokenParams,
};
use super::lockout::{Lockout, LockoutConfig};
use super::password;
use async_trait::async_trait;
use coffer_core::error::{CoreError, Result};
use coffer_core::optimistic::{commit_with_retries, Step};
use coffer_core::request::Response;
use coffer_core::router::{
    Engine, EngineFactory, EngineRequest, MountEntry, Ops, PathEntry, PathLookup, PathTable,
    RouteMatch,
};
use coffer_core::util::cidrs_allow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

const INVALID_CREDENTIALS: &str = "invalid username or password";

pub use super::lockout::{
    DEFAULT_LOCKOUT_COUNTER_RESET_SECS, DEFAULT_LOCKOUT_DURATION_SECS, DEFAULT_LOCKOUT_THRESHOLD,
};

/// The userpass engine of one mount.
pub struct UserpassEngine {
    clock: Clock,
    /// Bounds the Argon2 work (19 MiB each) running at once.
    hash_permits: Arc<Semaphore>,
    lockout: Lockout,
    /// Argon2 verifications run (tests prove unknown users cost one too).
    #[cfg(test)]
    verifications: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for UserpassEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserpassEngine").finish_non_exhaustive()
    }
}

impl Default for UserpassEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl UserpassEngine {
    pub fn new() -> Self {
        let permits = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        UserpassEngine {
            clock: Clock::default(),
            hash_permits: Arc::new(Semaphore::new(permits)),
            lockout: Lockout::default(),
            #[cfg(test)]
            verifications: Default::default(),
        }
    }
}

/// Factory for mount type `userpass`.
pub fn userpass_factory() -> EngineFactory {
    Arc::new(|_entry: &MountEntry| -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(UserpassEngine::new()))
    })
}

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

/// A stored user. The password is only ever stored as an Argon2id PHC string, and no `Debug`
/// exists that could print it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct UserEntry {
    #[serde(default)]
    password_hash: String,
    #[serde(flatten)]
    token: TokenParams,
    /// Legacy fields, kept to echo them back as Vault does.
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    max_ttl: u64,
    #[serde(default)]
    bound_cidrs: Vec<String>,
}

impl UserEntry {
    fn new() -> Self {
        UserEntry {
            password_hash: String::new(),
            token: TokenParams::new(),
            policies: Vec::new(),
            ttl: 0,
            max_ttl: 0,
            bound_cidrs: Vec::new(),
        }
    }

    /// As `GET users/<name>` shows it: never the hash.
    fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        self.token.populate(&mut m);
        if self.ttl > 0 {
            m.insert("ttl".into(), Value::from(self.ttl));
        }
        if self.max_ttl > 0 {
            m.insert("max_ttl".into(), Value::from(self.max_ttl));
        }
        if !self.policies.is_empty() {
            m.insert(
                "policies".into(),
                Value::from(self.token.token_policies.clone()),
            );
        }
        if !self.bound_cidrs.is_empty() {
            m.insert("bound_cidrs".into(), Value::from(self.bound_cidrs.clone()));
        }
        m
    }

    /// Apply the token settings of a user write, with Vault's legacy field upgrades.
    fn apply(&mut self, data: &Map<String, Value>) -> Result<()> {
        self.token.parse(data)?;
        let legacy_policies = list_param(data, "policies")?
            .map(parse_policies)
            .transpose()?;
        upgrade_legacy(
            present(data, "token_policies").is_some(),
            legacy_policies,
            &mut self.policies,
            &mut self.token.token_policies,
        );
        let legacy_ttl = non_negative_duration(data, "ttl")?;
        upgrade_legacy(
            present(data, "token_ttl").is_some(),
            legacy_ttl,
            &mut self.ttl,
            &mut self.token.token_ttl,
        );
        let legacy_max = non_negative_duration(data, "max_ttl")?;
        upgrade_legacy(
            present(data, "token_max_ttl").is_some(),
            legacy_max,
            &mut self.max_ttl,
            &mut self.token.token_max_ttl,
        );
        let legacy_cidrs = cidr_param(data, "bound_cidrs", "invalid CIDR block in bound_cidrs")?;
        upgrade_legacy(
            present(data, "token_bound_cidrs").is_some(),
            legacy_cidrs,
            &mut self.bound_cidrs,
            &mut self.token.token_bound_cidrs,
        );
        Ok(())
    }
}

/// `users/<name>[/<rest>]` or `login/<name>` → (lowercased name, rest).
fn parse_name<'a>(path: &'a str, prefix: &str) -> Option<(String, &'a str)> {
    let rest = path.strip_prefix(prefix)?;
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_name(name) {
        return None;
    }
    Some((name.to_lowercase(), sub))
}

/// The endpoints of a userpass mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    ListUsers,
    ReadUser,
    WriteUser,
    DeleteUser,
    Password,
    Policies,
    Login,
}

/// Vault's userpass paths. `login/` is matched whole: Vault marks `login/*` unauthenticated as
/// a prefix, so `login/a/b` is unauthenticated too, and answered as an unknown path by the
/// handler (a name is one segment).
static PATHS: PathTable<Path> = PathTable::new(&[
    PathEntry::new("users/?", &[(Ops::LIST, Path::ListUsers)]),
    PathEntry::new(
        "users/{username}/?",
        &[
            (Ops::READ, Path::ReadUser),
            (Ops::WRITE, Path::WriteUser),
            (Ops::DELETE, Path::DeleteUser),
        ],
    )
    .existence_check(),
    PathEntry::new("users/{username}/password", &[(Ops::WRITE, Path::Password)]),
    PathEntry::new("users/{username}/policies", &[(Ops::WRITE, Path::Policies)]),
    PathEntry::new("login/{username*}", &[(Ops::WRITE, Path::Login)]).unauthenticated(),
]);

/// A username from a path: lowercased; `None` when it is not a valid name (or, for `login/`,
/// more than one segment).
fn username(raw: &str) -> Option<String> {
    let name = match raw.split_once('/') {
        Some((name, "")) => name,
        Some(_) => return None,
        None => raw,
    };
    valid_name(name).then(|| name.to_lowercase())
}

fn username_missing() -> CoreError {
    CoreError::invalid("username does not exist")
}

fn required_password(data: &Map<String, Value>) -> Result<Zeroizing<String>> {
    match secret_param(data, "password")? {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(CoreError::invalid("missing password")),
    }
}

impl UserpassEngine {
    async fn hash(&self, password: Zeroizing<String>) -> Result<String> {
        let _permit = self
            .hash_permits
            .acquire()
            .await
            .map_err(|_| CoreError::internal("password hashing is unavailable"))?;
        tokio::task::spawn_blocking(move || password::hash_password(password.as_bytes()))
            .await
            .map_err(|_| CoreError::internal("password hashing failed"))?
    }

    /// Verify against `hash`, or against the dummy hash when there is none, so that both cost
    /// the same.
    async fn verify(&self, password: Zeroizing<String>, hash: Option<String>) -> Result<bool> {
        let _permit = self
            .hash_permits
            .acquire()
            .await
            .map_err(|_| CoreError::internal("password hashing is unavailable"))?;
        #[cfg(test)]
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let phc = hash.as_deref().unwrap_or_else(|| password::dummy_hash());
            password::verify_password(password.as_bytes(), phc)
        })
        .await
        .map_err(|_| CoreError::internal("password verification failed"))
    }

    async fn list_users(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let keys = req.storage.list("user/").await?;
        if keys.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(Some(Response::data(m)))
    }

    async fn read_user(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let user = req
            .storage
            .get_json::<UserEntry>(&user_key(name))
            .await?
            .ok_or_else(not_found)?;
        Ok(Some(Response::data(user.data())))
    }

    async fn write_user(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let password = match present(req.data, "password") {
            Some(_) => Some(required_password(req.data)?),
            None => None,
        };
        let key = &user_key(name);
        let password = &password;
        // hashed once, on the first attempt that got past validation
        let hash = &parking_lot::Mutex::new(None::<String>);
        commit_with_retries(req.storage, || async move {
            let existing = load::<UserEntry>(req.storage, key, "user").await?;
            let (mut user, prev) = match existing {
                Some((u, bytes)) => (u, Some(bytes)),
                None if password.is_none() => return Err(CoreError::invalid("missing password")),
                None => (UserEntry::new(), None),
            };
            // validate everything before the (slow) hashing and any write
            user.apply(req.data)?;
            if let Some(p) = password {
                let cached = hash.lock().clone();
                let h = match cached {
                    Some(h) => h,
                    None => {
                        let h = self.hash(p.clone()).await?;
                        *hash.lock() = Some(h.clone());
                        h
                    }
                };
                user.password_hash = h;
            }
            Ok(Step::Commit(
                vec![
                    op_check(key.clone(), prev.as_ref()),
                    op_put(key.clone(), &user)?,
                ],
                None,
            ))
        })
        .await
    }

    /// Change an existing user with `f` (user missing: Vault's "username does not exist").
    async fn modify_user<F>(&self, req: &EngineRequest<'_>, name: &str, f: F) -> Result<()>
    where
        F: FnMut(&mut UserEntry) -> Result<()>,
    {
        let key = &user_key(name);
        let f = &parking_lot::Mutex::new(f);
        commit_with_retries(req.storage, || async move {
            let (mut user, bytes) = load::<UserEntry>(req.storage, key, "user")
                .await?
                .ok_or_else(username_missing)?;
            (f.lock())(&mut user)?;
            Ok(Step::Commit(
                vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_put(key.clone(), &user)?,
                ],
                (),
            ))
        })
        .await
    }

    async fn update_password(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let password = required_password(req.data)?;
        if req
            .storage
            .get_json::<UserEntry>(&user_key(name))
            .await?
            .is_none()
        {
            return Err(username_missing());
        }
        let hash = self.hash(password).await?;
        self.modify_user(req, name, |u| {
            u.password_hash = hash.clone();
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn update_policies(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let token_policies = list_param(req.data, "token_policies")?
            .map(parse_policies)
            .transpose()?;
        let policies = list_param(req.data, "policies")?
            .map(parse_policies)
            .transpose()?;
        self.modify_user(req, name, |u| {
            match (&token_policies, &policies) {
                (Some(tp), legacy) => {
                    u.token.token_policies = tp.clone();
                    u.policies = if legacy.is_some() {
                        tp.clone()
                    } else {
                        Vec::new()
                    };
                }
                (None, Some(p)) => {
                    u.policies = p.clone();
                    u.token.token_policies = p.clone();
                }
                (None, None) => {}
            }
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn login(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let storage = req.storage;
        let password = required_password(req.data)?;
        let cfg = LockoutConfig::from_mount(req.mount);
        let user = storage.get_json::<UserEntry>(&user_key(name)).await?;
        // the attempt is reserved before the (slow) password check: concurrent logins cannot
        // check more passwords than the lockout threshold allows
        let Some(attempt) = self
            .lockout
            .reserve(storage, name, &cfg, self.clock.now(), user.is_some())
            .await?
        else {
            return Err(CoreError::denied());
        };
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|h| !h.is_empty());
        let matched = self.verify(password, hash).await?;
        let Some(user) = user.filter(|_| matched) else {
            if attempt.failed(storage, self.clock.now()).await? {
                tracing::warn!(
                    username = %name,
                    "userpass: too many failed logins, locking the user out"
                );
            }
            return Err(CoreError::invalid(INVALID_CREDENTIALS));
        };
        if !cidrs_allow(&user.token.token_bound_cidrs, req.remote_addr) {
            return Err(CoreError::denied());
        }
        attempt.succeeded(storage).await;
        let mut metadata = Map::new();
        metadata.insert("username".into(), Value::from(name));
        let display = format!("{}{name}", display_source(&req.mount.path));
        Ok(Some(Response {
            login: Some(user.token.login_auth(display, metadata)),
            ..Default::default()
        }))
    }
}

#[async_trait]
impl Engine for UserpassEngine {
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
        // an invalid username is an unknown path, whatever the operation
        let name = match route.captures(req.path).opt("username") {
            Some(raw) => Some(username(raw).ok_or_else(|| unsupported_path(req))?),
            None => None,
        };
        let path = PATHS.handler(route, req.operation)?;
        if path == Path::ListUsers {
            return self.list_users(req).await;
        }
        let name = name
            .as_deref()
            .ok_or_else(|| CoreError::internal("a user path without a username"))?;
        match path {
            Path::ReadUser => self.read_user(req, name).await,
            Path::WriteUser => self.write_user(req, name).await,
            Path::DeleteUser => {
                req.storage.delete(&user_key(name)).await?;
                Ok(None)
            }
            Path::Password => self.update_password(req, name).await,
            Path::Policies => self.update_policies(req, name).await,
            Path::Login => self.login(req, name).await,
            Path::ListUsers => self.list_users(req).await,
        }
    }

    /// Asked only for the paths the table flags (a user).
    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        if !is_write(req.operation) {
            return Ok(None);
        }
        let Some(route) = PATHS.lookup(req.path).filter(|r| r.flags.existence_check) else {
            return Ok(None);
        };
        match route.captures(req.path).opt("username").and_then(username) {
            Some(name) => Ok(Some(req.storage.get(&user_key(&name)).await?.is_some())),
            None => Ok(None),
        }
    }

    /// `users/<name>` and `login/<name>`: one lowercase spelling for the ACL and the handler.
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        coffer_core::names::canonical_segment(rel, &["users/", "login/"], |n| {
            coffer_core::names::object_name("username", n)
        })
    }

    /// Vault's `pathLoginRenew`: a token is renewed only while its user exists and still has
    /// the token's policies.
    async fn renew_check(&self, req: &EngineRequest<'_>) -> Result<()> {
        let Some(token) = req.token else {
            return Ok(());
        };
        let name = match token.meta.get("username").and_then(Value::as_str) {
            Some(n) => n.to_lowercase(),
            None => parse_name(req.path, "login/")
                .map(|(n, _)| n)
                .ok_or_else(|| CoreError::invalid("missing username"))?,
        };
        let Some(user) = req.storage.get_json::<UserEntry>(&user_key(&name)).await? else {
            // Vault answers the renewal without renewing; the token lives out its TTL
            return Err(CoreError::invalid("user no longer exists, not renewing"));
        };
        if !equivalent_policies(&user.token.token_policies, &token.policies) {
            return Err(CoreError::invalid("policies have changed, not renewing"));
        }
        Ok(())
    }
}
