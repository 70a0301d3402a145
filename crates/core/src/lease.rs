//! Leases and the expiration manager. Every expiring token has a lease (id
//! `<creation path>/<token hash>`), stored under the barrier so it survives restarts; a
//! background task revokes each lease when it expires, whether or not anyone uses it again.

use crate::barrier::View;
use crate::error::{CoreError, Result};
use crate::util::{format_unix, unix_now};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::Notify;

/// A stored lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub lease_id: String,
    pub issue_time: f64,
    pub expire_time: f64,
    #[serde(default)]
    pub last_renewal: Option<f64>,
    pub renewable: bool,
    /// For a token's lease: the token's hash.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// For an engine's secret (a database user): what to revoke, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRecord>,
}

/// The engine side of a secret's lease.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretRecord {
    /// The mount that issued it (its path, with the trailing `/`).
    pub mount_path: String,
    /// The mount's accessor: a remount keeps it, a new mount at the same path does not.
    pub mount_accessor: String,
    /// Renewals stop here (unix time).
    pub max_expire_time: f64,
    /// The engine's own data (e.g. the database user's name).
    pub internal: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("mount_path", &self.mount_path)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// What `sys/leases/lookup` answers.
    pub fn lookup_data(&self) -> serde_json::Map<String, serde_json::Value> {
        let now = unix_now();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.lease_id.clone().into());
        m.insert("issue_time".into(), format_unix(self.issue_time).into());
        m.insert("expire_time".into(), format_unix(self.expire_time).into());
        m.insert(
            "last_renewal".into(),
            self.last_renewal
                .map(|t| serde_json::Value::String(format_unix(t)))
                .unwrap_or(serde_json::Value::Null),
        );
        m.insert("renewable".into(), self.renewable.into());
        m.insert(
            "ttl".into(),
            ((self.expire_time - now).max(0.0).ceil() as u64).into(),
        );
        m
    }
}

/// The lease id of a token created at `path` (e.g. `auth/token/create`).
pub fn token_lease_id(path: &str, hash: &str) -> String {
    format!("{}/{hash}", path.trim_end_matches('/'))
}

/// Reject lease ids that could escape the lease namespace.
pub fn validate_lease_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 1024 {
        return Err(CoreError::invalid("invalid lease ID"));
    }
    crate::util::validate_path(id)
}

/// In-memory schedule of lease expiries (expire time in ms, lease id); the stored lease is the
/// truth, so a stale entry (renewed or revoked lease) is re-checked when it comes due.
#[derive(Default)]
pub struct Schedule {
    due: Mutex<BTreeSet<(u64, String)>>,
    wake: Notify,
}

impl Schedule {
    pub fn push(&self, expire_time: f64, lease_id: &str) {
        let ms = (expire_time * 1000.0).max(0.0) as u64;
        self.due.lock().insert((ms, lease_id.to_string()));
        self.wake.notify_one();
    }

    fn next_due(&self) -> Option<u64> {
        self.due.lock().iter().next().map(|(t, _)| *t)
    }

    fn take_due(&self, now_ms: u64) -> Vec<String> {
        let mut due = self.due.lock();
        let mut out = Vec::new();
        while let Some(first) = due.iter().next().cloned() {
            if first.0 > now_ms {
                break;
            }
            due.remove(&first);
            out.push(first.1);
        }
        out
    }
}

/// Lease storage (`sys/expire/id/<lease id>`) plus its schedule.
pub struct Leases {
    view: View,
    pub schedule: Arc<Schedule>,
}

