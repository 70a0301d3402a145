//! User lockout shared by the auth methods, as Vault's core does it (docs
//! `concepts/user-lockout`): failed logins are counted per login name (the username for
//! userpass, the role_id for AppRole); `threshold` failures, each within `counter_reset` of the
//! previous one, lock the name for `duration`, during which every login for it gets `403
//! permission denied` before any credential is checked. A successful login resets the count.
//!
//! An attempt is reserved before the credential is checked (see [`Lockout::reserve`]), so no
//! amount of concurrency checks more than `threshold` credentials of one name inside a window.
//! Failures of names that exist are also kept in the mount's storage under `lockout/<key>` (the
//! key is chosen by the method and must not contain a secret), so a restarted server sees them;
//! names that do not exist are tracked in memory only. Records with nothing left to remember
//! are swept at most once per counter-reset window.

use super::common::{bool_param, duration_param, int_param};
use super::common::{is_cas_failure, load, op_check, op_delete, op_put};
use coffer_core::barrier::View;
use coffer_core::error::Result;
use coffer_core::optimistic::{commit_with_retries, Step};
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

/// In-memory state of one login name.
#[derive(Debug, Default)]
struct Live {
    entry: LockoutEntry,
    /// Attempts reserved and not finished yet.
    in_flight: u32,
}

/// Above this many in-memory records, stale ones are swept before a new one is added.
const MEMORY_SWEEP_AT: usize = 10_000;
/// Hard bound on in-memory records (unknown names included).
const MEMORY_MAX: usize = 100_000;

/// The lockout bookkeeping of one mount. Attempts are reserved atomically (in memory) before a
/// credential is checked, so that concurrent logins cannot check more than `threshold`
/// credentials inside one window. Failures of names that exist (a user, a role_id) are also
/// written to the mount's storage, so a restarted server remembers them; names that do not exist
/// are tracked in memory only, so a flood of logins for made-up names writes nothing durable.
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    /// When stale stored records were last swept (unix seconds).
    last_sweep: parking_lot::Mutex<f64>,
    live: parking_lot::Mutex<std::collections::HashMap<String, Live>>,
}

/// One reserved login attempt. Finish it with [`Attempt::failed`] or [`Attempt::succeeded`];
/// dropped unfinished (an error before the credential was judged), it counts for nothing.
pub(crate) struct Attempt<'a> {
    lockout: &'a Lockout,
    key: String,
    cfg: LockoutConfig,
    /// Whether failures are written to storage (the name exists).
    durable: bool,
    finished: bool,
}

impl Lockout {
    /// Reserve one attempt for `key` at `now`: `None` when the name is locked out, or when the
    /// failures already counted plus the attempts in flight reach the threshold (the caller
    /// answers 403 without checking the credential). `durable`: the name exists, so its
    /// failures are kept in storage (and read back from there).
    pub(crate) async fn reserve<'a>(
        &'a self,
        storage: &View,
        key: &str,
        cfg: &LockoutConfig,
        now: f64,
        durable: bool,
    ) -> Result<Option<Attempt<'a>>> {
        // built only once the attempt is counted: dropping an unfinished one releases it
        let attempt = |finished| Attempt {
            lockout: self,
            key: key.to_string(),
            cfg: *cfg,
            durable,
            finished,
        };
        if cfg.disabled {
            return Ok(Some(attempt(true)));
        }
        let stored = if durable {
            storage.get_json::<LockoutEntry>(&lockout_key(key)).await?
        } else {
            None
        };
        let mut live = self.live.lock();
        if !live.contains_key(key) && live.len() >= MEMORY_SWEEP_AT {
            forget_stale(&mut live, cfg, now);
        }
        let state = live.entry(key.to_string()).or_default();
        // storage may know more (another node, an earlier run)
        if let Some(st) = stored {
            if st.last_failed > state.entry.last_failed
                || st.locked_until > state.entry.locked_until
            {
                state.entry = st;
            }
        }
        if state.entry.locked_until > 0.0 && state.entry.locked_until <= now {
            state.entry = LockoutEntry::default();
        }
        let counted = if now - state.entry.last_failed >= cfg.counter_reset as f64 {
            0
        } else {
            state.entry.failed
        };
        if state.entry.locked(now) || counted.saturating_add(state.in_flight) >= cfg.threshold {
            return Ok(None);
        }
        state.in_flight += 1;
        Ok(Some(attempt(false)))
    }

    fn release(&self, key: &str) {
        let mut live = self.live.lock();
        if let Some(state) = live.get_mut(key) {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 && state.entry == LockoutEntry::default() {
                live.remove(key);
            }
        }
    }

    /// Drop stored records with nothing left to remember (expired lockouts, counters past their
    /// reset window), at most once per counter-reset window, so that failed logins cannot grow
    /// storage forever.
    async fn maybe_sweep(&self, storage: &View, cfg: &LockoutConfig, now: f64) {
        {
            let mut last = self.last_sweep.lock();
            if now - *last < cfg.counter_reset as f64 {
                return;
            }
            *last = now;
        }
        self.live
            .lock()
            .retain(|_, s| s.in_flight > 0 || !s.entry.stale(now, cfg));
        if let Err(e) = sweep(storage, cfg, now).await {
            tracing::warn!(error = %e, "sweeping lockout records failed");
        }
    }

    /// How many names are tracked in memory (for tests).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.live.lock().len()
    }
}

