//! Seal configuration and the unseal process (Shamir shares or a static key).

use crate::barrier::SecretKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Raw (unencrypted) storage key of the seal configuration.
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Raw storage key of the root key wrapped by an auto-unseal (static) key.
pub const SEAL_WRAPPED_ROOT_PATH: &str = "core/seal-wrapped/root-key";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealConfig {
    /// "shamir" or "static".
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: usize,
    pub secret_threshold: usize,
    /// Random id of this initialization, reported as `cluster_id`.
    #[serde(default)]
    pub cluster_id: String,
}

/// The auto-unseal key of a `seal "static"` stanza.
#[derive(Debug, Clone)]
pub struct StaticSeal {
    pub key_id: String,
    pub key: SecretKey,
}

/// Key shares collected so far during a Shamir unseal, and the state of a rekey or root token
/// generation in progress (both need key shares too). Guarded by the core's transition lock.
#[derive(Default)]
pub struct UnsealProgress {
    pub shares: Vec<Zeroizing<Vec<u8>>>,
    pub nonce: String,
    pub rekey: Option<crate::rekey::RekeyState>,
    pub generate_root: Option<crate::rekey::GenerateRootState>,
}

impl UnsealProgress {
    /// Forget every share collected (on seal, unseal reset, init): key material never outlives
    /// the unsealed state it was given for.
    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
        self.rekey = None;
        self.generate_root = None;
    }
}

/// What `sys/seal-status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    pub recovery_seal: bool,
    pub storage_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// Parameters of `sys/init`.
#[derive(Debug, Clone, Default)]
pub struct InitParams {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub recovery_shares: usize,
    pub recovery_threshold: usize,
    /// Dev mode: use this as the root token.
    pub root_token_id: Option<String>,
}

/// What `sys/init` returns. Debug is redacted: these are the keys to everything.
#[derive(Clone, Serialize)]
pub struct InitResult {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    pub recovery_keys: Vec<String>,
    pub recovery_keys_base64: Vec<String>,
    pub root_token: String,
}

impl std::fmt::Debug for InitResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitResult(<redacted>)")
    }
}

impl Drop for InitResult {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.keys.zeroize();
        self.keys_base64.zeroize();
        self.recovery_keys.zeroize();
        self.recovery_keys_base64.zeroize();
        self.root_token.zeroize();
    }
}
