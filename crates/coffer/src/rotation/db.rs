//! The built-in database rotators, for secrets whose JSON holds `engine`, `host`, `port`,
//! `username`, `password` and `dbname` (the fields AWS's rotation templates use):
//!
//! - `coffer:postgresql-single-user`, `coffer:mysql-single-user`: the user changes its own
//!   password (logging in with the current password, or the previous one if a failed run already
//!   changed it);
//! - `coffer:postgresql-alternating-users`, `coffer:mysql-alternating-users`: two users take
//!   turns, `<user>` and `<user>_clone`; a superuser, whose secret the field `masterarn` names
//!   (a secret name or ARN in the same kv mount), creates the clone with the user's rights
//!   (PostgreSQL: membership in the user's role; MySQL/MariaDB: the user's grants copied, for
//!   the host `%`) and sets each new password. The previous credentials keep working until the
//!   next rotation.
//!
//! New passwords are 32 characters without `/ @ " ' \` and space. User names must be letters,
//! digits and `_`. Coffer connects only to database hosts the configuration allows
//! (`rotation.allowed_database_hosts`; dev mode: loopback), without TLS.

use super::rotators::{finish, put_pending, read_text, Job};
use coffer_core::password::{generate, PasswordRules};
use coffer_core::request::Operation;
use coffer_engines::database::conn::{pg_ident, sql_literal, Conn, Engine, Target};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

const CLONE_SUFFIX: &str = "_clone";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SingleUser,
    AlternatingUsers,
}

/// The rotator for a built-in name (`postgresql-single-user`, …).
pub fn parse(name: &str) -> Option<(Engine, Mode)> {
    Some(match name {
        "postgresql-single-user" => (Engine::Postgres, Mode::SingleUser),
        "postgresql-alternating-users" => (Engine::Postgres, Mode::AlternatingUsers),
        "mysql-single-user" => (Engine::Mysql, Mode::SingleUser),
        "mysql-alternating-users" => (Engine::Mysql, Mode::AlternatingUsers),
        _ => return None,
    })
}

/// A database secret's fields.
struct DbSecret {
    host: String,
    port: u16,
    username: String,
    password: Zeroizing<String>,
    dbname: Option<String>,
    masterarn: Option<String>,
    /// Every field as stored (written back with the new username/password).
    fields: Map<String, Value>,
}

impl DbSecret {
    fn parse(text: &str, engine: Engine) -> Result<DbSecret, String> {
        let fields: Map<String, Value> = serde_json::from_str(text)
            .map_err(|_| "the secret is not a JSON object of database credentials".to_string())?;
        let s = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
        let username = s("username").ok_or("the secret has no username")?;
        if username.is_empty()
            || username.len() > 63
            || !username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err("the username must be letters, digits and _ (at most 63)".into());
        }
        let port = match fields.get("port") {
            None => engine.default_port(),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|p| p.parse().ok()))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("the port is not a port number")?,
        };
        Ok(DbSecret {
            host: s("host").ok_or("the secret has no host")?,
            port,
            password: Zeroizing::new(s("password").unwrap_or_default()),
            dbname: s("dbname"),
            masterarn: s("masterarn"),
            username,
            fields,
        })
    }

    /// Where and as whom to log in.
    fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
            dbname: self.dbname.clone(),
        }
    }

    /// The secret's JSON with another username and password.
    fn with(&self, username: &str, password: &str) -> Zeroizing<String> {
        let mut f = self.fields.clone();
        f.insert("username".into(), json!(username));
        f.insert("password".into(), json!(password));
        Zeroizing::new(Value::Object(f).to_string())
    }
}

