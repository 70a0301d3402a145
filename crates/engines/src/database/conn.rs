//! Connections to PostgreSQL (tokio-postgres) and MySQL/MariaDB (mysql_async), shared by the
//! database secrets engine and the built-in database rotators, and SQL quoting for the few
//! statements Coffer writes itself. No TLS to the database yet: use them on loopback or a
//! private network.

use mysql_async::prelude::Queryable;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a login may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }
}

/// Where and as whom to log in.
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Zeroizing<String>,
    pub dbname: Option<String>,
}

/// A PostgreSQL identifier, quoted.
pub fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal; a backslash or NUL is refused (their meaning depends on server settings).
pub fn sql_literal(s: &str) -> Result<String, String> {
    if s.contains('\\') || s.contains('\0') {
        return Err("a password with a backslash cannot be set".into());
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// A connection to a database.
pub enum Conn {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Conn {
    /// Log in as `t.username`.
    pub async fn open(engine: Engine, t: &Target) -> Result<Conn, String> {
        let s = t;
        let fut = async {
            match engine {
                Engine::Postgres => {
                    let mut cfg = tokio_postgres::Config::new();
                    cfg.host(&s.host)
                        .port(s.port)
                        .user(&s.username)
                        .password(s.password.as_bytes())
                        .dbname(s.dbname.as_deref().unwrap_or("postgres"))
                        .connect_timeout(CONNECT_TIMEOUT);
                    let (client, conn) = cfg
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| format!("PostgreSQL login as {} failed: {e}", s.username))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(Conn::Pg(client))
                }
                Engine::Mysql => {
                    let opts = mysql_async::OptsBuilder::default()
                        .ip_or_hostname(s.host.clone())
                        .tcp_port(s.port)
                        .user(Some(s.username.clone()))
                        .pass(Some(s.password.to_string()))
                        .db_name(s.dbname.clone());
                    let conn = mysql_async::Conn::new(opts)
                        .await
                        .map_err(|e| format!("MySQL login as {} failed: {e}", s.username))?;
                    Ok(Conn::My(conn))
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| format!("connecting to {}:{} timed out", s.host, s.port))?
    }

    /// Run one statement (or several, on PostgreSQL).
    pub async fn exec(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Conn::Pg(c) => c.batch_execute(sql).await.map_err(|e| e.to_string()),
            Conn::My(c) => c.query_drop(sql).await.map_err(|e| e.to_string()),
        }
    }

    /// Whether a login (user) exists.
    pub async fn user_exists(&mut self, user: &str) -> Result<bool, String> {
        match self {
            Conn::Pg(c) => c
                .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
                .await
                .map(|rows| !rows.is_empty())
                .map_err(|e| e.to_string()),
            Conn::My(c) => c
                .exec_first::<u8, _, _>("SELECT 1 FROM mysql.user WHERE User = ?", (user,))
                .await
                .map(|r| r.is_some())
                .map_err(|e| e.to_string()),
        }
    }

    /// The statements that give `to` the rights of `from` (MySQL: its grants, for host `%`).
    pub async fn grants(&mut self, from: &str) -> Result<Vec<String>, String> {
        match self {
            Conn::Pg(_) => Ok(Vec::new()),
            Conn::My(c) => c
                .query::<String, _>(format!("SHOW GRANTS FOR '{from}'@'%'"))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether a kept connection still answers (PostgreSQL: not closed; MySQL: a ping).
    pub async fn alive(&mut self, _engine: Engine) -> bool {
        match self {
            Conn::Pg(c) => !c.is_closed(),
            Conn::My(c) => c.ping().await.is_ok(),
        }
    }

    pub async fn close(self) {
        match self {
            Conn::Pg(_) => {}
            Conn::My(c) => {
                let _ = c.disconnect().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_literal("it's").unwrap(), "'it''s'");
        assert!(sql_literal("a\\b").is_err());
    }
}
