//! High availability: several nodes on one HA-capable storage backend, one of them active.
//!
//! Every node unseals its barrier (it holds the keys), but only the node holding the storage
//! engine's lock builds the active subsystems ([`crate::core::Active`]: router, tokens,
//! policies, leases with their expiration manager, audit devices). The others are standbys: the
//! dialects forward their requests to the active node ([`Core::forward_target`]). The runner
//! below moves a node between the two states:
//!
//! - standby → active when it takes the lock: the keyring and everything else are loaded fresh
//!   from storage (the previous active node may have changed any of it);
//! - active → standby when a renewal says the lock is lost, when no renewal has succeeded for
//!   most of a hold's lifetime (the node is cut off from the storage), on `sys/step-down`, and
//!   when the node is sealed. The storage layer refuses the writes of a node that lost the lock
//!   in any case (fencing, see `coffer_storage::HaLock`); stepping down only stops the node
//!   from trying.

use crate::core::Core;
use crate::error::{CoreError, ErrorCode, Result};
use coffer_storage::{HaLock, Member, NodeInfo, HA_POLL_INTERVAL, HA_RENEW_INTERVAL, HA_TTL};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After `sys/step-down`, the node leaves the lock to the others this long.
pub const STEP_DOWN_HOLD_OFF: Duration = Duration::from_secs(10);
/// How often a node records that it is alive (for `sys/ha-status`).
const CHECK_IN_INTERVAL: Duration = Duration::from_secs(2);
/// An active node stops serving this long before its hold could expire (a hold lasts
/// [`HA_TTL`] from when its last successful renewal was sent).
const EXPIRY_MARGIN: Duration = Duration::from_millis(300);

/// Run `work` (an activation, an init) while renewing the lock every [`HA_RENEW_INTERVAL`], so
/// that work longer than a hold's lifetime keeps the hold. Answers the work's result and, when
/// the hold is still certain, the send time of the last successful renewal (`since` if none was
/// needed); `None` when a renewal said the hold was lost or none succeeded in time.
pub(crate) async fn hold_during<T>(
    lock: &dyn HaLock,
    since: Instant,
    work: impl std::future::Future<Output = T>,
) -> (T, Option<Instant>) {
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let renewals = async {
        let mut last_ok = since;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HA_RENEW_INTERVAL) => {}
                _ = done_rx.changed() => return Some(last_ok),
            }
            let sent = Instant::now();
            match lock.renew().await {
                Ok(true) => last_ok = sent,
                Ok(false) => return None,
                Err(e) => tracing::debug!(error = %e, "HA: renewal failed; retrying"),
            }
            if Instant::now() >= last_ok + HA_TTL - EXPIRY_MARGIN {
                return None;
            }
        }
    };
    let work = async {
        let r = work.await;
        let _ = done_tx.send(true);
        r
    };
    tokio::join!(work, renewals)
}

/// This node's part in the cluster.
pub struct HaNode {
    lock: Arc<dyn HaLock>,
    node: NodeInfo,
    /// When this node last became active (RFC 3339), while it is.
    active_since: Mutex<Option<String>>,
    /// The last holder seen (refreshed by the runner while standby).
    leader: Mutex<Option<NodeInfo>>,
    step_down: tokio::sync::Notify,
    /// Set by `sys/step-down`; cleared whenever the node becomes active (a request left over
    /// from an earlier term is not honoured).
    step_down_requested: std::sync::atomic::AtomicBool,
    /// When a standby last asked the storage who leads outside its poll.
    last_refresh: Mutex<Option<Instant>>,
}

/// What `sys/leader` answers.
#[derive(Debug, Clone)]
pub struct LeaderStatus {
    pub ha_enabled: bool,
    pub is_self: bool,
    pub active_time: String,
    pub leader_address: String,
    pub leader_cluster_address: String,
}

/// Why a standby cannot forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    /// Serve the request here (not HA, active, or sealed).
    Local,
    /// Forward to this node's API address.
    Node(String),
    /// This node is a standby and no active node is known (a failover is under way).
    NoLeader,
}

impl HaNode {
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// Give the lock up (a sealing or stopping active node), so another takes over at once.
    pub(crate) async fn release(&self) {
        *self.active_since.lock() = None;
        if let Err(e) = self.lock.release().await {
            tracing::debug!(error = %e, "HA: could not release the lock (it expires by itself)");
        }
    }

    /// `sys/init` on a cluster node: take the lock first (the caller holds the transition
    /// lock, so the runner does not try meanwhile).
    pub(crate) async fn take_lock_for_init(&self) -> Result<bool> {
        Ok(self.lock.try_acquire().await?)
    }

    /// Run an init holding the lock (renewed while it runs).
    pub(crate) async fn hold_during<T>(
        &self,
        since: Instant,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Option<Instant>) {
        hold_during(&*self.lock, since, work).await
    }

    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.lock.members().await?)
    }
}

