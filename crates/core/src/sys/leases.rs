//! `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke`): lookup, renew, revoke, tidy.

use crate::auth_token::keys_map;
use crate::core::Active;
use crate::error::{CoreError, Result};
use crate::params::str_param;
use crate::request::{Operation, Response};
use crate::util::parse_duration_value;
use serde_json::{Map, Value};

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    rest.starts_with("leases/") || matches!(rest, "renew" | "revoke")
}

/// `sys/leases/...`, `sys/renew`, `sys/revoke`.
pub(super) async fn dispatch(
    active: &Active,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    full_path: &str,
) -> Result<Response> {
    match (rest, op) {
        ("leases/lookup", Operation::Update) => {
            let id = lease_id_param(d)?;
            let lease = active
                .leases
                .get(&id)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid lease"))?;
            Ok(Response::data(lease.lookup_data()))
        }
        (p, Operation::List) if p == "leases/lookup" || p.starts_with("leases/lookup/") => {
            let prefix = p
                .trim_start_matches("leases/lookup")
                .trim_start_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            crate::lease::validate_lease_id(if prefix.is_empty() { "x" } else { &prefix })?;
            let keys = active.leases.view().list(&prefix).await?;
            if keys.is_empty() {
                return Err(CoreError::not_found(""));
            }
            Ok(Response::data(keys_map(keys)))
        }
        ("leases/renew" | "renew", Operation::Update) => {
            let id = lease_id_param(d)?;
            let lease = active
                .leases
                .get(&id)
                .await?
                .ok_or_else(|| CoreError::invalid("lease not found"))?;
            // 0 (what Vault's CLI sends without -increment) asks for the default
            let increment = match d.get("increment").filter(|v| !v.is_null()) {
                Some(v) => Some(parse_duration_value(v)?.as_secs()).filter(|i| *i > 0),
                None => None,
            };
            match (&lease.token_hash, &lease.secret) {
                // as in Vault: a token is renewed through auth/token/renew*, which asks the auth
                // method that issued it
                (Some(_), _) => Err(CoreError::invalid(
                    "tokens cannot be renewed through this endpoint",
                )),
                (None, Some(_)) if lease.renewable => renew_secret(active, lease, increment).await,
                _ => Err(CoreError::invalid("lease is not renewable")),
            }
        }
        ("leases/revoke" | "revoke", Operation::Update) => {
            let id = lease_id_param(d)?;
            active.revoke_lease(&id).await?;
            Ok(Response::default())
        }
        (p, Operation::Update) if p.starts_with("leases/revoke/") => {
            let id = p["leases/revoke/".len()..].to_string();
            crate::lease::validate_lease_id(&id)?;
            active.revoke_lease(&id).await?;
            Ok(Response::default())
        }
        (p, Operation::Update)
            if p.starts_with("leases/revoke-prefix/") || p.starts_with("leases/revoke-force/") =>
        {
            let force = p.starts_with("leases/revoke-force/");
            let prefix = p.splitn(3, '/').nth(2).unwrap_or("").trim_end_matches('/');
            crate::lease::validate_lease_id(prefix)?;
            // the prefix may itself be a lease id (Vault revokes it first)
            let mut ids = active.leases.ids_under(&format!("{prefix}/")).await?;
            if active.leases.get(prefix).await?.is_some() {
                ids.insert(0, prefix.to_string());
            }
            for id in ids {
                match active.revoke_lease(&id).await {
                    Ok(()) => {}
                    Err(_) if force => active.leases.delete(&id).await?,
                    Err(e) => return Err(e),
                }
            }
            Ok(Response::default())
        }
        ("leases/tidy", Operation::Update) => {
            let mut removed = 0u64;
            for id in active.leases.ids_under("").await? {
                if let Some(l) = active.leases.get(&id).await? {
                    if let Some(h) = &l.token_hash {
                        if active.tokens.lookup_hash(h).await?.is_none() {
                            active.leases.delete(&id).await?;
                            removed += 1;
                        }
                    }
                }
            }
            Ok(Response::default().with_warning(format!(
                "Tidy operation completed: removed {removed} leases whose tokens no longer exist."
            )))
        }
        _ => Err(CoreError::unsupported_path(full_path)),
    }
}

/// Renew an engine's secret: by `increment` seconds from now (default: its last duration), never
/// past its max TTL; the engine extends it where it lives first.
async fn renew_secret(
    active: &Active,
    mut lease: crate::lease::Lease,
    increment: Option<u64>,
) -> Result<Response> {
    let now = crate::util::unix_now();
    if lease.expire_time <= now {
        return Err(CoreError::invalid("lease expired"));
    }
    let Some(sec) = lease.secret.clone() else {
        return Err(CoreError::invalid("lease is not renewable"));
    };
    let last = lease.expire_time - lease.last_renewal.unwrap_or(lease.issue_time);
    let want = increment.map(|i| i as f64).unwrap_or(last);
    let expire = (now + want).min(sec.max_expire_time);
    let mount = active
        .router
        .snapshot()
        .iter()
        .find(|m| m.entry.accessor == sec.mount_accessor)
        .cloned()
        .ok_or_else(|| CoreError::invalid("the mount that issued this lease is gone"))?;
    mount
        .engine
        .renew_secret(&mount.view, &sec.internal, expire)
        .await?;
    lease.expire_time = expire;
    lease.last_renewal = Some(now);
    active.leases.put(&lease).await?;
    Ok(Response {
        lease_id: lease.lease_id,
        lease_duration: (expire - now).max(0.0).round() as u64,
        renewable: true,
        ..Default::default()
    })
}

fn lease_id_param(d: &Map<String, Value>) -> Result<String> {
    let id = str_param(d, "lease_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CoreError::invalid("lease_id must be specified"))?
        .to_string();
    crate::lease::validate_lease_id(&id)?;
    Ok(id)
}
