//! Audit: every request and response is recorded by the enabled devices before it is answered.
//!
//! - Fail-closed: a request runs only after at least one device has accepted its request entry,
//!   and is answered only after at least one has accepted its response entry.
//! - Secret values never reach a device in clear: every string in request and response data,
//!   and the client token, become `hmac-sha256:<hex>` under a per-device salt kept under the
//!   barrier (`sys/audit-hash` computes the same value for searching).
//! - Tamper evidence: each device numbers its entries (`seq`) and chains them (`prev_hash`,
//!   `hash` = HMAC-SHA256 under a per-device chain key over the entry without `hash`), so an
//!   edited, removed, reordered or inserted line is detected by [`verify`].
//! - Throughput: each device has one writer thread that takes every entry queued since its last
//!   write and writes them with one call; waiters are answered after that write.

mod device;
mod entry;
pub mod verify;

pub use device::{Device, DeviceKind};
pub use entry::{hmac_value, AuditInput};
pub use verify::{verify, VerifyOutcome};

use crate::barrier::{random_bytes, View};
use crate::error::{CoreError, ErrorCode, Result};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where the device table lives under the system view.
const TABLE_KEY: &str = "audit/table";

/// A stored audit device: its options and its keys (salt for value HMACs, chain key).
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// With trailing slash, e.g. `file/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub local: bool,
    /// Hex; the HMAC key for secret values.
    pub salt: String,
    /// Hex; the key of the hash chain.
    pub chain_key: String,
    /// Chain position saved at clean shutdown, seal and rotation.
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub last_hash: String,
}

impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn random_hex() -> Result<String> {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    random_bytes(k.as_mut())?;
    Ok(hex::encode(k.as_ref()))
}

/// The audit broker: the enabled devices, swapped atomically on change.
pub struct Broker {
    view: View,
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    /// Serializes changes to the device table and its persistence.
    table: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Load and open every stored device (at unseal).
    pub async fn load(view: View) -> Result<Broker> {
        let table: Vec<DeviceConfig> = view.get_json(TABLE_KEY).await?.unwrap_or_default();
        let mut devices = Vec::new();
        for cfg in table {
            match Device::open(cfg.clone()) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => {
                    // keep the device: it reports failure on every write, so fail-closed holds
                    tracing::error!(device = %cfg.path, error = %e, "audit device failed to open");
                    devices.push(Arc::new(Device::broken(cfg, e.to_string())));
                }
            }
        }
        Ok(Broker {
            view,
            devices: RwLock::new(Arc::new(devices)),
            table: tokio::sync::Mutex::new(()),
        })
    }

    fn current(&self) -> Arc<Vec<Arc<Device>>> {
        self.devices.read().clone()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.read().is_empty()
    }

    async fn persist(&self, devices: &[Arc<Device>]) -> Result<()> {
        let table: Vec<DeviceConfig> = devices.iter().map(|d| d.config_snapshot()).collect();
        self.view.put_json(TABLE_KEY, &table).await
    }

    /// `sys/audit/<path>` enable. The device must open (and accept a test write) to be enabled.
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: String,
        options: Map<String, Value>,
        local: bool,
    ) -> Result<()> {
        let path = normalize_path(path)?;
        let _table = self.table.lock().await;
        let current = self.current();
        if current.iter().any(|d| d.path() == path) {
            return Err(CoreError::invalid(format!("path already in use: {path}")));
        }
        DeviceKind::parse(kind, &options)?;
        let cfg = DeviceConfig {
            path,
            kind: kind.to_string(),
            description,
            options,
            local,
            salt: random_hex()?,
            chain_key: random_hex()?,
            seq: 0,
            last_hash: String::new(),
        };
        let device = Device::open(cfg)
            .map_err(|e| CoreError::invalid(format!("audit device failed to open: {e}")))?;
        device.probe().await?;
        let mut next: Vec<Arc<Device>> = current.as_ref().clone();
        next.push(Arc::new(device));
        self.persist(&next).await?;
        *self.devices.write() = Arc::new(next);
        Ok(())
    }

    pub async fn disable(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        let _table = self.table.lock().await;
        let current = self.current();
        let next: Vec<Arc<Device>> = current
            .iter()
            .filter(|d| d.path() != path)
            .cloned()
            .collect();
        if next.len() == current.len() {
            return Ok(());
        }
        self.persist(&next).await?;
        *self.devices.write() = Arc::new(next);
        Ok(())
    }

    /// What `sys/audit` lists.
    pub fn list(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for d in self.current().iter() {
            let c = d.config();
            out.insert(
                c.path.clone(),
                serde_json::json!({
                    "type": c.kind,
                    "description": c.description,
                    "options": c.options,
                    "local": c.local,
                    "path": c.path,
                }),
            );
        }
        out
    }

    /// The enabled device at `path`.
    fn device(&self, path: &str) -> Result<Arc<Device>> {
        let path = normalize_path(path)?;
        self.current()
            .iter()
            .find(|d| d.path() == path)
            .cloned()
            .ok_or_else(|| CoreError::invalid(format!("unknown audit backend {path}")))
    }

    /// `sys/audit-hash/<path>`: the HMAC this device writes for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String> {
        Ok(self.device(path)?.hmac(input))
    }

    /// The verification material of a device: chain key and current position.
    pub fn chain_info(&self, path: &str) -> Result<Map<String, Value>> {
        let d = self.device(path)?;
        let (seq, hash) = d.position();
        let mut m = Map::new();
        m.insert("chain_key".into(), d.config().chain_key.clone().into());
        m.insert("seq".into(), seq.into());
        m.insert("hash".into(), hash.into());
        Ok(m)
    }

    async fn log(&self, input: &AuditInput<'_>, response: bool) -> Result<()> {
        let devices = self.current();
        if devices.is_empty() {
            return Ok(());
        }
        let time = crate::util::now_rfc3339();
        let mut waits = Vec::with_capacity(devices.len());
        for d in devices.iter() {
            let mut body = Vec::with_capacity(2048);
            entry::write_body(input, response, d, &time, &mut body);
            waits.push(d.submit(body));
        }
        let mut ok = 0;
        for w in waits {
            match w.await {
                Ok(()) => ok += 1,
                Err(e) => tracing::error!(error = %e, "audit device failed to record an entry"),
            }
        }
        if ok == 0 {
            return Err(CoreError::new(
                ErrorCode::AuditFailed,
                if response {
                    "failed to audit response"
                } else {
                    "failed to audit request"
                },
            ));
        }
        Ok(())
    }

    /// Record the request entry; `Err` means no device could record it and the request must not run.
    pub async fn log_request(&self, input: &AuditInput<'_>) -> Result<()> {
        self.log(input, false).await
    }

    /// Record the response entry; `Err` means no device could record it and the answer is withheld.
    pub async fn log_response(&self, input: &AuditInput<'_>) -> Result<()> {
        self.log(input, true).await
    }

    /// Reopen file devices (SIGHUP, log rotation) and save every chain position.
    pub async fn reopen(&self) -> Result<()> {
        let _table = self.table.lock().await;
        let devices = self.current();
        for d in devices.iter() {
            d.reopen().await;
        }
        self.persist(&devices).await
    }

    /// Save chain positions and stop the writers (seal, shutdown).
    pub async fn shutdown(&self) -> Result<()> {
        let _table = self.table.lock().await;
        let devices = self.current();
        for d in devices.iter() {
            d.close().await;
        }
        self.persist(&devices).await
    }
}

fn normalize_path(path: &str) -> Result<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.contains("..") || p.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid("invalid audit device path"));
    }
    Ok(format!("{p}/"))
}
