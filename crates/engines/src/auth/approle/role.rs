//! Roles: create, read, update and delete, the role_id index, role parameters, and the per-field
//! endpoints `role/<name>/<field>`.

use super::{
    accessor_key, load_role, response, role_id_key, role_key, secret_dir, secret_key,
    AppRoleEngine, Role, RoleIdIndex, SecretIdEntry, NO_CONSTRAINT,
};
use crate::auth::common::{
    bool_param, cidr_param, duration_param, int_param, is_cas_failure, is_write, list_param, load,
    mount_max_ttl, non_negative_duration, not_found, op_check, op_delete, op_put, parse_policies,
    present, random_uuid, string_param, too_much_contention, upgrade_legacy, MAX_CAS_RETRIES,
    MAX_HMAC_INPUT,
};
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::{Operation, Response};
use coffer_core::router::EngineRequest;
use coffer_core::util::format_duration;
use serde_json::{Map, Value};
use std::time::Duration;
use zeroize::Zeroizing;

/// Reset one field to its default (`DELETE role/<name>/<field>`).
fn reset_field(role: &mut Role, sub: &str) -> Result<()> {
    match sub {
        "policies" => {
            role.policies.clear();
            role.token.token_policies.clear();
        }
        "secret-id-num-uses" => role.secret_id_num_uses = 0,
        "secret-id-ttl" => role.secret_id_ttl = 0,
        "token-ttl" => role.token.token_ttl = 0,
        "token-max-ttl" => role.token.token_max_ttl = 0,
        "token-num-uses" => role.token.token_num_uses = 0,
        "bind-secret-id" => role.bind_secret_id = true,
        "secret-id-bound-cidrs" | "bound-cidr-list" => role.secret_id_bound_cidrs.clear(),
        "token-bound-cidrs" => role.token.token_bound_cidrs.clear(),
        "period" => {
            role.period = 0;
            role.token.token_period = 0;
        }
        _ => return Err(CoreError::unsupported_operation()),
    }
    Ok(())
}

