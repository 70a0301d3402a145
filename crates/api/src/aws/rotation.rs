//! `RotateSecret` and `CancelRotateSecret`: a secret's rotation settings and runs, on the kv
//! domain's `domain/rotation/<name>` (authorized as `update` on `metadata/<name>`). The runs
//! themselves are driven by Coffer's scheduler, which calls the rotator's four steps.

use super::error::AwsError;
use super::ops::{resolve, secret_error, view};
use super::params::Params;
use super::{names, Ctx, OpResult};
use coffer_core::error::ErrorCode;
use coffer_core::request::Operation;
use coffer_engines::kv::domain::{RotationView, SecretView};
use serde_json::{json, Map, Value};

/// `ClientRequestToken`: 32–64 characters (a UUID here: it becomes the new version's id).
const TOKEN_LEN: (usize, usize) = (32, 64);

fn rules(p: &Params<'_>) -> Result<Option<Value>, AwsError> {
    let Some(raw) = p.raw("RotationRules") else {
        return Ok(None);
    };
    let r = raw
        .as_object()
        .ok_or_else(|| AwsError::serialization("RotationRules must be an object"))?;
    let rp = Params(r);
    let mut out = Map::new();
    if let Some(d) = rp.int_opt("AutomaticallyAfterDays", 1, 1000)? {
        out.insert("automatically_after_days".into(), json!(d));
    }
    if let Some(e) = rp.str_opt("ScheduleExpression", 1, 256)? {
        out.insert("schedule_expression".into(), json!(e));
    }
    if let Some(d) = rp.str_opt("Duration", 2, 3)? {
        out.insert("duration".into(), json!(d));
    }
    Ok(Some(Value::Object(out)))
}

fn rotation_error(e: coffer_core::error::CoreError) -> AwsError {
    match e.code {
        ErrorCode::InvalidState if e.message.contains("previous rotation") => {
            AwsError::invalid_request(e.message)
        }
        ErrorCode::InvalidRequest => AwsError::invalid_parameter(e.message),
        ErrorCode::AlreadyExists => AwsError::invalid_request(e.message),
        _ => secret_error(e),
    }
}

pub async fn rotate_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let mut data = Map::new();
    if let Some(t) = p.str_opt("ClientRequestToken", TOKEN_LEN.0, TOKEN_LEN.1)? {
        if uuid::Uuid::try_parse(t).is_err() {
            return Err(AwsError::invalid_parameter(
                "ClientRequestToken must be a UUID in Coffer: it becomes the new version's id.",
            ));
        }
        data.insert("version_id".into(), json!(t));
    }
    if let Some(arn) = p.str_opt("RotationLambdaARN", 1, 2048)? {
        data.insert("rotator_id".into(), json!(arn));
    }
    if let Some(r) = rules(p)? {
        data.insert("rules".into(), r);
    }
    let immediately = p.bool_opt("RotateImmediately")?.unwrap_or(true);
    data.insert("rotate_immediately".into(), json!(immediately));
    let name = resolve(ctx, id).await?;
    let resp = ctx
        .call(Operation::Update, &format!("domain/rotation/{name}"), data)
        .await
        .map_err(rotation_error)?;
    let r: RotationView = view(resp)?;
    let mut out = json!({"ARN": ctx.arn(&r.name, &r.secret_id), "Name": r.name});
    if let Some(run) = &r.settings.run {
        out["VersionId"] = json!(run.version_id);
    }
    Ok(out)
}

pub async fn cancel_rotate_secret(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("cancel".into(), json!(true));
    let resp = ctx
        .call(Operation::Update, &format!("domain/rotation/{name}"), data)
        .await
        .map_err(rotation_error)?;
    let r: RotationView = view(resp)?;
    let mut out = json!({"ARN": ctx.arn(&r.name, &r.secret_id), "Name": r.name});
    // the version a cancelled run left under AWSPENDING, if any
    if let Some(v) = &r.pending_version_id {
        out["VersionId"] = json!(v);
    }
    Ok(out)
}

/// DescribeSecret's rotation members: `RotationEnabled`, `RotationLambdaARN`, `RotationRules`,
/// `LastRotatedDate`, `NextRotationDate`; and the run's version under `AWSPENDING` in the
/// version map while its rotator has not stored it yet (AWS's rotation functions look for it
/// there before they create it).
pub fn describe_members(
    s: &SecretView,
    out: &mut Map<String, Value>,
    stages: &mut Map<String, Value>,
) {
    let rotation = s.rotation.clone().unwrap_or_default();
    out.insert("RotationEnabled".into(), json!(rotation.enabled));
    if let Some(r) = &rotation.rotator_id {
        out.insert("RotationLambdaARN".into(), json!(r));
    }
    let rules = &rotation.rules;
    if rules.automatically_after_days.is_some() || rules.schedule_expression.is_some() {
        let mut r = Map::new();
        if let Some(d) = rules.automatically_after_days {
            r.insert("AutomaticallyAfterDays".into(), json!(d));
        }
        if let Some(e) = &rules.schedule_expression {
            r.insert("ScheduleExpression".into(), json!(e));
        }
        if let Some(d) = &rules.duration {
            r.insert("Duration".into(), json!(d));
        }
        out.insert("RotationRules".into(), Value::Object(r));
    }
    if let Some(t) = &rotation.last_rotated_time {
        out.insert("LastRotatedDate".into(), super::ops::epoch(t));
    }
    if let Some(t) = &rotation.next_rotation_time {
        out.insert("NextRotationDate".into(), super::ops::epoch(t));
    }
    if let Some(run) = &rotation.run {
        if !s.versions.iter().any(|v| v.version_id == run.version_id) {
            stages.insert(run.version_id.clone(), json!(["AWSPENDING"]));
        }
    }
}