impl Core {
    /// Make this node one of a cluster on its storage backend, if the backend has HA enabled;
    /// returns whether it does. Call once, before serving; starts the runner.
    pub fn enable_ha(self: &Arc<Self>, node: NodeInfo) -> bool {
        let Some(lock) = self.barrier().raw().ha_lock(node.clone()) else {
            return false;
        };
        let ha = Arc::new(HaNode {
            lock,
            node,
            active_since: Mutex::new(None),
            leader: Mutex::new(None),
            step_down: tokio::sync::Notify::new(),
            step_down_requested: std::sync::atomic::AtomicBool::new(false),
            last_refresh: Mutex::new(None),
        });
        if self.set_ha(ha.clone()).is_err() {
            return true;
        }
        tokio::spawn(run(Arc::downgrade(self), ha));
        true
    }

    /// True while this node is unsealed but not the active node of its cluster.
    pub fn is_standby(&self) -> bool {
        self.ha().is_some() && !self.is_sealed() && self.active().is_err()
    }

    /// Where a request to this node should be served.
    pub fn forward_target(&self) -> ForwardTarget {
        let Some(ha) = self.ha() else {
            return ForwardTarget::Local;
        };
        if !self.is_standby() {
            return ForwardTarget::Local;
        }
        match ha.leader.lock().as_ref() {
            Some(l) if l.id != ha.node.id && !l.api_addr.is_empty() => {
                ForwardTarget::Node(l.api_addr.clone())
            }
            _ => ForwardTarget::NoLeader,
        }
    }

