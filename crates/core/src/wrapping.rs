//! Response wrapping: a response is stored in the cubbyhole of a new single-use token with the
//! requested TTL, and the caller gets only `wrap_info`; `sys/wrapping/unwrap` returns it once.

use crate::error::{CoreError, Result};
use crate::request::{AuthInfo, Response, WrapInfo};
use crate::token::NewToken;
use crate::token::TokenStore;
use crate::util::{format_unix, parse_duration_str, unix_now};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The policy name wrapping tokens carry.
pub const WRAPPING_POLICY: &str = crate::names::WRAPPING_POLICY;
/// Longest wrapping TTL accepted.
const MAX_WRAP_TTL: u64 = 768 * 3600;

/// A response as kept inside the wrapping token's cubbyhole.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: Option<Map<String, Value>>,
    auth: Option<AuthInfo>,
    warnings: Vec<String>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    /// `Response.kind` of the wrapped answer.
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    creation_path: String,
    /// RFC 3339, kept as text so lookups print exactly what wrap_info said.
    creation_time: String,
    creation_ttl: u64,
}

pub fn parse_wrap_ttl(raw: &str) -> Result<u64> {
    let ttl = parse_duration_str(raw)
        .map_err(|_| CoreError::invalid("invalid wrap TTL"))?
        .as_secs();
    if ttl == 0 {
        return Err(CoreError::invalid("wrap TTL must be greater than zero"));
    }
    if ttl > MAX_WRAP_TTL {
        return Err(CoreError::invalid(
            "wrap TTL is larger than the maximum allowed",
        ));
    }
    Ok(ttl)
}

/// Wrap `resp` (created at `path`) for `ttl` seconds; returns the response to send instead.
pub async fn wrap(tokens: &TokenStore, resp: Response, path: &str, ttl: u64) -> Result<Response> {
    let wrapped_accessor = resp
        .auth
        .as_ref()
        .map(|a| a.accessor.clone())
        .unwrap_or_default();
    let stored = Stored {
        data: resp.data,
        auth: resp.auth,
        warnings: resp.warnings,
        lease_id: resp.lease_id,
        lease_duration: resp.lease_duration,
        renewable: resp.renewable,
        kind: resp.kind.map(|k| k.into_owned()),
    };
    let (token, entry) = tokens
        .create(NewToken {
            policies: vec![WRAPPING_POLICY.to_string()],
            display_name: "response-wrapping".into(),
            ttl,
            path: "sys/wrapping/wrap".into(),
            ..Default::default()
        })
        .await?;
    let cubby = tokens.cubbyhole(&entry.hash);
    let bytes = Zeroizing::new(
        serde_json::to_vec(&stored).map_err(|e| CoreError::internal(e.to_string()))?,
    );
    let now = format_unix(unix_now());
    cubby.put("response", &bytes).await?;
    cubby
        .put_json(
            "meta",
            &Meta {
                creation_path: path.to_string(),
                creation_time: now.clone(),
                creation_ttl: ttl,
            },
        )
        .await?;
    Ok(Response {
        wrap_info: Some(WrapInfo {
            token,
            accessor: entry.accessor.clone(),
            ttl,
            creation_time: now,
            creation_path: path.to_string(),
            wrapped_accessor,
        }),
        ..Default::default()
    })
}

fn invalid() -> CoreError {
    CoreError::invalid("wrapping token is not valid or does not exist")
}

async fn wrapping_entry(
    tokens: &TokenStore,
    token: &str,
) -> Result<std::sync::Arc<crate::token::TokenEntry>> {
    let entry = tokens.lookup(token).await?.ok_or_else(invalid)?;
    if !entry.policies.iter().any(|p| p == WRAPPING_POLICY) {
        return Err(invalid());
    }
    Ok(entry)
}

/// Take the wrapped response out (once) and revoke the wrapping token.
async fn take(tokens: &TokenStore, token: &str) -> Result<(Stored, Meta)> {
    let entry = wrapping_entry(tokens, token).await?;
    let cubby = tokens.cubbyhole(&entry.hash);
    let raw = cubby.get("response").await?.ok_or_else(invalid)?;
    let meta: Meta = cubby.get_json("meta").await?.ok_or_else(invalid)?;
    // only one concurrent unwrap can delete the record it read
    cubby
        .transaction(vec![
            crate::barrier::BarrierOp::Check {
                key: "response".into(),
                expected: Some(raw.clone()),
            },
            crate::barrier::BarrierOp::Delete {
                key: "response".into(),
            },
        ])
        .await
        .map_err(|_| invalid())?;
    tokens.revoke_tree(&entry.hash).await?;
    let stored: Stored = serde_json::from_slice(&raw)
        .map_err(|_| CoreError::internal("wrapped response is corrupted"))?;
    Ok((stored, meta))
}

impl From<Stored> for Response {
    fn from(s: Stored) -> Response {
        Response {
            data: s.data,
            auth: s.auth,
            warnings: s.warnings,
            lease_id: s.lease_id,
            lease_duration: s.lease_duration,
            renewable: s.renewable,
            kind: s.kind.map(std::borrow::Cow::Owned),
            ..Default::default()
        }
    }
}

pub async fn unwrap(tokens: &TokenStore, token: &str) -> Result<Response> {
    let (s, _) = take(tokens, token).await?;
    Ok(s.into())
}

pub async fn rewrap(tokens: &TokenStore, token: &str) -> Result<Response> {
    let (s, meta) = take(tokens, token).await?;
    wrap(tokens, s.into(), &meta.creation_path, meta.creation_ttl).await
}

pub async fn lookup(tokens: &TokenStore, token: &str) -> Result<Response> {
    let entry = wrapping_entry(tokens, token).await?;
    let meta: Meta = tokens
        .cubbyhole(&entry.hash)
        .get_json("meta")
        .await?
        .ok_or_else(invalid)?;
    Ok(Response::from_value(serde_json::json!({
        "creation_path": meta.creation_path,
        "creation_time": meta.creation_time,
        "creation_ttl": meta.creation_ttl,
    })))
}
