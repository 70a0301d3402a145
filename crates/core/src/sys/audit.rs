//! `sys/audit`, `sys/audit/<path>`, `sys/audit-hash/<path>`, `sys/audit-chain/<path>`.

use crate::core::Active;
use crate::error::{CoreError, Result};
use crate::params::str_param;
use crate::request::{Operation, Response};
use crate::util::value_as_bool;
use serde_json::{json, Map, Value};

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    rest == "audit"
        || rest.starts_with("audit/")
        || rest.starts_with("audit-hash/")
        || rest.starts_with("audit-chain/")
}

pub(super) async fn dispatch(
    active: &Active,
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    full_path: &str,
) -> Result<Response> {
    match (rest, op) {
        ("audit", Operation::Read) => Ok(Response::data(active.audit.list())),
        (p, Operation::Update) if p.starts_with("audit/") => {
            let kind = match d.get("type") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(CoreError::invalid(
                        "audit device type must be specified as a string",
                    ))
                }
            };
            let description = str_param(d, "description")?.unwrap_or("").to_string();
            let options = match d.get("options") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(CoreError::invalid("\"options\" must be an object")),
            };
            let local = match d.get("local") {
                None | Some(Value::Null) => false,
                Some(v) => value_as_bool(v)
                    .ok_or_else(|| CoreError::invalid("\"local\" must be a boolean"))?,
            };
            active
                .audit
                .enable(&p["audit/".len()..], &kind, description, options, local)
                .await?;
            Ok(Response::default())
        }
        (p, Operation::Delete) if p.starts_with("audit/") => {
            active.audit.disable(&p["audit/".len()..]).await?;
            Ok(Response::default())
        }
        (p, Operation::Update) if p.starts_with("audit-hash/") => {
            let input =
                str_param(d, "input")?.ok_or_else(|| CoreError::invalid("missing input"))?;
            let hash = active.audit.hash(&p["audit-hash/".len()..], input)?;
            Ok(Response::from_value(json!({ "hash": hash })))
        }
        (p, Operation::Read) if p.starts_with("audit-chain/") => Ok(Response::data(
            active.audit.chain_info(&p["audit-chain/".len()..])?,
        )),
        ("audit", _) => Err(CoreError::unsupported_operation()),
        _ => Err(CoreError::unsupported_path(full_path)),
    }
}
