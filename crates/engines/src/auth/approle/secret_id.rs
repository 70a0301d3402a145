//! Secret IDs: generation (`secret-id`, `custom-secret-id`), listing, lookup and destruction by
//! value or accessor, and `tidy/secret-id`.

use super::{
    accessor_key, load_role, response, role_key, secret_dir, secret_key, AccessorIndex,
    AppRoleEngine, Role, SecretIdEntry, ACCESSOR_NOT_FOUND,
};
use crate::auth::common::{
    cidr_param, cidrs_subset, duration_param, int_param, is_cas_failure, load, mount_max_ttl,
    not_found, op_check, op_delete, op_put, present, random_uuid, secret_param, string_param,
    too_much_contention, MAX_CAS_RETRIES, MAX_HMAC_INPUT,
};
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::Response;
use coffer_core::router::EngineRequest;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// Vault's `strutil.ParseArbitraryKeyValues` for `metadata`: a JSON object (possibly base64
/// encoded) or `k1=v1,k2=v2`; a JSON object is also accepted as is.
fn parse_metadata(data: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    use base64::Engine as _;
    let err = |why: &str| CoreError::invalid(format!("failed to parse metadata: {why}"));
    let strings = |m: &Map<String, Value>| -> Option<BTreeMap<String, String>> {
        m.iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    };
    let text = match present(data, "metadata") {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => return strings(m).ok_or_else(|| err("values must be strings")),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(err("metadata must be a string")),
    };
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    let text = match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| err("invalid encoding"))?,
        Err(_) => text,
    };
    let out = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => strings(&m).ok_or_else(|| err("values must be strings"))?,
        _ => {
            let mut out = BTreeMap::new();
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let mut parts = pair.split('=');
                let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(err("invalid <key,value> format"));
                };
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(err("invalid <key,value> pair"));
                }
                out.insert(k.to_string(), v.to_string());
            }
            out
        }
    };
    if out.iter().any(|(k, v)| !k.is_empty() && v.is_empty()) {
        return Err(err("empty value"));
    }
    Ok(out)
}

fn role_missing(name: &str) -> CoreError {
    CoreError::invalid(format!("role {name:?} does not exist"))
}

