//! The operations on one secret. Each is one core request on the kv mount's `domain/` paths
//! (two for `ForceDeleteWithoutRecovery`; one more to check a full ARN's suffix first).

use super::error::{AwsError, MARKED_FOR_DELETION, NO_SUCH_SECRET};
use super::names::{self, Candidate};
use super::params::Params;
use super::{Ctx, OpResult};
use coffer_core::error::{CoreError, ErrorCode};
use coffer_core::request::{Operation, Response};
use coffer_engines::kv::domain::{is_missing_secret, SecretView, VersionView};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

pub const AWSCURRENT: &str = "AWSCURRENT";
/// SecretString and SecretBinary: at most 65,536 bytes.
pub const MAX_SECRET_SIZE: usize = 65_536;
/// Most tags on a secret.
const MAX_TAGS: usize = 50;
/// `ClientRequestToken`: 32–64 characters.
const TOKEN_LEN: (usize, usize) = (32, 64);

/// A typed kv answer.
pub(super) fn view<T: DeserializeOwned>(resp: Response) -> Result<T, AwsError> {
    let data = resp.data.unwrap_or_default();
    serde_json::from_value(Value::Object(data))
        .map_err(|_| AwsError::from_core(&CoreError::internal("unexpected kv answer")))
}

/// RFC 3339 → epoch seconds (AWS's timestamps in JSON 1.1), to the millisecond.
pub(super) fn epoch(rfc3339: &str) -> Value {
    match time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let ms = t.unix_timestamp_nanos() / 1_000_000;
            let secs = ms as f64 / 1000.0;
            json!(secs)
        }
        Err(_) => Value::Null,
    }
}

/// Map a domain error for an operation on `name`: missing secrets and secrets scheduled for
/// deletion in AWS's words.
pub(super) fn secret_error(e: CoreError) -> AwsError {
    match e.code {
        ErrorCode::NotFound if is_missing_secret(&e) => AwsError::not_found(NO_SUCH_SECRET),
        ErrorCode::InvalidState => AwsError::invalid_request(MARKED_FOR_DELETION),
        _ => AwsError::from_core(&e),
    }
}

/// Describe a secret by name (read on `metadata/<name>`).
pub(super) async fn describe(ctx: &Ctx<'_>, name: &str) -> Result<SecretView, CoreError> {
    let resp = ctx
        .call(
            Operation::Read,
            &format!("domain/secrets/{name}"),
            Map::new(),
        )
        .await?;
    view(resp).map_err(|e| CoreError::internal(e.message))
}

/// The name a `SecretId` names. A name is taken as it is; an ARN is checked (a describe): its
/// account must be the caller's, and a full ARN's suffix the secret's (an ARN of a
/// deleted-and-recreated secret does not reach the new one).
pub(super) async fn resolve(ctx: &Ctx<'_>, secret_id: &str) -> Result<String, AwsError> {
    let candidates = names::candidates(secret_id)?;
    if let [Candidate {
        name,
        suffix: None,
        account: None,
    }] = candidates.as_slice()
    {
        return Ok(name.clone());
    }
    for c in &candidates {
        match describe(ctx, &c.name).await {
            Ok(v) if c.accepts(&v.secret_id, &ctx.account()) => return Ok(c.name.clone()),
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(secret_error(e)),
        }
    }
    Err(AwsError::not_found(NO_SUCH_SECRET))
}

