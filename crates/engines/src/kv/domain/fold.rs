//! Names that ignore case (Azure Key Vault's): a domain request with `fold_case` acts on the
//! secret whose name equals the request's when case is ignored, and never lets two such
//! secrets come to exist through it.
//!
//! - The exact spelling wins. Otherwise a top-level secret whose name differs only in case is
//!   the target — provided the caller's policies allow the same operation on *its* path too
//!   (the pipeline has judged the request's spelling; this judges the stored one, so both must
//!   allow it: a denial of either is `PermissionDenied`).
//! - A write that would create a secret first looks, under a lock held on the lowercased name,
//!   for another spelling: it writes there instead (if allowed), and a restore of a backup is
//!   refused (`AlreadyExists`). Two spellings cannot both be created through folding requests,
//!   however they race.
//! - Two stored spellings (possible through case-sensitive dialects) make a folding request by a
//!   third spelling a `Conflict`.
//!
//! Only names without `/` fold (they are the only ones Azure can name); the lookup lists the
//! mount's top level once.

use super::super::store::PathLocks;
use super::super::KvEngine;
use super::ops::{is_missing_secret, Domain};
use super::routes::DomainPath;
use coffer_core::error::{CoreError, ErrorCode, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;

/// The Vault path (below the mount) and operation the ACL checks a domain path as, for the
/// stored spelling; `None` for paths that do not fold.
fn acl_of(op: DomainPath) -> Option<(Operation, &'static str)> {
    Some(match op {
        DomainPath::Describe | DomainPath::ReadRotation => (Operation::Read, "metadata/"),
        DomainPath::SetAttributes | DomainPath::MoveLabel | DomainPath::SetRotation => {
            (Operation::Update, "metadata/")
        }
        DomainPath::DeleteSecret | DomainPath::Purge => (Operation::Delete, "metadata/"),
        DomainPath::ReadVersion | DomainPath::Backup => (Operation::Read, "data/"),
        DomainPath::PutVersion => (Operation::Update, "data/"),
        DomainPath::Restore => (Operation::Update, "undelete/"),
        DomainPath::RestoreBackup => (Operation::Create, "data/"),
        _ => return None,
    })
}

fn denied() -> CoreError {
    CoreError::new(ErrorCode::PermissionDenied, "permission denied")
}

fn ambiguous(name: &str) -> CoreError {
    CoreError::new(
        ErrorCode::Conflict,
        format!(
            "more than one secret is named {name:?} when case is ignored: rename or remove all \
             but one of them through a case-sensitive dialect"
        ),
    )
}

impl Domain<'_> {
    /// Other top-level secrets whose names equal `name` ignoring case (any state but purged).
    pub async fn other_spellings(&self, name: &str) -> Result<Vec<String>> {
        if name.contains('/') {
            return Ok(Vec::new());
        }
        let now = super::super::model::now();
        let mut out = Vec::new();
        for k in self
            .store
            .view
            .list(super::super::store::METADATA_PREFIX)
            .await?
        {
            if k.ends_with('/') || k == name || !k.eq_ignore_ascii_case(name) {
                continue;
            }
            if let Some(meta) = self.store.meta(&k).await? {
                if !meta.is_expired_deletion(now) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Whether `name` or another spelling of it exists (the create-or-update question of a
    /// folding write).
    pub async fn exists_folded(&self, name: &str) -> Result<bool> {
        Ok(self.exists(name).await? || !self.other_spellings(name).await?.is_empty())
    }
}

impl KvEngine {
    /// A domain request with `fold_case` (see the module's documentation).
    pub(crate) async fn handle_folded(
        &self,
        req: &EngineRequest<'_>,
        op: DomainPath,
        name: &str,
        fold_locks: &PathLocks,
    ) -> Result<Option<Response>> {
        let Some((acl_op, acl_prefix)) = acl_of(op).filter(|_| !name.contains('/')) else {
            return self.handle_domain(req, op, name).await;
        };
        let domain = Domain::new(req.storage, &self.locks);
        let allowed = |stored: &str| req.allows(acl_op, &format!("{acl_prefix}{stored}"));
        if matches!(op, DomainPath::PutVersion | DomainPath::RestoreBackup) {
            // may create: decide and create under one lock per folded name
            let _guard = fold_locks.lock(&name.to_ascii_lowercase()).await;
            if domain.exists(name).await? {
                return self.handle_domain(req, op, name).await;
            }
            let others = domain.other_spellings(name).await?;
            return match others.as_slice() {
                [] => self.handle_domain(req, op, name).await,
                [_] if op == DomainPath::RestoreBackup => Err(CoreError::new(
                    ErrorCode::AlreadyExists,
                    format!("a secret named {name:?} (in another case) exists"),
                )),
                [stored] if allowed(stored) => self.handle_domain(req, op, stored).await,
                [_] => Err(denied()),
                _ => Err(ambiguous(name)),
            };
        }
        let first = self.handle_domain(req, op, name).await;
        match &first {
            Err(e) if is_missing_secret(e) => {}
            _ => return first,
        }
        let others = domain.other_spellings(name).await?;
        match others.as_slice() {
            [] => first,
            [stored] if allowed(stored) => self.handle_domain(req, op, stored).await,
            [_] => Err(denied()),
            _ => Err(ambiguous(name)),
        }
    }
}
