//! The AWS Secrets Manager dialect: `POST /` with `X-Amz-Target: secretsmanager.<Op>`, JSON 1.1
//! bodies, SigV4-signed. It is a translator only: each operation becomes one or more core
//! requests on the kv mount's neutral `domain/` paths (so the ACL, audit and versions are the
//! ones every dialect shares), and the kv domain's typed answers are rendered in AWS's shapes.
//!
//! - [`sigv4`] parses the signature off the wire into a proof the core checks;
//! - [`error`] is AWS's error table (`{"__type", "message"}`, statuses);
//! - [`names`] holds secret names, ARNs and `SecretId` resolution;
//! - [`ops`], [`list`], [`policy`] and [`replication`] are the operations;
//! - [`policy_doc`] validates IAM policy documents; [`filters`] matches `ListSecrets` filters.

pub mod error;
pub mod filters;
mod list;
pub mod names;
mod ops;
mod params;
mod policy;
pub mod policy_doc;
mod replication;
mod rotation;
pub mod sigv4;

use crate::common::{
    json_with_type, read_body, FirstRequestId, RemoteAddr, MAX_UNAUTHENTICATED_BODY,
};
use axum::extract::Request as HttpRequest;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::CoreError;
use coffer_core::request::{Credential, Dialect, Operation, Request, Response, SignedProof};
use coffer_core::Core;
use error::AwsError;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// The content type of every answer.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The kv mount every region is served by (until a region map says otherwise).
pub const DEFAULT_MOUNT: &str = "secret/";
/// The account shown in ARNs when the access key's auth method has none configured.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// How the dialect is set up (the server configuration's `aws` stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// How far a request's time may be from the server's clock (AWS: 15 minutes).
    pub max_clock_skew: std::time::Duration,
    /// Regions served by another kv mount than [`DEFAULT_MOUNT`] (mount paths end with `/`).
    pub region_mounts: std::collections::BTreeMap<String, String>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            max_clock_skew: std::time::Duration::from_secs(15 * 60),
            region_mounts: Default::default(),
        }
    }
}

impl AwsSettings {
    /// The kv mount serving `region`.
    pub fn mount_for(&self, region: &str) -> &str {
        self.region_mounts
            .get(region)
            .map(String::as_str)
            .unwrap_or(DEFAULT_MOUNT)
    }
}

/// One AWS request on its way: the verified signature, where it goes, and what it is called.
pub struct Ctx<'a> {
    core: &'a Core,
    proof: SignedProof,
    remote: Option<IpAddr>,
    /// The operation's name (`GetSecretValue`).
    pub op: &'static str,
    /// The region of the credential scope.
    pub region: String,
    /// The kv mount the region is served by (with its trailing `/`).
    pub mount: String,
    /// The caller's account, learnt from the first core answer.
    account: std::sync::Mutex<Option<String>>,
    /// The AWS request id (`x-amzn-RequestId`): the id of the first core request the operation
    /// makes, so the answer's id finds its entries in the audit log.
    request_id: &'a FirstRequestId,
}

impl Ctx<'_> {
    /// Run one core request on the kv mount (`path` below it) as the signed caller.
    pub async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Response, CoreError> {
        let mut req = Request::new(operation, format!("{}{path}", self.mount));
        req.data = data;
        let resp = self.call_sys(req).await?;
        if let Some(account) = resp
            .caller
            .as_ref()
            .and_then(|c| c.get("account_id"))
            .and_then(Value::as_str)
        {
            if let Ok(mut a) = self.account.lock() {
                *a = Some(account.to_string());
            }
        }
        Ok(resp)
    }

    /// Run a core request on any path (e.g. `sys/tools/password`) as the signed caller.
    pub async fn call_sys(&self, mut req: Request) -> Result<Response, CoreError> {
        self.request_id.stamp(&mut req);
        req.credential = Credential::Signed(self.proof.clone());
        req.remote_addr = self.remote;
        req.dialect = Dialect::Aws;
        req.operation_name = Some(format!("secretsmanager.{}", self.op));
        self.core.handle(req).await
    }

    /// The account for ARNs.
    pub fn account(&self) -> String {
        self.account
            .lock()
            .ok()
            .and_then(|a| a.clone())
            .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string())
    }

    /// The ARN of a secret.
    pub fn arn(&self, name: &str, secret_id: &str) -> String {
        names::arn(&self.region, &self.account(), name, secret_id)
    }

    /// `{"ARN", "Name"}` of a secret: what most operations answer.
    pub fn arn_and_name(&self, s: &coffer_engines::kv::domain::SecretView) -> Value {
        serde_json::json!({"ARN": self.arn(&s.name, &s.secret_id), "Name": s.name})
    }
}

