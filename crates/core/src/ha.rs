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
use coffer_storage::{HaLock, Member, NodeInfo, HA_POLL_INTERVAL, HA_RENEW_INTERVAL};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After `sys/step-down`, the node leaves the lock to the others this long.
pub const STEP_DOWN_HOLD_OFF: Duration = Duration::from_secs(10);
/// How often a node records that it is alive (for `sys/ha-status`).
const CHECK_IN_INTERVAL: Duration = Duration::from_secs(2);
/// An active node whose renewals have failed this long stops serving: its hold may be gone.
const RENEW_GIVE_UP: Duration = Duration::from_millis(1500);

/// This node's part in the cluster.
pub struct HaNode {
    lock: Arc<dyn HaLock>,
    node: NodeInfo,
    /// When this node last became active (RFC 3339), while it is.
    active_since: Mutex<Option<String>>,
    /// The last holder seen (refreshed by the runner while standby).
    leader: Mutex<Option<NodeInfo>>,
    step_down: tokio::sync::Notify,
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
        if let Ok(l) = ha.lock.leader().await {
            *ha.leader.lock() = l.filter(|l| l.id != ha.node.id);
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
            if m.node.id != ha.node.id {
                out.push((m.node, false, Some(m.last_seen)));
            }
        }
        Ok(out)
    }
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
            let step = tokio::select! {
                _ = tokio::time::sleep(HA_RENEW_INTERVAL) => false,
                _ = ha.step_down.notified() => true,
            };
            if step {
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
            match ha.lock.renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!("HA: the lock was lost; this node is a standby now");
                    core.deactivate_if_active().await;
                    *ha.active_since.lock() = None;
                    held = false;
                }
                Err(e) if last_renewed.elapsed() >= RENEW_GIVE_UP => {
                    tracing::warn!(error = %e, "HA: the lock could not be renewed; this node stops serving as the active node");
                    core.deactivate_if_active().await;
                    *ha.active_since.lock() = None;
                    let _ = ha.lock.release().await;
                    held = false;
                }
                Err(e) => tracing::debug!(error = %e, "HA: renewal failed; retrying"),
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
            match core.activate().await {
                Ok(()) => {
                    held = true;
                    last_renewed = Instant::now();
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
            Ok(l) => *ha.leader.lock() = l.filter(|l| l.id != ha.node.id),
            Err(e) => {
                tracing::debug!(error = %e, "HA: could not read the leader");
                *ha.leader.lock() = None;
            }
        }
        drop(core);
        tokio::time::sleep(HA_POLL_INTERVAL).await;
    }
}
