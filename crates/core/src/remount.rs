//! `sys/remount`: move a mount to another path. A mount's data lives under its UUID
//! ([`crate::router::MountEntry::storage_prefix`]), so moving it rewrites only the mount table;
//! the leases it handed out are revoked, as Vault does.

use crate::core::Core;
use crate::error::{CoreError, Result};
use crate::router::Mount;
use serde::{Deserialize, Serialize};

/// Mounts that never move, nor can be moved onto (Vault's protected mounts).
const PROTECTED: [&str; 5] = ["sys/", "auth/token/", "cubbyhole/", "identity/", "audit/"];

/// The record of one remount, as `sys/remount/status/<id>` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationInfo {
    pub source_mount: String,
    pub target_mount: String,
    pub status: String,
}

/// Where migration records are kept, below the system view.
const MIGRATIONS: &str = "remount/";

fn mount_path(p: &str) -> String {
    format!("{}/", p.trim().trim_matches('/'))
}

impl Core {
    /// Move the mount at `from` to `to`; returns the migration id. The move is complete when
    /// this returns (its status reads `success`).
    pub async fn remount(&self, from: &str, to: &str) -> Result<String> {
        if from.is_empty() || to.is_empty() {
            return Err(CoreError::invalid(
                "both 'from' and 'to' path must be specified as a string",
            ));
        }
        for (name, p) in [("from", from), ("to", to)] {
            if p.starts_with(' ') || p.ends_with(' ') {
                return Err(CoreError::invalid(format!(
                    "'{name}' path cannot contain trailing whitespace"
                )));
            }
        }
        let (src, dst) = (mount_path(from), mount_path(to));
        if dst == "/" {
            return Err(CoreError::invalid("invalid destination mount: empty path"));
        }
        crate::util::validate_path(&dst)
            .map_err(|e| CoreError::invalid(format!("invalid destination mount: {}", e.message)))?;
        let (src_auth, dst_auth) = (src.starts_with("auth/"), dst.starts_with("auth/"));
        if src_auth && !dst_auth {
            return Err(CoreError::invalid(format!(
                "cannot remount auth mount to non-auth mount \"{dst}\""
            )));
        }
        if !src_auth && dst_auth {
            return Err(CoreError::invalid(format!(
                "cannot remount non-auth mount to auth mount \"{dst}\""
            )));
        }
        if PROTECTED.iter().any(|p| src.starts_with(p)) {
            return Err(CoreError::invalid(format!("cannot remount \"{src}\"")));
        }
        if PROTECTED
            .iter()
            .any(|p| dst.starts_with(p) || p.starts_with(&dst))
        {
            return Err(CoreError::invalid(format!(
                "cannot remount to destination \"{dst}\""
            )));
        }

        let active = self.active()?;
        let _guard = self.transition().lock().await;
        let all = active.router.mounts();
        let idx = all
            .iter()
            .position(|m| m.entry.path == src)
            .ok_or_else(|| CoreError::invalid(format!("no matching mount at \"{src}\"")))?;
        if let Some(m) = all.iter().find(|m| {
            dst.starts_with(m.entry.path.as_str()) || m.entry.path.starts_with(dst.as_str())
        }) {
            return Err(CoreError::invalid(format!(
                "path already in use at \"{}\"",
                m.entry.path
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let info = MigrationInfo {
            source_mount: src.clone(),
            target_mount: dst.clone(),
            status: "in-progress".into(),
        };
        let records = active.system.sub(MIGRATIONS);
        records.put_json(&id, &info).await?;

        // what the mount handed out under its old path goes, as in Vault
        for lease in active.leases.ids_under(&src).await? {
            active.revoke_lease_in(&lease, Some(&all[idx])).await?;
        }
        let mut entry = (*all[idx].entry).clone();
        entry.path.clone_from(&dst);
        let moved: Mount = self.instantiate(&active, entry)?;
        let mut next = all.clone();
        next[idx] = moved;
        active.router.set(next);
        if let Err(e) = self.persist_mounts(&active).await {
            active.router.set(all);
            let failed = MigrationInfo {
                status: "failure".into(),
                ..info
            };
            records.put_json(&id, &failed).await?;
            return Err(e);
        }
        records
            .put_json(
                &id,
                &MigrationInfo {
                    status: "success".into(),
                    ..info
                },
            )
            .await?;
        tracing::info!(migration_id = %id, from = %src, to = %dst, "mount moved");
        Ok(id)
    }

    /// The record of a remount (`sys/remount/status/<id>`), if there is one.
    pub async fn remount_status(&self, id: &str) -> Result<Option<MigrationInfo>> {
        let active = self.active()?;
        if id.is_empty() || id.contains('/') {
            return Err(CoreError::invalid("migrationID must be specified"));
        }
        active.system.sub(MIGRATIONS).get_json(id).await
    }
}
