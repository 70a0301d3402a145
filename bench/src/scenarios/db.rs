//! `db-creds`: the database secrets engine against a real PostgreSQL (the one
//! scripts/databases.sh starts): one `GET /v1/database/creds/<role>` and one
//! `PUT /v1/sys/leases/revoke` of its lease per iteration, closed loop, on a dev server (audit
//! on) by a token whose policy allows just those two paths; and, in the same run, the database's
//! own rate of the same work done directly with tokio-postgres (`CREATE ROLE ... WITH LOGIN
//! PASSWORD` + `DROP ROLE` on connections opened before the run, same concurrency). The ratio
//! of the two is what the engine costs around the database. Skipped when COFFER_TEST_PG_PORT is
//! not set.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio_postgres::Client;

use super::{Ctx, ROOT};
use crate::load::{self, Conn, Load, Summary};
use crate::report::Row;
use crate::server::{self, api, Coffer};

const MOUNT: &str = "database";
const DB_NAME: &str = "benchpg";
/// Iterations per measured run with --smoke (unless --requests says otherwise).
const SMOKE_ITERATIONS: u64 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The superuser scripts/databases.sh exports.
pub(super) struct Pg {
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) password: String,
}

impl Pg {
    /// From the environment; `None` when COFFER_TEST_PG_PORT is unset or empty.
    pub(super) fn from_env() -> Result<Option<Pg>> {
        let port = match std::env::var("COFFER_TEST_PG_PORT") {
            Ok(p) if !p.trim().is_empty() => p,
            _ => return Ok(None),
        };
        let port = port
            .trim()
            .parse()
            .map_err(|_| anyhow!("COFFER_TEST_PG_PORT={port:?} is not a port number"))?;
        let user = std::env::var("COFFER_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
        let password = std::env::var("COFFER_TEST_PG_PASSWORD").map_err(|_| {
            anyhow!("COFFER_TEST_PG_PORT is set but COFFER_TEST_PG_PASSWORD is not")
        })?;
        Ok(Some(Pg {
            port,
            user,
            password,
        }))
    }

    /// A new connection (and login) to the `postgres` database on 127.0.0.1.
    pub(super) async fn connect(&self) -> Result<Client> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .user(&self.user)
            .password(self.password.as_bytes())
            .dbname("postgres")
            .connect_timeout(CONNECT_TIMEOUT);
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.with_context(|| {
            format!(
                "PostgreSQL login as {} on 127.0.0.1:{}",
                self.user, self.port
            )
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// `n` random bytes as lowercase hex.
pub(super) fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow!("no random bytes"))?;
    Ok(hex::encode(b))
}

/// The roles whose names match the LIKE `pattern`.
async fn roles_like(admin: &Client, pattern: &str) -> Result<Vec<String>> {
    let rows = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1",
            &[&pattern],
        )
        .await
        .context("listing roles")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Drop the roles matching `pattern`; returns how many there were.
async fn drop_roles_like(admin: &Client, pattern: &str) -> Result<usize> {
    let names = roles_like(admin, pattern).await?;
    for n in &names {
        admin
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS \"{}\"",
                n.replace('"', "\"\"")
            ))
            .await
            .with_context(|| format!("dropping leftover role {n}"))?;
    }
    Ok(names.len())
}

/// One iteration of the baseline: a new login role with a random name and password, dropped.
async fn create_drop(client: Client, prefix: std::sync::Arc<str>) -> Result<Client> {
    let name = format!("{prefix}{}", random_hex(8)?);
    let pw = random_hex(12)?;
    client
        .batch_execute(&format!(
            "CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{pw}'"
        ))
        .await
        .context("CREATE ROLE")?;
    client
        .batch_execute(&format!("DROP ROLE \"{name}\""))
        .await
        .context("DROP ROLE")?;
    Ok(client)
}

