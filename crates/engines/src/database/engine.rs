//! Vault's database secrets engine (mount type `database`): connection configurations, roles,
//! and credentials made on demand — a new database user per request, under a lease that drops
//! it when revoked or expired.
//!
//! | path | operations |
//! |---|---|
//! | `config/<name>` | write, read (never the password), delete; list `config/` |
//! | `reset/<name>` | write: closes the kept connections |
//! | `rotate-root/<name>` | write: a new password for the configuration's user, set in the database |
//! | `roles/<name>` | write, read, delete; list `roles/` |
//! | `creds/<role>` | read: a new user and password, leased |
//! | `static-roles/<name>`, `static-creds/<name>`, `rotate-role/<name>` | an existing user whose password Coffer rotates ([`super::static_roles`]) |
//!
//! Statements are templates rendered with generated values only (`{{name}}`, `{{password}}`,
//! `{{expiration}}`): no caller input is spliced into SQL. A user whose creation fails is
//! removed again (`rollback_statements`, or a plain drop).

use super::conn::{pg_ident, sql_literal, Conn, Engine as Db};
use super::plugin;
use crate::kv::params::{opt_bool, opt_duration_secs};
use async_trait::async_trait;
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response, SecretLease};
use coffer_core::router::{Engine, EngineFactory, EngineRequest, MountEntry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

/// A connection configuration as stored (the password only under the barrier).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct ConnConfig {
    pub(super) plugin_name: String,
    connection_url: String,
    pub(super) username: String,
    password: String,
    #[serde(default)]
    allowed_roles: Vec<String>,
    #[serde(default = "yes")]
    verify_connection: bool,
    #[serde(default)]
    root_rotation_statements: Vec<String>,
    /// Idle connections kept (Vault's `max_open_connections`, 4 by default).
    #[serde(default = "four")]
    max_open_connections: u64,
}

fn four() -> u64 {
    4
}

fn yes() -> bool {
    true
}

impl Drop for ConnConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl ConnConfig {
    pub(super) fn engine(&self) -> Result<Db> {
        plugin::engine_of(&self.plugin_name)
    }

    pub(super) async fn connect(&self) -> Result<Conn> {
        let target = plugin::target(
            self.engine()?,
            &self.connection_url,
            &self.username,
            &Zeroizing::new(self.password.clone()),
        )?;
        Conn::open(self.engine()?, &target)
            .await
            .map_err(CoreError::invalid)
    }

    /// What its pooled connections are kept under.
    fn key(&self) -> [u8; 32] {
        super::pool::fingerprint(&[
            &self.plugin_name,
            &self.connection_url,
            &self.username,
            &self.password,
        ])
    }

    pub(super) fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }
}

/// A role: how its users are made and dropped.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Role {
    db_name: String,
    creation_statements: Vec<String>,
    #[serde(default)]
    revocation_statements: Vec<String>,
    #[serde(default)]
    rollback_statements: Vec<String>,
    #[serde(default)]
    renew_statements: Vec<String>,
    #[serde(default)]
    default_ttl: u64,
    #[serde(default)]
    max_ttl: u64,
}

pub(super) fn config_key(name: &str) -> String {
    format!("config/{name}")
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

/// A config or role name: letters, digits, `-`, `_`, `.`.
pub(super) fn check_name(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(name)
    } else {
        Err(CoreError::invalid(format!("invalid name {name:?}")))
    }
}

pub(super) fn opt_str(d: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CoreError::invalid(format!("{key} must be a string"))),
    }
}

/// A list given as a JSON list or a comma-separated string (`allowed_roles`).
fn opt_list(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
        )),
        _ => opt_list_raw(d, key),
    }
}

/// Statements: a list, or one string (Vault takes both).
pub(super) fn opt_statements(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    match d.get(key) {
        Some(Value::String(s)) => Ok(Some(vec![s.clone()]).filter(|_| !s.trim().is_empty())),
        _ => opt_list_raw(d, key),
    }
}

fn opt_list_raw(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CoreError::invalid(format!("{key} must be a list of strings")))
            })
            .collect::<Result<_>>()
            .map(Some),
        Some(_) => Err(CoreError::invalid(format!(
            "{key} must be a list of statements"
        ))),
    }
}

/// A generated user's name, as the engine hands it out (checked again before any SQL uses it).
fn check_generated(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(name)
    } else {
        Err(CoreError::internal(
            "a leased database user has an unexpected name",
        ))
    }
}