/// `SecretString` / `SecretBinary` into the domain's payload members (`text` / `binary`); at
/// most one, each at most 65,536 bytes. `None` when neither is given.
fn payload(p: &Params<'_>, into: &mut Map<String, Value>) -> Result<bool, AwsError> {
    let s = p.str_opt("SecretString", 1, usize::MAX)?;
    let b = match p.raw("SecretBinary") {
        None => None,
        Some(Value::String(b)) => Some(b.as_str()),
        Some(_) => return Err(AwsError::serialization("SecretBinary must be base64")),
    };
    match (s, b) {
        (Some(_), Some(_)) => Err(AwsError::invalid_parameter(
            "You can't specify both a binary secret value and a string secret value in the same \
             secret.",
        )),
        (Some(s), None) => {
            if s.len() > MAX_SECRET_SIZE {
                return Err(AwsError::validation(
                    "1 validation error detected: Value at 'secretString' failed to satisfy \
                     constraint: Member must have length less than or equal to 65536",
                ));
            }
            into.insert("text".into(), Value::from(s));
            Ok(true)
        }
        (None, Some(b)) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|_| AwsError::serialization("SecretBinary must be base64"))?;
            if bytes.is_empty() || bytes.len() > MAX_SECRET_SIZE {
                return Err(AwsError::validation(
                    "1 validation error detected: Value at 'secretBinary' failed to satisfy \
                     constraint: Member must have length between 1 and 65536",
                ));
            }
            into.insert("binary".into(), Value::from(b));
            Ok(true)
        }
        (None, None) => Ok(false),
    }
}

/// `ClientRequestToken`: the idempotency token, and the version id when it is a UUID (as the
/// SDKs generate it).
fn request_token(p: &Params<'_>, into: &mut Map<String, Value>) -> Result<(), AwsError> {
    if let Some(t) = p.str_opt("ClientRequestToken", TOKEN_LEN.0, TOKEN_LEN.1)? {
        into.insert("idempotency_token".into(), Value::from(t));
        if uuid::Uuid::try_parse(t).is_ok() {
            into.insert("version_id".into(), Value::from(t));
        }
    }
    Ok(())
}

fn kms_key(p: &Params<'_>, into: &mut Map<String, Value>) -> Result<(), AwsError> {
    if let Some(k) = p.str_opt("KmsKeyId", 0, 2048)? {
        into.insert("kms_key_id".into(), Value::from(k));
    }
    Ok(())
}

fn description(p: &Params<'_>, into: &mut Map<String, Value>) -> Result<(), AwsError> {
    if let Some(d) = p.str_opt("Description", 0, 2048)? {
        into.insert("description".into(), Value::from(d));
    }
    Ok(())
}

/// The answer of a put: `ARN`, `Name`, `VersionId`, `VersionStages`.
fn put_answer(ctx: &Ctx<'_>, v: &VersionView, with_stages: bool) -> Value {
    let mut out = json!({
        "ARN": ctx.arn(&v.name, &v.secret_id),
        "Name": v.name,
        "VersionId": v.version_id,
    });
    if with_stages {
        out["VersionStages"] = json!(v.staging_labels);
    }
    out
}

pub async fn create_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let name = p.str_req("Name", 1, names::MAX_NAME)?;
    names::validate_name(name)?;
    let mut data = Map::new();
    let has_value = payload(p, &mut data)?;
    request_token(p, &mut data)?;
    description(p, &mut data)?;
    kms_key(p, &mut data)?;
    if let Some(tags) = p.tags("Tags")? {
        data.insert("tags".into(), json!(tags));
    }
    data.insert("primary_region".into(), Value::from(ctx.region.clone()));
    let replicas = super::replication::requested(ctx, p, "AddReplicaRegions")?;
    if !replicas.is_empty() {
        data.insert("replicas".into(), json!(replicas));
    }
    data.insert("must_create".into(), Value::Bool(true));
    let exists = |e: CoreError| match e.code {
        ErrorCode::AlreadyExists => AwsError::exists(format!(
            "The operation failed because the secret {name} already exists."
        )),
        ErrorCode::InvalidState => AwsError::invalid_request(
            "You can't create this secret because a secret with this name is already scheduled \
             for deletion.",
        ),
        _ => AwsError::from_core(&e),
    };
    if has_value {
        data.insert("staging_labels".into(), json!([AWSCURRENT]));
        let resp = ctx
            .call(Operation::Update, &format!("domain/versions/{name}"), data)
            .await
            .map_err(exists)?;
        let v: VersionView = view(resp)?;
        let mut out = put_answer(ctx, &v, false);
        if !replicas.is_empty() {
            out["ReplicationStatus"] = super::replication::status_json(&replicas);
        }
        return Ok(out);
    }
    let resp = ctx
        .call(Operation::Update, &format!("domain/secrets/{name}"), data)
        .await
        .map_err(exists)?;
    let s: SecretView = view(resp)?;
    let mut out = ctx.arn_and_name(&s);
    if !s.replicas.is_empty() {
        out["ReplicationStatus"] = super::replication::status_json(&s.replicas);
    }
    Ok(out)
}

