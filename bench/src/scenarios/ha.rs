//! `ha`: kv v2 reads and durable writes on 3-node HA clusters, against the file backend in the
//! same run. First a config-mode server on `storage "file"` (the baseline: `kv2-read` and
//! `kv2-write` rows); then, for PostgreSQL (a fresh database, from COFFER_TEST_PG_PORT etc.)
//! and for etcd (a fresh key prefix, from COFFER_TEST_ETCD_ENDPOINTS), three nodes sharing that
//! storage and one static seal key: node 1 is initialised and becomes active, nodes 2 and 3
//! unseal themselves and become standbys. The same reads and writes are measured through the
//! active node and through a standby (which forwards every request over HTTP to the active
//! node's `api_addr`). A backend whose variables are not set is skipped with a note. The
//! database / key prefix is removed at the end, whatever happened.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use super::db::{random_hex, Pg};
use super::{get, measured_row, write_body, Ctx, READ_PATH, RO_POLICY};
use crate::load::{snippet, Load, MakeReq};
use crate::report::Row;
use crate::server::{self, api, api_retry, call, Coffer};

/// Requests per measured run with --smoke (unless --requests says otherwise), and at most this
/// many connections.
const SMOKE_REQUESTS: u64 = 40;
const SMOKE_CONNECTIONS: usize = 8;
const NODES: usize = 3;
/// How long a node may take to become active after init, or a standby to name the leader.
const BRING_UP: Duration = Duration::from_secs(60);
/// After a failed measurement: longer than the HA lock's lifetime (2 s).
const SETTLE_AFTER_ERROR: Duration = Duration::from_secs(5);

/// The file backend's figures of this run.
struct FileBase {
    read_rps: f64,
    write_rps: f64,
}

/// Where a cluster keeps its data, and how to remove it.
enum Store {
    Postgres {
        pg: Pg,
        db: String,
    },
    Etcd {
        endpoints: Vec<String>,
        path: String,
    },
}

impl Store {
    fn kind(&self) -> &'static str {
        match self {
            Store::Postgres { .. } => "postgresql",
            Store::Etcd { .. } => "etcd",
        }
    }

    fn describe(&self) -> String {
        match self {
            Store::Postgres { pg, db } => {
                format!("PostgreSQL database {db} on 127.0.0.1:{}", pg.port)
            }
            Store::Etcd { endpoints, path } => {
                format!("etcd key prefix {path} on {}", endpoints.join(","))
            }
        }
    }

    /// The `storage` block of every node.
    fn stanza(&self) -> String {
        match self {
            Store::Postgres { pg, db } => {
                let url = format!(
                    "postgres://{}:{}@127.0.0.1:{}/{db}?sslmode=disable",
                    pct(&pg.user),
                    pct(&pg.password),
                    pg.port
                );
                format!(
                    "storage \"postgresql\" {{\n  connection_url = {url:?}\n  ha_enabled = \"true\"\n}}\n"
                )
            }
            Store::Etcd { endpoints, path } => format!(
                "storage \"etcd\" {{\n  address = {:?}\n  path = {path:?}\n  ha_enabled = \"true\"\n}}\n",
                endpoints.join(",")
            ),
        }
    }

    /// Create the (empty) storage.
    async fn create(&self) -> Result<()> {
        if let Store::Postgres { pg, db } = self {
            pg.connect()
                .await?
                .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                .await
                .with_context(|| format!("CREATE DATABASE {db}"))?;
        }
        Ok(())
    }

    /// Remove everything the cluster stored (the nodes must be stopped).
    async fn drop_all(&self) -> Result<()> {
        match self {
            Store::Postgres { pg, db } => {
                pg.connect()
                    .await?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .await
                    .with_context(|| format!("DROP DATABASE {db}"))?;
            }
            Store::Etcd { endpoints, path } => {
                // `<path>` without its slash: the HA lock and check-ins live beside the data,
                // under `<path>.ha/`
                let base = path.trim_end_matches('/').as_bytes();
                let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
                let body = json!({"key": b64(base), "range_end": b64(&prefix_end(base))});
                etcd_gateway(endpoints, "deleterange", &body).await?;
            }
        }
        Ok(())
    }
}

/// Percent-encoding for the user-info part of a URL.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// etcd's `range_end` for "every key starting with `prefix`".
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return p;
        }
    }
    vec![0]
}

