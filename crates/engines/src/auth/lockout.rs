//! User lockout shared by the auth methods, as Vault's core does it (docs
//! `concepts/user-lockout`): failed logins are counted per login name (the username for
//! userpass, the role_id for AppRole); `threshold` failures, each within `counter_reset` of the
//! previous one, lock the name for `duration`, during which every login for it gets `403
//! permission denied` before any credential is checked. A successful login resets the count.
//!
//! The state lives in the mount's storage under `lockout/<key>` (the key is chosen by the
//! method and must not contain a secret), so every node and a restarted server see it. Records
//! with nothing left to remember are swept at most once per counter-reset window.

use super::common::{bool_param, duration_param, int_param, MAX_CAS_RETRIES};
use super::common::{is_cas_failure, load, op_check, op_delete, op_put, too_much_contention};
use coffer_core::barrier::View;
use coffer_core::error::Result;
use coffer_core::router::MountEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Vault's user lockout defaults.
pub const DEFAULT_LOCKOUT_THRESHOLD: u32 = 5;
pub const DEFAULT_LOCKOUT_DURATION_SECS: u64 = 15 * 60;
pub const DEFAULT_LOCKOUT_COUNTER_RESET_SECS: u64 = 15 * 60;

const PREFIX: &str = "lockout/";

fn lockout_key(key: &str) -> String {
    format!("{PREFIX}{key}")
}

/// Failed-login state of one login name.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Debug)]
pub(crate) struct LockoutEntry {
    pub(crate) failed: u32,
    pub(crate) last_failed: f64,
    /// Unix seconds; 0 = not locked.
    #[serde(default)]
    pub(crate) locked_until: f64,
}

/// The mount's user lockout settings: Vault's defaults, overridden by the mount option
/// `user_lockout_config` (`lockout_threshold`, `lockout_duration`, `lockout_counter_reset`,
/// `lockout_disable`) when present.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LockoutConfig {
    pub(crate) threshold: u32,
    pub(crate) duration: u64,
    pub(crate) counter_reset: u64,
    pub(crate) disabled: bool,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            threshold: DEFAULT_LOCKOUT_THRESHOLD,
            duration: DEFAULT_LOCKOUT_DURATION_SECS,
            counter_reset: DEFAULT_LOCKOUT_COUNTER_RESET_SECS,
            disabled: false,
        }
    }
}

impl LockoutConfig {
    /// The settings of `mount`. An unusable value keeps the default rather than failing logins.
    pub(crate) fn from_mount(mount: &MountEntry) -> Self {
        let mut cfg = LockoutConfig::default();
        let parsed;
        let m = match mount.options.get("user_lockout_config") {
            Some(Value::Object(m)) => m,
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => {
                    parsed = m;
                    &parsed
                }
                _ => return cfg,
            },
            _ => return cfg,
        };
        if let Ok(Some(n)) = int_param(m, "lockout_threshold") {
            if let Ok(n) = u32::try_from(n) {
                if n > 0 {
                    cfg.threshold = n;
                }
            }
        }
        if let Ok(Some(d)) = duration_param(m, "lockout_duration") {
            if d > 0 {
                cfg.duration = d.unsigned_abs();
            }
        }
        if let Ok(Some(d)) = duration_param(m, "lockout_counter_reset") {
            if d > 0 {
                cfg.counter_reset = d.unsigned_abs();
            }
        }
        for key in ["lockout_disable", "disable_lockout"] {
            if let Ok(Some(b)) = bool_param(m, key) {
                cfg.disabled = b;
            }
        }
        cfg
    }
}

impl LockoutEntry {
    pub(crate) fn locked(&self, now: f64) -> bool {
        self.locked_until > now
    }

    /// Nothing left to remember: not locked, and the counter has reset.
    pub(crate) fn stale(&self, now: f64, cfg: &LockoutConfig) -> bool {
        !self.locked(now) && now - self.last_failed >= cfg.counter_reset as f64
    }

    /// The state after one more failure at `now`.
    pub(crate) fn after_failure(
        prev: Option<LockoutEntry>,
        now: f64,
        cfg: &LockoutConfig,
    ) -> LockoutEntry {
        let mut e = prev.unwrap_or_default();
        if e.locked_until > 0.0 && e.locked_until <= now {
            // a lockout that ran out starts over
            e = LockoutEntry::default();
        }
        if e.failed > 0 && now - e.last_failed >= cfg.counter_reset as f64 {
            e.failed = 0;
        }
        e.failed = e.failed.saturating_add(1);
        e.last_failed = now;
        if e.failed >= cfg.threshold && e.locked_until <= now {
            e.locked_until = now + cfg.duration as f64;
        }
        e
    }
}

/// The lockout bookkeeping of one mount (the state itself is in storage).
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    /// When stale records were last swept (unix seconds).
    last_sweep: parking_lot::Mutex<f64>,
}

impl Lockout {
    /// Whether `key` is locked out at `now` (never when lockout is disabled).
    pub(crate) async fn is_locked(
        &self,
        storage: &View,
        key: &str,
        cfg: &LockoutConfig,
        now: f64,
    ) -> Result<bool> {
        if cfg.disabled {
            return Ok(false);
        }
        Ok(storage
            .get_json::<LockoutEntry>(&lockout_key(key))
            .await?
            .is_some_and(|e| e.locked(now)))
    }

