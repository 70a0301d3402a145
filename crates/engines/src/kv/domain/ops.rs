//! The operations of the kv domain over one mount's records.

use super::super::model::{
    self, format_time, DeletedEntry, KvConfig, Payload, SecretDeletion, SecretMeta, Unusable,
    CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON,
};
use super::super::params;
use super::super::store::{self, Change, PathLocks, SecretStore};
use super::labels::{attach_label, detach_label, validate_label};
use super::put::put_step;
use super::types::{
    Attributes, CustomMetadataChange, DeleteSecret, IfGone, ListOptions, PutVersion, Selector,
};
use super::views::{ListPage, SecretView, VersionView};
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, ErrorCode, Result};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
const CAS_REQUIRED: &str = "check-and-set parameter required for this call";
/// Default and largest page of a list.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

pub(super) fn scheduled_for_deletion(name: &str) -> CoreError {
    CoreError::new(
        ErrorCode::InvalidState,
        format!("secret {name:?} is scheduled for deletion; restore it first"),
    )
}

pub(super) fn already_exists(name: &str) -> CoreError {
    CoreError::new(
        ErrorCode::AlreadyExists,
        format!("secret {name:?} already exists"),
    )
}

const NO_SECRET_SUFFIX: &str = " does not exist";

pub(super) fn no_secret(name: &str) -> CoreError {
    CoreError::not_found(format!("secret {name:?}{NO_SECRET_SUFFIX}"))
}

/// Whether a `NotFound` from the domain means the secret itself is missing (rather than the
/// version or label asked for).
pub fn is_missing_secret(e: &CoreError) -> bool {
    e.code == ErrorCode::NotFound
        && e.message.starts_with("secret \"")
        && e.message.ends_with(NO_SECRET_SUFFIX)
}

/// A live secret: not scheduled for deletion.
pub(super) fn live(meta: SecretMeta, at: OffsetDateTime) -> Result<SecretMeta> {
    if meta.is_expired_deletion(at) {
        return Err(no_secret(&meta.path));
    }
    if meta.is_deleted() {
        return Err(scheduled_for_deletion(&meta.path));
    }
    Ok(meta)
}

/// Every storage key that a whole secret occupies (for a purge).
pub(super) fn secret_keys(name: &str, meta: &SecretMeta) -> Vec<String> {
    let mut keys: Vec<String> = meta
        .versions
        .iter()
        .filter(|(_, vm)| !vm.destroyed)
        .map(|(n, _)| store::version_key(name, *n))
        .collect();
    if meta.is_deleted() {
        keys.push(store::deleted_key(name));
    }
    if meta.rotation.is_some() {
        keys.push(super::rotation::index_key(name));
    }
    keys
}

fn unusable(name: &str, n: u64, why: Unusable) -> CoreError {
    let reason = match why {
        Unusable::Disabled => "is disabled".to_string(),
        Unusable::NotYetValid(t) => format!("is not valid before {}", unix_time(t)),
        Unusable::Expired(t) => format!("expired at {}", unix_time(t)),
    };
    CoreError::new(
        ErrorCode::Disabled,
        format!("version {n} of secret {name:?} {reason}"),
    )
}

fn unix_time(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(format_time)
        .unwrap_or_else(|_| t.to_string())
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// A payload as a JSON object, by the model's mapping rule: a JSON object as itself; any other
/// payload as `{"value": <text, or base64 of binary bytes>}`.
pub fn payload_object(payload: &Payload) -> Map<String, Value> {
    let mut view = VersionView::default();
    fill_payload(&mut view, payload, false);
    view.data.unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert(
            "value".into(),
            Value::String(view.value.unwrap_or_default()),
        );
        m
    })
}

