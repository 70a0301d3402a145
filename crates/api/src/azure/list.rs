//! The listings: secrets, deleted secrets and a secret's versions, paged with `maxresults`
//! (1–25, default 25) and an absolute `nextLink` on the request's host. Secrets whose names Key
//! Vault does not accept (e.g. `folder/x`) are left out.

use super::error::AzureError;
use super::names;
use super::render::view;
use super::{Answer, Ctx, OpResult};
use base64::Engine as _;
use coffer_core::request::Operation;
use coffer_engines::kv::domain::{ListPage, SecretView};
use serde_json::{Map, Value};

const DEFAULT_PAGE: u32 = 25;
const MAX_PAGE: u32 = 25;

/// A listing's paging parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub max: u32,
    /// The position to continue from (decoded from `$skiptoken`).
    pub skip: Option<String>,
    pub api_version: Option<String>,
}

impl Paging {
    pub fn from_query(
        max: Option<String>,
        skip: Option<String>,
        api_version: Option<String>,
    ) -> Result<Self, AzureError> {
        let max = match max {
            None => DEFAULT_PAGE,
            Some(m) => match m.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(AzureError::bad_parameter(format!(
                        "maxresults must be a number from 1 to {MAX_PAGE}."
                    )))
                }
            },
        };
        let skip = match skip {
            None => None,
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t.trim().as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AzureError::bad_parameter("$skiptoken is not valid."))?,
            ),
        };
        Ok(Paging {
            max,
            skip,
            api_version: api_version.filter(|v| names::is_legal(&v.replace('.', "-"))),
        })
    }

    /// The next page's absolute link (`path` below the host).
    fn next_link(&self, ctx: &Ctx<'_>, path: &str, position: &str) -> String {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position);
        let api = self
            .api_version
            .as_deref()
            .map(|v| format!("api-version={v}&"))
            .unwrap_or_default();
        format!(
            "{}/{path}?{api}$skiptoken={token}&maxresults={}",
            ctx.base, self.max
        )
    }
}

fn page(items: Vec<Map<String, Value>>, next: Option<String>) -> OpResult {
    let mut out = Map::new();
    out.insert(
        "value".into(),
        Value::Array(items.into_iter().map(Value::Object).collect()),
    );
    out.insert(
        "nextLink".into(),
        next.map(Value::from).unwrap_or(Value::Null),
    );
    Ok(Answer::Json(out))
}

/// GET /secrets and GET /deletedsecrets.
pub async fn list_secrets(ctx: &Ctx<'_>, paging: &Paging, deleted: bool) -> OpResult {
    let mut d = Map::new();
    d.insert("page_size".into(), Value::from(paging.max));
    d.insert("deleted".into(), Value::from(deleted));
    d.insert("describe".into(), Value::from(true));
    if let Some(t) = &paging.skip {
        d.insert("next_token".into(), Value::from(t.clone()));
    }
    let resp = ctx
        .call(Operation::List, "domain/secrets/", d)
        .await
        .map_err(|e| AzureError::from_core(&e))?;
    let listed: ListPage = view(resp)?;
    let items = listed
        .secrets
        .iter()
        .filter(|s| names::is_legal(&s.name))
        .map(|s| {
            if deleted {
                ctx.deleted_item(s)
            } else {
                ctx.item(s)
            }
        })
        .collect();
    let collection = if deleted { "deletedsecrets" } else { "secrets" };
    let next = listed
        .next_token
        .as_deref()
        .map(|t| paging.next_link(ctx, collection, t));
    page(items, next)
}

/// GET /secrets/{name}/versions.
pub async fn list_versions(ctx: &Ctx<'_>, name: &str, paging: &Paging) -> OpResult {
    let mut d = Map::new();
    d.insert("fold_case".into(), Value::from(true));
    let s: SecretView = view(
        ctx.call(Operation::Read, &format!("domain/secrets/{name}"), d)
            .await
            .map_err(|e| AzureError::for_secret(&e, name, None, false))?,
    )?;
    if s.deletion.is_some() {
        return Err(AzureError::secret_not_found(name));
    }
    let start: usize = match &paging.skip {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| AzureError::bad_parameter("$skiptoken is not valid."))?,
    };
    let max = paging.max as usize;
    let items = s
        .versions
        .iter()
        .skip(start)
        .take(max)
        .map(|v| ctx.version_item(&s, v))
        .collect();
    let end = start.saturating_add(max);
    let next = (end < s.versions.len()).then(|| {
        paging.next_link(
            ctx,
            &format!("secrets/{}/versions", s.name),
            &end.to_string(),
        )
    });
    page(items, next)
}
