//! Static roles: an existing database user whose password Coffer owns and rotates, every
//! `rotation_period`, or now (`rotate-role/<name>`). Creating a static role sets a new password
//! at once (from then on only Coffer knows it); `static-creds/<name>` answers the current one.
//! Coffer's rotation scheduler asks every `database` mount for its due roles
//! (`static-roles-due`, root only) and rotates them.
//!
//! A rotation changes the password in the database first and stores it after; if the store
//! fails the database has a password nobody knows, so the next attempt (the scheduler retries
//! due roles) sets another one.

use super::conn::{pg_ident, sql_literal, Engine as Db};
use super::engine::{
    check_name, config_key, data, keys, load, opt_statements, opt_str, run, ConnConfig,
};
use super::plugin;
use crate::kv::params::opt_duration_secs;
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use coffer_core::util::unix_now;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

/// Storage prefix of static roles.
pub const PREFIX: &str = "static-role/";
/// The shortest rotation period Vault accepts.
const MIN_PERIOD: u64 = 5;

#[derive(Serialize, Deserialize)]
struct StaticRole {
    db_name: String,
    username: String,
    rotation_period: u64,
    #[serde(default)]
    rotation_statements: Vec<String>,
    /// The current password (only under the barrier).
    password: String,
    /// Unix time of the last rotation.
    last_rotation: f64,
}

impl Drop for StaticRole {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn check_user(u: &str) -> Result<&str> {
    if !u.is_empty() && u.len() <= 63 && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(u)
    } else {
        Err(CoreError::invalid(
            "username must be letters, digits and _ (at most 63)",
        ))
    }
}

/// Set a new password for the role's user in the database; answer it.
async fn set_password(
    cfg: &ConnConfig,
    username: &str,
    statements: &[String],
) -> Result<Zeroizing<String>> {
    let pw = plugin::password()?;
    let stmts = if statements.is_empty() {
        let lit = sql_literal(&pw).map_err(CoreError::invalid)?;
        vec![Zeroizing::new(match cfg.engine()? {
            Db::Postgres => format!("ALTER ROLE {} WITH PASSWORD {lit}", pg_ident(username)),
            Db::Mysql => format!("ALTER USER '{username}'@'%' IDENTIFIED BY {lit}"),
        })]
    } else {
        plugin::render(statements, username, Some(&pw), None)
    };
    let mut conn = cfg.connect().await?;
    let r = run(&mut conn, &stmts).await;
    conn.close().await;
    r.map(|()| pw)
}

async fn config_of(req: &EngineRequest<'_>, db_name: &str, role: &str) -> Result<ConnConfig> {
    let cfg: ConnConfig = load(req.storage, &config_key(db_name))
        .await?
        .ok_or_else(|| CoreError::invalid(format!("unknown database {db_name:?}")))?;
    if !cfg.allows(role) {
        return Err(CoreError::new(
            ErrorCode::PermissionDenied,
            format!("\"{role}\" is not an allowed role of the database {db_name:?}"),
        ));
    }
    Ok(cfg)
}

/// `static-roles/<name>`: write (rotates at once), read, delete.
pub async fn role(req: &EngineRequest<'_>, name: &str, op: Operation) -> Result<Option<Response>> {
    match op {
        Operation::Create | Operation::Update => {
            let d = req.data;
            let old: Option<StaticRole> = load(req.storage, &key(name)).await?;
            let db_name = opt_str(d, "db_name")?
                .or_else(|| old.as_ref().map(|o| o.db_name.clone()))
                .ok_or_else(|| CoreError::invalid("db_name is required"))?;
            let username = opt_str(d, "username")?
                .or_else(|| old.as_ref().map(|o| o.username.clone()))
                .ok_or_else(|| CoreError::invalid("username is required"))?;
            check_user(&username)?;
            if old.as_ref().is_some_and(|o| o.username != username) {
                return Err(CoreError::invalid(
                    "the username of a static role cannot change",
                ));
            }
            let rotation_period = opt_duration_secs(d, "rotation_period")?
                .or_else(|| old.as_ref().map(|o| o.rotation_period))
                .ok_or_else(|| CoreError::invalid("rotation_period is required"))?;
            if rotation_period < MIN_PERIOD {
                return Err(CoreError::invalid(format!(
                    "rotation_period must be at least {MIN_PERIOD} seconds"
                )));
            }
            let statements = opt_statements(d, "rotation_statements")?
                .or_else(|| old.as_ref().map(|o| o.rotation_statements.clone()))
                .unwrap_or_default();
            check_name(&db_name)?;
            let cfg = config_of(req, &db_name, name).await?;
            let (password, last_rotation) = match &old {
                Some(o) => (o.password.clone(), o.last_rotation),
                None => (
                    set_password(&cfg, &username, &statements)
                        .await?
                        .to_string(),
                    unix_now(),
                ),
            };
            let role = StaticRole {
                db_name,
                username,
                rotation_period,
                rotation_statements: statements,
                password,
                last_rotation,
            };
            req.storage.put_json(&key(name), &role).await?;
            Ok(None)
        }
        Operation::Read => {
            let r: StaticRole = load(req.storage, &key(name))
                .await?
                .ok_or_else(|| CoreError::not_found(""))?;
            Ok(data(json!({
                "db_name": r.db_name,
                "username": r.username,
                "rotation_period": r.rotation_period,
                "rotation_statements": r.rotation_statements,
                "last_vault_rotation": coffer_core::util::format_unix(r.last_rotation),
                "credential_type": "password",
            })))
        }
        Operation::Delete => {
            req.storage.delete(&key(name)).await?;
            Ok(None)
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}

/// `static-creds/<name>`: the current password and when it changes next.
pub async fn creds(req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
    let r: StaticRole = load(req.storage, &key(name))
        .await?
        .ok_or_else(|| CoreError::invalid(format!("unknown static role: {name}")))?;
    let next = r.last_rotation + r.rotation_period as f64;
    let ttl = (next - unix_now()).max(0.0).round() as u64;
    Ok(data(json!({
        "username": r.username,
        "password": r.password,
        "last_vault_rotation": coffer_core::util::format_unix(r.last_rotation),
        "rotation_period": r.rotation_period,
        "ttl": ttl,
    })))
}

/// `rotate-role/<name>`: a new password now.
pub async fn rotate(req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
    let mut r: StaticRole = load(req.storage, &key(name))
        .await?
        .ok_or_else(|| CoreError::invalid(format!("unknown static role: {name}")))?;
    let cfg = config_of(req, &r.db_name, name).await?;
    let pw = set_password(&cfg, &r.username, &r.rotation_statements).await?;
    r.password = pw.to_string();
    r.last_rotation = unix_now();
    req.storage.put_json(&key(name), &r).await?;
    Ok(None)
}

/// `static-roles-due` (list, root only): the static roles whose rotation period has passed.
pub async fn due(req: &EngineRequest<'_>) -> Result<Option<Response>> {
    let root = req.token.is_some_and(|t| {
        t.policies
            .iter()
            .any(|p| p == coffer_core::names::ROOT_POLICY)
    });
    if !root {
        return Err(CoreError::new(
            ErrorCode::PermissionDenied,
            "permission denied",
        ));
    }
    let now = unix_now();
    let mut out = Vec::new();
    for name in req.storage.list(PREFIX).await? {
        if let Some(r) = load::<StaticRole>(req.storage, &key(&name)).await? {
            if r.last_rotation + r.rotation_period as f64 <= now {
                out.push(name);
            }
        }
    }
    if out.is_empty() {
        return Ok(data(json!({ "keys": [] })));
    }
    keys(out)
}