    /// A standby that knows no active node asks the storage now (the runner asks only every
    /// poll): a request arriving just after a failover is forwarded instead of refused.
    pub async fn refresh_leader(&self) {
        let Some(ha) = self.ha() else {
            return;
        };
        {
            // at most one extra question per poll interval, whatever the request rate
            let mut last = ha.last_refresh.lock();
            if last.is_some_and(|t| t.elapsed() < HA_POLL_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Ok(l) = ha.lock.leader().await {
            *ha.leader.lock() = l.filter(|l| l.id != ha.node.id && trusted(self, l));
        }
    }

    /// `sys/leader`.
    pub fn leader_status(&self) -> LeaderStatus {
        let Some(ha) = self.ha() else {
            return LeaderStatus {
                ha_enabled: false,
                is_self: false,
                active_time: "0001-01-01T00:00:00Z".into(),
                leader_address: String::new(),
                leader_cluster_address: String::new(),
            };
        };
        let active = self.active().is_ok();
        let leader = if active {
            Some(ha.node.clone())
        } else {
            ha.leader.lock().clone()
        };
        LeaderStatus {
            ha_enabled: true,
            is_self: active,
            active_time: ha
                .active_since
                .lock()
                .clone()
                .filter(|_| active)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            leader_address: leader
                .as_ref()
                .map(|l| l.api_addr.clone())
                .unwrap_or_default(),
            leader_cluster_address: leader.map(|l| l.cluster_addr).unwrap_or_default(),
        }
    }

    /// `sys/step-down` on the active node: give the lock up; another node takes over.
    pub fn step_down(&self) -> Result<()> {
        match self.ha() {
            Some(ha) if self.active().is_ok() => {
                ha.step_down_requested.store(true, Ordering::Release);
                ha.step_down.notify_one();
                Ok(())
            }
            Some(_) => Err(CoreError::new(
                ErrorCode::Standby,
                "this node is not the active node",
            )),
            None => Err(CoreError::invalid("high availability is not enabled")),
        }
    }

    /// `sys/ha-status`: the nodes that checked in recently, this (active) node first.
    pub async fn ha_status(&self) -> Result<Vec<(NodeInfo, bool, Option<i64>)>> {
        let Some(ha) = self.ha() else {
            return Err(CoreError::invalid("high availability is not enabled"));
        };
        let mut out = vec![(ha.node.clone(), true, None)];
        for m in ha.members().await? {
            if m.node.id != ha.node.id && trusted(self, &m.node) {
                out.push((m.node, false, Some(m.last_seen)));
            }
        }
        Ok(out)
    }
}

const ADVERT_PURPOSE: &str = "ha-advert";

/// This node's advert MAC (empty while sealed: then nothing is advertised that could be used).
fn advert_auth(core: &Core, node: &NodeInfo) -> String {
    core.barrier()
        .mac(ADVERT_PURPOSE, &node.advert_message())
        .map(hex::encode)
        .unwrap_or_default()
}

/// Whether a node's advert (read from the storage) was written by a node of this cluster.
fn trusted(core: &Core, node: &NodeInfo) -> bool {
    let ok = hex::decode(&node.auth).is_ok_and(|tag| {
        core.barrier()
            .verify_mac(ADVERT_PURPOSE, &node.advert_message(), &tag)
    });
    if !ok {
        tracing::warn!(api_addr = %node.api_addr, "HA: an advert in the storage that no node of this cluster wrote is ignored");
    }
    ok
}

/// The node's HA loop; ends when the core is dropped.
async fn run(core: std::sync::Weak<Core>, ha: Arc<HaNode>) {
    let mut last_check_in: Option<Instant> = None;
    let mut hold_off_until: Option<Instant> = None;
    let mut last_renewed = Instant::now();
    let mut next_unseal_try = Instant::now();
    // whether this node holds the lock as far as it knows
    let mut held = false;
    loop {
        let Some(core) = core.upgrade() else {
            return;
        };
        if last_check_in.is_none_or(|t| t.elapsed() >= CHECK_IN_INTERVAL) && !core.is_sealed() {
            ha.lock.set_advert_auth(advert_auth(&core, &ha.node));
            if let Err(e) = ha.lock.check_in().await {
                tracing::debug!(error = %e, "HA: check-in failed");
            }
            last_check_in = Some(Instant::now());
        }
        if core.is_sealed() {
            if held {
                // sealed while active: Core::seal dropped the subsystems already
                core.deactivate_if_active().await;
                let _ = ha.lock.release().await;
                *ha.active_since.lock() = None;
                held = false;
            }
            // a node with a static seal key unseals itself once the cluster is initialized
            if Instant::now() >= next_unseal_try {
                next_unseal_try = Instant::now() + Duration::from_secs(1);
                if let Ok(true) = core.initialized().await {
                    if let Err(e) = core.auto_unseal().await {
                        tracing::debug!(error = %e, "HA: auto-unseal failed");
                    }
                }
            }
            drop(core);
            tokio::time::sleep(HA_POLL_INTERVAL).await;
            continue;
        }
        if core.active().is_ok() {
            // the hold is certain until `safe_until` (a hold lasts HA_TTL from when its last
            // successful renewal was sent); stop serving before then unless renewed
            let safe_until = last_renewed + HA_TTL - EXPIRY_MARGIN;
            let wake = (Instant::now() + HA_RENEW_INTERVAL).min(safe_until);
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = ha.step_down.notified() => {}
            }
            if ha.step_down_requested.swap(false, Ordering::AcqRel) {
                tracing::info!("HA: stepping down");
                core.deactivate_if_active().await;
                if let Err(e) = ha.lock.release().await {
                    tracing::warn!(error = %e, "HA: could not release the lock (it expires by itself)");
                }
                *ha.active_since.lock() = None;
                held = false;
                hold_off_until = Some(Instant::now() + STEP_DOWN_HOLD_OFF);
                continue;
            }
            let sent = Instant::now();
            let renewed = tokio::select! {
                r = ha.lock.renew() => Some(r),
                _ = tokio::time::sleep_until(safe_until.into()) => None,
            };
            match renewed {
                Some(Ok(true)) => last_renewed = sent,
                Some(Ok(false)) => {
                    tracing::warn!("HA: the lock was lost; this node is a standby now");
                    core.deactivate_if_active().await;
                    *ha.active_since.lock() = None;
                    held = false;
                }
                Some(Err(e)) if Instant::now() < safe_until => {
                    tracing::debug!(error = %e, "HA: renewal failed; retrying")
                }
                other => {
                    if let Some(Err(e)) = other {
                        tracing::warn!(error = %e, "HA: the lock could not be renewed in time; this node stops serving as the active node");
                    } else {
                        tracing::warn!("HA: the lock could not be renewed in time; this node stops serving as the active node");
                    }
                    core.deactivate_if_active().await;
                    *ha.active_since.lock() = None;
                    let _ = ha.lock.release().await;
                    held = false;
                }
            }
            continue;
        }
        // standby
        let may_take = hold_off_until.is_none_or(|t| Instant::now() >= t);
        let took = if may_take {
            // not while an init (which writes before the lock may be taken, and whose writes
            // the first attempt would fence) or another seal transition is under way
            let _transition = core.transition().lock().await;
            if core.is_sealed() {
                false
            } else {
                ha.lock.set_advert_auth(advert_auth(&core, &ha.node));
                match ha.lock.try_acquire().await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(error = %e, "HA: lock attempt failed");
                        false
                    }
                }
            }
        } else {
            false
        };
        if took {
            hold_off_until = None;
            let acquired = Instant::now();
            ha.step_down_requested.store(false, Ordering::Release);
            let (activated, renewals) = hold_during(&*ha.lock, acquired, core.activate()).await;
            let activated = match (activated, renewals) {
                (Ok(()), None) => {
                    core.deactivate_if_active().await;
                    Err(CoreError::new(
                        ErrorCode::Standby,
                        "the lock was lost while this node was becoming active",
                    ))
                }
                (r, _) => r,
            };
            match activated {
                Ok(()) => {
                    held = true;
                    last_renewed = renewals.unwrap_or(acquired);
                    *ha.active_since.lock() = Some(crate::util::now_rfc3339());
                    *ha.leader.lock() = Some(ha.node.clone());
                    tracing::info!(api_addr = %ha.node.api_addr, "HA: this node is the active node");
                }
                Err(e) => {
                    tracing::error!(error = %e, "HA: could not become active; giving the lock up");
                    let _ = ha.lock.release().await;
                    hold_off_until = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            continue;
        }
        match ha.lock.leader().await {
            Ok(l) => *ha.leader.lock() = l.filter(|l| l.id != ha.node.id && trusted(&core, l)),
            Err(e) => {
                tracing::debug!(error = %e, "HA: could not read the leader");
                *ha.leader.lock() = None;
            }
        }
        drop(core);
        tokio::time::sleep(HA_POLL_INTERVAL).await;
    }
}