/// A JSON answer that must be 2xx.
fn answer(what: &str, st: hyper::StatusCode, body: &[u8]) -> Result<Value> {
    if !st.is_success() {
        bail!("{what}: HTTP {st}: {}", load::snippet(body));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .with_context(|| format!("{what}: answer is not JSON: {}", load::snippet(body)))
}

/// One iteration of db-creds on `conn`: new credentials, then their lease revoked. Returns the
/// username.
async fn creds_revoke(
    conn: &mut Conn,
    addr: std::net::SocketAddr,
    creds_path: &str,
    tok: &str,
) -> Result<String> {
    let (st, body) = conn
        .send(server::request(
            addr,
            "GET",
            creds_path,
            Some(tok),
            Bytes::new(),
        )?)
        .await?;
    let v = answer(&format!("GET {creds_path}"), st, &body)?;
    let lease = server::str_at(&v, "/lease_id")?;
    let user = server::str_at(&v, "/data/username")?.to_string();
    server::str_at(&v, "/data/password")?;
    let revoke = Bytes::from(json!({ "lease_id": lease }).to_string());
    let (st, body) = conn
        .send(server::request(
            addr,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(tok),
            revoke,
        )?)
        .await?;
    answer("PUT /v1/sys/leases/revoke", st, &body)?;
    Ok(user)
}

impl Ctx {
    /// The load of both db-creds runs: `--db-connections` clients; with --smoke a few
    /// iterations (count-bound) unless --requests is given.
    fn db_load(&self) -> Load {
        let mut load = self.measured_load();
        load.connections = self.s.db_connections;
        if self.s.smoke && self.s.requests.is_none() {
            load.requests = Some(SMOKE_ITERATIONS);
            load.duration = None;
            load.warmup = Duration::ZERO;
        }
        load
    }

    /// `repeat` closed-loop runs of `step` on `load.connections` states made by `open` (anew
    /// for every run); medians and each run's rate.
    async fn measure_steps<S, O, OFut, F, Fut>(
        &self,
        mut srv: Option<&mut Coffer>,
        load: &Load,
        open: O,
        step: F,
    ) -> Result<(Summary, Vec<f64>)>
    where
        S: Send + 'static,
        O: Fn() -> OFut,
        OFut: Future<Output = Result<S>>,
        F: Fn(S, u64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<S>> + Send + 'static,
    {
        let mut sums = Vec::with_capacity(self.s.repeat);
        for _ in 0..self.s.repeat {
            let mut states = Vec::with_capacity(load.connections);
            for _ in 0..load.connections {
                states.push(open().await?);
            }
            let r = load::run_steps(states, load, step.clone()).await;
            let r = match srv.as_deref_mut() {
                Some(s) => s.explain(r)?,
                None => r?,
            };
            if let Some(s) = srv.as_deref_mut() {
                s.check_alive()?;
            }
            sums.push(Summary::from_run(r));
        }
        let rps = sums.iter().map(|s| s.rps).collect();
        Ok((Summary::median(&sums), rps))
    }

    pub(super) async fn db_creds(&mut self) -> Result<()> {
        let Some(pg) = Pg::from_env()? else {
            let mut row = Row::new("db-creds");
            row.status = "skipped: COFFER_TEST_PG_PORT is not set (source scripts/databases.sh \
                          to start PostgreSQL and export it)"
                .into();
            println!("bench: db-creds skipped: COFFER_TEST_PG_PORT is not set");
            self.rows.push(row);
            return Ok(());
        };
        let admin = pg.connect().await?;
        // names of this run only (another run may share the database server)
        let tag = random_hex(3)?;
        let base_prefix = format!("coffer-bench-{tag}-");
        let role = format!("cb{tag}");
        let users = format!("v-%-{role}-%");
        let r = self.db_creds_inner(&pg, &admin, &base_prefix, &role).await;
        // whatever happened: no role of this run stays in the database
        let left_base = drop_roles_like(&admin, &format!("{base_prefix}%")).await;
        let left_users = drop_roles_like(&admin, &users).await;
        let (base_row, mut row) = r?;
        let (left_base, left_users) = (left_base?, left_users?);
        if left_users > 0 {
            bail!(
                "{left_users} database users issued by coffer were still there after their \
                 leases were revoked (dropped now)"
            );
        }
        if left_base > 0 {
            row.notes.push(format!(
                "{left_base} baseline roles were left behind (dropped now)"
            ));
        }
        self.push(base_row);
        self.push(row);
        Ok(())
    }

    async fn db_creds_inner(
        &mut self,
        pg: &Pg,
        admin: &Client,
        base_prefix: &str,
        role: &str,
    ) -> Result<(Row, Row)> {
        let load = self.db_load();
        let conns = load.connections;

        // the cost of one fresh connection + login (what the engine pays per operation)
        let logins = if self.s.smoke { 3 } else { 20 };
        let mut login_ns = Vec::with_capacity(logins);
        for _ in 0..logins {
            let t = Instant::now();
            drop(pg.connect().await?);
            login_ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        let login = Summary::from_latencies(login_ns, Duration::from_secs(1));

        // baseline: CREATE ROLE + DROP ROLE straight to PostgreSQL
        let prefix: std::sync::Arc<str> = base_prefix.into();
        let (bs, breps) = self
            .measure_steps(
                None,
                &load,
                || pg.connect(),
                move |client, _| create_drop(client, prefix.clone()),
            )
            .await?;
        let base_rps = bs.rps;
        let mut base_row = Row::new("db-create-role (baseline)");
        base_row.connections = Some(conns);
        base_row.summary = Some(bs);
        base_row.repeats_rps = breps;
        base_row.notes.push(format!(
            "CREATE ROLE \"<random>\" WITH LOGIN PASSWORD '<random>' then DROP ROLE, straight to \
             PostgreSQL on 127.0.0.1:{} with tokio-postgres, {conns} connections opened before \
             the run, closed loop; req/s = iterations/s (2 statements each)",
            pg.port
        ));
        base_row.notes.push(format!(
            "a fresh connection + SCRAM login as {} takes {:.2} ms here (median of {logins}, \
             p90 {:.2} ms)",
            pg.user, login.p50_ms, login.p90_ms
        ));
        if let Ok(v) = admin.query_one("SHOW server_version", &[]).await {
            let version: String = v.get(0);
            base_row
                .extra
                .insert("postgres_version".into(), json!(version));
        }

        // coffer: a dev server with audit, the database mount, a config, a role, a token
        let (mut srv, _tok, dir) = self.dev_server("db-creds", true).await?;
        let addr = srv.addr;
        let creds_path = format!("/v1/{MOUNT}/creds/{role}");
        let setup = async {
            api(
                addr,
                "POST",
                &format!("/v1/sys/mounts/{MOUNT}"),
                Some(ROOT),
                Some(&json!({"type": "database"})),
            )
            .await?;
            api(
                addr,
                "POST",
                &format!("/v1/{MOUNT}/config/{DB_NAME}"),
                Some(ROOT),
                Some(&json!({
                    "plugin_name": "postgresql-database-plugin",
                    "connection_url": format!(
                        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
                        pg.port
                    ),
                    "username": pg.user,
                    "password": pg.password,
                    "allowed_roles": ["*"],
                })),
            )
            .await?;
            api(
                addr,
                "POST",
                &format!("/v1/{MOUNT}/roles/{role}"),
                Some(ROOT),
                Some(&json!({
                    "db_name": DB_NAME,
                    "creation_statements": [
                        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                    ],
                    "default_ttl": "1h",
                })),
            )
            .await?;
            let policy = format!(
                "path \"{MOUNT}/creds/{role}\" {{\n  capabilities = [\"read\"]\n}}\n\n\
                 path \"sys/leases/revoke\" {{\n  capabilities = [\"update\"]\n}}\n"
            );
            server::put_policy(addr, ROOT, "bench-db", &policy).await?;
            server::create_token(addr, ROOT, &["bench-db"]).await
        }
        .await;
        let tok = srv.explain(setup)?;

        // one iteration first, checked in the database: the user exists, can log in, and is
        // gone once its lease is revoked
        let probe = async {
            let mut conn = Conn::open(addr).await?;
            let (st, body) = conn
                .send(server::request(
                    addr,
                    "GET",
                    &creds_path,
                    Some(&tok),
                    Bytes::new(),
                )?)
                .await?;
            let v = answer(&format!("GET {creds_path}"), st, &body)?;
            let user = server::str_at(&v, "/data/username")?.to_string();
            let password = server::str_at(&v, "/data/password")?.to_string();
            let lease = server::str_at(&v, "/lease_id")?.to_string();
            if roles_like(admin, &user).await?.is_empty() {
                bail!("user {user} from {creds_path} is not in the database");
            }
            let as_user = Pg {
                port: pg.port,
                user: user.clone(),
                password,
            };
            as_user
                .connect()
                .await
                .context("logging in with the issued credentials")?;
            let revoke = json!({ "lease_id": lease });
            let (st, body) = conn
                .send(server::request(
                    addr,
                    "PUT",
                    "/v1/sys/leases/revoke",
                    Some(&tok),
                    Bytes::from(revoke.to_string()),
                )?)
                .await?;
            answer("PUT /v1/sys/leases/revoke", st, &body)?;
            if !roles_like(admin, &user).await?.is_empty() {
                bail!("user {user} is still in the database after its lease was revoked");
            }
            // and the same through the loop's own step
            creds_revoke(&mut conn, addr, &creds_path, &tok).await?;
            Ok(())
        }
        .await;
        if let Err(e) = srv.explain(probe) {
            srv.stop().await?;
            return Err(e);
        }

        let step = {
            let creds_path: std::sync::Arc<str> = creds_path.as_str().into();
            let tok: std::sync::Arc<str> = tok.as_str().into();
            move |mut conn: Conn, _| {
                let (creds_path, tok) = (creds_path.clone(), tok.clone());
                async move {
                    creds_revoke(&mut conn, addr, &creds_path, &tok).await?;
                    Ok(conn)
                }
            }
        };
        let (s, reps) = self
            .measure_steps(Some(&mut srv), &load, || Conn::open(addr), step)
            .await?;
        let mut row = Row::new("db-creds");
        row.connections = Some(conns);
        if base_rps > 0.0 {
            row.ratio = Some(s.rps / base_rps);
            row.baseline = Some(format!(
                "CREATE+DROP ROLE {base_rps:.0}/s, same concurrency"
            ));
        }
        row.summary = Some(s);
        row.repeats_rps = reps;
        row.notes.push(format!(
            "one iteration = GET {creds_path} (CREATE ROLE ... VALID UNTIL) then PUT \
             /v1/sys/leases/revoke of its lease (the default PostgreSQL revocation: \
             pg_terminate_backend, DROP OWNED, DROP ROLE), on one keep-alive connection, by a \
             token whose policy allows just those two paths; {conns} connections, closed loop; \
             req/s = iterations/s"
        ));
        row.notes.push(
            "the engine opens a new PostgreSQL connection (SCRAM login) for each creation and \
             each revocation: two logins per iteration, the baseline none"
                .into(),
        );
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        Ok((base_row, row))
    }
}