/// Put the payload into a view, by its encoding; `as_text`: a JSON object stays the text it was
/// stored as (in `value`), for dialects that hand back exactly what was put.
pub fn fill_payload(view: &mut VersionView, payload: &Payload, as_text: bool) {
    use base64::Engine as _;
    if payload.encoding == CONTENT_TYPE_JSON && !as_text {
        if let Some(m) = json_object(&payload.bytes) {
            view.data = Some(m);
            return;
        }
    }
    if payload.encoding != CONTENT_TYPE_BINARY {
        if let Ok(s) = std::str::from_utf8(&payload.bytes) {
            view.value = Some(s.to_string());
            return;
        }
    }
    view.value = Some(base64::engine::general_purpose::STANDARD.encode(&*payload.bytes));
}

/// The kv domain over one mount.
pub struct Domain<'a> {
    pub(crate) store: SecretStore<'a>,
    pub(super) locks: &'a PathLocks,
}

impl<'a> Domain<'a> {
    pub fn new(view: &'a View, locks: &'a PathLocks) -> Self {
        Domain {
            store: SecretStore::new(view),
            locks,
        }
    }

    pub async fn config(&self) -> Result<KvConfig> {
        self.store.config().await
    }

    /// Change the mount's settings; `None` leaves a field. A negative `delete_version_after`
    /// disables it mount-wide.
    pub async fn set_config(
        &self,
        max_versions: Option<u32>,
        cas_required: Option<bool>,
        delete_version_after: Option<i64>,
    ) -> Result<()> {
        self.store
            .update_config(|c| {
                if let Some(m) = max_versions {
                    c.max_versions = m;
                }
                if let Some(b) = cas_required {
                    c.cas_required = b;
                }
                if let Some(d) = delete_version_after {
                    c.delete_version_after = if d < 0 { -1 } else { d };
                }
            })
            .await
    }

