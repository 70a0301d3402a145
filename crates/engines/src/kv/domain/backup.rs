//! Backups of whole secrets (Azure's backup / restore): every retained version with its
//! payload and the secret's settings, sealed by the barrier (so only a Coffer holding the same
//! keyring opens it), restorable under the same name only.
//!
//! The blob is `CKVB`, a format byte, the name's length (u16, big endian), the name, then the
//! sealed record. The name travels in the clear so a dialect can ask for the restore on the
//! right path (the ACL checks that path); it is bound to the sealed part (the seal's purpose is
//! `kv-backup/<name>`), so a blob with another name in its header does not open.

use super::super::model::{self, SecretMeta};
use super::super::store::{self, Change};
use super::ops::{no_secret, secret_keys, Domain};
use super::views::SecretView;
use base64::Engine as _;
use coffer_core::error::{CoreError, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CKVB";
const FORMAT: u8 = 1;
/// The largest backup accepted for a restore (a secret with many large versions stays far
/// below it).
pub const MAX_BACKUP_BYTES: usize = 4 * 1024 * 1024;

fn purpose(name: &str) -> String {
    format!("kv-backup/{name}")
}

fn not_a_backup() -> CoreError {
    CoreError::invalid(
        "the backup blob is malformed, corrupted or was made by a Coffer with another keyring",
    )
}

/// What is sealed.
#[derive(Serialize, Deserialize)]
struct Record {
    meta: SecretMeta,
    /// Version number → the stored payload record (base64).
    payloads: BTreeMap<u64, String>,
}

/// The secret name a backup blob is for (read from its header, not yet authenticated: the
/// restore checks it against the sealed part).
pub fn backup_name(blob: &[u8]) -> Result<&str> {
    let rest = blob
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(not_a_backup)?;
    let (&format, rest) = rest.split_first().ok_or_else(not_a_backup)?;
    if format != FORMAT || rest.len() < 2 {
        return Err(not_a_backup());
    }
    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let name = rest.get(2..2 + len).ok_or_else(not_a_backup)?;
    let name = std::str::from_utf8(name).map_err(|_| not_a_backup())?;
    if name.is_empty() {
        return Err(not_a_backup());
    }
    Ok(name)
}

impl Domain<'_> {
    /// Back up a live secret: every retained version (payloads of destroyed versions are gone).
    pub async fn backup(&self, name: &str) -> Result<Vec<u8>> {
        let now = model::now();
        let meta = self
            .store
            .meta(name)
            .await?
            .ok_or_else(|| no_secret(name))?;
        let meta = super::ops::live(meta, now)?;
        let name_len = u16::try_from(name.len())
            .map_err(|_| CoreError::invalid("the secret's name is too long to back up"))?;
        let mut payloads = BTreeMap::new();
        for (n, vm) in &meta.versions {
            if vm.destroyed {
                continue;
            }
            if let Some(raw) = self.store.view.get(&store::version_key(name, *n)).await? {
                payloads.insert(
                    *n,
                    base64::engine::general_purpose::STANDARD.encode(raw.as_slice()),
                );
            }
        }
        let record = Record { meta, payloads };
        let plain = Zeroizing::new(
            serde_json::to_vec(&record)
                .map_err(|_| CoreError::internal("could not encode the backup"))?,
        );
        // the record's base64 payloads are secrets too
        let mut record = record;
        for p in record.payloads.values_mut() {
            zeroize::Zeroize::zeroize(p);
        }
        let sealed = self.store.view.seal_value(&purpose(name), &plain)?;
        let mut out = Vec::with_capacity(7 + name.len() + sealed.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Restore a backup under `name` (which must be the name it was made of). `AlreadyExists`
    /// while a secret of that name exists in any state (also while scheduled for deletion).
    pub async fn restore_backup(&self, name: &str, blob: &[u8]) -> Result<SecretView> {
        if blob.len() > MAX_BACKUP_BYTES {
            return Err(CoreError::new(
                ErrorCode::PayloadTooLarge,
                "the backup is too large",
            ));
        }
        if backup_name(blob)? != name {
            return Err(CoreError::invalid(format!(
                "the backup is not a backup of {name:?}"
            )));
        }
        let sealed = &blob[7 + name.len()..];
        let plain = self
            .store
            .view
            .open_value(&purpose(name), sealed)
            .map_err(|_| not_a_backup())?;
        let mut record: Record = serde_json::from_slice(&plain).map_err(|_| not_a_backup())?;
        if record.meta.path != name {
            return Err(not_a_backup());
        }
        let mut puts = Vec::with_capacity(record.payloads.len());
        for (n, b64) in &mut record.payloads {
            if !record.meta.versions.contains_key(n) {
                return Err(not_a_backup());
            }
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| not_a_backup())?,
            );
            zeroize::Zeroize::zeroize(b64);
            puts.push((store::version_key(name, *n), raw));
        }
        let mut meta = record.meta;
        meta.deletion = None;
        let (meta, puts) = (&meta, &puts);
        self.store
            .update(self.locks, name, |current| async move {
                let now = model::now();
                let mut deletes = Vec::new();
                match current {
                    Some(m) if m.is_expired_deletion(now) => {
                        deletes = secret_keys(name, &m);
                        deletes.retain(|k| !puts.iter().any(|(p, _)| p == k));
                    }
                    Some(_) => {
                        return Err(CoreError::new(
                            ErrorCode::AlreadyExists,
                            format!("secret {name:?} already exists"),
                        ))
                    }
                    None => {}
                }
                let mut meta = meta.clone();
                meta.touch(now);
                let view = SecretView::of(&meta, now);
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: puts.clone(),
                    deletes,
                    result: view,
                })
            })
            .await
    }
}
