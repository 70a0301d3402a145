//! The operations on one secret. Each is one core request on the kv mount's `domain/` paths,
//! asked again under the stored spelling of the name when the request's spelling finds no
//! secret ([`names::other_spelling`]).

use super::error::AzureError;
use super::names;
use super::render::{self, latest, view, RECOVERABLE_DAYS};
use super::{Answer, Ctx, OpResult};
use base64::Engine as _;
use coffer_core::error::{CoreError, ErrorCode};
use coffer_core::request::{Operation, Response};
use coffer_engines::kv::domain::{backup_name, SecretView, VersionView};
use serde_json::{Map, Value};

/// Key Vault's limit on a secret's value.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Key Vault's limits on tags.
const MAX_TAGS: usize = 15;
const MAX_TAG_KEY: usize = 512;
const MAX_TAG_VALUE: usize = 256;

/// Parameters, with `fold_case` (Key Vault's names ignore case).
fn data(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    let mut d: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    d.insert("fold_case".into(), Value::from(true));
    d
}

/// One core request on `domain/<collection>/<name>`.
async fn call(
    ctx: &Ctx<'_>,
    op: Operation,
    collection: &str,
    name: &str,
    d: Map<String, Value>,
) -> Result<Response, CoreError> {
    ctx.call(op, &format!("domain/{collection}/{name}"), d)
        .await
}

/// `contentType`, `tags` and `attributes` (`enabled`, `nbf`, `exp`) of a set or update body,
/// as the domain's version attributes. Read-only attributes are ignored, as Azure does.
fn properties(body: &Map<String, Value>) -> Result<Map<String, Value>, AzureError> {
    let mut out = Map::new();
    match body.get("contentType") {
        None | Some(Value::Null) => {}
        Some(Value::String(ct)) if ct.len() <= 255 => {
            out.insert("content_type".into(), Value::from(ct.clone()));
        }
        Some(_) => {
            return Err(AzureError::bad_parameter(
                "contentType must be a string of at most 255 characters",
            ))
        }
    }
    match body.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tags)) => {
            if tags.len() > MAX_TAGS {
                return Err(AzureError::bad_parameter(format!(
                    "A secret version can have at most {MAX_TAGS} tags."
                )));
            }
            for (k, v) in tags {
                let ok = match v {
                    Value::String(v) => v.len() <= MAX_TAG_VALUE,
                    _ => false,
                };
                if !ok || k.is_empty() || k.len() > MAX_TAG_KEY {
                    return Err(AzureError::bad_parameter(format!(
                        "Tags must map names of 1 to {MAX_TAG_KEY} characters to strings of at \
                         most {MAX_TAG_VALUE} characters."
                    )));
                }
            }
            out.insert("version_tags".into(), Value::Object(tags.clone()));
        }
        Some(_) => {
            return Err(AzureError::bad_parameter(
                "tags must be an object of strings",
            ))
        }
    }
    let attrs = match body.get("attributes") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(AzureError::bad_parameter("attributes must be an object")),
    };
    match attrs.get("enabled") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            out.insert("enabled".into(), Value::from(*b));
        }
        Some(_) => {
            return Err(AzureError::bad_parameter(
                "attributes.enabled must be a boolean",
            ))
        }
    }
    for (wire, domain) in [("nbf", "not_before"), ("exp", "expires")] {
        match attrs.get(wire) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                Some(t) if t >= 0 => {
                    out.insert(domain.into(), Value::from(t));
                }
                _ => {
                    return Err(AzureError::bad_parameter(format!(
                        "attributes.{wire} must be a unix time in seconds"
                    )))
                }
            },
        }
    }
    Ok(out)
}

/// PUT /secrets/{name}: a new version (creating the secret if needed).
pub async fn set(ctx: &Ctx<'_>, name: &str, body: &Map<String, Value>) -> OpResult {
    let value = match body.get("value") {
        Some(Value::String(v)) => v,
        _ => {
            return Err(AzureError::bad_parameter(
                "value is required and must be a string",
            ))
        }
    };
    if value.len() > MAX_VALUE_BYTES {
        return Err(AzureError::bad_parameter(format!(
            "The secret value is too large: Key Vault accepts at most {MAX_VALUE_BYTES} bytes."
        )));
    }
    let mut d = properties(body)?;
    d.insert("text".into(), Value::from(value.as_str()));
    d.insert("fold_case".into(), Value::from(true));
    let v: VersionView = view(
        call(ctx, Operation::Update, "versions", name, d)
            .await
            .map_err(|e| AzureError::for_secret(&e, name, None, true))?,
    )?;
    Ok(Answer::Json(ctx.bundle(
        &v.name,
        &v,
        None,
        Some(value.clone()),
    )))
}

/// GET /secrets/{name}/[{version}]: a version with its value.
pub async fn get(ctx: &Ctx<'_>, name: &str, version: Option<String>) -> OpResult {
    let mut d = data(vec![("as_text", Value::from(true))]);
    if let Some(v) = &version {
        d.insert("version_id".into(), Value::from(v.clone()));
    }
    let mut v: VersionView = view(
        call(ctx, Operation::Read, "versions", name, d)
            .await
            .map_err(|e| AzureError::for_secret(&e, name, version.as_deref(), false))?,
    )?;
    let value = match (v.value.take(), v.data.take()) {
        (Some(text), _) => text,
        (None, Some(object)) => Value::Object(object).to_string(),
        (None, None) => String::new(),
    };
    Ok(Answer::Json(ctx.bundle(&v.name, &v, None, Some(value))))
}

