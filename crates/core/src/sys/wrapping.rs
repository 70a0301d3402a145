//! `sys/wrapping/*`: wrap, unwrap, lookup, rewrap (the response-wrapping machinery is in
//! [`crate::wrapping`]).

use crate::core::Active;
use crate::error::{CoreError, Result};
use crate::params::str_param;
use crate::request::{Operation, Request, Response};

/// Whether `rest` (the path below `sys/`) is served here.
pub(super) fn owns(rest: &str) -> bool {
    rest.starts_with("wrapping/")
}

pub(super) async fn dispatch(
    active: &Active,
    req: &Request,
    rest: &str,
    op: Operation,
) -> Result<Response> {
    let d = &req.data;
    match (rest, op) {
        ("wrapping/unwrap" | "wrapping/lookup" | "wrapping/rewrap", Operation::Update)
        | ("wrapping/lookup", Operation::Read) => {
            // the wrapping token is the credential: from the body, else the request's token
            let token = match str_param(d, "token")? {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => req
                    .token()
                    .map(str::to_string)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CoreError::invalid("no wrapping token given"))?,
            };
            match rest {
                "wrapping/unwrap" => crate::wrapping::unwrap(&active.tokens, &token).await,
                "wrapping/rewrap" => crate::wrapping::rewrap(&active.tokens, &token).await,
                _ => crate::wrapping::lookup(&active.tokens, &token).await,
            }
        }
        ("wrapping/wrap", Operation::Update) => {
            // as Vault: the wrap TTL is required, and any body is wrapped as given, an empty one
            // too (unwrapping it answers empty data)
            let ttl = req
                .wrap_ttl
                .as_deref()
                .filter(|w| !w.is_empty())
                .ok_or_else(|| {
                    CoreError::invalid("endpoint requires response wrapping to be used")
                })?;
            let ttl = crate::wrapping::parse_wrap_ttl(ttl)?;
            crate::wrapping::wrap(
                &active.tokens,
                Response::data(d.clone()),
                "sys/wrapping/wrap",
                ttl,
            )
            .await
        }
        _ => Err(CoreError::unsupported_path(&req.path)),
    }
}
