//! The scenarios. Each one starts what it needs (servers are dropped, and so killed, at its
//! end) and appends its rows to `Ctx::rows`; an error becomes an "error: ..." row.

mod aws;
mod azure;
mod baselines;
mod db;
mod dev_server;
mod file_storage;
mod ha;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::load::{self, Load, MakeReq, Summary, Target};
use crate::report::Row;
use crate::server::{self, Coffer};
use crate::{dur, Scenario, Settings};

const ROOT: &str = "bench-root";
const READ_PATH: &str = "/v1/secret/data/bench/app";
const LIST_DIR: &str = "/v1/secret/metadata/list";

const RO_POLICY: &str = r#"path "secret/data/bench/*" {
  capabilities = ["read"]
}

path "secret/metadata/list" {
  capabilities = ["list"]
}

path "secret/metadata/list/*" {
  capabilities = ["list"]
}
"#;

/// Targets (see BENCHMARKS.md).
const READ_RATIO_TARGET: f64 = 0.6;
const WRITE_RATIO_TARGET: f64 = 20.0;
const HALF_PEAK_P99_MS: f64 = 1.0;
const SCALE_TARGET_COUNT: u64 = 1_000_000;
const SCALE_READY_S: f64 = 2.0;
const SCALE_RSS_KIB: u64 = 512 * 1024;

struct Baseline {
    rps: f64,
    connections: usize,
}

struct Fsync {
    rate: f64,
    mean_ms: f64,
}

pub struct Ctx {
    bin: PathBuf,
    s: Settings,
    tmp: PathBuf,
    pub rows: Vec<Row>,
    pub auto_baseline: bool,
    ceiling: Option<Baseline>,
    fsync: Option<Fsync>,
    dirs: usize,
}

fn get(addr: SocketAddr, path: &str, token: &str) -> MakeReq {
    let (path, token) = (path.to_string(), token.to_string());
    Arc::new(move |_| server::request(addr, "GET", &path, Some(&token), Bytes::new()))
}

fn write_body(v: &Value) -> Bytes {
    Bytes::from(json!({ "data": v }).to_string())
}

impl Ctx {
    pub fn new(bin: PathBuf, s: Settings, tmp: PathBuf) -> Ctx {
        Ctx {
            bin,
            s,
            tmp,
            rows: Vec::new(),
            auto_baseline: true,
            ceiling: None,
            fsync: None,
            dirs: 0,
        }
    }

    /// A fresh directory under the run's temp dir (removed with it).
    fn dir(&mut self, name: &str) -> Result<PathBuf> {
        self.dirs += 1;
        let d = self.tmp.join(format!("{:02}-{name}", self.dirs));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }

    fn measured_load(&self) -> Load {
        let requests = self.s.requests;
        // --requests alone: count-bound; with --duration as well, both bounds apply.
        let duration = self.s.duration_bound.then(|| dur(self.s.duration_s));
        let warmup = if requests.is_some() {
            Duration::ZERO
        } else {
            dur(self.s.warmup_s)
        };
        Load {
            connections: self.s.connections,
            duration,
            requests,
            rate: None,
            warmup,
            time_cap: warmup + dur(self.s.duration_s) + Duration::from_secs(600),
        }
    }

    /// A count-bound load for populating data.
    fn fill_load(count: u64, connections: usize) -> Load {
        Load {
            connections,
            duration: None,
            requests: Some(count),
            rate: None,
            warmup: Duration::ZERO,
            time_cap: Duration::from_secs(600)
                + Duration::from_millis(5).saturating_mul(u32::try_from(count).unwrap_or(u32::MAX)),
        }
    }