fn new_password() -> Result<Zeroizing<String>, String> {
    generate(&PasswordRules {
        length: 32,
        exclude_characters: "/@\"'\\ ".into(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

fn set_password_sql(engine: Engine, user: &str, password: &str) -> Result<String, String> {
    let lit = sql_literal(password)?;
    Ok(match engine {
        Engine::Postgres => format!("ALTER ROLE {} WITH PASSWORD {lit}", pg_ident(user)),
        Engine::Mysql => format!("ALTER USER '{user}'@'%' IDENTIFIED BY {lit}"),
    })
}

async fn login_works(engine: Engine, s: &DbSecret) -> bool {
    match Conn::open(engine, &s.target()).await {
        Ok(c) => {
            c.close().await;
            true
        }
        Err(_) => false,
    }
}

/// A version's credentials (`Ok(None)`: no such version).
async fn secret_at(
    job: &Job<'_>,
    engine: Engine,
    step: &'static str,
    sel: Value,
) -> Result<Option<DbSecret>, String> {
    match read_text(job, step, sel).await? {
        Some(text) => DbSecret::parse(&text, engine).map(Some),
        None => Ok(None),
    }
}

fn check_host(job: &Job<'_>, s: &DbSecret) -> Result<(), String> {
    let host = s.host.to_ascii_lowercase();
    if job.settings.allowed_database_hosts.contains(&host) {
        Ok(())
    } else {
        Err(format!(
            "database host {host} is not allowed (rotation.allowed_database_hosts)"
        ))
    }
}

/// One step of a database rotation.
pub async fn step(
    job: &Job<'_>,
    engine: Engine,
    mode: Mode,
    step: &'static str,
) -> Result<(), String> {
    let pending_sel = json!({ "version_id": job.version_id });
    match step {
        "createSecret" => {
            if read_text(job, step, pending_sel).await?.is_some() {
                return Ok(());
            }
            let current = secret_at(job, engine, step, json!({ "label": "AWSCURRENT" }))
                .await?
                .ok_or("the secret has no current version")?;
            check_host(job, &current)?;
            let user = match mode {
                Mode::SingleUser => current.username.clone(),
                Mode::AlternatingUsers => match current.username.strip_suffix(CLONE_SUFFIX) {
                    Some(base) => base.to_string(),
                    None => format!("{}{CLONE_SUFFIX}", current.username),
                },
            };
            if user.len() > 63 {
                return Err("the clone's name would be longer than 63 characters".into());
            }
            let text = current.with(&user, &new_password()?);
            put_pending(job, step, &text).await
        }
        "setSecret" => {
            let pending = secret_at(job, engine, step, pending_sel)
                .await?
                .ok_or("the pending version is missing")?;
            check_host(job, &pending)?;
            if login_works(engine, &pending).await {
                return Ok(()); // set by an earlier attempt
            }
            match mode {
                Mode::SingleUser => set_single(job, engine, step, &pending).await,
                Mode::AlternatingUsers => set_alternating(job, engine, step, &pending).await,
            }
        }
        "testSecret" => {
            let pending = secret_at(job, engine, step, pending_sel)
                .await?
                .ok_or("the pending version is missing")?;
            check_host(job, &pending)?;
            let mut c = Conn::open(engine, &pending.target()).await?;
            let r = c.exec("SELECT 1").await;
            c.close().await;
            r
        }
        _ => finish(job, step).await,
    }
}

/// The user logs in with its current (or previous) password and sets the pending one.
async fn set_single(
    job: &Job<'_>,
    engine: Engine,
    step: &'static str,
    pending: &DbSecret,
) -> Result<(), String> {
    let mut last = String::from("no earlier credentials");
    for label in ["AWSCURRENT", "AWSPREVIOUS"] {
        let Some(old) = secret_at(job, engine, step, json!({ "label": label })).await? else {
            continue;
        };
        if old.username != pending.username || old.host != pending.host {
            return Err("the pending version names another user or host".into());
        }
        match Conn::open(engine, &old.target()).await {
            Ok(mut c) => {
                let r = match engine {
                    Engine::Postgres => {
                        c.exec(&set_password_sql(
                            engine,
                            &pending.username,
                            &pending.password,
                        )?)
                        .await
                    }
                    // a user without CREATE USER changes its own password: MariaDB's form
                    // first, then MySQL 8's (which has no PASSWORD())
                    Engine::Mysql => {
                        let lit = sql_literal(&pending.password)?;
                        match c.exec(&format!("SET PASSWORD = PASSWORD({lit})")).await {
                            Ok(()) => Ok(()),
                            Err(_) => {
                                c.exec(&format!("ALTER USER CURRENT_USER() IDENTIFIED BY {lit}"))
                                    .await
                            }
                        }
                    }
                };
                c.close().await;
                return r;
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The superuser creates the other user if needed and sets its password.
async fn set_alternating(
    job: &Job<'_>,
    engine: Engine,
    step: &'static str,
    pending: &DbSecret,
) -> Result<(), String> {
    let current = secret_at(job, engine, step, json!({ "label": "AWSCURRENT" }))
        .await?
        .ok_or("the secret has no current version")?;
    let master_id = pending
        .masterarn
        .clone()
        .ok_or("the secret has no masterarn naming the superuser's secret")?;
    let master_name = master_secret_name(&master_id);
    let text = read_master(job, step, &master_name).await?;
    let master = DbSecret::parse(&text, engine)?;
    check_host(job, &master)?;
    let mut c = Conn::open(engine, &master.target()).await?;
    let r = async {
        let user = &pending.username;
        if !c.user_exists(user).await? {
            let base = user.strip_suffix(CLONE_SUFFIX).unwrap_or(&current.username);
            let lit = sql_literal(&pending.password)?;
            match engine {
                Engine::Postgres => {
                    c.exec(&format!(
                        "CREATE ROLE {} WITH LOGIN PASSWORD {lit}",
                        pg_ident(user)
                    ))
                    .await?;
                    c.exec(&format!("GRANT {} TO {}", pg_ident(base), pg_ident(user)))
                        .await?;
                }
                Engine::Mysql => {
                    c.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY {lit}"))
                        .await?;
                    for g in c.grants(base).await? {
                        let g = g.replace(&format!("`{base}`@"), &format!("`{user}`@"));
                        let g = g.replace(&format!("'{base}'@"), &format!("'{user}'@"));
                        // the copied USAGE grant may carry the user's password hash: drop it
                        let g = match g.find(" IDENTIFIED BY") {
                            Some(i) => g[..i].to_string(),
                            None => g,
                        };
                        c.exec(&g).await?;
                    }
                }
            }
            return Ok(());
        }
        c.exec(&set_password_sql(engine, user, &pending.password)?)
            .await
    }
    .await;
    c.close().await;
    r
}

/// The name of the superuser's secret: a name, or an ARN of this Coffer (name and suffix).
fn master_secret_name(id: &str) -> String {
    match id.split_once(":secret:") {
        Some((_, rest)) => match rest.rsplit_once('-') {
            Some((name, suffix)) if suffix.len() == 6 => name.to_string(),
            _ => rest.to_string(),
        },
        None => id.to_string(),
    }
}

async fn read_master(job: &Job<'_>, step: &'static str, name: &str) -> Result<String, String> {
    let mut data = super::object(json!({ "label": "AWSCURRENT", "as_text": true }));
    data.insert("as_text".into(), json!(true));
    let resp = job
        .internal(step)
        .call(
            Operation::Read,
            &format!("{}domain/versions/{name}", job.mount),
            data,
        )
        .await
        .map_err(|e| format!("the superuser's secret {name}: {e}"))?;
    resp.data
        .and_then(|d| d.get("value").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| format!("the superuser's secret {name} has no value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_quoting_and_fields() {
        assert_eq!(
            parse("mysql-alternating-users"),
            Some((Engine::Mysql, Mode::AlternatingUsers))
        );
        assert_eq!(parse("oracle-single-user"), None);
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_literal("it's").unwrap(), "'it''s'");
        assert!(sql_literal("a\\b").is_err());
        assert_eq!(
            master_secret_name("arn:aws:secretsmanager:us-east-1:1:secret:db/master-AbC123"),
            "db/master"
        );
        assert_eq!(master_secret_name("db/master"), "db/master");
        let s = DbSecret::parse(
            r#"{"engine":"postgres","host":"127.0.0.1","port":"5433","username":"app","password":"p","extra":1}"#,
            Engine::Postgres,
        )
        .unwrap();
        assert_eq!((s.port, s.username.as_str()), (5433, "app"));
        let again: Value = serde_json::from_str(&s.with("app_clone", "q")).unwrap();
        assert_eq!(again["extra"], 1);
        assert_eq!(again["username"], "app_clone");
        for bad in [
            r#"{"host":"h","username":"a;drop"}"#,
            r#"{"host":"h","username":"a","port":70000}"#,
            r#"{"username":"a"}"#,
            "not json",
        ] {
            assert!(DbSecret::parse(bad, Engine::Mysql).is_err(), "{bad}");
        }
        let p = new_password().unwrap();
        assert!(!p.contains(['/', '@', '"', '\'', '\\', ' ']));
    }
}
