//! ListSecrets, BatchGetSecretValue and ListSecretVersionIds.
//!
//! A listing is one core request per page of the kv domain's recursive, described listing
//! (`list` on `metadata/`, answering only the secrets whose metadata the caller may read), then
//! filtered, sorted by creation date and paged here. The `NextToken` is the position of the last
//! secret answered (its creation time and name), so pages stay consistent while secrets come
//! and go.

use super::error::AwsError;
use super::filters::{self, Candidate, Filter};
use super::ops::{self, describe_json, epoch, value_json, view};
use super::params::Params;
use super::{names, Ctx, OpResult};
use coffer_core::request::Operation;
use coffer_engines::kv::domain::{ListPage, SecretView};
use serde_json::{json, Map, Value};

/// Largest page the kv domain answers.
const DOMAIN_PAGE: u32 = 1000;

/// Every secret the caller may see: live ones, and with `deleted` those scheduled for deletion.
async fn all_secrets(ctx: &Ctx<'_>, deleted: bool) -> Result<Vec<SecretView>, AwsError> {
    let mut out = Vec::new();
    for only_deleted in [false, true] {
        if only_deleted && !deleted {
            continue;
        }
        let mut next: Option<String> = None;
        loop {
            let mut data = Map::new();
            data.insert("recursive".into(), json!(true));
            data.insert("describe".into(), json!(true));
            data.insert("page_size".into(), json!(DOMAIN_PAGE));
            data.insert("deleted".into(), json!(only_deleted));
            if let Some(t) = &next {
                data.insert("next_token".into(), json!(t));
            }
            let page: ListPage = view(
                ctx.call(Operation::List, "domain/secrets/", data)
                    .await
                    .map_err(|e| AwsError::from_core(&e))?,
            )?;
            out.extend(page.secrets);
            match page.next_token {
                Some(t) => next = Some(t),
                None => break,
            }
        }
    }
    Ok(out)
}

fn candidate(s: &SecretView) -> Candidate<'_> {
    Candidate {
        name: &s.name,
        description: &s.description,
        tags: &s.tags,
        primary_region: s.primary_region.as_deref(),
        owning_service: None,
    }
}

/// The sort key of a secret in a listing.
fn position(s: &SecretView) -> (String, String) {
    (s.created_time.clone(), s.name.clone())
}

fn encode_token(pos: &(String, String)) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([pos.0, pos.1]).to_string())
}

fn invalid_token() -> AwsError {
    AwsError {
        status: axum::http::StatusCode::BAD_REQUEST,
        code: "InvalidNextTokenException",
        message: "The NextToken value is not valid.".into(),
    }
}

fn decode_token(t: &str) -> Result<(String, String), AwsError> {
    use base64::Engine as _;
    let bad = invalid_token;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .map_err(|_| bad())?;
    let (created, name): (String, String) = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((created, name))
}

/// Filter, sort (`asc` by default: oldest first) and take one page. Answers the page and the
/// token of the next one.
fn page(
    mut secrets: Vec<SecretView>,
    filters: &[Filter],
    descending: bool,
    max: usize,
    after: Option<(String, String)>,
) -> (Vec<SecretView>, Option<String>) {
    secrets.retain(|s| filters::matches(filters, &candidate(s)));
    secrets.sort_by_key(position);
    if descending {
        secrets.reverse();
    }
    if let Some(a) = &after {
        secrets.retain(|s| {
            let p = position(s);
            if descending {
                p < *a
            } else {
                p > *a
            }
        });
    }
    let more = secrets.len() > max;
    secrets.truncate(max);
    let next = more.then(|| secrets.last().map(|s| encode_token(&position(s))));
    (secrets, next.flatten())
}

fn sort_order(p: &Params<'_>) -> Result<bool, AwsError> {
    match p.str_opt("SortOrder", 0, 16)? {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(_) => Err(AwsError::validation(
            "1 validation error detected: Value at 'sortOrder' failed to satisfy constraint: \
             Member must satisfy enum value set: [asc, desc]",
        )),
    }
}

fn parse_filters(p: &Params<'_>) -> Result<Vec<Filter>, AwsError> {
    match p.raw("Filters") {
        None => Ok(Vec::new()),
        Some(v) => filters::parse(v).map_err(AwsError::invalid_parameter),
    }
}

