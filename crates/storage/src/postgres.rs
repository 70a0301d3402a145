//! `storage "postgresql"`: every entry is a row of one table, written through a pool of
//! connections; HA is a lease row in a second table.
//!
//! The schema (created when missing; operators may create it themselves, see the README):
//!
//! ```sql
//! CREATE TABLE coffer_kv_store (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);
//! CREATE TABLE coffer_ha_locks (ha_key TEXT COLLATE "C" PRIMARY KEY, ha_identity TEXT NOT NULL,
//!                               ha_value TEXT NOT NULL, valid_until TIMESTAMPTZ NOT NULL);
//! ```
//!
//! Every write is one PostgreSQL transaction, acknowledged once PostgreSQL has committed it
//! (PostgreSQL group-commits concurrent transactions' WAL flushes itself). A write takes
//! transaction-scoped advisory locks on its keys (in one order, so writers never deadlock), so
//! that compare-and-set checks — including "the key is absent" — hold until the commit.
//! With HA in use, the same transaction first checks, with a key-share lock on the lease row,
//! that this node holds the lock and its hold has not expired: a node that lost the lock cannot
//! write, whatever it believes, and a takeover (which locks the row FOR UPDATE first) waits for
//! writes already past the check. The holder's renewals do not wait for its writes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_postgres::{Client, NoTls, Statement};

use crate::ha::{decode_node, encode_node, HaLock, Member, NodeInfo, HA_MEMBER_TTL, HA_TTL};
use crate::{timed, validate_ops, Backend, StorageError, TxnOp};

/// Default table names (Vault's keys, Coffer's names: a Vault table holds Vault's data).
pub const DEFAULT_TABLE: &str = "coffer_kv_store";
pub const DEFAULT_HA_TABLE: &str = "coffer_ha_locks";
/// Connections the data path opens at most, unless `max_parallel` says otherwise.
pub const DEFAULT_MAX_PARALLEL: usize = 16;

/// How long one storage operation may take before it fails (and its connection is dropped).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HA lock operation may take: less than a hold lasts.
const LOCK_OP_TIMEOUT: Duration = Duration::from_millis(900);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a write that PostgreSQL aborted as a deadlock or serialization failure.
const WRITE_ATTEMPTS: usize = 5;
/// The lease row of the active node.
const LEADER_KEY: &str = "leader";

/// The `storage "postgresql"` stanza.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    pub connection_url: String,
    pub table: String,
    pub ha_enabled: bool,
    pub ha_table: String,
    pub max_parallel: usize,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the URL may carry a password
        f.debug_struct("PostgresConfig")
            .field("connection_url", &"<redacted>")
            .field("table", &self.table)
            .field("ha_enabled", &self.ha_enabled)
            .field("ha_table", &self.ha_table)
            .field("max_parallel", &self.max_parallel)
            .finish()
    }
}