/// Run statements in order; the first failure stops (its message has no password: the
/// statements are not echoed).
pub(super) async fn run(conn: &mut Conn, statements: &[Zeroizing<String>]) -> Result<()> {
    for (i, s) in statements.iter().enumerate() {
        conn.exec(s).await.map_err(|e| {
            CoreError::invalid(format!("statement {} failed: {}", i + 1, redact(&e)))
        })?;
    }
    Ok(())
}

/// A database error without its quoted part (from the first quote to the last: it could echo
/// a statement's literal, such as a password).
fn redact(e: &str) -> String {
    match (e.find(['\'', '"']), e.rfind(['\'', '"'])) {
        (Some(first), Some(last)) if last > first => {
            format!("{}'…'{}", &e[..first], &e[last + 1..])
        }
        (Some(first), _) => format!("{}'…", &e[..first]),
        _ => e.to_string(),
    }
}

/// The statements that drop a user, when the role gives none.
fn default_revocation(db: Db, name: &str) -> Vec<Zeroizing<String>> {
    match db {
        Db::Postgres => vec![
            Zeroizing::new(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
            )),
            Zeroizing::new(format!("DROP OWNED BY {}", pg_ident(name))),
            Zeroizing::new(format!("DROP ROLE IF EXISTS {}", pg_ident(name))),
        ],
        Db::Mysql => vec![Zeroizing::new(format!("DROP USER IF EXISTS '{name}'@'%'"))],
    }
}

/// A `database` mount: its connections are pooled per configuration.
#[derive(Default)]
pub struct DatabaseEngine {
    pools: super::pool::Pools,
}

pub fn database_factory() -> EngineFactory {
    Arc::new(|_entry: &MountEntry| -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(DatabaseEngine::default()))
    })
}

pub(super) async fn load<T: serde::de::DeserializeOwned>(
    view: &View,
    key: &str,
) -> Result<Option<T>> {
    view.get_json(key).await
}

pub(super) fn data(v: Value) -> Option<Response> {
    match v {
        Value::Object(m) => Some(Response {
            data: Some(m),
            ..Default::default()
        }),
        _ => None,
    }
}

pub(super) fn keys(mut k: Vec<String>) -> Result<Option<Response>> {
    if k.is_empty() {
        return Err(CoreError::not_found(""));
    }
    k.sort();
    Ok(data(json!({ "keys": k })))
}

impl DatabaseEngine {
    /// A connection for `cfg`: a kept one, else a new login.
    async fn conn(&self, cfg: &ConnConfig) -> Result<Conn> {
        match self.pools.take(&cfg.key(), cfg.engine()?).await {
            Some(c) => Ok(c),
            None => cfg.connect().await,
        }
    }

    /// Done with a connection of `cfg`: kept for the next operation.
    async fn done(&self, cfg: &ConnConfig, conn: Conn) {
        let max = usize::try_from(cfg.max_open_connections).unwrap_or(usize::MAX);
        self.pools.give(cfg.key(), conn, max).await;
    }

