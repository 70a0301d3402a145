//! Physical storage for Coffer.
//!
//! Everything stored here is already ciphertext (the barrier in `coffer-core` encrypts before calling
//! a backend), except the seal configuration and the sealed keyring. Backends are plain ordered
//! key/value maps with Vault's four physical operations plus an atomic transaction.

use async_trait::async_trait;

#[cfg(feature = "etcd")]
mod etcd;
mod etcd_config;
mod file;
mod ha;
mod inmem;
mod postgres;

#[cfg(feature = "etcd")]
pub use etcd::EtcdBackend;
pub use etcd_config::EtcdConfig;
pub use file::FileBackend;
pub use ha::{
    HaLock, Member, NodeInfo, HA_MEMBER_TTL, HA_POLL_INTERVAL, HA_RENEW_INTERVAL, HA_TTL,
};
pub use inmem::InmemBackend;
pub use postgres::{PostgresBackend, PostgresConfig};

/// Errors a backend can report. They never contain stored values.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("storage backend closed")]
    Closed,
    #[error("invalid storage key: {0}")]
    InvalidKey(String),
    #[error("compare-and-set failed for key {0}")]
    CasFailed(String),
    /// HA: this node does not hold the lock, so the storage layer refuses its writes.
    #[error("this node is not the active node: the storage refused the write")]
    Fenced,
    /// The write exceeds a limit of the storage engine (the message says which).
    #[error("{0}")]
    TooLarge(String),
    /// The backend's configuration is unusable (the message says why).
    #[error("storage configuration: {0}")]
    Config(String),
}

/// One operation of an atomic [`Backend::transaction`].
///
/// All `Check`s of a transaction are evaluated first, against the state before the transaction;
/// only if every one passes are the `Put`s and `Delete`s applied, in order.
///
/// `Debug` output shows only the length of values, never their bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Fails the whole transaction with [`StorageError::CasFailed`] unless the key currently holds
    /// exactly `expected` (`None` = key absent).
    Check {
        key: String,
        expected: Option<Vec<u8>>,
    },
}

impl TxnOp {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Check { key, .. } => key,
        }
    }
}

/// Formats a value as its length only, so that stored bytes never reach logs.
struct Redacted(usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl std::fmt::Debug for TxnOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxnOp::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value", &Redacted(value.len()))
                .finish(),
            TxnOp::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
            TxnOp::Check { key, expected } => f
                .debug_struct("Check")
                .field("key", key)
                .field("expected", &expected.as_ref().map(|v| Redacted(v.len())))
                .finish(),
        }
    }
}

/// `fut`, failed with [`StorageError::Io`] naming the backend and the operation when it takes
/// longer than `limit` (networked backends: a server that stopped answering).
pub(crate) async fn timed<T>(
    backend: &str,
    limit: std::time::Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(StorageError::Io(format!(
            "{backend}: {what} timed out after {limit:?}"
        ))),
    }
}

/// Rejects keys no backend may store: the empty key.
pub(crate) fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("empty key".to_string()));
    }
    Ok(())
}

/// Validates the keys of every `Put` and `Delete` of a transaction.
pub(crate) fn validate_ops(ops: &[TxnOp]) -> Result<(), StorageError> {
    for op in ops {
        match op {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => validate_key(key)?,
            TxnOp::Check { .. } => {}
        }
    }
    Ok(())
}

/// The physical backend: an ordered map from string keys to bytes.
///
/// `list(prefix)` follows Vault's semantics: it returns the names directly under `prefix`
/// (with `prefix` stripped), sorted; a name that has further children is returned once, as
/// `"name/"`. `prefix` is either empty or ends with `/`.
///
/// A successful `put`, `delete` or `transaction` is durable when it returns (for durable backends).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// By default a transaction of one `Put` (backends with a cheaper path override it).
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        self.transaction(vec![TxnOp::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }
    /// By default a transaction of one `Delete`.
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.transaction(vec![TxnOp::Delete {
            key: key.to_string(),
        }])
        .await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), StorageError>;
    /// A short name for logs and `sys/storage` style output ("inmem", "file", ...).
    fn kind(&self) -> &'static str;
    /// The HA lock of a backend configured with `ha_enabled`, for the node `node`; `None` when
    /// the backend has no HA. From the lock's first acquisition attempt on, the backend's
    /// writes are fenced: they succeed only while `node` holds the lock, checked by the storage
    /// engine in the same transaction as the write.
    fn ha_lock(&self, node: NodeInfo) -> Option<std::sync::Arc<dyn HaLock>> {
        let _ = node;
        None
    }
    /// Every key, sorted: for `coffer operator migrate`. The default walks `list` from the
    /// root (a key ending in '/' is listed as a folder and found by a `get`).
    async fn keys(&self) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            for entry in self.list(&prefix).await? {
                let full = format!("{prefix}{entry}");
                if full.ends_with('/') {
                    if self.get(&full).await?.is_some() {
                        keys.push(full.clone());
                    }
                    stack.push(full);
                } else {
                    keys.push(full);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Collapse sorted full keys under `prefix` into Vault-style list entries.
/// `keys` must be sorted and all start with `prefix`.
pub fn collapse_list<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let entry = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(entry) {
            out.push(entry.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_groups_children() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f/", "a/z"];
        assert_eq!(collapse_list("a/", keys), vec!["b", "c/", "f/", "z"]);
    }

    #[test]
    fn txn_op_debug_hides_values() {
        let ops = [
            TxnOp::Put {
                key: "k".into(),
                value: b"hunter2".to_vec(),
            },
            TxnOp::Check {
                key: "k".into(),
                expected: Some(b"hunter2".to_vec()),
            },
            TxnOp::Delete { key: "k".into() },
        ];
        let dbg = format!("{ops:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("104"), "{dbg}"); // 'h' as a byte
        assert!(dbg.contains("<7 bytes>"), "{dbg}");
    }
}