impl Leases {
    pub fn new(view: View) -> Self {
        Leases {
            view,
            schedule: Arc::new(Schedule::default()),
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub async fn get(&self, lease_id: &str) -> Result<Option<Lease>> {
        validate_lease_id(lease_id)?;
        self.view.get_json(lease_id).await
    }

    pub async fn put(&self, lease: &Lease) -> Result<()> {
        self.view.put_json(&lease.lease_id, lease).await?;
        self.schedule.push(lease.expire_time, &lease.lease_id);
        Ok(())
    }

    pub async fn delete(&self, lease_id: &str) -> Result<()> {
        self.view.delete(lease_id).await
    }

    /// Every lease id under `prefix` (recursively).
    pub async fn ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![prefix.to_string()];
        while let Some(p) = stack.pop() {
            for entry in self.view.list(&p).await? {
                let full = format!("{p}{entry}");
                if entry.ends_with('/') {
                    stack.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Load every stored lease into the schedule (at unseal).
    pub async fn load(&self) -> Result<usize> {
        let ids = self.ids_under("").await?;
        let n = ids.len();
        for id in ids {
            if let Some(l) = self.view.get_json::<Lease>(&id).await? {
                self.schedule.push(l.expire_time, &l.lease_id);
            }
        }
        Ok(n)
    }
}

/// Run the expiration loop until `stop` fires: revoke each lease when it comes due, using
/// `revoke` (which must delete the lease). Failed revocations are retried after a pause.
pub async fn run_expiration<F, Fut>(
    leases: Arc<Leases>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    revoke: F,
) where
    F: Fn(Lease) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    // failed revocations per lease: retried after 5 s, doubling up to 10 minutes (a database
    // that is down is not hammered)
    let mut failures: std::collections::HashMap<String, u32> = Default::default();
    let retry_in = |n: u32| 5.0 * 2f64.powi(n.min(7) as i32);
    loop {
        let now_ms = (unix_now() * 1000.0) as u64;
        for id in leases.schedule.take_due(now_ms) {
            match leases.view.get_json::<Lease>(&id).await {
                Ok(Some(lease)) => {
                    if lease.expire_time * 1000.0 > now_ms as f64 + 1.0 {
                        // renewed since it was scheduled
                        leases.schedule.push(lease.expire_time, &lease.lease_id);
                        continue;
                    }
                    match revoke(lease.clone()).await {
                        Ok(()) => {
                            failures.remove(&id);
                        }
                        Err(e) => {
                            let n = failures.entry(id.clone()).or_insert(0);
                            let wait = retry_in(*n);
                            *n += 1;
                            tracing::warn!(lease = %id, error = %e, retry_in_secs = wait,
                                "lease revocation failed; retrying");
                            leases.schedule.push(unix_now() + wait, &id);
                        }
                    }
                }
                Ok(None) => {
                    failures.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(lease = %id, error = %e, "cannot read lease; retrying");
                    leases.schedule.push(unix_now() + 5.0, &id);
                }
            }
        }
        let sleep_ms = match leases.schedule.next_due() {
            Some(t) => t.saturating_sub((unix_now() * 1000.0) as u64).min(60_000),
            None => 60_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
            _ = leases.schedule.wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Revoke a lease: a token's (the token and its children) or an engine secret's (the engine
/// that issued it revokes it first, e.g. drops the database user; if that fails the lease stays
/// and the revocation is tried again). `gone` is a mount just removed from the routing table
/// whose leases are being revoked.
pub async fn revoke(
    router: &crate::router::Router,
    tokens: &crate::token::TokenStore,
    leases: &Leases,
    id: &str,
    gone: Option<&crate::router::Mount>,
) -> Result<()> {
    let Some(lease) = leases.get(id).await? else {
        return Ok(());
    };
    match (&lease.token_hash, &lease.secret) {
        (Some(h), _) => tokens.revoke_tree(h).await,
        (None, Some(sec)) => {
            let issuer = gone
                .filter(|m| m.entry.accessor == sec.mount_accessor)
                .cloned()
                .or_else(|| {
                    router
                        .snapshot()
                        .iter()
                        .find(|m| m.entry.accessor == sec.mount_accessor)
                        .cloned()
                });
            if let Some(m) = issuer {
                m.engine.revoke_secret(&m.view, &sec.internal).await?;
            }
            leases.delete(id).await
        }
        (None, None) => leases.delete(id).await,
    }
}
