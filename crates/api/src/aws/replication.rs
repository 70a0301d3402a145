//! Replication to other regions. Every region is served by one kv mount by default, so a
//! replica is the same secret: replication records which regions hold a replica (reported as
//! `InSync`) and nothing has to be copied.

use super::error::AwsError;
use super::ops::{resolve, set_settings};
use super::params::Params;
use super::{names, Ctx, OpResult};
use coffer_engines::kv::model::Replica;
use serde_json::{json, Map, Value};

/// AWS's region names: letters, digits and `-`.
fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The replicas a request asks for (`AddReplicaRegions`: `[{Region, KmsKeyId}]`).
pub fn requested(ctx: &Ctx<'_>, p: &Params<'_>, key: &str) -> Result<Vec<Replica>, AwsError> {
    let mut out: Vec<Replica> = Vec::new();
    for item in p.objects(key)?.unwrap_or_default() {
        let item = Params(item);
        let region = item.str_req("Region", 1, 128)?;
        if !valid_region(region) {
            return Err(AwsError::invalid_parameter(format!(
                "{region} is not a valid region name."
            )));
        }
        if region == ctx.region {
            return Err(AwsError::invalid_parameter(
                "A secret can't be replicated to its own region.",
            ));
        }
        if out.iter().any(|r| r.region == region) {
            return Err(AwsError::invalid_parameter(format!(
                "The region {region} is listed more than once."
            )));
        }
        out.push(Replica {
            region: region.to_string(),
            kms_key_id: item.str_opt("KmsKeyId", 0, 2048)?.map(str::to_string),
            status: "InSync".into(),
            status_message: Some("Replication succeeded".into()),
            last_accessed_date: None,
        });
    }
    Ok(out)
}

/// `ReplicationStatus` as AWS answers it.
pub fn status_json(replicas: &[Replica]) -> Value {
    json!(replicas
        .iter()
        .map(|r| {
            let mut e = json!({"Region": r.region, "Status": r.status});
            if let Some(k) = &r.kms_key_id {
                e["KmsKeyId"] = json!(k);
            }
            if let Some(m) = &r.status_message {
                e["StatusMessage"] = json!(m);
            }
            e
        })
        .collect::<Vec<_>>())
}

/// Change the replicas (update on `metadata/<name>`, one atomic change); answers `ARN` and
/// `ReplicationStatus`.
async fn change(ctx: &Ctx<'_>, name: &str, data: Map<String, Value>) -> OpResult {
    let s = set_settings(ctx, name, data).await?;
    Ok(json!({
        "ARN": ctx.arn(&s.name, &s.secret_id),
        "ReplicationStatus": status_json(&s.replicas),
    }))
}

pub async fn replicate(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let add = requested(ctx, p, "AddReplicaRegions")?;
    if add.is_empty() {
        return Err(AwsError::validation(
            "1 validation error detected: Value at 'addReplicaRegions' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        ));
    }
    let force = p.bool_opt("ForceOverwriteReplicaSecret")?.unwrap_or(false);
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("add_replicas".into(), json!(add));
    data.insert("overwrite_replicas".into(), json!(force));
    change(ctx, &name, data).await
}

pub async fn remove_regions(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let remove = p.str_list("RemoveReplicaRegions")?.unwrap_or_default();
    if remove.is_empty() {
        return Err(AwsError::validation(
            "1 validation error detected: Value at 'removeReplicaRegions' failed to satisfy \
             constraint: Member must have length greater than or equal to 1",
        ));
    }
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("remove_replicas".into(), json!(remove));
    change(ctx, &name, data).await
}

/// Called in a replica's region: the replica becomes a secret of its own. With one store the
/// secret simply stops listing that region as a replica.
pub async fn stop_replication(ctx: &Ctx<'_>, p: &Params<'_>) -> OpResult {
    let id = p.str_req("SecretId", 1, names::MAX_SECRET_ID)?;
    let name = resolve(ctx, id).await?;
    let mut data = Map::new();
    data.insert("remove_replicas".into(), json!([ctx.region]));
    let out = change(ctx, &name, data).await.map_err(|e| {
        if e.code == "InvalidParameterException" {
            AwsError::invalid_request(format!(
                "The secret is not a replica in {}: call StopReplicationToReplica in the \
                 replica's region.",
                ctx.region
            ))
        } else {
            e
        }
    })?;
    Ok(json!({ "ARN": out["ARN"] }))
}