    /// `repeat` measured runs; medians, each run's throughput, the last body size.
    async fn measure(
        &self,
        srv: Option<&mut Coffer>,
        target: impl Into<Target>,
        load: &Load,
        make: MakeReq,
    ) -> Result<(Summary, Vec<f64>, usize)> {
        let target = target.into();
        let mut sums = Vec::with_capacity(self.s.repeat);
        let mut bytes = 0;
        let mut reconnects = 0;
        let mut srv = srv;
        for _ in 0..self.s.repeat {
            let r = load::run(target.clone(), load, make.clone()).await;
            let r = match srv.as_deref_mut() {
                Some(s) => s.explain(r)?,
                None => r?,
            };
            if let Some(s) = srv.as_deref_mut() {
                s.check_alive()?;
            }
            bytes = r.resp_bytes;
            reconnects += r.reconnects;
            sums.push(Summary::from_run(r));
        }
        if reconnects > 0 {
            eprintln!(
                "bench: note: {reconnects} connections were closed by the server and reopened"
            );
        }
        let rps = sums.iter().map(|s| s.rps).collect();
        Ok((Summary::median(&sums), rps, bytes))
    }

    pub async fn run_scenario(&mut self, sc: Scenario) {
        let name = match sc {
            Scenario::All => return,
            Scenario::Fsync => "fsync",
            Scenario::Ceiling => "ceiling",
            Scenario::Kv2Read => "kv2-read",
            Scenario::Kv2ReadNoaudit => "kv2-read-noaudit",
            Scenario::AwsGet => "aws-get",
            Scenario::AzureGet => "azure-get",
            Scenario::DbCreds => "db-creds",
            Scenario::TokenLookup => "token-lookup",
            Scenario::ApproleLogin => "approle-login",
            Scenario::List => "list",
            Scenario::Kv2Write => "kv2-write",
            Scenario::Ha => "ha",
            Scenario::Scale => "scale",
        };
        println!("bench: running {name} ...");
        let t0 = Instant::now();
        let r = match sc {
            Scenario::All => Ok(()),
            Scenario::Fsync => self.fsync().await,
            Scenario::Ceiling => self.ceiling().await,
            Scenario::Kv2Read => self.kv2_read(true).await,
            Scenario::Kv2ReadNoaudit => self.kv2_read(false).await,
            Scenario::AwsGet => self.aws_get().await,
            Scenario::AzureGet => self.azure_get().await,
            Scenario::DbCreds => self.db_creds().await,
            Scenario::TokenLookup => self.token_lookup().await,
            Scenario::ApproleLogin => self.approle_login().await,
            Scenario::List => self.list().await,
            Scenario::Kv2Write => self.kv2_write().await,
            Scenario::Ha => self.ha().await,
            Scenario::Scale => self.scale().await,
        };
        if let Err(e) = r {
            eprintln!("bench: {name}: error: {e:#}");
            self.rows.push(Row::error(name, &e));
        }
        // Audit logs and data dirs can be large: free them as soon as the scenario is over.
        if let Ok(rd) = std::fs::read_dir(&self.tmp) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        println!("bench: {name} done in {:.1} s", t0.elapsed().as_secs_f64());
    }

    fn push(&mut self, row: Row) {
        if let Some(s) = &row.summary {
            println!(
                "bench:   {:<18} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms{}",
                row.scenario,
                s.rps,
                s.p50_ms,
                s.p99_ms,
                row.ratio
                    .map(|r| format!("  ratio {r:.2}"))
                    .unwrap_or_default()
            );
        }
        self.rows.push(row);
    }

    fn mem_into(srv: &Coffer, row: &mut Row) {
        if let Ok(m) = srv.mem() {
            row.server_peak_rss_kib = Some(m.hwm_kib);
            row.server_rss_kib = Some(m.rss_kib);
        }
    }
}

/// A report row for a measured run: its load, medians, per-run throughput and answer size.
fn measured_row(
    name: &str,
    load: &Load,
    summary: Summary,
    repeats_rps: Vec<f64>,
    resp_bytes: usize,
) -> Row {
    let mut row = Row::new(name);
    row.connections = Some(load.connections);
    row.resp_bytes = Some(resp_bytes);
    row.summary = Some(summary);
    row.repeats_rps = repeats_rps;
    row
}