/// The version selectors of `VersionId` / `VersionStage` (none: `AWSCURRENT`).
fn selectors(p: &Params<'_>, into: &mut Map<String, Value>) -> Result<String, AwsError> {
    let id = p.str_opt("VersionId", TOKEN_LEN.0, TOKEN_LEN.1)?;
    let stage = p.str_opt("VersionStage", 1, 256)?;
    if let Some(id) = id {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(AwsError::not_found(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {id}"
            )));
        }
        into.insert("version_id".into(), Value::from(id));
    }
    if let Some(s) = stage {
        into.insert("label".into(), Value::from(s));
    }
    Ok(match (id, stage) {
        (Some(id), _) => format!("VersionId: {id}"),
        (None, Some(s)) => format!("staging label: {s}"),
        (None, None) => {
            into.insert("label".into(), Value::from(AWSCURRENT));
            format!("staging label: {AWSCURRENT}")
        }
    })
}

/// A string member of a kv answer, moved out.
fn take_str(m: &mut Map<String, Value>, key: &str) -> Value {
    match m.remove(key) {
        Some(v @ Value::String(_)) => v,
        _ => Value::Null,
    }
}

/// A version's value as AWS answers it (`SecretString` or `SecretBinary`), from a `kv.version`
/// answer read with `as_text` (its members are moved, not copied: this is the hot path).
pub(super) fn value_json(ctx: &Ctx<'_>, mut v: Map<String, Value>) -> Value {
    let name = take_str(&mut v, "name");
    let secret_id = take_str(&mut v, "secret_id");
    let arn = ctx.arn(
        name.as_str().unwrap_or(""),
        secret_id.as_str().unwrap_or(""),
    );
    let created = epoch(v.get("created_time").and_then(Value::as_str).unwrap_or(""));
    let stages = match v.remove("staging_labels") {
        Some(l @ Value::Array(_)) => l,
        _ => Value::Array(Vec::new()),
    };
    let binary = v.get("encoding").and_then(Value::as_str) == Some("binary");
    let mut out = Map::new();
    out.insert("ARN".into(), Value::String(arn));
    out.insert("Name".into(), name);
    out.insert("VersionId".into(), take_str(&mut v, "version_id"));
    out.insert("VersionStages".into(), stages);
    out.insert("CreatedDate".into(), created);
    match (v.remove("value"), v.remove("data")) {
        (Some(Value::String(b64)), _) if binary => {
            out.insert("SecretBinary".into(), Value::String(b64));
        }
        (Some(Value::String(text)), _) => {
            out.insert("SecretString".into(), Value::String(text));
        }
        (_, Some(obj @ Value::Object(_))) => {
            out.insert("SecretString".into(), Value::String(obj.to_string()));
        }
        _ => {}
    }
    Value::Object(out)
}

/// Read one version of the secret a `SecretId` names (as GetSecretValue does): each candidate
/// name is read, and an ARN checked on the answer. Answers the `kv.version` members.
pub(super) async fn read_value(
    ctx: &Ctx<'_>,
    secret_id: &str,
    selectors: &Map<String, Value>,
    what: &str,
) -> Result<Map<String, Value>, AwsError> {
    let candidates = names::candidates(secret_id)?;
    for c in &candidates {
        let mut data = selectors.clone();
        data.insert("as_text".into(), Value::Bool(true));
        match ctx
            .call(
                Operation::Read,
                &format!("domain/versions/{}", c.name),
                data,
            )
            .await
        {
            Ok(resp) => {
                let v = resp.data.unwrap_or_default();
                let id = v.get("secret_id").and_then(Value::as_str).unwrap_or("");
                if c.accepts(id, &ctx.account()) {
                    return Ok(v);
                }
            }
            Err(e) if is_missing_secret(&e) => {}
            Err(e) if e.code == ErrorCode::NotFound => {
                return Err(AwsError::not_found(format!(
                    "Secrets Manager can't find the specified secret value for {what}"
                )))
            }
            Err(e) if e.code == ErrorCode::InvalidState => {
                return Err(AwsError::invalid_request(MARKED_FOR_DELETION))
            }
            Err(e) => return Err(AwsError::from_core(&e)),
        }
    }
    Err(AwsError::not_found(NO_SUCH_SECRET))
}

