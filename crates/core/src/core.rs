//! The core: a typed state machine (Sealed → Active) owning every subsystem that needs keys.
//! While sealed there is no `Active`: no router, no token store, no policies; nothing can run.

use crate::barrier::{Barrier, SecretKey, View};
use crate::error::{CoreError, ErrorCode, Result};
use crate::policy_store::PolicyStore;
use crate::router::{EngineRegistry, Mount, MountEntry, Router};
use crate::seal::{
    InitParams, InitResult, SealConfig, SealStatus, StaticSeal, UnsealProgress, SEAL_CONFIG_PATH,
    SEAL_WRAPPED_ROOT_PATH,
};
use crate::token::{NewToken, TokenStore};
use crate::util::validate_path;
use arc_swap::ArcSwapOption;
use base64::Engine as _;
use coffer_storage::Backend;
use std::sync::Arc;
use zeroize::Zeroizing;

pub use crate::pipeline::{canonical_path, AclQuery};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const MOUNTS_PATH: &str = "core/mounts";

/// Server-wide settings from the configuration file.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Seconds.
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    pub static_seal: Option<StaticSeal>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            static_seal: None,
        }
    }
}

/// Everything that exists only while unsealed.
pub struct Active {
    pub router: Arc<Router>,
    pub audit: crate::audit::Broker,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub leases: Arc<crate::lease::Leases>,
    pub system: View,
    /// Dropping `Active` drops this sender, which stops the expiration task.
    _expiration_stop: tokio::sync::watch::Sender<bool>,
}

impl Active {
    /// Revoke a lease (see [`crate::lease::revoke`]).
    pub async fn revoke_lease(&self, id: &str) -> Result<()> {
        self.revoke_lease_in(id, None).await
    }

    pub(crate) async fn revoke_lease_in(
        &self,
        id: &str,
        gone: Option<&crate::router::Mount>,
    ) -> Result<()> {
        crate::lease::revoke(&self.router, &self.tokens, &self.leases, id, gone).await
    }
}