impl AppRoleEngine {
    /// `secret-id` (generated) and `custom-secret-id`.
    pub(super) async fn create_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        custom: bool,
    ) -> Result<Option<Response>> {
        let storage = req.storage;
        let secret: Zeroizing<String> = if custom {
            let s = secret_param(req.data, "secret_id")?.unwrap_or_default();
            if s.is_empty() {
                return Err(CoreError::invalid("missing secret_id"));
            }
            if s.len() > MAX_HMAC_INPUT {
                return Err(CoreError::invalid(format!(
                    "secret_id is longer than maximum of {MAX_HMAC_INPUT} bytes"
                )));
            }
            s
        } else {
            Zeroizing::new(random_uuid()?)
        };
        // parse everything before looking at storage: bad input changes nothing
        let cidr_list = cidr_param(req.data, "cidr_list", "failed to validate CIDR blocks")?
            .unwrap_or_default();
        let token_cidrs = cidr_param(
            req.data,
            "token_bound_cidrs",
            "failed to validate token CIDR blocks",
        )?
        .unwrap_or_default();
        let num_uses = int_param(req.data, "num_uses")?;
        if num_uses.is_some_and(|n| n < 0) {
            return Err(CoreError::invalid("num_uses cannot be negative"));
        }
        let ttl = duration_param(req.data, "ttl")?;
        if ttl.is_some_and(|n| n < 0) {
            return Err(CoreError::invalid("ttl cannot be negative"));
        }
        let metadata = parse_metadata(req.data)?;
        let secret_hmac = self.hmac.hmac(storage, secret.as_bytes()).await?;
        let max_ttl = mount_max_ttl(req);

        for _ in 0..MAX_CAS_RETRIES {
            let (role, role_bytes) = load_role(storage, name)
                .await?
                .ok_or_else(|| CoreError::not_found(format!("role {name:?} does not exist")))?;
            if !role.bind_secret_id {
                return Err(CoreError::invalid("bind_secret_id is not set on the role"));
            }
            if !cidrs_subset(&cidr_list, &role.secret_id_bound_cidrs) {
                return Err(CoreError::invalid(
                    "failed to verify subset relationship between CIDR blocks on the role and CIDR blocks on the secret ID",
                ));
            }
            if !cidrs_subset(&token_cidrs, &role.token.token_bound_cidrs) {
                return Err(CoreError::invalid(
                    "failed to verify subset relationship between token CIDR blocks on the role and token CIDR blocks on the secret ID",
                ));
            }
            let uses = match num_uses.map(|n| n.unsigned_abs()) {
                Some(n) => {
                    let limit = role.secret_id_num_uses;
                    if limit > 0 && (n == 0 || n > limit) {
                        return Err(CoreError::invalid(
                            "num_uses cannot be higher than the role's secret_id_num_uses",
                        ));
                    }
                    n
                }
                None => role.secret_id_num_uses,
            };
            let ttl = match ttl.map(|n| n.unsigned_abs()) {
                Some(t) => {
                    let limit = role.secret_id_ttl;
                    if limit > 0 && (t == 0 || t > limit) {
                        return Err(CoreError::invalid(
                            "ttl cannot be longer than the role's secret_id_ttl",
                        ));
                    }
                    t
                }
                None => role.secret_id_ttl,
            };
            // capped by the mount's max lease TTL, as Vault does
            let ttl = ttl.min(max_ttl);
            let now = self.clock.now();
            let accessor = random_uuid()?;
            let entry = SecretIdEntry {
                secret_id_accessor: accessor.clone(),
                secret_id_num_uses: uses,
                secret_id_ttl: ttl,
                creation_time: now,
                expiration_time: if ttl > 0 { now + ttl as f64 } else { 0.0 },
                last_updated_time: now,
                metadata: metadata.clone(),
                cidr_list: cidr_list.clone(),
                token_bound_cidrs: token_cidrs.clone(),
            };
            let acc_hmac = self.hmac.hmac(storage, accessor.as_bytes()).await?;
            let skey = secret_key(&role.uuid, &secret_hmac);
            let akey = accessor_key(&acc_hmac);
            let ops = vec![
                op_check(role_key(name), Some(&role_bytes)),
                op_check(skey.clone(), None),
                op_put(skey.clone(), &entry)?,
                op_check(akey.clone(), None),
                op_put(
                    akey,
                    &AccessorIndex {
                        secret_id_hmac: secret_hmac.clone(),
                        role_uuid: role.uuid.clone(),
                    },
                )?,
            ];
            match storage.transaction(ops).await {
                Ok(()) => {
                    let mut m = Map::new();
                    m.insert("secret_id".into(), Value::from(secret.as_str()));
                    m.insert("secret_id_accessor".into(), Value::from(accessor));
                    m.insert("secret_id_ttl".into(), Value::from(ttl));
                    m.insert("secret_id_num_uses".into(), Value::from(uses));
                    return Ok(response(m));
                }
                Err(e) if is_cas_failure(&e) => {
                    if storage.get(&skey).await?.is_some() {
                        return Err(CoreError::invalid("SecretID is already registered"));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    pub(super) async fn list_secret_ids(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let mut accessors = Vec::new();
        for h in req.storage.list(&secret_dir(&role.uuid)).await? {
            if let Some(e) = req
                .storage
                .get_json::<SecretIdEntry>(&secret_key(&role.uuid, &h))
                .await?
            {
                accessors.push(e.secret_id_accessor);
            }
        }
        if accessors.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(accessors));
        Ok(response(m))
    }

    /// The storage key of the secret ID given in `secret_id`, for a role that must exist.
    async fn secret_key_from_param(&self, req: &EngineRequest<'_>, name: &str) -> Result<String> {
        let secret = secret_param(req.data, "secret_id")?.unwrap_or_default();
        if secret.is_empty() {
            return Err(CoreError::invalid("missing secret_id"));
        }
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let h = self.hmac.hmac(req.storage, secret.as_bytes()).await?;
        Ok(secret_key(&role.uuid, &h))
    }

    /// The storage key of the secret ID given by `secret_id_accessor`; `None` if unknown.
    async fn secret_key_from_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<(String, Option<String>)> {
        let accessor = string_param(req.data, "secret_id_accessor")?.unwrap_or_default();
        if accessor.is_empty() {
            return Err(CoreError::invalid("missing secret_id_accessor"));
        }
        let (role, _) = load_role(req.storage, name)
            .await?
            .ok_or_else(|| role_missing(name))?;
        let acc_key = accessor_key(&self.hmac.hmac(req.storage, accessor.as_bytes()).await?);
        let idx = req.storage.get_json::<AccessorIndex>(&acc_key).await?;
        Ok((
            acc_key,
            idx.filter(|i| i.role_uuid == role.uuid)
                .map(|i| secret_key(&role.uuid, &i.secret_id_hmac)),
        ))
    }

    pub(super) async fn lookup_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let key = self.secret_key_from_param(req, name).await?;
        match req.storage.get_json::<SecretIdEntry>(&key).await? {
            None => Ok(None),
            Some(e) => Ok(response(e.data())),
        }
    }

    pub(super) async fn lookup_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (_, key) = self.secret_key_from_accessor(req, name).await?;
        let key = key.ok_or_else(|| CoreError::not_found(ACCESSOR_NOT_FOUND))?;
        match req.storage.get_json::<SecretIdEntry>(&key).await? {
            None => Ok(None),
            Some(e) => Ok(response(e.data())),
        }
    }

    /// Delete the secret ID at `key` and its accessor; false if it was not there.
    async fn destroy_at(&self, storage: &View, key: &str) -> Result<bool> {
        for _ in 0..MAX_CAS_RETRIES {
            let Some((entry, bytes)) = load::<SecretIdEntry>(storage, key, "secret ID").await?
            else {
                return Ok(false);
            };
            let acc = self
                .hmac
                .hmac(storage, entry.secret_id_accessor.as_bytes())
                .await?;
            let ops = vec![
                op_check(key, Some(&bytes)),
                op_delete(key),
                op_delete(accessor_key(&acc)),
            ];
            match storage.transaction(ops).await {
                Ok(()) => return Ok(true),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    pub(super) async fn destroy_secret_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let key = self.secret_key_from_param(req, name).await?;
        self.destroy_at(req.storage, &key).await?;
        Ok(None)
    }

    pub(super) async fn destroy_accessor(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (acc_key, key) = self.secret_key_from_accessor(req, name).await?;
        let key = key.ok_or_else(|| CoreError::not_found(ACCESSOR_NOT_FOUND))?;
        if !self.destroy_at(req.storage, &key).await? {
            // a dangling accessor: drop it
            req.storage.delete(&acc_key).await?;
        }
        Ok(None)
    }

    /// `tidy/secret-id`: remove expired secret IDs, those of deleted roles, and accessors
    /// without a secret ID. Runs to completion before answering (with Vault's 202 + warning).
    pub(super) async fn tidy(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        if self.tidy_running.swap(true, Ordering::AcqRel) {
            return Ok(Some(
                Response::default().with_warning("Tidy operation already in progress."),
            ));
        }
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.tidy_running);
        let removed = self.tidy_inner(req.storage).await?;
        tracing::info!(
            mount = %req.mount.path,
            removed,
            "approle tidy of secret IDs finished"
        );
        let mut resp = Response::default().with_warning(
            "Tidy operation successfully started. Any information from the operation will be printed to the server's logs.",
        );
        resp.accepted = true;
        Ok(Some(resp))
    }

    async fn tidy_inner(&self, storage: &View) -> Result<usize> {
        let now = self.clock.now();
        let mut live_roles = HashSet::new();
        for name in storage.list("role/").await? {
            if let Some(r) = storage.get_json::<Role>(&role_key(&name)).await? {
                live_roles.insert(r.uuid);
            }
        }
        let mut removed = 0;
        for dir in storage.list("secret_id/").await? {
            let Some(role_uuid) = dir.strip_suffix('/') else {
                continue;
            };
            let orphan = !live_roles.contains(role_uuid);
            for h in storage.list(&secret_dir(role_uuid)).await? {
                let key = secret_key(role_uuid, &h);
                let Some((entry, bytes)) =
                    load::<SecretIdEntry>(storage, &key, "secret ID").await?
                else {
                    continue;
                };
                if !orphan && !entry.expired(now) {
                    continue;
                }
                let acc = self
                    .hmac
                    .hmac(storage, entry.secret_id_accessor.as_bytes())
                    .await?;
                let ops = vec![
                    op_check(key.clone(), Some(&bytes)),
                    op_delete(key),
                    op_delete(accessor_key(&acc)),
                ];
                match storage.transaction(ops).await {
                    Ok(()) => removed += 1,
                    // changed meanwhile (a login used it): leave it for the next tidy
                    Err(e) if is_cas_failure(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for h in storage.list("accessor/").await? {
            let akey = accessor_key(&h);
            let Some((idx, bytes)) = load::<AccessorIndex>(storage, &akey, "accessor").await?
            else {
                continue;
            };
            let skey = secret_key(&idx.role_uuid, &idx.secret_id_hmac);
            if storage.get(&skey).await?.is_none() {
                let ops = vec![op_check(akey.clone(), Some(&bytes)), op_delete(akey)];
                match storage.transaction(ops).await {
                    Ok(()) => {}
                    Err(e) if is_cas_failure(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}
