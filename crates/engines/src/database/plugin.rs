//! What a connection configuration names: the database kind (Vault's plugin names), where it
//! is (parsed from the `connection_url` template), the generated users' names, and the SQL
//! templates rendered with generated values only.

use super::conn::{Engine, Target};
use coffer_core::error::{CoreError, Result};
use zeroize::Zeroizing;

/// The database kind a Vault plugin name means.
pub fn engine_of(plugin: &str) -> Result<Engine> {
    match plugin {
        "postgresql-database-plugin" => Ok(Engine::Postgres),
        "mysql-database-plugin"
        | "mysql-aurora-database-plugin"
        | "mysql-rds-database-plugin"
        | "mysql-legacy-database-plugin" => Ok(Engine::Mysql),
        other => Err(CoreError::invalid(format!(
            "unsupported plugin_name {other:?}: use postgresql-database-plugin or \
             mysql-database-plugin (or its aurora, rds and legacy names)"
        ))),
    }
}

/// The longest user name each plugin allows.
pub fn max_username(plugin: &str) -> usize {
    match plugin {
        "postgresql-database-plugin" => 63,
        "mysql-legacy-database-plugin" => 16,
        _ => 32,
    }
}

/// Host, port and database of a `connection_url` template (`{{username}}` / `{{password}}` stand
/// for the credentials, which are given apart and never spliced into it):
/// `postgresql://{{username}}:{{password}}@host:5432/db?sslmode=disable`, or MySQL's
/// `{{username}}:{{password}}@tcp(host:3306)/db`.
pub fn parse_url(engine: Engine, url: &str) -> Result<(String, u16, Option<String>)> {
    let bad = |why: &str| CoreError::invalid(format!("connection_url is not valid: {why}"));
    // TLS to the database is not built yet: never let a URL that asks for it connect in clear
    let query = url
        .split_once('?')
        .map_or("", |(_, q)| q)
        .to_ascii_lowercase();
    let asks_tls = query.split('&').any(|kv| match kv.split_once('=') {
        Some(("sslmode", v)) => !matches!(v, "disable" | "allow" | "prefer"),
        Some(("tls", v)) => v != "false",
        _ => false,
    });
    if asks_tls {
        return Err(bad(
            "it asks for TLS, which Coffer does not speak to databases yet (use sslmode=disable \
             on a trusted network)",
        ));
    }
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let (hostport, db) = match engine {
        Engine::Postgres => {
            let rest = url
                .strip_prefix("postgresql://")
                .or_else(|| url.strip_prefix("postgres://"))
                .ok_or_else(|| bad("it must start with postgresql://"))?;
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let rest = rest.split('?').next().unwrap_or(rest);
            match rest.split_once('/') {
                Some((hp, db)) => (
                    hp.to_string(),
                    Some(db.to_string()).filter(|d| !d.is_empty()),
                ),
                None => (rest.to_string(), None),
            }
        }
        Engine::Mysql => {
            let rest = after_at.split('?').next().unwrap_or(after_at);
            let (hp, db) = match rest.split_once('/') {
                Some((hp, db)) => (hp, Some(db.to_string()).filter(|d| !d.is_empty())),
                None => (rest, None),
            };
            let hp = hp
                .strip_prefix("tcp(")
                .and_then(|h| h.strip_suffix(')'))
                .unwrap_or(hp);
            (hp.to_string(), db)
        }
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
        ),
        None => (hostport.clone(), engine.default_port()),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() || host.contains(['/', '@', ' ', '{', '}']) {
        return Err(bad("no host"));
    }
    Ok((host, port, db))
}

/// A connection target for a configuration's credentials.
pub fn target(
    engine: Engine,
    url: &str,
    username: &str,
    password: &Zeroizing<String>,
) -> Result<Target> {
    let (host, port, dbname) = parse_url(engine, url)?;
    Ok(Target {
        host,
        port,
        username: username.to_string(),
        password: password.clone(),
        dbname,
    })
}

/// Letters and digits only (what goes into generated names).
fn alnum(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(max)
        .collect()
}

fn random_alnum(n: usize) -> Result<String> {
    let rules = coffer_core::password::PasswordRules {
        length: u32::try_from(n).unwrap_or(20),
        exclude_punctuation: true,
        require_each_included_type: false,
        ..Default::default()
    };
    Ok(coffer_core::password::generate(&rules)?.to_string())
}

