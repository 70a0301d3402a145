//! `coffer server`: configuration loading and the listeners.

pub(crate) mod config;
mod dev_aws;
mod dev_azure;
mod dev_tls;

use anyhow::{bail, Context};
use coffer_core::router::EngineRegistry;
use coffer_core::{Core, CoreConfig};
use coffer_storage::{Backend, FileBackend, InmemBackend};
pub use config::{load_config, load_migrate_config, ServerConfig, StorageConfig};
pub use dev_aws::DevAwsArgs;
pub use dev_azure::DevAzureArgs;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `coffer server`, filled by the CLI parser.
#[derive(Debug, Clone, Default)]
pub struct ServerArgs {
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    /// The dev HTTPS listener's address (default 127.0.0.1:8443).
    pub dev_tls_listen_address: Option<String>,
    /// Dev mode's AWS access key pair and account id (`-dev-aws-…`).
    pub dev_aws: DevAwsArgs,
    /// Dev mode's Azure AppRole credentials (`-dev-azure-…`).
    pub dev_azure: DevAzureArgs,
    /// Where dev mode also writes its CA certificate.
    pub dev_ca_cert_file: Option<PathBuf>,
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
    r.register("database", coffer_engines::database_factory());
    r.register(
        coffer_engines::auth::access_keys::MOUNT_TYPE,
        coffer_engines::access_keys_factory(),
    );
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

/// This machine's name, for `sys/ha-status`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The dev listeners' default addresses.
pub const DEV_LISTEN_ADDRESS: &str = "127.0.0.1:8200";
pub const DEV_TLS_LISTEN_ADDRESS: &str = "127.0.0.1:8443";

/// Run the server until SIGINT/SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    if args.dev {
        dev_aws::check_args(&args.dev_aws)?;
        dev_azure::check_args(&args.dev_azure)?;
    }
    // flags made moot by a configuration, warned about once logging is set up
    let mut ignored = Vec::new();
    let mut dev_tls_address = None;
    let cfg = if args.dev {
        let mut c = ServerConfig::dev(
            args.dev_listen_address
                .as_deref()
                .unwrap_or(DEV_LISTEN_ADDRESS),
        );
        dev_tls_address = Some(
            args.dev_tls_listen_address
                .clone()
                .unwrap_or_else(|| DEV_TLS_LISTEN_ADDRESS.to_string()),
        );
        // a config file given with -dev adds to the dev defaults (listeners, lease TTLs); its
        // listeners replace both dev listeners (HTTP and HTTPS): no CA is generated then
        if !args.config.is_empty() {
            let extra = load_config(&args.config)?;
            if !extra.listeners.is_empty() {
                c.listeners = extra.listeners;
                dev_tls_address = None;
                if args.dev_listen_address.is_some() {
                    ignored.push("-dev-listen-address");
                }
                if args.dev_tls_listen_address.is_some() {
                    ignored.push("-dev-tls-listen-address");
                }
            }
            c.default_lease_ttl = extra.default_lease_ttl.or(c.default_lease_ttl);
            c.max_lease_ttl = extra.max_lease_ttl.or(c.max_lease_ttl);
            if extra.dialects.aws != Default::default() {
                c.dialects.aws = extra.dialects.aws;
            }
            if extra.dialects.azure != Default::default() {
                c.dialects.azure = extra.dialects.azure;
            }
            if extra.rotation != Default::default() {
                let dev = c.rotation.clone();
                c.rotation = extra.rotation;
                c.rotation.allowed_hosts.extend(dev.allowed_hosts);
                c.rotation
                    .allowed_database_hosts
                    .extend(dev.allowed_database_hosts);
            }
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
    for flag in ignored {
        tracing::warn!(
            "{flag} is ignored: the listeners of the configuration replace the dev listeners"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, cfg, dev_tls_address))
}

/// Open the storage a `storage` block describes.
pub async fn open_backend(storage: &StorageConfig) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match storage {
        StorageConfig::Inmem => Arc::new(InmemBackend::new()),
        StorageConfig::File { path } => Arc::new(
            FileBackend::open(path)
                .with_context(|| format!("opening file storage at {}", path.display()))?,
        ),
        StorageConfig::Postgresql(c) => Arc::new(
            coffer_storage::PostgresBackend::open(c.clone())
                .await
                .context("opening PostgreSQL storage")?,
        ),
        #[cfg(feature = "etcd")]
        StorageConfig::Etcd(c) => Arc::new(
            coffer_storage::EtcdBackend::open(c.clone())
                .await
                .context("opening etcd storage")?,
        ),
        #[cfg(not(feature = "etcd"))]
        StorageConfig::Etcd(_) => bail!(
            "this coffer binary was built without etcd support: build it with `cargo build --release --features etcd` (needs protoc, Debian package protobuf-compiler)"
        ),
    })
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

