//! High availability: the lock that makes one node of a cluster the active one.
//!
//! The lock lives in the storage engine (a lease row in PostgreSQL, a lease-bound key in etcd),
//! never in a consensus of Coffer's own. A hold lasts [`HA_TTL`] unless renewed, so a killed
//! holder is replaced within that time plus one poll of the standbys. Writes of a backend whose
//! lock is in use are *fenced*: the storage engine itself checks, in the write's own
//! transaction, that the writing node still holds the lock.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StorageError;

/// How long a hold lasts without renewal. The holder renews every [`HA_RENEW_INTERVAL`];
/// standbys try to take the lock every [`HA_POLL_INTERVAL`].
pub const HA_TTL: Duration = Duration::from_secs(2);
/// How often the holder renews its hold.
pub const HA_RENEW_INTERVAL: Duration = Duration::from_millis(400);
/// How often a standby tries to take the lock.
pub const HA_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a node's check-in (for `sys/ha-status`) stays listed without another.
pub const HA_MEMBER_TTL: Duration = Duration::from_secs(10);

/// What a node advertises: in the lock while it holds it, and in its check-ins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique per server process.
    pub id: String,
    pub hostname: String,
    /// Where clients (and standbys forwarding for them) reach this node.
    pub api_addr: String,
    pub cluster_addr: String,
    pub version: String,
    /// A MAC of the fields above by the node itself (under a key of the cluster's keyring,
    /// which only unsealed nodes hold), so that nodes reading the lock or the check-ins trust
    /// only adverts a cluster node wrote, never one forged in the storage.
    #[serde(default)]
    pub auth: String,
}

impl NodeInfo {
    /// What [`NodeInfo::auth`] authenticates.
    pub fn advert_message(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.id, self.hostname, self.api_addr, self.cluster_addr, self.version
        )
        .into_bytes()
    }
}

/// A node's recent check-in, for `sys/ha-status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node: NodeInfo,
    /// Unix seconds of the last check-in.
    pub last_seen: i64,
}

/// The HA lock of one backend, for one node.
#[async_trait]
pub trait HaLock: Send + Sync {
    /// Try once to take the lock; `Ok(true)` when this node holds it now (also when it already
    /// did). Every call fences the backend's writes (see the module documentation).
    async fn try_acquire(&self) -> Result<bool, StorageError>;
    /// Extend the hold; `Ok(false)` when it was lost (expired and taken, or released).
    async fn renew(&self) -> Result<bool, StorageError>;
    /// Give the lock up now (step-down, shutdown). The node's writes are refused from here on.
    async fn release(&self) -> Result<(), StorageError>;
    /// The current holder, if any.
    async fn leader(&self) -> Result<Option<NodeInfo>, StorageError>;
    /// Record that this node is alive, for [`HaLock::members`].
    async fn check_in(&self) -> Result<(), StorageError>;
    /// The nodes that checked in within [`HA_MEMBER_TTL`].
    async fn members(&self) -> Result<Vec<Member>, StorageError>;
    /// Set the [`NodeInfo::auth`] this node advertises from now on (in the lock and check-ins).
    fn set_advert_auth(&self, auth: String);
}

pub(crate) fn encode_node(node: &NodeInfo) -> String {
    // a struct of strings always serializes
    serde_json::to_string(node).unwrap_or_default()
}

pub(crate) fn decode_node(raw: &[u8]) -> Option<NodeInfo> {
    serde_json::from_slice(raw).ok()
}