pub struct Core {
    barrier: Arc<Barrier>,
    config: CoreConfig,
    registry: EngineRegistry,
    /// Serializes init/unseal/seal transitions and holds the unseal progress.
    transition: tokio::sync::Mutex<UnsealProgress>,
    active: ArcSwapOption<Active>,
    /// Set when the storage backend has HA enabled (see [`crate::ha`]).
    ha: std::sync::OnceLock<Arc<crate::ha::HaNode>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Core {
    pub fn new(
        backend: Arc<dyn Backend>,
        config: CoreConfig,
        registry: EngineRegistry,
    ) -> Arc<Core> {
        Arc::new(Core {
            barrier: Arc::new(Barrier::new(backend)),
            config,
            registry,
            transition: tokio::sync::Mutex::new(UnsealProgress::default()),
            active: ArcSwapOption::empty(),
            ha: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// The lock that serializes seal transitions, with the progress it guards (unseal shares,
    /// rekey and root generation); for the seal administration in `rekey.rs`.
    pub(crate) fn transition(&self) -> &tokio::sync::Mutex<UnsealProgress> {
        &self.transition
    }

    pub fn storage_kind(&self) -> &'static str {
        self.barrier.raw().kind()
    }

    /// Sealed: no keys in memory. (An HA standby is unsealed without being active.)
    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
    }

    /// This node's HA state, when the storage backend has HA enabled.
    pub fn ha(&self) -> Option<&Arc<crate::ha::HaNode>> {
        self.ha.get()
    }

    pub(crate) fn set_ha(&self, ha: Arc<crate::ha::HaNode>) -> std::result::Result<(), ()> {
        self.ha.set(ha).map_err(|_| ())
    }

    /// HA: become the active node (the lock is held): load the keyring and every subsystem
    /// fresh from storage.
    pub(crate) async fn activate(&self) -> Result<()> {
        let _guard = self.transition.lock().await;
        if self.active.load().is_some() {
            return Ok(());
        }
        if let Err(e) = self.barrier.reload().await {
            // the root key changed (a rekey on the active node): these keys open nothing now
            self.barrier.seal();
            tracing::warn!(error = %e, "HA: the stored keyring no longer opens with this node's root key (rekeyed?); sealed: unseal this node again");
            return Err(e);
        }
        let active = self.build_active(false).await?;
        self.active.store(Some(active));
        Ok(())
    }

    /// HA: stop being the active node (the barrier stays unsealed). Whether it was active.
    pub(crate) async fn deactivate_if_active(&self) -> bool {
        let _guard = self.transition.lock().await;
        match self.active.swap(None) {
            Some(active) => {
                active.tokens.clear_cache();
                if let Err(e) = active.audit.shutdown().await {
                    tracing::debug!(error = %e, "could not save audit chain positions");
                }
                true
            }
            None => false,
        }
    }

    /// The unsealed subsystems, or `Sealed`.
    pub fn active(&self) -> Result<Arc<Active>> {
        self.active.load_full().ok_or_else(CoreError::sealed)
    }

    pub(crate) async fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self.barrier.raw().get(SEAL_CONFIG_PATH).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|_| CoreError::internal("seal configuration is corrupted")),
        }
    }

    pub async fn initialized(&self) -> Result<bool> {
        Ok(self.seal_config().await?.is_some())
    }

    pub async fn seal_status(&self) -> Result<SealStatus> {
        let cfg = self.seal_config().await?;
        let progress = self.transition.lock().await;
        let sealed = self.is_sealed();
        let (kind, t, n) = match &cfg {
            Some(c) => (c.kind.clone(), c.secret_threshold, c.secret_shares),
            None => (
                if self.config.static_seal.is_some() {
                    "static"
                } else {
                    "shamir"
                }
                .to_string(),
                0,
                0,
            ),
        };
        Ok(SealStatus {
            recovery_seal: kind != "shamir",
            kind,
            initialized: cfg.is_some(),
            sealed,
            t,
            n,
            progress: if sealed { progress.shares.len() } else { 0 },
            nonce: if sealed {
                progress.nonce.clone()
            } else {
                String::new()
            },
            version: VERSION.to_string(),
            build_date: String::new(),
            migration: false,
            storage_type: self.storage_kind().to_string(),
            cluster_name: (!sealed).then(|| "coffer-cluster".to_string()),
            cluster_id: if sealed {
                None
            } else {
                cfg.map(|c| c.cluster_id)
            },
        })
    }

    /// `sys/init`: create the root key, split it (or wrap it with the static seal key), write the
    /// keyring, create the root token, and leave the server sealed (Shamir) or unsealed (static).
    pub async fn init(&self, params: InitParams) -> Result<InitResult> {
        let mut progress = self.transition.lock().await;
        if self.initialized().await? {
            return Err(CoreError::new(
                ErrorCode::AlreadyInitialized,
                "the server is already initialized",
            ));
        }
        // HA: initialize holding the cluster's lock, so two nodes initializing at once cannot
        // both write a keyring (the second is refused; the first stays the holder and becomes
        // the active node)
        let mut init_lock_since = None;
        if let Some(ha) = self.ha() {
            init_lock_since = Some(std::time::Instant::now());
            if !ha.take_lock_for_init().await? {
                return Err(CoreError::new(
                    ErrorCode::InvalidRequest,
                    "another node of the cluster holds its lock (it is initializing or active); initialize through that node",
                ));
            }
            if self.initialized().await? {
                return Err(CoreError::new(
                    ErrorCode::AlreadyInitialized,
                    "the server is already initialized",
                ));
            }
        }
        let root = SecretKey::generate()?;
        let static_seal = self.config.static_seal.clone();
        let cfg = match &static_seal {
            Some(_) => SealConfig {
                kind: "static".into(),
                secret_shares: 1,
                secret_threshold: 1,
                cluster_id: uuid::Uuid::new_v4().to_string(),
            },
            None => {
                if params.secret_shares == 0 || params.secret_threshold == 0 {
                    return Err(CoreError::invalid(
                        "secret_shares and secret_threshold must be set and greater than zero",
                    ));
                }
                if params.secret_threshold > params.secret_shares {
                    return Err(CoreError::invalid(
                        "secret_threshold cannot be larger than secret_shares",
                    ));
                }
                if params.secret_shares > 255 {
                    return Err(CoreError::invalid(
                        "secret_shares cannot be larger than 255",
                    ));
                }
                if params.secret_shares > 1 && params.secret_threshold == 1 {
                    return Err(CoreError::invalid(
                        "threshold must be greater than one for multiple shares",
                    ));
                }
                SealConfig {
                    kind: "shamir".into(),
                    secret_shares: params.secret_shares,
                    secret_threshold: params.secret_threshold,
                    cluster_id: uuid::Uuid::new_v4().to_string(),
                }
            }
        };
        let shares = match &static_seal {
            Some(_) => Vec::new(),
            None => crate::shamir::split(root.as_bytes(), cfg.secret_shares, cfg.secret_threshold)?,
        };
        if self.barrier.initialized().await? {
            // a keyring without a seal config is what an init that failed midway leaves behind:
            // nothing under it was ever usable, so start from an empty store
            tracing::warn!("removing the remains of an unfinished initialization");
            self.wipe_storage().await?;
        }
        let work = self.init_with(&root, &cfg, static_seal.as_ref(), shares, &params);
        let result = match (self.ha(), init_lock_since) {
            (Some(ha), Some(since)) => ha.hold_during(since, work).await.0,
            _ => work.await,
        };
        if result.is_err() {
            // leave no keys in memory after a failed init
            self.barrier.seal();
        }
        let (result, active) = result?;
        progress.reset();
        tracing::info!(
            seal = %cfg.kind,
            shares = cfg.secret_shares,
            threshold = cfg.secret_threshold,
            "initialized"
        );
        if let Some(active) = active {
            self.active.store(Some(active));
            tracing::info!("unsealed");
        }
        Ok(result)
    }

    /// Delete every key of the physical store (only for an unfinished initialization).
    async fn wipe_storage(&self) -> Result<()> {
        let raw = self.barrier.raw();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            for entry in raw.list(&prefix).await? {
                let full = format!("{prefix}{entry}");
                if entry.ends_with('/') {
                    stack.push(full);
                } else {
                    raw.delete(&full).await?;
                }
            }
        }
        Ok(())
    }

    async fn init_with(
        &self,
        root: &SecretKey,
        cfg: &SealConfig,
        static_seal: Option<&StaticSeal>,
        shares: Vec<Zeroizing<Vec<u8>>>,
        params: &InitParams,
    ) -> Result<(InitResult, Option<Arc<Active>>)> {
        self.barrier.initialize(root).await?;
        if let Some(s) = static_seal {
            let wrapped = crate::barrier::encrypt_standalone(
                &s.key,
                SEAL_WRAPPED_ROOT_PATH.as_bytes(),
                root.as_bytes(),
            )?;
            self.barrier
                .raw()
                .put(SEAL_WRAPPED_ROOT_PATH, wrapped)
                .await?;
        }
        // bring the subsystems up once to create the root token and default mounts
        let active = self.build_active(true).await?;
        let (root_token, _) = active
            .tokens
            .create(NewToken {
                id: params.root_token_id.clone(),
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                ..Default::default()
            })
            .await?;
        let cfg_bytes = serde_json::to_vec(cfg).map_err(|e| CoreError::internal(e.to_string()))?;
        // the seal config is written last: a crash before this leaves the server uninitialized
        self.barrier.raw().put(SEAL_CONFIG_PATH, cfg_bytes).await?;
        let active = if static_seal.is_some() && self.ha().is_none() {
            Some(active)
        } else if static_seal.is_some() {
            // HA: unsealed; the runner activates this node once it holds the lock
            drop(active);
            None
        } else {
            drop(active);
            self.barrier.seal();
            None
        };
        let result = InitResult {
            keys: shares.iter().map(|s| hex::encode(s.as_slice())).collect(),
            keys_base64: shares.iter().map(|s| b64(s)).collect(),
            recovery_keys: vec![],
            recovery_keys_base64: vec![],
            root_token,
        };
        Ok((result, active))
    }

    /// `sys/unseal`: add one key share; unseal when the threshold is reached.
    pub async fn unseal(&self, key: Option<&str>, reset: bool) -> Result<SealStatus> {
        {
            let mut progress = self.transition.lock().await;
            if reset {
                progress.reset();
            }
            let cfg = self.seal_config().await?.ok_or_else(|| {
                CoreError::new(ErrorCode::NotInitialized, "the server is not initialized")
            })?;
            if let (false, Some(key)) = (reset, key) {
                if !self.is_sealed() {
                    drop(progress);
                    return self.seal_status().await;
                }
                let share = decode_key(key)?;
                if progress.shares.iter().any(|s| {
                    bool::from(subtle::ConstantTimeEq::ct_eq(
                        s.as_slice(),
                        share.as_slice(),
                    ))
                }) {
                    // Vault ignores a repeated share
                } else {
                    if progress.shares.is_empty() {
                        progress.nonce = uuid::Uuid::new_v4().to_string();
                    }
                    progress.shares.push(share);
                }
                if progress.shares.len() >= cfg.secret_threshold {
                    let combined = crate::shamir::combine(&progress.shares, cfg.secret_shares);
                    progress.reset();
                    let root = SecretKey::from_slice(&combined?)
                        .map_err(|_| CoreError::invalid("unseal failed: invalid key"))?;
                    self.finish_unseal(&root).await?;
                }
            } else if !reset {
                return Err(CoreError::invalid(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                ));
            }
        }
        self.seal_status().await
    }

    async fn finish_unseal(&self, root: &SecretKey) -> Result<()> {
        self.barrier.unseal(root).await?;
        if self.ha().is_some() {
            // a standby until the HA runner takes the lock and activates this node
            tracing::info!("unsealed (HA: standby until this node holds the lock)");
            return Ok(());
        }
        match self.build_active(false).await {
            Ok(active) => {
                self.active.store(Some(active));
                tracing::info!("unsealed");
                Ok(())
            }
            Err(e) => {
                self.barrier.seal();
                Err(e)
            }
        }
    }

    /// Auto-unseal with the configured static key, if any and initialized.
    pub async fn auto_unseal(&self) -> Result<bool> {
        let Some(s) = self.config.static_seal.clone() else {
            return Ok(false);
        };
        let _guard = self.transition.lock().await;
        if !self.is_sealed() {
            return Ok(true);
        }
        let Some(wrapped) = self.barrier.raw().get(SEAL_WRAPPED_ROOT_PATH).await? else {
            return Ok(false);
        };
        let root_bytes =
            crate::barrier::decrypt_standalone(&s.key, SEAL_WRAPPED_ROOT_PATH.as_bytes(), &wrapped)
                .map_err(|_| {
                    CoreError::internal("static seal key does not match the stored root key")
                })?;
        let root = SecretKey::from_slice(&root_bytes)?;
        self.finish_unseal(&root).await?;
        Ok(true)
    }

    /// `sys/rotate`: add a key term. Serialized with init/unseal/seal, so two rotations cannot
    /// race and a seal cannot be undone by a rotation finishing after it.
    pub async fn rotate(&self) -> Result<crate::barrier::KeyStatus> {
        let _guard = self.transition.lock().await;
        self.active()?;
        self.barrier.rotate().await
    }

    /// Seal now: drop every subsystem and wipe the keys.
    pub async fn seal(&self) -> Result<()> {
        let mut progress = self.transition.lock().await;
        progress.reset();
        if let Some(active) = self.active.swap(None) {
            active.tokens.clear_cache();
            if let Err(e) = active.audit.shutdown().await {
                tracing::warn!(error = %e, "could not save audit chain positions");
            }
            if let Some(ha) = self.ha() {
                ha.release().await;
            }
            tracing::info!("sealed");
        }
        self.barrier.seal();
        Ok(())
    }

    /// Build the unsealed subsystems from storage; on first start create the default mounts.
    async fn build_active(&self, first: bool) -> Result<Arc<Active>> {
        let system = View::new(self.barrier.clone(), "sys/");
        let leases = Arc::new(crate::lease::Leases::new(system.sub("expire/id/")));
        let tokens = Arc::new(TokenStore::new(system.clone(), leases.clone()));
        let policies = Arc::new(PolicyStore::new(system.sub("policy/")));
        policies.ensure_default().await?;
        let mut entries: Vec<MountEntry> = match self.barrier.get(MOUNTS_PATH).await? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|_| CoreError::internal("mount table is corrupted"))?,
            None => Vec::new(),
        };
        if first || entries.is_empty() {
            entries = default_mounts()?;
            self.persist_mounts_raw(&entries).await?;
        }
        let audit = crate::audit::Broker::load(system.clone()).await?;
        let outstanding = leases.load().await?;
        tracing::debug!(leases = outstanding, "leases loaded");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let router = Arc::new(Router::new());
        let revoker_tokens = tokens.clone();
        let revoker_leases = leases.clone();
        let revoker_router = router.clone();
        tokio::spawn(crate::lease::run_expiration(
            leases.clone(),
            stop_rx,
            move |lease| {
                let tokens = revoker_tokens.clone();
                let leases = revoker_leases.clone();
                let router = revoker_router.clone();
                async move {
                    crate::lease::revoke(&router, &tokens, &leases, &lease.lease_id, None).await?;
                    tracing::debug!(lease = %lease.lease_id, "lease expired and was revoked");
                    Ok(())
                }
            },
        ));
        let active = Arc::new(Active {
            router,
            audit,
            tokens,
            policies,
            leases,
            system,
            _expiration_stop: stop_tx,
        });
        let mut mounts = Vec::new();
        for e in entries {
            mounts.push(self.instantiate(&active, e)?);
        }
        active.router.set(mounts);
        Ok(active)
    }

    /// Build the live mount for an entry (the token auth method is built in).
    pub(crate) fn instantiate(&self, active: &Arc<Active>, entry: MountEntry) -> Result<Mount> {
        let view = View::new(self.barrier.clone(), entry.storage_prefix());
        let engine: Arc<dyn crate::router::Engine> = match entry.kind.as_str() {
            "token" => Arc::new(crate::auth_token::TokenEngine::new(
                active.tokens.clone(),
                self.config.default_lease_ttl,
                self.config.max_lease_ttl,
                Arc::downgrade(&active.router),
            )),
            "cubbyhole" => Arc::new(crate::cubbyhole::CubbyholeEngine::new(
                active.tokens.clone(),
            )),
            _ => self.registry.build(&entry)?,
        };
        Ok(Mount {
            entry: Arc::new(entry),
            engine,
            view,
        })
    }

    async fn persist_mounts_raw(&self, entries: &[MountEntry]) -> Result<()> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(entries).map_err(|e| CoreError::internal(e.to_string()))?,
        );
        self.barrier.put(MOUNTS_PATH, &bytes).await
    }

    pub(crate) async fn persist_mounts(&self, active: &Active) -> Result<()> {
        let entries: Vec<MountEntry> = active
            .router
            .mounts()
            .iter()
            .map(|m| (*m.entry).clone())
            .collect();
        self.persist_mounts_raw(&entries).await
    }

    /// Mount a new engine at `entry.path`.
    pub async fn mount(&self, mut entry: MountEntry) -> Result<()> {
        let active = self.active()?;
        let _guard = self.transition.lock().await;
        if !entry.path.ends_with('/') {
            entry.path.push('/');
        }
        validate_path(&entry.path)?;
        let reserved = ["sys/", "auth/token/", "cubbyhole/", "identity/", "audit/"];
        if reserved
            .iter()
            .any(|r| entry.path.starts_with(r) || r.starts_with(&entry.path))
            && entry.kind != "token"
        {
            return Err(CoreError::invalid(format!(
                "cannot mount at reserved path \"{}\"",
                entry.path
            )));
        }
        for m in active.router.mounts() {
            if entry.path.starts_with(m.entry.path.as_str())
                || m.entry.path.starts_with(&entry.path)
            {
                return Err(CoreError::invalid(format!(
                    "path is already in use at {}",
                    m.entry.path
                )));
            }
        }
        if !self.registry.knows(&entry.kind) {
            return Err(CoreError::invalid(format!(
                "plugin not found in the catalog: {}",
                entry.kind
            )));
        }
        let new_path = entry.path.clone();
        let mount = self.instantiate(&active, entry)?;
        let mut all = active.router.mounts();
        all.push(mount);
        active.router.set(all);
        if let Err(e) = self.persist_mounts(&active).await {
            let kept = active
                .router
                .mounts()
                .into_iter()
                .filter(|m| m.entry.path != new_path)
                .collect();
            active.router.set(kept);
            return Err(e);
        }
        Ok(())
    }

    /// Unmount and delete all data of the mount at `path`.
    pub async fn unmount(&self, path: &str) -> Result<()> {
        let active = self.active()?;
        let _guard = self.transition.lock().await;
        if matches!(
            path.trim_end_matches('/'),
            "sys" | "auth/token" | "cubbyhole" | "identity"
        ) {
            return Err(CoreError::invalid(format!("cannot unmount \"{path}\"")));
        }
        let path = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let Some(mount) = active.router.get(&path) else {
            // Vault answers success for a path that is not mounted
            return Ok(());
        };
        if mount.entry.kind == "token" {
            return Err(CoreError::invalid("token auth backend cannot be disabled"));
        }
        let rest: Vec<Mount> = active
            .router
            .mounts()
            .into_iter()
            .filter(|m| m.entry.path != path)
            .collect();
        active.router.set(rest);
        self.persist_mounts(&active).await?;
        // everything the mount handed out goes with it: tokens of an auth method, leases of an
        // engine
        for id in active.leases.ids_under(&path).await? {
            active.revoke_lease_in(&id, Some(&mount)).await?;
        }
        mount.view.delete_prefix("").await?;
        mount.engine.cleanup().await?;
        Ok(())
    }

    /// Replace a mount's entry (tune); the engine is rebuilt with the new entry.
    pub async fn update_mount(
        &self,
        path: &str,
        f: impl FnOnce(&mut MountEntry) -> Result<()>,
    ) -> Result<()> {
        let active = self.active()?;
        let _guard = self.transition.lock().await;
        let mut all = active.router.mounts();
        let idx = all
            .iter()
            .position(|m| m.entry.path == path)
            .ok_or_else(|| CoreError::invalid(format!("no mount at {path}")))?;
        let mut entry = (*all[idx].entry).clone();
        f(&mut entry)?;
        all[idx] = self.instantiate(&active, entry)?;
        active.router.set(all);
        self.persist_mounts(&active).await
    }

    /// Dev mode: initialize with one key share, unseal, mount kv v2 at `secret/`.
    pub async fn dev_setup(&self, root_token_id: Option<String>) -> Result<(String, String)> {
        let result = self
            .init(InitParams {
                secret_shares: 1,
                secret_threshold: 1,
                root_token_id,
                ..Default::default()
            })
            .await?;
        let key = result.keys_base64.first().cloned().unwrap_or_default();
        if self.is_sealed() {
            self.unseal(Some(&key), false).await?;
        }
        let mut options = serde_json::Map::new();
        options.insert("version".into(), "2".into());
        self.mount(new_mount_entry(
            "secret/",
            "kv",
            "key/value secret storage",
            options,
        )?)
        .await?;
        Ok((result.root_token.clone(), key))
    }

    /// Whether `token` is a live token (cheap: the token store's cached lookup; false while
    /// sealed). Lets the HTTP layer size its buffers before a request is authenticated; it is
    /// not an authorization decision.
    pub async fn token_is_valid(&self, token: &str) -> bool {
        match self.active() {
            Ok(active) => matches!(active.tokens.lookup(token).await, Ok(Some(_))),
            Err(_) => false,
        }
    }
}

/// Build a new mount table entry with fresh ids.
pub fn new_mount_entry(
    path: &str,
    kind: &str,
    description: &str,
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<MountEntry> {
    Ok(MountEntry {
        path: path.to_string(),
        kind: kind.to_string(),
        description: description.to_string(),
        uuid: uuid::Uuid::new_v4().to_string(),
        accessor: format!(
            "{}_{}",
            kind.replace('-', "_"),
            &crate::token::random_base62(8)?.to_lowercase()
        ),
        config: Default::default(),
        options,
        local: false,
        seal_wrap: false,
        plugin_version: String::new(),
    })
}

fn default_mounts() -> Result<Vec<MountEntry>> {
    Ok(vec![
        new_mount_entry(
            "auth/token/",
            "token",
            "token based credentials",
            Default::default(),
        )?,
        new_mount_entry(
            "cubbyhole/",
            "cubbyhole",
            "per-token private secret storage",
            Default::default(),
        )?,
    ])
}

/// Decode an unseal key given as hex or base64.
fn decode_key(key: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = key.trim();
    if let Ok(b) = hex::decode(key) {
        return Ok(Zeroizing::new(b));
    }
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::invalid("'key' must be a valid hex or base64 string"))
}