impl PostgresConfig {
    pub fn new(connection_url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            connection_url: connection_url.into(),
            table: DEFAULT_TABLE.to_string(),
            ha_enabled: false,
            ha_table: DEFAULT_HA_TABLE.to_string(),
            max_parallel: DEFAULT_MAX_PARALLEL,
        }
    }

    /// The SQL that creates the schema (what the backend runs when the tables are missing).
    pub fn schema_sql(&self) -> Result<String, StorageError> {
        let t = quote_table(&self.table)?;
        let h = quote_table(&self.ha_table)?;
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n  key   TEXT COLLATE \"C\" PRIMARY KEY,\n  value BYTEA NOT NULL\n);\n\
             CREATE TABLE IF NOT EXISTS {h} (\n  ha_key      TEXT COLLATE \"C\" PRIMARY KEY,\n  ha_identity TEXT NOT NULL,\n  ha_value    TEXT NOT NULL,\n  valid_until TIMESTAMPTZ NOT NULL\n);\n"
        ))
    }

    /// The connection settings and the TLS connector `connection_url` asks for.
    fn target(&self) -> Result<Target, StorageError> {
        let (rest, ssl) = split_ssl_params(&self.connection_url)?;
        let mut cfg: tokio_postgres::Config = rest
            .parse()
            // the parser's message may quote the URL, password included
            .map_err(|_| {
                StorageError::Config(
                    "connection_url is not a valid PostgreSQL URL or key=value string".into(),
                )
            })?;
        let tls = ssl.connector()?;
        cfg.ssl_mode(match (&tls, ssl.mode.as_deref()) {
            (None, _) => tokio_postgres::config::SslMode::Disable,
            (Some(_), Some("allow" | "prefer")) => tokio_postgres::config::SslMode::Prefer,
            (Some(_), _) => tokio_postgres::config::SslMode::Require,
        });
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(10));
        if cfg.get_application_name().is_none() {
            cfg.application_name("coffer");
        }
        let mut target = Target { cfg, tls };
        // the server gives up too: a statement or transaction of a node that vanished (cut off,
        // killed mid-write) must not hold locks, above all the lease row's, for long
        target.add_server_options(DATA_SERVER_OPTIONS);
        Ok(target)
    }
}

/// Where and how to connect: the settings, and the TLS connector when TLS is asked for.
#[derive(Clone)]
struct Target {
    cfg: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Target {
    fn add_server_options(&mut self, options: &str) {
        let all = match self.cfg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {options}"),
            _ => options.to_string(),
        };
        self.cfg.options(&all);
    }
}

/// Server-side limits of data connections (see [`OP_TIMEOUT`]).
const DATA_SERVER_OPTIONS: &str =
    "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=15000";
/// Server-side limits of the lock connection: below [`LOCK_OP_TIMEOUT`], so that a takeover or
/// renewal the client gave up on does not go on waiting in the server.
const LOCK_SERVER_OPTIONS: &str =
    "-c lock_timeout=700 -c statement_timeout=850 -c idle_in_transaction_session_timeout=5000";

/// libpq's TLS parameters of a connection string (tokio-postgres does not read them all).
#[derive(Debug, Default, PartialEq, Eq)]
struct SslParams {
    mode: Option<String>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Take `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of a URL's query or a key=value
/// string; the rest goes to tokio-postgres.
fn split_ssl_params(url: &str) -> Result<(String, SslParams), StorageError> {
    let mut ssl = SslParams::default();
    let mut take = |k: &str, v: String| -> bool {
        let slot = match k {
            "sslmode" => &mut ssl.mode,
            "sslrootcert" => &mut ssl.rootcert,
            "sslcert" => &mut ssl.cert,
            "sslkey" => &mut ssl.key,
            _ => return false,
        };
        *slot = Some(v);
        true
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), ssl));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, percent_decode(v)?) {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, ssl));
    }
    let mut kept = Vec::new();
    for (k, v) in key_value_pairs(url)? {
        if !take(&k, v.clone()) {
            kept.push(format!(
                "{k}='{}'",
                v.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), ssl))
}

/// libpq's `key = value` connection string: values bare or single-quoted, with `\\` and `\'`
/// escapes inside quotes, spaces allowed around `=`.
fn key_value_pairs(text: &str) -> Result<Vec<(String, String)>, StorageError> {
    let bad = || StorageError::Config("connection_url is not a valid key=value string".into());
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(bad());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next().ok_or_else(bad)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or_else(bad)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(v: &str) -> Result<String, StorageError> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    StorageError::Config("connection_url has a malformed %-escape".into())
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| StorageError::Config("connection_url is not UTF-8 once decoded".into()))
}