pub async fn get_secret_value(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let mut sel = Map::new();
    let what = selectors(p, &mut sel)?;
    let v = read_value(ctx, id, &sel, &what).await?;
    Ok(value_json(ctx, v))
}

/// Put a new version of an existing secret: the shared part of PutSecretValue and UpdateSecret.
async fn put_version(
    ctx: &Ctx<'_>,
    name: &str,
    mut data: Map<String, Value>,
) -> Result<VersionView, AwsError> {
    data.insert("must_exist".into(), Value::Bool(true));
    let resp = ctx
        .call(Operation::Update, &format!("domain/versions/{name}"), data)
        .await
        .map_err(|e| match e.code {
            ErrorCode::AlreadyExists => AwsError::exists(
                "You can't modify an existing version, you can only create a new version.",
            ),
            _ => secret_error(e),
        })?;
    view(resp)
}

pub async fn put_secret_value(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let mut data = Map::new();
    if !payload(p, &mut data)? {
        return Err(AwsError::invalid_parameter(
            "You must provide either SecretString or SecretBinary.",
        ));
    }
    request_token(p, &mut data)?;
    let stages = p.str_list("VersionStages")?;
    if let Some(s) = &stages {
        if s.is_empty() || s.len() > 20 || s.iter().any(|l| l.is_empty() || l.len() > 256) {
            return Err(AwsError::validation(
                "1 validation error detected: Value at 'versionStages' failed to satisfy \
                 constraint: Member must have length between 1 and 20",
            ));
        }
    }
    data.insert(
        "staging_labels".into(),
        json!(stages.unwrap_or_else(|| vec![AWSCURRENT.to_string()])),
    );
    let name = resolve(ctx, id).await?;
    let v = put_version(ctx, &name, data).await?;
    Ok(put_answer(ctx, &v, true))
}

pub async fn update_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let mut data = Map::new();
    let has_value = payload(p, &mut data)?;
    request_token(p, &mut data)?;
    description(p, &mut data)?;
    kms_key(p, &mut data)?;
    let name = resolve(ctx, id).await?;
    if has_value {
        data.insert("staging_labels".into(), json!([AWSCURRENT]));
        let v = put_version(ctx, &name, data).await?;
        return Ok(put_answer(ctx, &v, false));
    }
    data.remove("idempotency_token");
    data.remove("version_id");
    let resp = ctx
        .call(Operation::Update, &format!("domain/secrets/{name}"), data)
        .await
        .map_err(secret_error)?;
    let s: SecretView = view(resp)?;
    Ok(ctx.arn_and_name(&s))
}

