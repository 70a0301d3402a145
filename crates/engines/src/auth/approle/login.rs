//! `login`: role_id and secret ID checks, lockout, and the atomic use of a secret ID.

use super::{
    accessor_key, load_role, role_id_key, secret_key, AppRoleEngine, RoleIdIndex, SecretIdEntry,
    INVALID_CREDENTIALS,
};
use crate::auth::common::{
    display_source, is_cas_failure, load, op_check, op_delete, op_put, secret_param, string_param,
    too_much_contention, MAX_CAS_RETRIES, MAX_HMAC_INPUT,
};
use crate::auth::lockout::LockoutConfig;
use coffer_core::barrier::View;
use coffer_core::error::{CoreError, Result};
use coffer_core::request::Response;
use coffer_core::router::EngineRequest;
use coffer_core::util::cidrs_allow;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

fn cidr_refused(addr: Option<std::net::IpAddr>, what: &str) -> CoreError {
    match addr {
        Some(a) => CoreError::invalid(format!(
            "source address \"{a}\" unauthorized by CIDR restrictions on the {what}"
        )),
        None => CoreError::invalid("failed to get connection information"),
    }
}

impl AppRoleEngine {
    pub(super) async fn login(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let storage = req.storage;
        let invalid = || CoreError::invalid(INVALID_CREDENTIALS);
        let role_id = string_param(req.data, "role_id")?.unwrap_or_default();
        let role_id = role_id.trim();
        if role_id.is_empty() {
            return Err(CoreError::invalid("missing role_id"));
        }
        let id_hmac = self.hmac.hmac(storage, role_id.as_bytes()).await?;
        let idx = storage
            .get_json::<RoleIdIndex>(&role_id_key(&id_hmac))
            .await?
            .ok_or_else(invalid)?;
        let (role, _) = load_role(storage, &idx.name).await?.ok_or_else(invalid)?;
        if !bool::from(role.role_id.as_bytes().ct_eq(role_id.as_bytes())) {
            return Err(invalid());
        }
        // the role_id is known from here on: it is the name that gets locked out
        let lockout = LockoutConfig::from_mount(req.mount);
        let Some(attempt) = self
            .lockout
            .reserve(storage, &id_hmac, &lockout, self.clock.now(), true)
            .await?
        else {
            return Err(CoreError::denied());
        };
        let remote = req.remote_addr;
        let role_cidr_refused = !role.secret_id_bound_cidrs.is_empty()
            && !cidrs_allow(&role.secret_id_bound_cidrs, remote);
        let role_cidr_check = || {
            if role_cidr_refused {
                Err(cidr_refused(remote, "role"))
            } else {
                Ok(())
            }
        };

        let mut metadata = Map::new();
        let mut token_cidrs = Vec::new();
        if role.bind_secret_id {
            let secret = secret_param(req.data, "secret_id")?.unwrap_or_default();
            let secret = secret.trim();
            if secret.is_empty() {
                return Err(CoreError::invalid("missing secret_id"));
            }
            let entry = if secret.len() > MAX_HMAC_INPUT {
                None
            } else {
                let secret_hmac = self.hmac.hmac(storage, secret.as_bytes()).await?;
                let key = secret_key(&role.uuid, &secret_hmac);
                self.consume_secret_id(storage, &key, remote, role_cidr_check)
                    .await?
            };
            let Some(entry) = entry else {
                if attempt.failed(storage, self.clock.now()).await? {
                    tracing::warn!(
                        mount = %req.mount.path,
                        role = %role.name,
                        "approle: too many failed logins, locking the role_id out"
                    );
                }
                return Err(invalid());
            };
            metadata = entry
                .metadata
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect();
            token_cidrs = entry.token_bound_cidrs;
        } else {
            role_cidr_check()?;
        }
        attempt.succeeded(storage).await;

        metadata.insert("role_name".into(), Value::from(role.name.clone()));
        let display = display_source(&req.mount.path)
            .trim_end_matches('-')
            .to_string();
        let mut auth = role.token.login_auth(display, metadata);
        if !token_cidrs.is_empty() {
            auth.bound_cidrs = token_cidrs;
        }
        Ok(Some(Response {
            login: Some(auth),
            ..Default::default()
        }))
    }

    /// Validate the secret ID at `key` and count one use, atomically: every check runs before
    /// anything is written, and the write is conditional on the record being unchanged since
    /// it was read (a concurrent login makes this one re-read and re-check). `None`: no such
    /// secret ID (unknown, expired or used up), i.e. invalid credentials.
    async fn consume_secret_id(
        &self,
        storage: &View,
        key: &str,
        remote: Option<std::net::IpAddr>,
        role_cidr_check: impl Fn() -> Result<()>,
    ) -> Result<Option<SecretIdEntry>> {
        for _ in 0..MAX_CAS_RETRIES {
            let Some((entry, bytes)) = load::<SecretIdEntry>(storage, key, "secret ID").await?
            else {
                return Ok(None);
            };
            let now = self.clock.now();
            if entry.expired(now) {
                return Ok(None);
            }
            if !entry.cidr_list.is_empty() && !cidrs_allow(&entry.cidr_list, remote) {
                return Err(match remote {
                    Some(a) => CoreError::invalid(format!(
                        "source address \"{a}\" unauthorized through CIDR restrictions on the secret ID"
                    )),
                    None => CoreError::invalid("failed to get connection information"),
                });
            }
            role_cidr_check()?;
            let ops = match entry.secret_id_num_uses {
                0 => return Ok(Some(entry)),
                1 => {
                    let acc = self
                        .hmac
                        .hmac(storage, entry.secret_id_accessor.as_bytes())
                        .await?;
                    vec![
                        op_check(key, Some(&bytes)),
                        op_delete(key),
                        op_delete(accessor_key(&acc)),
                    ]
                }
                n => {
                    let mut updated = entry.clone();
                    updated.secret_id_num_uses = n - 1;
                    updated.last_updated_time = now;
                    vec![op_check(key, Some(&bytes)), op_put(key, &updated)?]
                }
            };
            match storage.transaction(ops).await {
                Ok(()) => return Ok(Some(entry)),
                Err(e) if is_cas_failure(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_much_contention())
    }
}