/// The etcd endpoints of COFFER_TEST_ETCD_ENDPOINTS; `None` when unset or empty.
fn etcd_endpoints_from_env() -> Result<Option<Vec<String>>> {
    let raw = std::env::var("COFFER_TEST_ETCD_ENDPOINTS").unwrap_or_default();
    let eps: Vec<String> = raw
        .split(',')
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if eps.is_empty() {
        return Ok(None);
    }
    for e in &eps {
        if !e.starts_with("http://") {
            bail!("COFFER_TEST_ETCD_ENDPOINTS: {e:?} is not an http:// URL");
        }
    }
    Ok(Some(eps))
}

/// `POST <endpoint>/v3/kv/<op>` (etcd's JSON gateway) on the first endpoint that answers 200.
async fn etcd_gateway(endpoints: &[String], op: &str, body: &Value) -> Result<Value> {
    let mut last = anyhow!("no etcd endpoint");
    for ep in endpoints {
        let hostport = ep.trim_start_matches("http://");
        let r = async {
            let addr: SocketAddr = tokio::net::lookup_host(hostport)
                .await?
                .next()
                .ok_or_else(|| anyhow!("{hostport} resolves to nothing"))?;
            api(addr, "POST", &format!("/v3/kv/{op}"), None, Some(body)).await
        }
        .await;
        match r {
            Ok(v) => return Ok(v),
            Err(e) => last = e.context(format!("etcd {op} on {ep}")),
        }
    }
    Err(last)
}