/// DescribeSecret's answer (also each entry of ListSecrets, with `versions_key`).
pub(super) fn describe_json(ctx: &Ctx<'_>, s: &SecretView, versions_key: &str) -> Value {
    let mut out = Map::new();
    out.insert("ARN".into(), json!(ctx.arn(&s.name, &s.secret_id)));
    out.insert("Name".into(), json!(s.name));
    if !s.description.is_empty() {
        out.insert("Description".into(), json!(s.description));
    }
    if let Some(k) = &s.kms_key_id {
        out.insert("KmsKeyId".into(), json!(k));
    }
    let mut stages = Map::new();
    super::rotation::describe_members(s, &mut out, &mut stages);
    out.insert("LastChangedDate".into(), epoch(&s.last_changed_time));
    if let Some(d) = &s.last_accessed_date {
        out.insert("LastAccessedDate".into(), epoch(d));
    }
    if let Some(d) = &s.deletion {
        out.insert("DeletedDate".into(), epoch(&d.deleted_time));
    }
    if !s.tags.is_empty() {
        let tags: Vec<Value> = s
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        out.insert("Tags".into(), Value::Array(tags));
    }
    for v in &s.versions {
        if !v.staging_labels.is_empty() {
            stages.insert(v.version_id.clone(), json!(v.staging_labels));
        }
    }
    out.insert(versions_key.into(), Value::Object(stages));
    out.insert("CreatedDate".into(), epoch(&s.created_time));
    if let Some(r) = &s.primary_region {
        out.insert("PrimaryRegion".into(), json!(r));
    }
    if !s.replicas.is_empty() {
        out.insert(
            "ReplicationStatus".into(),
            super::replication::status_json(&s.replicas),
        );
    }
    Value::Object(out)
}

pub async fn describe_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let s = describe(ctx, &name).await.map_err(secret_error)?;
    Ok(describe_json(ctx, &s, "VersionIdsToStages"))
}

pub async fn update_secret_version_stage(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let stage = p.str_req("VersionStage", 1, 256)?;
    let from = p.str_opt("RemoveFromVersionId", TOKEN_LEN.0, TOKEN_LEN.1)?;
    let to = p.str_opt("MoveToVersionId", TOKEN_LEN.0, TOKEN_LEN.1)?;
    if from.is_none() && to.is_none() {
        return Err(AwsError::invalid_parameter(
            "You must specify RemoveFromVersionId, MoveToVersionId, or both.",
        ));
    }
    let mut data = Map::new();
    data.insert("label".into(), json!(stage));
    for (key, id) in [("from_version_id", from), ("to_version_id", to)] {
        if let Some(id) = id {
            if uuid::Uuid::try_parse(id).is_err() {
                return Err(AwsError::invalid_parameter(format!(
                    "The version {id} does not exist."
                )));
            }
            data.insert(key.into(), json!(id));
        }
    }
    let name = resolve(ctx, id).await?;
    let resp = ctx
        .call(Operation::Update, &format!("domain/labels/{name}"), data)
        .await
        .map_err(|e| match e.code {
            ErrorCode::NotFound if !is_missing_secret(&e) => {
                AwsError::invalid_parameter("The version you specified does not exist.")
            }
            _ => secret_error(e),
        })?;
    let s: SecretView = view(resp)?;
    Ok(ctx.arn_and_name(&s))
}

