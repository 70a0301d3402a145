//! Resource policies: stored with the secret, validated as IAM policy documents
//! ([`super::policy_doc`]) and answered back. Coffer does not evaluate them: access is decided
//! by Coffer's own ACL policies (see the README).

use super::error::AwsError;
use super::ops::{describe, resolve, secret_error, set_settings};
use super::params::Params;
use super::policy_doc;
use super::{names, Ctx, OpResult};
use serde_json::{json, Map};

/// AWS's limit on a resource policy.
const MAX_POLICY: usize = 20_480;

fn problems_json(problems: &[policy_doc::PolicyProblem]) -> serde_json::Value {
    json!(problems
        .iter()
        .map(|p| json!({"CheckName": p.check_name, "ErrorMessage": p.error_message}))
        .collect::<Vec<_>>())
}

pub async fn get_resource_policy(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let s = describe(ctx, &name).await.map_err(secret_error)?;
    let mut out = ctx.arn_and_name(&s);
    if let Some(policy) = s.resource_policy.filter(|p| !p.is_empty()) {
        out["ResourcePolicy"] = json!(policy);
    }
    Ok(out)
}

pub async fn put_resource_policy(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let policy = p.str_req("ResourcePolicy", 1, MAX_POLICY)?;
    p.bool_opt("BlockPublicPolicy")?;
    let problems = policy_doc::validate(policy);
    if let Some(first) = problems.first() {
        return Err(AwsError::malformed_policy(format!(
            "This resource policy contains an unsupported syntax: {}",
            first.error_message
        )));
    }
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("resource_policy".into(), json!(policy));
    let s = set_settings(ctx, &name, data).await?;
    Ok(ctx.arn_and_name(&s))
}

pub async fn delete_resource_policy(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("resource_policy".into(), json!(""));
    let s = set_settings(ctx, &name, data).await?;
    Ok(ctx.arn_and_name(&s))
}

/// Validation needs no secret; with a `SecretId`, the caller must be able to describe it.
pub async fn validate_resource_policy(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let policy = p.str_req("ResourcePolicy", 1, MAX_POLICY)?;
    match p.str_opt("SecretId", 1, names::MAX_SECRET_ID)? {
        Some(id) => {
            let name = resolve(ctx, id).await?;
            describe(ctx, &name).await.map_err(secret_error)?;
        }
        // no secret: the caller still has to be a known key (the core checks the signature)
        None => {
            ctx.call_sys(coffer_core::request::Request::new(
                coffer_core::request::Operation::Read,
                "sys/internal/whoami",
            ))
            .await
            .map_err(|e| AwsError::from_core(&e))?;
        }
    }
    let problems = policy_doc::validate(policy);
    Ok(json!({
        "PolicyValidationPassed": problems.is_empty(),
        "ValidationErrors": problems_json(&problems),
    }))
}