/// The answer of `GET /v1/sys/leader` on `addr`, if 200.
async fn leader(addr: SocketAddr) -> Option<Value> {
    match call(addr, "GET", "/v1/sys/leader", None, None).await {
        Ok((st, body)) if st.is_success() => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// A running cluster: `nodes[0]` is node 1, the first active node.
struct Cluster {
    nodes: Vec<Coffer>,
    root: String,
    /// How many times `sys/init` answered 503 before it succeeded.
    init_503: usize,
}

impl Cluster {
    /// `(active, a standby)` as indexes into `nodes`, once exactly one node says it is active,
    /// answers `sys/health` 200, and every other node names it as the leader (within
    /// [`BRING_UP`]).
    async fn roles(&mut self) -> Result<(usize, usize)> {
        let deadline = Instant::now() + BRING_UP;
        loop {
            let mut infos = Vec::with_capacity(self.nodes.len());
            for n in &mut self.nodes {
                n.check_alive()?;
                infos.push(leader(n.addr).await);
            }
            let is_self = |l: &Option<Value>| {
                l.as_ref()
                    .and_then(|l| l.get("is_self"))
                    .and_then(Value::as_bool)
                    == Some(true)
            };
            let actives: Vec<usize> = (0..infos.len()).filter(|&i| is_self(&infos[i])).collect();
            if let [a] = actives[..] {
                let addr = format!("http://{}", self.nodes[a].addr);
                let named = infos.iter().all(|l| {
                    l.as_ref()
                        .and_then(|l| l.get("leader_address"))
                        .and_then(Value::as_str)
                        .map(|s| s.trim_end_matches('/'))
                        == Some(addr.as_str())
                });
                let healthy = matches!(
                    call(self.nodes[a].addr, "GET", "/v1/sys/health", None, None).await,
                    Ok((st, _)) if st.is_success()
                );
                if named && healthy {
                    let s = (0..self.nodes.len()).find(|&i| i != a).unwrap_or(a);
                    return Ok((a, s));
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = infos
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        format!(
                            "node {}: {}",
                            i + 1,
                            l.as_ref().map_or("no answer".into(), |v| v.to_string())
                        )
                    })
                    .collect();
                bail!(
                    "no stable active node after {BRING_UP:?}; sys/leader: {}",
                    seen.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the standbys, then the active node (graceful).
    async fn stop(mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(mut n) = self.nodes.pop() {
            if let Err(e) = n.stop().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Ctx {
    /// The load of every `ha` run: the usual one; with --smoke a few dozen requests on a few
    /// connections (count-bound) unless --requests is given.
    fn ha_load(&self) -> Load {
        let mut load = self.measured_load();
        if self.s.smoke && self.s.requests.is_none() {
            load.connections = load.connections.min(SMOKE_CONNECTIONS);
            load.requests = Some(SMOKE_REQUESTS);
            load.duration = None;
            load.warmup = Duration::ZERO;
        }
        load
    }

    pub(super) async fn ha(&mut self) -> Result<()> {
        let pg = Pg::from_env()?;
        let etcd = etcd_endpoints_from_env()?;
        let pg_skip = "skipped: COFFER_TEST_PG_PORT is not set (source scripts/databases.sh)";
        let etcd_skip =
            "skipped: COFFER_TEST_ETCD_ENDPOINTS is not set (source scripts/databases.sh)";
        if pg.is_none() && etcd.is_none() {
            for (name, why) in [("ha (postgresql)", pg_skip), ("ha (etcd)", etcd_skip)] {
                let mut row = Row::new(name);
                row.status = why.into();
                self.rows.push(row);
            }
            println!("bench: ha skipped: neither PostgreSQL nor etcd is configured");
            return Ok(());
        }
        let load = self.ha_load();
        let base = self.ha_file(&load).await?;
        let tag = random_hex(4)?;
        let stores = [
            pg.map(|pg| Store::Postgres {
                pg,
                db: format!("coffer_bench_{tag}"),
            })
            .ok_or(pg_skip),
            etcd.map(|endpoints| Store::Etcd {
                endpoints,
                path: format!("/bench-{tag}/"),
            })
            .ok_or(etcd_skip),
        ];
        for (kind, store) in ["postgresql", "etcd"].into_iter().zip(stores) {
            let name = format!("ha ({kind})");
            let store = match store {
                Ok(s) => s,
                Err(why) => {
                    println!("bench: {name} {why}");
                    let mut row = Row::new(&name);
                    row.status = why.into();
                    self.rows.push(row);
                    continue;
                }
            };
            if let Err(e) = self.ha_cluster(&store, &load, &base).await {
                let text = format!("{e:#}");
                let mut row = Row::error(&name, &e);
                if text.contains("built without etcd support") {
                    row.status = "skipped: this coffer binary was built without the etcd feature \
                                  (cargo build --features coffer/etcd)"
                        .into();
                    println!("bench: {name} skipped: coffer was built without etcd support");
                } else {
                    eprintln!("bench: {name}: error: {text}");
                }
                self.rows.push(row);
            }
        }
        Ok(())
    }

    /// The baseline: a config-mode server on `storage "file"`.
    async fn ha_file(&mut self, load: &Load) -> Result<FileBase> {
        let dir = self.dir("ha-file")?;
        let data = dir.join("data");
        let (mut srv, _key, root) = self.file_server(&dir, &data, "ha-file").await?;
        let addr = srv.addr;
        let tok = srv.explain(prepare_kv(addr, &root).await)?;
        let mut read = self.kv_row(Op::Read, &mut srv, &tok, "file", load).await?;
        let mut write = self
            .kv_row(Op::Write, &mut srv, &root, "file", load)
            .await?;
        let base = FileBase {
            read_rps: read.summary.as_ref().map_or(0.0, |s| s.rps),
            write_rps: write.summary.as_ref().map_or(0.0, |s| s.rps),
        };
        read.notes.push(
            "the baseline of the ha rows: one config-mode server on storage \"file\"; GET of one \
             kv v2 secret with a non-root read-only token, no audit"
                .into(),
        );
        write.notes.push(
            "the baseline of the ha rows: same server; PUT of a kv v2 secret at a new path per \
             request, root token"
                .into(),
        );
        srv.stop().await?;
        self.push(read);
        self.push(write);
        Ok(base)
    }

    /// One cluster on `store`: created, measured through the active node and a standby, then
    /// stopped and its storage removed.
    async fn ha_cluster(&mut self, store: &Store, load: &Load, base: &FileBase) -> Result<()> {
        store.create().await?;
        let r = self.ha_cluster_inner(store, load, base).await;
        let dropped = store.drop_all().await;
        let rows = r?;
        dropped.with_context(|| format!("removing {}", store.describe()))?;
        for row in rows {
            self.push(row);
        }
        Ok(())
    }

    /// The rows of one cluster. A failed measurement becomes an error row and the next one
    /// goes on (on whichever node is active by then); a failed bring-up is the error.
    async fn ha_cluster_inner(
        &mut self,
        store: &Store,
        load: &Load,
        base: &FileBase,
    ) -> Result<Vec<Row>> {
        let kind = store.kind();
        let t0 = Instant::now();
        // on an error the nodes are killed when `cluster` is dropped
        let mut cluster = self.start_cluster(store).await?;
        let bring_up = t0.elapsed().as_secs_f64();
        let root = cluster.root.clone();
        let active_addr = cluster.nodes[0].addr;
        let standby_addr = cluster.nodes[1].addr;
        let setup = async {
            server::mount_kv2_ready(active_addr, &root).await?;
            let tok = prepare_kv(active_addr, &root).await?;
            // through a standby too (forwarded), before measuring
            api_retry(
                standby_addr,
                "GET",
                READ_PATH,
                Some(&tok),
                None,
                Duration::from_secs(10),
            )
            .await
            .context("reading through a standby")?;
            Ok::<_, anyhow::Error>(tok)
        }
        .await;
        let tok = cluster.nodes[0].explain(setup)?;

        let mut rows = Vec::new();
        // reads first: a write run that costs the active node its lock must not change them
        for (op, role) in [
            (Op::Read, Role::Active),
            (Op::Read, Role::Standby),
            (Op::Write, Role::Active),
            (Op::Write, Role::Standby),
        ] {
            let label = format!("{kind}, {}", role.name());
            let name = format!("{} ({label})", op.name());
            let r = async {
                let (active, standby) = cluster.roles().await?;
                let i = match role {
                    Role::Active => active,
                    Role::Standby => standby,
                };
                let cred = match op {
                    Op::Read => &tok,
                    Op::Write => &root,
                };
                let r = self
                    .kv_row(op, &mut cluster.nodes[i], cred, &label, load)
                    .await;
                // the active node serves every request: its log says why one failed
                let row = r.map_err(|e| {
                    anyhow!(
                        "{e:#} (sent to node {}, the {}; node {} was active){}",
                        i + 1,
                        role.name(),
                        active + 1,
                        cluster.nodes[active].log_tail()
                    )
                })?;
                Ok::<_, anyhow::Error>((row, active))
            }
            .await;
            let (mut row, active) = match r {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("bench: {name}: error: {e:#}");
                    rows.push(Row::error(&name, &e));
                    // let a node that lost its lock give it up (and a node take it) before the
                    // next measurement looks for the active node
                    tokio::time::sleep(SETTLE_AFTER_ERROR).await;
                    continue;
                }
            };
            let b = match op {
                Op::Read => base.read_rps,
                Op::Write => base.write_rps,
            };
            if b > 0.0 {
                let rps = row.summary.as_ref().map_or(0.0, |s| s.rps);
                row.ratio = Some(rps / b);
                row.baseline = Some(format!("file {} {b:.0} req/s, same run", op.name()));
            }
            if rows.is_empty() {
                row.notes.push(format!(
                    "{NODES}-node cluster on {} (node 1 initialised and active, 2 standbys: \
                     {bring_up:.1} s from the first start); the same reads and writes as the \
                     file rows",
                    store.describe()
                ));
                if cluster.init_503 > 0 {
                    row.notes.push(format!(
                        "sys/init answered 503 (\"retry the request\") {} times before it \
                         succeeded",
                        cluster.init_503
                    ));
                }
            }
            if active != 0 {
                row.notes.push(format!(
                    "node {} is the active node now (node 1 lost the lock earlier in the run)",
                    active + 1
                ));
            }
            if role == Role::Standby && op == Op::Read {
                row.notes.push(
                    "sent to a standby, which forwards each request over HTTP to the active \
                     node's api_addr"
                        .into(),
                );
            }
            rows.push(row);
        }
        cluster.stop().await?;
        Ok(rows)
    }

    /// Start node 1, init it (static seal: unsealed at once) and wait for it to be active; then
    /// nodes 2..N, until each answers `sys/health` 429 (standby) and names node 1 as leader.
    async fn start_cluster(&mut self, store: &Store) -> Result<Cluster> {
        let kind = store.kind();
        let dir = self.dir(&format!("ha-{kind}"))?;
        let key = dir.join("seal.key");
        write_seal_key(&key)?;
        let key = key
            .to_str()
            .ok_or_else(|| anyhow!("seal key path is not UTF-8"))?
            .to_string();
        let stanza = store.stanza();
        let hcl = move |addr: SocketAddr| {
            format!(
                "{stanza}\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n\n\
                 api_addr = \"http://{addr}\"\ndisable_mlock = true\n\n\
                 seal \"static\" {{\n  current_key_id = \"k1\"\n  current_key = \"file://{key}\"\n}}\n"
            )
        };

        let (mut first, _) =
            Coffer::start_config(&self.bin, &dir, &format!("ha-{kind}-n1"), &hcl).await?;
        let addr = first.addr;
        let r = async {
            let deadline = Instant::now() + BRING_UP;
            let mut refused = 0;
            let v = loop {
                // a 503 ("retry the request"): the node's writes are fenced while its first
                // attempt at the HA lock is under way
                match api(addr, "PUT", "/v1/sys/init", None, Some(&json!({}))).await {
                    Ok(v) => break v,
                    Err(e) if e.to_string().contains("HTTP 503") && Instant::now() < deadline => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            let root = server::str_at(&v, "/root_token")?.to_string();
            loop {
                let l = leader(addr).await;
                if l.as_ref()
                    .and_then(|l| l.get("is_self"))
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "node 1 is not active {BRING_UP:?} after init; sys/leader: {}",
                        l.map(|v| v.to_string())
                            .unwrap_or_else(|| "no answer".into())
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, anyhow::Error>((root, refused))
        }
        .await;
        let (root, init_503) = first.explain(r)?;
        let leader_addr = format!("http://{addr}");
        let mut nodes = vec![first];
        for n in 2..=NODES {
            let (mut node, _) =
                Coffer::start_config(&self.bin, &dir, &format!("ha-{kind}-n{n}"), &hcl).await?;
            let r = wait_standby(node.addr, &leader_addr).await;
            node.explain(r)
                .with_context(|| format!("node {n} did not become a standby"))?;
            nodes.push(node);
        }
        Ok(Cluster {
            nodes,
            root,
            init_503,
        })
    }

    /// One measured row on `srv`: kv v2 reads of the bench secret with the read-only token, or
    /// writes to a new path per request (also across repeats) with the root token.
    async fn kv_row(
        &self,
        op: Op,
        srv: &mut Coffer,
        token: &str,
        label: &str,
        load: &Load,
    ) -> Result<Row> {
        let addr = srv.addr;
        let make = match op {
            Op::Read => get(addr, READ_PATH, token),
            Op::Write => {
                let body = write_body(&json!({"v": "0123456789abcdef"}));
                let next = Arc::new(AtomicU64::new(0));
                let token = token.to_string();
                let prefix = format!("/v1/secret/data/w-{}/", label.replace(", ", "-"));
                Arc::new(move |_| {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    server::request(
                        addr,
                        "PUT",
                        &format!("{prefix}{n:09}"),
                        Some(&token),
                        body.clone(),
                    )
                }) as MakeReq
            }
        };
        let (s, reps, bytes) = self.measure(Some(&mut *srv), addr, load, make).await?;
        let mut row = measured_row(&format!("{} ({label})", op.name()), load, s, reps, bytes);
        Self::mem_into(srv, &mut row);
        Ok(row)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "kv2-read",
            Op::Write => "kv2-write",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Standby,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
        }
    }
}

/// The bench secret at [`READ_PATH`], the read-only policy and a token holding it (returned).
async fn prepare_kv(addr: SocketAddr, root: &str) -> Result<String> {
    api(
        addr,
        "PUT",
        READ_PATH,
        Some(root),
        Some(&json!({"data": crate::secret_data()})),
    )
    .await?;
    server::put_policy(addr, root, "bench-ro", RO_POLICY).await?;
    let tok = server::create_token(addr, root, &["bench-ro"]).await?;
    api(addr, "GET", READ_PATH, Some(&tok), None).await?;
    Ok(tok)
}

/// Poll until the node at `addr` answers `sys/health` 429 (unsealed standby) and its
/// `sys/leader` names `leader` as the active node.
async fn wait_standby(addr: SocketAddr, leader_addr: &str) -> Result<()> {
    let deadline = Instant::now() + BRING_UP;
    loop {
        let health = call(addr, "GET", "/v1/sys/health", None, None).await;
        let l = leader(addr).await;
        let named = l
            .as_ref()
            .and_then(|l| l.get("leader_address"))
            .and_then(Value::as_str)
            .map(|a| a.trim_end_matches('/'));
        let standby = matches!(&health, Ok((st, _)) if st.as_u16() == 429);
        if standby && named == Some(leader_addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let h = match health {
                Ok((st, body)) => format!("HTTP {st}: {}", snippet(&body)),
                Err(e) => format!("{e:#}"),
            };
            bail!(
                "not a standby of {leader_addr} after {BRING_UP:?}: sys/health {h}; sys/leader {}",
                l.map(|v| v.to_string())
                    .unwrap_or_else(|| "no answer".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A static seal key: 64 hex characters, readable by the owner only.
fn write_seal_key(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, random_hex(32)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/bench-ab"), b"/bench-ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn userinfo_encoding() {
        assert_eq!(pct("postgres"), "postgres");
        assert_eq!(pct("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