/// A new user's name, in Vault's default form: `v-<display>-<role>-<random>-<unix time>` on
/// PostgreSQL, `v-<display>-<role>-<random>` cut to the plugin's limit on MySQL. Only letters,
/// digits and `-`.
pub fn username(plugin: &str, display_name: &str, role: &str) -> Result<String> {
    let max = max_username(plugin);
    let name = if plugin == "postgresql-database-plugin" {
        format!(
            "v-{}-{}-{}-{}",
            alnum(display_name, 8),
            alnum(role, 8),
            random_alnum(20)?,
            time::OffsetDateTime::now_utc().unix_timestamp()
        )
    } else {
        format!(
            "v-{}-{}-{}",
            alnum(display_name, 4),
            alnum(role, 4),
            random_alnum(20)?
        )
    };
    Ok(name.chars().take(max).collect())
}

/// A new user's password: 24 letters and digits.
pub fn password() -> Result<Zeroizing<String>> {
    let rules = coffer_core::password::PasswordRules {
        length: 24,
        exclude_punctuation: true,
        ..Default::default()
    };
    coffer_core::password::generate(&rules)
}

/// Render statement templates with the generated values only (`{{name}}`, `{{username}}`,
/// `{{password}}`, `{{expiration}}`), split into single statements on `;`.
pub fn render(
    templates: &[String],
    name: &str,
    password: Option<&str>,
    expiration: Option<&str>,
) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    for t in templates {
        let mut s = t.replace("{{name}}", name).replace("{{username}}", name);
        if let Some(p) = password {
            s = s.replace("{{password}}", p);
        }
        if let Some(e) = expiration {
            s = s.replace("{{expiration}}", e);
        }
        for stmt in s.split(';') {
            let stmt = stmt.trim();
            if !stmt.is_empty() {
                out.push(Zeroizing::new(stmt.to_string()));
            }
        }
        zeroize::Zeroize::zeroize(&mut s);
    }
    out
}

/// An expiration as the statements take it: `2026-12-02 10:00:00+0000`.
pub fn expiration(unix: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_templates() {
        let (h, p, d) = parse_url(
            Engine::Postgres,
            "postgresql://{{username}}:{{password}}@127.0.0.1:54329/postgres?sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            (h.as_str(), p, d.as_deref()),
            ("127.0.0.1", 54329, Some("postgres"))
        );
        let (h, p, d) = parse_url(
            Engine::Mysql,
            "{{username}}:{{password}}@tcp(127.0.0.1:33069)/",
        )
        .unwrap();
        assert_eq!((h.as_str(), p, d), ("127.0.0.1", 33069, None));
        assert!(parse_url(Engine::Postgres, "mysql://x").is_err());
        for tls in [
            "postgresql://u:p@h:1/db?sslmode=require",
            "postgresql://u:p@h:1/db?sslmode=verify-full",
        ] {
            assert!(parse_url(Engine::Postgres, tls).is_err(), "{tls}");
        }
        assert!(parse_url(Engine::Postgres, "postgresql://u:p@h:1/db?sslmode=disable").is_ok());
        assert!(parse_url(Engine::Mysql, "u:p@tcp(h:1)/?tls=true").is_err());
        assert!(parse_url(Engine::Mysql, "u:p@tcp(:x)/").is_err());
        let pg = username("postgresql-database-plugin", "token-x", "read only").unwrap();
        assert!(
            pg.starts_with("v-tokenx-readonly-") && pg.len() <= 63,
            "{pg}"
        );
        let my = username("mysql-database-plugin", "root", "readonly").unwrap();
        assert!(my.len() <= 32 && my.starts_with("v-root-read-"), "{my}");
        assert!(my.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let stmts = render(
            &["CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT x TO \"{{name}}\";".into()],
            "v-a",
            Some("pw"),
            Some("2026-01-01 00:00:00+0000"),
        );
        assert_eq!(stmts.len(), 2);
        assert_eq!(
            stmts[0].as_str(),
            "CREATE ROLE \"v-a\" PASSWORD 'pw' VALID UNTIL '2026-01-01 00:00:00+0000'"
        );
        assert_eq!(expiration(0.0), "1970-01-01 00:00:00+0000");
    }
}