/// Apply the parameters of a role write (Vault's `pathRoleCreateUpdate`). Returns warnings.
fn apply_role_params(
    role: &mut Role,
    data: &Map<String, Value>,
    creating: bool,
    max_ttl: u64,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    // backwards compatibility of token_type
    let adjusted;
    let data = match data.get("token_type").and_then(Value::as_str) {
        Some(t @ ("default-service" | "default-batch")) => {
            let to = if t == "default-service" {
                "service"
            } else {
                "batch"
            };
            warnings.push(format!("{t} has no useful meaning; adjusting to {to}"));
            let mut d = data.clone();
            d.insert("token_type".into(), Value::from(to));
            adjusted = d;
            &adjusted
        }
        _ => data,
    };

    role.token.parse(data)?;

    if let Some(local) = bool_param(data, "local_secret_ids")? {
        if !creating {
            return Err(CoreError::invalid(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        role.local_secret_ids = local;
    }

    match string_param(data, "role_id")? {
        Some(id) => role.role_id = id,
        None if creating => role.role_id = random_uuid()?,
        None => {}
    }
    if role.role_id.is_empty() {
        return Err(CoreError::invalid(
            "invalid role_id supplied, or failed to generate a role_id",
        ));
    }

    if let Some(b) = bool_param(data, "bind_secret_id")? {
        role.bind_secret_id = b;
    }

    let cidrs = match cidr_param(data, "secret_id_bound_cidrs", "invalid CIDR blocks")? {
        Some(c) => Some(c),
        None => cidr_param(data, "bound_cidr_list", "invalid CIDR blocks")?,
    };
    if let Some(c) = cidrs {
        role.secret_id_bound_cidrs = c;
    }

    if let Some(n) = int_param(data, "secret_id_num_uses")? {
        role.secret_id_num_uses = u64::try_from(n)
            .map_err(|_| CoreError::invalid("secret_id_num_uses cannot be negative"))?;
    }
    if let Some(n) = duration_param(data, "secret_id_ttl")? {
        role.secret_id_ttl =
            u64::try_from(n).map_err(|_| CoreError::invalid("secret_id_ttl cannot be negative"))?;
    }

    // legacy fields
    let legacy_policies = list_param(data, "policies")?
        .map(parse_policies)
        .transpose()?;
    upgrade_legacy(
        present(data, "token_policies").is_some(),
        legacy_policies,
        &mut role.policies,
        &mut role.token.token_policies,
    );
    let legacy_period = non_negative_duration(data, "period")?;
    upgrade_legacy(
        present(data, "token_period").is_some(),
        legacy_period,
        &mut role.period,
        &mut role.token.token_period,
    );

    if role.period > max_ttl {
        return Err(CoreError::invalid(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            format_duration(Duration::from_secs(role.period)),
            format_duration(Duration::from_secs(max_ttl)),
        )));
    }
    if role.token.token_max_ttl > max_ttl {
        warnings.push(
            "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into(),
        );
    }
    Ok(warnings)
}

fn warnings_response(warnings: Vec<String>) -> Option<Response> {
    if warnings.is_empty() {
        None
    } else {
        Some(Response {
            warnings,
            ..Default::default()
        })
    }
}

impl AppRoleEngine {
    /// Persist `role` atomically: fails with a CAS error if the role changed since `prev` was
    /// read, and keeps the role_id index unique.
    async fn save_role(
        &self,
        storage: &View,
        role: &Role,
        prev: Option<(&Zeroizing<Vec<u8>>, &str)>,
    ) -> Result<()> {
        let key = role_key(&role.name);
        let mut ops = vec![op_check(key.clone(), prev.map(|p| p.0)), op_put(key, role)?];
        let old_id = prev.map(|p| p.1);
        if old_id != Some(role.role_id.as_str()) {
            let new_hmac = self.hmac.hmac(storage, role.role_id.as_bytes()).await?;
            let idx_key = role_id_key(&new_hmac);
            let current = load::<RoleIdIndex>(storage, &idx_key, "role_id index").await?;
            if let Some((idx, _)) = &current {
                if idx.name != role.name {
                    return Err(CoreError::invalid("role_id already in use"));
                }
            }
            ops.push(op_check(idx_key.clone(), current.as_ref().map(|c| &c.1)));
            ops.push(op_put(
                idx_key,
                &RoleIdIndex {
                    name: role.name.clone(),
                },
            )?);
            if let Some(old) = old_id {
                let old_hmac = self.hmac.hmac(storage, old.as_bytes()).await?;
                if old_hmac != new_hmac {
                    ops.push(op_delete(role_id_key(&old_hmac)));
                }
            }
        }
        storage.transaction(ops).await
    }

    pub(super) async fn list_roles(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let keys = req.storage.list("role/").await?;
        if keys.is_empty() {
            return Err(not_found());
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(response(m))
    }

    pub(super) async fn read_role(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
        let mut resp = Response::data(role.data());
        if !role.has_constraint() {
            resp.warnings.push(
                "Role does not have any constraints set on it. Updates to this role will require a constraint to be set".into(),
            );
        }
        Ok(Some(resp))
    }

    pub(super) async fn write_role(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        if name.len() > MAX_HMAC_INPUT {
            return Err(CoreError::invalid(format!(
                "role_name is longer than maximum of {MAX_HMAC_INPUT} bytes"
            )));
        }
        let max_ttl = mount_max_ttl(req);
        for _ in 0..MAX_CAS_RETRIES {
            let existing = load_role(req.storage, name).await?;
            let (mut role, prev) = match existing {
                Some((role, bytes)) => {
                    let id = role.role_id.clone();
                    (role, Some((bytes, id)))
                }
                None => (Role::new(name)?, None),
            };
            let warnings = apply_role_params(&mut role, req.data, prev.is_none(), max_ttl)?;
            if !role.has_constraint() {
                return Err(CoreError::invalid(NO_CONSTRAINT));
            }
            let prev_ref = prev.as_ref().map(|(b, id)| (b, id.as_str()));
            match self.save_role(req.storage, &role, prev_ref).await {
                Ok(()) => return Ok(warnings_response(warnings)),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    /// Load an existing role, change it with `f`, check the constraints and save it; retried
    /// when a concurrent change wins. A missing role is a 404.
    async fn modify_role<F>(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        mut f: F,
    ) -> Result<Vec<String>>
    where
        F: FnMut(&mut Role) -> Result<Vec<String>>,
    {
        for _ in 0..MAX_CAS_RETRIES {
            let (mut role, bytes) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
            let old_id = role.role_id.clone();
            let warnings = f(&mut role)?;
            if !role.has_constraint() {
                return Err(CoreError::invalid(NO_CONSTRAINT));
            }
            match self
                .save_role(req.storage, &role, Some((&bytes, old_id.as_str())))
                .await
            {
                Ok(()) => return Ok(warnings),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }

    pub(super) async fn delete_role(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let storage = req.storage;
        for _ in 0..MAX_CAS_RETRIES {
            let Some((role, bytes)) = load_role(storage, name).await? else {
                return Ok(None);
            };
            // the role and its role_id index go first and together: logins stop at once
            let mut ops = vec![
                op_check(role_key(name), Some(&bytes)),
                op_delete(role_key(name)),
            ];
            let id_hmac = self.hmac.hmac(storage, role.role_id.as_bytes()).await?;
            if let Some(idx) = storage
                .get_json::<RoleIdIndex>(&role_id_key(&id_hmac))
                .await?
            {
                if idx.name == role.name {
                    ops.push(op_delete(role_id_key(&id_hmac)));
                }
            }
            match storage.transaction(ops).await {
                Ok(()) => {}
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
            // then its secret IDs (unreachable already: they live under the role's uuid)
            self.flush_secret_ids(storage, &role.uuid).await?;
            return Ok(None);
        }
        Err(too_much_contention())
    }

    async fn flush_secret_ids(&self, storage: &View, role_uuid: &str) -> Result<()> {
        for h in storage.list(&secret_dir(role_uuid)).await? {
            let key = secret_key(role_uuid, &h);
            if let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? {
                let acc = self
                    .hmac
                    .hmac(storage, entry.secret_id_accessor.as_bytes())
                    .await?;
                storage.delete(&accessor_key(&acc)).await?;
            }
            storage.delete(&key).await?;
        }
        Ok(())
    }

    pub(super) async fn field_endpoint(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
        sub: &str,
        keys: &'static [&'static str],
    ) -> Result<Option<Response>> {
        match req.operation {
            Operation::Read => {
                let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
                let mut all = role.data();
                all.insert(
                    "bound_cidr_list".into(),
                    Value::from(role.secret_id_bound_cidrs.clone()),
                );
                let m: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                Ok(response(m))
            }
            op if is_write(op) => {
                if sub == "local-secret-ids" {
                    return Err(CoreError::unsupported_operation());
                }
                let filtered: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| present(req.data, k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                if filtered.is_empty() {
                    return Err(CoreError::invalid(format!("missing {}", keys[0])));
                }
                let max_ttl = mount_max_ttl(req);
                let warnings = self
                    .modify_role(req, name, |role| {
                        apply_role_params(role, &filtered, false, max_ttl)
                    })
                    .await?;
                Ok(warnings_response(warnings))
            }
            Operation::Delete => {
                self.modify_role(req, name, |role| reset_field(role, sub).map(|_| Vec::new()))
                    .await?;
                Ok(None)
            }
            _ => Err(CoreError::unsupported_operation()),
        }
    }

    pub(super) async fn read_role_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let (role, _) = load_role(req.storage, name).await?.ok_or_else(not_found)?;
        let mut m = Map::new();
        m.insert("role_id".into(), Value::from(role.role_id));
        Ok(response(m))
    }

    pub(super) async fn write_role_id(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>> {
        let id = string_param(req.data, "role_id")?.unwrap_or_default();
        if id.is_empty() {
            return Err(CoreError::invalid("missing role_id"));
        }
        self.modify_role(req, name, |role| {
            role.role_id = id.clone();
            Ok(Vec::new())
        })
        .await?;
        Ok(None)
    }
}
