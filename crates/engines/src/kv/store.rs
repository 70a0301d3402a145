//! Storage layout of a kv mount and the atomic read-modify-write of a secret.
//!
//! Under the mount's [`View`]:
//!
//! | key                       | record                                              |
//! |---------------------------|-----------------------------------------------------|
//! | `config`                  | [`KvConfig`] (v2)                                   |
//! | `metadata/<path>`         | [`SecretMeta`]: settings + every retained version   |
//! | `versions/<path>/<n>`     | [`Payload`] of version `n` (header line + raw bytes) |
//! | `deleted/<path>`          | [`DeletedEntry`]: index of secrets scheduled for deletion |
//! | `v1/<path>`               | kv v1 entry (a JSON object)                         |
//!
//! Listing secrets walks only `metadata/`, so it never touches payloads. A version key is
//! unambiguous (the last segment is the number), and payloads are always deleted by exact key
//! from the metadata record, never by prefix, so `a` and `a/1` never interfere.
//!
//! Every change that touches a secret is ONE [`View::transaction`] that starts with a
//! [`BarrierOp::Check`] of the metadata record as it was read; a concurrent change makes the
//! commit fail and the caller re-runs its read-modify-write (see [`SecretStore::update`]).
//! Within one process, writers to the same path are additionally serialized by a striped lock,
//! so retries only happen across processes (HA nodes sharing a backend).

#[allow(unused_imports)] // named in the layout table above
use super::model::DeletedEntry;
use super::model::{KvConfig, Payload, SecretMeta, FORMAT};
use coffer_core::barrier::{BarrierOp, View};
use coffer_core::error::{CoreError, ErrorCode, Result};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use zeroize::Zeroizing;

pub const CONFIG_KEY: &str = "config";
pub const METADATA_PREFIX: &str = "metadata/";
pub const VERSIONS_PREFIX: &str = "versions/";
pub const V1_PREFIX: &str = "v1/";
pub const DELETED_PREFIX: &str = "deleted/";

/// How many times a read-modify-write is re-run after losing a race.
const MAX_ATTEMPTS: usize = 64;
const LOCK_STRIPES: usize = 256;

pub fn meta_key(path: &str) -> String {
    format!("{METADATA_PREFIX}{path}")
}

pub fn version_key(path: &str, n: u64) -> String {
    format!("{VERSIONS_PREFIX}{path}/{n}")
}

pub fn deleted_key(path: &str) -> String {
    format!("{DELETED_PREFIX}{path}")
}

pub fn v1_key(path: &str) -> String {
    format!("{V1_PREFIX}{path}")
}

/// A secret's metadata as read, with the exact plaintext it was parsed from (for the commit's
/// check).
pub struct Snapshot {
    raw: Option<Zeroizing<Vec<u8>>>,
    pub meta: Option<SecretMeta>,
}

/// What a read-modify-write step decided.
// Short-lived (one per attempt), so the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Change<T> {
    /// Nothing to write; return this.
    None(T),
    /// Write these records atomically, then return this.
    Commit {
        /// The new metadata record; `None` deletes it.
        meta: Option<SecretMeta>,
        puts: Vec<(String, Zeroizing<Vec<u8>>)>,
        deletes: Vec<String>,
        result: T,
    },
}

impl Change<()> {
    /// Write only the metadata record, and only if something in it changed.
    pub fn metadata_if(changed: bool, meta: SecretMeta) -> Self {
        if changed {
            Change::Commit {
                meta: Some(meta),
                puts: vec![],
                deletes: vec![],
                result: (),
            }
        } else {
            Change::None(())
        }
    }
}