    /// Count one failed login for `key` at `now`; true when this very failure locked it (for
    /// the caller to log). Also sweeps stale records now and then.
    pub(crate) async fn record_failure(
        &self,
        storage: &View,
        key: &str,
        cfg: &LockoutConfig,
        now: f64,
    ) -> Result<bool> {
        if cfg.disabled {
            return Ok(false);
        }
        let skey = lockout_key(key);
        let mut done = None;
        for _ in 0..MAX_CAS_RETRIES {
            let (prev, bytes) = match load::<LockoutEntry>(storage, &skey, "lockout").await? {
                Some((e, b)) => (Some(e), Some(b)),
                None => (None, None),
            };
            let next = LockoutEntry::after_failure(prev, now, cfg);
            let ops = vec![
                op_check(skey.clone(), bytes.as_ref()),
                op_put(skey.clone(), &next)?,
            ];
            match storage.transaction(ops).await {
                Ok(()) => {
                    done = Some(next.locked_until > 0.0 && next.failed == cfg.threshold);
                    break;
                }
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        let locked_now = done.ok_or_else(too_much_contention)?;
        self.maybe_sweep(storage, cfg, now).await;
        Ok(locked_now)
    }

    /// Forget the failures of `key` after a successful login. Best effort: the login already
    /// succeeded (and may have spent a use of its credential), so a storage error is logged
    /// rather than failing it; a failure recorded meanwhile stays.
    pub(crate) async fn clear(&self, storage: &View, key: &str, cfg: &LockoutConfig) {
        if cfg.disabled {
            return;
        }
        let skey = lockout_key(key);
        let result = match storage.get(&skey).await {
            Ok(Some(bytes)) => {
                match storage
                    .transaction(vec![op_check(skey.clone(), Some(&bytes)), op_delete(skey)])
                    .await
                {
                    Err(e) if is_cas_failure(&e) => Ok(()),
                    r => r,
                }
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not reset a failed-login counter");
        }
    }

    /// Drop records with nothing left to remember (expired lockouts, counters past their reset
    /// window), at most once per counter-reset window, so that failed logins cannot grow
    /// storage forever.
    async fn maybe_sweep(&self, storage: &View, cfg: &LockoutConfig, now: f64) {
        {
            let mut last = self.last_sweep.lock();
            if now - *last < cfg.counter_reset as f64 {
                return;
            }
            *last = now;
        }
        if let Err(e) = sweep(storage, cfg, now).await {
            tracing::warn!(error = %e, "sweeping lockout records failed");
        }
    }
}

async fn sweep(storage: &View, cfg: &LockoutConfig, now: f64) -> Result<()> {
    for name in storage.list(PREFIX).await? {
        let key = lockout_key(&name);
        let Some((e, bytes)) = load::<LockoutEntry>(storage, &key, "lockout").await? else {
            continue;
        };
        if e.stale(now, cfg) {
            match storage
                .transaction(vec![op_check(key.clone(), Some(&bytes)), op_delete(key)])
                .await
            {
                Ok(()) => {}
                Err(e) if is_cas_failure(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_util::mount_entry;
    use serde_json::json;

    #[test]
    fn state_machine() {
        let cfg = LockoutConfig::default();
        let mut e = None;
        for i in 1..=4 {
            let next = LockoutEntry::after_failure(e, 100.0 + i as f64, &cfg);
            assert_eq!(next.failed, i);
            assert!(!next.locked(100.0 + i as f64));
            e = Some(next);
        }
        let locked = LockoutEntry::after_failure(e, 105.0, &cfg);
        assert!(locked.locked(105.0) && locked.locked(105.0 + 899.0));
        assert!(!locked.locked(105.0 + 900.0));
        let fresh = LockoutEntry::after_failure(Some(locked.clone()), 105.0 + 901.0, &cfg);
        assert_eq!(fresh.failed, 1);
        assert!(!locked.stale(105.0 + 10.0, &cfg));
        assert!(locked.stale(105.0 + 900.0, &cfg));
        // failures further apart than the reset window never add up
        let spread = LockoutEntry::after_failure(
            Some(LockoutEntry {
                failed: 4,
                last_failed: 0.0,
                locked_until: 0.0,
            }),
            900.0,
            &cfg,
        );
        assert_eq!(spread.failed, 1);
        assert!(!spread.locked(900.0));
    }

    #[test]
    fn config_from_mount_options() {
        let cfg = |options| LockoutConfig::from_mount(&mount_entry("auth/x/", "x", options));
        assert_eq!(cfg(json!({})), LockoutConfig::default());
        assert_eq!(
            cfg(json!({"user_lockout_config": {
                "lockout_threshold": "2", "lockout_duration": "1m",
                "lockout_counter_reset": 30, "lockout_disable": "false"}})),
            LockoutConfig {
                threshold: 2,
                duration: 60,
                counter_reset: 30,
                disabled: false
            }
        );
        // mount options are strings: the config may come as JSON text
        assert!(cfg(json!({"user_lockout_config": "{\"lockout_disable\": true}"})).disabled);
        // unusable values keep the defaults
        assert_eq!(
            cfg(json!({"user_lockout_config": {
                "lockout_threshold": "many", "lockout_duration": "-1m"}})),
            LockoutConfig::default()
        );
        assert_eq!(
            cfg(json!({"user_lockout_config": "not json"})),
            LockoutConfig::default()
        );
    }
}