/// PATCH /secrets/{name}/[{version}]: a version's properties (tags given replace its tags).
pub async fn update(
    ctx: &Ctx<'_>,
    name: &str,
    version: Option<String>,
    body: &Map<String, Value>,
) -> OpResult {
    let mut d = properties(body)?;
    d.insert("fold_case".into(), Value::from(true));
    if let Some(v) = &version {
        d.insert("version_id".into(), Value::from(v.clone()));
    }
    let s: SecretView = view(
        call(ctx, Operation::Update, "secrets", name, d)
            .await
            .map_err(|e| AzureError::for_secret(&e, name, version.as_deref(), true))?,
    )?;
    let v = match &version {
        Some(hex) => s.versions.iter().find(|v| v.id_hex() == *hex),
        None => latest(&s),
    }
    .ok_or_else(|| AzureError::secret_not_found(name))?;
    Ok(Answer::Json(ctx.bundle(&s.name, v, Some(&s), None)))
}

/// DELETE /secrets/{name}: soft deletion, recoverable for 90 days.
pub async fn delete(ctx: &Ctx<'_>, name: &str) -> OpResult {
    let d = data(vec![(
        "recovery_window_secs",
        Value::from(u64::from(RECOVERABLE_DAYS) * 86_400),
    )]);
    let s: SecretView = view(
        call(ctx, Operation::Delete, "secrets", name, d)
            .await
            .map_err(|e| AzureError::for_secret(&e, name, None, false))?,
    )?;
    Ok(Answer::Json(ctx.deleted_bundle(&s)))
}

/// A deleted-secret operation's error: anything not in the deleted state is "not found".
fn deleted_error(e: &CoreError, name: &str) -> AzureError {
    match e.code {
        ErrorCode::NotFound | ErrorCode::InvalidState => AzureError::deleted_not_found(name),
        _ => AzureError::from_core(e),
    }
}

/// GET /deletedsecrets/{name}.
pub async fn get_deleted(ctx: &Ctx<'_>, name: &str) -> OpResult {
    let s: SecretView = view(
        call(ctx, Operation::Read, "secrets", name, data(vec![]))
            .await
            .map_err(|e| deleted_error(&e, name))?,
    )?;
    if s.deletion.is_none() {
        return Err(AzureError::deleted_not_found(name));
    }
    Ok(Answer::Json(ctx.deleted_bundle(&s)))
}

/// POST /deletedsecrets/{name}/recover.
pub async fn recover(ctx: &Ctx<'_>, name: &str) -> OpResult {
    let s: SecretView = view(
        call(ctx, Operation::Update, "restore", name, data(vec![]))
            .await
            .map_err(|e| deleted_error(&e, name))?,
    )?;
    secret_bundle(ctx, &s)
}

/// DELETE /deletedsecrets/{name}: 204.
pub async fn purge(ctx: &Ctx<'_>, name: &str) -> OpResult {
    call(ctx, Operation::Delete, "purge", name, data(vec![]))
        .await
        .map_err(|e| deleted_error(&e, name))?;
    Ok(Answer::NoContent)
}

/// The latest version's bundle without value (recover, restore).
fn secret_bundle(ctx: &Ctx<'_>, s: &SecretView) -> OpResult {
    match latest(s) {
        Some(v) => Ok(Answer::Json(ctx.bundle(&s.name, v, Some(s), None))),
        None => Ok(Answer::Json(ctx.item(s))),
    }
}

/// POST /secrets/{name}/backup: `{"value": <base64url, unpadded>}`.
pub async fn backup(ctx: &Ctx<'_>, name: &str) -> OpResult {
    let resp = call(ctx, Operation::Read, "backup", name, data(vec![]))
        .await
        .map_err(|e| AzureError::for_secret(&e, name, None, false))?;
    let blob = resp
        .data
        .as_ref()
        .and_then(|d| d.get("backup"))
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| AzureError::from_core(&CoreError::internal("unexpected backup answer")))?;
    let mut out = Map::new();
    out.insert(
        "value".into(),
        Value::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)),
    );
    Ok(Answer::Json(out))
}

/// POST /secrets/restore `{"value": <base64url>}`: a backup, under the name it was made of.
pub async fn restore(ctx: &Ctx<'_>, body: &Map<String, Value>) -> OpResult {
    let bad = || AzureError::bad_parameter("value must be a backup blob (base64url)");
    let encoded = body.get("value").and_then(Value::as_str).ok_or_else(bad)?;
    let encoded: String = encoded
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.as_bytes())
        .map_err(|_| bad())?;
    let name = backup_name(&blob)
        .map_err(|e| AzureError::bad_parameter(e.message))?
        .to_string();
    if !names::is_legal(&name) {
        return Err(AzureError::bad_parameter(
            "The backup is of a secret whose name Key Vault does not accept.",
        ));
    }
    let d = data(vec![(
        "backup",
        Value::from(base64::engine::general_purpose::STANDARD.encode(&blob)),
    )]);
    let resp = ctx
        .call(
            Operation::Create,
            &format!("domain/restore-backup/{name}"),
            d,
        )
        .await
        .map_err(|e| match e.code {
            ErrorCode::AlreadyExists => exists(&name),
            _ => AzureError::from_core(&e),
        })?;
    let s: SecretView = render::view(resp)?;
    secret_bundle(ctx, &s)
}

fn exists(name: &str) -> AzureError {
    AzureError::new(
        axum::http::StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Secret {name} already exists (or is deleted but recoverable); a backup can only be \
             restored under a name that is free."
        ),
    )
}