pub async fn delete_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let window = p.int_opt("RecoveryWindowInDays", i64::MIN, i64::MAX)?;
    let force = p.bool_opt("ForceDeleteWithoutRecovery")?.unwrap_or(false);
    if force && window.is_some() {
        return Err(AwsError::invalid_parameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    if let Some(w) = window {
        if !(7..=30).contains(&w) {
            return Err(AwsError::invalid_parameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
    }
    let name = match resolve(ctx, id).await {
        Ok(n) => n,
        Err(e) if force && e.code == "ResourceNotFoundException" => {
            return Ok(forced_gone(ctx, id));
        }
        Err(e) => return Err(e),
    };
    let days = window.unwrap_or(30);
    let mut data = Map::new();
    if !force {
        data.insert("recovery_window_secs".into(), json!(days * 86_400));
    }
    let path = format!("domain/secrets/{name}");
    let scheduled = match ctx.call(Operation::Delete, &path, data).await {
        Ok(resp) => Some(view::<SecretView>(resp)?),
        // already scheduled: only a forced deletion goes on (it purges at once)
        Err(e) if e.code == ErrorCode::InvalidState && force => None,
        Err(e) if force && is_missing_secret(&e) => return Ok(forced_gone(ctx, &name)),
        Err(e) => return Err(secret_error(e)),
    };
    if force {
        let s = match scheduled {
            Some(s) => s,
            None => describe(ctx, &name).await.map_err(secret_error)?,
        };
        ctx.call(
            Operation::Delete,
            &format!("domain/purge/{name}"),
            Map::new(),
        )
        .await
        .map_err(secret_error)?;
        return Ok(json!({
            "ARN": ctx.arn(&s.name, &s.secret_id),
            "Name": s.name,
            "DeletionDate": epoch(&coffer_engines::kv::model::format_time(
                time::OffsetDateTime::now_utc()
            )),
        }));
    }
    let s = scheduled.ok_or_else(|| AwsError::invalid_request(MARKED_FOR_DELETION))?;
    let purge = s
        .deletion
        .as_ref()
        .and_then(|d| d.scheduled_purge_time.clone())
        .unwrap_or_default();
    Ok(json!({
        "ARN": ctx.arn(&s.name, &s.secret_id),
        "Name": s.name,
        "DeletionDate": epoch(&purge),
    }))
}

/// A forced deletion of a secret that does not exist succeeds, as AWS answers it (the secret is
/// gone either way).
fn forced_gone(ctx: &Ctx<'_>, name: &str) -> Value {
    let now = coffer_engines::kv::model::format_time(time::OffsetDateTime::now_utc());
    json!({
        "ARN": ctx.arn(name, &uuid::Uuid::new_v4().to_string()),
        "Name": name,
        "DeletionDate": epoch(&now),
    })
}

pub async fn restore_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let s = match ctx
        .call(
            Operation::Update,
            &format!("domain/restore/{name}"),
            Map::new(),
        )
        .await
    {
        Ok(resp) => view::<SecretView>(resp)?,
        // not scheduled for deletion: nothing to restore, as AWS answers
        Err(e) if e.code == ErrorCode::InvalidState => {
            describe(ctx, &name).await.map_err(secret_error)?
        }
        Err(e) => return Err(secret_error(e)),
    };
    Ok(ctx.arn_and_name(&s))
}

/// Change settings of an existing secret (update on `metadata/<name>`); answers its view.
pub(super) async fn set_settings(
    ctx: &Ctx<'_>,
    name: &str,
    data: Map<String, Value>,
) -> Result<SecretView, AwsError> {
    let resp = ctx
        .call(Operation::Update, &format!("domain/secrets/{name}"), data)
        .await
        .map_err(secret_error)?;
    view(resp)
}

pub async fn tag_resource(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let tags = p
        .tags("Tags")?
        .ok_or_else(|| AwsError::validation("Tags is required"))?;
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("add_tags".into(), json!(tags));
    data.insert("max_tags".into(), json!(MAX_TAGS));
    set_settings(ctx, &name, data).await?;
    Ok(json!({}))
}

pub async fn untag_resource(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let keys = p
        .str_list("TagKeys")?
        .ok_or_else(|| AwsError::validation("TagKeys is required"))?;
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("remove_tags".into(), json!(keys));
    set_settings(ctx, &name, data).await?;
    Ok(json!({}))
}

pub async fn get_random_password(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let mut data = Map::new();
    if let Some(n) = p.int_opt("PasswordLength", 1, 4096)? {
        data.insert("length".into(), json!(n));
    }
    if let Some(x) = p.str_opt("ExcludeCharacters", 0, 4096)? {
        data.insert("exclude_characters".into(), json!(x));
    }
    for (aws, ours) in [
        ("ExcludeNumbers", "exclude_numbers"),
        ("ExcludePunctuation", "exclude_punctuation"),
        ("ExcludeUppercase", "exclude_uppercase"),
        ("ExcludeLowercase", "exclude_lowercase"),
        ("IncludeSpace", "include_space"),
        ("RequireEachIncludedType", "require_each_included_type"),
    ] {
        if let Some(b) = p.bool_opt(aws)? {
            data.insert(ours.into(), json!(b));
        }
    }
    let mut req = coffer_core::request::Request::new(Operation::Update, "sys/tools/password");
    req.data = data;
    let resp = ctx.call_sys(req).await?;
    let password = resp
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::from_core(&CoreError::internal("no password generated")))?;
    Ok(json!({ "RandomPassword": password }))
}
