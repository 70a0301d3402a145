//! `bench`: coffer's load generator and performance baselines. See BENCHMARKS.md.
//!
//! It starts its own coffer servers on loopback, drives them over N keep-alive HTTP/1.1
//! connections, and reports each scenario as a ratio to a baseline measured in the same run:
//! reads against `ceiling` (a bare hyper server on this machine), durable writes against the
//! machine's own fdatasync rate. It exits non-zero only on errors, never because of speed.

mod ceiling;
mod load;
mod report;
mod scenarios;
mod server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

/// The secret every read scenario reads (and whose answer size the ceiling body copies).
pub fn secret_data() -> Value {
    json!({"username": "app", "password": "s3cr3t-p4ssw0rd-0123456789abcdef"})
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in order
    All,
    /// The machine's write+fdatasync rate and latency (durable-write baseline)
    Fsync,
    /// Bare hyper server with a fixed kv2-sized JSON body (read baseline)
    Ceiling,
    /// kv v2 read with a read-only token, ACL and a file audit device on; then p99 at 50% of peak
    Kv2Read,
    /// kv v2 read without audit
    Kv2ReadNoaudit,
    /// SigV4-signed Secrets Manager GetSecretValue vs a kv v2 read on the same server (audit on)
    AwsGet,
    /// Azure Key Vault GET secret vs a kv v2 read, both over TLS on the same server (audit on)
    AzureGet,
    /// Database secrets engine: GET creds + lease revoke on PostgreSQL vs CREATE/DROP ROLE done
    /// directly (audit on; needs COFFER_TEST_PG_PORT etc. from scripts/databases.sh, else skipped)
    DbCreds,
    /// GET auth/token/lookup-self (audit on)
    TokenLookup,
    /// POST auth/approle/login (audit on)
    ApproleLogin,
    /// LIST over a directory of 10,000 keys (audit on)
    List,
    /// Durable kv v2 writes to distinct paths (file storage), 64 writers
    Kv2Write,
    /// kv v2 reads and writes on 3-node HA clusters (PostgreSQL, etcd; through the active node
    /// and a standby) vs the file backend in the same run (needs COFFER_TEST_PG_PORT etc. and
    /// COFFER_TEST_ETCD_ENDPOINTS from scripts/databases.sh; a backend without them is skipped)
    Ha,
    /// Write N secrets, restart, unseal, first read: time to ready and RSS
    Scale,
}

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Load generator and performance baselines for coffer (loopback only)"
)]
pub struct Cli {
    /// Scenario to run
    #[arg(value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// coffer binary [default: <workspace>/target/release/coffer, else target/debug/coffer]
    #[arg(long)]
    pub coffer: Option<PathBuf>,
    /// Keep-alive connections (concurrent clients)
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured seconds per run [default: 5, --smoke: 1]
    #[arg(long)]
    pub duration: Option<f64>,
    /// Requests per measured run instead of (or as well as) a duration
    #[arg(long)]
    pub requests: Option<u64>,
    /// Warm-up seconds before each measured run (not recorded) [default: 1, --smoke: 0.2]
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Repeat each measured run N times and report the medians
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Secrets written by `scale` [default: 1,000,000 for `scale`, 20,000 in `all`, 2,000 with --smoke]
    #[arg(long)]
    pub count: Option<u64>,
    /// Connections used to write the `scale` secrets
    #[arg(long, default_value_t = 128)]
    pub scale_connections: usize,
    /// Concurrent clients of `db-creds` (and of its direct-to-PostgreSQL baseline)
    #[arg(long, default_value_t = 4)]
    pub db_connections: usize,
    /// Keys in the `list` directory [default: 10,000, --smoke: 1,000]
    #[arg(long)]
    pub list_keys: Option<u64>,
    /// About a second per scenario with small sizes (for the test suite); with no scenario, all
    #[arg(long)]
    pub smoke: bool,
    /// Do not run the baseline (ceiling / fsync) automatically for a single scenario
    #[arg(long)]
    pub no_baseline: bool,
    /// Write the results as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory for servers' data, audit logs and the fsync test file [default: system temp]
    #[arg(long)]
    pub tmpdir: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settings {
    pub connections: usize,
    pub duration_s: f64,
    /// Whether measured runs stop after `duration_s` (false: `--requests` alone).
    pub duration_bound: bool,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub repeat: usize,
    pub scale_count: u64,
    pub scale_connections: usize,
    pub list_keys: u64,
    pub db_connections: usize,
    pub smoke: bool,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn find_coffer(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.coffer {
        if !p.is_file() {
            bail!("--coffer {}: no such file", p.display());
        }
        return Ok(p.clone());
    }
    let root = workspace_root();
    let release = root.join("target/release/coffer");
    let debug = root.join("target/debug/coffer");
    if release.is_file() {
        let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        if let (Some(r), Some(d)) = (mtime(&release), mtime(&debug)) {
            if d > r {
                eprintln!(
                    "bench: note: {} is newer than {}; pass --coffer to choose",
                    debug.display(),
                    release.display()
                );
            }
        }
        return Ok(release);
    }
    if debug.is_file() {
        eprintln!("bench: note: no release build; using the debug coffer (numbers will be low)");
        return Ok(debug);
    }
    bail!(
        "no coffer binary at {} or {}; build it (cargo build --release -p coffer) or pass --coffer",
        release.display(),
        debug.display()
    )
}

async fn run(cli: Cli) -> Result<bool> {
    if cli.connections == 0 || cli.scale_connections == 0 || cli.db_connections == 0 {
        bail!("connection counts must be at least 1");
    }
    if cli.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let coffer = find_coffer(&cli)?;
    let coffer = coffer
        .canonicalize()
        .with_context(|| format!("resolving {}", coffer.display()))?;
    let smoke = cli.smoke;
    let secs = |v: Option<f64>, normal: f64, small: f64| -> Result<f64> {
        let s = v.unwrap_or(if smoke { small } else { normal });
        if !(s.is_finite() && (0.0..=3600.0).contains(&s)) {
            bail!("durations must be between 0 and 3600 seconds");
        }
        Ok(s)
    };
    let settings = Settings {
        connections: cli.connections,
        duration_s: secs(cli.duration, 5.0, 1.0)?,
        duration_bound: cli.duration.is_some() || cli.requests.is_none(),
        requests: cli.requests,
        warmup_s: secs(cli.warmup, 1.0, 0.2)?,
        repeat: cli.repeat,
        scale_count: cli.count.unwrap_or(match (smoke, cli.scenario) {
            (true, _) => 2_000,
            (false, Scenario::Scale) => 1_000_000,
            (false, _) => 20_000,
        }),
        scale_connections: cli.scale_connections,
        list_keys: cli.list_keys.unwrap_or(if smoke { 1_000 } else { 10_000 }),
        db_connections: cli.db_connections,
        smoke,
    };
    if settings.duration_bound && settings.duration_s <= 0.0 {
        bail!("--duration must be positive unless --requests is given");
    }
    let tmp_base = cli.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("coffer-bench-")
        .tempdir_in(&tmp_base)
        .with_context(|| format!("creating a temp dir in {}", tmp_base.display()))?;

    let machine = report::machine_facts(tmp.path());
    println!(
        "bench: coffer {} | {} cpus ({}) | temp {} on {} | {} conns, {} s runs, {} s warm-up, repeat {}",
        coffer.display(),
        machine.nproc,
        machine.cpu_model,
        tmp.path().display(),
        machine.tmp_fs,
        settings.connections,
        settings.duration_s,
        settings.warmup_s,
        settings.repeat,
    );

    let order: Vec<Scenario> = if cli.scenario == Scenario::All {
        vec![
            Scenario::Fsync,
            Scenario::Ceiling,
            Scenario::Kv2Read,
            Scenario::Kv2ReadNoaudit,
            Scenario::AwsGet,
            Scenario::AzureGet,
            Scenario::DbCreds,
            Scenario::TokenLookup,
            Scenario::ApproleLogin,
            Scenario::List,
            Scenario::Kv2Write,
            Scenario::Ha,
            Scenario::Scale,
        ]
    } else {
        vec![cli.scenario]
    };

    let mut ctx = scenarios::Ctx::new(coffer.clone(), settings.clone(), tmp.path().to_path_buf());
    ctx.auto_baseline = !cli.no_baseline;
    for sc in order {
        ctx.run_scenario(sc).await;
    }

    if settings.smoke {
        // a smoke run is too short to say anything about speed: its targets are not judged
        for r in &mut ctx.rows {
            r.target_met = None;
        }
    }
    report::print_table(&ctx.rows);
    let failed = ctx.rows.iter().any(|r| r.status.starts_with("error"));
    if let Some(path) = &cli.json {
        let doc = json!({
            "command": std::env::args().collect::<Vec<_>>(),
            "coffer": coffer,
            "machine": machine,
            "settings": settings,
            "results": ctx.rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    Ok(failed)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: error: building the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            r = run(cli) => r,
            _ = int.recv() => Err(anyhow::anyhow!("interrupted (SIGINT)")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated (SIGTERM)")),
        }
    });
    // Dropping the runtime drops any unfinished scenario, whose guards kill its servers.
    drop(rt);
    match outcome {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => {
            eprintln!("bench: FAILED: at least one scenario had errors (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A `Duration` from seconds, clamped to something sane.
pub fn dur(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.clamp(0.0, 86_400.0))
}