fn next_token(p: &Params<'_>) -> Result<Option<(String, String)>, AwsError> {
    p.str_opt("NextToken", 1, 4096)?
        .map(decode_token)
        .transpose()
}

pub async fn list_secrets(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let max = p.int_opt("MaxResults", 1, 100)?.unwrap_or(100);
    let descending = sort_order(p)?;
    let filters = parse_filters(p)?;
    let after = next_token(p)?;
    let deleted = p.bool_opt("IncludePlannedDeletion")?.unwrap_or(false);
    let secrets = all_secrets(ctx, deleted).await?;
    let max = usize::try_from(max).unwrap_or(100);
    let (secrets, next) = page(secrets, &filters, descending, max, after);
    let list: Vec<Value> = secrets
        .iter()
        .map(|s| describe_json(ctx, s, "SecretVersionsToStages"))
        .collect();
    let mut out = json!({ "SecretList": list });
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(out)
}

pub async fn batch_get_secret_value(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let ids = p.str_list("SecretIdList")?;
    let has_filters = p.has("Filters");
    let max = p.int_opt("MaxResults", 1, 20)?;
    match (&ids, has_filters) {
        (Some(_), true) | (None, false) => {
            return Err(AwsError::invalid_parameter(
                "Specify either SecretIdList or Filters, but not both.",
            ))
        }
        (Some(ids), false) if max.is_some() || p.has("NextToken") => {
            let _ = ids;
            return Err(AwsError::invalid_parameter(
                "MaxResults and NextToken apply only to Filters.",
            ));
        }
        _ => {}
    }
    let (targets, next) = match ids {
        Some(ids) => {
            if ids.is_empty() || ids.len() > 20 {
                return Err(AwsError::validation(
                    "1 validation error detected: Value at 'secretIdList' failed to satisfy \
                     constraint: Member must have length between 1 and 20",
                ));
            }
            (ids, None)
        }
        None => {
            let filters = parse_filters(p)?;
            let after = next_token(p)?;
            let secrets = all_secrets(ctx, false).await?;
            let max = usize::try_from(max.unwrap_or(20)).unwrap_or(20);
            let (secrets, next) = page(secrets, &filters, false, max, after);
            (secrets.into_iter().map(|s| s.name).collect(), next)
        }
    };
    let mut values = Vec::new();
    let mut errors = Vec::new();
    let mut current = Map::new();
    current.insert("label".into(), json!(ops::AWSCURRENT));
    for id in targets {
        match ops::read_value(ctx, &id, &current, "staging label: AWSCURRENT").await {
            Ok(v) => values.push(value_json(ctx, v)),
            Err(e) => errors.push(json!({
                "SecretId": id,
                "ErrorCode": e.code,
                "Message": e.message,
            })),
        }
    }
    let mut out = json!({ "SecretValues": values, "Errors": errors });
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(out)
}

pub async fn list_secret_version_ids(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let max = p.int_opt("MaxResults", 1, 100)?.unwrap_or(100);
    let include_deprecated = p.bool_opt("IncludeDeprecated")?.unwrap_or(false);
    let after: Option<u64> = match p.str_opt("NextToken", 1, 4096)? {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| invalid_token())?),
    };
    let name = ops::resolve(ctx, id).await?;
    let s = ops::describe(ctx, &name).await.map_err(ops::secret_error)?;
    // newest first, as AWS lists them
    let mut versions: Vec<_> = s
        .versions
        .iter()
        .filter(|v| !v.destroyed && (include_deprecated || !v.staging_labels.is_empty()))
        .filter(|v| after.is_none_or(|a| v.number < a))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.number));
    let max = usize::try_from(max).unwrap_or(100);
    let more = versions.len() > max;
    versions.truncate(max);
    let list: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut e = json!({
                "VersionId": v.version_id,
                "VersionStages": v.staging_labels,
                "CreatedDate": epoch(&v.created_time),
            });
            if let Some(k) = &s.kms_key_id {
                e["KmsKeyIds"] = json!([k]);
            }
            if let Some(d) = &s.last_accessed_date {
                e["LastAccessedDate"] = epoch(d);
            }
            e
        })
        .collect();
    let mut out = json!({
        "Versions": list,
        "ARN": ctx.arn(&s.name, &s.secret_id),
        "Name": s.name,
    });
    if more {
        if let Some(last) = versions.last() {
            out["NextToken"] = json!(last.number.to_string());
        }
    }
    Ok(out)
}