/// What a dev listener is called in a bind error, and the flag that moves it.
fn dev_listener_label(tls: bool) -> &'static str {
    if tls {
        "dev HTTPS listener (move it with -dev-tls-listen-address)"
    } else {
        "dev HTTP listener (move it with -dev-listen-address)"
    }
}

/// Quote `s` for a POSIX shell (single quotes; a single quote inside becomes `'\''`).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The address a local client uses for a listener: loopback for a wildcard address (0.0.0.0 is
/// not in the dev certificate).
fn client_addr(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The dev banner's HTTPS part: the CA's path and the exports for HTTPS clients.
fn dev_tls_banner(addr: std::net::SocketAddr, ca_path: &str) -> String {
    let ca = sh_quote(ca_path);
    let mut out = String::new();
    out.push_str("HTTPS is served too, with a certificate signed by a CA generated for this run\n");
    out.push_str(
        "(its directory is removed when the server stops; the CA's key was never written).\n",
    );
    out.push_str(&format!("CA certificate: {ca_path}\n"));
    out.push_str("For HTTPS, instead of the line above:\n\n");
    out.push_str(&format!(
        "    $ export VAULT_ADDR={}\n",
        sh_quote(&format!("https://{}", client_addr(addr)))
    ));
    for var in [
        "VAULT_CACERT",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
    ] {
        out.push_str(&format!("    $ export {var}={ca}\n"));
    }
    out
}

async fn serve(
    args: ServerArgs,
    mut cfg: ServerConfig,
    dev_tls_address: Option<String>,
) -> anyhow::Result<()> {
    // take over the signals before anything can be served: a SIGHUP's default action would
    // otherwise end the process
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let backend = open_backend(&cfg.storage).await?;
    let mut core_cfg = CoreConfig::default();
    if let Some(t) = cfg.default_lease_ttl {
        core_cfg.default_lease_ttl = t;
    }
    if let Some(t) = cfg.max_lease_ttl {
        core_cfg.max_lease_ttl = t;
    }
    core_cfg.static_seal = cfg.static_seal.clone();
    let core = Core::new(backend, core_cfg, engine_registry());
    let ha_enabled = cfg.storage.ha_enabled();

    // dev mode without configured listeners: the HTTP listener (first), then HTTPS with a CA
    // generated now
    let dev_tls = match &dev_tls_address {
        Some(addr) => {
            let tls = dev_tls::DevTls::generate(addr)?;
            if let Some(out) = &args.dev_ca_cert_file {
                std::fs::copy(tls.ca_cert(), out).with_context(|| {
                    format!("writing the dev CA certificate to {}", out.display())
                })?;
            }
            cfg.listeners
                .push(coffer_api::ListenerConfig::new(addr, Some(tls.tls_files())));
            Some(tls)
        }
        None => None,
    };
    let dev_tls_index = dev_tls.as_ref().map(|_| cfg.listeners.len() - 1);
    fit_connection_caps(&mut cfg.listeners);
    let mut bound = Vec::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        let b = coffer_api::bind(l).await;
        let b = if Some(i) == dev_tls_index {
            b.context(dev_listener_label(true))?
        } else if i == 0 && dev_tls_index.is_some() {
            b.context(dev_listener_label(false))?
        } else {
            b?
        };
        bound.push(b);
    }

    if ha_enabled
        && cfg.api_addr.is_none()
        && bound
            .first()
            .is_some_and(|b| b.local_addr.ip().is_unspecified())
    {
        bail!("HA storage needs api_addr (the address other nodes reach this one at) when the first listener listens on every address");
    }
    if ha_enabled {
        let api_addr =
            cfg.api_addr
                .clone()
                .unwrap_or_else(|| match (bound.first(), cfg.listeners.first()) {
                    (Some(b), Some(l)) => format!(
                        "{}://{}",
                        if l.tls.is_some() { "https" } else { "http" },
                        client_addr(b.local_addr)
                    ),
                    _ => String::new(),
                });
        // standbys forward to an https:// active node trusting the listeners' certificates
        let mut pems = Vec::new();
        for l in &cfg.listeners {
            if let Some(t) = &l.tls {
                if let Ok(pem) = std::fs::read(&t.cert_file) {
                    pems.push(pem);
                }
            }
        }
        coffer_api::forward::trust_for_forwarding(pems);
        let node = coffer_storage::NodeInfo {
            id: uuid::Uuid::new_v4().to_string(),
            hostname: hostname(),
            api_addr: api_addr.clone(),
            cluster_addr: cfg.cluster_addr.clone().unwrap_or_default(),
            version: coffer_core::core::VERSION.to_string(),
            auth: String::new(),
        };
        core.enable_ha(node);
        println!(
            "==> HA enabled on {} storage: this node ({api_addr}) is a standby until it holds the lock",
            cfg.storage.kind()
        );
    }
    if args.dev {
        let (root, key) = core
            .dev_setup(args.dev_root_token_id.clone())
            .await
            .map_err(|e| anyhow::anyhow!("dev setup failed: {e}"))?;
        let aws = dev_aws::setup(&core, &root, &args.dev_aws).await?;
        let azure_mount = cfg.dialects.azure.approle_mount.clone();
        let azure = dev_azure::setup(&core, &root, &args.dev_azure, &azure_mount).await?;
        let addr = bound
            .first()
            .map(|b| b.local_addr.to_string())
            .unwrap_or_default();
        println!("==> Coffer server started in dev mode (in-memory storage, unsealed).");
        println!();
        println!("    $ export VAULT_ADDR='http://{addr}'");
        println!();
        if let (Some(tls), Some(i)) = (&dev_tls, dev_tls_index) {
            // generate() made sure the path is UTF-8
            let ca = tls.ca_cert().to_str().unwrap_or_default();
            println!("{}", dev_tls_banner(bound[i].local_addr, ca));
        }
        println!("Unseal Key: {key}");
        println!("Root Token: {root}");
        println!();
        println!(
            "AWS access key (auth/{}/keys/{}, policy {}: everything under secret/):",
            dev_aws::DEV_AWS_MOUNT,
            dev_aws::DEV_AWS_KEY_NAME,
            dev_aws::DEV_AWS_POLICY
        );
        println!();
        println!(
            "{}",
            dev_aws::env_line("AWS_ACCESS_KEY_ID", &aws.access_key_id)
        );
        println!(
            "{}",
            dev_aws::env_line("AWS_SECRET_ACCESS_KEY", &aws.secret_access_key)
        );
        println!();
        if let (Some(_), Some(i)) = (&dev_tls, dev_tls_index) {
            let base = format!("https://{}", client_addr(bound[i].local_addr));
            println!("{}", dev_azure::banner(&base, &azure_mount, &azure));
        }
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
    for (b, l) in bound.iter().zip(&cfg.listeners) {
        let scheme = if l.tls.is_some() { "https" } else { "http" };
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

    // hooks reach Coffer at the configured endpoint, else at the first listener
    let mut rotation = cfg.rotation.clone();
    if rotation.endpoint == crate::rotation::RotationSettings::default().endpoint {
        if let (Some(b), Some(l)) = (bound.first(), cfg.listeners.first()) {
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            rotation.endpoint = format!("{scheme}://{}", client_addr(b.local_addr));
        }
    }
    crate::rotation::spawn(core.clone(), Arc::new(rotation));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        let app = coffer_api::router_with(core.clone(), cfg.dialects.clone());
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
    if let Some(tls) = dev_tls {
        let dir = tls.ca_cert().parent().map(|d| d.display().to_string());
        if let Err(e) = tls.close() {
            tracing::warn!(error = %e, dir = ?dir, "could not remove the dev TLS directory");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_quote_for_the_shell() {
        assert_eq!(sh_quote("/tmp/a b/ca.pem"), "'/tmp/a b/ca.pem'");
        assert_eq!(sh_quote("/tmp/it's/ca.pem"), r"'/tmp/it'\''s/ca.pem'");
        let banner = dev_tls_banner("0.0.0.0:8443".parse().unwrap(), "/tmp/x/ca.pem");
        assert!(
            banner.contains("CA certificate: /tmp/x/ca.pem\n"),
            "{banner}"
        );
        // a wildcard listener is reached on loopback (the address the certificate names)
        assert!(
            banner.contains("    $ export VAULT_ADDR='https://127.0.0.1:8443'\n"),
            "{banner}"
        );
        for var in [
            "VAULT_CACERT",
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
            "NODE_EXTRA_CA_CERTS",
        ] {
            assert!(
                banner.contains(&format!("    $ export {var}='/tmp/x/ca.pem'\n")),
                "{banner}"
            );
        }
        assert_eq!(
            client_addr("[::]:8443".parse().unwrap()).to_string(),
            "[::1]:8443"
        );
        assert_eq!(
            client_addr("10.0.0.1:8443".parse().unwrap()).to_string(),
            "10.0.0.1:8443"
        );
    }
}