/// The operations, by name.
type OpResult = Result<Value, AwsError>;

async fn run(ctx: &Ctx<'_>, body: &Map<String, Value>) -> OpResult {
    let p = params::Params(body);
    match ctx.op {
        "CreateSecret" => ops::create_secret(ctx, &p).await,
        "GetSecretValue" => ops::get_secret_value(ctx, &p).await,
        "BatchGetSecretValue" => list::batch_get_secret_value(ctx, &p).await,
        "PutSecretValue" => ops::put_secret_value(ctx, &p).await,
        "UpdateSecret" => ops::update_secret(ctx, &p).await,
        "DescribeSecret" => ops::describe_secret(ctx, &p).await,
        "ListSecrets" => list::list_secrets(ctx, &p).await,
        "ListSecretVersionIds" => list::list_secret_version_ids(ctx, &p).await,
        "UpdateSecretVersionStage" => ops::update_secret_version_stage(ctx, &p).await,
        "DeleteSecret" => ops::delete_secret(ctx, &p).await,
        "RestoreSecret" => ops::restore_secret(ctx, &p).await,
        "TagResource" => ops::tag_resource(ctx, &p).await,
        "UntagResource" => ops::untag_resource(ctx, &p).await,
        "GetResourcePolicy" => policy::get_resource_policy(ctx, &p).await,
        "PutResourcePolicy" => policy::put_resource_policy(ctx, &p).await,
        "DeleteResourcePolicy" => policy::delete_resource_policy(ctx, &p).await,
        "ValidateResourcePolicy" => policy::validate_resource_policy(ctx, &p).await,
        "GetRandomPassword" => ops::get_random_password(ctx, &p).await,
        "ReplicateSecretToRegions" => replication::replicate(ctx, &p).await,
        "RemoveRegionsFromReplication" => replication::remove_regions(ctx, &p).await,
        "StopReplicationToReplica" => replication::stop_replication(ctx, &p).await,
        "RotateSecret" => rotation::rotate_secret(ctx, &p).await,
        "CancelRotateSecret" => rotation::cancel_rotate_secret(ctx, &p).await,
        _ => Err(AwsError::unknown_operation()),
    }
}

/// The operation names served (everything else is `UnknownOperationException`).
const OPERATIONS: &[&str] = &[
    "BatchGetSecretValue",
    "CancelRotateSecret",
    "CreateSecret",
    "DeleteResourcePolicy",
    "DeleteSecret",
    "DescribeSecret",
    "GetRandomPassword",
    "GetResourcePolicy",
    "GetSecretValue",
    "ListSecretVersionIds",
    "ListSecrets",
    "PutResourcePolicy",
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "RotateSecret",
    "StopReplicationToReplica",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ValidateResourcePolicy",
];

/// Handle one `POST /` with `X-Amz-Target`.
pub async fn handle(core: &Core, settings: &AwsSettings, req: HttpRequest) -> HttpResponse {
    let request_id = FirstRequestId::new();
    let mut resp = match answer(core, settings, req, &request_id).await {
        Ok(v) => json_with_type(StatusCode::OK, &v, CONTENT_TYPE),
        Err(e) => e.response(),
    };
    if let Ok(id) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert("x-amzn-requestid", id);
    }
    resp
}

async fn answer(
    core: &Core,
    settings: &AwsSettings,
    req: HttpRequest,
    request_id: &FirstRequestId,
) -> OpResult {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = target
        .strip_prefix("secretsmanager.")
        .and_then(|name| OPERATIONS.iter().find(|o| **o == name).copied())
        .ok_or_else(AwsError::unknown_operation)?;
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = read_body(
        body,
        MAX_UNAUTHENTICATED_BODY,
        declared,
        crate::common::expects_continue(&parts.headers),
    )
    .await
    .map_err(|e| AwsError::from_core(&e))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let http = sigv4::HttpParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &bytes,
    };
    let verifier = sigv4::VerifierConfig {
        max_skew: settings.max_clock_skew,
        ..Default::default()
    };
    let proof = sigv4::verify(&http, now, &verifier).map_err(|e| AwsError::from_sigv4(&e))?;
    let body = crate::common::parse_json_object(&bytes).map_err(|e| AwsError {
        status: StatusCode::BAD_REQUEST,
        code: "SerializationException",
        message: e.message,
    })?;
    let ctx = Ctx {
        core,
        region: proof.scope.region.clone(),
        mount: settings.mount_for(&proof.scope.region).to_string(),
        proof,
        remote: parts.extensions.get::<RemoteAddr>().map(|r| r.0.ip()),
        op,
        account: std::sync::Mutex::new(None),
        request_id,
    };
    run(&ctx, &body).await
}