    /// Whether a secret record exists (any state).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.store.meta(name).await?.is_some())
    }

    /// The secret and its versions, also while it is scheduled for deletion.
    pub async fn describe(&self, name: &str) -> Result<SecretView> {
        let now = model::now();
        let meta = self
            .store
            .meta(name)
            .await?
            .ok_or_else(|| no_secret(name))?;
        if meta.is_expired_deletion(now) {
            return Err(no_secret(name));
        }
        Ok(SecretView::of(&meta, now))
    }

    /// Read a version. Fails with `NotFound` for a missing secret or version, `InvalidState`
    /// while the secret is scheduled for deletion, `Disabled` for a disabled, not-yet-valid or
    /// expired version; a soft-deleted or destroyed version per `if_gone`.
    pub async fn read(&self, name: &str, sel: &Selector, if_gone: IfGone) -> Result<VersionView> {
        self.read_as(name, sel, if_gone, false).await
    }

    /// [`Self::read`]; `as_text`: a JSON payload is answered as the text it was stored as.
    pub async fn read_as(
        &self,
        name: &str,
        sel: &Selector,
        if_gone: IfGone,
        as_text: bool,
    ) -> Result<VersionView> {
        self.read_checked(name, sel, if_gone, as_text, true).await
    }

    /// [`Self::read_as`]; `check_usable = false` also answers a disabled, not-yet-valid or
    /// expired version (for Coffer's rotators, which must read the value they replace).
    pub async fn read_checked(
        &self,
        name: &str,
        sel: &Selector,
        if_gone: IfGone,
        as_text: bool,
        check_usable: bool,
    ) -> Result<VersionView> {
        // Readers take no lock; if a destroy or prune removes the payload between the two
        // reads, look again (the version then reads as gone).
        for _ in 0..3 {
            let now = model::now();
            let meta = self
                .store
                .meta(name)
                .await?
                .ok_or_else(|| no_secret(name))?;
            let meta = live(meta, now)?;
            let n = sel.resolve(&meta)?;
            let vm = meta
                .versions
                .get(&n)
                .ok_or_else(|| CoreError::not_found(format!("version {n} does not exist")))?;
            let mut view = VersionView::of(&meta, n, vm, now);
            if !vm.is_readable_at(now) {
                return match if_gone {
                    IfGone::Describe => Ok(view),
                    IfGone::Fail => Err(CoreError::not_found(format!(
                        "version {n} of secret {name:?} is {}",
                        if vm.destroyed { "destroyed" } else { "deleted" }
                    ))),
                };
            }
            if check_usable {
                vm.azure
                    .check_usable(now)
                    .map_err(|why| unusable(name, n, why))?;
            }
            let Some(payload) = self.store.payload(name, n).await? else {
                continue;
            };
            fill_payload(&mut view, &payload, as_text);
            self.mark_accessed(name, &meta, now).await;
            return Ok(view);
        }
        Err(CoreError::internal("could not find version data"))
    }

    /// Record the day of a read (at most one write per secret and day; best effort).
    async fn mark_accessed(&self, name: &str, meta: &SecretMeta, now: OffsetDateTime) {
        let day = format_time(now.replace_time(time::Time::MIDNIGHT));
        if meta.last_accessed_date.as_deref() == Some(day.as_str()) {
            return;
        }
        let day = &day;
        let r = self
            .store
            .update(self.locks, name, |m| async move {
                let Some(mut m) = m else {
                    return Ok(Change::None(()));
                };
                if m.last_accessed_date.as_deref() == Some(day.as_str()) {
                    return Ok(Change::None(()));
                }
                m.upgrade();
                m.last_accessed_date = Some(day.clone());
                Ok(Change::metadata_if(true, m))
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "kv: could not record the access date");
        }
    }

    /// Write a new version (see [`PutVersion`]). Answers the version without its payload.
    pub async fn put(&self, name: &str, put: PutVersion) -> Result<VersionView> {
        put.validate()?;
        let encoded = put.payload.encode()?;
        let config = self.store.config().await?;
        let (config, put) = (&config, &put);
        self.store
            .update(self.locks, name, |meta| {
                let encoded = encoded.clone();
                async move { put_step(name, meta, model::now(), put, encoded, config) }
            })
            .await
    }

    /// Vault's patch: an RFC 7396 merge of `patch` into the latest version's JSON object,
    /// written as a new version in the same commit. A soft-deleted or destroyed latest version
    /// is answered as is (without payload, nothing written).
    pub async fn patch_latest(
        &self,
        name: &str,
        patch: &Value,
        cas: Option<u64>,
    ) -> Result<VersionView> {
        let config = self.store.config().await?;
        let config = &config;
        let store = &self.store;
        store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                check_cas(cas, config, &meta)?;
                let n = meta.current_version;
                let vm = meta
                    .versions
                    .get(&n)
                    .ok_or_else(|| CoreError::not_found(format!("version {n} does not exist")))?;
                if !vm.is_readable_at(now) {
                    return Ok(Change::None(VersionView::of(&meta, n, vm, now)));
                }
                vm.azure
                    .check_usable(now)
                    .map_err(|why| unusable(name, n, why))?;
                let payload = store
                    .payload(name, n)
                    .await?
                    .ok_or_else(|| CoreError::internal("could not find version data"))?;
                let mut current = Value::Object(payload_object(&payload));
                params::merge_patch(&mut current, patch);
                let Value::Object(merged) = current else {
                    return Err(CoreError::internal("patched data is not an object"));
                };
                let mut put = PutVersion::new(Payload::from_json_object(&merged)?);
                // the caller's cas (or none) was checked above
                put.cas = Some(n);
                let encoded = put.payload.encode()?;
                put_step(name, Some(meta), now, &put, encoded, config)
            })
            .await
    }

    /// Soft-delete (`delete = true`) or undelete versions (Vault's `delete/`, `undelete/`,
    /// `DELETE data/`). Destroyed versions stay destroyed; missing ones are ignored.
    pub async fn set_versions_deleted(
        &self,
        name: &str,
        versions: &[Selector],
        delete: bool,
    ) -> Result<()> {
        let config = self.store.config().await?;
        let config = &config;
        self.store
            .update(self.locks, name, |meta| async move {
                let Some(meta) = meta else {
                    return Ok(Change::None(()));
                };
                let now = model::now();
                let mut meta = live(meta, now)?;
                // like Vault, an undeleted version gets a fresh delete_version_after deadline
                let deadline = meta.deletion_deadline(now, config);
                let mut changed = false;
                for sel in versions {
                    let Ok(n) = sel.resolve(&meta) else { continue };
                    let Some(vm) = meta.versions.get_mut(&n) else {
                        continue;
                    };
                    if delete && vm.is_readable_at(now) {
                        vm.deletion_time = Some(format_time(now));
                        changed = true;
                    } else if !delete && !vm.destroyed && vm.deletion_time != deadline {
                        vm.deletion_time = deadline.clone();
                        changed = true;
                    }
                }
                if changed {
                    meta.upgrade();
                    meta.touch(now);
                }
                Ok(Change::metadata_if(changed, meta))
            })
            .await
    }

    /// Remove the payloads of versions for good. Missing versions are ignored.
    pub async fn destroy(&self, name: &str, versions: &[Selector]) -> Result<()> {
        self.store
            .update(self.locks, name, |meta| async move {
                let Some(meta) = meta else {
                    return Ok(Change::None(()));
                };
                let now = model::now();
                let mut meta = live(meta, now)?;
                let mut deletes = Vec::new();
                for sel in versions {
                    let Ok(n) = sel.resolve(&meta) else { continue };
                    if let Some(vm) = meta.versions.get_mut(&n) {
                        if !vm.destroyed {
                            vm.destroyed = true;
                            vm.updated_time = Some(format_time(now));
                            deletes.push(store::version_key(name, n));
                        }
                    }
                }
                if deletes.is_empty() {
                    return Ok(Change::None(()));
                }
                meta.upgrade();
                meta.touch(now);
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes,
                    result: (),
                })
            })
            .await
    }

    /// Change settings and version attributes. With `create`, a missing secret is created
    /// (Vault's metadata write); otherwise it is `NotFound`.
    pub async fn set_attributes(
        &self,
        name: &str,
        attrs: &Attributes,
        create: bool,
    ) -> Result<SecretView> {
        self.change_settings(name, attrs, create, false).await
    }

    /// Create a secret without versions (AWS `CreateSecret` without a value): `AlreadyExists`
    /// when it exists, `InvalidState` while it is scheduled for deletion.
    pub async fn create_empty(&self, name: &str, attrs: &Attributes) -> Result<SecretView> {
        self.change_settings(name, attrs, true, true).await
    }

    async fn change_settings(
        &self,
        name: &str,
        attrs: &Attributes,
        create: bool,
        only_create: bool,
    ) -> Result<SecretView> {
        if let Some(CustomMetadataChange::Replace(m)) = &attrs.custom_metadata {
            params::validate_custom_metadata(m)?;
        }
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut deletes = Vec::new();
                let mut meta = match meta {
                    Some(m) if m.is_expired_deletion(now) && create => {
                        deletes = secret_keys(name, &m);
                        SecretMeta::new(name, now)
                    }
                    Some(m) if only_create => {
                        live(m, now)?;
                        return Err(already_exists(name));
                    }
                    Some(m) => live(m, now)?,
                    None if create => SecretMeta::new(name, now),
                    None => return Err(no_secret(name)),
                };
                meta.upgrade();
                attrs.apply_secret(&mut meta)?;
                if attrs.has_version_changes() {
                    let n = attrs.version.resolve(&meta)?;
                    attrs.apply_version(&mut meta, n, now)?;
                }
                meta.touch(now);
                let view = SecretView::of(&meta, now);
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes,
                    result: view,
                })
            })
            .await
    }

    /// Move a staging label: onto the version `to` selects, or, with `to = None`, off the
    /// version `from` selects. A label another version holds moves only when `from` names that
    /// version; `from` must hold the label.
    pub async fn move_label(
        &self,
        name: &str,
        label: &str,
        to: Option<&Selector>,
        from: Option<&Selector>,
    ) -> Result<SecretView> {
        validate_label(label)?;
        if to.is_none() && from.is_none() {
            return Err(CoreError::invalid(
                "say which version the label moves to or is removed from",
            ));
        }
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                meta.upgrade();
                let from = from.map(|s| s.resolve(&meta)).transpose()?;
                if let Some(f) = from {
                    if !meta.versions.get(&f).is_some_and(|vm| vm.has_label(label)) {
                        return Err(CoreError::invalid(format!(
                            "version {f} does not hold the staging label {label}"
                        )));
                    }
                }
                let changed = match (to, from) {
                    (Some(t), _) => {
                        let t = t.resolve(&meta)?;
                        // a label leaves another version only when the caller names it
                        if let Some(holder) = meta.version_with_label(label) {
                            if holder != t && from.is_none() {
                                return Err(CoreError::invalid(format!(
                                    "the staging label {label} is on version {holder}: name \
                                     that version to move it from"
                                )));
                            }
                        }
                        attach_label(&mut meta, label, t, now)?
                    }
                    (None, Some(f)) => detach_label(&mut meta, label, f, now)?,
                    (None, None) => false,
                };
                if changed {
                    meta.touch(now);
                }
                let view = SecretView::of(&meta, now);
                Ok(if changed {
                    Change::Commit {
                        meta: Some(meta),
                        puts: vec![],
                        deletes: vec![],
                        result: view,
                    }
                } else {
                    Change::None(view)
                })
            })
            .await
    }

    /// Schedule the whole secret for deletion (AWS `DeleteSecret`, Azure delete).
    pub async fn delete_secret(&self, name: &str, del: &DeleteSecret) -> Result<SecretView> {
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                if !meta.replicas.is_empty() {
                    let regions: Vec<&str> =
                        meta.replicas.iter().map(|r| r.region.as_str()).collect();
                    return Err(CoreError::invalid(format!(
                        "the secret still has replicas in {}: remove them first",
                        regions.join(", ")
                    )));
                }
                meta.upgrade();
                let purge = del
                    .recovery_window_secs
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| now.checked_add(time::Duration::seconds(s)))
                    .map(format_time);
                meta.deletion = Some(SecretDeletion {
                    deleted_time: format_time(now),
                    scheduled_purge_time: purge.clone(),
                    recovery_id: del.recovery_id.clone(),
                });
                meta.touch(now);
                let entry = DeletedEntry {
                    format: 1,
                    secret_id: meta.secret_id.clone(),
                    deleted_time: format_time(now),
                    scheduled_purge_time: purge,
                };
                let entry = Zeroizing::new(
                    serde_json::to_vec(&entry)
                        .map_err(|_| CoreError::internal("could not encode the deleted index"))?,
                );
                let view = SecretView::of(&meta, now);
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![(store::deleted_key(name), entry)],
                    deletes: vec![],
                    result: view,
                })
            })
            .await
    }

    /// Cancel a scheduled deletion.
    pub async fn restore(&self, name: &str) -> Result<SecretView> {
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = meta.ok_or_else(|| no_secret(name))?;
                if meta.is_expired_deletion(now) {
                    return Err(no_secret(name));
                }
                if !meta.is_deleted() {
                    return Err(CoreError::new(
                        ErrorCode::InvalidState,
                        format!("secret {name:?} is not scheduled for deletion"),
                    ));
                }
                meta.upgrade();
                meta.deletion = None;
                meta.touch(now);
                let view = SecretView::of(&meta, now);
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts: vec![],
                    deletes: vec![store::deleted_key(name)],
                    result: view,
                })
            })
            .await
    }

    /// Remove a secret scheduled for deletion for good, now.
    pub async fn purge(&self, name: &str) -> Result<()> {
        self.store
            .update(self.locks, name, |meta| async move {
                let meta = meta.ok_or_else(|| no_secret(name))?;
                if !meta.is_deleted() {
                    return Err(CoreError::new(
                        ErrorCode::InvalidState,
                        format!("secret {name:?} is not scheduled for deletion; delete it first"),
                    ));
                }
                Ok(Change::Commit {
                    deletes: secret_keys(name, &meta),
                    meta: None,
                    puts: vec![],
                    result: (),
                })
            })
            .await
    }

    /// Remove a secret and every version at once, whatever its state (Vault's
    /// `DELETE metadata/`). A missing secret is not an error.
    pub async fn remove(&self, name: &str) -> Result<()> {
        self.store
            .update(self.locks, name, |meta| async move {
                let Some(meta) = meta else {
                    return Ok(Change::None(()));
                };
                Ok(Change::Commit {
                    deletes: secret_keys(name, &meta),
                    meta: None,
                    puts: vec![],
                    result: (),
                })
            })
            .await
    }

    /// One level of names below `prefix` (a folder ends with `/`), every secret in any state:
    /// what Vault lists.
    pub async fn list_level(&self, prefix: &str) -> Result<Vec<String>> {
        self.store
            .view
            .list(&store::meta_key(&folder(prefix)))
            .await
    }

    /// A page of secret names below `prefix` (see [`ListOptions`]). `visible` is asked about
    /// each secret's full name (folders are kept): the caller's ACL leaves out what it may not
    /// see, before paging.
    pub async fn list(
        &self,
        prefix: &str,
        opts: &ListOptions,
        visible: impl Fn(&str) -> bool,
    ) -> Result<ListPage> {
        let prefix = folder(prefix);
        let page_size = match opts.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(CoreError::invalid(format!(
                    "page_size must be at most {MAX_PAGE_SIZE}"
                )))
            }
            n => n,
        };
        let after = opts.next_token.as_deref().map(decode_token).transpose()?;
        let root = if opts.deleted {
            store::DELETED_PREFIX
        } else {
            store::METADATA_PREFIX
        };
        let mut names = self.walk(root, &prefix, opts.recursive).await?;
        if !opts.deleted {
            // leave out secrets scheduled for deletion
            let deleted = self
                .walk(store::DELETED_PREFIX, &prefix, opts.recursive)
                .await?;
            if !deleted.is_empty() {
                let deleted: std::collections::BTreeSet<String> = deleted.into_iter().collect();
                names.retain(|n| !deleted.contains(n));
            }
        }
        names.retain(|n| n.ends_with('/') || visible(&format!("{prefix}{n}")));
        names.sort();
        let start = match &after {
            None => 0,
            Some(a) => names.partition_point(|n| n <= a),
        };
        let rest = &names[start.min(names.len())..];
        let keys: Vec<String> = rest.iter().take(page_size).cloned().collect();
        let next_token = (rest.len() > page_size)
            .then(|| keys.last().map(|k| encode_token(k)))
            .flatten();
        let mut secrets = Vec::new();
        if opts.describe {
            let now = model::now();
            for k in keys.iter().filter(|k| !k.ends_with('/')) {
                // a secret purged or removed since the walk is left out
                if let Some(meta) = self.store.meta(&format!("{prefix}{k}")).await? {
                    if !meta.is_expired_deletion(now) {
                        secrets.push(SecretView::of(&meta, now));
                    }
                }
            }
        }
        Ok(ListPage {
            keys,
            next_token,
            secrets,
        })
    }

    /// Names below `root + prefix`, relative to `prefix`: one level (folders end with `/`) or
    /// every leaf.
    async fn walk(&self, root: &str, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        let view = self.store.view;
        let level = view.list(&format!("{root}{prefix}")).await?;
        if !recursive {
            return Ok(level);
        }
        let mut out = Vec::new();
        let mut stack: Vec<String> = level.into_iter().rev().collect();
        while let Some(rel) = stack.pop() {
            if rel.ends_with('/') {
                for e in view
                    .list(&format!("{root}{prefix}{rel}"))
                    .await?
                    .into_iter()
                    .rev()
                {
                    stack.push(format!("{rel}{e}"));
                }
            } else {
                out.push(rel);
            }
        }
        Ok(out)
    }
}

/// `a` → `a/`; empty stays empty.
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn encode_token(last: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(t: &str) -> Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| CoreError::invalid("next_token is not a token this server issued"))
}

pub(crate) fn check_cas(cas: Option<u64>, config: &KvConfig, meta: &SecretMeta) -> Result<()> {
    match cas {
        Some(c) if c != meta.current_version => {
            Err(CoreError::new(ErrorCode::CasMismatch, CAS_MISMATCH))
        }
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => Err(CoreError::invalid(CAS_REQUIRED)),
        None => Ok(()),
    }
}
