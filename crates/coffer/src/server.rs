//! `coffer server`: configuration loading and the listeners.

mod config;

use anyhow::{bail, Context};
use coffer_core::router::EngineRegistry;
use coffer_core::{Core, CoreConfig};
use coffer_storage::{Backend, FileBackend, InmemBackend};
pub use config::{load_config, ServerConfig, StorageConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `coffer server`, filled by the CLI parser.
#[derive(Debug, Clone, Default)]
pub struct ServerArgs {
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    /// `-config` may be given several times (files or directories), as in Vault.
    pub config: Vec<PathBuf>,
    pub log_level: Option<String>,
}

/// The engines this binary ships, by mount type.
pub fn engine_registry() -> EngineRegistry {
    let mut r = EngineRegistry::new();
    r.register("kv", coffer_engines::kv_factory());
    r.register("kv-v2", coffer_engines::kv_factory());
    r.register("approle", coffer_engines::approle_factory());
    r.register("userpass", coffer_engines::userpass_factory());
    r
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("warn,coffer={level},coffer_core={level},coffer_api={level},coffer_storage={level},coffer_engines={level}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Run the server until SIGINT/SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = if args.dev {
        let mut c = ServerConfig::dev(
            args.dev_listen_address
                .as_deref()
                .unwrap_or("127.0.0.1:8200"),
        );
        // a config file given with -dev adds to the dev defaults (listeners, lease TTLs)
        if !args.config.is_empty() {
            let extra = load_config(&args.config)?;
            if !extra.listeners.is_empty() {
                c.listeners = extra.listeners;
            }
            c.default_lease_ttl = extra.default_lease_ttl.or(c.default_lease_ttl);
            c.max_lease_ttl = extra.max_lease_ttl.or(c.max_lease_ttl);
        }
        c
    } else {
        if args.config.is_empty() {
            bail!("a configuration file must be given with -config (or use -dev)");
        }
        load_config(&args.config)?
    };
    let level = args
        .log_level
        .clone()
        .or_else(|| cfg.log_level.clone())
        .unwrap_or_else(|| "info".to_string());
    init_logging(&level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, cfg))
}

/// File descriptors kept for everything but client connections (storage, audit devices, the
/// runtime, outgoing connections).
const FD_RESERVE: u64 = 64;

/// Raise the soft open-file limit to the hard one (as every Go program, Vault included, does at
/// start) and lower listeners' `max_connections` that the limit could not honour, so that a full
/// listener waits for a free slot instead of failing `accept` with "Too many open files".
fn fit_connection_caps(listeners: &mut [coffer_api::ListenerConfig]) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    let per_listener = lim.rlim_cur.saturating_sub(FD_RESERVE) / listeners.len().max(1) as u64;
    let cap = usize::try_from(per_listener).unwrap_or(usize::MAX).max(1);
    for l in listeners {
        if l.max_connections > cap {
            tracing::warn!(
                address = %l.address,
                max_connections = l.max_connections,
                open_file_limit = lim.rlim_cur,
                "max_connections lowered to {cap} to fit the open-file limit"
            );
            l.max_connections = cap;
        }
    }
}

async fn serve(args: ServerArgs, mut cfg: ServerConfig) -> anyhow::Result<()> {
    // take over the signals before anything can be served: a SIGHUP's default action would
    // otherwise end the process
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let backend: Arc<dyn Backend> = match &cfg.storage {
        StorageConfig::Inmem => Arc::new(InmemBackend::new()),
        StorageConfig::File { path } => Arc::new(
            FileBackend::open(path)
                .with_context(|| format!("opening file storage at {}", path.display()))?,
        ),
    };
    let mut core_cfg = CoreConfig::default();
    if let Some(t) = cfg.default_lease_ttl {
        core_cfg.default_lease_ttl = t;
    }
    if let Some(t) = cfg.max_lease_ttl {
        core_cfg.max_lease_ttl = t;
    }
    core_cfg.static_seal = cfg.static_seal.clone();
    let core = Core::new(backend, core_cfg, engine_registry());

    fit_connection_caps(&mut cfg.listeners);
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        bound.push(coffer_api::bind(l).await?);
    }

    if args.dev {
        let (root, key) = core
            .dev_setup(args.dev_root_token_id.clone())
            .await
            .map_err(|e| anyhow::anyhow!("dev setup failed: {e}"))?;
        let addr = bound
            .first()
            .map(|b| b.local_addr.to_string())
            .unwrap_or_default();
        println!("==> Coffer server started in dev mode (in-memory storage, unsealed).");
        println!();
        println!("    $ export VAULT_ADDR='http://{addr}'");
        println!();
        println!("Unseal Key: {key}");
        println!("Root Token: {root}");
        println!();
        println!("Development mode should NOT be used in production installations!");
    } else if core.initialized().await.unwrap_or(false) {
        match core.auto_unseal().await {
            Ok(true) => tracing::info!("unsealed with the static seal key"),
            Ok(false) => tracing::info!("server is sealed; unseal with `coffer operator unseal`"),
            Err(e) => bail!("auto-unseal failed: {e}"),
        }
    } else {
        tracing::info!("server is not initialized; run `coffer operator init`");
    }
    for b in &bound {
        let scheme = if cfg.listeners.iter().any(|l| l.tls.is_some()) {
            "https"
        } else {
            "http"
        };
        println!(
            "==> Coffer server listening on {scheme}://{} (version {})",
            b.local_addr,
            coffer_core::core::VERSION
        );
    }
    if let Some(api) = &cfg.api_addr {
        println!("==> API address: {api}");
    }
    if cfg.ui {
        tracing::warn!("ui = true: Coffer has no web UI yet; the setting is accepted and ignored");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        let app = coffer_api::router(core.clone());
        tasks.push(tokio::spawn(coffer_api::serve(b, app, rx.clone())));
    }
    let hup_core = core.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Ok(active) = hup_core.active() {
                match active.audit.reopen().await {
                    Ok(()) => tracing::info!("SIGHUP: audit files reopened"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: audit reopen failed"),
                }
            }
        }
    });
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = core.seal().await;
    Ok(())
}
