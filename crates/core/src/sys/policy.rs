//! `sys/policy*`, `sys/policies/acl*` and `sys/capabilities*`.

use crate::auth_token::keys_map;
use crate::core::Active;
use crate::error::{CoreError, Result};
use crate::params::str_param;
use crate::request::{Operation, Response};
use crate::token::TokenEntry;
use crate::util::value_as_string_list;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    matches!(rest, "policy" | "policies/acl")
        || rest.starts_with("policy/")
        || rest.starts_with("policies/acl/")
        || rest.starts_with("capabilities")
}

pub(super) async fn dispatch(
    active: &Active,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    caller: Option<Arc<TokenEntry>>,
    full_path: &str,
) -> Result<Response> {
    match (rest, op) {
        ("policy", Operation::Read | Operation::List) => {
            let names = active.policies.list().await?;
            Ok(Response::from_value(
                json!({"policies": names, "keys": names}),
            ))
        }
        ("policies/acl", Operation::Read | Operation::List) => {
            let names = active.policies.list().await?;
            Ok(Response::data(keys_map(names)))
        }
        (p, _) if p.starts_with("policy/") => {
            policy_path(active, &p["policy/".len()..], op, d, "rules").await
        }
        (p, _) if p.starts_with("policies/acl/") => {
            policy_path(active, &p["policies/acl/".len()..], op, d, "policy").await
        }
        ("capabilities" | "capabilities-self" | "capabilities-accessor", Operation::Update) => {
            capabilities(active, rest, d, caller).await
        }
        (
            "policy"
            | "policies/acl"
            | "capabilities"
            | "capabilities-self"
            | "capabilities-accessor",
            _,
        ) => Err(CoreError::unsupported_operation()),
        _ => Err(CoreError::unsupported_path(full_path)),
    }
}

/// `sys/capabilities` (another token), `-self` (the caller), `-accessor` (by accessor).
async fn capabilities(
    active: &Active,
    rest: &str,
    d: &Map<String, Value>,
    caller: Option<Arc<TokenEntry>>,
) -> Result<Response> {
    let target = match rest {
        "capabilities-self" => caller.ok_or_else(CoreError::denied)?,
        "capabilities" => {
            let t = str_param(d, "token")?.ok_or_else(|| CoreError::invalid("missing token"))?;
            active
                .tokens
                .lookup(t)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid token"))?
        }
        _ => {
            let a =
                str_param(d, "accessor")?.ok_or_else(|| CoreError::invalid("missing accessor"))?;
            active
                .tokens
                .lookup_accessor(a)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid accessor"))?
        }
    };
    let mut paths = match d.get("paths") {
        Some(v) => value_as_string_list(v)
            .ok_or_else(|| CoreError::invalid("\"paths\" must be a list of strings"))?,
        None => vec![],
    };
    if let Some(p) = str_param(d, "path")? {
        paths.push(p.to_string());
    }
    if paths.is_empty() {
        return Err(CoreError::invalid("missing paths"));
    }
    let acl = active.policies.acl_for(&target.policies).await?;
    let mut out = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for p in &paths {
        let caps = acl.capabilities(p.trim_start_matches('/'));
        for c in &caps {
            if !all.contains(c) {
                all.push(c);
            }
        }
        out.insert(p.clone(), json!(caps));
    }
    if paths.len() == 1 {
        out.insert("capabilities".into(), json!(all));
    }
    Ok(Response::data(out))
}

async fn policy_path(
    active: &Active,
    name: &str,
    op: Operation,
    d: &Map<String, Value>,
    field: &str,
) -> Result<Response> {
    match op {
        Operation::Read => {
            if name == "root" {
                let mut m = Map::new();
                m.insert("name".into(), "root".into());
                m.insert(field.into(), "".into());
                return Ok(Response::data(m));
            }
            let (_, raw) = active
                .policies
                .get(name)
                .await?
                .ok_or_else(|| CoreError::not_found(""))?;
            let mut m = Map::new();
            m.insert(
                "name".into(),
                crate::policy_store::normalize_name(name)?.into(),
            );
            m.insert(field.into(), raw.to_string().into());
            Ok(Response::data(m))
        }
        Operation::Update => {
            let text = match d.get("policy").or_else(|| d.get("rules")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(_)) => d
                    .get("policy")
                    .or_else(|| d.get("rules"))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                None | Some(Value::Null) => {
                    return Err(CoreError::invalid(
                        "'policy' parameter not supplied or empty",
                    ))
                }
                Some(_) => return Err(CoreError::invalid("\"policy\" must be a string")),
            };
            active.policies.set(name, &text).await?;
            Ok(Response::default())
        }
        Operation::Delete => {
            active.policies.delete(name).await?;
            Ok(Response::default())
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}
