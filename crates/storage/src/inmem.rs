//! In-memory backend, for development mode and tests. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::{collapse_list, validate_key, validate_ops, Backend, StorageError, TxnOp};

/// An ordered in-memory map. Cheap to create; all operations are synchronous under a lock.
#[derive(Default)]
pub struct InmemBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemBackend {
    pub fn new() -> InmemBackend {
        InmemBackend::default()
    }

    /// Number of stored keys.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }
}

impl std::fmt::Debug for InmemBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InmemBackend")
            .field("keys", &self.len())
            .finish()
    }
}

#[async_trait]
impl Backend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        self.map.write().insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.map.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read();
        let keys = map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(collapse_list(prefix, keys))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), StorageError> {
        validate_ops(&ops)?;
        let mut map = self.map.write();
        for op in &ops {
            if let TxnOp::Check { key, expected } = op {
                if map.get(key.as_str()) != expected.as_ref() {
                    return Err(StorageError::CasFailed(key.clone()));
                }
            }
        }
        for op in ops {
            match op {
                TxnOp::Put { key, value } => {
                    map.insert(key, value);
                }
                TxnOp::Delete { key } => {
                    map.remove(&key);
                }
                TxnOp::Check { .. } => {}
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}