impl SslParams {
    /// The connector: none for `disable` (and for `allow`/`prefer` or no sslmode without a CA);
    /// otherwise TLS that verifies the server's certificate chain against `sslrootcert` and its
    /// name against the host (libpq's verify-full, whatever the mode says: Coffer never talks
    /// TLS to a server it has not verified).
    fn connector(&self) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StorageError> {
        let mode = self.mode.as_deref();
        match mode {
            None | Some("disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full") => {}
            Some(other) => {
                return Err(StorageError::Config(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        }
        let wants_tls = matches!(mode, Some("require" | "verify-ca" | "verify-full"));
        if mode == Some("disable") || (!wants_tls && self.rootcert.is_none()) {
            return Ok(None);
        }
        let Some(root) = &self.rootcert else {
            return Err(StorageError::Config(format!(
                "sslmode={} needs sslrootcert=<CA file> in connection_url: Coffer verifies the server's certificate",
                mode.unwrap_or_default()
            )));
        };
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let read_err = |what: &str, path: &str| {
            StorageError::Config(format!("reading {what} {path}: not a readable PEM file"))
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(root).map_err(|_| read_err("sslrootcert", root))? {
            roots
                .add(c.map_err(|_| read_err("sslrootcert", root))?)
                .map_err(|e| StorageError::Config(format!("sslrootcert {root}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(read_err("sslrootcert", root));
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StorageError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .map_err(|_| read_err("sslcert", cert))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| read_err("sslcert", cert))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|_| read_err("sslkey", key))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| StorageError::Config(format!("sslcert/sslkey: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(StorageError::Config(
                    "sslcert and sslkey go together".into(),
                ))
            }
        };
        Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }
}

/// `name` or `schema.name`, each part a plain SQL identifier, double-quoted.
fn quote_table(name: &str) -> Result<String, StorageError> {
    let ok_part = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 63
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty() || parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(StorageError::Config(format!(
            "table name {name:?} must be an identifier (letters, digits, '_'), optionally schema-qualified"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

fn pg_err(context: &str, e: tokio_postgres::Error) -> StorageError {
    // a server error's message and code, never parameters (values are never in them)
    match e.as_db_error() {
        Some(db) => StorageError::Io(format!(
            "postgresql: {context}: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => StorageError::Io(format!("postgresql: {context}: {e}")),
    }
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// The prepared statements of one data connection.
struct Stmts {
    get: Statement,
    list_under: Statement,
    list_all: Statement,
    keys: Statement,
    lock_fenced: Statement,
    lock: Statement,
    checks: Statement,
    upsert: Statement,
    delete: Statement,
}

struct Conn {
    client: Client,
    stmts: Stmts,
}

struct Sql {
    table: String,
    ha_table: String,
}

async fn connect(target: &Target) -> Result<Client, StorageError> {
    let client = match &target.tls {
        None => {
            let (client, connection) = target
                .cfg
                .connect(NoTls)
                .await
                .map_err(|e| pg_err("connect", e))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgresql connection closed");
                }
            });
            client
        }
        Some(tls) => {
            let (client, connection) = target
                .cfg
                .connect(tls.clone())
                .await
                .map_err(|e| pg_err("connect", e))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgresql connection closed");
                }
            });
            client
        }
    };
    Ok(client)
}

impl Sql {
    async fn prepare(&self, client: &Client) -> Result<Stmts, StorageError> {
        let (t, h) = (&self.table, &self.ha_table);
        let p = |sql: String| async move {
            client.prepare(&sql).await.map_err(|e| pg_err("prepare", e))
        };
        // the entries directly under a prefix: a key's rest up to and including its first '/'
        let collapse = "SELECT DISTINCT CASE WHEN strpos(r, '/') > 0 THEN substr(r, 1, strpos(r, '/')) ELSE r END AS e \
                        FROM (SELECT substr(key, char_length($1::text) + 1) AS r FROM";
        Ok(Stmts {
            get: p(format!("SELECT value FROM {t} WHERE key = $1")).await?,
            list_under: p(format!(
                "{collapse} {t} WHERE key >= $1 COLLATE \"C\" AND key < $2 COLLATE \"C\") s WHERE r <> ''"
            ))
            .await?,
            list_all: p(format!("{collapse} {t}) s WHERE r <> ''")).await?,
            keys: p(format!("SELECT key FROM {t} ORDER BY key")).await?,
            lock_fenced: p(format!(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM {h} WHERE ha_key = '{LEADER_KEY}' AND ha_identity = $1 \
                 AND valid_until > clock_timestamp() FOR KEY SHARE) f), \
                 (SELECT count(pg_advisory_xact_lock(x)) FROM (SELECT hashtextextended(k, 0) AS x FROM unnest($2::text[]) AS k ORDER BY x) s)"
            ))
            .await?,
            lock: p("SELECT 1::bigint, (SELECT count(pg_advisory_xact_lock(x)) FROM (SELECT hashtextextended(k, 0) AS x FROM unnest($1::text[]) AS k ORDER BY x) s)".to_string())
            .await?,
            checks: p(format!("SELECT key, value FROM {t} WHERE key = ANY($1)")).await?,
            upsert: p(format!(
                "INSERT INTO {t} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ))
            .await?,
            delete: p(format!("DELETE FROM {t} WHERE key = ANY($1)")).await?,
        })
    }
}

struct Pool {
    target: Target,
    sql: Sql,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A pooled connection; back to the pool only through [`Pooled::done`] (a connection whose
/// operation failed or was cancelled midway is dropped).
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Pooled<'_> {
    fn done(mut self) {
        if let Some(c) = self.conn.take() {
            if !c.client.is_closed() {
                self.pool.idle.lock().push(c);
            }
        }
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // set at creation, taken only by `done`, which consumes self
        self.conn.as_ref().expect("pooled connection present")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("pooled connection present")
    }
}

impl Pool {
    async fn get(&self) -> Result<Pooled<'_>, StorageError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::Closed)?;
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => {
                let client = connect(&self.target).await?;
                let stmts = self.sql.prepare(&client).await?;
                Conn { client, stmts }
            }
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

struct Fence {
    /// Set by the first lock attempt: from then on every write checks the lease row.
    on: AtomicBool,
    /// This node's belief that it holds the lock; writes are refused locally when false.
    held: AtomicBool,
    identity: Mutex<Option<String>>,
}

/// The PostgreSQL backend. See the module documentation.
pub struct PostgresBackend {
    pool: Arc<Pool>,
    config: PostgresConfig,
    fence: Arc<Fence>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("config", &self.config)
            .finish()
    }
}

impl PostgresBackend {
    /// Connect, and create the tables when missing.
    pub async fn open(config: PostgresConfig) -> Result<PostgresBackend, StorageError> {
        let target = config.target()?;
        let sql = Sql {
            table: quote_table(&config.table)?,
            ha_table: quote_table(&config.ha_table)?,
        };
        if config.max_parallel == 0 {
            return Err(StorageError::Config(
                "max_parallel must be at least 1".into(),
            ));
        }
        let schema = config.schema_sql()?;
        timed("postgresql", OP_TIMEOUT, "creating the schema", async {
            let mut client = connect(&target).await?;
            let tx = client.transaction().await.map_err(|e| pg_err("begin", e))?;
            // nodes starting together must not race on CREATE TABLE
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('coffer-schema', 0))",
                &[],
            )
            .await
            .map_err(|e| pg_err("schema lock", e))?;
            // tables created by an operator are used as they are (creating needs a privilege
            // on the schema that Coffer's user may rightly lack)
            let present = tx
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                    &[&sql.table, &sql.ha_table],
                )
                .await
                .map_err(|e| pg_err("looking for the tables", e))?
                .get::<_, bool>(0);
            if !present {
                tx.batch_execute(&schema)
                    .await
                    .map_err(|e| pg_err("creating the schema", e))?;
            }
            tx.commit().await.map_err(|e| pg_err("commit", e))
        })
        .await?;
        let pool = Arc::new(Pool {
            target,
            sql,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(config.max_parallel),
        });
        // fail at start on a schema we cannot use
        pool.get().await?.done();
        Ok(PostgresBackend {
            pool,
            config,
            fence: Arc::new(Fence {
                on: AtomicBool::new(false),
                held: AtomicBool::new(false),
                identity: Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    async fn write(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        validate_ops(&ops)?;
        let fenced_as = if self.fence.on.load(Ordering::Acquire) {
            if !self.fence.held.load(Ordering::Acquire) {
                return Err(StorageError::Fenced);
            }
            self.fence.identity.lock().clone()
        } else {
            None
        };
        // every key the write touches, and the final state of each (the last op wins)
        let mut keys: Vec<String> = ops.iter().map(|o| o.key().to_string()).collect();
        keys.sort();
        keys.dedup();
        let mut checks: Vec<(&str, Option<&[u8]>)> = Vec::new();
        let mut last: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        for op in &ops {
            match op {
                TxnOp::Check { key, expected } => checks.push((key, expected.as_deref())),
                TxnOp::Put { key, value } => {
                    last.insert(key, Some(value));
                }
                TxnOp::Delete { key } => {
                    last.insert(key, None);
                }
            }
        }
        let mut put_keys = Vec::new();
        let mut put_values = Vec::new();
        let mut del_keys = Vec::new();
        for (k, v) in &last {
            match v {
                Some(v) => {
                    put_keys.push(*k);
                    put_values.push(*v);
                }
                None => del_keys.push(*k),
            }
        }
        let plan = WritePlan {
            fenced_as: fenced_as.as_deref(),
            keys: &keys,
            checks: &checks,
            put_keys: &put_keys,
            put_values: &put_values,
            del_keys: &del_keys,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.pool.get().await?;
            let r = tokio::time::timeout(OP_TIMEOUT, plan.run(&mut conn)).await;
            match r {
                Ok(Ok(outcome)) => {
                    conn.done();
                    if matches!(outcome, Err(StorageError::Fenced)) {
                        self.fence.held.store(false, Ordering::Release);
                    }
                    return outcome;
                }
                Ok(Err(e)) if is_retryable(&e) && attempt < WRITE_ATTEMPTS => {
                    conn.done();
                }
                Ok(Err(e)) => return Err(pg_err("write", e)),
                Err(_) => {
                    return Err(StorageError::Io(format!(
                        "postgresql: write timed out after {OP_TIMEOUT:?}"
                    )))
                }
            }
        }
    }
}

/// One write, ready to run as a PostgreSQL transaction.
struct WritePlan<'a> {
    fenced_as: Option<&'a str>,
    keys: &'a [String],
    checks: &'a [(&'a str, Option<&'a [u8]>)],
    put_keys: &'a [&'a str],
    put_values: &'a [&'a [u8]],
    del_keys: &'a [&'a str],
}

impl WritePlan<'_> {
    /// The outer error is PostgreSQL's (maybe worth a retry); the inner one is the write's
    /// verdict (fenced, or a failed check).
    async fn run(
        &self,
        conn: &mut Conn,
    ) -> Result<Result<(), StorageError>, tokio_postgres::Error> {
        let Conn { client, stmts } = conn;
        let tx = client.transaction().await?;
        let row = match self.fenced_as {
            Some(id) => tx.query_one(&stmts.lock_fenced, &[&id, &self.keys]).await?,
            None => tx.query_one(&stmts.lock, &[&self.keys]).await?,
        };
        if row.get::<_, i64>(0) == 0 {
            tx.rollback().await?;
            return Ok(Err(StorageError::Fenced));
        }
        if !self.checks.is_empty() {
            let wanted: Vec<&str> = self.checks.iter().map(|(k, _)| *k).collect();
            let rows = tx.query(&stmts.checks, &[&wanted]).await?;
            let current: BTreeMap<String, Vec<u8>> = rows
                .into_iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
                .collect();
            for (k, expected) in self.checks {
                if current.get(*k).map(Vec::as_slice) != *expected {
                    tx.rollback().await?;
                    return Ok(Err(StorageError::CasFailed((*k).to_string())));
                }
            }
        }
        if !self.put_keys.is_empty() {
            tx.execute(&stmts.upsert, &[&self.put_keys, &self.put_values])
                .await?;
        }
        if !self.del_keys.is_empty() {
            tx.execute(&stmts.delete, &[&self.del_keys]).await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let conn = self.pool.get().await?;
        let row = timed("postgresql", OP_TIMEOUT, "get", async {
            conn.client
                .query_opt(&conn.stmts.get, &[&key])
                .await
                .map_err(|e| pg_err("get", e))
        })
        .await?;
        conn.done();
        Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let conn = self.pool.get().await?;
        let rows = timed("postgresql", OP_TIMEOUT, "list", async {
            let r = match prefix.strip_suffix('/') {
                // prefixes end with '/': the keys under it sort before `<prefix minus '/'>0`
                Some(stem) => {
                    let upper = format!("{stem}0");
                    conn.client
                        .query(&conn.stmts.list_under, &[&prefix, &upper])
                        .await
                }
                None if prefix.is_empty() => {
                    conn.client.query(&conn.stmts.list_all, &[&prefix]).await
                }
                None => {
                    return Err(StorageError::InvalidKey(
                        "a list prefix must be empty or end with '/'".into(),
                    ))
                }
            };
            r.map_err(|e| pg_err("list", e))
        })
        .await?;
        conn.done();
        let mut out: Vec<String> = rows.into_iter().map(|r| r.get::<_, String>(0)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops).await
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn ha_lock(&self, node: NodeInfo) -> Option<Arc<dyn HaLock>> {
        if !self.config.ha_enabled {
            return None;
        }
        *self.fence.identity.lock() = Some(node.id.clone());
        let mut target = self.pool.target.clone();
        target.add_server_options(LOCK_SERVER_OPTIONS);
        Some(Arc::new(PgLock {
            target,
            ha_table: self.pool.sql.ha_table.clone(),
            node,
            auth: Mutex::new(String::new()),
            fence: self.fence.clone(),
            conn: tokio::sync::Mutex::new(None),
        }))
    }

    async fn keys(&self) -> Result<Vec<String>, StorageError> {
        let conn = self.pool.get().await?;
        let rows = timed("postgresql", Duration::from_secs(600), "keys", async {
            conn.client
                .query(&conn.stmts.keys, &[])
                .await
                .map_err(|e| pg_err("keys", e))
        })
        .await?;
        conn.done();
        Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect())
    }
}

/// The lease row of the active node, on a connection of its own.
struct PgLock {
    target: Target,
    ha_table: String,
    node: NodeInfo,
    auth: Mutex<String>,
    fence: Arc<Fence>,
    conn: tokio::sync::Mutex<Option<Client>>,
}

impl PgLock {
    fn advert(&self) -> NodeInfo {
        NodeInfo {
            auth: self.auth.lock().clone(),
            ..self.node.clone()
        }
    }

    /// Run one statement on the lock connection (reconnecting when needed), within
    /// [`LOCK_OP_TIMEOUT`]; a failed or timed-out connection is dropped.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StorageError> {
        let mut slot = self.conn.lock().await;
        let r = timed("postgresql", LOCK_OP_TIMEOUT, "lock operation", async {
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = Some(connect(&self.target).await?);
            }
            let client = slot.as_ref().ok_or(StorageError::Closed)?;
            client
                .query(sql, params)
                .await
                .map_err(|e| pg_err("lock operation", e))
        })
        .await;
        if r.is_err() {
            *slot = None;
        }
        r
    }

    fn ttl_secs() -> f64 {
        HA_TTL.as_secs_f64()
    }
}

#[async_trait]
impl HaLock for PgLock {
    fn set_advert_auth(&self, auth: String) {
        *self.auth.lock() = auth;
    }

    async fn try_acquire(&self) -> Result<bool, StorageError> {
        self.fence.on.store(true, Ordering::Release);
        let h = &self.ha_table;
        // cheap first: no row lock is requested while another node's hold is live (a waiting
        // FOR UPDATE would queue the holder's writes behind it)
        let current = self
            .query(
                &format!(
                    "SELECT ha_identity, valid_until > clock_timestamp() FROM {h} WHERE ha_key = '{LEADER_KEY}'"
                ),
                &[],
            )
            .await?;
        if let Some(row) = current.first() {
            let (holder, live): (String, bool) = (row.get(0), row.get(1));
            if live && holder != self.node.id {
                self.fence.held.store(false, Ordering::Release);
                return Ok(false);
            }
        }
        // the takeover locks the row FOR UPDATE first: it waits for every write that passed
        // its lock check (each holds FOR KEY SHARE on the row until it commits), so no write of
        // the previous holder can commit after the lock changed hands. Renewals (an UPDATE of
        // no key column) do not conflict with the writes' FOR KEY SHARE.
        let rows = self
            .query(
                &format!(
                    "INSERT INTO {h} AS l (ha_key, ha_identity, ha_value, valid_until) \
                     SELECT '{LEADER_KEY}', $1, $2, clock_timestamp() + make_interval(secs => $3) \
                     FROM (SELECT count(*) FROM (SELECT 1 FROM {h} WHERE ha_key = '{LEADER_KEY}' FOR UPDATE) f) g \
                     ON CONFLICT (ha_key) DO UPDATE SET ha_identity = EXCLUDED.ha_identity, \
                     ha_value = EXCLUDED.ha_value, valid_until = EXCLUDED.valid_until \
                     WHERE l.valid_until < clock_timestamp() OR l.ha_identity = EXCLUDED.ha_identity \
                     RETURNING 1"
                ),
                &[&self.node.id, &encode_node(&self.advert()), &Self::ttl_secs()],
            )
            .await?;
        let held = !rows.is_empty();
        self.fence.held.store(held, Ordering::Release);
        Ok(held)
    }

    async fn renew(&self) -> Result<bool, StorageError> {
        let h = &self.ha_table;
        let r = self
            .query(
                &format!(
                    "UPDATE {h} SET valid_until = clock_timestamp() + make_interval(secs => $2) \
                     WHERE ha_key = '{LEADER_KEY}' AND ha_identity = $1 RETURNING 1"
                ),
                &[&self.node.id, &Self::ttl_secs()],
            )
            .await;
        // an error says nothing about the hold (the storage engine still decides every write)
        let rows = r?;
        let held = !rows.is_empty();
        self.fence.held.store(held, Ordering::Release);
        Ok(held)
    }

    async fn release(&self) -> Result<(), StorageError> {
        self.fence.held.store(false, Ordering::Release);
        let h = &self.ha_table;
        self.query(
            &format!("DELETE FROM {h} WHERE ha_key = '{LEADER_KEY}' AND ha_identity = $1"),
            &[&self.node.id],
        )
        .await
        .map(|_| ())
    }

    async fn leader(&self) -> Result<Option<NodeInfo>, StorageError> {
        let h = &self.ha_table;
        let rows = self
            .query(
                &format!(
                    "SELECT ha_value FROM {h} WHERE ha_key = '{LEADER_KEY}' AND valid_until > clock_timestamp()"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| decode_node(r.get::<_, String>(0).as_bytes())))
    }

    async fn check_in(&self) -> Result<(), StorageError> {
        let h = &self.ha_table;
        self.query(
            &format!(
                "INSERT INTO {h} (ha_key, ha_identity, ha_value, valid_until) \
                 VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4)) \
                 ON CONFLICT (ha_key) DO UPDATE SET ha_value = EXCLUDED.ha_value, valid_until = EXCLUDED.valid_until"
            ),
            &[
                &format!("node/{}", self.node.id),
                &self.node.id,
                &encode_node(&self.advert()),
                &HA_MEMBER_TTL.as_secs_f64(),
            ],
        )
        .await?;
        // forget nodes long gone
        self.query(
            &format!(
                "DELETE FROM {h} WHERE ha_key LIKE 'node/%' AND valid_until < clock_timestamp() - interval '1 hour'"
            ),
            &[],
        )
        .await
        .map(|_| ())
    }

    async fn members(&self) -> Result<Vec<Member>, StorageError> {
        let h = &self.ha_table;
        let rows = self
            .query(
                &format!(
                    "SELECT ha_value, extract(epoch FROM valid_until)::float8 FROM {h} \
                     WHERE ha_key LIKE 'node/%' AND valid_until > clock_timestamp() ORDER BY ha_key"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let node = decode_node(r.get::<_, String>(0).as_bytes())?;
                let until = r.get::<_, f64>(1) as i64;
                Some(Member {
                    node,
                    last_seen: until - HA_MEMBER_TTL.as_secs() as i64,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_params_come_out_of_urls_and_key_value_strings() {
        let (rest, ssl) = split_ssl_params(
            "postgres://u:p@h:5432/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem&sslcert=/c.pem&sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?connect_timeout=3");
        assert_eq!(
            ssl,
            SslParams {
                mode: Some("verify-full".into()),
                rootcert: Some("/etc/ca.pem".into()),
                cert: Some("/c.pem".into()),
                key: Some("/k.pem".into()),
            }
        );
        let (rest, ssl) = split_ssl_params("postgresql://h/db?sslmode=disable").unwrap();
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(ssl.mode.as_deref(), Some("disable"));
        let (rest, ssl) = split_ssl_params("postgres://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), ssl),
            ("postgres://h/db", SslParams::default())
        );
        let (rest, ssl) =
            split_ssl_params("host=h user=u sslmode=require sslrootcert='/ca.pem' dbname=d")
                .unwrap();
        assert_eq!(rest, "host='h' user='u' dbname='d'");
        assert_eq!(ssl.rootcert.as_deref(), Some("/ca.pem"));
        // quoted values with spaces, quotes and backslashes; spaces around '='
        let (rest, ssl) =
            split_ssl_params(r"host = h password='p w \' \\x' sslrootcert = '/my certs/ca.pem'")
                .unwrap();
        assert_eq!(ssl.rootcert.as_deref(), Some("/my certs/ca.pem"));
        assert_eq!(rest, r"host='h' password='p w \' \\x'");
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&br"p w ' \x"[..]));
        for bad in ["host", "=x", "host='unterminated", "a=b c"] {
            assert!(split_ssl_params(bad).is_err(), "{bad}");
        }
        assert!(split_ssl_params("postgres://h/db?sslrootcert=%zz").is_err());
    }

    #[test]
    fn tls_modes() {
        let p = |mode: Option<&str>, root: Option<&str>| SslParams {
            mode: mode.map(str::to_string),
            rootcert: root.map(str::to_string),
            cert: None,
            key: None,
        };
        // no TLS asked for
        assert!(p(None, None).connector().unwrap().is_none());
        assert!(p(Some("prefer"), None).connector().unwrap().is_none());
        assert!(p(Some("disable"), Some("/nonexistent"))
            .connector()
            .unwrap()
            .is_none());
        // TLS without a CA: refused; a CA that cannot be read: refused
        for m in ["require", "verify-ca", "verify-full"] {
            assert!(p(Some(m), None).connector().is_err());
            assert!(p(Some(m), Some("/nonexistent/ca.pem")).connector().is_err());
        }
        assert!(p(Some("bogus"), None).connector().is_err());
    }

    #[test]
    fn debug_hides_the_connection_url() {
        let c = PostgresConfig::new("postgres://u:hunter2@h/db");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
