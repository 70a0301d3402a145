//! The `sys/` API that runs through the router: mounts, policies, capabilities, keys, seal.
//! (`sys/init`, `sys/unseal`, `sys/seal-status` and `sys/health` work while sealed and are
//! served by the dialect from [`Core`]'s seal methods directly.)

mod audit;
mod leases;
mod mounts;
mod policy;
mod seal_admin;
mod tools;
mod wrapping;

use crate::core::{Active, Core};
use crate::error::{CoreError, Result};
use crate::request::{Operation, Request, Response};
use crate::token::TokenEntry;
use serde_json::json;
use std::sync::Arc;

/// Paths under `sys/` that need `sudo` (Vault's root-protected sys paths).
pub(crate) fn needs_sudo(rest: &str, op: Operation) -> bool {
    rest == "rotate"
        || rest == "seal"
        || rest == "step-down"
        || rest.starts_with("raw")
        || rest.starts_with("audit")
        || rest == "remount"
        || rest == "rekey/backup"
        || rest == "rekey/recovery-key-backup"
        || (rest.starts_with("auth/") && !rest.ends_with("/tune") && op != Operation::Read)
        || rest.starts_with("leases/revoke-prefix/")
        || rest.starts_with("leases/revoke-force/")
        || (rest.starts_with("leases/lookup") && op == Operation::List)
}

/// Paths under `sys/` open to any valid token without an ACL check. As in Vault, a client may
/// ask which mount serves a path and how (`coffer kv` and `vault kv` use it to find the kv
/// version); the data itself stays behind the ACL.
pub(crate) fn any_valid_token(rest: &str) -> bool {
    rest.starts_with("internal/ui/mounts/") || tools::owns(rest)
}

/// Paths under `sys/` answered without a token.
pub(crate) fn unauthenticated(rest: &str) -> bool {
    matches!(
        rest,
        "leader"
            | "health"
            | "seal-status"
            | "init"
            | "wrapping/unwrap"
            | "wrapping/lookup"
            | "wrapping/rewrap"
    ) || seal_admin::unauthenticated(rest)
}

/// `sys/leader`'s answer (also given by standbys, which answer it themselves).
pub fn leader_json(core: &Core) -> serde_json::Value {
    let l = core.leader_status();
    json!({
        "ha_enabled": l.ha_enabled,
        "is_self": l.is_self,
        "active_time": l.active_time,
        "leader_address": l.leader_address,
        "leader_cluster_address": l.leader_cluster_address,
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0
    })
}

/// Run a `sys/` request that the core has already authenticated, authorized and audited.
pub(crate) async fn dispatch(
    core: &Core,
    active: &Active,
    req: &Request,
    rest: &str,
    op: Operation,
    caller: Option<Arc<TokenEntry>>,
) -> Result<Response> {
    let d = &req.data;
    match (rest, op) {
        ("leader", Operation::Read) => Ok(Response::from_value(leader_json(core))),
        ("step-down", Operation::Update) => {
            core.step_down()?;
            Ok(Response::default())
        }
        ("ha-status", Operation::Read) => {
            let nodes: Vec<serde_json::Value> = core
                .ha_status()
                .await?
                .into_iter()
                .map(|(n, active, seen)| {
                    json!({
                        "hostname": n.hostname,
                        "api_address": n.api_addr,
                        "cluster_address": n.cluster_addr,
                        "active_node": active,
                        "last_echo": seen.map(|s| crate::util::format_unix(s as f64)),
                        "version": n.version,
                        "upgrade_version": n.version,
                        "redundancy_zone": "",
                    })
                })
                .collect();
            Ok(Response::from_value(json!({ "nodes": nodes })))
        }
        (p, _) if mounts::owns(p) => {
            mounts::dispatch(core, active, p, op, d, caller, &req.path).await
        }
        (p, _) if policy::owns(p) => policy::dispatch(active, p, op, d, caller, &req.path).await,
        (p, _) if audit::owns(p) => audit::dispatch(active, p, op, d, &req.path).await,
        (p, _) if wrapping::owns(p) => wrapping::dispatch(active, req, p, op).await,
        (p, _) if seal_admin::owns(p) => seal_admin::dispatch(core, p, op, d).await,
        (p, _) if leases::owns(p) => leases::dispatch(active, p, op, d, &req.path).await,
        (p, _) if tools::owns(p) => tools::dispatch(p, op, d, caller.as_deref()),
        ("rotate", Operation::Update) => {
            core.rotate().await?;
            Ok(Response::default())
        }
        ("key-status", Operation::Read) => {
            let st = core.barrier().key_status()?;
            Ok(Response::from_value(json!({
                "term": st.term,
                "install_time": st.install_time,
                "encryptions": 0
            })))
        }
        // the core seals once this request's response entry is written (see Core::handle)
        ("seal", Operation::Update) => Ok(Response::default()),
        ("leader" | "rotate" | "key-status" | "seal" | "step-down" | "ha-status", _) => {
            Err(CoreError::unsupported_operation())
        }
        _ => Err(CoreError::unsupported_path(&req.path)),
    }
}
