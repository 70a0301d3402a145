//! Staging labels: at most one version holds a label; `AWSCURRENT` moving on leaves
//! `AWSPREVIOUS` behind.

use super::super::model::{format_time, SecretMeta, AWSCURRENT, AWSPREVIOUS};
use coffer_core::error::{CoreError, Result};
use time::OffsetDateTime;

/// Longest label accepted (AWS: 256).
pub const MAX_LABEL_LEN: usize = 256;
/// Most labels on one version (AWS: 20).
pub const MAX_LABELS_PER_VERSION: usize = 20;

pub fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(CoreError::invalid(format!(
            "a staging label must be 1 to {MAX_LABEL_LEN} printable characters"
        )));
    }
    Ok(())
}

fn stamp(meta: &mut SecretMeta, n: u64, at: OffsetDateTime) {
    if let Some(vm) = meta.versions.get_mut(&n) {
        vm.updated_time = Some(format_time(at));
    }
}

fn remove(meta: &mut SecretMeta, n: u64, label: &str, at: OffsetDateTime) {
    if let Some(vm) = meta.versions.get_mut(&n) {
        vm.staging_labels.retain(|l| l != label);
    }
    stamp(meta, n, at);
}

fn add(meta: &mut SecretMeta, n: u64, label: &str, at: OffsetDateTime) -> Result<()> {
    let vm = meta
        .versions
        .get_mut(&n)
        .ok_or_else(|| CoreError::not_found(format!("version {n} does not exist")))?;
    if vm.staging_labels.len() >= MAX_LABELS_PER_VERSION {
        return Err(CoreError::invalid(format!(
            "a version can hold at most {MAX_LABELS_PER_VERSION} staging labels"
        )));
    }
    vm.staging_labels.push(label.to_string());
    stamp(meta, n, at);
    Ok(())
}

/// Put `label` on version `target`, taking it off the version that held it. When the label is
/// `AWSCURRENT`, the version that held it gets `AWSPREVIOUS` (taken off wherever it was).
/// Returns whether anything changed.
pub fn attach_label(
    meta: &mut SecretMeta,
    label: &str,
    target: u64,
    at: OffsetDateTime,
) -> Result<bool> {
    validate_label(label)?;
    if !meta.versions.contains_key(&target) {
        return Err(CoreError::not_found(format!(
            "version {target} does not exist"
        )));
    }
    let materialized = materialize_current(meta, at);
    let holder = meta.version_with_label(label);
    if holder == Some(target) {
        return Ok(materialized);
    }
    if let Some(h) = holder {
        remove(meta, h, label, at);
    }
    add(meta, target, label, at)?;
    if label == AWSCURRENT {
        if let Some(h) = holder {
            if let Some(p) = meta.version_with_label(AWSPREVIOUS) {
                remove(meta, p, AWSPREVIOUS, at);
            }
            add(meta, h, AWSPREVIOUS, at)?;
        }
    }
    Ok(true)
}

/// A secret written only through Vault holds no labels; its `AWSCURRENT` is implied (its
/// current version). The first label put on it makes that explicit, so the implied holder of
/// `AWSCURRENT` is treated as any holder (e.g. gets `AWSPREVIOUS` when it moves on).
pub(super) fn materialize_current(meta: &mut SecretMeta, at: OffsetDateTime) -> bool {
    let unlabelled = meta.versions.values().all(|v| v.staging_labels.is_empty());
    let current = meta.current_version;
    // cannot fail: the version exists and holds no label
    unlabelled && meta.versions.contains_key(&current) && add(meta, current, AWSCURRENT, at).is_ok()
}

/// Take `label` off version `from`. `AWSCURRENT` cannot simply be removed: it must be moved to
/// another version.
pub fn detach_label(
    meta: &mut SecretMeta,
    label: &str,
    from: u64,
    at: OffsetDateTime,
) -> Result<bool> {
    validate_label(label)?;
    let held = meta
        .versions
        .get(&from)
        .is_some_and(|vm| vm.has_label(label));
    if !held {
        return Err(CoreError::invalid(format!(
            "version {from} does not hold the staging label {label}"
        )));
    }
    if label == AWSCURRENT {
        return Err(CoreError::invalid(
            "AWSCURRENT cannot be removed; move it to another version instead",
        ));
    }
    remove(meta, from, label, at);
    Ok(true)
}