/// Make room among the in-memory records: drop stale ones, then (past the hard bound) any that
/// are neither locked nor in flight.
fn forget_stale(live: &mut std::collections::HashMap<String, Live>, cfg: &LockoutConfig, now: f64) {
    live.retain(|_, s| s.in_flight > 0 || !s.entry.stale(now, cfg));
    if live.len() >= MEMORY_MAX {
        live.retain(|_, s| s.in_flight > 0 || s.entry.locked(now));
    }
}

impl Attempt<'_> {
    /// The credential was wrong: count the failure. True when this very failure locked the name
    /// (for the caller to log).
    pub(crate) async fn failed(mut self, storage: &View, now: f64) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        self.finished = true;
        let cfg = self.cfg;
        let locked_now = {
            let mut live = self.lockout.live.lock();
            let state = live.entry(self.key.clone()).or_default();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.entry = LockoutEntry::after_failure(Some(state.entry.clone()), now, &cfg);
            state.entry.locked_until > 0.0 && state.entry.failed == cfg.threshold
        };
        if self.durable {
            record_failure(storage, &self.key, &cfg, now).await?;
            self.lockout.maybe_sweep(storage, &cfg, now).await;
        }
        Ok(locked_now)
    }

    /// The credential was right: forget the name's failures. Best effort for the stored record:
    /// the login already succeeded (and may have spent a use of its credential), so a storage
    /// error is logged rather than failing it.
    pub(crate) async fn succeeded(mut self, storage: &View) {
        if self.finished {
            return;
        }
        self.finished = true;
        {
            let mut live = self.lockout.live.lock();
            if let Some(state) = live.get_mut(&self.key) {
                state.in_flight = state.in_flight.saturating_sub(1);
                state.entry = LockoutEntry::default();
                if state.in_flight == 0 {
                    live.remove(&self.key);
                }
            }
        }
        if self.durable {
            clear(storage, &self.key).await;
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.lockout.release(&self.key);
        }
    }
}

/// Count one failure for `key` in storage (read-check-write, retried on a concurrent change).
async fn record_failure(storage: &View, key: &str, cfg: &LockoutConfig, now: f64) -> Result<()> {
    let skey = &lockout_key(key);
    commit_with_retries(storage, || async move {
        let (prev, bytes) = match load::<LockoutEntry>(storage, skey, "lockout").await? {
            Some((e, b)) => (Some(e), Some(b)),
            None => (None, None),
        };
        let next = LockoutEntry::after_failure(prev, now, cfg);
        Ok(Step::Commit(
            vec![
                op_check(skey.clone(), bytes.as_ref()),
                op_put(skey.clone(), &next)?,
            ],
            (),
        ))
    })
    .await
}

/// Delete the stored record of `key` (a failure recorded meanwhile stays).
async fn clear(storage: &View, key: &str) {
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