/// Striped async locks serializing writers of one path inside this process.
pub struct PathLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for PathLocks {
    fn default() -> Self {
        PathLocks {
            stripes: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

impl PathLocks {
    pub async fn lock(&self, path: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        let i = (h.finish() % LOCK_STRIPES as u64) as usize;
        self.stripes[i].lock().await
    }
}

/// Refuse records written by a newer Coffer: rewriting them here could drop what this version
/// does not understand.
fn check_format(format: u32) -> Result<()> {
    if format > FORMAT {
        return Err(CoreError::internal(format!(
            "stored kv record has format {format}, newer than this server understands ({FORMAT})"
        )));
    }
    Ok(())
}

fn is_conflict(e: &CoreError) -> bool {
    // a failed storage-level check surfaces as Conflict (a user's CAS mismatch is CasMismatch)
    e.code == ErrorCode::Conflict
}

/// Typed access to a kv v2 mount's records.
pub struct SecretStore<'a> {
    pub view: &'a View,
}

impl<'a> SecretStore<'a> {
    pub fn new(view: &'a View) -> Self {
        SecretStore { view }
    }

    pub async fn config(&self) -> Result<KvConfig> {
        let config: KvConfig = self.view.get_json(CONFIG_KEY).await?.unwrap_or_default();
        check_format(config.format)?;
        Ok(config)
    }

    /// Read-modify-write of the mount config, atomic against concurrent config writers.
    pub async fn update_config(&self, mut change: impl FnMut(&mut KvConfig)) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let raw = self.view.get(CONFIG_KEY).await?;
            let mut config = match &raw {
                None => KvConfig::default(),
                Some(bytes) => serde_json::from_slice(bytes)
                    .map_err(|_| CoreError::internal("stored kv config is corrupted"))?,
            };
            check_format(config.format)?;
            change(&mut config);
            let value = Zeroizing::new(
                serde_json::to_vec(&config)
                    .map_err(|_| CoreError::internal("could not encode kv config"))?,
            );
            let ops = vec![
                BarrierOp::Check {
                    key: CONFIG_KEY.to_string(),
                    expected: raw,
                },
                BarrierOp::Put {
                    key: CONFIG_KEY.to_string(),
                    value,
                },
            ];
            match self.view.transaction(ops).await {
                Ok(()) => return Ok(()),
                Err(e) if is_conflict(&e) => coffer_core::optimistic::jitter_sleep(1).await,
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::internal(
            "the kv config was changed concurrently too many times; retry the request",
        ))
    }

    /// Read a secret's metadata (no lock; readers never block).
    pub async fn meta(&self, path: &str) -> Result<Option<SecretMeta>> {
        Ok(self.snapshot(path).await?.meta)
    }

    pub async fn snapshot(&self, path: &str) -> Result<Snapshot> {
        let raw = self.view.get(&meta_key(path)).await?;
        let meta = match &raw {
            None => None,
            Some(bytes) => {
                let meta = serde_json::from_slice::<SecretMeta>(bytes)
                    .map_err(|_| CoreError::internal("stored secret metadata is corrupted"))?;
                check_format(meta.format)?;
                Some(meta)
            }
        };
        Ok(Snapshot { raw, meta })
    }

    /// The payload of version `n`, if stored.
    pub async fn payload(&self, path: &str, n: u64) -> Result<Option<Payload>> {
        match self.view.get(&version_key(path, n)).await? {
            None => Ok(None),
            Some(raw) => Payload::decode(&raw).map(Some),
        }
    }

    /// Commit a change made against `snap` in one transaction, failing (with a Conflict
    /// storage conflict) if the metadata record changed since it was read.
    pub async fn commit(
        &self,
        path: &str,
        snap: Snapshot,
        meta: Option<&SecretMeta>,
        puts: Vec<(String, Zeroizing<Vec<u8>>)>,
        deletes: Vec<String>,
    ) -> Result<()> {
        let key = meta_key(path);
        let mut ops = Vec::with_capacity(puts.len() + deletes.len() + 2);
        ops.push(BarrierOp::Check {
            key: key.clone(),
            expected: snap.raw,
        });
        for (key, value) in puts {
            ops.push(BarrierOp::Put { key, value });
        }
        for key in deletes {
            ops.push(BarrierOp::Delete { key });
        }
        match meta {
            Some(m) => {
                let value = Zeroizing::new(
                    serde_json::to_vec(m)
                        .map_err(|_| CoreError::internal("could not encode secret metadata"))?,
                );
                ops.push(BarrierOp::Put { key, value });
            }
            None => ops.push(BarrierOp::Delete { key }),
        }
        self.view.transaction(ops).await
    }

    /// Run a read-modify-write of one secret until it commits without a concurrent change in
    /// between. `step` sees the current metadata and decides; errors it returns (bad input, a
    /// user CAS mismatch) end the loop at once and nothing is written.
    pub async fn update<T, F, Fut>(&self, locks: &PathLocks, path: &str, mut step: F) -> Result<T>
    where
        F: FnMut(Option<SecretMeta>) -> Fut,
        Fut: std::future::Future<Output = Result<Change<T>>>,
    {
        let _guard = locks.lock(path).await;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                coffer_core::optimistic::jitter_sleep(attempt).await;
            }
            let mut snap = self.snapshot(path).await?;
            let current = snap.meta.take();
            match step(current).await? {
                Change::None(result) => return Ok(result),
                Change::Commit {
                    meta,
                    puts,
                    deletes,
                    result,
                } => match self.commit(path, snap, meta.as_ref(), puts, deletes).await {
                    Ok(()) => return Ok(result),
                    Err(e) if is_conflict(&e) => {
                        tracing::debug!(path, attempt, "kv: concurrent change, retrying");
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        tracing::warn!(path, "kv: gave up after repeated concurrent changes");
        Err(CoreError::internal(
            "the secret was changed concurrently too many times; retry the request",
        ))
    }
}