    async fn write_config(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let d = req.data;
        let old: Option<ConnConfig> = load(req.storage, &config_key(name)).await?;
        let pick = |key: &str, old: Option<String>| -> Result<String> {
            opt_str(d, key)?
                .or(old)
                .ok_or_else(|| CoreError::invalid(format!("{key} is required")))
        };
        let cfg = ConnConfig {
            plugin_name: pick("plugin_name", old.as_ref().map(|o| o.plugin_name.clone()))?,
            connection_url: pick(
                "connection_url",
                old.as_ref().map(|o| o.connection_url.clone()),
            )?,
            username: pick("username", old.as_ref().map(|o| o.username.clone()))?,
            password: pick("password", old.as_ref().map(|o| o.password.clone()))?,
            allowed_roles: opt_list(d, "allowed_roles")?
                .or_else(|| old.as_ref().map(|o| o.allowed_roles.clone()))
                .unwrap_or_default(),
            verify_connection: opt_bool(d, "verify_connection")?.unwrap_or(true),
            root_rotation_statements: opt_statements(d, "root_rotation_statements")?
                .or_else(|| old.as_ref().map(|o| o.root_rotation_statements.clone()))
                .unwrap_or_default(),
            max_open_connections: match d.get("max_open_connections") {
                None | Some(Value::Null) => old.as_ref().map_or(4, |o| o.max_open_connections),
                Some(v) => coffer_core::util::value_as_i64(v)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        CoreError::invalid("max_open_connections must be between 1 and 100")
                    })?,
            },
        };
        let db = cfg.engine()?;
        plugin::parse_url(db, &cfg.connection_url)?;
        if cfg.verify_connection {
            let conn = cfg.connect().await.map_err(|e| {
                CoreError::invalid(format!("error verifying the connection: {}", e.message))
            })?;
            conn.close().await;
        }
        req.storage.put_json(&config_key(name), &cfg).await?;
        self.pools.clear().await;
        Ok(None)
    }

    fn config_json(cfg: &ConnConfig) -> Value {
        json!({
            "plugin_name": cfg.plugin_name,
            "connection_details": {
                "connection_url": cfg.connection_url,
                "username": cfg.username,
            },
            "allowed_roles": cfg.allowed_roles,
            "root_credentials_rotate_statements": cfg.root_rotation_statements,
            "verify_connection": cfg.verify_connection,
            "max_open_connections": cfg.max_open_connections,
            "password_policy": "",
            "plugin_version": "",
        })
    }

    async fn rotate_root(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let old: ConnConfig = load(req.storage, &config_key(name))
            .await?
            .ok_or_else(|| CoreError::not_found(format!("no configuration {name:?}")))?;
        let db = old.engine()?;
        let pw = plugin::password()?;
        let statements = if old.root_rotation_statements.is_empty() {
            let lit = sql_literal(&pw).map_err(CoreError::invalid)?;
            let user = &old.username;
            vec![Zeroizing::new(match db {
                Db::Postgres => format!("ALTER ROLE {} WITH PASSWORD {lit}", pg_ident(user)),
                // Vault's default (MariaDB ignores `ALTER USER CURRENT_USER()` silently)
                Db::Mysql => {
                    let plain = user
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                    if !plain {
                        return Err(CoreError::invalid(
                            "this username needs root_rotation_statements to be rotated",
                        ));
                    }
                    format!("ALTER USER '{user}'@'%' IDENTIFIED BY {lit}")
                }
            })]
        } else {
            plugin::render(
                &old.root_rotation_statements,
                &old.username,
                Some(&pw),
                None,
            )
        };
        // stored first: if the change in the database fails, the old password is put back
        let mut new = old.clone();
        new.password = pw.to_string();
        req.storage.put_json(&config_key(name), &new).await?;
        let changed = async {
            let mut conn = old.connect().await?;
            let r = run(&mut conn, &statements).await;
            conn.close().await;
            r?;
            // kept only if the database took it
            match new.connect().await {
                Ok(c) => {
                    c.close().await;
                    Ok(())
                }
                Err(_) => Err(CoreError::invalid(
                    "the database did not take the new root password; the old one is kept",
                )),
            }
        }
        .await;
        if let Err(e) = changed {
            req.storage.put_json(&config_key(name), &old).await?;
            return Err(e);
        }
        self.pools.clear().await;
        Ok(None)
    }

    async fn write_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let d = req.data;
        let role = Role {
            db_name: opt_str(d, "db_name")?
                .ok_or_else(|| CoreError::invalid("db_name is required"))?,
            creation_statements: opt_statements(d, "creation_statements")?
                .ok_or_else(|| CoreError::invalid("creation_statements are required"))?,
            revocation_statements: opt_statements(d, "revocation_statements")?.unwrap_or_default(),
            rollback_statements: opt_statements(d, "rollback_statements")?.unwrap_or_default(),
            renew_statements: opt_statements(d, "renew_statements")?.unwrap_or_default(),
            default_ttl: opt_duration_secs(d, "default_ttl")?.unwrap_or(0),
            max_ttl: opt_duration_secs(d, "max_ttl")?.unwrap_or(0),
        };
        check_name(&role.db_name)?;
        req.storage.put_json(&role_key(name), &role).await?;
        Ok(None)
    }

    async fn creds(&self, req: &EngineRequest<'_>, role_name: &str) -> Result<Option<Response>> {
        let role: Role = load(req.storage, &role_key(role_name))
            .await?
            .ok_or_else(|| CoreError::invalid(format!("unknown role: {role_name}")))?;
        let cfg: ConnConfig = load(req.storage, &config_key(&role.db_name))
            .await?
            .ok_or_else(|| CoreError::invalid(format!("unknown database {:?}", role.db_name)))?;
        if !cfg.allows(role_name) {
            return Err(CoreError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "\"{role_name}\" is not an allowed role of the database {:?}",
                    role.db_name
                ),
            ));
        }
        let db = cfg.engine()?;
        let display = req.token.map(|t| t.display_name.as_str()).unwrap_or("");
        let name = plugin::username(&cfg.plugin_name, display, role_name)?;
        let pw = plugin::password()?;
        // the statements' expiration: the lease's (the mount default when the role has none)
        let ttl = if role.default_ttl > 0 {
            role.default_ttl
        } else if req.mount.config.default_lease_ttl > 0 {
            req.mount.config.default_lease_ttl
        } else {
            768 * 3600
        };
        let expiration = plugin::expiration(coffer_core::util::unix_now() + ttl as f64);
        let create = plugin::render(
            &role.creation_statements,
            &name,
            Some(&pw),
            Some(&expiration),
        );
        let mut conn = self.conn(&cfg).await?;
        if let Err(e) = run(&mut conn, &create).await {
            // leave no half user behind
            let rollback = if role.rollback_statements.is_empty() {
                default_revocation(db, &name)
            } else {
                plugin::render(&role.rollback_statements, &name, None, None)
            };
            for s in &rollback {
                let _ = conn.exec(s).await;
            }
            self.done(&cfg, conn).await;
            return Err(e);
        }
        self.done(&cfg, conn).await;
        Ok(Some(Response {
            data: Some(
                json!({ "username": name, "password": pw.as_str() })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            secret: Some(SecretLease {
                ttl: role.default_ttl,
                max_ttl: role.max_ttl,
                renewable: true,
                internal: json!({ "db_name": role.db_name, "role": role_name, "username": name })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }),
            ..Default::default()
        }))
    }
}

