//! The decision of a put: every rule a new version passes (deletion state, `must_create`,
//! check-and-set, idempotency, version ids, labels, pruning).

use super::super::model::{IdempotencyRecord, KvConfig, SecretMeta, AWSCURRENT};
use super::super::store::{self, Change};
use super::labels::{attach_label, materialize_current};
use super::ops::{already_exists, check_cas, no_secret, scheduled_for_deletion, secret_keys};
use super::types::{normalize_version_id, PutVersion};
use super::views::VersionView;
use coffer_core::error::{CoreError, ErrorCode, Result};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The decision of a put, given the secret as read (one attempt of the read-modify-write).
pub(super) fn put_step(
    name: &str,
    meta: Option<SecretMeta>,
    at: OffsetDateTime,
    put: &PutVersion,
    encoded: Zeroizing<Vec<u8>>,
    config: &KvConfig,
) -> Result<Change<VersionView>> {
    let version_id = put
        .version_id
        .as_deref()
        .map(normalize_version_id)
        .transpose()?;
    let token = put.idempotency_token.clone().or_else(|| version_id.clone());
    let mut deletes = Vec::new();
    let mut meta = match meta {
        Some(m) if m.is_expired_deletion(at) && !put.must_exist => {
            // purged lazily: the name starts over, with a new secret id
            deletes = secret_keys(name, &m);
            SecretMeta::new(name, at)
        }
        Some(m) if m.is_expired_deletion(at) => return Err(no_secret(name)),
        Some(m) if m.is_deleted() => return Err(scheduled_for_deletion(name)),
        // a retried create (same token) is answered below, as any idempotent retry
        Some(m)
            if put.must_create
                && !token
                    .as_ref()
                    .is_some_and(|t| m.idempotency.contains_key(t)) =>
        {
            return Err(already_exists(name))
        }
        Some(mut m) => {
            m.upgrade();
            m
        }
        None if put.must_exist => return Err(no_secret(name)),
        None => SecretMeta::new(name, at),
    };
    check_cas(put.cas, config, &meta)?;
    let digest = put.payload.digest(&meta.secret_id);
    if let Some(rec) = token.as_ref().and_then(|t| meta.idempotency.get(t)) {
        if rec.digest != digest {
            return Err(CoreError::new(
                ErrorCode::AlreadyExists,
                "this idempotency token (or version id) was already used with a different payload",
            ));
        }
        let n = rec.version;
        let vm = meta
            .versions
            .get(&n)
            .ok_or_else(|| CoreError::internal("idempotency record names a missing version"))?;
        return Ok(Change::None(VersionView::of(&meta, n, vm, at)));
    }
    if let Some(id) = &version_id {
        if meta.version_with_id(id).is_some() {
            return Err(CoreError::new(
                ErrorCode::AlreadyExists,
                format!("a version with id {id} already exists"),
            ));
        }
    }
    // a put without explicit labels moves AWSCURRENT only on a secret that uses staging labels:
    // a secret written only through Vault stays unlabelled (so Vault's version pruning is
    // unchanged), and its AWSCURRENT is its latest version
    let labelled = meta.versions.values().any(|v| !v.staging_labels.is_empty());
    // explicit labels on a secret written only through Vault: its implied AWSCURRENT (the
    // version that is current before this put) becomes explicit first, so that e.g. a new
    // AWSPENDING version does not become current
    if put.staging_labels.as_ref().is_some_and(|l| !l.is_empty()) && !labelled {
        materialize_current(&mut meta, at);
    }
    put.attributes.apply_secret(&mut meta)?;
    let n = meta.add_version(at, &put.payload.encoding, config);
    if put.attributes.has_version_changes() {
        put.attributes.apply_version(&mut meta, n, at)?;
    }
    let default_labels: Vec<String> = if labelled {
        vec![AWSCURRENT.to_string()]
    } else {
        Vec::new()
    };
    for l in put.staging_labels.as_deref().unwrap_or(&default_labels) {
        attach_label(&mut meta, l, n, at)?;
    }
    let vm = meta
        .versions
        .get_mut(&n)
        .ok_or_else(|| CoreError::internal("new version missing from metadata"))?;
    if let Some(id) = version_id {
        vm.uuid = id;
    }
    // a new version has not been changed since it was created
    vm.updated_time = None;
    if let Some(t) = token {
        meta.idempotency
            .insert(t, IdempotencyRecord { version: n, digest });
    }
    let pruned = meta.prune(config);
    deletes.extend(pruned.into_iter().map(|v| store::version_key(name, v)));
    let vm = meta
        .versions
        .get(&n)
        .ok_or_else(|| CoreError::internal("new version missing from metadata"))?;
    let view = VersionView::of(&meta, n, vm, at);
    Ok(Change::Commit {
        puts: vec![(store::version_key(name, n), encoded)],
        deletes,
        meta: Some(meta),
        result: view,
    })
}