/// The leased user's config, role (if it still exists) and name.
async fn leased(
    storage: &View,
    internal: &Map<String, Value>,
) -> Result<Option<(ConnConfig, Option<Role>, String)>> {
    let s = |k: &str| internal.get(k).and_then(Value::as_str).unwrap_or("");
    let name = check_generated(s("username"))?.to_string();
    let Some(cfg) = load::<ConnConfig>(storage, &config_key(s("db_name"))).await? else {
        tracing::warn!(user = %name, "database: the configuration of a leased user is gone");
        return Ok(None);
    };
    let role = load::<Role>(storage, &role_key(s("role"))).await?;
    Ok(Some((cfg, role, name)))
}

#[async_trait]
impl Engine for DatabaseEngine {
    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let op = req.operation;
        let (collection, name) = req.path.split_once('/').unwrap_or((req.path, ""));
        match (collection, name, op) {
            ("config", "", Operation::List) => keys(req.storage.list("config/").await?),
            ("roles", "", Operation::List) => keys(req.storage.list("role/").await?),
            ("config", n, Operation::Create | Operation::Update) => {
                self.write_config(req, check_name(n)?).await
            }
            ("config", n, Operation::Read) => {
                let cfg: ConnConfig = load(req.storage, &config_key(check_name(n)?))
                    .await?
                    .ok_or_else(|| CoreError::not_found(""))?;
                Ok(data(Self::config_json(&cfg)))
            }
            ("config", n, Operation::Delete) => {
                req.storage.delete(&config_key(check_name(n)?)).await?;
                self.pools.clear().await;
                Ok(None)
            }
            ("reset", n, Operation::Create | Operation::Update) => {
                load::<ConnConfig>(req.storage, &config_key(check_name(n)?))
                    .await?
                    .ok_or_else(|| CoreError::not_found(""))?;
                self.pools.clear().await;
                Ok(None)
            }
            ("rotate-root", n, Operation::Create | Operation::Update) => {
                self.rotate_root(req, check_name(n)?).await
            }
            ("roles", n, Operation::Create | Operation::Update) => {
                self.write_role(req, check_name(n)?).await
            }
            ("roles", n, Operation::Read) => {
                let r: Role = load(req.storage, &role_key(check_name(n)?))
                    .await?
                    .ok_or_else(|| CoreError::not_found(""))?;
                Ok(data(json!({
                    "db_name": r.db_name,
                    "creation_statements": r.creation_statements,
                    "revocation_statements": r.revocation_statements,
                    "rollback_statements": r.rollback_statements,
                    "renew_statements": r.renew_statements,
                    "default_ttl": r.default_ttl,
                    "max_ttl": r.max_ttl,
                    "credential_type": "password",
                })))
            }
            ("roles", n, Operation::Delete) => {
                req.storage.delete(&role_key(check_name(n)?)).await?;
                Ok(None)
            }
            ("creds", n, Operation::Read) => self.creds(req, check_name(n)?).await,
            ("static-roles", "", Operation::List) => {
                keys(req.storage.list(super::static_roles::PREFIX).await?)
            }
            ("static-roles", n, op) => super::static_roles::role(req, check_name(n)?, op).await,
            ("static-creds", n, Operation::Read) => {
                super::static_roles::creds(req, check_name(n)?).await
            }
            ("rotate-role", n, Operation::Create | Operation::Update) => {
                super::static_roles::rotate(req, check_name(n)?).await
            }
            ("static-roles-due", "", Operation::List) => super::static_roles::due(req).await,
            _ => Err(CoreError::unsupported_path(&format!(
                "{}{}",
                req.mount.path, req.path
            ))),
        }
    }

    async fn cleanup(&self) -> Result<()> {
        self.pools.clear().await;
        Ok(())
    }

    async fn revoke_secret(&self, storage: &View, internal: &Map<String, Value>) -> Result<()> {
        let Some((cfg, role, name)) = leased(storage, internal).await? else {
            return Ok(());
        };
        let db = cfg.engine()?;
        let statements = match role.filter(|r| !r.revocation_statements.is_empty()) {
            Some(r) => plugin::render(&r.revocation_statements, &name, None, None),
            None => default_revocation(db, &name),
        };
        let mut conn = self.conn(&cfg).await?;
        let r = run(&mut conn, &statements).await;
        self.done(&cfg, conn).await;
        r
    }

    async fn renew_secret(
        &self,
        storage: &View,
        internal: &Map<String, Value>,
        expire_time: f64,
    ) -> Result<()> {
        let Some((cfg, role, name)) = leased(storage, internal).await? else {
            return Err(CoreError::invalid(
                "the lease's database configuration is gone",
            ));
        };
        let expiration = plugin::expiration(expire_time);
        let statements = match (
            role.filter(|r| !r.renew_statements.is_empty()),
            cfg.engine()?,
        ) {
            (Some(r), _) => plugin::render(&r.renew_statements, &name, None, Some(&expiration)),
            (None, Db::Postgres) => vec![Zeroizing::new(format!(
                "ALTER ROLE {} VALID UNTIL '{expiration}'",
                pg_ident(&name)
            ))],
            (None, Db::Mysql) => Vec::new(),
        };
        if statements.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn(&cfg).await?;
        let r = run(&mut conn, &statements).await;
        self.done(&cfg, conn).await;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_names_and_redaction() {
        let d = json!({"allowed_roles": "a, b ,", "s": "one;two", "l": ["x", "y"]});
        let d = d.as_object().unwrap();
        assert_eq!(
            opt_list(d, "allowed_roles").unwrap().unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(opt_statements(d, "s").unwrap().unwrap(), vec!["one;two"]);
        assert_eq!(opt_statements(d, "l").unwrap().unwrap(), vec!["x", "y"]);
        assert!(check_name("ro.le_1-x").is_ok());
        assert!(check_name("a/b").is_err() && check_name("").is_err());
        assert!(check_generated("v-root-ro-abc-1").is_ok());
        assert!(check_generated("x'; DROP").is_err());
        let r = redact("syntax error near 'PASSWORD 's3cret'' at line 1");
        assert_eq!(r, "syntax error near '…' at line 1");
        assert!(!redact("bad \"x s3cret").contains("s3cret"));
        let cfg = ConnConfig {
            plugin_name: "mysql-database-plugin".into(),
            connection_url: "{{username}}:{{password}}@tcp(h:1)/".into(),
            username: "u".into(),
            password: "p".into(),
            allowed_roles: vec!["*".into()],
            verify_connection: true,
            root_rotation_statements: vec![],
            max_open_connections: 4,
        };
        assert!(cfg.allows("anything"));
        let shown = DatabaseEngine::config_json(&cfg).to_string();
        assert!(
            !shown.contains("\"p\""),
            "the password is never answered: {shown}"
        );
    }
}
